"""The per-CPU state the primitives see, and ``current()``.

``current()`` is the kernel's ``current``/``smp_processor_id()``: the CPU the
calling coroutine runs on, kept in a :mod:`contextvars` variable that the
engine sets in each CPU task.  Every primitive module imports from here (not
from :mod:`.core`, which builds the machine out of them).
"""

from __future__ import annotations

import contextvars

__all__ = ["Cpu", "ModelBug", "NULL_SCHED", "current", "set_current"]


class ModelBug(Exception):
    """A WARN_ON/BUG_ON in model code: reported as the ``assertion`` kind."""


class _NullSched:
    """Runs model code straight through (no other CPU ever runs)."""

    async def point(self, cpu):
        return None

    async def wait(self, cpu, obj):
        if not obj.ready():
            raise ModelBug(f"CPU{cpu.id} would wait forever on {obj!r} (no scheduler)")


NULL_SCHED = _NullSched()


class Cpu:
    """One CPU's state as the primitives see it (``current``)."""

    __slots__ = (
        "id",
        "kernel",
        "sched",
        "irqs_enabled",
        "hardirq",
        "softirq",
        "bh",
        "rcu",
        "preempt",
        "held",
        "blocked_on",
        "ctl",
        "op",
        "kind",
        "name",
    )

    def __init__(self, kernel, cpu_id, kind="cpu", name=None):
        self.id = cpu_id
        self.kind = kind  # "cpu", or an agent: "dma", "kworker"
        self.name = name or f"CPU{cpu_id}"
        self.kernel = kernel
        self.sched = NULL_SCHED
        self.irqs_enabled = True
        self.hardirq = 0  # hard-IRQ nesting depth (0 or 1: no nesting)
        self.softirq = 0  # 1 while a softirq handler runs (SOFTIRQ_OFFSET: in_serving_softirq)
        self.bh = 0  # local_bh_disable() nesting (SOFTIRQ_DISABLE_OFFSET units)
        self.rcu = 0  # rcu_read_lock() nesting (rcu_preempt_depth)
        self.preempt = 0  # preempt_count from spinlocks
        self.held = []  # locks held, in acquisition order
        self.blocked_on = None  # object with .ready() this CPU waits for
        self.ctl = None  # engine-private state
        self.op = None  # name of the workload operation running

    def in_atomic(self):
        """Where a sleep is a bug (``__might_resched``): a spinlock, interrupts
        off, hard-IRQ or softirq context, BH disabled, an RCU read-side section."""
        return (
            self.preempt > 0
            or not self.irqs_enabled
            or self.hardirq > 0
            or self.softirq > 0
            or self.bh > 0
            or self.rcu > 0
        )

    def in_interrupt(self):
        """``in_interrupt()``: hard-IRQ or softirq context, or BH disabled."""
        return self.hardirq > 0 or self.softirq > 0 or self.bh > 0

    def in_handler(self):
        """Running an interrupt or softirq handler (the scheduler keeps an idle CPU
        that does so runnable)."""
        return self.hardirq > 0 or self.softirq > 0

    def __repr__(self):
        return self.name


_current: contextvars.ContextVar[Cpu] = contextvars.ContextVar("current")


#: ``current()``: the CPU running the calling coroutine (the kernel's
#: ``current``).  The ContextVar's own ``get``: no Python frame of its own,
#: for it is called at nearly every event.
current = _current.get


def set_current(cpu: Cpu):
    """Bind the calling task to ``cpu``; returns the reset token."""
    return _current.set(cpu)
