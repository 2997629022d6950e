"""Searching schedules: ``explore`` runs a strategy, shrinks and reports.

``explore`` is the stable entry point.  It runs schedules of a scenario (or
of a scenario family, :mod:`stress.scenarios`) under a strategy until a
violation or the budget, shrinks the schedule that failed and turns it into
a report.  It guarantees:

* the same scenario, seed and options give the same schedules, the same
  violations and byte-identical reports;
* a found violation is replayed before it is reported: a replay that ends
  differently (the scenario kept state across runs, or depends on something
  outside the model) raises :class:`ReplayMismatch` naming both outcomes,
  never a report of something else;
* finds are told apart by signature (:mod:`stress.soak.signature`: the kind
  and where it happened, as syzbot titles a crash), so two data races in two
  places are two finds; ``on_find(violation)`` receives each one, shrunk and
  with its report, the moment it is found (the CLI writes it to disk then);
  ``stop()`` returning True ends the search between two schedules (Ctrl-C);
* with the ``cross-schedule`` checker (default) lockdep keeps one graph for
  the whole search, so an order seen in one schedule and its inverse seen
  in another are a ``lock-inversion``; its report names the earlier
  schedules the proof rests on (``prior``), which replay first.  (The
  hypothesis strategy keeps a graph per schedule: Hypothesis needs each
  example to be a function of its draws alone.)
* with ``inject_failures`` every allocation and ``dma_map_single`` a CPU
  makes is a failure point (the kernel's ``fail_nth``): PCT and the random
  walk fail at most one call per schedule, in half the schedules, the n-th
  failure point with n uniform over the most points a schedule of the
  search has had (:class:`~stress.choosers.FailNth`, from a random source
  of its own, so that a schedule without a failure is the schedule the
  search makes without injection); exhaustive counts a failure as a
  preemption; Hypothesis and guided draw the n-th failure into their
  PCT plan (``Plan.fail``).  The option is
  recorded in the report (``options.inject_failures``); off, nothing
  changes: not a decision, not a byte of a report.

Nothing here knows what a driver is: a scenario's own ``shrink`` does what
is particular to it.
"""

from __future__ import annotations

import json
import time

import trio

from .checkers import cross_schedule, default_checkers
from .choosers import FAIL_POINTS, PCT, BoundedExhaustive, PlannedPCT, RandomWalk, Replay, pct_chooser, random_chooser
from .errors import ReplayMismatch, ScenarioError
from .lockdep import LockGraph
from .report import build_report
from .results import Result, Violation
from .run import DEFAULT_MAX_STEPS, Outcome, describe as _describe, plain_message, replay_decisions, run_schedule, run_schedule_async
from .scenarios import concretize, shrinker_of, target_of
from .search.guided import Guided
from .shrink import shrink_decisions
from .soak.signature import signature

__all__ = [
    "STRATEGIES",
    "DEFAULT_MAX_STEPS",
    "Outcome",
    "Violation",
    "Result",
    "ReplayMismatch",
    "ScenarioError",
    "run_schedule",
    "explore",
    "replay_decisions",
    "concretize",
    "prior_graph",
    "make_chooser",
    "to_violation",
    "teachers_before",
    "runs_fast",
    "escalating_after",
    "plain_message",
]

STRATEGIES = ("pct", "random", "exhaustive", "hypothesis", "guided", "replay")




