"""The bug zoo: one single-defect mutant of ``vsi-fixed`` per seed defect B1-B12,
and per caller the workload reaches since (B13-B15: the DMA API from atomic
context, a fault handler that re-enters, a table freed before the sync).

Each class below subclasses :class:`~model.drivers.vsi_fixed.VsiFixed` (the
merged driver fixed, on the VSI register layout, like vsi-mainline) and
overrides exactly ONE method, the one place where the defect lives; its
docstring names the review point (``seed-lkml-vsi-review.txt``, R1-R10 of
``vsi_fixed``) or the hardware rule it breaks.  Nothing here reports
anything: the defects are found by the checkers and oracles watching the
model's events, the same ones that watch every driver.

Every defect of DESIGN.md's table exists on the VSI registers as it did on
the Rockchip ones (none needs a stall or force reset); the two that program
registers are written in VSI terms: B9 reads ``AHB_CONTROL`` to decide
whether to flush, B10's "disable" turns the interrupt off
(``AHB_EXCEPTION = 0``) instead of translation (``AHB_CONTROL = 0``).

``ZOO`` lists ``(id, name, class, expected kind or tuple of kinds)``; it is
used by the tests and the README table only.
"""

from __future__ import annotations

from errno import ENODEV, ENOMEM

from model.hw import (
    VSI_MMU_AHB_CONTROL_BASE,
    VSI_MMU_IRQ_FAULT_IS_WRITE,
    VSI_MMU_IRQ_MASK,
    VSI_MMU_PAGE_FAULT_ADDR,
    VSI_MMU_STATUS_BASE,
    VSI_MMU_AHB_EXCEPTION_BASE,
    VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE,
    VSI_MMU_BIT_ENABLE,
    VSI_MMU_CONFIG1_BASE,
    VSI_MMU_OUT_OF_BOUND,
    clk_bulk_disable,
    readl,
    writel,
)
from model.iommu import (
    IOMMU_FAULT_READ,
    IOMMU_FAULT_WRITE,
    dev_get_drvdata,
    dev_iommu_priv_get,
    iommu_alloc_pages_sz,
    iommu_free_pages,
    list_add_tail,
    list_del_init,
    list_entries,
    report_iommu_fault,
)
from model.kernel import (
    GFP_ATOMIC,
    GFP_DMA32,
    GFP_KERNEL,
    IRQ_HANDLED,
    IRQ_NONE,
    Mutex,
    current,
    mutex_lock,
    mutex_unlock,
    page_to_phys,
    phys_to_virt,
    spin_lock,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
)
from model.kernel.dma import DMA_TO_DEVICE, dma_map_single, dma_mapping_error, dma_unmap_single, table_read, table_write
from model.kernel.pm import pm_runtime_get_if_in_use, pm_runtime_put_autosuspend, pm_runtime_resume_and_get

from .vsi_common import (
    NUM_PT_ENTRIES,
    PAGE_SIZE,
    SPAGE_SIZE,
    to_vsi_domain,
    vsi_dte_is_pt_valid,
    vsi_dte_pt_address,
    vsi_iova_dte_index,
    vsi_mk_dte,
    vsi_mk_pte_invalid,
    vsi_pte_is_page_valid,
)
from .vsi_fixed import VsiFixed

__all__ = [
    "ZOO",
    "GfpOrAtomic",
    "ForcedAtomic",
    "IdentityStep",
    "SplitAttach",
    "UnlockedSuspend",
    "SleepingPowerCheck",
    "IrqUnsafeSuspend",
    "InvertedFlush",
    "NoZapOnReenable",
    "DisableKeepsPaging",
    "HighPageTables",
    "UnsyncedUnmap",
    "SleepingMap",
    "FaultUnderLock",
    "FreedBeforeSync",
    "HighBitsDropped",
]


async def _get_page_table(driver, vsi_domain, iova, flags):
    """``vsi_dte_get_page_table`` of vsi-fixed (:mod:`vsi_common`'s) with the
    allocation flags given verbatim."""
    dte_index = vsi_iova_dte_index(iova)
    dte = await table_read(vsi_domain.dt, dte_index)
    if not vsi_dte_is_pt_valid(dte):
        page_table = await iommu_alloc_pages_sz(flags, PAGE_SIZE, tag="vsi pt")
        if page_table is None:
            return -ENOMEM
        pt_dma = await dma_map_single(vsi_domain.dev, page_table, PAGE_SIZE, DMA_TO_DEVICE)
        if dma_mapping_error(vsi_domain.dev, pt_dma):
            iommu_free_pages(page_table)
            return -ENOMEM
        dte = vsi_mk_dte(pt_dma)
        await table_write(vsi_domain.dt, dte_index, dte)
        await driver.vsi_table_flush(vsi_domain, vsi_domain.dt_dma + dte_index * 4, 1)
    return phys_to_virt(vsi_dte_pt_address(dte))


