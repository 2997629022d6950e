"""What a search returns: the violations it found and what it covered."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Violation", "Result"]


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
    shrink_runs: int = 0  # runs spent shrinking finds inside the search (hypothesis), not schedules
    points: int = 0
    exhausted: bool = False
    stopped: bool = False  # ``stop()`` ended the search early (Ctrl-C)
    elapsed_s: float = 0.0
    #: the search's schedules up to and including the first violating one, and
    #: the wall time to it (before shrinking); None while nothing was found
    first_find_schedules: int | None = None
    first_find_s: float | None = None
    #: the same per kind: ``{kind: (schedules, seconds)}`` of the first search
    #: schedule that ended in a violation of that kind (never a shrinking run)
    first_finds: dict = field(default_factory=dict)
    #: interleaving coverage: every feature the search's schedules exercised
    #: (:mod:`stress.search.coverage`)
    coverage: set = field(default_factory=set)

    @property
    def coverage_counts(self):
        """``{kind: features}`` of :attr:`coverage` (lock, alias, overlap, func)."""
        from .search.coverage import counts

        return counts(self.coverage)

    @property
    def found(self):
        return bool(self.violations)
