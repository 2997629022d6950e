"""One job of the campaign: one search, one arm, one seed, for one bug or several.

:func:`run_job` runs ``stress.explore`` on the bugs' driver workload
(``driver_scenario(driver, workload_config(**hardware))``, their checkers,
``shrink=False``) and returns a :class:`JobResult` per bug: whether a
violation of one of the bug's kinds showed within the budget, the schedules
up to and including the first such schedule, and the wall time to it.
Bugs of one driver, hardware and checkers (vsi-mainline's) share a search:
each one's figures are those of a search for it alone, since a search's
schedules do not depend on what is watched or when it stops.

Guarantees:

* ``schedules`` is deterministic: the same bug, arm, seed and budget give
  the same number in any process, in any order (``seconds`` is wall clock);
* a violation of another kind does not end the hunt: the search goes on
  (``keep_going``) and ``others`` lists what it saw first;
* the search ends as soon as every bug it serves is found (random, pct,
  exhaustive, guided: ``stop()`` at the next schedule), so nothing after it
  is paid for but the replay of each find;
* ``seconds`` excludes shrinking (``shrink=False``; Hypothesis, which
  shrinks inside its search, counts the time to its first failing example,
  ``result.first_find_s``);
* a job never raises: an error of the engine is the job's ``error``.

The hypothesis strategy tells its finds only when its search ends, each
kind after a round of its own (Hypothesis stops at a failure, shrinks it,
and the next round searches for the other kinds), and counts the schedules
to the first failing example of the whole search
(``result.first_find_schedules``).  So: when the first failing example has
one of the bug's kinds, the figures are exact; when the bug shows in a
later round, it is found with ``exact`` False and no schedules or seconds
(unless the engine's Result carries ``first_finds``, ``{kind: (schedules,
seconds)}``, which then makes every round exact).  A bug of a driver with
no other defect (a zoo mutant) is hunted in one round (no ``keep_going``:
Hypothesis would search the rest of its budget for other kinds) and a
second, ``keep_going`` search runs only if another kind showed first.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field

__all__ = ["JobSpec", "JobResult", "run_job"]


@dataclass(frozen=True)
class JobSpec:
    """One search: ``bugs`` (one, or several of one driver, hardware and checkers,
    which one search serves alike) under ``arm`` and ``seed``, ``budget`` schedules."""

    bugs: tuple  # stress.bench.bugs.Bug, all of one driver_scenario and checkers
    arm: object  # a stress.bench.arms.Arm
    seed: int
    budget: int  # schedules

    @property
    def key(self):
        return (tuple(b.id for b in self.bugs), self.arm.name, self.seed)


@dataclass
class JobResult:
    """What one search says about one bug."""

    bug: str
    arm: str
    seed: int
    budget: int
    found: bool = False
    kind: str | None = None  # the kind found (one of the bug's)
    schedules: int | None = None  # up to and including the first schedule of the bug's kind
    seconds: float | None = None  # wall time to the end of that schedule
    exact: bool = True  # False: found, but the engine did not say at which schedule
    others: list = field(default_factory=list)  # signatures of other kinds found before it
    ran: int = 0  # schedules the search ran
    elapsed_s: float = 0.0  # wall time of the whole search (replays and Hypothesis' shrinking included)
    shared: int = 1  # bugs the search served (its time is theirs together)
    exhausted: bool = False  # exhaustive: every schedule within the bound ran
    error: str | None = None
    trace: str | None = None  # the error's traceback

    def to_json(self):
        return asdict(self)


class _Watch:
    """Follows a search: the end time of every schedule, the first find of each bug's kinds."""

    def __init__(self, bugs):
        self.bugs = bugs
        self.t0 = time.monotonic()
        self.last = None  # (schedules so far, seconds) after the latest schedule
        self.finds = {}  # bug id -> (kind, schedules, seconds)
        self.seen = []  # signatures in the order found

    def progress(self, result):
        self.last = (result.schedules, time.monotonic() - self.t0)

    def on_find(self, v):
        if self.last is not None:
            schedules, seconds = self.last
        else:  # an engine that reports no progress: the report's own index
            schedules, seconds = v.report["schedule"] + 1, time.monotonic() - self.t0
        for bug in self.bugs:
            if bug.id not in self.finds and v.kind in bug.kinds:
                self.finds[bug.id] = (v.kind, schedules, seconds, list(self.seen))
        self.seen.append(v.report.get("signature") or v.kind)

    def stop(self):
        return len(self.finds) == len(self.bugs)


