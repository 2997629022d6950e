"""The streaming DMA API over non-coherent memory (include/linux/dma-mapping.h).

Page tables live in ordinary memory that the IOMMU walker reads by DMA.  On
the non-coherent ARM boards these IOMMUs sit on, a CPU store lands in the
CPU's cache; the device sees it only once the line is cleaned
(``dma_sync_single_for_device``, or the clean that ``dma_map_single`` does).
So every :class:`~model.kernel.mm.Page` has two views:

* ``page.words`` - what the CPU reads and writes (:func:`table_read`,
  :func:`table_write`: the one way to store, it keeps ``page.written``);
* the device view - what the walker reads (:func:`device_read`).  It is kept
  lazily in ``page.dev``: ``None`` while both views agree; the first CPU
  write that is not yet synced copies the old words there.

A dma address is the physical address (no swiotlb, no bounce buffers): a
page above the device's mask is handed out anyway, and the ``dma_map``
event (hook ``iommu``) carries the mask so that an oracle can flag it.

With failure injection on (``kernel.inject_failures``), every
``dma_map_single`` a scheduled CPU makes is a failure point
(:func:`model.kernel.mm.should_fail`): a failed map returns
``DMA_MAPPING_ERROR`` (``dma_mapping_error()`` is true), maps nothing,
cleans nothing and emits no ``dma_map`` event, as a full swiotlb or an
exhausted IOVA space does.
"""

from __future__ import annotations

from operator import itemgetter

from .cpu import current
from .mm import PAGE_SIZE, WORDS_PER_PAGE, should_fail

__all__ = [
    "DMA_BIDIRECTIONAL",
    "DMA_TO_DEVICE",
    "DMA_FROM_DEVICE",
    "DMA_BIT_MASK",
    "DMA_MAPPING_ERROR",
    "dma_map_single",
    "dma_unmap_single",
    "dma_mapping_error",
    "dma_sync_single_for_device",
    "dma_set_mask_and_coherent",
    "table_read",
    "table_write",
    "table_write64",
    "table_entries",
    "table_snapshot",
    "device_read",
]

DMA_BIDIRECTIONAL = 0
DMA_TO_DEVICE = 1
DMA_FROM_DEVICE = 2
DMA_MAPPING_ERROR = ~0 & ((1 << 64) - 1)


def DMA_BIT_MASK(n):
    return (1 << n) - 1


def _emit(cpu, what, info):
    for fn in cpu.kernel.hooks.iommu:
        fn(cpu, what, info)


def dma_set_mask_and_coherent(dev, mask):
    dev.dma_mask = mask
    return 0


def _sync(page, first, count):
    """Clean ``count`` words from ``first``: the device view catches up."""
    dev = page.dev
    if dev is None:
        return
    words = page.words
    end = min(first + count, WORDS_PER_PAGE)
    dev[first:end] = words[first:end]
    # the views differ only where a CPU stored (Page.written): compare those, not 1024 words
    differ = itemgetter(*page.written) if page.written else None
    if differ is None or differ(dev) == differ(words):
        page.dev = None


