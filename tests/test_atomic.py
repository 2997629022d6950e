"""atomic_t and refcount_t (model.kernel.atomic), alone and under the engine.

Alone (one CPU, no scheduler): the values C gives (wrapping, cmpxchg,
saturation), the access each operation reports (marked, its ordering) and
the kernel's WARN texts from lib/refcount.c.  Under the engine, searched over
several seeds: atomics never race with each other and lose no update; a
plain access to an atomic's word races with its atomic users; refcount
misuse is found as the kernel reports it; the put that frees is ordered
after every other put (release + acquire on 0), a relaxed put is not.
"""

import pytest
import trio

import stress
from model.kernel import (
    ATOMIC_INIT,
    INT_MAX,
    INT_MIN,
    Kernel,
    ModelBug,
    Mutex,
    REFCOUNT_INIT,
    REFCOUNT_MAX,
    REFCOUNT_SATURATED,
    Shared,
    SpinLock,
    atomic_add,
    atomic_add_unless,
    atomic_cmpxchg,
    atomic_dec_and_test,
    atomic_dec_return_relaxed,
    atomic_fetch_add,
    atomic_inc,
    atomic_inc_not_zero,
    atomic_inc_return,
    atomic_inc_return_acquire,
    atomic_inc_return_relaxed,
    atomic_long_inc_return,
    atomic_long_t,
    atomic_read,
    atomic_read_acquire,
    atomic_set,
    atomic_set_release,
    atomic_sub,
    atomic_t,
    atomic_try_cmpxchg,
    atomic_xchg,
    mutex_unlock,
    refcount_add,
    refcount_dec,
    refcount_dec_and_lock,
    refcount_dec_and_mutex_lock,
    refcount_dec_and_test,
    refcount_dec_if_one,
    refcount_dec_not_one,
    refcount_inc,
    refcount_inc_not_zero,
    refcount_read,
    refcount_set,
    refcount_t,
    set_current,
    spin_unlock,
)
from model.kernel.shared import ACQUIRE, FULL, MARKED, RELEASE, RMW
from stress.checkers import default_checkers

SEEDS = range(6)
NO_RACE = [c for c in default_checkers() if c != "race"]


class Accesses:
    """Records every ``access`` hook call: (cell name, is_write, marked)."""

    def __init__(self):
        self.log = []

    def access(self, cpu, cell, is_write, marked=False):
        self.log.append((cell.name, is_write, marked))


def alone(test):
    """Run ``await test(kernel)`` on one CPU with no scheduler; (its result, the accesses)."""

    async def main():
        k = Kernel()
        set_current(k.add_cpu())
        acc = Accesses()
        k.attach(acc)
        return await test(k), acc.log

    return trio.run(main)


def _search(scenario, seed, schedules=40, strategy="pct", **kw):
    return stress.explore(scenario, strategy=strategy, schedules=schedules, seed=seed, shrink=False, **kw)


def assert_clean(scenario, schedules=40, **kw):
    for seed in SEEDS:
        r = _search(scenario, seed, schedules, **kw)
        assert not r.violations, (seed, r.violations[0].message)
    r = _search(scenario, 0, schedules=2000, strategy="exhaustive", bound=2, **kw)
    assert not r.violations, r.violations[0].message


def found(scenario, kind, schedules=40, **kw):
    """The first violation of each seed that found one; each must be ``kind``."""
    out = []
    for seed in SEEDS:
        r = _search(scenario, seed, schedules, **kw)
        if r.violations:
            v = r.violations[0]
            assert v.kind == kind, (seed, v.kind, v.message)
            out.append(v)
    return out


def _expect(kernel, value_of, expected, what):
    async def check():
        if value_of() != expected:
            kernel.warn(f"{what} is {value_of()}, expected {expected}")

    kernel.add_teardown(check)


# -- alone: values and accesses -------------------------------------------------------------


