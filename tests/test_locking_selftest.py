"""lib/locking-selftest.c under every strategy: each family fails as the C expects, each fix is clean."""

import re

import pytest

import stress

from .scenarios_selftest import (
    SELFTESTS,
    ABAB_spin_smp,
    ABBA_spin_smp,
    ABBA_trylock_first_smp,
    ABBA_trylock_second_smp,
    ABBCAC_spin_3cpu,
    ABBCCA_spin_3cpu,
    irq_inversion_hard_spin,
    irq_inversion_hard_spin_fixed,
    irqsafe1_hard_spin_12,
    irqsafe1_hard_spin_21,
)

#: exhaustive: far more schedules than any of these scenarios has under bound 2
EXHAUSTIVE_LIMIT = 50_000
BOUND = 2
#: pct and random
SEARCH_SCHEDULES = 400
SEED = 0

IDS = [name for name, _, _ in SELFTESTS]


def first_kind(result):
    """The kind of the first violation found, or None."""
    return result.violations[0].kind if result.violations else None


def describe(result):
    """The first violation's splat, for an assertion message."""
    if not result.violations:
        return f"nothing found in {result.schedules} schedules"
    v = result.violations[0]
    return f"{v.kind}: {v.message}\n{v.splat}\ndecisions {v.report['decisions']}"


def assert_verdict(result, expected):
    """The first violation has the expected kind, or nothing was found at all."""
    assert first_kind(result) == expected, describe(result)
    if expected is None:
        assert result.violations == []
        assert result.schedules >= 1
    else:
        assert result.schedules >= 1 and result.points >= 1


@pytest.mark.parametrize("name,scenario,expected", SELFTESTS, ids=IDS)
def test_exhaustive(name, scenario, expected):
    """Bounded exhaustive search (bound 2): the verdict; a clean space is exhausted."""
    result = stress.explore(scenario, strategy="exhaustive", schedules=EXHAUSTIVE_LIMIT, bound=BOUND)
    assert_verdict(result, expected)
    if expected is None:
        assert result.exhausted, f"{name}: {result.schedules} schedules and not exhausted"
        assert result.schedules < EXHAUSTIVE_LIMIT
    else:
        assert not result.exhausted  # the search stopped at the find


@pytest.mark.parametrize("strategy", ["pct", "random"])
@pytest.mark.parametrize("name,scenario,expected", SELFTESTS, ids=IDS)
def test_search(name, scenario, expected, strategy):
    """PCT and the random walk, a few hundred schedules: the same verdict."""
    result = stress.explore(scenario, strategy=strategy, schedules=SEARCH_SCHEDULES, seed=SEED)
    assert_verdict(result, expected)
    if expected is None:
        assert result.schedules == SEARCH_SCHEDULES


def test_table_pairs_every_failing_family_with_a_clean_one():
    """The table is well formed: unique names, known kinds, as many fixes as failures."""
    names = [name for name, _, _ in SELFTESTS]
    assert len(names) == len(set(names))
    kinds = {kind for _, _, kind in SELFTESTS}
    assert kinds <= {None, "recursive-locking", "lock-inversion", "irq-lock-inversion", "bad-unlock", "lock-held-at-exit"}
    failing = [n for n, _, k in SELFTESTS if k is not None]
    clean = [n for n, _, k in SELFTESTS if k is None]
    assert len(failing) == len(clean)


# -- what the splat says ----------------------------------------------------------------------

#: the classes of the cycle lockdep must report (only those on the cycle)
CYCLES = {
    "ABBA_spin": {"lock_A", "lock_B"},
    "ABBA_spin_smp": {"lock_A", "lock_B"},
    "ABBCCA_spin": {"lock_A", "lock_B", "lock_C"},
    "ABBCCA_spin_3cpu": {"lock_A", "lock_B", "lock_C"},
    "ABCABC_spin": {"lock_A", "lock_B", "lock_C"},
    "ABBCCDDA_spin": {"lock_A", "lock_B", "lock_C", "lock_D"},
    "ABCDBDDA_spin": {"lock_A", "lock_B", "lock_D"},  # C -> D is not on the cycle
    "ABCDBCDA_spin": {"lock_A", "lock_B", "lock_C", "lock_D"},
    "spin_block_spin": {"lock_A", "lock_X"},
    "ABBA_trylock_first_smp": {"lock_A", "lock_B"},
}


@pytest.mark.parametrize("name", sorted(CYCLES))
def test_cycle_names_exactly_its_classes(name):
    """"circular locking dependency X -> ... -> X": a closed cycle over the expected classes."""
    scenario = dict((n, s) for n, s, _ in SELFTESTS)[name]
    (v,) = stress.explore(scenario, strategy="pct", schedules=SEARCH_SCHEDULES, seed=SEED).violations
    m = re.match(r"circular locking dependency (.*) on CPU\d$", v.message)
    assert m, v.message
    chain = m.group(1).split(" -> ")
    assert chain[0] == chain[-1], chain
    assert set(chain) == CYCLES[name]
    assert len(chain) == len(CYCLES[name]) + 1


@pytest.mark.parametrize(
    "scenario,old,new,where",
    [
        (irqsafe1_hard_spin_12, "IN-HARDIRQ-W", "HARDIRQ-ON-W", "teardown"),
        (irqsafe1_hard_spin_21, "HARDIRQ-ON-W", "IN-HARDIRQ-W", "CPU"),
    ],
    ids=["12", "21"],
)
def test_irqsafe1_discovery_order(scenario, old, new, where):
    """/12 learns IN-HARDIRQ first and trips on irqs-on; /21 the reverse, in the handler."""
    for strategy in ("exhaustive", "pct", "random"):
        result = stress.explore(scenario, strategy=strategy, schedules=SEARCH_SCHEDULES, seed=SEED)
        (v,) = result.violations
        assert v.message.startswith(f"inconsistent {{{old}}} -> {{{new}}} usage of (lock_A) on {where}"), v.message


# -- without lockdep the same bugs deadlock -------------------------------------------------------


@pytest.mark.parametrize(
    "buggy,fixed",
    [
        (ABBA_spin_smp, ABAB_spin_smp),
        (ABBCCA_spin_3cpu, ABBCAC_spin_3cpu),
        (irq_inversion_hard_spin, irq_inversion_hard_spin_fixed),
        (ABBA_trylock_first_smp, ABBA_trylock_second_smp),
    ],
    ids=["ABBA_2cpu", "ABBCCA_3cpu", "irq_inversion", "ABBA_trylock"],
)
def test_manifest_deadlock_without_lockdep(buggy, fixed):
    """Lockdep off: some schedule of the buggy form really deadlocks; the fix never does."""
    found = stress.explore(buggy, strategy="exhaustive", schedules=EXHAUSTIVE_LIMIT, bound=BOUND, checkers=["race"])
    assert first_kind(found) == "deadlock", describe(found)
    assert "every CPU with work left is blocked" in found.violations[0].message
    clean = stress.explore(fixed, strategy="exhaustive", schedules=EXHAUSTIVE_LIMIT, bound=BOUND, checkers=["race"])
    assert clean.violations == [] and clean.exhausted, describe(clean)
