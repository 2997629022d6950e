"""A Hypothesis stateful machine that builds a workload and its schedule step by step.

The machine's state is a *plan*: one program per CPU (operations, as in
:mod:`strategies.ops`) and a schedule of segments (:class:`SegmentPlan`).
Its rules grow the plan:

* ``add_op``: append any operation to a CPU's program;
* ``issue_dma``, ``suspend``, ``resume``, ``raise_fault``: append that
  kind of operation (only when the workload has the kind), so that DMA,
  power and interrupt sources are common in the examples;
* ``add_story``: append a whole story (:data:`stress.workload.STORIES`:
  what a VFIO user, a DMA-API user or runtime PM does, in order, on one
  device, domain and IOVA), when some story fits the kinds;
* ``run_cpu``: let a CPU run some steps (it is chosen at the next
  decisions where it can run);
* ``deliver_irq``: permit an interrupt on a CPU (delivered there at the
  first decision where one is pending and the CPU has interrupts on);
* ``shuffle``: a burst of random decisions from a drawn seed (random
  interleaving where the exact window is not known; replayed exactly);
* ``fail_call`` (failure injection on only): the next allocation or
  ``dma_map_single`` a CPU makes fails (a ``(FAIL, c)`` segment), as
  ``fail_nth`` arms a task.

Every example starts (``start``) with the bytes of a PCT plan that runs
the schedule after the segments (:class:`stress.choosers.PlannedPCT`; all
zeros keeps the current CPU), and in a hunt with the programs the default
workload draws for a schedule number (:func:`swarm_config`).  The
``@invariant`` replays the plan so far from scratch
(:func:`stress.run.run_schedule`: a fresh kernel, the programs, the
segments, then the plan to the end; a hunt runs it once, at the end of
the example) and fails with the
violation, one exception class per kind, if any checker or oracle
reported.  Every replay is a complete, deterministic run (about a
millisecond for a toy, a few for a driver workload; outcomes are cached
by plan), so there is no persistent Trio loop to keep (hypothesis-trio does not import
with current Hypothesis); ``teardown`` runs the final plan to the end if
the last invariant did not already.

:func:`hunt_with_machine` runs the machine under a seed and returns the
shrunk find as ``(programs, decisions, outcome)``; ``decisions`` are plain
:class:`stress.choosers.Replay` decisions, so a report replays it with
``replay_decisions(make_scenario(workload_of(config, programs)), decisions)``.
"""

from __future__ import annotations

import json
import time
from typing import NamedTuple

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import target as hypothesis_target
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from stress.run import DEFAULT_MAX_STEPS, Outcome, replay_decisions, run_schedule
from stress.hypothesis_chooser import pin_local_constants
from stress.shrink_programs import shrink_programs

from .ops import default_stories, kind_order, op_args, ops, stories
from .schedules import FAIL, IRQ, RUN, WALK, PlanLayout, SegmentPlan, decode_plan

__all__ = [
    "MachineFailure",
    "MachineFind",
    "make_machine",
    "hunt_with_machine",
    "workload_of",
    "SPECIAL_RULES",
]

#: operation kinds that get a rule of their own: rule name -> kind
SPECIAL_RULES = {
    "issue_dma": "dma",
    "suspend": "suspend",
    "resume": "resume",
    "raise_fault": "fault",
    "system_sleep": "system_sleep",
}

#: default bounds of a plan
MAX_SEGMENTS = 16
MAX_RUN_STEPS = 8
STEP_COUNT = 30
#: steps of a hunt's example with swarm programs, its start included: the
#: start alone (the swarm programs and the PCT plan, PCT's distribution).
#: Measured on B1, B3, B6, B13 (seeds 0-4): two more rules per example
#: (ops added, segments before the plan) took 1.5-4x the runs to a find
HUNT_STEP_COUNT = 1
#: bytes of a swarm start's schedule number, drawn with the plan's bytes as
#: one byte string (as :mod:`stress.hypothesis_chooser`).  Drawn apart (two
#: bytes, then the plan), Hypothesis' first examples varied the number alone,
#: the plan all zeros (no preemption), so every other early run was wasted,
#: and its mutations kept the number while changing the plan; four bytes so
#: that a fresh draw (or a mutation) is another program
START_INDEX_BYTES = 4
#: PCT's depth for the tail plan (``hunt --pct-depth``)
PCT_DEPTH = 3
#: PCT's first estimate of a run's points (the engine's), and of its failure points
MIN_K = 64
MIN_FAIL_POINTS = 8
#: examples Hypothesis may spend shrinking before shrink_programs takes over
MAX_SHRINKS = 200
#: outcomes a hunt remembers (a few hundred bytes each)
CACHE_SIZE = 100_000


