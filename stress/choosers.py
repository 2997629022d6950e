"""Choosers: who runs next at each preemption point.

A chooser sees the options of the scheduler (``(cpu, irq)`` pairs; option 0
is "keep running the current CPU" when it can) and returns an index.  The
scheduler records the index: that list of decisions is the schedule, and
:class:`Replay` runs it again.  All randomness comes from a
``random.Random`` seeded from the run's seed and schedule number.

* :class:`Replay` - a list of decisions; past its end, 0.  A decision larger
  than the options wraps around (``d % len(options)``), so any list of
  non-negative integers is a valid schedule: Hypothesis draws them freely and
  shrinks them toward 0, which removes preemptions.
* :class:`RandomWalk` - every option equally likely at every point.
* :class:`PCT` - probabilistic concurrency testing (Burckhardt et al., 2010):
  random distinct priorities, the highest-priority runnable option runs,
  and at ``depth - 1`` random points the running CPU drops to the lowest
  priority.  Each CPU is one "thread", and so is each delivery of an
  interrupt line to one CPU: the pair (line, CPU) has its own random
  priority, so every CPU that can take an interrupt is as likely to get it.
  A bug of depth d is found with probability at least 1/(n·k^(d-1)) per
  run, n counting the CPUs and the (line, CPU) deliveries, k the points.
* :class:`PlannedPCT` - PCT from a :class:`Plan` given as data (ranks of
  the threads in order of appearance, change points, the failure to
  inject): what the guided strategy mutates and Hypothesis draws.
* :class:`BoundedExhaustive` - every schedule with at most ``bound``
  preemptions (iterative preemption bounding, as CHESS), for small
  scenarios; it says when the space is exhausted.  A switch away from a
  CPU at a yield point (``sched.yield_point``) is not a preemption.

The scheduler's fair spinning (``stress.scheduler``) may leave a yielding
CPU out of the options; a chooser sees only what may run.

Failure points (failure injection on, ``stress.scheduler``): the scheduler
asks ``chooser.fail(sched, cpu, call)`` whether an allocation or a
``dma_map_single`` fails (1) or succeeds (0), and records the answer.

* :class:`Replay` fails the call when the decision is 1 modulo
  :data:`FAIL_EVERY` (64): a report's recorded 1 fails it, 0 (and the end of
  the list) does not, and a Hypothesis draw of 0-255 fails about one
  failure point in 64.
* :class:`RandomWalk` and :class:`PCT` fail rarely, as ``fail_nth`` does:
  a :class:`FailNth` plan drawn from a random source of its own (so every
  decision between CPUs is the one the search makes without injection, up
  to the failure) fails at most one call per schedule, in a share
  :data:`FAIL_SHARE` of the schedules, the n-th failure point with n
  uniform over the engine's estimate of the points a schedule has.
* :class:`BoundedExhaustive` tries each failure as it tries a preemption:
  a failed call costs one against the bound.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Replay", "RandomWalk", "PCT", "Plan", "PlannedPCT", "pct_chooser", "random_chooser", "draw_plan", "BoundedExhaustive", "FailNth", "make_rng", "FAIL_EVERY", "FAIL_SHARE", "FAIL_POINTS"]

#: a replayed decision ``d`` at a failure point fails the call when ``d % FAIL_EVERY == 1``
FAIL_EVERY = 64
#: the share of PCT and random schedules that plan one failure (:class:`FailNth`)
FAIL_SHARE = 0.5
#: a search's first estimate of the failure points of a schedule (then the most seen so far)
FAIL_POINTS = 8


def make_rng(seed, index):
    """The run's random source: the same (seed, schedule) always gives the same draws."""
    return random.Random(f"iommu-stress:{seed}:{index}")


class Replay:
    name = "replay"

    def __init__(self, decisions):
        self.decisions = list(decisions)
        self.pos = 0

    def choose(self, sched, cur, opts):
        i = self.pos
        self.pos += 1
        if i < len(self.decisions):
            return self.decisions[i] % len(opts)
        return 0

    def fail(self, sched, cur, call):
        i = self.pos
        self.pos += 1
        if i < len(self.decisions):
            return 1 if self.decisions[i] % FAIL_EVERY == 1 else 0
        return 0


class FailNth:
    """Which call of one schedule fails, as ``/proc/self/fail-nth`` picks one.

    With probability ``share`` the ``nth`` failure point fails, ``nth``
    uniform in ``1..points`` (``points``: how many a schedule has, as far as
    the search has seen); a schedule with fewer points, or none of the
    share, fails nothing.  Drawn at once from ``rng``, the plan's own.
    """

    def __init__(self, rng, points, share=FAIL_SHARE):
        self.nth = rng.randrange(1, max(points, 1) + 1) if rng.random() < share else 0
        self.seen = 0

    def fail(self, sched, cur, call):
        self.seen += 1
        return 1 if self.seen == self.nth else 0