def test_atomic_values_as_c_gives_them():
    async def t(k):
        v = atomic_t("v", ATOMIC_INIT(5))
        out = [await atomic_read(v)]
        await atomic_add(3, v)
        await atomic_sub(1, v)
        out.append(await atomic_inc_return(v))  # 8
        out.append(await atomic_fetch_add(2, v))  # 8, now 10
        out.append(await atomic_cmpxchg(v, 3, 0))  # no: 10
        out.append(await atomic_cmpxchg(v, 10, 1))  # yes: 10, now 1
        out.append(await atomic_try_cmpxchg(v, 7, 2))  # (False, 1)
        out.append(await atomic_try_cmpxchg(v, 1, 2))  # (True, 1), now 2
        out.append(await atomic_xchg(v, 4))  # 2, now 4
        out.append(await atomic_add_unless(v, 1, 4))  # False
        out.append(await atomic_inc_not_zero(v))  # True, now 5
        await atomic_set(v, 1)
        out.append(await atomic_dec_and_test(v))  # True
        out.append(await atomic_inc_not_zero(v))  # False: stays 0
        out.append(v.get(k))
        return out

    out, _ = alone(t)
    assert out == [5, 8, 8, 10, 10, (False, 1), (True, 1), 2, False, True, True, False, 0]


def test_atomic_wraps_as_int_and_long():
    async def t(k):
        v, lv = atomic_t("v", INT_MAX), atomic_long_t("lv", INT_MAX)
        return await atomic_inc_return(v), await atomic_long_inc_return(lv)

    (wrapped, wide), _ = alone(t)
    assert wrapped == INT_MIN and wide == INT_MAX + 1


def test_each_operation_reports_a_marked_access_with_its_ordering():
    async def t(k):
        v = atomic_t("v", 1)
        await atomic_read(v)
        await atomic_set(v, 1)
        await atomic_inc(v)
        await atomic_inc_return_relaxed(v)
        await atomic_inc_return_acquire(v)
        await atomic_inc_return(v)
        await atomic_cmpxchg(v, 99, 0)  # fails: a relaxed read
        await atomic_read_acquire(v)
        await atomic_set_release(v, 0)

    _, log = alone(t)
    assert log == [
        ("v", False, MARKED),
        ("v", True, MARKED),
        ("v", True, MARKED | RMW),
        ("v", True, MARKED | RMW),
        ("v", True, MARKED | RMW | ACQUIRE),
        ("v", True, MARKED | RMW | ACQUIRE | RELEASE | FULL),
        ("v", False, MARKED),
        ("v", False, MARKED | ACQUIRE),
        ("v", True, MARKED | RELEASE),
    ]


def test_refcount_dec_and_test_is_release_and_acquire_on_zero_only():
    async def t(k):
        r = refcount_t("obj->ref", REFCOUNT_INIT(2))
        return [await refcount_dec_and_test(r), await refcount_dec_and_test(r)]

    out, log = alone(t)
    assert out == [False, True]
    assert log == [("obj->ref", True, MARKED | RMW | RELEASE), ("obj->ref", True, MARKED | RMW | RELEASE | ACQUIRE)]


@pytest.mark.parametrize(
    "start, op, message",
    [
        (0, lambda r: refcount_inc(r), "refcount_t: addition on 0; use-after-free."),
        (0, lambda r: refcount_dec_and_test(r), "refcount_t: underflow; use-after-free."),
        (1, lambda r: refcount_dec(r), "refcount_t: decrement hit 0; leaking memory."),
        (REFCOUNT_MAX, lambda r: refcount_inc(r), "refcount_t: saturated; leaking memory."),
        (REFCOUNT_MAX, lambda r: refcount_inc_not_zero(r), "refcount_t: saturated; leaking memory."),
        (REFCOUNT_SATURATED, lambda r: refcount_add(2, r), "refcount_t: saturated; leaking memory."),
    ],
)
def test_refcount_saturates_and_warns_as_lib_refcount_c(start, op, message):
    seen = {}

    async def t(k):
        r = refcount_t("obj->ref", start)
        seen["r"], seen["k"] = r, k
        await op(r)

    with pytest.raises(ModelBug, match=f"^assertion: {message.replace('.', '[.]')}$"):
        alone(t)
    assert seen["r"].get(seen["k"]) == REFCOUNT_SATURATED  # set before the WARN