def make_chooser(strategy, seed, index, *, pct_depth, k, fail_points=None):
    """The chooser of schedule ``index``; with ``fail_points`` (failure injection
    on: the estimate of a schedule's failure points) it plans which call fails."""
    if strategy == "pct":
        return pct_chooser(seed, index, pct_depth, k, fail_points)
    if strategy == "random":
        return random_chooser(seed, index, fail_points)
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
    on_find=None,
    stop=None,
    inject_failures=False,
):
    """Search schedules of ``scenario`` for a violation.

    ``scenario(kernel)`` is called afresh for every schedule and returns one
    async callable per CPU.  ``strategy`` is ``"pct"``, ``"random"``,
    ``"exhaustive"`` (bounded preemptions, ``bound`` at most; of a family,
    the schedules of its first program), ``"hypothesis"`` or ``"guided"``
    (PCT with a corpus of the schedules that reached new interleaving
    coverage, :mod:`stress.search.guided`).  The search stops at the first violation unless
    ``keep_going``, in which case each distinct signature is reported once
    (each distinct kind, for the hypothesis strategy).  ``on_find`` is
    called with each :class:`Violation` as soon as it is shrunk and
    reported (the hypothesis strategy: when its search ends); ``stop()``
    (polled between schedules) ends the search early.
    ``budget_s`` bounds the wall time of the search (not of a run: runs stay
    deterministic); ``schedules`` bounds their number; given both, the
    search stops at whichever comes first (every strategy).  Shrinking runs
    are not schedules: the hypothesis strategy counts them in
    ``result.shrink_runs``.  ``database`` (a
    Hypothesis example database, hypothesis strategy only) replays earlier
    failures of the same target first.  ``inject_failures`` makes the
    allocations and DMA maps of the CPUs fail now and then (see the module
    docstring).
    """
    if strategy not in STRATEGIES or strategy == "replay":
        raise ValueError(f"unknown strategy {strategy!r} (choose from pct, random, exhaustive, hypothesis, guided)")
    if schedules is not None and schedules < 1:
        raise ValueError("schedules must be at least 1")
    names = list(default_checkers() if checkers is None else checkers)
    opts = dict(checkers=names, max_steps=max_steps)
    meta = dict(
        target=target or target_of(scenario),
        strategy=strategy,
        seed=seed,
        options={"checkers": names, "max_steps": max_steps, "pct_depth": pct_depth, "bound": bound},
    )
    if inject_failures:  # off: the options (and reports) of a search without it
        opts["inject_failures"] = True
        meta["options"]["inject_failures"] = True
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
            pct_depth=pct_depth,
            database=database,
            database_key=key,
            stop=stop,
        )
        for index, out, concrete, ctarget, run_opts in found:
            m = after_kasan(meta) if run_opts.get("kasan_reported") else meta
            v = to_violation(concrete, out, index, _meta_for(m, ctarget), run_opts, shrink)
            result.violations.append(v)
            if on_find is not None:
                on_find(v)
    else:
        search = _Search(scenario, strategy, seed, opts, pct_depth, bound, cross_schedule(names), t0)
        report = _Reporter(meta, opts, shrink, on_find)
        result = trio.run(search.run, schedules, deadline, keep_going, progress, report, stop)
    result.elapsed_s = time.monotonic() - t0
    return result


def after_kasan(meta):
    """``meta`` of a find made after KASAN's one report of its search (or batch):
    its report's options say so, and its replay keeps KASAN silent."""
    return dict(meta, options=dict(meta["options"], kasan_reported=True))


def _meta_for(meta, concrete_target):
    return dict(meta, target=concrete_target) if concrete_target is not None else meta


class _Reporter:
    """Turns a search's finds into violations as they come: one per signature."""

    def __init__(self, meta, opts, shrink, on_find):
        self.meta = meta
        self.opts = opts
        self.shrink = shrink
        self.on_find = on_find
        self.signatures = set()

    def known(self, out):
        return signature(out.violation) in self.signatures

    def kasan_reported(self):
        """Later finds run, shrink, replay and say so with KASAN silent (stress.oracles.kasan)."""
        self.opts = dict(self.opts, kasan_reported=True)
        self.meta = after_kasan(self.meta)

    def __call__(self, result, index, out, concrete, concrete_target, teachers=()):
        """Shrink and report ``out`` (runs in a thread: shrinking runs schedules of its own)."""
        self.signatures.add(signature(out.violation))
        v = to_violation(concrete, out, index, _meta_for(self.meta, concrete_target), self.opts, self.shrink, teachers)
        if v.report["signature"] in self.signatures and v.report["signature"] != signature(out.violation):
            return  # shrinking led to a bug already reported
        self.signatures.add(v.report["signature"])
        result.violations.append(v)
        if self.on_find is not None:
            self.on_find(v)


