"""The simulated IOMMU hardware, without the engine (NULL scheduler, one CPU)."""

import trio

from model.hw import (
    DTE_ADDR_DUMMY,
    RK_MMU_CMD_DISABLE_STALL,
    RK_MMU_CMD_ENABLE_PAGING,
    RK_MMU_CMD_ENABLE_STALL,
    RK_MMU_CMD_FORCE_RESET,
    RK_MMU_CMD_PAGE_FAULT_DONE,
    RK_MMU_CMD_ZAP_CACHE,
    RK_MMU_COMMAND,
    RK_MMU_DTE_ADDR,
    RK_MMU_INT_CLEAR,
    RK_MMU_INT_MASK,
    RK_MMU_INT_RAWSTAT,
    RK_MMU_INT_STATUS,
    RK_MMU_IRQ_MASK,
    RK_MMU_IRQ_PAGE_FAULT,
    RK_MMU_PAGE_FAULT_ADDR,
    RK_MMU_STATUS,
    RK_MMU_STATUS_PAGE_FAULT_ACTIVE,
    RK_MMU_STATUS_PAGE_FAULT_IS_WRITE,
    RK_MMU_STATUS_PAGING_ENABLED,
    RK_MMU_STATUS_STALL_ACTIVE,
    RK_MMU_ZAP_ONE_LINE,
    VSI_MMU_AHB_CONTROL_BASE,
    VSI_MMU_AHB_EXCEPTION_BASE,
    VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE,
    VSI_MMU_BIT_ENABLE,
    VSI_MMU_BIT_FLUSH,
    VSI_MMU_FLUSH_BASE,
    VSI_MMU_IRQ_PAGE_FAULT,
    VSI_MMU_PAGE_FAULT_ADDR,
    VSI_MMU_STATUS_BASE,
    DmaMaster,
    IommuHw,
    clk_bulk_disable,
    clk_bulk_enable,
    clk_bulk_prepare,
    readl,
    writel,
)
from model.kernel import GFP_KERNEL, GFP_DMA32, SZ_4G, Kernel, alloc_pages, free_pages, set_current
from model.kernel.dma import (
    DMA_TO_DEVICE,
    device_read,
    dma_map_single,
    dma_sync_single_for_device,
    table_read,
    table_write,
    table_write64,
)

IRQ = 40
IOVA = 0x10403000  # DTE index 0x41, PTE index 0x3
PADDR = 0x40005000


class Recorder:
    """Records the hardware hooks."""

    def __init__(self):
        self.regs, self.walks, self.dmas, self.rests = [], [], [], []

    def mmio(self, cpu, hw, reg, value, is_write):
        self.regs.append((hw.powered, reg, value, is_write))

    def walk(self, hw, page, rests=()):
        self.walks.append(page)
        self.rests.append(rests)

    def dma(self, master, access):
        self.dmas.append(access)


def run(test):
    """Run ``await test(kernel, hw, rec)`` on one CPU with a clocked rk MMU."""

    async def main():
        k = Kernel()
        set_current(k.add_cpu())
        rec = Recorder()
        k.attach(rec)
        hw = IommuHw(k, "iommu0", IRQ, layout=run.layout)
        await clk_bulk_prepare(1, hw.clks)
        await clk_bulk_enable(1, hw.clks)
        await test(k, hw, rec)

    trio.run(main)


run.layout = "rk"


def layout(name):
    def deco(test):
        def wrapper():
            old, run.layout = run.layout, name
            try:
                test()
            finally:
                run.layout = old

        wrapper.__name__ = test.__name__
        return wrapper

    return deco


async def rk_tables(iova=IOVA, paddr=PADDR, prot=0x6, sync=True, gfp=GFP_KERNEL | GFP_DMA32):
    """A v1 DT -> PT mapping ``iova`` to ``paddr`` (READABLE|WRITABLE by default)."""
    dt = await alloc_pages(GFP_KERNEL | GFP_DMA32, tag="dt")
    pt = await alloc_pages(gfp, tag="pt")
    await dma_map_single(_Dev, dt, 4096, DMA_TO_DEVICE)
    await dma_map_single(_Dev, pt, 4096, DMA_TO_DEVICE)
    await table_write(dt, iova >> 22, (pt.phys & 0xFFFFF000) | 1)
    await table_write(pt, (iova >> 12) & 0x3FF, (paddr & 0xFFFFF000) | prot | 1)
    if sync:
        await dma_sync_single_for_device(_Dev, dt.phys + 4 * (iova >> 22), 4, DMA_TO_DEVICE)
        await dma_sync_single_for_device(_Dev, pt.phys + 4 * ((iova >> 12) & 0x3FF), 4, DMA_TO_DEVICE)
    return dt, pt


