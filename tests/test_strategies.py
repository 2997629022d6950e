"""strategies.ops and strategies.schedules: shapes, ranges, and what each shrinks to.

Also home of the TOY program factory the machine and shrinker tests use:
``toy_scenario(config)`` runs ``config["programs"]`` (ops on ``Shared``
cells and ``SpinLock``s of model.kernel) with real bugs in it, so
everything here is tested without the driver model.
"""

import pytest

from stress.hypothesis_chooser import pin_local_constants
from hypothesis import Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from model.kernel import (
    IRQ_HANDLED,
    Shared,
    SpinLock,
    current,
    raise_irq,
    request_irq,
    spin_lock,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
)
from strategies import ops as sops
from strategies.schedules import (
    IRQ,
    RUN,
    WALK,
    PCTParams,
    PCTPlan,
    SegmentPlan,
    decision_lists,
    pct_plans,
    preemptions,
    segment_plans,
    sparse_decisions,
)
from stress.engine import replay_decisions, run_schedule
from stress.workload import DEFAULT_WORKLOAD, GFPS, OP_KINDS, draw_programs

# -- the toy program factory ---------------------------------------------------------------

#: toy operation kinds -> argument names (the names strategies.ops knows), simplest first
TOY_OPS = {
    "read": ("dom",),
    "inc_locked": ("dom",),
    "inc": ("dom",),
    "lock_ab": (),
    "lock_ba": (),
    "dma": ("dev", "iova", "write"),
    "suspend": ("dev",),
    "resume": ("dev",),
    "fault": ("dev",),
}
TOY_CONFIG = {"cpus": 3, "ops": 4, "iommus": 2, "domains": 2, "iovas": 4}
TOY_IRQ_BASE = 32


def toy_scenario(config):
    """The scenario of a toy workload config (``programs``: ``[kind, args]`` per CPU).

    Bugs it has on purpose:

    * ``inc`` bumps ``dom->count`` without ``dom->lock``: a lost update,
      which the remove path WARNs about (``assertion``) and the race checker
      calls a ``data-race``;
    * ``lock_ab`` and ``lock_ba`` take two locks in opposite orders (ABBA:
      ``lock-inversion`` with lockdep, ``deadlock`` without);
    * the device IRQ handler (raised by ``fault``) takes ``dev->pm_lock``,
      which ``suspend``/``resume`` take with interrupts on
      (``irq-lock-inversion``).

    ``inc_locked`` and ``dma`` (under ``spin_lock_irqsave``) are correct;
    ``read`` is a plain READ_ONCE, which the race checker reports against a
    concurrent ``inc_locked`` (only lockdep: it is harmless padding).  Every operation emits ``op_begin``/``op_end`` as driver
    workloads do.
    """
    programs = [[[kind, dict(args)] for kind, args in prog] for prog in config["programs"]]

    def scenario(kernel):
        count = [Shared(f"toy_dom{d}->count", 0) for d in range(config["domains"])]
        dom_lock = [SpinLock("toy_dom->lock") for _ in range(config["domains"])]
        lock_a, lock_b = SpinLock("toy->a"), SpinLock("toy->b")
        pm_lock = SpinLock("toy_dev->pm_lock")
        powered = [Shared(f"toy_dev{i}->powered", 1) for i in range(config["iommus"])]
        mem = [Shared(f"toy_mem[{i}]", 0) for i in range(config["iovas"])]
        expected = [0] * config["domains"]
        for prog in programs:
            for kind, args in prog:
                if kind in ("inc", "inc_locked"):
                    expected[args["dom"]] += 1

        async def toy_irq(irq, dev):
            await spin_lock(pm_lock)
            await powered[dev].load()
            spin_unlock(pm_lock)
            return IRQ_HANDLED

        for dev in range(config["iommus"]):
            request_irq(kernel, TOY_IRQ_BASE + dev, toy_irq, 0, "toy", dev)

        async def remove():
            for d, cell in enumerate(count):
                if cell.value != expected[d]:
                    kernel.warn(f"{cell.name} is {cell.value}, expected {expected[d]}")

        kernel.add_teardown(remove)

        async def op(kind, a):
            if kind == "read":
                await count[a["dom"]].load()
            elif kind == "inc":
                cell = count[a["dom"]]
                await cell.store(await cell.load() + 1)
            elif kind == "inc_locked":
                cell = count[a["dom"]]
                await spin_lock(dom_lock[a["dom"]])
                await cell.store(await cell.load() + 1)
                spin_unlock(dom_lock[a["dom"]])
            elif kind in ("lock_ab", "lock_ba"):
                first, second = (lock_a, lock_b) if kind == "lock_ab" else (lock_b, lock_a)
                await spin_lock(first)
                await spin_lock(second)
                spin_unlock(second)
                spin_unlock(first)
            elif kind == "dma":
                flags = await spin_lock_irqsave(pm_lock)
                if await powered[a["dev"]].load():
                    if a["write"]:
                        await mem[a["iova"]].store(1)
                    else:
                        await mem[a["iova"]].load()
                await spin_unlock_irqrestore(pm_lock, flags)
            elif kind in ("suspend", "resume"):
                await spin_lock(pm_lock)
                await powered[a["dev"]].store(1 if kind == "resume" else 0)
                spin_unlock(pm_lock)
            elif kind == "fault":
                raise_irq(kernel, TOY_IRQ_BASE + a["dev"])
            else:
                raise ValueError(f"unknown toy operation {kind!r}")

        def body(prog):
            async def cpu():
                me = current()
                for kind, a in prog:
                    for fn in kernel.hooks.op_begin:
                        fn(me, kind)
                    await op(kind, a)
                    for fn in kernel.hooks.op_end:
                        fn(me, kind)

            return cpu

        return [body(p) for p in programs]

    scenario.__qualname__ = "toy_scenario"
    return scenario


