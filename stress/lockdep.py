"""A lockdep for the model (kernel/locking/lockdep.c, reduced to what it proves).

Locks are grouped into classes by name (``spin_lock_nested`` subclasses are
``name/N``).  On every acquisition, as ``__lock_acquire`` does:

1. ``mark_usage``: a class taken in hard-IRQ context is IN-HARDIRQ, one taken
   (or held while interrupts are enabled) in process context is HARDIRQ-ON.
   Both on one class is an *inconsistent lock state*; an IN-HARDIRQ class that
   reaches a HARDIRQ-ON class through the dependency graph is an *irq lock
   inversion*.  Both are ``irq-lock-inversion``.  A trylock sets no IN-HARDIRQ
   bit (it cannot spin on the interrupted owner); HARDIRQ-ON applies to it.
2. ``check_deadlock``: a class already held by this CPU is ``recursive-locking``.
3. ``check_prevs_add``: an edge from every held lock of the same irq context
   to the new class; an edge that closes a cycle is ``lock-inversion``, one
   that joins an IN-HARDIRQ class to a HARDIRQ-ON class is
   ``irq-lock-inversion``.  A chain of held classes seen before is skipped
   (the chain-key cache), so the graph walk happens once per new chain.

``validate_chain`` does 2 and 3 for a blocking acquisition only: "trylock can
be done in any order", so a trylock adds no edge to its class.  The trylocked
lock is held afterwards all the same: a lock taken under it gets its edge.

What lockdep learned (edges, usage bits, the chain cache) lives in a
:class:`LockGraph` that may outlive the run, as lockdep's graph outlives a
task: a cycle whose edges were recorded in different schedules of one search
is reported with ``prior``, the origins of the other schedules.

It also reports ``bad-unlock``, ``lock-held-at-exit`` (an operation or an
IRQ handler returned with a lock held or interrupts off) and
``sleep-in-atomic`` (a call that may sleep with a spinlock held, interrupts
off or in hard-IRQ context: mutexes, msleep, might_sleep, blocking gfp,
``pm_runtime_resume_and_get``).

Each report carries a splat modelled on the kernel's text.
"""

from __future__ import annotations

from collections import deque

from model.kernel.core import model_stack

from .splat import at, dump_stack, location, trace

__all__ = ["LockGraph", "Lockdep", "lock_class"]

IN_HARDIRQ = "IN-HARDIRQ-W"
HARDIRQ_ON = "HARDIRQ-ON-W"
_BITS = (IN_HARDIRQ, HARDIRQ_ON)  # the kernel's usage-bit order (LOCK_USED_IN_HARDIRQ first)
_NONE = {}  # usage of a class never seen (read only)
# lockdep_wait_type of a class ({inner:inner} in the splat): spinlock_t, mutex
_WAIT_SPIN, _WAIT_SLEEP = 3, 4
_OWN_WORK = "the CPU's work"  # what returned, for a CPU body that is no workload operation


def lock_class(lock, subclass=0):
    return lock.name if not subclass else f"{lock.name}/{subclass}"


def _wait_type(lock):
    return _WAIT_SLEEP if lock.sleeps else _WAIT_SPIN


class _Held:
    __slots__ = ("lock", "cls", "stack", "ctx")

    def __init__(self, lock, cls, stack, ctx):
        self.lock = lock
        self.cls = cls
        self.stack = stack
        self.ctx = ctx  # hard-IRQ depth at acquisition: the irq_context of lockdep


def _pairs(path):
    return list(zip(path, path[1:]))


def _sorted_origins(origins):
    try:
        return sorted(origins)
    except TypeError:  # tokens of mixed types
        return sorted(origins, key=repr)


