"""Softirqs and BH-disabled sections (kernel/softirq.c, include/linux/bottom_half.h).

Per CPU, as ``preempt_count``'s softirq bits: ``cpu.bh`` counts
``local_bh_disable()`` nesting (SOFTIRQ_DISABLE_OFFSET), ``cpu.softirq`` is 1
while a softirq handler runs (SOFTIRQ_OFFSET, ``in_serving_softirq()``).
``in_softirq()`` is either.  A softirq raised on a CPU is pending on that CPU
(``local_softirq_pending()``) and its handlers run on that CPU, in
``__do_softirq``: serving, interrupts enabled, every pending number in order
until none is left; a hard IRQ may interrupt them, a softirq never nests.

Where the pending ones run, as the kernel's:

* ``local_bh_enable()`` that ends the last BH-disabled section outside
  interrupt context (``__local_bh_enable_ip`` -> ``do_softirq``);
* ``irq_exit()`` of a hard IRQ whose CPU was not in a softirq and had BH
  enabled (``invoke_softirq``);
* raised from task context with BH enabled (``raise_softirq`` ->
  ``wakeup_softirqd``): ksoftirqd would run them on this CPU, in the same
  serving context; the model runs them right away on the raising CPU (a
  different task, the same CPU and context: what lockdep and the race
  checker see is the same).

Hooks: ``bh(cpu, enabled)`` when softirqs get disabled or enabled on a CPU
(lockdep_softirqs_off/on: the first disable, the last enable, and around a
handler), ``softirq_enter(cpu, nr)``/``softirq_exit(cpu, nr)`` around each
handler.  :func:`softirqs_enabled` is lockdep's ``softirqs_enabled`` of the
CPU's current context, :func:`has_softirqs` whether any code can run in
softirq context at all: lockdep tracks the SOFTIRQ state of lock classes
only in a kernel with an open softirq (``stress.lockdep``), so open them
where the scenario builds its kernel (or in ``kernel.add_setup``), before
the first lock is taken.
"""

from __future__ import annotations

from .cpu import current
from .irqflags import _set_irqs, local_irq_restore, local_irq_save

__all__ = [
    "HI_SOFTIRQ",
    "TIMER_SOFTIRQ",
    "NET_TX_SOFTIRQ",
    "NET_RX_SOFTIRQ",
    "BLOCK_SOFTIRQ",
    "TASKLET_SOFTIRQ",
    "RCU_SOFTIRQ",
    "open_softirq",
    "raise_softirq",
    "raise_softirq_irqoff",
    "local_bh_disable",
    "local_bh_enable",
    "in_softirq",
    "in_serving_softirq",
    "in_interrupt",
    "do_softirq",
    "irq_exit_softirq",
    "has_softirqs",
    "softirqs_enabled",
]

# enum { HI_SOFTIRQ=0, TIMER_SOFTIRQ, NET_TX_SOFTIRQ, NET_RX_SOFTIRQ, BLOCK_SOFTIRQ, IRQ_POLL_SOFTIRQ, TASKLET_SOFTIRQ, SCHED_SOFTIRQ, HRTIMER_SOFTIRQ, RCU_SOFTIRQ }
HI_SOFTIRQ = 0
TIMER_SOFTIRQ = 1
NET_TX_SOFTIRQ = 2
NET_RX_SOFTIRQ = 3
BLOCK_SOFTIRQ = 4
TASKLET_SOFTIRQ = 6
RCU_SOFTIRQ = 9


def _vec(kernel):
    """``softirq_vec``: nr -> async handler(), per run."""
    vec = getattr(kernel, "softirq_vec", None)
    if vec is None:
        vec = kernel.softirq_vec = {}
    return vec


def _pending(cpu):
    """This CPU's pending softirq numbers (``local_softirq_pending()``), per run."""
    pend = getattr(cpu.kernel, "softirq_pending", None)
    if pend is None:
        pend = cpu.kernel.softirq_pending = {}
    return pend.setdefault(cpu.id, set())


