"""The DMA API on an IOMMU DMA domain (drivers/iommu/dma-iommu.c).

What a device driver's ``dma_map_single``/``dma_unmap_single`` do when its
device sits behind an IOMMU with a DMA default domain, from any context the
kernel allows them (task, BH-disabled, softirq, hard IRQ, under a spinlock
with interrupts off: network and storage drivers do all of these):

* map (``iommu_dma_map_phys`` -> ``__iommu_dma_map``): an IOVA from the
  domain's allocator (``alloc_iova_fast``: ``iova_rbtree_lock`` taken
  irqsave), then ``iommu_map(..., GFP_ATOMIC)``: the driver's map path must
  neither sleep nor allocate with blocking gfp in any of those contexts;
* unmap (``__iommu_dma_unmap``): ``iommu_unmap_fast`` into a gather, then
  either ``iommu_iotlb_sync`` and the IOVA freed (strict), or, when the
  domain has a flush queue (``IOMMU_DOMAIN_DMA_FQ``), the IOVA and the
  gather's freelist queued (``queue_iova``): they are released only after
  ``flush_iotlb_all``, by the queue's timer (``fq_flush_timeout``, softirq
  context) or when the queue is full.  Until then a stale IOTLB entry of the
  unmapped range is legal (``unmap_end`` comes with the flush).

The model keeps one allocator per cookie, lowest free address first (the
kernel's is top-down with per-CPU rcaches: which IOVA a map gets is not what
these checks are about), and one flush queue per cookie (the kernel's
per-CPU queues behave alike for one domain: entries are flushed together).
"""

from __future__ import annotations

from model.kernel import GFP_ATOMIC, SpinLock, current, spin_lock_irqsave, spin_unlock_irqrestore
from model.kernel.timer import TimerList, mod_timer, timer_delete_sync, timer_pending

from .domain import IOMMU_DOMAIN_IDENTITY, IOMMU_READ, IOMMU_WRITE, IommuIotlbGather, iommu_put_pages_list
from .mapping import iommu_flush_iotlb_all, iommu_iotlb_sync, iommu_map, iommu_unmap_fast, unmaps_done

__all__ = [
    "DMA_MAPPING_ERROR",
    "DMA_TO_DEVICE",
    "DMA_FROM_DEVICE",
    "DMA_BIDIRECTIONAL",
    "IOVA_DMA_BASE",
    "IOVA_DMA_END",
    "IOVA_FQ_SIZE",
    "IommuDmaCookie",
    "iommu_get_dma_cookie",
    "iommu_put_dma_cookie",
    "iommu_dma_map_phys",
    "iommu_dma_unmap_phys",
    "fq_flush_timeout",
]

DMA_MAPPING_ERROR = (1 << 64) - 1
DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE = 0, 1, 2

#: the IOVA window of DMA-API mappings: clear of the workload's own IOVAs
#: (model.workloads.IOVA_BASE) and its fault address
IOVA_DMA_BASE = 0xA0000000
IOVA_DMA_END = 0xC0000000
#: entries a flush queue holds before a map-side flush (IOVA_DEFAULT_FQ_SIZE is 256; small here)
IOVA_FQ_SIZE = 4


class IommuDmaCookie:
    """``struct iommu_dma_cookie`` of one DMA domain: the IOVA allocator
    (``iovad``) and, for a DMA-FQ domain, the flush queue."""

    def __init__(self, domain, fq):
        self.domain = domain
        self.iova_lock = SpinLock("iovad->iova_rbtree_lock")
        self.iovas = {}  # allocated IOVA -> size
        self.fq = [] if fq else None  # queued (iova, size, freelist, unmaps)
        self.fq_lock = SpinLock("fq->lock")
        self.fq_timer = TimerList("&cookie->fq_timer", self._fq_flush_timeout) if fq else None

    async def _fq_flush_timeout(self, timer):
        await fq_flush_timeout(self)

    def __repr__(self):
        return f"iommu_dma_cookie({self.domain!r})"


def iommu_get_dma_cookie(domain, fq=False):
    """``iommu_get_dma_cookie`` (+ ``iommu_dma_init_fq`` when ``fq``)."""
    domain.dma_cookie = IommuDmaCookie(domain, fq)
    return domain.dma_cookie


async def iommu_put_dma_cookie(domain):
    """``iommu_put_dma_cookie`` -> ``iommu_dma_free_fq``: the timer stopped,
    what the queue still holds released without a flush (the domain is
    detached from every device by now)."""
    cookie = getattr(domain, "dma_cookie", None)
    if cookie is None:
        return
    if cookie.fq is not None:
        await timer_delete_sync(cookie.fq_timer)
        entries = list(cookie.fq)
        cookie.fq.clear()
        await _fq_ring_free(cookie, entries)
    domain.dma_cookie = None


