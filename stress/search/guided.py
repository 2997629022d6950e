"""The coverage-guided strategy (``--strategy guided``): PCT plus a corpus.

Schedule ``i`` is either *fresh* - PCT's own schedule ``i``: the concrete
scenario it runs (:func:`stress.scenarios.concretize`) under its chooser
(:func:`stress.choosers.pct_chooser`), kept as the :class:`~stress.choosers.Plan`
that runs it again - or a *child* of a corpus entry: the entry's plan
mutated (:mod:`.mutate`: a preemption moved, added or dropped, two threads'
priorities swapped, an interrupt moved to another CPU or fired earlier) or,
in :data:`REDRAW_RATE` of them, drawn anew (:func:`stress.choosers.draw_plan`),
and in :data:`PROGRAM_RATE` of the children
the entry's programs mutated too (an operation added or dropped, or one
CPU's program spliced from another entry's) when the scenario family can
(``mutate`` and ``concrete``, :class:`stress.workload.DriverWorkload`).
A parent whose run reached a near miss has its programs *completed* in
:data:`COMPLETE_RATE` of its children, where the family can
(``complete``): the operations that turn the near miss into a finding on a
driver that has the bug (translation back on, one DMA to the IOVA) go in
right after the operation that reached it, on its CPU
(``Outcome.hints``).
A run that exercises an interleaving feature (:mod:`.coverage`) no earlier
run had joins the corpus, and so does a run that came one step short of a
finding (an oracle's near miss, ``Outcome.hazards``): those are the parents
of :data:`~.corpus.HAZARD_RATE` of the children, where one more DMA in the
right place is the bug.  Fresh schedules keep a share of the search
between :data:`FRESH_RATE` and its complement (and the first
:data:`WARMUP` schedules, so a search starts as PCT's does), leaning toward whichever of
fresh schedules and children reaches new coverage more often
(:meth:`Guided.fresh_rate`), so guided never stops exploring the way PCT
does; the corpus makes the rest dig where new interleavings were.

Guarantees (as every strategy): schedule ``i``'s choices come from a random
source of ``(seed, i)`` and the corpus as it stands before it, so the same
seed and options give the same search; every run is a PCT chooser over a
concrete scenario whose target names its programs, so a find is replayed,
shrunk and reported exactly as a PCT find is (the recorded decisions, not
the plan, are the report's schedule).
"""

from __future__ import annotations

from ..choosers import PlannedPCT, draw_plan, make_rng, pct_chooser
from ..scenarios import concretize
from .corpus import Corpus, Entry
from .mutate import mutate_plan

__all__ = ["Guided", "WARMUP", "FRESH_RATE", "PROGRAM_RATE", "REDRAW_RATE", "COMPLETE_RATE", "ADAPT"]

#: the share of schedules drawn fresh (as PCT draws them) once the corpus has
#: entries; with :data:`ADAPT` the least (and 1 - it the most)
FRESH_RATE = 0.4
#: the first schedules are all fresh: a search's start is PCT's own (the
#: bugs PCT finds in a few dozen schedules are found as soon as PCT does)
WARMUP = 16
#: the share of children whose programs mutate too (scenario families that can)
PROGRAM_RATE = 0.3
#: the share of children that run their parent's program under a new plan
#: (independent PCT trials of a program that reached new coverage)
REDRAW_RATE = 0.5
#: the share of a near-miss parent's children whose programs are completed
#: where the near miss happened (scenario families that can)
COMPLETE_RATE = 0.5
#: adapt the share of fresh schedules to where new coverage comes from (:meth:`Guided.fresh_rate`)
ADAPT = True


class Guided:
    """Plans schedules (:meth:`next`) and learns from their outcomes (:meth:`learn`).

    ``corpus`` (a :class:`~.corpus.Corpus`) is where the search starts:
    empty for a hunt, what the soak has gathered so far for a soak's batch.
    ``added`` lists the entries this search added, in order.
    """

    name = "guided"

    def __init__(self, scenario, seed, pct_depth, corpus=None):
        self.scenario = scenario
        self.seed = seed
        self.depth = pct_depth
        self.corpus = corpus if corpus is not None else Corpus()
        self.added = []
        self.origin = {}  # schedule index -> the schedule whose program it runs (or mutates); None: fresh
        self.arms = {"fresh": [0, 0], "child": [0, 0]}  # [runs that reached new coverage, runs]
        family = scenario if getattr(scenario, "for_schedule", None) is not None else None
        self.programs = family if callable(getattr(family, "mutate", None)) and callable(getattr(family, "concrete", None)) else None
        self.complete = getattr(self.programs, "complete", None)

    def next(self, index, k, fail_points=None):
        """``(concrete scenario, its target, chooser)`` of schedule ``index``."""
        rng = make_rng(f"guided:{self.seed}", index)
        corpus = self.corpus
        if index < WARMUP or not corpus.entries or rng.random() < self.fresh_rate():
            concrete, target = concretize(self.scenario, self.seed, index)
            self.origin[index] = None  # fresh: PCT's schedule ``index``
            return concrete, target, pct_chooser(self.seed, index, self.depth, k, fail_points)
        parent = corpus.pick(rng)
        if rng.random() < REDRAW_RATE:  # the parent's program under a new PCT plan
            plan = draw_plan(rng, self.depth, k, fail_points)
        else:
            plan = mutate_plan(parent.plan, parent.keys, rng, k, fail_points)
        self.origin[index] = parent.program
        if self.programs is not None and parent.target is not None:
            target = parent.target
            if parent.hints and self.complete is not None and rng.random() < COMPLETE_RATE:
                target = self.complete(target, parent.hints[rng.randrange(len(parent.hints))], rng)
            elif rng.random() < PROGRAM_RATE:
                target = self.programs.mutate(target, rng, corpus.pick(rng).target)
            return self.programs.concrete(target), target, PlannedPCT(plan)
        concrete, target = concretize(self.scenario, self.seed, parent.program)
        return concrete, target, PlannedPCT(plan)

    def fresh_rate(self):
        """The share of fresh schedules: :data:`FRESH_RATE`, or with
        :data:`ADAPT` the fresh arm's share of the runs that reached new
        coverage (each arm's rate with a prior of one in two), clipped to
        ``[FRESH_RATE, 1 - FRESH_RATE]``: the search leans toward whichever
        of fresh schedules and children finds new interleavings now."""
        if not ADAPT:
            return FRESH_RATE
        (fn, fr), (cn, cr) = self.arms["fresh"], self.arms["child"]
        f, c = (fn + 1) / (fr + 2), (cn + 1) / (cr + 2)
        return min(max(f / (f + c), FRESH_RATE), 1 - FRESH_RATE)

    def learn(self, index, target, chooser, out):
        """Keep schedule ``index`` in the corpus if it reached a feature no earlier run had."""
        program = self.origin.pop(index, index)
        arm = self.arms["fresh" if program is None else "child"]
        arm[1] += 1
        if program is None:
            program = index
        if not out.coverage:
            return None
        hazards = tuple(sorted(out.hazards or ()))
        hints = tuple(out.hints or ())
        entry = self.corpus.learn(
            out.coverage, lambda new: Entry(target, program, chooser.plan, tuple(chooser.keys), new, hazards, hints), hazards
        )
        if entry is not None:
            arm[0] += 1
            self.added.append(entry)
        return entry
