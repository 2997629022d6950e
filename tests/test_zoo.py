"""The bug zoo: every one-method mutant of vsi-fixed is found, by its kind.

Each mutant of ``model.drivers.mutants.ZOO`` is hunted as ``hunt --driver``
does (a drawn workload per schedule, PCT, every checker unless noted) under
several seeds, each with the mutant's schedule budget (``PLAN``), and the
test asserts a *rate*, not one lucky seed: the budgets are about twice what
the worst of seeds 0-9 needs (``benchmarks/zoo_rates.py`` measures it), and
the test asks fewer finds than were measured.

* default run: seeds 0, 1, ... in order, at least ``min`` of the first
  ``seeds`` (``QUICK``: 4 of 5, fewer for the two costly hunts);
* soak run (``IOMMU_STRESS_SOAK=1``, marker ``soak``): seeds 0-9, at least
  ``SOAK_MIN`` (7 of 10 where 10 of 10 were measured).

Both stop as soon as the verdict is settled (enough finds, or too many
misses to reach them).  The first find's report replays to the same kind,
and vsi-fixed stays clean in the same kind of hunt.

Every mutant runs the default workload of ``hunt --driver``: the workload's
swarm of arenas and user stories (stress.workload.STORIES) puts the
sequences a defect needs (attach, map, DMA, suspend, unmap, resume, DMA on
one target) within a few hundred schedules.

The example database: a Hypothesis find is saved and replayed first by the
next search of the same target, under any seed, and it replays the very
scenario that failed (for a driver workload: the same programs).
"""

import os

import pytest
from hypothesis.database import DirectoryBasedExampleDatabase, InMemoryExampleDatabase

import stress
from stress.checkers import default_checkers
from stress.targets import replay_report
from stress.workload import driver_scenario, workload_config
from model.drivers import DRIVERS
from model.drivers.mutants import ZOO

from .scenarios_classic import two_stage_buggy

SOAK = os.environ.get("IOMMU_STRESS_SOAK") == "1"

#: the race checker reports B5's unlocked store to vsi_iommu->enable (a true
#: data race, the same defect) before the oracle sees its consequence
NO_RACE = tuple(c for c in default_checkers() if c != "race")

#: id -> (schedules per seed, checkers).  Measured on the VSI layout
#: (benchmarks/zoo_rates.py, seeds 0-9, the mutants of the VSI-layout
#: vsi-fixed), worst seed / median, first on the model of commit 5ba3c01,
#: then [in brackets] on the model with shared clocks, genpd and walk caches
#: (issue 13 items 1-6, work in progress when measured): B1 4, B2 5, B7 3,
#: B8 11, B10 1, B11 3 (all medians <= 3); B12 28 [34]; B3 39; B6 78 [71];
#: B9 192 / 48 [1657 / 628: half the seeds then show the missing flush as a
#: walk through a freed table first, pagetable-use-after-free]; B4 1068 /
#: 322 [2890 / 456].  All 10/10 within these budgets.  B5 without the race
#: checker is the hard one since pm_wq has two workers (an unbound
#: workqueue: the IOMMU's suspend may run on the other one): 9/10 within
#: 6000 (seed 9 not within 6000), 8/10 [7/10] within 3000, median about
#: 800 [1080]; seeds 0-4: 581 [3901], 5854, 1041, 2216, 19.
PLAN = {
    "B1": (50, None),
    "B2": (50, None),
    "B3": (100, None),
    "B4": (6000, None),
    "B5": (8000, NO_RACE),
    "B6": (250, None),
    "B7": (50, None),
    "B8": (50, None),
    "B9": (3500, None),
    "B10": (50, None),
    "B11": (50, None),
    "B12": (100, None),
    # the callers and high addresses (issue "Reach"), measured seeds 0-9
    # (worst / median; benchmarks/zoo_rates.py on the final model): B13
    # 14 / 4, B14 36 / 8.5, B15 18 / 2, B16 4 / 1.  Re-measured then too:
    # B4 1363 / 251, B9 3317 / 977.5, B12 102 / 25.5 (9 of 10 within 100)
    "B13": (60, None),
    "B14": (100, None),
    "B15": (60, None),
    "B16": (100, None),
}

#: default run: (seeds, min finds, budget or None for PLAN's).  A find costs
#: B4 about 450 schedules, B5 about 1000 and B9 up to 600 (3-5 ms each), so
#: these ask for fewer finds (B5 one of seeds 0-2 in a smaller budget: 4 of seeds 0-4 measured
#: within 5000; a miss costs the whole budget; B9 one of seeds 0-2, measured
#: 2 of them within its budget and 9 of 10 seeds over 0-9: the soak run asks
#: for the 10-seed rate)
QUICK_DEFAULT = (5, 4, None)
QUICK = {"B4": (3, 2, None), "B5": (3, 1, 5000), "B9": (3, 1, None)}

#: soak run: finds wanted of seeds 0-9 (B5: 9/10 measured within its budget)
SOAK_MIN = {"B5": 5}
SOAK_MIN_DEFAULT = 7


def _kinds(kind):
    return kind if isinstance(kind, tuple) else (kind,)


def test_zoo_is_registered_and_one_method_each():
    ids = [z[0] for z in ZOO]
    assert ids == [f"B{i}" for i in range(1, len(ZOO) + 1)]
    assert sorted(PLAN, key=lambda b: int(b[1:])) == ids
    base = DRIVERS["vsi-fixed"]
    assert base.layout == "vsi"
    for bid, name, cls, _ in ZOO:
        assert DRIVERS[name] is cls and issubclass(cls, base) and cls.layout == "vsi"
        assert name.startswith(f"vsi-{bid.lower()}-")
        assert cls.summary and "\n" not in cls.summary and cls.__doc__
        own = [k for k, v in vars(cls).items() if callable(v) and not k.startswith("__")]
        assert len(own) == 1, f"{name} overrides {own}"


