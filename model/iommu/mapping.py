"""iommu_map / iommu_unmap / iommu_iova_to_phys (drivers/iommu/iommu.c).

No core lock is taken: concurrent map and unmap on one domain from many
CPUs are legal, and the driver serialises its page-table updates itself.
``map_begin``/``map_end`` bracket a map on the calling CPU (allocations in
between are made on the caller's behalf, with the caller's gfp in the
event); ``unmap_end`` comes after ``iotlb_sync`` and after the pages on the
gather's freelist were freed.
"""

from __future__ import annotations

from errno import EINVAL, ENODEV

from model.kernel.core import current
from model.kernel.gfp import __GFP_COMP, __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM, gfp_name, gfpflags_allow_blocking
from model.kernel.sleep import might_sleep_if

from .domain import (
    __IOMMU_DOMAIN_PAGING,
    IOMMU_DOMAIN_BLOCKED,
    IOMMU_DOMAIN_IDENTITY,
    IommuIotlbGather,
    iommu_iotlb_gather_init,
    iommu_put_pages_list,
)
from .events import iommu_event

__all__ = ["iommu_map", "iommu_unmap", "iommu_unmap_fast", "iommu_iova_to_phys", "iommu_pgsize", "iommu_iotlb_sync", "iommu_flush_iotlb_all", "unmaps_done"]


def _fls(x):
    return x.bit_length() - 1


def _ffs(x):
    return (x & -x).bit_length() - 1


def _genmask(h, l=0):
    return ((1 << (h + 1)) - 1) & ~((1 << l) - 1)


def iommu_pgsize(domain, iova, paddr, size):
    """``(pgsize, count)``: the biggest page size that fits, and how many of it."""
    addr_merge = paddr | iova
    # Page sizes supported by the hardware and small enough for @size
    pgsizes = domain.pgsize_bitmap & _genmask(_fls(size))
    # Constrain the page sizes further based on the maximum alignment
    if addr_merge:
        pgsizes &= _genmask(_ffs(addr_merge))
    if not pgsizes:
        raise AssertionError(f"BUG_ON(!pgsizes): iova {iova:#x} paddr {paddr:#x} size {size:#x}")
    # Pick the biggest page size remaining
    pgsize_idx = _fls(pgsizes)
    pgsize = 1 << pgsize_idx
    # Find the next biggest support page size, if it exists
    pgsizes = domain.pgsize_bitmap & ~_genmask(pgsize_idx)
    if pgsizes:
        pgsize_next = 1 << _ffs(pgsizes)
        # No point trying a bigger page size unless iova and paddr are
        # similarly offset within the larger page.
        if not (iova ^ paddr) & (pgsize_next - 1):
            offset = pgsize_next - (addr_merge & (pgsize_next - 1))
            if offset + pgsize_next <= size:
                size = offset
    return pgsize, size >> pgsize_idx


async def iommu_map_nosync(domain, iova, paddr, size, prot, gfp):
    cpu = current()
    await might_sleep_if(gfpflags_allow_blocking(gfp), f"iommu_map({gfp_name(gfp)})")
    ops = domain.owner
    if not domain.type & __IOMMU_DOMAIN_PAGING:
        return -EINVAL
    if ops is None or not domain.pgsize_bitmap:
        cpu.kernel.warn(f"iommu_map({domain!r}): no map_pages or empty pgsize_bitmap")
        return -ENODEV
    # Discourage passing strange GFP flags
    if gfp & (__GFP_COMP | __GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM):
        cpu.kernel.warn(f"iommu_map({domain!r}, gfp={gfp_name(gfp)}): zone flags are the driver's business")
        return -EINVAL
    # find out the minimum page size supported
    min_pagesz = 1 << _ffs(domain.pgsize_bitmap)
    # both the virtual address and the physical one, as well as the size of
    # the mapping, must be aligned (at least) to the smallest page size
    if (iova | paddr | size) & (min_pagesz - 1):
        return -EINVAL
    orig_iova, orig_size = iova, size
    ret = 0
    while size:
        pgsize, count = iommu_pgsize(domain, iova, paddr, size)
        ret, mapped = await ops.map_pages(domain, iova, paddr, pgsize, count, prot, gfp)
        # Some pages may have been mapped, even if an error occurred, so we
        # should account for those so they can be unmapped.
        size -= mapped
        if ret:
            break
        iova += mapped
        paddr += mapped
    # unroll mapping in case something went wrong
    if ret:
        await iommu_unmap(domain, orig_iova, orig_size - size)
        return ret
    return 0


async def iommu_sync_map(domain, iova, size):
    ops = domain.owner
    if ops is None or ops.iotlb_sync_map is None:
        return 0
    return await ops.iotlb_sync_map(domain, iova, size)


