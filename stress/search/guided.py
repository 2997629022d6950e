"""The coverage-guided strategy (``--strategy guided``): PCT plus a corpus.

Schedule ``i`` is either *fresh* - the concrete scenario PCT's schedule
``i`` runs (:func:`stress.scenarios.concretize`) under a plan drawn with
PCT's distribution (:func:`stress.choosers.draw_plan`) - or a *child* of a
corpus entry: the entry's plan mutated (:mod:`.mutate`: a preemption moved,
added or dropped, two threads' priorities swapped, an interrupt moved to
another CPU or fired earlier), and in :data:`PROGRAM_RATE` of the children
the entry's programs mutated too (an operation added or dropped, or one
CPU's program spliced from another entry's) when the scenario family can
(``mutate`` and ``concrete``, :class:`stress.workload.DriverWorkload`).
A run that exercises an interleaving feature (:mod:`.coverage`) no earlier
run had joins the corpus.  Fresh schedules keep a share
(:data:`FRESH_RATE`) of the search, so guided never stops exploring the way
PCT does; the corpus makes the rest dig where new interleavings were.

Guarantees (as every strategy): schedule ``i``'s choices come from a random
source of ``(seed, i)`` and the corpus as it stands before it, so the same
seed and options give the same search; every run is a PCT chooser over a
concrete scenario whose target names its programs, so a find is replayed,
shrunk and reported exactly as a PCT find is (the recorded decisions, not
the plan, are the report's schedule).
"""

from __future__ import annotations

from ..choosers import PlannedPCT, draw_plan, make_rng
from ..scenarios import concretize
from .corpus import Corpus, Entry
from .mutate import mutate_plan

__all__ = ["Guided", "FRESH_RATE", "PROGRAM_RATE"]

#: the share of schedules drawn fresh (as PCT draws them) once the corpus has entries
FRESH_RATE = 0.25
#: the share of children whose programs mutate too (scenario families that can)
PROGRAM_RATE = 0.3
#: the share of children that run their parent's program under a new plan
#: (independent PCT trials of a program that reached new coverage)
REDRAW_RATE = 0.0


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
        self.origin = {}  # schedule index -> the schedule whose program it runs (or mutates)
        family = scenario if getattr(scenario, "for_schedule", None) is not None else None
        self.programs = family if callable(getattr(family, "mutate", None)) and callable(getattr(family, "concrete", None)) else None

    def next(self, index, k, fail_points=None):
        """``(concrete scenario, its target, chooser)`` of schedule ``index``."""
        rng = make_rng(f"guided:{self.seed}", index)
        corpus = self.corpus
        if not corpus.entries or rng.random() < FRESH_RATE:
            concrete, target = concretize(self.scenario, self.seed, index)
            self.origin[index] = index
            return concrete, target, PlannedPCT(draw_plan(rng, self.depth, k, fail_points))
        parent = corpus.pick(rng)
        if rng.random() < REDRAW_RATE:  # the parent's program under a new PCT plan
            plan = draw_plan(rng, self.depth, k, fail_points)
        else:
            plan = mutate_plan(parent.plan, parent.keys, rng, k, fail_points)
        self.origin[index] = parent.program
        if self.programs is not None and parent.target is not None:
            target = parent.target
            if rng.random() < PROGRAM_RATE:
                target = self.programs.mutate(target, rng, corpus.pick(rng).target)
            return self.programs.concrete(target), target, PlannedPCT(plan)
        concrete, target = concretize(self.scenario, self.seed, parent.program)
        return concrete, target, PlannedPCT(plan)

    def learn(self, index, target, chooser, out):
        """Keep schedule ``index`` in the corpus if it reached a feature no earlier run had."""
        program = self.origin.pop(index, index)
        if not out.coverage:
            return None
        entry = self.corpus.learn(out.coverage, lambda new: Entry(target, program, chooser.plan, tuple(chooser.keys), new))
        if entry is not None:
            self.added.append(entry)
        return entry
