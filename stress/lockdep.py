"""A lockdep for the model (kernel/locking/lockdep.c, reduced to what it proves).

Locks are grouped into classes by name (``spin_lock_nested`` subclasses are
``name/N``).  On every acquisition, as ``__lock_acquire`` does:

1. ``mark_usage``: a class taken in hard-IRQ context is IN-HARDIRQ, one taken
   in softirq context IN-SOFTIRQ (a hard IRQ that interrupted a softirq is
   both); one taken (or held while interrupts get enabled) with interrupts
   enabled is HARDIRQ-ON, and SOFTIRQ-ON when softirqs are enabled too
   (``mark_held_locks`` on ``local_irq_enable`` and on the last
   ``local_bh_enable``).  A read acquisition sets the ``-R`` bits instead of
   the ``-W`` ones.  ``mark_lock_irq``: IN-x and x-ON on one class is an
   *inconsistent lock state* (a read bit conflicts with the other
   direction's write bit only: a lock only read in hard IRQ and read with
   irqs on is fine, written with irqs on it is not); an IN-x class that
   reaches an x-ON class through a strong path of the graph is an *irq lock
   inversion*.  Both are ``irq-lock-inversion``.  A trylock sets no IN-x
   bit (it cannot spin on the interrupted owner); x-ON applies to it.
2. ``check_deadlock``: a class already held by this CPU is
   ``recursive-locking``, except a recursive read after a read of it.
3. ``check_prevs_add``: an edge from every held lock of the same irq context
   (``hardirq << 1 | softirq``, as ``task_irq_context``) to the new class,
   with its dependency type: ``-(ER)->``, ``-(EN)->``, ``-(SR)->``,
   ``-(SN)->`` (the held lock Exclusive, a writer, or Shared, a reader; the
   new one a Recursive reader or Not); one pair of classes may carry
   several.  An edge that closes a cycle whose path is *strong* (no
   ``-(*R)->`` followed by ``-(S*)->``: ``__bfs``) is ``lock-inversion``,
   one that joins an IN-x class to an x-ON class along strong paths is
   ``irq-lock-inversion`` (``check_irq_usage``, for HARDIRQ and SOFTIRQ).
   A chain of held classes (and read states) seen before is skipped (the
   chain-key cache), so the graph walk happens once per new chain.

``validate_chain`` does 2 and 3 for a blocking acquisition only: "trylock can
be done in any order", so a trylock adds no edge to its class.  The trylocked
lock is held afterwards all the same: a lock taken under it gets its edge.

Where the model differs from lockdep.c on purpose: an edge is added from
every held lock of the context (the C stops at the first non-trylock one and
lets the graph connect the others, which loses strength through a recursive
reader); the strong-path search visits a class once per strength it reaches
it with (the C once, first come, and may miss a strong path); a safe ->
unsafe report pairs a USED_IN bit of the safe class with the unsafe one's
(``find_exclusive_match`` may pair an ENABLED bit first).  The SOFTIRQ
state is tracked as the kernel does, in every run: a lock taken with
softirqs and interrupts on is SOFTIRQ-ON (``{+.+.}``) whether or not any
softirq is open.

What lockdep learned (edges, usage bits, the chain cache) lives in a
:class:`LockGraph` that may outlive the run, as lockdep's graph outlives a
task: a cycle whose edges were recorded in different schedules of one search
is reported with ``prior``, the origins of the other schedules.

It also reports ``bad-unlock``, ``lock-held-at-exit`` (an operation, an IRQ
handler or a softirq handler returned with a lock held, an operation with
interrupts off) and ``sleep-in-atomic`` (a call that may sleep with a
spinlock held, interrupts off, in hard-IRQ or softirq context, BH disabled
or in an RCU read-side section: mutexes, rwsems, msleep, might_sleep,
blocking gfp, ``pm_runtime_resume_and_get``).

Each report carries a splat modelled on the kernel's text.
"""

from __future__ import annotations

from collections import deque

from model.kernel.core import model_stack
from model.kernel.softirq import softirqs_enabled

from .splat import at, dump_stack, location, trace

__all__ = ["LockGraph", "Lockdep", "lock_class", "calc_dep", "dep_names"]

# Usage bits, named as usage_str[] prints them.
IN_HARDIRQ = "IN-HARDIRQ-W"
HARDIRQ_ON = "HARDIRQ-ON-W"
IN_HARDIRQ_R = "IN-HARDIRQ-R"
HARDIRQ_ON_R = "HARDIRQ-ON-R"
IN_SOFTIRQ = "IN-SOFTIRQ-W"
SOFTIRQ_ON = "SOFTIRQ-ON-W"
IN_SOFTIRQ_R = "IN-SOFTIRQ-R"
SOFTIRQ_ON_R = "SOFTIRQ-ON-R"
HARDIRQ, SOFTIRQ = "HARDIRQ", "SOFTIRQ"
# enum lock_usage_bit order: per state USED_IN, USED_IN_READ, ENABLED, ENABLED_READ
_BITS = (IN_HARDIRQ, IN_HARDIRQ_R, HARDIRQ_ON, HARDIRQ_ON_R, IN_SOFTIRQ, IN_SOFTIRQ_R, SOFTIRQ_ON, SOFTIRQ_ON_R)
# bit -> (state, used_in, read) and back
_INFO = dict(zip(_BITS, [(s, u, r) for s in (HARDIRQ, SOFTIRQ) for u in (True, False) for r in (False, True)]))
_BIT = {info: b for b, info in _INFO.items()}
_USED_IN = tuple(b for b in _BITS if _INFO[b][1])  # get_usage_chars() order: hardirq W, R, softirq W, R
# (HARDIRQ-ON, SOFTIRQ-ON) bits of a write (index 0) and of a read (index 1)
_ENABLED_BITS = tuple((_BIT[HARDIRQ, False, r], _BIT[SOFTIRQ, False, r]) for r in (False, True))
#: how a report's stacks name where a usage bit was set
_LABEL = {
    IN_HARDIRQ: "in hard-IRQ",
    IN_HARDIRQ_R: "read in hard-IRQ",
    HARDIRQ_ON: "irqs on",
    HARDIRQ_ON_R: "read with irqs on",
    IN_SOFTIRQ: "in softirq",
    IN_SOFTIRQ_R: "read in softirq",
    SOFTIRQ_ON: "softirqs on",
    SOFTIRQ_ON_R: "read with softirqs on",
}
_NONE = {}  # usage of a class never seen (read only)

