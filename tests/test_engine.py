"""The engine knows no driver: families, their own shrinkers, usage errors, honest replays."""

import subprocess
import sys
import textwrap

import pytest

import stress
from model.kernel import Shared, SpinLock, spin_lock, spin_unlock
from stress.engine import ReplayMismatch
from stress.errors import ScenarioError, UsageError
from stress.scenarios import concretize, target_of


# -- the target protocol --------------------------------------------------------------


def _racy(n):
    """``n`` CPUs that bump one unlocked counter."""

    def scenario(kernel):
        count = Shared("count", 0)

        async def inc():
            await count.store(await count.load() + 1)

        return [inc] * n

    scenario.target = {"scenario": f"toy:{n}"}
    return scenario


class Family:
    """A scenario family that is not a driver: schedule ``i`` runs ``2 + i % 3`` CPUs."""

    def __init__(self):
        self.shrunk = []

    def for_schedule(self, seed, index):
        scen = _racy(2 + index % 3)
        scen.shrink = self._shrinker(2 + index % 3)
        return scen, scen.target

    def _shrinker(self, n):
        def shrink(decisions, kind, opts):
            self.shrunk.append((n, kind))
            smaller = _racy(2)
            return smaller, list(decisions)

        return shrink


def test_family_builds_per_schedule_and_its_own_shrinker_runs():
    fam = Family()
    r = stress.explore(fam, strategy="random", schedules=50, seed=1)
    assert r.violations and r.violations[0].kind == "data-race"
    assert fam.shrunk and fam.shrunk[0][1] == "data-race"
    # the report names what the shrinker returned, not what was found
    assert r.violations[0].report["target"] == {"scenario": "toy:2"}


def test_concretize_and_target_of_plain_scenarios():
    scen = _racy(2)
    assert concretize(scen, 0, 5) == (scen, None)
    assert target_of(scen) == {"scenario": "toy:2"}
    from stress.examples import abba

    assert target_of(abba) == {"scenario": "stress.examples:abba"}


