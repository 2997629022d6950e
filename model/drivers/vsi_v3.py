"""vsi-v3: the Verisilicon IOMMU driver as POSTED in v3 of the series.

"[PATCH v3 3/5] iommu: Add verisilicon IOMMU driver" (Benjamin Gaignard,
19 Jun 2025), the code that seed-lkml-vsi-review.txt reviews, transcribed
function by function.  It derives from rockchip-iommu.c: two domain locks
(``dt_lock`` for the tables, ``iommus_lock`` for the list), ``bases[]``/
``num_mmu``, one ``iommu->node`` (an IOMMU is on one domain's list at a
time), no lock of the IOMMU's own.  Its registers are the VSI ones
(``VSI_MMU_AHB_CONTROL_BASE``, ``VSI_MMU_AHB_TBL_ARRAY_BASE_L_BASE`` = the
PTA, ``VSI_MMU_FLUSH_BASE``, ``VSI_MMU_STATUS_BASE``), so the model runs it
on the ``"vsi"`` register layout (PTA -> DT -> PT walk).

What v3 shares with the merged driver comes from
:mod:`model.drivers.vsi_common`: the table encodings except ``vsi_mk_pte``
and ``vsi_pte_page_address`` (below), ``vsi_iommu_get_from_dev``,
``vsi_iommu_release_device`` and the ops table.  Every other C function
touches v3's own structures (``dt_lock``/``iommus_lock``, ``dma_dev``,
``bases[]``) and is defined here.

What the C does (the review's points are consequences of it, not flags):

* map allocates a missing page table with ``GFP_ATOMIC | GFP_DMA32`` under
  ``dt_lock`` and ignores the caller's gfp: ``__GFP_ACCOUNT`` of
  ``GFP_KERNEL_ACCOUNT`` (VFIO/iommufd) is dropped;
* attach of a paging domain first runs the identity attach (translation
  OFF: ``AHB_CONTROL = 0``) and only then enables the new domain: the
  device's DMA bypasses translation in between (the VFIO security hole);
* the DTE is written from ``virt_to_phys`` before ``dma_map_single``;
* no TLB flush in map or unmap and no ``iotlb_sync``; ``.flush_iotlb_all``
  walks the list with ``pm_runtime_get_if_in_use``;
* ``vsi_iommu_enable`` programs the base only when ``AHB_CONTROL`` says
  translation is off, and never flushes the TLB;
* the clocks are enabled only around each register sequence
  (``clk_bulk_enable`` ... ``clk_bulk_disable``), as rockchip-iommu.c does;
* ``iommu->domain`` is read and written with no lock (attach under the
  group mutex; ``domain_alloc_paging`` sets it to the identity domain as a
  side effect; suspend/resume and the IRQ handler read it);
* the IRQ handler takes no lock and reports a fault on whatever
  ``iommu->domain`` is, the identity domain included;
* suspend/resume take no lock.

``vsi_iommu_identity_attach`` does ``to_vsi_domain(&vsi_identity_domain)``
and spin-locks ``vsi_domain->iommus_lock`` of it, as the merged driver does
with its ``lock``: the identity domain is a bare static ``struct
iommu_domain``, so that "lock" is static memory in front of it.  The model's
``container_of`` reports it at that dereference (the ``kasan`` checker: a
``global-out-of-bounds``, once per search as KASAN does per boot) and then
locks what the C locks without KASAN: one lock word in static memory,
shared by every IOMMU, unrelated to any domain's ``iommus_lock``.
"""

from __future__ import annotations

from errno import EADDRINUSE, ENODEV, ENOMEM

