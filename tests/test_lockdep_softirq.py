"""Lockdep's SOFTIRQ state: lib/locking-selftest.c's softirq rows and what the reports say.

As in ``tests/test_lockdep_rw.py``: the C testcases run on one CPU, their
events in order, in one schedule without preemption; the verdict is the
C's (SUCCESS: no report, FAILURE: the kind lockdep reports).  Softirq
context is a real softirq (``open_softirq`` where the scenario builds its
kernel, ``raise_softirq`` from task context runs it at once, on this CPU,
with interrupts enabled as ``__do_softirq`` does), hard-IRQ context a real
interrupt handled on the CPU at that point.  The C simulates both with
interrupts off (``SOFTIRQ_ENTER()`` disables them); the verdicts are the
same.  Then the same bugs under the explorer, where they really deadlock.
"""

import itertools

import pytest

import stress
from model.kernel import (
    IRQ_HANDLED,
    Kernel,
    Mutex,
    RwLock,
    Shared,
    SpinLock,
    current,
    local_bh_disable,
    local_bh_enable,
    local_irq_disable,
    local_irq_enable,
    msleep,
    mutex_lock,
    mutex_unlock,
    open_softirq,
    raise_irq,
    raise_softirq,
    raise_softirq_irqoff,
    read_lock,
    read_unlock,
    request_irq,
    spin_lock,
    spin_lock_bh,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_bh,
    spin_unlock_irqrestore,
    write_lock,
    write_unlock,
)
from model.kernel.softirq import TASKLET_SOFTIRQ, has_softirqs
from stress.lockdep import IN_HARDIRQ, IN_SOFTIRQ, SOFTIRQ_ON, HARDIRQ_ON, LockGraph, Lockdep
from stress.run import replay_decisions

TEST_IRQ = 11
R_IRQ = 12

# -- contexts ---------------------------------------------------------------------------------