def hunt_rate(name, kind, seeds, need, budget, checkers):
    """Hunt ``name`` under seeds 0..seeds-1 until ``need`` finds of ``kind`` or
    too many misses; ``(hits, misses, first find)`` with hits/misses as
    ``[(seed, schedules or kind)]``."""
    hits, misses, first = [], [], None
    for seed in range(seeds):
        r = stress.explore(
            driver_scenario(name, workload_config()),
            strategy="pct", schedules=budget, seed=seed, shrink=False, checkers=checkers,
        )
        v = r.violations[0] if r.violations else None
        if v is not None and v.kind in _kinds(kind):
            hits.append((seed, r.schedules))
            first = first or v
        else:
            misses.append((seed, v.kind if v else f"nothing in {r.schedules}"))
        if len(hits) >= need or len(misses) > seeds - need:
            break  # settled
    return hits, misses, first


def _assert_rate(zoo, seeds, need, budget):
    bid, name, _, kind = zoo
    checkers = PLAN[bid][1]
    hits, misses, first = hunt_rate(name, kind, seeds, need, budget, checkers)
    assert len(hits) >= need, (
        f"{name}: {len(hits)} of seeds 0-{seeds - 1} found {kind} within {budget} schedules, "
        f"want {need}; found {hits}, missed {misses}"
    )
    out = replay_report(first.report, trace=False)
    assert out.kind == first.kind


@pytest.mark.parametrize("zoo", ZOO, ids=[z[1] for z in ZOO])
def test_mutant_found_by_its_kind_and_replays(zoo):
    seeds, need, budget = QUICK.get(zoo[0], QUICK_DEFAULT)
    _assert_rate(zoo, seeds, need, budget or PLAN[zoo[0]][0])


@pytest.mark.soak
@pytest.mark.skipif(not SOAK, reason="set IOMMU_STRESS_SOAK=1 for the 10-seed rates")
@pytest.mark.parametrize("zoo", ZOO, ids=[z[1] for z in ZOO])
def test_mutant_detection_rate_over_ten_seeds(zoo):
    _assert_rate(zoo, 10, SOAK_MIN.get(zoo[0], SOAK_MIN_DEFAULT), PLAN[zoo[0]][0])


def test_vsi_fixed_clean_in_the_same_budgets():
    for checkers, schedules in ((None, 600), (NO_RACE, 300)):
        r = stress.explore(driver_scenario("vsi-fixed", workload_config()), strategy="pct", schedules=schedules, seed=0, shrink=False, checkers=checkers)
        assert r.schedules == schedules
        assert not r.violations, r.violations[0].report["violation"]["splat"]


# -- the example database ------------------------------------------------------------


def test_database_replays_a_find_first_under_another_seed(tmp_path):
    """Found once with a database: one schedule of another seed finds it again."""
    db = DirectoryBasedExampleDatabase(str(tmp_path / "db"))
    first = stress.explore(two_stage_buggy, strategy="hypothesis", schedules=2000, seed=1, database=db)
    assert first.found
    # one schedule of seed 2 does not find it by itself...
    assert not stress.explore(two_stage_buggy, strategy="hypothesis", schedules=1, seed=2).found
    # ...but the saved example is tried first
    again = stress.explore(two_stage_buggy, strategy="hypothesis", schedules=1, seed=2, database=db)
    assert again.found, "the saved example was not replayed"
    assert again.schedules <= 2  # the replay (and Hypothesis' final re-run), no search
    a, b = first.violations[0], again.violations[0]
    assert (b.kind, b.message, b.report["decisions"]) == (a.kind, a.message, a.report["decisions"])


def test_database_replays_a_driver_find_with_its_programs():
    """A driver workload's saved example names its programs by itself: under
    another seed the replay runs the same programs, not the other seed's."""
    db = InMemoryExampleDatabase()
    scen = driver_scenario("vsi-b12-unsynced-unmap", workload_config())
    first = stress.explore(scen, strategy="hypothesis", schedules=600, seed=1, database=db, shrink=False)
    assert first.found
    fresh = stress.explore(scen, strategy="hypothesis", schedules=1, seed=2, shrink=False)
    assert not fresh.found or fresh.violations[0].report["target"] != first.violations[0].report["target"]
    again = stress.explore(scen, strategy="hypothesis", schedules=1, seed=2, database=db, shrink=False)
    assert again.found, "the saved example was not replayed"
    a, b = first.violations[0], again.violations[0]
    assert b.report["target"] == a.report["target"]  # the same concrete programs
    assert (b.kind, b.message, b.report["decisions"]) == (a.kind, a.message, a.report["decisions"])


def test_database_keeps_every_kind_and_each_target_its_own():
    """``keep_going`` finds come back, every kind; a search of another driver
    in the same database neither replays nor deletes them."""
    db = InMemoryExampleDatabase()
    v3 = driver_scenario("vsi-v3", workload_config())
    first = stress.explore(v3, strategy="hypothesis", schedules=300, seed=1, database=db, shrink=False, keep_going=True)
    assert len(first.violations) >= 2
    other = stress.explore(driver_scenario("vsi-fixed", workload_config()), strategy="hypothesis", schedules=1, seed=3, database=db)
    assert not other.found
    for seed in (2, 3):  # twice: replaying an example does not use it up
        # one schedule per saved kind: the budget is a hard limit, replays count
        again = stress.explore(v3, strategy="hypothesis", schedules=len(first.violations), seed=seed, database=db, shrink=False, keep_going=True)
        got = {v.kind: v.report["target"] for v in again.violations}
        assert got == {v.kind: v.report["target"] for v in first.violations}
