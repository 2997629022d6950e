"""Timers (kernel/time/timer.c) on the model's tick: armed timers fire in softirq
context at points the scheduler picks, timer_delete_sync waits for a running
callback, lockdep couples the two through the timer's map, and runs end."""

import stress

from .verdicts import describe, describe_v, verdicts
from model.kernel import (
    IRQ_HANDLED,
    Kernel,
    Shared,
    TIMER_IRQSAFE,
    SpinLock,
    TimerList,
    current,
    mod_timer,
    raise_irq,
    request_irq,
    set_current,
    spin_lock,
    spin_unlock,
    timer_delete,
    timer_delete_sync,
    timer_pending,
)
from model.kernel.core import _current
from model.kernel.locks import spin_lock_bh, spin_unlock_bh
from model.kernel.softirq import in_serving_softirq
from model.kernel.timer import MAX_TICK_DEPTH, TICK_IRQ

SCHEDULES = 120

search, assert_clean, found = verdicts(SCHEDULES)


class Dev:
    """A device whose timer callback takes ``dev->lock`` and counts."""

    def __init__(self, kernel, arm_at_boot=True):
        self.kernel = kernel
        self.lock = SpinLock("dev->lock")
        self.count = Shared("dev->count", 0)
        self.fired = []
        self.timer = TimerList("&dev->timer", self.timer_fn)
        if arm_at_boot:
            kernel.add_setup(self.probe)

    async def probe(self):
        assert await mod_timer(self.timer, 10) == 0

    async def timer_fn(self, timer):
        cpu = current()
        assert in_serving_softirq() and cpu.kind == "cpu"
        self.fired.append(cpu.name)
        await spin_lock(self.lock)
        await self.count.store(await self.count.load() + 1)
        spin_unlock(self.lock)


def clean_use(kernel):
    """Process context takes the callback's lock with BH disabled (spin_lock_bh),
    and deletes the timer outside it."""
    dev = Dev(kernel)

    async def cpu0():
        await spin_lock_bh(dev.lock)
        await dev.count.store(await dev.count.load() + 1)
        await spin_unlock_bh(dev.lock)
        deleted = await timer_delete_sync(dev.timer)
        assert not timer_pending(dev.timer)
        assert deleted or len(dev.fired) == 1  # either it fired, or it was deleted armed

    async def cpu1():
        await spin_lock_bh(dev.lock)
        await dev.count.store(await dev.count.load() + 1)
        await spin_unlock_bh(dev.lock)

    async def check():
        assert len(dev.fired) <= 1
        assert dev.count.value == 2 + len(dev.fired)

    kernel.add_teardown(check)
    return [cpu0, cpu1]


def delete_sync_under_lock(kernel):
    dev = Dev(kernel)

    async def cpu0():
        await spin_lock_bh(dev.lock)
        await timer_delete_sync(dev.timer)  # waits for a callback spinning on dev->lock
        await spin_unlock_bh(dev.lock)

    async def cpu1():
        pass

    return [cpu0, cpu1]


def lock_without_bh(kernel):
    """Process context takes the callback's lock with softirqs enabled."""
    dev = Dev(kernel)

    async def cpu0():
        await spin_lock(dev.lock)
        await dev.count.store(1)
        spin_unlock(dev.lock)

    return [cpu0, cpu0]


def test_correct_use_is_clean():
    assert_clean(clean_use)


def test_an_armed_timer_fires_during_the_run():
    """Armed at boot, never deleted: every schedule runs its callback once, in softirq."""

    def scenario(kernel):
        dev = Dev(kernel)

        async def cpu0():
            pass

        async def check():
            assert len(dev.fired) == 1 and not timer_pending(dev.timer)

        kernel.add_teardown(check)
        return [cpu0, cpu0]

    assert_clean(scenario, seeds=range(2))


def test_timer_delete_sync_under_a_lock_the_callback_takes_is_a_lock_inversion():
    for seed in range(3):
        v = found(delete_sync_under_lock, seed=seed, schedules=200)
        assert v.kind == "lock-inversion", describe_v(v)
        assert "(&dev->timer)" in v.message and "dev->lock" in v.message, v.message


def test_the_callbacks_lock_taken_with_softirqs_on_is_found():
    """spin_lock instead of spin_lock_bh: the callback may interrupt the holder on its CPU."""
    v = found(lock_without_bh)
    assert v.kind == "irq-lock-inversion", describe_v(v)
    assert "SOFTIRQ" in v.message, v.message


def test_timer_delete_sync_from_its_own_callback():
    """Lockdep sees the timer's map taken twice; without lockdep it is the WARN."""

    def scenario(kernel):
        timer = TimerList("&dev->timer")

        async def fn(t):
            await timer_delete_sync(t)

        timer.function = fn

        async def cpu0():
            await mod_timer(timer, 1)

        return [cpu0]

    v = found(scenario, schedules=5)
    assert v.kind == "recursive-locking", describe_v(v)
    v = found(scenario, schedules=5, checkers=["race"])
    assert v.kind == "assertion" and "from its own callback" in v.message, v.message


