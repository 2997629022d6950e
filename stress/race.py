"""Data-race detection on ``Shared`` cells: happens-before with vector clocks.

What is a data race, as the LKMM (tools/memory-model/Documentation/
explanation.txt) and KCSAN (Documentation/dev-tools/kcsan.rst) define it:
two accesses to one cell, at least one a write, at least one *plain*,
neither ordered before the other.  ``READ_ONCE``/``WRITE_ONCE``,
``smp_load_acquire``/``smp_store_release`` and every ``atomic_t`` /
``refcount_t`` operation are *marked* (``model.kernel.shared``,
``model.kernel.atomic``): two marked accesses never race, a marked and a
plain one do.  The kernel's default ``CONFIG_KCSAN_ASSUME_PLAIN_WRITES_ATOMIC=y``
keeps KCSAN quiet when the only plain access is an aligned word-sized write
(a ``READ_ONCE`` against a plain ``x = v``); the model follows the LKMM and
reports those, on purpose: the write still needs ``WRITE_ONCE`` (or a lock)
for the reader's marking to mean anything.

Threads.  Each CPU has three logical threads: its process context, its
softirq context (``cpu.softirq``: a handler that ``__do_softirq`` runs) and
its hard-IRQ context.  Lock release publishes the releasing thread's clock in
the lock; acquisition joins it (Djit+).  Per CPU, two pseudo locks stand for
what masking excludes:

* interrupts off (``local_irq_disable``/``spin_lock_irqsave``...) on a CPU
  exclude its hard-IRQ handler *and* its softirqs: ``irqs`` off/on is an
  acquire/release of the CPU's IRQ pseudo lock, which a hard-IRQ handler and
  a softirq handler each hold while they run;
* BH disabled (``local_bh_disable``/``enable``, the ``bh`` hook) excludes the
  CPU's softirqs: an acquire/release of the CPU's BH pseudo lock, which a
  softirq handler holds while it runs.

A publication joins what the pseudo lock held (a hard IRQ may end inside a
softirq handler: both stay visible).

Ordering beyond locks (``access(cpu, cell, is_write, marked)``; ``marked``
is 0 or the bits of ``model.kernel.shared``):

* release/acquire: a store-release (or any ``_release`` / fully ordered
  atomic) publishes the writer's clock in the cell; a load-acquire (``_acquire``
  / fully ordered atomic) that reads the cell joins it.  What it reads is the
  last store to the cell (runs are interleavings); a read-modify-write keeps
  the published clock (a release sequence), any other store replaces or
  clears it;
* fences: ``smp_mb()`` (the ``sync`` hook on ``SMP_MB``) is C11's
  fence synchronization, nothing more: a marked store after it publishes the
  clock the fence saw; a marked load before it that read a published clock
  is joined at it.  A fence without such a reads-from orders nothing.  A
  fully ordered atomic (``atomic_inc_return``, ``atomic_dec_and_test``, ...)
  is a fence, an acquire, a release and a fence;
* runtime PM's ``dev->power.lock`` (any other ``sync`` object): an acquire
  and release of that object's clock.

Cell state: the last write and each thread's last read, as FastTrack keeps
them, while a cell has seen only plain accesses (the fast path, and the
reports it always gave); from its first marked access on, every access not subsumed by a
later one of the same or a stronger kind that it happens before (a plain
write subsumes everything before it; a marked one only marked accesses).

The boot and teardown phases (``kernel.add_setup``/``add_teardown``) happen
before and after every CPU, so their accesses are never part of a race:
the detector ignores every event of theirs (an access is not kept, so a
clock of theirs would order nothing any check compares).
Not an edge: raising a handler (``raise_irq``, ``raise_softirq``) orders
nothing by itself (a raise inside an interrupts-off section is ordered before
the handler through the IRQ pseudo lock).
"""

from __future__ import annotations

from model.kernel.core import model_stack
from model.kernel.locks import lock_owner
from model.kernel.shared import ACQUIRE, FULL, RELEASE, RMW, Barrier

from .splat import KASAN_RULE, cpu_line, culprit, func, trace, value

__all__ = ["RaceDetector", "held_by"]

# A thread id is (cpu id, context); the context's label suffix.
_PROCESS, _HARDIRQ, _SOFTIRQ = 0, 1, 2
_SUFFIX = ("", " hardirq", " softirq")


