"""Classic concurrency bugs: PCT and the random walk find each buggy form; each fix stays clean."""

import pytest

import stress

from .scenarios_classic import CLASSIC, abba_buggy, abba_fixed

SEED = 0
#: the most schedules a search for a buggy form may take
FIND_BUDGET = 2_000
#: schedules every fixed form must survive, per strategy
CLEAN_SCHEDULES = 2_000

IDS = [name for name, _, _, _ in CLASSIC]
STRATEGIES = ["pct", "random"]


def describe(result):
    """The first violation's splat, for an assertion message."""
    if not result.violations:
        return f"nothing found in {result.schedules} schedules"
    v = result.violations[0]
    return f"{v.kind}: {v.message}\n{v.splat}\ndecisions {v.report['decisions']}"


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("name,buggy,fixed,expected", CLASSIC, ids=IDS)
def test_buggy_form_is_found(name, buggy, fixed, expected, strategy):
    """Seed 0, at most 2,000 schedules: the expected kind, with a replayable report."""
    result = stress.explore(buggy, strategy=strategy, schedules=FIND_BUDGET, seed=SEED)
    assert result.violations, describe(result)
    v = result.violations[0]
    assert v.kind == expected, describe(result)
    assert 1 <= result.schedules <= FIND_BUDGET
    assert v.report["violation"]["kind"] == expected
    assert v.report["strategy"] == strategy and v.report["seed"] == SEED


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("name,buggy,fixed,expected", CLASSIC, ids=IDS)
def test_fixed_form_is_clean(name, buggy, fixed, expected, strategy):
    """2,000 schedules of the fix: nothing, not even its own WARN on the result."""
    result = stress.explore(fixed, strategy=strategy, schedules=CLEAN_SCHEDULES, seed=SEED)
    assert result.violations == [], describe(result)
    assert result.schedules == CLEAN_SCHEDULES


@pytest.mark.parametrize("name,buggy,fixed,expected", CLASSIC, ids=IDS)
def test_fixed_form_exhaustive(name, buggy, fixed, expected):
    """The fixes are small enough to exhaust under 3 preemptions."""
    result = stress.explore(fixed, strategy="exhaustive", schedules=100_000, bound=3)
    assert result.violations == [], describe(result)
    assert result.exhausted


#: the WARN each racy form triggers once the race does its damage
DAMAGE = {
    "lost_update": "acct->balance is 110, expected 120",
    "check_then_act": "dev->buf allocated 2 times",
    "wrong_lock": "dev->count is 1, expected 2",
    "reorder": "dev->ready set but dev->data is 0",
}


def test_every_data_race_has_its_damage_check():
    """Each data-race form in the table has a WARN to look for below."""
    assert sorted(DAMAGE) == sorted(name for name, _, _, kind in CLASSIC if kind == "data-race")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_race_has_visible_damage(name, strategy):
    """Race checker off: some schedule loses the update / sees stale data (the scenario's WARN)."""
    buggy = {n: b for n, b, _, _ in CLASSIC}[name]
    result = stress.explore(buggy, strategy=strategy, schedules=FIND_BUDGET, seed=SEED, checkers=["lockdep"])
    assert [v.kind for v in result.violations] == ["assertion"], describe(result)
    assert DAMAGE[name] in result.violations[0].message


def test_abba_manifests_as_deadlock_without_lockdep():
    """Lockdep off: the ABBA form really deadlocks in some schedule; the fix never does."""
    for strategy in STRATEGIES:
        found = stress.explore(abba_buggy, strategy=strategy, schedules=FIND_BUDGET, seed=SEED, checkers=["race"])
        assert [v.kind for v in found.violations] == ["deadlock"], describe(found)
        clean = stress.explore(abba_fixed, strategy=strategy, schedules=CLEAN_SCHEDULES, seed=SEED, checkers=["race"])
        assert clean.violations == [], describe(clean)