class _Dev:
    name = "iommu0"
    dma_mask = (1 << 32) - 1


async def rk_enable(hw, dt):
    await writel(hw, RK_MMU_DTE_ADDR, dt.phys)
    await writel(hw, RK_MMU_INT_MASK, RK_MMU_IRQ_MASK)
    await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_ENABLE_PAGING)


def test_rk_walk_translates_and_fills_tlb():
    async def t(k, hw, rec):
        dt, pt = await rk_tables()
        await rk_enable(hw, dt)
        m = DmaMaster(hw, "vpu0")
        a = await m.dma(IOVA + 0x123)
        assert (a.outcome, a.paddr, a.base, a.dt, a.pt) == ("walk", PADDR + 0x123, dt, dt, pt)
        assert rec.walks == [dt, pt]
        b = await m.dma(IOVA + 0x8, is_write=True)
        assert (b.outcome, b.paddr, b.fill) == ("tlb", PADDR + 0x8, a)
        assert (b.base, b.pt) == (dt, pt)
        assert rec.walks == [dt, pt]  # a hit reads no table
        assert rec.dmas == [a, b]
        assert hw.referenced_pages() == {dt, pt}

    run(t)


def test_rk_permissions_fault():
    async def t(k, hw, rec):
        dt, pt = await rk_tables(prot=0x2)  # READABLE only
        await rk_enable(hw, dt)
        m = DmaMaster(hw, "vpu0")
        assert (await m.dma(IOVA)).outcome == "walk"
        w = await m.dma(IOVA, is_write=True)  # TLB hit, no permission
        assert w.outcome == "fault" and w.paddr is None
        assert await readl(hw, RK_MMU_STATUS) & RK_MMU_STATUS_PAGE_FAULT_IS_WRITE

    run(t)


def test_tlb_zap_all_and_one_line():
    async def t(k, hw, rec):
        dt, pt = await rk_tables()
        await table_write(pt, ((IOVA >> 12) & 0x3FF) + 1, ((PADDR + 0x1000) & 0xFFFFF000) | 0x7)
        await dma_sync_single_for_device(_Dev, pt.phys, 4096, DMA_TO_DEVICE)
        await rk_enable(hw, dt)
        m = DmaMaster(hw, "vpu0")
        await m.dma(IOVA)
        await m.dma(IOVA + 0x1000)
        assert len(hw.tlb) == 2
        # the CPU removes both PTEs and syncs: the TLB still translates
        await table_write(pt, (IOVA >> 12) & 0x3FF, 0)
        await table_write(pt, ((IOVA >> 12) & 0x3FF) + 1, 0)
        await dma_sync_single_for_device(_Dev, pt.phys, 4096, DMA_TO_DEVICE)
        assert (await m.dma(IOVA)).outcome == "tlb"
        assert (await m.dma(IOVA + 0x1000)).outcome == "tlb"
        await writel(hw, RK_MMU_ZAP_ONE_LINE, IOVA)
        assert (await m.dma(IOVA)).outcome == "fault"
        assert (await m.dma(IOVA + 0x1000)).outcome == "tlb"
        await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_ZAP_CACHE)
        assert (await m.dma(IOVA + 0x1000)).outcome == "fault"
        assert len(hw.tlb) == 0

    run(t)


