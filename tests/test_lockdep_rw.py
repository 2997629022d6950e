"""rwlock_t and rw_semaphore: lib/locking-selftest.c's read/write cases, and the locks' semantics.

The lockdep cases port the C testcases as the existing selftest port does
(``tests/scenarios_selftest.py``): one CPU runs the C's events in order, in
one schedule without preemption, and the verdict is the C's expected
result (SUCCESS: no report; FAILURE: the kind lockdep reports).  The C
runs its main table with ``force_read_lock_recursive = 1`` (every
``read_lock`` a recursive read); the run's ``kernel.force_read_lock_recursive``
is that switch.  The "queued read lock" cases run without it, as in the C
(``read_lock`` recursive only in interrupt context, CONFIG_QUEUED_RWLOCKS).
Hard-IRQ context is a real interrupt whose handler runs at the point the C
has ``HARDIRQ_ENTER()`` (``kernel.irq.handle`` on the CPU, as the scheduler
delivers it).

Then the locks themselves under the explorer: readers share, a writer is
exclusive, a reader queues behind a waiting writer in process context (a
nested ``read_lock``/``down_read`` then really deadlocks) but not in an
interrupt, trylocks, and the ``read`` flag lockdep is told.
"""

import itertools

import pytest

import stress
from model.kernel import (
    IRQ_HANDLED,
    Mutex,
    RwLock,
    RwSemaphore,
    Shared,
    SpinLock,
    current,
    down_read,
    down_read_trylock,
    down_write,
    down_write_trylock,
    downgrade_write,
    local_irq_disable,
    local_irq_enable,
    mutex_lock,
    mutex_unlock,
    raise_irq,
    read_lock,
    read_lock_bh,
    read_lock_irqsave,
    read_trylock,
    read_unlock,
    read_unlock_bh,
    read_unlock_irqrestore,
    request_irq,
    spin_lock,
    spin_unlock,
    up_read,
    up_write,
    write_lock,
    write_lock_irqsave,
    write_trylock,
    write_unlock,
    write_unlock_irqrestore,
)
from stress.lockdep import LockGraph
from stress.run import replay_decisions

TEST_IRQ = 11
R_IRQ = 12  # the handler that runs "the IRQ_ENTER() part" of a C testcase

# -- the C macros ---------------------------------------------------------------------------


class Locks:
    """The C's statics, fresh per run: ``rwlock_X1``/``X2`` one class, ``lock_Y1``, ..."""

    def __init__(self):
        for n in "ABCD":
            setattr(self, f"L{n}", SpinLock(f"lock_{n}"))
            setattr(self, f"RW{n}", RwLock(f"rwlock_{n}"))
            setattr(self, f"M{n}", Mutex(f"mutex_{n}"))
            setattr(self, f"S{n}", RwSemaphore(f"rwsem_{n}"))
        for n in "XYZ":
            for i in (1, 2):
                setattr(self, f"L{n}{i}", SpinLock(f"lock_{n}"))
                setattr(self, f"RW{n}{i}", RwLock(f"rwlock_{n}"))
                setattr(self, f"M{n}{i}", Mutex(f"mutex_{n}"))
                setattr(self, f"S{n}{i}", RwSemaphore(f"rwsem_{n}"))


async def hardirq(work):
    """``HARDIRQ_ENTER(); work(); HARDIRQ_EXIT()``: the test IRQ arrives on this CPU now."""
    cpu = current()
    cpu.kernel.selftest_irq_work = work
    await cpu.kernel.irq.handle(cpu, R_IRQ)


def selftest(events, force=True):
    """A one-CPU scenario running ``events(locks)`` (an async callable); ``force``:
    ``force_read_lock_recursive`` as the C's main table sets it."""

    def scenario(kernel):
        kernel.force_read_lock_recursive = force

        async def handler(irq, dev_id):
            await kernel.selftest_irq_work()
            return IRQ_HANDLED

        request_irq(kernel, R_IRQ, handler, 0, "selftest", None)
        locks = Locks()

        async def cpu0():
            await events(locks)

        return [cpu0]

    return scenario


def verdict(scenario):
    """The kind lockdep reports in the one schedule without preemption, or None."""
    return replay_decisions(scenario, [], checkers=["lockdep"]).kind


# Lock-API flavours of the C headers (locking-selftest-{wlock,rlock,wsem,rsem}.h):
# LOCK(x)/UNLOCK(x) of the lock named x of the flavour's kind.


class Flavour:
    def __init__(self, prefix, lock, unlock):
        self.prefix, self._lock, self._unlock = prefix, lock, unlock

    def of(self, locks, x):
        return getattr(locks, self.prefix + x)

    async def LOCK(self, locks, x):
        await self._lock(self.of(locks, x))

    def UNLOCK(self, locks, x):
        self._unlock(self.of(locks, x))


WLOCK = Flavour("RW", write_lock, write_unlock)
RLOCK = Flavour("RW", read_lock, read_unlock)
WSEM = Flavour("S", down_write, up_write)
RSEM = Flavour("S", down_read, up_read)
SPIN = Flavour("L", spin_lock, spin_unlock)
FLAVOURS = {"wlock": WLOCK, "rlock": RLOCK, "wsem": WSEM, "rsem": RSEM}


