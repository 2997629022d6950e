"""LockGraph: what lockdep learned outlives the run, and a find that rests on it says so.

The runs here drive the scheduler directly (no engine): a fresh kernel per
run, ``Lockdep(kernel, graph)`` on a graph the test keeps, ``graph.origin``
set to the run's number as the engine sets it to the schedule index.
"""

import pytest
import trio

from model.kernel import request_irq, spin_lock, spin_lock_irqsave, spin_unlock, spin_unlock_irqrestore
from model.kernel.core import Kernel
from stress.choosers import Replay
from stress.lockdep import HARDIRQ_ON, IN_HARDIRQ, LockGraph, Lockdep
from stress.scheduler import Scheduler

from .scenarios_selftest import (
    LOCK_TRYLOCK_2,
    LOCK_UNLOCK_2,
    TEST_IRQ,
    TRYLOCK_LOCK_2,
    hardirq_handler,
    hardirq_trylock_handler,
    lock_irqsave_unlock,
    lock_unlock,
    locks,
    raise_then,
)


def run(scenario, graph=None, origin=None):
    """One run of ``scenario`` (no preemption) with lockdep on ``graph``; the violation or None."""
    kernel = Kernel()
    lockdep = Lockdep(kernel, graph)
    if graph is not None:
        graph.origin = origin
    kernel.attach(lockdep)
    sched = Scheduler(kernel, Replay([]))
    bodies = list(scenario(kernel))
    trio.run(sched.run, bodies)
    return sched.violation


def order(*pairs, take=LOCK_UNLOCK_2):
    """A one-CPU scenario taking ``take(x, y)`` for each pair of lock names in order."""

    def scenario(kernel):
        by_name = {}

        def lock(n):
            if n not in by_name:
                (by_name[n],) = locks(n)
            return by_name[n]

        async def cpu0():
            for x, y in pairs:
                await take(lock(x), lock(y))

        return [cpu0]

    return scenario


AB, BA = order(("A", "B")), order(("B", "A"))


def irq_takes(name):
    """A in hard-IRQ context only (IN-HARDIRQ), process context irq-safely: clean on its own."""

    def scenario(kernel):
        (A,) = locks(name)
        request_irq(kernel, TEST_IRQ, hardirq_handler(A), 0, "selftest", None)
        return [raise_then(kernel, lambda: lock_irqsave_unlock(A))]

    return scenario


def irqs_on_takes(name):
    """``name`` taken with interrupts enabled (HARDIRQ-ON): clean on its own."""

    def scenario(kernel):
        (A,) = locks(name)
        return [lambda: lock_unlock(A)]

    return scenario


def irqsave_nests(x, y):
    """``spin_lock_irqsave(x); spin_lock(y)``: the dependency x -> y with irqs off."""

    def scenario(kernel):
        X, Y = locks(x, y)

        async def cpu0():
            flags = await spin_lock_irqsave(X)
            await spin_lock(Y)
            spin_unlock(Y)
            await spin_unlock_irqrestore(X, flags)

        return [cpu0]

    return scenario


# -- cycles across runs -------------------------------------------------------------------------


def test_ABBA_across_runs_is_a_lock_inversion_with_prior():
    graph = LockGraph()
    assert run(AB, graph, 1) is None
    v = run(BA, graph, 2)
    assert v["kind"] == "lock-inversion", v
    assert v["prior"] == [1]
    assert "lock_A -> lock_B -> lock_A" in v["message"] or "lock_B -> lock_A -> lock_B" in v["message"]
    assert "the dependency (&lock_A) -> (&lock_B) was recorded in an earlier schedule (schedule 1)" in v["splat"]
    # both orders' stacks: the new edge of run 2, the recorded one of run 1
    assert "lock_B -> lock_A (new)" in v["stacks"] and "lock_A -> lock_B" in v["stacks"]
    assert all(v["stacks"].values())


def test_fresh_graphs_see_no_cycle():
    assert run(AB) is None
    assert run(BA) is None
    assert run(AB, LockGraph(), 1) is None
    assert run(BA, LockGraph(), 2) is None


def test_a_find_of_the_current_run_has_no_prior():
    graph = LockGraph()
    assert run(order(("C", "D")), graph, 1) is None  # unrelated classes from an earlier run
    v = run(order(("A", "B"), ("B", "A")), graph, 2)
    assert v["kind"] == "lock-inversion"
    assert "prior" not in v
    assert "earlier schedule" not in v["splat"]


def test_prior_lists_every_other_run_in_order():
    graph = LockGraph()
    assert run(order(("A", "B")), graph, 10) is None
    assert run(order(("B", "C")), graph, 2) is None
    v = run(order(("C", "A")), graph, 30)
    assert v["kind"] == "lock-inversion"
    assert v["prior"] == [2, 10]  # numeric order, not repr order
    assert "(schedule 10)" in v["splat"] and "(schedule 2)" in v["splat"]


def test_tuple_origins():
    graph = LockGraph()
    assert run(AB, graph, (0, 1)) is None
    v = run(BA, graph, (1, 0))
    assert v["prior"] == [(0, 1)]
    assert "(schedule (0, 1))" in v["splat"]


# -- trylock across runs ------------------------------------------------------------------------


