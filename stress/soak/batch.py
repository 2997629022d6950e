"""One batch of a soak: a range of schedule indices, run in a worker.

A soak cuts the schedule indices into batches ``[k*B, (k+1)*B)`` (``B`` =
:attr:`BatchSpec.batch`, clipped at :attr:`BatchSpec.schedules`) and runs
each with :func:`run_batch`, a module-level function a worker process (or a
Dask worker) can unpickle and call.  It guarantees:

* a batch is a function of ``(spec, k, start)`` alone: the same spec gives
  the same schedules, the same violations and the same counts, whichever
  worker runs it, in whatever order, however often (so a batch lost with
  its worker is simply run again, and a resumed soak counts what an
  uninterrupted one would);
* under ``pct`` and ``random`` schedule ``i`` runs the concrete scenario
  :func:`stress.scenarios.concretize` gives for ``(seed, i)`` under the
  chooser :func:`stress.engine.explore` builds for index ``i``; the one
  difference from ``explore`` is PCT's ``k`` (its estimate of the points of
  a run), which grows from 64 within the batch instead of over the whole
  search;
* lockdep keeps one graph per batch (with the ``cross-schedule`` checker):
  an order seen in one schedule of the batch and its inverse in a later one
  are a ``lock-inversion`` whose report names the earlier schedules
  (``prior``), exactly as in ``explore``;
* every violation is counted under its :func:`~stress.soak.signature.signature`;
  the first occurrence of a signature not in ``known`` is replay-checked,
  shrunk and turned into a report here, in the worker (the parent only
  writes); later occurrences, and signatures in ``known``, are counted only.

With ``start`` (a resumed soak whose schedule limit grew past a batch it had
clipped) the schedules of the batch below ``start`` run again - lockdep's
graph must see them - but are not counted and report nothing.

Coverage comes with every result, at the cost of one counter per workload
operation: the operations run by kind (the ``op_begin`` hook, seen by an
observer the batch attaches itself, so reports and their options stay what
``hunt`` writes) and the lock-order edges of the batch's lockdep graph.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["BatchSpec", "BatchResult", "Find", "run_batch", "batch_range", "STRATEGIES"]

#: the strategies a soak runs
STRATEGIES = ("pct", "random", "hypothesis")


@dataclass(frozen=True)
class BatchSpec:
    """What every batch of one soak shares (small and picklable).

    ``target`` is a report's target (``{"driver": name, "workload": cfg}`` or
    ``{"scenario": "pkg.mod:fn"}``), resolved in the worker.  ``schedules``
    (None: no limit) clips the last batch.  ``database`` (hypothesis only) is
    a picklable factory of the shared Hypothesis example database, called
    in the worker; None runs without one.
    """

    target: dict
    strategy: str = "pct"
    seed: int = 0
    checkers: tuple = ()
    max_steps: int = 20_000
    pct_depth: int = 3
    batch: int = 300
    schedules: int | None = None
    database: Callable[[], Any] | None = None


@dataclass
class Find:
    """A signature's occurrences in one batch."""

    signature: str
    kind: str
    message: str
    schedule: int  # the first occurrence
    count: int
    report: dict | None = None  # the shrunk report, for a signature new to the worker


@dataclass
class BatchResult:
    k: int
    start: int
    stop: int
    schedules: int
    points: int
    seconds: float
    finds: list = field(default_factory=list)
    ops: dict = field(default_factory=dict)
    lock_edges: list = field(default_factory=list)  # [[a, b], ...] sorted
    pid: int = 0
    host: str = ""


def batch_range(spec, k):
    """``(start, stop)`` of batch ``k``: ``[k*B, (k+1)*B)`` clipped at ``spec.schedules``."""
    start = k * spec.batch
    stop = start + spec.batch
    if spec.schedules is not None:
        stop = min(stop, spec.schedules)
    return start, max(start, stop)


_SCENARIOS = {}


def _scenario(target):
    """The target's scenario, resolved once per worker process."""
    key = json.dumps(target, sort_keys=True)
    s = _SCENARIOS.get(key)
    if s is None:
        from stress.targets import scenario_for_target

        s = _SCENARIOS[key] = scenario_for_target(target)
    return s


class _Coverage:
    """The observer counting workload operations (``op_begin``)."""

    def __init__(self):
        self.ops = {}

    def op_begin(self, cpu, name):
        kind = name.split("(", 1)[0]  # "map(d0, 0x10000000, 1p)" -> "map"
        self.ops[kind] = self.ops.get(kind, 0) + 1


def _observed(concrete, coverage):
    """``concrete`` with ``coverage`` attached to each run's kernel (nothing else changes)."""

    def scenario(kernel):
        kernel.attach(coverage)
        return concrete(kernel)

    scenario.__qualname__ = getattr(concrete, "__qualname__", "scenario")
    scenario.__module__ = getattr(concrete, "__module__", None)
    return scenario


