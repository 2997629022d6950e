"""Workqueues (kernel/workqueue.c, include/linux/workqueue.h).

A workqueue (:class:`WorkqueueStruct`) runs queued work items
(:class:`WorkStruct`, ``fn`` an ``async def fn(work)``) on kworker agents:
daemon actors beside the CPUs (``kernel.add_agent(..., kind="kworker",
daemon=True)``), scheduled by the same chooser, in process context
(interrupts on, may sleep).  So work runs concurrently with the CPUs and
with other work, at points the scheduler chooses.

The workers of a workqueue are created with it, and the engine starts every
agent when the CPUs start: **workqueues are created when the scenario is
built or at boot** (``alloc_workqueue(kernel, ...)``, ``workqueue_init(kernel)``
for ``system_wq``, in the scenario function or a ``kernel.add_setup``
function).  Creating one later is a ``ModelBug`` (an ``assertion``) that
says so.

What the model guarantees, as the kernel does:

* ``queue_work`` sets the work pending and returns True, or returns False if
  it already was (or is being cancelled); it never sleeps (IRQ-safe);
* a work item never runs on two workers at once (non-reentrant): queued
  again while it runs, it runs again after;
* an ordered workqueue (``max_active == 1``, ``alloc_ordered_workqueue``)
  runs one item at a time, in queue order, on one kworker; any other runs
  :data:`WQ_WORKERS` items at once (``alloc_workqueue(..., workers=n)`` for
  more): the concurrency its pool would give them, bounded so the schedules
  stay few (workers are interchangeable, so only the first idle one takes
  work).  The kernel's pool creates a kworker when all are busy; here a
  chain of more items waiting for one another than the workqueue has
  kworkers deadlocks, so give such a workqueue enough;
* ``flush_work`` waits until the instance queued or running when it was
  called has finished (True), or returns False at once if there is none;
  ``cancel_work_sync`` takes a pending instance off the queue (True if there
  was one) and waits for a running one, while ``queue_work`` of it fails;
  ``flush_workqueue`` waits for every item queued or running on entry;
  ``destroy_workqueue`` drains it first, and queueing on it after is a WARN;
* ordering, for the race checker (the ``sync`` hook on the work, as the
  PENDING bit and ``pool->lock`` order them): what a CPU did before
  ``queue_work`` happens before the work runs, and the work's run happens
  before the return of a ``flush_work``/``cancel_work_sync``/
  ``flush_workqueue`` that waited for it (and of any later one);
* lockdep, as ``process_one_work`` annotates it: the worker acquires the
  workqueue's map (class ``(wq_completion)name``) then the work's (class
  ``(work_completion)(&dev->work)``, one per ``WorkStruct`` name: the
  ``INIT_WORK`` site) around ``fn``; ``flush_work`` and ``cancel_work_sync``
  acquire and release the work's map when there is an instance to wait for
  (``start_flush_work``: ``touch_work_lockdep_map``), ``flush_work`` on an
  ordered or ``WQ_MEM_RECLAIM`` workqueue and ``flush_workqueue`` the
  workqueue's map too.  So flushing or cancelling a work while holding a
  lock the work takes is a ``lock-inversion``, and flushing a work of an
  ordered workqueue from a work of that workqueue is a ``recursive-locking``;
* a work function that returns with a lock held, interrupts or BH disabled,
  a spinlock's preempt count or inside ``rcu_read_lock()`` is the kernel's
  "BUG: workqueue leaked atomic, lock or RCU" (``lock-held-at-exit``);
* a kworker still inside a work item when the run ends (blocked forever,
  with no CPU waiting for it: the scheduler ends a run whose only blocked
  actors are daemons) is the hung task the kernel's watchdog reports: a
  ``deadlock`` at the end of the run.

Not modelled: delayed work, freezable workqueues (``pm_wq`` has its own
model in ``model.kernel.pm``), CPU affinity (``queue_work_on``), rescuers
(``WQ_MEM_RECLAIM`` only changes the lockdep annotation), BH workqueues.

With no scheduler (boot, teardown, plain model tests) no kworker runs: a
flush that must wait for a queued item runs it itself, on the calling CPU.

Per-run state (which work is pending where, what each worker runs) is on
the workqueue (created per run) and the kernel (``kernel.workqueues``); a
``WorkStruct`` holds only its name, function and lockdep map, so one
defined at module level (``DECLARE_WORK``) starts every schedule idle.
"""

from __future__ import annotations

from .completion import LockdepMap, lock_map_acquire, lock_map_release
from .cpu import NULL_SCHED, ModelBug, _current, current
from .stacks import model_stack

