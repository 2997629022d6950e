"""Paths on the command line -> one DuckDB table ``ev`` over their JSON lines.

A PATH is a soak directory (its ``events.jsonl``; report paths are relative
to it), an event log file (``SOAKDIR/events.jsonl``, a ``hunt --log`` file, a
soak still running: what is there is read), or ``LABEL=PATH`` to name a run.
Lines that are not events (torn by a killed writer, garbage) are skipped and
counted per run; an empty log gives empty tables.  A missing path, or a file
with lines but not one event, is a :class:`~stress.errors.UsageError`.
"""

from __future__ import annotations

import datetime
import decimal
import math
import os
from dataclasses import dataclass, field

import duckdb

from ..errors import UsageError
from . import queries as Q

__all__ = ["Run", "Analysis", "resolve", "load", "bucket_seconds"]


@dataclass
class Run:
    label: str
    arg: str  # as given
    log: str  # the events file
    base: str  # directory report paths are relative to (the soak dir, or the log's directory)
    lines: int = 0  # non-empty lines
    events: int = 0  # lines that are events
    extra: dict = field(default_factory=dict)

    @property
    def bad_lines(self):
        return self.lines - self.events


def resolve(arg):
    """``(label, log file, base dir)`` of one PATH argument; :class:`UsageError` if missing."""
    label, path = arg, arg
    if not os.path.exists(arg) and "=" in arg:
        label, path = arg.split("=", 1)
        if not label:
            label = path
    if os.path.isdir(path):
        log = os.path.join(path, "events.jsonl")
        if not os.path.isfile(log):
            raise UsageError(f"{path}: not a soak directory (no events.jsonl)")
        return label, log, path
    if os.path.isfile(path):
        return label, path, os.path.dirname(path) or "."
    raise UsageError(f"{path}: no such file or directory")


def _value(v):
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _value(x) for k, x in v.items()}
    return v


class Analysis:
    """An in-memory DuckDB connection holding ``raw`` and ``ev`` for some runs."""

    def __init__(self, con, runs):
        self.con = con
        self.runs = runs

    def query(self, name, **params):
        """Rows of :data:`stress.analyze.queries.QUERIES` ``[name]`` as dicts (JSON-ready values)."""
        sql = Q.QUERIES[name][1]
        cur = self.con.execute(sql, params or None)
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, (_value(v) for v in row))) for row in cur.fetchall()]
        if "run" in cols and len(self.runs) > 1:  # runs in command-line order, the SQL's order within a run
            order = {r.label: i for i, r in enumerate(self.runs)}
            rows.sort(key=lambda r: order.get(r["run"], len(order)))
        return rows

    def run(self, label):
        return next(r for r in self.runs if r.label == label)


def load(args):
    """:class:`Analysis` of the PATH arguments ``args`` (one run each, in order)."""
    if not args:
        raise UsageError("analyze: give at least one soak directory or event log")
    runs, seen = [], {}
    for arg in args:
        label, log, base = resolve(arg)
        if label in seen:
            seen[label] += 1
            label = f"{label} ({seen[label]})"
        else:
            seen[label] = 1
        runs.append(Run(label=label, arg=arg, log=log, base=base))
    con = duckdb.connect(":memory:")
    cols = ", ".join(f'"{c}" {t}' for c, t in Q.EVENT_COLUMNS.items())
    con.execute(f"CREATE TABLE raw (run VARCHAR, line_no BIGINT, {cols})")
    for r in runs:
        try:
            r.lines, r.events = con.execute(Q.for_path(Q.COUNT_LINES, r.log)).fetchone()
        except duckdb.Error as e:
            raise UsageError(f"{r.log}: cannot read: {str(e).splitlines()[0]}") from None
        if r.lines and not r.events:
            raise UsageError(f"{r.log}: not an event log (no line is a JSON object with an \"event\")")
        if r.events:
            try:
                con.execute("INSERT INTO raw SELECT $run AS run, * FROM (" + Q.for_path(Q.READ_EVENTS, r.log) + ")", {"run": r.label})
            except duckdb.Error as e:
                raise UsageError(f"{r.log}: cannot read: {str(e).splitlines()[0]}") from None
    con.execute("CREATE TABLE ev AS " + Q.EV_SELECT)
    return Analysis(con, runs)


_NICE = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400)


def bucket_seconds(elapsed_s, buckets=30):
    """A round bucket width giving about ``buckets`` buckets over ``elapsed_s`` seconds."""
    want = (elapsed_s or 0) / buckets
    return next((b for b in _NICE if b >= want), _NICE[-1])
