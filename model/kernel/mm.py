"""Page allocator over simulated physical memory (mm/page_alloc.c, slab).

Two zones, as on a 64-bit arm board with more than 4 GiB: ``DMA32`` (below
4 GiB) and ``Normal`` (above).  Like the kernel's zonelist, an allocation
without ``__GFP_DMA32`` is served from ``Normal`` first, so a table page
allocated without it lands where a 32-bit walker cannot reach.  Pages are
handed out lowest-pfn-first and freed pfns are reused, so a freed table page
gets a new owner as it would in a real machine.

Each page holds 1024 32-bit words: enough for DTE/PTE tables and DMA data.

Failure injection (the kernel's fault injection as ``fail_nth`` arms it:
``failslab``, ``fail_page_alloc``): with ``kernel.inject_failures`` set,
every ``alloc_pages`` and ``kmalloc`` a scheduled CPU makes is a *failure
point* (:func:`should_fail`): the engine decides whether the call returns
NULL (``None``) instead of memory.  ``__GFP_NOFAIL`` allocations never fail
(``should_fail_alloc_page`` and ``should_failslab`` refuse them), and
neither does anything at boot or teardown (they run with no scheduler).
"""

from __future__ import annotations

from array import array

from .cpu import NULL_SCHED, current
from .gfp import (
    __GFP_ACCOUNT,
    __GFP_DMA,
    __GFP_DMA32,
    __GFP_NOFAIL,
    __GFP_ZERO,
    gfp_name,
    gfpflags_allow_blocking,
)

__all__ = [
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "Page",
    "KObj",
    "PageAllocator",
    "alloc_pages",
    "free_pages",
    "kmalloc",
    "kzalloc",
    "kfree",
    "page_to_phys",
    "phys_to_page",
    "phys_to_virt",
    "should_fail",
    "SZ_4G",
]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
SZ_4G = 1 << 32
WORDS_PER_PAGE = PAGE_SIZE // 4

# Module-level aliases: inside a class body ``__GFP_X`` would be name-mangled.
_GFP_ACCOUNT = __GFP_ACCOUNT
_GFP_NOFAIL = __GFP_NOFAIL
_GFP_ZONE_DMA32 = __GFP_DMA32 | __GFP_DMA

_DMA32_FIRST_PFN = 0x1000  # 16 MiB: leave room for the "kernel image"
_NORMAL_FIRST_PFN = SZ_4G >> PAGE_SHIFT


_ZERO_WORDS = array("I", [0]) * WORDS_PER_PAGE


def _zeroed():
    """A page's 1024 words, zero: an array of 32-bit words (not a list: the
    garbage collector never walks it, a copy is one memcpy)."""
    return _ZERO_WORDS[:]


def _sparse(words):
    return tuple((i, w) for i, w in enumerate(words) if w)


class Page:
    """``struct page`` (order 0 only: the drivers modelled use 4 KiB tables)."""

    __slots__ = ("pfn", "gfp", "words", "freed", "owner", "tag", "dev", "written")

    def __init__(self, pfn, gfp, owner, tag):
        self.pfn = pfn
        self.gfp = gfp
        self.words = _zeroed()
        self.freed = False
        self.owner = owner  # CPU id that allocated it (or None)
        self.tag = tag  # what the allocation was for, for reports
        self.dev = None  # device view of non-coherent memory; None = in sync (model.kernel.dma)
        # Every word index a CPU ever stored to (model.kernel.dma.table_write):
        # either view holds a non-zero word only there, so a scan of a whole
        # table for its entries (model.hw.walker) need not read 1024 words.
        self.written = set()

    # Pickled (a booted machine's image, stress.bootimage), a page keeps its
    # non-zero words only: a table page is 1024 mostly empty entries.
    def __getstate__(self):
        return (self.pfn, self.gfp, _sparse(self.words), self.freed, self.owner, self.tag, self.dev, self.written)

    def __setstate__(self, state):
        self.pfn, self.gfp, words, self.freed, self.owner, self.tag, self.dev, self.written = state
        self.words = _zeroed()
        for i, w in words:
            self.words[i] = w

    def entries(self, words):
        """The non-zero words of ``words`` (this page's CPU or device view), in
        index order: only a word a CPU stored to can be one (``written``)."""
        return [w for w in map(words.__getitem__, sorted(self.written)) if w]

    @property
    def phys(self):
        return self.pfn << PAGE_SHIFT

    @property
    def accounted(self):
        return bool(self.gfp & _GFP_ACCOUNT)

    def __repr__(self):
        return f"page(pfn={self.pfn:#x} {self.tag or ''} {gfp_name(self.gfp)})"


class KObj:
    """A kmalloc object; ``obj.value`` holds whatever the model stores in it."""

    __slots__ = ("size", "gfp", "freed", "owner", "tag", "value")

    def __init__(self, size, gfp, owner, tag, value=None):
        self.size = size
        self.gfp = gfp
        self.freed = False
        self.owner = owner
        self.tag = tag
        self.value = value

    @property
    def accounted(self):
        return bool(self.gfp & _GFP_ACCOUNT)

    def __repr__(self):
        return f"kmalloc({self.size}, {gfp_name(self.gfp)}) {self.tag or ''}".rstrip()


