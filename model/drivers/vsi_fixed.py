"""vsi-fixed: the merged VSI driver with every defect of v3 and mainline fixed.

What the LKML review (seed-lkml-vsi-review.txt) asks for and a careful
maintainer would merge, on the VSI hardware vsi-mainline runs on (register
layout "vsi": PTA -> DT -> PT, AHB_CONTROL, FLUSH).  The functions the
merged driver already gets right are inherited unchanged from
:mod:`model.drivers.vsi_common` (DT/PTA allocation from DMA32,
``vsi_dte_get_page_table`` with ``(gfp & ~GFP_KERNEL) | GFP_ATOMIC |
GFP_DMA32``, map/unmap under the domain lock with a TLB flush before
returning, ``vsi_iommu_disable``, the probes); this module holds the ones
where mainline (or v3) is wrong, each fixed as follows:

* R1 one lock held across register programming, list update and TLB flush
  (``vsi_iommus_lock``, then the IOMMU's lock): an IOMMU's registers, its
  ``domain`` and its place on a domain's list change together, so no
  map/unmap flush can miss it (no lost invalidation).  Mainline moves
  ``iommu->node`` off the old domain's list under the NEW domain's lock;
  v3 under no lock shared with the list's readers;
* R2 hitless switch: attach writes the new PTA over the old one and
  flushes the TLB; there is no identity step inside attach (no bypass
  window for VFIO, v3's defect);
* R3 the "powered up" question is answered without sleeping inside a
  spinlock: attach resumes the IOMMU (``pm_runtime_resume_and_get``) before
  taking any lock; under the lock ``iommu->enable`` says whether the
  hardware is clocked and translating (suspend clears it under the same
  lock before gating the clocks), so the flush needs no PM reference
  (mainline's ``pm_runtime_get`` per flush queues a resume it never waits
  for); the IRQ handler uses ``pm_runtime_get_if_in_use`` (mainline
  sleeps in ``pm_runtime_resume_and_get`` in hard-IRQ context);
* R4 map keeps the caller's gfp bits, ``__GFP_ACCOUNT`` included, and makes
  the allocation atomic by CLEARING the blocking bits:
  ``(gfp & ~GFP_KERNEL) | GFP_ATOMIC | GFP_DMA32``, never ``gfp |
  GFP_ATOMIC`` (the thread's proposal) nor plain ``GFP_ATOMIC`` (v3) -
  mainline's ``vsi_dte_get_page_table``, inherited;
* R5 table pages from ZONE_DMA32 (the walker's addresses are 32-bit) and
  every table write synced (``dma_sync_single_for_device``) before the TLB
  is flushed; a map that meets a valid PTE undoes what it wrote (synced)
  and returns -EADDRINUSE (mainline returns ``(pte_count - 1) *
  SPAGE_SIZE`` with the PTEs written so far left in place, unsynced);
* R6 the TLB is flushed after unmap before returning (inherited), and
  whenever translation is (re-)enabled (attach, resume), so no stale line
  survives a switch back from identity or a power cycle, whatever the
  hardware retains (IOTLB lines, cached walk entries) across
  ``AHB_CONTROL = 0`` and clock gating;
* R7 the IRQ handler takes the IOMMU's lock, and every process-context
  taker of that lock has interrupts off (``spin_lock_irqsave``, or nested
  inside a lock taken so); it never sleeps;
* R8 page tables are freed in ``domain_free``, once no IOMMU uses the
  domain (checked under the list's lock), and a table an unmap left empty
  through the unmap's gather, after the flush (``iotlb_sync``'s freelist:
  the walker may cache its DTE until then); mainline never frees one before
  ``domain_free``;
* R9 runtime suspend/resume take the IOMMU's lock and program the registers
  from ``iommu->domain`` read under it (mainline: suspend unlocked, resume
  reads ``iommu->domain`` unlocked);
* R10 a fault is reported after the IRQ handler dropped the IOMMU's lock
  (mainline holds it: a fault handler that re-enters the IOMMU API inverts
  map's lock order), and an attach that moves the IOMMU to another domain
  waits for a running handler (``synchronize_irq``) so the report never
  outlives the old domain.

And no ``to_vsi_domain()`` of the static identity domain (it is not
embedded in a ``vsi_iommu_domain``; mainline locks its "lock").

Lock order: ``vsi_iommu_domain->lock`` (page tables) ->
``vsi_iommus_lock`` (every domain's ``iommus`` list and every
``iommu->domain``) -> ``vsi_iommu->lock`` (registers, ``enable``).

One master per IOMMU: the hardware has one table base, so a second master
in another group would share its translation; the core's ``old`` argument
is then the IOMMU's domain.
"""