def lock_unlock_2(fl, pairs):
    """``LOCK_UNLOCK_2(x, y)`` for each pair, in order."""

    async def events(L):
        for x, y in pairs:
            await fl.LOCK(L, x)
            await fl.LOCK(L, y)
            fl.UNLOCK(L, y)
            fl.UNLOCK(L, x)

    return events


def AA(fl):
    async def events(L):
        await fl.LOCK(L, "X1")
        await fl.LOCK(L, "X2")  # this one should fail
        fl.UNLOCK(L, "X2")
        fl.UNLOCK(L, "X1")

    return events


def double_unlock(fl):
    async def events(L):
        await fl.LOCK(L, "A")
        fl.UNLOCK(L, "A")
        fl.UNLOCK(L, "A")  # fail

    return events


#: DO_TESTCASE_6R: the rlock column must not trigger, every other one must
SIX_R = {
    "A-A deadlock": AA,
    "A-B-B-A deadlock": lambda fl: lock_unlock_2(fl, [("A", "B"), ("B", "A")]),
    "A-B-B-C-C-A deadlock": lambda fl: lock_unlock_2(fl, [("A", "B"), ("B", "C"), ("C", "A")]),
    "A-B-C-A-B-C deadlock": lambda fl: lock_unlock_2(fl, [("A", "B"), ("C", "A"), ("B", "C")]),
    "A-B-B-C-C-D-D-A deadlock": lambda fl: lock_unlock_2(fl, [("A", "B"), ("B", "C"), ("C", "D"), ("D", "A")]),
}
SIX_R_EXPECTED = {"wlock": "recursive-locking", "rlock": None, "wsem": "recursive-locking", "rsem": "recursive-locking"}


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("desc", sorted(SIX_R))
def test_deadlock_families_6R(desc, flavour):
    """DO_TESTCASE_6R: wlock, wsem and rsem fail, the (recursive) rlock does not."""
    kind = verdict(selftest(SIX_R[desc](FLAVOURS[flavour])))
    expected = SIX_R_EXPECTED[flavour] if desc == "A-A deadlock" else ("lock-inversion" if flavour != "rlock" else None)
    assert kind == expected


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_double_unlock(flavour):
    """DO_TESTCASE_6("double unlock"): every flavour fails."""
    assert verdict(selftest(double_unlock(FLAVOURS[flavour]))) == "bad-unlock"


# -- recursive read-lock, mixed read-write (the C's named cases) -----------------------------------


async def rlock_AA1(L):
    await read_lock(L.RWX1)
    await read_lock(L.RWX1)  # this one should NOT fail
    read_unlock(L.RWX1)
    read_unlock(L.RWX1)


async def rlock_AA1B(L):
    await read_lock(L.RWX1)
    await read_lock(L.RWX2)  # this one should NOT fail
    read_unlock(L.RWX2)
    read_unlock(L.RWX1)


async def rsem_AA1(L):
    await down_read(L.SX1)
    await down_read(L.SX1)  # this one should fail
    up_read(L.SX1)
    up_read(L.SX1)


async def rsem_AA1B(L):
    await down_read(L.SX1)
    await down_read(L.SX2)  # this one should fail
    up_read(L.SX2)
    up_read(L.SX1)


async def rlock_AA2(L):
    await read_lock(L.RWX1)
    await write_lock(L.RWX2)  # this one should fail
    write_unlock(L.RWX2)
    read_unlock(L.RWX1)


async def rsem_AA2(L):
    await down_read(L.SX1)
    await down_write(L.SX2)  # this one should fail
    up_write(L.SX2)
    up_read(L.SX1)


async def rlock_AA3(L):
    await write_lock(L.RWX1)
    await read_lock(L.RWX2)  # this one should fail
    read_unlock(L.RWX2)
    write_unlock(L.RWX1)


async def rsem_AA3(L):
    await down_write(L.SX1)
    await down_read(L.SX2)  # this one should fail
    up_read(L.SX2)
    up_write(L.SX1)


async def _rl_l(L, write_second):
    """read_lock(X1) -> spin_lock(Y1), then spin_lock(Y1) -> read/write_lock(X1)."""
    await read_lock(L.RWX1)
    await spin_lock(L.LY1)
    spin_unlock(L.LY1)
    read_unlock(L.RWX1)
    await spin_lock(L.LY1)
    if write_second:
        await write_lock(L.RWX1)
        write_unlock(L.RWX1)
    else:
        await read_lock(L.RWX1)
        read_unlock(L.RWX1)
    spin_unlock(L.LY1)


async def _rsem_m(L, write_second):
    """down_read(X1) -> mutex_lock(Y1), then mutex_lock(Y1) -> down_read/down_write(X1)."""
    await down_read(L.SX1)
    await mutex_lock(L.MY1)
    mutex_unlock(L.MY1)
    up_read(L.SX1)
    await mutex_lock(L.MY1)
    if write_second:
        await down_write(L.SX1)
        up_write(L.SX1)
    else:
        await down_read(L.SX1)
        up_read(L.SX1)
    mutex_unlock(L.MY1)


async def rlock_ABBA1(L):
    await _rl_l(L, True)  # should fail


async def rwsem_ABBA1(L):
    await _rsem_m(L, True)  # should fail