def test_fault_sets_status_and_raises_irq():
    async def t(k, hw, rec):
        dt, pt = await rk_tables()
        await rk_enable(hw, dt)
        m = DmaMaster(hw, "vpu0")
        a = await m.dma(0x20000000, is_write=True)
        assert a.outcome == "fault" and a.paddr is None and a.base is dt
        assert k.irq.pending == [IRQ]
        assert await readl(hw, RK_MMU_PAGE_FAULT_ADDR) == 0x20000000
        status = await readl(hw, RK_MMU_STATUS)
        assert status & RK_MMU_STATUS_PAGE_FAULT_ACTIVE and status & RK_MMU_STATUS_PAGE_FAULT_IS_WRITE
        assert await readl(hw, RK_MMU_INT_STATUS) == RK_MMU_IRQ_PAGE_FAULT
        await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_PAGE_FAULT_DONE)
        await writel(hw, RK_MMU_INT_CLEAR, RK_MMU_IRQ_PAGE_FAULT)
        assert await readl(hw, RK_MMU_INT_RAWSTAT) == 0
        assert not await readl(hw, RK_MMU_STATUS) & RK_MMU_STATUS_PAGE_FAULT_ACTIVE
        # masked: the fault is recorded but no interrupt is raised
        k.irq.pending.clear()
        await writel(hw, RK_MMU_INT_MASK, 0)
        await m.dma(0x20000000)
        assert k.irq.pending == [] and await readl(hw, RK_MMU_INT_RAWSTAT) == RK_MMU_IRQ_PAGE_FAULT
        await writel(hw, RK_MMU_INT_MASK, RK_MMU_IRQ_MASK)  # unmasking a pending fault asserts the line
        assert k.irq.pending == [IRQ]

    run(t)


def test_bypass_when_paging_disabled_and_nothing_when_unclocked():
    async def t(k, hw, rec):
        m = DmaMaster(hw, "vpu0")
        a = await m.dma(0x12345678)
        assert (a.outcome, a.paddr) == ("bypass", 0x12345678)
        await clk_bulk_disable(1, hw.clks)
        b = await m.dma(0x12345678)
        assert (b.outcome, b.paddr) == ("off", None)
        assert rec.dmas == [a, b]  # observed all the same

    run(t)


def test_register_access_while_powered_off_is_observed_not_raised():
    async def t(k, hw, rec):
        await writel(hw, RK_MMU_DTE_ADDR, 0x1000)
        await clk_bulk_disable(1, hw.clks)
        assert not hw.powered
        await writel(hw, RK_MMU_DTE_ADDR, 0x2000)  # ignored
        assert await readl(hw, RK_MMU_DTE_ADDR) == 0  # reads as 0
        await clk_bulk_enable(1, hw.clks)
        assert await readl(hw, RK_MMU_DTE_ADDR) == 0x1000  # registers kept their value
        assert rec.regs == [
            (True, RK_MMU_DTE_ADDR, 0x1000, True),
            (False, RK_MMU_DTE_ADDR, 0x2000, True),
            (False, RK_MMU_DTE_ADDR, 0, False),
            (True, RK_MMU_DTE_ADDR, 0x1000, False),
        ]

    run(t)


def test_rk_command_semantics():
    async def t(k, hw, rec):
        # DTE_ADDR keeps bits 31:12 (rk_iommu_force_reset checks this)
        await writel(hw, RK_MMU_DTE_ADDR, DTE_ADDR_DUMMY)
        assert await readl(hw, RK_MMU_DTE_ADDR) == DTE_ADDR_DUMMY & 0xFFFFF000
        # stall only while paging
        await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_ENABLE_STALL)
        assert not await readl(hw, RK_MMU_STATUS) & RK_MMU_STATUS_STALL_ACTIVE
        # force reset only while stalled
        await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_FORCE_RESET)
        assert await readl(hw, RK_MMU_DTE_ADDR) == DTE_ADDR_DUMMY & 0xFFFFF000
        await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_ENABLE_PAGING)
        await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_ENABLE_STALL)
        status = await readl(hw, RK_MMU_STATUS)
        assert status & RK_MMU_STATUS_STALL_ACTIVE and status & RK_MMU_STATUS_PAGING_ENABLED
        assert (await DmaMaster(hw, "vpu0").dma(0x1000)).outcome == "stall"
        await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_FORCE_RESET)
        assert await readl(hw, RK_MMU_DTE_ADDR) == 0
        assert not await readl(hw, RK_MMU_STATUS) & RK_MMU_STATUS_PAGING_ENABLED
        await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_DISABLE_STALL)
        assert not await readl(hw, RK_MMU_STATUS) & RK_MMU_STATUS_STALL_ACTIVE

    run(t)