@pytest.mark.parametrize("first,second", [(0, 1), (1, 0)], ids=["trylock_first_run", "trylock_second_run"])
def test_trylock_never_closes_a_cycle_across_runs(first, second):
    """A takes B only by trylock: B -> A in the other run is no cycle, in either run order."""
    runs = [order(("A", "B"), take=LOCK_TRYLOCK_2), BA]
    graph = LockGraph()
    assert run(runs[first], graph, 1) is None
    assert run(runs[second], graph, 2) is None
    assert "lock_B" not in graph.fwd.get("lock_A", {})
    assert "lock_A" in graph.fwd["lock_B"]


def test_trylocked_lock_is_held_across_runs():
    """``TRYLOCK(A); LOCK(B)`` records A -> B: with B -> A of an earlier run, a cycle."""
    graph = LockGraph()
    assert run(BA, graph, 1) is None
    v = run(order(("A", "B"), take=TRYLOCK_LOCK_2), graph, 2)
    assert v["kind"] == "lock-inversion"
    assert v["prior"] == [1]


# -- irq usage across runs ----------------------------------------------------------------------


def test_inconsistent_usage_across_runs():
    graph = LockGraph()
    assert run(irq_takes("A"), graph, 1) is None
    assert graph.usage["lock_A"][IN_HARDIRQ][1] == 1
    v = run(irqs_on_takes("A"), graph, 2)
    assert v["kind"] == "irq-lock-inversion"
    assert v["message"].startswith(f"inconsistent {{{IN_HARDIRQ}}} -> {{{HARDIRQ_ON}}} usage of (lock_A)")
    assert v["prior"] == [1]
    assert f"the {{{IN_HARDIRQ}}} state of (&lock_A) was recorded in an earlier schedule (schedule 1)" in v["splat"]


def test_irq_inversion_through_an_edge_across_runs():
    """Run 1: A in hard IRQ and A -> B irq-safely; run 2: B with irqs on."""

    def run1(kernel):
        return irq_takes("A")(kernel) + irqsave_nests("A", "B")(kernel)

    graph = LockGraph()
    assert run(run1, graph, 1) is None
    v = run(irqs_on_takes("B"), graph, 2)
    assert v["kind"] == "irq-lock-inversion"
    assert "HARDIRQ-safe (lock_A) -> HARDIRQ-unsafe (lock_B)" in v["message"]
    assert v["prior"] == [1]
    assert "the dependency (&lock_A) -> (&lock_B) was recorded in an earlier schedule (schedule 1)" in v["splat"]


def test_safe_to_unsafe_order_across_runs():
    """Runs 1 and 2 mark A IN-HARDIRQ and B HARDIRQ-ON; run 3 nests B in A."""
    graph = LockGraph()
    assert run(irq_takes("A"), graph, 1) is None
    assert run(irqs_on_takes("B"), graph, 2) is None
    v = run(irqsave_nests("A", "B"), graph, 3)
    assert v["kind"] == "irq-lock-inversion"
    assert "lock order" in v["message"]
    assert v["prior"] == [1, 2]


def test_trylock_in_irq_across_runs_is_not_irq_safe():
    """A trylocked in hard IRQ in run 1, taken with irqs on in run 2: nothing to report."""

    def run1(kernel):
        (A,) = locks("A")
        request_irq(kernel, TEST_IRQ, hardirq_trylock_handler(A), 0, "selftest", None)
        return [raise_then(kernel, lambda: lock_irqsave_unlock(A))]

    graph = LockGraph()
    assert run(run1, graph, 1) is None
    assert IN_HARDIRQ not in graph.usage.get("lock_A", {})
    assert run(irqs_on_takes("A"), graph, 2) is None


# -- the graph itself ---------------------------------------------------------------------------


def test_lockdep_without_a_graph_makes_a_fresh_one():
    a, b = Lockdep(Kernel()), Lockdep(Kernel())
    assert isinstance(a.graph, LockGraph) and a.graph is not b.graph
    assert a.graph.origin is None and a.graph.size() == 0


def test_copy_is_independent():
    graph = LockGraph()
    assert run(AB, graph, 1) is None
    assert run(irq_takes("C"), graph, 1) is None
    size = graph.size()
    copy = graph.copy()
    assert copy.size() == size and copy.origin == 1
    assert copy.fwd == graph.fwd and copy.usage == graph.usage and copy.chains == graph.chains
    # replaying on the copy does not touch the original ...
    v = run(BA, copy, 2)
    assert v["kind"] == "lock-inversion" and v["prior"] == [1]
    assert run(irqs_on_takes("D"), copy, 2) is None
    assert "lock_A" not in graph.fwd.get("lock_B", {})
    assert "lock_D" not in graph.usage
    assert graph.size() == size and graph.origin == 1
    # ... and the original learning more does not touch the copy
    copy_size = copy.size()
    assert run(order(("A", "E")), graph, 3) is None
    assert "lock_E" in graph.fwd["lock_A"] and "lock_E" not in copy.fwd["lock_A"]
    assert "lock_E" not in copy.bwd and "lock_A" in graph.bwd["lock_E"]
    assert "lock_E" not in copy.usage
    assert copy.size() == copy_size
    # the same graph replayed in order: B -> A on the original is still a find
    assert run(BA, graph, 4)["prior"] == [1]


def test_size_grows_only_with_new_knowledge():
    graph = LockGraph()
    assert run(AB, graph, 1) is None
    size = graph.size()
    assert size == 5  # A -> B, A and B HARDIRQ-ON and SOFTIRQ-ON
    assert run(AB, graph, 2) is None
    assert graph.size() == size
    assert graph.fwd["lock_A"]["lock_B"][2] == 1  # the first run that recorded it
