"""Classic concurrency bugs, each as a buggy scenario and its fix.

``CLASSIC`` is the table the tests run: ``(name, buggy, fixed, expected
kind of the buggy form)``.  Both forms check their invariant with a WARN
(at the end, in a remove path registered with ``kernel.add_teardown``, or
where the invariant is read), so "clean" also means "computed the right
thing", and with the race checker off the buggy forms show the damage as
an ``assertion`` (or, for ABBA, a ``deadlock``).
"""

from model.kernel import (
    GFP_ATOMIC,
    Mutex,
    Shared,
    SpinLock,
    kfree,
    kzalloc,
    mutex_lock,
    mutex_unlock,
    spin_lock,
    spin_unlock,
)

DEPOSIT = 10
OPENING_BALANCE = 100


def expect_value(kernel, cell, expected):
    """Remove path: WARN_ON(cell != expected) once every CPU is done."""

    async def check():
        if cell.value != expected:
            kernel.warn(f"{cell.name} is {cell.value}, expected {expected}")

    kernel.add_teardown(check)


# -- lost update --------------------------------------------------------------------------


async def deposit(balance, amount):
    """``acct->balance += amount`` as a load and a store."""
    await balance.store(await balance.load() + amount)


def lost_update_buggy(kernel):
    """Two CPUs deposit into one account with no lock: an update can be lost (data-race)."""
    balance = Shared("acct->balance", OPENING_BALANCE)
    expect_value(kernel, balance, OPENING_BALANCE + 2 * DEPOSIT)

    async def cpu():
        await deposit(balance, DEPOSIT)

    return [cpu, cpu]


def lost_update_fixed(kernel):
    """The deposit under ``acct->lock``; at the end the balance holds both deposits."""
    lock = SpinLock("acct->lock")
    balance = Shared("acct->balance", OPENING_BALANCE)
    expect_value(kernel, balance, OPENING_BALANCE + 2 * DEPOSIT)

    async def cpu():
        await spin_lock(lock)
        await deposit(balance, DEPOSIT)
        spin_unlock(lock)

    return [cpu, cpu]


# -- check-then-act -------------------------------------------------------------------------


def _lazy_init(kernel, lock):
    """Two CPUs get ``dev->buf``, allocating it on first use; teardown frees it.

    With ``lock``, the check and the allocation are one critical section: a
    second allocation would be left behind (the ``leak`` oracle) and the
    remove path WARNs unless exactly one buffer was allocated.
    """
    buf = Shared("dev->buf", None)
    allocated = []

    async def get_buf():
        if lock is not None:
            await spin_lock(lock)
        if await buf.load() is None:  # check ...
            obj = await kzalloc(64, GFP_ATOMIC, tag="dev->buf")
            allocated.append(obj)
            await buf.store(obj)  # ... then act
        if lock is not None:
            spin_unlock(lock)

    async def remove():
        if len(allocated) != 1:
            kernel.warn(f"dev->buf allocated {len(allocated)} times")
        kfree(buf.value)

    kernel.add_teardown(remove)
    return [get_buf, get_buf]


def check_then_act_buggy(kernel):
    """Lazy init ``if (!dev->buf) dev->buf = kzalloc(...)`` without a lock (data-race)."""
    return _lazy_init(kernel, None)


def check_then_act_fixed(kernel):
    """Lazy init with the check and the store under ``dev->lock``."""
    return _lazy_init(kernel, SpinLock("dev->lock"))


# -- wrong lock -----------------------------------------------------------------------------


def _counter_under(kernel, lock0, lock1):
    """CPU0 bumps ``dev->count`` under ``lock0``, CPU1 under ``lock1``."""
    count = Shared("dev->count", 0)
    expect_value(kernel, count, 2)

    def bump(lock):
        async def cpu():
            await spin_lock(lock)
            await count.store(await count.load() + 1)
            spin_unlock(lock)

        return cpu

    return [bump(lock0), bump(lock1)]


def wrong_lock_buggy(kernel):
    """Two paths protect ``dev->count`` with two different locks (data-race)."""
    return _counter_under(kernel, SpinLock("dev->lock"), SpinLock("dev->stats_lock"))


def wrong_lock_fixed(kernel):
    """Both paths take ``dev->lock``."""
    lock = SpinLock("dev->lock")
    return _counter_under(kernel, lock, lock)


# -- two-stage ------------------------------------------------------------------------------