def test_device_view_lags_cpu_view_until_sync():
    async def t(k, hw, rec):
        dt, pt = await rk_tables(sync=False)
        idx = (IOVA >> 12) & 0x3FF
        assert await table_read(pt, idx) != 0  # the CPU sees its write
        assert device_read(pt, idx) == 0  # the device does not
        await rk_enable(hw, dt)
        m = DmaMaster(hw, "vpu0")
        assert (await m.dma(IOVA)).outcome == "fault"  # the DTE is not visible yet
        await dma_sync_single_for_device(_Dev, dt.phys + 4 * (IOVA >> 22), 4, DMA_TO_DEVICE)
        assert (await m.dma(IOVA)).outcome == "fault"  # now the PTE is not
        await dma_sync_single_for_device(_Dev, pt.phys + 4 * idx, 4, DMA_TO_DEVICE)
        assert pt.dev is None  # both views agree again
        assert (await m.dma(IOVA)).outcome == "walk"
        # an unsynced invalidation: the walker still sees the old PTE
        await writel(hw, RK_MMU_COMMAND, RK_MMU_CMD_ZAP_CACHE)
        await table_write(pt, idx, 0)
        assert device_read(pt, idx) & 1
        assert (await m.dma(IOVA)).outcome == "walk"
        # a sync of another entry leaves this one stale
        await dma_sync_single_for_device(_Dev, pt.phys + 4 * (idx + 1), 4, DMA_TO_DEVICE)
        assert device_read(pt, idx) & 1

    run(t)


def test_dma_map_cleans_what_the_cpu_wrote_before():
    async def t(k, hw, rec):
        page = await alloc_pages(GFP_KERNEL | GFP_DMA32)
        await table_write(page, 5, 0xABC)
        assert device_read(page, 5) == 0
        addr = await dma_map_single(_Dev, page, 4096, DMA_TO_DEVICE)
        assert addr == page.phys and device_read(page, 5) == 0xABC

    run(t)


def test_dma32_reachability():
    async def t(k, hw, rec):
        low = await alloc_pages(GFP_KERNEL | GFP_DMA32)
        high = await alloc_pages(GFP_KERNEL)
        assert low.phys < SZ_4G <= high.phys
        # a PT above 4 GiB: its address does not fit a DTE, the walker reads elsewhere
        dt, pt = await rk_tables(gfp=GFP_KERNEL)
        assert pt.phys >= SZ_4G
        await rk_enable(hw, dt)
        a = await DmaMaster(hw, "vpu0").dma(IOVA)
        assert a.outcome == "fault" and a.pt is not pt

    run(t)


def test_walker_reports_freed_table_pages():
    async def t(k, hw, rec):
        dt, pt = await rk_tables()
        await rk_enable(hw, dt)
        free_pages(pt)
        a = await DmaMaster(hw, "vpu0").dma(IOVA)
        assert a.pt is pt and pt.freed and rec.walks[-1] is pt

    run(t)


async def vsi_tables(iova=IOVA, paddr=PADDR, writable=True):
    """PTA -> DT -> PT in the VSI formats (40-bit page address in the PTE)."""
    pta = await alloc_pages(GFP_KERNEL | GFP_DMA32, tag="pta")
    dt = await alloc_pages(GFP_KERNEL | GFP_DMA32, tag="dt")
    pt = await alloc_pages(GFP_KERNEL | GFP_DMA32, tag="pt")
    await table_write64(pta, 0, dt.phys & 0xFFFFFC00)
    await table_write(dt, iova >> 22, (pt.phys & 0xFFFFFFC0) | 1)
    hi = (paddr >> 32) & 0xFF
    pte = (paddr & 0xFFFFF000) | (hi << 4) | (0x4 if writable else 0) | 1
    await table_write(pt, (iova >> 12) & 0x3FF, pte)
    for page in (pta, dt, pt):
        await dma_sync_single_for_device(_Dev, page.phys, 4096, DMA_TO_DEVICE)
    return pta, dt, pt


