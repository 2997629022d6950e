"""Reader-writer locks: ``rwlock_t`` and ``struct rw_semaphore``
(include/linux/rwlock.h, rwsem.h; kernel/locking/qrwlock.c, rwsem.c).

As for the other locks (:mod:`.locks`), the lock object holds only static
facts (its name, whether it sleeps); who holds it and who waits for it in a
run is an :class:`RwLockState` in ``kernel.locks``.  What it guarantees:

* readers share the lock, a writer holds it alone;
* ``rwlock_t`` is the queued rwlock: a writer, and a reader in process
  context, wait in one FIFO queue (the qrwlock's ``wait_lock``).  A reader in
  process context gets the lock at once only when no writer holds it and
  nobody queues; else it queues, behind a waiting writer too.  A writer gets
  it at the head of the queue, when neither readers nor a writer hold it.  A
  reader in interrupt context (hard IRQ, softirq, BH disabled:
  ``in_interrupt()``) never queues: it gets the lock whenever no writer
  holds it, ahead of a waiting writer (``queued_read_lock_slowpath``), so a
  reader interrupted on its own CPU cannot deadlock with a waiting writer;
* ``rw_semaphore`` sleeps (``might_sleep`` first) and queues readers behind
  a waiting writer too, always: a nested ``down_read`` with a writer waiting
  in between deadlocks (rwsem's hand-off; the kernel's optimistic reader
  lock stealing before it is left out);
* ``read_trylock`` fails while a writer holds or waits for the lock,
  ``down_read_trylock`` while a writer holds it or anyone queues, and
  ``write_trylock``/``down_write_trylock`` while anyone holds or queues for
  it.  A failed trylock is a yield point, as ``spin_trylock``'s.

Every acquisition is a preemption point, and a waiter blocks through
``cpu.sched.wait`` on an object with ``ready()`` (``cpu.blocked_on``), so
the scheduler sees a deadlock on them.  A waiter's ``ready()`` is read from
the current state (no hand-over): a CPU resumed from a wait finds the state
it was chosen in.

Lockdep sees ``lock_acquire(cpu, lock, trylock, subclass, read)`` with
``read`` 0 for a writer, 1 for a (non-recursive) reader, 2 for a recursive
reader.  ``read_lock`` is a recursive read only in interrupt context
(``read_lock_is_recursive()`` with CONFIG_QUEUED_RWLOCKS), or everywhere
while the run's kernel has ``force_read_lock_recursive`` set (as
lib/locking-selftest.c sets it); ``down_read`` is always a non-recursive
read.  ``downgrade_write`` turns the writer into a reader without telling
lockdep (it keeps the write acquisition, stricter than ``lock_downgrade``).

``lock_owner()`` of a reader-writer lock is its writer; held for read, the
calling CPU when it is one of the readers, else the oldest reader.  A
release publishes one clock for ``lock_acquired`` to join (the race
checker's lock rule), so the readers' side is told apart: every
acquisition and every read release is also an ordering point on the lock's
run state (the ``sync`` hook, a join of all of them), which orders a writer
after every reader before it, and a reader after a downgraded writer.
"""

from __future__ import annotations

from .cpu import _current, current
from .locks import _relax, _take, local_irq_disable, local_irq_enable, local_irq_restore, local_irq_save
from .softirq import local_bh_disable, local_bh_enable

__all__ = [
    "RwLock",
    "RwSemaphore",
    "RwLockState",
    "read_lock_is_recursive",
    "read_lock",
    "read_unlock",
    "read_trylock",
    "write_lock",
    "write_unlock",
    "write_trylock",
    "read_lock_irq",
    "read_unlock_irq",
    "write_lock_irq",
    "write_unlock_irq",
    "read_lock_irqsave",
    "read_unlock_irqrestore",
    "write_lock_irqsave",
    "write_unlock_irqrestore",
    "read_lock_bh",
    "read_unlock_bh",
    "write_lock_bh",
    "write_unlock_bh",
    "down_read",
    "down_read_nested",
    "down_read_trylock",
    "up_read",
    "down_write",
    "down_write_nested",
    "down_write_trylock",
    "up_write",
    "downgrade_write",
]


class RwLockState:
    """One reader-writer lock in one run.

    ``writer`` is the CPU holding it for write, or None; ``readers`` maps each
    CPU holding it for read to how many times it does (a recursive read in an
    interrupt on the same CPU counts twice), oldest first; ``waiters`` are the
    queued :class:`_RwWaiter` entries, oldest first (an interrupt-context
    reader of an ``rwlock_t`` spins outside the queue).
    """

    __slots__ = ("lock", "writer", "readers", "waiters")

    def __init__(self, lock):
        self.lock = lock
        self.writer = None
        self.readers = {}
        self.waiters = []

    @property
    def owner(self):
        """The writer; held for read, the calling CPU if it reads, else the oldest reader."""
        if self.writer is not None:
            return self.writer
        if self.readers:
            cpu = _current.get(None)
            return cpu if cpu in self.readers else next(iter(self.readers))
        return None

    def queued(self):
        """The CPUs queued for the lock, in arrival order."""
        return [w.cpu for w in self.waiters]

    def writer_waiting(self):
        return any(w.write for w in self.waiters)

    def __repr__(self):
        return repr(self.lock)