async def rlock_ABBA2(L):
    await _rl_l(L, False)  # should NOT fail


async def rwsem_ABBA2(L):
    await _rsem_m(L, False)  # should fail


async def rlock_ABBA3(L):
    await write_lock(L.RWX1)
    await spin_lock(L.LY1)
    spin_unlock(L.LY1)
    write_unlock(L.RWX1)
    await spin_lock(L.LY1)
    await write_lock(L.RWX1)
    write_unlock(L.RWX1)
    spin_unlock(L.LY1)  # should fail


async def rwsem_ABBA3(L):
    await down_write(L.SX1)
    await mutex_lock(L.MY1)
    mutex_unlock(L.MY1)
    up_write(L.SX1)
    await mutex_lock(L.MY1)
    await down_write(L.SX1)
    up_write(L.SX1)
    mutex_unlock(L.MY1)  # should fail


async def rlock_chaincache_ABBA1(L):
    """Y1 -> X1 read first (cached chain), then Y1 -> X1 write: the chain key knows read from write."""
    await _rl_l(L, False)
    await spin_lock(L.LY1)
    await write_lock(L.RWX1)
    write_unlock(L.RWX1)
    spin_unlock(L.LY1)  # should fail


NAMED = [
    # (C test name, testcase, expected kind or None)
    ("recursive read-lock", rlock_AA1, None),
    ("recursive read-lock", rsem_AA1, "recursive-locking"),
    ("recursive read-lock #2", rlock_AA1B, None),
    ("recursive read-lock #2", rsem_AA1B, "recursive-locking"),
    ("mixed read-write-lock", rlock_AA2, "recursive-locking"),
    ("mixed read-write-lock", rsem_AA2, "recursive-locking"),
    ("mixed write-read-lock", rlock_AA3, "recursive-locking"),
    ("mixed write-read-lock", rsem_AA3, "recursive-locking"),
    ("mixed read-lock/lock-write ABBA", rlock_ABBA1, "lock-inversion"),
    ("mixed read-lock/lock-write ABBA", rwsem_ABBA1, "lock-inversion"),
    ("mixed read-lock/lock-read ABBA", rlock_ABBA2, None),
    ("mixed read-lock/lock-read ABBA", rwsem_ABBA2, "lock-inversion"),
    ("mixed write-lock/lock-write ABBA", rlock_ABBA3, "lock-inversion"),
    ("mixed write-lock/lock-write ABBA", rwsem_ABBA3, "lock-inversion"),
    ("chain cached mixed R-L/L-W ABBA", rlock_chaincache_ABBA1, "lock-inversion"),
]


@pytest.mark.parametrize("desc,events,expected", NAMED, ids=[f"{d}-{e.__name__}" for d, e, _ in NAMED])
def test_named_read_write_cases(desc, events, expected):
    """The C's "recursive read-lock" ... "chain cached" rows, rlock and rsem columns."""
    assert verdict(selftest(events)) == expected


# -- W1R2/W2R3/W3R1 and friends: the recursive-read cycles (GENERATE_PERMUTATIONS_3_EVENTS) ------


def _events(*steps):
    """An event: ``(op, x)`` steps, op one of WL RL WU RU on rwlock_<x>1."""

    async def event(L):
        for op, x in steps:
            lock = getattr(L, f"RW{x}1")
            if op == "WL":
                await write_lock(lock)
            elif op == "RL":
                await read_lock(lock)
            elif op == "WU":
                write_unlock(lock)
            else:
                read_unlock(lock)

    return event


def _locked_pair(first, x, second, y):
    """``first(x); second(y); unlock(y); unlock(x)``."""
    unlock = {"WL": "WU", "RL": "RU"}
    return _events((first, x), (second, y), (unlock[second], y), (unlock[first], x))


CYCLES = {
    # "rlock W1R2/W2R3/W3R1": write-read x3 deadlocks even if read is recursive
    "W1R2_W2R3_W3R1": (
        [_locked_pair("WL", "X", "RL", "Y"), _locked_pair("WL", "Y", "RL", "Z"), _locked_pair("WL", "Z", "RL", "X")],
        "lock-inversion",
    ),
    # "rlock W1W2/R2R3/W3R1": write-write / read-read / write-read deadlocks
    "W1W2_R2R3_W3R1": (
        [_locked_pair("WL", "X", "WL", "Y"), _locked_pair("RL", "Y", "RL", "Z"), _locked_pair("WL", "Z", "RL", "X")],
        "lock-inversion",
    ),
    # "rlock W1W2/R2R3/R3W1": not a deadlock when read is recursive
    "W1W2_R2R3_R3W1": (
        [_locked_pair("WL", "X", "WL", "Y"), _locked_pair("RL", "Y", "RL", "Z"), _locked_pair("RL", "Z", "WL", "X")],
        None,
    ),
    # "rlock W1R2/R2R3/W3W1": not a deadlock when read is recursive
    "W1R2_R2R3_W3W1": (
        [_locked_pair("WL", "X", "RL", "Y"), _locked_pair("RL", "Y", "RL", "Z"), _locked_pair("WL", "Z", "WL", "X")],
        None,
    ),
}
PERMS = ["".join(p) for p in itertools.permutations("123")]


def _in_order(events, perm):
    async def run(L):
        for i in perm:
            await events[int(i) - 1](L)

    return run