class MachineFailure(AssertionError):
    """A replay of the plan reported a violation.

    One subclass per violation kind (:func:`failure_class`), so Hypothesis
    shrinks each kind on its own.  Carries the find: ``config`` (with the
    programs), ``programs``, ``decisions`` (trailing zeros dropped) and the
    ``outcome``.
    """

    def __init__(self, config, decisions, outcome):
        v = outcome.violation
        super().__init__(f"{v['kind']}: {v['message']}")
        self.kind = v["kind"]
        self.config = config
        self.programs = config["programs"]
        self.decisions = decisions
        self.outcome = outcome


_FAILURES = {}


def failure_class(kind):
    """The :class:`MachineFailure` subclass of one violation kind."""
    cls = _FAILURES.get(kind)
    if cls is None:
        name = "MachineFailure_" + "".join(ch if ch.isalnum() else "_" for ch in kind)
        cls = _FAILURES[kind] = type(name, (MachineFailure,), {"__module__": __name__})
    return cls


class _Find(NamedTuple):
    programs: list
    decisions: list
    outcome: Outcome


class MachineFind(_Find):
    """What :func:`hunt_with_machine` returns: ``(programs, decisions, outcome)``,
    and ``config``, the find's whole workload config (the programs and the
    boot options it ran with)."""

    config = None

    @property
    def kind(self):
        return self.outcome.kind


def workload_of(config, programs):
    """The workload config a find runs: ``config`` with these programs (and ``cpus``)."""
    return dict(config, programs=[[[k, dict(a)] for k, a in p] for p in programs], cpus=len(programs))


def _trim(decisions):
    out = list(decisions)
    while out and out[-1] == 0:
        out.pop()
    return out


class Scale:
    """What a plan's bytes scale to: ``k`` (PCT's estimate of a run's points:
    the most any run of the search had, at least :data:`MIN_K`, as the
    engine's PCT) and ``fail_points`` (failure injection on; else None).
    Frozen at the first failure (before learning from the failing run), so
    that Hypothesis' shrinking and its replays of the failing example decode
    the same plan."""

    def __init__(self, inject_failures=False):
        self.k = MIN_K
        self.fail_points = MIN_FAIL_POINTS if inject_failures else None
        self.frozen = False

    def learn(self, out):
        if not self.frozen:
            self.k = max(self.k, out.points)
            if self.fail_points is not None:
                self.fail_points = max(self.fail_points, out.fail_points)


def swarm_config(config, seed, index):
    """The workload of the default hunt's schedule ``index`` under ``seed``
    (:meth:`stress.workload.DriverWorkload.for_schedule`: the swarm programs
    and stories of :func:`stress.workload.draw_programs`, two masters per
    IOMMU or ``iommu.strict=0`` in some schedules), as PCT runs it."""
    from stress.workload import DriverWorkload

    cfg = dict(config)
    cfg.pop("programs", None)
    _, target = DriverWorkload(None, None, cfg).for_schedule(seed, index)
    return target["workload"]