class _RwWaiter:
    """A CPU waiting for a reader-writer lock (its ``cpu.blocked_on``)."""

    __slots__ = ("cpu", "state", "write", "queued")

    def __init__(self, cpu, state, write, queued):
        self.cpu = cpu
        self.state = state
        self.write = write
        self.queued = queued

    def ready(self):
        """A writer: at the head of the queue, the lock free.  A queued reader:
        no writer holds it and none queues ahead.  An interrupt reader: no writer holds it."""
        st = self.state
        if st.writer is not None:
            return False
        if self.write:
            return st.waiters[0] is self and not st.readers
        if not self.queued:
            return True
        for w in st.waiters:
            if w is self:
                return True
            if w.write:
                return False
        return False

    def __repr__(self):
        return repr(self.state.lock)


class _RwBase:
    """A reader-writer lock: a name; its run state is in ``kernel.locks``."""

    __slots__ = ("name",)
    _state = RwLockState

    def __init__(self, name):
        self.name = name

    @property
    def owner(self):
        """``lock_owner(lock)`` in the calling CPU's run (read-only): see the module doc."""
        cpu = _current.get(None)
        if cpu is None:
            return None
        st = cpu.kernel.locks.get(self)
        return None if st is None else st.owner

    def __repr__(self):
        return f"&{self.name}"


class RwLock(_RwBase):
    """``rwlock_t`` (queued): spins."""

    __slots__ = ()
    sleeps = False
    interrupt_readers_barge = True  # qrwlock: an in_interrupt() reader skips the queue


class RwSemaphore(_RwBase):
    """``struct rw_semaphore``: sleeps; readers queue behind a waiting writer."""

    __slots__ = ()
    sleeps = True
    interrupt_readers_barge = False


def read_lock_is_recursive(cpu=None):
    """``read_lock_is_recursive()``: in interrupt context, or forced by the run's
    kernel (``kernel.force_read_lock_recursive``, lib/locking-selftest.c's switch)."""
    cpu = cpu or current()
    return cpu.in_interrupt() or bool(getattr(cpu.kernel, "force_read_lock_recursive", False))


def _sync(cpu, st):
    """An ordering point on the lock's readers' side (see the module doc)."""
    for fn in cpu.kernel.hooks.sync:
        fn(cpu, st)


def _read_kind(cpu, lock):
    """lockdep's ``read`` of a read acquisition: 2 a recursive read, 1 not."""
    if lock.sleeps:
        return 1  # rwsem_acquire_read: lock_acquire_shared
    return 2 if read_lock_is_recursive(cpu) else 1


def _free_for(st, cpu, write):
    """Whether an acquisition gets the lock at once (the fast paths)."""
    if st.writer is not None:
        return False
    if write:
        return not st.readers and not st.waiters
    if not st.waiters:
        return True
    return st.lock.interrupt_readers_barge and cpu.in_interrupt()


async def _rw_acquire(cpu, lock, write, subclass=0):
    k = cpu.kernel
    read = 0 if write else _read_kind(cpu, lock)
    for fn in k.hooks.lock_acquire:
        fn(cpu, lock, False, subclass, read)
    await cpu.sched.point(cpu)
    st = k.locks[lock]
    if not _free_for(st, cpu, write):
        queued = write or not (lock.interrupt_readers_barge and cpu.in_interrupt())
        w = _RwWaiter(cpu, st, write, queued)
        if queued:
            st.waiters.append(w)
        while not w.ready():
            await cpu.sched.wait(cpu, w)
        if queued:
            st.waiters.remove(w)
    if write:
        st.writer = cpu
    else:
        st.readers[cpu] = st.readers.get(cpu, 0) + 1
    _take(cpu, lock)
    _sync(cpu, st)


async def _rw_trylock(cpu, lock, write):
    """True if the lock was taken; a failure is a yield point."""
    await cpu.sched.point(cpu)
    k = cpu.kernel
    st = k.locks[lock]
    if write:
        ok = st.writer is None and not st.readers and not st.waiters
    elif lock.sleeps:
        ok = st.writer is None and not st.waiters  # rwsem: RWSEM_READ_FAILED_MASK has the waiters flag
    else:
        ok = st.writer is None and not st.writer_waiting()  # qrwlock: no _QW_WMASK bit
    if not ok:
        await _relax(cpu)
        return False
    read = 0 if write else _read_kind(cpu, lock)
    for fn in k.hooks.lock_acquire:
        fn(cpu, lock, True, 0, read)
    if write:
        st.writer = cpu
    else:
        st.readers[cpu] = st.readers.get(cpu, 0) + 1
    _take(cpu, lock)
    _sync(cpu, st)
    return True


