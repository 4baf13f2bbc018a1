"""The model registry (`models/registry.toml`) and where provisioned models live."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from voicebot.config import ModelSettings


class ModelNotProvisionedError(RuntimeError):
    """A model is asked for that `voicebot models pull` has not provisioned (or that is corrupt)."""

    def __init__(self, name: str, path: Path, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"model '{name}' is not provisioned at {path}{extra}: run `voicebot models pull` first"
        )
        self.name = name
        self.path = path


@dataclass(frozen=True)
class ModelFile:
    path: str
    sha256: str
    parts: tuple[str, ...] = ()  # "package:relative/path" resources concatenated in order


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    engine: str
    licence: str
    description: str
    packages: tuple[str, ...]
    files: tuple[ModelFile, ...]
    recipe: str = ""  # a converter name for derived artefacts ("" = plain copy/concatenation)
    source: str = ""  # package resource the recipe reads
    source_sha256: str = ""
    card: str = ""
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Registry:
    entries: dict[str, ModelEntry]
    models_dir: Path

    def get(self, name: str) -> ModelEntry:
        try:
            return self.entries[name]
        except KeyError:
            known = ", ".join(sorted(self.entries))
            raise KeyError(f"unknown model {name!r} (registry has: {known})") from None

    def path_of(self, name: str) -> Path:
        return self.models_dir / name


def load_registry(settings: ModelSettings) -> Registry:
    with settings.registry.open("rb") as fh:
        data = tomllib.load(fh)
    entries: dict[str, ModelEntry] = {}
    for name, raw in data.get("models", {}).items():
        files = tuple(
            ModelFile(path=f["path"], sha256=f["sha256"], parts=tuple(f.get("parts", ()))) for f in raw.get("files", ())
        )
        entries[name] = ModelEntry(
            name=name,
            kind=raw["kind"],
            engine=raw.get("engine", ""),
            licence=raw.get("licence", ""),
            description=raw.get("description", ""),
            packages=tuple(raw.get("packages", ())),
            files=files,
            recipe=raw.get("recipe", ""),
            source=raw.get("source", ""),
            source_sha256=raw.get("source_sha256", ""),
            card=raw.get("card", ""),
        )
    return Registry(entries=entries, models_dir=settings.dir)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_model_dir(reference: str, settings: ModelSettings, required: tuple[str, ...] = ()) -> Path:
    """Turn a registry name or a filesystem path into a local directory that exists.

    A path (anything containing a slash, or an existing directory) is used as is, so a
    user can point at any CTranslate2 Whisper dir, Hugging Face checkpoint or piper voice.
    Registry models must have been provisioned; otherwise one clear error says what to do.
    """
    candidate = Path(reference).expanduser()
    if "/" in reference or candidate.exists():
        if not candidate.exists():
            raise FileNotFoundError(f"model path {candidate} does not exist")
        return candidate
    path = settings.dir / reference
    if not path.is_dir():
        raise ModelNotProvisionedError(reference, path)
    missing = [name for name in required if not (path / name).exists()]
    if missing:
        raise ModelNotProvisionedError(reference, path, f"missing {', '.join(missing)}")
    return path