class GfpOrAtomic(VsiFixed):
    """B1 (review: "This will or together GFP_ATOMIC and GFP_KERNEL, I don't
    think that works"; R4): the PT is allocated with ``gfp | GFP_ATOMIC |
    GFP_DMA32`` under the domain spinlock, so a GFP_KERNEL caller's
    ``__GFP_DIRECT_RECLAIM`` survives and the allocation may sleep in atomic
    context."""

    name = "vsi-b1-gfp-or-atomic"
    summary = "B1: map allocates the PT with gfp | GFP_ATOMIC | GFP_DMA32 under the spinlock (may sleep)"

    async def vsi_dte_get_page_table(self, vsi_domain, iova, gfp):
        return await _get_page_table(self, vsi_domain, iova, gfp | GFP_ATOMIC | GFP_DMA32)


class ForcedAtomic(VsiFixed):
    """B2 (review: "This ignores the gfp flags that are passed into map ...
    it does not set GFP_KERNEL_ACCOUNT when required"; R4): the PT
    allocation forces ``GFP_ATOMIC | GFP_DMA32``, dropping the caller's
    ``__GFP_ACCOUNT``."""

    name = "vsi-b2-forced-atomic"
    summary = "B2: map forces GFP_ATOMIC for the PT, dropping the caller's GFP_KERNEL_ACCOUNT"

    async def vsi_dte_get_page_table(self, vsi_domain, iova, gfp):
        return await _get_page_table(self, vsi_domain, iova, GFP_ATOMIC | GFP_DMA32)


class IdentityStep(VsiFixed):
    """B3 (review: "it is actually a security problem for VFIO to switch the
    translation to identity during attach_device"; R2): attach goes through
    the identity domain before programming the new one, a window in which
    the master's DMA bypasses translation."""

    name = "vsi-b3-identity-step"
    summary = "B3: attach switches to identity before the new domain (VFIO bypass window)"

    async def vsi_iommu_attach_device(self, domain, dev, old):
        ret = await self.vsi_iommu_identity_attach(self.identity_domain, dev, old)
        if ret:
            return ret
        return await super().vsi_iommu_attach_device(domain, dev, old)


class SplitAttach(VsiFixed):
    """B4 (review: "You'll loose invalidations.. the spinlock is held across
    the register programming and then you can atomically under the lock
    change the registers and change the linked list"; R1): the identity
    step is gone, but the registers are programmed (and the TLB flushed)
    under the IOMMU's lock alone, and the list and ``iommu->domain`` are
    updated in a second section: an unmap's flush in between walks the old
    list, misses this IOMMU, and a stale IOTLB line survives."""

    name = "vsi-b4-split-attach"
    summary = "B4: attach programs registers in one lock section, moves list/domain in another (lost flush)"

    async def vsi_iommu_attach_device(self, domain, dev, old):
        iommu = dev_iommu_priv_get(dev)
        vsi_domain = to_vsi_domain(domain)
        if iommu is None:
            current().kernel.warn(f"vsi_iommu_attach_device({dev}): no IOMMU")
            return -ENODEV
        ret = await pm_runtime_resume_and_get(iommu.dev)
        if ret < 0:
            return ret
        flags = await spin_lock_irqsave(iommu.lock)
        same = await iommu.domain.load() is domain
        if not same:
            await self.vsi_iommu_enable(iommu, vsi_domain)
        await spin_unlock_irqrestore(iommu.lock, flags)
        if not same:
            flags = await spin_lock_irqsave(self.vsi_iommus_lock)
            await spin_lock(iommu.lock)
            await list_del_init(iommu.node)
            await list_add_tail(iommu.node, vsi_domain.iommus)
            await iommu.domain.store(domain)
            spin_unlock(iommu.lock)
            await spin_unlock_irqrestore(self.vsi_iommus_lock, flags)
        await pm_runtime_put_autosuspend(iommu.dev)
        return 0


class UnlockedSuspend(VsiFixed):
    """B5 (review: "vsi_iommu_suspend() and vsi_iommu_resume() will also
    have to take the lock before calling vsi_iommu_disable() and
    vsi_iommu_enable()"; R9): runtime suspend disables translation and
    clears ``enable`` without the IOMMU's lock, so a flush that saw
    ``enable`` set writes FLUSH to a clock-gated IOMMU."""

    name = "vsi-b5-unlocked-suspend"
    summary = "B5: runtime suspend programs the registers without the IOMMU's lock"

    async def vsi_iommu_suspend(self, dev):
        iommu = dev_get_drvdata(dev)
        await self.vsi_iommu_disable(iommu)
        await clk_bulk_disable(iommu.num_clocks, iommu.clocks)
        return 0