from model.hw import (
    VSI_MMU_AHB_CONTROL_BASE,
    VSI_MMU_AHB_EXCEPTION_BASE,
    VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE,
    VSI_MMU_BIT_ENABLE,
    VSI_MMU_BIT_FLUSH,
    VSI_MMU_CONFIG1_BASE,
    VSI_MMU_FLUSH_BASE,
    VSI_MMU_IRQ_MASK,
    VSI_MMU_OUT_OF_BOUND,
    VSI_MMU_PAGE_FAULT_ADDR,
    VSI_MMU_STATUS_BASE,
    VSI_PAGE_DESC_HI_MASK,
    VSI_PAGE_DESC_HI_SHIFT,
    VSI_PAGE_DESC_LO_MASK,
    VSI_PTE_PAGE_VALID,
    VSI_PTE_PAGE_WRITABLE,
    clk_bulk_disable,
    clk_bulk_enable,
    clk_bulk_prepare,
    clk_bulk_unprepare,
    devm_clk_bulk_get_all,
    readl,
    writel,
)
from model.iommu import (
    IOMMU_DOMAIN_IDENTITY,
    IOMMU_WRITE,
    IS_ERR,
    SZ_4K,
    INIT_LIST_HEAD,
    IommuDevice,
    IommuDomain,
    ListNode,
    container_of,
    dev_get_drvdata,
    dev_iommu_priv_get,
    dev_iommu_priv_set,
    devm_platform_ioremap_resource,
    iommu_alloc_pages_sz,
    iommu_device_register,
    iommu_free_pages,
    list_add_tail,
    list_del_init,
    list_empty,
    list_entries,
    platform_get_irq,
    platform_set_drvdata,
    report_iommu_fault,
)
from model.kernel import (
    GFP_ATOMIC,
    GFP_DMA32,
    GFP_KERNEL,
    IRQF_SHARED,
    IRQ_HANDLED,
    IRQ_NONE,
    Shared,
    SpinLock,
    assert_spin_locked,
    current,
    kfree,
    kzalloc,
    page_to_phys,
    phys_to_page,
    phys_to_virt,
    request_irq,
    spin_lock_irqsave,
    spin_unlock_irqrestore,
)
from model.kernel.dma import (
    DMA_BIT_MASK,
    DMA_TO_DEVICE,
    dma_map_single,
    dma_mapping_error,
    dma_set_mask_and_coherent,
    dma_sync_single_for_device,
    dma_unmap_single,
    table_read,
    table_entries,
    table_write,
    table_write64,
)
from model.kernel.pm import (
    DL_FLAG_PM_RUNTIME,
    DL_FLAG_STATELESS,
    device_link_add,
    pm_runtime_enable,
    pm_runtime_get_if_in_use,
    pm_runtime_put,
)

from .vsi_common import (
    NUM_PT_ENTRIES,
    SPAGE_SIZE,
    VsiDriver,
    vsi_dte_is_pt_valid,
    vsi_dte_pt_address,
    vsi_iova_dte_index,
    vsi_iova_page_offset,
    vsi_iova_pte_index,
    vsi_mk_dte,
    vsi_mk_pta,
    vsi_mk_pte_invalid,
    vsi_pte_is_page_valid,
)

__all__ = ["VsiV3", "VsiV3GfpOr", "VsiV3Iommu", "VsiV3IommuDomain"]

VSI_DOMAIN_SIZE = 96  # sizeof(struct vsi_iommu_domain), for kzalloc

VSI_PTE_PAGE_ADDRESS_MASK = 0xFFFFFFF0


# -- table entries: the two where v3's C differs from the merged one ---------------


def vsi_pte_page_address(pte):
    """``vsi_pte_page_address``: ``pte`` is a u32 widened to u64, so its
    bits 39:32 are always 0 and the HI part adds nothing (as in the C)."""
    pte_vsi = pte & 0xFFFFFFFF
    pte_vsi = ((pte_vsi & VSI_PAGE_DESC_HI_MASK) << VSI_PAGE_DESC_HI_SHIFT) | (pte_vsi & VSI_PAGE_DESC_LO_MASK)
    return pte_vsi


def vsi_mk_pte(page, prot):
    """``vsi_mk_pte``: as the merged one, then masked with
    ``VSI_PTE_PAGE_ADDRESS_MASK`` (no u32 truncation)."""
    flags = 0
    flags |= VSI_PTE_PAGE_WRITABLE if prot & IOMMU_WRITE else 0
    page = (page & VSI_PAGE_DESC_LO_MASK) | ((page & VSI_PAGE_DESC_HI_MASK) >> VSI_PAGE_DESC_HI_SHIFT)
    page &= VSI_PTE_PAGE_ADDRESS_MASK
    return page | flags | VSI_PTE_PAGE_VALID


def virt_to_phys(page):
    return page_to_phys(page)


async def vsi_iommu_read(base, offset):
    return await readl(base, offset)


async def vsi_iommu_write(base, offset, value):
    await writel(base, offset, value)


# -- structures ---------------------------------------------------------------------


