"""The guided strategy's corpus: schedules that reached new interleaving coverage.

An :class:`Entry` is one (program, schedule) pair that exercised a feature
no earlier schedule of the search had: the concrete target it ran (a
driver workload's programs; None for a plain scenario) and the schedule
index whose program that is (or was mutated from), the :class:`Plan` its
PCT chooser followed, the threads that plan ranked (in order of
appearance, so a mutation can tell an interrupt delivery from a CPU) and
how many features it was first to reach.

A :class:`Corpus` keeps the entries in the order they were added and the
union of their features.  It is plain data: ``to_json``/``from_json``
carry an entry between processes (a soak's workers get the corpus with
each batch and send back what they added; the soak keeps it in its
directory), and :meth:`Corpus.pick` chooses a parent from a random source
the caller owns, so a search is a function of its seed and the corpus it
started from.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..choosers import Plan

__all__ = ["Entry", "Corpus", "RECENT"]

#: picks favour the entries added last (AFL's "favoured recent finds")
RECENT = 32


def _key_json(key):
    return list(key) if isinstance(key, tuple) else key


def _key(obj):
    return tuple(obj) if isinstance(obj, list) else obj


@dataclass
class Entry:
    target: dict | None  # the concrete target (None: the search's own scenario)
    program: int  # the schedule whose program it runs (concretize), or whose program it mutates
    plan: Plan
    keys: tuple  # the threads the plan ranked, in order of appearance
    new: int  # features this entry was the first to reach

    def to_json(self):
        return {"target": self.target, "program": self.program, "plan": self.plan.to_json(), "keys": [_key_json(k) for k in self.keys], "new": self.new}

    @classmethod
    def from_json(cls, d):
        return cls(d["target"], d["program"], Plan.from_json(d["plan"]), tuple(_key(k) for k in d["keys"]), d["new"])


class Corpus:
    def __init__(self, entries=(), features=()):
        self.entries = list(entries)
        self.features = set(features)

    def __len__(self):
        return len(self.entries)

    def learn(self, features, make_entry):
        """Add ``make_entry(new)`` if ``features`` has any not seen yet; the entry or None."""
        new = len(features - self.features)
        if not new:
            return None
        self.features |= features
        entry = make_entry(new)
        self.entries.append(entry)
        return entry

    def pick(self, rng):
        """A parent: half the time one of the :data:`RECENT` last entries,
        else one weighted by the features it was first to reach."""
        entries = self.entries
        if rng.random() < 0.5:
            return entries[-1 - rng.randrange(min(RECENT, len(entries)))]
        total = sum(e.new for e in entries)
        x = rng.randrange(total)
        for e in entries:
            x -= e.new
            if x < 0:
                return e
        return entries[-1]  # pragma: no cover - the weights add up to total