async def _alloc_iova(cookie, size):
    """``alloc_iova_fast``: the lowest free ``size`` bytes of the window, or 0."""
    flags = await spin_lock_irqsave(cookie.iova_lock)
    iova = IOVA_DMA_BASE
    taken = sorted(cookie.iovas.items())
    for start, sz in taken:
        if iova + size <= start:
            break
        iova = max(iova, start + sz)
    if iova + size > IOVA_DMA_END:
        iova = 0
    else:
        cookie.iovas[iova] = size
    await spin_unlock_irqrestore(cookie.iova_lock, flags)
    return iova


async def _free_iova(cookie, iova):
    """``free_iova_fast``."""
    flags = await spin_lock_irqsave(cookie.iova_lock)
    cookie.iovas.pop(iova, None)
    await spin_unlock_irqrestore(cookie.iova_lock, flags)


def _prot(dir):
    return {DMA_TO_DEVICE: IOMMU_READ, DMA_FROM_DEVICE: IOMMU_WRITE}.get(dir, IOMMU_READ | IOMMU_WRITE)


async def iommu_dma_map_phys(dev, phys, size, dir):
    """``iommu_dma_map_phys`` -> ``__iommu_dma_map``: the DMA address, or
    DMA_MAPPING_ERROR.  An identity default domain maps nothing (dma-direct)."""
    domain = dev.iommu_group.default_domain
    if domain.type == IOMMU_DOMAIN_IDENTITY:
        return phys
    cookie = domain.dma_cookie
    iova = await _alloc_iova(cookie, size)
    if not iova:
        return DMA_MAPPING_ERROR
    if await iommu_map(domain, iova, phys, size, _prot(dir), GFP_ATOMIC):
        await _free_iova(cookie, iova)
        return DMA_MAPPING_ERROR
    return iova


async def iommu_dma_unmap_phys(dev, dma_addr, size, dir):
    """``__iommu_dma_unmap``: unmap into a gather; strict: sync and free the
    IOVA; with a flush queue: queue the IOVA and the freelist (``queue_iova``)."""
    domain = dev.iommu_group.default_domain
    if domain.type == IOMMU_DOMAIN_IDENTITY:
        return
    cookie = domain.dma_cookie
    gather = IommuIotlbGather()
    gather.queued = cookie.fq is not None
    unmapped = await iommu_unmap_fast(domain, dma_addr, size, gather)
    if unmapped != size:
        current().kernel.warn(f"__iommu_dma_unmap({dma_addr:#x}): unmapped {unmapped} of {size} bytes")
    if not gather.queued:
        await iommu_iotlb_sync(domain, gather)
        await _free_iova(cookie, dma_addr)
    else:
        await queue_iova(cookie, dma_addr, size, gather)


async def queue_iova(cookie, iova, size, gather):
    """``queue_iova``: the IOVA, the table pages and the unmaps wait for the
    next flush; a full queue is flushed now (``fq_ring_full``), and the
    timer is armed for the rest."""
    flags = await spin_lock_irqsave(cookie.fq_lock)
    if len(cookie.fq) >= IOVA_FQ_SIZE:
        await _fq_flush(cookie)
    cookie.fq.append((iova, size, list(gather.freelist), list(gather.pending)))
    gather.freelist.clear()
    gather.pending.clear()
    await spin_unlock_irqrestore(cookie.fq_lock, flags)
    if not timer_pending(cookie.fq_timer):  # !atomic_xchg(&cookie->fq_timer_on, 1)
        await mod_timer(cookie.fq_timer, 1)


async def _fq_flush(cookie):
    """``fq_flush_iotlb`` + ``fq_ring_free_locked`` (caller holds the queue's lock)."""
    entries = list(cookie.fq)
    cookie.fq.clear()
    await iommu_flush_iotlb_all(cookie.domain)
    await _fq_ring_free(cookie, entries)


async def _fq_ring_free(cookie, entries):
    """Each flushed entry: its table pages freed, its unmaps over, its IOVA free."""
    for iova, _size, freelist, unmaps in entries:
        iommu_put_pages_list(freelist)
        unmaps_done(unmaps)
        await _free_iova(cookie, iova)


async def fq_flush_timeout(cookie):
    """``fq_flush_timeout`` (the queue's timer, softirq context): flush, then
    free what was queued before the flush began (the C's flush counters)."""
    flags = await spin_lock_irqsave(cookie.fq_lock)
    entries = list(cookie.fq)
    cookie.fq.clear()
    await spin_unlock_irqrestore(cookie.fq_lock, flags)
    if entries:
        await iommu_flush_iotlb_all(cookie.domain)
        await _fq_ring_free(cookie, entries)