class SleepingPowerCheck(VsiFixed):
    """B6 (review: "can you do the "powered up" checks inside the spinlock -
    are they sleeping? Can they be done before the spinlock?"; R3): the
    flush asks "powered up?" with ``pm_runtime_resume_and_get``, which may
    sleep, under ``vsi_iommus_lock`` and the domain lock."""

    name = "vsi-b6-sleeping-power-check"
    summary = "B6: the flush's powered-up check is pm_runtime_resume_and_get inside the spinlock"

    async def vsi_iommu_flush_tlb(self, domain):
        vsi_domain = to_vsi_domain(domain)
        await spin_lock(self.vsi_iommus_lock)
        for iommu in await list_entries(vsi_domain.iommus):
            if await pm_runtime_resume_and_get(iommu.dev) < 0:
                continue
            await spin_lock(iommu.lock)
            await self.vsi_iommu_zap_tlb(iommu)
            spin_unlock(iommu.lock)
            await pm_runtime_put_autosuspend(iommu.dev)
        spin_unlock(self.vsi_iommus_lock)


class IrqUnsafeSuspend(VsiFixed):
    """B7 (R7: every process-context taker of a lock the hard-IRQ handler
    takes must disable interrupts): runtime suspend takes ``iommu->lock``
    with plain ``spin_lock``; the fault IRQ on the same CPU then spins on it
    forever."""

    name = "vsi-b7-irq-unsafe-lock"
    summary = "B7: runtime suspend takes the IRQ handler's lock without irqsave"

    async def vsi_iommu_suspend(self, dev):
        iommu = dev_get_drvdata(dev)
        await spin_lock(iommu.lock)
        await self.vsi_iommu_disable(iommu)
        spin_unlock(iommu.lock)
        await clk_bulk_disable(iommu.num_clocks, iommu.clocks)
        return 0


class InvertedFlush(VsiFixed):
    """B8 (lock order of vsi-fixed: ``vsi_iommus_lock`` -> ``iommu->lock``,
    the order attach takes them): the flush takes the IOMMU's lock first,
    then ``vsi_iommus_lock``, an AB-BA deadlock with attach."""

    name = "vsi-b8-inverted-flush"
    summary = "B8: the flush takes iommu->lock then vsi_iommus_lock, attach the opposite order"

    async def vsi_iommu_flush_tlb(self, domain):
        vsi_domain = to_vsi_domain(domain)
        await spin_lock(self.vsi_iommus_lock)
        iommus = await list_entries(vsi_domain.iommus)
        spin_unlock(self.vsi_iommus_lock)
        for iommu in iommus:
            await spin_lock(iommu.lock)
            await spin_lock(self.vsi_iommus_lock)
            if await iommu.enable.load():
                await self.vsi_iommu_zap_tlb(iommu)
            spin_unlock(self.vsi_iommus_lock)
            spin_unlock(iommu.lock)


class NoZapOnReenable(VsiFixed):
    """B9 (review: "You can't have stale entries in the cache when you switch
    back to an enabled/translating configuration. So either the HW flushes
    implicitly or you need to add a flush somewhere"; R6; the hardware does
    not flush when ``AHB_CONTROL`` turns translation on): the TLB is flushed
    only on a hitless switch (``AHB_CONTROL`` already on), not when
    translation is re-enabled after identity or resume.  Found where the
    TLB keeps its lines across ``AHB_CONTROL = 0`` or clock gating (the VSI
    default, ``--tlb-retention``): as ``stale-tlb`` when a surviving line
    translates a DMA to a page since unmapped, or as
    ``pagetable-use-after-free`` when the surviving line or cached walk
    entry (the walk cache, a hardware option of ``model/hw/tlb.py``) belongs
    to a domain since freed - the same missing flush, whichever the
    schedule shows first."""

    name = "vsi-b9-no-zap-on-reenable"
    summary = "B9: no TLB flush when translation is re-enabled (after identity or suspend)"

    async def vsi_iommu_enable(self, iommu, domain):
        if domain is self.identity_domain:
            return
        vsi_domain = to_vsi_domain(domain)
        was_on = await readl(iommu.regs, VSI_MMU_AHB_CONTROL_BASE) & VSI_MMU_BIT_ENABLE
        await writel(iommu.regs, VSI_MMU_AHB_TLB_ARRAY_BASE_L_BASE, vsi_domain.pta_dma & 0xFFFFFFFF)
        if was_on:
            await self.vsi_iommu_zap_tlb(iommu)
        await writel(iommu.regs, VSI_MMU_CONFIG1_BASE, VSI_MMU_OUT_OF_BOUND)
        await writel(iommu.regs, VSI_MMU_AHB_EXCEPTION_BASE, VSI_MMU_BIT_ENABLE)
        await writel(iommu.regs, VSI_MMU_AHB_CONTROL_BASE, VSI_MMU_BIT_ENABLE)
        await iommu.enable.store(True)