class VsiV3Iommu:
    """``struct vsi_iommu`` (v3): no lock of its own (devm memory, not tracked)."""

    def __init__(self, pdev):
        self.dev = pdev
        self.bases = []
        self.num_mmu = 0
        self.num_irq = 0
        self.clocks = None
        self.num_clocks = 0
        self.iommu = IommuDevice()
        self.node = ListNode(self)  # entry in vsi_iommu_domain.iommus
        self.domain = Shared("vsi_iommu->domain", None)  # domain to which iommu is attached

    def __repr__(self):
        return f"vsi_iommu({self.dev.name})"


class VsiV3IommuDomain(IommuDomain):
    """``struct vsi_iommu_domain`` (v3): embeds ``struct iommu_domain``."""

    def __init__(self, kernel):
        super().__init__()
        self.kernel = kernel
        self.dma_dev = None
        self.iommus = None
        self.dt = None  # page directory table
        self.dt_dma = 0
        self.iommus_lock = SpinLock("vsi_iommu_domain->iommus_lock")  # lock for iommus list
        self.dt_lock = SpinLock("vsi_iommu_domain->dt_lock")  # lock for modifying page directory table
        self.pta = None
        self.pta_dma = 0

    def table_pages(self):
        if self.dt is None:
            return ()
        pages = [p for p in (self.pta, self.dt) if p is not None]
        for dte in self.dt.entries(self.dt.words):  # the non-zero entries (Page.entries)
            if vsi_dte_is_pt_valid(dte):
                pt = phys_to_page(self.kernel, vsi_dte_pt_address(dte))
                if pt is not None:
                    pages.append(pt)
        return tuple(pages)


def to_vsi_domain(domain):
    return container_of(domain, VsiV3IommuDomain)


