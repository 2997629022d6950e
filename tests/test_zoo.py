"""The bug zoo: every one-method mutant of vsi-fixed is found, by its kind.

Each mutant of ``model.drivers.mutants.ZOO`` is hunted as ``hunt --driver``
does (a drawn workload per schedule, PCT, every checker unless noted) with a
fixed seed and a small schedule budget; the report it yields replays to the
same kind; and vsi-fixed stays clean in the same budgets.

Every mutant runs the default workload of ``hunt --driver``: the workload's
swarm of arenas and user stories (stress.workload.STORIES) puts the
sequences a defect needs (attach, map, DMA, suspend, unmap, resume, DMA on
one target) within a few hundred schedules.
"""

import pytest

import stress
from stress.checkers import default_checkers
from stress.targets import scenario_for_target
from stress.workload import driver_scenario, workload_config
from model.drivers import DRIVERS
from model.drivers.mutants import ZOO

#: the race checker reports B5's unlocked store to vsi_iommu->enable (a true
#: data race, the same defect) before the oracle sees its consequence
NO_RACE = tuple(c for c in default_checkers() if c != "race")

#: id -> (seed, schedules, checkers); every mutant runs hunt's default workload
PLAN = {
    "B1": (0, 20, None),
    "B2": (0, 40, None),
    "B3": (0, 40, None),
    "B4": (0, 200, None),
    "B5": (2, 400, NO_RACE),
    "B6": (0, 40, None),
    "B7": (0, 20, None),
    "B8": (0, 40, None),
    "B9": (0, 400, None),
    "B10": (0, 20, None),
    "B11": (0, 20, None),
    "B12": (0, 100, None),
}


def _kinds(kind):
    return kind if isinstance(kind, tuple) else (kind,)


def test_zoo_is_registered_and_one_method_each():
    ids = [z[0] for z in ZOO]
    assert ids == [f"B{i}" for i in range(1, 13)]
    base = DRIVERS["vsi-fixed"]
    for bid, name, cls, _ in ZOO:
        assert DRIVERS[name] is cls and issubclass(cls, base)
        assert name.startswith(f"vsi-{bid.lower()}-")
        assert cls.summary and "\n" not in cls.summary and cls.__doc__
        own = [k for k, v in vars(cls).items() if callable(v) and not k.startswith("__")]
        assert len(own) == 1, f"{name} overrides {own}"


@pytest.mark.parametrize("zoo", ZOO, ids=[z[1] for z in ZOO])
def test_mutant_found_by_its_kind_and_replays(zoo):
    bid, name, _, kind = zoo
    seed, schedules, checkers = PLAN[bid]
    r = stress.explore(
        driver_scenario(name, workload_config()),
        strategy="pct", schedules=schedules, seed=seed, shrink=False, checkers=checkers,
    )
    assert r.violations, f"{name}: nothing found in {r.schedules} schedules"
    v = r.violations[0]
    assert v.kind in _kinds(kind), v.report["violation"]["splat"]
    out = stress.replay_decisions(scenario_for_target(v.report["target"]), v.report["decisions"], checkers=checkers)
    assert out.kind == v.kind


def test_vsi_fixed_clean_in_the_same_budgets():
    for checkers in (None, NO_RACE):
        r = stress.explore(driver_scenario("vsi-fixed", workload_config()), strategy="pct", schedules=600, seed=0, shrink=False, checkers=checkers)
        assert r.schedules == 600
        assert not r.violations, r.violations[0].report["violation"]["splat"]
