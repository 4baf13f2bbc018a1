"""Compare two evaluation results side by side: what changed, and which is better.

Results are the JSON dicts the ``voicebot eval`` commands print with ``--json``.
Every numeric leaf outside ``config`` and outside lists (lists hold per-item
detail, not metrics) is compared by its dotted path, e.g.
``latency.voice_to_voice_ms.p95`` or ``voices.pico-de.wer``.

Which direction is better is decided from the path's names, last segment
first: error rates, latencies, durations, resource use and failure counts are
lower-better; accuracies, precision/recall/F1, coverage and escalation recall
are higher-better; counts (``n``, ``calls``, ``support``...) are neutral. A
summary statistic (``p95``, ``mean``) inherits the direction of what it
summarizes. Unknown names are reported as "changed" without a verdict rather
than guessed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

HIGHER, LOWER, NEUTRAL, UNKNOWN = 1, -1, 0, None

_NEUTRAL = frozenset({
    "n", "calls", "count", "support", "scenarios", "prompts", "clips", "items", "sample_rate", "threshold",
    "tp", "turns_heard", "audio_seconds", "duration_s", "temperature", "words", "reference_words", "concurrency",
    "target", "limit", "bins",
})
_SUMMARY = frozenset({"p50", "p90", "p95", "p99", "mean", "median", "min", "max", "std"})
_LOWER = re.compile(
    r"(^|_)(wer|cer|ece|nll|brier|errors?|errored|dropped|failed|failures?|rtf|latency|lag|ms|seconds|s|cpu|rss|"
    r"memory|mem|fp|fn|reask|unrouted|timeouts?|substitutions|deletions|insertions)($|_)|^false_|turns_to_route"
)
_HIGHER = re.compile(r"accuracy|precision|recall|(^|_)f1($|_)|coverage|escalation|agreement|x_realtime|throughput")
# Not metrics: what was run and how (compared as configuration, not scored).
_SKIP_TOP = frozenset({"config", "settings", "kind"})
_SAME_REL = 1e-9
# Speed and resource metrics: they break ties between results of equal quality, never outvote quality.
_SPEED = re.compile(r"rtf|seconds|(^|[._])ms($|[._])|_ms\b|latency|lag|cpu|rss|memory|x_realtime|throughput")


def direction(path: str) -> int | None:
    """+1 higher is better, -1 lower is better, 0 neutral, None unknown (see the module docstring)."""
    segments = path.split(".")
    last = segments[-1].lower()
    if last in _NEUTRAL:
        return NEUTRAL
    for segment in reversed(segments):
        name = segment.lower()
        if name in _SUMMARY:
            continue  # a summary statistic: decided by what it summarizes
        if name.startswith("false_") or _LOWER.search(name):
            return LOWER
        if _HIGHER.search(name):
            return HIGHER
    return UNKNOWN


def flatten(result: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """``(dotted path, value)`` for every numeric leaf outside lists and the top-level config."""
    for key, value in result.items():
        if not prefix and key in _SKIP_TOP:
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            yield from flatten(value, path)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if not (isinstance(value, float) and math.isnan(value)):
                yield path, float(value)


@dataclass(frozen=True)
class Difference:
    path: str
    a: float | None
    b: float | None
    direction: int | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def relative(self) -> float | None:
        if self.delta is None or not self.a:
            return None
        return self.delta / abs(self.a)

    @property
    def verdict(self) -> str:
        """``better``/``worse`` (B relative to A), ``same``, ``changed`` (no direction), ``only A``/``only B``."""
        if self.a is None:
            return "only B"
        if self.b is None:
            return "only A"
        if abs(self.b - self.a) <= _SAME_REL * max(1.0, abs(self.a)):
            return "same"
        if not self.direction:
            return "changed"
        return "better" if (self.b - self.a) * self.direction > 0 else "worse"


def configuration(result: Mapping[str, Any]) -> dict[str, Any]:
    """What a run was configured with: ``config`` and ``settings`` entries, and top-level strings."""
    out: dict[str, Any] = {k: v for k, v in result.items() if isinstance(v, str) and k != "kind"}
    for key in ("config", "settings"):
        block = result.get(key)
        if isinstance(block, Mapping):
            out.update(block)
    return out


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Side-by-side comparison of result B against baseline A (JSON-ready)."""
    if a.get("kind") and b.get("kind") and a["kind"] != b["kind"]:
        raise ValueError(f"cannot compare a {a['kind']!r} result with a {b['kind']!r} result")
    fa, fb = dict(flatten(a)), dict(flatten(b))
    paths = list(fa) + [p for p in fb if p not in fa]
    diffs = [Difference(p, fa.get(p), fb.get(p), direction(p)) for p in paths]
    verdicts = [d.verdict for d in diffs]
    better, worse = verdicts.count("better"), verdicts.count("worse")
    # Quality decides; speed and resources only break a tie (a faster model that is wrong more is not better).
    quality = [d.verdict for d in diffs if not _SPEED.search(d.path)]
    speed = [d.verdict for d in diffs if _SPEED.search(d.path)]
    config_a, config_b = configuration(a), configuration(b)
    config_changes = {
        k: [config_a.get(k), config_b.get(k)]
        for k in sorted(set(config_a) | set(config_b))
        if config_a.get(k) != config_b.get(k)
    }
    overall = "tie"
    for group in (quality, speed):
        if group.count("better") != group.count("worse"):
            overall = "B" if group.count("better") > group.count("worse") else "A"
            break
    return {
        "kind": "compare",
        "of": a.get("kind") or b.get("kind"),
        "rows": [
            {"metric": d.path, "a": d.a, "b": d.b, "delta": d.delta, "relative": d.relative,
             "direction": {1: "higher", -1: "lower", 0: "neutral", None: "?"}[d.direction], "verdict": d.verdict}
            for d in diffs
        ],
        "summary": {"better": better, "worse": worse, "same": verdicts.count("same"),
                    "quality_better": quality.count("better"), "quality_worse": quality.count("worse"),
                    "changed": verdicts.count("changed"), "only_a": verdicts.count("only A"),
                    "only_b": verdicts.count("only B"), "overall": overall},
        "config_changes": config_changes,
    }


