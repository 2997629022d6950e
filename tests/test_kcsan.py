"""Marked accesses, ordering and softirq context in the race checker (stress.race).

Selftests in the style of KCSAN's kernel/kcsan/kcsan_test.c and the LKMM's
litmus tests: each scenario is searched over several seeds, a clean one must
stay clean over all of them (and over every schedule of a bounded
exhaustive search), a racy one must be found for most seeds.

* two marked accesses never race; a marked and a plain one do; two plain
  ones do (the report says which side was marked, as KCSAN's ``(marked)``);
* message passing: a store-release read by a load-acquire orders the plain
  data; ``WRITE_ONCE``/``READ_ONCE`` on the flag do not; ``smp_mb()`` on both
  sides does (through the flag's reads-from), on one side only does not;
* softirq context: a softirq handler races with its CPU's process context
  unless that context disables BH (or interrupts) around its access;
  ``local_bh_disable`` on another CPU excludes nothing.
"""

import pytest

import stress
from model.kernel import (
    IRQ_HANDLED,
    READ_ONCE,
    WRITE_ONCE,
    Shared,
    local_bh_disable,
    local_bh_enable,
    local_irq_disable,
    local_irq_enable,
    open_softirq,
    raise_irq,
    raise_softirq_irqoff,
    request_irq,
    smp_load_acquire,
    smp_mb,
    smp_store_release,
)
from model.kernel.core import Kernel
from model.kernel.softirq import NET_RX_SOFTIRQ
from model.kernel.shared import ACQUIRE, MARKED, RELEASE
from stress.race import RaceDetector

SEEDS = range(6)
IRQ = 7


def _search(scenario, seed, schedules=40, strategy="pct", **kw):
    return stress.explore(scenario, strategy=strategy, schedules=schedules, seed=seed, shrink=False, **kw)


def assert_clean(scenario, schedules=40):
    """No violation for any seed, nor in any schedule with at most 2 preemptions."""
    for seed in SEEDS:
        r = _search(scenario, seed, schedules)
        assert not r.violations, (seed, r.violations[0].message)
    r = _search(scenario, 0, schedules=2000, strategy="exhaustive", bound=2)
    assert not r.violations, r.violations[0].message


def found_races(scenario, schedules=40):
    """The first violation of each seed that found one (every one must be a data-race)."""
    found = []
    for seed in SEEDS:
        r = _search(scenario, seed, schedules)
        if r.violations:
            v = r.violations[0]
            assert v.kind == "data-race", (seed, v.kind, v.message)
            found.append(v)
    return found


# -- marked vs plain --------------------------------------------------------------------


def _flag(write, read):
    """CPU0 writes ``dev->flag`` three times with ``write``, CPU1 reads it three times with ``read``."""

    def scenario(kernel):
        flag = Shared("dev->flag", 0)

        async def writer():
            for i in range(1, 4):
                await write(flag, i)

        async def reader():
            for _ in range(3):
                await read(flag)

        return [writer, reader]

    return scenario


async def _plain_store(cell, v):
    await cell.store(v)


async def _plain_load(cell):
    return await cell.load()


def test_write_once_vs_read_once_is_clean():
    assert_clean(_flag(WRITE_ONCE, READ_ONCE))


def test_write_once_vs_plain_read_is_a_data_race_naming_the_marked_side():
    found = found_races(_flag(WRITE_ONCE, _plain_load))
    assert len(found) >= 5, len(found)
    for v in found:
        # exactly one side marked, and the report says which
        assert "write (marked) by CPU0" in v.message and "read by CPU1" in v.message, v.message
        assert "write (marked) to dev->flag by CPU0:" in v.splat
        assert "\nread to dev->flag by CPU1:" in v.splat


def test_plain_write_vs_read_once_is_a_data_race():
    """The conflict CONFIG_KCSAN_ASSUME_PLAIN_WRITES_ATOMIC=y would hide: reported (the LKMM's rule)."""
    found = found_races(_flag(_plain_store, READ_ONCE))
    assert len(found) >= 5, len(found)
    assert all("read (marked) by CPU1" in v.message and "write by CPU0" in v.message for v in found)


