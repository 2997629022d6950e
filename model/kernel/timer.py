"""Timers (kernel/time/timer.c, include/linux/timer.h) and the local timer
interrupt that drives them and RCU's callbacks (the tick).

Time is virtual: ``expires`` orders the timers that fire together, nothing
else.  An armed timer fires at a point the scheduler chooses, as the
kernel's does when its CPU's tick comes:

* arming a timer raises the tick, a hard-IRQ line (:data:`TICK_IRQ`, the
  arch timer; requested on first use);
* the scheduler delivers it on a CPU with interrupts enabled, at one of its
  preemption points (any CPU: timers migrate); its handler raises
  ``TIMER_SOFTIRQ`` (``run_local_timers``), which runs at ``irq_exit`` or,
  if that CPU had BH disabled, at its ``local_bh_enable`` (``model.kernel.softirq``);
* the softirq handler (``run_timer_softirq``) runs every armed timer, in
  ``expires`` order, each one's callback in softirq context (interrupts on,
  off for a ``TIMER_IRQSAFE`` one) through
  ``call_timer_fn``: ``lock_map_acquire(&timer->lockdep_map)`` around it, so
  that ``timer_delete_sync`` under a lock the callback takes is the
  circular dependency lockdep reports.

What the model guarantees:

* a timer's callback never runs on two CPUs at once (a timer armed again
  while its callback runs waits for it: the kernel keeps it on the running
  base); ``timer_delete_sync`` returns with the timer inactive and its
  callback not running, ordered after that callback (``sync`` on the
  timer), and so is a callback after its ``mod_timer``;
* the tick line is pending exactly while an armed timer whose callback is
  not running (or an RCU callback whose grace period ended,
  ``model.kernel.rcu``) waits for it: deleting the last armed timer
  withdraws it, as reprogramming the clock event device would; and a run
  does not end while it is pending and a CPU can take it;
* a run ends: work made by tick work (a callback re-arming its timer, an
  RCU callback queueing another) raises the tick again only
  :data:`MAX_TICK_DEPTH` generations deep; deeper, it waits for a tick that
  something else raises.  So a periodic timer fires twice per arming from
  outside its callback (its re-arm races are covered) and cannot keep a run
  alive;
* a timer still armed when the run ends never fired, like an unflushed
  timer on a machine that stops; teardown code (no scheduler: no tick is
  delivered) may ``timer_delete_sync`` it.  A timer armed at boot fires
  during the run; one armed in teardown never does.

``timer_delete_sync`` may spin (it does not sleep) but not in hard-IRQ
context unless ``TIMER_IRQSAFE``, nor from the timer's own callback (it
would wait for itself): both are a WARN.  A callback must return with the
preempt count it had (``timer: ... preempt leak``: a WARN).

Per-run state (the timer base, what each CPU's tick work is) lives on the
kernel; a :class:`TimerList` holds only its name, callback and flags.
"""

from __future__ import annotations

from .completion import LockdepMap, lock_map_acquire, lock_map_release
from .cpu import ModelBug, current
from .irq import IRQ_HANDLED, IRQF_SHARED, raise_irq, request_irq
from .locks import _set_irqs, local_irq_restore, local_irq_save
from .softirq import TIMER_SOFTIRQ, open_softirq, raise_softirq_irqoff

__all__ = [
    "TICK_IRQ",
    "MAX_TICK_DEPTH",
    "TIMER_DEFERRABLE",
    "TIMER_PINNED",
    "TIMER_IRQSAFE",
    "TimerList",
    "timer_setup",
    "mod_timer",
    "add_timer",
    "timer_pending",
    "timer_delete",
    "timer_delete_sync",
    "timer_shutdown_sync",
    "try_to_del_timer_sync",
    "del_timer",
    "del_timer_sync",
    "tick",
]

#: the local timer interrupt (arm64 arch timer, non-secure physical PPI)
TICK_IRQ = 30

#: how many generations of tick work (a timer re-armed by its callback, ...)
#: raise the tick themselves: 0 is work made outside any tick work
MAX_TICK_DEPTH = 1

# include/linux/timer.h
TIMER_DEFERRABLE = 0x00080000
TIMER_PINNED = 0x00100000
TIMER_IRQSAFE = 0x00200000


# -- the tick ----------------------------------------------------------------------