def test_refcount_quiet_paths():
    async def t(k):
        r = refcount_t("obj->ref", REFCOUNT_INIT(1))
        out = [await refcount_inc_not_zero(r), await refcount_read(r)]  # True, 2
        out.append(await refcount_dec_not_one(r))  # True, now 1
        out.append(await refcount_dec_not_one(r))  # False: it is 1
        out.append(await refcount_dec_if_one(r))  # True, now 0
        out.append(await refcount_inc_not_zero(r))  # False
        await refcount_set(r, REFCOUNT_SATURATED)
        out.append(await refcount_read(r))  # unsigned view
        out.append(await refcount_dec_not_one(r))  # saturated: true, stays
        out.append(r.get(k))
        return out

    out, _ = alone(t)
    assert out == [True, 2, True, False, True, False, 0xC0000000, True, REFCOUNT_SATURATED]


# -- under the engine: atomics ---------------------------------------------------------------


def _counter(inc, n=3):
    """Two CPUs each bump ``stats->count`` ``n`` times with ``inc``; the
    teardown WARNs unless it is ``2 * n``."""

    def scenario(kernel):
        count = atomic_t("stats->count", 0)
        _expect(kernel, lambda: count.value, 2 * n, "stats->count")

        async def bump():
            for _ in range(n):
                await inc(count)

        return [bump, bump]

    return scenario


async def _plain_inc(cell):
    await cell.store(await cell.load() + 1)


async def _inc_return(v):
    await atomic_inc_return(v)


def test_atomic_inc_from_two_cpus_is_clean_and_counts_every_increment():
    assert_clean(_counter(atomic_inc))
    assert_clean(_counter(_inc_return))


def test_a_plain_increment_of_the_same_word_loses_updates():
    """The verdict above could fail: the same counter bumped plainly is a
    data-race, and with the race checker off the teardown sees the lost update."""
    races = found(_counter(_plain_inc), "data-race")
    assert len(races) >= 5, len(races)
    lost = found(_counter(_plain_inc), "assertion", schedules=100, checkers=NO_RACE)
    assert len(lost) >= 4, len(lost)
    assert all("stats->count is" in v.message for v in lost)


def test_atomic_vs_plain_read_of_its_word_is_a_data_race():
    def scenario(kernel):
        users = atomic_t("dev->users", 0)

        async def get():
            await atomic_inc(users)

        async def peek():
            await users.load()  # a plain read of users.counter

        return [get, peek]

    races = found(scenario, "data-race")
    assert len(races) >= 5, len(races)
    assert all("read-write (marked)" in v.message and "read by CPU1" in v.message for v in races)


def _release_sequence(middle):
    """CPU0: plain data, then atomic_set_release(v, 1).  CPU1: ``middle(v)``
    (only once v is 1).  CPU2: atomic_read_acquire(v) == 2, then the data."""

    def scenario(kernel):
        data, v = Shared("dev->data", 0), atomic_t("dev->state", 0)

        async def cpu0():
            await data.store(42)
            await atomic_set_release(v, 1)

        async def cpu1():
            for _ in range(3):
                if await atomic_read(v) == 1:
                    await middle(v)
                    return

        async def cpu2():
            for _ in range(4):
                if await atomic_read_acquire(v) == 2:
                    await data.load()
                    return

        return [cpu0, cpu1, cpu2]

    return scenario


async def _relaxed_inc(v):
    await atomic_inc(v)


async def _relaxed_set(v):
    await atomic_set(v, 2)


def test_a_relaxed_rmw_continues_the_release_sequence():
    assert_clean(_release_sequence(_relaxed_inc), schedules=60)


def test_a_relaxed_store_ends_the_release_sequence():
    races = found(_release_sequence(_relaxed_set), "data-race", schedules=60)
    assert len(races) >= 5, len(races)
    assert all(v.message.endswith("on dev->data") for v in races)


