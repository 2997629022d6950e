"""Produce the README's tables: the bug zoo and the driver history.

    python benchmarks/readme_tables.py            # print both tables (markdown)
    python benchmarks/readme_tables.py --write    # also replace them in README.md

(a) zoo: for every single-defect mutant, measured by ``zoo_rates.py`` (the
hunt of tests/test_zoo.py: pct, the default workload, the test's checkers,
seeds 0-9, up to 6000 schedules): the kind found, how many seeds find it and
the median schedules they need, the budget tests/test_zoo.py gives it and
how many seeds find it within that budget, the median seconds per seed, and
the size of the shrunk report (operations, preemptions) of the first seed
that finds it.
(b) history: for vsi-v3, vsi-v3-gfp-or, vsi-mainline and vsi-fixed, every
distinct bug (signature) that ``hunt --all-kinds`` finds in a fixed budget
on the default hardware (RK3588), each described by its own report
(signature, message) and the hardware facts its verdict rests on; and what
vsi-mainline adds on a TLB that outlives its power domain.

With ``--write`` the reports behind both tables are written too, shrunk, as
``hunt`` writes them (JSON and text), into ``docs/reports/zoo`` and
``docs/reports/history`` (the old ones are removed first), and each table
row links its text report.

Seconds are wall-clock figures of this machine; everything else is
deterministic.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from stress import explore  # noqa: E402
from stress.report import report_name, report_text, write_report  # noqa: E402
from stress.workload import driver_scenario, workload_config  # noqa: E402
from zoo_rates import MAX_BUDGET, SEEDS, zoo_plan  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORTS = os.path.join("docs", "reports")
ZOO_MAX = MAX_BUDGET
HISTORY_BUDGET = 3000
#: (driver, hardware parameters beyond the default); a row set with parameters
#: lists only the signatures the driver's default run does not find
HISTORY = [
    ("vsi-v3", {}),
    ("vsi-v3-gfp-or", {}),
    ("vsi-mainline", {}),
    ("vsi-mainline", {"tlb_retention": ["disable", "clock-off", "power-off"]}),
    ("vsi-fixed", {}),
    ("rk-fixed", {}),
]
#: the history report the README shows in full (its Reports section)
EXCERPT = ("vsi-v3", "data-race")

def _cell(text):
    return text.replace("|", "\\|")


def shows(report):
    """What the report shows, from the report itself: its message, where the
    splat names no place of its own (the signature does)."""
    return report["violation"]["message"].splitlines()[0]


def rests_on(report):
    """The hardware facts the verdict rests on (``violation.assumptions``), or -."""
    return "; ".join(report["violation"].get("assumptions") or ()) or "-"


def _ops(report):
    programs = report["target"].get("workload", {}).get("programs") or []
    return sum(len(p) for p in programs)


def _link(report, sub, out):
    """Write ``report`` under ``out/sub`` (when ``out``); a markdown link to its text."""
    if out is None or report is None:
        return "-"
    path = write_report(report, os.path.join(out, sub))
    rel = path[: -len(".json")] + ".txt"
    return f"[{os.path.basename(rel)}]({rel})"


def zoo_rows(out=None):
    """One row per B-bug: benchmarks/zoo_rates.py's measurement (seeds 0-9, the
    test's checkers), the budget tests/test_zoo.py gives it, and the shrunk
    report of the first seed that finds it."""
    from zoo_rates import measure_pct

    from model.drivers.mutants import ZOO

    rows = []
    for bug, name, _cls, _expected in ZOO:
        m = measure_pct([bug], SEEDS, ZOO_MAX)[0]
        hits = [(seed, n, k) for seed, n, k in zip(m["seeds"], m["needed"], m["first_kinds"]) if n is not None]
        kinds = [k for _, _, k in hits]
        kind = max(set(kinds), key=kinds.count) if kinds else "not found"
        shrunk = None
        if hits:
            seed, n, _ = hits[0]
            r = explore(driver_scenario(name, workload_config()), strategy="pct", schedules=n, seed=seed, shrink=True, checkers=zoo_plan()[bug][1])
            shrunk = (seed, r.violations[0].report) if r.found else None
        rows.append(
            (
                bug,
                name,
                kind,
                m["checkers"],
                f"{m['found']}/{len(SEEDS)}",
                m["median"] if m["median"] is not None else "-",
                m["test_budget"],
                f"{m['within_test_budget']}/{len(SEEDS)}",
                f"{m['median_s']:.2f}",
                f"{_ops(shrunk[1])} ops, {shrunk[1]['preemptions']} preemptions (seed {shrunk[0]})" if shrunk else "-",
                _link(shrunk[1] if shrunk else None, "zoo", out),
            )
        )
    head = (
        f"| id | mutant | kind found | checkers | seeds finding it (≤{ZOO_MAX}) | median schedules "
        "| test budget | seeds finding it within the test budget | median s | shrunk report | report |"
    )
    return [head, "|---|---|---|---|---|---|---|---|---|---|---|"] + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def history_rows(out=None, excerpt=None):
    """Every distinct bug (signature) per driver, each described by its own
    report: the signature, the message, and the hardware facts it rests on;
    with ``out``, each report is written and linked."""
    lines = [
        "| driver | bug (signature; `hunt --all-kinds`, pct, seed 0, %d schedules) | what the report shows | rests on | report |" % HISTORY_BUDGET,
        "|---|---|---|---|---|",
    ]
    seen = {}
    for name, hardware in HISTORY:
        r = explore(driver_scenario(name, workload_config(**hardware)), strategy="pct", schedules=HISTORY_BUDGET, seed=0, keep_going=True, shrink=out is not None)
        label = name + "".join(f" (`--{k.replace('_', '-')} {','.join(v)}`)" for k, v in hardware.items())
        if not r.found:
            lines.append(f"| {label} | none | clean over {r.schedules} schedules | - | - |")
            continue
        for v in sorted(r.violations, key=lambda v: v.report["signature"]):
            rep = v.report
            if hardware and rep["signature"] in seen.get(name, ()):
                continue  # the default hardware shows it already
            if not hardware:
                seen.setdefault(name, set()).add(rep["signature"])
            if excerpt is not None and not excerpt and (name, v.kind) == EXCERPT:
                excerpt.append(report_text(rep, path=os.path.join(REPORTS, "history", report_name(rep) + ".json")))
            lines.append(
                f"| {label} | `{_cell(rep['signature'])}` | {_cell(shows(rep))} | {_cell(rests_on(rep))} | {_link(rep, 'history', out)} |"
            )
    return lines


def _replace(text, tag, lines):
    block = f"<!-- {tag} -->\n" + "\n".join(lines) + f"\n<!-- /{tag} -->"
    pattern = re.compile(rf"<!-- {tag} -->.*?<!-- /{tag} -->", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no <!-- {tag} --> block")
    return pattern.sub(lambda _: block, text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="replace the tables in README.md and the reports in docs/reports")
    args = ap.parse_args()
    os.chdir(ROOT)  # reports name each other relative to the repository
    out = REPORTS if args.write else None
    if out is not None:
        for sub in ("zoo", "history"):
            shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    zoo = zoo_rows(out)
    print("\n".join(zoo), "\n")
    excerpt = []
    history = history_rows(out, excerpt)
    print("\n".join(history))
    if args.write:
        path = os.path.join(ROOT, "README.md")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = _replace(_replace(text, "zoo-table", zoo), "history-table", history)
        if excerpt:
            text = _replace(text, "report-excerpt", ["```text", excerpt[0].rstrip("\n"), "```"])
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