class Ctx:
    """The contexts of one run: ``await ctx.softirq(work)`` is ``SOFTIRQ_ENTER(); work();
    SOFTIRQ_EXIT()`` (the softirq is raised and runs now on this CPU, or at the end of
    the BH-disabled section), ``await ctx.hardirq(work)`` the same in a hard IRQ."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.soft_work = []
        self.hard_work = []

        async def action():
            while self.soft_work:
                await self.soft_work.pop(0)()

        async def handler(irq, dev_id):
            while self.hard_work:
                await self.hard_work.pop(0)()
            return IRQ_HANDLED

        open_softirq(kernel, TASKLET_SOFTIRQ, action)
        request_irq(kernel, R_IRQ, handler, 0, "selftest", None)

    async def softirq(self, work):
        self.soft_work.append(work)
        await raise_softirq(TASKLET_SOFTIRQ)

    async def hardirq(self, work):
        self.hard_work.append(work)
        cpu = current()
        await self.kernel.irq.handle(cpu, R_IRQ)


class Locks:
    def __init__(self):
        for n in "ABCD":
            setattr(self, f"L{n}", SpinLock(f"lock_{n}"))
            setattr(self, f"RW{n}", RwLock(f"rwlock_{n}"))
            setattr(self, f"M{n}", Mutex(f"mutex_{n}"))


def selftest(events):
    """A one-CPU scenario running ``events(ctx, locks)``; read_lock recursive as the C forces it."""

    def scenario(kernel):
        kernel.force_read_lock_recursive = True
        ctx, locks = Ctx(kernel), Locks()

        async def cpu0():
            await events(ctx, locks)

        return [cpu0]

    return scenario


def run(scenario, graph=None):
    return replay_decisions(scenario, [], checkers=["lockdep"], lock_graph=graph)


def in_order(events, perm):
    async def go(ctx, L):
        for i in perm:
            await events[int(i) - 1](ctx, L)

    return go


def perms(n):
    return ["".join(p) for p in itertools.permutations("123"[:n])]


class Flavour:
    """locking-selftest-{spin,wlock,rlock}-softirq.h: LOCK(x)/UNLOCK(x)."""

    def __init__(self, prefix, lock, unlock):
        self.prefix, self._lock, self._unlock = prefix, lock, unlock

    async def LOCK(self, L, x):
        await self._lock(getattr(L, self.prefix + x))

    def UNLOCK(self, L, x):
        self._unlock(getattr(L, self.prefix + x))


FLAVOURS = {
    "spin": Flavour("L", spin_lock, spin_unlock),
    "wlock": Flavour("RW", write_lock, write_unlock),
    "rlock": Flavour("RW", read_lock, read_unlock),
}
#: DO_TESTCASE_3: spin FAILURE, wlock FAILURE, rlock SUCCESS
COLUMN = {"spin": "irq-lock-inversion", "wlock": "irq-lock-inversion", "rlock": None}


def soft(fl, *xs):
    """``SOFTIRQ_ENTER(); LOCK(x)...; UNLOCK...; SOFTIRQ_EXIT()``."""

    async def event(ctx, L):
        async def work():
            for x in xs:
                await fl.LOCK(L, x)
            for x in reversed(xs):
                fl.UNLOCK(L, x)

        await ctx.softirq(work)

    return event


def plain(fl, *xs, bh_off=False):
    """``LOCK(x)...; UNLOCK...`` with softirqs on, or inside ``local_bh_disable()``."""

    async def event(ctx, L):
        if bh_off:
            local_bh_disable()
        for x in xs:
            await fl.LOCK(L, x)
        for x in reversed(xs):
            fl.UNLOCK(L, x)
        if bh_off:
            await local_bh_enable()

    return event


def held_while(fl, x, off, on):
    """``off(); LOCK(x); on(); UNLOCK(x)``: the state comes back on with x held."""

    async def event(ctx, L):
        off()
        await fl.LOCK(L, x)
        await on()
        fl.UNLOCK(L, x)

    return event


ROWS = {
    # "irqs-on + irq-safe-A" (soft): E1 A in softirq, E2 A with softirqs on
    "irqsafe1_soft": lambda fl: [soft(fl, "A"), plain(fl, "A")],
    # "sirq-safe-A => hirqs-on": E2 enables hard irqs (softirqs on) with A held
    "irqsafe2A": lambda fl: [soft(fl, "A"), held_while(fl, "A", local_irq_disable, local_irq_enable)],
    # "safe-A + irqs-on" (soft): E2 enables softirqs with A held (lockdep_softirqs_on)
    "irqsafe2B_soft": lambda fl: [soft(fl, "A"), held_while(fl, "A", local_bh_disable, local_bh_enable)],
    # "safe-A + unsafe-B #1" (soft)
    "irqsafe3_soft": lambda fl: [plain(fl, "A", "B"), plain(fl, "B"), soft(fl, "A")],
    # "safe-A + unsafe-B #2" (soft): E1 with softirqs disabled
    "irqsafe4_soft": lambda fl: [plain(fl, "A", "B", bh_off=True), plain(fl, "B"), soft(fl, "A")],
}
CASES = [(row, fl, p) for row, make in ROWS.items() for fl in FLAVOURS for p in perms(len(make(FLAVOURS[fl])))]


@pytest.mark.parametrize("row,flavour,perm", CASES, ids=[f"{r}_{f}_{p}" for r, f, p in CASES])
def test_softirq_rows(row, flavour, perm):
    """The softirq rows of lib/locking-selftest.c: spin and wlock FAILURE, rlock SUCCESS."""
    events = ROWS[row](FLAVOURS[flavour])
    assert run(selftest(in_order(events, perm))).kind == COLUMN[flavour]


@pytest.mark.parametrize(
    "perm,old,new,ctx",
    [("12", IN_SOFTIRQ, SOFTIRQ_ON, "[HC0[0]:SC0[0]:HE1:SE1]"), ("21", SOFTIRQ_ON, IN_SOFTIRQ, "[HC0[0]:SC1[1]:HE1:SE0]")],
)
def test_inconsistent_softirq_state(perm, old, new, ctx):
    """A spinlock taken in a softirq and with BH enabled in process context:
    inconsistent {SOFTIRQ-ON-W} -> {IN-SOFTIRQ-W} (or the reverse), the context as the kernel prints it."""
    events = ROWS["irqsafe1_soft"](FLAVOURS["spin"])
    v = run(selftest(in_order(events, perm))).violation
    assert v["kind"] == "irq-lock-inversion"
    assert v["message"] == f"inconsistent {{{old}}} -> {{{new}}} usage of (lock_A) on CPU0"
    lines = v["splat"].splitlines()
    assert lines[1] == "WARNING: inconsistent lock state"
    assert lines[3] == f"inconsistent {{{old}}} -> {{{new}}} usage."
    assert lines[4] == f"CPU0 {ctx} takes:"
    # hardirq: irqs on (the softirq runs with irqs on too); softirq: used in it and enabled
    assert lines[5].startswith("(&lock_A){+.?.}-{3:3}, at: ")


def test_enabling_softirqs_with_a_softirq_safe_lock_held():
    """irqsafe2B_soft/12: local_bh_enable() with A held marks it SOFTIRQ-ON (mark_held_locks)."""
    events = ROWS["irqsafe2B_soft"](FLAVOURS["spin"])
    v = run(selftest(in_order(events, "12"))).violation
    assert v["message"] == f"inconsistent {{{IN_SOFTIRQ}}} -> {{{SOFTIRQ_ON}}} usage of (lock_A) on CPU0"
    assert "CPU0 [HC0[0]:SC0[0]:HE1:SE1] takes:" in v["splat"]


def test_hardirq_unsafe_softirq_safe():
    """hardirq_deadlock_softirq_not_deadlock: the C's "hardirq_unsafe_softirq_safe" FAILURE is
    the HARDIRQ inversion lock_A -> lock_B -> lock_C -> lock_D, not the softirq-safe lock_D."""

    async def events(ctx, L):
        await mutex_lock(L.MA)  # mutex_A is hardirq-unsafe and softirq-unsafe
        local_irq_disable()
        await spin_lock(L.LC)  # mutex_A -> lock_C
        spin_unlock(L.LC)
        await local_irq_enable()
        mutex_unlock(L.MA)

        async def take_A():
            await spin_lock(L.LA)
            spin_unlock(L.LA)

        local_irq_disable()
        await ctx.hardirq(take_A)  # lock_A is hardirq-safe
        await local_irq_enable()
        for x, y in [(L.LA, L.LB), (L.LB, L.LC)]:  # lock_A -> lock_B -> lock_C
            local_irq_disable()
            await spin_lock(x)
            await spin_lock(y)
            spin_unlock(y)
            spin_unlock(x)
            await local_irq_enable()

        async def take_D():
            await spin_lock(L.LD)
            spin_unlock(L.LD)

        await ctx.softirq(take_D)  # lock_D is softirq-safe
        local_bh_disable()
        await spin_lock(L.LD)  # and hardirq-unsafe
        spin_unlock(L.LD)
        await local_bh_enable()
        local_irq_disable()
        await spin_lock(L.LC)
        await spin_lock(L.LD)  # lock_C -> lock_D: hardirq-safe -> hardirq-unsafe
        spin_unlock(L.LD)
        spin_unlock(L.LC)
        await local_irq_enable()

    v = run(selftest(events)).violation
    assert v["kind"] == "irq-lock-inversion"
    chain = "lock_A -> lock_B -> lock_C -> lock_D"
    assert v["message"] == f"HARDIRQ-safe (lock_A) -> HARDIRQ-unsafe (lock_D) lock order: {chain}"
    assert "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected" in v["splat"]


# -- softirq-safe -> softirq-unsafe ---------------------------------------------------------------


def _safe_then_unsafe(bh_for_b):
    """A is softirq-safe (taken in a softirq, spin_lock_bh in process context); B taken
    with BH enabled (softirq-unsafe) unless ``bh_for_b``; then A -> B."""

    async def events(ctx, L):
        async def take_A():
            await spin_lock(L.LA)
            spin_unlock(L.LA)

        await ctx.softirq(take_A)
        if bh_for_b:
            await spin_lock_bh(L.LB)
            await spin_unlock_bh(L.LB)
        else:
            await spin_lock(L.LB)
            spin_unlock(L.LB)
        await spin_lock_bh(L.LA)
        await spin_lock(L.LB)
        spin_unlock(L.LB)
        await spin_unlock_bh(L.LA)

    return events


def test_softirq_safe_to_softirq_unsafe_order():
    """A SOFTIRQ-safe lock taking a SOFTIRQ-unsafe one: print_bad_irq_dependency() for SOFTIRQ."""
    v = run(selftest(_safe_then_unsafe(False))).violation
    assert v["kind"] == "irq-lock-inversion"
    assert v["message"] == "SOFTIRQ-safe (lock_A) -> SOFTIRQ-unsafe (lock_B) lock order: lock_A -> lock_B"
    lines = v["splat"].splitlines()
    assert lines[:3] == ["=" * 53, "WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "-" * 53]
    assert lines[3] == "CPU0 [HC0[0]:SC0[2]:HE1:SE0] is trying to acquire:"  # inside spin_lock_bh
    assert "but this new dependency connects a SOFTIRQ-irq-safe lock:" in lines
    assert "to a SOFTIRQ-irq-unsafe lock:" in lines
    assert " (&lock_A){+.-.}-{3:3} -> (&lock_B){+.+.}-{3:3}" in lines
    assert "   IN-SOFTIRQ-W at:" in lines and "   SOFTIRQ-ON-W at:" in lines
    assert set(v["stacks"]) >= {"lock_A in softirq", "lock_B softirqs on"}


def test_softirq_safe_to_softirq_safe_order_is_clean():
    """The fix: B taken with spin_lock_bh everywhere."""
    assert run(selftest(_safe_then_unsafe(True))).kind is None


def test_softirq_safe_reaching_unsafe_when_it_becomes_safe():
    """check_usage_forwards for SOFTIRQ: A -> B recorded first, A then used in a softirq."""

    async def events(ctx, L):
        local_bh_disable()
        await spin_lock(L.LA)
        await spin_lock(L.LB)
        spin_unlock(L.LB)
        spin_unlock(L.LA)
        await local_bh_enable()
        await spin_lock(L.LB)
        spin_unlock(L.LB)

        async def take_A():
            await spin_lock(L.LA)
            spin_unlock(L.LA)

        await ctx.softirq(take_A)

    v = run(selftest(events)).violation
    assert v["message"] == "SOFTIRQ-safe (lock_A) -> SOFTIRQ-unsafe (lock_B) through lock_A -> lock_B"
    assert "but this lock took another, SOFTIRQ-unsafe lock in the past:" in v["splat"]


# -- hard IRQ inside a softirq ----------------------------------------------------------------------


def _softirq_then_hardirq(kernel, irqsafe):
    """The softirq takes dev->lock (irqsave or not) and is interrupted by a hard IRQ
    that takes dev->lock too, then stat->lock."""
    ctx, lock, stat = Ctx(kernel), SpinLock("dev->lock"), SpinLock("stat->lock")

    async def in_hardirq():
        await spin_lock(lock)
        spin_unlock(lock)

    async def in_softirq():
        if irqsafe:
            flags = await spin_lock_irqsave(lock)
            await spin_unlock_irqrestore(lock, flags)
        else:
            await spin_lock(lock)
            spin_unlock(lock)
        await spin_lock(stat)
        await ctx.hardirq(in_hardirq)  # interrupts the softirq while it holds stat->lock
        spin_unlock(stat)

    async def cpu0():
        await ctx.softirq(in_softirq)

    return [cpu0]


def test_hardirq_interrupting_a_softirq():
    """A lock the softirq takes with irqs on, taken by a hard IRQ that interrupts softirqs:
    inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-W}, in HC1 and SC1 context."""
    v = run(lambda k: _softirq_then_hardirq(k, False)).violation
    assert v["message"] == "inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-W} usage of (dev->lock) on CPU0"
    assert "CPU0 [HC1[1]:SC1[1]:HE0:SE0] takes:" in v["splat"]


def test_hardirq_in_softirq_is_both_contexts_and_its_own_chain():
    """The fix (irqsave in the softirq) is clean; the hard IRQ's lock is IN-HARDIRQ and
    IN-SOFTIRQ ({-.-.}: task_irq_context 3), and no stat->lock -> dev->lock edge crosses contexts."""
    graph = LockGraph()
    assert run(lambda k: _softirq_then_hardirq(k, True), graph).kind is None
    assert set(graph.usage["dev->lock"]) == {IN_HARDIRQ, IN_SOFTIRQ}
    assert Lockdep(Kernel(), graph)._usage_chars("dev->lock") == "-.-."
    assert set(graph.usage["stat->lock"]) == {IN_SOFTIRQ, HARDIRQ_ON}
    assert Lockdep(Kernel(), graph)._usage_chars("stat->lock") == "+.-."
    assert graph.fwd == {}


# -- spin_lock_bh under the explorer -------------------------------------------------------------------


def _dev_lock_in_softirq(kernel, bh):
    """dev->lock guards dev->count in a softirq (raised by the device's IRQ) and in
    process context on two CPUs, with spin_lock_bh or a plain spin_lock."""
    lock, count = SpinLock("dev->lock"), Shared("dev->count", 0)

    async def action():
        await spin_lock(lock)
        await count.store(await count.load() + 1)
        spin_unlock(lock)

    async def handler(irq, dev_id):
        raise_softirq_irqoff(TASKLET_SOFTIRQ)  # runs at irq_exit()
        return IRQ_HANDLED

    open_softirq(kernel, TASKLET_SOFTIRQ, action)
    request_irq(kernel, TEST_IRQ, handler, 0, "dev", None)

    async def update():
        if bh:
            await spin_lock_bh(lock)
        else:
            await spin_lock(lock)
        await count.store(await count.load() + 1)
        if bh:
            await spin_unlock_bh(lock)
        else:
            spin_unlock(lock)

    async def first():
        raise_irq(kernel, TEST_IRQ)
        await update()

    return [first, update]


EXHAUSTIVE = dict(strategy="exhaustive", schedules=20_000, bound=2)


def test_spin_lock_bh_is_clean_and_spin_lock_is_not():
    """spin_lock_bh in process context against the softirq: clean (lockdep and race, every
    schedule of bound 2); plain spin_lock: lockdep's inconsistent SOFTIRQ state, and
    without lockdep the softirq really spins on the lock its own CPU holds."""
    clean = stress.explore(lambda k: _dev_lock_in_softirq(k, True), checkers=["lockdep", "race"], **EXHAUSTIVE)
    assert clean.violations == [] and clean.exhausted
    bug = stress.explore(lambda k: _dev_lock_in_softirq(k, False), checkers=["lockdep"], **EXHAUSTIVE)
    assert bug.violations[0].kind == "irq-lock-inversion"
    assert "SOFTIRQ" in bug.violations[0].message
    dead = stress.explore(lambda k: _dev_lock_in_softirq(k, False), checkers=["race"], **EXHAUSTIVE)
    assert dead.violations[0].kind == "deadlock"


# -- lock held at softirq exit, sleeping in a softirq --------------------------------------------------


def test_softirq_handler_returning_with_a_lock_held():
    def scenario(kernel):
        ctx, lock = Ctx(kernel), SpinLock("dev->lock")

        async def leaks():
            await spin_lock(lock)

        async def cpu0():
            await ctx.softirq(leaks)

        return [cpu0]

    v = run(scenario).violation
    assert v["kind"] == "lock-held-at-exit"
    assert v["message"] == f"softirq {TASKLET_SOFTIRQ} handler returned on CPU0 with (dev->lock) held"
    assert "WARNING: CPU0 still has locks held!" in v["splat"]
    assert f"CPU0 is leaving softirq {TASKLET_SOFTIRQ} handler with locks still held!" in v["splat"]


def _sleeps(where):
    def scenario(kernel):
        ctx, m = Ctx(kernel), Mutex("dev->mutex")

        async def sleep():
            await mutex_lock(m)
            mutex_unlock(m)

        async def cpu0():
            if where == "softirq":
                await ctx.softirq(sleep)
            elif where == "bh":
                local_bh_disable()
                await msleep(1)
                await local_bh_enable()
            else:
                current().rcu += 1  # rcu_read_lock()
                await msleep(1)
                current().rcu -= 1

        return [cpu0]

    return scenario


@pytest.mark.parametrize(
    "where,message,count,extra",
    [
        ("softirq", "mutex_lock in softirq context on CPU0", "100", None),
        ("bh", "msleep(1) with BH disabled on CPU0", "200", None),
        (
            "rcu",
            "msleep(1) in an RCU read-side critical section (RCU nest depth 1) on CPU0",
            "0",
            "RCU nest depth: 1, expected: 0",
        ),
    ],
)
def test_sleep_in_softirq_bh_rcu(where, message, count, extra):
    """__might_resched(): the reason, preempt_count with the softirq bits, the RCU nest depth."""
    v = run(_sleeps(where)).violation
    assert v["kind"] == "sleep-in-atomic"
    assert v["message"] == message
    lines = v["splat"].splitlines()
    assert lines[2] == f"in_atomic(): {int(count != '0')}, irqs_disabled(): 0, non_block: 0, pid: 0, name: CPU0"
    assert lines[3] == f"preempt_count: {count}, expected: 0"
    assert (lines[4] == extra) if extra else not lines[4].startswith("RCU")


# -- when the SOFTIRQ state is tracked ---------------------------------------------------------------


def _take(kernel, with_softirq, mode):
    if with_softirq:
        Ctx(kernel)
    lock = SpinLock("dev->lock")

    async def cpu0():
        if mode == "irqsave":
            flags = await spin_lock_irqsave(lock)
            await spin_unlock_irqrestore(lock, flags)
        elif mode == "irqs_on_held":
            local_irq_disable()
            await spin_lock(lock)
            await local_irq_enable()
            spin_unlock(lock)
        elif mode == "irqs_on_held_bh_off":
            local_bh_disable()
            local_irq_disable()
            await spin_lock(lock)
            await local_irq_enable()
            spin_unlock(lock)
            await local_bh_enable()
        else:
            await spin_lock(lock)
            spin_unlock(lock)

    return [cpu0]


@pytest.mark.parametrize(
    "with_softirq,mode,bits",
    [
        (False, "plain", {HARDIRQ_ON, SOFTIRQ_ON}),  # no softirq open: the kernel marks it all the same
        (True, "plain", {HARDIRQ_ON, SOFTIRQ_ON}),
        (True, "irqsave", set()),  # ENABLED_SOFTIRQ only with hardirqs on too
        (True, "irqs_on_held", {HARDIRQ_ON, SOFTIRQ_ON}),  # mark_held_locks on local_irq_enable
        (True, "irqs_on_held_bh_off", {HARDIRQ_ON}),  # ... SOFTIRQ-ON only if softirqs are enabled
    ],
)
def test_softirq_on_marking(with_softirq, mode, bits):
    graph = LockGraph()

    def scenario(kernel):
        assert has_softirqs(kernel) is False
        return _take(kernel, with_softirq, mode)

    assert run(scenario, graph).kind is None
    assert set(graph.usage.get("dev->lock", {})) == bits