class PageAllocator:
    """Free lists per zone and the table of live allocations."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.pages = {}  # pfn -> live Page
        self.freed = {}  # pfn -> last freed Page (for use-after-free reports)
        self.objects = []  # live KObj, in allocation order
        self._free = {"DMA32": [], "Normal": []}
        self._next = {"DMA32": _DMA32_FIRST_PFN, "Normal": _NORMAL_FIRST_PFN}
        self.total_allocs = 0

    def _take_pfn(self, zone):
        free = self._free[zone]
        if free:
            free.sort(reverse=True)
            return free.pop()
        pfn = self._next[zone]
        self._next[zone] = pfn + 1
        return pfn

    def take(self, gfp, cpu_id=None, tag=None):
        zone = "DMA32" if gfp & _GFP_ZONE_DMA32 else "Normal"
        page = Page(self._take_pfn(zone), gfp, cpu_id, tag)
        self.pages[page.pfn] = page
        self.freed.pop(page.pfn, None)
        self.total_allocs += 1
        return page

    def give_back(self, page):
        page.freed = True
        del self.pages[page.pfn]
        self.freed[page.pfn] = page
        self._free["DMA32" if page.pfn < _NORMAL_FIRST_PFN else "Normal"].append(page.pfn)

    def lookup(self, phys):
        """The live page at ``phys``, or the freed one that was there, or None."""
        pfn = phys >> PAGE_SHIFT
        return self.pages.get(pfn) or self.freed.get(pfn)

    def live(self):
        return sorted(self.pages.values(), key=lambda p: p.pfn) + [
            o for o in self.objects if not o.freed
        ]


def should_fail(cpu, call, result, gfp=0):
    """A failure point: True when the engine makes ``call`` fail (fail_nth).

    Only with ``kernel.inject_failures`` (callers test it first: a search
    without injection pays one attribute load), never for ``__GFP_NOFAIL``,
    never without a scheduler (boot, teardown, plain model tests).  ``call``
    (``alloc_pages(GFP_ATOMIC|__GFP_DMA32|__GFP_ZERO)``) and ``result``
    (``NULL``) name it in reports.
    """
    if gfp & _GFP_NOFAIL:
        return False
    sched = cpu.sched
    if sched is NULL_SCHED:
        return False
    return sched.fail_point(cpu, call, result)


async def _allocator_entry(cpu, gfp, what):
    # might_alloc(gfp): fs_reclaim annotation + might_sleep_if(blocking)
    if gfpflags_allow_blocking(gfp):
        for fn in cpu.kernel.hooks.might_sleep:
            fn(cpu, f"{what}({gfp_name(gfp)})")
    await cpu.sched.point(cpu)


async def alloc_pages(gfp, order=0, tag=None):
    """Order-0 ``alloc_pages``; zeroed when ``__GFP_ZERO`` (always zero here anyway).

    None (NULL) when failure injection fails it (:func:`should_fail`)."""
    if order != 0:
        raise ValueError("only order-0 pages are modelled")
    cpu = current()
    await _allocator_entry(cpu, gfp, "alloc_pages")
    if cpu.kernel.inject_failures and should_fail(cpu, f"alloc_pages({gfp_name(gfp)})", "NULL", gfp):
        return None
    page = cpu.kernel.mm.take(gfp, cpu.id, tag)
    for fn in cpu.kernel.hooks.alloc:
        fn(cpu, page)
    return page


def free_pages(page):
    """``__free_pages``: atomic-safe, never sleeps.  Double free is reported."""
    cpu = current()
    k = cpu.kernel
    if page is None:
        return
    if page.freed:
        k.report("invalid-access", f"double free of {page!r}", stacks={"free": _stack()})
        return
    for fn in k.hooks.free:
        fn(cpu, page)
    k.mm.give_back(page)


async def kmalloc(size, gfp, tag=None, value=None):
    """A ``KObj`` of ``size`` bytes, or None (NULL) when failure injection fails it."""
    cpu = current()
    await _allocator_entry(cpu, gfp, "kmalloc")
    if cpu.kernel.inject_failures and should_fail(cpu, f"kmalloc({size}, {gfp_name(gfp)})", "NULL", gfp):
        return None
    obj = KObj(size, gfp, cpu.id, tag, value)
    cpu.kernel.mm.objects.append(obj)
    cpu.kernel.mm.total_allocs += 1
    for fn in cpu.kernel.hooks.alloc:
        fn(cpu, obj)
    return obj


async def kzalloc(size, gfp, tag=None, value=None):
    return await kmalloc(size, gfp | __GFP_ZERO, tag, value)


def kfree(obj):
    cpu = current()
    k = cpu.kernel
    if obj is None:
        return
    if obj.freed:
        k.report("invalid-access", f"double kfree of {obj!r}", stacks={"free": _stack()})
        return
    for fn in k.hooks.free:
        fn(cpu, obj)
    obj.freed = True
    k.mm.objects.remove(obj)


def page_to_phys(page):
    return page.phys


def phys_to_page(kernel, phys):
    return kernel.mm.lookup(phys)


def phys_to_virt(phys):
    """``phys_to_virt`` of a table address: the page at ``phys`` (the freed one if it was freed)."""
    return current().kernel.mm.lookup(phys)


def _stack():
    from .stacks import model_stack

    return model_stack(3)
