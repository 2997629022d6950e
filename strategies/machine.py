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

The ``@invariant`` replays the plan so far from scratch
(:func:`stress.run.run_schedule`: a fresh kernel, the programs, the
segments, then "keep the current CPU" to the end) and fails with the
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
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from stress.run import DEFAULT_MAX_STEPS, Outcome, replay_decisions, run_schedule
from stress.hypothesis_chooser import pin_local_constants
from stress.shrink_programs import shrink_programs

from .ops import default_stories, kind_order, op_args, ops, stories
from .schedules import FAIL, IRQ, RUN, WALK, SegmentPlan

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


class MachineFind(NamedTuple):
    """What :func:`hunt_with_machine` returns."""

    programs: list
    decisions: list
    outcome: Outcome

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
    (Ctrl-C); ``on_run(outcome)`` sees every replay.
    ``cache`` (a dict) remembers outcomes by plan: runs are deterministic,
    and Hypothesis' shrinking replays the same plan prefixes again and again.
    ``inject_failures`` runs with failure injection and adds the rule
    ``fail_call``.
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
    cpu = st.integers(0, ncpus - 1)

    class WorkloadMachine(RuleBasedStateMachine):
        """Programs and a schedule grown by rules; every step replays them."""

        def __init__(self):
            super().__init__()
            self.programs = [[] for _ in range(ncpus)]
            self.plan = []
            self.checked = None
            self.failed = False

        # -- the plan ----------------------------------------------------------

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
            return workload_of(config, self.programs)

        def replay(self):
            """Run the plan from scratch; a violation raises its :class:`MachineFailure`."""
            if self.failed:
                return
            key = json.dumps([self.programs, self.plan], sort_keys=True)
            if key == self.checked:
                return
            if (deadline is not None and time.monotonic() >= deadline) or (stop is not None and stop()):
                raise StopHunt()
            self.checked = key
            cfg = self.workload()
            out = cache.get(key) if cache is not None else None
            if out is None:
                out = run_schedule(make_scenario(cfg), SegmentPlan(self.plan), **opts)
                if on_run is not None:
                    on_run(out)
                if cache is not None:
                    if len(cache) >= CACHE_SIZE:
                        cache.clear()
                    cache[key] = out
            if out.violation is not None:
                self.failed = True
                raise failure_class(out.kind)(cfg, _trim(out.decisions), out)

        @invariant()
        def plan_runs_clean(self):
            self.replay()

        def teardown(self):
            self.replay()

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
    max_examples,
    deadline=None,
    kinds=None,
    table=None,
    checkers=None,
    max_steps=DEFAULT_MAX_STEPS,
    step_count=STEP_COUNT,
    max_shrinks=MAX_SHRINKS,
    polish=True,
    max_replays=600,
    stats=None,
    story_table=None,
    stop=None,
    inject_failures=False,
):
    """Search with the machine; the shrunk find as :class:`MachineFind`, or None.

    Runs ``max_examples`` examples of :func:`make_machine` under
    ``hypothesis.seed(seed)`` with no example database, so the result
    depends on the arguments alone, unless ``deadline`` (a
    ``time.monotonic()`` value) or ``stop()`` (Ctrl-C) cuts the search or
    Hypothesis' shrinking short: then the smallest find so far is returned.  With ``polish`` the
    find is then shrunk by :func:`stress.shrink_programs.shrink_programs`
    (empty CPUs and operations Hypothesis left, extra preemptions; at most
    ``max_replays`` replays).  The returned outcome comes from a final
    replay with the timeline traced; its kind is the kind of the find.
    Hypothesis' shrinking stops after ``max_shrinks`` examples past the
    first failure (a count, so still deterministic) with the smallest
    failure so far; ``shrink_programs`` is cheaper at the last steps.
    ``stats`` (a dict) receives ``examples`` and ``runs``/``points`` of the
    replays, and on a find ``search_examples``: the examples up to the first
    failure (the others were spent shrinking it).  ``kinds``, ``table`` and ``story_table`` are those of
    :func:`make_machine`.  The find's workload config is
    ``workload_of(config, programs)``.  ``inject_failures``: failure
    injection (the find's replay needs it too).
    """
    if max_examples < 1:
        raise ValueError("max_examples must be at least 1")
    opts = {"checkers": checkers, "max_steps": max_steps}
    if inject_failures:
        opts["inject_failures"] = True
    counts = stats if stats is not None else {}
    counts.setdefault("runs", 0)
    counts.setdefault("points", 0)
    counts.setdefault("examples", 0)
    smallest = []  # [(size, MachineFailure)] of the smallest failure so far
    first_failure = []  # examples run when the first failure was seen

    def on_run(out):
        counts["runs"] += 1
        counts["points"] += out.points

    base = make_machine(
        make_scenario, config, kinds=kinds, table=table, checkers=checkers, max_steps=max_steps,
        deadline=deadline, on_run=on_run, cache={}, story_table=story_table, stop=stop,
        inject_failures=inject_failures,
    )

    class Hunt(base):
        def __init__(self):
            if first_failure and counts["examples"] - first_failure[0] >= max_shrinks:
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
                size = _size(e.programs, e.decisions)
                if not smallest or size < smallest[0][0]:
                    smallest[:] = [(size, e)]
                raise

    pin_local_constants()  # the same seed, the same search, whatever is imported
    Hunt.__name__ = Hunt.__qualname__ = "WorkloadMachine"
    machine = hypothesis_seed(seed)(Hunt)
    hyp_settings = settings(
        max_examples=max_examples,
        stateful_step_count=step_count,
        database=None,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.generate, Phase.shrink),
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
    if polish:
        cfg, decisions = shrink_programs(make_scenario, cfg, decisions, kind, opts, max_replays=max_replays)
    final = replay_decisions(make_scenario(cfg), decisions, trace=True, **opts)
    if final.kind != kind:  # cannot happen for a deterministic model
        cfg, decisions = found.config, found.decisions
        final = replay_decisions(make_scenario(cfg), decisions, trace=True, **opts)
    return MachineFind(cfg["programs"], _trim(decisions), final)


def _size(programs, decisions):
    return (sum(len(p) for p in programs), sum(1 for d in decisions if d), len(decisions), len(programs))
