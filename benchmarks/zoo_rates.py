"""Detection rates of the bug zoo: how many schedules each B-bug needs, per seed.

    python benchmarks/zoo_rates.py                      # every B-bug, seeds 0-9, PCT
    python benchmarks/zoo_rates.py --bugs B4 B5 --max 6000
    python benchmarks/zoo_rates.py --json rates.json    # also write the raw numbers
    python benchmarks/zoo_rates.py --route machine      # the Hypothesis-machine route

PCT route: the hunt ``tests/test_zoo.py`` runs (``hunt --driver``'s default
workload, ``stress.explore(..., strategy="pct", shrink=False)``, the test's
checkers) once per seed with the largest budget, ``--max`` schedules.  A PCT
search is a deterministic sequence of schedules per seed (schedule ``i``
does not depend on the budget), so the schedule at which the first
violation shows is the number of schedules that seed needs under *any*
budget; a seed counts as a find only if that first violation has the
mutant's expected kind (what the test asserts).  From those numbers: the
detection rate within each budget, the median, and a suggested test budget
(twice the worst seed's need, rounded up).

Machine route: ``strategies.machine.hunt_with_machine`` with the budget of
``tests/test_zoo_machine.py`` (``max_runs``: schedules per seed, a hard
limit), found or not per seed, and the schedules to the first find.

The budgets the tests use are read from the tests (``PLAN`` / ``BUDGET``),
so the table says whether each budget is still 10/10.  Seconds are wall
clock; every other number is deterministic for a given model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SEEDS = range(10)
MAX_BUDGET = 6000
BUDGETS = (50, 200, 1000, 3000)


def _zoo():
    from model.drivers.mutants import ZOO

    return {bid: (name, kind if isinstance(kind, tuple) else (kind,)) for bid, name, _cls, kind in ZOO}


def zoo_plan():
    """``{bug: (budget, checkers)}`` of tests/test_zoo.py (the PCT route)."""
    from tests.test_zoo import PLAN

    return PLAN


def schedules_needed(bug, seed, max_budget=MAX_BUDGET, checkers=None):
    """``(schedules or None, kind or None, seconds)``: the PCT hunt of ``bug`` under ``seed``.

    ``schedules`` is how many schedules the search ran up to and including
    the first violation when that violation has the expected kind; None when
    it found nothing within ``max_budget`` or found another kind first
    (``kind`` then says which).
    """
    from stress import explore
    from stress.workload import driver_scenario, workload_config

    name, kinds = _zoo()[bug]
    t0 = time.perf_counter()
    r = explore(driver_scenario(name, workload_config()), strategy="pct", schedules=max_budget, seed=seed, shrink=False, checkers=checkers)
    seconds = time.perf_counter() - t0
    if not r.found:
        return None, None, seconds
    v = r.violations[0]
    return (v.report["schedule"] + 1 if v.kind in kinds else None), v.kind, seconds


def suggest_budget(needed):
    """Twice the worst seed's need, rounded up to 1 or 2.5 or 5 x 10^n (None if a seed missed)."""
    if not needed or any(n is None for n in needed):
        return None
    want = 2 * max(needed)
    for exp in range(0, 8):
        for step in (1, 2.5, 5):
            b = int(step * 10**exp)
            if b >= want:
                return max(b, 10)
    return want


def within(needed, budget):
    return sum(1 for n in needed if n is not None and n <= budget)


def measure_pct(bugs, seeds, max_budget, progress=None):
    plan = zoo_plan()
    rows = []
    for bug in bugs:
        name, kinds = _zoo()[bug]
        budget, checkers = plan[bug]
        needed, found_kinds, seconds = [], [], []
        for seed in seeds:
            n, kind, s = schedules_needed(bug, seed, max_budget, checkers)
            needed.append(n)
            found_kinds.append(kind)
            seconds.append(s)
            if progress:
                progress(f"{bug} seed {seed}: {n if n is not None else 'miss'} ({kind}, {s:.1f} s)")
        hits = [n for n in needed if n is not None]
        rows.append(
            {
                "bug": bug,
                "name": name,
                "kinds": list(kinds),
                "checkers": "no race" if checkers is not None else "all",
                "seeds": list(seeds),
                "needed": needed,
                "first_kinds": found_kinds,
                "max_budget": max_budget,
                "found": len(hits),
                "median": statistics.median(hits) if hits else None,
                "worst": max(hits) if hits else None,
                "test_budget": budget,
                "within_test_budget": within(needed, budget),
                "suggested_budget": suggest_budget(needed),
                "median_s": statistics.median(seconds),
                "rates": {b: within(needed, b) for b in BUDGETS},
            }
        )
    return rows