def make_machine(
    make_scenario,
    config,
    *,
    kinds=None,
    table=None,
    checkers=None,
    max_steps=DEFAULT_MAX_STEPS,
    max_segments=MAX_SEGMENTS,
    max_run_steps=MAX_RUN_STEPS,
    deadline=None,
    on_run=None,
    cache=None,
    story_table=None,
    stop=None,
    inject_failures=False,
    swarm_seed=None,
    pct_depth=PCT_DEPTH,
    scale=None,
    every_step=True,
    before_run=None,
    steer=False,
):
    """A ``RuleBasedStateMachine`` subclass over ``make_scenario(workload config)``.

    ``config`` is a workload config (``cpus``: how many CPUs the machine
    has; ``ops``: most operations per CPU; ``iommus``, ``domains``,
    ``iovas``: argument ranges; ``kinds``: the operation kinds, unless
    ``kinds`` is given).  ``table`` is the kind -> argument names mapping
    (``OP_KINDS`` by default).  ``checkers`` and ``max_steps`` are the run
    options.  A CPU's program holds up to ``config["max_ops"]`` operations
    (default: twice ``ops``, at least the longest story).  ``story_table``
    (name -> kinds) gives the stories of ``add_story`` (default: those of
    :data:`stress.workload.STORIES` that fit the kinds; none for a custom
    ``table``).  ``deadline`` (a ``time.monotonic()`` value) makes every replay
    after it raise :class:`StopHunt`, and so does ``stop()`` returning True
    (Ctrl-C); ``before_run()`` is called before every run (not before a
    cached outcome: a hunt's budget raises :class:`StopHunt` there);
    ``on_run(outcome)`` sees every run.
    ``cache`` (a dict) remembers outcomes by plan: runs are deterministic,
    and Hypothesis' shrinking replays the same plan prefixes again and again.
    ``inject_failures`` runs with failure injection and adds the rule
    ``fail_call``.

    Every example starts (``start``, an initialize rule) with the bytes of a
    PCT plan (:func:`strategies.schedules.plan_bytes`, depth ``pct_depth``):
    after the segments the run follows that plan
    (:class:`stress.choosers.PlannedPCT`), scaled by ``scale``
    (:class:`Scale`); all zeros keeps the current CPU, as before.  With
    ``swarm_seed`` the same byte string starts with
    :data:`START_INDEX_BYTES` bytes of a schedule number whose programs (and
    boot options) are those the default workload draws for it under that
    seed (:func:`swarm_config`), which the other rules then grow.  With
    ``every_step`` (the default) the invariant replays the plan after every
    step; without, only ``teardown`` runs it: one run per example.
    ``steer`` runs with interleaving coverage on and calls
    ``hypothesis.target`` with its size at the end of each example.
    """
    config = dict(config)
    if kinds is None:
        kinds = config.get("kinds")
    order = kind_order(kinds, table)
    if story_table is None:
        story_table = default_stories(order, table)
    ncpus = config["cpus"]
    max_ops = config.get("max_ops", max([2 * config["ops"]] + [len(s) for s in story_table.values()]))
    if ncpus < 1 or max_ops < 1:
        raise ValueError("a machine needs at least one CPU and one operation per CPU")
    opts = {"checkers": checkers, "max_steps": max_steps}
    if inject_failures:
        opts["inject_failures"] = True
    if steer:
        opts["coverage"] = True
    cpu = st.integers(0, ncpus - 1)
    if scale is None:
        scale = Scale(inject_failures)
    layout = PlanLayout(pct_depth, fail=inject_failures)
    swarm_cfg = dict(config, kinds=list(kinds)) if kinds is not None else config
    # one byte string, the schedule number first: see START_INDEX_BYTES
    index_size = START_INDEX_BYTES if swarm_seed is not None else 0
    start_data = st.binary(min_size=index_size + layout.size, max_size=index_size + layout.size)

    class WorkloadMachine(RuleBasedStateMachine):
        """Programs and a schedule grown by rules; every step replays them."""

        def __init__(self):
            super().__init__()
            self.programs = [[] for _ in range(ncpus)]
            self.boot = {}  # boot options of a swarm start (masters, dma_strict)
            self.plan = []
            self.tail = b""  # the PCT plan's bytes
            self.checked = None
            self.failed = False
            self.last = None  # the outcome of the last replay

        # -- the plan ----------------------------------------------------------

        @initialize(data=start_data)
        def start(self, data):
            """The PCT plan of the run's tail (and, with a swarm seed, the programs to start from)."""
            index, self.tail = data[:index_size], data[index_size:]
            if swarm_seed is not None:
                cfg = swarm_config(swarm_cfg, swarm_seed, int.from_bytes(index, "big"))
                self.programs = [[[k, dict(a)] for k, a in p] for p in cfg["programs"]][:ncpus]
                self.programs += [[] for _ in range(ncpus - len(self.programs))]
                self.boot = {k: cfg[k] for k in ("masters", "group", "dma_strict") if k in cfg and k not in config}

        def _append(self, c, kind, args):
            if len(self.programs[c]) < max_ops:
                self.programs[c].append([kind, args])

        @rule(c=cpu, op=ops(config, order, table))
        def add_op(self, c, op):
            self._append(c, op[0], op[1])

        @precondition(lambda self: len(self.plan) < max_segments)
        @rule(c=cpu, steps=st.integers(1, max_run_steps))
        def run_cpu(self, c, steps):
            self.plan.append((RUN, c, steps))

        @precondition(lambda self: len(self.plan) < max_segments)
        @rule(c=cpu)
        def deliver_irq(self, c):
            self.plan.append((IRQ, c))

        @precondition(lambda self: len(self.plan) < max_segments)
        @rule(seed=st.integers(0, 255), steps=st.integers(1, 4 * max_run_steps))
        def shuffle(self, seed, steps):
            self.plan.append((WALK, seed, steps))

        # -- checking ------------------------------------------------------------

        def workload(self):
            return workload_of(dict(config, **self.boot), self.programs)

        def tail_plan(self):
            return decode_plan(layout, self.tail, scale.k, scale.fail_points) if self.tail else None

        def replay(self):
            """Run the plan from scratch; a violation raises its :class:`MachineFailure`."""
            if self.failed:
                return
            tail = self.tail_plan()
            key = json.dumps([self.programs, self.boot, self.plan, tail.to_json() if tail else None], sort_keys=True)
            if key == self.checked:
                return
            if (deadline is not None and time.monotonic() >= deadline) or (stop is not None and stop()):
                raise StopHunt()
            self.checked = key
            cfg = self.workload()
            out = cache.get(key) if cache is not None else None
            if out is None:
                if before_run is not None:
                    before_run()
                out = run_schedule(make_scenario(cfg), SegmentPlan(self.plan, tail), **opts)
                if out.violation is not None:
                    # freeze before learning: a failing run with the most points
                    # so far would rescale its own plan, and Hypothesis' replay
                    # of the failing example would run another (flaky)
                    scale.frozen = True
                scale.learn(out)
                if on_run is not None:
                    on_run(out)
                if cache is not None:
                    if len(cache) >= CACHE_SIZE:
                        cache.clear()
                    cache[key] = out
            self.last = out
            if out.violation is not None:
                self.failed = True
                raise failure_class(out.kind)(cfg, _trim(out.decisions), out)

        @invariant()
        def plan_runs_clean(self):
            if every_step:
                self.replay()

        def teardown(self):
            self.replay()
            if steer and not self.failed and self.last is not None and self.last.coverage is not None:
                hypothesis_target(len(self.last.coverage), label="interleaving coverage")

    for name, kind in SPECIAL_RULES.items():
        if kind in order:
            setattr(WorkloadMachine, name, _special_rule(name, kind, cpu, config, table))
    if story_table:
        setattr(WorkloadMachine, "add_story", _story_rule(cpu, config, story_table, table, max_ops))
    if inject_failures:
        setattr(WorkloadMachine, "fail_call", _fail_rule(cpu, max_segments))
    WorkloadMachine.__name__ = WorkloadMachine.__qualname__ = "WorkloadMachine"
    return WorkloadMachine


