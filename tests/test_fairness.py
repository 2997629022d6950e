"""Fair spinning: FIFO lock hand-over, yield points, and what is still a livelock.

A spinning CPU (a failed ``spin_trylock``, ``cpu_relax()``) must not starve
the CPU it waits for, under any strategy: a correct back-off loop ends, and
a waiter spinning on a flag that another CPU sets sees it.  A livelock is
still reported when the spinning can never end: a flag nobody sets, or two
CPUs that keep backing off in lock-step (each round both hold their own
lock when they try the other's).  Locks serve their waiters in arrival
order, and a later acquirer never barges ahead of a queued one.
"""

import pytest

import stress
from model.kernel import Shared, SpinLock, spin_lock, spin_trylock, spin_unlock
from model.kernel.locks import cpu_relax

STRATEGIES = ["pct", "random", "exhaustive", "hypothesis"]
LIVELOCK_STEPS = 1_000  # a genuine livelock needs no more to show


def _expect(kernel, cell, expected):
    async def check():
        if cell.value != expected:
            kernel.warn(f"{cell.name} is {cell.value}, expected {expected}")

    kernel.add_teardown(check)


def _search(scenario, strategy, seed, schedules, **kw):
    if strategy == "exhaustive":
        kw.setdefault("bound", 3)
    return stress.explore(scenario, strategy=strategy, schedules=schedules, seed=seed, shrink=False, **kw)


# -- correct spinning: clean under every strategy -----------------------------------------------


def backoff(kernel):
    """CPU0: X, then trylock Y; on failure drop X and retry.  CPU1: Y, then X (blocking).

    The order X -> Y (trylock) against Y -> X is the classic way to take two
    locks against the lock order: correct, since CPU0 backs off.  Without
    fair spinning PCT keeps running CPU0 (X, trylock, unlock, X, ...) and
    never the holder of Y: a false ``livelock``.
    """
    x, y = SpinLock("X"), SpinLock("Y")
    count = Shared("count", 0)  # under X and Y
    _expect(kernel, count, 2)

    async def cpu0():
        while True:
            await spin_lock(x)
            if await spin_trylock(y):
                break
            spin_unlock(x)
        await count.store(await count.load() + 1)
        spin_unlock(y)
        spin_unlock(x)

    async def cpu1():
        await spin_lock(y)
        await spin_lock(x)
        await count.store(await count.load() + 1)
        spin_unlock(x)
        spin_unlock(y)

    return [cpu0, cpu1]


def backoff_relax(kernel):
    """Two CPUs back off with ``cpu_relax()`` after dropping X; a third holds Y, then takes X."""
    x, y = SpinLock("X"), SpinLock("Y")
    count = Shared("count", 0)
    _expect(kernel, count, 3)

    async def backer():
        while True:
            await spin_lock(x)
            if await spin_trylock(y):
                break
            spin_unlock(x)
            await cpu_relax()
        await count.store(await count.load() + 1)
        spin_unlock(y)
        spin_unlock(x)

    async def holder():
        await spin_lock(y)
        await spin_lock(x)
        await count.store(await count.load() + 1)
        spin_unlock(x)
        spin_unlock(y)

    return [backer, holder, backer]


def flag_wait(kernel):
    """CPU0 spins (``cpu_relax()``) until CPU1 sets a flag after some work of its own."""
    lock = SpinLock("dev->lock")
    flag = Shared("dev->ready", 0)
    work = Shared("dev->work", 0)
    seen = Shared("seen", 0)
    _expect(kernel, seen, 1)

    async def waiter():
        while True:
            await spin_lock(lock)
            ready = await flag.load()
            spin_unlock(lock)
            if ready:
                break
            await cpu_relax()
        await seen.store(1)

    async def setter():
        for i in range(5):
            await work.store(i)
        await spin_lock(lock)
        await flag.store(1)
        spin_unlock(lock)

    return [waiter, setter]


CLEAN = [backoff, backoff_relax, flag_wait]


@pytest.mark.parametrize("scenario", CLEAN, ids=lambda s: s.__name__)
@pytest.mark.parametrize("strategy", ["pct", "random"])
def test_spinning_is_clean_pct_random(strategy, scenario):
    for seed in range(4):
        result = _search(scenario, strategy, seed, 300)
        assert not result.violations, result.violations[0].splat
        assert result.schedules == 300


@pytest.mark.parametrize("scenario", CLEAN, ids=lambda s: s.__name__)
def test_spinning_is_clean_exhaustive(scenario):
    result = _search(scenario, "exhaustive", 0, 600)
    assert not result.violations, result.violations[0].splat
    assert result.schedules > 10


@pytest.mark.parametrize("scenario", CLEAN, ids=lambda s: s.__name__)
def test_spinning_is_clean_hypothesis(scenario):
    for seed in range(2):
        result = _search(scenario, "hypothesis", seed, 150)
        assert not result.violations, result.violations[0].splat


# -- genuine livelocks: reported under every strategy -------------------------------------------


def flag_never_set(kernel):
    """CPU0 waits (``cpu_relax()``) for a flag nobody sets; CPU1 does something else."""
    flag = Shared("dev->ready", 0)
    other = Shared("other", 0)

    async def waiter():
        while not await flag.load():
            await cpu_relax()

    async def busy():
        for i in range(3):
            await other.store(i)

    return [waiter, busy]


