"""What a soak has found and done, on disk: ``state.json``, ``findings.json``, ``reports/``.

``SOAKDIR/state.json`` is the one source of truth.  It holds the options
the soak runs with, the batches completed, the totals and every signature
found with its count, and it is replaced atomically (temporary file, fsync,
``os.replace``, fsync of the directory) after each batch result is
recorded.  So:

* a batch's schedules, finds and counts enter the soak exactly when it is
  marked done, in the same write: a soak killed at any instant and resumed
  re-runs only the batches that were not done and counts nothing twice;
* a signature's report (``reports/<slug>.json`` and ``.txt``, written
  atomically) is on disk before the state naming it: a report path in the
  state always exists;
* ``findings.json`` (``{signature: {kind, report, count, first, last}}``) is
  a view of the state for readers, rewritten (atomically) after it; after a
  crash it may lag one batch behind until the soak is resumed.

Batches done are stored compactly: ``done_below`` (every batch under it is
done) and ``done`` (the others, sorted); ``partial`` maps a batch clipped
by the schedule limit to where it stopped, so a resumed soak with a larger
limit runs only the rest of it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field

from ..report import dumps, report_text
from .signature import slug

__all__ = ["FORMAT", "VERSION", "SoakState", "StateError", "atomic_write", "write_report", "load_state", "save_state"]

FORMAT = "iommu-stress-soak"
VERSION = 1
STATE = "state.json"
FINDINGS = "findings.json"
REPORTS = "reports"


class StateError(ValueError):
    """A state file that is not a soak's (one line, for the CLI)."""


def atomic_write(path, text):
    """Replace ``path`` with ``text``: never a partial file, durable once it returns."""
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix="-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def write_report(soakdir, sig, report):
    """Write ``report`` as ``reports/<slug>.json`` and ``.txt``; returns the JSON path relative to ``soakdir``."""
    name = slug(sig)
    os.makedirs(os.path.join(soakdir, REPORTS), exist_ok=True)
    rel = os.path.join(REPORTS, name + ".json")
    atomic_write(os.path.join(soakdir, REPORTS, name + ".txt"), report_text(report))
    atomic_write(os.path.join(soakdir, rel), dumps(report))
    return rel


@dataclass
class SoakState:
    """The contents of ``state.json`` (see the module docstring)."""

    options: dict  # target, strategy, seed, checkers, max_steps, pct_depth, batch
    limits: dict = field(default_factory=lambda: {"schedules": None, "duration_s": None})
    done_below: int = 0
    done: set = field(default_factory=set)
    partial: dict = field(default_factory=dict)  # batch -> stop of a clipped batch
    totals: dict = field(default_factory=lambda: {"schedules": 0, "points": 0, "batches": 0, "elapsed_s": 0.0})
    findings: dict = field(default_factory=dict)
    coverage: dict = field(default_factory=lambda: {"ops": {}, "overlaps": {}, "functions": {}, "lock_edges": []})
    sessions: int = 0

    def is_done(self, k):
        return k < self.done_below or k in self.done

    def mark_done(self, k, stop, full):
        """Batch ``k`` is done up to ``stop``; ``full`` when that is its whole range."""
        if not full:
            self.partial[k] = stop
            return
        self.partial.pop(k, None)
        self.done.add(k)
        while self.done_below in self.done:
            self.done.discard(self.done_below)
            self.done_below += 1

    def to_json(self):
        return {
            "format": FORMAT,
            "version": VERSION,
            "options": self.options,
            "limits": self.limits,
            "done_below": self.done_below,
            "done": sorted(self.done),
            "partial": {str(k): v for k, v in sorted(self.partial.items())},
            "totals": self.totals,
            "findings": self.findings,
            "coverage": self.coverage,
            "sessions": self.sessions,
        }

    @classmethod
    def from_json(cls, data):
        return cls(
            options=data["options"],
            limits=data.get("limits") or {"schedules": None, "duration_s": None},
            done_below=int(data.get("done_below", 0)),
            done=set(data.get("done", [])),
            partial={int(k): int(v) for k, v in (data.get("partial") or {}).items()},
            totals=data["totals"],
            findings=data.get("findings") or {},
            coverage=_coverage(data.get("coverage")),
            sessions=int(data.get("sessions", 0)),
        )


def _coverage(data):
    """A state's ``coverage``; the keys an older state lacks start empty."""
    cov = dict(data or {})
    for key in ("ops", "overlaps", "functions"):
        cov.setdefault(key, {})
    cov.setdefault("lock_edges", [])
    return cov


def load_state(soakdir):
    """The :class:`SoakState` of ``soakdir``, or None when it holds no soak."""
    path = os.path.join(soakdir, STATE)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise StateError(f"{path}: cannot read the soak state: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateError(f"{path}: not an iommu-stress soak state")
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        raise StateError(f"{path}: soak state version {data.get('version')!r} is newer than this tool reads ({VERSION})")
    try:
        return SoakState.from_json(data)
    except (KeyError, TypeError, ValueError) as e:
        raise StateError(f"{path}: malformed soak state ({e})") from None


def save_state(soakdir, state):
    """Write ``state.json``, then the ``findings.json`` view (both atomic)."""
    atomic_write(os.path.join(soakdir, STATE), json.dumps(state.to_json(), sort_keys=True) + "\n")
    atomic_write(os.path.join(soakdir, FINDINGS), json.dumps(state.findings, indent=1, sort_keys=True) + "\n")