def toy(*programs, **extra):
    """A toy workload config with these programs."""
    return dict(TOY_CONFIG, programs=[list(p) for p in programs], cpus=len(programs), **extra)


INC = ["inc", {"dom": 0}]
INC_LOCKED = ["inc_locked", {"dom": 0}]

# -- helpers --------------------------------------------------------------------------------

QUICK = settings(max_examples=60, database=None, derandomize=True, deadline=None)


class _Minimal(Exception):
    pass


def minimal(strategy, condition=lambda _: True, seed=0):
    """What Hypothesis shrinks a failure of ``condition`` to (as a failing ``@given`` test).

    Deterministic: a fixed seed, no example database, and Hypothesis's pool
    of constants pinned as every search pins it (else what it shrinks to
    depends on whether a search ran earlier in the process).
    """
    pin_local_constants()
    box = []

    @hypothesis_seed(seed)
    @settings(max_examples=1_000, database=None, deadline=None, phases=(Phase.generate, Phase.shrink))
    @given(strategy)
    def probe(value):
        if condition(value):
            box[:] = [value]
            raise _Minimal

    try:
        probe()
    except _Minimal:
        return box[0]
    raise AssertionError("no value satisfies the condition")


def check_op(op, config, table=OP_KINDS):
    """An operation as draw_programs makes them: ``[kind, args]``, names in order, in range."""
    kind, args = op
    assert kind in table
    assert list(args) == list(table[kind])
    for name, value in args.items():
        if name == "dom":
            assert 0 <= value < config["domains"]
        elif name == "dev":
            assert 0 <= value < config["iommus"]
        elif name == "iova":
            assert 0 <= value < config["iovas"]
        elif name == "pages":
            assert value in (1, 2, 4)
        elif name == "gfp":
            assert value in GFPS
        elif name == "write":
            assert value in (False, True)


MAP0 = ["map", {"dom": 0, "iova": 0, "pages": 1, "gfp": "GFP_KERNEL"}]

# -- ops ------------------------------------------------------------------------------------


def test_kind_order_is_a_permutation_simplest_first():
    order = sops.kind_order()
    assert sorted(order) == sorted(OP_KINDS)
    assert order[: len(sops.KIND_ORDER)] == [k for k in sops.KIND_ORDER if k in OP_KINDS]
    assert order.index("map") < order.index("unmap") < order.index("attach") < order.index("suspend")
    assert sops.kind_order(["fault", "map", "attach"]) == ["map", "attach", "fault"]
    assert sops.kind_order(table=TOY_OPS) == list(TOY_OPS)
    with pytest.raises(ValueError, match="unknown operation kind"):
        sops.kind_order(["map", "mmap"])
    with pytest.raises(ValueError):
        sops.kind_order([])


def test_draw_programs_output_has_the_shape_the_strategies_make():
    """The checker used below accepts what stress.workload draws: the shapes agree."""
    for index in range(20):
        for prog in draw_programs(DEFAULT_WORKLOAD, 0, index):
            for op in prog:
                check_op(op, DEFAULT_WORKLOAD)


@QUICK
@given(sops.programs(DEFAULT_WORKLOAD))
def test_programs_are_well_formed(progs):
    assert 2 <= len(progs) <= DEFAULT_WORKLOAD["cpus"]
    for prog in progs:
        assert 1 <= len(prog) <= DEFAULT_WORKLOAD["ops"]
        for op in prog:
            check_op(op, DEFAULT_WORKLOAD)


