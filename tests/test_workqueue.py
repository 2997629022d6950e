"""Workqueues (kernel/workqueue.c): kworkers run work concurrently with the CPUs;
flush/cancel semantics; lockdep's work and workqueue maps catch a flush or a
cancel under a lock the work takes, as the kernel's lockdep does."""

import stress

from .verdicts import describe, describe_v, verdicts
from model.kernel import (
    INIT_WORK,
    IRQ_HANDLED,
    Completion,
    Mutex,
    Shared,
    SpinLock,
    WorkStruct,
    alloc_ordered_workqueue,
    alloc_workqueue,
    cancel_work_sync,
    destroy_workqueue,
    flush_work,
    flush_workqueue,
    mutex_lock,
    mutex_unlock,
    queue_work,
    raise_irq,
    request_irq,
    schedule_work,
    spin_lock,
    spin_unlock,
    wait_for_completion,
    work_pending,
    workqueue_init,
)

SEEDS = range(3)
SCHEDULES = 120

search, assert_clean, found = verdicts(SCHEDULES, SEEDS)


class Dev:
    """A driver's device: a mutex its work takes, a counter, a work item."""

    def __init__(self, kernel, wq_name="dev_wq", max_active=0):
        self.mutex = Mutex("dev->mutex")
        self.count = Shared("dev->count", 0)
        self.wq = alloc_workqueue(kernel, wq_name, 0, max_active)
        self.work = WorkStruct("&dev->work")
        INIT_WORK(self.work, self.work_fn)

    async def work_fn(self, work):
        await mutex_lock(self.mutex)
        await self.count.store(await self.count.load() + 1)
        mutex_unlock(self.mutex)


# -- lockdep: flush and cancel under the work's lock --------------------------------------


def flush_under_lock(kernel):
    dev = Dev(kernel)

    async def cpu0():
        await mutex_lock(dev.mutex)
        await queue_work(dev.wq, dev.work)
        await flush_work(dev.work)  # the work waits for dev->mutex: deadlock
        mutex_unlock(dev.mutex)

    return [cpu0]


def flush_outside_lock(kernel):
    dev = Dev(kernel)

    async def cpu0():
        await queue_work(dev.wq, dev.work)
        await mutex_lock(dev.mutex)
        await dev.count.store(await dev.count.load() + 1)
        mutex_unlock(dev.mutex)
        await flush_work(dev.work)

    async def cpu1():
        await mutex_lock(dev.mutex)
        await dev.count.store(await dev.count.load() + 1)
        mutex_unlock(dev.mutex)
        await queue_work(dev.wq, dev.work)
        await cancel_work_sync(dev.work)

    return [cpu0, cpu1]


def cancel_under_lock(kernel):
    dev = Dev(kernel)

    async def boot():
        await queue_work(dev.wq, dev.work)

    kernel.add_setup(boot)

    async def cpu0():
        await mutex_lock(dev.mutex)
        await cancel_work_sync(dev.work)  # waits for a running work that waits for dev->mutex
        mutex_unlock(dev.mutex)

    return [cpu0]


def flush_workqueue_under_lock(kernel):
    dev = Dev(kernel)

    async def cpu0():
        await queue_work(dev.wq, dev.work)
        await mutex_lock(dev.mutex)
        await flush_workqueue(dev.wq)
        mutex_unlock(dev.mutex)

    return [cpu0]


def flush_in_ordered_wq(kernel):
    """A work of an ordered workqueue flushes another work queued behind it on the
    same workqueue: it can never run (start_flush_work's forced lock recursion)."""
    wq = alloc_ordered_workqueue(kernel, "dev_ordered")
    second = WorkStruct("&dev->second")

    async def second_fn(work):
        pass

    async def first_fn(work):
        await queue_work(wq, second)
        await flush_work(second)

    first = WorkStruct("&dev->first", first_fn)
    INIT_WORK(second, second_fn)

    async def cpu0():
        await queue_work(wq, first)

    return [cpu0]


def test_flush_work_under_a_lock_the_work_takes_is_a_lock_inversion():
    for strategy in ("pct", "random", "exhaustive"):
        v = found(flush_under_lock, strategy=strategy)
        assert v.kind == "lock-inversion", describe_v(v)
        assert "(work_completion)(&dev->work)" in v.message and "dev->mutex" in v.message, v.message