from __future__ import annotations

from errno import EADDRINUSE, ENODEV

from model.hw import (
    VSI_MMU_AHB_CONTROL_BASE,
    VSI_MMU_AHB_EXCEPTION_BASE,
    VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE,
    VSI_MMU_BIT_ENABLE,
    VSI_MMU_BIT_FLUSH,
    VSI_MMU_CONFIG1_BASE,
    VSI_MMU_FLUSH_BASE,
    VSI_MMU_IRQ_FAULT_IS_WRITE,
    VSI_MMU_IRQ_MASK,
    VSI_MMU_OUT_OF_BOUND,
    VSI_MMU_PAGE_FAULT_ADDR,
    VSI_MMU_STATUS_BASE,
    clk_bulk_disable,
    clk_bulk_enable,
    readl,
    writel,
)
from model.iommu import (
    IOMMU_FAULT_READ,
    IOMMU_FAULT_WRITE,
    dev_get_drvdata,
    dev_iommu_priv_get,
    iommu_free_pages,
    iommu_pages_list_add,
    list_add_tail,
    list_del_init,
    list_empty,
    list_entries,
    report_iommu_fault,
)
from model.kernel import (
    IRQ_HANDLED,
    IRQ_NONE,
    SpinLock,
    current,
    kfree,
    page_to_phys,
    phys_to_virt,
    spin_lock,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
    synchronize_irq,
)
from model.kernel.dma import DMA_TO_DEVICE, dma_unmap_single, table_read, table_entries, table_write
from model.kernel.pm import pm_runtime_get_if_in_use, pm_runtime_put_autosuspend, pm_runtime_resume_and_get

from .vsi_common import (
    NUM_PT_ENTRIES,
    SPAGE_SIZE,
    VsiDriver,
    VsiIommu,
    VsiIommuDomain,
    to_vsi_domain,
    vsi_dte_is_pt_valid,
    vsi_dte_pt_address,
    vsi_iova_dte_index,
    vsi_iova_pte_index,
    vsi_mk_pte,
    vsi_pte_is_page_valid,
)

__all__ = ["VsiFixed", "VsiIommu", "VsiIommuDomain", "to_vsi_domain", "SPAGE_SIZE"]