def test_simplest_op_is_the_smallest_map():
    assert minimal(sops.ops(DEFAULT_WORKLOAD)) == MAP0


def test_ops_shrink_toward_the_next_simplest_kind():
    assert minimal(sops.ops(DEFAULT_WORKLOAD), lambda op: op[0] != "map") == ["unmap", {"dom": 0, "iova": 0, "pages": 1}]
    rank = sops.KIND_ORDER.index
    got = minimal(sops.ops(DEFAULT_WORKLOAD), lambda op: rank(op[0]) >= rank("attach"))
    assert got == ["attach", {"dev": 0, "dom": 0}]
    got = minimal(sops.ops(DEFAULT_WORKLOAD), lambda op: rank(op[0]) > rank("dom_free"))
    assert got == ["claim", {"dev": 0}]


def test_args_shrink_to_their_simplest_values():
    cfg = DEFAULT_WORKLOAD
    # Hypothesis shrinks to a local minimum: the one integer's digits are not
    # monotone, so a rate over seeds (measured: 7 of seeds 0-7)
    simplest = {"dom": 0, "iova": 0, "pages": 2, "gfp": "GFP_KERNEL"}
    assert sum(minimal(sops.op_args("map", cfg), lambda a: a["pages"] > 1, seed=s) == simplest for s in range(8)) >= 6
    assert minimal(sops.op_args("map", cfg), lambda a: a["gfp"] != "GFP_KERNEL")["gfp"] == GFPS[1]
    assert minimal(sops.op_args("dma", cfg), lambda a: a["write"]) == {"dev": 0, "iova": 0, "write": True}
    assert minimal(sops.op_args("map", cfg), lambda a: a["dom"] == cfg["domains"] - 1)["dom"] == 2
    assert minimal(sops.page_counts()) == 1


@QUICK
@given(st.data())
def test_natural_ranges_are_aligned(data):
    iova, pages = data.draw(sops.iova_ranges({"iovas": 8}, natural=True))
    assert pages in (1, 2, 4) and iova % pages == 0 and 0 <= iova < 8
    assert data.draw(sops.iova_slots({"iovas": 8}, 4)) in (0, 4)


def test_natural_ranges_shrink_to_the_first_aligned_slot():
    assert minimal(sops.iova_ranges({"iovas": 8}, natural=True), lambda r: r[1] == 4) == (0, 4)
    assert minimal(sops.iova_ranges({"iovas": 8}, natural=True), lambda r: r[1] == 4 and r[0] > 0) == (4, 4)
    with pytest.raises(ValueError):
        sops.iova_slots({"iovas": 8}, 3)


def test_simplest_programs_are_two_cpus_of_one_map():
    assert minimal(sops.programs(DEFAULT_WORKLOAD)) == [[MAP0], [MAP0]]


def test_config_may_allow_fewer_cpus():
    assert minimal(sops.programs(dict(DEFAULT_WORKLOAD, min_cpus=1))) == [[MAP0]]
    assert minimal(sops.programs(dict(DEFAULT_WORKLOAD, cpus=1))) == [[MAP0]]
    assert minimal(sops.programs(dict(DEFAULT_WORKLOAD, min_ops=0))) == [[], []]
    with pytest.raises(ValueError):
        sops.programs(dict(DEFAULT_WORKLOAD, min_cpus=5))


def test_programs_shrink_toward_fewer_operations():
    got = minimal(sops.programs(DEFAULT_WORKLOAD), lambda p: sum(map(len, p)) >= 5)
    assert sum(map(len, got)) == 5 and len(got) == 2
    assert all(op == MAP0 for prog in got for op in prog)


def test_programs_keep_only_what_the_condition_needs():
    def needs(p):
        kinds = [op[0] for prog in p for op in prog]
        return "suspend" in kinds and "dma" in kinds

    got = minimal(sops.programs(dict(DEFAULT_WORKLOAD, min_cpus=1)), needs)
    assert len(got) == 1 and sorted(op[0] for op in got[0]) == ["dma", "suspend"]
    assert ["suspend", {"dev": 0}] in got[0]
    assert ["dma", {"dev": 0, "iova": 0, "write": False}] in got[0]


