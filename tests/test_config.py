"""The settings loader: typed values from TOML and the environment, one clear line on a bad value."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from voicebot.config import Settings, SettingsError, load_settings


def test_defaults_and_env_overrides_are_typed() -> None:
    s = load_settings(environ={"VOICEBOT_ASR__BEAM_SIZE": "3", "VOICEBOT_STORE__REDACT_PII": "no",
                               "VOICEBOT_VAD__THRESHOLD": "0.4", "VOICEBOT_MODELS__DIR": "~/models"})
    assert s.asr.beam_size == 3
    assert s.store.redact_pii is False
    assert s.vad.threshold == pytest.approx(0.4)
    assert s.models.dir == Path("~/models").expanduser()
    # The sections stay plain frozen dataclasses: replace() keeps working for callers.
    assert replace(s.asr, beam_size=2).beam_size == 2


def test_toml_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[asr]\nbackend = "torch"\ndevice = "auto"\n[server]\nport = 9000\n')
    s = load_settings(cfg, environ={})
    assert (s.asr.backend, s.asr.device, s.server.port) == ("torch", "auto", 9000)
    assert s.vad == Settings().vad


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"VOICEBOT_STORE__REDACT_PII": "ture"}, "environment.store.redact_pii: 'ture'"),
        ({"VOICEBOT_ASR__BACKEND": "cuda"}, "environment.asr.backend: 'cuda'"),
        ({"VOICEBOT_ASR__DEVICE": "gpu"}, "environment.asr.device: 'gpu'"),
        ({"VOICEBOT_ASR__BEAM_SIZE": "0"}, "environment.asr.beam_size"),
        ({"VOICEBOT_VAD__THRESHOLD": "1.5"}, "environment.vad.threshold"),
        ({"VOICEBOT_VAD__DETECTOR": "energy"}, "environment.vad.detector"),
        ({"VOICEBOT_ASR__NO_SUCH_KEY": "1"}, "unknown setting 'no_such_key'"),
    ],
)
def test_bad_values_fail_with_one_line(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ=env)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_bad_toml_value(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[asr]\nbackend = "tensorrt"\n')
    with pytest.raises(SettingsError, match=r"c.toml.asr.backend: 'tensorrt'"):
        load_settings(cfg, environ={})


def test_cli_reports_a_bad_setting_in_one_line() -> None:
    env = {"VOICEBOT_ASR__BACKEND": "cuda", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "voicebot.cli.main", "models", "list"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and "asr.backend" in lines[-1]
    assert "Traceback" not in proc.stderr
