"""The Trio tasks that act as CPUs, kept from one schedule to the next.

A schedule runs each CPU (and agent) in a Trio task of its own.  Spawning a
task, opening a nursery for them and waiting for each to reach its first
park costs as much as a few dozen preemption points, paid again by every
schedule; so a Trio run keeps its CPU tasks (:class:`trio.lowlevel.RunVar`)
and a schedule borrows them (:func:`borrow`).

What the tasks are is not part of a schedule: exactly one CPU runs at a
time, each runs only when the scheduler reschedules it, and an idle task
holds nothing of the schedule it ran (its job, its current CPU).  Trio runs
them as system tasks (``spawn_system_task``): they live until the Trio run
ends, when they are cancelled while idle.  A job must not let an exception
out (:meth:`stress.scheduler.Scheduler.run` gives them one that does not):
one that did would crash the Trio run (``TrioInternalError``).  Their
context variables are those of the Trio run's start (a system task's),
not those of the task that runs the schedule; the model's own, the CPU
``current()`` runs on, is set for each job.
"""

from __future__ import annotations

import trio

from model.kernel.cpu import _current as _current_var

__all__ = ["CpuTask", "borrow"]


class CpuTask:
    """A Trio task that runs one CPU's job per schedule.

    Idle, it is parked; the first ``reschedule(task, Value(cmd))`` after
    :func:`borrow` runs ``job(cpu, cmd)``, with ``current()`` the job's CPU,
    and the task is idle again when the job returns.
    """

    __slots__ = ("task", "job", "cpu")

    def __init__(self):
        self.task = None
        self.job = None  # async fn(cpu, cmd): set by borrow(), cleared when it starts
        self.cpu = None  # the job's CPU (``current()`` while it runs)


class _Pool:
    __slots__ = ("idle", "size")

    def __init__(self):
        self.idle = []  # parked tasks, the last parked last
        self.size = 0  # tasks spawned


_POOL = trio.lowlevel.RunVar("iommu_stress_cpu_tasks")


def _abort_idle(_):
    return trio.lowlevel.Abort.SUCCEEDED  # the Trio run is over: the task ends


async def _serve(me, idle):
    me.task = trio.lowlevel.current_task()
    try:
        while True:
            idle.append(me)  # and parked at once: no other task runs in between
            cmd = await trio.lowlevel.wait_task_rescheduled(_abort_idle)
            job, me.job = me.job, None
            token = _current_var.set(me.cpu)
            try:
                await job(me.cpu, cmd)
            finally:
                _current_var.reset(token)
                me.cpu = job = None  # nothing of the schedule stays with an idle task
    except trio.Cancelled:
        return


async def borrow(jobs):
    """One parked :class:`CpuTask` per ``(cpu, job)`` of ``jobs``, in order,
    each to run ``job(cpu, cmd)`` (``current()`` is ``cpu``) when it is
    first rescheduled with ``cmd``.

    Tasks spawned for the purpose are waited for until they are parked
    (the first schedule of a run, or one with more CPUs than any before).
    """
    try:
        pool = _POOL.get()
    except LookupError:
        pool = _Pool()
        _POOL.set(pool)
    idle = pool.idle
    while pool.size < len(jobs):
        trio.lowlevel.spawn_system_task(_serve, CpuTask(), idle, name="iommu-stress cpu")
        pool.size += 1
    while len(idle) < len(jobs):
        await trio.sleep(0)
    out = []
    for cpu, job in jobs:
        t = idle.pop()
        t.cpu, t.job = cpu, job
        out.append(t)
    return out
