"""Stacks in reports keep every frame of user and model code, as ``function (path:LINE)``."""

import inspect
import json
import os
import sys
import textwrap

import pytest
import trio

import stress
from model.kernel import Kernel, Shared, SpinLock, set_current, spin_lock, spin_unlock
from model.kernel.stacks import coro_stack, frame_where, model_stack
from stress.choosers import Replay
from stress.engine import run_schedule
from stress.report import dumps


def line_of(fn, needle):
    """The line number of the first line of ``fn`` containing ``needle``."""
    lines, first = inspect.getsourcelines(fn)
    for i, text in enumerate(lines):
        if needle in text:
            return first + i
    raise AssertionError(f"{needle!r} not in {fn.__name__}")


# -- an ABBA deadlock, two levels of user code deep ----------------------------------------


async def take_both(first, second):
    await spin_lock(first)
    await spin_lock(second)
    spin_unlock(second)
    spin_unlock(first)


def abba(kernel):
    a, b = SpinLock("dev->lock_a"), SpinLock("dev->lock_b")

    async def cpu_ab():
        await take_both(a, b)

    async def cpu_ba():
        await take_both(b, a)

    return [cpu_ab, cpu_ba]


def _deadlock(checkers):
    result = stress.explore(abba, strategy="random", schedules=500, seed=0, checkers=checkers)
    assert result.violations, "no deadlock found"
    v = result.violations[0]
    assert v.kind == "deadlock", v.splat
    return v


@pytest.mark.parametrize("checkers", [[], ["race", "leak"]], ids=["no-checkers", "some-checkers"])
def test_deadlock_reports_both_stacks_with_user_frames(checkers):
    v = _deadlock(checkers)
    stacks = v.report["violation"]["stacks"]
    assert set(stacks) == {"CPU0", "CPU1"}, stacks
    inner = line_of(take_both, "await spin_lock(second)")
    for cpu, stack in stacks.items():
        assert stack, (cpu, stacks)
        # innermost first: the primitive, the helper at its line, then the CPU body
        assert stack[0] == "spin_lock", stack
        assert stack[1] == f"take_both (tests/test_stacks.py:{inner})", stack
        assert stack[2].startswith("cpu_") and stack[2].endswith(")"), stack
    assert stacks["CPU0"][2] == f"cpu_ab (tests/test_stacks.py:{line_of(abba, 'take_both(a, b)')})"
    assert stacks["CPU1"][2] == f"cpu_ba (tests/test_stacks.py:{line_of(abba, 'take_both(b, a)')})"
    assert len(stacks["CPU0"]) == len(stacks["CPU1"]) == 3


def test_deadlock_report_is_the_same_bytes_twice():
    a, b = _deadlock([]), _deadlock([])
    assert dumps(a.report) == dumps(b.report)


# -- a scenario in a module outside the packages ------------------------------------------

