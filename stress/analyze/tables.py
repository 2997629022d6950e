"""The analysis as one JSON-ready dict (:func:`collect`) and as rich tables (:func:`render`).

Several runs: most tables get a ``run`` column; the counts that are compared
(operations, overlaps, lock edges, functions, time to first find) get one
column per run, side by side.
"""

from __future__ import annotations

import os
import re

from rich.markup import escape
from rich.table import Table

from ..cliargs import console as plain_console
from ..cliargs import print_rich
from .load import bucket_seconds

__all__ = ["collect", "render", "pivot", "sections"]


def pivot(rows, keys, value, runs, default=0):
    """``rows`` (dicts with ``run``) -> one dict per distinct ``keys`` tuple with a column per run."""
    out = {}
    for r in rows:
        k = tuple(r[c] for c in keys)
        d = out.setdefault(k, {**{c: r[c] for c in keys}, **{run: default for run in runs}})
        d[r["run"]] = r[value]
    return list(out.values())


def collect(analysis, bucket_s=None):
    """Everything ``analyze`` shows, as one dict (the ``--json`` object)."""
    a = analysis
    labels = [r.label for r in a.runs]
    summary = {s["run"]: s for s in a.query("summary")}
    elapsed = max((s["elapsed_s"] or 0 for s in summary.values()), default=0)
    bucket = bucket_s or bucket_seconds(elapsed)
    runs = []
    for r in a.runs:
        s = summary.get(r.label, {})
        runs.append(
            {
                "run": r.label,
                "path": r.arg,
                "log": r.log,
                "lines": r.lines,
                "events": r.events,
                "bad_lines": r.bad_lines,
                **{k: v for k, v in s.items() if k != "run"},
            }
        )
    sigs = a.query("signatures")
    for s in sigs:
        run = a.run(s["run"])
        if s["report"]:
            s["report_path"] = os.path.normpath(os.path.join(run.base, s["report"]))
    first_find = []
    by_sig = {}
    for s in sigs:
        d = by_sig.setdefault(s["signature"], {"signature": s["signature"], "kind": s["kind"], "runs": {}})
        d["runs"][s["run"]] = {"seconds": s["first_elapsed_s"], "schedules": s["schedules_done"], "schedule": s["first_schedule"]}
    first_find = sorted(by_sig.values(), key=lambda d: (-len(d["runs"]), d["signature"]))
    return {
        "runs": runs,
        "labels": labels,
        "signatures": sigs,
        "first_find": first_find,
        "discovery": a.query("discovery"),
        "throughput": {"bucket_s": bucket, "rows": a.query("throughput", bucket_s=bucket)},
        "workers": a.query("workers"),
        "lost": a.query("lost"),
        "sessions": a.query("sessions"),
        "coverage": {
            "recorded": a.query("coverage_recorded"),
            "ops": a.query("ops"),
            "overlaps": a.query("overlaps"),
            "lock_edges": a.query("lock_edges"),
            "functions": a.query("functions"),
            "growth": a.query("coverage_growth"),
            "interleavings": a.query("interleavings"),
            "interleavings_growth": a.query("interleavings_growth"),
        },
    }


_ISO = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?(\+00:00|Z)?$")


def _fmt(v):
    if isinstance(v, str) and _ISO.match(v):
        m = _ISO.match(v)
        return f"{m[1]} {m[2]}"
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return str(v)