def test_plain_vs_plain_is_a_data_race_with_unchanged_text():
    found = found_races(_flag(_plain_store, _plain_load))
    assert len(found) >= 5, len(found)
    assert all("(marked)" not in v.message and "(marked)" not in v.splat for v in found)


# The cell keeps every access a later one may race with: a detector driven by hand,
# in an order no search has to stumble upon.


def _detector(ncpus=3):
    kernel = Kernel()
    cpus = [kernel.add_cpu() for _ in range(ncpus)]
    reports = []
    kernel.report = lambda kind, message, **detail: reports.append((kind, message))
    return RaceDetector(kernel), cpus, reports


def test_a_plain_write_races_with_a_marked_write_that_a_later_marked_write_did_not_order():
    """CPU0 and CPU1 WRITE_ONCE (concurrent: fine); CPU2, ordered after CPU1
    only, stores plainly: a race with CPU0's write, which the last write
    (CPU1's) alone would hide."""
    d, (c0, c1, c2), reports = _detector()
    cell, sync = Shared("dev->state", 0), object()
    d.access(c0, cell, True, MARKED)
    d.access(c1, cell, True, MARKED)
    assert reports == []
    d.sync(c1, sync)
    d.sync(c2, sync)
    d.access(c2, cell, True)
    assert reports == [("data-race", "write by CPU2 races with write (marked) by CPU0 on dev->state")]


def test_a_plain_write_races_with_a_marked_read_that_a_later_marked_write_did_not_order():
    d, (c0, c1, c2), reports = _detector()
    cell, sync = Shared("dev->state", 0), object()
    d.access(c0, cell, False, MARKED)
    d.access(c1, cell, True, MARKED)
    d.sync(c1, sync)
    d.sync(c2, sync)
    d.access(c2, cell, True)
    assert reports == [("data-race", "write by CPU2 races with read (marked) by CPU0 on dev->state")]


def test_a_plain_write_after_everything_it_is_ordered_after_is_clean():
    """The same, with CPU0 ordered before CPU2 too: nothing to report, and the
    plain write subsumes what came before (the next plain read of CPU1, ordered
    after it, is clean)."""
    d, (c0, c1, c2), reports = _detector()
    cell, sync = Shared("dev->state", 0), object()
    d.access(c0, cell, False, MARKED)
    d.sync(c0, sync)
    d.access(c1, cell, True, MARKED)
    d.sync(c1, sync)
    d.sync(c2, sync)
    d.access(c2, cell, True)
    assert len(d.cells[cell].hist) == 1  # the plain write is all a later access needs
    d.sync(c2, sync)
    d.sync(c1, sync)
    d.access(c1, cell, False)
    assert reports == []


def test_an_acquire_joins_only_the_store_it_reads():
    """smp_store_release by CPU0, then a plain store by CPU1 (a race, reported),
    then CPU2's load-acquire reads CPU1's value: it is not ordered after CPU0."""
    d, (c0, c1, c2), reports = _detector()
    data, flag = Shared("dev->data", 0), Shared("dev->ready", 0)
    d.access(c0, data, True)
    d.access(c0, flag, True, MARKED | RELEASE)
    d.access(c1, flag, True)
    d.access(c2, flag, False, MARKED | ACQUIRE)
    d.access(c2, data, False)
    assert [m for _, m in reports] == [
        "write by CPU1 races with write (marked) by CPU0 on dev->ready",
        "read (marked) by CPU2 races with write by CPU1 on dev->ready",
        "read by CPU2 races with write by CPU0 on dev->data",
    ]


# -- message passing --------------------------------------------------------------------------


def _message_passing(publish, poll, writer_mb=False, reader_mb=False):
    """CPU0 fills ``dev->data`` (plain) and sets ``dev->ready`` with ``publish``;
    CPU1 polls the flag with ``poll`` and, once set, reads the data (plain)."""

    def scenario(kernel):
        data = Shared("dev->data", 0)
        ready = Shared("dev->ready", 0)

        async def writer():
            await data.store(42)
            if writer_mb:
                smp_mb()
            await publish(ready, 1)

        async def reader():
            for _ in range(3):
                if await poll(ready):
                    if reader_mb:
                        smp_mb()
                    if await data.load() != 42:
                        kernel.warn("dev->ready set but dev->data is stale")
                    return

        return [writer, reader]

    return scenario