@pytest.mark.parametrize("perm", PERMS)
@pytest.mark.parametrize("name", sorted(CYCLES))
def test_recursive_read_cycles(name, perm):
    """DO_TESTCASE_6x1RRB / 6x1RR: every order of the three events gets the C's verdict
    (a cycle through a strong path only: no -(*R)-> followed by -(S*)->)."""
    events, expected = CYCLES[name]
    assert verdict(selftest(_in_order(events, perm))) == expected


# -- irq-context rows with rwlocks (locking-selftest-{rlock,wlock}-hardirq.h) ----------------------
#
# E1/E2/E3 as in the C; "IRQ" parts run in a real hard IRQ on the CPU.


def _irq(fl, x):
    async def event(L):
        async def work():
            await fl.LOCK(L, x)
            fl.UNLOCK(L, x)

        local_irq_disable()  # HARDIRQ_ENTER(): local_irq_disable(); __irq_enter()
        await hardirq(work)
        await local_irq_enable()

    return event


def _plain(fl, x):
    async def event(L):
        await fl.LOCK(L, x)
        fl.UNLOCK(L, x)

    return event


def _irqs_off_held_on(fl, x):
    """irqsafe2B's E2: ``IRQ_DISABLE(); LOCK(A); IRQ_ENABLE(); UNLOCK(A)``."""

    async def event(L):
        local_irq_disable()
        await fl.LOCK(L, x)
        await local_irq_enable()
        fl.UNLOCK(L, x)

    return event


def _two(fl, x, y, irqs_off=False):
    async def event(L):
        if irqs_off:
            local_irq_disable()
        await fl.LOCK(L, x)
        await fl.LOCK(L, y)
        fl.UNLOCK(L, y)
        fl.UNLOCK(L, x)
        if irqs_off:
            await local_irq_enable()

    return event


IRQ_ROWS = {
    # name: (events for the rlock column, for the wlock column, their count)
    "irqsafe1_hard": (lambda fl: [_irq(fl, "A"), _plain(fl, "A")], 2),
    "irqsafe2B_hard": (lambda fl: [_irq(fl, "A"), _irqs_off_held_on(fl, "A")], 2),
    "irqsafe3_hard": (lambda fl: [_two(fl, "A", "B"), _plain(fl, "B"), _irq(fl, "A")], 3),
    "irqsafe4_hard": (lambda fl: [_two(fl, "A", "B", irqs_off=True), _plain(fl, "B"), _irq(fl, "A")], 3),
}


def _perms(n):
    return ["".join(p) for p in itertools.permutations("123"[:n])]


IRQ_CASES = [(row, fl, perm) for row, (_, n) in IRQ_ROWS.items() for fl in ("rlock", "wlock") for perm in _perms(n)]


@pytest.mark.parametrize("row,flavour,perm", IRQ_CASES, ids=[f"{r}_{f}_{p}" for r, f, p in IRQ_CASES])
def test_irq_safety_rows(row, flavour, perm):
    """DO_TESTCASE_2x6/6x6 rwlock columns: wlock FAILURE, rlock SUCCESS (a lock only
    read in the IRQ and read with irqs on cannot deadlock: the reads are recursive)."""
    make, _ = IRQ_ROWS[row]
    events = make(FLAVOURS[flavour])
    kind = verdict(selftest(_in_order(events, perm)))
    assert kind == (None if flavour == "rlock" else "irq-lock-inversion")


def _irq_inversion_rows(flavour):
    """"irq lock-inversion" (6x6RW): E1 WL(A) -> LOCK(B) irqs off, E2 LOCK(B), E3 IRQ RL(A)."""
    fl = FLAVOURS[flavour]
    return [_wl_a_lock_b(fl), _plain(fl, "B"), _irq_read("A")]


def _wl_a_lock_b(fl):
    async def event(L):
        local_irq_disable()
        await write_lock(L.RWA)
        await fl.LOCK(L, "B")
        fl.UNLOCK(L, "B")
        write_unlock(L.RWA)
        await local_irq_enable()

    return event


def _irq_read(x):
    async def event(L):
        async def work():
            await read_lock(getattr(L, f"RW{x}"))
            read_unlock(getattr(L, f"RW{x}"))

        local_irq_disable()
        await hardirq(work)
        await local_irq_enable()

    return event


@pytest.mark.parametrize("perm", _perms(3))
@pytest.mark.parametrize("flavour", ["rlock", "wlock"])
def test_irq_lock_inversion_rw(flavour, perm):
    """"irq lock-inversion" rwlock columns: B write-locked with irqs on fails, B only read does not."""
    kind = verdict(selftest(_in_order(_irq_inversion_rows(flavour), perm)))
    assert kind == (None if flavour == "rlock" else "irq-lock-inversion")


