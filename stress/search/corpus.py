"""The guided strategy's corpus: schedules that reached new interleaving coverage.

An :class:`Entry` is one (program, schedule) pair that exercised a feature
no earlier schedule of the search had: the concrete target it ran (a
driver workload's programs; None for a plain scenario) and the schedule
index whose program that is (or was mutated from), the :class:`Plan` its
PCT chooser followed, the threads that plan ranked (in order of
appearance, so a mutation can tell an interrupt delivery from a CPU) and
the features it was first to reach.

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

__all__ = ["Entry", "Corpus", "RECENT", "RARE_SAMPLE", "HAZARD_RATE", "HAZARDS"]

#: picks favour the entries added last (AFL's "favoured recent finds")
RECENT = 32
#: the share of picks among the recent entries (the rest: rare features)
RECENT_RATE = 0.5
#: features sampled per rare pick (the rarest of them chooses the parent)
RARE_SAMPLE = 8
#: the share of picks among the entries that reached an oracle's near miss
#: (``Outcome.hazards``), once there are any
HAZARD_RATE = 0.5
#: how many of the latest near-miss entries those picks choose from, and
#: how many runs that reached the same near misses and nothing new a corpus
#: keeps (a near miss common in some driver cannot flood a soak's corpus)
HAZARDS = 16


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
    features: tuple  # the features this entry was the first to reach
    hazards: tuple = ()  # the oracles' near misses its run reached (stress.search.coverage)
    hints: tuple = ()  # where it reached them: (kind, state, cpu, op ordinal, MMU, iova) (ditto)

    @property
    def new(self):
        return len(self.features)

    def to_json(self):
        return {
            "target": self.target,
            "program": self.program,
            "plan": self.plan.to_json(),
            "keys": [_key_json(k) for k in self.keys],
            "features": [list(f) for f in self.features],
            "hazards": [list(h) for h in self.hazards],
            "hints": [list(h) for h in self.hints],
        }

    @classmethod
    def from_json(cls, d):
        return cls(
            d["target"],
            d["program"],
            Plan.from_json(d["plan"]),
            tuple(_key(k) for k in d["keys"]),
            tuple(tuple(f) for f in d["features"]),
            tuple(tuple(h) for h in d.get("hazards", ())),
            tuple(tuple(h) for h in d.get("hints", ())),
        )


class Corpus:
    """The entries, every feature reached, and how often each was (``hits``)."""

    def __init__(self, entries=(), features=()):
        self.entries = []
        self.features = set(features)
        self.hits = dict.fromkeys(self.features, 1)
        self.first = {}  # feature -> the entry that first reached it
        self.order = []  # the features entries reached first, in that order (for picks)
        self.hazards = []  # the entries whose runs reached a near miss, in order
        self.by_hazard = {}  # near miss -> the entries whose runs reached it, in order
        self.hazard_hits = {}  # near miss -> runs of this process's searches that reached it (pick weights)
        self.near_only = {}  # near misses -> entries kept for them alone (no new feature)
        for e in entries:
            self._add(e)

    def __len__(self):
        return len(self.entries)

    def _add(self, entry):
        self.entries.append(entry)
        if entry.hazards:
            self.hazards.append(entry)
            for h in entry.hazards:
                self.by_hazard.setdefault(h, []).append(entry)
            if not entry.features:
                self.near_only[entry.hazards] = self.near_only.get(entry.hazards, 0) + 1
        for f in entry.features:
            if f not in self.first:
                self.first[f] = entry
                self.order.append(f)
                self.features.add(f)
                self.hits.setdefault(f, 1)

    def learn(self, features, make_entry, hazards=()):
        """Count ``features``' hits; add ``make_entry(new features)`` if any is
        new or the run reached near misses (``hazards``, a sorted tuple) that
        fewer than :data:`HAZARDS` entries were kept for alone; the entry or None."""
        hits = self.hits
        for f in features:
            hits[f] = hits.get(f, 0) + 1
        for h in hazards:
            self.hazard_hits[h] = self.hazard_hits.get(h, 0) + 1
        new = features - self.features
        if not new and (not hazards or self.near_only.get(hazards, 0) >= HAZARDS):
            return None
        self.features |= new
        entry = make_entry(tuple(sorted(new)))
        self._add(entry)
        return entry

    def pick(self, rng):
        """A parent: in :data:`HAZARD_RATE` of the picks, once there are any, one
        of the :data:`HAZARDS` latest entries that reached an oracle's near miss
        (short of a finding: dig there), the near miss drawn first among
        those reached, each with a weight of one over the runs that reached
        it (a common one, a line filled, does not crowd out a rare one, a
        lost flush); else half the time one of the
        :data:`RECENT` last entries, else the entry that first reached the
        rarest of :data:`RARE_SAMPLE` features drawn at random (FairFuzz's rare
        branches: dig where few runs went)."""
        entries = self.entries
        if self.hazards and rng.random() < HAZARD_RATE:
            near = list(self.by_hazard)
            weights = [1 / self.hazard_hits.get(h, 1) for h in near]
            x = rng.random() * sum(weights)
            i = 0
            while i < len(near) - 1 and x >= weights[i]:
                x -= weights[i]
                i += 1
            hazards = self.by_hazard[near[i]]
            return hazards[-1 - rng.randrange(min(HAZARDS, len(hazards)))]
        if rng.random() < RECENT_RATE or not self.order:
            return entries[-1 - rng.randrange(min(RECENT, len(entries)))]
        order, hits = self.order, self.hits
        rare = min((order[rng.randrange(len(order))] for _ in range(RARE_SAMPLE)), key=lambda f: hits[f])
        return self.first[rare]
