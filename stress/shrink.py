"""Delta debugging of a failing schedule (for random, PCT and exhaustive finds).

A schedule is a list of decisions where 0 means "keep the current CPU".  We
look for a shorter list with fewer non-zero entries that still ends in the
same violation kind: first the shortest failing prefix (past its end a
schedule keeps going without preemptions), then zeroing chunks of
decisions, halving the chunk size down to single decisions (ddmin over the
preemptions).  Every accepted step replays the schedule, so the result is
always a schedule that fails; the recorded decisions of that replay replace
the candidate, so the result is normalised (each index < its option count).
"""

from __future__ import annotations

from .engine import replay_decisions

__all__ = ["shrink_decisions", "preemptions"]

MAX_REPLAYS = 400


def preemptions(decisions):
    return sum(1 for d in decisions if d)


def shrink_decisions(scenario, decisions, kind, opts, max_replays=MAX_REPLAYS):
    budget = [max_replays]

    def fails(candidate):
        if budget[0] <= 0:
            return None
        budget[0] -= 1
        out = replay_decisions(scenario, candidate, **opts)
        return out.decisions if out.kind == kind else None

    best = list(decisions)
    # 1. shortest failing prefix (binary search on the length)
    lo, hi = 0, len(best)
    while lo < hi:
        mid = (lo + hi) // 2
        got = fails(best[:mid])
        if got is not None:
            hi = mid
        else:
            lo = mid + 1
    if hi < len(best):
        got = fails(best[:hi])
        if got is not None:
            best = got
    # 2. zero chunks of preemptions
    chunk = max(1, len(best) // 2)
    while chunk >= 1 and budget[0] > 0:
        i = 0
        changed = False
        while i < len(best) and budget[0] > 0:
            window = best[i : i + chunk]
            if any(window):
                cand = best[:i] + [0] * len(window) + best[i + chunk :]
                got = fails(cand)
                if got is not None and (preemptions(got), len(got)) < (preemptions(best), len(best)):
                    best = got
                    changed = True
            i += chunk
        if not changed:
            if chunk == 1:
                break
            chunk //= 2
    # trailing zeros carry no information
    while best and best[-1] == 0:
        best.pop()
    return best