def _read_recursion(n, flavour):
    """"irq read-recursion" #1..#3 (6x2x2RW, hard): the rlock column SUCCESS, wlock FAILURE."""
    fl = FLAVOURS[flavour]

    async def e1(L):
        local_irq_disable()
        if n == 1:
            await write_lock(L.RWA)
            write_unlock(L.RWA)
        elif n == 2:
            await spin_lock(L.LB)
            await fl.LOCK(L, "A")
            fl.UNLOCK(L, "A")
            spin_unlock(L.LB)
        else:
            await write_lock(L.RWB)
            await fl.LOCK(L, "A")
            fl.UNLOCK(L, "A")
            write_unlock(L.RWB)
        await local_irq_enable()

    async def e2(L):
        await read_lock(L.RWA)
        read_unlock(L.RWA)

    async def e3(L):
        async def work():
            if n == 1:
                await fl.LOCK(L, "A")
                await spin_lock(L.LB)
                spin_unlock(L.LB)
                fl.UNLOCK(L, "A")
            elif n == 2:
                await spin_lock(L.LB)
                spin_unlock(L.LB)
            else:
                await read_lock(L.RWB)
                read_unlock(L.RWB)

        local_irq_disable()
        await hardirq(work)
        await local_irq_enable()

    return [e1, e2, e3]


