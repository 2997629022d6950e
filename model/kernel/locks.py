"""Spinlocks, mutexes and local interrupt control (include/linux/spinlock.h, mutex.h).

Every lock is an instance with a ``name``; lockdep groups instances into
classes by name, as the kernel groups them by their static key (every
``vsi_domain->lock`` is one class).  Acquisition is a preemption point; a CPU
that finds the lock taken waits without being schedulable until the owner
releases it (a spinning CPU still takes interrupts if it has them enabled).

``spin_lock_irqsave`` returns ``flags``: here the previous irq state.
"""

from __future__ import annotations

from .core import current

__all__ = [
    "SpinLock",
    "Mutex",
    "spin_lock",
    "spin_lock_nested",
    "spin_unlock",
    "spin_trylock",
    "spin_lock_irqsave",
    "spin_unlock_irqrestore",
    "spin_lock_irq",
    "spin_unlock_irq",
    "mutex_lock",
    "mutex_unlock",
    "local_irq_disable",
    "local_irq_enable",
    "local_irq_save",
    "local_irq_restore",
    "irqs_disabled",
    "assert_spin_locked",
    "lockdep_assert_held",
]


class SpinLock:
    """``spinlock_t``."""

    __slots__ = ("name", "owner", "race")
    sleeps = False

    def __init__(self, name):
        self.name = name
        self.owner = None
        self.race = None  # data-race checker's clock

    def ready(self):
        return self.owner is None

    def __repr__(self):
        return f"&{self.name}"


class Mutex(SpinLock):
    """``struct mutex``: a sleeping lock."""

    __slots__ = ()
    sleeps = True


async def _acquire(cpu, lock, subclass=0):
    k = cpu.kernel
    for fn in k.hooks.lock_acquire:
        fn(cpu, lock, False, subclass)
    await cpu.sched.point(cpu)
    while lock.owner is not None:
        await cpu.sched.wait(cpu, lock)
    lock.owner = cpu
    cpu.held.append(lock)
    if not lock.sleeps:
        cpu.preempt += 1
    for fn in k.hooks.lock_acquired:
        fn(cpu, lock)


def _release(cpu, lock):
    for fn in cpu.kernel.hooks.lock_release:
        fn(cpu, lock)
    owner = lock.owner
    if owner is None:
        return  # unlock of an unlocked lock: lockdep reports it
    # Like the C, unlock clears the lock whoever holds it.
    if lock in owner.held:
        owner.held.remove(lock)
        if not lock.sleeps:
            owner.preempt -= 1
    lock.owner = None


async def spin_lock(lock):
    cpu = current()
    await _acquire(cpu, lock)


async def spin_lock_nested(lock, subclass):
    """``spin_lock_nested()``: acquire with a lockdep subclass for this acquisition."""
    await _acquire(current(), lock, subclass)


def spin_unlock(lock):
    _release(current(), lock)


async def spin_trylock(lock):
    cpu = current()
    await cpu.sched.point(cpu)
    if lock.owner is not None:
        return False
    for fn in cpu.kernel.hooks.lock_acquire:
        fn(cpu, lock, True, 0)
    lock.owner = cpu
    cpu.held.append(lock)
    cpu.preempt += 1
    for fn in cpu.kernel.hooks.lock_acquired:
        fn(cpu, lock)
    return True


async def spin_lock_irqsave(lock):
    """Returns ``flags`` for :func:`spin_unlock_irqrestore`."""
    flags = local_irq_save()
    await spin_lock(lock)
    return flags


async def spin_unlock_irqrestore(lock, flags):
    spin_unlock(lock)
    await local_irq_restore(flags)


async def spin_lock_irq(lock):
    local_irq_disable()
    await spin_lock(lock)


async def spin_unlock_irq(lock):
    spin_unlock(lock)
    await local_irq_enable()


async def mutex_lock(lock):
    cpu = current()
    for fn in cpu.kernel.hooks.might_sleep:
        fn(cpu, "mutex_lock")
    await _acquire(cpu, lock)


def mutex_unlock(lock):
    _release(current(), lock)


def _set_irqs(cpu, enabled):
    if cpu.irqs_enabled != enabled:
        cpu.irqs_enabled = enabled
        for fn in cpu.kernel.hooks.irqs:
            fn(cpu, enabled)


def local_irq_disable():
    _set_irqs(current(), False)


async def local_irq_enable():
    """Enabling interrupts is where a pending one fires: a preemption point."""
    cpu = current()
    _set_irqs(cpu, True)
    await cpu.sched.point(cpu)


def local_irq_save():
    cpu = current()
    flags = cpu.irqs_enabled
    _set_irqs(cpu, False)
    return flags


async def local_irq_restore(flags):
    cpu = current()
    _set_irqs(cpu, flags)
    if flags:
        await cpu.sched.point(cpu)


def irqs_disabled():
    return not current().irqs_enabled


def assert_spin_locked(lock):
    cpu = current()
    if lock.owner is None:
        cpu.kernel.warn(f"assert_spin_locked({lock!r}): not locked")


def lockdep_assert_held(lock):
    cpu = current()
    if lock.owner is not cpu:
        cpu.kernel.warn(f"lockdep_assert_held({lock!r}): not held by {cpu!r}")
