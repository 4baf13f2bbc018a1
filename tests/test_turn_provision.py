"""Provisioning Smart Turn v3.2 out of the pipecat-ai wheel: sha-pinned, repaired, never imported."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from voicebot.config import Settings
from voicebot.models.pull import ProvisioningError, model_status, pull
from voicebot.models.registry import load_registry, sha256_of
from voicebot.models.wheel_file import WHEELS_DIRNAME, parse_source

NAME = "smart-turn-v3"


def _cached_wheel(settings: Settings) -> Path:
    wheels = sorted((settings.models.dir / WHEELS_DIRNAME).glob("pipecat_ai-1.14.0-*.whl"))
    if not wheels:
        if os.environ.get("CI") == "true":
            pytest.fail("pipecat-ai wheel not cached: `voicebot models pull` must run first")
        pytest.skip("pipecat-ai wheel not cached: run `voicebot models pull smart-turn-v3`")
    return wheels[0]


def test_registry_pins_the_file_and_the_wheel(settings: Settings) -> None:
    entry = load_registry(settings.models).get(NAME)
    assert entry.recipe == "wheel-file" and entry.licence == "BSD-2-Clause"
    assert parse_source(entry.source) == ("pipecat-ai", "1.14.0",
                                          "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx")
    assert len(entry.source_sha256) == 64 and len(entry.files) == 1 and len(entry.files[0].sha256) == 64


def test_pull_provisions_verifies_and_repairs(settings: Settings, tmp_path: Path) -> None:
    wheel = _cached_wheel(settings)
    (tmp_path / WHEELS_DIRNAME).mkdir()
    shutil.copy(wheel, tmp_path / WHEELS_DIRNAME / wheel.name)  # no network: the cached wheel
    registry = load_registry(replace(settings.models, dir=tmp_path))
    entry = registry.get(NAME)
    target = tmp_path / NAME / entry.files[0].path

    first = pull(registry, [NAME])[0]
    assert first.action == "provisioned" and first.bytes == 8_679_182
    assert sha256_of(target) == entry.files[0].sha256
    assert model_status(registry, NAME) == (True, 8_679_182)
    assert pull(registry, [NAME])[0].action == "up-to-date"

    with target.open("r+b") as fh:  # corrupt one byte
        fh.seek(1000)
        fh.write(b"\x00")
    assert pull(registry, [NAME])[0].action == "repaired"
    assert sha256_of(target) == entry.files[0].sha256


def test_a_wheel_with_the_wrong_hash_is_refused(settings: Settings, tmp_path: Path) -> None:
    wheel = _cached_wheel(settings)
    (tmp_path / WHEELS_DIRNAME).mkdir()
    tampered = tmp_path / WHEELS_DIRNAME / wheel.name
    shutil.copy(wheel, tampered)
    with tampered.open("ab") as fh:
        fh.write(b"extra")
    registry = load_registry(replace(settings.models, dir=tmp_path))
    with pytest.raises(ProvisioningError, match="sha256"):
        pull(registry, [NAME])
    assert not (tmp_path / NAME / "smart-turn-v3.2-cpu.onnx").exists()
    assert not list((tmp_path / NAME).glob("*.partial"))


def test_pipecat_is_not_imported() -> None:
    import subprocess
    import sys

    code = ("import sys; from voicebot.turn.smart_turn import SmartTurnModel; import voicebot.models.pull; "
            "print('pipecat' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
