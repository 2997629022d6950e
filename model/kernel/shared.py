"""Ordinary kernel memory a checker may watch for data races, its marked
accessors and the full barrier (include/asm-generic/rwonce.h, barrier.h).

Two kinds of access, as the LKMM (tools/memory-model/Documentation/
explanation.txt, "PLAIN ACCESSES AND DATA RACES") and KCSAN tell them apart:

* plain: ``await cell.load()`` / ``await cell.store(v)``, C's ``x`` and
  ``x = v``;
* marked: :func:`READ_ONCE` / :func:`WRITE_ONCE`, :func:`smp_load_acquire` /
  :func:`smp_store_release` and every ``atomic_t`` / ``refcount_t``
  operation (:mod:`.atomic`).

Each access is a preemption point and is reported to the ``access`` hook as
``access(cpu, cell, is_write, marked)``: ``marked`` is ``False`` for a plain
access, else a truthy int of the bits below (``True`` is :data:`MARKED`).
Two marked accesses never race; a marked and a plain one, or two plain
ones, do when they conflict (one writes) and neither happens before the
other (``stress.race``).

Ordering, as the race checker models it (happens-before with vector clocks):

* a load-acquire that reads the value a store-release wrote is ordered after
  everything before the store-release (reads-from + release/acquire); a
  read-modify-write in between keeps that (a release sequence), any other
  store ends it;
* :func:`smp_mb` alone orders nothing: a race checker built on
  happens-before needs a reads-from.  It is a release fence for the marked
  stores that follow it and an acquire fence for the marked loads before it
  (C11's fence synchronization): ``WRITE_ONCE(data); smp_mb();
  WRITE_ONCE(flag)`` on one CPU and ``READ_ONCE(flag); smp_mb(); data`` on
  another that read the flag is ordered; two ``smp_mb()`` with no reads-from
  between them are not.  It reaches the checker as the ``sync`` hook on
  :data:`SMP_MB` (an ordering point that is no object's).

The cell object only names the memory and holds its initial value
(``cell.init``): the value a run stores lives in that run's kernel
(``kernel.cells[cell]``), so a cell created once, at module level, starts
every schedule from its initial value.  ``cell.value`` reads (and assigns)
the value in the run of the calling CPU; outside any run it is the initial
value.
"""

from .cpu import _current

__all__ = [
    "Shared",
    "MARKED",
    "ACQUIRE",
    "RELEASE",
    "RMW",
    "FULL",
    "Barrier",
    "SMP_MB",
    "READ_ONCE",
    "WRITE_ONCE",
    "smp_load_acquire",
    "smp_store_release",
    "smp_mb",
    "smp_mb__before_atomic",
    "smp_mb__after_atomic",
]

# The ``marked`` argument of the ``access`` hook (0/False: a plain access).
MARKED = 1  #: a marked access (KCSAN_ACCESS_ATOMIC): READ_ONCE, WRITE_ONCE, atomic_*
ACQUIRE = 2  #: ... that is an acquire (smp_load_acquire, *_acquire, a fully ordered RMW)
RELEASE = 4  #: ... that is a release (smp_store_release, *_release, a fully ordered RMW)
RMW = 8  #: ... a read-modify-write (KCSAN_ACCESS_COMPOUND): continues a release sequence
FULL = 16  #: ... fully ordered: smp_mb() before and after (value-returning atomics)


class Barrier:
    """A memory barrier as the ``sync`` hook's object: an ordering point that
    names no memory (see the module doc for what it orders)."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


#: the object of the ``sync`` hook :func:`smp_mb` emits
SMP_MB = Barrier("smp_mb")


class Shared:
    """A word of ordinary kernel memory: each access is a preemption point.

    ``await cell.load()`` / ``await cell.store(v)`` are plain accesses; see
    the module doc for the marked ones and what orders them.
    """

    __slots__ = ("name", "init")

    def __init__(self, name, value=None):
        self.name = name
        self.init = value

    def get(self, kernel):
        """The value of this cell in ``kernel``'s run (no preemption point, no hook)."""
        return kernel.cells.get(self, self.init)

    async def load(self):
        cpu = _current.get()
        await cpu.sched.point(cpu)
        k = cpu.kernel
        for fn in k.hooks.access:
            fn(cpu, self, False)
        return k.cells.get(self, self.init)

    async def store(self, value):
        cpu = _current.get()
        await cpu.sched.point(cpu)
        k = cpu.kernel
        for fn in k.hooks.access:
            fn(cpu, self, True)
        k.cells[self] = value

    async def _marked_load(self, marked):
        cpu = _current.get()
        await cpu.sched.point(cpu)
        k = cpu.kernel
        for fn in k.hooks.access:
            fn(cpu, self, False, marked)
        return k.cells.get(self, self.init)

    async def _marked_store(self, value, marked):
        cpu = _current.get()
        await cpu.sched.point(cpu)
        k = cpu.kernel
        for fn in k.hooks.access:
            fn(cpu, self, True, marked)
        k.cells[self] = value

    @property
    def value(self):
        cpu = _current.get(None)
        if cpu is None:
            return self.init
        return cpu.kernel.cells.get(self, self.init)

    @value.setter
    def value(self, value):
        cpu = _current.get(None)
        if cpu is None:
            self.init = value
        else:
            cpu.kernel.cells[self] = value

    def __repr__(self):
        return f"Shared({self.name})"


async def READ_ONCE(cell):
    """``READ_ONCE(x)``: a marked load, no ordering."""
    return await cell._marked_load(MARKED)


async def WRITE_ONCE(cell, value):
    """``WRITE_ONCE(x, v)``: a marked store, no ordering."""
    await cell._marked_store(value, MARKED)


async def smp_load_acquire(cell):
    """``smp_load_acquire(p)``: a marked load; what follows is ordered after
    the store-release it reads from."""
    return await cell._marked_load(MARKED | ACQUIRE)


async def smp_store_release(cell, value):
    """``smp_store_release(p, v)``: a marked store; what precedes it is
    ordered before a load-acquire that reads it."""
    await cell._marked_store(value, MARKED | RELEASE)


def smp_mb():
    """``smp_mb()``: a full barrier (not a preemption point: it accesses no
    memory).  Orders only through a reads-from (see the module doc)."""
    cpu = _current.get()
    for fn in cpu.kernel.hooks.sync:
        fn(cpu, SMP_MB)


#: ``smp_mb__before_atomic()`` / ``smp_mb__after_atomic()``: a full barrier
#: around a non-value-returning atomic (``smp_mb()`` in the model).
smp_mb__before_atomic = smp_mb
smp_mb__after_atomic = smp_mb