def held_by(lock, cpu):
    """Whether ``cpu`` owns ``lock`` now (the one place this module reads lock ownership)."""
    return lock_owner(lock, cpu.kernel) is cpu


class _Clock:
    __slots__ = ("vc",)

    def __init__(self, vc=None):
        self.vc = vc or {}


class _CellState:
    __slots__ = ("write", "reads", "hist", "rel")

    def __init__(self):
        self.write = None  # (tid, epoch, label, stack, value before the write)
        self.reads = {}  # tid -> (epoch, label, stack)
        # From the cell's first marked access on: the accesses no later one
        # subsumes, each (tid, epoch, is_write, marked, label, stack, value before).
        self.hist = None
        self.rel = None  # clock a load-acquire of the last store joins (release sequence), or None


def _join(into, other):
    for t, c in other.items():
        if into.get(t, 0) < c:
            into[t] = c


def _joined(a, b):
    """A new clock, ``a`` joined with ``b`` (either may be None)."""
    if a is None:
        return None if b is None else dict(b)
    out = dict(a)
    if b is not None:
        _join(out, b)
    return out


def _kind(is_write, marked):
    """KCSAN's access type (kernel/kcsan/report.c ``get_access_type``)."""
    if not marked:
        return "write" if is_write else "read"
    if marked & RMW:
        return "read-write (marked)"
    return "write (marked)" if is_write else "read (marked)"


