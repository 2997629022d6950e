"""Each oracle provoked by a small scenario that breaks exactly its rule, and
silent on the correct version of the same scenario."""

import pytest

from model.drivers.rk_fixed import RkFixed
from model.drivers.vsi_fixed import SPAGE_SIZE, VsiFixed, to_vsi_domain
from model.hw import (
    RK_MMU_CMD_ENABLE_PAGING,
    RK_MMU_COMMAND,
    RK_MMU_DTE_ADDR,
    RK_MMU_INT_MASK,
    RK_MMU_IRQ_MASK,
    RK_MMU_STATUS,
    RK_MMU_STATUS_PAGING_ENABLED,
    IommuHw,
    clk_bulk_enable,
    readl,
    writel,
)
from model.hw.clk import clk_bulk_prepare
from model.iommu import dev_iommu_priv_get, iommu_alloc_pages_sz, list_del_init
from model.iommu.events import iommu_event
from model.kernel import (
    GFP_ATOMIC,
    GFP_DMA32,
    GFP_KERNEL,
    GFP_KERNEL_ACCOUNT,
    __GFP_ACCOUNT,
    alloc_pages,
    free_pages,
    spin_lock,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
)
from model.kernel.dma import DMA_BIT_MASK, DMA_TO_DEVICE, dma_map_single, table_snapshot, table_write
from model.kernel.pm import pm_runtime_put_autosuspend, pm_runtime_resume_and_get
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


class NoFlushOnMap(VsiFixed):
    """vsi-fixed whose map forgets the IOTLB (test double)."""

    mapping = False

    async def vsi_iommu_map(self, *args):
        self.mapping = True
        try:
            return await super().vsi_iommu_map(*args)
        finally:
            self.mapping = False

    async def vsi_iommu_flush_tlb(self, vsi_domain):
        if not self.mapping:
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


# two pages mapped, one unmapped: the page table stays (vsi-fixed frees an
# emptied one through the gather: a double that skips the flush would then
# be caught freeing it, before its stale TLB line is used)
PROGRAM = [
    ["attach", {"dev": 0, "dom": 0}],
    ["map", {"dom": 0, "iova": 0, "pages": 2, "gfp": "GFP_KERNEL"}],
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


# -- isolation: the DMA's translation itself is not one the device may use --------
#
# The two paths above fail the mapping test (the domain is right, the page is
# not); these fail earlier: the walk's table base page belongs to no domain,
# or to a domain that is not the device's now.


class ShadowDirectory(RkFixed):
    """rk-fixed whose enable points the MMU at a private copy of the domain's
    directory, taken at that moment, instead of the directory itself (test
    double): the walker then walks a page that is no domain's table."""

    async def vsi_iommu_enable(self, iommu, domain):
        if domain is self.identity_domain:
            return
        vsi_domain = to_vsi_domain(domain)
        shadow = await iommu_alloc_pages_sz(GFP_ATOMIC | GFP_DMA32, SPAGE_SIZE, tag="vsi shadow dt")
        for index, dte in enumerate(await table_snapshot(vsi_domain.dt)):
            if dte:
                await table_write(shadow, index, dte)
        shadow_dma = await dma_map_single(vsi_domain.dev, shadow, SPAGE_SIZE, DMA_TO_DEVICE)
        await writel(iommu.regs, RK_MMU_DTE_ADDR, shadow_dma)
        await self.vsi_iommu_zap_tlb(iommu)
        await writel(iommu.regs, RK_MMU_INT_MASK, RK_MMU_IRQ_MASK)
        if not await readl(iommu.regs, RK_MMU_STATUS) & RK_MMU_STATUS_PAGING_ENABLED:
            await writel(iommu.regs, RK_MMU_COMMAND, RK_MMU_CMD_ENABLE_PAGING)
        await iommu.enable.store(True)


class EnableReadsStaleDomain(VsiFixed):
    """vsi-fixed whose enable programs the tables of ``iommu->domain`` instead
    of the domain it is given (test double).  Resume passes ``iommu->domain``
    anyway, but attach stores it only after enabling: a switch programs the
    domain the IOMMU is leaving."""

    async def vsi_iommu_enable(self, iommu, domain):
        await super().vsi_iommu_enable(iommu, await iommu.domain.load() or domain)


MAP0 = ["map", {"dom": 0, "iova": 0, "pages": 1, "gfp": "GFP_KERNEL"}]
ATTACH0 = ["attach", {"dev": 0, "dom": 0}]
DMA0 = ["dma", {"dev": 0, "iova": 0, "write": False}]


def _run(driver, program):
    cfg = {"iommus": 2, "domains": 3, "iovas": 4, "programs": [program]}
    return run_schedule(driver_scenario(driver, cfg), Replay([]))


def test_isolation_oracle_walk_through_no_domains_tables():
    """A table walk whose base page is no domain's directory: ``dma-isolation``."""
    program = [MAP0, ATTACH0, DMA0]  # mapped before the attach: the copy has the DTE
    assert _run("rk-fixed", program).kind is None
    out = _run("tests.test_oracles:ShadowDirectory", program)
    assert out.kind == "dma-isolation", out.violation
    msg = out.violation["message"]
    assert msg.startswith("vpu0 read ") and " at IOVA " in msg
    assert "via a table walk: the walk went through " in msg
    assert msg.endswith(", no domain's tables")
    assert "vsi shadow dt" in msg  # the page named is the driver's private copy


def test_isolation_oracle_domain_the_device_may_not_use():
    """A walk through a live domain the device has left: named, with why."""
    program = [
        ["unbind", {"dev": 0}],  # the kernel driver lets go of the device
        ["claim", {"dev": 0}],  # VFIO: the group is ours, attaches replace the domain
        ["attach", {"dev": 0, "dom": 0}],
        MAP0,
        ["attach", {"dev": 0, "dom": 1}],  # programs dom 0's tables, the group is on dom 1
        DMA0,
    ]
    assert _run("vsi-fixed", program).kind is None
    out = _run("tests.test_oracles:EnableReadsStaleDomain", program)
    assert out.kind == "dma-isolation", out.violation
    msg = out.violation["message"]
    assert msg.startswith("vpu0 read ") and "via a table walk: through " in msg
    assert msg.endswith(", which the device may not use now")
    splat = out.violation["splat"]
    allowed = splat.split("may use now: ")[1].splitlines()[0]
    through = msg.split("via a table walk: through ")[1].split(", which")[0]
    assert through not in allowed  # the domain walked is not among those listed


def test_isolation_books_never_lend_a_dead_objects_address():
    """The isolation oracle's books key table pages and domains by the objects
    (holding them), never by ``id()``: a page or domain freed during the run
    cannot pass its owner or its live mappings to a new object that takes its
    address (CPython reuses a freed object's address at once)."""
    from stress.oracles.isolation import IsolationOracle

    class Obj:
        pass

    oracle = IsolationOracle(kernel=None)
    cpu = type("Cpu", (), {"id": 0})()
    domain = Obj()
    for _ in range(50):
        page, dom = Obj(), Obj()
        oracle.iommu(cpu, "domain_alloc", {"pages": [page], "domain": domain})
        info = {"domain": dom, "iova": 0x1000, "size": 0x1000, "paddr": 0x5000}
        oracle.iommu(cpu, "map_begin", info)
        oracle.iommu(cpu, "map_end", dict(info, ret=0))
        del page, dom, info
    # new objects of the same class, where the dead ones lived
    fresh = [Obj() for _ in range(200)]
    assert not any(oracle.tables.get(o) is not None for o in fresh)
    assert not any(oracle.live.get((o, 1)) for o in fresh)
