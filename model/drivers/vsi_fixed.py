"""vsi-fixed: the Verisilicon IOMMU driver as the LKML review converges on it.

The v3 series (Rockchip-style registers, two-level v1 tables) with every
point of the review (seed-lkml-vsi-review.txt) and of a careful merge:

* R1 one lock held across register programming, list update and TLB flush
  (``vsi_iommus_lock``, then the IOMMU's lock): an IOMMU's registers, its
  ``domain`` and its place on a domain's list change together, so no
  map/unmap flush can miss it (no lost invalidation);
* R2 hitless switch: attach writes the new table base over the old one and
  zaps the TLB; there is no identity step inside attach (no bypass window
  for VFIO);
* R3 the "powered up" question is answered without sleeping inside a
  spinlock: attach resumes the IOMMU (``pm_runtime_resume_and_get``) before
  taking any lock; under the lock ``iommu->enable`` says whether the
  hardware is clocked and translating (suspend clears it under the same
  lock before gating the clocks); the IRQ handler uses
  ``pm_runtime_get_if_in_use``;
* R4 map keeps the caller's gfp bits, ``__GFP_ACCOUNT`` included, and makes
  the allocation atomic by CLEARING the blocking bits:
  ``(gfp & ~GFP_KERNEL) | GFP_ATOMIC | GFP_DMA32``, never ``gfp | GFP_ATOMIC``;
* R5 table pages from ZONE_DMA32 (the walker's addresses are 32-bit) and
  every table write synced (``dma_sync_single_for_device``) before the TLB
  is zapped;
* R6 the TLB is zapped after unmap before returning, and whenever
  translation is (re-)enabled (attach, resume), so no stale line survives
  a switch back from identity;
* R7 the IRQ handler takes the IOMMU's lock, and every process-context
  taker of that lock has interrupts off (``spin_lock_irqsave``, or nested
  inside a lock taken so); it never sleeps;
* R8 page tables are freed only in ``domain_free``, once no IOMMU uses the
  domain;
* R9 runtime suspend/resume take the IOMMU's lock and program the registers
  from ``iommu->domain`` read under it.

Lock order: ``vsi_iommu_domain->lock`` (page tables) ->
``vsi_iommus_lock`` (every domain's ``iommus`` list and every
``iommu->domain``) -> ``vsi_iommu->lock`` (registers, ``enable``).

One master per IOMMU: the hardware has one table base, so a second master
in another group would share its translation; the core's ``old`` argument
is then the IOMMU's domain.
"""

from __future__ import annotations

from errno import EADDRINUSE, ENODEV, ENOMEM

from model.hw import (
    RK_DTE_PT_ADDRESS_MASK,
    RK_DTE_PT_VALID,
    RK_MMU_CMD_DISABLE_PAGING,
    RK_MMU_CMD_ENABLE_PAGING,
    RK_MMU_CMD_PAGE_FAULT_DONE,
    RK_MMU_CMD_ZAP_CACHE,
    RK_MMU_COMMAND,
    RK_MMU_DTE_ADDR,
    RK_MMU_INT_CLEAR,
    RK_MMU_INT_MASK,
    RK_MMU_INT_STATUS,
    RK_MMU_IRQ_MASK,
    RK_MMU_IRQ_PAGE_FAULT,
    RK_MMU_PAGE_FAULT_ADDR,
    RK_MMU_STATUS,
    RK_MMU_STATUS_PAGE_FAULT_IS_WRITE,
    RK_MMU_STATUS_PAGING_ENABLED,
    RK_PTE_PAGE_ADDRESS_MASK,
    RK_PTE_PAGE_READABLE,
    RK_PTE_PAGE_VALID,
    RK_PTE_PAGE_WRITABLE,
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
    IOMMU_FAULT_READ,
    IOMMU_FAULT_WRITE,
    IOMMU_READ,
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
    assert_spin_locked,
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
)
from model.kernel.pm import (
    DL_FLAG_PM_RUNTIME,
    DL_FLAG_STATELESS,
    device_link_add,
    device_link_remove,
    pm_runtime_enable,
    pm_runtime_get_if_in_use,
    pm_runtime_put_autosuspend,
    pm_runtime_resume_and_get,
    pm_runtime_set_autosuspend_delay,
    pm_runtime_use_autosuspend,
)

