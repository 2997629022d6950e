"""RCU (kernel/rcu): grace periods wait for the readers that were there, callbacks
run after them, and freeing an object readers may still hold is the
use-after-free KASAN reports; sleeping in a read-side section is found."""

import pytest

import stress

from .verdicts import describe, describe_v, verdicts
from model.kernel import (
    GFP_KERNEL,
    IRQ_HANDLED,
    Kernel,
    Shared,
    call_rcu,
    kfree,
    kfree_rcu,
    kobj_read,
    kzalloc,
    msleep,
    raise_irq,
    rcu_assign_pointer,
    rcu_barrier,
    rcu_dereference,
    rcu_dereference_protected,
    rcu_read_lock,
    rcu_read_unlock,
    request_irq,
    set_current,
    synchronize_rcu,
)
from model.kernel.core import ModelBug, _current

SCHEDULES = 100

search, assert_clean, found = verdicts(SCHEDULES)


# -- the update/read pattern ----------------------------------------------------------------


def update(mode):
    """Readers dereference ``gp`` and read the object; the updater unpublishes it
    and frees it: ``kfree`` at once (the bug), after ``synchronize_rcu``, or with
    ``kfree_rcu``."""

    def scenario(kernel):
        gp = Shared("gp", None)
        box = {}

        async def boot():
            box["obj"] = await kzalloc(64, GFP_KERNEL, tag="foo", value=1)
            await rcu_assign_pointer(gp, box["obj"])

        async def reader():
            rcu_read_lock()
            p = await rcu_dereference(gp)
            if p is not None:
                assert await kobj_read(p) == 1
            rcu_read_unlock()

        async def updater():
            old = await rcu_dereference_protected(gp)
            await rcu_assign_pointer(gp, None)
            if mode == "kfree":
                kfree(old)  # readers may still hold it
            elif mode == "synchronize_rcu":
                await synchronize_rcu()
                kfree(old)
            else:
                kfree_rcu(old)

        async def check():
            assert box["obj"].freed  # kfree_rcu's callback ran during the run

        kernel.add_setup(boot)
        kernel.add_teardown(check)
        return [reader, updater, reader]

    return scenario


def test_kfree_without_a_grace_period_is_a_use_after_free():
    """Found when a reader is in the window; over several seeds, not on one lucky one."""
    hits = 0
    for seed in range(8):
        r = search(update("kfree"), seed=seed, schedules=25)
        if r.violations:
            v = r.violations[0]
            assert v.kind == "invalid-access", describe(r)
            assert v.message.startswith("use-after-free read of kmalloc(64, "), v.message
            assert "freed by CPU1" in v.message, v.message
            assert "BUG: KASAN: use-after-free in reader" in v.splat, v.splat
            hits += 1
    assert hits >= 3, f"found in {hits} of 8 seeds"


@pytest.mark.parametrize("mode", ["synchronize_rcu", "kfree_rcu"])
def test_freeing_after_a_grace_period_is_clean(mode):
    assert_clean(update(mode))


def test_fields_written_after_synchronize_rcu_do_not_race_with_old_readers():
    """Readers' accesses before their rcu_read_unlock happen before synchronize_rcu returns."""

    def scenario(grace):
        def build(kernel):
            gp, field = Shared("gp", None), Shared("foo->a", 1)

            async def boot():
                await rcu_assign_pointer(gp, field)

            async def reader():
                rcu_read_lock()
                p = await rcu_dereference(gp)
                if p is not None:
                    await p.load()
                rcu_read_unlock()

            async def updater():
                await rcu_assign_pointer(gp, None)
                if grace:
                    await synchronize_rcu()
                await field.store(0)

            kernel.add_setup(boot)
            return [reader, updater]

        return build

    assert_clean(scenario(True))
    v = found(scenario(False))
    assert v.kind == "data-race", describe_v(v)


# -- grace-period semantics -------------------------------------------------------------------


def grace_period_waits_for_old_readers(kernel):
    """The reader counts its finished sections; a grace period (synchronize_rcu or a
    callback) that started while it was inside one ends after that one ended."""
    st = {"inside": False, "ended": 0}

    async def reader():
        for _ in range(2):
            rcu_read_lock()
            st["inside"] = True
            await kobj_read(obj[0])
            st["inside"] = False
            st["ended"] += 1
            rcu_read_unlock()

    obj = []

    async def boot():
        obj.append(await kzalloc(8, GFP_KERNEL, tag="o", value=0))

    def expect_after(inside, ended):
        assert not inside or st["ended"] > ended, (inside, ended, st)

    async def cb(head):
        expect_after(*head)

    async def updater():
        for _ in range(2):
            at = (st["inside"], st["ended"])
            call_rcu(at, cb)
            at = (st["inside"], st["ended"])
            await synchronize_rcu()
            expect_after(*at)

    async def remove():
        kfree(obj[0])

    kernel.add_setup(boot)
    kernel.add_teardown(remove)
    return [reader, updater]