class LockGraph:
    """The dependency graph and usage bits lockdep proves deadlocks from.

    ``fwd[a][b] = (a stack, b stack, origin)`` for the edge a -> b,
    ``bwd[b]`` the classes with an edge to b, ``usage[cls][bit] = (stack,
    origin)``, ``chains`` the chain-key cache, ``waits[cls]`` the class's
    wait type (``{3:3}`` a spinlock, ``{4:4}`` a mutex: splats only).  Every edge and usage bit
    records ``origin``, the value of :attr:`origin` when it was added: the
    engine sets it (an opaque hashable token, e.g. the schedule index)
    before each run that shares the graph.
    """

    __slots__ = ("fwd", "bwd", "usage", "chains", "origin", "waits")

    def __init__(self):
        self.fwd = {}
        self.bwd = {}
        self.usage = {}
        self.chains = set()
        self.origin = None
        self.waits = {}  # class -> wait type, for the splats (learnt with edges and usage bits)

    def copy(self):
        """An independent copy (the stacks, tuples, are shared)."""
        g = LockGraph()
        g.fwd = {c: dict(nxt) for c, nxt in self.fwd.items()}
        g.bwd = {c: set(prev) for c, prev in self.bwd.items()}
        g.usage = {c: dict(bits) for c, bits in self.usage.items()}
        g.chains = set(self.chains)
        g.origin = self.origin
        g.waits = dict(self.waits)
        return g

    def size(self):
        """Edges plus usage bits: grows exactly when the graph learns something."""
        return sum(map(len, self.fwd.values())) + sum(map(len, self.usage.values()))

    def __repr__(self):
        edges = sum(map(len, self.fwd.values()))
        return f"<LockGraph {len(self.usage)} classes, {edges} edges, origin {self.origin!r}>"