__all__ = [
    "WQ_UNBOUND",
    "WQ_FREEZABLE",
    "WQ_MEM_RECLAIM",
    "WQ_HIGHPRI",
    "WQ_CPU_INTENSIVE",
    "WQ_SYSFS",
    "WQ_POWER_EFFICIENT",
    "__WQ_ORDERED",
    "WQ_MAX_ACTIVE",
    "WQ_DFL_ACTIVE",
    "WQ_WORKERS",
    "WorkStruct",
    "WorkqueueStruct",
    "INIT_WORK",
    "alloc_workqueue",
    "alloc_ordered_workqueue",
    "destroy_workqueue",
    "workqueue_init",
    "system_wq",
    "system_unbound_wq",
    "queue_work",
    "schedule_work",
    "work_pending",
    "flush_work",
    "cancel_work",
    "cancel_work_sync",
    "flush_workqueue",
    "drain_workqueue",
]

# enum wq_flags (include/linux/workqueue.h)
WQ_UNBOUND = 1 << 1
WQ_FREEZABLE = 1 << 2
WQ_MEM_RECLAIM = 1 << 3
WQ_HIGHPRI = 1 << 4
WQ_CPU_INTENSIVE = 1 << 5
WQ_SYSFS = 1 << 6
WQ_POWER_EFFICIENT = 1 << 7
__WQ_ORDERED = 1 << 17

# enum wq_consts
WQ_MAX_ACTIVE = 2048
WQ_DFL_ACTIVE = WQ_MAX_ACTIVE // 2

#: kworkers of a workqueue that is not ordered: how many of its items run at once
WQ_WORKERS = 2


class WorkStruct:
    """``struct work_struct``: ``name`` is the C expression ``INIT_WORK`` is given
    (``&dev->work``); ``func`` is ``async def fn(work)``."""

    __slots__ = ("name", "func", "lockdep_map")

    def __init__(self, name, func=None):
        self.name = name
        self.func = func
        self.lockdep_map = LockdepMap(f"(work_completion)({name})")

    def __repr__(self):
        return self.name


class _WorkState:
    """One work item in one run.  Instances are numbered (``seq``): ``pending``
    is the number of the queued one, ``running`` of the one a worker runs."""

    __slots__ = ("seq", "pending", "wq", "running", "running_wq", "disable")

    def __init__(self):
        self.seq = 0
        self.pending = None
        self.wq = None  # where the pending instance is queued
        self.running = None
        self.running_wq = None
        self.disable = 0  # cancel_work_sync in progress: queue_work fails


class _Workqueues:
    """``kernel.workqueues``: every workqueue and work item of one run.

    Also the observer that reports, when a run ends, a kworker that never
    returned from its work item: the scheduler ends a run when only daemon
    agents are left blocked, and a work blocked forever is the hung task the
    kernel's watchdog reports (nobody waiting for it means no deadlock of
    CPUs to report)."""

    __slots__ = ("kernel", "wqs", "works", "system")

    def __init__(self, kernel):
        self.kernel = kernel
        self.wqs = []
        self.works = {}
        self.system = {}  # name -> the system workqueue of that name
        kernel.attach(self)

    def state(self, work):
        st = self.works.get(work)
        if st is None:
            st = self.works[work] = _WorkState()
        return st

    def run_end(self, kernel):
        hung = [(w, w.current) for wq in self.wqs for w in wq.workers if w.current is not None]
        if not hung:
            return
        lines = []
        for w, work in hung:
            lines += [
                f"INFO: task {w.name} blocked for more than 120 seconds.",
                f"      {w.name} never returned from work {work.name} ({_fn_name(work)})",
            ]
        kernel.report(
            "deadlock",
            "a kworker is blocked when the run ends: "
            + "; ".join(f"{w.name} in {work.name} ({_fn_name(work)})" for w, work in hung),
            splat="\n".join(lines),
            stacks={},
        )


def _registry(kernel):
    reg = getattr(kernel, "workqueues", None)
    if reg is None:
        reg = kernel.workqueues = _Workqueues(kernel)
    return reg


