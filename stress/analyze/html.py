"""One self-contained HTML page: inline CSS, the PNGs as base64 ``data:`` URIs, no network.

Report links are relative to the page's directory, so the page can sit anywhere.
"""

from __future__ import annotations

import base64
import html
import os

from .plots import FIGURES
from .tables import _fmt, sections

__all__ = ["page", "write_html"]

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; background: #fff; }
h1 { font-size: 1.6em; border-bottom: 2px solid #345; padding-bottom: .3em; }
h2 { font-size: 1.2em; margin-top: 2em; color: #345; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
th, td { border: 1px solid #bbb; padding: .25em .6em; vertical-align: top; }
th { background: #eef2f6; text-align: left; }
tr:nth-child(even) td { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.sig, td.mono { font-family: ui-monospace, Menlo, Consolas, monospace; }
p.note { color: #666; font-size: .85em; margin: .2em 0 1em; }
p.warn { color: #a40; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: .9em; }
.empty { color: #888; font-style: italic; }
"""

_MONO = {"signature", "report", "function", "op", "op_a", "op_b", "lock_a", "lock_b", "worker"}


def _cell(col, v, link=None):
    e = html.escape(_fmt(v))
    cls = "num" if isinstance(v, (int, float)) and not isinstance(v, bool) else ("sig" if col in _MONO else "")
    if link:
        e = f'<a href="{html.escape(link, quote=True)}">{e}</a>'
    return f'<td class="{cls}">{e}</td>' if cls else f"<td>{e}</td>"


def page(data, images, html_dir="."):
    """The page's text: ``data`` from :func:`~stress.analyze.tables.collect`, ``images`` ``{name: PNG bytes}``."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', "<title>iommu-stress analyze</title>", f"<style>{CSS}</style></head><body>"]
    out.append(f"<h1>iommu-stress analyze: {html.escape(', '.join(data['labels']) or '(no run)')}</h1>")
    for r in data["runs"]:
        if r["bad_lines"]:
            out.append(f'<p class="warn">{html.escape(r["run"])}: {r["bad_lines"]} line(s) skipped (not events: torn or corrupt)</p>')
    secs = sections(data)
    figs_after = {"Distinct signatures": ["discovery_schedules.png", "discovery_time.png"], "Workers": ["throughput.png"], "Lock-order edges": ["coverage.png"], "Interleaving coverage": ["interleavings.png"]}
    placed = set()
    for title, cols, rows, note in secs:
        out.append(f"<h2>{html.escape(title)}</h2>")
        if note:
            out.append(f'<p class="note">{html.escape(note)}</p>')
        if not rows:
            out.append('<p class="empty">(none)</p>')
        else:
            out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr></thead><tbody>")
            for row in rows:
                cells = []
                for c in cols:
                    link = None
                    if c == "report" and row.get("report_path"):
                        link = os.path.relpath(row["report_path"], html_dir).replace(os.sep, "/")
                    cells.append(_cell(c, row.get(c), link))
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table>")
        for name in figs_after.get(title, []):
            if name in images:
                out.append(_figure(name, images[name]))
                placed.add(name)
    for name, png in images.items():
        if name not in placed:
            out.append(_figure(name, png))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _figure(name, png):
    b64 = base64.b64encode(png).decode("ascii")
    title = html.escape(FIGURES.get(name, name))
    return f'<figure><img src="data:image/png;base64,{b64}" alt="{title}"><figcaption>{title} ({html.escape(name)})</figcaption></figure>'


def write_html(path, data, images):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    text = page(data, images, html_dir=d)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