@pytest.mark.parametrize("perm", _perms(3))
@pytest.mark.parametrize("flavour", ["rlock", "wlock"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_irq_read_recursion(n, flavour, perm):
    """"irq read-recursion", "#2", "#3": a recursive read in the IRQ against reads with irqs on."""
    kind = verdict(selftest(_in_order(_read_recursion(n, flavour), perm)))
    assert kind == (None if flavour == "rlock" else "irq-lock-inversion")


# -- queued read lock tests (force_read_lock_recursive = 0) ----------------------------------------


async def queued_read_lock_hardirq_RE_Er(L):
    """<in hardirq> read_lock(A); spin_lock(B) | <irqs off> spin_lock(B); read_lock(A): a deadlock."""

    async def irq_part():
        await read_lock(L.RWA)
        await spin_lock(L.LB)
        spin_unlock(L.LB)
        read_unlock(L.RWA)

    local_irq_disable()
    await hardirq(irq_part)
    await spin_lock(L.LB)
    await read_lock(L.RWA)
    read_unlock(L.RWA)
    spin_unlock(L.LB)
    await local_irq_enable()


async def queued_read_lock_hardirq_ER_rE(L):
    """<in hardirq> spin_lock(B); read_lock(A) | <irqs off> read_lock(A); spin_lock(B): not a deadlock."""

    async def irq_part():
        await spin_lock(L.LB)
        await read_lock(L.RWA)
        read_unlock(L.RWA)
        spin_unlock(L.LB)

    local_irq_disable()
    await hardirq(irq_part)
    await read_lock(L.RWA)
    await spin_lock(L.LB)
    spin_unlock(L.LB)
    read_unlock(L.RWA)
    await local_irq_enable()


async def queued_read_lock_hardirq_inversion(L):
    """B irq-safe, B -> A (a non-recursive read), then A read with irqs on: both reads non-recursive."""

    async def irq_part():
        await spin_lock(L.LB)
        spin_unlock(L.LB)

    local_irq_disable()
    await hardirq(irq_part)
    await spin_lock(L.LB)
    await read_lock(L.RWA)
    read_unlock(L.RWA)
    spin_unlock(L.LB)
    await local_irq_enable()
    await read_lock(L.RWA)
    read_unlock(L.RWA)


QUEUED = [
    ("hardirq read-lock/lock-read", queued_read_lock_hardirq_RE_Er, "lock-inversion"),
    ("hardirq lock-read/read-lock", queued_read_lock_hardirq_ER_rE, None),
    ("hardirq inversion", queued_read_lock_hardirq_inversion, "irq-lock-inversion"),
]


@pytest.mark.parametrize("desc,events,expected", QUEUED, ids=[d for d, _, _ in QUEUED])
def test_queued_read_lock(desc, events, expected):
    """queued_read_lock_tests(): read_lock is recursive only in the interrupt."""
    assert verdict(selftest(events, force=False)) == expected


async def qrw_AA1(L):
    await read_lock(L.RWX1)
    await read_lock(L.RWX1)
    read_unlock(L.RWX1)
    read_unlock(L.RWX1)


async def qrw_ABBA2(L):
    await _rl_l(L, False)


@pytest.mark.parametrize("events,forced,expected", [(qrw_AA1, True, None), (qrw_AA1, False, "recursive-locking"),
                                                     (qrw_ABBA2, True, None), (qrw_ABBA2, False, "lock-inversion")])
def test_process_read_lock_is_not_recursive_without_the_force(events, forced, expected):
    """With queued rwlocks a process-context read_lock is a non-recursive read: the C's
    SUCCESS rows "recursive read-lock" and "read-lock/lock-read ABBA" hold only forced."""
    assert verdict(selftest(events, force=forced)) == expected


# -- what the reports say ------------------------------------------------------------------------


def test_dependency_types_are_recorded():
    """Each edge carries its -(xy)-> types; one pair of classes may carry several."""
    graph = LockGraph()

    async def events(L):
        await _rl_l(L, False)  # rwlock_X -(SN)-> lock_Y, lock_Y -(ER)-> rwlock_X (reads recursive: forced)
        await write_lock(L.RWX1)
        await read_lock(L.RWY1)  # rwlock_X -(ER)-> rwlock_Y
        read_unlock(L.RWY1)
        write_unlock(L.RWX1)
        await down_read(L.SA)
        await down_read(L.SB)  # rwsem_A -(SN)-> rwsem_B: down_read is never recursive
        up_read(L.SB)
        up_read(L.SA)
        await down_write(L.SA)
        await down_read(L.SB)  # ... and -(EN)-> on the same edge
        up_read(L.SB)
        up_write(L.SA)

    out = replay_decisions(selftest(events), [], checkers=["lockdep"], lock_graph=graph)
    assert out.kind is None
    assert graph.deps("rwlock_X", "lock_Y") == ("SN",)
    assert graph.deps("lock_Y", "rwlock_X") == ("ER",)
    assert graph.deps("rwlock_X", "rwlock_Y") == ("ER",)
    assert graph.deps("rwsem_A", "rwsem_B") == ("SN", "EN")
    size = graph.size()
    # a write of X under Y would add -(EN)-> to lock_Y -> rwlock_X: the ABBA of "read-lock/lock-write"
    out = replay_decisions(selftest(rlock_ABBA1), [], checkers=["lockdep"], lock_graph=graph)
    assert out.kind == "lock-inversion"
    assert graph.deps("lock_Y", "rwlock_X") == ("ER",) and graph.size() == size


def test_circular_splat_says_rlock():
    """print_circular_lock_scenario(): a held reader is ``rlock(...)``."""
    out = replay_decisions(selftest(qrw_ABBA2, force=False), [], checkers=["lockdep"])
    v = out.violation
    assert v["message"] == "circular locking dependency lock_Y -> rwlock_X -> lock_Y on CPU0"
    assert "  lock(&lock_Y);" in v["splat"] and "  rlock(&rwlock_X);" in v["splat"]
    assert "(&rwlock_X){.+.+}-{3:3}" in v["splat"]  # only read, with irqs and softirqs on: HARDIRQ-ON-R, SOFTIRQ-ON-R


def test_inconsistent_read_in_irq_write_irqs_on_names_both_bits():
    """read_lock in the IRQ, write_lock with irqs on: {IN-HARDIRQ-R} -> {HARDIRQ-ON-W}."""
    events = [_irq_read("A"), _plain(WLOCK, "A")]
    out = replay_decisions(selftest(_in_order(events, "12")), [], checkers=["lockdep"])
    v = out.violation
    assert v["kind"] == "irq-lock-inversion"
    assert v["message"].startswith("inconsistent {IN-HARDIRQ-R} -> {HARDIRQ-ON-W} usage of (rwlock_A)")
    assert "(&rwlock_A){+-..}-{3:3}, at: " in v["splat"]  # hardirq: write +, read -


# -- the locks under the explorer ------------------------------------------------------------------

EXHAUSTIVE = dict(strategy="exhaustive", schedules=20_000, bound=2)


def _readers_and_writer(kernel, lock, nested, irq_nested=False):
    """CPU0 reads ``lock`` (and again, nested in process context or in its IRQ handler);
    CPU1 writes it.  ``dev->status`` stores are points where CPU1 can queue in between."""
    status = Shared("dev->status", 0)
    rd = down_read if isinstance(lock, RwSemaphore) else read_lock
    ru = up_read if isinstance(lock, RwSemaphore) else read_unlock
    wr = down_write if isinstance(lock, RwSemaphore) else write_lock
    wu = up_write if isinstance(lock, RwSemaphore) else write_unlock

    async def handler(irq, dev_id):
        await rd(lock)
        ru(lock)
        return IRQ_HANDLED

    request_irq(kernel, TEST_IRQ, handler, 0, "dev", None)

    async def reader():
        await rd(lock)
        if irq_nested:
            raise_irq(kernel, TEST_IRQ)
        await status.store(1)
        if nested:
            await rd(lock)
            ru(lock)
        await status.store(2)
        ru(lock)

    async def writer():
        if wr is write_lock:  # irq-safe: the IRQ reads it
            flags = await write_lock_irqsave(lock)
            await write_unlock_irqrestore(lock, flags)
        else:
            await wr(lock)
            wu(lock)

    return [reader, writer]


@pytest.mark.parametrize("make", [RwLock, RwSemaphore], ids=["rwlock", "rwsem"])
def test_nested_read_behind_a_waiting_writer_deadlocks(make):
    """A reader in process context queues behind a waiting writer: a nested read_lock
    (down_read) with a writer in between really deadlocks (lockdep off)."""
    lock = make("dev->rw")
    found = stress.explore(lambda k: _readers_and_writer(k, lock, nested=True), checkers=["race"], **EXHAUSTIVE)
    assert found.violations and found.violations[0].kind == "deadlock", found.violations
    assert "waits for &dev->rw" in found.violations[0].message
    clean = stress.explore(lambda k: _readers_and_writer(k, lock, nested=False), checkers=["race"], **EXHAUSTIVE)
    assert clean.violations == [] and clean.exhausted


def test_reader_in_irq_gets_ahead_of_a_waiting_writer():
    """qrwlock: a reader in interrupt context does not queue: the IRQ on the reading CPU
    takes the read lock although a writer waits, so this never deadlocks."""
    lock = RwLock("dev->rw")

    def scenario(kernel):
        return _readers_and_writer(kernel, lock, nested=False, irq_nested=True)

    result = stress.explore(scenario, checkers=["race"], **EXHAUSTIVE)
    assert result.violations == [] and result.exhausted
    # and lockdep agrees: the IRQ's read is recursive (only the process-context nesting is reported)
    result = stress.explore(scenario, checkers=["lockdep"], **EXHAUSTIVE)
    assert result.violations == [] and result.exhausted


def test_lockdep_reports_the_nested_read_before_it_deadlocks():
    """With lockdep on, the nested process-context read_lock is recursive-locking at once."""
    lock = RwLock("dev->rw")
    found = stress.explore(lambda k: _readers_and_writer(k, lock, nested=True), checkers=["lockdep"], **EXHAUSTIVE)
    assert found.violations[0].kind == "recursive-locking"


def _write_irqs_on_read_in_irq(kernel, irqsafe):
    lock = RwLock("dev->rw")
    status = Shared("dev->status", 0)

    async def handler(irq, dev_id):
        await read_lock(lock)
        read_unlock(lock)
        return IRQ_HANDLED

    request_irq(kernel, TEST_IRQ, handler, 0, "dev", None)

    async def writer():
        if irqsafe:
            flags = await write_lock_irqsave(lock)
        else:
            await write_lock(lock)
        raise_irq(kernel, TEST_IRQ)
        await status.store(1)  # the IRQ may fire here, on this CPU
        if irqsafe:
            await write_unlock_irqrestore(lock, flags)
        else:
            write_unlock(lock)

    async def reader():
        flags = await read_lock_irqsave(lock)
        await read_unlock_irqrestore(lock, flags)

    return [writer, reader]


def test_rlock_in_irq_vs_wlock_irqs_on():
    """The classic rwlock irq deadlock: written with irqs on, read in the IRQ on the same CPU.
    Lockdep: inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-R}; without it, a real deadlock;
    write_lock_irqsave is the fix."""
    found = stress.explore(lambda k: _write_irqs_on_read_in_irq(k, False), checkers=["lockdep"], **EXHAUSTIVE)
    assert found.violations[0].kind == "irq-lock-inversion"
    assert "{HARDIRQ-ON-W} -> {IN-HARDIRQ-R}" in found.violations[0].message
    dead = stress.explore(lambda k: _write_irqs_on_read_in_irq(k, False), checkers=["race"], **EXHAUSTIVE)
    assert dead.violations[0].kind == "deadlock"
    for checkers in (["lockdep"], ["race"]):
        clean = stress.explore(lambda k: _write_irqs_on_read_in_irq(k, True), checkers=checkers, **EXHAUSTIVE)
        assert clean.violations == [] and clean.exhausted


def _counter(kernel, lock, take, drop):
    count = Shared("dev->count", 0)

    async def inc():
        await take(lock)
        await count.store(await count.load() + 1)
        drop(lock)

    return [inc, inc]


@pytest.mark.parametrize(
    "make,take,drop,race",
    [
        (RwLock, write_lock, write_unlock, False),
        (RwLock, read_lock, read_unlock, True),
        (RwSemaphore, down_write, up_write, False),
        (RwSemaphore, down_read, up_read, True),
    ],
    ids=["write_lock", "read_lock", "down_write", "down_read"],
)
def test_writer_is_exclusive_readers_share(make, take, drop, race):
    """An update under the write side is serialised; under the read side two CPUs race."""
    lock = make("stats->lock")
    result = stress.explore(lambda k: _counter(k, lock, take, drop), checkers=["race", "lockdep"], **EXHAUSTIVE)
    kinds = [v.kind for v in result.violations]
    assert kinds == (["data-race"] if race else []), kinds


def test_trylocks():
    """read_trylock fails under a writer, write_trylock under a reader; both succeed when free."""
    lock, sem = RwLock("dev->rw"), RwSemaphore("dev->sem")
    seen = []

    def scenario(kernel):
        async def cpu0():
            await write_lock(lock)
            seen.append(await read_trylock(lock))
            write_unlock(lock)
            await read_lock(lock)
            seen.append(await write_trylock(lock))
            seen.append(await read_trylock(lock))  # readers share
            read_unlock(lock)
            read_unlock(lock)
            seen.append(await write_trylock(lock))
            write_unlock(lock)
            await down_read(sem)
            seen.append(await down_write_trylock(sem))
            seen.append(await down_read_trylock(sem))
            up_read(sem)
            up_read(sem)
            seen.append(await down_write_trylock(sem))
            up_write(sem)

        return [cpu0]

    out = replay_decisions(scenario, [], checkers=["lockdep"])
    assert out.kind is None
    assert seen == [False, False, True, True, False, True, True]


def test_downgrade_write_lets_waiting_readers_in():
    """downgrade_write(): the writer keeps reading, a reader queued behind it gets in."""
    sem = RwSemaphore("mm->mmap_lock")
    status = Shared("dev->status", 0)
    both = []

    def scenario(kernel):
        async def writer():
            await down_write(sem)
            await status.store(1)
            downgrade_write(sem)
            await status.store(2)
            both.append(len(kernel.locks[sem].readers))
            up_read(sem)

        async def reader():
            await down_read(sem)
            both.append(len(kernel.locks[sem].readers))
            up_read(sem)

        return [writer, reader]

    result = stress.explore(scenario, checkers=["race"], **EXHAUSTIVE)
    assert result.violations == [] and result.exhausted
    assert 2 in both  # some schedule has the downgraded writer and the reader inside together


def test_down_read_in_irq_is_sleep_in_atomic():
    """rw_semaphore sleeps: down_read in a hard IRQ is a sleeping function called from invalid context."""
    sem = RwSemaphore("dev->sem")

    def scenario(kernel):
        async def handler(irq, dev_id):
            await down_read(sem)
            up_read(sem)
            return IRQ_HANDLED

        request_irq(kernel, TEST_IRQ, handler, 0, "dev", None)

        other = RwLock("other")

        async def cpu0():
            raise_irq(kernel, TEST_IRQ)
            await read_lock_bh(other)
            await read_unlock_bh(other)

        return [cpu0]

    found = stress.explore(scenario, checkers=["lockdep"], **EXHAUSTIVE)
    assert found.violations[0].kind == "sleep-in-atomic"
    assert found.violations[0].message.startswith("down_read in hard-IRQ context")


# -- what lockdep is told --------------------------------------------------------------------------


class Recorder:
    """An observer of ``lock_acquire`` with the new ``read`` argument."""

    def __init__(self):
        self.calls = []

    def lock_acquire(self, cpu, lock, trylock, subclass, read=0):
        self.calls.append((lock.name, trylock, read))


def test_lock_acquire_read_flag():
    """read 0 write, 1 read, 2 recursive read (read_lock in interrupt context or forced)."""
    rec = Recorder()
    rw, sem, s = RwLock("rw"), RwSemaphore("sem"), SpinLock("s")

    def scenario(kernel):
        kernel.attach(rec)

        async def handler(irq, dev_id):
            await read_lock(rw)
            read_unlock(rw)
            return IRQ_HANDLED

        request_irq(kernel, R_IRQ, handler, 0, "dev", None)

        async def cpu0():
            await read_lock(rw)  # process context: 1
            read_unlock(rw)
            await read_lock_bh(rw)  # BH disabled is in_interrupt(): 2
            await read_unlock_bh(rw)
            local_irq_disable()
            await kernel.irq.handle(current(), R_IRQ)  # in the IRQ: 2
            await local_irq_enable()
            flags = await write_lock_irqsave(rw)  # irq-safe: the IRQ reads it
            await write_unlock_irqrestore(rw, flags)
            assert await read_trylock(rw)
            read_unlock(rw)
            await down_read(sem)
            up_read(sem)
            assert await down_read_trylock(sem)
            up_read(sem)
            await down_write(sem)
            up_write(sem)
            await spin_lock(s)  # the old 4-argument call still works
            spin_unlock(s)
            kernel.force_read_lock_recursive = True
            await read_lock(rw)  # forced: 2
            read_unlock(rw)

        return [cpu0]

    out = replay_decisions(scenario, [], checkers=["lockdep"])
    assert out.kind is None, out.violation
    assert rec.calls == [
        ("rw", False, 1),
        ("rw", False, 2),
        ("rw", False, 2),
        ("rw", False, 0),
        ("rw", True, 1),
        ("sem", False, 1),
        ("sem", True, 1),
        ("sem", False, 0),
        ("s", False, 0),
        ("rw", False, 2),
    ]


# -- the race checker sees the readers' side ----------------------------------------------------------


def _table(kernel, lock, rd, ru, wr, wu, writer_locks=True):
    """Two readers read tbl->x, a writer writes it: under the lock, or the writer without it."""
    x = Shared("tbl->x", 0)

    async def reader():
        await rd(lock)
        await x.load()
        ru(lock)

    async def writer():
        if writer_locks:
            await wr(lock)
        await x.store(1)
        if writer_locks:
            wu(lock)

    return [reader, reader, writer]


@pytest.mark.parametrize(
    "make,rd,ru,wr,wu",
    [(RwLock, read_lock, read_unlock, write_lock, write_unlock), (RwSemaphore, down_read, up_read, down_write, up_write)],
    ids=["rwlock", "rwsem"],
)
def test_writer_is_ordered_after_every_reader(make, rd, ru, wr, wu):
    """Two overlapping readers, then a writer: no data race (the writer follows both
    readers' releases, not only the last one); the writer without the lock races."""
    lock = make("tbl->lock")
    clean = stress.explore(lambda k: _table(k, lock, rd, ru, wr, wu), checkers=["race", "lockdep"], **EXHAUSTIVE)
    assert clean.violations == [] and clean.exhausted
    racy = stress.explore(lambda k: _table(k, lock, rd, ru, wr, wu, False), checkers=["race"], **EXHAUSTIVE)
    assert [v.kind for v in racy.violations] == ["data-race"]


def test_downgrade_publishes_the_writers_updates():
    """What the writer stored before downgrade_write() is ordered before a reader that follows."""
    sem = RwSemaphore("mm->mmap_lock")

    def scenario(kernel):
        x = Shared("mm->x", 0)

        async def writer():
            await down_write(sem)
            await x.store(1)
            downgrade_write(sem)
            await x.load()
            up_read(sem)

        async def reader():
            await down_read(sem)
            await x.load()
            up_read(sem)

        return [writer, reader]

    result = stress.explore(scenario, checkers=["race", "lockdep"], **EXHAUSTIVE)
    assert result.violations == [] and result.exhausted
