"""Spinlocks, mutexes and local interrupt control (include/linux/spinlock.h, mutex.h).

Every lock is an instance with a ``name``; lockdep groups instances into
classes by name, as the kernel groups them by their static key (every
``vsi_domain->lock`` is one class).  The lock object holds only static facts
(its name, whether it sleeps): who holds it and who queues for it in a run
lives in that run's kernel (``kernel.locks``, a :class:`LockStore`: lock ->
:class:`LockState`, created on first use).  So a lock created once, at
module level, starts every schedule free, whatever the previous schedule
left behind (a violation or a deadlock in the middle of a critical section).

Acquisition is a preemption point.  Waiters are served in arrival order, as
the kernel's queued spinlock (and mutex hand-off) does: a CPU that finds the
lock taken, or other CPUs already queued, joins the queue's tail and waits
without being schedulable; the release hands the lock to the head of the
queue, which becomes runnable and owns the lock when it runs.  A later
acquirer never barges ahead of a queued one, and ``spin_trylock`` fails
while anyone holds or queues for the lock (as the C's ``val != 0``).  A
waiting CPU still takes interrupts if it has them enabled.

A failed ``spin_trylock`` and :func:`cpu_relax` are *yield points*: the CPU
is spinning, and the scheduler will not let it starve a CPU that has not run
since its previous yield (``stress.scheduler``, fair spinning).

``spin_lock_irqsave`` returns ``flags``: here the previous irq state.
``spin_lock_bh`` disables softirqs (``local_bh_disable``) before taking the
lock and ``spin_unlock_bh`` enables them after the release, where pending
softirqs run (:mod:`.softirq`).

A lock class may keep other run state than :class:`LockState` (its
``_state``: ``rwlock_t`` and ``rw_semaphore``, :mod:`.rwlock`); every
kind lives in ``kernel.locks`` all the same.
"""

from __future__ import annotations

from . import softirq as _softirq
from .cpu import NULL_SCHED, _current, current
from .irqflags import _set_irqs, irqs_disabled, local_irq_disable, local_irq_enable, local_irq_restore, local_irq_save  # noqa: F401  (re-exported)

__all__ = [
    "SpinLock",
    "Mutex",
    "LockState",
    "LockStore",
    "lock_owner",
    "spin_lock",
    "spin_lock_nested",
    "spin_unlock",
    "spin_trylock",
    "spin_lock_irqsave",
    "spin_unlock_irqrestore",
    "spin_lock_irq",
    "spin_unlock_irq",
    "spin_lock_bh",
    "spin_unlock_bh",
    "mutex_lock",
    "mutex_unlock",
    "cpu_relax",
    "local_irq_disable",
    "local_irq_enable",
    "local_irq_save",
    "local_irq_restore",
    "irqs_disabled",
    "assert_spin_locked",
    "lockdep_assert_held",
]


class LockState:
    """One lock in one run: its owner and its queue of waiters (FIFO).

    ``owner`` is the CPU holding the lock, or None.  ``waiters`` are the
    :class:`_Waiter` entries of the CPUs queued for it, oldest first; the
    head may already be granted the lock (released to it, not yet running).
    The lock is busy while it has an owner or a waiter.
    """

    __slots__ = ("lock", "owner", "waiters")

    def __init__(self, lock):
        self.lock = lock
        self.owner = None
        self.waiters = []

    def queued(self):
        """The CPUs queued for the lock, in arrival order."""
        return [w.cpu for w in self.waiters]

    def __repr__(self):
        return repr(self.lock)


class LockStore(dict):
    """``kernel.locks``: lock -> its state in this run, created on first use
    (a :class:`LockState`, or the lock class's own ``_state``)."""

    __slots__ = ()

    def __missing__(self, lock):
        st = self[lock] = getattr(lock, "_state", LockState)(lock)
        return st


class _Waiter:
    """A CPU queued for a lock: what its ``cpu.blocked_on`` is while it waits."""

    __slots__ = ("cpu", "state", "granted")

    def __init__(self, cpu, state):
        self.cpu = cpu
        self.state = state
        self.granted = False  # the lock was handed to this CPU

    def ready(self):
        return self.granted

    def __repr__(self):
        return repr(self.state.lock)


def lock_owner(lock, kernel=None):
    """The CPU holding ``lock`` in ``kernel``'s run (default: the calling CPU's), or None.

    A lock handed to a queued CPU that has not run yet has no owner; outside
    any run (no calling CPU, no ``kernel``) nothing owns anything: None.
    """
    if kernel is None:
        cpu = _current.get(None)
        if cpu is None:
            return None
        kernel = cpu.kernel
    st = kernel.locks.get(lock)
    return None if st is None else st.owner


