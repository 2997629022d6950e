"""strategies.machine and stress.shrink_programs over the toy program factory.

The machine must find the toy's bugs (a lost update, ABBA, an IRQ lock
inversion), shrink them to the operations the bug needs, and hand back a
schedule that replays to the same kind; the shrinker must never grow a
find (operations, preemptions) and must cut a padded find down.
"""

import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from strategies import ops as sops
from strategies.machine import SPECIAL_RULES, MachineFailure, hunt_with_machine, make_machine, workload_of
from strategies.schedules import sparse_decisions
from stress.choosers import RandomWalk, make_rng
from stress.engine import replay_decisions, run_schedule
from stress.shrink import preemptions
from stress.shrink_programs import shrink_programs, workload_size
from stress.workload import DEFAULT_WORKLOAD

from .test_strategies import INC, INC_LOCKED, TOY_CONFIG, TOY_OPS, toy, toy_scenario

LOCKDEP_ONLY = ("lockdep",)  # lost updates show as the remove path's WARN, not as data-race
NO_CHECKERS = ()  # ABBA shows as a real deadlock

HUNT = dict(table=TOY_OPS, max_examples=300)


def replays(programs, decisions, checkers, config=TOY_CONFIG):
    return replay_decisions(toy_scenario(workload_of(config, programs)), decisions, checkers=checkers)


def kinds_of(programs):
    return sorted(op[0] for prog in programs for op in prog)


# -- hunting with the machine ------------------------------------------------------------------


def test_machine_finds_the_lost_update_and_shrinks_it():
    stats = {}
    got = hunt_with_machine(
        toy_scenario, TOY_CONFIG, seed=1, kinds=["read", "inc_locked", "inc", "dma"], checkers=LOCKDEP_ONLY, stats=stats, **HUNT
    )
    assert got is not None, stats
    programs, decisions, outcome = got
    assert outcome.kind == "assertion" and "expected 2" in outcome.violation["message"]
    # the two increments of one counter, on two CPUs, and one switch between a load and its store
    assert len(programs) == 2 and all(len(p) == 1 for p in programs)
    assert "inc" in kinds_of(programs) and set(kinds_of(programs)) <= {"inc", "inc_locked"}
    assert programs[0][0][1] == programs[1][0][1]
    assert 1 <= preemptions(decisions) <= 2
    assert replays(programs, decisions, LOCKDEP_ONLY).kind == "assertion"
    assert outcome.timeline  # the final replay is traced for the report
    assert stats["examples"] >= 1 and stats["runs"] >= stats["examples"] // 2 and stats["points"] > 0


def test_machine_finds_abba_as_a_deadlock():
    got = hunt_with_machine(
        toy_scenario, TOY_CONFIG, seed=1, kinds=["read", "inc_locked", "lock_ab", "lock_ba"], checkers=NO_CHECKERS, **HUNT
    )
    assert got is not None and got.kind == "deadlock"
    assert sorted(kinds_of([p]) for p in got.programs) == [["lock_ab"], ["lock_ba"]]
    assert preemptions(got.decisions) == 1  # A taken, switch, B taken: both wait
    assert replays(got.programs, got.decisions, NO_CHECKERS).kind == "deadlock"


def test_machine_finds_abba_with_lockdep_without_a_preemption():
    got = hunt_with_machine(toy_scenario, TOY_CONFIG, seed=0, kinds=["inc_locked", "lock_ab", "lock_ba"], **HUNT)
    assert got is not None and got.kind == "lock-inversion"
    assert kinds_of(got.programs) == ["lock_ab", "lock_ba"]
    assert got.decisions == []
    assert replays(got.programs, [], None).kind == "lock-inversion"


def test_machine_finds_the_irq_lock_inversion_through_its_special_rules():
    got = hunt_with_machine(toy_scenario, TOY_CONFIG, seed=0, kinds=["dma", "suspend", "resume", "fault"], **HUNT)
    assert got is not None and got.kind == "irq-lock-inversion"
    kinds = kinds_of(got.programs)
    assert len(kinds) == 2 and "fault" in kinds and ("suspend" in kinds or "resume" in kinds)
    assert replays(got.programs, got.decisions, None).kind == "irq-lock-inversion"


def test_hunt_is_deterministic():
    args = dict(kinds=["read", "inc_locked", "inc"], checkers=LOCKDEP_ONLY, **HUNT)
    a = hunt_with_machine(toy_scenario, TOY_CONFIG, seed=3, **args)
    b = hunt_with_machine(toy_scenario, TOY_CONFIG, seed=3, **args)
    assert a is not None and b is not None
    assert (a.programs, a.decisions, a.kind) == (b.programs, b.decisions, b.kind)
    assert a.outcome.violation["message"] == b.outcome.violation["message"]