def _special_rule(name, kind, cpu, config, table):
    def append_op(self, c, args):
        self._append(c, kind, args)

    append_op.__name__ = name
    append_op.__doc__ = f"Append a {kind!r} operation to a CPU's program."
    return rule(c=cpu, args=op_args(kind, config, table))(append_op)


def _fail_rule(cpu, max_segments):
    def fail_call(self, c):
        self.plan.append((FAIL, c))

    fail_call.__doc__ = "Fail the next call of a CPU that can fail (failure injection)."
    return precondition(lambda self: len(self.plan) < max_segments)(rule(c=cpu)(fail_call))


def _story_rule(cpu, config, story_table, table, max_ops):
    def add_story(self, c, story):
        if len(self.programs[c]) + len(story) <= max_ops:
            self.programs[c].extend(story)

    add_story.__doc__ = "Append a story (a user's operations, in order, on one target) to a CPU's program."
    return rule(c=cpu, story=stories(config, story_table, table))(add_story)


class StopHunt(KeyboardInterrupt):
    """Ends a hunt early: the deadline passed or the shrink budget is spent.

    A ``KeyboardInterrupt`` because that is the one exception Hypothesis
    lets through as "stop now" (neither a failure of the example nor a
    broken test); :func:`hunt_with_machine` catches it.
    """