@layout("vsi")
def test_vsi_walk_pta_dt_pt_and_flush():
    async def t(k, hw, rec):
        paddr = 0x12_3456_7000  # above 4 GiB: the VSI PTE holds bits 39:32
        pta, dt, pt = await vsi_tables(paddr=paddr, writable=False)
        await writel(hw, VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE, pta.phys)
        await writel(hw, VSI_MMU_AHB_EXCEPTION_BASE, VSI_MMU_BIT_ENABLE)
        await writel(hw, VSI_MMU_AHB_CONTROL_BASE, VSI_MMU_BIT_ENABLE)
        m = DmaMaster(hw, "vpu0")
        a = await m.dma(IOVA + 4)
        assert (a.outcome, a.paddr, a.base, a.dt, a.pt) == ("walk", paddr + 4, pta, dt, pt)
        assert rec.walks == [pta, dt, pt]
        assert (await m.dma(IOVA)).outcome == "tlb"
        assert hw.referenced_pages() == {pta, dt, pt}
        # no WRITABLE bit: a write faults, and the fault is reported at 0x380/0x384
        w = await m.dma(IOVA, is_write=True)
        assert w.outcome == "fault"
        assert await readl(hw, VSI_MMU_PAGE_FAULT_ADDR) == IOVA
        assert await readl(hw, VSI_MMU_STATUS_BASE) & VSI_MMU_IRQ_PAGE_FAULT
        assert k.irq.pending == [IRQ]
        await writel(hw, VSI_MMU_STATUS_BASE, 0)
        assert await readl(hw, VSI_MMU_STATUS_BASE) == 0
        await writel(hw, VSI_MMU_FLUSH_BASE, VSI_MMU_BIT_FLUSH)
        await writel(hw, VSI_MMU_FLUSH_BASE, 0)
        assert len(hw.tlb) == 0
        assert (await m.dma(IOVA)).outcome == "walk"
        await writel(hw, VSI_MMU_AHB_CONTROL_BASE, 0)
        b = await m.dma(IOVA)
        assert (b.outcome, b.paddr) == ("bypass", IOVA)
        assert hw.referenced_pages() == ()

    run(t)


def test_a_table_scan_sees_every_non_zero_word_of_the_device_view():
    """The device view and the scans that read only the words a CPU stored to
    (``Page.written``: model.hw.walker, ``table_entries``, the sync that drops
    a view equal to the CPU's), against a plain 1024-word model of both views,
    after any mix of stores and syncs, and in a boot image's copy."""
    import pickle
    import random

    from model.hw.walker import _dev_entries
    from model.kernel.dma import table_entries

    async def t(k, hw, rec):
        rng = random.Random(7)
        page = await alloc_pages(GFP_KERNEL | GFP_DMA32)
        cpu_view, dev_view = [0] * 1024, [0] * 1024
        seen = 0
        for step in range(600):
            what = rng.randrange(3)
            if what == 0:
                i, v = rng.randrange(1024), rng.choice((0, 1, rng.getrandbits(32)))
                await table_write(page, i, v)
                cpu_view[i] = v
            elif what == 1:
                i, v = rng.randrange(512), rng.choice((0, rng.getrandbits(64)))
                await table_write64(page, i, v)
                cpu_view[2 * i], cpu_view[2 * i + 1] = v & 0xFFFFFFFF, v >> 32
            else:
                i, n = rng.randrange(1024), rng.randrange(1, 256)
                await dma_sync_single_for_device(_Dev, page.phys + 4 * i, 4 * n, DMA_TO_DEVICE)
                dev_view[i : i + n] = cpu_view[i : i + n]
            assert [device_read(page, i) for i in range(1024)] == dev_view, step
            if what == 2:  # a sync drops the device view once it caught up
                assert (page.dev is None) == (dev_view == cpu_view), step
            else:  # a store keeps it until then
                assert page.dev is not None or dev_view == cpu_view, step
            want = [w for w in dev_view if w]
            seen += bool(want)
            assert _dev_entries(page) == want, step
            assert _dev_entries(pickle.loads(pickle.dumps(page))) == want, step
            assert await table_entries(page) == [w for w in cpu_view if w], step
        assert seen > 400  # the device saw entries most of the time

    run(t)