class WorkqueueStruct:
    """``struct workqueue_struct`` of one run: its queue and its kworkers."""

    def __init__(self, kernel, name, flags, max_active, workers=None):
        self.kernel = kernel
        self.name = name
        self.flags = flags
        self.max_active = max_active or WQ_DFL_ACTIVE
        self.ordered = self.max_active == 1  # saved_max_active == 1
        self.lockdep_map = LockdepMap(f"(wq_completion){name}")
        self.queue = []  # pending work items, oldest first
        self.draining = False
        self.destroying = False
        self.active = []  # the CPUs running one of its items now
        n = 1 if self.ordered else min(self.max_active, workers or WQ_WORKERS)
        self.workers = [_Worker(self, i) for i in range(n)]
        for w in self.workers:
            kernel.add_agent(w.name, w.run, kind="kworker", daemon=True)

    def next_work(self):
        """The first queued item no worker runs (non-reentrancy), or None; an
        ordered workqueue starts nothing while one of its items runs."""
        if self.ordered and self.workers[0].current is not None:
            return None
        works = self.kernel.workqueues.works
        for work in self.queue:
            if works[work].running is None:
                return work
        return None

    def __repr__(self):
        return self.name


class _Worker:
    """One kworker; ``ready()`` when it is the first idle one and work waits."""

    def __init__(self, wq, index):
        self.wq = wq
        self.index = index
        self.name = f"kworker/{wq.name}" if index == 0 else f"kworker/{wq.name}:{index}"
        self.current = None  # the work item it runs

    def ready(self):
        wq = self.wq
        return wq.next_work() is not None and all(w.current is not None for w in wq.workers[: self.index])

    async def run(self):
        """``worker_thread``: wait for work, run it, again."""
        cpu = current()
        wq = self.wq
        while True:
            await cpu.sched.wait(cpu, self)
            work = wq.next_work()
            if work is None:
                return  # woken with nothing to do: the run is over
            await process_one_work(cpu, wq, work, self)

    def __repr__(self):
        return self.name


def _sync(cpu, obj):
    for fn in cpu.kernel.hooks.sync:
        fn(cpu, obj)


def _event(cpu, what):
    for fn in cpu.kernel.hooks.event:
        fn(cpu, "wq", what)


def _might_sleep(cpu, what):
    for fn in cpu.kernel.hooks.might_sleep:
        fn(cpu, what)


def _touch(cpu, lock_map):
    """``touch_work_lockdep_map`` / ``touch_wq_lockdep_map``."""
    lock_map_acquire(cpu, lock_map)
    lock_map_release(cpu, lock_map)


def _fn_name(work):
    fn = work.func
    return getattr(fn, "__qualname__", None) or repr(fn)


async def process_one_work(cpu, wq, work, worker):
    """``process_one_work``: run the pending instance of ``work`` on ``cpu``
    (a kworker; or, without a scheduler, the CPU that flushes)."""
    st = wq.kernel.workqueues.works[work]
    wq.queue.remove(work)
    st.running, st.pending = st.pending, None  # set_work_pool_and_clear_pending()
    st.running_wq = wq
    if worker is not None:
        worker.current = work
    wq.active.append(cpu)
    _sync(cpu, work)
    _event(cpu, f"{work.name} runs ({_fn_name(work)})")
    await cpu.sched.point(cpu)  # raw_spin_unlock_irq(&pool->lock)
    before = (len(cpu.held), cpu.preempt, cpu.irqs_enabled, cpu.bh, cpu.rcu)
    lock_map_acquire(cpu, wq.lockdep_map)
    lock_map_acquire(cpu, work.lockdep_map)
    await work.func(work)
    lock_map_release(cpu, work.lockdep_map)
    lock_map_release(cpu, wq.lockdep_map)
    if (len(cpu.held), cpu.preempt, cpu.irqs_enabled, cpu.bh, cpu.rcu) != before:
        _leaked(cpu, work, before)
    _sync(cpu, work)
    st.running = None
    st.running_wq = None
    wq.active.remove(cpu)
    if worker is not None:
        worker.current = None


def _leaked(cpu, work, before):
    """``BUG: workqueue leaked atomic, lock or RCU``."""
    held0, preempt0, _irqs0, _bh0, rcu0 = before
    what = []
    if len(cpu.held) != held0:
        what.append(", ".join(repr(lock) for lock in cpu.held[held0:]) + " held")
    if not cpu.irqs_enabled:
        what.append("interrupts disabled")
    if cpu.bh:
        what.append("BH disabled")
    if cpu.rcu != rcu0:
        what.append("inside rcu_read_lock()")
    if cpu.preempt != preempt0 and len(cpu.held) == held0:
        what.append("preemption disabled")
    splat = "\n".join(
        [
            f"BUG: workqueue leaked atomic, lock or RCU: {cpu!r}[0]",
            f"     preempt=0x{cpu.preempt:08x} lock={held0}->{len(cpu.held)} "
            f"RCU={rcu0}->{cpu.rcu} workfn={_fn_name(work)}",
        ]
    )
    cpu.kernel.report(
        "lock-held-at-exit",
        f"work {work.name} ({_fn_name(work)}) returned on {cpu!r} with " + " and ".join(what),
        splat=splat,
        stacks={repr(cpu): model_stack(2)},
        cpu=cpu,
    )


