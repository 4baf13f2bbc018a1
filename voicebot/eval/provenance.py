"""Which models and which configuration produced an evaluation result.

A number in a report is only worth something if one can say what produced it:
each model's id and the sha256 of its files (from `models/registry.toml`, which
`voicebot models pull` verifies on disk), e5-small's from the `provenance.json`
its converter writes, trained intent models' from their `calibration.json`.
Nothing here hashes large weight files again: reports must be cheap.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any

from voicebot.config import Settings
from voicebot.models.registry import load_registry, sha256_of

# Which settings name the models each evaluation kind depends on.
_KIND_MODELS: dict[str, tuple[str, ...]] = {
    "asr": ("asr",),
    "intent": ("intent",),
    "tts": ("asr", "tts"),
    "calls": ("asr", "vad", "intent", "tts"),
    "load": ("asr", "vad", "intent", "tts"),
}
_CALIBRATION_KEYS = ("model", "encoder", "encoder_sha256", "train_sha256", "data_sha256", "temperature",
                     "target_precision", "created", "version", "labels_sha256", "sha256")


# The libraries a model's numbers depend on. Their versions are not pinned, so a fresh install can move a
# trained head in the fourth decimal (eval/baselines/README.md, fourteenth round): every result names them.
LIBRARIES = ("numpy", "scikit-learn", "torch", "transformers", "tokenizers", "ctranslate2", "faster-whisper",
             "onnxruntime")


def library_versions() -> dict[str, str]:
    """Installed versions of ``LIBRARIES`` ("" for one that is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = ""
    return found


def _registry_files(settings: Settings, name: str) -> list[dict[str, Any]]:
    try:
        registry = load_registry(settings.models)
        entry = registry.get(name)
    except (OSError, KeyError):
        return []
    model_dir = registry.path_of(name)
    if entry.recipe:
        stamp = model_dir / "provenance.json"
        if stamp.is_file():
            recorded = json.loads(stamp.read_text(encoding="utf-8")).get("files", {})
            return [{"path": p, "sha256": s, "present": (model_dir / p).is_file()} for p, s in recorded.items()]
        return [{"path": f.path, "sha256": f.sha256, "present": False} for f in entry.files]
    return [{"path": f.path, "sha256": f.sha256, "present": (model_dir / f.path).is_file()} for f in entry.files]


def _model_entry(settings: Settings, role: str, reference: str) -> dict[str, Any]:
    """Describe one model reference (registry name or path) with whatever hashes are known."""
    info: dict[str, Any] = {"role": role, "id": reference, "files": []}
    if "/" in reference or Path(reference).is_absolute():
        info["path"] = reference  # a user-supplied directory: no registry hashes to report
        return info
    info["path"] = str(settings.models.dir / reference)
    info["files"] = _registry_files(settings, reference)
    return info


def _intent_entry(settings: Settings, reference: str) -> dict[str, Any]:
    """A trained intent model: its identity lives in `calibration.json` next to the weights."""
    path = Path(reference) if "/" in reference else settings.models.dir / reference
    info: dict[str, Any] = {"role": "intent", "id": reference, "path": str(path), "files": []}
    calibration = path / "calibration.json"
    if calibration.is_file():
        info["files"].append({"path": "calibration.json", "sha256": sha256_of(calibration), "present": True})
        try:
            data = json.loads(calibration.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if isinstance(data, dict):
            info["calibration"] = {k: data[k] for k in _CALIBRATION_KEYS if k in data}
    return info


def models_for(kind: str, settings: Settings, voices: list[str] | None = None) -> list[dict[str, Any]]:
    """The models an evaluation of ``kind`` ran with, each with file hashes where known."""
    roles = _KIND_MODELS.get(kind, ("asr", "vad", "intent", "tts"))
    out: list[dict[str, Any]] = []
    if "asr" in roles:
        out.append(_model_entry(settings, "asr", settings.asr.model))
    if "vad" in roles and settings.vad.detector == "silero":
        out.append(_model_entry(settings, "vad", "silero-vad"))
    if "intent" in roles:
        out.append(_model_entry(settings, "encoder", settings.nlu.encoder))
        for reference in (settings.nlu.intent_model, settings.nlu.fallback):
            out.append(_intent_entry(settings, reference))
    if "tts" in roles:
        for voice in voices or [settings.tts.voice]:
            out.append(_model_entry(settings, "tts", voice))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# Settings whose values are credentials: a report shows that they are set, never what they are.
SECRET_SUFFIXES = ("secret", "token", "tokens", "password")


def settings_dict(settings: Settings) -> dict[str, dict[str, Any]]:
    """The settings tree as JSON-ready nested dicts (paths as strings)."""
    out: dict[str, dict[str, Any]] = {}
    for f in fields(settings):
        section = getattr(settings, f.name)
        if is_dataclass(section) and not isinstance(section, type):
            out[f.name] = {k: "***" if v and k.endswith(SECRET_SUFFIXES) else _plain(v)
                           for k, v in asdict(section).items()}
    return out
