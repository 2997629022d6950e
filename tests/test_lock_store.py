"""Lock state lives in the run: a module-level lock starts every schedule free.

Who holds a lock and who queues for it is kept in the run's kernel
(``kernel.locks``), not on the lock object.  A scenario that creates its
locks once, at import, therefore gets the same verdicts and decisions as
one that creates them per schedule, even when a schedule ends with a lock
held (a WARN in the middle of a critical section, a deadlock).
"""

import pytest

import stress
from model.kernel import Shared, SpinLock, spin_lock, spin_unlock
from stress import run_schedule
from stress.choosers import PCT, RandomWalk, make_rng

#: module-level locks, reused by every schedule of the *_module scenarios
DEV_LOCK = SpinLock("dev->lock")
LOCK_A = SpinLock("A")
LOCK_B = SpinLock("B")


def _warn_inside(kernel, lock):
    """CPU0 WARNs while holding ``lock`` if CPU1 got there first: the run ends with it held."""
    state = Shared("dev->state", 0)

    async def cpu0():
        await spin_lock(lock)
        if await state.load():
            kernel.warn("dev->state set before probe finished")  # stops the run, lock held
        await state.store(2)
        spin_unlock(lock)

    async def cpu1():
        await spin_lock(lock)
        if not await state.load():
            await state.store(1)
        spin_unlock(lock)

    return [cpu0, cpu1]


def warn_module(kernel):
    return _warn_inside(kernel, DEV_LOCK)


def warn_fresh(kernel):
    return _warn_inside(kernel, SpinLock("dev->lock"))


def _abba(kernel, a, b):
    """ABBA: some schedules deadlock (both locks stay held), the others are clean."""

    async def cpu0():
        await spin_lock(a)
        await spin_lock(b)
        spin_unlock(b)
        spin_unlock(a)

    async def cpu1():
        await spin_lock(b)
        await spin_lock(a)
        spin_unlock(a)
        spin_unlock(b)

    return [cpu0, cpu1]


def abba_module(kernel):
    return _abba(kernel, LOCK_A, LOCK_B)


def abba_fresh(kernel):
    return _abba(kernel, SpinLock("A"), SpinLock("B"))


NO_LOCKDEP = ["race"]  # so ABBA is a deadlock, not a lockdep report


def _outcome(out):
    return out.kind, (out.violation or {}).get("message"), out.decisions, out.points


PAIRS = [
    ("warn", warn_module, warn_fresh, None),
    ("abba", abba_module, abba_fresh, NO_LOCKDEP),
]


@pytest.mark.parametrize("name,module,fresh,checkers", PAIRS, ids=[p[0] for p in PAIRS])
@pytest.mark.parametrize("chooser", ["random", "pct"])
def test_each_schedule_matches_fresh_locks(name, module, fresh, checkers, chooser):
    """Schedule by schedule, the module-level lock gives the outcome of a fresh one."""
    make = RandomWalk if chooser == "random" else PCT
    kinds = set()
    for i in range(80):
        a = run_schedule(module, make(make_rng(5, i)), checkers=checkers)
        b = run_schedule(fresh, make(make_rng(5, i)), checkers=checkers)
        assert _outcome(a) == _outcome(b), (name, i)
        kinds.add(a.kind)
    # some schedules end with the lock held, and others follow them
    assert None in kinds and len(kinds) > 1, kinds


@pytest.mark.parametrize("name,module,fresh,checkers", PAIRS, ids=[p[0] for p in PAIRS])
@pytest.mark.parametrize("strategy", ["pct", "random", "exhaustive"])
def test_explore_matches_fresh_locks(name, module, fresh, checkers, strategy):
    """Same seed: the same violations and decisions, twice, after runs that left the lock held."""
    kw = dict(strategy=strategy, schedules=200, seed=2, keep_going=True, shrink=False, checkers=checkers)
    want = stress.explore(fresh, **kw)
    assert want.violations
    for _ in range(2):
        got = stress.explore(module, **kw)
        assert got.schedules == want.schedules
        assert [(v.kind, v.message, v.report["decisions"]) for v in got.violations] == [
            (v.kind, v.message, v.report["decisions"]) for v in want.violations
        ]


def test_owner_api():
    """``lock_owner(lock)`` / ``lock.owner`` read the calling CPU's run; None outside runs."""
    from model.kernel.locks import LockState, lock_owner

    seen = []

    def scenario(kernel):
        async def cpu():
            seen.append(DEV_LOCK.owner)
            await spin_lock(DEV_LOCK)
            st = kernel.locks[DEV_LOCK]
            seen.append((DEV_LOCK.owner is st.owner, lock_owner(DEV_LOCK) is st.owner, st.owner.id))
            assert isinstance(st, LockState) and st.waiters == []
            # the lock is held at the end of this run

        return [cpu]

    out = run_schedule(scenario, RandomWalk(make_rng(0, 0)), checkers=[])
    assert out.kind is None
    assert seen == [None, (True, True, 0)]
    assert DEV_LOCK.owner is None and lock_owner(DEV_LOCK) is None  # outside any run
    # and the next run starts with it free
    seen.clear()
    out = run_schedule(scenario, RandomWalk(make_rng(0, 1)), checkers=[])
    assert seen == [None, (True, True, 0)]


def test_owner_is_read_only():
    with pytest.raises(AttributeError):
        DEV_LOCK.owner = None