def test_grace_periods_wait_for_the_readers_that_were_there():
    assert_clean(grace_period_waits_for_old_readers)


def test_nested_and_interrupt_readers_are_clean():
    """rcu_read_lock is a recursive read for lockdep: nesting, and a reader in a hard
    IRQ handler on a CPU inside a read-side section, are fine."""

    def scenario(kernel):
        gp = Shared("gp", None)

        async def handler(irq, dev_id):
            rcu_read_lock()
            await rcu_dereference(gp)
            rcu_read_unlock()
            return IRQ_HANDLED

        request_irq(kernel, 11, handler, 0, "dev", None)

        async def cpu0():
            raise_irq(kernel, 11)
            rcu_read_lock()
            rcu_read_lock()
            await rcu_dereference(gp)
            rcu_read_unlock()
            await rcu_dereference(gp)
            rcu_read_unlock()
            await synchronize_rcu()

        return [cpu0, cpu0]

    assert_clean(scenario, seeds=range(2))


# -- misuse -------------------------------------------------------------------------------


def _sleeping_reader(sleep):
    def scenario(kernel):
        async def cpu0():
            rcu_read_lock()
            await sleep()
            rcu_read_unlock()

        return [cpu0]

    return scenario


def test_synchronize_rcu_inside_a_read_side_section_is_sleep_in_atomic():
    v = found(_sleeping_reader(synchronize_rcu), schedules=3)
    assert v.kind == "sleep-in-atomic", describe_v(v)
    assert v.message.startswith("synchronize_rcu "), v.message


def test_without_lockdep_it_waits_for_itself():
    v = found(_sleeping_reader(synchronize_rcu), schedules=3, checkers=["race"])
    assert v.kind == "deadlock", describe_v(v)
    assert "synchronize_rcu() (readers: CPU0)" in v.message


def test_msleep_inside_a_read_side_section_is_sleep_in_atomic():
    v = found(_sleeping_reader(lambda: msleep(1)), schedules=3)
    assert v.kind == "sleep-in-atomic", describe_v(v)


def test_returning_inside_a_read_side_section_is_reported():
    def scenario(kernel):
        async def cpu0():
            rcu_read_lock()

        return [cpu0]

    v = found(scenario, schedules=3)
    assert v.kind == "lock-held-at-exit", describe_v(v)
    assert "rcu_read_lock" in v.message


def test_rcu_dereference_outside_a_read_side_section_is_suspicious():
    def scenario(kernel):
        gp = Shared("gp", None)

        async def cpu0():
            await rcu_dereference(gp)

        return [cpu0]

    v = found(scenario, schedules=3)
    assert v.kind == "assertion", describe_v(v)
    assert "suspicious rcu_dereference_check() usage" in v.message


# -- callbacks -------------------------------------------------------------------------------


def test_chained_callbacks_end_the_run_and_rcu_barrier_runs_the_rest():
    """Two chains of callbacks each queueing the next, ten deep: the tick stops
    after MAX_TICK_DEPTH generations, the run ends, and teardown's rcu_barrier
    invokes what is left."""

    def scenario(kernel):
        calls = []

        async def cb(n):
            calls.append(n)
            if n < 10:
                call_rcu(n + 1, cb)

        async def cpu0():
            call_rcu(1, cb)

        async def remove():
            assert len(calls) >= 4  # both chains, two generations each, ran during the run
            while len(calls) < 20:
                await rcu_barrier()
            assert sorted(calls) == sorted(list(range(1, 11)) * 2)

        kernel.add_teardown(remove)
        return [cpu0, cpu0]

    assert_clean(scenario, seeds=range(2), schedules=40)


async def test_rcu_barrier_without_a_scheduler_invokes_the_callbacks():
    kernel = Kernel()
    cpu = kernel.add_cpu()
    token = set_current(cpu)
    try:
        obj = await kzalloc(8, GFP_KERNEL, tag="o")
        kfree_rcu(obj)
        assert not obj.freed
        await rcu_barrier()
        assert obj.freed
        rcu_read_lock()
        kobj = await kzalloc(8, GFP_KERNEL, tag="p")
        kfree_rcu(kobj)
        rcu_read_unlock()
        await rcu_barrier()
        assert kobj.freed
        rcu_read_lock()
        with pytest.raises(ModelBug, match="would wait forever"):
            await synchronize_rcu()  # waits for its own read-side section
        rcu_read_unlock()
    finally:
        _current.reset(token)
