"""RCU (kernel/rcu/tree.c, update.c, include/linux/rcupdate.h): read-side
critical sections, grace periods, callbacks, and the pointer publication
that readers dereference.

Readers: ``rcu_read_lock()`` / ``rcu_read_unlock()`` nest on ``cpu.rcu``
(``rcu_preempt_depth``), so a CPU in a read-side critical section is in
atomic context (``Cpu.in_atomic``: sleeping there is ``sleep-in-atomic``).
Each is annotated as lockdep's ``rcu_lock_map`` (class ``rcu_read_lock``),
a recursive read acquisition (``read=2``), so lockdep lists it among the
held locks and reports a CPU that returns inside a read-side section.

Grace periods, as the kernel guarantees them:

* ``synchronize_rcu()`` may sleep (the ``might_sleep`` hook first), then
  waits until every CPU that was inside a read-side critical section when
  it started has left it (its outermost ``rcu_read_unlock``); a CPU that
  enters one later is not waited for.  Called inside a read-side section it
  waits for itself: ``sleep-in-atomic`` with lockdep, a ``deadlock``
  without;
* ``call_rcu(head, func)`` / ``kfree_rcu(obj)``: the callback runs after a
  grace period that starts at the call, in softirq context (``RCU_SOFTIRQ``:
  ``in_atomic``), on a CPU the scheduler picks: the tick
  (``model.kernel.timer``) is raised once a callback's grace period has
  ended, and its handler raises ``RCU_SOFTIRQ`` there (``rcu_core``).  So
  callbacks run during the run, concurrently with the CPUs, and a run does
  not end with a callback whose grace period ended (a CPU with interrupts
  enabled takes the tick first).  A callback queued by RCU callbacks more
  than ``MAX_TICK_DEPTH`` generations deep waits for a tick that something
  else raises, or for ``rcu_barrier()`` (which teardown code may call: with
  no scheduler it invokes the callbacks itself);
* ordering, for the race checker: what a CPU did before its
  ``rcu_read_unlock`` happens before what ``synchronize_rcu``'s caller does
  after it returns, and before a callback (the ``sync`` hook on per-CPU
  objects); ``call_rcu`` happens before its callback.

Only ``rcu_read_lock`` sections are readers here: a preempt-, BH- or
irq-disabled region (``rcu_read_lock_sched``/``_bh``, which consolidated RCU
also waits for) is not.

Publication: ``rcu_assign_pointer(cell, p)`` is ``smp_store_release`` and
``rcu_dereference(cell)`` ``smp_load_acquire`` (a marked load: what the
publisher wrote before publishing is seen through the pointer;
``model.kernel.shared``).  ``rcu_dereference`` outside a read-side section
is lockdep-RCU's "suspicious rcu_dereference_check() usage" (a WARN);
update-side code holding the lock uses ``rcu_dereference_protected``.

Use after free: :func:`kobj_read` / :func:`kobj_write` are a load or store
through a pointer to a kmalloc object (``p->field``); on a freed object
they report ``invalid-access`` as KASAN does (``use-after-free``, with the
stack that freed it when the object was ever published through an RCU
pointer).  So ``kfree`` (not ``kfree_rcu``) of an object right after
``rcu_assign_pointer(gp, NULL)`` is found when a reader that dereferenced
it before reads it after; ``synchronize_rcu(); kfree()`` and ``kfree_rcu``
are clean.

Per-run state (grace-period counters, callbacks) lives on the kernel
(``kernel.rcu_state``).
"""

from __future__ import annotations

from .completion import LockdepMap, lock_map_acquire_read, lock_map_release
from .cpu import NULL_SCHED, current
from .mm import kfree
from .shared import READ_ONCE, WRITE_ONCE, smp_load_acquire, smp_store_release
from .softirq import RCU_SOFTIRQ, open_softirq, raise_softirq
from .stacks import model_stack
from .timer import MAX_TICK_DEPTH, tick