def test_a_correct_toy_runs_clean():
    """No fault, one lock order, every counter under its lock: nothing to find."""
    stats = {}
    got = hunt_with_machine(
        toy_scenario,
        TOY_CONFIG,
        seed=0,
        kinds=["inc_locked", "lock_ab", "dma", "suspend", "resume"],
        stats=stats,
        **dict(HUNT, max_examples=40),
    )
    assert got is None
    # every example runs once, at its end; an example whose plan an earlier one ran is not run again
    assert stats["examples"] >= 40 and 0 < stats["runs"] <= stats["examples"]


def test_deadline_in_the_past_stops_at_once():
    t0 = time.monotonic()
    got = hunt_with_machine(
        toy_scenario, TOY_CONFIG, seed=0, kinds=["inc"], checkers=LOCKDEP_ONLY, deadline=time.monotonic(), **HUNT
    )
    assert got is None and time.monotonic() - t0 < 5


def test_without_polish_the_hypothesis_find_still_replays():
    got = hunt_with_machine(
        toy_scenario, TOY_CONFIG, seed=1, kinds=["inc", "read"], checkers=LOCKDEP_ONLY, polish=False, max_shrinks=20, **HUNT
    )
    assert got is not None and got.kind == "assertion"
    assert len(got.programs) == TOY_CONFIG["cpus"]  # unpolished: the machine's CPUs, some maybe empty
    assert replays(got.programs, got.decisions, LOCKDEP_ONLY).kind == "assertion"


# -- the machine as a plain Hypothesis test ----------------------------------------------------

MACHINE_SETTINGS = settings(
    max_examples=60,
    stateful_step_count=15,
    database=None,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    phases=(Phase.generate, Phase.shrink),
)


def test_machine_rules_follow_the_kinds():
    full = make_machine(toy_scenario, TOY_CONFIG, table=TOY_OPS)
    for name, kind in SPECIAL_RULES.items():
        assert hasattr(full, name) == (kind in TOY_OPS)  # a rule only for a kind of the table
    assert hasattr(make_machine(toy_scenario, DEFAULT_WORKLOAD), "system_sleep")
    assert not hasattr(full, "add_story")  # a custom table has no stories unless given
    plain = make_machine(toy_scenario, TOY_CONFIG, table=TOY_OPS, kinds=["read", "inc"])
    for name in SPECIAL_RULES:
        assert not hasattr(plain, name)
    for name in ("add_op", "run_cpu", "deliver_irq", "shuffle", "plan_runs_clean"):
        assert hasattr(plain, name)
    # the IOMMU table: stories when some story fits the kinds (nothing runs here)
    assert hasattr(make_machine(toy_scenario, DEFAULT_WORKLOAD), "add_story")
    assert not hasattr(make_machine(toy_scenario, DEFAULT_WORKLOAD, kinds=["map", "unmap"]), "add_story")
    with pytest.raises(ValueError):
        make_machine(toy_scenario, dict(TOY_CONFIG, cpus=0), table=TOY_OPS)


def test_stories_reach_what_single_operations_cannot():
    """``read`` is the only single operation; the ABBA comes in through a story."""
    story_table = {"abba": ["lock_ab", "lock_ba"]}
    got = hunt_with_machine(toy_scenario, TOY_CONFIG, seed=0, kinds=["read"], story_table=story_table, **HUNT)
    assert got is not None and got.kind == "lock-inversion"
    assert kinds_of(got.programs) == ["lock_ab", "lock_ba"]
    assert hunt_with_machine(toy_scenario, TOY_CONFIG, seed=0, kinds=["read"], **dict(HUNT, max_examples=30)) is None


def test_machine_as_a_test_fails_with_the_violation():
    machine = make_machine(toy_scenario, TOY_CONFIG, table=TOY_OPS, kinds=["inc_locked", "lock_ab", "lock_ba"])
    with pytest.raises(MachineFailure) as info:
        run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)
    e = info.value
    assert e.kind == "lock-inversion" and str(e).startswith("lock-inversion: ")
    assert type(e).__name__ == "MachineFailure_lock_inversion"
    assert {"lock_ab", "lock_ba"} <= set(kinds_of(e.programs))
    assert replays(e.programs, e.decisions, None).kind == "lock-inversion"


def test_machine_as_a_test_passes_on_a_correct_toy():
    runs = []
    machine = make_machine(
        toy_scenario, TOY_CONFIG, table=TOY_OPS, kinds=["inc_locked", "lock_ab", "dma"], on_run=runs.append
    )
    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)
    assert runs and all(out.kind is None for out in runs)
    assert any(preemptions(out.decisions) for out in runs)  # the plans did interleave
    assert any(out.points > 20 for out in runs)  # and ran real programs


# -- shrink_programs ------------------------------------------------------------------------------

PAD = [["read", {"dom": 1}], ["inc_locked", {"dom": 1}], ["dma", {"dev": 0, "iova": 1, "write": True}]]


