"""Same seed, same search: identical schedules and byte-identical reports; every report replays."""

import os
import subprocess
import sys

import pytest

import stress
from stress.choosers import PCT, RandomWalk, make_rng
from stress.report import dumps

from .scenarios_classic import CLASSIC, abba_buggy, lost_update_buggy, two_stage_buggy
from .scenarios_selftest import SELFTESTS, irq_inversion_hard_spin, spin_lock_irqsave_consistent

STRATEGIES = ["random", "pct", "hypothesis"]
SCHEDULES = 2_000

#: buggy scenarios that need a search (two_stage: one interleaving in a few),
#: an IRQ scenario, and one lockdep finds in any schedule
DETERMINISM_SCENARIOS = [two_stage_buggy, irq_inversion_hard_spin, abba_buggy, lost_update_buggy]


def search(scenario, strategy, seed, **kw):
    """One search; it must find something."""
    result = stress.explore(scenario, strategy=strategy, schedules=SCHEDULES, seed=seed, **kw)
    assert result.violations, f"{scenario.__name__}: nothing found by {strategy} seed {seed}"
    return result


@pytest.mark.parametrize("scenario", DETERMINISM_SCENARIOS, ids=lambda s: s.__name__)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_same_report_bytes(strategy, scenario):
    """Two searches with one seed: the same schedule index, decisions and report JSON."""
    a = search(scenario, strategy, 7)
    b = search(scenario, strategy, 7)
    assert a.schedules == b.schedules and a.points == b.points
    assert [v.kind for v in a.violations] == [v.kind for v in b.violations]
    for va, vb in zip(a.violations, b.violations):
        assert va.report["decisions"] == vb.report["decisions"]
        assert va.report["found_decisions"] == vb.report["found_decisions"]
        assert va.report["schedule"] == vb.report["schedule"]
        assert dumps(va.report) == dumps(vb.report)
        assert dumps(va.report).encode() == dumps(vb.report).encode()


@pytest.mark.parametrize("chooser", ["random", "pct"])
def test_chooser_same_seed_same_decisions(chooser):
    """A run under a chooser seeded from (seed, schedule) makes the same decisions twice."""

    def make(seed, index):
        rng = make_rng(seed, index)
        return RandomWalk(rng) if chooser == "random" else PCT(rng, depth=3, k=64)

    for index in range(20):
        first = stress.run_schedule(spin_lock_irqsave_consistent, make(3, index))
        again = stress.run_schedule(spin_lock_irqsave_consistent, make(3, index))
        assert first.decisions == again.decisions
        assert first.points == again.points
        assert first.kind is None and again.kind is None


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_seed_changes_the_schedules(strategy):
    """Different seeds draw different schedules (the seed is really used)."""

    def decisions(seed):
        rng = make_rng(seed, 0)
        chooser = RandomWalk(rng) if strategy == "random" else PCT(rng, depth=3, k=64)
        return tuple(stress.run_schedule(spin_lock_irqsave_consistent, chooser).decisions)

    assert len({decisions(seed) for seed in range(8)}) > 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_different_seeds_may_differ(strategy):
    """Searches with different seeds are each deterministic but need not agree."""
    found = {}
    for seed in range(6):
        r = search(two_stage_buggy, strategy, seed)
        found[seed] = (r.schedules, tuple(r.violations[0].report["decisions"]))
        assert r.violations[0].kind == "assertion"
    assert len(set(found.values())) > 1, found


# -- every report replays -------------------------------------------------------------------

FAILING = [(f"classic:{name}", buggy, kind, None) for name, buggy, _, kind in CLASSIC]
FAILING += [(f"selftest:{name}", scenario, kind, None) for name, scenario, kind in SELFTESTS if kind]
FAILING += [
    ("classic:abba/no-lockdep", abba_buggy, "deadlock", ["race"]),
    ("selftest:irq_inversion_hard_spin/no-lockdep", irq_inversion_hard_spin, "deadlock", ["race"]),
]


@pytest.mark.parametrize("name,scenario,kind,checkers", FAILING, ids=[f[0] for f in FAILING])
def test_replay_reproduces_pct_find(name, scenario, kind, checkers):
    """replay_decisions of the report's (shrunk) decisions ends in the same violation."""
    result = search(scenario, "pct", 0, checkers=checkers)
    (v,) = result.violations
    assert v.kind == kind
    out = stress.replay_decisions(scenario, v.report["decisions"], checkers=checkers)
    assert out.kind == kind
    assert out.violation["message"] == v.message
    # the report keeps the replay input; past its end the replay keeps the current CPU
    n = len(v.report["decisions"])
    assert out.decisions[:n] == v.report["decisions"] and not any(out.decisions[n:])
    assert out.points == v.report["points"]


# -- across processes ---------------------------------------------------------------------------

_CHILD = """
import sys
import stress
from stress.report import dumps
from tests.scenarios_classic import two_stage_buggy
from tests.scenarios_selftest import irq_inversion_hard_spin
for scenario in (two_stage_buggy, irq_inversion_hard_spin):
    r = stress.explore(scenario, strategy=sys.argv[1], schedules=2000, seed=5)
    sys.stdout.write("".join(dumps(v.report) for v in r.violations))
"""


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_report_bytes_independent_of_hash_seed(strategy):
    """Two interpreters with different PYTHONHASHSEED write the same report bytes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def child(hash_seed):
        env = dict(os.environ, PYTHONHASHSEED=str(hash_seed))
        p = subprocess.run([sys.executable, "-c", _CHILD, strategy], capture_output=True, cwd=root, env=env, check=True)
        return p.stdout

    first = child(1)
    assert first.count(b'"format": "iommu-stress-report"') == 2
    assert first == child(2)