__all__ = [
    "RCU_LOCK_MAP",
    "rcu_read_lock",
    "rcu_read_unlock",
    "rcu_read_lock_held",
    "synchronize_rcu",
    "synchronize_rcu_expedited",
    "call_rcu",
    "kfree_rcu",
    "rcu_barrier",
    "rcu_assign_pointer",
    "RCU_INIT_POINTER",
    "rcu_dereference",
    "rcu_dereference_check",
    "rcu_dereference_protected",
    "rcu_access_pointer",
    "rcu_replace_pointer",
    "kobj_read",
    "kobj_write",
]

#: ``rcu_lock_map``: the lockdep class of ``rcu_read_lock()`` (static: no run state)
RCU_LOCK_MAP = LockdepMap("rcu_read_lock", sleeps=False, check=False)  # rcu_lock_acquire(): check=0


class _RcuCpu:
    """The ordering point of one CPU's read-side sections (its outermost unlocks)."""

    __slots__ = ("cpu",)

    def __init__(self, cpu):
        self.cpu = cpu

    def __repr__(self):
        return f"rcu({self.cpu!r})"


class _Callback:
    """A queued ``call_rcu``: ready when every reader at the call has left."""

    __slots__ = ("state", "head", "func", "snap", "depth", "done")

    def __init__(self, state, head, func, snap, depth):
        self.state = state
        self.head = head
        self.func = func
        self.snap = snap
        self.depth = depth
        self.done = False

    def ready(self):
        return self.state.passed(self.snap)

    def __repr__(self):
        return f"call_rcu({self.head!r}, {getattr(self.func, '__qualname__', self.func)})"


class _GracePeriod:
    """What ``synchronize_rcu`` waits for: the readers of ``snap`` left."""

    __slots__ = ("state", "snap")

    def __init__(self, state, snap):
        self.state = state
        self.snap = snap

    def ready(self):
        return self.state.passed(self.snap)

    def __repr__(self):
        readers = ", ".join(repr(c) for c in self.snap)
        return f"synchronize_rcu() (readers: {readers})"


class _Barrier:
    """What ``rcu_barrier`` waits for: every callback queued before it invoked."""

    __slots__ = ("cbs",)

    def __init__(self, cbs):
        self.cbs = cbs

    def ready(self):
        return all(cb.done for cb in self.cbs)

    def __repr__(self):
        return "rcu_barrier()"


class _FreeWatch:
    """Observer of ``free``: who freed an object readers may still hold (for
    the use-after-free report's "freed by" stack)."""

    def __init__(self, state):
        self.state = state

    def free(self, cpu, obj):
        st = self.state
        if obj in st.published:
            st.freed_by[obj] = (repr(cpu), model_stack(2))


class _RcuState:
    """RCU in one run: the count of outermost ``rcu_read_unlock`` per CPU (a
    quiescent state each), the queued callbacks, the objects published."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.qs = {}  # cpu -> outermost unlocks so far
        self.points = {}  # cpu -> _RcuCpu
        self.callbacks = []  # _Callback, in call order
        self.inflight = []  # _Callback being invoked now
        self.published = {}  # obj -> True: ever behind an RCU pointer
        self.freed_by = {}  # obj -> (cpu, stack) of its kfree
        self.tick = tick(kernel)
        self.tick.register(RCU_SOFTIRQ, self.wanted, self.needed)
        open_softirq(kernel, RCU_SOFTIRQ, self.rcu_core)
        kernel.attach(_FreeWatch(self))

    def point(self, cpu):
        p = self.points.get(cpu)
        if p is None:
            p = self.points[cpu] = _RcuCpu(cpu)
        return p

    def snapshot(self, cpu):
        """The readers a grace period starting now waits for: ``{cpu: unlocks}``."""
        snap = {c: self.qs.get(c, 0) for c in self.kernel.cpus if c.rcu > 0}
        if cpu.rcu > 0 and cpu not in snap:
            snap[cpu] = self.qs.get(cpu, 0)  # the boot CPU: waits for itself
        return snap

    def passed(self, snap):
        qs = self.qs
        return all(qs.get(c, 0) != n for c, n in snap.items())

    def gp_end(self, cpu):
        """Order the caller after every CPU's read-side sections so far."""
        hooks = self.kernel.hooks.sync
        if hooks:
            for c in self.kernel.cpus:
                p = self.point(c)
                for fn in hooks:
                    fn(cpu, p)

    def wanted(self):
        return any(cb.ready() for cb in self.callbacks)

    def needed(self):
        return any(cb.depth <= MAX_TICK_DEPTH and cb.ready() for cb in self.callbacks)

    async def rcu_core(self):
        """``RCU_SOFTIRQ``: invoke every callback whose grace period has ended."""
        cpu = current()
        ready = [cb for cb in self.callbacks if cb.ready()]
        for cb in ready:
            self.callbacks.remove(cb)
        self.inflight += ready
        t = self.tick
        for cb in ready:
            t.depth[cpu] = cb.depth
            self.gp_end(cpu)
            _sync(cpu, cb)
            await cb.func(cb.head)
            del t.depth[cpu]
            cb.done = True
            self.inflight.remove(cb)
        t.update()