# Dependency types of an edge prev -> next (DEP_*_BIT): bit 0 of the index is
# "prev exclusive" (read == 0), bit 1 "next non-recursive" (read != 2).
DEP_SR, DEP_ER, DEP_SN, DEP_EN = 1, 2, 4, 8
_DEP_NAMES = ((DEP_SR, "SR"), (DEP_ER, "ER"), (DEP_SN, "SN"), (DEP_EN, "EN"))
_FROM_S = DEP_SR | DEP_SN  # -(S*)->: the walk leaves a class it holds shared
_TO_N = DEP_SN | DEP_EN  # -(*N)->: the walk enters a class non-recursively

# lockdep_wait_type of a class ({inner:inner} in the splat): spinlock_t, mutex
_WAIT_SPIN, _WAIT_SLEEP = 3, 4
_OWN_WORK = "the CPU's work"  # what returned, for a CPU body that is no workload operation


def lock_class(lock, subclass=0):
    return lock.name if not subclass else f"{lock.name}/{subclass}"


def calc_dep(prev_read, next_read):
    """``calc_dep()``: the dependency type (one ``DEP_*`` bit) of prev -> next."""
    return 1 << ((prev_read == 0) + ((next_read != 2) << 1))


def dep_names(mask):
    """The types of a dependency mask, ``("ER", "EN")``."""
    return tuple(name for bit, name in _DEP_NAMES if mask & bit)


def _dep_backwards(mask):
    """``calc_depb()``: the same edge seen from its end (bit 0 "next
    non-recursive", bit 1 "prev exclusive"): ER and SN swap."""
    return (mask & (DEP_SR | DEP_EN)) | ((mask & DEP_ER) << 1) | ((mask & DEP_SN) >> 1)


def _wait_type(lock):
    return _WAIT_SLEEP if lock.sleeps else _WAIT_SPIN


def _state_name(bit):
    """``state_name()``: ``HARDIRQ``, ``SOFTIRQ-READ``, ..."""
    state, _, read = _INFO[bit]
    return f"{state}-READ" if read else state


def _irq_context(cpu):
    """``task_irq_context()``: hardirq << 1 | softirq (a hard IRQ in a softirq is 3)."""
    return (2 if cpu.hardirq else 0) | (1 if cpu.softirq else 0)


def _usage_match(usage, only_xr, mask):
    """``usage_match()``: a class reached only through recursive reads counts its write bits only."""
    return any(b in mask and (not only_xr or not _INFO[b][2]) for b in usage)


def _both(state, used_in):
    """A usage bit and its read variant: ``lock_flag(bit) | lock_flag(read_bit)``."""
    return {_BIT[state, used_in, False], _BIT[state, used_in, True]}


class _Held:
    __slots__ = ("lock", "cls", "stack", "ctx", "read", "check")

    def __init__(self, lock, cls, stack, ctx, read=0, check=True):
        self.lock = lock
        self.cls = cls
        self.stack = stack
        self.ctx = ctx  # irq context at acquisition (task_irq_context): 0 process, 1 softirq, 2 hard IRQ, 3 both
        self.read = read  # 0 write, 1 read, 2 recursive read
        self.check = check  # hlock->check: 0 for maps acquired without validation (rcu_read_lock)


def _pairs(path):
    return list(zip(path, path[1:]))


def _sorted_origins(origins):
    try:
        return sorted(origins)
    except TypeError:  # tokens of mixed types
        return sorted(origins, key=repr)


class LockGraph:
    """The dependency graph and usage bits lockdep proves deadlocks from.

    ``fwd[a][b] = (a stack, b stack, origin, deps)`` for the edge a -> b:
    the stacks and origin of its first recording, and ``deps`` its
    dependency types, ``{DEP_* bit: origin}`` (a new type on a known edge is
    a new dict: the tuples are shared with copies); ``bwd[b]`` the classes
    with an edge to b, ``usage[cls][bit] = (stack, origin)``, ``chains`` the
    chain-key cache, ``waits[cls]`` the class's wait type (``{3:3}`` a
    spinlock or rwlock, ``{4:4}`` a mutex or rwsem: splats only).  Every
    edge type and usage bit records ``origin``, the value of :attr:`origin`
    when it was added: the engine sets it (an opaque hashable token, e.g.
    the schedule index) before each run that shares the graph.
    """

    __slots__ = ("fwd", "bwd", "usage", "chains", "origin", "waits", "__weakref__")

    def __init__(self):
        self.fwd = {}
        self.bwd = {}
        self.usage = {}
        self.chains = set()
        self.origin = None
        self.waits = {}  # class -> wait type, for the splats (learnt with edges and usage bits)

    def copy(self):
        """An independent copy (the stacks and edge tuples are shared, never changed)."""
        g = LockGraph()
        g.fwd = {c: dict(nxt) for c, nxt in self.fwd.items()}
        g.bwd = {c: set(prev) for c, prev in self.bwd.items()}
        g.usage = {c: dict(bits) for c, bits in self.usage.items()}
        g.chains = set(self.chains)
        g.origin = self.origin
        g.waits = dict(self.waits)
        return g

    def empty(self):
        """Nothing learnt yet (a fresh graph)."""
        return not (self.fwd or self.usage or self.chains or self.waits)

    def learn_from(self, learnt):
        """Make this (empty) graph what ``learnt`` is, every edge type and
        usage bit recorded at this graph's :attr:`origin`: a fresh graph
        whose boot a boot image replaced (:mod:`stress.bootimage`)."""
        o = self.origin
        self.fwd = {a: {b: (sa, sb, o, dict.fromkeys(deps, o)) for b, (sa, sb, _, deps) in nxt.items()} for a, nxt in learnt.fwd.items()}
        self.bwd = {c: set(prev) for c, prev in learnt.bwd.items()}
        self.usage = {c: {bit: (stack, o) for bit, (stack, _) in bits.items()} for c, bits in learnt.usage.items()}
        self.chains = set(learnt.chains)
        self.waits = dict(learnt.waits)

    def dep(self, a, b):
        """The dependency mask of a -> b (``DEP_*`` bits), 0 without the edge."""
        e = self.fwd.get(a, _NONE).get(b)
        return sum(e[3]) if e is not None else 0

    def deps(self, a, b):
        """The dependency types of a -> b, e.g. ``("SN",)``; ``()`` without the edge."""
        return dep_names(self.dep(a, b))

    def size(self):
        """Edge types plus usage bits: grows exactly when the graph learns something."""
        return sum(len(e[3]) for nxt in self.fwd.values() for e in nxt.values()) + sum(map(len, self.usage.values()))

    def __repr__(self):
        edges = sum(map(len, self.fwd.values()))
        return f"<LockGraph {len(self.usage)} classes, {edges} edges, origin {self.origin!r}>"