def sections(data):
    """``[(title, columns, rows, note)]``: the tables, in order (shared by the terminal and HTML)."""
    labels = data["labels"]
    multi = len(labels) > 1
    cov = data["coverage"]

    def with_run(cols):
        return (["run"] if multi else []) + cols

    out = []
    fields = ["path", "target", "kind", "schedules", "points", "elapsed_s", "signatures", "batches", "sessions", "workers_seen", "workers_lost", "finished", "events", "bad_lines"]
    out.append(
        (
            "Runs",
            ["field", *labels],
            [{"field": f, **{r["run"]: r.get(f) for r in data["runs"]}} for f in fields],
            "elapsed_s: running seconds (gaps between sessions not counted); bad_lines: lines that are not events (torn, corrupt), skipped",
        )
    )
    out.append(
        (
            "Distinct signatures",
            with_run(["kind", "signature", "first_time", "first_schedule", "first_worker", "count", "report"]),
            data["signatures"],
            "first_*: where it was first seen; count: every occurrence; report: relative to the run's directory",
        )
    )
    if multi:
        rows = []
        for f in data["first_find"]:
            row = {"signature": f["signature"], "kind": f["kind"]}
            for lab in labels:
                x = f["runs"].get(lab)
                row[lab] = f"{x['seconds']:.1f} s / {x['schedules']:,} sch" if x else "never"
            rows.append(row)
        out.append(("Time to first find", ["kind", "signature", *labels], rows, "running seconds / schedules done when first found"))
    disc = data["discovery"]
    steps = [
        r
        for i, r in enumerate(disc)
        if i == 0 or i == len(disc) - 1 or r["run"] != disc[i - 1]["run"] or r["run"] != disc[i + 1]["run"] or r["signatures"] != disc[i - 1]["signatures"]
    ]
    out.append(
        (
            "Discovery curve",
            with_run(["schedules", "elapsed_s", "signatures"]),
            steps,
            "distinct signatures when each one was first found, and at the start and end of each run (every batch: --json, the plots)",
        )
    )
    tp = data["throughput"]
    out.append((f"Throughput per {tp['bucket_s']} s", with_run(["t_s", "batches", "schedules", "points", "schedules_per_s", "points_per_s"]), tp["rows"], "t_s: start of the bucket in running seconds"))
    out.append(("Workers", with_run(["worker", "host", "batches", "schedules", "points", "busy_s", "schedules_per_s", "points_per_s"]), data["workers"], "schedules_per_s: per busy second of that worker"))
    out.append(("Sessions", with_run(["session", "time", "resumed", "workers", "at_elapsed_s", "at_schedules"]), data["sessions"], None))
    out.append(("Lost workers", with_run(["time", "elapsed_s", "batch", "range", "error", "alive"]), data["lost"], None))
    out.append(("Coverage recorded", with_run(["ops", "overlaps", "lock_edges", "functions", "driver_functions", "interleavings"]), cov["recorded"], "fields the log carries (older logs and hunt logs lack some)"))
    out.append(
        (
            "Interleaving coverage",
            with_run(["kind", "features", "per_batch"]),
            cov["interleavings"],
            "features: distinct interleaving features of the kind the soak reached (lock-order edges, alias pairs, "
            "overlapping operations, driver functions); per_batch: the mean a batch reached",
        )
    )
    out.append(("Operations run", ["op", *labels], pivot(cov["ops"], ["op"], "count", labels), "sum of batch.ops"))
    out.append(("Overlapping operation pairs", ["op_a", "op_b", *labels], pivot(cov["overlaps"], ["op_a", "op_b"], "count", labels), "pairs of kinds that overlapped in time on different CPUs (sum of batch.overlaps)"))
    out.append(("Lock-order edges", ["lock_a", "lock_b", *labels], pivot(cov["lock_edges"], ["lock_a", "lock_b"], "batches", labels), "batches that saw the edge lock_a -> lock_b"))
    fns = pivot(cov["functions"], ["function"], "calls", labels)
    never = [f for f in fns if not any(f[lab] for lab in labels)]
    out.append(("Model functions reached", ["function", *labels], [f for f in fns if any(f[lab] for lab in labels)], "calls (sum of batch.functions)"))
    out.append(("Model functions never reached", ["function"], never, "in soak_start.driver_functions, never called"))
    return out


def render(data, console=None):
    """Print every section as a rich table (a pipe or a CI log: no cell folded, no trailing space)."""
    console = console or plain_console()
    for r in data["runs"]:
        if r["bad_lines"]:
            console.print(f"[yellow]{escape(str(r['run']))}: {r['bad_lines']} line(s) skipped (not events: torn or corrupt)[/]")
    for title, cols, rows, note in sections(data):
        t = Table(title=title, title_justify="left", caption=note, caption_justify="left", show_lines=False)
        for c in cols:
            t.add_column(c, overflow="fold", ratio=3 if c in ("signature", "report") else None, justify="right" if rows and isinstance(rows[0].get(c), (int, float)) and not isinstance(rows[0].get(c), bool) else "left")
        for row in rows:
            t.add_row(*(_fmt(row.get(c)) for c in cols))
        if not rows:
            t.add_row(*(["(none)"] + [""] * (len(cols) - 1)))
        print_rich(t, con=console)