async def dma_map_single(dev, page, size, dir):
    """Map ``page`` for ``dev``: the dma address (its physical address).

    For ``DMA_TO_DEVICE`` the range is cleaned, as the arch code does, so
    whatever the CPU wrote before the map is visible to the device.
    Emits ``iommu("dma_map", {dev, page, addr, size, mask})``.  An injected
    failure returns ``DMA_MAPPING_ERROR`` and does none of that.
    """
    cpu = current()
    await cpu.sched.point(cpu)
    if cpu.kernel.inject_failures:
        if should_fail(cpu, f"dma_map_single({dev}, {page.tag or 'page'}, {size})", "DMA_MAPPING_ERROR"):
            return DMA_MAPPING_ERROR
    addr = page.phys
    _emit(cpu, "dma_map", {"dev": dev, "page": page, "addr": addr, "size": size, "mask": dev.dma_mask})
    if dir != DMA_FROM_DEVICE:
        _sync(page, 0, (size + 3) // 4)
    return addr


def dma_mapping_error(dev, addr):
    """True for the address a failed ``dma_map_single`` returns."""
    return addr == DMA_MAPPING_ERROR


async def dma_unmap_single(dev, addr, size, dir):
    """Emits ``iommu("dma_unmap", {dev, addr, size})``."""
    cpu = current()
    await cpu.sched.point(cpu)
    _emit(cpu, "dma_unmap", {"dev": dev, "addr": addr, "size": size})


async def dma_sync_single_for_device(dev, addr, size, dir):
    """``dma_sync_single_for_device(dev, dma_handle, size, dir)``.

    ``addr`` is a dma address anywhere in a mapped page (a PTE's address,
    say); the ``size`` bytes from there become visible to the device.  A
    range that crosses into the next page syncs that page too.
    """
    cpu = current()
    await cpu.sched.point(cpu)
    mm = cpu.kernel.mm
    end = addr + size
    while addr < end:
        page = mm.lookup(addr)
        nxt = min(end, (addr & ~(PAGE_SIZE - 1)) + PAGE_SIZE)
        if page is not None:
            first = (addr & (PAGE_SIZE - 1)) >> 2
            _sync(page, first, (nxt - addr + 3) >> 2)
        addr = nxt


def _check_live(cpu, page, what):
    if page.freed:
        cpu.kernel.report(
            "invalid-access",
            f"{what} of freed table page {page!r}",
            stacks={repr(cpu): _stack()},
            cpu=cpu,
        )


async def table_write(page, index, value):
    """A CPU store to word ``index`` of a table page (``pte_addr[i] = v``)."""
    cpu = current()
    await cpu.sched.point(cpu)
    _check_live(cpu, page, "write")
    for fn in cpu.kernel.hooks.table:
        fn(cpu, page, index, True)
    if page.dev is None:
        page.dev = page.words[:]
    page.words[index] = value & 0xFFFFFFFF
    page.written.add(index)


async def table_write64(page, index, value):
    """A CPU store of a 64-bit entry (``u64 *pta; pta[i] = v``): words 2i, 2i+1."""
    cpu = current()
    await cpu.sched.point(cpu)
    _check_live(cpu, page, "write")
    for fn in cpu.kernel.hooks.table:
        fn(cpu, page, 2 * index, True)
    if page.dev is None:
        page.dev = page.words[:]
    page.words[2 * index] = value & 0xFFFFFFFF
    page.words[2 * index + 1] = (value >> 32) & 0xFFFFFFFF
    page.written.update((2 * index, 2 * index + 1))


async def table_read(page, index):
    """A CPU load of word ``index`` of a table page (the CPU view)."""
    cpu = current()
    await cpu.sched.point(cpu)
    _check_live(cpu, page, "read")
    for fn in cpu.kernel.hooks.table:
        fn(cpu, page, index, False)
    return page.words[index]


async def table_entries(page):
    """The non-zero words of a table page in index order, as one CPU read
    (one preemption point): a loop over a whole table for its entries that
    skips the empty ones, as the C's ``if (!valid) continue`` does, without
    reading 1024 words (``Page.entries``)."""
    cpu = current()
    await cpu.sched.point(cpu)
    _check_live(cpu, page, "read")
    return page.entries(page.words)


async def table_snapshot(page):
    """All 1024 words of a table page, as one CPU read (one preemption point).

    For loops over a whole table that no one else may touch at that moment
    (``domain_free`` scanning its directory): 1024 points would only dilute
    the search.
    """
    cpu = current()
    await cpu.sched.point(cpu)
    _check_live(cpu, page, "read")
    return list(page.words)


def device_read(page, index):
    """What the device (the IOMMU walker) reads at word ``index``: not a point."""
    dev = page.dev
    return (dev if dev is not None else page.words)[index]


def _stack():
    from .stacks import model_stack

    return model_stack(3)
