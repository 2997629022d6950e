"""Domains (``struct iommu_domain``), the iotlb gather and iommu-pages.h.

A driver's domain embeds ``struct iommu_domain``: here its class subclasses
:class:`IommuDomain`, and ``to_xxx_domain()`` is :func:`container_of`.  Handed
something that is not one (the static identity domain, say) it gives an
:class:`OutOfBounds` view whose field accesses are reported where they
happen (the ``kasan`` checker); a domain already freed is reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model.kernel.core import ModelBug, current, model_stack
from model.kernel.locks import SpinLock
from model.kernel.gfp import __GFP_ZERO
from model.kernel.mm import alloc_pages, free_pages

__all__ = [
    "__IOMMU_DOMAIN_PAGING",
    "__IOMMU_DOMAIN_DMA_API",
    "__IOMMU_DOMAIN_PT",
    "IOMMU_DOMAIN_BLOCKED",
    "IOMMU_DOMAIN_IDENTITY",
    "IOMMU_DOMAIN_UNMANAGED",
    "IOMMU_DOMAIN_DMA",
    "IOMMU_READ",
    "IOMMU_WRITE",
    "IOMMU_CACHE",
    "IOMMU_FAULT_READ",
    "IOMMU_FAULT_WRITE",
    "SZ_4K",
    "Geometry",
    "IommuDomain",
    "IommuIotlbGather",
    "container_of",
    "domain_type_name",
    "iommu_alloc_pages_sz",
    "iommu_free_pages",
    "iommu_put_pages_list",
    "iommu_pages_list_add",
    "iommu_iotlb_gather_init",
    "iommu_iotlb_gather_add_page",
]

# include/linux/iommu.h
__IOMMU_DOMAIN_PAGING = 1 << 0  # Support for iommu_map/unmap
__IOMMU_DOMAIN_DMA_API = 1 << 1  # Domain for use in DMA-API implementation
__IOMMU_DOMAIN_PT = 1 << 2  # Domain is identity mapped
IOMMU_DOMAIN_BLOCKED = 0
IOMMU_DOMAIN_IDENTITY = __IOMMU_DOMAIN_PT
IOMMU_DOMAIN_UNMANAGED = __IOMMU_DOMAIN_PAGING
IOMMU_DOMAIN_DMA = __IOMMU_DOMAIN_PAGING | __IOMMU_DOMAIN_DMA_API

IOMMU_READ = 1 << 0
IOMMU_WRITE = 1 << 1
IOMMU_CACHE = 1 << 2

IOMMU_FAULT_READ = 0x0
IOMMU_FAULT_WRITE = 0x1

SZ_4K = 0x1000

_TYPE_NAMES = {
    IOMMU_DOMAIN_BLOCKED: "blocked",
    IOMMU_DOMAIN_IDENTITY: "identity",
    IOMMU_DOMAIN_UNMANAGED: "unmanaged",
    IOMMU_DOMAIN_DMA: "dma",
}


def domain_type_name(t):
    return _TYPE_NAMES.get(t, hex(t))


@dataclass
class Geometry:
    aperture_start: int = 0
    aperture_end: int = 0
    force_aperture: bool = False


class IommuDomain:
    """``struct iommu_domain``.

    ``owner`` is the driver (``domain->owner``, set by the core when it
    allocates the domain); ``mem`` the kmalloc object the driver allocated
    it in, if any (``freed`` follows it).  Drivers override
    :meth:`table_pages` so that oracles can tell whose tables the walker read.
    """

    def __init__(self, type=IOMMU_DOMAIN_UNMANAGED, name=None):
        self.type = type
        self.owner = None
        self.pgsize_bitmap = 0
        self.geometry = Geometry()
        self.mem = None
        self.name = name
        self.handler = None  # iommu_set_fault_handler()
        self.handler_token = None
        self.dma_cookie = None  # a DMA domain's IOVA allocator and flush queue (model.iommu.dma_iommu)

    @property
    def freed(self):
        return self.mem is not None and self.mem.freed

    def table_pages(self):
        """The page-table pages of this domain (none for identity/blocked)."""
        return ()

    def __repr__(self):
        return self.name or f"{domain_type_name(self.type)}-domain"


def container_of(ptr, cls):
    """``container_of(ptr, struct cls, domain)``.

    Pointer arithmetic only, as in C: nothing is checked here.  A domain
    already freed is reported as KASAN would on the first access the
    caller makes through it (here: at once; the driver's next step reads
    it).  An object that is not embedded in a ``cls`` (a bare static
    ``struct iommu_domain``, say) gives an :class:`OutOfBounds` view: the
    memory in front of it, whose fields are reported where they are
    dereferenced (hook ``oob``, the ``kasan`` checker), and which otherwise
    behave as that memory does on a kernel without KASAN.
    """
    if not isinstance(ptr, cls):
        return OutOfBounds(ptr, cls)
    if getattr(ptr, "freed", False):
        cpu = current()
        cpu.kernel.report(
            "invalid-access",
            f"use after free: {ptr!r} was freed",
            stacks={repr(cpu): model_stack(2)},
            cpu=cpu,
        )
    return ptr


class OutOfBounds:
    """``container_of()`` of an object that is not embedded in ``cls``.

    A field read through it (``vsi_domain->lock``) is an access outside
    any object: the ``oob`` hook fires at that dereference, with the
    caller's stack (a ``global-out-of-bounds`` for static memory).  Without
    an observer that stops the run, the access goes to what lies there: a
    spinlock field is one lock word in that memory, the same for every
    user of the view (one per object and field in a run); any other field
    is beyond what the model can stand in for (ModelBug).
    """

    __slots__ = ("ptr", "cls")

    def __init__(self, ptr, cls):
        self.ptr = ptr
        self.cls = cls

    def __getattr__(self, field):
        cpu = current()
        what = f"container_of({self.ptr!r}, {self.cls.__name__})->{field}"
        for fn in cpu.kernel.hooks.oob:
            fn(cpu, self, field, what)
        if not field.endswith("lock"):
            raise ModelBug(f"{what}: the model has no stand-in for this field of memory outside any object")
        statics = cpu.kernel.statics
        key = (self.ptr, self.cls, field)
        lock = statics.get(key)
        if lock is None:
            lock = statics[key] = SpinLock(f"to_{self.cls.__name__}({self.ptr!r})->{field}")
        return lock

    def __repr__(self):
        return f"container_of({self.ptr!r}, {self.cls.__name__})"


@dataclass(eq=False)
class IommuIotlbGather:
    """``struct iommu_iotlb_gather``: what an unmap leaves for ``iotlb_sync``."""

    start: int = (1 << 64) - 1
    end: int = 0
    pgsize: int = 0
    freelist: list = field(default_factory=list)  # table pages to free after the sync
    queued: bool = False
    # model only: the unmaps (``unmap_begin`` infos) this gather holds until
    # the sync, whose ``unmap_end`` the sync (or the flush queue) emits
    pending: list = field(default_factory=list)


def iommu_iotlb_gather_init(gather):
    gather.start, gather.end, gather.pgsize = (1 << 64) - 1, 0, 0
    gather.freelist = []
    gather.queued = False
    gather.pending = []


def iommu_iotlb_gather_add_page(domain, gather, iova, size):
    end = iova + size - 1
    if gather.pgsize and gather.pgsize != size:
        pass  # the C syncs early here; the model keeps one range
    gather.pgsize = size
    gather.start = min(gather.start, iova)
    gather.end = max(gather.end, end)


async def iommu_alloc_pages_sz(gfp, size, tag="iommu-pages"):
    """``iommu_alloc_pages_sz``: a zeroed table page (4 KiB only), or None."""
    if size != SZ_4K:
        raise ValueError("only 4 KiB table pages are modelled")
    return await alloc_pages(gfp | __GFP_ZERO, tag=tag)


def iommu_free_pages(page):
    """``iommu_free_pages``: atomic-safe."""
    free_pages(page)


def iommu_pages_list_add(pages, page):
    """``iommu_pages_list_add``: ``page`` is freed with the list (``iommu_put_pages_list``)."""
    pages.append(page)


def iommu_put_pages_list(pages):
    for page in pages:
        free_pages(page)
    pages.clear()
