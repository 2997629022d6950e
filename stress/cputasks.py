"""The Trio tasks that act as CPUs, kept from one schedule to the next.

A schedule runs each CPU (and agent) in a Trio task of its own.  Spawning a
task, opening a nursery for them and waiting for each to reach its first
park costs about as much as twenty preemption points (0.2 ms), paid
again by every schedule; so a Trio run keeps its CPU tasks
(:class:`trio.lowlevel.RunVar`) and a schedule borrows them
(:func:`borrow`).

What the tasks are is not part of a schedule: exactly one CPU runs at a
time, each runs only when the scheduler reschedules it, and an idle task
holds nothing of the schedule it ran (its job, its current CPU).  Trio runs
them as system tasks (``spawn_system_task``): they live until the Trio run
ends, when they are cancelled while idle.  Like every system task they
are shielded from ``KeyboardInterrupt``: Trio raises it in the main task,
and the scheduler waiting for the CPUs stops them then
(:meth:`stress.scheduler.Scheduler._join`).  A job must not let an exception
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

    Between jobs it is parked (``parked``); the first ``reschedule(task,
    Value(cmd))`` after :func:`borrow` runs ``job(cpu, cmd)``, with
    ``current()`` the job's CPU, and the task is idle again when the job
    returns.
    """

    __slots__ = ("task", "job", "cpu", "parked")

    def __init__(self, cpu, job):
        self.task = None
        self.job = job  # async fn(cpu, cmd): set by borrow(), cleared when it starts
        self.cpu = cpu  # the job's CPU (``current()`` while it runs)
        self.parked = False  # waiting for its job's first command


class _Pool:
    __slots__ = ("idle", "size")

    def __init__(self):
        self.idle = []  # tasks parked without a job
        self.size = 0  # tasks spawned


_POOL = trio.lowlevel.RunVar("iommu_stress_cpu_tasks")


def _abort_idle(_):
    return trio.lowlevel.Abort.SUCCEEDED  # the Trio run is over: the task ends


async def _serve(me, idle):
    """A CPU task's life: spawned with its first job, idle after each."""
    me.task = trio.lowlevel.current_task()
    try:
        while True:
            if me.job is None:
                idle.append(me)
            me.parked = True
            cmd = await trio.lowlevel.wait_task_rescheduled(_abort_idle)
            me.parked = False
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

    Idle tasks are taken first; a task spawned for the rest (the first
    schedule of a run, one with more CPUs than any before, or one beside
    another schedule running in the same Trio run) starts with its job and
    is waited for until it is parked.
    """
    try:
        pool = _POOL.get()
    except LookupError:
        pool = _Pool()
        _POOL.set(pool)
    idle = pool.idle
    out = []
    fresh = False
    for cpu, job in jobs:
        if idle:
            t = idle.pop()
            t.cpu, t.job = cpu, job
        else:
            t = CpuTask(cpu, job)
            trio.lowlevel.spawn_system_task(_serve, t, idle, name="iommu-stress cpu")
            pool.size += 1
            fresh = True
        out.append(t)
    try:
        while fresh and not all(t.parked for t in out):
            await trio.sleep(0)
    except BaseException:  # cancelled (or Ctrl-C) before the schedule began: give them back
        for t in out:
            t.cpu = t.job = None
            if t.parked:
                idle.append(t)  # a fresh one not parked yet goes idle when it starts
        raise
    return out
