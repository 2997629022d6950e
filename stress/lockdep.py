"""A lockdep for the model (kernel/locking/lockdep.c, reduced to what it proves).

Locks are grouped into classes by name (``spin_lock_nested`` subclasses are
``name/N``).  On every acquisition, as ``__lock_acquire`` does:

1. ``mark_usage``: a class taken in hard-IRQ context is IN-HARDIRQ, one taken
   (or held while interrupts are enabled) in process context is HARDIRQ-ON.
   Both on one class is an *inconsistent lock state*; an IN-HARDIRQ class that
   reaches a HARDIRQ-ON class through the dependency graph is an *irq lock
   inversion*.  Both are ``irq-lock-inversion``.
2. ``check_deadlock``: a class already held by this CPU is ``recursive-locking``.
3. ``check_prevs_add``: an edge from every held lock of the same irq context
   to the new class; an edge that closes a cycle is ``lock-inversion``, one
   that joins an IN-HARDIRQ class to a HARDIRQ-ON class is
   ``irq-lock-inversion``.  A chain of held classes seen before is skipped
   (the chain-key cache), so the graph walk happens once per new chain.

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

__all__ = ["Lockdep", "lock_class"]

IN_HARDIRQ = "IN-HARDIRQ-W"
HARDIRQ_ON = "HARDIRQ-ON-W"
_RULE = "=" * 54


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


class Lockdep:
    """The lock validator; attach with ``kernel.attach(Lockdep(kernel))``."""

    name = "lockdep"

    def __init__(self, kernel):
        self.kernel = kernel
        self.fwd = {}  # class -> {next class: (prev stack, next stack)}
        self.bwd = {}  # class -> set of previous classes
        self.usage = {}  # class -> {usage bit: stack}
        self.held = {}  # cpu id -> [_Held]
        self.chains = set()

    # -- hooks --------------------------------------------------------------------

    def lock_acquire(self, cpu, lock, trylock, subclass):
        cls = lock_class(lock, subclass)
        stack = model_stack(2)
        held = self.held.setdefault(cpu.id, [])
        ctx = cpu.hardirq
        # 1. mark_usage
        if ctx:
            self._mark(cpu, cls, IN_HARDIRQ, stack, lock)
        elif cpu.irqs_enabled:
            self._mark(cpu, cls, HARDIRQ_ON, stack, lock)
        # 2. check_deadlock
        for h in held:
            if h.cls == cls and not trylock:
                self._recursive(cpu, lock, cls, stack, h)
        # 3. check_prevs_add, once per chain
        same_ctx = tuple(h.cls for h in held if h.ctx == ctx)
        key = (same_ctx, cls)
        if same_ctx and key not in self.chains:
            for h in held:
                if h.ctx == ctx and h.cls != cls:
                    self._add_edge(cpu, h, cls, stack, lock)
            self.chains.add(key)
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
                if HARDIRQ_ON not in self.usage.get(h.cls, ()):
                    stack = stack or model_stack(2)
                    self._mark(cpu, h.cls, HARDIRQ_ON, stack, h.lock)

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

    def _mark(self, cpu, cls, bit, stack, lock):
        usage = self.usage.setdefault(cls, {})
        if bit in usage:
            return
        usage[bit] = stack
        other = HARDIRQ_ON if bit == IN_HARDIRQ else IN_HARDIRQ
        if other in usage:
            self._inconsistent(cpu, cls, other, bit, usage, stack)
        # A new IN-HARDIRQ class must not reach a HARDIRQ-ON one, and a new
        # HARDIRQ-ON class must not be reached from an IN-HARDIRQ one.
        if bit == IN_HARDIRQ:
            path = self._search(cls, self._succ, lambda c: HARDIRQ_ON in self.usage.get(c, ()))
            if path:
                self._irq_inversion(cpu, path[0], path[-1], path, "took another, HARDIRQ-unsafe lock in the past")
        else:
            path = self._search(cls, self._pred, lambda c: IN_HARDIRQ in self.usage.get(c, ()))
            if path:
                path.reverse()
                self._irq_inversion(cpu, path[0], path[-1], path, "was taken by another, HARDIRQ-safe lock in the past")

    def _succ(self, c):
        return self.fwd.get(c, ())

    def _pred(self, c):
        return self.bwd.get(c, ())

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
        if cls in self.fwd.get(prev.cls, ()):
            return
        # check_noncircular: does the new class already reach prev?
        path = self._search(cls, self._succ, lambda c: c == prev.cls)
        if path:
            self._circular(cpu, prev, cls, stack, path)
        # check_irq_usage: an IN-HARDIRQ class behind prev, a HARDIRQ-ON one ahead of cls
        safe = self._search(prev.cls, self._pred, lambda c: IN_HARDIRQ in self.usage.get(c, ()))
        if safe:
            unsafe = self._search(cls, self._succ, lambda c: HARDIRQ_ON in self.usage.get(c, ()))
            if unsafe:
                chain = list(reversed(safe)) + unsafe
                self._safe_to_unsafe(cpu, prev, cls, chain)
        self.fwd.setdefault(prev.cls, {})[cls] = (prev.stack, stack)
        self.bwd.setdefault(cls, set()).add(prev.cls)

    # -- splats ---------------------------------------------------------------------

    def _held_lines(self, cpu, held):
        lines = [f"{len(held)} lock{'s' if len(held) != 1 else ''} held by {cpu!r}:"]
        for i, h in enumerate(held):
            lines.append(f" #{i}: ({h.cls}){{{self._usage_str(h.cls)}}}, at: {h.stack[0] if h.stack else '?'}")
        return lines

    def _usage_str(self, cls):
        u = self.usage.get(cls, {})
        return ("+" if IN_HARDIRQ in u else ".") + ("-" if HARDIRQ_ON in u else ".")

    def _inconsistent(self, cpu, cls, old, new, usage, stack):
        lines = [
            "WARNING: inconsistent lock state",
            f"inconsistent {{{old}}} -> {{{new}}} usage.",
            f"{cpu!r} takes ({cls}) at:",
            _fmt_stack(stack),
            f"{{{old}}} state was registered at:",
            _fmt_stack(usage[old]),
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
        self._report(
            "irq-lock-inversion",
            f"inconsistent {{{old}}} -> {{{new}}} usage of ({cls}) on {cpu!r}",
            lines,
            cpu,
            {old: usage[old], new: stack},
        )

    def _irq_inversion(self, cpu, safe, unsafe, path, how):
        lines = [
            "WARNING: possible irq lock inversion dependency detected",
            f"{cpu!r} just changed the state of lock ({path[0] if how.startswith('took') else path[-1]}),",
            f"but this lock {how}:",
            "  " + " -> ".join(path),
            f"({safe}) {{{IN_HARDIRQ}}} registered at:",
            _fmt_stack(self.usage[safe][IN_HARDIRQ]),
            f"({unsafe}) {{{HARDIRQ_ON}}} registered at:",
            _fmt_stack(self.usage[unsafe][HARDIRQ_ON]),
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
        self._report(
            "irq-lock-inversion",
            f"HARDIRQ-safe ({safe}) -> HARDIRQ-unsafe ({unsafe}) through {' -> '.join(path)}",
            lines,
            cpu,
            {f"{safe} in hard-IRQ": self.usage[safe][IN_HARDIRQ], f"{unsafe} irqs on": self.usage[unsafe][HARDIRQ_ON]},
        )

    def _safe_to_unsafe(self, cpu, prev, cls, chain):
        safe, unsafe = chain[0], chain[-1]
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
            _fmt_stack(self.usage[safe][IN_HARDIRQ]),
            "to a HARDIRQ-irq-unsafe lock:",
            f" ({unsafe}) {{{HARDIRQ_ON}}} at:",
            _fmt_stack(self.usage[unsafe][HARDIRQ_ON]),
        ]
        self._report(
            "irq-lock-inversion",
            f"HARDIRQ-safe ({safe}) -> HARDIRQ-unsafe ({unsafe}) lock order: {' -> '.join(chain)}",
            lines,
            cpu,
            {f"{safe} in hard-IRQ": self.usage[safe][IN_HARDIRQ], f"{unsafe} irqs on": self.usage[unsafe][HARDIRQ_ON]},
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
        for a, b in reversed(list(zip(path, path[1:]))):
            _, b_stack = self.fwd[a][b]
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
        cycle = " -> ".join([prev.cls, *path])
        self._report(
            "lock-inversion",
            f"circular locking dependency {cycle} on {cpu!r}",
            lines,
            cpu,
            stacks,
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

    def _report(self, kind, message, lines, cpu, stacks):
        splat = "\n".join([_RULE, *lines[:1], "-" * len(lines[0]), *lines[1:]])
        self.kernel.report(kind, message, splat=splat, stacks=stacks, cpu=cpu)