def format_compare(result: Mapping[str, Any], name_a: str = "A", name_b: str = "B", show_same: bool = False) -> str:
    """A side-by-side table for the terminal; unchanged metrics are hidden unless ``show_same``."""

    def num(x: float | None) -> str:
        if x is None:
            return "–"
        return f"{x:.4g}"

    rows = [r for r in result["rows"] if show_same or r["verdict"] != "same"]
    width = max([len(r["metric"]) for r in rows] + [6])
    lines = [f"{'metric':{width}}  {name_a[:12]:>12}  {name_b[:12]:>12}  {'delta':>10}  {'rel':>7}  verdict"]
    for r in rows:
        rel = "" if r["relative"] is None else f"{100 * r['relative']:+.1f}%"
        mark = {"better": "✓ better", "worse": "✗ worse"}.get(r["verdict"], r["verdict"])
        lines.append(f"{r['metric']:{width}}  {num(r['a']):>12}  {num(r['b']):>12}  {num(r['delta']):>10}  "
                     f"{rel:>7}  {mark}")
    s = result["summary"]
    who = {"A": f"{name_a} (A) is better", "B": f"{name_b} (B) is better", "tie": "neither is better overall"}
    lines.append(f"\n{s['better']} better, {s['worse']} worse ({s['quality_better']} / {s['quality_worse']} of them "
                 f"quality), {s['changed']} changed without a direction, {s['same']} the same: {who[s['overall']]}"
                 " (quality decides; speed breaks a tie)")
    for key, (va, vb) in result["config_changes"].items():
        lines.append(f"config {key}: {va!r} → {vb!r}")
    return "\n".join(lines)


def regressions(
    baseline: Mapping[str, Any], current: Mapping[str, Any], tolerances: Mapping[str, float], default: float = 0.0,
) -> list[str]:
    """Metrics where ``current`` is worse than ``baseline`` by more than an absolute tolerance.

    ``tolerances`` maps a regular expression over metric paths to the allowed
    absolute worsening (the first matching pattern applies). Improvements never
    count; a metric missing from ``current`` does. Used by tests/test_baselines.py.
    """
    problems = []
    for row in compare(baseline, current)["rows"]:
        if row["verdict"] == "only A":
            problems.append(f"{row['metric']}: missing from the current result")
            continue
        if row["verdict"] != "worse":
            continue
        allowed = next((tol for pattern, tol in tolerances.items() if re.search(pattern, row["metric"])), default)
        if abs(row["delta"]) > allowed:
            problems.append(f"{row['metric']}: {row['a']:.4g} → {row['b']:.4g} (allowed ±{allowed:g})")
    return problems
