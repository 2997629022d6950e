"""New schedules from kept ones: mutations of a PCT :class:`~stress.choosers.Plan`.

Each mutation changes one thing a PCT schedule is made of, so a child stays
close to its parent (the interleaving that reached new coverage) and moves
one step:

* ``move`` - a preemption (change point) moves a little earlier or later;
* ``flip`` - a preemption is added at a random point, or one is dropped;
* ``swap`` - two threads trade priorities (who runs first changes);
* ``irq`` - an interrupt line lands on another CPU (its deliveries to two
  CPUs trade priorities), or fires earlier or later (its priority goes to
  the top or the bottom);
* ``fail`` - with failure injection, another call fails (or none).

:func:`mutate_plan` applies one to three of them (AFL's "havoc"), drawn
from the caller's random source.  What an operation list looks like is the
scenario family's business: a family that can mutate its programs offers
``mutate(target, rng, donor)`` (:meth:`stress.workload.DriverWorkload.mutate`).
"""

from __future__ import annotations

from ..choosers import PLAN_THREADS, Plan

__all__ = ["mutate_plan", "MUTATIONS"]

MUTATIONS = ("move", "flip", "swap", "irq", "fail")


def _ranks(plan, n):
    """The plan's ranks as a list of at least ``n`` (the unranked threads: 0)."""
    ranks = list(plan.ranks)
    if len(ranks) < n:
        ranks += [0] * (n - len(ranks))
    return ranks


def _move(plan, keys, rng, k, fail_points):
    if not plan.change:
        return _flip(plan, keys, rng, k, fail_points)
    change = list(plan.change)
    i = rng.randrange(len(change))
    step = max(1, int(rng.expovariate(1 / 4)))
    change[i] = max(1, change[i] + (step if rng.random() < 0.5 else -step))
    return Plan(plan.ranks, tuple(sorted(change)), plan.fail)


def _flip(plan, keys, rng, k, fail_points):
    change = list(plan.change)
    if change and (len(change) >= 4 or rng.random() < 0.5):
        change.pop(rng.randrange(len(change)))
    else:
        change.append(rng.randrange(1, max(k, 1) + 1))
    return Plan(plan.ranks, tuple(sorted(change)), plan.fail)


def _swap(plan, keys, rng, k, fail_points):
    n = min(max(len(keys), 2), PLAN_THREADS)
    ranks = _ranks(plan, n)
    i, j = rng.sample(range(n), 2)
    ranks[i], ranks[j] = ranks[j], ranks[i]
    return Plan(tuple(ranks), plan.change, plan.fail)


def _irq(plan, keys, rng, k, fail_points):
    irqs = [i for i, key in enumerate(keys[:PLAN_THREADS]) if isinstance(key, tuple) and key[0] == "irq"]
    if not irqs:
        return _swap(plan, keys, rng, k, fail_points)
    ranks = _ranks(plan, len(keys[:PLAN_THREADS]))
    i = rng.choice(irqs)
    line = keys[i][1]
    others = [j for j in irqs if j != i and keys[j][1] == line]
    if others and rng.random() < 0.5:  # the line lands on another CPU
        j = rng.choice(others)
        ranks[i], ranks[j] = ranks[j], ranks[i]
    else:  # it fires at once, or as late as it can
        ranks[i] = max(ranks) + 1 if rng.random() < 0.5 else 0
    return Plan(tuple(ranks), plan.change, plan.fail)


def _fail(plan, keys, rng, k, fail_points):
    if not fail_points:
        return _flip(plan, keys, rng, k, fail_points)
    nth = 0 if plan.fail and rng.random() < 0.3 else rng.randrange(1, fail_points + 1)
    return Plan(plan.ranks, plan.change, nth)


_BY_NAME = {"move": _move, "flip": _flip, "swap": _swap, "irq": _irq, "fail": _fail}


def mutate_plan(plan, keys, rng, k, fail_points=None):
    """A child of ``plan``: one to three :data:`MUTATIONS` (``fail`` only with
    ``fail_points``, the most failure points a schedule has had)."""
    names = MUTATIONS if fail_points else MUTATIONS[:-1]
    for _ in range(rng.choice((1, 1, 2, 3))):
        plan = _BY_NAME[rng.choice(names)](plan, keys, rng, k, fail_points)
    return plan
