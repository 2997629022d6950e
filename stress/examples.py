"""Example scenarios that ship with the tool, so ``hunt --scenario`` works out of the box.

    iommu-stress hunt --scenario stress.examples:abba
    iommu-stress hunt --scenario stress.examples:irq_unsafe_lock
    iommu-stress hunt --scenario stress.examples:lost_update
"""

from model.kernel import (
    IRQ_HANDLED,
    Shared,
    SpinLock,
    raise_irq,
    request_irq,
    spin_lock,
    spin_unlock,
)


def abba(kernel):
    """Two CPUs take two locks in opposite orders (lockdep: lock-inversion)."""
    a, b = SpinLock("lock_a"), SpinLock("lock_b")

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


def irq_unsafe_lock(kernel):
    """A lock taken in an IRQ handler and with interrupts on (irq-lock-inversion)."""
    lock = SpinLock("dev->lock")
    count = Shared("dev->count", 0)

    async def handler(irq, dev_id):
        await spin_lock(lock)
        await count.store(await count.load() + 1)
        spin_unlock(lock)
        return IRQ_HANDLED

    request_irq(kernel, 7, handler, 0, "dev", None)

    async def cpu0():
        await spin_lock(lock)  # should be spin_lock_irqsave
        await count.store(await count.load() + 1)
        spin_unlock(lock)

    async def cpu1():
        raise_irq(kernel, 7)

    return [cpu0, cpu1]


def lost_update(kernel):
    """Two CPUs increment a counter without a lock (data-race)."""
    count = Shared("stats->count", 0)

    async def inc():
        v = await count.load()
        await count.store(v + 1)

    return [inc, inc]
