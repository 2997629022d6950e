"""Interrupts (kernel/irq): request_irq and raising a line.

A raised line is pending until the scheduler delivers it on a CPU that has
interrupts enabled, at one of that CPU's preemption points; the handler then
runs on that CPU in hard-IRQ context with interrupts off, like
``handle_irq_event``; ``irq_exit`` then runs the softirqs it raised.  Shared lines run every action (IRQF_SHARED).
"""

from __future__ import annotations

from .cpu import current
from .softirq import irq_exit_softirq

__all__ = [
    "IRQ_NONE",
    "IRQ_HANDLED",
    "IRQF_SHARED",
    "IrqTable",
    "request_irq",
    "free_irq",
    "raise_irq",
    "synchronize_irq",
    "in_hardirq",
]

IRQ_NONE = 0
IRQ_HANDLED = 1
IRQF_SHARED = 0x80


class IrqTable:
    def __init__(self, kernel):
        self.kernel = kernel
        self.actions = {}  # irq -> [(handler, dev_id, name)]
        self.pending = []  # raised lines, in raise order (no duplicates)
        self.running = {}  # irq -> handlers of that line running now (synchronize_irq)
        self.unhandled = 0

    def request(self, irq, handler, flags, name, dev_id):
        actions = self.actions.setdefault(irq, [])
        if actions and not (flags & IRQF_SHARED):
            return -16  # -EBUSY
        actions.append((handler, dev_id, name))
        return 0

    def free(self, irq, dev_id):
        self.actions[irq] = [a for a in self.actions.get(irq, []) if a[1] is not dev_id]

    def raise_line(self, irq):
        if irq not in self.pending:
            self.pending.append(irq)

    async def handle(self, cpu, irq):
        """Run on ``cpu`` by the scheduler: ``handle_irq_event`` in hard-IRQ context."""
        k = self.kernel
        saved_irqs, saved_blocked = cpu.irqs_enabled, cpu.blocked_on
        cpu.blocked_on = None
        cpu.irqs_enabled = False
        cpu.hardirq += 1
        for fn in k.hooks.hardirq_enter:
            fn(cpu, irq)
        handled = IRQ_NONE
        self.running[irq] = self.running.get(irq, 0) + 1
        for handler, dev_id, _name in list(self.actions.get(irq, [])):
            handled |= await handler(irq, dev_id)
        self.running[irq] -= 1
        if handled == IRQ_NONE:
            self.unhandled += 1
        for fn in k.hooks.hardirq_exit:
            fn(cpu, irq)
        cpu.hardirq -= 1
        await irq_exit_softirq(cpu)  # irq_exit(): pending softirqs run here (model.kernel.softirq)
        cpu.irqs_enabled = saved_irqs
        cpu.blocked_on = saved_blocked


def request_irq(kernel, irq, handler, flags=0, name="irq", dev_id=None):
    """``request_irq(irq, handler, flags, name, dev_id)``; handler is ``async (irq, dev_id)``."""
    return kernel.irq.request(irq, handler, flags, name, dev_id)


def free_irq(kernel, irq, dev_id=None):
    kernel.irq.free(irq, dev_id)


class _IrqIdle:
    """What ``synchronize_irq`` waits for: no handler of ``irq`` runs."""

    __slots__ = ("table", "irq")

    def __init__(self, table, irq):
        self.table = table
        self.irq = irq

    def ready(self):
        return not self.table.running.get(self.irq)

    def __repr__(self):
        return f"synchronize_irq({self.irq})"


async def synchronize_irq(kernel, irq):
    """``synchronize_irq(irq)``: wait until no handler of ``irq`` runs on any
    CPU (a raised, undelivered line is not waited for).  It sleeps."""
    cpu = current()
    for fn in kernel.hooks.might_sleep:
        fn(cpu, "synchronize_irq")
    idle = _IrqIdle(kernel.irq, irq)
    await cpu.sched.point(cpu)
    while not idle.ready():
        await cpu.sched.wait(cpu, idle)


def raise_irq(kernel, irq):
    """A device asserts ``irq`` (or a CPU sends it): it becomes pending."""
    kernel.irq.raise_line(irq)
    for fn in kernel.hooks.event:
        fn(None, "irq-raised", irq)


def in_hardirq():
    return current().hardirq > 0
