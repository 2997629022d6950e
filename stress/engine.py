"""Running schedules: one run, a search over many, and the found violation.

``run_schedule`` runs a scenario once under a chooser and returns what
happened.  ``explore`` is the stable entry point: it runs schedules under a
strategy until a violation (or the budget), shrinks the schedule that failed
and turns it into a report.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import trio

from model.kernel.core import Kernel

from .checkers import attach_checkers, default_checkers
from .errors import ScenarioError
from .choosers import PCT, BoundedExhaustive, RandomWalk, Replay, make_rng
from .scheduler import Scheduler
from .trace import Tracer

__all__ = [
    "STRATEGIES",
    "Outcome",
    "Violation",
    "Result",
    "run_schedule",
    "explore",
    "replay_decisions",
    "concretize",
]

STRATEGIES = ("pct", "random", "exhaustive", "hypothesis", "replay")
DEFAULT_MAX_STEPS = 20_000


@dataclass
class Outcome:
    """What one schedule did."""

    violation: dict | None
    decisions: list
    points: int
    timeline: list | None = None

    @property
    def kind(self):
        return self.violation["kind"] if self.violation else None


@dataclass
class Violation:
    """A found violation: ``kind`` from the vocabulary, a message, the report."""

    kind: str
    message: str
    report: dict
    path: str | None = None

    @property
    def splat(self):
        return self.report["violation"]["splat"]


@dataclass
class Result:
    violations: list = field(default_factory=list)
    schedules: int = 0
    points: int = 0
    exhausted: bool = False
    elapsed_s: float = 0.0

    @property
    def found(self):
        return bool(self.violations)


async def run_schedule_async(scenario, chooser, *, checkers=None, max_steps=DEFAULT_MAX_STEPS, trace=False):
    kernel = Kernel()
    tracer = None
    if trace:
        tracer = Tracer(kernel)
        kernel.attach(tracer)
    attach_checkers(kernel, default_checkers() if checkers is None else checkers)
    sched = Scheduler(kernel, chooser, max_steps=max_steps, trace=tracer)
    try:
        bodies = list(scenario(kernel))
    except Exception as exc:  # noqa: BLE001 - a scenario that cannot build is a usage error
        raise ScenarioError(f"scenario {getattr(scenario, '__name__', scenario)!r} failed to build: {exc}") from exc
    for body in bodies:
        if not callable(body):
            raise ScenarioError(f"scenario returned {body!r}, not an async callable per CPU")
    await sched.run(bodies)
    return Outcome(sched.violation, sched.decisions, sched.points, tracer.entries if tracer else None)


def run_schedule(scenario, chooser, **kw):
    """Run ``scenario`` once under ``chooser`` (synchronous wrapper)."""
    return trio.run(lambda: run_schedule_async(scenario, chooser, **kw))


def replay_decisions(scenario, decisions, **kw):
    return run_schedule(scenario, Replay(decisions), **kw)


def _chooser(strategy, seed, index, *, pct_depth, k):
    rng = make_rng(seed, index)
    if strategy == "random":
        return RandomWalk(rng)
    if strategy == "pct":
        return PCT(rng, depth=pct_depth, k=k)
    raise ValueError(f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")


def explore(
    scenario,
    *,
    strategy="pct",
    schedules=1000,
    seed=0,
    budget_s=None,
    checkers=None,
    keep_going=False,
    max_steps=DEFAULT_MAX_STEPS,
    pct_depth=3,
    bound=2,
    shrink=True,
    target=None,
    progress=None,
    database=None,
):
    """Search schedules of ``scenario`` for a violation.

    ``scenario(kernel)`` is called afresh for every schedule and returns one
    async callable per CPU.  ``strategy`` is ``"pct"``, ``"random"``,
    ``"exhaustive"`` (bounded preemptions, ``bound`` at most) or
    ``"hypothesis"``.  The search stops at the first violation unless
    ``keep_going``, in which case each distinct kind is reported once.
    ``budget_s`` bounds the wall time of the search (not of a run: runs stay
    deterministic); ``schedules`` bounds their number.  ``database`` (a
    Hypothesis example database, hypothesis strategy only) replays earlier
    failures of the same target first.
    """
    if strategy not in STRATEGIES or strategy == "replay":
        raise ValueError(f"unknown strategy {strategy!r} (choose from pct, random, exhaustive, hypothesis)")
    if schedules is not None and schedules < 1:
        raise ValueError("schedules must be at least 1")
    opts = dict(checkers=checkers, max_steps=max_steps)
    meta = dict(
        target=target or _target_of(scenario),
        strategy=strategy,
        seed=seed,
        options={
            "checkers": list(default_checkers() if checkers is None else checkers),
            "max_steps": max_steps,
            "pct_depth": pct_depth,
            "bound": bound,
        },
    )
    t0 = time.monotonic()
    deadline = None if budget_s is None else t0 + budget_s
    if strategy == "hypothesis":
        from .hypothesis_chooser import explore_hypothesis

        key = json.dumps([meta["target"], meta["options"]], sort_keys=True).encode() if database is not None else None
        result, found = explore_hypothesis(
            scenario,
            schedules=schedules,
            seed=seed,
            deadline=deadline,
            keep_going=keep_going,
            opts=opts,
            database=database,
            database_key=key,
        )
    else:
        result, found = trio.run(_search, scenario, strategy, schedules, seed, deadline, keep_going, opts, pct_depth, bound, progress)
    for index, outcome, concrete, concrete_target in found:
        m = dict(meta, target=concrete_target) if concrete_target is not None else meta
        result.violations.append(_to_violation(concrete, outcome, index, m, opts, shrink))
    result.elapsed_s = time.monotonic() - t0
    return result


async def _search(scenario, strategy, schedules, seed, deadline, keep_going, opts, pct_depth, bound, progress):
    result = Result()
    found, kinds = [], set()
    exhaustive = BoundedExhaustive(bound) if strategy == "exhaustive" else None
    k = 64
    index = 0
    while schedules is None or index < schedules:
        if deadline is not None and time.monotonic() >= deadline:
            break
        if exhaustive is not None:
            if not exhaustive.next_run():
                result.exhausted = True
                break
            chooser = exhaustive
        else:
            chooser = _chooser(strategy, seed, index, pct_depth=pct_depth, k=k)
        concrete, concrete_target = concretize(scenario, seed, index)
        out = await run_schedule_async(concrete, chooser, **opts)
        if exhaustive is not None:
            exhaustive.finish_run()
        k = max(k, out.points)
        result.schedules += 1
        result.points += out.points
        if progress is not None:
            progress(result)
        if out.violation is not None and out.kind not in kinds:
            kinds.add(out.kind)
            found.append((index, out, concrete, concrete_target))
            if not keep_going:
                break
        index += 1
    else:
        if exhaustive is not None and exhaustive.done():
            result.exhausted = True
    return result, found


def concretize(scenario, seed, index):
    """A scenario family (``for_schedule``) gives a concrete scenario per schedule."""
    for_schedule = getattr(scenario, "for_schedule", None)
    if for_schedule is None:
        return scenario, None
    return for_schedule(seed, index)


def _target_of(scenario):
    if isinstance(getattr(scenario, "target", None), dict):
        return scenario.target
    mod, name = getattr(scenario, "__module__", None), getattr(scenario, "__qualname__", None)
    if mod and name and "<" not in name:
        return {"scenario": f"{mod}:{name}"}
    return {"scenario": None}


def _to_violation(scenario, outcome, index, meta, opts, shrink):
    from .report import build_report
    from .shrink import shrink_decisions

    found = outcome.decisions
    target = meta["target"]
    if shrink and target.get("driver") and (target.get("workload") or {}).get("programs") is not None:
        # A driver workload: drop CPUs and operations the bug does not need, then preemptions.
        from .shrink_programs import shrink_programs
        from .workload import driver_scenario

        def make(cfg, _name=target["driver"]):
            return driver_scenario(_name, cfg)

        config, decisions = shrink_programs(make, target["workload"], found, outcome.kind, opts)
        scenario = make(config)
        meta = dict(meta, target={"driver": target["driver"], "workload": config})
        decisions = shrink_decisions(scenario, decisions, outcome.kind, opts)
    elif shrink:
        decisions = shrink_decisions(scenario, found, outcome.kind, opts)
    else:
        decisions = list(found)
    final = replay_decisions(scenario, decisions, trace=True, **opts)
    if final.kind != outcome.kind:  # cannot happen for a deterministic model
        decisions = list(found)
        final = replay_decisions(scenario, decisions, trace=True, **opts)
    # The report keeps the replay input (the shrunk list), not every recorded zero.
    final.decisions = decisions
    report = build_report(meta, index, final, original_decisions=len(found))
    v = final.violation
    return Violation(v["kind"], v["message"], report)
