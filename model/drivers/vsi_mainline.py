"""vsi-mainline: drivers/iommu/vsi-iommu.c as merged in Linux, transcribed.

One method per C function, in the C's order of operations, with the C's
defects kept (this is what the framework is asked to judge, not a fix):

* ``vsi_iommu_irq`` (IRQF_SHARED, hard IRQ) calls ``pm_runtime_resume_and_get``
  (may sleep) and takes ``iommu->lock`` with irqsave;
* ``vsi_iommu_flush_tlb`` runs on EVERY map and unmap under the domain lock;
  it takes ``pm_runtime_get`` (asynchronous: usage++ and a queued resume,
  no wait) and flushes only if ``iommu->enable``;
* ``vsi_iommu_identity_attach`` calls ``to_vsi_domain()`` (container_of) on
  the bare static ``vsi_identity_domain`` and locks ``vsi_domain->lock`` of
  that non-object;
* ``vsi_iommu_attach_device`` is hitless (enable over the old table base,
  then a flush), moves ``iommu->node`` off the old domain's list holding
  only the NEW domain's lock;
* runtime suspend: ``vsi_iommu_disable`` (no lock) then ``clk_bulk_disable``;
  runtime resume: clocks on, then ``iommu->domain`` read with no lock,
  ``to_vsi_domain`` of it, lock domain + iommu, ``vsi_iommu_enable``;
* ``vsi_iommu_map_iova`` returns ``(pte_count - 1) * SPAGE_SIZE`` (an ``int``)
  on an already valid PTE, without syncing the PTEs written so far.

Lock order: ``vsi_iommu_domain->lock`` (irqsave) -> ``vsi_iommu->lock``.
Register layout "vsi" (TLB_ARRAY_BASE_L = PTA, AHB_CONTROL, FLUSH bit 4...).
"""

from __future__ import annotations

from errno import ENOMEM

from model.hw import (
    VSI_DTE_PT_ADDRESS_MASK,
    VSI_DTE_PT_VALID,
    VSI_MASTER_TLB_MASK,
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
    VSI_PTA_4K_MODE,
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
    IommuDriver,
    ListNode,
    container_of,
    dev_get_drvdata,
    dev_iommu_fwspec_get,
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
    current,
    kfree,
    kzalloc,
    phys_to_page,
    phys_to_virt,
    request_irq,
    spin_lock,
    spin_lock_irqsave,
    spin_unlock,
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
    table_snapshot,
    table_write,
    table_write64,
)
from model.kernel.pm import (
    DL_FLAG_PM_RUNTIME,
    DL_FLAG_STATELESS,
    device_link_add,
    device_link_remove,
    pm_runtime_enable,
    pm_runtime_get,
    pm_runtime_put_autosuspend,
    pm_runtime_resume_and_get,
    pm_runtime_set_autosuspend_delay,
    pm_runtime_use_autosuspend,
)

__all__ = ["VsiMainline", "VsiIommu", "VsiIommuDomain"]

NUM_DT_ENTRIES = 1024
NUM_PT_ENTRIES = 1024
SPAGE_SIZE = 1 << 12
PAGE_SIZE = 1 << 12
VSI_DOMAIN_SIZE = 112  # sizeof(struct vsi_iommu_domain), for kzalloc_obj

VSI_IOVA_DTE_MASK = 0xFFC00000
VSI_IOVA_DTE_SHIFT = 22
VSI_IOVA_PTE_MASK = 0x003FF000
VSI_IOVA_PTE_SHIFT = 12
VSI_IOVA_PAGE_MASK = 0x00000FFF
VSI_IOVA_PAGE_SHIFT = 0