def random_find(config, checkers, tries=2_000):
    """The first random-walk schedule of ``config`` that fails: (outcome, index)."""
    scenario = toy_scenario(config)
    for index in range(tries):
        out = run_schedule(scenario, RandomWalk(make_rng(0, index)), checkers=checkers)
        if out.kind is not None:
            return out
    raise AssertionError("random walk found nothing")


def test_shrink_programs_cuts_a_padded_lost_update_to_the_two_increments():
    cfg = toy(PAD + [INC] + PAD, PAD + PAD, PAD + [INC])
    found = random_find(cfg, LOCKDEP_ONLY)
    assert found.kind == "assertion"
    small, decisions = shrink_programs(toy_scenario, cfg, found.decisions, "assertion", {"checkers": LOCKDEP_ONLY})
    assert small["programs"] == [[INC], [INC]] and small["cpus"] == 2
    assert preemptions(decisions) == 1
    assert replay_decisions(toy_scenario(small), decisions, checkers=LOCKDEP_ONLY).kind == "assertion"
    assert cfg["programs"][0] == PAD + [INC] + PAD  # the input is left alone


def test_shrink_programs_cuts_a_padded_abba_deadlock():
    cfg = toy(PAD + [["lock_ab", {}]], PAD, [INC_LOCKED, ["lock_ba", {}]] + PAD)
    found = random_find(cfg, NO_CHECKERS)
    assert found.kind == "deadlock"
    small, decisions = shrink_programs(toy_scenario, cfg, found.decisions, "deadlock", {"checkers": NO_CHECKERS})
    assert small["programs"] == [[["lock_ab", {}]], [["lock_ba", {}]]]
    assert preemptions(decisions) == 1
    assert replay_decisions(toy_scenario(small), decisions, checkers=NO_CHECKERS).kind == "deadlock"


def test_shrink_programs_keeps_min_cpus_and_leaves_non_reproducing_input_alone():
    cfg = toy([["lock_ab", {}], ["lock_ba", {}]], PAD, min_cpus=2)
    small, decisions = shrink_programs(toy_scenario, cfg, [], "lock-inversion", {})
    assert small["programs"] == [[["lock_ab", {}], ["lock_ba", {}]], []] and decisions == []
    clean = toy(PAD, PAD)
    assert shrink_programs(toy_scenario, clean, [1, 1, 1], "deadlock", {}) == (clean, [1, 1, 1])


def test_shrink_programs_respects_its_replay_budget_and_is_deterministic():
    builds = []

    def counting(config):
        scenario = toy_scenario(config)

        def run(kernel):
            builds.append(1)
            return scenario(kernel)

        return run

    cfg = toy(PAD + [INC] + PAD, PAD + PAD, PAD + [INC])
    found = random_find(cfg, LOCKDEP_ONLY)
    opts = {"checkers": LOCKDEP_ONLY}
    a = shrink_programs(counting, cfg, found.decisions, "assertion", opts, max_replays=25)
    assert len(builds) <= 25
    builds.clear()
    b = shrink_programs(counting, cfg, found.decisions, "assertion", opts, max_replays=25)
    assert a == b
    assert workload_size(a[0]["programs"], a[1]) <= workload_size(cfg["programs"], found.decisions)
    assert replay_decisions(toy_scenario(a[0]), a[1], checkers=LOCKDEP_ONLY).kind == "assertion"


TOY_KINDS = ["read", "inc_locked", "inc", "lock_ab", "lock_ba"]


@settings(max_examples=25, database=None, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(sops.workloads(TOY_CONFIG, kinds=TOY_KINDS, table=TOY_OPS), sparse_decisions(max_preemptions=4, max_gap=12, max_choice=3))
def test_shrink_programs_is_monotone_and_the_result_replays(cfg, decisions):
    checkers = None  # every checker: the unlocked inc races, lock_ab + lock_ba invert
    out = replay_decisions(toy_scenario(cfg), decisions, checkers=checkers)
    if out.kind is None:
        return
    small, shrunk = shrink_programs(toy_scenario, cfg, decisions, out.kind, {"checkers": checkers}, max_replays=120)
    before = workload_size(cfg["programs"], decisions)
    after = workload_size(small["programs"], shrunk)
    assert all(a <= b for a, b in zip(after, before)), (before, after)
    assert preemptions(shrunk) <= preemptions(decisions) and len(shrunk) <= len(decisions)
    assert small["cpus"] == len(small["programs"])
    assert replay_decisions(toy_scenario(small), shrunk, checkers=checkers).kind == out.kind


def test_monotone_property_saw_failures():
    """The property above is not vacuous: most of its inputs do fail."""
    strategy = st.tuples(
        sops.workloads(TOY_CONFIG, kinds=TOY_KINDS, table=TOY_OPS),
        sparse_decisions(max_preemptions=4, max_gap=12, max_choice=3),
    )
    failing = []

    @settings(max_examples=25, database=None, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def probe(case):
        cfg, decisions = case
        failing.append(replay_decisions(toy_scenario(cfg), decisions).kind is not None)

    probe()
    assert sum(failing) >= 5, failing
