"""The campaign's figures as tables: the same rows for the terminal (rich) and the README (markdown).

:func:`figure_tables` turns a campaign's JSON (:mod:`stress.bench.campaign`)
into one table per figure, bugs down and strategies across:

* seeds that found the bug within the budget (``7/10``);
* schedules to the first find, median / 90th percentile (``251 / 1363``);
* seconds to the first find, median / 90th percentile.

A percentile that falls on a seed that missed reads ``>3000`` (beyond the
budget: the seeds that missed count, see :mod:`stress.bench.stats`); a cell
with a find the engine could not place carries ``*``, and its percentiles
read ``?`` where the unplaced finds leave them unknown; a cell whose
searches failed says ``error``.  Nothing here measures or rounds a figure
differently from the JSON but for display.
"""

from __future__ import annotations

__all__ = ["figure_tables", "throughput_rows", "rich_tables", "fmt_seconds", "fmt_count"]

#: throughput figures shown, in order: (key, label, format)
THROUGHPUT = (
    ("default_workload_schedules_per_s", "default workload (hunt --driver vsi-fixed, pct): schedules/s", "{:,.0f}"),
    ("default_workload_schedules_per_s_no_images", "the same, every schedule booting (no boot images)", "{:,.0f}"),
    ("default_workload_points_per_s", "default workload: points/s", "{:,.0f}"),
    ("default_workload_points_per_schedule", "default workload: points per schedule", "{:,.0f}"),
    ("points_per_s_pct", "bare engine (lock loop, pct): points/s", "{:,.0f}"),
    ("raw_handoffs_per_s", "bare Trio handoffs/s", "{:,.0f}"),
    ("model_cost_per_point", "model cost per point (bare engine's points/s / driver mix's)", "x{:.1f}"),
    ("model_cost_per_point_after_boot", "model cost per point, boot and teardown left out", "x{:.1f}"),
    ("boot_ms_per_schedule", "boot (from its image) and teardown per schedule (ms)", "{:.2f}"),
    ("boot_ms_per_schedule_no_images", "boot and teardown per schedule, booting each time (ms)", "{:.2f}"),
    # counted under valgrind (stress.bench.instructions), when the machine has it
    ("default_workload_instructions_per_schedule", "default workload: instructions per schedule (valgrind)", "{:,.0f}"),
    ("bare_engine_instructions_per_point", "bare engine: instructions per point (valgrind)", "{:,.0f}"),
    ("workload_instructions_per_point", "driver mix: instructions per point (valgrind)", "{:,.0f}"),
    ("model_cost_per_point_instructions", "model cost per point in instructions (valgrind)", "x{:.2f}"),
    ("model_cost_per_point_after_boot_instructions", "the same, boot and teardown left out (valgrind)", "x{:.2f}"),
)


def fmt_count(x):
    if x is None:
        return "-"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def fmt_seconds(x):
    if x is None:
        return "-"
    if x < 10:
        return f"{x:.2f}"
    if x < 100:
        return f"{x:.1f}"
    return f"{x:,.0f}"


def _pair(s, median, p90, fmt):
    if s["errors"] and s["errors"] == s["seeds"]:
        return "error"
    if s["found"] == 0:
        return "-"
    # beyond the budget; unknown when seeds the engine could not place may lie on either side
    beyond = "?" if s["inexact"] else (f">{s['budget']:,}" if fmt is fmt_count else "miss")
    a = fmt(s[median]) if s[median] is not None else beyond
    b = fmt(s[p90]) if s[p90] is not None else beyond
    return f"{a} / {b}" + ("*" if s["inexact"] else "")


def _found(s):
    if s["errors"] and s["errors"] == s["seeds"]:
        return "error"
    text = f"{s['found']}/{s['seeds']}"
    if s["errors"]:
        text += f" ({s['errors']} errors)"
    return text


def figure_tables(data):
    """``[(title, headers, rows)]``: one table per figure, a row per bug."""
    arms = data["arms"]
    cells = {(s["bug"], s["arm"]): s for s in data["summary"]}
    budgets = data["budgets"]
    seeds = len(data["seeds"])
    heads = [a["heading"] for a in arms]
    per_arm = ", ".join(f"{a['name']} {budgets[a['name']]:,}" for a in arms)
    figures = (
        (f"seeds finding the bug (of {seeds}; schedules per seed: {per_arm})", lambda s: _found(s)),
        ("schedules to the first find: median / 90th percentile (>N: beyond the budget)", lambda s: _pair(s, "median_schedules", "p90_schedules", fmt_count)),
        ("seconds to the first find: median / 90th percentile (miss: beyond the budget)", lambda s: _pair(s, "median_s", "p90_s", fmt_seconds)),
    )
    tables = []
    for title, cell in figures:
        rows = []
        for b in data["bugs"]:
            rows.append([b["id"], ", ".join(b["kinds"]), *[cell(cells[(b["id"], a["name"])]) for a in arms]])
        tables.append((title, ["bug", "kinds", *heads], rows))
    return tables


def throughput_rows(data):
    t = data["throughput"]
    return [(label, fmt.format(t[key])) for key, label, fmt in THROUGHPUT if t.get(key) is not None]


def footnotes(data):
    """What a reader needs to read the cells (only what applies)."""
    notes = []
    if any(s["inexact"] for s in data["summary"]):
        notes.append(
            "* found by Hypothesis in a later round of its search (another kind first): the engine does not say at which "
            "schedule, so that seed is left out of the percentiles (? where that leaves them unknown)"
        )
    if any(a["strategy"] == "exhaustive" for a in data["arms"]):
        notes.append(
            "exhaustive (bound 2) walks the schedules of the seed's first program only: a program without the bug's "
            "operations never shows it"
        )
    return notes


def rich_tables(data):
    """rich Tables: the three figures, then the throughput."""
    from rich.table import Table

    out = []
    for title, headers, rows in figure_tables(data):
        t = Table(title=title, title_justify="left")
        for i, h in enumerate(headers):
            t.add_column(h, justify="left" if i < 2 else "right", no_wrap=True)
        for r in rows:
            t.add_row(*r)
        out.append(t)
    t = Table(title="throughput (measured alone, before the campaign)", title_justify="left")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for label, value in throughput_rows(data):
        t.add_row(label, value)
    out.append(t)
    return out