def test_store_release_load_acquire_orders_the_data():
    assert_clean(_message_passing(smp_store_release, smp_load_acquire))


def test_write_once_read_once_flag_does_not_order_the_data():
    found = found_races(_message_passing(WRITE_ONCE, READ_ONCE))
    assert len(found) >= 5, len(found)
    assert all(v.message.endswith("on dev->data") for v in found), [v.message for v in found]


def test_release_without_acquire_does_not_order_the_data():
    found = found_races(_message_passing(smp_store_release, READ_ONCE))
    assert len(found) >= 5, len(found)
    assert all(v.message.endswith("on dev->data") for v in found)


def test_smp_mb_on_both_sides_orders_through_the_flag():
    assert_clean(_message_passing(WRITE_ONCE, READ_ONCE, writer_mb=True, reader_mb=True))


@pytest.mark.parametrize("writer_mb, reader_mb", [(True, False), (False, True)])
def test_smp_mb_on_one_side_orders_nothing(writer_mb, reader_mb):
    found = found_races(_message_passing(WRITE_ONCE, READ_ONCE, writer_mb, reader_mb))
    assert len(found) >= 5, len(found)
    assert all(v.message.endswith("on dev->data") for v in found)


# -- softirq context --------------------------------------------------------------------------


def _softirq_vs_task(protect, ran=None, cpus=1):
    """A hard IRQ raises NET_RX; its handler (softirq context, at irq_exit)
    bumps ``dev->rx`` plainly; CPU0's task bumps it too, inside
    ``protect(body)``.  With ``cpus=2`` the task runs on CPU1 and CPU0 only
    raises the IRQ and works on its own cell."""

    def scenario(kernel):
        rx = Shared("dev->rx", 0)
        mine = Shared("cpu0.work", 0)

        async def hardirq(irq, dev_id):
            raise_softirq_irqoff(NET_RX_SOFTIRQ)
            return IRQ_HANDLED

        async def net_rx_action():
            if ran is not None:
                ran.append(1)
            await rx.store(await rx.load() + 1)

        request_irq(kernel, IRQ, hardirq, name="dev")
        open_softirq(kernel, NET_RX_SOFTIRQ, net_rx_action)

        async def bump():
            await rx.store(await rx.load() + 1)

        async def task():
            if cpus == 1:
                raise_irq(kernel, IRQ)
            await protect(bump)

        async def raiser():
            raise_irq(kernel, IRQ)
            for i in range(4):
                await mine.store(i)

        return [task] if cpus == 1 else [raiser, task]

    return scenario


async def _bare(body):
    await body()


async def _bh_off(body):
    local_bh_disable()
    await body()
    await local_bh_enable()


async def _irqs_off(body):
    local_irq_disable()
    await body()
    await local_irq_enable()


def test_softirq_vs_task_without_bh_disable_is_a_data_race():
    found = found_races(_softirq_vs_task(_bare))
    assert len(found) >= 5, len(found)
    for v in found:
        assert "CPU0 softirq" in v.message and "dev->rx" in v.message, v.message
        assert "by interrupt on CPU0:" in v.splat  # KCSAN: in_task() is false in a softirq


def test_softirq_vs_task_with_bh_disabled_is_clean():
    ran = []
    assert_clean(_softirq_vs_task(_bh_off, ran))
    assert ran  # the handler did run (deferred to local_bh_enable or before the section)


def test_softirq_vs_task_with_irqs_disabled_is_clean():
    """Interrupts off exclude this CPU's softirqs too."""
    ran = []
    assert_clean(_softirq_vs_task(_irqs_off, ran))
    assert ran


def test_bh_disabled_on_another_cpu_excludes_nothing():
    found = found_races(_softirq_vs_task(_bh_off, cpus=2), schedules=80)
    assert len(found) >= 4, len(found)
    assert all("softirq" in v.message and "dev->rx" in v.message for v in found)
