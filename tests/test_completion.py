"""Completions and wait queues (kernel/sched/completion.c, include/linux/wait.h):
correct use is clean under every strategy, each misuse is found."""

import pytest

import stress

from .verdicts import describe
from model.kernel import (
    Completion,
    Kernel,
    Shared,
    SpinLock,
    WaitQueueHead,
    complete,
    complete_all,
    completion_done,
    reinit_completion,
    set_current,
    spin_lock,
    spin_unlock,
    try_wait_for_completion,
    wait_event,
    wait_for_completion,
    wake_up,
)

SEEDS = range(4)
SCHEDULES = 150


def kinds(result):
    return [v.kind for v in result.violations]


def assert_clean(scenario, seeds=SEEDS, schedules=SCHEDULES, **kw):
    for strategy in ("pct", "random"):
        for seed in seeds:
            r = stress.explore(scenario, strategy=strategy, schedules=schedules, seed=seed, **kw)
            assert r.violations == [], describe(r)
            assert r.schedules == schedules


def first_kind(scenario, **kw):
    r = stress.explore(scenario, **{"strategy": "pct", "schedules": SCHEDULES, "seed": 0, **kw})
    assert r.violations, describe(r)
    return r.violations[0]


# -- scenarios -----------------------------------------------------------------------


def handoff(kernel):
    """CPU1 fills a buffer and completes; CPU0 waits, then reads it: ordered."""
    done, buf = Completion("dev->done"), Shared("dev->buf", 0)

    async def waiter():
        await wait_for_completion(done)
        assert await buf.load() == 42

    async def completer():
        await buf.store(42)
        await complete(done)

    return [waiter, completer]


def handoff_without_completion(kernel):
    """The same buffer with nothing ordering it: the race the completion prevents."""
    buf = Shared("dev->buf", 0)

    async def reader():
        await buf.load()

    async def writer():
        await buf.store(42)

    return [reader, writer]


def complete_all_wakes_every_waiter(kernel):
    done = Completion("dev->done")
    passed = Shared("dev->passed", 0)
    lock = SpinLock("dev->lock")

    async def waiter():
        await wait_for_completion(done)
        await spin_lock(lock)
        await passed.store(await passed.load() + 1)
        spin_unlock(lock)

    async def completer():
        await complete_all(done)

    async def check():
        assert passed.get(kernel) == 3
        assert await completion_done(done)  # complete_all: never consumed

    kernel.add_teardown(check)
    return [waiter, waiter, waiter, completer]


def wait_under_spinlock(kernel):
    done, lock = Completion("dev->done"), SpinLock("dev->lock")

    async def waiter():
        await spin_lock(lock)
        await wait_for_completion(done)
        spin_unlock(lock)

    async def completer():
        await complete(done)

    return [waiter, completer]


def never_completed(kernel):
    done = Completion("dev->done")

    async def waiter():
        await wait_for_completion(done)

    async def other():
        pass

    return [waiter, other]


def one_complete_two_waiters(kernel):
    """complete() lets exactly one waiter through: the other waits forever."""
    done = Completion("dev->done")

    async def waiter():
        await wait_for_completion(done)

    async def completer():
        await complete(done)

    return [waiter, waiter, completer]


def _wait_event(wake):
    def scenario(kernel):
        wq, lock = WaitQueueHead("dev->wq"), SpinLock("dev->lock")
        flag, data = Shared("dev->flag", False), Shared("dev->data", 0)

        async def waiter():
            await wait_event(wq, lambda: flag.get(kernel))
            await spin_lock(lock)  # the condition test orders nothing by itself
            assert await data.load() == 7
            spin_unlock(lock)

        async def waker():
            await spin_lock(lock)
            await data.store(7)
            flag.value = True  # the condition reads it without a hook
            spin_unlock(lock)
            if wake:
                await wake_up(wq)

        return [waiter, waker]

    return scenario


# -- tests ---------------------------------------------------------------------------------


def test_handoff_through_a_completion_is_clean_and_ordered():
    """complete() publishes, a returning wait acquires: no race on the buffer, no deadlock."""
    assert_clean(handoff)


def test_without_the_completion_the_same_accesses_race():
    """The sync hook is what orders the handoff: without it the race checker reports it."""
    assert first_kind(handoff_without_completion).kind == "data-race"


def test_complete_all_lets_every_waiter_through():
    assert_clean(complete_all_wakes_every_waiter, seeds=range(2))


def test_wait_for_completion_under_a_spinlock_is_sleep_in_atomic():
    v = first_kind(wait_under_spinlock)
    assert v.kind == "sleep-in-atomic", v.message
    assert v.message.startswith("wait_for_completion "), v.message


def test_a_completion_nobody_completes_is_a_deadlock():
    """The waiter is parked (cpu.blocked_on), so the scheduler sees every CPU with work blocked."""
    v = first_kind(never_completed)
    assert v.kind == "deadlock", v.message
    assert "CPU0 waits for wait_for_completion(&dev->done)" in v.message
    assert "blocked for more than 120 seconds" in v.splat


def test_complete_is_consumed_by_one_waiter():
    v = first_kind(one_complete_two_waiters)
    assert v.kind == "deadlock", v.message


def test_wait_event_with_wake_up_is_clean():
    """Queued before the condition is tested: no lost wake-up, and the wake-up orders the data."""
    assert_clean(_wait_event(True))


def test_wait_event_without_wake_up_is_a_lost_wakeup():
    """A condition made true with nobody woken: the waiter that slept first sleeps forever."""
    v = first_kind(_wait_event(False))
    assert v.kind == "deadlock", v.message
    assert "wait_event(&dev->wq)" in v.message


@pytest.mark.trio
async def test_counting_try_wait_done_and_reinit_without_a_scheduler():
    kernel = Kernel()
    token = set_current(kernel.add_cpu())
    try:
        x = Completion("x")
        assert not await try_wait_for_completion(x)
        assert not await completion_done(x)
        await complete(x)
        await complete(x)
        assert await completion_done(x)
        await wait_for_completion(x)
        assert await try_wait_for_completion(x)
        assert not await try_wait_for_completion(x)
        await complete_all(x)
        for _ in range(3):
            await wait_for_completion(x)  # complete_all: never consumed
        reinit_completion(x)
        assert not await completion_done(x)
        with pytest.raises(Exception, match="would wait forever"):
            await wait_for_completion(x)
    finally:
        from model.kernel.core import _current

        _current.reset(token)


def test_a_completion_starts_every_run_at_zero():
    """State lives in the run's kernel: a module-level completion completed (and
    never consumed) in one search does not let a later search's waiter through."""
    x = Completion("static_done")

    async def completer():
        await complete(x)

    async def waiter():
        await wait_for_completion(x)

    r = stress.explore(lambda k: [completer], strategy="pct", schedules=5, seed=0)
    assert r.violations == [], describe(r)
    v = first_kind(lambda k: [waiter], schedules=5)
    assert v.kind == "deadlock", v.message
