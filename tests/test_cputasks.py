"""The CPU tasks a Trio run keeps across schedules (stress.cputasks).

A search borrows the same Trio tasks for every schedule: they must come
back idle after any ending (the end, a violation, a scenario's error, an
exception that is not a finding), carry nothing of the run they ran, and
never change what a schedule does.
"""

import signal

import pytest
import trio

from model.kernel import Shared, SpinLock, current, spin_lock, spin_unlock
from stress.choosers import pct_chooser
from stress.cputasks import _POOL
from stress.engine import explore
from stress.errors import ScenarioError
from stress.examples import abba
from stress.run import run_schedule_async


def _counter(kernel, cpus=2):
    lock, cell = SpinLock("lock"), Shared("count", 0)

    async def body():
        await spin_lock(lock)
        await cell.store(cell.value + 1)
        spin_unlock(lock)

    return [body] * cpus


def _not_async(kernel):
    def body():
        return None

    return [body, body]


class _Exit(BaseException):
    """Not an Exception: what a CPU body's sys.exit() would raise."""


def _exits(kernel):
    async def body():
        await Shared("x", 0).store(1)
        raise _Exit

    async def other():
        await Shared("y", 0).store(1)

    return [other, body]


async def _run_many(scenarios):
    """Run each scenario once in this Trio run; what each run gave, and the pool's size."""
    seen = []
    for i, scenario in enumerate(scenarios):
        try:
            out = await run_schedule_async(scenario, pct_chooser(0, i, 3, 50), release=True)
            seen.append(out.kind)
        except (ScenarioError, _Exit) as exc:
            seen.append(type(exc).__name__)
    return seen, _POOL.get().size, len(_POOL.get().idle)


def test_tasks_are_kept_across_schedules_and_come_back_after_every_ending():
    scenarios = [_counter, abba, _not_async, _exits, lambda k: _counter(k, 4), _counter, abba]
    seen, size, idle = trio.run(_run_many, scenarios)
    assert seen[2] == "ScenarioError" and seen[3] == "_Exit"
    assert seen[0] is None and seen[5] is None
    assert seen[1] == seen[6] == "lock-inversion"  # a run that a violation ended
    assert size == 4  # the most CPUs any schedule had: spawned once each
    assert idle == size  # every one idle again: none stuck in a schedule that ended


def test_an_exception_that_is_not_a_finding_leaves_the_run_as_itself():
    with pytest.raises(_Exit):
        trio.run(run_schedule_async, _exits, pct_chooser(0, 0, 3, 50))


def test_an_idle_task_holds_no_cpu_of_the_run_it_ran():
    async def main():
        await run_schedule_async(_counter, pct_chooser(0, 0, 3, 50), release=True)
        pool = _POOL.get()
        return [(t.cpu, t.job) for t in pool.idle]

    assert trio.run(main) == [(None, None), (None, None)]


def test_a_cpu_body_sees_its_own_cpu_as_current():
    pairs = []

    def scenario(kernel):
        async def body():
            before = current()
            await Shared("c", 0).store(1)  # a point: the tasks switch
            pairs.append((before.id, current().id))

        return [body, body, body]

    async def main():
        for i in range(3):
            await run_schedule_async(scenario, pct_chooser(0, i, 3, 50), release=True)

    trio.run(main)
    assert len(pairs) == 9
    assert all(a == b for a, b in pairs)
    assert sorted(a for a, _ in pairs) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_the_same_search_twice_gives_the_same_schedules():
    # the second search in a Trio run of its own borrows tasks spawned afresh;
    # a schedule never depends on which Trio task runs which CPU
    a = explore(abba, strategy="pct", schedules=40, seed=3, shrink=False, keep_going=True)
    b = explore(abba, strategy="pct", schedules=40, seed=3, shrink=False, keep_going=True)
    assert a.violations and [v.report for v in a.violations] == [v.report for v in b.violations]
    assert a.points == b.points


def test_ctrl_c_in_a_cpu_body_stops_the_search_at_once_as_a_keyboard_interrupt():
    # The CPU tasks are Trio system tasks (shielded from KeyboardInterrupt):
    # Trio raises it in the task that runs the schedule, which must stop the
    # run there, not after the search's last schedule.
    steps = []

    def scenario(kernel):
        cell = Shared("c", 0)

        async def body():
            signal.raise_signal(signal.SIGINT)
            for i in range(2000):
                steps.append(i)
                await cell.store(i)

        async def other():
            for _ in range(2000):
                await cell.load()

        return [body, other]

    old = signal.signal(signal.SIGINT, signal.default_int_handler)  # Trio's own KI handling, as in a terminal
    try:
        with pytest.raises(KeyboardInterrupt):
            explore(scenario, strategy="pct", schedules=20, seed=0, shrink=False, checkers=[])  # nothing to find
    finally:
        signal.signal(signal.SIGINT, old)
    assert len(steps) < 100  # of the 40,000 the search would run
    assert not explore(_counter, strategy="pct", schedules=5, seed=0).found  # the next search runs as usual


def test_two_schedules_in_one_trio_run_at_once_each_get_their_own_tasks():
    # e.g. a pytest-trio test that runs two schedules in a nursery: neither
    # waits for the other's tasks to come back
    async def main():
        outs = []

        async def one(i):
            outs.append(await run_schedule_async(_counter, pct_chooser(0, i, 3, 50), release=True))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, 0)
            nursery.start_soon(one, 1)
        return outs, _POOL.get().size, len(_POOL.get().idle)

    outs, size, idle = trio.run(main)
    assert [o.kind for o in outs] == [None, None]
    assert size == idle == 4


def test_a_schedule_cancelled_while_its_tasks_start_gives_them_back():
    async def main():
        with trio.CancelScope() as scope:
            scope.cancel()  # cancelled before borrow's first wait for its fresh tasks
            await run_schedule_async(_counter, pct_chooser(0, 0, 3, 50), release=True)
        await trio.sleep(0)  # the fresh tasks start, and go idle
        out = await run_schedule_async(lambda k: _counter(k, 3), pct_chooser(0, 1, 3, 50), release=True)
        return scope.cancelled_caught, out.kind, _POOL.get().size, len(_POOL.get().idle)

    caught, kind, size, idle = trio.run(main)
    assert caught and kind is None
    assert size == idle == 3  # the two given back, one more for the third CPU