def open_softirq(kernel, nr, action):
    """``open_softirq(nr, action)``: ``action`` is ``async def action()``."""
    _vec(kernel)[nr] = action


def has_softirqs(kernel):
    """Whether some softirq action is open on ``kernel`` (only then can code run in softirq context)."""
    return bool(getattr(kernel, "softirq_vec", None))


def softirqs_enabled(cpu):
    """lockdep's ``softirqs_enabled`` for ``cpu``'s context: neither serving a softirq nor BH-disabled."""
    return not cpu.bh and not cpu.softirq


def in_softirq():
    cpu = current()
    return cpu.softirq > 0 or cpu.bh > 0


def in_serving_softirq():
    return current().softirq > 0


def in_interrupt():
    return current().in_interrupt()


def _softirqs_enabled(cpu, enabled):
    for fn in cpu.kernel.hooks.bh:
        fn(cpu, enabled)


def local_bh_disable():
    """``local_bh_disable()``: the first level turns softirqs off (lockdep_softirqs_off)."""
    cpu = current()
    cpu.bh += 1
    if cpu.bh == 1 and not cpu.softirq:
        _softirqs_enabled(cpu, False)


async def local_bh_enable():
    """``local_bh_enable()``: the last level turns softirqs on and, outside
    interrupt context, runs the pending ones (``do_softirq``).  A preemption
    point.  With interrupts disabled it is a WARN, as ``__local_bh_enable_ip``'s
    ``lockdep_assert_irqs_enabled()``."""
    cpu = current()
    if cpu.hardirq or not cpu.irqs_enabled:
        cpu.kernel.warn(f"local_bh_enable() on {cpu!r} with interrupts disabled")
    if cpu.bh <= 0:
        cpu.kernel.warn(f"local_bh_enable() on {cpu!r} without local_bh_disable()")
        return
    cpu.bh -= 1
    if cpu.bh == 0 and not cpu.softirq:
        _softirqs_enabled(cpu, True)
        if not cpu.hardirq and _pending(cpu):
            await do_softirq(cpu)
    await cpu.sched.point(cpu)


def raise_softirq_irqoff(nr):
    """``raise_softirq_irqoff(nr)``: pending on this CPU; run as the module says."""
    _pending(current()).add(nr)


async def raise_softirq(nr):
    """``raise_softirq(nr)``: from task context with BH enabled, ksoftirqd runs
    it (here, now, on this CPU); else at the end of the BH section or IRQ."""
    cpu = current()
    flags = local_irq_save()  # raise_softirq(): local_irq_save(); raise_softirq_irqoff(); local_irq_restore()
    _pending(cpu).add(nr)
    await local_irq_restore(flags)
    if not cpu.in_interrupt() and cpu.irqs_enabled:
        await do_softirq(cpu)


async def do_softirq(cpu):
    """``__do_softirq`` on ``cpu``: serving, interrupts on, each pending
    handler in number order, until nothing is pending."""
    pending = _pending(cpu)
    if not pending or cpu.softirq:
        return
    saved_irqs = cpu.irqs_enabled
    cpu.softirq = 1
    if not cpu.bh:
        _softirqs_enabled(cpu, False)
    vec = _vec(cpu.kernel)
    while pending:
        nr = min(pending)
        pending.discard(nr)
        action = vec.get(nr)
        if action is None:
            continue
        _set_irqs(cpu, True)
        for fn in cpu.kernel.hooks.softirq_enter:
            fn(cpu, nr)
        await action()
        for fn in cpu.kernel.hooks.softirq_exit:
            fn(cpu, nr)
    _set_irqs(cpu, saved_irqs)
    cpu.softirq = 0
    if not cpu.bh:
        _softirqs_enabled(cpu, True)


async def irq_exit_softirq(cpu):
    """``irq_exit()``'s ``invoke_softirq``: run pending softirqs if the
    interrupted CPU was neither in a softirq nor BH-disabled."""
    if not cpu.hardirq and not cpu.softirq and not cpu.bh and _pending(cpu):
        await do_softirq(cpu)
