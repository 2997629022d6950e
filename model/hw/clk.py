"""Clocks (drivers/clk: the clk_bulk_* calls the drivers use).

A clock is shared: on RK3588 the VSI IOMMU and the AV1 decoder it serves
name the same two clocks in the device tree (``av1d_mmu`` and ``av1d``:
``clocks = <&cru ACLK_AV1>, <&cru PCLK_AV1>``), as every Rockchip IOMMU does
with its master.  So the model has one :class:`ClkCore` per clock pair
(``struct clk_core``: the enable count that gates the hardware) and one
:class:`ClkBulk` per consumer (``struct clk_bulk_data *`` of one device:
what that driver has prepared and enabled, for its own balance).  The clock
runs while ANY consumer holds it enabled: an IOMMU whose driver gates its
clocks after each register sequence still translates while its master's
driver holds them, as on the real bus.

``clk_bulk_prepare`` may sleep; ``clk_bulk_enable``/``disable`` do not.  Each
is a preemption point (a power transition).  Registers keep their values
while a clock is gated (power-off is the power domain's business,
:mod:`model.kernel.genpd`); the TLB survives it or not as the hardware's
retention says (``clock-off``, :mod:`model.hw.tlb`).

A consumer that disables what it did not enable is warned about even when
another consumer keeps the clock running: it has taken that consumer's
reference (``clk_core_disable``'s "already disabled" WARN fires later, on
whoever disables last).
"""

from model.kernel.core import current

__all__ = [
    "ClkCore",
    "ClkBulk",
    "devm_clk_bulk_get_all",
    "clk_bulk_prepare",
    "clk_bulk_unprepare",
    "clk_bulk_enable",
    "clk_bulk_disable",
]


class ClkCore:
    """One gateable clock (or a pair gated together): ``struct clk_core``.

    ``consumers`` are what it feeds (an IOMMU's TLB sees the clock stop)."""

    __slots__ = ("name", "prepare_count", "enable_count", "consumers")

    def __init__(self, name):
        self.name = name
        self.prepare_count = 0
        self.enable_count = 0
        self.consumers = []

    def __repr__(self):
        return f"{self.name}(prepared={self.prepare_count}, enabled={self.enable_count})"


class ClkBulk:
    """The clocks of one consumer device (``struct clk_bulk_data *`` with its count).

    ``ClkBulk(hw)`` gives an IOMMU clocks of its own; ``ClkBulk(owner,
    core)`` is another consumer of an existing clock (``core``)."""

    __slots__ = ("owner", "core", "prepare_count", "enable_count")

    def __init__(self, owner, core=None):
        self.owner = owner
        if core is None:
            core = ClkCore(f"{owner.name}.clks")
        self.core = core
        core.consumers.append(owner)
        self.prepare_count = 0
        self.enable_count = 0

    @property
    def running(self):
        """The clock runs (some consumer holds it enabled)."""
        return self.core.enable_count > 0

    def __repr__(self):
        return f"{self.owner.name}.clks(prepared={self.prepare_count}, enabled={self.enable_count})"


def devm_clk_bulk_get_all(dev):
    """``(num_clocks, clocks)`` of a platform device (``dev.hw``) or of the hardware itself."""
    return 1, getattr(dev, "hw", dev).clks


def _event(cpu, clks, what):
    for fn in cpu.kernel.hooks.event:
        fn(cpu, "clk", f"{clks.owner.name}: {what}")


async def clk_bulk_prepare(num_clks, clks):
    from model.kernel.sleep import might_sleep

    await might_sleep("clk_bulk_prepare")
    clks.prepare_count += 1
    clks.core.prepare_count += 1
    return 0


async def clk_bulk_unprepare(num_clks, clks):
    from model.kernel.sleep import might_sleep

    await might_sleep("clk_bulk_unprepare")
    if clks.prepare_count == 0:
        current().kernel.warn(f"{clks.owner.name}: clk_bulk_unprepare of unprepared clocks")
        return
    clks.prepare_count -= 1
    clks.core.prepare_count -= 1


async def clk_bulk_enable(num_clks, clks):
    cpu = current()
    await cpu.sched.point(cpu)
    if clks.prepare_count == 0:
        cpu.kernel.warn(f"{clks.owner.name}: clk_bulk_enable of unprepared clocks")
        return -108  # -ESHUTDOWN
    clks.enable_count += 1
    core = clks.core
    core.enable_count += 1
    if core.enable_count == 1:
        _event(cpu, clks, "clocks on")
    return 0


async def clk_bulk_disable(num_clks, clks):
    cpu = current()
    await cpu.sched.point(cpu)
    if clks.enable_count == 0:
        cpu.kernel.warn(f"{clks.owner.name}: clk_bulk_disable of disabled clocks (already disabled)")
        return
    clks.enable_count -= 1
    core = clks.core
    core.enable_count -= 1
    if core.enable_count == 0:
        _event(cpu, clks, "clocks off")
        for owner in core.consumers:
            tlb = getattr(owner, "tlb", None)
            if tlb is not None:
                tlb.lose("clock-off")