class _Search:
    """The schedules of one random, PCT or exhaustive search, in index order."""

    def __init__(self, scenario, strategy, seed, opts, pct_depth, bound, keep_graph, t0):
        self.t0 = t0  # the search's start (time to the first find)
        self.scenario = scenario
        self.strategy = strategy
        self.seed = seed
        self.opts = opts
        self.pct_depth = pct_depth
        self.exhaustive = BoundedExhaustive(bound) if strategy == "exhaustive" else None
        self.guided = Guided(scenario, seed, pct_depth) if strategy == "guided" else None
        self.graph = LockGraph() if keep_graph else None
        # schedule index -> (scenario, decisions) of each run that taught lockdep something
        self.teachers = {}
        # failure injection: the most failure points a schedule had so far
        self.fail_points = FAIL_POINTS if opts.get("inject_failures") else None
        # the share of recent fast runs that escalated (ran again in full)
        self.escalating = 0.0

    async def run(self, schedules, deadline, keep_going, progress, report, stop):
        result = Result()
        exhaustive = self.exhaustive
        guided = self.guided
        k = 64
        index = 0
        while schedules is None or index < schedules:
            if deadline is not None and time.monotonic() >= deadline:
                break
            if stop is not None and stop():
                result.stopped = True
                break
            if exhaustive is not None:
                if not exhaustive.next_run():
                    result.exhausted = True
                    break
                chooser = exhaustive
            elif guided is not None:
                concrete, concrete_target, chooser = guided.next(index, k, self.fail_points)
            else:
                chooser = make_chooser(self.strategy, self.seed, index, pct_depth=self.pct_depth, k=k, fail_points=self.fail_points)
            if guided is None and (exhaustive is None or index == 0):
                # A family draws a program per schedule; the exhaustive search
                # walks the schedules of one program: the seed's first.
                concrete, concrete_target = concretize(self.scenario, self.seed, index)
            out = await self._one(index, concrete, concrete_target, chooser)
            if exhaustive is not None:
                exhaustive.finish_run()
            if guided is not None:
                guided.learn(index, concrete_target, chooser, out)
            k = max(k, out.points)
            if self.fail_points is not None:
                self.fail_points = max(self.fail_points, out.fail_points)
            result.schedules += 1
            result.points += out.points
            result.coverage |= out.coverage
            if progress is not None:
                progress(result)
            if out.violation is not None:
                if result.first_find_schedules is None:
                    result.first_find_schedules = result.schedules
                    result.first_find_s = time.monotonic() - self.t0
                result.first_finds.setdefault(out.kind, (result.schedules, time.monotonic() - self.t0))
            if out.violation is not None and not report.known(out):
                teachers = teachers_before(self.teachers, index)
                await trio.to_thread.run_sync(report, result, index, out, concrete, concrete_target, teachers)
                if not keep_going:
                    break
            if out.violation is not None and out.violation.get("kasan") and not self.opts.get("kasan_reported"):
                # KASAN reports the first bug of a boot; the search is one boot
                self.opts = dict(self.opts, kasan_reported=True)
                report.kasan_reported()
            index += 1
        else:
            if exhaustive is not None and exhaustive.done():
                result.exhausted = True
        return result

    async def _one(self, index, concrete, concrete_target, chooser):
        graph = self.graph
        fast = runs_fast(chooser, self.escalating)
        if graph is None:
            out = await run_schedule_async(concrete, chooser, coverage=True, fast=fast, release=True, **self.opts)
        else:
            graph.origin = index
            before = graph.size()
            out = await run_schedule_async(concrete, chooser, lock_graph=graph, coverage=True, fast=fast, release=True, **self.opts)
            if graph.size() != before:
                self.teachers[index] = (concrete, target_of(concrete), list(out.decisions))
        self.escalating = escalating_after(self.escalating, fast, out)
        return out


#: the choosers a fast run can start again from a copy (stress.run: fast)
_FAST_CHOOSERS = (PCT, PlannedPCT, RandomWalk)
#: fast runs stop while more than this share of recent ones escalated (a search
#: that finds in most schedules runs them in full: the outcomes are the same)
FAST_ESCALATING = 0.3


def runs_fast(chooser, escalating):
    """Whether a search's next schedule runs fast (:func:`stress.run.run_schedule_async`):
    its chooser can be put back, and fewer than :data:`FAST_ESCALATING` of the
    recent fast runs (``escalating``, a moving share) ran again in full."""
    return type(chooser) in _FAST_CHOOSERS and escalating < FAST_ESCALATING