def test_kinds_restrict_the_programs():
    got = minimal(sops.programs(DEFAULT_WORKLOAD, kinds=["fault", "dma"]))
    assert got == [[["dma", {"dev": 0, "iova": 0, "write": False}]]] * 2
    got = minimal(sops.programs(dict(DEFAULT_WORKLOAD, kinds=["suspend"])))
    assert got == [[["suspend", {"dev": 0}]]] * 2


def test_custom_tables():
    assert minimal(sops.programs(TOY_CONFIG, table=TOY_OPS)) == [[["read", {"dom": 0}]]] * 2
    with pytest.raises(ValueError, match="no strategy for argument"):
        minimal(sops.ops(TOY_CONFIG, table={"odd": ("colour",)}))


def test_swarm_and_workloads():
    assert minimal(sops.swarm_kinds()) == ["map"]
    assert minimal(sops.swarm_kinds(), lambda k: len(k) >= 2) == ["map", "unmap"]
    cfg = minimal(sops.workloads(DEFAULT_WORKLOAD, swarm=True), lambda c: len(c["programs"]) == 3)
    assert cfg["cpus"] == 3 and cfg["domains"] == DEFAULT_WORKLOAD["domains"]
    assert cfg["programs"] == [[MAP0]] * 3
    assert sops.program_size(cfg["programs"]) == (3, 3)


def test_default_stories_fit_the_kinds():
    every = sops.default_stories()
    assert every and all(set(kinds) <= set(OP_KINDS) for kinds in every.values())
    assert "power" in every
    only_power = sops.default_stories(["suspend", "resume", "dma", "map"])
    assert list(only_power) == ["power"]
    assert sops.default_stories(table=TOY_OPS) == {}


def test_stories_share_one_target_and_shrink_to_the_first():
    table = {"b-dma": ["attach", "map", "dma", "unmap"], "a-power": ["suspend", "resume"]}
    assert minimal(sops.stories(DEFAULT_WORKLOAD, table)) == [["suspend", {"dev": 0}], ["resume", {"dev": 0}]]
    got = minimal(sops.stories(DEFAULT_WORKLOAD, table), lambda ops: len(ops) == 4 and ops[0][1]["dev"] == 1)
    assert got == [
        ["attach", {"dev": 1, "dom": 0}],
        ["map", {"dom": 0, "iova": 0, "pages": 1, "gfp": "GFP_KERNEL"}],
        ["dma", {"dev": 1, "iova": 0, "write": False}],
        ["unmap", {"dom": 0, "iova": 0, "pages": 1}],
    ]
    with pytest.raises(ValueError):
        sops.stories(DEFAULT_WORKLOAD, {})


@QUICK
@given(sops.stories(DEFAULT_WORKLOAD, sops.default_stories()))
def test_a_story_is_one_arena(story):
    for name in ("dev", "dom", "iova"):
        assert len({args[name] for _, args in story if name in args}) <= 1
    for op in story:
        check_op(op, DEFAULT_WORKLOAD)


# -- decision lists ---------------------------------------------------------------------


def test_decision_lists_shrink_to_fewer_and_smaller():
    assert minimal(decision_lists()) == []
    assert minimal(decision_lists(), lambda d: preemptions(d) >= 2) == [1, 1]
    assert minimal(decision_lists(), lambda d: max(d, default=0) >= 3) == [3]


def test_sparse_decisions_shrink_to_early_small_switches():
    assert minimal(sparse_decisions()) == []
    assert minimal(sparse_decisions(), lambda d: preemptions(d) >= 2) == [1, 1]
    assert minimal(sparse_decisions(), lambda d: len(d) >= 5) == [0, 0, 0, 0, 1]


@QUICK
@given(sparse_decisions(max_preemptions=4))
def test_sparse_decisions_are_sparse(decisions):
    assert preemptions(decisions) <= 4
    assert all(d >= 0 for d in decisions)
    assert not decisions or decisions[-1] != 0


def test_shrunk_decision_list_finds_the_lost_update_with_one_switch():
    """A schedule search in Hypothesis' hands: the lost update needs exactly one switch."""
    scenario = toy_scenario(toy([INC], [INC]))
    got = minimal(decision_lists(max_size=20), lambda d: replay_decisions(scenario, d, checkers=()).kind == "assertion")
    assert preemptions(got) == 1
    assert replay_decisions(scenario, got, checkers=()).kind == "assertion"


# -- PCT plans --------------------------------------------------------------------------


def test_pct_plans_shrink_to_depth_one():
    assert minimal(pct_plans()) == PCTParams(1, (), ())
    assert minimal(pct_plans(), lambda p: p.depth >= 2) == PCTParams(2, (1,), ())
    assert minimal(pct_plans(), lambda p: len(p.change_points) == 2 and p.change_points[0] > 5) == PCTParams(3, (6, 6), ())
    with pytest.raises(ValueError):
        PCTParams(2, (), ())
    with pytest.raises(ValueError):
        PCTParams(3, (5, 2), ())