def _transfer(kernel, one_section):
    """CPU0 moves money from acct_a to acct_b; CPU1 audits that the total is unchanged.

    Every access is under ``bank->lock``; the bug is the window between two
    critical sections, where the money is in neither account.
    """
    lock = SpinLock("bank->lock")
    a = Shared("acct_a->balance", OPENING_BALANCE)
    b = Shared("acct_b->balance", OPENING_BALANCE)
    total = 2 * OPENING_BALANCE

    async def transfer():
        await spin_lock(lock)
        await a.store(await a.load() - DEPOSIT)
        if not one_section:
            spin_unlock(lock)
            await spin_lock(lock)
        await b.store(await b.load() + DEPOSIT)
        spin_unlock(lock)

    async def audit():
        await spin_lock(lock)
        seen = await a.load() + await b.load()
        spin_unlock(lock)
        if seen != total:  # WARN_ON(a + b != total)
            kernel.warn(f"audit saw a total of {seen}, expected {total}")

    return [transfer, audit]


def two_stage_buggy(kernel):
    """The withdrawal and the deposit are two critical sections (assertion)."""
    return _transfer(kernel, one_section=False)


def two_stage_fixed(kernel):
    """The transfer is one critical section."""
    return _transfer(kernel, one_section=True)


# -- reorder (publication) ----------------------------------------------------------------


def _publish(kernel, lock):
    """CPU0 fills ``dev->data`` and sets ``dev->ready``; CPU1 uses data once ready.

    Without a lock the flag is published before the data (the bug); the
    fix publishes data then flag under ``lock``, and the reader checks both
    under it.
    """
    data = Shared("dev->data", 0)
    ready = Shared("dev->ready", 0)

    async def publisher():
        if lock is None:
            await ready.store(1)  # flag first: the reader can see stale data
            await data.store(42)
            return
        await spin_lock(lock)
        await data.store(42)
        await ready.store(1)
        spin_unlock(lock)

    async def reader():
        if lock is not None:
            await spin_lock(lock)
        if await ready.load():
            value = await data.load()
            if value != 42:  # WARN_ON(!data) after seeing the flag
                kernel.warn(f"dev->ready set but dev->data is {value}")
        if lock is not None:
            spin_unlock(lock)

    return [publisher, reader]


def reorder_buggy(kernel):
    """The flag is published before the data, with no lock (data-race)."""
    return _publish(kernel, None)


def reorder_fixed(kernel):
    """Data then flag, both under ``dev->lock``; the reader takes it too."""
    return _publish(kernel, SpinLock("dev->lock"))


# -- ABBA ---------------------------------------------------------------------------------


def _two_locks(kernel, order0, order1):
    """CPU0 takes the locks in ``order0``, CPU1 in ``order1``; each updates ``dev->count``."""
    locks = {"a": SpinLock("dev->lock_a"), "b": SpinLock("dev->lock_b")}
    count = Shared("dev->count", 0)

    def body(order):
        first, second = locks[order[0]], locks[order[1]]

        async def cpu():
            await spin_lock(first)
            await spin_lock(second)
            await count.store(await count.load() + 1)
            spin_unlock(second)
            spin_unlock(first)

        return cpu

    return [body(order0), body(order1)]


def abba_buggy(kernel):
    """CPU0 takes lock_a then lock_b, CPU1 lock_b then lock_a (lock-inversion; deadlocks)."""
    return _two_locks(kernel, "ab", "ba")


def abba_fixed(kernel):
    """Both CPUs take lock_a then lock_b."""
    return _two_locks(kernel, "ab", "ab")


# -- sleeping in atomic ---------------------------------------------------------------------


def _mutex_and_spinlock(kernel, mutex_inside):
    """Configuration under ``dev->mutex`` (sleeps), statistics under ``dev->lock``."""
    mutex = Mutex("dev->mutex")
    lock = SpinLock("dev->lock")
    config = Shared("dev->config", 0)

    async def reconfigure():
        if mutex_inside:
            await spin_lock(lock)
            await mutex_lock(mutex)  # may sleep under a spinlock
        else:
            await mutex_lock(mutex)
            await spin_lock(lock)
        await config.store(await config.load() + 1)
        spin_unlock(lock)
        mutex_unlock(mutex)

    return [reconfigure, reconfigure]


def sleep_in_atomic_buggy(kernel):
    """``mutex_lock()`` with a spinlock held (sleep-in-atomic)."""
    return _mutex_and_spinlock(kernel, mutex_inside=True)


def sleep_in_atomic_fixed(kernel):
    """The mutex is taken first, outside the spinlock."""
    return _mutex_and_spinlock(kernel, mutex_inside=False)


CLASSIC = [
    ("lost_update", lost_update_buggy, lost_update_fixed, "data-race"),
    ("check_then_act", check_then_act_buggy, check_then_act_fixed, "data-race"),
    ("wrong_lock", wrong_lock_buggy, wrong_lock_fixed, "data-race"),
    ("two_stage", two_stage_buggy, two_stage_fixed, "assertion"),
    ("reorder", reorder_buggy, reorder_fixed, "data-race"),
    ("abba", abba_buggy, abba_fixed, "lock-inversion"),
    ("sleep_in_atomic", sleep_in_atomic_buggy, sleep_in_atomic_fixed, "sleep-in-atomic"),
]
