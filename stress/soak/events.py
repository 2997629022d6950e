"""A soak's event log: ``SOAKDIR/events.jsonl``, one JSON object per line.

Written through structlog (processors are plain functions, as structlog
wants them).  Every event has ``event`` (its name), ``v`` (the schema
version, :data:`SCHEMA`), ``time`` (ISO 8601, UTC) and ``tool``; the rest
is per event (see the README's table): ``soak_start``, ``batch``, ``find``,
``repeat``, ``worker_lost``, ``checkpoint``, ``soak_end``.  ``hunt --log``
writes the same schema: ``hunt_start``, ``find``, ``hunt_end``.

Guarantees:

* each line is flushed to the kernel when it is logged, so killing the soak
  (even SIGKILL) loses at most the line being written;
* :func:`open_events` appends after repairing a torn last line (it adds the
  missing newline), so a resumed soak never glues its first event onto the
  fragment of the killed one;
* :func:`read_events` skips a line that is not a JSON object (a fragment
  left by a killed writer) and counts it, never raising.

Logging costs one line per batch (and per find), never one per schedule.
"""

from __future__ import annotations

import json
import os

import structlog


__all__ = ["SCHEMA", "EVENTS", "HUNT_EVENTS", "open_events", "read_events", "repair", "versions"]

#: the version of the event schema (bumped when a field changes meaning)
SCHEMA = 1

#: the event names a soak writes
EVENTS = ("soak_start", "batch", "find", "repeat", "worker_lost", "checkpoint", "soak_end")
#: the event names ``hunt --log`` writes (``find`` is the soak's, field for field)
HUNT_EVENTS = ("hunt_start", "find", "hunt_end")


def versions():
    """What ran: this tool's, Python's, Trio's and Hypothesis' versions."""
    import platform

    import hypothesis
    import trio

    from .. import __version__

    return {"tool": __version__, "python": platform.python_version(), "trio": trio.__version__, "hypothesis": hypothesis.__version__}


def _add_tool(logger, method, event_dict):
    from .. import __version__

    event_dict.setdefault("tool", __version__)
    return event_dict


def _add_schema(logger, method, event_dict):
    event_dict["v"] = SCHEMA
    return event_dict


def repair(path):
    """End ``path`` with a newline if a killed writer left a torn last line; True if it did."""
    try:
        with open(path, "rb+") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return False
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
            return True
    except FileNotFoundError:
        return False


class EventLog:
    """A bound structlog logger on an open, line-flushed file: ``log.event(name, **fields)``."""

    def __init__(self, path):
        repair(path)
        self.path = path
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.logger = structlog.wrap_logger(
            structlog.PrintLogger(self.file),  # prints each line with flush=True
            processors=[
                _add_schema,
                _add_tool,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
        )

    def event(self, name, **fields):
        self.logger.msg(name, **fields)

    def close(self):
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()


def open_events(path):
    """The soak's :class:`EventLog` appending to ``path`` (created if missing)."""
    return EventLog(path)


def read_events(path):
    """``(events, bad_lines)``: every JSON-object line of ``path``, and how many were not."""
    events, bad = [], 0
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return events, bad
    with f:
        for raw in f:
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                bad += 1
                continue
            if isinstance(obj, dict) and isinstance(obj.get("event"), str):
                events.append(obj)
            else:
                bad += 1
    return events, bad
