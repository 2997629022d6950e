"""The hypothesis strategy as a searcher: PCT plans drawn as bytes, coverage
targets, the schedule budget a hard limit, shrinking counted (and bounded) apart."""

import random

import pytest

import stress
import stress.hypothesis_chooser as hc
from model.drivers.mutants import ZOO
from stress.choosers import Plan
from stress.report import dumps
from stress.workload import driver_scenario, workload_config

from .scenarios_classic import lost_update_buggy, lost_update_fixed, two_stage_buggy

ZOO_NAMES = {bid: (name, kind if isinstance(kind, tuple) else (kind,)) for bid, name, _cls, kind in ZOO}


def zoo(bid):
    return driver_scenario(ZOO_NAMES[bid][0], workload_config())


@pytest.fixture
def runs(monkeypatch):
    """Counts every schedule the strategy really runs (search, probe, shrinking)."""
    count = [0]
    real = hc.run_schedule

    def counting(*a, **kw):
        count[0] += 1
        return real(*a, **kw)

    monkeypatch.setattr(hc, "run_schedule", counting)
    return count


# -- the plan an example's bytes stand for ---------------------------------------------------


def test_all_zeros_is_the_simplest_schedule():
    for family, fail in ((False, None), (True, None), (True, 8)):
        layout = hc.Layout(family, 3, 300, fail)
        assert hc.decode(layout, bytes(layout.size)) == (0, 0, Plan())


def test_random_bytes_have_pcts_distribution():
    """Uniform bytes: every thread its own rank, depth-1 change points uniform
    over 1..k, a failure in about half the schedules at a point uniform in 1..F."""
    layout = hc.Layout(True, 3, 300, 10)
    rng = random.Random(0)
    plans = [hc.decode(layout, rng.randbytes(layout.size)) for _ in range(2000)]
    assert len({(s, p) for s, p, _ in plans}) > 1990  # another program nearly every time
    changes = [c for *_, plan in plans for c in plan.change]
    assert len(changes) > 3990 and min(changes) >= 1 and max(changes) <= 300
    assert 120 < sum(c <= 100 for c in changes) / len(changes) * 360 < 140  # a third below k/3
    fails = [plan.fail for *_, plan in plans]
    assert 0.45 < sum(f == 0 for f in fails) / len(fails) < 0.55
    assert {f for f in fails if f} == set(range(1, 11))
    # a driver workload's first 8 threads (CPUs, agents) of distinct priorities 9 times in 10 (ties keep the running CPU)
    assert sum(len(set(plan.ranks[:8])) == len(plan.ranks[:8]) == 8 for *_, plan in plans) > 1700


# -- the budget ------------------------------------------------------------------------------------


def test_clean_search_runs_exactly_the_budget(runs):
    """The probe is the first example: no run beyond the budget, none uncounted."""
    r = stress.explore(lost_update_fixed, strategy="hypothesis", schedules=40, seed=0)
    assert not r.found
    assert (r.schedules, r.shrink_runs, runs[0]) == (40, 0, 40)


def test_a_find_counts_search_and_shrinking_apart(runs):
    r = stress.explore(zoo("B12"), strategy="hypothesis", schedules=100, seed=1, shrink=False)
    assert r.found and r.violations[0].kind in ZOO_NAMES["B12"][1]
    assert 1 < r.schedules == r.first_find_schedules <= 100
    assert 0 < r.shrink_runs <= 100
    assert runs[0] == r.schedules + r.shrink_runs  # every run counted once, as one or the other
    assert r.violations[0].report["schedule"] == r.first_find_schedules - 1


def test_keep_going_never_exceeds_the_budget_and_shrinking_is_bounded():
    for budget in (20, 150):
        r = stress.explore(driver_scenario("vsi-v3", workload_config()), strategy="hypothesis", schedules=budget, seed=1, shrink=False, keep_going=True)
        assert r.found
        assert r.schedules <= budget
        assert 0 < r.shrink_runs <= budget  # the shrink budget: at most the schedule budget in all