def measure_machine(bugs, seeds, progress=None):
    from stress.workload import DEFAULT_WORKLOAD, driver_scenario
    from strategies.machine import hunt_with_machine
    from tests.test_zoo_machine import BUDGET, BUDGETS, checkers_for

    rows = []
    for bug in bugs:
        name, kinds = _zoo()[bug]
        budget = BUDGETS.get(bug, BUDGET)
        hits, seconds, needed = [], [], []
        for seed in seeds:
            t0 = time.perf_counter()
            stats = {}
            # max_runs: the schedule budget, a hard limit (shrink runs apart)
            found = hunt_with_machine(
                lambda cfg, _n=name: driver_scenario(_n, cfg), dict(DEFAULT_WORKLOAD), seed=seed,
                max_runs=budget, checkers=checkers_for(bug), stats=stats, polish=False, max_shrink_runs=1,
            )
            seconds.append(time.perf_counter() - t0)
            ok = found is not None and found.kind in kinds
            hits.append(ok)
            needed.append(stats["search_runs"] if ok else None)  # schedules to the first find
            if progress:
                progress(f"{bug} seed {seed}: {'found ' + found.kind if found else 'miss'} ({stats['search_runs']} schedules, {seconds[-1]:.1f} s)")
        rows.append({"bug": bug, "name": name, "seeds": list(seeds), "found_per_seed": hits, "found": sum(hits), "budget": budget,
                     "schedules_per_seed": needed, "median_s": statistics.median(seconds)})
    return rows


def pct_table(rows):
    n = len(rows[0]["seeds"]) if rows else 0
    head = "| id | checkers | found (≤%s) | median | worst | " % rows[0]["max_budget"] if rows else "| "
    head += " | ".join(f"≤{b}" for b in BUDGETS) + " | test budget | within it | suggested | median s |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["bug"], r["checkers"], f"{r['found']}/{n}", _num(r["median"]), _num(r["worst"])]
        cells += [f"{r['rates'][b]}/{n}" for b in BUDGETS]
        cells += [r["test_budget"], f"{r['within_test_budget']}/{n}", _num(r["suggested_budget"]), f"{r['median_s']:.2f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def machine_table(rows):
    lines = ["| id | found | schedules per seed (budget) | median to find | median s |", "|---|---|---|---|---|"]
    for r in rows:
        got = [n if n is not None else float("inf") for n in r["schedules_per_seed"]]
        med = statistics.median(got) if got else None
        lines.append(f"| {r['bug']} | {r['found']}/{len(r['seeds'])} | {r['budget']} | {_num(med) if med != float('inf') else '-'} | {r['median_s']:.2f} |")
    return lines


def _num(x):
    if x is None:
        return "-"
    return f"{x:g}" if isinstance(x, float) else str(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bugs", nargs="*", help="B-ids (default: the whole zoo)")
    ap.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds 0..N-1 (default 10)")
    ap.add_argument("--max", type=int, default=MAX_BUDGET, help="largest PCT budget (schedules)")
    ap.add_argument("--route", choices=["pct", "machine"], default="pct")
    ap.add_argument("--json", help="write the raw numbers here")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-seed progress on stderr")
    args = ap.parse_args(argv)
    bugs = args.bugs or list(_zoo())
    unknown = [b for b in bugs if b not in _zoo()]
    if unknown:
        ap.error(f"unknown bug {unknown[0]!r}")
    progress = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    seeds = range(args.seeds)
    if args.route == "pct":
        rows = measure_pct(bugs, seeds, args.max, progress)
        print("\n".join(pct_table(rows)))
    else:
        rows = measure_machine(bugs, seeds, progress)
        print("\n".join(machine_table(rows)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1, sort_keys=True)
    return rows


if __name__ == "__main__":
    main()
