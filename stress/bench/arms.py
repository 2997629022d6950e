"""The strategies the campaign compares: one :class:`Arm` per column.

An arm is a strategy of :func:`stress.engine.explore` with its options:
``random``, ``pct-d1`` .. ``pct-d3`` (PCT with that bug depth), ``hypothesis``,
``guided`` (listed only while ``"guided" in stress.engine.STRATEGIES``, so
the campaign runs before and after it exists) and ``exhaustive`` (bound 2;
on a driver workload it walks the schedules of the seed's *first program*
only, so its column says whether that program's schedules hold the bug
within the budget, not whether the strategy finds it in general).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Arm", "all_arms", "arm_names", "find_arms", "EXHAUSTIVE_BOUND"]

#: the preemption bound of the exhaustive arm (hunt's default)
EXHAUSTIVE_BOUND = 2


@dataclass(frozen=True)
class Arm:
    """One strategy with its options, as explore takes them."""

    name: str  # the column: "pct-d2"
    strategy: str  # explore's strategy
    pct_depth: int = 3
    bound: int = EXHAUSTIVE_BOUND
    label: str = ""  # the column heading, when it says more than the name

    def heading(self):
        return self.label or self.name

    def explore_options(self):
        return {"strategy": self.strategy, "pct_depth": self.pct_depth, "bound": self.bound}


def all_arms():
    """Every arm this engine has, in column order."""
    from ..engine import STRATEGIES

    arms = [
        Arm("random", "random"),
        Arm("pct-d1", "pct", pct_depth=1),
        Arm("pct-d2", "pct", pct_depth=2),
        Arm("pct-d3", "pct", pct_depth=3),
        Arm("hypothesis", "hypothesis"),
    ]
    if "guided" in STRATEGIES:
        arms.append(Arm("guided", "guided"))
    arms.append(Arm("exhaustive", "exhaustive", label="exhaustive (first program)"))
    return arms


def arm_names():
    return [a.name for a in all_arms()]


def find_arms(names):
    """The arms named (``pct`` names pct-d1..d3), in column order; ValueError naming the first unknown one."""
    arms = all_arms()
    wanted = set()
    for n in names:
        k = n.strip().lower()
        match = [a.name for a in arms if a.name == k or (k == "pct" and a.strategy == "pct")]
        if not match:
            raise ValueError(f"unknown strategy {n!r} (choose from pct, {', '.join(arm_names())})")
        wanted.update(match)
    return [a for a in arms if a.name in wanted]
