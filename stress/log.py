"""Structured logs: JSON lines through structlog, for soaks and CI to analyse.

``hunt --log FILE`` appends one JSON object per event (``hunt_start``,
``violation``, ``hunt_end``) so that many hunts can be read back as one
table (``duckdb``: ``SELECT * FROM read_json_auto('hunts.jsonl')``).
Nothing is logged per preemption point: events are written per hunt.
"""

from __future__ import annotations

import structlog

__all__ = ["jsonl_logger"]


def _add_tool(logger, method, event_dict):
    """A processor, as structlog wants them: a plain function."""
    from . import __version__

    event_dict.setdefault("tool", __version__)
    return event_dict


def jsonl_logger(path):
    """A bound logger appending JSON lines to ``path`` (the file stays open)."""
    f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed with the process
    return structlog.wrap_logger(
        structlog.PrintLogger(f),
        processors=[
            structlog.processors.add_log_level,
            _add_tool,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
    )
