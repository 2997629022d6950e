"""The bounded exhaustive chooser on scenarios small enough to count by hand.

What counts as a preemption point: every ``store``/``load`` and every lock
acquisition is one point, before its action.  The first decision picks which
CPU starts (not a preemption); a CPU that finishes forces a switch (not a
preemption).  So with CPUs that only store to their own cells (no race, no
early stop; ``checkers=[]`` to be sure) a schedule is an interleaving of the
CPUs' stores, and the number of schedules is a multinomial coefficient;
bounding the preemptions keeps only the interleavings that switch away from
a CPU with work left at most ``bound`` times.

Each scenario logs which CPU did each store, so a test can compare the
interleavings the search produced with the ones enumerated here.
"""

import itertools
from math import comb, factorial

import pytest

import stress
from model.kernel import Shared, SpinLock, spin_lock, spin_unlock

from .scenarios_classic import two_stage_buggy

UNBOUNDED = 10  # more preemptions than any of these scenarios can use
LIMIT = 10_000  # schedules: far above every count below


def stores_scenario(stores_per_cpu, logs):
    """One CPU per entry of ``stores_per_cpu``; CPU i stores that many times to its own cell.

    Every build appends a fresh log to ``logs``: the CPU id of each store, in order.
    """

    def scenario(kernel):
        log = []
        logs.append(log)
        cells = [Shared(f"cell{i}", 0) for i in range(len(stores_per_cpu))]

        def body(cpu_id, n):
            async def cpu():
                for j in range(n):
                    await cells[cpu_id].store(j)
                    log.append(cpu_id)

            return cpu

        return [body(i, n) for i, n in enumerate(stores_per_cpu)]

    return scenario


def locks_scenario(logs):
    """Two CPUs, each ``spin_lock(own); spin_unlock(own)`` twice: two acquisition points per CPU."""

    def scenario(kernel):
        log = []
        logs.append(log)
        locks = [SpinLock("lock_0"), SpinLock("lock_1")]

        def body(cpu_id):
            async def cpu():
                for _ in range(2):
                    await spin_lock(locks[cpu_id])
                    log.append(cpu_id)
                    spin_unlock(locks[cpu_id])

            return cpu

        return [body(0), body(1)]

    return scenario


def interleavings(stores_per_cpu):
    """Every order of the CPUs' actions (CPU i appears ``stores_per_cpu[i]`` times)."""
    actions = [cpu for cpu, n in enumerate(stores_per_cpu) for _ in range(n)]
    return set(itertools.permutations(actions))


def preemptions(seq, stores_per_cpu):
    """Switches away from a CPU that still had work left."""
    left = list(stores_per_cpu)
    count = 0
    for here, nxt in zip(seq, seq[1:]):
        left[here] -= 1
        if nxt != here and left[here] > 0:
            count += 1
    return count


def within_bound(stores_per_cpu, bound):
    """The interleavings with at most ``bound`` preemptions."""
    return {s for s in interleavings(stores_per_cpu) if preemptions(s, stores_per_cpu) <= bound}


# (stores per CPU, bound, the count by hand)
HAND_COUNTS = [
    # two CPUs, one store each: a then b, or b then a: C(2,1) = 2
    ((1, 1), UNBOUNDED, comb(2, 1)),
    # two CPUs, two stores each: choose the 2 slots of CPU0 among 4: C(4,2) = 6
    ((2, 2), UNBOUNDED, comb(4, 2)),
    # two CPUs, three stores each: C(6,3) = 20
    ((3, 3), UNBOUNDED, comb(6, 3)),
    # three CPUs, one store each: 3! = 6 orders
    ((1, 1, 1), UNBOUNDED, factorial(3)),
    # bound 0: no preemption, each CPU runs to the end once started: 2 orders of 2 CPUs
    ((2, 2), 0, 2),
    ((3, 3), 0, 2),
    # bound 0, three CPUs with one store: every order is non-preemptive: 3! = 6
    ((1, 1, 1), 0, factorial(3)),
    # bound 1, 2x2: aabb, bbaa (0 preemptions), abba, baab (1); abab, baba need 2: 4
    ((2, 2), 1, 4),
    # bound 2, 2x2: all six (abab, baba have exactly 2)
    ((2, 2), 2, 6),
]

