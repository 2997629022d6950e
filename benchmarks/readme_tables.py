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
distinct kind that ``hunt --all-kinds`` finds in a fixed budget, with a
line saying in kernel terms what the report shows.

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
HISTORY = ["vsi-v3", "vsi-v3-gfp-or", "vsi-mainline", "vsi-fixed"]
#: the history report the README shows in full (its Reports section)
EXCERPT = ("vsi-v3", "data-race")

#: what a report of this kind shows, in kernel terms, per driver (or "*")
EXPLAIN = {
    ("*", "sleep-in-atomic"): "a blocking allocation or sleeping call with a spinlock held and irqs off",
    ("vsi-v3-gfp-or", "sleep-in-atomic"): "`GFP_KERNEL | GFP_ATOMIC` keeps `__GFP_DIRECT_RECLAIM`: map allocates a page table that may sleep under the irqsave domain lock",
    ("vsi-v3", "gfp-accounting-dropped"): "map allocates page tables with a forced `GFP_ATOMIC | GFP_DMA32`: VFIO's `GFP_KERNEL_ACCOUNT` is dropped, the memory is not charged to the memcg",
    ("vsi-v3", "dma-isolation"): "attach goes through the identity domain first: a VFIO-owned device's DMA bypasses translation during the switch",
    ("vsi-v3", "assertion"): "`WARN_ON(!list_empty(iommus))` in domain_free: allocating a domain sets `iommu->domain` to identity, so the next attach's identity step returns early and leaves the IOMMU on the old domain's single `iommu->node` list",
    ("vsi-v3", "data-race"): "attach writes `iommu->domain` while runtime suspend/resume read it with no lock (the review: suspend/resume must take the lock)",
    ("vsi-v3-gfp-or", "assertion"): "as in vsi-v3 (the gfp change leaves attach as it was)",
    ("vsi-v3-gfp-or", "data-race"): "as in vsi-v3: `iommu->domain` written by attach, read by suspend/resume without a lock",
    ("vsi-v3-gfp-or", "dma-isolation"): "as in vsi-v3: the identity step inside attach opens a bypass window",
    ("vsi-mainline", "data-race"): "driver state (`iommu->enable`, the `iommus` list) touched by the runtime-PM callbacks or another domain's lock holder without the lock that orders it",
    ("vsi-mainline", "stale-tlb"): "`vsi_iommu_flush_tlb` skips a suspended IOMMU and resume does not flush: an unmap while suspended leaves a TLB line a DMA uses after resume",
    ("vsi-mainline", "sleep-in-atomic"): "the IRQ handler calls `pm_runtime_resume_and_get()`, which may sleep, in hard-IRQ context",
    ("vsi-mainline", "invalid-access"): "`vsi_iommu_identity_attach()` does `to_vsi_domain()` (container_of) on the bare static identity domain and locks a lock that is not there",
    ("*", "mmio-while-suspended"): "registers are written while the IOMMU's clocks are off (suspend path not serialised with the others)",
    ("*", "stale-tlb"): "a DMA used a TLB entry whose mapping was already unmapped and synced: a lost invalidation",
    ("*", "dma-isolation"): "a DMA reached memory that no domain the device may use maps at that instant",
    ("*", "lock-inversion"): "two paths take the same two lock classes in opposite orders",
    ("*", "irq-lock-inversion"): "a lock taken in the IRQ handler is also taken with interrupts enabled",
    ("*", "pagetable-use-after-free"): "table pages freed while the hardware still translates through them",
    ("*", "dma32-violation"): "a table page above 4 GiB handed to 32-bit hardware",
    ("*", "leak"): "memory left allocated after the devices and domains were released",
    ("*", "data-race"): "a driver field read and written on two CPUs with no lock ordering them",
    ("*", "assertion"): "a WARN_ON in the driver or core fired",
    ("*", "invalid-access"): "a model object used as what it is not (container_of on the wrong type, use after free)",
    ("*", "deadlock"): "every CPU with work left is blocked",
    ("*", "lock-held-at-exit"): "an operation returned with a lock held or interrupts off",
    ("*", "gfp-accounting-dropped"): "an allocation on behalf of a `GFP_KERNEL_ACCOUNT` caller lost `__GFP_ACCOUNT`",
    ("*", "livelock"): "a CPU did not finish within the step bound",
}


def _cell(text):
    return text.replace("|", "\\|")


def explain(driver, kind):
    return EXPLAIN.get((driver, kind)) or EXPLAIN.get(("*", kind), "")


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
    """Every distinct kind per driver; with ``out``, the first (shrunk) report of
    each kind is written and linked (``--all-kinds`` keeps one per signature:
    the table keeps one per kind)."""
    lines = [
        "| driver | kinds found (`hunt --all-kinds`, pct, seed 0, %d schedules) | what the report shows | report |" % HISTORY_BUDGET,
        "|---|---|---|---|",
    ]
    for name in HISTORY:
        r = explore(driver_scenario(name, workload_config()), strategy="pct", schedules=HISTORY_BUDGET, seed=0, keep_going=True, shrink=out is not None)
        if not r.found:
            lines.append(f"| {name} | none | clean over {r.schedules} schedules | - |")
            continue
        first = {}
        for v in r.violations:
            first.setdefault(v.kind, v)
        for kind, v in sorted(first.items()):
            if excerpt is not None and (name, kind) == EXCERPT:
                excerpt.append(report_text(v.report, path=os.path.join(REPORTS, "history", report_name(v.report) + ".json")))
            lines.append(f"| {name} | {kind} | {_cell(explain(name, kind))} | {_link(v.report, 'history', out)} |")
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
