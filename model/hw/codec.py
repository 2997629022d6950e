"""The master's own driver, as far as the IOMMU can tell: its runtime PM.

On RK3588 the decoder and its IOMMU share their clocks (model.hw.soc), so
what the decoder's driver does with them decides when the IOMMU is clocked.
rkvdec holds them while runtime-active (``rkvdec_runtime_resume``:
``clk_bulk_prepare_enable``; ``rkvdec_runtime_suspend``:
``clk_bulk_disable_unprepare``); hantro (the AV1 decoder's driver) enables
them around each job (``device_run`` ... ``hantro_job_finish``), which is
when it does DMA.  For the IOMMU both mean: clocked whenever its master
issues DMA.  The model takes rkvdec's shape: the clocks are prepared once
and enabled while the master is runtime-active.  System sleep is both
drivers' ``SET_SYSTEM_SLEEP_PM_OPS(pm_runtime_force_suspend,
pm_runtime_force_resume)``.
"""

from __future__ import annotations

from model.kernel.pm import pm_runtime_force_resume, pm_runtime_force_suspend

from .clk import clk_bulk_disable, clk_bulk_enable

__all__ = ["CodecPmOps"]


class CodecPmOps:
    """``dev_pm_ops`` of a master whose clocks are ``clks`` (a :class:`~model.hw.clk.ClkBulk`)."""

    __slots__ = ("clks",)

    def __init__(self, clks):
        self.clks = clks

    async def runtime_suspend(self, dev):
        await clk_bulk_disable(1, self.clks)
        return 0

    async def runtime_resume(self, dev):
        return await clk_bulk_enable(1, self.clks)

    async def suspend(self, dev):
        return await pm_runtime_force_suspend(dev)

    async def resume(self, dev):
        return await pm_runtime_force_resume(dev)