# -- creating ----------------------------------------------------------------------


def INIT_WORK(work, func):
    """``INIT_WORK(work, func)``: ``func`` is ``async def fn(work)``.  Initialising
    a work that is pending or running is debugobjects' WARN."""
    cpu = _current.get(None)
    if cpu is not None:
        reg = getattr(cpu.kernel, "workqueues", None)
        st = reg.works.get(work) if reg is not None else None
        if st is not None and (st.pending is not None or st.running is not None):
            cpu.kernel.warn(f"ODEBUG: init active object: work_struct {work!r}")
    work.func = func


def alloc_workqueue(kernel, name, flags=0, max_active=0, *, workers=None):
    """``alloc_workqueue(fmt, flags, max_active)`` in ``kernel``: only when the
    scenario is built or at boot (its kworkers must exist before the CPUs start).
    ``workers`` (not the kernel's: default :data:`WQ_WORKERS`) bounds how many
    of its items run at once, ``max_active`` too."""
    cpu = _current.get(None)
    if cpu is not None and cpu.sched is not NULL_SCHED:
        raise ModelBug(
            f"alloc_workqueue({name!r}) on {cpu!r} during the run: its kworkers cannot start any more; "
            "create workqueues when building the scenario or at boot (kernel.add_setup), "
            "and system_wq with workqueue_init(kernel)"
        )
    reg = _registry(kernel)
    wq = WorkqueueStruct(kernel, name, flags, max_active, workers)
    reg.wqs.append(wq)
    return wq


def alloc_ordered_workqueue(kernel, name, flags=0):
    """``alloc_ordered_workqueue(fmt, flags)``: one item at a time, in queue order."""
    return alloc_workqueue(kernel, name, WQ_UNBOUND | __WQ_ORDERED | flags, 1)


def _system(kernel, name, flags):
    reg = _registry(kernel)
    wq = reg.system.get(name)
    if wq is None:
        wq = reg.system[name] = alloc_workqueue(kernel, name, flags, 0)
    return wq


def system_wq(kernel):
    """``system_wq`` ("events") of ``kernel``'s run: created on first use, which
    must be when the scenario is built or at boot (:func:`workqueue_init`)."""
    return _system(kernel, "events", 0)


def system_unbound_wq(kernel):
    """``system_unbound_wq`` ("events_unbound"), like :func:`system_wq`."""
    return _system(kernel, "events_unbound", WQ_UNBOUND)


def workqueue_init(kernel):
    """``workqueue_init()``: create ``system_wq`` (call it when building the
    scenario or at boot, before anything queues on it)."""
    system_wq(kernel)


async def destroy_workqueue(wq):
    """``destroy_workqueue(wq)``: drain it; queueing on it afterwards is a WARN.
    Its kworkers stay idle until the end of the run."""
    await drain_workqueue(wq)
    wq.destroying = True


# -- queueing ----------------------------------------------------------------------


async def queue_work(wq, work):
    """``queue_work(wq, work)``: True if ``work`` was idle and is now pending on
    ``wq``; False if it was pending already.  Never sleeps."""
    cpu = current()
    await cpu.sched.point(cpu)  # local_irq_save(); test_and_set_bit(PENDING)
    reg = _registry(cpu.kernel)
    st = reg.state(work)
    if wq.destroying or (wq.draining and cpu not in wq.active):  # only chained work while draining
        cpu.kernel.warn(f"queue_work({wq!r}, {work!r}) on a workqueue being destroyed")
        return False
    if work.func is None:
        cpu.kernel.warn(f"queue_work({wq!r}, {work!r}) of a work_struct without INIT_WORK")
        return False
    _sync(cpu, work)  # test_and_set_bit() is fully ordered: a pending work sees it too
    if st.pending is not None or st.disable:
        return False
    st.seq += 1
    st.pending = st.seq
    st.wq = wq
    wq.queue.append(work)
    _event(cpu, f"{work.name} queued on {wq.name}")
    return True


async def schedule_work(work):
    """``schedule_work(work)``: ``queue_work(system_wq, work)``."""
    return await queue_work(system_wq(current().kernel), work)


def work_pending(work):
    """``work_pending(work)``: queued and not yet started (no preemption point)."""
    reg = getattr(current().kernel, "workqueues", None)
    st = reg.works.get(work) if reg is not None else None
    return st is not None and st.pending is not None


