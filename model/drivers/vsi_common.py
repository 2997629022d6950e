"""What every version of the VSI driver shares: table encodings, structures,
and the C functions the versions have in common.

The versions (``vsi_v3``, ``vsi_mainline``, ``vsi_fixed``) subclass
:class:`VsiDriver` and define ONLY the C functions where their C differs
from the one here, so each module reads as "what this version does
differently".  Everything here is the merged driver's code
(drivers/iommu/vsi-iommu.c), unchanged:

* the table encodings (plain functions, VSI formats: PTA -> DT -> PT,
  40-bit page addresses with bits 39:32 in PTE bits 11:4);
* ``struct vsi_iommu`` (one spinlock, ``enable``) and ``struct
  vsi_iommu_domain`` (one spinlock, DT and PTA);
* :class:`VsiDriver`: the C functions that vsi-mainline and vsi-fixed
  share word for word (domain allocation, the page-table walk of
  ``iova_to_phys``, ``vsi_dte_get_page_table``, ``vsi_iommu_unmap_iova``,
  ``vsi_iommu_map`` / ``vsi_iommu_unmap``, ``vsi_iommu_disable``, the
  probes) and the ``iommu_ops`` table that dispatches to them.

What each version defines itself (its C differs; see each module's
docstring for what the C does there):

=====================  ======================================================
vsi-mainline           ``vsi_iommu_irq``, ``vsi_iommu_domain_free``,
and vsi-fixed          ``vsi_iommu_map_iova``, ``vsi_iommu_flush_tlb``,
                       ``vsi_iommu_enable``, ``vsi_iommu_identity_attach``,
                       ``vsi_iommu_attach_device``, ``vsi_iommu_suspend``,
                       ``vsi_iommu_resume`` (vsi-fixed also ``vsi_iommu_zap_tlb``
                       and its global ``vsi_iommus_lock``)
vsi-v3                 the Rockchip-derived posting: its own structures (two
                       domain locks, ``dma_dev``, ``bases[]``, no IOMMU lock),
                       two PTE encodings, and every C function that touches
                       them; it shares ``vsi_iommu_get_from_dev``,
                       ``vsi_iommu_probe_device``, ``vsi_iommu_release_device``
                       and the ops table
=====================  ======================================================

``tests/test_drivers_common.py`` pins these sets.
"""

from __future__ import annotations

from errno import ENOMEM

from model.hw import (
    VSI_DTE_PT_ADDRESS_MASK,
    VSI_DTE_PT_VALID,
    VSI_MASTER_TLB_MASK,
    VSI_MMU_AHB_CONTROL_BASE,
    VSI_PAGE_DESC_HI_MASK,
    VSI_PAGE_DESC_HI_SHIFT,
    VSI_PAGE_DESC_LO_MASK,
    VSI_PTA_4K_MODE,
    VSI_PTE_PAGE_VALID,
    VSI_PTE_PAGE_WRITABLE,
    clk_bulk_prepare,
    clk_bulk_unprepare,
    devm_clk_bulk_get_all,
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
    platform_get_irq,
    platform_set_drvdata,
)
from model.kernel import (
    GFP_ATOMIC,
    GFP_DMA32,
    GFP_KERNEL,
    IRQF_SHARED,
    Shared,
    SpinLock,
    kfree,
    kzalloc,
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
    table_write,
    table_write64,
)
from model.kernel.pm import (
    DL_FLAG_PM_RUNTIME,
    DL_FLAG_STATELESS,
    device_link_add,
    device_link_remove,
    pm_runtime_enable,
    pm_runtime_set_autosuspend_delay,
    pm_runtime_use_autosuspend,
)

__all__ = ["VsiDriver", "VsiIommu", "VsiIommuDomain", "to_vsi_domain"]

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


# -- table entries (VSI format, as vsi-iommu.c) ------------------------------------


def vsi_dte_pt_address(dte):
    return dte & VSI_DTE_PT_ADDRESS_MASK


def vsi_mk_dte(dte):
    """``vsi_mk_dte(u32 dte)``: no mask, just the VALID bit."""
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
        self.dev = None  # the IOMMU's struct device, for the DMA API
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
        for dte in self.dt.entries(self.dt.words):  # the non-zero entries (Page.entries)
            if vsi_dte_is_pt_valid(dte):
                pt = phys_to_page(self.kernel, vsi_dte_pt_address(dte))
                if pt is not None:
                    pages.append(pt)
        return tuple(pages)


def to_vsi_domain(domain):
    """``to_vsi_domain``: ``container_of(dom, struct vsi_iommu_domain, domain)``."""
    return container_of(domain, VsiIommuDomain)


# -- the C functions the versions share ---------------------------------------------


class VsiDriver(IommuDriver):
    """The merged driver's C functions that the versions share, and its
    ``iommu_ops``.  Not a driver by itself (no name): the version-specific
    functions (module docstring) live in the subclasses."""

    layout = "vsi"

    def __init__(self):
        # static struct iommu_domain vsi_identity_domain = { .type = IDENTITY, .ops = &vsi_identity_ops }
        self.identity_domain = IommuDomain(IOMMU_DOMAIN_IDENTITY, name="vsi_identity_domain")
        self.release_domain = self.identity_domain

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

    # -- page tables -------------------------------------------------------------------------

    async def vsi_table_flush(self, vsi_domain, dma, count):
        """``vsi_table_flush``: ``dma_sync_single_for_device(count * sizeof(u32))``,
        so the walker (which reads memory, not the CPU's cache) sees the entries."""
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
        sync ``pte_total`` entries (not ``pte_count``: more than needed, harmless).
        ``pte_addr`` is ``&page_table[pte_index]``."""
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

    async def vsi_iommu_unmap(self, domain, iova, size, count, gather):
        """``vsi_iommu_unmap`` (unmap_pages; no ``iotlb_sync`` op): lock irqsave;
        0 if the DTE is invalid; clear and sync the PTEs; flush the TLB of every
        IOMMU on the domain if anything was unmapped, before returning; unlock."""
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
        with ``(gfp & ~GFP_KERNEL) | GFP_ATOMIC | GFP_DMA32`` ("Do not allow to sleep
        while allocating the buffer": the blocking bits cleared, ``__GFP_ACCOUNT``
        kept), dma_map_single'd, its DTE written and that one DTE synced."""
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
        """``vsi_iommu_map`` (map_pages; one page of ``size``, ``count`` ignored:
        pgsize_bitmap is 4 KiB): lock irqsave, PT, PTEs, ``*mapped = size`` if
        ok, flush the TLB (also on error), unlock.  Returns ``(ret, mapped)``."""
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
        """``vsi_iommu_disable``: AHB_CONTROL = 0 (translation off: bypass);
        ``iommu->enable = false``.  Takes no lock itself."""
        await writel(iommu.regs, VSI_MMU_AHB_CONTROL_BASE, 0)
        await iommu.enable.store(False)

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
        """``vsi_iommu_probe`` (platform probe, one per IOMMU instance)."""
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
