"""Model provisioning: idempotent pulls, corruption detected by hash and repaired, clear errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from voicebot.config import Settings
from voicebot.models.pull import model_status, pull
from voicebot.models.registry import ModelNotProvisionedError, load_registry, resolve_model_dir, sha256_of


@pytest.fixture()
def small_store(tmp_path: Path, settings: Settings) -> Settings:
    """A private model store, so tests can corrupt files without touching the real one."""
    return replace(settings, models=replace(settings.models, dir=tmp_path / "store"))


def test_pull_is_idempotent_and_repairs_corruption(small_store: Settings) -> None:
    registry = load_registry(small_store.models)
    first = pull(registry, ["pico-de", "silero-vad"])
    assert [r.action for r in first] == ["provisioned", "provisioned"]
    second = pull(registry, ["pico-de", "silero-vad"])
    assert [r.action for r in second] == ["up-to-date", "up-to-date"]

    target = registry.path_of("silero-vad") / "silero_vad_v6.onnx"
    mtime = target.stat().st_mtime_ns
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF  # flip one byte: same size, wrong hash
    target.write_bytes(bytes(data))
    third = pull(registry, ["silero-vad"])
    assert third[0].action == "repaired"
    assert sha256_of(target) == registry.get("silero-vad").files[0].sha256
    assert target.stat().st_mtime_ns != mtime


def test_model_status_and_missing_model_error(small_store: Settings) -> None:
    registry = load_registry(small_store.models)
    ok, _ = model_status(registry, "pico-de")
    assert not ok
    with pytest.raises(ModelNotProvisionedError, match="voicebot models pull"):
        resolve_model_dir("pico-de", small_store.models, ("de-DE_ta.bin",))
    pull(registry, ["pico-de"])
    assert model_status(registry, "pico-de")[0]
    assert resolve_model_dir("pico-de", small_store.models).is_dir()


def test_missing_model_fails_with_one_clear_line(small_store: Settings) -> None:
    from voicebot.asr.transcriber import Transcriber

    with pytest.raises(ModelNotProvisionedError) as info:
        Transcriber(small_store.asr, small_store.models).load()
    message = str(info.value)
    assert "\n" not in message and "whisper-base" in message and "voicebot models pull" in message


def test_registry_lists_every_default_model(settings: Settings) -> None:
    registry = load_registry(settings.models)
    assert {"whisper-base", "silero-vad", "pico-de", "piper-joe-en", "e5-small"} <= set(registry.entries)
    for entry in registry.entries.values():
        assert entry.licence and entry.packages
        for file in entry.files:
            assert len(file.sha256) == 64


def test_cli_models_list_runs(settings: Settings) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "voicebot.cli.main", "models", "list"], capture_output=True,
                         text=True, check=True).stdout
    line = next(row for row in out.splitlines() if row.startswith("whisper-base"))
    assert " provisioned " in line and "not provisioned" not in line


def test_no_weights_in_git() -> None:
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    files = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True).stdout.split()
    heavy = [f for f in files if Path(f).suffix in {".bin", ".onnx", ".safetensors", ".pt", ".flac", ".wav"}]
    assert heavy == []
