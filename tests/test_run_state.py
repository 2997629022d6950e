"""Run state lives in the run: module-level cells and locks behave the same every schedule.

A scenario may create its ``Shared`` cells and locks once, at import, and
reuse them in every schedule.  Each schedule must then start from the
initial values with a fresh data-race history: the same seed gives the
same violations and decisions as the same scenario building fresh objects
per schedule, and a race is found the same way in schedule 50 as in
schedule 0.
"""

import pytest

import stress
from model.kernel import Shared, SpinLock, spin_lock, spin_unlock
from stress.choosers import PCT, RandomWalk, make_rng
from stress.engine import replay_decisions, run_schedule

#: protected by LOCK: both CPUs bump it once, the remove path WARNs unless it is 2
COUNT = Shared("mod->count", 0)
#: written and read outside LOCK: a data race in every interleaving
FLAG = Shared("mod->flag", 0)
LOCK = SpinLock("mod->lock")


def _bodies(kernel, count, flag, lock, racy):
    async def bump():
        await spin_lock(lock)
        await count.store(await count.load() + 1)
        spin_unlock(lock)

    async def writer():
        await bump()
        if racy:
            await flag.store(1)  # after the unlock: not ordered with the reader

    async def reader():
        await bump()
        if racy:
            await flag.load()

    async def remove():
        if count.value != 2:
            kernel.warn(f"{count.name} is {count.value}, expected 2")

    kernel.add_teardown(remove)
    return [writer, reader]


def counter_module(kernel):
    return _bodies(kernel, COUNT, FLAG, LOCK, racy=False)


def counter_fresh(kernel):
    return _bodies(kernel, Shared("mod->count", 0), Shared("mod->flag", 0), SpinLock("mod->lock"), racy=False)


def race_module(kernel):
    return _bodies(kernel, COUNT, FLAG, LOCK, racy=True)


def race_fresh(kernel):
    return _bodies(kernel, Shared("mod->count", 0), Shared("mod->flag", 0), SpinLock("mod->lock"), racy=True)


def _summary(result):
    """Each violation's report, but for the target (the scenario's name)."""
    return [(v.kind, v.message, {k: x for k, x in v.report.items() if k != "target"}) for v in result.violations]


def _outcome(out):
    return out.violation, out.decisions, out.points


@pytest.mark.parametrize("strategy", ["pct", "random"])
def test_module_level_counter_stays_clean_every_schedule(strategy):
    """The value of a module-level cell starts from its initial value in each schedule."""
    for _ in range(2):
        result = stress.explore(counter_module, strategy=strategy, schedules=50, seed=0)
        assert result.violations == [], result.violations[0].splat
        assert result.schedules == 50


@pytest.mark.parametrize("strategy", ["pct", "random"])
def test_module_level_race_explores_like_fresh_objects(strategy):
    """Same seed: the same violation, splat and (shrunk) decisions as with fresh objects, twice."""
    fresh = stress.explore(race_fresh, strategy=strategy, schedules=50, seed=3)
    assert fresh.violations and fresh.violations[0].kind == "data-race"
    for _ in range(2):
        mod = stress.explore(race_module, strategy=strategy, schedules=50, seed=3)
        assert _summary(mod) == _summary(fresh)
        assert mod.schedules == fresh.schedules
    # the report replays on the module-level objects, after all those runs
    v = fresh.violations[0]
    again = replay_decisions(race_module, v.report["decisions"])
    assert again.violation["kind"] == "data-race"
    assert again.violation["message"] == v.message
    assert again.violation["splat"] == v.splat


def test_race_found_the_same_way_in_schedule_50_as_in_schedule_0():
    """The data-race checker's history of a module-level cell and lock starts empty in each run."""

    def schedules():
        # the writer first, then the reader first: each is a race on mod->flag
        return [RandomWalk(make_rng(0, 0)), RandomWalk(make_rng(0, 1))]

    expected = [_outcome(run_schedule(race_fresh, c)) for c in schedules()]
    assert [v["kind"] for v, _, _ in expected] == ["data-race", "data-race"]
    assert expected[0][0]["message"] != expected[1][0]["message"]
    assert [_outcome(run_schedule(race_module, c)) for c in schedules()] == expected
    for i in range(2, 50):
        run_schedule(race_module, PCT(make_rng(0, i)))
        run_schedule(counter_module, RandomWalk(make_rng(0, i)))
    assert [_outcome(run_schedule(race_module, c)) for c in schedules()] == expected


def test_every_schedule_matches_fresh_objects():
    """Schedule by schedule, module-level objects and fresh ones give the same outcome."""
    for i in range(60):
        for mod, fresh in ((race_module, race_fresh), (counter_module, counter_fresh)):
            a = run_schedule(mod, RandomWalk(make_rng(7, i)))
            b = run_schedule(fresh, RandomWalk(make_rng(7, i)))
            assert _outcome(a) == _outcome(b), (i, mod.__name__)
