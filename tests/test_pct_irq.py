"""PCT delivers an interrupt to every eligible CPU, not always to the lowest-numbered one.

Each (line, CPU) delivery has its own random priority: a defect that needs
the interrupt on CPU1 is found by PCT as readily as one on CPU0.
"""

from collections import Counter

import stress
from model.kernel import IRQ_HANDLED, Shared, current, raise_irq, request_irq
from stress.choosers import PCT, make_rng

IRQ = 5


def irq_scenario(kernel, on_irq):
    """CPU0 raises IRQ 5 and works on; CPU1 works; ``on_irq(cpu)`` runs in the handler."""
    cells = [Shared(f"cpu{i}.work", 0) for i in range(2)]

    async def handler(irq, dev_id):
        on_irq(current())
        return IRQ_HANDLED

    request_irq(kernel, IRQ, handler, name="dev")

    async def cpu0():
        raise_irq(kernel, IRQ)
        for i in range(4):
            await cells[0].store(i)

    async def cpu1():
        for i in range(4):
            await cells[1].store(i)

    return [cpu0, cpu1]


def irq_on_cpu1_warns(kernel):
    """A defect only an interrupt taken on CPU1 shows (say, per-CPU state set up on CPU0 only)."""

    def on_irq(cpu):
        if cpu.id == 1:
            kernel.warn("dev irq on CPU1: per-CPU buffer not allocated")

    return irq_scenario(kernel, on_irq)


def test_pct_finds_irq_on_cpu1_for_most_seeds():
    found = 0
    for seed in range(10):
        result = stress.explore(irq_on_cpu1_warns, strategy="pct", schedules=30, seed=seed, shrink=False)
        if result.violations:
            assert result.violations[0].kind == "assertion"
            assert "CPU1" in result.violations[0].message
            found += 1
    assert found >= 7, found


def test_pct_delivers_to_both_cpus():
    """Over many PCT runs the interrupt is taken on CPU0 and on CPU1, each often."""
    handled = Counter()

    def scenario(kernel):
        return irq_scenario(kernel, lambda cpu: handled.update([cpu.id]))

    runs = 200
    for i in range(runs):
        out = stress.run_schedule(scenario, PCT(make_rng(11, i)))
        assert out.kind is None
    assert sum(handled.values()) == runs
    assert handled[0] >= runs // 4 and handled[1] >= runs // 4, handled


def test_pct_irq_priorities_are_deterministic():
    """The (line, CPU) priorities come from the run's rng: same seed, same decisions."""

    def scenario(kernel):
        return irq_scenario(kernel, lambda cpu: None)

    for i in range(10):
        a = stress.run_schedule(scenario, PCT(make_rng(4, i)))
        b = stress.run_schedule(scenario, PCT(make_rng(4, i)))
        assert a.decisions == b.decisions and a.points == b.points