def test_flush_and_cancel_outside_the_lock_are_clean():
    assert_clean(flush_outside_lock)


def test_cancel_work_sync_under_a_lock_the_work_takes_is_found():
    """Annotated only when the work runs at the cancel (start_flush_work): a search finds it."""
    for seed in SEEDS:
        v = found(cancel_under_lock, seed=seed, schedules=300)
        assert v.kind == "lock-inversion", describe_v(v)
        assert "(work_completion)(&dev->work)" in v.message, v.message


def test_flush_workqueue_under_a_lock_the_work_takes_is_a_lock_inversion():
    v = found(flush_workqueue_under_lock)
    assert v.kind == "lock-inversion", describe_v(v)
    assert "(wq_completion)dev_wq" in v.message, v.message


def test_flushing_a_work_of_ones_own_ordered_workqueue_is_recursive_locking():
    v = found(flush_in_ordered_wq)
    assert v.kind == "recursive-locking", describe_v(v)
    assert "(wq_completion)dev_ordered" in v.message, v.message


# -- kworkers run concurrently with the CPUs -----------------------------------------------


def _race(locked, flush):
    def scenario(kernel):
        lock, data = SpinLock("dev->lock"), Shared("dev->data", 0)
        wq = alloc_workqueue(kernel, "dev_wq")

        async def fn(work):
            if locked:
                await spin_lock(lock)
            await data.store(1)
            if locked:
                spin_unlock(lock)

        work = WorkStruct("&dev->work", fn)

        async def cpu0():
            await data.store(2)  # before queue_work: ordered before the work
            await queue_work(wq, work)
            if flush:
                await flush_work(work)
            if locked:
                await spin_lock(lock)
            await data.load()
            if locked:
                spin_unlock(lock)

        return [cpu0]

    return scenario


def test_a_work_and_a_cpu_race_on_an_unlocked_cell():
    v = found(_race(locked=False, flush=False))
    assert v.kind == "data-race", describe_v(v)
    assert "kworker/dev_wq" in v.message, v.message


def test_the_same_accesses_under_a_lock_are_clean():
    assert_clean(_race(locked=True, flush=False))


def test_queue_work_and_flush_work_order_the_accesses():
    """Before queue_work happens before the work; the work happens before flush_work returns."""
    assert_clean(_race(locked=False, flush=True))


# -- semantics ---------------------------------------------------------------------------


def semantics(kernel):
    """queue_work's and flush_work's return values, cancel_work_sync of a pending work."""
    ran = Shared("dev->ran", 0)
    wq = alloc_workqueue(kernel, "dev_wq")
    results = {}

    async def fn(work):
        await ran.store(await ran.load() + 1)

    work = WorkStruct("&dev->work", fn)
    other = WorkStruct("&dev->other", fn)

    async def cpu0():
        assert not await flush_work(work)  # never queued: nothing to wait for
        assert await queue_work(wq, work)
        results["second"] = await queue_work(wq, work)  # False unless it already started
        await flush_work(work)  # True if it waited: the worker may have been quicker
        assert not work_pending(work)
        assert await queue_work(wq, other)
        results["cancelled"] = await cancel_work_sync(other)
        assert not await flush_work(other)

    async def check():
        runs = 1 + results["second"] + (not results["cancelled"])
        assert ran.get(kernel) == runs, (ran.get(kernel), results)

    kernel.add_teardown(check)
    return [cpu0]


def test_flush_and_cancel_semantics():
    assert_clean(semantics, seeds=range(2))


def test_the_work_runs_on_a_kworker_and_only_once_at_a_time():
    """Two CPUs queue one work repeatedly: never two instances at once (non-reentrant)."""

    def scenario(kernel):
        wq = alloc_workqueue(kernel, "dev_wq", 0, 4)
        busy = Shared("dev->busy", 0)

        async def fn(work):
            from model.kernel import current

            assert current().kind == "kworker" and current().name.startswith("kworker/dev_wq")
            await busy.store(1)  # a second instance at once would race here
            await busy.store(0)

        work = WorkStruct("&dev->work", fn)

        async def cpu():
            for _ in range(3):
                await queue_work(wq, work)

        return [cpu, cpu]

    assert_clean(scenario, seeds=range(2))