def lockstep_backoff(kernel):
    """Two CPUs back off in lock-step, forever.

    Each round, each CPU takes its own lock, waits until the other holds its
    own, tries the other's lock (which fails), waits until the other has
    tried too, drops its lock and waits until the other dropped its own.
    Every schedule is fair and none ends: the handshakes leave no window.
    """
    a, b = SpinLock("A"), SpinLock("B")
    sync = SpinLock("sync")
    marks = [[Shared(f"cpu{i}.{what}", 0) for what in ("held", "tried", "dropped")] for i in range(2)]

    async def mark(cell, value):
        await spin_lock(sync)
        await cell.store(value)
        spin_unlock(sync)

    async def wait_for(cell, value):
        while True:
            await spin_lock(sync)
            v = await cell.load()
            spin_unlock(sync)
            if v >= value:
                return
            await cpu_relax()

    def body(i, mine, other):
        me, peer = marks[i], marks[1 - i]

        async def run():
            r = 0
            while True:
                r += 1
                await spin_lock(mine)
                await mark(me[0], r)
                await wait_for(peer[0], r)
                if await spin_trylock(other):
                    break  # never: the other holds it
                await mark(me[1], r)
                await wait_for(peer[1], r)
                spin_unlock(mine)
                await mark(me[2], r)
                await wait_for(peer[2], r)
                await cpu_relax()
            spin_unlock(other)
            spin_unlock(mine)

        return run

    return [body(0, a, b), body(1, b, a)]


@pytest.mark.parametrize("scenario", [flag_never_set, lockstep_backoff], ids=lambda s: s.__name__)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_genuine_livelock_reported(strategy, scenario):
    for seed in range(2):
        result = _search(scenario, strategy, seed, 20, max_steps=LIVELOCK_STEPS)
        assert [v.kind for v in result.violations] == ["livelock"], strategy
        assert "did not finish within" in result.violations[0].message


def test_spinning_without_yield_says_so():
    """A busy loop with no yield point is a livelock whose message names the fix."""

    def scenario(kernel):
        flag = Shared("flag", 0)

        async def spin():
            while not await flag.load():
                pass

        return [spin]

    result = _search(scenario, "pct", 0, 5, max_steps=200)
    (v,) = result.violations
    assert v.kind == "livelock" and "cpu_relax()" in v.message


def test_symmetric_backoff_has_a_fair_livelock():
    """Both CPUs back off symmetrically: a fair schedule that never ends exists (lock-step).

    PCT and the random walk escape it in practice; the exhaustive search
    finds the lock-step schedule, which is a real livelock (CHESS: a fair
    infinite execution), reported as such, and its report replays.
    """

    def symmetric(kernel):
        a, b = SpinLock("A"), SpinLock("B")

        def body(mine, other):
            async def run():
                while True:
                    await spin_lock(mine)
                    if await spin_trylock(other):
                        break
                    spin_unlock(mine)
                    await cpu_relax()
                spin_unlock(other)
                spin_unlock(mine)

            return run

        return [body(a, b), body(b, a)]

    result = stress.explore(symmetric, strategy="exhaustive", schedules=100, max_steps=LIVELOCK_STEPS)
    (v,) = result.violations
    assert v.kind == "livelock"
    again = stress.replay_decisions(symmetric, v.report["decisions"], max_steps=LIVELOCK_STEPS)
    assert again.kind == "livelock" and again.violation["message"] == v.message


# -- FIFO hand-over ---------------------------------------------------------------------------


def fifo(kernel):
    """Three CPUs contend for one lock: acquisitions follow arrivals, with no barging.

    The first CPU to get the lock holds it (spinning with ``cpu_relax()``)
    until the two others are queued, notes the queue, releases and at once
    asks again: it must come after both.
    """
    lock = SpinLock("dev->lock")
    log = []  # acquisitions, by CPU id
    queue = []  # the queue the first holder saw, by CPU id

    def body(i):
        async def run():
            await spin_lock(lock)
            log.append(i)
            if len(log) == 1:
                st = kernel.locks[lock]
                while len(st.waiters) < 2:
                    await cpu_relax()
                queue.extend(c.id for c in st.queued())
                spin_unlock(lock)
                await spin_lock(lock)  # behind the two queued CPUs
                log.append(i)
            spin_unlock(lock)

        return run

    async def check():
        if log[1:] != queue + [log[0]]:
            kernel.warn(f"acquired in order {log}, queue was {queue}")

    kernel.add_teardown(check)
    return [body(0), body(1), body(2)]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fifo_handover_follows_arrival(strategy):
    for seed in range(2):
        result = _search(fifo, strategy, seed, 200)
        assert not result.violations, result.violations[0].splat


def test_fifo_arrival_orders_vary():
    """The queue really takes different orders across schedules (the check above is not vacuous)."""
    from stress.choosers import RandomWalk, make_rng

    lock = SpinLock("q")  # module-level style: reused by every run
    orders = set()
    for i in range(60):
        got = []

        def scenario(kernel, got=got):
            log = []

            def body(j):
                async def run():
                    await spin_lock(lock)
                    log.append(j)
                    if len(log) == 1:
                        st = kernel.locks[lock]
                        while len(st.waiters) < 2:
                            await cpu_relax()
                        got.extend(c.id for c in st.queued())
                    spin_unlock(lock)

                return run

            return [body(0), body(1), body(2)]

        out = stress.run_schedule(scenario, RandomWalk(make_rng(0, i)))
        assert out.kind is None
        orders.add(tuple(got))
    assert len(orders) >= 3, orders