class RandomWalk:
    name = "random"
    fail_plan = None  # a FailNth when failure injection is on

    def __init__(self, rng):
        self.rng = rng

    def choose(self, sched, cur, opts):
        return self.rng.randrange(len(opts))

    def fail(self, sched, cur, call):
        plan = self.fail_plan
        return plan.fail(sched, cur, call) if plan is not None else 0


def highest(opts, prio, new):
    """The index of the option whose thread has the highest priority
    (the first on a tie: option 0 keeps the running CPU): ``prio[key]``, or
    ``new(key)`` for a thread not seen before (which records it there); a
    thread's key is its CPU id, or ``("irq", line, cpu id)`` for an
    interrupt delivery."""
    best, best_p = 0, None
    known = prio.get
    i = -1
    for cpu, irq in opts:  # an index by hand: enumerate's tuple costs a third of this loop
        i += 1
        p = known(cpu.id if irq is None else ("irq", irq, cpu.id))
        if p is None:
            p = new(cpu.id if irq is None else ("irq", irq, cpu.id))
        if best_p is None or p > best_p:
            best, best_p = i, p
    return best


class PCT:
    """PCT over CPUs and interrupt deliveries (each (line, CPU) is one more "thread").

    Priorities are drawn from the run's ``rng`` when a thread first appears
    among the options, so the same seed gives the same schedule.
    """

    name = "pct"
    fail_plan = None  # a FailNth when failure injection is on

    def __init__(self, rng, depth=3, k=64):
        self.rng = rng
        self.depth = depth
        self.prio = {}  # cpu id, or ("irq", line, cpu id) -> priority
        self.first = {}  # the same -> its first priority, in order of appearance
        self.k = max(k, 1)
        self.change = sorted(rng.sample(range(1, self.k + 1), min(depth - 1, self.k)))
        self.changes = tuple(self.change)
        self.low = 0  # next low priority handed out at a change point

    def _new(self, key):
        # Distinct random priorities above every change-point priority.
        p = self.prio[key] = self.first[key] = self.depth + self.rng.random()
        return p

    @property
    def keys(self):
        """The threads in order of first appearance (as :class:`PlannedPCT`'s)."""
        return list(self.first)

    @property
    def plan(self):
        """This run as a :class:`Plan` (the guided strategy keeps it): the
        threads' first priorities as ranks in the same order, the change
        points, the failure planned.  A :class:`PlannedPCT` of it runs the
        same schedule as long as no more than :data:`PLAN_THREADS` threads
        appear and no two change points fall on one decision."""
        order = sorted(self.first, key=self.first.get)
        rank = {key: r for r, key in enumerate(order, 1)}
        fail = self.fail_plan.nth if self.fail_plan is not None else 0
        return Plan(tuple(rank[key] for key in self.first)[:PLAN_THREADS], self.changes, fail)

    def choose(self, sched, cur, opts):
        if self.change and sched.points >= self.change[0] and cur is not None:
            self.change.pop(0)
            self.low -= 1
            self.prio[cur.id] = self.low
        return highest(opts, self.prio, self._new)

    def fail(self, sched, cur, call):
        plan = self.fail_plan
        return plan.fail(sched, cur, call) if plan is not None else 0


@dataclass(frozen=True)
class Plan:
    """A PCT schedule as data: what :class:`PlannedPCT` runs.

    ``ranks[i]`` is the priority of the i-th thread to appear among the
    options (a CPU, an agent, or the delivery of an interrupt line to one
    CPU); a thread past the end of ``ranks`` has priority 0.  At each point
    number in ``change`` the running CPU drops below every priority (PCT's
    change points).  ``fail`` > 0 fails the ``fail``-th failure point
    (``fail_nth``), 0 none.  All zeros is the schedule without preemption:
    equal priorities keep the running CPU (ties go to the lowest option,
    and option 0 is the current CPU), so a plan shrinks toward it.
    """

    ranks: tuple = ()
    change: tuple = ()
    fail: int = 0

    def to_json(self):
        return {"ranks": list(self.ranks), "change": list(self.change), "fail": self.fail}

    @classmethod
    def from_json(cls, d):
        return cls(tuple(d["ranks"]), tuple(d["change"]), d.get("fail", 0))


#: threads a drawn plan gives a priority of its own (the rest share the lowest)
PLAN_THREADS = 32


def pct_chooser(seed, index, depth, k, fail_points=None):
    """PCT's chooser of schedule ``index`` of a search from ``seed`` (what
    ``--strategy pct`` runs); ``fail_points`` (failure injection on: the
    estimate of a schedule's failure points) plans which call fails."""
    return _with_failure(PCT(make_rng(seed, index), depth=depth, k=k), seed, index, fail_points)


def random_chooser(seed, index, fail_points=None):
    """The random walk's chooser of schedule ``index`` (``--strategy random``),
    ``fail_points`` as for :func:`pct_chooser`."""
    return _with_failure(RandomWalk(make_rng(seed, index)), seed, index, fail_points)