def escalating_after(escalating, fast, out):
    """The moving share of escalated fast runs after ``out`` (run fast or not:
    a run in full lowers it, so fast runs are tried again after a while)."""
    return 0.9 * escalating + (0.1 * out.escalated if fast else 0.0)


def prior_graph(priors, opts):
    """Lockdep's graph after replaying ``priors`` ``[(index, scenario, decisions)]`` in order."""
    graph = LockGraph()
    for index, scenario, decisions in priors:
        graph.origin = index
        run_schedule(scenario, Replay(decisions), lock_graph=graph, **opts)
    return graph


def teachers_before(teachers, index):
    """``[(index, scenario, target, decisions)]`` of every run before ``index``
    that taught lockdep's graph something (``teachers``: index -> the rest)."""
    return [(i, *teachers[i]) for i in sorted(teachers) if i < index]


def _replay_find(scenario, found, index, opts, priors):
    """``(opts, outcome)``: the run of ``found`` on the graph ``priors`` teach."""
    if priors:
        base = prior_graph([(i, s, d) for i, s, _, d in priors], opts)
        base.origin = index
        opts = dict(opts, lockdep_base=base)
    return opts, replay_decisions(scenario, found, **opts)


def _same_find(again, outcome):
    return again.kind == outcome.kind and plain_message(again.violation["message"]) == plain_message(outcome.violation["message"])


def to_violation(scenario, outcome, index, meta, opts, shrink, teachers=()):
    """The :class:`Violation` of a find: replay-checked, shrunk, reported (also a soak's batches use it).

    ``teachers`` are every earlier run that taught the search's graph
    something (:func:`teachers_before`); its *priors* those the find's splat
    cites (lockdep's ``prior``).  The find is replayed on the graph its
    priors teach; when that graph makes the run take another path (a
    fact the splat does not cite, or the order lockdep's walks meet the
    classes in, which follows the order the facts were learnt), it is
    replayed on the graph every teacher taught, in order: the search's own,
    and the report's ``prior`` lists them all.
    """
    found = list(outcome.decisions)
    by_index = {t[0]: t for t in teachers}  # none given (a hypothesis search): replayed on a fresh graph
    priors = [by_index[i] for i in outcome.violation.get("prior") or ()] if teachers else []
    # The find must replay as found before anything is built on it.
    run_opts, again = _replay_find(scenario, found, index, opts, priors)
    if not _same_find(again, outcome) and teachers and [p[0] for p in teachers] != [p[0] for p in priors]:
        priors = list(teachers)
        run_opts, again = _replay_find(scenario, found, index, opts, priors)
    opts = run_opts
    if not _same_find(again, outcome):
        raise ReplayMismatch(
            f"schedule {index} of {_name(meta['target'])} found {_describe(outcome)}, "
            f"but its replay ended in {_describe(again)}: the scenario is not deterministic "
            f"(state kept across runs outside the model, or randomness/time of its own)"
        )
    own = shrinker_of(scenario)
    if shrink and own is not None:
        scenario, decisions = own(found, outcome.kind, opts)
        meta = dict(meta, target=target_of(scenario))
    elif shrink:
        decisions = shrink_decisions(scenario, found, outcome.kind, opts)
    else:
        decisions = found
    final = replay_decisions(scenario, decisions, trace=True, **opts)
    if final.kind != outcome.kind:
        raise ReplayMismatch(
            f"the shrunk schedule of schedule {index} of {_name(meta['target'])} ended in "
            f"{_describe(final)}, not {outcome.kind}: the scenario is not deterministic"
        )
    # The report keeps the replay input (the shrunk list), not every recorded zero.
    final.decisions = decisions
    report = build_report(meta, index, final, original_decisions=len(found))
    if priors:
        report["prior"] = [{"schedule": i, "target": t, "decisions": list(d)} for i, _, t, d in priors]
    v = final.violation
    return Violation(v["kind"], v["message"], report)


def _name(target):
    return target.get("scenario") or target.get("driver") or "the scenario"
