"""Interleaving coverage (stress.search.coverage): what each feature means, and that it only watches."""

import json
import os

from model.kernel import Shared, SpinLock, spin_lock, spin_unlock
from stress import explore, run_schedule
from stress.choosers import PCT, Replay, make_rng
from stress.search.coverage import KINDS, counts
from stress.soak.events import read_events
from stress.soak.runner import run_soak
from stress.workload import driver_scenario, workload_config


def nested_and_shared(kernel):
    """CPU0 takes a then b; both CPUs write one cell under a."""
    a, b, cell = SpinLock("a"), SpinLock("b"), Shared("x", 0)

    async def cpu0():
        await spin_lock(a)
        await spin_lock(b)
        await cell.store(1)
        spin_unlock(b)
        spin_unlock(a)

    async def cpu1():
        await spin_lock(a)
        await cell.store(2)
        spin_unlock(a)

    return [cpu0, cpu1]


def test_lock_edges_and_alias_pairs_of_a_scenario():
    both = set()
    for seed in range(8):  # some order of the two stores, each way round
        out = run_schedule(nested_and_shared, PCT(make_rng(seed, 0)), coverage=True)
        both |= out.coverage
    assert ("lock", "a", "b") in both and ("lock", "", "a") in both
    alias = {f for f in both if f[0] == "alias"}
    assert {f[1] for f in alias} == {"cell:x"}
    # a user's scenario module counts as "driver" code: its function and line name the site
    firsts = {f[2].split(":")[0] for f in alias}
    assert firsts == {"cpu0", "cpu1"}, alias
    assert all(f[2].endswith("/w") and f[3].endswith("/w") for f in alias)


def test_coverage_only_watches():
    """The same decisions give the same run with or without the observer."""
    scen = driver_scenario("vsi-mainline", workload_config())
    r = explore(scen, schedules=30, seed=3, shrink=False, keep_going=True)
    assert r.coverage
    concrete, _ = scen.for_schedule(3, 7)
    found = run_schedule(concrete, PCT(make_rng(3, 7)), coverage=True)
    again = run_schedule(concrete, Replay(found.decisions))
    assert again.coverage is None
    assert (again.decisions, again.kind, again.points) == (found.decisions, found.kind, found.points)


def test_a_driver_workload_has_every_kind_of_feature():
    r = explore(driver_scenario("vsi-fixed", workload_config()), schedules=60, seed=0, shrink=False)
    c = r.coverage_counts
    assert set(c) == set(KINDS) and all(c[k] > 0 for k in KINDS), c
    assert ("func", "vsi_iommu_map") in r.coverage
    assert any(f[0] == "overlap" and "map" in f[1:] for f in r.coverage)
    assert any(f[:2] == ("alias", "table") for f in r.coverage)
    assert any(f[:2] == ("alias", "walk") for f in r.coverage)
    # plain strings: a corpus or a soak compares them across processes
    assert all(isinstance(x, str) for f in r.coverage for x in f)


def test_coverage_is_deterministic_and_grows_with_the_search():
    scen = driver_scenario("vsi-fixed", workload_config())
    a = explore(scen, schedules=40, seed=5, shrink=False)
    b = explore(scen, schedules=40, seed=5, shrink=False)
    more = explore(scen, schedules=120, seed=5, shrink=False)
    assert a.coverage == b.coverage
    assert a.coverage <= more.coverage and len(more.coverage) > len(a.coverage)
    assert counts(a.coverage) == a.coverage_counts


def test_soak_batches_log_interleaving_coverage(tmp_path):
    soakdir = str(tmp_path / "soak")
    options = {
        "target": {"driver": "vsi-fixed", "workload": workload_config()},
        "strategy": "pct",
        "seed": 0,
        "checkers": [],
        "max_steps": 20_000,
        "pct_depth": 3,
        "batch": 20,
    }
    summary = run_soak(soakdir, options, schedules=60, workers=1)
    assert not summary.found
    batches = [e for e in read_events(os.path.join(soakdir, "events.jsonl"))[0] if e["event"] == "batch"]
    assert len(batches) == 3
    new = {k: sum(b["interleavings_new"][k] for b in batches) for k in KINDS}
    with open(os.path.join(soakdir, "coverage.json")) as f:
        features = json.load(f)
    assert counts(tuple(x) for x in features) == new
    assert all(b["interleavings"]["overlap"] > 0 for b in batches)
    # the first batch is all new; later ones add less than they see
    assert batches[0]["interleavings"] == batches[0]["interleavings_new"]