def _state(kernel):
    st = getattr(kernel, "rcu_state", None)
    if st is None:
        st = kernel.rcu_state = _RcuState(kernel)
    return st


def _sync(cpu, obj):
    for fn in cpu.kernel.hooks.sync:
        fn(cpu, obj)


def _might_sleep(cpu, what):
    for fn in cpu.kernel.hooks.might_sleep:
        fn(cpu, what)


# -- readers -----------------------------------------------------------------------


def rcu_read_lock():
    """``rcu_read_lock()``: enter (or nest) a read-side critical section."""
    cpu = current()
    cpu.rcu += 1
    lock_map_acquire_read(cpu, RCU_LOCK_MAP)


def rcu_read_unlock():
    """``rcu_read_unlock()``: the outermost one is a quiescent state: it ends
    the grace periods that waited for this CPU."""
    cpu = current()
    lock_map_release(cpu, RCU_LOCK_MAP)
    if cpu.rcu <= 0:
        cpu.kernel.warn(f"rcu_read_unlock() on {cpu!r} outside any read-side critical section")
        return
    cpu.rcu -= 1
    if cpu.rcu == 0:
        st = _state(cpu.kernel)
        st.qs[cpu] = st.qs.get(cpu, 0) + 1
        _sync(cpu, st.point(cpu))
        if st.callbacks:
            st.tick.update()


def rcu_read_lock_held():
    """``rcu_read_lock_held()``: inside a read-side critical section."""
    return current().rcu > 0


# -- grace periods -----------------------------------------------------------------


async def synchronize_rcu():
    """``synchronize_rcu()``: may sleep; waits until every CPU that is inside a
    read-side critical section now has left it."""
    cpu = current()
    _might_sleep(cpu, "synchronize_rcu")
    await cpu.sched.point(cpu)
    st = _state(cpu.kernel)
    gp = _GracePeriod(st, st.snapshot(cpu))
    while not gp.ready():
        await cpu.sched.wait(cpu, gp)
    st.gp_end(cpu)


synchronize_rcu_expedited = synchronize_rcu


def call_rcu(head, func):
    """``call_rcu(head, func)``: ``await func(head)`` after a grace period, in
    softirq context.  Never sleeps."""
    cpu = current()
    st = _state(cpu.kernel)
    cb = _Callback(st, head, func, st.snapshot(cpu), st.tick.depth_of(cpu))
    st.callbacks.append(cb)
    _sync(cpu, cb)
    st.tick.update()


async def _kfree_cb(obj):
    kfree(obj)


def kfree_rcu(obj):
    """``kfree_rcu(obj, rcu)``: ``kfree(obj)`` after a grace period.  Never sleeps."""
    if obj is not None:
        call_rcu(obj, _kfree_cb)


