"""The figures of one campaign cell (a bug under an arm) from its jobs, one per seed.

:func:`summarize` gives, over the cell's seeds: how many found the bug,
and the median and 90th percentile of the schedules and of the seconds to
the first find.  A seed that missed counts as *beyond the budget*, not as
absent: a percentile that lands on a miss is None (shown as "> budget"),
so a strategy that finds a bug in 3 seeds of 10 never shows the median of
its 3 lucky seeds.  Percentiles interpolate linearly between neighbours
(the median of 10 seeds is the mean of the 5th and 6th), as
``statistics.median`` and ``numpy.percentile`` do.  A seed whose find the
engine could not place (``exact`` False) has no number: the percentiles are
over the other seeds and ``inexact`` counts it.  A job that failed
(``error``) counts as a miss and in ``errors``.
"""

from __future__ import annotations

import math

__all__ = ["quantile", "summarize"]


def quantile(values, q):
    """The ``q`` quantile (0..1) of ``values`` (may hold ``math.inf``), linear
    interpolation; None for no values or a quantile that touches an infinity."""
    xs = sorted(values)
    if not xs:
        return None
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    a, b = xs[lo], xs[hi]
    if math.isinf(a) or math.isinf(b):
        return None
    return a + (b - a) * (pos - lo)


def summarize(jobs):
    """The cell's figures (a dict) from its :class:`~stress.bench.job.JobResult` dicts."""
    known = [j for j in jobs if not (j["found"] and not j["exact"])]
    sched = [j["schedules"] if j["found"] else math.inf for j in known]
    secs = [j["seconds"] if j["found"] else math.inf for j in known]
    return {
        "seeds": len(jobs),
        "found": sum(1 for j in jobs if j["found"]),
        "median_schedules": quantile(sched, 0.5),
        "p90_schedules": quantile(sched, 0.9),
        "median_s": quantile(secs, 0.5),
        "p90_s": quantile(secs, 0.9),
        "inexact": sum(1 for j in jobs if j["found"] and not j["exact"]),
        "errors": sum(1 for j in jobs if j.get("error")),
        "budget": max((j["budget"] for j in jobs), default=None),
        "ran": sum(j["ran"] for j in jobs),
        "elapsed_s": sum(j["elapsed_s"] for j in jobs),
    }
