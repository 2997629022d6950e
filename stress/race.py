"""Data-race detection on ``Shared`` cells: happens-before with vector clocks.

Each CPU has two logical threads, its process context and its hard-IRQ
context.  Lock release publishes the releasing thread's clock in the lock;
acquisition joins it (Djit+).  Disabling interrupts on a CPU orders its
process context against its own IRQ handler: ``local_irq_disable``/enable
act as acquire/release of a per-CPU pseudo lock that the handler holds
while it runs.  Two accesses to one cell, at least one a write, neither
ordered before the other, are a ``data-race``.  The boot and teardown
phases (``kernel.add_setup``/``add_teardown``) happen before and after
every CPU, so their accesses are never part of a race.  Runtime PM orders
its users through ``dev->power.lock``: the ``sync`` hook is an acquire and
release of that object's clock.
"""

from __future__ import annotations

from model.kernel.core import model_stack
from model.kernel.locks import lock_owner

from .splat import KASAN_RULE, cpu_line, culprit, func, trace, value

__all__ = ["RaceDetector", "held_by"]


def held_by(lock, cpu):
    """Whether ``cpu`` owns ``lock`` now (the one place this module reads lock ownership)."""
    return lock_owner(lock, cpu.kernel) is cpu


class _Clock:
    __slots__ = ("vc",)

    def __init__(self, vc=None):
        self.vc = vc or {}


class _CellState:
    __slots__ = ("write", "reads")

    def __init__(self):
        self.write = None  # (tid, epoch, label, stack, value before the write)
        self.reads = {}  # tid -> (epoch, label, stack)


def _join(into, other):
    for t, c in other.items():
        if into.get(t, 0) < c:
            into[t] = c


class RaceDetector:
    """One run's happens-before state; nothing is stored on the model's objects.

    A cell or lock created once and reused by every schedule (a module-level
    ``Shared``/``SpinLock``) starts each run with no history: the detector is
    created per run and keys its state by the object.
    """

    name = "race"

    def __init__(self, kernel):
        self.kernel = kernel
        self.cells = {}  # Shared cell -> _CellState
        self.locks = {}  # lock -> clock published by its last release
        self.vc = {}  # tid -> {tid: clock}
        self.irqlock = {}  # cpu id -> published clock
        self.synced = {}  # id(obj) -> clock published by the last sync on it

    def _tid(self, cpu):
        return (cpu.id, 1 if cpu.hardirq else 0)

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

    # -- hooks ----------------------------------------------------------------

    def lock_acquired(self, cpu, lock):
        self._acquire(self._tid(cpu), self.locks.get(lock))

    def lock_release(self, cpu, lock):
        if held_by(lock, cpu):
            self.locks[lock] = self._release(self._tid(cpu))

    def irqs(self, cpu, enabled):
        if cpu.hardirq:
            return
        tid = (cpu.id, 0)
        if enabled:
            self.irqlock[cpu.id] = self._release(tid)
        else:
            self._acquire(tid, self.irqlock.get(cpu.id))

    def hardirq_enter(self, cpu, irq):
        self._acquire((cpu.id, 1), self.irqlock.get(cpu.id))

    def hardirq_exit(self, cpu, irq):
        self.irqlock[cpu.id] = self._release((cpu.id, 1))

    def sync(self, cpu, obj):
        """An ordering point on ``obj`` (acquire then release of its clock)."""
        if cpu.id < 0:
            return
        tid = self._tid(cpu)
        vc = self._clock(tid)
        published = self.synced.get(id(obj))
        if published:
            _join(vc, published)
        self.synced[id(obj)] = dict(vc)
        vc[tid] += 1

    def access(self, cpu, cell, is_write):
        if cpu.id < 0:
            # Boot runs before every CPU starts and teardown after all are
            # done: both are ordered with everything, so neither can race.
            return
        tid = self._tid(cpu)
        vc = self._clock(tid)
        st = self.cells.get(cell)
        if st is None:
            st = self.cells[cell] = _CellState()
        label = f"{cpu!r}{' hardirq' if tid[1] else ''}"
        w = st.write
        if w is not None and w[0] != tid and w[1] > vc.get(w[0], 0):
            self._race(cpu, cell, w, ("write" if is_write else "read", label, model_stack(2)))
        if is_write:
            for t, r in st.reads.items():
                if t != tid and r[0] > vc.get(t, 0):
                    self._race(cpu, cell, ("read",) + r[1:], ("write", label, model_stack(2)), prev_is_read=True)
            st.write = (tid, vc[tid], label, model_stack(2), self.kernel.cells.get(cell, cell.init))
            st.reads = {}
        else:
            st.reads[tid] = (vc[tid], label, model_stack(2))

    def _race(self, cpu, cell, prev, now, prev_is_read=False):
        """KCSAN's report (kernel/kcsan/report.c ``print_report``).

        The title names the function of each access, sorted as KCSAN sorts
        them (and as the find's signature names them); the earlier access is
        printed first, as KCSAN prints the watchpoint's owner first; a read
        that saw a racing write's value ends with ``value changed``.
        """
        old = None
        if prev_is_read:
            p_kind, p_label, p_stack = prev
        else:
            p_kind, p_label, p_stack, old = "write", prev[2], prev[3], prev[4]
        n_kind, n_label, n_stack = now
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
        if not prev_is_read and n_kind == "read":
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
        """``by CPU0``, ``by pm_wq``; an access in hard-IRQ context is KCSAN's ``by interrupt``."""
        if label.endswith(" hardirq"):
            return f"interrupt on {label[: -len(' hardirq')]}"
        return label
