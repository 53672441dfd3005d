"""Render a report (a list of blocks) as Markdown and as one self-contained HTML file.

Blocks: ``("h1"|"h2"|"h3", text)``, ``("p", text)`` (Markdown ``**bold**`` and `` `code` `` allowed),
``("table", DataFrame, index_name)``, ``("img", path, caption)``, ``("details", summary, [blocks])``.
The HTML embeds every image as base64, so the file can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path

import pandas as pd
from jinja2 import Environment

from medseg.report.tables import markdown_table

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { overflow-wrap: anywhere; } td:first-child { overflow-wrap: anywhere; min-width: 8em; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.3em 0; }
figure { margin: 0.5em 0 1.5em; } figcaption { font-size: 0.85em; color: #555; }
code { background: #f5f5f5; padding: 0 3px; } details { margin: 0.5em 0 1em; }
.scroll { overflow-x: auto; max-width: 100%; } /* a wide leaderboard scrolls inside the page, not the page */
</style></head>
<body>
{{ body }}
</body></html>
"""


def _inline(text: str) -> str:
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
    t = re.sub(r"`(.+?)`", r"<code>\1</code>", t)
    return re.sub(r"\[(.+?)\]\((.+?)\)", r'<a href="\2">\1</a>', t)


def _img_data(path: Path) -> str:
    mime = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "svg": "image/svg+xml"}.get(
        path.suffix.lower().lstrip("."), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _flat(df: pd.DataFrame, index_name: str | None) -> pd.DataFrame:
    """The index as the first column(s), so the HTML has one header row (``to_html`` of a named index
    adds a second, nearly empty one)."""
    if isinstance(df.index, pd.MultiIndex):
        return df.reset_index()
    name = df.index.name if index_name is None else index_name
    flat = df.reset_index(drop=False)
    return flat.set_axis([name or "", *[str(c) for c in df.columns]], axis=1)


def blocks_to_html(blocks: list) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{_inline(b[1])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_inline(b[1])}</p>")
        elif kind == "table":
            flat = _flat(b[1], b[2] if len(b) > 2 else None)
            out.append('<div class="scroll">' + flat.to_html(float_format=lambda v: f"{v:.4f}", na_rep="–", border=0,
                                                             escape=True, index=False) + "</div>")
        elif kind == "img":
            out.append(f'<figure><img src="{_img_data(Path(b[1]))}" alt="{html.escape(b[2])}">'
                       f"<figcaption>{_inline(b[2])}</figcaption></figure>")
        elif kind == "details":
            out.append(f"<details><summary>{_inline(b[1])}</summary>{blocks_to_html(b[2])}</details>")
        else:
            raise ValueError(f"unknown report block {kind!r}")
    return "\n".join(out)


def render_html(title: str, blocks: list) -> str:
    """A self-contained HTML page (inline CSS, base64 images)."""
    return Environment(autoescape=False).from_string(_TEMPLATE).render(title=html.escape(title),
                                                                       body=blocks_to_html(blocks))


def render_markdown(blocks: list, base_dir: str | Path) -> str:
    """Markdown with images linked relative to ``base_dir`` (where report.md is written)."""
    lines = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + b[1], ""]
        elif kind == "p":
            lines += [b[1], ""]
        elif kind == "table":
            lines += [markdown_table(b[1], b[2] if len(b) > 2 else ""), ""]
        elif kind == "img":
            lines += [f"![{b[2]}]({Path(os.path.relpath(b[1], base_dir)).as_posix()})", ""]
        elif kind == "details":
            lines += [f"**{b[1]}**", "", render_markdown(b[2], base_dir)]
    return "\n".join(lines)
