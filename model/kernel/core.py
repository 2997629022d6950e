"""The kernel object, the per-CPU state and the event hooks.

A :class:`Kernel` is one simulated machine: its CPUs, interrupt table, page
allocator and the observers that watch it.  Model code never sees the
scheduler: every preemption point is ``await cpu.sched.point(cpu)``, and the
engine (``stress``) plugs in the object behind ``cpu.sched``.  Without an
engine, :data:`NULL_SCHED` runs everything straight through, which is what
unit tests of the model use.

``current()`` is the kernel's ``current``/``smp_processor_id()``: the CPU the
calling coroutine runs on, kept in a :mod:`contextvars` variable that the
engine sets in each CPU task.
"""

from __future__ import annotations

import contextvars
import sys

__all__ = [
    "HOOKS",
    "Cpu",
    "Kernel",
    "NULL_SCHED",
    "ModelBug",
    "current",
    "set_current",
    "model_stack",
]

#: Event names an observer may implement as methods.  Each is called with
#: plain positional arguments; see the primitive that emits it.
HOOKS = (
    "lock_acquire",  # (cpu, lock, trylock, subclass)  before waiting, as lockdep's lock_acquire
    "lock_acquired",  # (cpu, lock)          the lock is now held
    "lock_release",  # (cpu, lock)           before the release; may be a bad unlock
    "irqs",  # (cpu, enabled)                local irq state changed
    "hardirq_enter",  # (cpu, irq)
    "hardirq_exit",  # (cpu, irq)
    "might_sleep",  # (cpu, what)             a call that may schedule
    "alloc",  # (cpu, obj)                    a page or kmalloc object was handed out
    "free",  # (cpu, obj)                     it is being returned
    "access",  # (cpu, cell, is_write)        a Shared cell was read or written
    "op_begin",  # (cpu, name)                a workload operation starts on cpu
    "op_end",  # (cpu, name)                  ... and returned
    "mmio",  # (cpu, hw, reg, value, is_write) a register access
    "dma",  # (master, access)                a DMA master issued an access
    "walk",  # (hw, page)                     the table walker read a table page
    "event",  # (cpu, what, detail)           anything else worth a timeline line
    "sync",  # (cpu, obj)                    an ordering point on obj (dev->power.lock, atomics): acquire+release
    "iommu",  # (cpu, what, info)             IOMMU core / DMA-API facts for oracles (model.iommu)
    "run_end",  # (kernel,)                   all CPUs are done: end-of-run checks
)


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
        self.preempt = 0  # preempt_count from spinlocks
        self.held = []  # locks held, in acquisition order
        self.blocked_on = None  # object with .ready() this CPU waits for
        self.ctl = None  # engine-private state
        self.op = None  # name of the workload operation running

    def in_atomic(self):
        return self.preempt > 0 or not self.irqs_enabled or self.hardirq > 0

    def __repr__(self):
        return self.name


_current: contextvars.ContextVar[Cpu] = contextvars.ContextVar("current")


def current() -> Cpu:
    """The CPU running the calling coroutine (the kernel's ``current``)."""
    return _current.get()


def set_current(cpu: Cpu):
    """Bind the calling task to ``cpu``; returns the reset token."""
    return _current.set(cpu)


def model_stack(skip=1, limit=12):
    """Function names of the calling model code, innermost first.

    Used for the stacks of splats.  Engine frames (checkers) are skipped and
    the walk stops at the scheduler; kernel primitives appear by name only,
    everything else as ``function+line``.  How a code object is shown is
    decided once and cached: this runs on every lock acquisition.
    """
    f = sys._getframe(skip)
    out = []
    while f is not None and len(out) < limit:
        code = f.f_code
        how = _HOW.get(code)
        if how is None:
            how = _HOW[code] = _classify(f)
        if how is _STOP:
            break
        if how is _LINE:
            out.append(f"{code.co_name}+{f.f_lineno}")
        elif how is not _SKIP:
            out.append(how)
        f = f.f_back
    return tuple(out)