class DisableKeepsPaging(VsiFixed):
    """B10 (R8, and the review's "disable the iommu" step of identity
    attach): "disable" only turns the interrupt off (``AHB_EXCEPTION = 0``)
    and leaves translation on (``AHB_CONTROL`` untouched) with the old PTA,
    so after a switch to identity the walker still walks a domain that is
    off every list and may be freed."""

    name = "vsi-b10-disable-keeps-paging"
    summary = "B10: disable leaves paging on the old tables; they are freed while the IOMMU walks them"

    async def vsi_iommu_disable(self, iommu):
        await writel(iommu.regs, VSI_MMU_AHB_EXCEPTION_BASE, 0)
        await iommu.enable.store(False)


class HighPageTables(VsiFixed):
    """B11 (hardware rule, R5: the walker's DTE/PTE addresses are 32-bit,
    table pages must come from ZONE_DMA32): the PT is allocated with the
    caller's flags made atomic but without ``GFP_DMA32``."""

    name = "vsi-b11-high-page-tables"
    summary = "B11: page-table pages allocated without GFP_DMA32"

    async def vsi_dte_get_page_table(self, vsi_domain, iova, gfp):
        return await _get_page_table(self, vsi_domain, iova, (gfp & ~GFP_KERNEL) | GFP_ATOMIC)


class UnsyncedUnmap(VsiFixed):
    """B12 (hardware rule, R5: the walker reads tables from memory, not the
    CPU's cache; every table write is synced with
    ``dma_sync_single_for_device`` before the TLB is flushed): unmap clears
    the PTEs in the CPU's view only, so the walker still sees them valid."""

    name = "vsi-b12-unsynced-unmap"
    summary = "B12: unmap's PTE writes are not synced to the device before the TLB zap"

    async def vsi_iommu_unmap_iova(self, vsi_domain, page_table, pte_index, pte_dma, size):
        pte_total = size // SPAGE_SIZE
        pte_count = 0
        while pte_count < pte_total and pte_index + pte_count < NUM_PT_ENTRIES:
            pte = await table_read(page_table, pte_index + pte_count)
            if not vsi_pte_is_page_valid(pte):
                break
            await table_write(page_table, pte_index + pte_count, vsi_mk_pte_invalid(pte))
            pte_count += 1
        return pte_count * SPAGE_SIZE


#: DEFINE_MUTEX(vsi_map_mutex) of B13
_VSI_MAP_MUTEX = Mutex("vsi_map_mutex")


class SleepingMap(VsiFixed):
    """B13 (the DMA API calls map from atomic context): map serializes
    page-table allocation with a mutex around the spinlocked section.  Every
    VFIO map (process context) is fine; ``dma_map_single`` from a hard IRQ,
    a softirq, BH-disabled code or under a spinlock with interrupts off
    sleeps in atomic context."""

    name = "vsi-b13-sleeping-map"
    summary = "B13: map takes a mutex: sleeps when the DMA API maps from atomic context"

    async def vsi_iommu_map(self, domain, iova, paddr, size, count, prot, gfp):
        await mutex_lock(_VSI_MAP_MUTEX)
        ret = await super().vsi_iommu_map(domain, iova, paddr, size, count, prot, gfp)
        mutex_unlock(_VSI_MAP_MUTEX)
        return ret