async def rcu_barrier():
    """``rcu_barrier()``: may sleep; waits until every callback queued before it
    has been invoked.  Without a scheduler (boot, teardown) it invokes them on
    the calling CPU, in softirq context."""
    cpu = current()
    _might_sleep(cpu, "rcu_barrier")
    await cpu.sched.point(cpu)
    st = _state(cpu.kernel)
    cbs = st.callbacks + st.inflight
    for cb in cbs:
        cb.depth = 0  # rcu_barrier's own callbacks: a fresh grace period, ticked
    barrier = _Barrier(cbs)
    if cpu.sched is NULL_SCHED and not barrier.ready():
        await raise_softirq(RCU_SOFTIRQ)  # ksoftirqd, here and now
    st.tick.update()
    while not barrier.ready():
        await cpu.sched.wait(cpu, barrier)


# -- publication -------------------------------------------------------------------


def _published(cpu, p):
    if p is not None and hasattr(p, "freed"):
        _state(cpu.kernel).published[p] = True


async def rcu_assign_pointer(cell, p):
    """``rcu_assign_pointer(gp, p)``: publish ``p`` (a store-release)."""
    cpu = current()
    _published(cpu, p)
    await smp_store_release(cell, p)


async def RCU_INIT_POINTER(cell, p):
    """``RCU_INIT_POINTER(gp, p)``: a marked store without ordering (NULL, or
    ``p`` not yet reachable by readers)."""
    cpu = current()
    _published(cpu, p)
    await WRITE_ONCE(cell, p)


async def rcu_dereference_check(cell, c):
    """``rcu_dereference_check(gp, c)``: the pointer (a load-acquire), inside a
    read-side critical section or where ``c`` is true (a WARN otherwise)."""
    cpu = current()
    if not c and cpu.rcu <= 0:
        cpu.kernel.warn(f"suspicious rcu_dereference_check() usage: {cell.name} outside rcu_read_lock() on {cpu!r}")
    p = await smp_load_acquire(cell)
    _published(cpu, p)
    return p


async def rcu_dereference(cell):
    """``rcu_dereference(gp)``: the pointer, inside ``rcu_read_lock()``."""
    return await rcu_dereference_check(cell, False)


async def rcu_dereference_protected(cell, c=True):
    """``rcu_dereference_protected(gp, c)``: the update side, holding what keeps
    the pointer stable: a plain load."""
    return await cell.load()


async def rcu_access_pointer(cell):
    """``rcu_access_pointer(gp)``: the pointer's value, not to be dereferenced."""
    return await READ_ONCE(cell)


async def rcu_replace_pointer(cell, p, c=True):
    """``rcu_replace_pointer(gp, p, c)``: publish ``p``; the old pointer."""
    old = await rcu_dereference_protected(cell, c)
    await rcu_assign_pointer(cell, p)
    return old


# -- dereferencing an object -------------------------------------------------------


def _check_live(cpu, obj, what):
    if obj is None:
        cpu.kernel.report(
            "invalid-access",
            f"{what} through a NULL pointer on {cpu!r}",
            stacks={repr(cpu): model_stack(3)},
            cpu=cpu,
        )
        return
    if obj.freed:
        stack = model_stack(3)
        st = getattr(cpu.kernel, "rcu_state", None)
        by = st.freed_by.get(obj) if st is not None else None
        stacks = {f"{what} by {cpu!r}": stack}
        freed = ""
        if by is not None:
            freed = f", freed by {by[0]}"
            stacks[f"freed by {by[0]}"] = by[1]
        cpu.kernel.report(
            "invalid-access",
            f"use-after-free {what} of {obj!r} by {cpu!r}{freed}",
            stacks=stacks,
            cpu=cpu,
        )


async def kobj_read(obj):
    """A load through a pointer to ``obj`` (``p->field``): its ``value``.  A freed
    object is KASAN's use-after-free."""
    cpu = current()
    await cpu.sched.point(cpu)
    _check_live(cpu, obj, "read")
    return obj.value


async def kobj_write(obj, value):
    """A store through a pointer to ``obj``: its ``value`` becomes ``value``."""
    cpu = current()
    await cpu.sched.point(cpu)
    _check_live(cpu, obj, "write")
    obj.value = value