_STOP, _SKIP, _LINE = object(), object(), object()
_HOW = {}
_STOP_MODULES = frozenset({"stress.scheduler", "stress.engine"})
_SKIP_PREFIXES = ("stress.lockdep", "stress.race", "stress.trace", "stress.oracles", "stress.checkers")


def _classify(frame):
    mod = frame.f_globals.get("__name__", "")
    name = frame.f_code.co_name
    if mod in _STOP_MODULES or mod.startswith(("trio", "outcome", "hypothesis")):
        return _STOP
    if mod.startswith("model.kernel"):
        return name if name in _PRIMITIVES else _SKIP
    if mod.startswith(_SKIP_PREFIXES):
        return _SKIP
    return _LINE


# Primitive names that stay visible in stacks (the rest of model.kernel is plumbing).
_PRIMITIVES = frozenset(
    {
        "spin_lock",
        "spin_lock_irqsave",
        "spin_lock_nested",
        "spin_trylock",
        "spin_lock_irq",
        "mutex_unlock",
        "spin_unlock",
        "spin_unlock_irqrestore",
        "free_pages",
        "kfree",
        "mutex_lock",
        "msleep",
        "might_sleep",
        "alloc_pages",
        "kmalloc",
        "pm_runtime_resume_and_get",
        "pm_runtime_get_sync",
    }
)


class _Hooks:
    """One list of observer callables per hook name."""

    __slots__ = HOOKS

    def __init__(self):
        for name in HOOKS:
            setattr(self, name, [])


class Kernel:
    """One simulated machine.

    ``kernel.cpus`` are created by whoever runs the scenario (the engine, or
    :meth:`add_cpu` in plain tests).  Subsystems (page allocator, IRQ table,
    runtime PM) hang off it as attributes.
    """

    def __init__(self):
        from .irq import IrqTable
        from .mm import PageAllocator

        self.hooks = _Hooks()
        self.observers = []
        self.cpus = []
        self.irq = IrqTable(self)
        self.mm = PageAllocator(self)
        self.devices = []  # hardware or PM agents that want end-of-run checks
        self.agents = []  # (name, kind, body, daemon): DMA masters, PM worker
        self.report = _no_report
        self.setup = []  # async callables run before the CPUs start (boot)
        self.teardown = []  # async callables run after every CPU is done

    def add_cpu(self, kind="cpu", name=None):
        cpu = Cpu(self, len(self.cpus), kind, name)
        self.cpus.append(cpu)
        return cpu

    def add_agent(self, name, body, kind="dma", daemon=False):
        """Schedule ``body()`` as one more actor beside the CPUs.

        A DMA master or the runtime-PM worker is chosen by the same chooser as
        the CPUs.  A ``daemon`` agent waits for work (``sched.wait`` on an
        object with ``ready()``) and is stopped when every other actor is done.
        """
        self.agents.append((name, kind, body, daemon))

    def add_setup(self, fn):
        """Run ``await fn()`` at boot, on the boot CPU, before any CPU starts.

        Boot runs without preemption (nothing else exists yet): probe, the
        first domains, anything a scenario needs in place.  Hooks fire as
        usual, so allocations made here are tracked.
        """
        self.setup.append(fn)

    def add_teardown(self, fn):
        """Run ``await fn()`` after every CPU finished, before the end-of-run checks."""
        self.teardown.append(fn)

    def attach(self, observer):
        """Attach an observer: each of its methods named after a hook is called."""
        self.observers.append(observer)
        for name in HOOKS:
            fn = getattr(observer, name, None)
            if fn is not None:
                getattr(self.hooks, name).append(fn)

    def warn(self, message):
        """WARN_ON(): report an ``assertion`` through the engine."""
        self.report("assertion", message, stacks={"warn": model_stack(2)})


def _no_report(kind, message, **detail):
    raise ModelBug(f"{kind}: {message}")