class Lockdep:
    """The lock validator; attach with ``kernel.attach(Lockdep(kernel))``.

    ``graph`` is the :class:`LockGraph` to learn into (a fresh one if None);
    the locks each CPU holds are per run, on the instance.
    """

    name = "lockdep"
    # A fast run (stress.run) keeps no stacks, and ``escalate`` (the
    # scheduler's) ends it before the graph, which outlives it, learns a
    # fact without its stacks.
    lazy_stacks = False
    escalate = None

    def __init__(self, kernel, graph=None):
        self.kernel = kernel
        self.graph = LockGraph() if graph is None else graph
        self.held = {}  # cpu id -> [_Held]

    def _learn(self):
        """About to add to the graph (a chain, an edge, a usage bit)."""
        if self.escalate is not None:
            self.escalate()

    # -- hooks --------------------------------------------------------------------

    def lock_acquire(self, cpu, lock, trylock, subclass, read=0):
        cls = lock.name if not subclass else f"{lock.name}/{subclass}"
        stack = model_stack(2) if not self.lazy_stacks else ()
        held = self.held.get(cpu.id)
        if held is None:
            held = self.held[cpu.id] = []
        hardirq, softirq = cpu.hardirq, cpu.softirq
        ctx = _irq_context(cpu)
        if not getattr(lock, "check", True):
            # lock_acquire(..., check=0, ...): held, nothing validated (rcu_lock_acquire)
            held.append(_Held(lock, cls, stack, ctx, read, False))
            return
        g = self.graph
        # 1. mark_usage: a trylock is not USED_IN, irqs-on applies to it all the same
        r = read != 0
        if not trylock and (hardirq or softirq):
            usage = g.usage.get(cls, _NONE)
            if hardirq and _BIT[HARDIRQ, True, r] not in usage:
                self._mark(cpu, cls, _BIT[HARDIRQ, True, r], read, stack, lock)
            if softirq and _BIT[SOFTIRQ, True, r] not in usage:
                self._mark(cpu, cls, _BIT[SOFTIRQ, True, r], read, stack, lock)
        if cpu.irqs_enabled and not hardirq:
            usage = g.usage.get(cls, _NONE)
            hardirq_on, softirq_on = _ENABLED_BITS[r]
            if hardirq_on not in usage:
                self._mark(cpu, cls, hardirq_on, read, stack, lock)
            if softirqs_enabled(cpu) and softirq_on not in usage:
                self._mark(cpu, cls, softirq_on, read, stack, lock)
        if not trylock and held:
            # 2. check_deadlock: read-after-read recursion of one class is allowed
            for h in held:
                if h.cls == cls and not (read == 2 and h.read):
                    self._recursive(cpu, lock, cls, stack, h)
            # 3. check_prevs_add, once per chain (the key has the read states: hlock_id)
            same_ctx = tuple([(h.cls, h.read) for h in held if h.ctx == ctx and h.check])
            key = (same_ctx, cls, read)
            if same_ctx and key not in g.chains:
                self._learn()
                for h in held:
                    if h.ctx == ctx and h.check and h.cls != cls:
                        self._add_edge(cpu, h, cls, read, stack, lock)
                g.chains.add(key)
        held.append(_Held(lock, cls, stack, ctx, read))

    def lock_release(self, cpu, lock):
        held = self.held.get(cpu.id, [])
        for i in range(len(held) - 1, -1, -1):
            if held[i].lock is lock:
                del held[i]
                return
        stack = model_stack(2)
        self._bad_unlock(cpu, lock, stack)

    def irqs(self, cpu, enabled):
        # mark_held_locks(): locks held while irqs get enabled are HARDIRQ-ON,
        # and SOFTIRQ-ON too if softirqs are enabled
        if enabled and not cpu.hardirq:
            self._mark_held(cpu, HARDIRQ)
            if softirqs_enabled(cpu):
                self._mark_held(cpu, SOFTIRQ)

    def bh(self, cpu, enabled):
        # lockdep_softirqs_on(): locks held while softirqs get enabled with
        # irqs on are SOFTIRQ-ON
        if enabled and cpu.irqs_enabled and not cpu.hardirq:
            self._mark_held(cpu, SOFTIRQ)

    def _mark_held(self, cpu, state):
        """``mark_held_locks(curr, LOCK_ENABLED_<state>)``."""
        stack = None
        for h in self.held.get(cpu.id, ()):
            if not h.check:
                continue
            bit = _BIT[state, False, h.read != 0]
            if bit not in self.graph.usage.get(h.cls, _NONE):
                stack = stack or model_stack(3)
                self._mark(cpu, h.cls, bit, h.read, stack, h.lock, h)

    def hardirq_exit(self, cpu, irq):
        left = [h for h in self.held.get(cpu.id, ()) if h.ctx & 2]
        if left:
            self._held_at_exit(cpu, f"hard IRQ {irq} handler", left)

    def softirq_exit(self, cpu, nr):
        left = [h for h in self.held.get(cpu.id, ()) if h.ctx == 1]
        if left:
            self._held_at_exit(cpu, f"softirq {nr} handler", left)

    def might_sleep(self, cpu, what):
        if not cpu.in_atomic():
            return
        stack = model_stack(2)
        self._sleep_in_atomic(cpu, what, stack, self.held.get(cpu.id, []))

    def op_end(self, cpu, name):
        held = [h for h in self.held.get(cpu.id, ()) if not h.ctx]
        if held or not cpu.irqs_enabled:
            self._held_at_exit(cpu, name or _OWN_WORK, held)

    # -- checks -------------------------------------------------------------------

    def _mark(self, cpu, cls, bit, read, stack, lock, held=None):
        """``mark_lock()`` + ``mark_lock_irq()``: set usage ``bit`` of ``cls`` (``lock``
        a lock of the class, taken with ``read``; ``held`` its held entry when the bit
        comes from enabling interrupts or softirqs, else it is being taken)."""
        g = self.graph
        usage = g.usage.get(cls)
        if usage is not None and bit in usage:
            return
        self._learn()
        if usage is None:
            usage = g.usage[cls] = {}
        usage[bit] = (stack, g.origin)
        g.waits[cls] = _wait_type(lock)
        at = held.stack if held is not None else stack
        state, used_in, is_read = _INFO[bit]
        # valid_state(): the other direction's write bit, and for a write its read bit too
        excl = _BIT[state, not used_in, False]
        if excl in usage:
            self._inconsistent(cpu, cls, excl, bit, usage, stack, at)
        excl_read = _BIT[state, not used_in, True]
        if not is_read and excl_read in usage:
            self._inconsistent(cpu, cls, excl_read, bit, usage, stack, at)
        mask = {excl, excl_read}
        if used_in:
            # check_usage_forwards(): a new USED_IN class must not reach an ENABLED one
            path = self._bfs(cls, read == 2, True, lambda c, xr: _usage_match(g.usage.get(c, _NONE), xr, mask))
            if path:
                found = g.usage[path[-1]]
                unsafe_bit = excl if excl in found else excl_read
                self._irq_inversion(cpu, path, True, stack, at, bit, unsafe_bit)
        else:
            # check_usage_backwards(): a new ENABLED class must not be reached from a USED_IN one
            path = self._bfs(cls, read != 0, False, lambda c, xr: _usage_match(g.usage.get(c, _NONE), xr, mask))
            if path:
                path.reverse()
                found = g.usage[path[0]]
                safe_bit = excl if excl in found else excl_read
                self._irq_inversion(cpu, path, False, stack, at, safe_bit, bit)

    def _bfs(self, root, only_xr, forwards, match):
        """``__bfs()``: breadth first along *strong* paths from ``root`` (the
        walk's dependencies may not go -(*R)-> then -(S*)->: ``only_xr`` is
        whether the walk entered a class through recursive reads only; the
        root's is given), the path ``[root, ..., c]`` to the first class
        ``c`` with ``match(c, only_xr)``, or None.  ``forwards``: along
        ``fwd`` (the dependencies of the root), else along ``bwd``.

        A class is walked again when reached with more strength (not only_xr
        after only_xr); the C walks it once, first come.
        """
        fwd = self.graph.fwd
        nbrs = fwd if forwards else self.graph.bwd
        seen = {}  # class -> only_xr it was walked with (False: the strongest)
        queue = deque([(root, None, 0)])
        while queue:
            c, parent, dep = queue.popleft()
            if parent is None:
                xr = only_xr
            else:
                if parent[2]:
                    dep &= ~_FROM_S  # -(*R)-> then -(S*)-> is no strong dependency
                    if not dep:
                        continue
                xr = not dep & _TO_N
            walked = seen.get(c)
            if walked is not None and (walked is False or xr):
                continue
            seen[c] = xr
            node = (c, parent, xr)
            if match(c, xr):
                path = []
                while node is not None:
                    path.append(node[0])
                    node = node[1]
                path.reverse()
                return path
            for n in sorted(nbrs.get(c, ())):
                if forwards:
                    d = sum(fwd[c][n][3])
                else:
                    d = _dep_backwards(sum(fwd[n][c][3]))
                queue.append((n, node, d))
        return None

    def _add_edge(self, cpu, prev, cls, read, stack, lock):
        """``check_prev_add()``: the dependency prev -> cls of type ``calc_dep``."""
        g = self.graph
        dep = calc_dep(prev.read, read)
        edge = g.fwd.get(prev.cls, _NONE).get(cls)
        if edge is not None and dep in edge[3]:
            return
        g.waits[cls] = _wait_type(lock)
        g.waits[prev.cls] = _wait_type(prev.lock)
        # check_noncircular: does the new class already reach prev along a strong
        # path that, with prev -> cls, is a strong cycle (hlock_conflict)?
        path = self._bfs(cls, read == 2, True, lambda c, xr: c == prev.cls and (prev.read == 0 or not xr))
        if path:
            self._circular(cpu, prev, cls, read, stack, path)
        self._check_irq_usage(cpu, prev, cls, read, stack)
        if edge is None:
            g.fwd.setdefault(prev.cls, {})[cls] = (prev.stack, stack, g.origin, {dep: g.origin})
            g.bwd.setdefault(cls, set()).add(prev.cls)
        else:
            g.fwd[prev.cls][cls] = (*edge[:3], {**edge[3], dep: g.origin})

    def _check_irq_usage(self, cpu, prev, cls, read, stack):
        """``check_irq_usage()``: no IN-x class behind prev (strong paths) with an
        x-ON class ahead of cls, for x HARDIRQ and SOFTIRQ, write or read."""
        g = self.graph
        # 1. the USED_IN bits behind prev
        behind_bits = set()

        def accumulate(c, xr):
            behind_bits.update(b for b in g.usage.get(c, _NONE) if not xr or not _INFO[b][2])
            return False

        self._bfs(prev.cls, prev.read != 0, False, accumulate)
        states = {_INFO[b][0] for b in behind_bits if _INFO[b][1]}
        if not states:
            return
        # 2. an ENABLED class ahead of cls, in a state used in behind (exclusive_mask)
        forward_mask = set().union(*(_both(s, False) for s in states))
        ahead = self._bfs(cls, read == 2, True, lambda c, xr: _usage_match(g.usage.get(c, _NONE), xr, forward_mask))
        if not ahead:
            return
        # 3. the USED_IN class behind prev for the states that one is ENABLED in (original_mask)
        unsafe_usage = g.usage[ahead[-1]]
        backward_mask = set().union(*(_both(_INFO[b][0], True) for b in unsafe_usage if not _INFO[b][1]))
        behind = self._bfs(
            prev.cls, prev.read != 0, False, lambda c, xr: _usage_match(g.usage.get(c, _NONE), xr, backward_mask)
        )
        if not behind:
            return
        # 4. find_exclusive_match(): the first USED_IN bit of the safe class whose
        # exclusive bit (write, else read) the unsafe class has
        safe_usage = g.usage[behind[-1]]
        for bit in _BITS:
            if bit in safe_usage and _INFO[bit][1]:
                state = _INFO[bit][0]
                excl = _BIT[state, False, False]
                excl_read = _BIT[state, False, True]
                unsafe_bit = excl if excl in unsafe_usage else excl_read if excl_read in unsafe_usage else None
                if unsafe_bit is not None:
                    behind.reverse()
                    self._safe_to_unsafe(cpu, prev, cls, stack, behind, ahead, bit, unsafe_bit)
                    return

    def _prior(self, edges=(), bits=()):
        """Origins other than the current run's among recorded ``edges`` ((a, b)
        pairs: every type of the edge) and usage ``bits`` ((class, bit) pairs), and
        the splat lines saying so."""
        g = self.graph
        now = g.origin
        origins, lines = set(), []
        for a, b in edges:
            for origin in _sorted_origins(set(g.fwd[a][b][3].values())):
                if origin != now:
                    origins.add(origin)
                    lines.append(f"the dependency (&{a}) -> (&{b}) was recorded in an earlier schedule (schedule {origin})")
        for cls, bit in bits:
            origin = g.usage[cls][bit][1]
            if origin != now:
                origins.add(origin)
                lines.append(f"the {{{bit}}} state of (&{cls}) was recorded in an earlier schedule (schedule {origin})")
        return _sorted_origins(origins), lines

    # -- splats (kernel/locking/lockdep.c, kernel/sched/core.c) -------------------------
    #
    # Each reads as the kernel prints it: the ``====`` rule as long as the title
    # line, the ``----`` rule, ``print_lock()`` of the locks involved (no address,
    # no pid: ``CPU0`` stands for ``comm/pid``), the dependency chain with the
    # stacks lockdep saved, the unsafe scenario, ``lockdep_print_held_locks()``
    # and ``stack backtrace:``.  Every stack of the report's ``stacks`` is in it.

    def _wait(self, cls, lock=None):
        if lock is not None:
            return _wait_type(lock)
        return self.graph.waits.get(cls, _WAIT_SPIN)

    def _usage_chars(self, cls):
        """``get_usage_chars()``: hardirq write/read, softirq write/read.

        Each: ``+`` enabled (x-ON), ``-`` used in the context (IN-x), ``?``
        both, ``.`` neither.
        """
        u = self.graph.usage.get(cls, _NONE)
        chars = []
        for used_in in _USED_IN:
            state, _, read = _INFO[used_in]
            on, used = _BIT[state, False, read] in u, used_in in u
            chars.append("?" if on and used else "+" if on else "-" if used else ".")
        return "".join(chars)

    def _lock_name(self, cls, lock=None):
        """``print_lock_name()`` without its leading space: ``(&name){usage}-{inner:inner}``."""
        w = self._wait(cls, lock)
        return f"(&{cls}){{{self._usage_chars(cls)}}}-{{{w}:{w}}}"

    def _print_lock(self, cls, stack, lock=None):
        """``print_lock()``: the lock and the caller of its acquisition (``acquire_ip``)."""
        return f"{self._lock_name(cls, lock)}, at: {at(stack)}"

    def _held_lines(self, cpu, held):
        """``lockdep_print_held_locks()``."""
        if not held:
            return [f"no locks held by {cpu!r}."]
        lines = [f"{len(held)} lock{'s' if len(held) > 1 else ''} held by {cpu!r}:"]
        for i, h in enumerate(held):
            lines.append(f" #{i}: {self._print_lock(h.cls, h.stack, h.lock)}")
        return lines

    def show_held_locks(self, cpu):
        """The locks ``cpu`` holds as ``debug_show_all_locks()`` lists them, or ``[]``.

        Includes a lock the CPU is waiting for (lockdep's held list has it from
        ``lock_acquire``, as the kernel's does).  The scheduler calls this when
        it reports, for every CPU.
        """
        held = self.held.get(cpu.id)
        return self._held_lines(cpu, held) if held else []

    def _acquired(self, held):
        """Where each held lock was taken (the report's stacks for held locks)."""
        lines = []
        for h in held:
            lines += ["", f"(&{h.cls}) was acquired at:", *trace(h.stack, 2)]
        return lines

    @staticmethod
    def _context(cpu):
        """``[HC0[0]:SC0[0]:HE1:SE1]``: hard-IRQ context and ``hardirq_count()``,
        softirq context and ``softirq_count()`` (serving 1, each BH disable 2),
        hardirqs enabled, softirqs enabled."""
        hc, sc = cpu.hardirq, cpu.softirq
        return (
            f"[HC{1 if hc else 0}[{hc}]:SC{1 if sc else 0}[{sc + 2 * cpu.bh}]:"
            f"HE{int(cpu.irqs_enabled)}:SE{int(softirqs_enabled(cpu))}]"
        )

    def _class_header(self, cls, depth):
        """``print_lock_class_header()``: the class and the stack of each usage bit."""
        pad = " " * depth
        lines = [f"{pad}-> {self._lock_name(cls)} {{"]
        usage = self.graph.usage.get(cls, _NONE)
        for bit in _BITS:
            if bit in usage:
                lines.append(f"{pad}   {bit} at:")
                lines += trace(usage[bit][0], 2 * depth + len(bit) + 8)
        lines.append(f"{pad} }}")
        return lines

    def _dependencies(self, entries, first_untraced=False):
        """``print_shortest_lock_dependencies()``: ``entries`` are ``(class, depth,
        stack)`` from the leaf to the root; ``first_untraced`` (the ``_backwards``
        variant) prints no "acquired at" for the leaf."""
        lines = []
        for i, (cls, depth, stack) in enumerate(entries):
            lines += self._class_header(cls, depth)
            if i == 0 and first_untraced:
                continue
            lines += [f"{' ' * depth} ... acquired at:", *trace(stack, 3), ""]
        return lines

    def _edge_stack(self, a, b):
        """Where ``b`` was taken with ``a`` held (the trace of the edge a -> b)."""
        return self.graph.fwd[a][b][1]

    @staticmethod
    def _irq_scenario(safe, unsafe, middle):
        """``print_irq_lock_scenario()``."""
        lines = []
        if middle != unsafe:
            lines += ["Chain exists of:", f"  &{safe} --> &{middle} --> &{unsafe}", ""]
        return lines + [
            " Possible interrupt unsafe locking scenario:",
            "",
            "       CPU0                    CPU1",
            "       ----                    ----",
            f"  lock(&{unsafe});",
            "                               local_irq_disable();",
            f"                               lock(&{safe});",
            f"                               lock(&{middle});",
            "  <Interrupt>",
            f"    lock(&{safe});",
            "",
            " *** DEADLOCK ***",
            "",
        ]

    def _bad_unlock(self, cpu, lock, stack):
        """``print_unlock_imbalance_bug()``."""
        lines = [
            "WARNING: bad unlock balance detected!",
            f"{cpu!r} is trying to release lock (&{lock_class(lock)}) at:",
            at(stack),
            "but there are no more locks to release!",
            "",
            "other info that might help us debug this:",
            *self._held_lines(cpu, self.held.get(cpu.id, [])),
        ]
        self._report(
            "bad-unlock",
            f"{cpu!r} is trying to release lock ({lock_class(lock)}) that it does not hold",
            lines,
            cpu,
            {"release": stack},
            backtrace=stack,
        )

    def _sleep_in_atomic(self, cpu, what, stack, held):
        """``__might_resched()``: FILE:LINE is where the sleeping call was made."""
        loc = next((location(fr) for fr in stack if location(fr)), None) or at(stack)
        # preempt_count(): the spinlocks' count, SOFTIRQ_OFFSET serving, 2 * that a BH disable, HARDIRQ_OFFSET
        count = cpu.preempt + (cpu.softirq + 2 * cpu.bh) * 0x100 + cpu.hardirq * 0x10000
        lines = [
            f"BUG: sleeping function called from invalid context at {loc}",
            f"sleeping call: {what}",
            f"in_atomic(): {int(count != 0)}, "
            f"irqs_disabled(): {int(not cpu.irqs_enabled)}, non_block: 0, pid: 0, name: {cpu!r}",
            f"preempt_count: {count:x}, expected: 0",
            # CONFIG_PREEMPT_RCU prints it always; here only when it is the reason
            *([f"RCU nest depth: {cpu.rcu}, expected: 0"] if cpu.rcu else []),
            *self._held_lines(cpu, held),
            *self._acquired(held),
            "",
            *dump_stack(cpu, stack),
        ]
        if cpu.hardirq:
            where = "in hard-IRQ context"
        elif cpu.softirq:
            where = "in softirq context"
        elif cpu.preempt:
            where = "with a spinlock held"
        elif not cpu.irqs_enabled:
            where = "with interrupts disabled"
        elif cpu.bh:
            where = "with BH disabled"
        else:
            where = f"in an RCU read-side critical section (RCU nest depth {cpu.rcu})"
        self._report(
            "sleep-in-atomic",
            f"{what} {where} on {cpu!r}",
            lines,
            cpu,
            {"sleep": stack, **{f"held {h.cls}": h.stack for h in held}},
            rule=0,
        )

    def _inconsistent(self, cpu, cls, old, new, usage, stack, at_stack):
        """``print_usage_bug()``."""
        lines = [
            "WARNING: inconsistent lock state",
            f"inconsistent {{{old}}} -> {{{new}}} usage.",
            f"{cpu!r} {self._context(cpu)} takes:",
            self._print_lock(cls, at_stack),
            f"{{{old}}} state was registered at:",
            *trace(usage[old][0], 2),
            "",
            "other info that might help us debug this:",
            " Possible unsafe locking scenario:",
            "",
            "       CPU0",
            "       ----",
            f"  lock(&{cls});",
            "  <Interrupt>",
            f"    lock(&{cls});",
            "",
            " *** DEADLOCK ***",
            "",
            *self._held_lines(cpu, self.held.get(cpu.id, [])),
        ]
        prior, notes = self._prior(bits=[(cls, old)])
        self._report(
            "irq-lock-inversion",
            f"inconsistent {{{old}}} -> {{{new}}} usage of ({cls}) on {cpu!r}",
            lines,
            cpu,
            {old: usage[old][0], new: stack},
            prior,
            notes=notes,
            backtrace=stack,
        )

    def _irq_inversion(self, cpu, path, forwards, stack, at_stack, safe_bit, unsafe_bit):
        """``print_irq_inversion_bug()``; ``path`` runs from the x-safe class (usage
        ``safe_bit``, IN-x) to the x-unsafe one (``unsafe_bit``, x-ON),
        ``forwards``: its first class just got ``safe_bit`` (else its last just
        got ``unsafe_bit``)."""
        safe, unsafe = path[0], path[-1]
        # the state of the other lock's bit, as check_usage_forwards/backwards name it
        irqclass = _state_name(unsafe_bit if forwards else safe_bit)
        usage = self.graph.usage
        this, other = (safe, unsafe) if forwards else (unsafe, safe)
        n = len(path) - 1
        if forwards:
            middle = path[1]
            # leaf (unsafe, depth n) to root (safe, depth 0); the root's stack is now
            deps = [(path[k], k, self._edge_stack(path[k - 1], path[k]) if k else stack) for k in range(n, -1, -1)]
        else:
            middle = path[-2]
            # leaf (safe, depth n) to root (unsafe, depth 0): a class's stack is
            # where the next one was taken with it held
            deps = [(path[k], n - k, self._edge_stack(path[k], path[k + 1]) if k < n else stack) for k in range(n + 1)]
        if middle == safe:
            middle = unsafe
        lines = [
            "WARNING: possible irq lock inversion dependency detected",
            f"{cpu!r} just changed the state of lock:",
            self._print_lock(this, at_stack),
            f"but this lock took another, {irqclass}-unsafe lock in the past:"
            if forwards
            else f"but this lock was taken by another, {irqclass}-safe lock in the past:",
            f" {self._lock_name(other)}",
            "",
            "and interrupts could create inverse lock ordering between them.",
            "",
            "",
            "other info that might help us debug this:",
            *self._irq_scenario(safe, unsafe, middle),
            *self._held_lines(cpu, self.held.get(cpu.id, [])),
            "",
            "the shortest dependencies between 2nd lock and 1st lock:",
            *self._dependencies(deps),
        ]
        prior, notes = self._prior(_pairs(path), [(safe, safe_bit), (unsafe, unsafe_bit)])
        self._report(
            "irq-lock-inversion",
            f"{_state_name(safe_bit)}-safe ({safe}) -> {_state_name(unsafe_bit)}-unsafe ({unsafe})"
            f" through {' -> '.join(path)}",
            lines,
            cpu,
            {
                f"{safe} {_LABEL[safe_bit]}": usage[safe][safe_bit][0],
                f"{unsafe} {_LABEL[unsafe_bit]}": usage[unsafe][unsafe_bit][0],
            },
            prior,
            notes=notes,
            backtrace=stack,
        )

    def _safe_to_unsafe(self, cpu, prev, cls, stack, behind, ahead, safe_bit, unsafe_bit):
        """``print_bad_irq_dependency()``; ``behind``: safe -> ... -> prev,
        ``ahead``: cls -> ... -> unsafe (recorded edges); ``safe_bit`` and
        ``unsafe_bit`` the pair of usage bits (``find_exclusive_match``)."""
        irq = _state_name(safe_bit)  # the C names both ends after the safe one's bit
        chain = behind + ahead
        safe, unsafe = chain[0], chain[-1]
        usage = self.graph.usage
        middle = cls if prev.cls == safe else prev.cls
        nb, na = len(behind) - 1, len(ahead) - 1
        back = [(behind[k], nb - k, self._edge_stack(behind[k - 1], behind[k]) if k else None) for k in range(nb + 1)]
        fwd = [(ahead[k], k, self._edge_stack(ahead[k - 1], ahead[k]) if k else stack) for k in range(na, -1, -1)]
        lines = [
            f"WARNING: {irq}-safe -> {irq}-unsafe lock order detected",
            f"{cpu!r} {self._context(cpu)} is trying to acquire:",
            self._print_lock(cls, stack),
            "",
            "and this task is already holding:",
            self._print_lock(prev.cls, prev.stack, prev.lock),
            "which would create a new lock dependency:",
            f" {self._lock_name(prev.cls, prev.lock)} -> {self._lock_name(cls)}",
            "",
            f"but this new dependency connects a {irq}-irq-safe lock:",
            f" {self._lock_name(safe)}",
            "",
            f"... which became {irq}-irq-safe at:",
            *trace(usage[safe][safe_bit][0], 2),
            "",
            f"to a {irq}-irq-unsafe lock:",
            f" {self._lock_name(unsafe)}",
            "",
            f"... which became {irq}-irq-unsafe at:",
            "...",
            *trace(usage[unsafe][unsafe_bit][0], 2),
            "",
            "other info that might help us debug this:",
            "",
            *self._irq_scenario(safe, unsafe, middle),
            *self._held_lines(cpu, self.held.get(cpu.id, [])),
            "",
            f"the dependencies between {irq}-irq-safe lock and the holding lock:",
            *self._backward_dependencies(back),
            "",
            "the dependencies between the lock to be acquired",
            f" and {irq}-irq-unsafe lock:",
            *self._dependencies(fwd),
        ]
        prior, notes = self._prior(_pairs(behind) + _pairs(ahead), [(safe, safe_bit), (unsafe, unsafe_bit)])
        self._report(
            "irq-lock-inversion",
            f"{irq}-safe ({safe}) -> {_state_name(unsafe_bit)}-unsafe ({unsafe}) lock order: {' -> '.join(chain)}",
            lines,
            cpu,
            {
                f"{safe} {_LABEL[safe_bit]}": usage[safe][safe_bit][0],
                f"{unsafe} {_LABEL[unsafe_bit]}": usage[unsafe][unsafe_bit][0],
            },
            prior,
            notes=notes,
            backtrace=stack,
            rule=53,  # the kernel's rule for this one is fixed, not the title's length
        )

    def _backward_dependencies(self, back):
        """``print_shortest_lock_dependencies_backwards()``: ``back`` from the
        leaf (the safe class) to the root (the held lock), each with the stack
        of the edge that reaches it (none for the leaf)."""
        lines = []
        for cls, depth, edge in back:
            lines += self._class_header(cls, depth)
            if edge is not None:
                lines += [f"{' ' * depth} ... acquired at:", *trace(edge, 3), ""]
        return lines

    def _circular(self, cpu, prev, cls, read, stack, path):
        """``print_circular_bug()``; ``path``: cls -> ... -> prev.cls already exists
        (a strong path), adding prev.cls -> cls (cls taken with ``read``) closes it."""
        lines = [
            "WARNING: possible circular locking dependency detected",
            f"{cpu!r} is trying to acquire lock:",
            self._print_lock(cls, stack),
            "",
            "but task is already holding lock:",
            self._print_lock(prev.cls, prev.stack, prev.lock),
            "",
            "which lock already depends on the new lock.",
            "",
            "",
            "the existing dependency chain (in reverse order) is:",
        ]
        stacks = {f"{prev.cls} -> {cls} (new)": stack}
        n = len(path) - 1
        for a, b in reversed(_pairs(path)):
            b_stack = self._edge_stack(a, b)
            lines += ["", f"-> #{n} {self._lock_name(b)}:", *trace(b_stack, 7)]
            stacks[f"{a} -> {b}"] = b_stack
            n -= 1
        lines += ["", f"-> #0 {self._lock_name(cls)}:", *trace(stack, 7), "", "other info that might help us debug this:", ""]
        # print_circular_lock_scenario(): source (the new lock), parent (the lock
        # the held one was taken under on the chain) and target (the held lock)
        parent = path[-2]
        if parent != cls:
            lines += ["Chain exists of:", f"  &{cls} --> &{parent} --> &{prev.cls}", ""]
        lines += [
            " Possible unsafe locking scenario:",
            "",
            "       CPU0                    CPU1",
            "       ----                    ----",
            f"  {'r' if prev.read else ''}lock(&{prev.cls});",
            f"                               lock(&{parent});",
            f"                               lock(&{prev.cls});",
            f"  {'r' if read else ''}lock(&{cls});",
            "",
            " *** DEADLOCK ***",
            "",
            *self._held_lines(cpu, self.held.get(cpu.id, [])),
        ]
        prior, notes = self._prior(_pairs(path))
        cycle = " -> ".join([prev.cls, *path])
        self._report(
            "lock-inversion",
            f"circular locking dependency {cycle} on {cpu!r}",
            lines,
            cpu,
            stacks,
            prior,
            notes=notes,
            backtrace=stack,
        )

    def _recursive(self, cpu, lock, cls, stack, h):
        """``print_deadlock_bug()``."""
        lines = [
            "WARNING: possible recursive locking detected",
            f"{cpu!r} is trying to acquire lock:",
            self._print_lock(cls, stack, lock),
            "",
            "but task is already holding lock:",
            self._print_lock(h.cls, h.stack, h.lock),
            "",
            "other info that might help us debug this:",
            " Possible unsafe locking scenario:",
            "",
            "       CPU0",
            "       ----",
            f"  lock(&{h.cls});",
            f"  lock(&{cls});",
            "",
            " *** DEADLOCK ***",
            "",
            " May be due to missing lock nesting notation",
            "",
            *self._held_lines(cpu, self.held.get(cpu.id, [])),
            *self._acquired([h]),
        ]
        self._report(
            "recursive-locking",
            f"{cpu!r} takes ({cls}) while holding it",
            lines,
            cpu,
            {"first": h.stack, "again": stack},
            backtrace=stack,
        )

    def _held_at_exit(self, cpu, what, held):
        """``lockdep_sys_exit()`` for an operation, ``print_held_locks_bug()`` for
        an IRQ handler; interrupts left disabled are said on their own."""
        if held:
            title = (
                f"WARNING: {cpu!r} still has locks held!"
                if what.startswith(("hard IRQ", "softirq"))
                else "WARNING: lock held when returning to user space!"
            )
            leaving = "the kernel" if what == _OWN_WORK else what
            lines = [title, f"{cpu!r} is leaving {leaving} with locks still held!"]
            if not cpu.irqs_enabled:
                lines.append("and interrupts are still disabled")
            lines += [*self._held_lines(cpu, held), *self._acquired(held)]
        else:
            lines = [f"WARNING: {cpu!r} is leaving {what} with interrupts disabled!", *self._held_lines(cpu, held)]
        self._report(
            "lock-held-at-exit",
            f"{what} returned on {cpu!r} with "
            + (", ".join(f"({h.cls})" for h in held) + " held" if held else "interrupts disabled"),
            lines,
            cpu,
            {f"acquired {h.cls}": h.stack for h in held},
        )

    def _report(self, kind, message, lines, cpu, stacks, prior=None, *, notes=(), backtrace=None, rule=None):
        """Frame ``lines`` as lockdep does and report.

        ``rule``: the length of the ``====``/``----`` rules around the title
        (default: the title's; 0: none, as ``__might_resched``); ``notes``:
        what the find rests on from earlier schedules; ``backtrace``: the
        current stack, printed as ``stack backtrace:``; ``prior``: origins of
        other runs the find rests on (``kernel.report(prior=...)``).
        """
        width = len(lines[0]) if rule is None else rule
        text = ["=" * width, lines[0], "-" * width, *lines[1:]] if width else list(lines)
        if notes:
            text += ["", *notes]
        if backtrace is not None:
            text += ["", "stack backtrace:", *dump_stack(cpu, backtrace)]
        splat = "\n".join(text)
        if prior:
            self.kernel.report(kind, message, splat=splat, stacks=stacks, cpu=cpu, prior=prior)
        else:
            self.kernel.report(kind, message, splat=splat, stacks=stacks, cpu=cpu)