__all__ = ["VsiFixed", "VsiIommu", "VsiIommuDomain"]

NUM_DT_ENTRIES = 1024
NUM_PT_ENTRIES = 1024
SPAGE_SIZE = 1 << 12
VSI_DOMAIN_SIZE = 96  # sizeof(struct vsi_iommu_domain), for kzalloc

VSI_IOVA_DTE_MASK = 0xFFC00000
VSI_IOVA_DTE_SHIFT = 22
VSI_IOVA_PTE_MASK = 0x003FF000
VSI_IOVA_PTE_SHIFT = 12
VSI_IOVA_PAGE_MASK = 0x00000FFF


# -- table entries (v1 format, as rockchip-iommu.c) --------------------------------


def vsi_dte_pt_address(dte):
    return dte & RK_DTE_PT_ADDRESS_MASK


def vsi_dte_is_pt_valid(dte):
    return bool(dte & RK_DTE_PT_VALID)


def vsi_mk_dte(pt_dma):
    return (pt_dma & RK_DTE_PT_ADDRESS_MASK) | RK_DTE_PT_VALID


def vsi_pte_page_address(pte):
    return pte & RK_PTE_PAGE_ADDRESS_MASK


def vsi_pte_is_page_valid(pte):
    return bool(pte & RK_PTE_PAGE_VALID)


def vsi_mk_pte(page, prot):
    flags = 0
    flags |= RK_PTE_PAGE_READABLE if prot & IOMMU_READ else 0
    flags |= RK_PTE_PAGE_WRITABLE if prot & IOMMU_WRITE else 0
    return (page & RK_PTE_PAGE_ADDRESS_MASK) | flags | RK_PTE_PAGE_VALID


def vsi_mk_pte_invalid(pte):
    return pte & ~RK_PTE_PAGE_VALID


def vsi_iova_dte_index(iova):
    return (iova & VSI_IOVA_DTE_MASK) >> VSI_IOVA_DTE_SHIFT


def vsi_iova_pte_index(iova):
    return (iova & VSI_IOVA_PTE_MASK) >> VSI_IOVA_PTE_SHIFT


def vsi_iova_page_offset(iova):
    return iova & VSI_IOVA_PAGE_MASK


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
        self.lock = SpinLock("vsi_iommu->lock")  # registers and enable
        self.irq = 0
        self.enable = Shared("vsi_iommu->enable", False)

    def __repr__(self):
        return f"vsi_iommu({self.dev.name})"


class VsiIommuDomain(IommuDomain):
    """``struct vsi_iommu_domain``: embeds ``struct iommu_domain``."""

    def __init__(self, kernel):
        super().__init__()
        self.kernel = kernel
        self.iommus = None
        self.dev = None  # the IOMMU's struct device, for the DMA API
        self.dt = None
        self.dt_dma = 0
        self.lock = SpinLock("vsi_iommu_domain->lock")  # page tables

    def table_pages(self):
        if self.dt is None:
            return ()
        pages = [self.dt]
        for dte in self.dt.words:
            if dte and vsi_dte_is_pt_valid(dte):  # most of the 1024 entries are 0
                pt = phys_to_page(self.kernel, vsi_dte_pt_address(dte))
                if pt is not None:
                    pages.append(pt)
        return tuple(pages)


def to_vsi_domain(domain):
    return container_of(domain, VsiIommuDomain)