class VsiFixed(VsiDriver):
    """What the review asks for, on VSI hardware: locked hitless attach,
    accounted atomic gfp, DMA32 synced tables, irq-safe handler, locked PM
    callbacks."""

    name = "vsi-fixed"
    summary = "VSI IOMMU as the review converges on: hitless locked attach, accounted atomic gfp, irq-safe, PM under the lock"
    layout = "vsi"

    def __init__(self):
        super().__init__()
        self.vsi_iommus_lock = SpinLock("vsi_iommus_lock")  # R1: static DEFINE_SPINLOCK(vsi_iommus_lock)

    # -- interrupt -------------------------------------------------------------------

    async def vsi_iommu_irq(self, irq, dev_id):
        """``vsi_iommu_irq`` (hard IRQ, IRQF_SHARED).

        R3/R7: the line is shared, so the handler may run while this IOMMU is
        suspended: it touches the registers only with a reference taken by
        ``pm_runtime_get_if_in_use`` (never sleeps), and takes the lock that
        every process-context user takes with interrupts off.  A fault is
        reported on a paging domain only (READ/WRITE from STATUS).  R10: it is
        reported after the lock is dropped: the domain's fault handler may
        re-enter the IOMMU API (``iommu_unmap``, ``iommu_iova_to_phys`` take
        the domain's lock, which map holds while it takes this one); the
        domain outlives the report because an attach that moves the IOMMU
        off it waits for the handler (``synchronize_irq``) before returning.
        """
        iommu = dev_id
        if await pm_runtime_get_if_in_use(iommu.dev) <= 0:
            return IRQ_NONE
        ret = IRQ_NONE
        report = None
        flags = await spin_lock_irqsave(iommu.lock)
        status = await readl(iommu.regs, VSI_MMU_STATUS_BASE)
        if status & VSI_MMU_IRQ_MASK:
            ret = IRQ_HANDLED
            iova = await readl(iommu.regs, VSI_MMU_PAGE_FAULT_ADDR)
            fault = IOMMU_FAULT_WRITE if status & VSI_MMU_IRQ_FAULT_IS_WRITE else IOMMU_FAULT_READ
            domain = await iommu.domain.load()
            if domain is not None and domain is not self.identity_domain:
                report = (domain, iova, fault)
            await writel(iommu.regs, VSI_MMU_STATUS_BASE, 0)
        await spin_unlock_irqrestore(iommu.lock, flags)
        if report is not None:
            await report_iommu_fault(report[0], iommu.dev, report[1], report[2])
        await pm_runtime_put_autosuspend(iommu.dev)
        return ret

    # -- domains -------------------------------------------------------------------------

    async def vsi_iommu_domain_free(self, domain):
        """``vsi_iommu_domain_free``.

        R8: the only place page tables are freed, and only once no IOMMU is
        on the domain's list, read under the list's lock (the core never
        frees an attached domain; the WARN says so if it did).
        """
        vsi_domain = to_vsi_domain(domain)
        flags = await spin_lock_irqsave(self.vsi_iommus_lock)
        if not await list_empty(vsi_domain.iommus):
            current().kernel.warn(f"vsi_iommu_domain_free({domain!r}): still attached")
        await spin_unlock_irqrestore(self.vsi_iommus_lock, flags)

        flags = await spin_lock_irqsave(vsi_domain.lock)
        for dte in await table_entries(vsi_domain.dt):  # for (i = 0; i < NUM_DT_ENTRIES; i++): zero (invalid) DTEs skipped
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

    async def vsi_iommu_map_iova(self, vsi_domain, page_table, pte_index, pte_dma, iova, paddr, size, prot):
        """``vsi_iommu_map_iova``: write the PTEs, sync them (R5); -EADDRINUSE
        on an entry already valid, after undoing (and syncing) the ones
        written, as rockchip-iommu.c does."""
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
        """``vsi_iommu_unmap`` (unmap_pages): as mainline's (lock irqsave; clear
        and sync the PTEs; flush every IOMMU on the domain before returning),
        and R8: a page table the unmap left empty is taken off its DTE first
        and handed to the core through ``gather`` (freed after the sync,
        when no walker can hold its address any more)."""
        vsi_domain = to_vsi_domain(domain)
        unmap_size = 0
        flags = await spin_lock_irqsave(vsi_domain.lock)
        dte_index = vsi_iova_dte_index(iova)
        dte = await table_read(vsi_domain.dt, dte_index)
        # Just return 0 if iova is unmapped
        if vsi_dte_is_pt_valid(dte):
            pt_phys = vsi_dte_pt_address(dte)
            page_table = phys_to_virt(pt_phys)
            pte_index = vsi_iova_pte_index(iova)
            pte_dma = pt_phys + pte_index * 4
            unmap_size = await self.vsi_iommu_unmap_iova(vsi_domain, page_table, pte_index, pte_dma, size)
            if unmap_size:
                if not any(vsi_pte_is_page_valid(pte) for pte in await table_entries(page_table)):  # zero PTEs skipped
                    await self.vsi_iommu_free_pt(vsi_domain, dte_index, page_table, gather)
                await self.vsi_iommu_flush_tlb(domain)
        await spin_unlock_irqrestore(vsi_domain.lock, flags)
        return unmap_size

    async def vsi_iommu_free_pt(self, vsi_domain, dte_index, page_table, gather):
        """R8: an empty page table leaves its DTE (cleared and synced, under the
        domain lock) and goes on ``gather->freelist``: the core frees it after
        ``iotlb_sync``, i.e. after the TLB and walk-cache flush that follows
        here, never while a cached DTE may still lead the walker to it (for
        ``iommu_unmap_fast`` batches and the DMA API's flush queue: after the
        batch's sync or the queue's flush)."""
        await table_write(vsi_domain.dt, dte_index, 0)
        await self.vsi_table_flush(vsi_domain, vsi_domain.dt_dma + dte_index * 4, 1)
        await dma_unmap_single(vsi_domain.dev, page_to_phys(page_table), SPAGE_SIZE, DMA_TO_DEVICE)
        iommu_pages_list_add(gather.freelist, page_table)

    async def vsi_iommu_flush_iotlb_all(self, domain):
        """``flush_iotlb_all`` (the DMA API's flush queue needs it, as
        IOMMU_CAP_DEFERRED_FLUSH): the same flush as unmap's, under the
        domain lock."""
        vsi_domain = to_vsi_domain(domain)
        flags = await spin_lock_irqsave(vsi_domain.lock)
        await self.vsi_iommu_flush_tlb(domain)
        await spin_unlock_irqrestore(vsi_domain.lock, flags)

    async def flush_iotlb_all(self, domain):
        await self.vsi_iommu_flush_iotlb_all(domain)

    # -- TLB and registers ---------------------------------------------------------------

    async def vsi_iommu_zap_tlb(self, iommu):
        """Flush the whole IOTLB (FLUSH bit, then 0, as mainline writes it
        inline).  Caller holds ``iommu->lock`` and the IOMMU is clocked."""
        await writel(iommu.regs, VSI_MMU_FLUSH_BASE, VSI_MMU_BIT_FLUSH)
        await writel(iommu.regs, VSI_MMU_FLUSH_BASE, 0)

    async def vsi_iommu_flush_tlb(self, domain):
        """``vsi_iommu_flush_tlb``: flush every IOMMU on the domain's list.

        The caller holds ``vsi_domain->lock`` (irqs off).  R1: the list is read
        under ``vsi_iommus_lock``, the lock attach holds while it moves an
        IOMMU, so an IOMMU is either flushed here or flushed by the attach that
        points it at this domain.  R3: ``iommu->enable`` (under the IOMMU's
        lock) means clocked and translating; a suspended IOMMU needs no flush,
        its resume flushes - no PM reference, nothing that sleeps.
        """
        vsi_domain = to_vsi_domain(domain)
        await spin_lock(self.vsi_iommus_lock)
        for iommu in await list_entries(vsi_domain.iommus):
            await spin_lock(iommu.lock)
            if await iommu.enable.load():
                await self.vsi_iommu_zap_tlb(iommu)
            spin_unlock(iommu.lock)
        spin_unlock(self.vsi_iommus_lock)

    async def vsi_iommu_enable(self, iommu, domain):
        """``vsi_iommu_enable``: point the MMU at ``domain``'s PTA and translate.

        Caller holds ``iommu->lock`` and the IOMMU is clocked.  The identity
        check comes before any ``to_vsi_domain``.  R2: no disable step: the
        PTA base is replaced while translation stays on.  R6: the TLB is
        flushed every time, so no line from before (another domain, or a time
        before identity or suspend) survives.
        """
        if domain is self.identity_domain:
            return
        vsi_domain = to_vsi_domain(domain)
        await writel(iommu.regs, VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE, vsi_domain.pta_dma & 0xFFFFFFFF)
        await self.vsi_iommu_zap_tlb(iommu)
        await writel(iommu.regs, VSI_MMU_CONFIG1_BASE, VSI_MMU_OUT_OF_BOUND)
        await writel(iommu.regs, VSI_MMU_AHB_EXCEPTION_BASE, VSI_MMU_BIT_ENABLE)
        await writel(iommu.regs, VSI_MMU_AHB_CONTROL_BASE, VSI_MMU_BIT_ENABLE)
        await iommu.enable.store(True)

    # -- attach ----------------------------------------------------------------------------

    async def vsi_iommu_identity_attach(self, domain, dev, old):
        """``vsi_iommu_identity_attach``: translation off, off the old domain's list.

        R1: registers, list and ``iommu->domain`` change under one lock.  R3:
        resumed before the lock.  No ``to_vsi_domain()`` of the static
        identity domain.
        """
        iommu = dev_iommu_priv_get(dev)
        ret = await pm_runtime_resume_and_get(iommu.dev)
        if ret < 0:
            return ret
        flags = await spin_lock_irqsave(self.vsi_iommus_lock)
        await spin_lock(iommu.lock)
        switched = await iommu.domain.load() is not domain
        if switched:
            await self.vsi_iommu_disable(iommu)
            await list_del_init(iommu.node)
            await iommu.domain.store(domain)
        spin_unlock(iommu.lock)
        await spin_unlock_irqrestore(self.vsi_iommus_lock, flags)
        if switched:
            await synchronize_irq(current().kernel, iommu.irq)  # R10: no fault report on the old domain is left
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
        switched = await iommu.domain.load() is not domain
        if switched:
            await self.vsi_iommu_enable(iommu, vsi_domain)
            await list_del_init(iommu.node)
            await list_add_tail(iommu.node, vsi_domain.iommus)
            await iommu.domain.store(domain)
        spin_unlock(iommu.lock)
        await spin_unlock_irqrestore(self.vsi_iommus_lock, flags)
        if switched:
            await synchronize_irq(current().kernel, iommu.irq)  # R10: no fault report on the old domain is left
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
        changes under that lock); R6 the enable flushes the TLB."""
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