def test_engine_imports_no_driver_code():
    code = textwrap.dedent(
        """
        import sys, stress.engine, stress.run, stress.shrink
        bad = [m for m in sys.modules if m.startswith(("stress.workload", "stress.shrink_programs", "stress.targets", "model.drivers", "model.workloads", "strategies"))]
        print(bad)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- usage mistakes are not findings -----------------------------------------------------


def no_cpus(kernel):
    return []


def forgets_await(kernel):
    cell = Shared("stats->count", 0)

    async def body():
        cell.store(1)  # missing await: the store never happens

    return [body, body]


def test_empty_scenario_is_a_usage_error():
    with pytest.raises(ScenarioError, match="no CPU bodies"):
        stress.explore(no_cpus, schedules=3)


def test_forgotten_await_is_a_usage_error_naming_the_line():
    with pytest.raises(ScenarioError, match=r"test_engine\.py:\d+: coroutine Shared\.store\(\) was never awaited"):
        stress.explore(forgets_await, schedules=3)


def test_scenario_error_is_a_usage_error():
    assert issubclass(ScenarioError, UsageError)


# -- a replay that disagrees is an error ----------------------------------------------------

_RUNS = []


def first_run_only(kernel):
    """Racy the first time it is built, locked afterwards: state kept outside the run."""
    _RUNS.append(1)
    racy = len(_RUNS) == 1
    lock, count = SpinLock("l"), Shared("c", 0)

    async def inc():
        if not racy:
            await spin_lock(lock)
        await count.store(await count.load() + 1)
        if not racy:
            spin_unlock(lock)

    return [inc, inc]


def test_replay_that_disagrees_raises_naming_both_outcomes():
    _RUNS.clear()
    with pytest.raises(ReplayMismatch, match=r"found data-race.*replay ended in no violation"):
        stress.explore(first_run_only, strategy="random", schedules=1, seed=0)


# -- lockdep over the whole search -------------------------------------------------------------


class Alternating:
    """Schedule ``i`` takes A then B when ``i`` is even, B then A when odd: never both in one run."""

    def for_schedule(self, seed, index):
        order = ("A", "B") if index % 2 == 0 else ("B", "A")

        def scenario(kernel):
            locks = {"A": SpinLock("A"), "B": SpinLock("B")}

            async def body():
                await spin_lock(locks[order[0]])
                await spin_lock(locks[order[1]])
                spin_unlock(locks[order[1]])
                spin_unlock(locks[order[0]])

            return [body]

        scenario.target = {"scenario": f"tests.test_engine:alternating_{'ab' if index % 2 == 0 else 'ba'}"}
        return scenario, scenario.target


def alternating_ab(kernel):
    return Alternating().for_schedule(0, 0)[0](kernel)


def alternating_ba(kernel):
    return Alternating().for_schedule(0, 1)[0](kernel)


@pytest.mark.parametrize("strategy", ["pct", "random"])
def test_cycle_closed_across_schedules_is_a_lock_inversion(strategy):
    r = stress.explore(Alternating(), strategy=strategy, schedules=200, seed=0)
    assert [v.kind for v in r.violations] == ["lock-inversion"]
    rep = r.violations[0].report
    assert rep["schedule"] == 1
    assert [p["schedule"] for p in rep["prior"]] == [0]
    assert rep["prior"][0]["target"] == {"scenario": "tests.test_engine:alternating_ab"}
    assert "A -> B" in " ".join(rep["violation"]["stacks"]) and "B -> A" in " ".join(rep["violation"]["stacks"])
    # it replays honestly: the prior schedule first, then its own
    from stress.targets import replay_report

    assert replay_report(rep).kind == "lock-inversion"
    # ... and not without the prior schedule
    assert stress.replay_decisions(alternating_ba, rep["decisions"], checkers=rep["options"]["checkers"]).kind is None


def test_cross_schedule_can_be_turned_off():
    from stress.checkers import default_checkers

    names = [c for c in default_checkers() if c != "cross-schedule"]
    r = stress.explore(Alternating(), strategy="pct", schedules=200, seed=0, checkers=names)
    assert not r.violations and r.schedules == 200


def test_cross_schedule_report_replays_from_the_cli(tmp_path):
    from stress.cli import main
    from stress.report import write_report

    r = stress.explore(Alternating(), strategy="pct", schedules=10, seed=0)
    path = write_report(r.violations[0].report, str(tmp_path))
    assert main(["replay", path, "--json"]) == 1
    assert main(["replay", path, "--out", str(tmp_path / "again")]) == 1
    (again,) = [p for p in (tmp_path / "again").iterdir() if p.suffix == ".json"]
    assert again.read_bytes() == open(path, "rb").read()


def test_exhaustive_walks_one_program_of_a_driver_workload():
    """A family draws a program per schedule; the exhaustive search's tree is
    of one program (a new program under an old prefix was a bogus crash)."""
    from stress.workload import driver_scenario, workload_config

    result = stress.explore(driver_scenario("vsi-fixed", workload_config()), strategy="exhaustive", schedules=200, seed=0)
    assert not result.found, [v.message for v in result.violations]
    assert result.schedules == 200


def test_a_decision_out_of_range_is_an_engine_error_not_a_finding():
    from stress.errors import EngineError
    from stress.examples import abba
    from stress.run import run_schedule

    class Broken:
        name = "broken"

        def choose(self, sched, cur, opts):
            return len(opts)  # one past the last option

    with pytest.raises(EngineError, match="chose option"):
        run_schedule(abba, Broken())


def test_a_find_whose_cited_priors_teach_another_path_replays_on_every_teacher():
    """B7, seed 1: schedule 6 closes a SOFTIRQ-safe -> unsafe path through
    (&cookie->fq_timer); on the graph of the two schedules its splat cites
    alone, lockdep's walk meets vsi_iommu_domain->lock first and the replay
    reports another path.  The find is replayed on every earlier schedule
    that taught the graph (the search's own graph) and reported with them."""
    from stress.engine import explore
    from stress.targets import replay_report
    from stress.workload import DEFAULT_WORKLOAD, driver_scenario

    result = explore(driver_scenario("vsi-b7-irq-unsafe-lock", DEFAULT_WORKLOAD), strategy="pct", seed=1, schedules=7, keep_going=True)
    (v,) = [v for v in result.violations if v.report["schedule"] == 6]
    assert "(&cookie->fq_timer) -> vsi_iommu_domain->lock -> vsi_iommu->lock" in v.message
    prior = [p["schedule"] for p in v.report["prior"]]
    assert len(prior) > 2 and prior == sorted(prior) and prior[-1] < 6
    again = replay_report(v.report, trace=False)
    assert again.kind == v.kind and again.violation["message"] == v.message


# -- observers ------------------------------------------------------------------------


def test_attach_hooks_every_hook_an_observer_has_however_it_has_it():
    """``kernel.attach`` looks hooks up once per class; what an instance sets,
    a ``None`` hook, a slot left unset and ``__getattr__`` still count as
    ``getattr`` would have them."""
    from model.kernel import Kernel

    seen = []

    class OnClass:
        def access(self, *a):
            seen.append("class")

        lock_acquire = None  # off

    class Slotted:
        __slots__ = ("irqs", "bh")

    class Dynamic:
        def __getattr__(self, name):
            if name == "free":
                return lambda *a: seen.append("dynamic")
            raise AttributeError(name)

    k = Kernel()
    on_class, own = OnClass(), OnClass()
    own.mmio = lambda *a: seen.append("instance")
    slotted = Slotted()
    slotted.irqs = lambda *a: seen.append("slot")  # bh stays unset
    for obs in (on_class, own, slotted, Dynamic()):
        k.attach(obs)
    for name in ("access", "mmio", "irqs", "free"):
        for fn in getattr(k.hooks, name):
            fn()
    assert seen == ["class", "class", "instance", "slot", "dynamic"]
    assert k.hooks.lock_acquire == [] and k.hooks.bh == []
    # a second instance of the class (the cached path) without the instance's hook
    k2 = Kernel()
    k2.attach(OnClass())
    assert len(k2.hooks.access) == 1 and k2.hooks.mmio == []
    # a hook given to the class after it was looked up counts from then on
    OnClass.free = lambda self, *a: None
    k3 = Kernel()
    k3.attach(OnClass())
    assert len(k3.hooks.free) == 1