class VsiFixed(IommuDriver):
    """What the review asks for: locked hitless attach, atomic gfp that keeps
    accounting, DMA32 synced tables, irq-safe handler, locked PM callbacks."""

    name = "vsi-fixed"
    summary = "VSI IOMMU as the review converges on: hitless locked attach, accounted atomic gfp, irq-safe, PM under the lock"
    layout = "rk"

    def __init__(self):
        self.identity_domain = IommuDomain(IOMMU_DOMAIN_IDENTITY, name="vsi_identity_domain")
        self.release_domain = self.identity_domain
        self.vsi_iommus_lock = SpinLock("vsi_iommus_lock")

    # -- interrupt -------------------------------------------------------------------

    async def vsi_iommu_irq(self, irq, dev_id):
        """``vsi_iommu_irq`` (hard IRQ, IRQF_SHARED).

        R3/R7: the line is shared, so the handler may run while this IOMMU is
        suspended: it touches the registers only with a reference taken by
        ``pm_runtime_get_if_in_use`` (never sleeps), and takes the lock that
        every process-context user takes with interrupts off.
        """
        iommu = dev_id
        if await pm_runtime_get_if_in_use(iommu.dev) <= 0:
            return IRQ_NONE
        ret = IRQ_NONE
        flags = await spin_lock_irqsave(iommu.lock)
        int_status = await readl(iommu.regs, RK_MMU_INT_STATUS)
        if int_status:
            ret = IRQ_HANDLED
            iova = await readl(iommu.regs, RK_MMU_PAGE_FAULT_ADDR)
            if int_status & RK_MMU_IRQ_PAGE_FAULT:
                status = await readl(iommu.regs, RK_MMU_STATUS)
                fault = IOMMU_FAULT_WRITE if status & RK_MMU_STATUS_PAGE_FAULT_IS_WRITE else IOMMU_FAULT_READ
                domain = await iommu.domain.load()
                if domain is not None and domain is not self.identity_domain:
                    await report_iommu_fault(domain, iommu.dev, iova, fault)
                await writel(iommu.regs, RK_MMU_COMMAND, RK_MMU_CMD_ZAP_CACHE)
                await writel(iommu.regs, RK_MMU_COMMAND, RK_MMU_CMD_PAGE_FAULT_DONE)
            await writel(iommu.regs, RK_MMU_INT_CLEAR, int_status)
        await spin_unlock_irqrestore(iommu.lock, flags)
        await pm_runtime_put_autosuspend(iommu.dev)
        return ret

    # -- domains -------------------------------------------------------------------------

    def vsi_iommu_get_from_dev(self, dev):
        """``vsi_iommu_get_from_dev``: fwspec -> the IOMMU's platform device -> drvdata."""
        fwspec = dev_iommu_fwspec_get(dev)
        iommu_dev = fwspec.iommu_fwnode if fwspec is not None else None
        return dev_get_drvdata(iommu_dev) if iommu_dev is not None else None

    async def vsi_iommu_domain_alloc_paging(self, dev):
        """``vsi_iommu_domain_alloc_paging``: process context, may sleep, no lock held.

        R5: the directory comes from ZONE_DMA32 (``GFP_KERNEL | GFP_DMA32``).
        """
        iommu = dev_iommu_priv_get(dev)
        vsi_domain = VsiIommuDomain(dev.kernel)
        vsi_domain.mem = await kzalloc(VSI_DOMAIN_SIZE, GFP_KERNEL, tag="vsi_iommu_domain", value=vsi_domain)
        vsi_domain.dev = iommu.dev
        # iommu uses a 2 level pagetable.  Each level1 (dt) and level2 (pt)
        # table has 1024 4-byte entries.  Allocate one 4 KiB page for each table.
        vsi_domain.dt = await iommu_alloc_pages_sz(GFP_KERNEL | GFP_DMA32, SPAGE_SIZE, tag="vsi dt")
        if vsi_domain.dt is None:
            kfree(vsi_domain.mem)
            return None
        vsi_domain.dt_dma = await dma_map_single(vsi_domain.dev, vsi_domain.dt, SPAGE_SIZE, DMA_TO_DEVICE)
        if dma_mapping_error(vsi_domain.dev, vsi_domain.dt_dma):
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
        """``vsi_iommu_domain_free``.

        R8: the only place page tables are freed, and only once no IOMMU is
        on the domain's list (the core never frees an attached domain; the
        WARN says so if it did).
        """
        vsi_domain = to_vsi_domain(domain)
        flags = await spin_lock_irqsave(self.vsi_iommus_lock)
        if not await list_empty(vsi_domain.iommus):
            current().kernel.warn(f"vsi_iommu_domain_free({domain!r}): still attached")
        await spin_unlock_irqrestore(self.vsi_iommus_lock, flags)

        flags = await spin_lock_irqsave(vsi_domain.lock)
        for dte in await table_snapshot(vsi_domain.dt):
            if dte and vsi_dte_is_pt_valid(dte):  # a zero DTE is invalid: skip the call
                pt_phys = vsi_dte_pt_address(dte)
                page_table = phys_to_virt(pt_phys)
                await dma_unmap_single(vsi_domain.dev, pt_phys, SPAGE_SIZE, DMA_TO_DEVICE)
                iommu_free_pages(page_table)
        await dma_unmap_single(vsi_domain.dev, vsi_domain.dt_dma, SPAGE_SIZE, DMA_TO_DEVICE)
        iommu_free_pages(vsi_domain.dt)
        await spin_unlock_irqrestore(vsi_domain.lock, flags)
        kfree(vsi_domain.mem)

    # -- page tables -------------------------------------------------------------------------

    async def vsi_table_flush(self, vsi_domain, dma, count):
        """``vsi_table_flush``: make ``count`` table entries visible to the walker (R5)."""
        await dma_sync_single_for_device(vsi_domain.dev, dma, count * 4, DMA_TO_DEVICE)

    async def vsi_iommu_iova_to_phys(self, domain, iova):
        """``vsi_iommu_iova_to_phys``: under the domain lock, irqsave."""
        vsi_domain = to_vsi_domain(domain)
        phys = 0
        flags = await spin_lock_irqsave(vsi_domain.lock)
        dte = await table_read(vsi_domain.dt, vsi_iova_dte_index(iova))
        if vsi_dte_is_pt_valid(dte):
            page_table = phys_to_virt(vsi_dte_pt_address(dte))
            pte = await table_read(page_table, vsi_iova_pte_index(iova))
            if vsi_pte_is_page_valid(pte):
                phys = vsi_pte_page_address(pte) + vsi_iova_page_offset(iova)
        await spin_unlock_irqrestore(vsi_domain.lock, flags)
        return phys

    async def vsi_dte_get_page_table(self, vsi_domain, iova, gfp):
        """``vsi_dte_get_page_table``: the PT for ``iova``, allocated if missing.

        R4: "Do not allow to sleep while allocating the buffer": the blocking
        bits of the caller's gfp are cleared, the rest (``__GFP_ACCOUNT``)
        kept.  R5: DMA32, and the new DTE synced before anyone can use it
        (the new PT is zeroed and was cleaned by ``dma_map_single``).
        """
        assert_spin_locked(vsi_domain.lock)
        dte_index = vsi_iova_dte_index(iova)
        dte = await table_read(vsi_domain.dt, dte_index)
        if not vsi_dte_is_pt_valid(dte):
            flags = (gfp & ~GFP_KERNEL) | GFP_ATOMIC | GFP_DMA32
            page_table = await iommu_alloc_pages_sz(flags, SPAGE_SIZE, tag="vsi pt")
            if page_table is None:
                return -ENOMEM
            pt_dma = await dma_map_single(vsi_domain.dev, page_table, SPAGE_SIZE, DMA_TO_DEVICE)
            if dma_mapping_error(vsi_domain.dev, pt_dma):
                iommu_free_pages(page_table)
                return -ENOMEM
            dte = vsi_mk_dte(pt_dma)
            await table_write(vsi_domain.dt, dte_index, dte)
            await self.vsi_table_flush(vsi_domain, vsi_domain.dt_dma + dte_index * 4, 1)
        return phys_to_virt(vsi_dte_pt_address(dte))

    async def vsi_iommu_unmap_iova(self, vsi_domain, page_table, pte_index, pte_dma, size):
        """``vsi_iommu_unmap_iova``: clear VALID up to the first invalid PTE, then sync them."""
        pte_total = size // SPAGE_SIZE
        pte_count = 0
        # (the C bounds pte_count by NUM_PT_ENTRIES; the entries stay inside this PT)
        while pte_count < pte_total and pte_index + pte_count < NUM_PT_ENTRIES:
            pte = await table_read(page_table, pte_index + pte_count)
            if not vsi_pte_is_page_valid(pte):
                break
            await table_write(page_table, pte_index + pte_count, vsi_mk_pte_invalid(pte))
            pte_count += 1
        await self.vsi_table_flush(vsi_domain, pte_dma, pte_count)
        return pte_count * SPAGE_SIZE

    async def vsi_iommu_map_iova(self, vsi_domain, page_table, pte_index, pte_dma, iova, paddr, size, prot):
        """``vsi_iommu_map_iova``: write the PTEs, sync them (R5); -EADDRINUSE
        on an entry already valid, after undoing the ones written (as Rockchip)."""
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

    async def vsi_iommu_map(self, domain, iova, paddr, size, count, prot, gfp):
        """``vsi_iommu_map`` (map_pages; one page per call: pgsize_bitmap is 4 KiB).

        R4: the domain lock is a spinlock held with interrupts off, so the PT
        allocation must not sleep; the caller's gfp keeps its accounting.
        Returns ``(ret, mapped)``.
        """
        vsi_domain = to_vsi_domain(domain)
        flags = await spin_lock_irqsave(vsi_domain.lock)
        page_table = await self.vsi_dte_get_page_table(vsi_domain, iova, gfp)
        if IS_ERR(page_table):
            await spin_unlock_irqrestore(vsi_domain.lock, flags)
            return page_table, 0
        dte = await table_read(vsi_domain.dt, vsi_iova_dte_index(iova))
        pte_index = vsi_iova_pte_index(iova)
        pte_dma = vsi_dte_pt_address(dte) + pte_index * 4
        ret = await self.vsi_iommu_map_iova(vsi_domain, page_table, pte_index, pte_dma, iova, paddr, size, prot)
        mapped = size if not ret else 0
        # Evict any cached line of this range (the C flushes on every map).
        await self.vsi_iommu_flush_tlb(vsi_domain)
        await spin_unlock_irqrestore(vsi_domain.lock, flags)
        return ret, mapped

    async def vsi_iommu_unmap(self, domain, iova, size, count, gather):
        """``vsi_iommu_unmap`` (unmap_pages): no iotlb_sync op, so R6: the PTEs
        are cleared and synced, then the TLB of every IOMMU on the domain is
        zapped, before returning, all under the domain lock."""
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
                await self.vsi_iommu_flush_tlb(vsi_domain)
        await spin_unlock_irqrestore(vsi_domain.lock, flags)
        return unmap_size

    # -- TLB and registers ---------------------------------------------------------------

    async def vsi_iommu_zap_tlb(self, iommu):
        """Shoot down the whole IOTLB (``RK_MMU_CMD_ZAP_CACHE``).  Caller holds ``iommu->lock``."""
        await writel(iommu.regs, RK_MMU_COMMAND, RK_MMU_CMD_ZAP_CACHE)

    async def vsi_iommu_flush_tlb(self, vsi_domain):
        """``vsi_iommu_flush_tlb``: zap every IOMMU on the domain's list.

        The caller holds ``vsi_domain->lock`` (irqs off).  R1: the list is read
        under ``vsi_iommus_lock``, the lock attach holds while it moves an
        IOMMU, so an IOMMU is either zapped here or zapped by the attach that
        points it at this domain.  R3: ``iommu->enable`` (under the IOMMU's
        lock) means clocked and translating; a suspended IOMMU needs no zap,
        its resume zaps.
        """
        await spin_lock(self.vsi_iommus_lock)
        for iommu in await list_entries(vsi_domain.iommus):
            await spin_lock(iommu.lock)
            if await iommu.enable.load():
                await self.vsi_iommu_zap_tlb(iommu)
            spin_unlock(iommu.lock)
        spin_unlock(self.vsi_iommus_lock)

    async def vsi_iommu_enable(self, iommu, domain):
        """``vsi_iommu_enable``: point the MMU at ``domain`` and translate.

        Caller holds ``iommu->lock`` and the IOMMU is clocked.  R2: no disable
        step: the table base is replaced while translation stays on.  R6: the
        TLB is zapped every time, so no line from before (another domain, or a
        time before identity) survives.
        """
        if domain is self.identity_domain:
            return
        vsi_domain = to_vsi_domain(domain)
        await writel(iommu.regs, RK_MMU_DTE_ADDR, vsi_domain.dt_dma)
        await self.vsi_iommu_zap_tlb(iommu)
        await writel(iommu.regs, RK_MMU_INT_MASK, RK_MMU_IRQ_MASK)
        if not await readl(iommu.regs, RK_MMU_STATUS) & RK_MMU_STATUS_PAGING_ENABLED:
            await writel(iommu.regs, RK_MMU_COMMAND, RK_MMU_CMD_ENABLE_PAGING)
        await iommu.enable.store(True)

    async def vsi_iommu_disable(self, iommu):
        """``vsi_iommu_disable``: translation off (bypass).  Caller holds ``iommu->lock``."""
        await writel(iommu.regs, RK_MMU_COMMAND, RK_MMU_CMD_DISABLE_PAGING)
        await writel(iommu.regs, RK_MMU_INT_MASK, 0)
        await iommu.enable.store(False)

    # -- attach ----------------------------------------------------------------------------

    async def vsi_iommu_identity_attach(self, domain, dev, old):
        """``vsi_iommu_identity_attach``: translation off, off the old domain's list.

        R1: registers, list and ``iommu->domain`` change under one lock.  R3:
        resumed before the lock.  No ``to_vsi_domain()`` of the static
        identity domain (it is not embedded in one).
        """
        iommu = dev_iommu_priv_get(dev)
        ret = await pm_runtime_resume_and_get(iommu.dev)
        if ret < 0:
            return ret
        flags = await spin_lock_irqsave(self.vsi_iommus_lock)
        await spin_lock(iommu.lock)
        if await iommu.domain.load() is not domain:
            await self.vsi_iommu_disable(iommu)
            await list_del_init(iommu.node)
            await iommu.domain.store(domain)
        spin_unlock(iommu.lock)
        await spin_unlock_irqrestore(self.vsi_iommus_lock, flags)
        await pm_runtime_put_autosuspend(iommu.dev)
        return 0

    async def vsi_iommu_attach_device(self, domain, dev, old):
        """``vsi_iommu_attach_device``: a hitless switch to a paging domain.

        The review's recipe: take the lock; nothing to do if the domain is the
        same; program the registers and flush (R2, R6); move the IOMMU to the
        new domain's list; set ``iommu->domain``; release the lock (R1).  The
        "powered up" question is settled before the lock: the IOMMU is
        resumed and held for the whole switch (R3).
        """
        iommu = dev_iommu_priv_get(dev)
        vsi_domain = to_vsi_domain(domain)
        if iommu is None:
            current().kernel.warn(f"vsi_iommu_attach_device({dev}): no IOMMU")
            return -ENODEV
        ret = await pm_runtime_resume_and_get(iommu.dev)
        if ret < 0:
            return ret
        flags = await spin_lock_irqsave(self.vsi_iommus_lock)
        await spin_lock(iommu.lock)
        if await iommu.domain.load() is not domain:
            await self.vsi_iommu_enable(iommu, vsi_domain)
            await list_del_init(iommu.node)
            await list_add_tail(iommu.node, vsi_domain.iommus)
            await iommu.domain.store(domain)
        spin_unlock(iommu.lock)
        await spin_unlock_irqrestore(self.vsi_iommus_lock, flags)
        await pm_runtime_put_autosuspend(iommu.dev)
        return 0

    # -- runtime PM ---------------------------------------------------------------------------

    async def vsi_iommu_suspend(self, dev):
        """``vsi_iommu_suspend`` (runtime suspend).  R9: translation off and
        ``enable`` cleared under the IOMMU's lock, then the clocks gated."""
        iommu = dev_get_drvdata(dev)
        flags = await spin_lock_irqsave(iommu.lock)
        await self.vsi_iommu_disable(iommu)
        await spin_unlock_irqrestore(iommu.lock, flags)
        await clk_bulk_disable(iommu.num_clocks, iommu.clocks)
        return 0

    async def vsi_iommu_resume(self, dev):
        """``vsi_iommu_resume`` (runtime resume).  R9: clocks on, then
        ``iommu->domain`` read and programmed under the IOMMU's lock (it only
        changes under that lock); R6 the enable zaps the TLB."""
        iommu = dev_get_drvdata(dev)
        ret = await clk_bulk_enable(iommu.num_clocks, iommu.clocks)
        if ret:
            return ret
        flags = await spin_lock_irqsave(iommu.lock)
        domain = await iommu.domain.load()
        if domain is not None:
            await self.vsi_iommu_enable(iommu, domain)
        await spin_unlock_irqrestore(iommu.lock, flags)
        return 0

    # -- device probe ---------------------------------------------------------------------------

    async def probe_device(self, dev):
        """``vsi_iommu_probe_device``: link the master's runtime PM to the IOMMU's."""
        iommu = self.vsi_iommu_get_from_dev(dev)
        if iommu is None:
            return -ENODEV
        await device_link_add(dev, iommu.dev, DL_FLAG_STATELESS | DL_FLAG_PM_RUNTIME)
        dev_iommu_priv_set(dev, iommu)
        return iommu.iommu

    async def release_device(self, dev):
        """``vsi_iommu_release_device``."""
        iommu = dev_iommu_priv_get(dev)
        await device_link_remove(dev, iommu.dev)

    async def probe(self, pdev):
        """``vsi_iommu_probe`` (platform probe, one per IOMMU instance)."""
        iommu = VsiIommu(pdev)  # devm_kzalloc: lives as long as the device
        iommu.regs = devm_platform_ioremap_resource(pdev, 0)
        iommu.num_clocks, iommu.clocks = devm_clk_bulk_get_all(pdev)
        err = await clk_bulk_prepare(iommu.num_clocks, iommu.clocks)
        if err:
            return err
        iommu.irq = platform_get_irq(pdev, 0)
        err = request_irq(pdev.kernel, iommu.irq, self.vsi_iommu_irq, IRQF_SHARED, pdev.name, iommu)
        if err:
            await clk_bulk_unprepare(iommu.num_clocks, iommu.clocks)
            return err
        dma_set_mask_and_coherent(pdev, DMA_BIT_MASK(32))
        platform_set_drvdata(pdev, iommu)
        pm_runtime_set_autosuspend_delay(pdev, 100)
        pm_runtime_use_autosuspend(pdev)
        pm_runtime_enable(pdev)
        return iommu_device_register(iommu.iommu, self, pdev)

    # -- static const struct iommu_ops vsi_iommu_ops ----------------------------------------

    async def domain_alloc_paging(self, dev):
        return await self.vsi_iommu_domain_alloc_paging(dev)

    async def domain_free(self, domain):
        await self.vsi_iommu_domain_free(domain)

    async def attach_dev(self, domain, dev, old):
        """``domain->ops->attach_dev``: the identity domain has its own ops."""
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