class SpinLock:
    """``spinlock_t``: a name; its run state is in ``kernel.locks``."""

    __slots__ = ("name",)
    sleeps = False
    _state = LockState  # its run state in kernel.locks

    def __init__(self, name):
        self.name = name

    @property
    def owner(self):
        """The CPU holding this lock in the calling CPU's run, or None (read-only).

        Same as ``lock_owner(lock)``; outside any run, None.
        """
        cpu = _current.get(None)
        if cpu is None:
            return None
        st = cpu.kernel.locks.get(self)
        return None if st is None else st.owner

    def __repr__(self):
        return f"&{self.name}"


class Mutex(SpinLock):
    """``struct mutex``: a sleeping lock."""

    __slots__ = ()
    sleeps = True


def _take(cpu, lock):
    cpu.held.append(lock)
    if not lock.sleeps:
        cpu.preempt += 1
    for fn in cpu.kernel.hooks.lock_acquired:
        fn(cpu, lock)


async def _acquire(cpu, lock, subclass=0):
    k = cpu.kernel
    for fn in k.hooks.lock_acquire:
        fn(cpu, lock, False, subclass)
    await cpu.sched.point(cpu)
    st = k.locks[lock]
    if st.owner is None and not st.waiters:
        st.owner = cpu
    else:
        w = _Waiter(cpu, st)
        st.waiters.append(w)
        while not w.granted:
            await cpu.sched.wait(cpu, w)
        st.waiters.remove(w)  # the head: a release grants only the head
        st.owner = cpu
    _take(cpu, lock)


def _release(cpu, lock):
    k = cpu.kernel
    for fn in k.hooks.lock_release:
        fn(cpu, lock)
    st = k.locks[lock]
    owner = st.owner
    if owner is None:
        return  # unlock of an unlocked lock: lockdep reports it
    # Like the C, unlock clears the lock whoever holds it.
    if lock in owner.held:
        owner.held.remove(lock)
        if not lock.sleeps:
            owner.preempt -= 1
    st.owner = None
    if st.waiters:
        st.waiters[0].granted = True  # hand-over to the oldest waiter


async def _relax(cpu):
    """A yield point: the CPU spins; the scheduler may not let it starve others."""
    sched = cpu.sched
    if sched is not NULL_SCHED:
        await sched.relax(cpu)


async def spin_lock(lock):
    cpu = current()
    await _acquire(cpu, lock)


async def spin_lock_nested(lock, subclass):
    """``spin_lock_nested()``: acquire with a lockdep subclass for this acquisition."""
    await _acquire(current(), lock, subclass)


def spin_unlock(lock):
    _release(current(), lock)


async def spin_trylock(lock):
    """True if the lock was free and is now held; a failure is a yield point."""
    cpu = current()
    await cpu.sched.point(cpu)
    k = cpu.kernel
    st = k.locks[lock]
    if st.owner is not None or st.waiters:
        await _relax(cpu)
        return False
    for fn in k.hooks.lock_acquire:
        fn(cpu, lock, True, 0)
    st.owner = cpu
    _take(cpu, lock)
    return True


async def cpu_relax():
    """``cpu_relax()`` in a busy-wait loop: a yield point (fair spinning)."""
    await _relax(current())


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


async def spin_lock_bh(lock):
    """``spin_lock_bh()``: ``local_bh_disable()``, then ``spin_lock()``."""
    _softirq.local_bh_disable()
    await spin_lock(lock)


async def spin_unlock_bh(lock):
    """``spin_unlock_bh()``: ``spin_unlock()``, then ``local_bh_enable()`` (pending softirqs run there)."""
    spin_unlock(lock)
    await _softirq.local_bh_enable()


async def mutex_lock(lock):
    cpu = current()
    for fn in cpu.kernel.hooks.might_sleep:
        fn(cpu, "mutex_lock")
    await _acquire(cpu, lock)


def mutex_unlock(lock):
    _release(current(), lock)


def assert_spin_locked(lock):
    cpu = current()
    if lock_owner(lock, cpu.kernel) is None:
        cpu.kernel.warn(f"assert_spin_locked({lock!r}): not locked")


def lockdep_assert_held(lock):
    cpu = current()
    if lock_owner(lock, cpu.kernel) is not cpu:
        cpu.kernel.warn(f"lockdep_assert_held({lock!r}): not held by {cpu!r}")
