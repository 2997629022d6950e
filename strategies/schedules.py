"""Schedules for Hypothesis: decision lists, PCT parameters, and plans a chooser follows.

Three ways to describe a schedule, each drawn up front (a draw per
scheduler decision is ten times slower and shrinks worse) and each turned
into a chooser that the engine runs deterministically; the decisions that
run records are a plain :class:`stress.choosers.Replay` schedule:

* a **decision list** (:func:`decision_lists`, :func:`sparse_decisions`):
  decision ``d`` picks option ``d % len(options)``, 0 keeps the current CPU,
  past the end is 0.  Both shrink toward fewer and smaller decisions, that
  is fewer preemptions; the sparse form draws ``(gap, choice)`` pairs, so a
  random example has a handful of preemptions instead of one per point.
* **PCT parameters** (:class:`PCTParams`, :func:`pct_plans`, chooser
  :class:`PCTPlan`): depth, change points and actor priorities, drawn by
  Hypothesis instead of a random generator.  The simplest plan (depth 1,
  every priority 0) never preempts.
* a **segment plan** (:class:`SegmentPlan`, :func:`segment_plans`): "let
  CPU c run n steps", "deliver an interrupt on CPU c", "walk n decisions
  at random from seed s", "fail CPU c's next call" (failure injection) -
  what the stateful machine (:mod:`strategies.machine`) appends to; after
  its segments the rest of the run follows a *tail*: keep the current CPU,
  or a :class:`stress.choosers.Plan` run by :class:`stress.choosers.PlannedPCT`.
* **plan bytes** (:func:`plan_bytes`, :func:`decode_plan`): a PCT plan
  (thread ranks, change points, the failure to inject) as one fixed-size
  byte string, so that a fresh draw has PCT's distribution (uniform bytes)
  and shrinking moves toward all zeros, the schedule without preemption.

At a failure point (failure injection on) a decision list fails the call
as :class:`stress.choosers.Replay` reads it (``d % 64 == 1``), a PCT plan
never does, and a segment plan fails the calls its ``(FAIL, c)`` segments
ask for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import strategies as st

from stress.choosers import Plan, PlannedPCT
from stress.shrink import preemptions

__all__ = [
    "decision_lists",
    "sparse_decisions",
    "preemptions",
    "PCTParams",
    "pct_plans",
    "PCTPlan",
    "RUN",
    "IRQ",
    "WALK",
    "FAIL",
    "SegmentPlan",
    "segment_plans",
    "PlanLayout",
    "plan_bytes",
    "decode_plan",
]

#: a segment "run CPU c for n of its points": ``(RUN, c, n)``
RUN = "run"
#: a segment "deliver the next interrupt that CPU c can take": ``(IRQ, c)``
IRQ = "irq"
#: a segment "the next n decisions at random, from seed s": ``(WALK, s, n)``
WALK = "walk"
#: a segment "the next call CPU c makes that can fail, fails" (failure injection): ``(FAIL, c)``
FAIL = "fail"


def decision_lists(max_size=400, max_value=255):
    """Dense schedules: a decision per point, shrinking toward ``[]`` (no preemption)."""
    return st.lists(st.integers(0, max_value), max_size=max_size)


def _expand(pairs):
    out = []
    for gap, choice in pairs:
        out.extend([0] * gap)
        out.append(choice)
    return out


def sparse_decisions(max_preemptions=8, max_gap=64, max_choice=8):
    """Sparse schedules: up to ``max_preemptions`` switches, each after ``gap`` zeros.

    Shrinks toward fewer switches, earlier ones (smaller gaps) and smaller
    choices (the next CPU in id order).
    """
    pair = st.tuples(st.integers(0, max_gap), st.integers(1, max_choice))
    return st.lists(pair, max_size=max_preemptions).map(_expand)


# -- PCT ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PCTParams:
    """A PCT run, fully decided: no random generator left.

    ``priorities[i]`` is the priority of the i-th actor (CPU or interrupt
    line) in the order the scheduler first offers them, 0 past the end;
    the highest runs, ties go to the lowest option (the current CPU first).
    At the first point numbered ``>= change_points[j]`` the running CPU drops
    below every priority, as in PCT's ``depth - 1`` change points.
    """

    depth: int = 1
    change_points: tuple = ()
    priorities: tuple = ()

    def __post_init__(self):
        if self.depth < 1 or len(self.change_points) != self.depth - 1:
            raise ValueError(f"PCT depth {self.depth} needs {self.depth - 1} change points, got {self.change_points!r}")
        if list(self.change_points) != sorted(self.change_points):
            raise ValueError("change points must be sorted")
        if any(p < 0 for p in self.priorities):
            raise ValueError("priorities must be non-negative")


@st.composite
def pct_plans(draw, max_depth=3, max_points=256, max_actors=8):
    """PCT parameters, shrinking toward depth 1, early change points, priority 0."""
    depth = draw(st.integers(1, max_depth))
    changes = draw(st.lists(st.integers(1, max_points), min_size=depth - 1, max_size=depth - 1))
    prios = draw(st.lists(st.integers(0, max_actors), max_size=max_actors))
    return PCTParams(depth, tuple(sorted(changes)), tuple(prios))


class PCTPlan:
    """Chooser for :class:`PCTParams` (deterministic: the plan is the only input)."""

    name = "pct-plan"

    def __init__(self, params):
        self.params = params
        self.change = list(params.change_points)
        self.seen = {}  # actor key -> its index in first-offered order
        self.dropped = {}  # actor key -> negative priority after a change point
        self.low = 0

    @staticmethod
    def _key(cpu, irq):
        return cpu.id if irq is None else ("irq", irq)

    def _prio(self, key):
        p = self.dropped.get(key)
        if p is not None:
            return p
        i = self.seen.setdefault(key, len(self.seen))
        prios = self.params.priorities
        return prios[i] if i < len(prios) else 0

    def choose(self, sched, cur, opts):
        if self.change and cur is not None and sched.points >= self.change[0]:
            self.change.pop(0)
            self.low -= 1
            self.dropped[cur.id] = self.low
        best, best_p = 0, None
        for i, (cpu, irq) in enumerate(opts):
            p = self._prio(self._key(cpu, irq))
            if best_p is None or p > best_p:
                best, best_p = i, p
        return best

    def fail(self, sched, cur, call):
        return 0


# -- segment plans ------------------------------------------------------------------------


class SegmentPlan:
    """Chooser that follows segments: ``(RUN, cpu, n)``, ``(IRQ, cpu)``, ``(WALK, seed, n)``.

    * ``(RUN, c, n)``: at the next ``n`` decisions where CPU ``c`` can run,
      it runs.  If it cannot (blocked, finished) the segment ends at once.
    * ``(IRQ, c)``: arm CPU ``c``; at the first decision where an interrupt
      can be delivered on it (one is pending and it has interrupts on), it
      is, before anything else.
    * ``(WALK, s, n)``: the next ``n`` decisions pick any option, uniformly,
      from a random source seeded with ``s`` alone (a burst of random
      interleaving, replayed exactly).
    * ``(FAIL, c)``: arm CPU ``c`` for failure injection; the next failure
      point it reaches (an allocation, a ``dma_map_single``) fails.  Like
      ``IRQ`` it is armed when the plan reaches it and takes no decision.
    * After the last segment: option 0, keep the current CPU; or, with a
      ``tail`` (a :class:`stress.choosers.Plan`), PCT from that plan
      (:class:`stress.choosers.PlannedPCT`: its ranks apply to the threads
      in the order they first appear after the segments, its change points
      are point numbers of the whole run, its ``fail`` counts the failure
      points no ``FAIL`` segment claimed).

    CPU ids are those of the scheduler (program CPUs first, then agents).
    """

    name = "segments"

    def __init__(self, segments, tail=None):
        self.segments = [tuple(s) for s in segments]
        for s in self.segments:
            ok = (
                (s[0] == RUN and len(s) == 3 and s[2] >= 1)
                or (s[0] == IRQ and len(s) == 2)
                or (s[0] == WALK and len(s) == 3 and s[2] >= 1)
                or (s[0] == FAIL and len(s) == 2)
            )
            if not ok:
                raise ValueError(
                    f"bad segment {s!r}: want ({RUN!r}, cpu, n>=1), ({IRQ!r}, cpu), ({WALK!r}, seed, n>=1) or ({FAIL!r}, cpu)"
                )
        self.pos = 0
        self.left = None
        self.rng = None
        self.armed = []
        self.failing = []  # CPUs whose next failure point fails
        self.tail = PlannedPCT(tail) if tail is not None else None

    def _deliver(self, opts):
        for j, want in enumerate(self.armed):
            for i, (cpu, irq) in enumerate(opts):
                if irq is not None and cpu.id == want:
                    del self.armed[j]
                    return i
        return None

    def _next(self):
        self.pos, self.left, self.rng = self.pos + 1, None, None

    def _arm(self, seg):
        (self.armed if seg[0] == IRQ else self.failing).append(seg[1])
        self._next()

    def fail(self, sched, cur, call):
        # segments that take no decision and were reached: armed now
        while self.pos < len(self.segments) and self.segments[self.pos][0] in (IRQ, FAIL):
            self._arm(self.segments[self.pos])
        if cur is not None and cur.id in self.failing:
            self.failing.remove(cur.id)
            return 1
        return self.tail.fail(sched, cur, call) if self.tail is not None else 0

    def choose(self, sched, cur, opts):
        while True:
            i = self._deliver(opts) if self.armed else None
            if i is not None:
                return i
            if self.pos >= len(self.segments):
                return self.tail.choose(sched, cur, opts) if self.tail is not None else 0
            seg = self.segments[self.pos]
            if seg[0] == IRQ or seg[0] == FAIL:
                self._arm(seg)
                continue
            if self.left is None:
                self.left = seg[2]
            if seg[0] == WALK:
                if self.rng is None:
                    self.rng = random.Random(f"segment-walk:{seg[1]}")
                i = self.rng.randrange(len(opts))
            else:
                i = next((i for i, (cpu, irq) in enumerate(opts) if irq is None and cpu.id == seg[1]), None)
                if i is None:
                    self._next()
                    continue
            self.left -= 1
            if self.left == 0:
                self._next()
            return i


def segment_plans(cpus, max_segments=12, max_steps=8, max_seed=255, fail=False):
    """Segment plans over ``cpus`` CPUs, shrinking toward ``[]`` (no preemption);
    with ``fail``, ``(FAIL, c)`` segments too (failure injection)."""

    def build(t):
        kind, c, n, s = t
        if kind == RUN:
            return (RUN, c, n)
        if kind == IRQ:
            return (IRQ, c)
        if kind == FAIL:
            return (FAIL, c)
        return (WALK, s, n)

    # the same four choices for every kind of segment, so that shrinking
    # one into another moves nothing after it
    seg = st.tuples(
        st.sampled_from((RUN, IRQ, WALK, FAIL) if fail else (RUN, IRQ, WALK)),
        st.integers(0, cpus - 1),
        st.integers(1, max_steps),
        st.integers(0, max_seed),
    ).map(build)
    return st.lists(seg, max_size=max_segments)


# -- PCT plans as bytes ----------------------------------------------------------------------


class PlanLayout:
    """Where each part of a plan sits in its bytes.

    ``ranks`` bytes: the ranks of the threads in order of appearance (CPUs,
    agents, each delivery of an interrupt line to a CPU), one byte each;
    then 2 bytes per change point (``depth - 1`` of them: 0 is none, else a
    point uniform in ``1..k``); with failure injection 2 more: the lower
    half fails nothing, the upper half the n-th failure point, n uniform in
    ``1..F`` (``fail_nth`` in half the schedules, as PCT's ``FailNth``).
    ``k`` and ``F`` are given when the bytes are decoded, so the same bytes
    scale with the run lengths a search has seen.
    """

    def __init__(self, depth=3, fail=False, ranks=16):
        self.ranks = ranks
        self.changes = max(depth - 1, 0)
        self.fail = bool(fail)
        self.size = ranks + 2 * self.changes + (2 if fail else 0)


def plan_bytes(layout):
    """A plan's bytes (all zeros: equal ranks, no change point, no failure: no preemption)."""
    return st.binary(min_size=layout.size, max_size=layout.size)


def decode_plan(layout, data, k, fail_points=None):
    """The :class:`stress.choosers.Plan` of ``data`` for runs of about ``k`` points
    (and ``fail_points`` failure points, failure injection on)."""
    u16 = lambda i: (data[i] << 8) | data[i + 1]  # noqa: E731
    ranks = tuple(data[: layout.ranks])
    while ranks and ranks[-1] == 0:  # past the end of ranks is rank 0: the same plan, shorter
        ranks = ranks[:-1]
    change = []
    for j in range(layout.changes):
        v = u16(layout.ranks + 2 * j)
        if v:
            change.append(1 + ((v - 1) * max(k, 1) >> 16))
    fail = 0
    if layout.fail and fail_points:
        v = u16(layout.ranks + 2 * layout.changes)
        if v >= 0x8000:
            fail = 1 + ((v - 0x8000) * fail_points >> 15)
    return Plan(ranks, tuple(sorted(change)), fail)