USER_MODULE = '''
from model.kernel import SpinLock, spin_lock, spin_unlock


async def grab(lock, other):
    await spin_lock(lock)
    await spin_lock(other)
    spin_unlock(other)
    spin_unlock(lock)


def scenario(kernel):
    a, b = SpinLock("u->a"), SpinLock("u->b")

    async def left():
        await grab(a, b)

    async def right():
        await grab(b, a)

    return [left, right]


def boom(x):
    return 1 // x


def crashing(kernel):
    async def cpu():
        boom(0)

    return [cpu]
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    name = "iommu_stress_user_scen"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    mod = __import__(name)
    yield mod, tmp_path
    sys.modules.pop(name, None)


def test_user_module_outside_the_packages_keeps_its_frames(user_module):
    mod, tmp_path = user_module
    result = stress.explore(mod.scenario, strategy="random", schedules=500, seed=0, checkers=[])
    v = result.violations[0]
    assert v.kind == "deadlock"
    stacks = v.report["violation"]["stacks"]
    grab = line_of(mod.grab, "await spin_lock(other)")
    f = "iommu_stress_user_scen.py"
    assert stacks["CPU0"] == ["spin_lock", f"grab ({f}:{grab})", f"left ({f}:{line_of(mod.scenario, 'grab(a, b)')})"]
    assert stacks["CPU1"] == ["spin_lock", f"grab ({f}:{grab})", f"right ({f}:{line_of(mod.scenario, 'grab(b, a)')})"]
    # no absolute path of the temporary directory (or of the checkout) in the report
    text = dumps(v.report)
    assert str(tmp_path) not in text
    assert "/work/" not in json.dumps(v.report["violation"])


def test_crash_keeps_the_user_frames(user_module):
    mod, _ = user_module
    result = stress.explore(mod.crashing, strategy="random", schedules=5, seed=0, checkers=[])
    v = result.violations[0]
    assert v.kind == "assertion" and "ZeroDivisionError" in v.message
    f = "iommu_stress_user_scen.py"
    assert v.report["violation"]["stacks"]["CPU0"] == [
        f"boom ({f}:{line_of(mod.boom, '1 // x')})",
        f"cpu ({f}:{line_of(mod.crashing, 'boom(0)')})",
    ]


def test_assertion_in_scenario_keeps_the_user_frame():
    def check(ok):
        assert ok, "dev->state is wrong"

    def scenario(kernel):
        async def cpu():
            check(False)

        return [cpu]

    v = stress.explore(scenario, strategy="random", schedules=1, seed=0, checkers=[]).violations[0]
    assert v.kind == "assertion" and "dev->state is wrong" in v.message
    assert v.report["violation"]["stacks"]["CPU0"] == [
        f"check (tests/test_stacks.py:{line_of(check, 'assert ok')})",
        f"cpu (tests/test_stacks.py:{line_of(scenario, 'check(False)')})",
    ]


# -- a stack taken inside the scheduler: the livelocked CPU -------------------------------


def test_livelock_stack_is_the_cpus_own():
    flag = Shared("dev->flag", 0)

    async def poll():
        while not await flag.load():
            pass

    def scenario(kernel):
        async def waiter():
            await poll()

        return [waiter]

    out = run_schedule(scenario, Replay([]), checkers=[], max_steps=50)
    assert out.kind == "livelock"
    assert out.violation["stacks"]["CPU0"] == [
        f"poll (tests/test_stacks.py:{line_of(poll, 'flag.load()')})",
        f"waiter (tests/test_stacks.py:{line_of(scenario, 'await poll()')})",
    ]


# -- the walks and the paths ---------------------------------------------------------------


def test_model_stack_without_an_engine():
    """Straight through (no scheduler): the test's own frames, up to Trio."""

    async def inner():
        return model_stack(1)

    async def main():
        set_current(Kernel().add_cpu())
        return await inner()

    stack = trio.run(main)
    assert stack == (
        f"inner (tests/test_stacks.py:{line_of(inner, 'model_stack(1)')})",
        f"main (tests/test_stacks.py:{line_of(main, 'await inner()')})",
    )


def test_coro_stack_of_a_suspended_chain():
    async def leaf():
        await trio.sleep(0)

    async def root():
        await leaf()

    coro = root()
    coro.send(None)  # suspended in trio.sleep(0): the Trio frames are left out
    try:
        assert coro_stack(coro) == (
            f"leaf (tests/test_stacks.py:{line_of(leaf, 'trio.sleep(0)')})",
            f"root (tests/test_stacks.py:{line_of(root, 'await leaf()')})",
        )
    finally:
        coro.close()


def test_frame_where_is_short_and_stable(tmp_path):
    import model.drivers.vsi_fixed as vf

    assert frame_where(vf.__file__, vf.__name__) == "model/drivers/vsi_fixed.py"
    assert frame_where(stress.__file__, "stress") == "stress/__init__.py"
    outside = tmp_path / "pkg" / "drivers.py"
    assert frame_where(str(outside), "pkg.drivers") == "pkg/drivers.py"
    assert frame_where(str(outside), "drivers") == "drivers.py"
    assert frame_where(str(tmp_path / "pkg" / "__init__.py"), "pkg") == "pkg/__init__.py"
    # a module name that does not match the file: its parent directory and name
    assert frame_where(str(outside), "__main__") == "pkg/drivers.py"
    assert frame_where(str(outside), "something.else") == "pkg/drivers.py"
    assert frame_where("<string>", "x") == "<string>"
    # an installed package (a virtualenv inside the checkout or the current directory): by module name
    venv = os.path.join(os.getcwd(), ".venv", "lib", "python3.11", "site-packages", "plug", "drv.py")
    assert frame_where(venv, "plug.drv") == "plug/drv.py"