# -- waiting -----------------------------------------------------------------------


class _Flush:
    """What a flush waits for: no instance of ``work`` numbered ``target`` or
    earlier is pending or running."""

    __slots__ = ("work", "st", "target", "what")

    def __init__(self, work, st, target, what):
        self.work = work
        self.st = st
        self.target = target
        self.what = what

    def ready(self):
        st, t = self.st, self.target
        return (st.pending is None or st.pending > t) and (st.running is None or st.running > t)

    def __repr__(self):
        return f"{self.what}({self.work!r})"


async def _wait_done(cpu, work, st, target, what):
    flush = _Flush(work, st, target, what)
    while not flush.ready():
        if cpu.sched is NULL_SCHED and st.running is None and st.pending is not None and st.pending <= target:
            await process_one_work(cpu, st.wq, work, None)  # no kworker runs: the flusher does
            continue
        await cpu.sched.wait(cpu, flush)  # wait_for_completion(&barr.done)


def _last_instance(st):
    """The number of the last instance pending or running, or None."""
    if st is None:
        return None
    if st.pending is not None:
        return st.pending
    return st.running


async def flush_work(work):
    """``flush_work(work)``: may sleep; wait for the instance pending or running
    now to finish.  True if it waited, False if ``work`` was idle."""
    cpu = current()
    _might_sleep(cpu, "flush_work")
    await cpu.sched.point(cpu)
    if work.func is None:
        cpu.kernel.warn(f"flush_work({work!r}) of a work_struct without INIT_WORK")
        return False
    _sync(cpu, work)  # pool->lock
    st = _registry(cpu.kernel).works.get(work)
    target = _last_instance(st)
    if target is None:
        return False  # already_gone
    wq = st.wq if st.pending is not None else st.running_wq
    _touch(cpu, work.lockdep_map)
    if wq.ordered or wq.flags & WQ_MEM_RECLAIM:
        _touch(cpu, wq.lockdep_map)  # the lock recursion a single-threaded workqueue has
    await _wait_done(cpu, work, st, target, "flush_work")
    _sync(cpu, work)
    return True


async def cancel_work(work):
    """``cancel_work(work)``: take a pending instance off its queue (True if there
    was one); a running one goes on.  Never sleeps."""
    cpu = current()
    await cpu.sched.point(cpu)
    st = _registry(cpu.kernel).state(work)
    _sync(cpu, work)
    return _grab(st, work)


def _grab(st, work):
    if st.pending is None:
        return False
    st.wq.queue.remove(work)
    st.pending = None
    return True


async def cancel_work_sync(work):
    """``cancel_work_sync(work)``: may sleep; take a pending instance off its
    queue and wait for a running one; ``work`` is idle on return (``queue_work``
    of it fails meanwhile).  True if it was pending."""
    cpu = current()
    await cpu.sched.point(cpu)  # __cancel_work(): local_irq_save, try_to_grab_pending
    st = _registry(cpu.kernel).state(work)
    _sync(cpu, work)
    ret = _grab(st, work)
    st.disable += 1  # WORK_CANCEL_DISABLE
    _might_sleep(cpu, "cancel_work_sync")
    if work.func is None:
        cpu.kernel.warn(f"cancel_work_sync({work!r}) of a work_struct without INIT_WORK")
    elif st.running is not None:
        _touch(cpu, work.lockdep_map)  # start_flush_work(from_cancel): no workqueue map
        await _wait_done(cpu, work, st, st.running, "cancel_work_sync")
        _sync(cpu, work)
    st.disable -= 1  # enable_work()
    return ret


async def flush_workqueue(wq):
    """``flush_workqueue(wq)``: may sleep; wait for every item queued on ``wq``
    or running on its workers when it is called."""
    cpu = current()
    _might_sleep(cpu, "flush_workqueue")
    await cpu.sched.point(cpu)
    _touch(cpu, wq.lockdep_map)
    works = _registry(cpu.kernel).works
    targets = [(work, works[work].pending) for work in wq.queue]
    targets += [(w.current, works[w.current].running) for w in wq.workers if w.current is not None]
    for work, target in targets:
        await _wait_done(cpu, work, works[work], target, "flush_workqueue")
        _sync(cpu, work)


async def drain_workqueue(wq):
    """``drain_workqueue(wq)``: flush until nothing is queued or running; only
    its own work items may queue on it meanwhile."""
    wq.draining = True
    try:
        while wq.queue or any(w.current is not None for w in wq.workers):
            await flush_workqueue(wq)
    finally:
        wq.draining = False
