"""Fast runs (stress.run, ``fast``): a search's schedule runs without the
checkers' stacks and is run again in full when it needs them (it reports,
or lockdep is about to learn a fact of the search's graph).  What a search
finds, reports and learns is the same as with every run in full."""

import pytest
import trio

import stress.engine as engine
from stress.choosers import pct_chooser
from stress.engine import explore
from stress.lockdep import LockGraph
from stress.run import run_schedule_async
from stress.workload import DEFAULT_WORKLOAD, driver_scenario

FIELDS = ("violation", "decisions", "points", "fail_points", "injected", "coverage", "hazards", "hints")


def _search(monkeypatch, fast, driver, strategy, n, **kw):
    monkeypatch.setattr(engine, "FAST_ESCALATING", 2.0 if fast else -1.0)  # always / never
    result = explore(driver_scenario(driver, dict(DEFAULT_WORKLOAD)), strategy=strategy, schedules=n, seed=2, keep_going=True, **kw)
    return result.points, sorted(result.coverage), [v.report for v in result.violations]


@pytest.mark.parametrize(
    "driver,strategy,n,kw",
    [
        ("vsi-fixed", "pct", 40, {}),
        ("vsi-v3", "random", 40, {}),
        ("vsi-b7-irq-unsafe-lock", "pct", 40, {}),
        ("vsi-mainline", "guided", 60, {"inject_failures": True}),
        ("vsi-b12-unsynced-unmap", "guided", 60, {"shrink": False}),
    ],
)
def test_a_search_finds_and_reports_the_same_with_fast_runs(monkeypatch, driver, strategy, n, kw):
    full = _search(monkeypatch, False, driver, strategy, n, **kw)
    fast = _search(monkeypatch, True, driver, strategy, n, **kw)
    assert fast == full
    assert full[2] or driver == "vsi-fixed"  # the buggy ones found something: fast runs escalated


def _run(fast, graph, index=1, driver="vsi-v3"):
    family = driver_scenario(driver, dict(DEFAULT_WORKLOAD))
    scenario, _ = family.for_schedule(0, index)
    chooser = pct_chooser(0, index, 3, 200, None)
    out = trio.run(lambda: run_schedule_async(scenario, chooser, lock_graph=graph, coverage=True, fast=fast))
    return out, chooser


def test_a_fast_run_that_reports_runs_again_in_full_from_its_chooser_as_it_was():
    full, c_full = _run(False, LockGraph())
    fast, c_fast = _run(True, LockGraph())
    assert full.violation is not None and fast.escalated and not full.escalated
    assert [getattr(fast, f) for f in FIELDS] == [getattr(full, f) for f in FIELDS]
    assert all(fast.violation["stacks"].values())  # the report's stacks are there
    assert c_fast.prio == c_full.prio and c_fast.first == c_full.first and c_fast.rng.getstate() == c_full.rng.getstate()


def test_lockdep_learns_a_shared_graph_only_in_full_runs():
    """The first run teaches an empty shared graph: the fast run escalates
    before lockdep adds a fact, and the graph ends as a full run leaves it,
    every edge with its stacks; the next run teaches it nothing and stays fast."""
    graphs = {}
    for fast in (False, True):
        g = graphs[fast] = LockGraph()
        out, _ = _run(fast, g, driver="vsi-fixed")
        assert out.violation is None and out.escalated == fast
        again, _ = _run(fast, g, driver="vsi-fixed")
        assert not again.escalated
    full, fast = graphs[False], graphs[True]
    assert fast.fwd == full.fwd and fast.usage == full.usage and fast.chains == full.chains
    assert all(e[0] and e[1] for nxt in fast.fwd.values() for e in nxt.values())


@pytest.mark.parametrize("driver,strategy", [("vsi-mainline", "pct"), ("vsi-b12-unsynced-unmap", "guided")])
def test_a_soak_batch_counts_and_reports_the_same_with_fast_runs(monkeypatch, driver, strategy):
    """A fast attempt that escalates puts back what the batch's observers
    counted (operations, overlaps, driver functions) before its run in full."""
    import json

    from stress.soak.batch import BatchSpec, run_batch
    from stress.workload import workload_config

    spec = BatchSpec(target={"driver": driver, "workload": workload_config()}, strategy=strategy, seed=0, batch=40)

    def batch(fast):
        monkeypatch.setattr(engine, "FAST_ESCALATING", 2.0 if fast else -1.0)
        r = run_batch(spec, 0)
        finds = [(f.signature, f.kind, f.message, f.schedule, f.count, json.dumps(f.report, sort_keys=True)) for f in r.finds]
        return finds, r.ops, r.overlaps, r.functions, r.points, r.schedules, r.features, r.lock_edges, r.corpus

    full, fast = batch(False), batch(True)
    assert fast == full
    assert full[0] and full[3]  # finds (fast runs escalated) and counted functions