def test_system_wq_from_workqueue_init():
    def scenario(kernel):
        workqueue_init(kernel)
        data = Shared("dev->data", 0)

        async def fn(work):
            await data.store(1)

        work = WorkStruct("&dev->work", fn)

        async def cpu0():
            assert await schedule_work(work)
            await flush_work(work)
            assert await data.load() == 1

        return [cpu0]

    assert_clean(scenario, seeds=range(1))


def test_a_workqueue_created_during_the_run_says_when_to_create_it():
    def scenario(kernel):
        async def cpu0():
            alloc_workqueue(kernel, "late_wq")

        return [cpu0]

    v = found(scenario, schedules=1)
    assert v.kind == "assertion", v.message
    assert "during the run" in v.message and "building the scenario or at boot" in v.message


def test_a_work_that_returns_with_a_lock_held_is_reported():
    def scenario(kernel):
        lock = SpinLock("dev->lock")
        wq = alloc_workqueue(kernel, "dev_wq")

        async def leaky(work):
            await spin_lock(lock)

        work = WorkStruct("&dev->work", leaky)

        async def cpu0():
            await queue_work(wq, work)

        return [cpu0]

    v = found(scenario, schedules=5)
    assert v.kind == "lock-held-at-exit", v.message
    assert "&dev->lock held" in v.message and "BUG: workqueue leaked atomic, lock or RCU" in v.splat


def test_queueing_on_a_destroyed_workqueue_warns():
    def scenario(kernel):
        dev = Dev(kernel)

        async def cpu0():
            await queue_work(dev.wq, dev.work)
            await destroy_workqueue(dev.wq)
            assert dev.count.value == 1  # drained: the work ran
            await queue_work(dev.wq, dev.work)

        return [cpu0]

    v = found(scenario, schedules=5)
    assert v.kind == "assertion" and "being destroyed" in v.message, v.message


def test_teardown_flush_runs_the_work_itself():
    """No kworker runs after the CPUs: a teardown flush runs the queued work inline."""

    def scenario(kernel):
        dev = Dev(kernel)

        async def remove():
            await queue_work(dev.wq, dev.work)
            assert await flush_work(dev.work)
            assert dev.count.value == 1

        kernel.add_teardown(remove)

        async def cpu0():
            pass

        return [cpu0]

    assert_clean(scenario, seeds=range(1), schedules=3)


def test_a_work_blocked_forever_is_reported_when_the_run_ends():
    """Nobody waits for the kworker, so no CPU deadlocks: the hung task is reported at the end."""

    def scenario(kernel):
        done = Completion("dev->done")
        wq = alloc_workqueue(kernel, "dev_wq")

        async def fn(work):
            await wait_for_completion(done)  # nobody completes it

        work = WorkStruct("&dev->work", fn)

        async def cpu0():
            await queue_work(wq, work)

        return [cpu0]

    v = found(scenario, schedules=5)
    assert v.kind == "deadlock", describe_v(v)
    assert "kworker/dev_wq in &dev->work" in v.message, v.message
    assert "INFO: task kworker/dev_wq blocked for more than 120 seconds." in v.splat


def test_queue_work_from_a_hard_irq_handler():
    """The top half defers to process context: the work may sleep."""

    def scenario(kernel):
        workqueue_init(kernel)
        m, data = Mutex("dev->mutex"), Shared("dev->data", 0)

        async def fn(work):
            await mutex_lock(m)
            await data.store(await data.load() + 1)
            mutex_unlock(m)

        work = WorkStruct("&dev->irq_work", fn)

        async def handler(irq, dev_id):
            await schedule_work(work)
            return IRQ_HANDLED

        request_irq(kernel, 11, handler, 0, "dev", None)

        async def cpu0():
            raise_irq(kernel, 11)
            await mutex_lock(m)
            await data.store(await data.load() + 1)
            mutex_unlock(m)

        return [cpu0, cpu0]

    assert_clean(scenario, seeds=range(2))
