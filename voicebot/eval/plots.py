"""Evaluation plots as PNG bytes (matplotlib, Agg backend: no display, no GUI toolkit).

Every function takes plain lists (what the JSON results hold) and returns PNG
bytes for ``voicebot.eval.report.Figure``; none of them touches global pyplot
state, so they are safe to call from tests and from several reports in one run.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: reports are rendered headless

from matplotlib.figure import Figure as MplFigure  # noqa: E402 - after choosing the backend

_DPI = 110


def _png(fig: MplFigure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def confusion_matrix_png(labels: Sequence[str], matrix: Sequence[Sequence[int]], title: str = "") -> bytes:
    """Rows are the true labels, columns the predicted ones; cells show counts, colour shows row share."""
    n = len(labels)
    size = max(4.0, 0.5 * n + 2.0)
    fig = MplFigure(figsize=(size, size * 0.9))
    ax = fig.subplots()
    totals = [max(1, sum(row)) for row in matrix]
    shares = [[c / totals[i] for c in row] for i, row in enumerate(matrix)]
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels=list(labels), rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=list(labels), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("expected")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            if count:
                colour = "white" if shares[i][j] > 0.6 else "black"
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color=colour)
    if title:
        ax.set_title(title)
    return _png(fig)


def reliability_png(bins: Sequence[Mapping[str, float]], ece: float | None = None, title: str = "") -> bytes:
    """Reliability diagram: mean confidence vs accuracy per confidence bin (bins: confidence, accuracy, count)."""
    fig = MplFigure(figsize=(4.8, 4.4))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    xs = [b["confidence"] for b in bins if b.get("count")]
    ys = [b["accuracy"] for b in bins if b.get("count")]
    counts = [b["count"] for b in bins if b.get("count")]
    if xs:
        biggest = max(counts)
        sizes = [20 + 180 * c / biggest for c in counts]
        ax.plot(xs, ys, color="#2b6cb0", linewidth=1.2)
        ax.scatter(xs, ys, s=sizes, color="#2b6cb0", zorder=3, label="bins (size = count)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize=8)
    heading = title or "reliability"
    if ece is not None:
        heading += f" (ECE {ece:.3f})"
    ax.set_title(heading)
    return _png(fig)


def coverage_png(
    coverage: Sequence[float],
    accuracy: Sequence[float],
    operating_point: tuple[float, float] | None = None,
    title: str = "",
) -> bytes:
    """Selective accuracy vs coverage as the confidence threshold moves; the chosen operating point marked."""
    fig = MplFigure(figsize=(5.2, 4.2))
    ax = fig.subplots()
    ax.plot(list(coverage), list(accuracy), color="#2b6cb0", linewidth=1.5)
    if operating_point is not None:
        cx, cy = operating_point
        ax.scatter([cx], [cy], color="#c53030", zorder=3, s=50, label=f"operating point ({cx:.2f}, {cy:.2f})")
        ax.legend(loc="lower left", fontsize=8)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("coverage (share of turns acted on)")
    ax.set_ylabel("selective accuracy")
    ax.grid(alpha=0.3)
    ax.set_title(title or "coverage vs selective accuracy")
    return _png(fig)


def scatter_png(
    xs: Sequence[float], ys: Sequence[float], xlabel: str, ylabel: str, title: str = "",
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> bytes:
    """A scatter plot (e.g. WER by clip length); ``series`` adds named point sets in other colours."""
    fig = MplFigure(figsize=(5.6, 4.0))
    ax = fig.subplots()
    if series:
        for name, (sx, sy) in series.items():
            ax.scatter(list(sx), list(sy), s=14, alpha=0.7, label=name)
        ax.legend(fontsize=8)
    else:
        ax.scatter(list(xs), list(ys), s=14, alpha=0.7, color="#2b6cb0")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return _png(fig)


def binned_bar_png(
    edges: Sequence[float], values: Sequence[float | None], counts: Sequence[int], xlabel: str, ylabel: str,
    title: str = "",
) -> bytes:
    """Bars over bins ``[edges[i], edges[i+1])`` labelled with their counts (e.g. WER by clip length)."""
    fig = MplFigure(figsize=(5.6, 3.8))
    ax = fig.subplots()
    labels = [f"{edges[i]:g}–{edges[i + 1]:g}" for i in range(len(edges) - 1)]
    heights = [v if v is not None else 0.0 for v in values]
    bars = ax.bar(labels, heights, color="#2b6cb0")
    for bar, n in zip(bars, counts, strict=False):
        ax.annotate(f"n={n}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return _png(fig)


def distributions_png(samples: Mapping[str, Sequence[float]], xlabel: str, title: str = "") -> bytes:
    """Box plots of several distributions side by side (e.g. latency stages), outliers shown."""
    names = [k for k, v in samples.items() if len(v)]
    fig = MplFigure(figsize=(max(4.5, 1.3 * len(names) + 2), 3.8))
    ax = fig.subplots()
    if names:
        ax.boxplot([list(samples[k]) for k in names], orientation="horizontal", tick_labels=names,
                   showmeans=True)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, axis="x")
    if title:
        ax.set_title(title)
    return _png(fig)


def lines_png(
    xs: Sequence[float], series: Mapping[str, Sequence[float | None]], xlabel: str, ylabel: str, title: str = "",
    logx: bool = False,
) -> bytes:
    """Several named lines over a shared x axis (e.g. latency percentiles vs concurrent calls)."""
    fig = MplFigure(figsize=(5.8, 4.0))
    ax = fig.subplots()
    for name, ys in series.items():
        pts = [(x, y) for x, y in zip(xs, ys, strict=False) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    if logx:
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(xs), labels=[f"{x:g}" for x in xs])  # 1, 4, 8 ... rather than 2^0, 2^2, 2^3
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _png(fig)
