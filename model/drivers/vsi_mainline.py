"""vsi-mainline: drivers/iommu/vsi-iommu.c as merged in Linux, transcribed.

One method per C function, in the C's order of operations, with the C's
defects kept (this is what the framework is asked to judge, not a fix).
The functions the merged driver shares with vsi-fixed word for word (domain
allocation, ``vsi_dte_get_page_table``, ``vsi_iommu_map``/``unmap``, the
probes...) are in :mod:`model.drivers.vsi_common`; this module holds the
nine where the fixed driver differs:

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
* ``vsi_iommu_domain_free`` reads ``list_empty(&vsi_domain->iommus)`` (the
  WARN) and frees PTs, DT and PTA under the domain lock (an attach to
  another domain takes the IOMMU off this list under THAT domain's lock);
* runtime suspend: ``vsi_iommu_disable`` (no lock) then ``clk_bulk_disable``;
  runtime resume: clocks on, then ``iommu->domain`` read with no lock,
  ``to_vsi_domain`` of it, lock domain + iommu, ``vsi_iommu_enable``;
* ``vsi_iommu_enable`` does ``to_vsi_domain`` before its identity check and
  never flushes the TLB;
* ``vsi_iommu_map_iova`` returns ``(pte_count - 1) * SPAGE_SIZE`` (an ``int``)
  on an already valid PTE, without syncing the PTEs written so far.

Lock order: ``vsi_iommu_domain->lock`` (irqsave) -> ``vsi_iommu->lock``.
Register layout "vsi" (TLB_ARRAY_BASE_L = PTA, AHB_CONTROL, FLUSH bit 4...).
"""

from __future__ import annotations

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
    clk_bulk_disable,
    clk_bulk_enable,
    readl,
    writel,
)
from model.iommu import (
    dev_get_drvdata,
    dev_iommu_priv_get,
    iommu_free_pages,
    list_add_tail,
    list_del_init,
    list_empty,
    list_entries,
    report_iommu_fault,
)
from model.kernel import (
    IRQ_HANDLED,
    IRQ_NONE,
    current,
    kfree,
    phys_to_virt,
    spin_lock,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
)
from model.kernel.dma import DMA_TO_DEVICE, dma_unmap_single, table_read, table_entries, table_write
from model.kernel.pm import pm_runtime_get, pm_runtime_put_autosuspend, pm_runtime_resume_and_get

from .vsi_common import (
    NUM_PT_ENTRIES,
    SPAGE_SIZE,
    VsiDriver,
    VsiIommu,
    VsiIommuDomain,
    to_vsi_domain,
    vsi_dte_is_pt_valid,
    vsi_dte_pt_address,
    vsi_mk_pte,
    vsi_pte_is_page_valid,
)

__all__ = ["VsiMainline", "VsiIommu", "VsiIommuDomain"]


def _s32(v):
    """Truncate to a C ``int``."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


class VsiMainline(VsiDriver):
    """drivers/iommu/vsi-iommu.c as merged, defects included."""

    name = "vsi-mainline"
    summary = "VSI IOMMU as merged in Linux (vsi-iommu.c): hitless attach, flush on every map, resume_and_get in the IRQ"
    layout = "vsi"

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

    async def vsi_iommu_domain_free(self, domain):
        """``vsi_iommu_domain_free``: under the domain lock (irqsave), WARN if still
        attached, free every PT, the DT and the PTA; then kfree."""
        vsi_domain = to_vsi_domain(domain)
        flags = await spin_lock_irqsave(vsi_domain.lock)
        if not await list_empty(vsi_domain.iommus):
            current().kernel.warn(f"vsi_iommu_domain_free({domain!r}): WARN_ON(!list_empty(&vsi_domain->iommus))")
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

    # -- registers ---------------------------------------------------------------------------

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