def hunt_with_machine(
    make_scenario,
    config,
    *,
    seed,
    max_examples=None,
    max_runs=None,
    deadline=None,
    kinds=None,
    table=None,
    checkers=None,
    max_steps=DEFAULT_MAX_STEPS,
    step_count=None,
    max_shrinks=MAX_SHRINKS,
    max_shrink_runs=None,
    polish=True,
    max_replays=600,
    stats=None,
    story_table=None,
    stop=None,
    inject_failures=False,
    swarm=None,
    pct_depth=PCT_DEPTH,
    steer=True,
):
    """Search with the machine; the shrunk find as :class:`MachineFind`, or None.

    Every example is one run: it starts from a PCT plan's bytes (and, with
    ``swarm``, the programs the default workload draws for a schedule
    number under ``seed``, :func:`swarm_config`), takes ``step_count`` rules
    that grow the programs or put segments before the plan, and is run once
    at its end, with interleaving coverage on: ``hypothesis.target`` on its
    size (``steer``) steers Hypothesis' targeted phase.  ``swarm`` defaults
    to True for the IOMMU operations (``table`` None), False for a custom
    table; ``step_count`` to :data:`HUNT_STEP_COUNT` with swarm, else
    :data:`STEP_COUNT`.

    Budgets (each a hard limit): ``max_runs`` search runs (the runs up to
    and including the first failure; a run is one schedule), ``max_examples``
    Hypothesis examples (at least one is needed; default: no limit but
    ``max_runs``), ``deadline`` (a ``time.monotonic()`` value) and ``stop()``
    (Ctrl-C).  After the first failure Hypothesis shrinks it for at most
    ``max_shrinks`` examples and ``max_shrink_runs`` runs (default: as many
    as ``max_runs``, or 1,000), then with ``polish``
    :func:`stress.shrink_programs.shrink_programs` cuts what is left (empty
    CPUs and operations, extra preemptions; at most ``max_replays`` runs).
    The smallest find so far is returned whenever a budget cuts shrinking
    short.  The search runs under ``hypothesis.seed(seed)`` with no example
    database, so the result depends on the arguments alone (barring the
    deadline and ``stop``).  The returned outcome comes from a final replay
    with the timeline traced; its kind is the kind of the find, and the
    find's workload config is ``find.config`` (``workload_of(config,
    programs)`` plus the boot options a swarm start drew).

    ``stats`` (a dict) receives ``examples``, ``runs`` and ``points`` of
    every run, and ``search_runs``/``shrink_runs``: the runs up to and
    including the first failure, and every run after it (Hypothesis'
    shrinking, the polish, the final traced replay); on a find also
    ``search_examples``.  ``kinds``, ``table`` and ``story_table`` are
    those of :func:`make_machine`.  ``inject_failures``: failure injection
    (the find's replay needs it too).
    """
    if max_examples is None and max_runs is None:
        raise ValueError("give max_examples or max_runs")
    if (max_examples is not None and max_examples < 1) or (max_runs is not None and max_runs < 1):
        raise ValueError("max_examples and max_runs must be at least 1")
    if swarm is None:
        swarm = table is None
    if step_count is None:
        step_count = HUNT_STEP_COUNT if swarm else STEP_COUNT
    if max_shrink_runs is None:
        max_shrink_runs = max_runs if max_runs is not None else 1000
    opts = {"checkers": checkers, "max_steps": max_steps}
    if inject_failures:
        opts["inject_failures"] = True
    counts = stats if stats is not None else {}
    for key in ("runs", "points", "examples", "search_runs", "shrink_runs"):
        counts.setdefault(key, 0)
    coverage = counts.setdefault("coverage", set())
    smallest = []  # [(size, MachineFailure)] of the smallest failure so far
    first_failure = []  # examples run when the first failure was seen
    scale = Scale(inject_failures)

    def before_run():
        if not first_failure:
            if max_runs is not None and counts["search_runs"] >= max_runs:
                raise StopHunt()
        elif counts["shrink_runs"] >= max_shrink_runs:
            raise StopHunt()

    def on_run(out):
        counts["runs"] += 1
        counts["points"] += out.points
        counts["shrink_runs" if first_failure else "search_runs"] += 1
        if not first_failure and out.coverage:
            coverage.update(out.coverage)  # the search's interleaving coverage (stats["coverage"])

    base = make_machine(
        make_scenario, config, kinds=kinds, table=table, checkers=checkers, max_steps=max_steps,
        deadline=deadline, on_run=on_run, cache={}, story_table=story_table, stop=stop,
        inject_failures=inject_failures, swarm_seed=seed if swarm else None, pct_depth=pct_depth,
        scale=scale, every_step=False, before_run=before_run, steer=steer,
    )

    class Hunt(base):
        def __init__(self):
            if first_failure and counts["examples"] - first_failure[0] >= max_shrinks:
                raise StopHunt()
            if not first_failure and max_examples is not None and counts["examples"] >= max_examples:
                raise StopHunt()
            super().__init__()
            counts["examples"] += 1

        def replay(self):
            try:
                super().replay()
            except MachineFailure as e:
                if not first_failure:
                    first_failure.append(counts["examples"])
                    counts["search_examples"] = counts["examples"]  # the rest are Hypothesis shrinking it
                    scale.frozen = True  # the same bytes, the same plan, while Hypothesis shrinks
                size = _size(e.programs, e.decisions)
                if not smallest or size < smallest[0][0]:
                    smallest[:] = [(size, e)]
                raise

    pin_local_constants()  # the same seed, the same search, whatever is imported
    Hunt.__name__ = Hunt.__qualname__ = "WorkloadMachine"
    machine = hypothesis_seed(seed)(Hunt)
    # Hypothesis stops at max_examples valid examples (and ten times that
    # many calls): the search's own limits are the budgets above
    hyp_settings = settings(
        max_examples=max_examples if max_runs is None else max(max_runs, 1) * 100,
        stateful_step_count=step_count,
        database=None,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.generate, Phase.target, Phase.shrink) if steer else (Phase.generate, Phase.shrink),
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        print_blob=False,
    )
    found = None
    try:
        run_state_machine_as_test(machine, settings=hyp_settings)
    except MachineFailure as e:
        found = e
    except StopHunt:
        found = smallest[0][1] if smallest else None
    if found is None:
        return None
    cfg, decisions, kind = found.config, found.decisions, found.kind
    shrink_scenario = _counted(make_scenario, counts)
    if polish:
        cfg, decisions = shrink_programs(shrink_scenario, cfg, decisions, kind, opts, max_replays=max_replays)
    final = replay_decisions(shrink_scenario(cfg), decisions, trace=True, **opts)
    if final.kind != kind:  # cannot happen for a deterministic model
        cfg, decisions = found.config, found.decisions
        final = replay_decisions(shrink_scenario(cfg), decisions, trace=True, **opts)
    find = MachineFind(cfg["programs"], _trim(decisions), final)
    find.config = cfg
    return find


def _counted(make_scenario, counts):
    """``make_scenario`` whose scenarios count their runs as shrink runs."""

    def make(cfg):
        scenario = make_scenario(cfg)

        def run(kernel):
            counts["runs"] += 1
            counts["shrink_runs"] += 1
            return scenario(kernel)

        return run

    return make


def _size(programs, decisions):
    return (sum(len(p) for p in programs), sum(1 for d in decisions if d), len(decisions), len(programs))