def _rw_release(cpu, lock, write):
    k = cpu.kernel
    st = k.locks[lock]
    if not write:
        _sync(cpu, st)
    for fn in k.hooks.lock_release:
        fn(cpu, lock)
    if write:
        holder = st.writer
        if holder is None:
            return  # lockdep reports the unlock
        st.writer = None  # like the C, whoever holds it
    else:
        holder = cpu if cpu in st.readers else next(iter(st.readers), None)
        if holder is None:
            return
        n = st.readers[holder] - 1
        if n:
            st.readers[holder] = n
        else:
            del st.readers[holder]
    if lock in holder.held:
        holder.held.remove(lock)
        if not lock.sleeps:
            holder.preempt -= 1


# -- rwlock_t ---------------------------------------------------------------------------


async def read_lock(lock):
    await _rw_acquire(current(), lock, False)


def read_unlock(lock):
    _rw_release(current(), lock, False)


async def write_lock(lock):
    await _rw_acquire(current(), lock, True)


def write_unlock(lock):
    _rw_release(current(), lock, True)


async def read_trylock(lock):
    """True if no writer holds or waits for the lock and it is now read-held."""
    return await _rw_trylock(current(), lock, False)


async def write_trylock(lock):
    """True if nobody held or queued for the lock and it is now write-held."""
    return await _rw_trylock(current(), lock, True)


async def read_lock_irq(lock):
    local_irq_disable()
    await read_lock(lock)


async def read_unlock_irq(lock):
    read_unlock(lock)
    await local_irq_enable()


async def write_lock_irq(lock):
    local_irq_disable()
    await write_lock(lock)


async def write_unlock_irq(lock):
    write_unlock(lock)
    await local_irq_enable()


async def read_lock_irqsave(lock):
    """Returns ``flags`` for :func:`read_unlock_irqrestore`."""
    flags = local_irq_save()
    await read_lock(lock)
    return flags


async def read_unlock_irqrestore(lock, flags):
    read_unlock(lock)
    await local_irq_restore(flags)


async def write_lock_irqsave(lock):
    """Returns ``flags`` for :func:`write_unlock_irqrestore`."""
    flags = local_irq_save()
    await write_lock(lock)
    return flags


async def write_unlock_irqrestore(lock, flags):
    write_unlock(lock)
    await local_irq_restore(flags)


async def read_lock_bh(lock):
    """BH disabled first: in_interrupt(), so a recursive read that skips the queue."""
    local_bh_disable()
    await read_lock(lock)


async def read_unlock_bh(lock):
    read_unlock(lock)
    await local_bh_enable()


async def write_lock_bh(lock):
    local_bh_disable()
    await write_lock(lock)


async def write_unlock_bh(lock):
    write_unlock(lock)
    await local_bh_enable()


# -- rw_semaphore ------------------------------------------------------------------------


def _might_sleep(cpu, what):
    for fn in cpu.kernel.hooks.might_sleep:
        fn(cpu, what)


async def down_read(sem):
    cpu = current()
    _might_sleep(cpu, "down_read")
    await _rw_acquire(cpu, sem, False)


async def down_read_nested(sem, subclass):
    cpu = current()
    _might_sleep(cpu, "down_read_nested")
    await _rw_acquire(cpu, sem, False, subclass)


async def down_read_trylock(sem):
    """True if the semaphore is now read-held (no writer, nobody queued)."""
    return await _rw_trylock(current(), sem, False)


def up_read(sem):
    _rw_release(current(), sem, False)


async def down_write(sem):
    cpu = current()
    _might_sleep(cpu, "down_write")
    await _rw_acquire(cpu, sem, True)


async def down_write_nested(sem, subclass):
    cpu = current()
    _might_sleep(cpu, "down_write_nested")
    await _rw_acquire(cpu, sem, True, subclass)


async def down_write_trylock(sem):
    """True if the semaphore was free (no holder, nobody queued) and is now write-held."""
    return await _rw_trylock(current(), sem, True)


def up_write(sem):
    _rw_release(current(), sem, True)


def downgrade_write(sem):
    """``downgrade_write()``: the writer becomes a reader; queued readers may follow.

    Lockdep is not told (no hook): it keeps the write acquisition until ``up_read``.
    """
    cpu = current()
    st = cpu.kernel.locks[sem]
    if st.writer is not cpu:
        cpu.kernel.warn(f"downgrade_write({sem!r}): not write-held by {cpu!r}")
        return
    st.writer = None
    st.readers[cpu] = st.readers.get(cpu, 0) + 1
    _sync(cpu, st)  # what the writer did is published to the readers that follow