def test_a_shrink_cut_short_keeps_the_smallest_failure_so_far(monkeypatch):
    monkeypatch.setattr(hc, "SHRINK_RUNS_PER_FIND", 3)
    r = stress.explore(two_stage_buggy, strategy="hypothesis", schedules=2000, seed=0)
    assert r.found and r.violations[0].kind == "assertion"  # replayed and shrunk by the engine
    assert r.shrink_runs <= 3


# -- determinism, coverage --------------------------------------------------------------------------


def test_same_seed_same_search_and_report():
    a = stress.explore(zoo("B12"), strategy="hypothesis", schedules=100, seed=1, shrink=False)
    b = stress.explore(zoo("B12"), strategy="hypothesis", schedules=100, seed=1, shrink=False)
    assert a.found and a.first_find_schedules == b.first_find_schedules
    assert (a.schedules, a.shrink_runs, a.points) == (b.schedules, b.shrink_runs, b.points)
    assert a.coverage == b.coverage
    assert dumps(a.violations[0].report) == dumps(b.violations[0].report)


def test_every_search_schedule_is_a_coverage_target(monkeypatch):
    """Each search schedule tells Hypothesis its coverage (what the targeted
    phase climbs); the search's coverage is the union of theirs."""
    seen = []
    monkeypatch.setattr(hc, "hypothesis_target", lambda value, label: seen.append((label, value)))
    r = stress.explore(lost_update_fixed, strategy="hypothesis", schedules=30, seed=0)
    scores = [v for label, v in seen if label == "coverage"]
    assert len(scores) == r.schedules == 30
    assert r.coverage and max(scores) <= len(r.coverage)
    assert len([v for label, v in seen if label == "interleaving"]) == 30


# -- finding ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bid, budget", [("B1", 20), ("B16", 20)])
def test_finds_a_zoo_bug_in_most_seeds(bid, budget):
    """Seeds 0-9, schedules to the first find, median / worst: B1 PCT 2.5 / 3,
    hypothesis 2 / 3; B16 PCT 1 / 4, hypothesis 2 / 4 (the headroom is 5x)."""
    hits = 0
    for seed in range(5):
        r = stress.explore(zoo(bid), strategy="hypothesis", schedules=budget, seed=seed, shrink=False)
        hits += r.found and r.violations[0].kind in ZOO_NAMES[bid][1]
    assert hits >= 4


def test_lost_update_found_and_shrunk_to_a_replayable_schedule():
    r = stress.explore(lost_update_buggy, strategy="hypothesis", schedules=200, seed=0)
    assert r.found
    rep = r.violations[0].report
    assert all(isinstance(d, int) and d >= 0 for d in rep["decisions"])  # a Replay list, as every strategy's
    assert stress.replay_decisions(lost_update_buggy, rep["decisions"]).kind == r.violations[0].kind


def test_after_kasan_speaks_later_rounds_run_with_it_silent():
    """vsi-mainline's identity attach is a KASAN report in most schedules;
    KASAN reports the first bug of a boot, so - as for every strategy - the
    rounds after it run with KASAN silent, and the kinds behind it (the
    flush's leaked PM reference, at teardown) are found: in at least 2 of
    seeds 0-2 within 400 examples (3 of 3 measured, 115 to 213); each such
    find's report replays with ``kasan_reported``."""
    scen = driver_scenario("vsi-mainline", workload_config())
    found = 0
    for seed in range(3):
        r = stress.explore(scen, strategy="hypothesis", schedules=400, seed=seed, shrink=False, keep_going=True)
        kinds = [v.kind for v in r.violations]
        assert kinds[0] == "invalid-access"
        assert all(v.report["options"].get("kasan_reported") for v in r.violations[1:])
        found += "leak" in kinds
    assert found >= 2
