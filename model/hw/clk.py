"""Clocks of an IOMMU instance (drivers/clk: the clk_bulk_* calls the drivers use).

``clk_bulk_prepare`` may sleep; ``clk_bulk_enable``/``disable`` do not.  Each
is a preemption point (a power transition).  The hardware is powered while
its enable count is positive (``hw.powered``); registers keep their values
while the clocks are gated.
"""

from model.kernel.core import current

__all__ = [
    "ClkBulk",
    "devm_clk_bulk_get_all",
    "clk_bulk_prepare",
    "clk_bulk_unprepare",
    "clk_bulk_enable",
    "clk_bulk_disable",
]


class ClkBulk:
    """The clocks of one IOMMU (``struct clk_bulk_data *`` with its count)."""

    __slots__ = ("hw", "prepare_count", "enable_count")

    def __init__(self, hw):
        self.hw = hw
        self.prepare_count = 0
        self.enable_count = 0

    def __repr__(self):
        return f"{self.hw.name}.clks(prepared={self.prepare_count}, enabled={self.enable_count})"


def devm_clk_bulk_get_all(dev):
    """``(num_clocks, clocks)`` of a platform device (``dev.hw``) or of the hardware itself."""
    return 1, getattr(dev, "hw", dev).clks


def _event(cpu, clks, what):
    for fn in cpu.kernel.hooks.event:
        fn(cpu, "clk", f"{clks.hw.name}: {what}")


async def clk_bulk_prepare(num_clks, clks):
    from model.kernel.sleep import might_sleep

    await might_sleep("clk_bulk_prepare")
    clks.prepare_count += 1
    return 0


async def clk_bulk_unprepare(num_clks, clks):
    from model.kernel.sleep import might_sleep

    await might_sleep("clk_bulk_unprepare")
    if clks.prepare_count == 0:
        current().kernel.warn(f"{clks.hw.name}: clk_bulk_unprepare of unprepared clocks")
        return
    clks.prepare_count -= 1


async def clk_bulk_enable(num_clks, clks):
    cpu = current()
    await cpu.sched.point(cpu)
    if clks.prepare_count == 0:
        cpu.kernel.warn(f"{clks.hw.name}: clk_bulk_enable of unprepared clocks")
        return -108  # -ESHUTDOWN
    clks.enable_count += 1
    if clks.enable_count == 1:
        _event(cpu, clks, "clocks on")
    return 0


async def clk_bulk_disable(num_clks, clks):
    cpu = current()
    await cpu.sched.point(cpu)
    if clks.enable_count == 0:
        cpu.kernel.warn(f"{clks.hw.name}: clk_bulk_disable of disabled clocks (already disabled)")
        return
    clks.enable_count -= 1
    if clks.enable_count == 0:
        _event(cpu, clks, "clocks off")
        tlb = getattr(clks.hw, "tlb", None)
        if tlb is not None:
            tlb.lose("clock-off")
