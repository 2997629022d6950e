"""Every B-bug found through the Hypothesis stateful machine too; the shrunk
report replays to the same kind and is no bigger than the bug needs.

No hand-picked seeds: each bug is hunted under seeds 0, 1, 2, ... in order
(``BUDGET`` schedules each: a machine example is one run, a hard limit) until one finds it; the default run allows
``SEEDS`` seeds (and leaves out the ``LONG`` bugs), the soak run
(``IOMMU_STRESS_SOAK=1``) hunts every bug under seeds 0-9 and asserts a
rate (``SOAK_MIN``).  Rates per seed: ``python
benchmarks/zoo_rates.py --route machine``.
"""

import os

import pytest

from model.drivers.mutants import ZOO
from stress.checkers import default_checkers
from stress.engine import replay_decisions
from stress.workload import DEFAULT_WORKLOAD, driver_scenario
from strategies.machine import hunt_with_machine, workload_of

SOAK = os.environ.get("IOMMU_STRESS_SOAK") == "1"
NO_RACE = tuple(c for c in default_checkers() if c != "race")

#: schedules (runs) per seed
BUDGET = 300
#: the deep bugs: B4 needs a DMA and a whole unmap inside attach's window,
#: B5 the suspend worker between two register writes of an attach, B9
#: attach, map, DMA, suspend, unmap, resume, DMA on one device.  Since an
#: example is one run of the default workload's swarm programs under a PCT
#: plan, the machine needs about what PCT needs (hundreds to a few thousand
#: schedules, see the README): soak run only, where the rate is asserted
#: (the PCT route of tests/test_zoo.py finds them in the default run).
BUDGETS = {"B4": 3000, "B5": 3000, "B9": 3000}
LONG = set(BUDGETS)
#: default run: found by one of seeds 0..SEEDS-1 (most bugs by seed 0)
SEEDS = 4
#: soak run: found by at least this many of seeds 0-9
SOAK_MIN = {"B4": 3, "B5": 3, "B9": 5}
SOAK_MIN_DEFAULT = 7
#: operations a shrunk find may keep (default 8).  B9 on the VSI-layout
#: mutant needs attach, map, DMA, suspend, unmap, resume, DMA on one device;
#: with runtime PM as runtime.c and a power domain shared with the master
#: (issue 13 items 1 and 6, in progress when measured) the machine's find
#: kept 10 (seed 2 of 0-3 within 300 examples: 10 operations, 7 preemptions;
#: on the model of commit 5ba3c01 seed 0 finds it within 8)
MAX_OPS = {"B9": 10}


def checkers_for(bid):
    """B5's race is reported by the race checker first: hunt its consequence."""
    return NO_RACE if bid == "B5" else None


def _kinds(kind):
    return kind if isinstance(kind, tuple) else (kind,)


def _hunt(name, bid, seed):
    def make(cfg):
        return driver_scenario(name, cfg)

    return hunt_with_machine(make, dict(DEFAULT_WORKLOAD), seed=seed, max_runs=BUDGETS.get(bid, BUDGET), checkers=checkers_for(bid))


def _check_find(found, name, bid, kind):
    checkers = checkers_for(bid)
    assert found.kind in _kinds(kind), found.outcome.violation["message"]
    assert found.config["programs"] == found.programs
    base = workload_of(DEFAULT_WORKLOAD, found.programs)  # plus the boot options its swarm start drew
    assert all(found.config[k] == v for k, v in base.items())
    out = replay_decisions(driver_scenario(name, found.config), found.decisions, checkers=checkers)
    assert out.kind == found.kind
    # shrunk: a handful of operations and preemptions (B5 needs the most
    # preemptions: the PM worker between register writes of an attach)
    assert sum(len(p) for p in found.programs) <= MAX_OPS.get(bid, 8)
    assert sum(1 for d in found.decisions if d) <= 8


@pytest.mark.parametrize("zoo", [z for z in ZOO if z[0] not in LONG], ids=[z[1] for z in ZOO if z[0] not in LONG])
def test_mutant_found_by_the_machine(zoo):
    bid, name, _, kind = zoo
    tried = []
    for seed in range(SEEDS):
        found = _hunt(name, bid, seed)
        tried.append(seed)
        if found is not None:
            break
    assert found is not None, f"{name}: the machine found nothing under seeds {tried} ({BUDGETS.get(bid, BUDGET)} schedules each)"
    _check_find(found, name, bid, kind)


@pytest.mark.soak
@pytest.mark.skipif(not SOAK, reason="set IOMMU_STRESS_SOAK=1 for the 10-seed rates")
@pytest.mark.parametrize("zoo", ZOO, ids=[z[1] for z in ZOO])
def test_mutant_found_by_the_machine_rate(zoo):
    bid, name, _, kind = zoo
    need = SOAK_MIN.get(bid, SOAK_MIN_DEFAULT)
    hits, misses = [], []
    for seed in range(10):
        found = _hunt(name, bid, seed)
        if found is not None and found.kind in _kinds(kind):
            hits.append(seed)
            if len(hits) == 1:
                _check_find(found, name, bid, kind)
        else:
            misses.append(seed)
        if len(hits) >= need or len(misses) > 10 - need:
            break  # settled
    assert len(hits) >= need, f"{name}: found by seeds {hits}, missed by {misses}; want {need} of 10"