class VsiV3(VsiDriver):
    """The v3 posting: identity step inside attach, forced atomic gfp,
    lockless iommu->domain / PM / IRQ, no TLB flush on map or unmap."""

    name = "vsi-v3"
    summary = "VSI IOMMU as posted in v3: identity switch inside attach, GFP_ATOMIC|GFP_DMA32 ignoring the caller's gfp, no TLB flush"
    layout = "vsi"

    def __init__(self):
        # no .release_domain in v3's iommu_ops (the VsiDriver base sets one)
        self.identity_domain = IommuDomain(IOMMU_DOMAIN_IDENTITY, name="vsi_identity_domain")

    # -- registers and TLB ---------------------------------------------------------------

    async def vsi_iommu_disable(self, iommu):
        """``vsi_iommu_disable``: clocks on, ``AHB_CONTROL = 0`` on every MMU
        (translation off: bypass), clocks off.  No lock."""
        # Ignore error while disabling, just keep going
        if await clk_bulk_enable(iommu.num_clocks, iommu.clocks):
            current().kernel.warn("vsi_iommu_disable: clk_bulk_enable failed")
        for i in range(iommu.num_mmu):
            await writel(iommu.bases[i], VSI_MMU_AHB_CONTROL_BASE, 0)
        await clk_bulk_disable(iommu.num_clocks, iommu.clocks)

    async def vsi_iommu_enable(self, iommu):
        """``vsi_iommu_enable``: program ``iommu->domain`` (read here, no lock)
        into every MMU whose translation is off; no TLB flush."""
        domain = await iommu.domain.load()
        vsi_domain = to_vsi_domain(domain)
        ret = await clk_bulk_enable(iommu.num_clocks, iommu.clocks)
        if ret:
            return ret
        for i in range(iommu.num_mmu):
            val = await readl(iommu.bases[i], VSI_MMU_AHB_CONTROL_BASE)
            if not val & VSI_MMU_BIT_ENABLE:
                await writel(iommu.bases[i], VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE, vsi_domain.pta_dma)
                await writel(iommu.bases[i], VSI_MMU_CONFIG1_BASE, VSI_MMU_OUT_OF_BOUND)
                await writel(iommu.bases[i], VSI_MMU_AHB_EXCEPTION_BASE, VSI_MMU_BIT_ENABLE)
                await writel(iommu.bases[i], VSI_MMU_AHB_CONTROL_BASE, VSI_MMU_BIT_ENABLE)
        await clk_bulk_disable(iommu.num_clocks, iommu.clocks)
        return ret

    async def vsi_table_flush(self, vsi_domain, dma, count):
        """``vsi_table_flush``: sync ``count`` u32 entries for the walker."""
        await dma_sync_single_for_device(vsi_domain.dma_dev, dma, count * 4, DMA_TO_DEVICE)

    async def vsi_iommu_flush_tlb_all(self, domain):
        """``vsi_iommu_flush_tlb_all`` (``.flush_iotlb_all``): under
        ``iommus_lock``, FLUSH on every IOMMU that is in use."""
        vsi_domain = to_vsi_domain(domain)
        flags = await spin_lock_irqsave(vsi_domain.iommus_lock)
        for iommu in await list_entries(vsi_domain.iommus):
            ret = await pm_runtime_get_if_in_use(iommu.dev)
            if ret < 0:
                current().kernel.warn(f"vsi_iommu_flush_tlb_all: pm_runtime_get_if_in_use({iommu.dev}) = {ret}")
                continue
            if ret:
                if await clk_bulk_enable(iommu.num_clocks, iommu.clocks):
                    current().kernel.warn("vsi_iommu_flush_tlb_all: clk_bulk_enable failed")
                for i in range(iommu.num_mmu):
                    await writel(iommu.bases[i], VSI_MMU_FLUSH_BASE, VSI_MMU_BIT_FLUSH)
                    await writel(iommu.bases[i], VSI_MMU_FLUSH_BASE, 0)
                await clk_bulk_disable(iommu.num_clocks, iommu.clocks)
                await pm_runtime_put(iommu.dev)
        await spin_unlock_irqrestore(vsi_domain.iommus_lock, flags)

    # -- interrupt ---------------------------------------------------------------------------

    async def vsi_iommu_irq(self, irq, dev_id):
        """``vsi_iommu_irq`` (hard IRQ, IRQF_SHARED): ``pm_runtime_get_if_in_use``,
        no spinlock; reports the fault on ``iommu->domain`` whatever it is."""
        iommu = dev_id
        ret = IRQ_NONE
        err = await pm_runtime_get_if_in_use(iommu.dev)
        if not err:
            return ret
        if err < 0:
            current().kernel.warn(f"vsi_iommu_irq: pm_runtime_get_if_in_use({iommu.dev}) = {err}")
            return ret
        if await clk_bulk_enable(iommu.num_clocks, iommu.clocks):
            current().kernel.warn("vsi_iommu_irq: clk_bulk_enable failed")
        else:
            for i in range(iommu.num_mmu):
                int_status = await vsi_iommu_read(iommu.bases[i], VSI_MMU_STATUS_BASE)
                if int_status & VSI_MMU_IRQ_MASK:
                    # dev_err "unexpected int_status=%08x"
                    iova = await vsi_iommu_read(iommu.bases[i], VSI_MMU_PAGE_FAULT_ADDR)
                    if await iommu.domain.load() is not None:
                        await report_iommu_fault(await iommu.domain.load(), iommu.dev, iova, int_status)
                    # else dev_err "Page fault while iommu not attached to domain?"
                await vsi_iommu_write(iommu.bases[i], VSI_MMU_STATUS_BASE, 0)
                ret = IRQ_HANDLED
            await clk_bulk_disable(iommu.num_clocks, iommu.clocks)
        # out:
        await pm_runtime_put(iommu.dev)
        return ret

    # -- domains ---------------------------------------------------------------------------

    async def vsi_iommu_domain_alloc_paging(self, dev):
        """``vsi_iommu_domain_alloc_paging``: DT and PTA from ``GFP_KERNEL |
        GFP_DMA32``; side effect ``iommu->domain = &vsi_identity_domain``
        (no lock, whatever the IOMMU is attached to)."""
        iommu = self.vsi_iommu_get_from_dev(dev)
        vsi_domain = VsiV3IommuDomain(dev.kernel)
        vsi_domain.mem = await kzalloc(VSI_DOMAIN_SIZE, GFP_KERNEL, tag="vsi_iommu_domain", value=vsi_domain)
        vsi_domain.dma_dev = iommu.dev
        await iommu.domain.store(self.identity_domain)
        # iommu use a 2 level pagetable.  Each level1 (dt) and level2 (pt)
        # table has 1024 4-byte entries.  Allocate one 4 KiB page for each table.
        vsi_domain.dt = await iommu_alloc_pages_sz(GFP_KERNEL | GFP_DMA32, SPAGE_SIZE, tag="vsi dt")
        if vsi_domain.dt is None:
            kfree(vsi_domain.mem)
            return None
        vsi_domain.dt_dma = await dma_map_single(vsi_domain.dma_dev, vsi_domain.dt, SPAGE_SIZE, DMA_TO_DEVICE)
        if dma_mapping_error(vsi_domain.dma_dev, vsi_domain.dt_dma):
            iommu_free_pages(vsi_domain.dt)
            kfree(vsi_domain.mem)
            return None
        vsi_domain.pta = await iommu_alloc_pages_sz(GFP_KERNEL | GFP_DMA32, SPAGE_SIZE, tag="vsi pta")
        if vsi_domain.pta is None:
            await dma_unmap_single(vsi_domain.dma_dev, vsi_domain.dt_dma, SPAGE_SIZE, DMA_TO_DEVICE)
            iommu_free_pages(vsi_domain.dt)
            kfree(vsi_domain.mem)
            return None
        await table_write64(vsi_domain.pta, 0, vsi_mk_pta(vsi_domain.dt_dma))
        vsi_domain.pta_dma = await dma_map_single(vsi_domain.dma_dev, vsi_domain.pta, SPAGE_SIZE, DMA_TO_DEVICE)
        if dma_mapping_error(vsi_domain.dma_dev, vsi_domain.pta_dma):
            iommu_free_pages(vsi_domain.pta)
            await dma_unmap_single(vsi_domain.dma_dev, vsi_domain.dt_dma, SPAGE_SIZE, DMA_TO_DEVICE)
            iommu_free_pages(vsi_domain.dt)
            kfree(vsi_domain.mem)
            return None
        vsi_domain.iommus = INIT_LIST_HEAD("vsi_iommu_domain->iommus")
        vsi_domain.geometry.aperture_start = 0
        vsi_domain.geometry.aperture_end = DMA_BIT_MASK(32)
        vsi_domain.geometry.force_aperture = True
        vsi_domain.pgsize_bitmap = SZ_4K
        return vsi_domain

    async def vsi_iommu_domain_free(self, domain):
        """``vsi_iommu_domain_free``: no lock; WARN if an IOMMU is still on the list."""
        vsi_domain = to_vsi_domain(domain)
        if not await list_empty(vsi_domain.iommus):
            current().kernel.warn(f"vsi_iommu_domain_free({domain!r}): WARN_ON(!list_empty(&vsi_domain->iommus))")
        for dte in await table_entries(vsi_domain.dt):  # for (i = 0; i < NUM_DT_ENTRIES; i++): zero (invalid) DTEs skipped
            if vsi_dte_is_pt_valid(dte):
                pt_phys = vsi_dte_pt_address(dte)
                page_table = phys_to_virt(pt_phys)
                await dma_unmap_single(vsi_domain.dma_dev, pt_phys, SPAGE_SIZE, DMA_TO_DEVICE)
                iommu_free_pages(page_table)
        await dma_unmap_single(vsi_domain.dma_dev, vsi_domain.dt_dma, SPAGE_SIZE, DMA_TO_DEVICE)
        iommu_free_pages(vsi_domain.dt)
        await dma_unmap_single(vsi_domain.dma_dev, vsi_domain.pta_dma, SPAGE_SIZE, DMA_TO_DEVICE)
        iommu_free_pages(vsi_domain.pta)
        kfree(vsi_domain.mem)

    # -- page tables -------------------------------------------------------------------------

    async def vsi_iommu_iova_to_phys(self, domain, iova):
        """``vsi_iommu_iova_to_phys``: under ``dt_lock``, irqsave."""
        vsi_domain = to_vsi_domain(domain)
        phys = 0
        flags = await spin_lock_irqsave(vsi_domain.dt_lock)
        dte = await table_read(vsi_domain.dt, vsi_iova_dte_index(iova))
        if vsi_dte_is_pt_valid(dte):
            page_table = phys_to_virt(vsi_dte_pt_address(dte))
            pte = await table_read(page_table, vsi_iova_pte_index(iova))
            if vsi_pte_is_page_valid(pte):
                phys = vsi_pte_page_address(pte) + vsi_iova_page_offset(iova)
        await spin_unlock_irqrestore(vsi_domain.dt_lock, flags)
        return phys

    async def vsi_dte_get_page_table(self, vsi_domain, iova):
        """``vsi_dte_get_page_table(vsi_domain, iova)``: no gfp parameter; a
        missing PT comes from ``GFP_ATOMIC | GFP_DMA32`` (atomic because the
        caller holds ``dt_lock``).  The DTE is written from ``virt_to_phys``
        BEFORE ``dma_map_single``, and stays valid if the map fails."""
        assert_spin_locked(vsi_domain.dt_lock)
        return await self._vsi_dte_get_page_table(vsi_domain, iova, GFP_ATOMIC | GFP_DMA32)

    async def _vsi_dte_get_page_table(self, vsi_domain, iova, pt_gfp):
        """The body of ``vsi_dte_get_page_table`` with the page-table gfp
        as the C computes it (shared by v3 and its gfp-or revision)."""
        dte_index = vsi_iova_dte_index(iova)
        dte = await table_read(vsi_domain.dt, dte_index)
        if not vsi_dte_is_pt_valid(dte):
            page_table = await iommu_alloc_pages_sz(pt_gfp, SPAGE_SIZE, tag="vsi pt")
            if page_table is None:
                return -ENOMEM
            dte = vsi_mk_dte(virt_to_phys(page_table))
            await table_write(vsi_domain.dt, dte_index, dte)
            pt_dma = await dma_map_single(vsi_domain.dma_dev, page_table, SPAGE_SIZE, DMA_TO_DEVICE)
            if dma_mapping_error(vsi_domain.dma_dev, pt_dma):
                iommu_free_pages(page_table)
                return -ENOMEM
            await self.vsi_table_flush(vsi_domain, vsi_domain.dt_dma + dte_index * 4, 1)
        # done:
        return phys_to_virt(vsi_dte_pt_address(dte))

    async def vsi_iommu_unmap_iova(self, vsi_domain, page_table, pte_index, pte_dma, size):
        """``vsi_iommu_unmap_iova``: clear VALID up to the first invalid PTE, sync pte_count."""
        assert_spin_locked(vsi_domain.dt_lock)
        pte_total = size // SPAGE_SIZE
        pte_count = 0
        # (the C has no NUM_PT_ENTRIES bound; with a 4 KiB pgsize one call is one PTE)
        while pte_count < pte_total and pte_index + pte_count < NUM_PT_ENTRIES:
            pte = await table_read(page_table, pte_index + pte_count)
            if not vsi_pte_is_page_valid(pte):
                break
            await table_write(page_table, pte_index + pte_count, vsi_mk_pte_invalid(pte))
            pte_count += 1
        await self.vsi_table_flush(vsi_domain, pte_dma, pte_count)
        return pte_count * SPAGE_SIZE

    async def vsi_iommu_map_iova(self, vsi_domain, page_table, pte_index, pte_dma, iova, paddr, size, prot):
        """``vsi_iommu_map_iova``: write and sync the PTEs; on a valid one,
        unwind what was written and return -EADDRINUSE."""
        assert_spin_locked(vsi_domain.dt_lock)
        pte_total = size // SPAGE_SIZE
        pte_count = 0
        while pte_count < pte_total and pte_index + pte_count < NUM_PT_ENTRIES:
            pte = await table_read(page_table, pte_index + pte_count)
            if vsi_pte_is_page_valid(pte):
                # unwind: unmap the range of iovas that we just mapped
                await self.vsi_iommu_unmap_iova(vsi_domain, page_table, pte_index, pte_dma, pte_count * SPAGE_SIZE)
                return -EADDRINUSE
            await table_write(page_table, pte_index + pte_count, vsi_mk_pte(paddr, prot))
            paddr += SPAGE_SIZE
            pte_count += 1
        await self.vsi_table_flush(vsi_domain, pte_dma, pte_total)
        return 0

    async def vsi_iommu_unmap(self, domain, iova, size, count, gather):
        """``vsi_iommu_unmap`` (unmap_pages): PTEs cleared and synced under
        ``dt_lock``; no TLB flush, and the driver has no ``iotlb_sync``."""
        vsi_domain = to_vsi_domain(domain)
        flags = await spin_lock_irqsave(vsi_domain.dt_lock)
        dte = await table_read(vsi_domain.dt, vsi_iova_dte_index(iova))
        # Just return 0 if iova is unmapped
        if not vsi_dte_is_pt_valid(dte):
            await spin_unlock_irqrestore(vsi_domain.dt_lock, flags)
            return 0
        pt_phys = vsi_dte_pt_address(dte)
        page_table = phys_to_virt(pt_phys)
        pte_index = vsi_iova_pte_index(iova)
        pte_dma = pt_phys + pte_index * 4
        unmap_size = await self.vsi_iommu_unmap_iova(vsi_domain, page_table, pte_index, pte_dma, size)
        await spin_unlock_irqrestore(vsi_domain.dt_lock, flags)
        return unmap_size

    async def vsi_iommu_map(self, domain, iova, paddr, size, count, prot, gfp):
        """``vsi_iommu_map`` (map_pages): everything under ``dt_lock``
        (irqsave); the caller's ``gfp`` is NOT used.  No TLB flush.
        Returns ``(ret, mapped)``."""
        vsi_domain = to_vsi_domain(domain)
        flags = await spin_lock_irqsave(vsi_domain.dt_lock)
        page_table = await self.vsi_dte_get_page_table(vsi_domain, iova)
        return await self._vsi_iommu_map_tail(vsi_domain, flags, page_table, iova, paddr, size, prot)

    async def _vsi_iommu_map_tail(self, vsi_domain, flags, page_table, iova, paddr, size, prot):
        """The rest of ``vsi_iommu_map`` after ``vsi_dte_get_page_table``."""
        if IS_ERR(page_table):
            await spin_unlock_irqrestore(vsi_domain.dt_lock, flags)
            return page_table, 0
        dte = await table_read(vsi_domain.dt, vsi_iova_dte_index(iova))
        pte_index = vsi_iova_pte_index(iova)
        pte_dma = vsi_dte_pt_address(dte) + pte_index * 4
        ret = await self.vsi_iommu_map_iova(vsi_domain, page_table, pte_index, pte_dma, iova, paddr, size, prot)
        await spin_unlock_irqrestore(vsi_domain.dt_lock, flags)
        mapped = size if not ret else 0
        return ret, mapped

    # -- attach ----------------------------------------------------------------------------

    async def vsi_iommu_identity_attach(self, domain, dev):
        """``vsi_iommu_identity_attach``: ``iommu->domain = identity`` (no lock),
        ``list_del_init`` under ``to_vsi_domain(&vsi_identity_domain)->iommus_lock``
        (static memory, not the old domain's lock), then translation OFF if
        the IOMMU is in use."""
        iommu = dev_iommu_priv_get(dev)
        vsi_domain = to_vsi_domain(domain)
        if iommu is None:
            current().kernel.warn(f"vsi_iommu_identity_attach({dev}): no IOMMU")
            return -ENODEV
        if await iommu.domain.load() is domain:
            return 0
        await iommu.domain.store(domain)
        flags = await spin_lock_irqsave(vsi_domain.iommus_lock)
        await list_del_init(iommu.node)
        await spin_unlock_irqrestore(vsi_domain.iommus_lock, flags)
        ret = await pm_runtime_get_if_in_use(iommu.dev)
        if ret < 0:
            current().kernel.warn(f"vsi_iommu_identity_attach: pm_runtime_get_if_in_use({iommu.dev}) = {ret}")
        if ret > 0:
            await self.vsi_iommu_disable(iommu)
            await pm_runtime_put(iommu.dev)
        return 0

    async def vsi_iommu_attach_device(self, domain, dev):
        """``vsi_iommu_attach_device``: identity attach FIRST (translation off),
        then ``iommu->domain = domain``, list_add_tail under the new
        domain's ``iommus_lock``, and enable if the IOMMU is in use."""
        iommu = dev_iommu_priv_get(dev)
        vsi_domain = to_vsi_domain(domain)
        if iommu is None:
            current().kernel.warn(f"vsi_iommu_attach_device({dev}): no IOMMU")
            return -ENODEV
        # iommu already attached
        if await iommu.domain.load() is domain:
            return 0
        ret = await self.vsi_iommu_identity_attach(self.identity_domain, dev)
        if ret:
            return ret
        await iommu.domain.store(domain)
        flags = await spin_lock_irqsave(vsi_domain.iommus_lock)
        await list_add_tail(iommu.node, vsi_domain.iommus)
        await spin_unlock_irqrestore(vsi_domain.iommus_lock, flags)
        ret = await pm_runtime_get_if_in_use(iommu.dev)
        if ret < 0:
            current().kernel.warn(f"vsi_iommu_attach_device: pm_runtime_get_if_in_use({iommu.dev}) = {ret}")
            return 0
        if not ret:
            return 0
        ret = await self.vsi_iommu_enable(iommu)
        if ret:
            if await self.vsi_iommu_identity_attach(self.identity_domain, dev):
                current().kernel.warn("vsi_iommu_attach_device: identity attach failed")
        await pm_runtime_put(iommu.dev)
        return ret

    # -- device probe ---------------------------------------------------------------------------

    async def vsi_iommu_probe_device(self, dev):
        """``vsi_iommu_probe_device``: link the master's runtime PM to the IOMMU's."""
        iommu = self.vsi_iommu_get_from_dev(dev)
        if iommu is None:
            current().kernel.warn(f"vsi_iommu_probe_device({dev}): no IOMMU")
            return -ENODEV
        await device_link_add(dev, iommu.dev, DL_FLAG_STATELESS | DL_FLAG_PM_RUNTIME)
        dev_iommu_priv_set(dev, iommu)
        return iommu.iommu

    async def vsi_iommu_probe(self, pdev):
        """``vsi_iommu_probe``: one MMU resource and one IRQ per instance here;
        no autosuspend; ``iommu_device_sysfs_add`` is not modelled."""
        iommu = VsiV3Iommu(pdev)  # devm_kzalloc
        iommu.bases = [devm_platform_ioremap_resource(pdev, 0)]
        iommu.num_mmu = 1
        iommu.num_irq = 1
        iommu.num_clocks, iommu.clocks = devm_clk_bulk_get_all(pdev)
        err = await clk_bulk_prepare(iommu.num_clocks, iommu.clocks)
        if err:
            return err
        for i in range(iommu.num_irq):
            irq = platform_get_irq(pdev, i)
            if irq < 0:
                return irq
            err = request_irq(pdev.kernel, irq, self.vsi_iommu_irq, IRQF_SHARED, pdev.name, iommu)
            if err:
                await clk_bulk_unprepare(iommu.num_clocks, iommu.clocks)
                return err
        dma_set_mask_and_coherent(pdev, DMA_BIT_MASK(32))
        platform_set_drvdata(pdev, iommu)
        pm_runtime_enable(pdev)
        return iommu_device_register(iommu.iommu, self, pdev)

    # -- runtime PM ---------------------------------------------------------------------------

    async def vsi_iommu_suspend(self, dev):
        """``vsi_iommu_suspend``: no lock; skip if ``iommu->domain`` is identity."""
        iommu = dev_get_drvdata(dev)
        if await iommu.domain.load() is self.identity_domain:
            return 0
        await self.vsi_iommu_disable(iommu)
        return 0

    async def vsi_iommu_resume(self, dev):
        """``vsi_iommu_resume``: no lock; skip if ``iommu->domain`` is identity."""
        iommu = dev_get_drvdata(dev)
        if await iommu.domain.load() is self.identity_domain:
            return 0
        return await self.vsi_iommu_enable(iommu)

    # -- static struct iommu_ops vsi_iommu_ops (the rest as VsiDriver's) --------------------

    async def attach_dev(self, domain, dev, old):
        """``domain->ops->attach_dev`` (v3 has no ``old`` argument); the identity
        domain has its own ops."""
        if domain is self.identity_domain:
            return await self.vsi_iommu_identity_attach(domain, dev)
        return await self.vsi_iommu_attach_device(domain, dev)

    async def flush_iotlb_all(self, domain):
        await self.vsi_iommu_flush_tlb_all(domain)