def _s32(v):
    """Truncate to a C ``int``."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


# -- table entries (VSI format) --------------------------------------------------


def vsi_dte_pt_address(dte):
    return dte & VSI_DTE_PT_ADDRESS_MASK


def vsi_mk_dte(dte):
    return (dte | VSI_DTE_PT_VALID) & 0xFFFFFFFF


def vsi_pte_page_address(pte):
    return ((pte << VSI_PAGE_DESC_HI_SHIFT) & VSI_PAGE_DESC_HI_MASK) | (pte & VSI_PAGE_DESC_LO_MASK)


def vsi_mk_pte(page, prot):
    flags = 0
    flags |= VSI_PTE_PAGE_WRITABLE if prot & IOMMU_WRITE else 0
    page = (page & VSI_PAGE_DESC_LO_MASK) | ((page & VSI_PAGE_DESC_HI_MASK) >> VSI_PAGE_DESC_HI_SHIFT)
    return (page | flags | VSI_PTE_PAGE_VALID) & 0xFFFFFFFF


def vsi_dte_is_pt_valid(dte):
    return bool(dte & VSI_DTE_PT_VALID)


def vsi_pte_is_page_valid(pte):
    return bool(pte & VSI_PTE_PAGE_VALID)


def vsi_mk_pte_invalid(pte):
    return pte & ~VSI_PTE_PAGE_VALID


def vsi_mk_pta(dt_dma):
    return (dt_dma & VSI_MASTER_TLB_MASK) | VSI_PTA_4K_MODE


def vsi_iova_dte_index(iova):
    return (iova & VSI_IOVA_DTE_MASK) >> VSI_IOVA_DTE_SHIFT


def vsi_iova_pte_index(iova):
    return (iova & VSI_IOVA_PTE_MASK) >> VSI_IOVA_PTE_SHIFT


def vsi_iova_page_offset(iova):
    return (iova & VSI_IOVA_PAGE_MASK) >> VSI_IOVA_PAGE_SHIFT


# -- structures ---------------------------------------------------------------------


class VsiIommu:
    """``struct vsi_iommu``: one per IOMMU instance (devm memory, not tracked)."""

    def __init__(self, pdev):
        self.dev = pdev
        self.regs = None
        self.clocks = None
        self.num_clocks = 0
        self.iommu = IommuDevice()
        self.node = ListNode(self)  # entry in vsi_iommu_domain.iommus
        self.domain = Shared("vsi_iommu->domain", None)  # domain to which iommu is attached
        self.lock = SpinLock("vsi_iommu->lock")  # lock to protect vsi_iommu fields
        self.irq = 0
        self.enable = Shared("vsi_iommu->enable", False)

    def __repr__(self):
        return f"vsi_iommu({self.dev.name})"


class VsiIommuDomain(IommuDomain):
    """``struct vsi_iommu_domain``: embeds ``struct iommu_domain``; ONE lock."""

    def __init__(self, kernel):
        super().__init__()
        self.kernel = kernel
        self.iommus = None
        self.dev = None
        self.dt = None
        self.dt_dma = 0
        self.pta = None
        self.pta_dma = 0
        self.lock = SpinLock("vsi_iommu_domain->lock")  # lock to protect vsi_iommu_domain fields

    def table_pages(self):
        if self.dt is None:
            return ()
        pages = [self.pta] if self.pta is not None else []
        pages.append(self.dt)
        for dte in self.dt.words:
            if vsi_dte_is_pt_valid(dte):
                pt = phys_to_page(self.kernel, vsi_dte_pt_address(dte))
                if pt is not None:
                    pages.append(pt)
        return tuple(pages)


def to_vsi_domain(domain):
    """``to_vsi_domain``: ``container_of(dom, struct vsi_iommu_domain, domain)``."""
    return container_of(domain, VsiIommuDomain)


class VsiMainline(IommuDriver):
    """drivers/iommu/vsi-iommu.c as merged, defects included."""

    name = "vsi-mainline"
    summary = "VSI IOMMU as merged in Linux (vsi-iommu.c): hitless attach, flush on every map, resume_and_get in the IRQ"
    layout = "vsi"

    def __init__(self):
        # static struct iommu_domain vsi_identity_domain = { .type = IDENTITY, .ops = &vsi_identity_ops }
        self.identity_domain = IommuDomain(IOMMU_DOMAIN_IDENTITY, name="vsi_identity_domain")
        self.release_domain = self.identity_domain

    # -- interrupt -------------------------------------------------------------------

    async def vsi_iommu_irq(self, irq, dev_id):
        """``vsi_iommu_irq`` (hard IRQ, IRQF_SHARED): ``pm_runtime_resume_and_get``
        (may sleep) in hard-IRQ context, then ``iommu->lock`` irqsave."""
        iommu = dev_id
        if await pm_runtime_resume_and_get(iommu.dev) < 0:
            return IRQ_NONE
        flags = await spin_lock_irqsave(iommu.lock)
        status = await readl(iommu.regs, VSI_MMU_STATUS_BASE)
        if status & VSI_MMU_IRQ_MASK:
            # dev_err(iommu->dev, "unexpected int_status=%08x\n", status);
            iova = await readl(iommu.regs, VSI_MMU_PAGE_FAULT_ADDR)
            await report_iommu_fault(await iommu.domain.load(), iommu.dev, iova, status)
        await writel(iommu.regs, VSI_MMU_STATUS_BASE, 0)
        await spin_unlock_irqrestore(iommu.lock, flags)
        await pm_runtime_put_autosuspend(iommu.dev)
        return IRQ_HANDLED

    # -- domains -------------------------------------------------------------------------

    def vsi_iommu_get_from_dev(self, dev):
        """``vsi_iommu_get_from_dev``: fwspec -> the IOMMU's platform device -> drvdata."""
        fwspec = dev_iommu_fwspec_get(dev)
        iommu_dev = fwspec.iommu_fwnode if fwspec is not None else None
        return dev_get_drvdata(iommu_dev) if iommu_dev is not None else None

    async def vsi_iommu_domain_alloc_paging(self, dev):
        """``vsi_iommu_domain_alloc_paging``: DT and PTA pages (GFP_KERNEL | GFP_DMA32),
        each dma_map_single'd; ``pta[0] = vsi_mk_pta(dt_dma)`` written before the PTA is mapped."""
        iommu = dev_iommu_priv_get(dev)
        vsi_domain = VsiIommuDomain(dev.kernel)
        vsi_domain.mem = await kzalloc(VSI_DOMAIN_SIZE, GFP_KERNEL, tag="vsi_iommu_domain", value=vsi_domain)
        if vsi_domain.mem is None:
            return None
        vsi_domain.dev = iommu.dev
        # iommu use a 2 level pagetable.  Each level1 (dt) and level2 (pt)
        # table has 1024 4-byte entries.  Allocate one 4 KiB page for each table.
        vsi_domain.dt = await iommu_alloc_pages_sz(GFP_KERNEL | GFP_DMA32, SPAGE_SIZE, tag="vsi dt")
        if vsi_domain.dt is None:
            kfree(vsi_domain.mem)  # err_free_domain
            return None
        vsi_domain.dt_dma = await dma_map_single(vsi_domain.dev, vsi_domain.dt, SPAGE_SIZE, DMA_TO_DEVICE)
        if dma_mapping_error(vsi_domain.dev, vsi_domain.dt_dma):
            # dev_err(dev, "DMA map error for DT\n");
            iommu_free_pages(vsi_domain.dt)  # err_free_dt
            kfree(vsi_domain.mem)
            return None
        vsi_domain.pta = await iommu_alloc_pages_sz(GFP_KERNEL | GFP_DMA32, SPAGE_SIZE, tag="vsi pta")
        if vsi_domain.pta is None:
            await dma_unmap_single(vsi_domain.dev, vsi_domain.dt_dma, SPAGE_SIZE, DMA_TO_DEVICE)  # err_unmap_dt
            iommu_free_pages(vsi_domain.dt)
            kfree(vsi_domain.mem)
            return None
        await table_write64(vsi_domain.pta, 0, vsi_mk_pta(vsi_domain.dt_dma))
        vsi_domain.pta_dma = await dma_map_single(vsi_domain.dev, vsi_domain.pta, SPAGE_SIZE, DMA_TO_DEVICE)
        if dma_mapping_error(vsi_domain.dev, vsi_domain.pta_dma):
            # dev_err(dev, "DMA map error for PTA\n");  goto err_free_pta (the DT stays mapped
            # until err_unmap_dt; the PTA was never mapped)
            iommu_free_pages(vsi_domain.pta)
            await dma_unmap_single(vsi_domain.dev, vsi_domain.dt_dma, SPAGE_SIZE, DMA_TO_DEVICE)
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
        """``vsi_iommu_domain_free``: under the domain lock (irqsave), WARN if still
        attached, free every PT, the DT and the PTA; then kfree."""
        vsi_domain = to_vsi_domain(domain)
        flags = await spin_lock_irqsave(vsi_domain.lock)
        if not await list_empty(vsi_domain.iommus):
            current().kernel.warn(f"vsi_iommu_domain_free({domain!r}): WARN_ON(!list_empty(&vsi_domain->iommus))")
        for dte in await table_snapshot(vsi_domain.dt):
            if vsi_dte_is_pt_valid(dte):
                pt_phys = vsi_dte_pt_address(dte)
                page_table = phys_to_virt(pt_phys)
                await dma_unmap_single(vsi_domain.dev, pt_phys, SPAGE_SIZE, DMA_TO_DEVICE)
                iommu_free_pages(page_table)
        await dma_unmap_single(vsi_domain.dev, vsi_domain.dt_dma, SPAGE_SIZE, DMA_TO_DEVICE)
        iommu_free_pages(vsi_domain.dt)
        await dma_unmap_single(vsi_domain.dev, vsi_domain.pta_dma, SPAGE_SIZE, DMA_TO_DEVICE)
        iommu_free_pages(vsi_domain.pta)
        await spin_unlock_irqrestore(vsi_domain.lock, flags)
        kfree(vsi_domain.mem)

    # -- page tables -------------------------------------------------------------------------

    async def vsi_table_flush(self, vsi_domain, dma, count):
        """``vsi_table_flush``: ``dma_sync_single_for_device(count * sizeof(u32))``."""
        await dma_sync_single_for_device(vsi_domain.dev, dma, count * 4, DMA_TO_DEVICE)

    async def vsi_iommu_iova_to_phys(self, domain, iova):
        """``vsi_iommu_iova_to_phys``: under the domain lock, irqsave."""
        vsi_domain = to_vsi_domain(domain)
        phys = 0
        flags = await spin_lock_irqsave(vsi_domain.lock)
        dte = await table_read(vsi_domain.dt, vsi_iova_dte_index(iova))
        if vsi_dte_is_pt_valid(dte):
            pt_phys = vsi_dte_pt_address(dte)
            page_table = phys_to_virt(pt_phys)
            pte = await table_read(page_table, vsi_iova_pte_index(iova))
            if vsi_pte_is_page_valid(pte):
                phys = vsi_pte_page_address(pte) + vsi_iova_page_offset(iova)
        await spin_unlock_irqrestore(vsi_domain.lock, flags)
        return phys

    async def vsi_iommu_unmap_iova(self, vsi_domain, page_table, pte_index, pte_dma, size):
        """``vsi_iommu_unmap_iova``: clear VALID up to the first invalid PTE, then
        sync ``pte_total`` entries (not ``pte_count``).  ``pte_addr`` is
        ``&page_table[pte_index]``."""
        pte_total = size // SPAGE_SIZE
        pte_count = 0
        while pte_count < pte_total and pte_count < NUM_PT_ENTRIES:
            pte = await table_read(page_table, pte_index + pte_count)
            if not vsi_pte_is_page_valid(pte):
                break
            await table_write(page_table, pte_index + pte_count, vsi_mk_pte_invalid(pte))
            pte_count += 1
        await self.vsi_table_flush(vsi_domain, pte_dma, pte_total)
        return pte_count * SPAGE_SIZE

    async def vsi_iommu_map_iova(self, vsi_domain, page_table, pte_index, pte_dma, iova, paddr, size, prot):
        """``vsi_iommu_map_iova``: on an already valid PTE ``return (pte_count - 1) *
        SPAGE_SIZE`` (unsigned arithmetic truncated to ``int``: -4096 at the first
        PTE), leaving the PTEs written so far in place and unsynced."""
        pte_total = size // SPAGE_SIZE
        pte_count = 0
        while pte_count < pte_total and pte_count < NUM_PT_ENTRIES:
            pte = await table_read(page_table, pte_index + pte_count)
            if vsi_pte_is_page_valid(pte):
                return _s32(((pte_count - 1) & 0xFFFFFFFF) * SPAGE_SIZE)
            await table_write(page_table, pte_index + pte_count, vsi_mk_pte(paddr, prot))
            paddr += SPAGE_SIZE
            pte_count += 1
        await self.vsi_table_flush(vsi_domain, pte_dma, pte_total)
        return 0

    async def vsi_iommu_flush_tlb(self, domain):
        """``vsi_iommu_flush_tlb``: for each IOMMU on the domain's list (the caller
        holds the domain lock): ``pm_runtime_get`` (async, does not wait; < 0 ->
        skip), ``spin_lock(iommu->lock)``, FLUSH bit then 0 if ``iommu->enable``,
        unlock, ``pm_runtime_put_autosuspend``."""
        vsi_domain = to_vsi_domain(domain)
        for iommu in await list_entries(vsi_domain.iommus):
            if await pm_runtime_get(iommu.dev) < 0:
                continue
            await spin_lock(iommu.lock)
            if await iommu.enable.load():
                await writel(iommu.regs, VSI_MMU_FLUSH_BASE, VSI_MMU_BIT_FLUSH)
                await writel(iommu.regs, VSI_MMU_FLUSH_BASE, 0)
            spin_unlock(iommu.lock)
            await pm_runtime_put_autosuspend(iommu.dev)

    async def vsi_iommu_unmap(self, domain, iova, size, count, gather):
        """``vsi_iommu_unmap`` (unmap_pages): lock irqsave; 0 if the DTE is invalid;
        clear PTEs; flush the TLB if anything was unmapped; unlock."""
        vsi_domain = to_vsi_domain(domain)
        unmap_size = 0
        flags = await spin_lock_irqsave(vsi_domain.lock)
        dte = await table_read(vsi_domain.dt, vsi_iova_dte_index(iova))
        # Just return 0 if iova is unmapped
        if vsi_dte_is_pt_valid(dte):
            pt_phys = vsi_dte_pt_address(dte)
            page_table = phys_to_virt(pt_phys)
            pte_index = vsi_iova_pte_index(iova)
            pte_dma = pt_phys + pte_index * 4
            unmap_size = await self.vsi_iommu_unmap_iova(vsi_domain, page_table, pte_index, pte_dma, size)
            if unmap_size:
                await self.vsi_iommu_flush_tlb(domain)
        await spin_unlock_irqrestore(vsi_domain.lock, flags)
        return unmap_size

    async def vsi_dte_get_page_table(self, vsi_domain, iova, gfp):
        """``vsi_dte_get_page_table``: the PT for ``iova``; a missing one is allocated
        with ``(gfp & ~GFP_KERNEL) | GFP_ATOMIC | GFP_DMA32``, dma_map_single'd,
        its DTE written and that one DTE synced."""
        dte_index = vsi_iova_dte_index(iova)
        dte = await table_read(vsi_domain.dt, dte_index)
        if not vsi_dte_is_pt_valid(dte):
            # Do not allow to sleep while allocating the buffer
            flags = (gfp & ~GFP_KERNEL) | GFP_ATOMIC | GFP_DMA32
            page_table = await iommu_alloc_pages_sz(flags, PAGE_SIZE, tag="vsi pt")
            if page_table is None:
                return -ENOMEM
            pt_dma = await dma_map_single(vsi_domain.dev, page_table, PAGE_SIZE, DMA_TO_DEVICE)
            if dma_mapping_error(vsi_domain.dev, pt_dma):
                # dev_err(vsi_domain->dev, "DMA mapping error while allocating page table\n");
                iommu_free_pages(page_table)
                return -ENOMEM
            dte = vsi_mk_dte(pt_dma)
            await table_write(vsi_domain.dt, dte_index, dte)
            await self.vsi_table_flush(vsi_domain, vsi_domain.dt_dma + dte_index * 4, 1)
        pt_phys = vsi_dte_pt_address(dte)
        return phys_to_virt(pt_phys)

    async def vsi_iommu_map(self, domain, iova, paddr, size, count, prot, gfp):
        """``vsi_iommu_map`` (map_pages; one page of ``size``, ``count`` ignored):
        lock irqsave, PT, PTEs, ``*mapped = size`` if ok, flush the TLB (also on
        error), unlock.  Returns ``(ret, mapped)``."""
        vsi_domain = to_vsi_domain(domain)
        mapped = 0
        flags = await spin_lock_irqsave(vsi_domain.lock)
        page_table = await self.vsi_dte_get_page_table(vsi_domain, iova, gfp)
        if IS_ERR(page_table):
            await spin_unlock_irqrestore(vsi_domain.lock, flags)
            return page_table, 0
        dte = await table_read(vsi_domain.dt, vsi_iova_dte_index(iova))
        pte_index = vsi_iova_pte_index(iova)
        pte_dma = vsi_dte_pt_address(dte) + pte_index * 4
        ret = await self.vsi_iommu_map_iova(vsi_domain, page_table, pte_index, pte_dma, iova, paddr, size, prot)
        if not ret:
            mapped = size
        await self.vsi_iommu_flush_tlb(domain)
        await spin_unlock_irqrestore(vsi_domain.lock, flags)
        return ret, mapped

    # -- registers ---------------------------------------------------------------------------

    async def vsi_iommu_disable(self, iommu):
        """``vsi_iommu_disable``: AHB_CONTROL = 0; ``iommu->enable = false``.  No lock."""
        await writel(iommu.regs, VSI_MMU_AHB_CONTROL_BASE, 0)
        await iommu.enable.store(False)

    async def vsi_iommu_enable(self, iommu, domain):
        """``vsi_iommu_enable``: ``to_vsi_domain(domain)`` FIRST, then return if
        identity; else PTA base, CONFIG1, AHB_EXCEPTION, AHB_CONTROL; enable = true.
        No TLB flush.  No lock itself."""
        vsi_domain = to_vsi_domain(domain)
        if domain is self.identity_domain:
            return
        await writel(iommu.regs, VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE, vsi_domain.pta_dma & 0xFFFFFFFF)
        await writel(iommu.regs, VSI_MMU_CONFIG1_BASE, VSI_MMU_OUT_OF_BOUND)
        await writel(iommu.regs, VSI_MMU_AHB_EXCEPTION_BASE, VSI_MMU_BIT_ENABLE)
        await writel(iommu.regs, VSI_MMU_AHB_CONTROL_BASE, VSI_MMU_BIT_ENABLE)
        await iommu.enable.store(True)

    # -- attach ----------------------------------------------------------------------------

    async def vsi_iommu_identity_attach(self, domain, dev, old):
        """``vsi_iommu_identity_attach``: ``to_vsi_domain(&vsi_identity_domain)``
        (container_of on a bare static iommu_domain), resume_and_get, lock that
        "domain"'s lock + iommu->lock; unless already identity: disable,
        list_del_init, ``iommu->domain = domain``; unlock; put_autosuspend."""
        iommu = dev_iommu_priv_get(dev)
        vsi_domain = to_vsi_domain(domain)
        ret = await pm_runtime_resume_and_get(iommu.dev)
        if ret < 0:
            return ret
        flags = await spin_lock_irqsave(vsi_domain.lock)
        await spin_lock(iommu.lock)
        if await iommu.domain.load() is not domain:
            await self.vsi_iommu_disable(iommu)
            await list_del_init(iommu.node)
            await iommu.domain.store(domain)
        spin_unlock(iommu.lock)
        await spin_unlock_irqrestore(vsi_domain.lock, flags)
        await pm_runtime_put_autosuspend(iommu.dev)
        return 0

    async def vsi_iommu_attach_device(self, domain, dev, old):
        """``vsi_iommu_attach_device`` (hitless): resume_and_get; NEW domain lock
        irqsave + iommu lock; enable (new PTA over the running one); FLUSH bit, 0;
        list_del_init (from the OLD domain's list, whose lock is not held) and
        list_add_tail; ``iommu->domain = domain``; unlock; put_autosuspend."""
        iommu = dev_iommu_priv_get(dev)
        vsi_domain = to_vsi_domain(domain)
        ret = await pm_runtime_resume_and_get(iommu.dev)
        if ret < 0:
            return ret
        flags = await spin_lock_irqsave(vsi_domain.lock)
        await spin_lock(iommu.lock)
        await self.vsi_iommu_enable(iommu, domain)
        await writel(iommu.regs, VSI_MMU_FLUSH_BASE, VSI_MMU_BIT_FLUSH)
        await writel(iommu.regs, VSI_MMU_FLUSH_BASE, 0)
        await list_del_init(iommu.node)
        await list_add_tail(iommu.node, vsi_domain.iommus)
        await iommu.domain.store(domain)
        spin_unlock(iommu.lock)
        await spin_unlock_irqrestore(vsi_domain.lock, flags)
        await pm_runtime_put_autosuspend(iommu.dev)
        return ret

    # -- runtime PM ---------------------------------------------------------------------------

    async def vsi_iommu_suspend(self, dev):
        """``vsi_iommu_suspend``: ``vsi_iommu_disable`` with no lock, then clocks off."""
        iommu = dev_get_drvdata(dev)
        await self.vsi_iommu_disable(iommu)
        await clk_bulk_disable(iommu.num_clocks, iommu.clocks)
        return 0

    async def vsi_iommu_resume(self, dev):
        """``vsi_iommu_resume``: clocks on; ``iommu->domain`` read unlocked; if set,
        ``to_vsi_domain`` of it, lock domain irqsave + iommu, enable, unlock."""
        iommu = dev_get_drvdata(dev)
        ret = await clk_bulk_enable(iommu.num_clocks, iommu.clocks)
        if ret:
            return ret
        if await iommu.domain.load() is not None:
            vsi_domain = to_vsi_domain(await iommu.domain.load())
            flags = await spin_lock_irqsave(vsi_domain.lock)
            await spin_lock(iommu.lock)
            await self.vsi_iommu_enable(iommu, await iommu.domain.load())
            spin_unlock(iommu.lock)
            await spin_unlock_irqrestore(vsi_domain.lock, flags)
        return 0

    # -- device probe ---------------------------------------------------------------------------

    async def vsi_iommu_probe_device(self, dev):
        """``vsi_iommu_probe_device``: device link (STATELESS | PM_RUNTIME), priv."""
        iommu = self.vsi_iommu_get_from_dev(dev)
        link = await device_link_add(dev, iommu.dev, DL_FLAG_STATELESS | DL_FLAG_PM_RUNTIME)
        if not link:
            pass  # dev_err(dev, "Unable to link %s\n", dev_name(iommu->dev));
        dev_iommu_priv_set(dev, iommu)
        return iommu.iommu

    async def vsi_iommu_release_device(self, dev):
        """``vsi_iommu_release_device``."""
        iommu = dev_iommu_priv_get(dev)
        await device_link_remove(dev, iommu.dev)

    async def vsi_iommu_probe(self, pdev):
        """``vsi_iommu_probe`` (platform probe)."""
        iommu = VsiIommu(pdev)  # devm_kzalloc
        iommu.regs = devm_platform_ioremap_resource(pdev, 0)
        iommu.num_clocks, iommu.clocks = devm_clk_bulk_get_all(pdev)
        if iommu.num_clocks < 0:
            return iommu.num_clocks
        err = await clk_bulk_prepare(iommu.num_clocks, iommu.clocks)
        if err:
            return err
        iommu.irq = platform_get_irq(pdev, 0)
        if iommu.irq < 0:
            return iommu.irq
        err = request_irq(pdev.kernel, iommu.irq, self.vsi_iommu_irq, IRQF_SHARED, pdev.name, iommu)
        if err:
            await clk_bulk_unprepare(iommu.num_clocks, iommu.clocks)
            return err
        dma_set_mask_and_coherent(pdev, DMA_BIT_MASK(32))
        platform_set_drvdata(pdev, iommu)
        pm_runtime_set_autosuspend_delay(pdev, 100)
        pm_runtime_use_autosuspend(pdev)
        pm_runtime_enable(pdev)
        # iommu_device_sysfs_add: nothing to model
        return iommu_device_register(iommu.iommu, self, pdev)

    # -- static const struct iommu_ops vsi_iommu_ops ----------------------------------------

    async def probe(self, pdev):
        return await self.vsi_iommu_probe(pdev)

    async def probe_device(self, dev):
        return await self.vsi_iommu_probe_device(dev)

    async def release_device(self, dev):
        await self.vsi_iommu_release_device(dev)

    async def domain_alloc_paging(self, dev):
        return await self.vsi_iommu_domain_alloc_paging(dev)

    async def domain_free(self, domain):
        await self.vsi_iommu_domain_free(domain)

    async def attach_dev(self, domain, dev, old):
        """``domain->ops->attach_dev``: vsi_identity_ops for the identity domain."""
        if domain is self.identity_domain:
            return await self.vsi_iommu_identity_attach(domain, dev, old)
        return await self.vsi_iommu_attach_device(domain, dev, old)

    async def map_pages(self, domain, iova, paddr, pgsize, pgcount, prot, gfp):
        return await self.vsi_iommu_map(domain, iova, paddr, pgsize, pgcount, prot, gfp)

    async def unmap_pages(self, domain, iova, pgsize, pgcount, gather):
        return await self.vsi_iommu_unmap(domain, iova, pgsize, pgcount, gather)

    async def iova_to_phys(self, domain, iova):
        return await self.vsi_iommu_iova_to_phys(domain, iova)

    async def runtime_suspend(self, dev):
        return await self.vsi_iommu_suspend(dev)

    async def runtime_resume(self, dev):
        return await self.vsi_iommu_resume(dev)
