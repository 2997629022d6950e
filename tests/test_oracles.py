"""Each oracle provoked by a small scenario that breaks exactly its rule, and
silent on the correct version of the same scenario."""

import pytest

from model.drivers.vsi_fixed import VsiFixed
from model.hw import RK_MMU_CMD_ENABLE_PAGING, RK_MMU_COMMAND, RK_MMU_DTE_ADDR, IommuHw, clk_bulk_enable, writel
from model.hw.clk import clk_bulk_prepare
from model.iommu.events import iommu_event
from model.kernel import GFP_ATOMIC, GFP_DMA32, GFP_KERNEL, GFP_KERNEL_ACCOUNT, __GFP_ACCOUNT, alloc_pages, free_pages
from model.kernel.dma import DMA_BIT_MASK, DMA_TO_DEVICE, dma_map_single
from stress.choosers import Replay
from stress.engine import run_schedule
from stress.workload import driver_scenario


def run_one(body, *, teardown=None, checkers=None):
    """A one-CPU scenario: ``body(kernel)`` is the CPU; the verdict's kind or None."""

    def scenario(kernel):
        if teardown is not None:
            kernel.add_teardown(teardown)
        return [lambda: body(kernel)]

    return run_schedule(scenario, Replay([]), checkers=checkers).kind


# -- power -------------------------------------------------------------------------


async def _program(kernel, clocks_on):
    hw = IommuHw(kernel, "iommu0", 40)
    await clk_bulk_prepare(1, hw.clks)
    if clocks_on:
        await clk_bulk_enable(1, hw.clks)
    await writel(hw, RK_MMU_DTE_ADDR, 0x1000000)


def test_power_oracle():
    assert run_one(lambda k: _program(k, clocks_on=False)) == "mmio-while-suspended"
    assert run_one(lambda k: _program(k, clocks_on=True)) is None


# -- dma32 -------------------------------------------------------------------------


class _Dev:
    name = "vpu0"
    dma_mask = DMA_BIT_MASK(32)


async def _map_table(kernel, gfp):
    page = await alloc_pages(gfp, tag="dt")
    await dma_map_single(_Dev(), page, 4096, DMA_TO_DEVICE)


def test_dma32_oracle():
    assert run_one(lambda k: _map_table(k, GFP_KERNEL)) == "dma32-violation"
    assert run_one(lambda k: _map_table(k, GFP_KERNEL | GFP_DMA32)) is None


# -- pagetable ---------------------------------------------------------------------


async def _free_live_table(kernel, disable_first):
    hw = IommuHw(kernel, "iommu0", 40)
    await clk_bulk_prepare(1, hw.clks)
    await clk_bulk_enable(1, hw.clks)
    dt = await alloc_pages(GFP_KERNEL | GFP_DMA32, tag="dt")
    await writel(hw, RK_MMU_DTE_ADDR, dt.phys)
    await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_ENABLE_PAGING)
    if disable_first:
        await writel(hw, RK_MMU_COMMAND, 1)  # RK_MMU_CMD_DISABLE_PAGING
    free_pages(dt)


async def _walk_freed_table(kernel, free_it):
    hw = IommuHw(kernel, "iommu0", 40)
    await clk_bulk_prepare(1, hw.clks)
    await clk_bulk_enable(1, hw.clks)
    dt = await alloc_pages(GFP_KERNEL | GFP_DMA32, tag="dt")
    await writel(hw, RK_MMU_DTE_ADDR, dt.phys)
    if free_it:
        free_pages(dt)  # paging still off: not referenced yet
    await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_ENABLE_PAGING)
    hw.translate("vpu0", 0x1000, False)  # the walker reads the DT
    if not free_it:
        await writel(hw, RK_MMU_COMMAND, 1)
        free_pages(dt)


def test_pagetable_oracle_free_while_translating():
    assert run_one(lambda k: _free_live_table(k, disable_first=False)) == "pagetable-use-after-free"
    assert run_one(lambda k: _free_live_table(k, disable_first=True)) is None


def test_pagetable_oracle_walk_of_freed_page():
    assert run_one(lambda k: _walk_freed_table(k, free_it=True)) == "pagetable-use-after-free"
    assert run_one(lambda k: _walk_freed_table(k, free_it=False)) is None


# -- leak --------------------------------------------------------------------------


def test_leak_oracle():
    pages = []

    async def body(kernel):
        pages.append(await alloc_pages(GFP_KERNEL, tag="buf"))

    async def teardown_leaks():
        pass

    async def teardown_frees():
        free_pages(pages.pop())

    assert run_one(body, teardown=teardown_leaks) == "leak"
    assert run_one(body, teardown=teardown_frees) is None
    # without a teardown a scenario promises nothing: no leak check
    assert run_one(body) is None


# -- gfp accounting ------------------------------------------------------------------


async def _alloc_on_behalf(kernel, gfp):
    info = {"domain": None, "iova": 0, "paddr": 0, "size": 4096, "prot": 3, "gfp": GFP_KERNEL_ACCOUNT, "ret": None}
    iommu_event("map_begin", info)
    page = await alloc_pages(gfp, tag="pt")
    iommu_event("map_end", dict(info, ret=0))
    free_pages(page)


def test_gfp_accounting_oracle():
    assert run_one(lambda k: _alloc_on_behalf(k, GFP_ATOMIC)) == "gfp-accounting-dropped"
    assert run_one(lambda k: _alloc_on_behalf(k, GFP_ATOMIC | __GFP_ACCOUNT)) is None


# -- isolation: dma-isolation and stale-tlb ----------------------------------------


class NoFlushOnUnmap(VsiFixed):
    """vsi-fixed whose unmap forgets the IOTLB (test double)."""

    unmapping = False

    async def vsi_iommu_unmap(self, *args):
        self.unmapping = True
        try:
            return await super().vsi_iommu_unmap(*args)
        finally:
            self.unmapping = False

    async def vsi_iommu_flush_tlb(self, vsi_domain):
        if not self.unmapping:
            await super().vsi_iommu_flush_tlb(vsi_domain)


class NoSyncOnUnmap(VsiFixed):
    """vsi-fixed whose unmap leaves the cleared PTE in the CPU cache (test double)."""

    unmapping = False

    async def vsi_iommu_unmap(self, *args):
        self.unmapping = True
        try:
            return await super().vsi_iommu_unmap(*args)
        finally:
            self.unmapping = False

    async def vsi_table_flush(self, vsi_domain, dma, count):
        if not self.unmapping:
            await super().vsi_table_flush(vsi_domain, dma, count)


PROGRAM = [
    ["attach", {"dev": 0, "dom": 0}],
    ["map", {"dom": 0, "iova": 0, "pages": 1, "gfp": "GFP_KERNEL"}],
    ["dma", {"dev": 0, "iova": 0, "write": False}],
    ["unmap", {"dom": 0, "iova": 0, "pages": 1}],
    ["dma", {"dev": 0, "iova": 0, "write": False}],
]


@pytest.mark.parametrize(
    "driver, kind",
    [
        ("vsi-fixed", None),
        ("tests.test_oracles:NoFlushOnUnmap", "stale-tlb"),
        ("tests.test_oracles:NoSyncOnUnmap", "dma-isolation"),
    ],
)
def test_isolation_oracle(driver, kind):
    cfg = {"iommus": 2, "domains": 3, "iovas": 4, "programs": [PROGRAM]}
    out = run_schedule(driver_scenario(driver, cfg), Replay([]))
    assert out.kind == kind, out.violation