class _Tick:
    """The tick of one run: who needs it, and the depth of the tick work each
    CPU runs now (``depth[cpu]``, absent when it runs none)."""

    __slots__ = ("kernel", "users", "depth")

    def __init__(self, kernel):
        self.kernel = kernel
        self.users = []  # (softirq nr, wanted(), needed()): per subsystem
        self.depth = {}
        if request_irq(kernel, TICK_IRQ, self.interrupt, IRQF_SHARED, "arch_timer", self):
            raise ModelBug(f"IRQ {TICK_IRQ} (the tick) is requested without IRQF_SHARED: use another line")

    def register(self, nr, wanted, needed):
        """A subsystem whose softirq ``nr`` the tick raises while ``wanted()`` (it
        has work ready); the line is raised while ``needed()`` (ready work that
        may raise it: not too deep)."""
        self.users.append((nr, wanted, needed))

    def depth_of(self, cpu):
        """The depth of work made now by ``cpu`` (0 outside tick work)."""
        return self.depth.get(cpu, -1) + 1

    async def interrupt(self, irq, dev_id):
        """The timer interrupt: raise each softirq that has work (``run_local_timers``,
        ``rcu_sched_clock_irq``)."""
        for nr, wanted, _needed in self.users:
            if wanted():
                raise_softirq_irqoff(nr)
        return IRQ_HANDLED

    def update(self):
        """Raise the line if some work needs it, withdraw it if none does."""
        k = self.kernel
        needed = any(needed() for _nr, _wanted, needed in self.users)
        pending = TICK_IRQ in k.irq.pending
        if needed and not pending:
            raise_irq(k, TICK_IRQ)
        elif not needed and pending:
            k.irq.pending.remove(TICK_IRQ)  # the clock event device is reprogrammed


def tick(kernel):
    """The run's tick (created, with its interrupt line, on first use)."""
    t = getattr(kernel, "tick", None)
    if t is None:
        t = kernel.tick = _Tick(kernel)
    return t


# -- timers ------------------------------------------------------------------------


class TimerList:
    """``struct timer_list``: ``name`` is the C expression of ``timer_setup``'s
    first argument (``&dev->timer``); its lockdep class is ``(&dev->timer)``.
    The callback is ``async def fn(timer)``."""

    __slots__ = ("name", "function", "flags", "lockdep_map")

    def __init__(self, name, function=None, flags=0):
        self.name = name
        self.function = None
        self.flags = 0
        self.lockdep_map = LockdepMap(f"({name})", sleeps=False)
        if function is not None:
            timer_setup(self, function, flags)

    def __repr__(self):
        return self.name


class _TimerState:
    """One timer in one run."""

    __slots__ = ("pending", "expires", "seq", "depth", "running", "shutdown")

    def __init__(self):
        self.pending = False
        self.expires = 0
        self.seq = 0  # arming order, among equal expires
        self.depth = 0  # tick-work generation of the arming (MAX_TICK_DEPTH)
        self.running = None  # the CPU running its callback
        self.shutdown = False


class _TimerBase:
    """The timer base of one run: every timer's state, the arming counter."""

    __slots__ = ("kernel", "timers", "seq", "tick")

    def __init__(self, kernel):
        self.kernel = kernel
        self.timers = {}
        self.seq = 0
        self.tick = tick(kernel)
        self.tick.register(TIMER_SOFTIRQ, self.wanted, self.needed)
        open_softirq(kernel, TIMER_SOFTIRQ, self.run_timer_softirq)

    def state(self, timer):
        st = self.timers.get(timer)
        if st is None:
            st = self.timers[timer] = _TimerState()
        return st

    def wanted(self):
        """An armed timer whose callback is not running: the softirq has work."""
        return any(st.pending and st.running is None for st in self.timers.values())

    def needed(self):
        return any(
            st.pending and st.running is None and st.depth <= MAX_TICK_DEPTH for st in self.timers.values()
        )

    async def run_timer_softirq(self):
        """``run_timer_softirq`` -> ``__run_timers``: every armed timer expired."""
        cpu = current()
        expired = sorted(
            ((st.expires, st.seq, t) for t, st in self.timers.items() if st.pending and st.running is None),
            key=lambda e: (e[0], e[1]),
        )
        for _expires, _seq, timer in expired:
            st = self.timers[timer]
            if not st.pending or st.running is not None:
                continue  # deleted, or re-armed and taken, by an earlier callback
            st.pending = False  # detach_timer()
            st.running = cpu  # base->running_timer
            _sync(cpu, timer)
            await call_timer_fn(cpu, timer, st.depth)
            _sync(cpu, timer)
            st.running = None
        self.tick.update()


def _base(kernel):
    base = getattr(kernel, "timer_base", None)
    if base is None:
        base = kernel.timer_base = _TimerBase(kernel)
    return base


def _sync(cpu, obj):
    for fn in cpu.kernel.hooks.sync:
        fn(cpu, obj)


def _event(cpu, what):
    for fn in cpu.kernel.hooks.event:
        fn(cpu, "timer", what)


async def call_timer_fn(cpu, timer, depth):
    """``call_timer_fn``: the callback under the timer's lockdep map (coupled with
    the one ``timer_delete_sync`` takes), with interrupts off for a
    ``TIMER_IRQSAFE`` timer; its preempt count must come back."""
    t = tick(cpu.kernel)
    t.depth[cpu] = depth
    count = cpu.preempt
    irqsafe = timer.flags & TIMER_IRQSAFE
    if irqsafe:
        _set_irqs(cpu, False)  # expire_timers(): an irqsafe timer's callback runs with irqs off
    _event(cpu, f"{timer.name} fires")
    lock_map_acquire(cpu, timer.lockdep_map)
    await timer.function(timer)
    lock_map_release(cpu, timer.lockdep_map)
    if irqsafe:
        _set_irqs(cpu, True)
    del t.depth[cpu]
    if cpu.preempt != count:
        fn = getattr(timer.function, "__qualname__", repr(timer.function))
        cpu.kernel.warn(f"timer: {fn} preempt leak: {count:08x} -> {cpu.preempt:08x}")


