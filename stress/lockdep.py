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

__all__ = ["LockGraph", "Lockdep", "lock_class"]

IN_HARDIRQ = "IN-HARDIRQ-W"
HARDIRQ_ON = "HARDIRQ-ON-W"
_RULE = "=" * 54
_NONE = {}  # usage of a class never seen (read only)


def lock_class(lock, subclass=0):
    return lock.name if not subclass else f"{lock.name}/{subclass}"


def _fmt_stack(stack, indent="  "):
    return "\n".join(f"{indent}{fn}" for fn in stack) or f"{indent}(no model frames)"


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
    origin)``, ``chains`` the chain-key cache.  Every edge and usage bit
    records ``origin``, the value of :attr:`origin` when it was added: the
    engine sets it (an opaque hashable token, e.g. the schedule index)
    before each run that shares the graph.
    """

    __slots__ = ("fwd", "bwd", "usage", "chains", "origin")

    def __init__(self):
        self.fwd = {}
        self.bwd = {}
        self.usage = {}
        self.chains = set()
        self.origin = None

    def copy(self):
        """An independent copy (the stacks, tuples, are shared)."""
        g = LockGraph()
        g.fwd = {c: dict(nxt) for c, nxt in self.fwd.items()}
        g.bwd = {c: set(prev) for c, prev in self.bwd.items()}
        g.usage = {c: dict(bits) for c, bits in self.usage.items()}
        g.chains = set(self.chains)
        g.origin = self.origin
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
                self._mark(cpu, cls, IN_HARDIRQ, stack)
        elif cpu.irqs_enabled and HARDIRQ_ON not in usage:
            self._mark(cpu, cls, HARDIRQ_ON, stack)
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
                            self._add_edge(cpu, h, cls, stack)
                    g.chains.add(key)
        held.append(_Held(lock, cls, stack, ctx))

    def lock_release(self, cpu, lock):
        held = self.held.get(cpu.id, [])
        for i in range(len(held) - 1, -1, -1):
            if held[i].lock is lock:
                del held[i]
                return
        stack = model_stack(2)
        self._report(
            "bad-unlock",
            f"{cpu!r} is trying to release lock ({lock_class(lock)}) that it does not hold",
            [
                "WARNING: bad unlock balance detected!",
                f"{cpu!r} is trying to release lock ({lock_class(lock)}) at:",
                _fmt_stack(stack),
                "but there are no more locks to release!",
            ],
            cpu,
            {"release": stack},
        )

    def irqs(self, cpu, enabled):
        # mark_held_locks(): locks held while irqs get enabled are HARDIRQ-ON
        if enabled and not cpu.hardirq:
            stack = None
            for h in self.held.get(cpu.id, ()):
                if HARDIRQ_ON not in self.graph.usage.get(h.cls, _NONE):
                    stack = stack or model_stack(2)
                    self._mark(cpu, h.cls, HARDIRQ_ON, stack)

    def hardirq_exit(self, cpu, irq):
        left = [h for h in self.held.get(cpu.id, ()) if h.ctx]
        if left:
            self._held_at_exit(cpu, f"hard IRQ {irq} handler", left)

    def might_sleep(self, cpu, what):
        if not cpu.in_atomic():
            return
        stack = model_stack(2)
        held = self.held.get(cpu.id, [])
        lines = [
            f"BUG: sleeping function called from invalid context: {what}",
            f"in_atomic(): {int(cpu.preempt > 0 or cpu.hardirq > 0)}, "
            f"irqs_disabled(): {int(not cpu.irqs_enabled)}, non_block: 0, cpu: {cpu.id}",
            f"preempt_count: {cpu.preempt + (0x10000 if cpu.hardirq else 0):x}, expected: 0",
            *self._held_lines(cpu, held),
            "Call Trace:",
            _fmt_stack(stack),
        ]
        where = "in hard-IRQ context" if cpu.hardirq else (
            "with a spinlock held" if cpu.preempt else "with interrupts disabled")
        self._report(
            "sleep-in-atomic",
            f"{what} {where} on {cpu!r}",
            lines,
            cpu,
            {"sleep": stack, **{f"held {h.cls}": h.stack for h in held}},
        )

    def op_end(self, cpu, name):
        held = [h for h in self.held.get(cpu.id, ()) if not h.ctx]
        if held or not cpu.irqs_enabled:
            self._held_at_exit(cpu, name or "the CPU's work", held)

    # -- checks -------------------------------------------------------------------

    def _mark(self, cpu, cls, bit, stack):
        g = self.graph
        usage = g.usage.setdefault(cls, {})
        if bit in usage:
            return
        usage[bit] = (stack, g.origin)
        other = HARDIRQ_ON if bit == IN_HARDIRQ else IN_HARDIRQ
        if other in usage:
            self._inconsistent(cpu, cls, other, bit, usage, stack)
        # A new IN-HARDIRQ class must not reach a HARDIRQ-ON one, and a new
        # HARDIRQ-ON class must not be reached from an IN-HARDIRQ one.
        if bit == IN_HARDIRQ:
            path = self._search(cls, self._succ, lambda c: HARDIRQ_ON in g.usage.get(c, _NONE))
            if path:
                self._irq_inversion(cpu, path[0], path[-1], path, "took another, HARDIRQ-unsafe lock in the past")
        else:
            path = self._search(cls, self._pred, lambda c: IN_HARDIRQ in g.usage.get(c, _NONE))
            if path:
                path.reverse()
                self._irq_inversion(cpu, path[0], path[-1], path, "was taken by another, HARDIRQ-safe lock in the past")

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

    def _add_edge(self, cpu, prev, cls, stack):
        g = self.graph
        if cls in g.fwd.get(prev.cls, ()):
            return
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
                self._safe_to_unsafe(cpu, prev, cls, safe, unsafe)
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
                lines.append(f"the dependency ({a}) -> ({b}) was recorded in an earlier schedule (schedule {origin})")
        for cls, bit in bits:
            origin = g.usage[cls][bit][1]
            if origin != now:
                origins.add(origin)
                lines.append(f"the {{{bit}}} state of ({cls}) was recorded in an earlier schedule (schedule {origin})")
        return _sorted_origins(origins), lines

    # -- splats ---------------------------------------------------------------------

    def _held_lines(self, cpu, held):
        lines = [f"{len(held)} lock{'s' if len(held) != 1 else ''} held by {cpu!r}:"]
        for i, h in enumerate(held):
            lines.append(f" #{i}: ({h.cls}){{{self._usage_str(h.cls)}}}, at: {h.stack[0] if h.stack else '?'}")
        return lines

    def _usage_str(self, cls):
        u = self.graph.usage.get(cls, _NONE)
        return ("+" if IN_HARDIRQ in u else ".") + ("-" if HARDIRQ_ON in u else ".")

    def _inconsistent(self, cpu, cls, old, new, usage, stack):
        lines = [
            "WARNING: inconsistent lock state",
            f"inconsistent {{{old}}} -> {{{new}}} usage.",
            f"{cpu!r} takes ({cls}) at:",
            _fmt_stack(stack),
            f"{{{old}}} state was registered at:",
            _fmt_stack(usage[old][0]),
            *self._held_lines(cpu, self.held.get(cpu.id, [])),
            "",
            "Possible unsafe locking scenario:",
            "      CPU0",
            "      ----",
            f"  lock({cls});",
            "  <Interrupt>",
            f"    lock({cls});",
            "",
            " *** DEADLOCK ***",
        ]
        prior, notes = self._prior(bits=[(cls, old)])
        self._report(
            "irq-lock-inversion",
            f"inconsistent {{{old}}} -> {{{new}}} usage of ({cls}) on {cpu!r}",
            lines + notes,
            cpu,
            {old: usage[old][0], new: stack},
            prior,
        )

    def _irq_inversion(self, cpu, safe, unsafe, path, how):
        usage = self.graph.usage
        lines = [
            "WARNING: possible irq lock inversion dependency detected",
            f"{cpu!r} just changed the state of lock ({path[0] if how.startswith('took') else path[-1]}),",
            f"but this lock {how}:",
            "  " + " -> ".join(path),
            f"({safe}) {{{IN_HARDIRQ}}} registered at:",
            _fmt_stack(usage[safe][IN_HARDIRQ][0]),
            f"({unsafe}) {{{HARDIRQ_ON}}} registered at:",
            _fmt_stack(usage[unsafe][HARDIRQ_ON][0]),
            "",
            "Possible interrupt unsafe locking scenario:",
            "       CPU0                    CPU1",
            "       ----                    ----",
            f"  lock({unsafe});",
            "                               local_irq_disable();",
            f"                               lock({safe});",
            f"                               lock({unsafe});",
            "  <Interrupt>",
            f"    lock({safe});",
            "",
            " *** DEADLOCK ***",
        ]
        prior, notes = self._prior(_pairs(path), [(safe, IN_HARDIRQ), (unsafe, HARDIRQ_ON)])
        self._report(
            "irq-lock-inversion",
            f"HARDIRQ-safe ({safe}) -> HARDIRQ-unsafe ({unsafe}) through {' -> '.join(path)}",
            lines + notes,
            cpu,
            {f"{safe} in hard-IRQ": usage[safe][IN_HARDIRQ][0], f"{unsafe} irqs on": usage[unsafe][HARDIRQ_ON][0]},
            prior,
        )

    def _safe_to_unsafe(self, cpu, prev, cls, behind, ahead):
        """``behind``: safe -> ... -> prev, ``ahead``: cls -> ... -> unsafe (recorded edges)."""
        chain = behind + ahead
        safe, unsafe = chain[0], chain[-1]
        usage = self.graph.usage
        lines = [
            "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected",
            f"{cpu!r} is trying to acquire:",
            f" ({cls})",
            "and this task is already holding:",
            f" ({prev.cls})",
            "which would create a new lock dependency:",
            f" ({prev.cls}) -> ({cls})",
            "but this new dependency connects a HARDIRQ-irq-safe lock:",
            f" ({safe}) {{{IN_HARDIRQ}}} at:",
            _fmt_stack(usage[safe][IN_HARDIRQ][0]),
            "to a HARDIRQ-irq-unsafe lock:",
            f" ({unsafe}) {{{HARDIRQ_ON}}} at:",
            _fmt_stack(usage[unsafe][HARDIRQ_ON][0]),
        ]
        prior, notes = self._prior(_pairs(behind) + _pairs(ahead), [(safe, IN_HARDIRQ), (unsafe, HARDIRQ_ON)])
        self._report(
            "irq-lock-inversion",
            f"HARDIRQ-safe ({safe}) -> HARDIRQ-unsafe ({unsafe}) lock order: {' -> '.join(chain)}",
            lines + notes,
            cpu,
            {f"{safe} in hard-IRQ": usage[safe][IN_HARDIRQ][0], f"{unsafe} irqs on": usage[unsafe][HARDIRQ_ON][0]},
            prior,
        )

    def _circular(self, cpu, prev, cls, stack, path):
        # path: cls -> ... -> prev.cls already exists; adding prev.cls -> cls closes it.
        lines = [
            "WARNING: possible circular locking dependency detected",
            f"{cpu!r} is trying to acquire lock:",
            f" ({cls}), at: {stack[0] if stack else '?'}",
            "",
            "but task is already holding lock:",
            f" ({prev.cls}), at: {prev.stack[0] if prev.stack else '?'}",
            "",
            "which lock already depends on the new lock.",
            "",
            "the existing dependency chain (in reverse order) is:",
        ]
        stacks = {f"{prev.cls} -> {cls} (new)": stack}
        n = len(path) - 1
        fwd = self.graph.fwd
        for a, b in reversed(list(zip(path, path[1:]))):
            b_stack = fwd[a][b][1]
            lines += [f"", f"-> #{n} ({b}):", _fmt_stack(b_stack)]
            stacks[f"{a} -> {b}"] = b_stack
            n -= 1
        lines += ["", f"-> #0 ({cls}):", _fmt_stack(stack), "", "other info that might help us debug this:", ""]
        if len(path) == 2:
            lines += [
                " Possible unsafe locking scenario:",
                "       CPU0                    CPU1",
                "       ----                    ----",
                f"  lock({prev.cls});",
                f"                               lock({cls});",
                f"                               lock({prev.cls});",
                f"  lock({cls});",
                "",
                " *** DEADLOCK ***",
            ]
        else:
            lines += [" Chain exists of:", "  " + " --> ".join([prev.cls, *path])]
        lines += self._held_lines(cpu, self.held.get(cpu.id, []))
        prior, notes = self._prior(_pairs(path))
        cycle = " -> ".join([prev.cls, *path])
        self._report(
            "lock-inversion",
            f"circular locking dependency {cycle} on {cpu!r}",
            lines + notes,
            cpu,
            stacks,
            prior,
        )

    def _recursive(self, cpu, lock, cls, stack, h):
        lines = [
            "WARNING: possible recursive locking detected",
            f"{cpu!r} is trying to acquire lock:",
            f" ({cls}), at: {stack[0] if stack else '?'}",
            "but task is already holding lock:",
            f" ({h.cls}), at: {h.stack[0] if h.stack else '?'}",
            "",
            "other info that might help us debug this:",
            " Possible unsafe locking scenario:",
            "       CPU0",
            "       ----",
            f"  lock({cls});",
            f"  lock({cls});",
            "",
            " *** DEADLOCK ***",
            "",
            " May be due to missing lock nesting notation",
            *self._held_lines(cpu, self.held.get(cpu.id, [])),
        ]
        self._report("recursive-locking", f"{cpu!r} takes ({cls}) while holding it", lines, cpu, {"first": h.stack, "again": stack})

    def _held_at_exit(self, cpu, what, held):
        lines = [
            "WARNING: lock held when returning from " + what,
            *self._held_lines(cpu, held),
        ]
        if not cpu.irqs_enabled:
            lines.append("and interrupts are still disabled")
        self._report(
            "lock-held-at-exit",
            f"{what} returned on {cpu!r} with "
            + (", ".join(f"({h.cls})" for h in held) + " held" if held else "interrupts disabled"),
            lines,
            cpu,
            {f"acquired {h.cls}": h.stack for h in held},
        )

    def _report(self, kind, message, lines, cpu, stacks, prior=None):
        """``prior``: origins of other runs the find rests on (``kernel.report(prior=...)``)."""
        splat = "\n".join([_RULE, *lines[:1], "-" * len(lines[0]), *lines[1:]])
        if prior:
            self.kernel.report(kind, message, splat=splat, stacks=stacks, cpu=cpu, prior=prior)
        else:
            self.kernel.report(kind, message, splat=splat, stacks=stacks, cpu=cpu)
