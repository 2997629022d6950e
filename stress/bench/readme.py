"""The README's performance section, generated from a campaign's JSON (no re-run).

``iommu-stress bench --campaign --from benchmarks/campaign.json --write-readme README.md``
replaces what lies between ``<!-- campaign-table -->`` and
``<!-- /campaign-table -->`` with :func:`campaign_markdown` of the JSON.
The block is a function of the JSON alone, so writing it twice changes
nothing, and nothing outside the markers is touched.
"""

from __future__ import annotations

import re

from .tables import figure_tables, footnotes, throughput_rows

__all__ = ["TAG", "campaign_markdown", "replace_block", "write_readme"]

TAG = "campaign-table"


def _cell(text):
    return str(text).replace("|", "\\|")


def _table(headers, rows):
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return lines


def campaign_markdown(data):
    """The section's lines (markdown) for a campaign's JSON."""
    m = data["machine"]
    commit = (m.get("git_commit") or "unknown")[:12] + (" with local changes" if m.get("git_dirty") else "")
    lines = [
        f"Measured by `{data['command']}` on {m['cpu_count']} CPUs ({data['workers']} workers), "
        f"Python {m['python']}, commit {commit}, {data['started'][:10]}: {len(data['jobs'])} jobs "
        f"in {data['searches']} searches, {_duration(data['elapsed_s'])}.",
        "",
    ]
    for title, headers, rows in figure_tables(data):
        lines += [f"**{title[0].upper() + title[1:]}**", ""] + _table(headers, rows) + [""]
    for note in footnotes(data):
        lines += [note, ""]
    lines += ["**Throughput** (measured alone, before the campaign)", ""]
    lines += _table(["figure", "value"], throughput_rows(data))
    return lines


def _duration(seconds):
    from ..soak.progress import duration_text

    return duration_text(seconds)


def replace_block(text, lines, tag=TAG):
    """``text`` with the block between the markers replaced; ValueError without the markers."""
    pattern = re.compile(rf"<!-- {re.escape(tag)} -->\n.*?<!-- /{re.escape(tag)} -->", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- {tag} --> ... <!-- /{tag} --> block")
    block = f"<!-- {tag} -->\n" + "\n".join(lines) + f"\n<!-- /{tag} -->"
    return pattern.sub(lambda _: block, text, count=1)


def write_readme(path, data):
    """Replace the block in the file ``path``; whether the file changed."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    new = replace_block(text, campaign_markdown(data))
    if new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    return new != text
