"""Completions and wait queues (kernel/sched/completion.c, include/linux/wait.h),
and the lockdep maps of the primitives that wait for work (include/linux/lockdep.h).

A :class:`Completion` (``struct completion``) is a count of ``complete()``
calls not yet consumed, as ``x->done``: ``complete`` adds one (a waiter
consumes it), ``complete_all`` makes it infinite (``UINT_MAX``: every waiter,
now and later, passes until ``reinit_completion``).  The object holds only
its name: the count of a run lives in that run's kernel, so a completion
created once (``DECLARE_COMPLETION`` at module level) starts every schedule
at zero, as a lock does (``model.kernel.locks``).

What the model guarantees:

* ``wait_for_completion`` is a call that may sleep (the ``might_sleep``
  hook first, as ``__wait_for_common`` does), then parks the CPU until the
  count is positive (``cpu.blocked_on``: not runnable, so a wait that nobody
  completes is the scheduler's ``deadlock`` once every CPU with work is
  blocked), then consumes one;
* ``complete()`` publishes and a returning wait acquires: both are the
  ``sync`` hook on the completion (``x->wait.lock`` orders them), so what the
  completer wrote before ``complete`` happens before what the waiter does
  after its wait, for the race checker;
* ``complete``/``complete_all`` never sleep (IRQ-safe) and, like every
  entry point that takes ``x->wait.lock``, are a preemption point.

A :class:`WaitQueueHead` (``wait_queue_head_t``) parks ``wait_event(wq,
condition)`` callers until a ``wake_up(wq)`` finds the condition true.  As
``___wait_event`` does, the waiter queues itself before it tests the
condition (``prepare_to_wait_event``), so a wake-up between the test and the
sleep is not lost; a condition made true without any ``wake_up`` is (the
waiter sleeps on: a ``deadlock`` if nothing else wakes it).  ``condition``
is a plain callable evaluated without a preemption point or an access hook
(a flag read under the wait-queue lock, say ``lambda: done.get(kernel)``).
``wake_up`` and a wait that slept are ordered (``sync`` on the head: the
waker's stores before ``try_to_wake_up`` are seen by the woken task); a
wait whose condition was already true orders nothing, as the C's lockless
fast path does not.  No exclusive waiters: ``wake_up`` wakes every waiter,
as ``wake_up_all``.

Lockdep maps (``struct lockdep_map``): :class:`LockdepMap` is a lock class
that no CPU ever holds or waits for, only annotated: ``lock_map_acquire`` /
``lock_map_release`` fire the ``lock_acquire`` / ``lock_release`` hooks
(never ``lock_acquired``, never ``kernel.locks``), so lockdep learns the
dependencies of "waiting for X" (``flush_work``, ``timer_delete_sync``) and
of "running X" (the work or timer callback) and reports a lock taken on
both sides as a circular dependency.
"""

from __future__ import annotations

from .cpu import _current, current

__all__ = [
    "LockdepMap",
    "lock_map_acquire",
    "lock_map_acquire_read",
    "lock_map_release",
    "Completion",
    "init_completion",
    "reinit_completion",
    "complete",
    "complete_all",
    "wait_for_completion",
    "try_wait_for_completion",
    "completion_done",
    "WaitQueueHead",
    "init_waitqueue_head",
    "wait_event",
    "wake_up",
    "wake_up_all",
]

UINT_MAX = (1 << 32) - 1


# -- lockdep maps ------------------------------------------------------------------


class LockdepMap:
    """``struct lockdep_map``: a lock class to annotate with, never a lock.

    ``name`` is the class as lockdep prints it (``(work_completion)(&dev->work)``,
    ``(wq_completion)events``, ``(&dev->timer)``, ``rcu_read_lock``);
    ``sleeps`` only picks the wait type lockdep shows for it; ``check``
    False is lockdep's ``check=0`` (held, never validated: ``rcu_read_lock``'s map).
    """

    __slots__ = ("name", "sleeps", "check")

    def __init__(self, name, sleeps=True, check=True):
        self.name = name
        self.sleeps = sleeps
        self.check = check

    def __repr__(self):
        return self.name


def lock_map_acquire(cpu, lock_map):
    """``lock_map_acquire(map)``: lockdep's ``lock_acquire`` (exclusive, blocking)."""
    for fn in cpu.kernel.hooks.lock_acquire:
        fn(cpu, lock_map, False, 0)


def lock_map_acquire_read(cpu, lock_map):
    """``lock_map_acquire_read(map)``: a recursive read acquisition (``read=2``),
    as ``rcu_lock_acquire`` does: nests, and orders nothing against other readers."""
    for fn in cpu.kernel.hooks.lock_acquire:
        fn(cpu, lock_map, False, 0, 2)


def lock_map_release(cpu, lock_map):
    """``lock_map_release(map)``: lockdep's ``lock_release``."""
    for fn in cpu.kernel.hooks.lock_release:
        fn(cpu, lock_map)


def _might_sleep(cpu, what):
    for fn in cpu.kernel.hooks.might_sleep:
        fn(cpu, what)


def _sync(cpu, obj):
    for fn in cpu.kernel.hooks.sync:
        fn(cpu, obj)


# -- completions -------------------------------------------------------------------