class VsiV3GfpOr(VsiV3):
    """v3 with the change proposed in the thread: map passes its ``gfp`` to
    ``vsi_dte_get_page_table``, which allocates with
    ``gfp | GFP_ATOMIC | GFP_DMA32``.  OR-ing GFP_ATOMIC into GFP_KERNEL
    keeps ``__GFP_DIRECT_RECLAIM``: the allocation may sleep under dt_lock."""

    name = "vsi-v3-gfp-or"
    summary = "vsi-v3 with the thread's gfp fix: PT alloc gfp | GFP_ATOMIC | GFP_DMA32 (GFP_KERNEL still reclaims under the spinlock)"

    async def vsi_dte_get_page_table(self, vsi_domain, iova, gfp):
        """``vsi_dte_get_page_table(vsi_domain, iova, gfp)``:
        ``iommu_alloc_pages_sz(gfp | GFP_ATOMIC | GFP_DMA32, SPAGE_SIZE)``."""
        assert_spin_locked(vsi_domain.dt_lock)
        return await self._vsi_dte_get_page_table(vsi_domain, iova, gfp | GFP_ATOMIC | GFP_DMA32)

    async def vsi_iommu_map(self, domain, iova, paddr, size, count, prot, gfp):
        """``vsi_iommu_map``: as v3, passing the caller's ``gfp`` down."""
        vsi_domain = to_vsi_domain(domain)
        flags = await spin_lock_irqsave(vsi_domain.dt_lock)
        page_table = await self.vsi_dte_get_page_table(vsi_domain, iova, gfp)
        return await self._vsi_iommu_map_tail(vsi_domain, flags, page_table, iova, paddr, size, prot)