def timer_setup(timer, callback, flags=0):
    """``timer_setup(timer, callback, flags)``: ``callback`` is ``async def fn(timer)``."""
    timer.function = callback
    timer.flags = flags


async def mod_timer(timer, expires=0):
    """``mod_timer(timer, expires)``: (re)arm; 1 if it was armed, else 0.  Never
    sleeps; a preemption point (``lock_timer_base``)."""
    cpu = current()
    await cpu.sched.point(cpu)
    base = _base(cpu.kernel)
    st = base.state(timer)
    if timer.function is None:
        cpu.kernel.warn(f"mod_timer({timer!r}) before timer_setup()")
        return 0
    if st.shutdown:
        return 0  # timer_shutdown*(): arming is silently ignored
    ret = 1 if st.pending else 0
    base.seq += 1
    st.pending = True
    st.expires = expires
    st.seq = base.seq
    st.depth = base.tick.depth_of(cpu)
    _sync(cpu, timer)
    _event(cpu, f"{timer.name} armed (expires {expires})")
    base.tick.update()
    return ret


async def add_timer(timer, expires=0):
    """``add_timer(timer)`` with ``timer->expires = expires``: arming a timer that
    is already armed is a WARN (and does nothing)."""
    cpu = current()
    st = _base(cpu.kernel).state(timer)
    if st.pending:
        cpu.kernel.warn(f"add_timer({timer!r}): timer already pending")
        return
    await mod_timer(timer, expires)


def timer_pending(timer):
    """``timer_pending(timer)``: armed and not yet fired (no preemption point)."""
    base = getattr(current().kernel, "timer_base", None)
    st = base.timers.get(timer) if base is not None else None
    return bool(st is not None and st.pending)


async def timer_delete(timer):
    """``timer_delete(timer)``: deactivate; 1 if it was armed.  The callback may
    still be running on another CPU when it returns."""
    cpu = current()
    await cpu.sched.point(cpu)
    base = _base(cpu.kernel)
    st = base.state(timer)
    ret = 1 if st.pending else 0
    st.pending = False
    _sync(cpu, timer)
    base.tick.update()
    return ret


async def try_to_del_timer_sync(timer):
    """``try_to_del_timer_sync(timer)``: -1 if its callback is running (nothing
    done), else ``timer_delete``'s result."""
    cpu = current()
    await cpu.sched.point(cpu)
    base = _base(cpu.kernel)
    st = base.state(timer)
    if st.running is not None:
        return -1
    ret = 1 if st.pending else 0
    st.pending = False
    _sync(cpu, timer)
    base.tick.update()
    return ret


class _TimerIdle:
    """What ``timer_delete_sync`` waits for: the callback of ``timer`` returned."""

    __slots__ = ("timer", "st")

    def __init__(self, timer, st):
        self.timer = timer
        self.st = st

    def ready(self):
        return self.st.running is None

    def __repr__(self):
        return f"timer_delete_sync({self.timer!r})"


async def _delete_sync(timer, shutdown):
    cpu = current()
    # Couple with call_timer_fn's acquisition (irqs off, as the C: no
    # HARDIRQ-ON usage from here).
    flags = local_irq_save()
    lock_map_acquire(cpu, timer.lockdep_map)
    lock_map_release(cpu, timer.lockdep_map)
    await local_irq_restore(flags)
    if cpu.hardirq and not timer.flags & TIMER_IRQSAFE:
        cpu.kernel.warn(f"timer_delete_sync({timer!r}) in hard-IRQ context")
    await cpu.sched.point(cpu)
    base = _base(cpu.kernel)
    st = base.state(timer)
    ret = 1 if st.pending else 0
    st.pending = False
    if shutdown:
        st.shutdown = True
    base.tick.update()
    if st.running is cpu:
        # The C would spin forever on its own running callback.
        cpu.kernel.warn(f"timer_delete_sync({timer!r}) from its own callback")
        return ret
    idle = None
    while st.running is not None:
        if idle is None:
            idle = _TimerIdle(timer, st)
        await cpu.sched.wait(cpu, idle)  # del_timer_wait_running(); cpu_relax()
        st.pending = False  # re-armed while it ran: deactivate again
    _sync(cpu, timer)  # the base lock: after the callback, if it ran
    if idle is not None:
        base.tick.update()
    return ret


async def timer_delete_sync(timer):
    """``timer_delete_sync(timer)``: deactivate and wait for a running callback;
    1 if it was armed.  Does not sleep; not from hard IRQ (unless
    ``TIMER_IRQSAFE``) nor from the timer's own callback (WARN)."""
    return await _delete_sync(timer, False)


async def timer_shutdown_sync(timer):
    """``timer_shutdown_sync(timer)``: ``timer_delete_sync``, and later arming
    is ignored (teardown)."""
    return await _delete_sync(timer, True)


del_timer = timer_delete
del_timer_sync = timer_delete_sync