class Lockdep:
    """The lock validator; attach with ``kernel.attach(Lockdep(kernel))``.

    ``graph`` is the :class:`LockGraph` to learn into (a fresh one if None);
    the locks each CPU holds are per run, on the instance.
    """

    name = "lockdep"

    def __init__(self, kernel, graph=None):
        self.kernel = kernel
        self.graph = LockGraph() if graph is None else graph
        self.held = {}  # cpu id -> [_Held]

    # -- hooks --------------------------------------------------------------------

    def lock_acquire(self, cpu, lock, trylock, subclass):
        cls = lock.name if not subclass else f"{lock.name}/{subclass}"
        stack = model_stack(2)
        held = self.held.get(cpu.id)
        if held is None:
            held = self.held[cpu.id] = []
        ctx = cpu.hardirq
        g = self.graph
        # 1. mark_usage: a trylock is not USED_IN, irqs-on applies to it all the same
        usage = g.usage.get(cls, _NONE)
        if ctx:
            if not trylock and IN_HARDIRQ not in usage:
                self._mark(cpu, cls, IN_HARDIRQ, stack, lock)
        elif cpu.irqs_enabled and HARDIRQ_ON not in usage:
            self._mark(cpu, cls, HARDIRQ_ON, stack, lock)
        if not trylock:
            # 2. check_deadlock
            for h in held:
                if h.cls == cls:
                    self._recursive(cpu, lock, cls, stack, h)
            # 3. check_prevs_add, once per chain
            if held:
                same_ctx = tuple(h.cls for h in held if h.ctx == ctx)
                key = (same_ctx, cls)
                if same_ctx and key not in g.chains:
                    for h in held:
                        if h.ctx == ctx and h.cls != cls:
                            self._add_edge(cpu, h, cls, stack, lock)
                    g.chains.add(key)
        held.append(_Held(lock, cls, stack, ctx))

    def lock_release(self, cpu, lock):
        held = self.held.get(cpu.id, [])
        for i in range(len(held) - 1, -1, -1):
            if held[i].lock is lock:
                del held[i]
                return
        stack = model_stack(2)
        self._bad_unlock(cpu, lock, stack)

    def irqs(self, cpu, enabled):
        # mark_held_locks(): locks held while irqs get enabled are HARDIRQ-ON
        if enabled and not cpu.hardirq:
            stack = None
            for h in self.held.get(cpu.id, ()):
                if HARDIRQ_ON not in self.graph.usage.get(h.cls, _NONE):
                    stack = stack or model_stack(2)
                    self._mark(cpu, h.cls, HARDIRQ_ON, stack, h.lock, h)

    def hardirq_exit(self, cpu, irq):
        left = [h for h in self.held.get(cpu.id, ()) if h.ctx]
        if left:
            self._held_at_exit(cpu, f"hard IRQ {irq} handler", left)

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

    def _mark(self, cpu, cls, bit, stack, lock, held=None):
        """Set usage ``bit`` of ``cls`` (``lock`` a lock of the class; ``held`` its
        held entry when the bit comes from enabling interrupts, else it is being taken)."""
        g = self.graph
        usage = g.usage.setdefault(cls, {})
        if bit in usage:
            return
        usage[bit] = (stack, g.origin)
        g.waits[cls] = _wait_type(lock)
        at = held.stack if held is not None else stack
        other = HARDIRQ_ON if bit == IN_HARDIRQ else IN_HARDIRQ
        if other in usage:
            self._inconsistent(cpu, cls, other, bit, usage, stack, at)
        # A new IN-HARDIRQ class must not reach a HARDIRQ-ON one, and a new
        # HARDIRQ-ON class must not be reached from an IN-HARDIRQ one.
        if bit == IN_HARDIRQ:
            path = self._search(cls, self._succ, lambda c: HARDIRQ_ON in g.usage.get(c, _NONE))
            if path:
                self._irq_inversion(cpu, path, True, stack, at)
        else:
            path = self._search(cls, self._pred, lambda c: IN_HARDIRQ in g.usage.get(c, _NONE))
            if path:
                path.reverse()
                self._irq_inversion(cpu, path, False, stack, at)

    def _succ(self, c):
        return self.graph.fwd.get(c, ())

    def _pred(self, c):
        return self.graph.bwd.get(c, ())

    @staticmethod
    def _search(start, nbrs, goal):
        """Breadth-first path from ``start`` (exclusive goal test on start too)."""
        if goal(start):
            return [start]
        seen = {start: None}
        queue = deque([start])
        while queue:
            c = queue.popleft()
            for n in sorted(nbrs(c)):
                if n in seen:
                    continue
                seen[n] = c
                if goal(n):
                    path = [n]
                    while seen[path[-1]] is not None:
                        path.append(seen[path[-1]])
                    path.reverse()
                    return path
                queue.append(n)
        return None

    def _add_edge(self, cpu, prev, cls, stack, lock):
        g = self.graph
        if cls in g.fwd.get(prev.cls, ()):
            return
        g.waits[cls] = _wait_type(lock)
        g.waits[prev.cls] = _wait_type(prev.lock)
        # check_noncircular: does the new class already reach prev?
        path = self._search(cls, self._succ, lambda c: c == prev.cls)
        if path:
            self._circular(cpu, prev, cls, stack, path)
        # check_irq_usage: an IN-HARDIRQ class behind prev, a HARDIRQ-ON one ahead of cls
        safe = self._search(prev.cls, self._pred, lambda c: IN_HARDIRQ in g.usage.get(c, _NONE))
        if safe:
            unsafe = self._search(cls, self._succ, lambda c: HARDIRQ_ON in g.usage.get(c, _NONE))
            if unsafe:
                safe.reverse()
                self._safe_to_unsafe(cpu, prev, cls, stack, safe, unsafe)
        g.fwd.setdefault(prev.cls, {})[cls] = (prev.stack, stack, g.origin)
        g.bwd.setdefault(cls, set()).add(prev.cls)

    def _prior(self, edges=(), bits=()):
        """Origins other than the current run's among recorded ``edges`` ((a, b)
        pairs) and usage ``bits`` ((class, bit) pairs), and the splat lines saying so."""
        g = self.graph
        now = g.origin
        origins, lines = set(), []
        for a, b in edges:
            origin = g.fwd[a][b][2]
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

        ``+`` irqs enabled (HARDIRQ-ON), ``-`` in hard-IRQ context (IN-HARDIRQ),
        ``?`` both; no softirqs and no read locks in the model: ``.``.
        """
        u = self.graph.usage.get(cls, _NONE)
        on, used_in = HARDIRQ_ON in u, IN_HARDIRQ in u
        return ("?" if on and used_in else "+" if on else "-" if used_in else ".") + "..."

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
        """``[HC0[0]:SC0[0]:HE1:SE1]``: hard-IRQ context and count, softirq (never), irqs enabled, softirqs enabled."""
        hc = cpu.hardirq
        return f"[HC{1 if hc else 0}[{hc}]:SC0[0]:HE{int(cpu.irqs_enabled)}:SE1]"

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
        lines = [
            f"BUG: sleeping function called from invalid context at {loc}",
            f"sleeping call: {what}",
            f"in_atomic(): {int(cpu.preempt > 0 or cpu.hardirq > 0)}, "
            f"irqs_disabled(): {int(not cpu.irqs_enabled)}, non_block: 0, pid: 0, name: {cpu!r}",
            f"preempt_count: {cpu.preempt + (0x10000 if cpu.hardirq else 0):x}, expected: 0",
            *self._held_lines(cpu, held),
            *self._acquired(held),
            "",
            *dump_stack(cpu, stack),
        ]
        where = "in hard-IRQ context" if cpu.hardirq else (
            "with a spinlock held" if cpu.preempt else "with interrupts disabled")
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

    def _irq_inversion(self, cpu, path, forwards, stack, at_stack):
        """``print_irq_inversion_bug()``; ``path`` runs from the HARDIRQ-safe class to
        the HARDIRQ-unsafe one, ``forwards``: its first class just became IN-HARDIRQ
        (else its last just became HARDIRQ-ON)."""
        safe, unsafe = path[0], path[-1]
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
            "but this lock took another, HARDIRQ-unsafe lock in the past:"
            if forwards
            else "but this lock was taken by another, HARDIRQ-safe lock in the past:",
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
        prior, notes = self._prior(_pairs(path), [(safe, IN_HARDIRQ), (unsafe, HARDIRQ_ON)])
        self._report(
            "irq-lock-inversion",
            f"HARDIRQ-safe ({safe}) -> HARDIRQ-unsafe ({unsafe}) through {' -> '.join(path)}",
            lines,
            cpu,
            {f"{safe} in hard-IRQ": usage[safe][IN_HARDIRQ][0], f"{unsafe} irqs on": usage[unsafe][HARDIRQ_ON][0]},
            prior,
            notes=notes,
            backtrace=stack,
        )

    def _safe_to_unsafe(self, cpu, prev, cls, stack, behind, ahead):
        """``print_bad_irq_dependency()``; ``behind``: safe -> ... -> prev,
        ``ahead``: cls -> ... -> unsafe (recorded edges)."""
        chain = behind + ahead
        safe, unsafe = chain[0], chain[-1]
        usage = self.graph.usage
        middle = cls if prev.cls == safe else prev.cls
        nb, na = len(behind) - 1, len(ahead) - 1
        back = [(behind[k], nb - k, self._edge_stack(behind[k - 1], behind[k]) if k else None) for k in range(nb + 1)]
        fwd = [(ahead[k], k, self._edge_stack(ahead[k - 1], ahead[k]) if k else stack) for k in range(na, -1, -1)]
        lines = [
            "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected",
            f"{cpu!r} {self._context(cpu)} is trying to acquire:",
            self._print_lock(cls, stack),
            "",
            "and this task is already holding:",
            self._print_lock(prev.cls, prev.stack, prev.lock),
            "which would create a new lock dependency:",
            f" {self._lock_name(prev.cls, prev.lock)} -> {self._lock_name(cls)}",
            "",
            "but this new dependency connects a HARDIRQ-irq-safe lock:",
            f" {self._lock_name(safe)}",
            "",
            "... which became HARDIRQ-irq-safe at:",
            *trace(usage[safe][IN_HARDIRQ][0], 2),
            "",
            "to a HARDIRQ-irq-unsafe lock:",
            f" {self._lock_name(unsafe)}",
            "",
            "... which became HARDIRQ-irq-unsafe at:",
            "...",
            *trace(usage[unsafe][HARDIRQ_ON][0], 2),
            "",
            "other info that might help us debug this:",
            "",
            *self._irq_scenario(safe, unsafe, middle),
            *self._held_lines(cpu, self.held.get(cpu.id, [])),
            "",
            "the dependencies between HARDIRQ-irq-safe lock and the holding lock:",
            *self._backward_dependencies(back),
            "",
            "the dependencies between the lock to be acquired",
            " and HARDIRQ-irq-unsafe lock:",
            *self._dependencies(fwd),
        ]
        prior, notes = self._prior(_pairs(behind) + _pairs(ahead), [(safe, IN_HARDIRQ), (unsafe, HARDIRQ_ON)])
        self._report(
            "irq-lock-inversion",
            f"HARDIRQ-safe ({safe}) -> HARDIRQ-unsafe ({unsafe}) lock order: {' -> '.join(chain)}",
            lines,
            cpu,
            {f"{safe} in hard-IRQ": usage[safe][IN_HARDIRQ][0], f"{unsafe} irqs on": usage[unsafe][HARDIRQ_ON][0]},
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

    def _circular(self, cpu, prev, cls, stack, path):
        """``print_circular_bug()``; ``path``: cls -> ... -> prev.cls already exists,
        adding prev.cls -> cls closes it."""
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
            f"  lock(&{prev.cls});",
            f"                               lock(&{parent});",
            f"                               lock(&{prev.cls});",
            f"  lock(&{cls});",
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
                if what.startswith("hard IRQ")
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