def test_simplest_pct_plan_never_preempts():
    out = run_schedule(toy_scenario(toy([INC, INC], [INC, INC])), PCTPlan(PCTParams()), checkers=())
    assert out.kind is None
    assert out.decisions and preemptions(out.decisions) == 0


def test_pct_plan_finds_the_lost_update_and_replays():
    scenario = toy_scenario(toy([INC], [INC], [["read", {"dom": 1}]]))

    def fails(params):
        return run_schedule(scenario, PCTPlan(params), checkers=()).kind == "assertion"

    params = minimal(pct_plans(), fails)
    assert params.depth == 2  # one change point: the classic depth of a lost update
    first = run_schedule(scenario, PCTPlan(params), checkers=())
    again = run_schedule(scenario, PCTPlan(params), checkers=())
    assert first.decisions == again.decisions
    assert replay_decisions(scenario, first.decisions, checkers=()).kind == "assertion"


def test_pct_priorities_pick_the_highest():
    """Priority 5 for the second actor offered: CPU1 starts and runs to the end first."""
    scenario = toy_scenario(toy([INC], [INC]))
    out = run_schedule(scenario, PCTPlan(PCTParams(priorities=(0, 5))), checkers=())
    assert out.kind is None
    assert out.decisions[0] == 1 and preemptions(out.decisions) == 1


# -- segment plans ----------------------------------------------------------------------


def test_segment_plan_runs_the_named_cpu():
    scenario = toy_scenario(toy([INC], [INC]))
    assert run_schedule(scenario, SegmentPlan([]), checkers=()).kind is None
    # CPU0 starts and is stopped at its next decision (between load and store) for CPU1
    out = run_schedule(scenario, SegmentPlan([(RUN, 0, 1), (RUN, 1, 1)]), checkers=())
    assert out.kind == "assertion" and "is 1, expected 2" in out.violation["message"]
    assert replay_decisions(scenario, out.decisions, checkers=()).kind == "assertion"
    # a segment for a CPU with nothing left ends at once
    out = run_schedule(scenario, SegmentPlan([(RUN, 1, 8), (RUN, 1, 8)]), checkers=())
    assert out.kind is None and out.decisions[0] == 1


def test_segment_plan_delivers_an_armed_interrupt_where_told():
    ran_on = []

    def scenario(kernel):
        cell = Shared("dev->x", 0)

        async def handler(irq, dev):
            ran_on.append(current().id)
            return IRQ_HANDLED

        request_irq(kernel, 5, handler)

        async def raiser():
            raise_irq(kernel, 5)
            await cell.load()
            await cell.load()

        async def other():
            await cell.load()
            await cell.load()

        return [raiser, other]

    for plan, where in (([(RUN, 0, 1), (IRQ, 1)], 1), ([(RUN, 0, 1), (IRQ, 0)], 0)):
        ran_on.clear()
        out = run_schedule(scenario, SegmentPlan(plan), checkers=())
        assert out.kind is None and ran_on == [where]
        ran_on.clear()
        replay_decisions(scenario, out.decisions, checkers=())
        assert ran_on == [where]


def test_walk_segments_are_random_but_replay_exactly():
    scenario = toy_scenario(toy([INC, INC], [INC, INC], [INC_LOCKED]))
    runs = {seed: run_schedule(scenario, SegmentPlan([(WALK, seed, 6)]), checkers=()) for seed in range(8)}
    again = run_schedule(scenario, SegmentPlan([(WALK, 3, 6)]), checkers=())
    assert again.decisions == runs[3].decisions
    assert len({tuple(out.decisions) for out in runs.values()}) > 1  # the seed matters
    walked = [out.decisions[:6] for out in runs.values()]
    assert any(preemptions(d) for d in walked)
    assert all(not any(out.decisions[6:]) for out in runs.values())  # after the plan: keep the current CPU


def test_segment_plans_shrink_to_nothing_and_are_validated():
    assert minimal(segment_plans(3)) == []
    assert minimal(segment_plans(3), lambda p: len(p) >= 1) == [(RUN, 0, 1)]
    with pytest.raises(ValueError):
        SegmentPlan([(RUN, 0, 0)])
    with pytest.raises(ValueError):
        SegmentPlan([("sleep", 1)])
    with pytest.raises(ValueError):
        SegmentPlan([(WALK, 1)])
