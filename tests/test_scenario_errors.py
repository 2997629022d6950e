"""A CPU body that is not async, or awaits a plain call, is a ScenarioError, never a finding."""

import pytest

import stress
from model.kernel import Shared, SpinLock, spin_lock, spin_unlock
from stress.choosers import Replay
from stress.errors import ScenarioError


def plain_body(kernel):
    cell = Shared("cell", 0)

    async def good():
        await cell.store(1)

    def foo():  # forgot `async`
        return 3

    return [good, foo]


def awaits_plain_call(kernel):
    lock = SpinLock("dev->lock")
    other = Shared("other", 0)

    async def cpu0():
        await spin_lock(lock)
        await spin_unlock(lock)  # spin_unlock is not async

    async def cpu1():
        for i in range(3):
            await other.store(i)

    return [cpu0, cpu1]


def awaits_in_setup(kernel):
    lock = SpinLock("dev->lock")

    async def probe():
        await spin_lock(lock)
        await spin_unlock(lock)

    kernel.add_setup(probe)

    async def cpu():
        pass

    return [cpu]


@pytest.mark.parametrize("strategy", ["pct", "random", "exhaustive", "hypothesis"])
def test_body_not_async(strategy):
    with pytest.raises(ScenarioError) as info:
        stress.explore(plain_body, strategy=strategy, schedules=20, seed=0)
    msg = str(info.value)
    assert "CPU1 body" in msg and "foo returned 3, not a coroutine" in msg
    assert "declare it `async def`" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("strategy", ["pct", "random", "exhaustive", "hypothesis"])
def test_await_of_plain_call(strategy):
    with pytest.raises(ScenarioError) as info:
        stress.explore(awaits_plain_call, strategy=strategy, schedules=20, seed=0)
    msg = str(info.value)
    line = awaits_plain_call.__code__.co_firstlineno + 6  # the `await spin_unlock(lock)` line
    assert f"test_scenario_errors.py:{line}:" in msg, msg
    assert "drop the await: spin_unlock is not async" in msg
    assert "\n" not in msg


def test_await_of_plain_call_in_setup():
    with pytest.raises(ScenarioError, match="drop the await: spin_unlock is not async"):
        stress.run_schedule(awaits_in_setup, Replay([]))


def test_scenario_error_is_not_an_exception_group():
    """The error leaves the run as itself: no Trio ExceptionGroup reaches the user."""
    try:
        stress.run_schedule(awaits_plain_call, Replay([1, 0, 1]))
    except ScenarioError as e:
        assert not isinstance(e, BaseExceptionGroup)
    else:
        pytest.fail("no ScenarioError")


def test_other_type_errors_stay_findings():
    """A TypeError of the model or driver is an ``assertion`` finding, as before."""

    def scenario(kernel):
        async def cpu():
            len(None)

        return [cpu]

    result = stress.explore(scenario, strategy="pct", schedules=5, seed=0, shrink=False)
    assert [v.kind for v in result.violations] == ["assertion"]