# -- under the engine: refcount_t -------------------------------------------------------------


def _puts(extra_put=False, late_get=False, get=refcount_inc):
    """``obj->ref`` starts at 1 (CPU0's reference).  CPU0 drops it.  CPU1 drops
    one it never took (``extra_put``) or takes one late with ``get``
    (``late_get``: after CPU0's put it is a use-after-free)."""

    def scenario(kernel):
        ref = refcount_t("obj->ref", REFCOUNT_INIT(1))
        work = Shared("cpu1.work", 0)

        async def cpu0():
            await refcount_dec_and_test(ref)  # the last put: obj is freed

        async def cpu1():
            if extra_put:
                await refcount_dec_and_test(ref)
            if late_get:
                for i in range(3):
                    await work.store(i)
                await get(ref)

        return [cpu0, cpu1]

    return scenario


def test_refcount_underflow_is_found_with_the_kernel_message():
    hits = found(_puts(extra_put=True), "assertion")
    assert len(hits) >= 5, len(hits)
    assert all(v.message == "refcount_t: underflow; use-after-free." for v in hits)


def test_refcount_addition_on_zero_is_found_with_the_kernel_message():
    hits = found(_puts(late_get=True), "assertion")
    assert len(hits) >= 4, len(hits)
    assert all(v.message == "refcount_t: addition on 0; use-after-free." for v in hits)


def test_refcount_inc_not_zero_on_a_dying_object_is_clean():
    """The lookup idiom: a get that may meet the last put uses inc_not_zero."""
    assert_clean(_puts(late_get=True, get=refcount_inc_not_zero))


def _release_object(put):
    """Two users of ``obj`` (refcount 2) each read its field plainly, then put;
    the put that drops the last reference frees: a plain write of the field."""

    def scenario(kernel):
        ref = atomic_t("obj->ref.refs", 2)  # the refcount's word, for the relaxed variant
        rc = refcount_t("obj->ref", REFCOUNT_INIT(2))
        field = Shared("obj->field", 7)

        async def user():
            await field.load()
            if await put(rc, ref):
                await field.store(0xDEAD)  # kfree(obj): the poison write

        return [user, user]

    return scenario


async def _refcount_put(rc, ref):
    return await refcount_dec_and_test(rc)


async def _relaxed_put(rc, ref):
    return await atomic_dec_return_relaxed(ref) == 0


def test_refcount_dec_and_test_orders_the_free_after_every_put():
    assert_clean(_release_object(_refcount_put))


def test_a_relaxed_put_does_not_order_the_free():
    races = found(_release_object(_relaxed_put), "data-race")
    assert len(races) >= 5, len(races)
    assert all(v.message.endswith("on obj->field") for v in races)


def _dec_and_lock(dec_and_lock, lock_cls, unlock):
    """Two puts of a refcount of 2, each through ``dec_and_lock``: exactly one
    gets true, holding the lock, and frees (counted at teardown)."""

    def scenario(kernel):
        rc = refcount_t("obj->ref", REFCOUNT_INIT(2))
        lock = lock_cls("list_lock")
        frees = Shared("frees", 0)
        field = Shared("obj->field", 7)
        _expect(kernel, lambda: frees.value, 1, "frees")

        async def user():
            await field.load()
            if await dec_and_lock(rc, lock):
                await field.store(0xDEAD)
                await frees.store(await frees.load() + 1)
                unlock(lock)

        return [user, user]

    return scenario


@pytest.mark.parametrize(
    "dec_and_lock, lock_cls, unlock",
    [(refcount_dec_and_lock, SpinLock, spin_unlock), (refcount_dec_and_mutex_lock, Mutex, mutex_unlock)],
)
def test_refcount_dec_and_lock_frees_once_in_order(dec_and_lock, lock_cls, unlock):
    assert_clean(_dec_and_lock(dec_and_lock, lock_cls, unlock))
