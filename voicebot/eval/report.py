"""Self-contained HTML evaluation reports: one file, no external assets.

A report is a title plus sections; a section holds blocks: key numbers, tables,
figures (PNG, inlined as base64 ``data:`` URIs so the file can be mailed or
attached to a CI run and still show its plots) and short paragraphs. This
module knows nothing about ASR or intents; ``voicebot.eval.renderers`` turns
each evaluation's JSON result into sections, and ``write_report`` is the
one-call hook every ``voicebot eval`` subcommand uses for ``--report DIR``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot.config import Settings


@dataclass(frozen=True)
class KeyNumbers:
    """Headline numbers, shown as large tiles: ``(label, value)`` pairs."""

    items: Sequence[tuple[str, Any]]


@dataclass(frozen=True)
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    title: str = ""


@dataclass(frozen=True)
class Figure:
    png: bytes
    title: str = ""
    caption: str = ""


@dataclass(frozen=True)
class Paragraph:
    text: str


Block = KeyNumbers | Table | Figure | Paragraph


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    title: str
    sections: list[Section] = field(default_factory=list)
    subtitle: str = ""
    generated: str = field(default_factory=lambda: _dt.datetime.now().isoformat(timespec="seconds"))


def format_value(value: Any) -> str:
    """How a number looks in a report: floats to 4 significant digits, None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 1000:
            return f"{value:.0f}"  # milliseconds and megabytes read better whole than as 2.302e+04
        return f"{value:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330;
padding:0 1rem;line-height:1.45}
h1{margin-bottom:.2rem}.sub{color:#5b6475;margin-top:0}
h2{border-bottom:2px solid #e3e7ef;padding-bottom:.2rem;margin-top:2.2rem}
.keys{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.key{background:#f4f6fa;border:1px solid #e3e7ef;border-radius:8px;padding:.6rem .9rem;min-width:8.5rem}
.key .v{font-size:1.45rem;font-weight:600}.key .l{font-size:.8rem;color:#5b6475}
table{border-collapse:collapse;margin:.8rem 0 1.4rem;font-size:.86rem}
th,td{border:1px solid #dde2ea;padding:.28rem .55rem;text-align:left;vertical-align:top}
th{background:#f4f6fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1rem 0 1.6rem}figure img{max-width:100%;border:1px solid #e3e7ef}
figcaption{font-size:.85rem;color:#5b6475}.foot{margin-top:3rem;font-size:.8rem;color:#7a8293}
"""


def _render_block(block: Block) -> str:
    if isinstance(block, KeyNumbers):
        tiles = "".join(
            f'<div class="key"><div class="v">{html.escape(format_value(v))}</div>'
            f'<div class="l">{html.escape(str(label))}</div></div>'
            for label, v in block.items
        )
        return f'<div class="keys">{tiles}</div>'
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in block.columns)
        body = []
        for row in block.rows:
            cells = []
            for value in row:
                numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
                css = ' class="num"' if numeric else ""
                cells.append(f"<td{css}>{html.escape(format_value(value))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        title = f"<h3>{html.escape(block.title)}</h3>" if block.title else ""
        return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode("ascii")
        alt = html.escape(block.title or block.caption or "plot")
        caption = " ".join(x for x in (block.title, block.caption) if x)
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">{cap}</figure>'
    if isinstance(block, Paragraph):
        return f"<p>{html.escape(block.text)}</p>"
    raise TypeError(f"not a report block: {type(block).__name__}")


def render_html(report: Report) -> str:
    """The whole report as one HTML document (inline CSS, inline images)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
    ]
    if report.subtitle:
        parts.append(f'<p class="sub">{html.escape(report.subtitle)}</p>')
    for section in report.sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        parts.extend(_render_block(b) for b in section.blocks)
        parts.append("</section>")
    parts.append(f'<p class="foot">generated {html.escape(report.generated)} by voicebot eval</p></body></html>')
    return "\n".join(parts)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "report"


def write_report(kind: str, result: dict[str, Any], settings: Settings, out_dir: Path | str) -> Path:
    """Render one evaluation result (``kind``: asr, intent, calls, tts, load) to ``out_dir/<kind>-<stamp>.html``.

    The result is the same dict the subcommand prints with ``--json``; the report
    adds the configuration and the ids and hashes of the models involved.
    """
    from voicebot.eval.renderers import build_report

    report = build_report(kind, result, settings)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out / f"{_slug(kind)}-{stamp}.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path