def _with_failure(chooser, seed, index, fail_points):
    if fail_points is not None:
        chooser.fail_plan = FailNth(make_rng(f"fail:{seed}", index), fail_points)
    return chooser


def draw_plan(rng, depth, k, fail_points=None):
    """A plan with PCT's distribution: distinct random ranks, ``depth - 1``
    change points in ``1..k``, and (``fail_points``: failure injection on)
    a ``fail_nth`` as :class:`FailNth` draws it."""
    ranks = tuple(rng.sample(range(1, 1 << 16), PLAN_THREADS))
    change = tuple(sorted(rng.sample(range(1, max(k, 1) + 1), min(depth - 1, max(k, 1)))))
    fail = FailNth(rng, fail_points).nth if fail_points is not None else 0
    return Plan(ranks, change, fail)


class PlannedPCT:
    """PCT run from a :class:`Plan` (the guided and hypothesis strategies).

    ``keys`` lists the threads in order of first appearance (the index a
    rank applies to): a CPU or agent id, or ``("irq", line, cpu id)``.
    """

    name = "pct"

    def __init__(self, plan):
        self.plan = plan
        self.index = {}  # thread key -> its index in ``keys``
        self.keys = []
        self.prio = {}  # thread key -> priority now
        self.change = list(plan.change)
        self.low = 0
        self.fail_seen = 0

    def _new(self, key):
        i = len(self.keys)
        self.index[key] = i
        self.keys.append(key)
        ranks = self.plan.ranks
        p = self.prio[key] = ranks[i] if i < len(ranks) else 0
        return p

    def choose(self, sched, cur, opts):
        change = self.change
        if change and sched.points >= change[0] and cur is not None:
            while change and sched.points >= change[0]:
                change.pop(0)
            if cur.id not in self.prio:
                self._new(cur.id)  # first seen here: it takes the next rank all the same
            self.low -= 1
            self.prio[cur.id] = self.low
        return highest(opts, self.prio, self._new)

    def fail(self, sched, cur, call):
        self.fail_seen += 1
        return 1 if self.fail_seen == self.plan.fail else 0


class BoundedExhaustive:
    """Stateless depth-first enumeration under a preemption bound.

    A work item is a prefix of decisions; running it chooses 0 beyond the
    prefix and records, at every decision, how many options there were and
    whether choosing another option there is a preemption: keeping the
    current CPU was one of them and the point is not a yield point (CHESS
    does not count a switch where a CPU yields).  Every alternative after
    the prefix becomes a new work item, in this bound if it costs no more
    preemptions than allowed, else in the next bound's queue.  Each schedule
    is therefore run exactly once.  A failure point (failure injection)
    is a decision of two options, succeed or fail, and failing costs one,
    as a preemption does: bound 1 tries every single failure of the
    schedule without preemptions, as a ``fail_nth`` loop over n does.
    """

    name = "exhaustive"

    def __init__(self, max_bound=2):
        self.max_bound = max_bound
        self.bound = 0
        self.queue = [[]]  # work items of the current bound
        self.next_queue = []
        self.exhausted = False
        self._prefix = None
        self._trace = None

    def next_run(self):
        """Prepare the next work item; False when the space is exhausted."""
        while not self.queue:
            if not self.next_queue or self.bound >= self.max_bound:
                self.exhausted = True
                return False
            self.bound += 1
            self.queue, self.next_queue = self.next_queue, []
        self._prefix = self.queue.pop()
        self._trace = []
        return True

    def done(self):
        """No schedule within ``max_bound`` is left to run."""
        return not self.queue and (not self.next_queue or self.bound >= self.max_bound)

    def choose(self, sched, cur, opts):
        i = len(self._trace)
        d = self._prefix[i] if i < len(self._prefix) else 0
        preemptable = (
            cur is not None and opts[0][0] is cur and opts[0][1] is None and sched.yield_point != sched.points
        )
        self._trace.append((len(opts), preemptable))
        return d

    def fail(self, sched, cur, call):
        i = len(self._trace)
        d = self._prefix[i] if i < len(self._prefix) else 0
        self._trace.append((2, True))  # failing costs one, as a preemption
        return 1 if d else 0

    def finish_run(self):
        """Queue the alternatives of the run just finished."""
        prefix, trace = self._prefix, self._trace
        used = 0
        for i, (n, preemptable) in enumerate(trace):
            d = prefix[i] if i < len(prefix) else 0
            if i >= len(prefix):
                for alt in range(n - 1, 0, -1):
                    cost = used + (1 if preemptable else 0)
                    item = list(prefix) + [0] * (i - len(prefix)) + [alt]
                    (self.queue if cost <= self.bound else self.next_queue).append(item)
            if preemptable and d != 0:
                used += 1