IDS = [f"{'x'.join(map(str, spc))}-bound{b}" for spc, b, _ in HAND_COUNTS]


@pytest.mark.parametrize("stores_per_cpu,bound,hand", HAND_COUNTS, ids=IDS)
def test_hand_count_is_the_enumeration(stores_per_cpu, bound, hand):
    """The counts in the table agree with brute-force enumeration (so the table is right)."""
    assert len(within_bound(stores_per_cpu, bound)) == hand


@pytest.mark.parametrize("stores_per_cpu,bound,hand", HAND_COUNTS, ids=IDS)
def test_visits_every_interleaving(stores_per_cpu, bound, hand):
    """The search is exhausted and produced exactly the interleavings within the bound."""
    logs = []
    result = stress.explore(
        stores_scenario(stores_per_cpu, logs), strategy="exhaustive", schedules=LIMIT, bound=bound, checkers=[]
    )
    assert result.violations == []
    assert result.exhausted
    assert len(logs) == result.schedules
    assert {tuple(log) for log in logs} == within_bound(stores_per_cpu, bound)


@pytest.mark.parametrize("stores_per_cpu,bound,hand", HAND_COUNTS, ids=IDS)
def test_schedule_count_is_the_hand_count(stores_per_cpu, bound, hand):
    """Each interleaving is visited exactly once: ``.schedules`` is the hand count."""
    logs = []
    result = stress.explore(
        stores_scenario(stores_per_cpu, logs), strategy="exhaustive", schedules=LIMIT, bound=bound, checkers=[]
    )
    assert result.exhausted
    distinct = len({tuple(log) for log in logs})
    assert result.schedules == hand, f"{result.schedules} schedules for {distinct} distinct interleavings"


def test_lock_acquisitions_are_the_points():
    """2 CPUs x 2 acquisitions of their own lock (unlock is no point): C(4,2) = 6 schedules."""
    logs = []
    result = stress.explore(locks_scenario(logs), strategy="exhaustive", schedules=LIMIT, bound=UNBOUNDED, checkers=[])
    assert result.exhausted
    assert {tuple(log) for log in logs} == within_bound((2, 2), UNBOUNDED)
    assert result.schedules == comb(4, 2)


def test_budget_smaller_than_the_space_is_not_exhausted():
    """Stopping at ``schedules`` before the end of the space does not claim exhaustion."""
    logs = []
    result = stress.explore(stores_scenario((3, 3), logs), strategy="exhaustive", schedules=3, bound=UNBOUNDED, checkers=[])
    assert result.schedules == 3
    assert not result.exhausted


def test_exhaustive_stops_at_the_first_violation():
    """A racy pair of stores to one cell: found on the first schedule, not exhausted."""

    def racy(kernel):
        cell = Shared("shared_cell", 0)

        async def cpu():
            await cell.store(1)

        return [cpu, cpu]

    result = stress.explore(racy, strategy="exhaustive", schedules=LIMIT, bound=UNBOUNDED, checkers=["race"])
    assert [v.kind for v in result.violations] == ["data-race"]
    assert result.schedules == 1
    assert not result.exhausted


def test_bug_needing_one_preemption():
    """two_stage breaks only if the transfer is preempted between its two critical sections.

    Bound 0 (transfer then audit, or audit then transfer) is clean and
    exhausted; bound 1 finds the WARN, and its shrunk schedule preempts.
    """
    clean = stress.explore(two_stage_buggy, strategy="exhaustive", schedules=LIMIT, bound=0)
    assert clean.violations == [] and clean.exhausted
    found = stress.explore(two_stage_buggy, strategy="exhaustive", schedules=LIMIT, bound=1)
    assert [v.kind for v in found.violations] == ["assertion"]
    assert found.violations[0].report["preemptions"] >= 1
    assert found.schedules > clean.schedules