class RaceDetector:
    """One run's happens-before state; nothing is stored on the model's objects.

    A cell or lock created once and reused by every schedule (a module-level
    ``Shared``/``SpinLock``) starts each run with no history: the detector is
    created per run and keys its state by the object.
    """

    name = "race"

    lazy_stacks = False  # a fast run's (stress.run): accesses keep no stacks (a race escalates it)

    def __init__(self, kernel):
        self.kernel = kernel
        self.cells = {}  # Shared cell -> _CellState
        self.locks = {}  # lock -> clock published by its last release
        self.vc = {}  # tid -> {tid: clock}
        self.irqlock = {}  # cpu id -> clock published in the IRQ pseudo lock
        self.bhlock = {}  # cpu id -> clock published in the BH pseudo lock
        self.serving = set()  # cpu ids inside __do_softirq (its own bh off/on are no task's)
        self.synced = {}  # id(obj) -> (obj, clock published by the last sync on it): obj kept alive, its id never reused
        self.fence = {}  # tid -> clock at its last release fence (smp_mb, fully ordered atomic)
        self.pending = {}  # tid -> clocks read by marked loads, joined at its next acquire fence

    def __setstate__(self, state):
        # a copy of a booted run (stress.bootimage): ``synced`` is keyed by the copies' ids
        for name, value in state.items():
            setattr(self, name, value)
        self.synced = {id(obj): (obj, clock) for obj, clock in self.synced.values()}

    def _tid(self, cpu):
        return (cpu.id, _HARDIRQ if cpu.hardirq else _SOFTIRQ if cpu.softirq else _PROCESS)

    def _clock(self, tid):
        vc = self.vc.get(tid)
        if vc is None:
            vc = self.vc[tid] = {tid: 1}
        return vc

    def _acquire(self, tid, published):
        if published:
            _join(self._clock(tid), published)

    def _release(self, tid):
        vc = self._clock(tid)
        snap = dict(vc)
        vc[tid] += 1
        return snap

    def _publish(self, table, key, tid):
        """Release ``tid`` into a per-CPU pseudo lock, keeping what it held."""
        snap = self._release(tid)
        held = table.get(key)
        if held:
            _join(snap, held)
        table[key] = snap

    # -- hooks ----------------------------------------------------------------

    # Every hook ignores the boot CPU (``cpu.id < 0``, boot and teardown: see
    # the module doc): no access of it is kept, so no clock of it is read.

    def lock_acquired(self, cpu, lock):
        if cpu.id >= 0:
            self._acquire(self._tid(cpu), self.locks.get(lock))

    def lock_release(self, cpu, lock):
        if cpu.id >= 0 and held_by(lock, cpu):
            self.locks[lock] = self._release(self._tid(cpu))

    def irqs(self, cpu, enabled):
        if cpu.hardirq or cpu.id < 0:
            return
        tid = self._tid(cpu)  # process context, or a softirq handler's own local_irq_*
        if enabled:
            self._publish(self.irqlock, cpu.id, tid)
        else:
            self._acquire(tid, self.irqlock.get(cpu.id))

    def hardirq_enter(self, cpu, irq):
        if cpu.id < 0:
            return
        self._acquire((cpu.id, _HARDIRQ), self.irqlock.get(cpu.id))

    def hardirq_exit(self, cpu, irq):
        if cpu.id < 0:
            return
        self._publish(self.irqlock, cpu.id, (cpu.id, _HARDIRQ))

    def bh(self, cpu, enabled):
        if cpu.hardirq or cpu.id < 0:
            return
        if cpu.softirq:
            # __do_softirq turning softirqs off around its handlers: the
            # matching "on" comes after cpu.softirq is back to 0.
            self.serving.add(cpu.id)
            return
        if enabled:
            if cpu.id in self.serving:
                self.serving.discard(cpu.id)
                return
            self._publish(self.bhlock, cpu.id, (cpu.id, _PROCESS))
        else:
            self._acquire((cpu.id, _PROCESS), self.bhlock.get(cpu.id))

    def softirq_enter(self, cpu, nr):
        if cpu.id < 0:
            return
        tid = (cpu.id, _SOFTIRQ)
        self._acquire(tid, self.bhlock.get(cpu.id))
        self._acquire(tid, self.irqlock.get(cpu.id))

    def softirq_exit(self, cpu, nr):
        if cpu.id < 0:
            return
        tid = (cpu.id, _SOFTIRQ)
        self._publish(self.bhlock, cpu.id, tid)
        self._publish(self.irqlock, cpu.id, tid)

    def sync(self, cpu, obj):
        """An ordering point on ``obj`` (acquire then release of its clock);
        a :class:`~model.kernel.shared.Barrier` is a fence (see the module doc)."""
        if cpu.id < 0:
            return
        tid = self._tid(cpu)
        if obj.__class__ is Barrier:
            self._fence(tid)
            return
        vc = self._clock(tid)
        published = self.synced.get(id(obj))
        if published:
            _join(vc, published[1])
        self.synced[id(obj)] = (obj, dict(vc))
        vc[tid] += 1

    def _fence(self, tid):
        """``smp_mb()``: acquire fence for the marked loads before it, release
        fence for the marked stores after it."""
        vc = self._clock(tid)
        pend = self.pending.pop(tid, None)
        if pend:
            _join(vc, pend)
        self.fence[tid] = dict(vc)
        vc[tid] += 1

    def access(self, cpu, cell, is_write, marked=False):
        if cpu.id < 0:
            # Boot runs before every CPU starts and teardown after all are
            # done: both are ordered with everything, so neither can race.
            return
        st = self.cells.get(cell)
        if st is None:
            st = self.cells[cell] = _CellState()
        if marked or st.hist is not None:
            self._access_marked(cpu, cell, st, is_write, int(marked))
            return
        tid = self._tid(cpu)
        vc = self._clock(tid)
        label = f"{cpu!r}{_SUFFIX[tid[1]]}"
        w = st.write
        if w is not None and w[0] != tid and w[1] > vc.get(w[0], 0):
            now = ("write" if is_write else "read", label, model_stack(2), is_write)
            self._race(cpu, cell, ("write", w[2], w[3], w[4], True), now)
        if is_write:
            for t, r in st.reads.items():
                if t != tid and r[0] > vc.get(t, 0):
                    self._race(cpu, cell, ("read", r[1], r[2], None, False), ("write", label, model_stack(2), True))
            st.write = (tid, vc[tid], label, model_stack(2) if not self.lazy_stacks else (), self.kernel.cells.get(cell, cell.init))
            st.reads = {}
        else:
            st.reads[tid] = (vc[tid], label, model_stack(2) if not self.lazy_stacks else ())

    def _access_marked(self, cpu, cell, st, is_write, marked):
        """An access to a cell that has seen a marked one (this one, or before)."""
        tid = self._tid(cpu)
        vc = self._clock(tid)
        if marked & FULL:  # smp_mb() before the operation
            pend = self.pending.pop(tid, None)
            if pend:
                _join(vc, pend)
        rel = st.rel
        if rel is not None and marked and (not is_write or marked & RMW):
            # a marked load (or the load of an RMW) reads the last store
            if marked & ACQUIRE:
                _join(vc, rel)
            else:
                self.pending[tid] = _joined(self.pending.get(tid), rel)
        hist = st.hist
        if hist is None:
            hist = st.hist = []
            if st.write is not None:
                t, e, label, stack, old = st.write
                hist.append((t, e, True, 0, label, stack, old))
            for t, (e, label, stack) in st.reads.items():
                hist.append((t, e, False, 0, label, stack, None))
            st.write, st.reads = None, {}
        label = f"{cpu!r}{_SUFFIX[tid[1]]}"
        stack = model_stack(2) if not self.lazy_stacks else ()
        kind = _kind(is_write, marked)
        keep = []
        for h in hist:
            concurrent = h[1] > vc.get(h[0], 0)  # never for this thread's own
            if concurrent and (is_write or h[2]) and not (marked and h[3]):
                self._race(cpu, cell, (_kind(h[2], h[3]), h[4], h[5], h[6], h[2]), (kind, label, stack, is_write))
            if concurrent or not (is_write or not h[2]) or (marked and not h[3]):
                keep.append(h)  # not subsumed by this access
        old = self.kernel.cells.get(cell, cell.init) if is_write else None
        keep.append((tid, vc[tid], is_write, marked, label, stack, old))
        st.hist = keep
        if marked & RELEASE:
            published = self._release(tid)
        elif marked and is_write:
            published = self.fence.get(tid)  # a marked store after smp_mb()
        else:
            published = None
        if is_write:
            if marked & RMW:
                st.rel = _joined(rel, published)  # the release sequence goes on
            else:
                st.rel = published  # a plain store publishes nothing
        if marked & FULL:  # smp_mb() after the operation
            self.fence[tid] = dict(vc)
            vc[tid] += 1

    def _race(self, cpu, cell, prev, now):
        """KCSAN's report (kernel/kcsan/report.c ``print_report``).

        ``prev`` is ``(kind, label, stack, value before it or None, is_write)``
        of the earlier access, ``now`` ``(kind, label, stack, is_write)``.
        The title names the function of each access, sorted as KCSAN sorts
        them (and as the find's signature names them); the earlier access is
        printed first, as KCSAN prints the watchpoint's owner first; a read
        that saw a racing write's value ends with ``value changed``.  A
        marked side says so, as KCSAN's ``read (marked)``.
        """
        p_kind, p_label, p_stack, old, p_write = prev
        n_kind, n_label, n_stack, n_write = now
        titles = sorted(func(culprit(s)) for s in (p_stack, n_stack))
        lines = [
            KASAN_RULE,
            f"BUG: KCSAN: data-race in {titles[0]} / {titles[1]}",
            "",
            f"{p_kind} to {cell.name} by {self._who(p_label)}:",
            *trace(p_stack),
            "",
            f"{n_kind} to {cell.name} by {self._who(n_label)}:",
            *trace(n_stack),
        ]
        if p_write and not n_write:
            new = self.kernel.cells.get(cell, cell.init)
            try:
                changed = old is not new and old != new
            except Exception:  # noqa: BLE001 - a value without a usable ==
                changed = False
            if changed:
                lines += ["", f"value changed: {value(old)} -> {value(new)}"]
        lines += ["", "Reported by Kernel Concurrency Sanitizer on:", cpu_line(cpu), KASAN_RULE]
        self.kernel.report(
            "data-race",
            f"{n_kind} by {n_label} races with {p_kind} by {p_label} on {cell.name}",
            splat="\n".join(lines),
            stacks={f"{n_kind} {n_label}": n_stack, f"{p_kind} {p_label}": p_stack},
            cpu=cpu,
        )

    @staticmethod
    def _who(label):
        """``by CPU0``, ``by pm_wq``; an access in hard-IRQ or softirq context is
        KCSAN's ``by interrupt`` (``in_task()`` is false in both)."""
        for suffix in (" hardirq", " softirq"):
            if label.endswith(suffix):
                return f"interrupt on {label[: -len(suffix)]}"
        return label
