"""Local interrupt state (include/linux/irqflags.h).

``local_irq_save`` returns ``flags``: here the previous irq state.  Enabling
interrupts is a preemption point (a pending one may fire there); each change
emits the ``irqs(cpu, enabled)`` hook.
"""

from __future__ import annotations

from .cpu import current

__all__ = ["local_irq_disable", "local_irq_enable", "local_irq_save", "local_irq_restore", "irqs_disabled"]


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