def run_batch(spec, k, known=frozenset(), start=None):
    """Run batch ``k`` of ``spec``; ``known`` signatures are counted, never shrunk.

    Returns a :class:`BatchResult`.  A broken scenario raises its
    :class:`~stress.errors.ScenarioError` (a find that does not replay:
    :class:`~stress.engine.ReplayMismatch`), never a result.
    """
    from stress.checkers import cross_schedule, default_checkers

    t0 = time.monotonic()
    lo, stop = batch_range(spec, k)
    count_from = lo if start is None else max(lo, start)
    names = list(spec.checkers) or list(default_checkers())
    opts = dict(checkers=names, max_steps=spec.max_steps)
    meta = dict(
        target=spec.target,
        strategy=spec.strategy,
        seed=spec.seed,
        options={"checkers": names, "max_steps": spec.max_steps, "pct_depth": spec.pct_depth, "bound": 2},
    )
    scenario = _scenario(spec.target)
    coverage = _Coverage()
    if spec.strategy == "hypothesis":
        res = _hypothesis(spec, k, scenario, lo, stop, count_from, opts, meta, known)
    elif spec.strategy in ("pct", "random"):
        import trio

        run = _Range(scenario, spec, opts, cross_schedule(names), coverage)
        trio.run(run.run, lo, stop, count_from)
        res = run.result(k, lo, stop, count_from, meta, known)
    else:
        raise ValueError(f"unknown soak strategy {spec.strategy!r} (choose from {', '.join(STRATEGIES)})")
    res.ops = dict(sorted(coverage.ops.items())) if spec.strategy != "hypothesis" else res.ops
    res.seconds = time.monotonic() - t0
    res.pid, res.host = os.getpid(), socket.gethostname()
    return res


class _Range:
    """The schedules ``[lo, stop)`` of a PCT or random search, in index order (as ``explore``)."""

    def __init__(self, scenario, spec, opts, keep_graph, coverage):
        from stress.lockdep import LockGraph

        self.scenario = scenario
        self.spec = spec
        self.opts = opts
        self.coverage = coverage
        # with cross-schedule one graph for the batch, else a fresh one per
        # schedule (passed explicitly only to read its edges)
        self.graph = LockGraph() if keep_graph else None
        self.keep_graph = keep_graph
        self.edges = set()
        self.teachers = {}  # index -> (scenario, target, decisions) of runs that taught lockdep
        self.schedules = self.points = 0
        self.hits = {}  # signature -> [kind, message, first index, count, outcome, concrete, priors]

    async def run(self, lo, stop, count_from):
        from stress.engine import make_chooser
        from stress.lockdep import LockGraph
        from stress.run import run_schedule_async
        from stress.scenarios import concretize, target_of

        from .signature import signature

        k = 64
        lockdep = "lockdep" in self.opts["checkers"]
        for index in range(lo, stop):
            counted = index >= count_from
            chooser = make_chooser(self.spec.strategy, self.spec.seed, index, pct_depth=self.spec.pct_depth, k=k)
            concrete, _ = concretize(self.scenario, self.spec.seed, index)
            graph = self.graph if self.keep_graph else (LockGraph() if lockdep else None)
            before = 0
            if graph is not None:
                graph.origin = index
                before = graph.size()
            run_on = _observed(concrete, self.coverage) if counted else concrete
            out = await run_schedule_async(run_on, chooser, lock_graph=graph, **self.opts)
            if self.keep_graph and graph.size() != before:
                self.teachers[index] = (concrete, target_of(concrete), list(out.decisions))
            if graph is not None and counted and not self.keep_graph:
                self.edges.update((a, b) for a, nxt in graph.fwd.items() for b in nxt)
            k = max(k, out.points)
            if not counted:
                continue
            self.schedules += 1
            self.points += out.points
            if out.violation is None:
                continue
            sig = signature(out.violation)
            hit = self.hits.get(sig)
            if hit is None:
                priors = [(i, *self.teachers[i]) for i in out.violation.get("prior") or ()]
                self.hits[sig] = [out.kind, out.violation["message"], index, 1, out, concrete, priors]
            else:
                hit[3] += 1
        if self.keep_graph:
            self.edges.update((a, b) for a, nxt in self.graph.fwd.items() for b in nxt)

    def result(self, k, lo, stop, count_from, meta, known):
        from stress.engine import plain_message, to_violation

        finds = []
        for sig, (kind, message, index, count, out, concrete, priors) in self.hits.items():
            report = None
            if sig not in known:
                report = to_violation(concrete, out, index, meta, self.opts, True, priors).report
            finds.append(Find(sig, kind, plain_message(message), index, count, report))
        finds.sort(key=lambda f: f.schedule)
        edges = sorted([str(a), str(b)] for a, b in self.edges)
        return BatchResult(k, count_from, stop, self.schedules, self.points, 0.0, finds, {}, edges)


def _hypothesis(spec, k, scenario, lo, stop, count_from, opts, meta, known):
    """A batch of the hypothesis strategy: ``explore_hypothesis`` over ``stop - count_from`` examples.

    Its seed is derived from ``(seed, k)``; with ``spec.database`` the shared
    example database replays earlier failures first (under the key
    ``explore`` uses), so those come back as repeats.  Every kind is hunted
    (``keep_going``), so a batch that finds n kinds runs up to n+1 rounds of
    examples; ``schedules`` says how many ran.
    """
    from stress.engine import plain_message, to_violation
    from stress.hypothesis_chooser import explore_hypothesis
    from stress.choosers import make_rng

    from .signature import signature

    database = spec.database() if spec.database is not None else None
    key = json.dumps([meta["target"], meta["options"]], sort_keys=True).encode() if database is not None else None
    seed = make_rng(f"soak:{spec.seed}", k).randrange(2**32)
    result, found = explore_hypothesis(
        scenario,
        schedules=max(1, stop - count_from),
        seed=seed,
        deadline=None,
        keep_going=True,
        opts=opts,
        database=database,
        database_key=key,
    )
    finds = {}
    for program, out, concrete, target in found:
        sig = signature(out.violation)
        if sig in finds:
            finds[sig].count += 1
            continue
        report = None
        if sig not in known:
            m = dict(meta, target=target) if target is not None else meta
            report = to_violation(concrete, out, program, m, opts, True).report
        finds[sig] = Find(sig, out.kind, plain_message(out.violation["message"]), count_from, 1, report)
    return BatchResult(k, count_from, stop, result.schedules, result.points, 0.0, list(finds.values()), {}, [])
