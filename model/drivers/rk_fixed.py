"""rk-fixed: vsi-fixed on the Rockchip register layout ("rk").

Not a version of the C: the same fixed driver (:mod:`model.drivers.vsi_fixed`,
R1-R10) programming the Rockchip-style MMU the VSI part derives from
(rockchip-iommu.c: DTE_ADDR, COMMAND with enable/disable paging and zap
cache, INT_MASK/INT_STATUS/INT_CLEAR, v1 PTEs).  It earns its place as the
clean driver of the model's "rk" front-end (``model/hw/mmu.py``: the
COMMAND register, PAGE_FAULT_DONE, the INT_* registers, the rk walk): with
vsi-fixed, vsi-mainline and vsi-v3 all on the VSI layout, nothing else runs
that half of the hardware model under the engine, so an oracle false
positive or a model bug there would go unseen; and the hand-written
end-to-end tests of the core (``tests/test_model.py``) and the oracles'
test doubles that program Rockchip registers run on it.

Only the register-level functions differ from vsi-fixed; locking, lists,
gfp, sync and PM are vsi-fixed's, inherited:

* ``vsi_iommu_irq``: INT_STATUS, PAGE_FAULT_ADDR, STATUS's write bit;
  ZAP_CACHE and PAGE_FAULT_DONE on a page fault, then INT_CLEAR;
* ``vsi_iommu_zap_tlb``: ``COMMAND = ZAP_CACHE``;
* ``vsi_iommu_enable``: DTE_ADDR = the DT itself (the Rockchip MMU has no
  PTA; the PTA page vsi-fixed's ``vsi_iommu_domain_alloc_paging`` allocates
  is never given to the hardware, kept so allocation and free stay
  vsi-fixed's), zap, INT_MASK, ENABLE_PAGING if paging is off;
* ``vsi_iommu_disable``: DISABLE_PAGING, INT_MASK = 0;
* ``vsi_iommu_map_iova``: v1 PTEs (READABLE | WRITABLE | VALID over a
  32-bit page address).  The other table helpers agree with the v1 format
  for page-aligned addresses below 4 GiB (DTE = address | VALID, PTE
  address in bits 31:12), so they are vsi-fixed's.
"""

from __future__ import annotations

from errno import EADDRINUSE

from model.hw import (
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
    readl,
    writel,
)
from model.iommu import IOMMU_FAULT_READ, IOMMU_FAULT_WRITE, IOMMU_READ, IOMMU_WRITE, report_iommu_fault
from model.kernel import IRQ_HANDLED, IRQ_NONE, spin_lock_irqsave, spin_unlock_irqrestore
from model.kernel.dma import table_read, table_write
from model.kernel.pm import pm_runtime_get_if_in_use, pm_runtime_put_autosuspend

from .vsi_common import NUM_PT_ENTRIES, SPAGE_SIZE, to_vsi_domain, vsi_pte_is_page_valid
from .vsi_fixed import VsiFixed

__all__ = ["RkFixed", "rk_mk_pte"]


def rk_mk_pte(page, prot):
    """``rk_mk_pte`` (rockchip-iommu.c, v1 format)."""
    flags = 0
    flags |= RK_PTE_PAGE_READABLE if prot & IOMMU_READ else 0
    flags |= RK_PTE_PAGE_WRITABLE if prot & IOMMU_WRITE else 0
    return (page & RK_PTE_PAGE_ADDRESS_MASK) | flags | RK_PTE_PAGE_VALID


class RkFixed(VsiFixed):
    """vsi-fixed programming Rockchip-layout registers (v1 tables)."""

    name = "rk-fixed"
    summary = "vsi-fixed on the Rockchip register layout (COMMAND/DTE_ADDR/INT_*, v1 PTEs): the rk front-end's clean driver"
    layout = "rk"

    async def vsi_iommu_irq(self, irq, dev_id):
        """``vsi_iommu_irq`` on Rockchip registers (R3/R7/R10 as vsi-fixed: the
        fault is completed (ZAP_CACHE, PAGE_FAULT_DONE) under the lock and
        reported after it is dropped, as rockchip-iommu.c reports holding no lock)."""
        iommu = dev_id
        if await pm_runtime_get_if_in_use(iommu.dev) <= 0:
            return IRQ_NONE
        ret = IRQ_NONE
        report = None
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
                    report = (domain, iova, fault)
                await writel(iommu.regs, RK_MMU_COMMAND, RK_MMU_CMD_ZAP_CACHE)
                await writel(iommu.regs, RK_MMU_COMMAND, RK_MMU_CMD_PAGE_FAULT_DONE)
            await writel(iommu.regs, RK_MMU_INT_CLEAR, int_status)
        await spin_unlock_irqrestore(iommu.lock, flags)
        if report is not None:
            await report_iommu_fault(report[0], iommu.dev, report[1], report[2])
        await pm_runtime_put_autosuspend(iommu.dev)
        return ret

    async def vsi_iommu_map_iova(self, vsi_domain, page_table, pte_index, pte_dma, iova, paddr, size, prot):
        """``vsi_iommu_map_iova`` of vsi-fixed writing v1 PTEs."""
        pte_total = size // SPAGE_SIZE
        pte_count = 0
        while pte_count < pte_total and pte_index + pte_count < NUM_PT_ENTRIES:
            pte = await table_read(page_table, pte_index + pte_count)
            if vsi_pte_is_page_valid(pte):
                # unwind: unmap the range of iovas that we just mapped
                await self.vsi_iommu_unmap_iova(vsi_domain, page_table, pte_index, pte_dma, pte_count * SPAGE_SIZE)
                return -EADDRINUSE
            await table_write(page_table, pte_index + pte_count, rk_mk_pte(paddr, prot))
            paddr += SPAGE_SIZE
            pte_count += 1
        await self.vsi_table_flush(vsi_domain, pte_dma, pte_total)
        return 0

    async def vsi_iommu_zap_tlb(self, iommu):
        """Shoot down the whole IOTLB (``RK_MMU_CMD_ZAP_CACHE``).  Caller holds ``iommu->lock``."""
        await writel(iommu.regs, RK_MMU_COMMAND, RK_MMU_CMD_ZAP_CACHE)

    async def vsi_iommu_enable(self, iommu, domain):
        """``vsi_iommu_enable`` on Rockchip registers (R2, R6 as vsi-fixed)."""
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
        """``vsi_iommu_disable``: translation off (bypass), interrupts masked.
        Caller holds ``iommu->lock``."""
        await writel(iommu.regs, RK_MMU_COMMAND, RK_MMU_CMD_DISABLE_PAGING)
        await writel(iommu.regs, RK_MMU_INT_MASK, 0)
        await iommu.enable.store(False)