class FaultUnderLock(VsiFixed):
    """B14 (R10): the IRQ handler reports the fault with ``iommu->lock`` held,
    as the merged driver does: a domain's fault handler that re-enters the
    IOMMU API (``iommu_unmap``, ``iommu_iova_to_phys``: the domain's lock)
    takes the locks in the reverse of map's order (domain lock, then the
    IOMMU's, to flush)."""

    name = "vsi-b14-fault-under-lock"
    summary = "B14: report_iommu_fault called with iommu->lock held: a re-entering fault handler inverts map's lock order"

    async def vsi_iommu_irq(self, irq, dev_id):
        iommu = dev_id
        if await pm_runtime_get_if_in_use(iommu.dev) <= 0:
            return IRQ_NONE
        ret = IRQ_NONE
        flags = await spin_lock_irqsave(iommu.lock)
        status = await readl(iommu.regs, VSI_MMU_STATUS_BASE)
        if status & VSI_MMU_IRQ_MASK:
            ret = IRQ_HANDLED
            iova = await readl(iommu.regs, VSI_MMU_PAGE_FAULT_ADDR)
            fault = IOMMU_FAULT_WRITE if status & VSI_MMU_IRQ_FAULT_IS_WRITE else IOMMU_FAULT_READ
            domain = await iommu.domain.load()
            if domain is not None and domain is not self.identity_domain:
                await report_iommu_fault(domain, iommu.dev, iova, fault)
            await writel(iommu.regs, VSI_MMU_STATUS_BASE, 0)
        await spin_unlock_irqrestore(iommu.lock, flags)
        await pm_runtime_put_autosuspend(iommu.dev)
        return ret


class FreedBeforeSync(VsiFixed):
    """B15 (R8): an emptied page table is freed inside unmap, not handed to
    the core's gather: it is freed before the TLB flush (and before the sync
    of an ``iommu_unmap_fast`` batch or the DMA API's flush queue) while the
    walker may still hold its DTE in the walk cache."""

    name = "vsi-b15-table-freed-before-sync"
    summary = "B15: an emptied page table is freed in unmap, before the flush and the batch's sync"

    async def vsi_iommu_free_pt(self, vsi_domain, dte_index, page_table, gather):
        await table_write(vsi_domain.dt, dte_index, 0)
        await self.vsi_table_flush(vsi_domain, vsi_domain.dt_dma + dte_index * 4, 1)
        await dma_unmap_single(vsi_domain.dev, page_to_phys(page_table), SPAGE_SIZE, DMA_TO_DEVICE)
        iommu_free_pages(page_table)


#: (id, registry name, class, expected kind or tuple of acceptable kinds)
ZOO = [
    ("B1", GfpOrAtomic.name, GfpOrAtomic, "sleep-in-atomic"),
    ("B2", ForcedAtomic.name, ForcedAtomic, "gfp-accounting-dropped"),
    ("B3", IdentityStep.name, IdentityStep, "dma-isolation"),
    ("B4", SplitAttach.name, SplitAttach, ("stale-tlb", "pagetable-use-after-free")),
    ("B5", UnlockedSuspend.name, UnlockedSuspend, ("mmio-while-suspended", "dma-isolation")),
    ("B6", SleepingPowerCheck.name, SleepingPowerCheck, "sleep-in-atomic"),
    ("B7", IrqUnsafeSuspend.name, IrqUnsafeSuspend, "irq-lock-inversion"),
    ("B8", InvertedFlush.name, InvertedFlush, "lock-inversion"),
    ("B9", NoZapOnReenable.name, NoZapOnReenable, ("stale-tlb", "pagetable-use-after-free")),
    ("B10", DisableKeepsPaging.name, DisableKeepsPaging, "pagetable-use-after-free"),
    ("B11", HighPageTables.name, HighPageTables, "dma32-violation"),
    ("B12", UnsyncedUnmap.name, UnsyncedUnmap, ("stale-tlb", "dma-isolation")),
    ("B13", SleepingMap.name, SleepingMap, "sleep-in-atomic"),
    ("B14", FaultUnderLock.name, FaultUnderLock, ("lock-inversion", "recursive-locking")),
    ("B15", FreedBeforeSync.name, FreedBeforeSync, "pagetable-use-after-free"),
]


class HighBitsDropped(VsiFixed):
    """B16 (hardware rule: the VSI PTE holds a 40-bit page address, bits
    39:32 in PTE bits 11:4, ``vsi_mk_pte``): map hands the page address on
    as a ``u32``, as a driver written for the 32-bit Rockchip v1 MMU does
    (``rk_mk_pte`` keeps bits 31:12), so a page above 4 GiB is mapped at
    its alias below 4 GiB: the device's DMA lands in memory nobody mapped
    and ``iova_to_phys`` answers the truncated address."""

    name = "vsi-b16-high-bits-dropped"
    summary = "B16: map truncates the page address to 32 bits: pages above 4 GiB are mapped at their alias"

    async def vsi_iommu_map_iova(self, vsi_domain, page_table, pte_index, pte_dma, iova, paddr, size, prot):
        return await super().vsi_iommu_map_iova(vsi_domain, page_table, pte_index, pte_dma, iova, paddr & 0xFFFFFFFF, size, prot)


ZOO.append(("B16", HighBitsDropped.name, HighBitsDropped, ("wrong-translation", "dma-isolation")))