class Completion:
    """``struct completion``: a name; ``x->done`` of a run is in that run's kernel."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"&{self.name}"


def _done(kernel):
    """``x->done`` of every completion of ``kernel``'s run (absent: 0)."""
    d = getattr(kernel, "completions", None)
    if d is None:
        d = kernel.completions = {}
    return d


def init_completion(x):
    """``init_completion(x)``: ``x->done = 0`` in the calling CPU's run (a
    completion starts every run at 0: outside a run this does nothing)."""
    cpu = _current.get(None)
    if cpu is not None:
        _done(cpu.kernel)[x] = 0


reinit_completion = init_completion


async def complete(x):
    """``complete(x)``: one waiter (present or future) may pass.  Never sleeps."""
    cpu = current()
    await cpu.sched.point(cpu)  # raw_spin_lock_irqsave(&x->wait.lock)
    done = _done(cpu.kernel)
    n = done.get(x, 0)
    if n != UINT_MAX:
        done[x] = n + 1
    _sync(cpu, x)


async def complete_all(x):
    """``complete_all(x)``: every waiter passes, until ``reinit_completion``."""
    cpu = current()
    await cpu.sched.point(cpu)
    _done(cpu.kernel)[x] = UINT_MAX
    _sync(cpu, x)


class _CompletionWait:
    """What a waiting CPU is blocked on: ready once ``x->done`` is positive."""

    __slots__ = ("x", "done")

    def __init__(self, x, done):
        self.x = x
        self.done = done

    def ready(self):
        return self.done.get(self.x, 0) > 0

    def __repr__(self):
        return f"wait_for_completion({self.x!r})"


async def wait_for_completion(x):
    """``wait_for_completion(x)``: may sleep; parks until ``x`` is completed, then
    consumes one ``complete()`` (none of a ``complete_all``)."""
    cpu = current()
    _might_sleep(cpu, "wait_for_completion")
    await cpu.sched.point(cpu)
    done = _done(cpu.kernel)
    waiter = None
    while done.get(x, 0) == 0:
        if waiter is None:
            waiter = _CompletionWait(x, done)
        await cpu.sched.wait(cpu, waiter)
    n = done[x]
    if n != UINT_MAX:
        done[x] = n - 1
    _sync(cpu, x)


async def try_wait_for_completion(x):
    """``try_wait_for_completion(x)``: consume one if available (True), else
    False; never sleeps."""
    cpu = current()
    await cpu.sched.point(cpu)
    done = _done(cpu.kernel)
    n = done.get(x, 0)
    if n == 0:
        return False
    if n != UINT_MAX:
        done[x] = n - 1
    _sync(cpu, x)
    return True


async def completion_done(x):
    """``completion_done(x)``: whether a waiter would pass now (nothing consumed)."""
    cpu = current()
    await cpu.sched.point(cpu)
    if _done(cpu.kernel).get(x, 0) == 0:
        return False
    _sync(cpu, x)
    return True


# -- wait queues -------------------------------------------------------------------


class WaitQueueHead:
    """``wait_queue_head_t``: a name; the waiters of a run are in that run's kernel."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"&{self.name}"


class _WaitEntry:
    """``struct wait_queue_entry`` of one sleeping ``wait_event``: ready once woken."""

    __slots__ = ("cpu", "wq", "woken")

    def __init__(self, cpu, wq):
        self.cpu = cpu
        self.wq = wq
        self.woken = False

    def ready(self):
        return self.woken

    def __repr__(self):
        return f"wait_event({self.wq!r})"


def _waiters(kernel, wq):
    """The entries queued on ``wq`` in ``kernel``'s run, oldest first."""
    queues = getattr(kernel, "wait_queues", None)
    if queues is None:
        queues = kernel.wait_queues = {}
    q = queues.get(wq)
    if q is None:
        q = queues[wq] = []
    return q


def init_waitqueue_head(wq):
    """``init_waitqueue_head(wq)``: no waiter in the calling CPU's run."""
    cpu = _current.get(None)
    if cpu is not None:
        _waiters(cpu.kernel, wq).clear()


async def wait_event(wq, condition):
    """``wait_event(wq, condition)``: may sleep; returns once ``condition()`` is
    true, sleeping on ``wq`` between ``wake_up`` calls."""
    cpu = current()
    _might_sleep(cpu, "wait_event")
    await cpu.sched.point(cpu)
    if condition():
        return
    queue = _waiters(cpu.kernel, wq)
    entry = _WaitEntry(cpu, wq)
    while True:
        # prepare_to_wait_event(): queued before the condition is tested
        entry.woken = False
        if entry not in queue:
            queue.append(entry)
        if condition():
            break
        await cpu.sched.wait(cpu, entry)  # schedule()
        _sync(cpu, wq)
        if condition():
            break
    if entry in queue:
        queue.remove(entry)  # finish_wait()


async def wake_up(wq):
    """``wake_up(wq)``: every waiter queued on ``wq`` runs again and re-tests its
    condition (``autoremove_wake_function``: it leaves the queue).  Never sleeps."""
    cpu = current()
    await cpu.sched.point(cpu)  # spin_lock_irqsave(&wq_head->lock)
    queue = _waiters(cpu.kernel, wq)
    _sync(cpu, wq)
    for entry in queue:
        entry.woken = True
    queue.clear()


wake_up_all = wake_up
