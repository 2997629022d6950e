"""Delta debugging of a failing schedule (for random, PCT and exhaustive finds).

A schedule is a list of decisions where 0 means "keep the current CPU".  We
look for a shorter list with fewer non-zero entries that still ends in the
same violation kind: first the shortest failing prefix (past its end a
schedule keeps going without preemptions), then zeroing chunks of
decisions, halving the chunk size down to single decisions (ddmin over the
preemptions).  Every accepted step replays the schedule, so the result is
always a schedule that fails.  A decision at a failure point (failure
injection) is 1 for a failed call and 0 for none, so zeroing it drops a
failure the violation does not need.
"""

from __future__ import annotations

from .run import replay_decisions

__all__ = ["shrink_decisions", "preemptions"]

MAX_REPLAYS = 400


def preemptions(decisions):
    return sum(1 for d in decisions if d)


def shrink_decisions(scenario, decisions, kind, opts, max_replays=MAX_REPLAYS):
    budget = [max_replays]

    def fails(candidate):
        if budget[0] <= 0:
            return False
        budget[0] -= 1
        return replay_decisions(scenario, candidate, **opts).kind == kind

    # Candidates only ever truncate or zero the schedule: the result is never
    # longer, and never has more preemptions, than what it came from.
    best = list(decisions)
    # 1. shortest failing prefix (binary search on the length)
    lo, hi = 0, len(best)
    while lo < hi:
        mid = (lo + hi) // 2
        if fails(best[:mid]):
            hi = mid
        else:
            lo = mid + 1
    best = best[:hi]
    # 2. zero chunks of preemptions, halving the chunk down to one decision
    chunk = max(1, len(best) // 2)
    while budget[0] > 0:
        changed = False
        for i in range(0, len(best), chunk):
            window = best[i : i + chunk]
            if any(window):
                cand = best[:i] + [0] * len(window) + best[i + chunk :]
                if fails(cand):
                    best = cand
                    changed = True
            if budget[0] <= 0:
                break
        if not changed:
            if chunk == 1:
                break
            chunk //= 2
    # trailing zeros carry no information (past its end a schedule keeps going)
    while best and best[-1] == 0:
        best.pop()
    return best
