"""A soak's interleaving coverage and guided corpus on disk.

* ``coverage.json`` - every interleaving feature the soak's batches reached
  (:mod:`stress.search.coverage`), a sorted JSON list, rewritten atomically
  when a batch adds some;
* ``corpus.jsonl`` - the guided strategy's corpus (:mod:`stress.search.corpus`),
  one entry per line, appended as batches add them.

Both are written before ``state.json`` marks the batch done, so a resumed
soak starts from at least what its done batches reached; a batch re-run
after a crash may append its entries twice (harmless: a duplicate entry is
one more parent to pick).  A torn last line (a kill mid-append) is skipped.
"""

from __future__ import annotations

import json
import os

from .findings import atomic_write

__all__ = ["CORPUS_SHARED", "load_features", "save_features", "load_corpus", "append_corpus"]

FEATURES = "coverage.json"
CORPUS = "corpus.jsonl"

#: the corpus entries handed to each guided batch (the most recent)
CORPUS_SHARED = 512


def load_features(soakdir):
    path = os.path.join(soakdir, FEATURES)
    try:
        with open(path) as f:
            return {tuple(x) for x in json.load(f)}
    except FileNotFoundError:
        return set()


def save_features(soakdir, features):
    atomic_write(os.path.join(soakdir, FEATURES), json.dumps(sorted(list(f) for f in features)) + "\n")


def load_corpus(soakdir):
    entries = []
    try:
        with open(os.path.join(soakdir, CORPUS)) as f:
            for line in f:
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:  # a torn last line
                    continue
    except FileNotFoundError:
        pass
    return entries


def append_corpus(soakdir, entries):
    with open(os.path.join(soakdir, CORPUS), "a") as f:
        f.write("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
        f.flush()
        os.fsync(f.fileno())