def _explore(spec, keep_going, watch=None):
    from ..engine import explore
    from ..workload import driver_scenario

    bug, arm = spec.bugs[0], spec.arm
    kw = {}
    if watch is not None:
        kw = {"on_find": watch.on_find, "stop": watch.stop, "progress": watch.progress}
    return explore(
        driver_scenario(bug.driver, bug.workload()),
        schedules=spec.budget,
        seed=spec.seed,
        shrink=False,
        keep_going=keep_going,
        checkers=bug.checkers(),
        **arm.explore_options(),
        **kw,
    )


def _first_finds(result, kinds):
    """``(kind, schedules, seconds)`` of the earliest of ``kinds`` in the engine's
    per-kind record (``result.first_finds``), or None when it has none."""
    record = getattr(result, "first_finds", None)
    if not isinstance(record, dict):
        return None
    hits = [(record[k][0], record[k][1], k) for k in kinds if k in record]
    if not hits:
        return None
    schedules, seconds, kind = min(hits)
    return kind, schedules, seconds


def _signature(v):
    return v.report.get("signature") or v.kind


def _hypothesis(spec, outs):
    one_round = len(spec.bugs) == 1 and not spec.bugs[0].others
    result = _explore(spec, keep_going=not one_round)
    ran = result.schedules
    if one_round and result.found and result.violations[0].kind not in spec.bugs[0].kinds:
        result = _explore(spec, keep_going=True)  # the same first round again, then the others
        ran += result.schedules
    for bug, out in zip(spec.bugs, outs):
        out.ran = ran
        hit = [v for v in result.violations if v.kind in bug.kinds]
        if not hit:
            out.others = [_signature(v) for v in result.violations]
            continue
        first = result.violations.index(hit[0])
        out.found, out.kind = True, hit[0].kind
        out.others = [_signature(v) for v in result.violations[:first]]
        exact = _first_finds(result, bug.kinds)
        if exact is not None:
            out.kind, out.schedules, out.seconds = exact
        elif first == 0 and result.first_find_schedules is not None:
            out.schedules, out.seconds = result.first_find_schedules, result.first_find_s
        else:
            out.exact = False


def _search(spec, outs):
    watch = _Watch(spec.bugs)
    result = _explore(spec, keep_going=True, watch=watch)
    for bug, out in zip(spec.bugs, outs):
        out.ran = result.schedules
        out.exhausted = bool(result.exhausted)
        if bug.id in watch.finds:
            out.found = True
            out.kind, out.schedules, out.seconds, out.others = watch.finds[bug.id]
        else:
            out.others = list(watch.seen)


def run_job(spec):
    """Run ``spec``; a :class:`JobResult` per bug, in ``spec.bugs``' order (never raises)."""
    outs = [JobResult(b.id, spec.arm.name, spec.seed, spec.budget, shared=len(spec.bugs)) for b in spec.bugs]
    t0 = time.monotonic()
    try:
        if spec.arm.strategy == "hypothesis":
            _hypothesis(spec, outs)
        else:
            _search(spec, outs)
    except Exception as e:  # noqa: BLE001 - one failed search is a row of the campaign, not its end
        error, trace = f"{type(e).__name__}: {e}".splitlines()[0], traceback.format_exc()
        for out in outs:
            out.found, out.kind, out.schedules, out.seconds = False, None, None, None
            out.error, out.trace = error, trace
    elapsed = time.monotonic() - t0
    for out in outs:
        out.elapsed_s = elapsed
    return outs