async def iommu_map(domain, iova, paddr, size, prot, gfp):
    """Map ``size`` bytes at ``iova`` to ``paddr``; 0 or -errno.

    Emits ``map_begin`` and ``map_end`` (``{domain, iova, paddr, size, prot,
    gfp, ret}``, ``ret`` None in ``map_begin``).
    """
    info = {"domain": domain, "iova": iova, "paddr": paddr, "size": size, "prot": prot, "gfp": gfp, "ret": None}
    iommu_event("map_begin", info)
    ret = await iommu_map_nosync(domain, iova, paddr, size, prot, gfp)
    if not ret:
        ret = await iommu_sync_map(domain, iova, size)
        if ret:
            await iommu_unmap(domain, iova, size)
    iommu_event("map_end", dict(info, ret=ret))
    return ret


async def __iommu_unmap(domain, iova, size, gather):
    cpu = current()
    ops = domain.owner
    if not domain.type & __IOMMU_DOMAIN_PAGING:
        return 0
    if ops is None or not domain.pgsize_bitmap:
        cpu.kernel.warn(f"iommu_unmap({domain!r}): no unmap_pages or empty pgsize_bitmap")
        return 0
    min_pagesz = 1 << _ffs(domain.pgsize_bitmap)
    if (iova | size) & (min_pagesz - 1):
        return 0
    unmapped = 0
    # Keep iterating until we either unmap 'size' bytes (or more) or we hit
    # an area that isn't mapped.
    while unmapped < size:
        pgsize, count = iommu_pgsize(domain, iova, iova, size - unmapped)
        unmapped_page = await ops.unmap_pages(domain, iova, pgsize, count, gather)
        if not unmapped_page:
            break
        iova += unmapped_page
        unmapped += unmapped_page
    return unmapped


async def iommu_iotlb_sync(domain, gather):
    """``ops->iotlb_sync``; then the gathered table pages are freed (the walker
    may hold their address until the sync, never after), and the unmaps the
    gather held are over (``unmap_end``: until here a stale translation of
    them is legal)."""
    ops = domain.owner
    if ops is not None and ops.iotlb_sync is not None:
        await ops.iotlb_sync(domain, gather)
    iommu_put_pages_list(gather.freelist)
    unmaps_done(gather.pending)
    iommu_iotlb_gather_init(gather)


def unmaps_done(pending):
    """``unmap_end`` of every unmap in ``pending`` (a gather's, or a flush
    queue entry's): their invalidation is complete."""
    for info in pending:
        iommu_event("unmap_end", info)


async def iommu_flush_iotlb_all(domain):
    ops = domain.owner
    if ops is not None and ops.flush_iotlb_all is not None:
        await ops.flush_iotlb_all(domain)


async def iommu_unmap_fast(domain, iova, size, gather):
    """``iommu_unmap_fast``: unmap, leave the invalidation to the caller's
    ``iommu_iotlb_sync(domain, gather)`` (VFIO batches up to 512 unmaps per
    sync; the DMA API's flush queue defers it to a timer).

    Emits ``unmap_begin`` now; its ``unmap_end`` (``{domain, iova, size,
    unmapped}``) comes when the gather is synced: until then the PTE may be
    gone while the IOTLB still translates, which is legal.
    """
    info = {"domain": domain, "iova": iova, "size": size, "unmapped": None}
    iommu_event("unmap_begin", info)
    ret = await __iommu_unmap(domain, iova, size, gather)
    info["unmapped"] = ret
    gather.pending.append(info)
    return ret


async def iommu_unmap(domain, iova, size):
    """Unmap up to ``size`` bytes at ``iova``; the bytes unmapped.

    ``iommu_unmap_fast`` and one ``iommu_iotlb_sync``: ``unmap_end`` comes
    after the sync.
    """
    gather = IommuIotlbGather()
    ret = await iommu_unmap_fast(domain, iova, size, gather)
    await iommu_iotlb_sync(domain, gather)
    return ret


async def iommu_iova_to_phys(domain, iova):
    """The physical address ``iova`` translates to in ``domain``, 0 if none.

    Emits ``iova_to_phys_begin`` and ``iova_to_phys_end`` with one dict
    ``{domain, iova, phys}`` (``phys`` None until the end, then the answer).
    """
    info = {"domain": domain, "iova": iova, "phys": None}
    iommu_event("iova_to_phys_begin", info)
    if domain.type == IOMMU_DOMAIN_IDENTITY:
        phys = iova
    elif domain.type == IOMMU_DOMAIN_BLOCKED:
        phys = 0
    else:
        phys = await domain.owner.iova_to_phys(domain, iova)
    info["phys"] = phys
    iommu_event("iova_to_phys_end", info)
    return phys
