"""The kernel object and the event hooks (the per-CPU state is in :mod:`.cpu`).

A :class:`Kernel` is one simulated machine: its CPUs, interrupt table, page
allocator and the observers that watch it.  Model code never sees the
scheduler: every preemption point is ``await cpu.sched.point(cpu)``, and the
engine (``stress``) plugs in the object behind ``cpu.sched``.  Without an
engine, :data:`NULL_SCHED` runs everything straight through, which is what
unit tests of the model use.
"""

from __future__ import annotations

from .cpu import NULL_SCHED, Cpu, ModelBug, _current, current, set_current  # noqa: F401  (re-exported)
from .irq import IrqTable
from .locks import LockStore
from .mm import PageAllocator
from .stacks import coro_stack, model_stack, traceback_stack  # noqa: F401  (model_stack is re-exported)

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
    "lock_acquire",  # (cpu, lock, trylock, subclass, read=0)  before waiting, as lockdep's lock_acquire (read: 1 read, 2 recursive read)
    "lock_acquired",  # (cpu, lock)          the lock is now held
    "lock_release",  # (cpu, lock)           before the release; may be a bad unlock
    "irqs",  # (cpu, enabled)                local irq state changed
    "hardirq_enter",  # (cpu, irq)
    "hardirq_exit",  # (cpu, irq)
    "softirq_enter",  # (cpu, nr)             a softirq handler starts (in_serving_softirq)
    "softirq_exit",  # (cpu, nr)              ... and returned
    "bh",  # (cpu, enabled)                   softirqs got enabled/disabled on cpu (local_bh_*), as lockdep_softirqs_on/off
    "might_sleep",  # (cpu, what)             a call that may schedule
    "alloc",  # (cpu, obj)                    a page or kmalloc object was handed out
    "free",  # (cpu, obj)                     it is being returned
    "access",  # (cpu, cell, is_write, marked=False)  a Shared cell was read or written (marked: READ_ONCE & co, model.kernel.shared)
    "op_begin",  # (cpu, name)                a workload operation starts on cpu
    "op_end",  # (cpu, name)                  ... and returned
    "mmio",  # (cpu, hw, reg, value, is_write) a register access
    "table",  # (cpu, page, index, is_write)  a CPU load or store of a table page's word (model.kernel.dma)
    "dma",  # (master, access)                a DMA master issued an access
    "walk",  # (hw, page, rests)              the table walker used a table page (rests: model.hw.walker)
    "event",  # (cpu, what, detail)           anything else worth a timeline line
    "sync",  # (cpu, obj)                    an ordering point on obj (dev->power.lock, atomics): acquire+release
    "oob",  # (cpu, view, field, what)       a field read outside any object (container_of of a foreign one)
    "iommu",  # (cpu, what, info)             IOMMU core / DMA-API facts for oracles (model.iommu)
    "run_end",  # (kernel,)                   all CPUs are done: end-of-run checks
    "rpm_usage",  # (cpu, dev, delta, api, link) dev->power.usage_count changed (model.kernel.pm)
)


class _Hooks:
    """One list of observer callables per hook name."""

    __slots__ = HOOKS

    def __init__(self):
        for name in HOOKS:
            setattr(self, name, [])


_HOOKS_OF = {}  # class -> (its classes' attribute counts, the names of HOOKS found on it, or HOOKS: it has __getattr__)


def _hook_names(observer):
    """The names of :data:`HOOKS` that ``observer`` may implement, in that
    order: those its class has, and those set on the instance.  A miss of
    ``getattr`` raises and catches an AttributeError inside, so an observer
    attached every schedule (a scenario without a boot image) is looked up
    once per class, not once per hook: again only when an attribute was
    added to (or deleted from) a class of its MRO since."""
    cls = type(observer)
    shape = [len(c.__dict__) for c in cls.__mro__[:-1]]  # object's own never change
    known = _HOOKS_OF.get(cls)
    if known is not None and known[0] == shape:
        names = known[1]
    else:
        dynamic = any("__getattr__" in vars(c) for c in cls.__mro__[:-1])
        names = HOOKS if dynamic else tuple(n for n in HOOKS if hasattr(cls, n))
        _HOOKS_OF[cls] = (shape, names)
    own = getattr(observer, "__dict__", None)
    if own and names is not HOOKS and not _HOOK_SET.isdisjoint(own):
        names = tuple(n for n in HOOKS if n in names or n in own)
    return names


_HOOK_SET = frozenset(HOOKS)


class Kernel:
    """One simulated machine.

    ``kernel.cpus`` are created by whoever runs the scenario (the engine, or
    :meth:`add_cpu` in plain tests).  Subsystems (page allocator, IRQ table,
    runtime PM) hang off it as attributes.
    """

    def __init__(self):
        self.hooks = _Hooks()
        self.observers = []
        self.cpus = []
        self.irq = IrqTable(self)
        self.mm = PageAllocator(self)
        self.locks = LockStore()  # per-run lock state (owner, FIFO of waiters)
        self.devices = []  # hardware or PM agents that want end-of-run checks
        self.agents = []  # (name, kind, body, daemon): DMA masters, PM worker
        self.report = _no_report
        self.setup = []  # async callables run before the CPUs start (boot)
        self.teardown = []  # async callables run after every CPU is done
        self.cells = {}  # Shared cell -> its value in this run (model.kernel.shared)
        self.statics = {}  # memory outside any object that a run touched (model.iommu.domain.OutOfBounds)
        # Failure injection (fail_nth): when set, every allocation and
        # dma_map_single a scheduled CPU makes is a failure point whose
        # outcome the engine decides (``cpu.sched.fail_point``, see
        # ``model.kernel.mm.should_fail``); boot and teardown never fail.
        self.inject_failures = False

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
        hooks = self.hooks
        for name in _hook_names(observer):
            fn = getattr(observer, name, None)
            if fn is not None:
                getattr(hooks, name).append(fn)

    def warn(self, message):
        """WARN_ON(): report an ``assertion`` through the engine."""
        self.report("assertion", message, stacks={"warn": model_stack(2)})


def _no_report(kind, message, **detail):
    raise ModelBug(f"{kind}: {message}")