def _delete_in_hard_irq(flags):
    def scenario(kernel):
        dev = Dev(kernel)
        dev.timer.flags = flags

        async def handler(irq, dev_id):
            await timer_delete_sync(dev.timer)
            return IRQ_HANDLED

        request_irq(kernel, 11, handler, 0, "dev", None)

        async def cpu0():
            raise_irq(kernel, 11)

        return [cpu0, cpu0]

    return scenario


def test_timer_delete_sync_in_hard_irq():
    """The C's WARN_ON(in_hardirq()); or first, if the callback ran before, lockdep:
    the map taken in hard IRQ and, by the callback, with irqs on (inconsistent)."""
    v = found(_delete_in_hard_irq(0), schedules=20)
    if v.kind == "irq-lock-inversion":
        assert "inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-W} usage of ((&dev->timer))" in v.message, v.message
    else:
        assert v.kind == "assertion" and "hard-IRQ context" in v.message, describe_v(v)
    v = found(_delete_in_hard_irq(0), schedules=20, checkers=["race"])
    assert v.kind == "assertion" and "hard-IRQ context" in v.message, v.message


def test_an_irqsafe_timer_may_be_deleted_in_hard_irq():
    """TIMER_IRQSAFE: the callback runs with irqs off, so the hard IRQ may wait for it."""
    assert_clean(_delete_in_hard_irq(TIMER_IRQSAFE), seeds=range(2))


def test_a_callback_leaking_a_spinlock_warns():
    def scenario(kernel):
        lock = SpinLock("dev->lock")

        async def fn(t):
            await spin_lock(lock)

        timer = TimerList("&dev->timer", fn)

        async def cpu0():
            await mod_timer(timer, 1)

        return [cpu0]

    v = found(scenario, schedules=5, checkers=["race"])
    assert v.kind == "assertion" and "preempt leak" in v.message, v.message


# -- ordering and races ------------------------------------------------------------------


def _race(ordered):
    def scenario(kernel):
        data = Shared("dev->data", 0)

        async def fn(t):
            await data.store(1)

        timer = TimerList("&dev->timer", fn)

        async def cpu0():
            await data.store(2)  # before mod_timer: ordered before the callback
            await mod_timer(timer, 1)
            if ordered:
                await timer_delete_sync(timer)  # after the callback, if it ran
            await data.load()

        async def idle():
            pass  # takes the tick once done, too

        return [cpu0, idle]

    return scenario


def test_a_callback_races_with_a_cpu_on_an_unlocked_cell():
    v = found(_race(False))
    assert v.kind == "data-race", describe_v(v)


def test_mod_timer_and_timer_delete_sync_order_the_callback():
    assert_clean(_race(True))


# -- virtual time: runs end --------------------------------------------------------------


def test_a_periodic_timer_does_not_keep_the_run_alive():
    """A callback that re-arms its timer: it fires MAX_TICK_DEPTH + 1 times per
    arming from outside, then waits for a tick nobody raises; the run ends."""

    def scenario(kernel):
        fired = []

        async def fn(t):
            fired.append(1)
            await mod_timer(t, len(fired) * 10)

        timer = TimerList("&dev->poll", fn)

        async def cpu0():
            await mod_timer(timer, 0)

        async def remove():
            assert len(fired) == MAX_TICK_DEPTH + 1
            assert timer_pending(timer)
            assert await timer_delete_sync(timer) == 1  # teardown: no tick, just delete

        kernel.add_teardown(remove)
        return [cpu0]

    assert_clean(scenario, seeds=range(2), schedules=30)


def test_a_timer_armed_in_teardown_never_fires_and_the_tick_is_withdrawn():
    def scenario(kernel):
        dev = Dev(kernel, arm_at_boot=False)

        async def cpu0():
            await mod_timer(dev.timer, 5)
            assert await timer_delete(dev.timer) == 1 - len(dev.fired)  # it may fire first
            assert TICK_IRQ not in kernel.irq.pending  # nothing armed: no tick

        async def remove():
            fired = len(dev.fired)
            await mod_timer(dev.timer, 5)
            assert timer_pending(dev.timer) and len(dev.fired) == fired

        kernel.add_teardown(remove)
        return [cpu0]

    assert_clean(scenario, seeds=range(1), schedules=10)


async def test_return_values_without_a_scheduler():
    kernel = Kernel()
    token = set_current(kernel.add_cpu())
    try:
        timer = TimerList("&t")

        async def fn(t):
            pass

        timer.function = fn
        assert not timer_pending(timer)
        assert await mod_timer(timer, 1) == 0
        assert await mod_timer(timer, 2) == 1
        assert timer_pending(timer) and TICK_IRQ in kernel.irq.pending
        assert await timer_delete(timer) == 1
        assert await timer_delete(timer) == 0
        assert await timer_delete_sync(timer) == 0
        assert TICK_IRQ not in kernel.irq.pending
    finally:
        _current.reset(token)
