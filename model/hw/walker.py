"""The two-level table walker: DTE -> PTE, 1024 x 1024 x 4 KiB.

It reads table memory through the DEVICE view (what was synced), never the
CPU's, and emits ``walk(hw, page, rests)`` for every table page it reads (the page
object found at that physical address, which may be a freed one: the
oracle decides).  Memory where no page was ever allocated reads as zero.
Addresses are 32-bit: a table above 4 GiB cannot be named in a register or
a DTE, so its upper bits are lost, as on the real bus.

The walk cache (:mod:`model.hw.tlb`, "The walk cache"): a table word the MMU
caches (VSI's PTA entry, a valid DTE) is taken from ``hw.tlb.walk`` when an
entry for its address is there, and the page it came from is not read (no
``walk`` hook for it).  A cached entry that no longer matches memory (the
word changed, or its page was freed or reused) is a *stale* use: the walk
records the level in ``Walk.cached`` and what the entry lived through in
``Walk.survived``, and everything the walker reads after it rests on them.

Hook ``walk(hw, page, rests)``: ``rests`` is what the read rests on, a tuple
of :data:`~model.hw.tlb.WALK_CACHE_LEVELS` and
:data:`~model.hw.tlb.RETENTION_EVENTS` (empty for a walk that any MMU would
make).  The walker also reports through it a freed page whose contents it
uses from its cache, or that a cached entry named and whose address is now
another page's.

:func:`hw_references` is every table page the hardware may still use, with
what that rests on: the pages reachable from the base register (what a walk
after a zap would read) and the pages live walk-cache entries name (an
entry is live when a walk from the base register would use it: its DT is
the one the walk reaches).  A TLB line is a final translation: the hardware
reads no table for a hit, so a TLB line alone keeps no table page in use;
the table pages of the walk that filled it stay in use through the walk
cache (which that walk filled and which is zapped with it), or not at all.
Whether the line itself may still be used is the isolation oracle's
question (stale-tlb).
"""

from __future__ import annotations

from dataclasses import dataclass

from model.kernel.dma import device_read

from .tlb import RETENTION_EVENTS, WALK_CACHE_LEVELS, WalkCacheEntry
from .regs import (
    IOVA_DTE_MASK,
    IOVA_DTE_SHIFT,
    IOVA_PAGE_MASK,
    IOVA_PTE_MASK,
    IOVA_PTE_SHIFT,
    RK_DTE_PT_ADDRESS_MASK,
    RK_DTE_PT_VALID,
    RK_PTE_PAGE_ADDRESS_MASK,
    RK_PTE_PAGE_READABLE,
    RK_PTE_PAGE_VALID,
    RK_PTE_PAGE_WRITABLE,
    VSI_DTE_PT_ADDRESS_MASK,
    VSI_DTE_PT_VALID,
    VSI_MASTER_TLB_MASK,
    VSI_PAGE_DESC_HI_MASK,
    VSI_PAGE_DESC_HI_SHIFT,
    VSI_PAGE_DESC_LO_MASK,
    VSI_PTE_PAGE_VALID,
    VSI_PTE_PAGE_WRITABLE,
)

__all__ = ["Walk", "walk", "reachable_pages", "hw_references", "rests_of"]


@dataclass(eq=False)
class Walk:
    """What one walk found: a page address and its permissions, or nothing.

    ``base``/``dt``/``pt`` are the table pages whose contents it used (read
    now, or cached from them earlier); ``cached`` the walk-cache levels whose
    stale entries it used and ``survived`` what those lived through."""

    ok: bool = False
    paddr: int | None = None  # page-aligned
    readable: bool = False
    writable: bool = False
    base: object = None  # the page the base register points at (rk: DT, vsi: PTA)
    dt: object = None
    pt: object = None
    cached: tuple = ()
    survived: tuple = ()

    def rests(self):
        return self.cached + self.survived

    def use_stale(self, e):
        if e.level not in self.cached:
            self.cached = tuple(l for l in WALK_CACHE_LEVELS if l in self.cached or l == e.level)
        if e.survived:
            self.survived = tuple(ev for ev in RETENTION_EVENTS if ev in self.survived or ev in e.survived)


def rests_of(*parts):
    """Merge what several things rest on, in canonical order (levels, then events)."""
    have = set()
    for p in parts:
        have.update(p)
    return tuple(x for x in WALK_CACHE_LEVELS + RETENTION_EVENTS if x in have)


def _entry_rests(e):
    return rests_of((e.level,), e.survived)


def _emit(hw, page, w):
    rests = w.rests()
    for fn in hw.kernel.hooks.walk:
        fn(hw, page, rests)


def _read_word(hw, addr, w, expect=None):
    """One 32-bit device read of table memory: ``(page, word)``.

    ``expect``: the page a cached entry named for this address; if it was
    freed and its address now holds another page, the walk uses freed table
    memory all the same (hook ``walk`` for it)."""
    addr &= 0xFFFFFFFF
    page = hw.kernel.mm.lookup(addr)
    if expect is not None and expect is not page and expect.freed:
        _emit(hw, expect, w)
    if page is None:
        return None, 0
    _emit(hw, page, w)
    return page, device_read(page, (addr & 0xFFF) >> 2)


def _read_entry(hw, level, addr, w, valid, mask, expect=None):
    """A table word the MMU may cache: ``(page, word, target)``, where ``target``
    is the page a cached entry named when it was filled (None when read now)."""
    addr &= 0xFFFFFFFF
    tlb = hw.tlb
    if level not in tlb.walk_levels:
        page, word = _read_word(hw, addr, w, expect)
        return page, word, None
    e = tlb.walk.get(addr)
    mm = hw.kernel.mm
    if e is not None:
        now = mm.lookup(addr)
        if now is not e.src or device_read(now, (addr & 0xFFF) >> 2) != e.value:
            w.use_stale(e)
        if e.src.freed:
            _emit(hw, e.src, w)  # its contents are used from the cache
        return e.src, e.value, e.target
    page, word = _read_word(hw, addr, w, expect)
    if page is not None and (valid is None or word & valid):
        tlb.cache_walk(WalkCacheEntry(level, addr, word, page, mm.lookup(word & mask)))
    return page, word, None


def _walk_rk(hw, iova, w):
    dt_addr = hw.base & RK_DTE_PT_ADDRESS_MASK
    w.dt, dte, pt_page = _read_entry(hw, "dte", dt_addr + 4 * ((iova & IOVA_DTE_MASK) >> IOVA_DTE_SHIFT), w, RK_DTE_PT_VALID, RK_DTE_PT_ADDRESS_MASK)
    w.base = w.dt
    if not dte & RK_DTE_PT_VALID:
        return w
    w.pt, pte = _read_word(hw, (dte & RK_DTE_PT_ADDRESS_MASK) + 4 * ((iova & IOVA_PTE_MASK) >> IOVA_PTE_SHIFT), w, pt_page)
    if not pte & RK_PTE_PAGE_VALID:
        return w
    w.ok = True
    w.paddr = pte & RK_PTE_PAGE_ADDRESS_MASK
    w.readable = bool(pte & RK_PTE_PAGE_READABLE)
    w.writable = bool(pte & RK_PTE_PAGE_WRITABLE)
    return w


def _walk_vsi(hw, iova, w):
    # PTA entry 0 is a u64; the DT address is in its low word (GENMASK(31, 10)).
    w.base, pta0, dt_page = _read_entry(hw, "pta", hw.base, w, None, VSI_MASTER_TLB_MASK)
    dte_addr = (pta0 & VSI_MASTER_TLB_MASK) + 4 * ((iova & IOVA_DTE_MASK) >> IOVA_DTE_SHIFT)
    w.dt, dte, pt_page = _read_entry(hw, "dte", dte_addr, w, VSI_DTE_PT_VALID, VSI_DTE_PT_ADDRESS_MASK, dt_page)
    if not dte & VSI_DTE_PT_VALID:
        return w
    w.pt, pte = _read_word(hw, (dte & VSI_DTE_PT_ADDRESS_MASK) + 4 * ((iova & IOVA_PTE_MASK) >> IOVA_PTE_SHIFT), w, pt_page)
    if not pte & VSI_PTE_PAGE_VALID:
        return w
    w.ok = True
    w.paddr = ((pte << VSI_PAGE_DESC_HI_SHIFT) & VSI_PAGE_DESC_HI_MASK) | (pte & VSI_PAGE_DESC_LO_MASK)
    w.readable = True  # the VSI format has no READABLE bit
    w.writable = bool(pte & VSI_PTE_PAGE_WRITABLE)
    return w


def walk(hw, iova):
    """Translate ``iova`` through the tables ``hw.base`` points at (and the walk cache)."""
    w = Walk()
    (_walk_vsi if hw.layout == "vsi" else _walk_rk)(hw, iova & ~IOVA_PAGE_MASK & 0xFFFFFFFF, w)
    return w


def _dev_entries(page):
    """The non-zero words of ``page``'s device view, in index order
    (``Page.entries``: the zeros of a 1024-entry table are not read)."""
    return page.entries(page.dev if page.dev is not None else page.words)


def _stale(mm, e):
    """Whether cached entry ``e`` no longer matches table memory."""
    now = mm.lookup(e.addr)
    return now is not e.src or device_read(now, (e.addr & 0xFFF) >> 2) != e.value


def hw_references(hw):
    """Every table page the hardware may use now: ``{page: rests}``.

    ``rests`` is empty for a page reachable from the base register through
    table memory (device view), else what its use rests on (the walk-cache
    levels and retention events of the stale entries on the way to it).
    Computed whatever the paging state: the caller decides whether the MMU
    translates."""
    mm = hw.kernel.mm
    refs = {}

    def add(page, rests):
        if page is not None:
            old = refs.get(page)
            if old is None or len(rests) < len(old):
                refs[page] = rests

    cache = hw.tlb.walk
    dts = []  # (DT address, what reaching it rests on)
    if hw.layout == "vsi":
        base = hw.base & 0xFFFFFFFF
        pta = mm.lookup(base)
        add(pta, ())
        if pta is not None:
            dts.append((device_read(pta, (base & 0xFFF) >> 2) & VSI_MASTER_TLB_MASK, ()))
        e = cache.get(base)
        if e is not None and e.level == "pta":
            dts.append((e.value & VSI_MASTER_TLB_MASK, _entry_rests(e) if _stale(mm, e) else ()))
        pt_mask, valid = VSI_DTE_PT_ADDRESS_MASK, VSI_DTE_PT_VALID
    else:
        dts.append((hw.base & RK_DTE_PT_ADDRESS_MASK, ()))
        pt_mask, valid = RK_DTE_PT_ADDRESS_MASK, RK_DTE_PT_VALID
    for dt_addr, r in dts:
        dt = mm.lookup(dt_addr)
        if dt is None:
            continue
        add(dt, r)
        for dte in _dev_entries(dt):  # what a walk after a zap reads
            if dte & valid:
                add(mm.lookup(dte & pt_mask), r)
        for e in cache.values():
            if e.level == "dte" and e.addr & ~0xFFF == dt_addr & ~0xFFF:
                add(mm.lookup(e.value & pt_mask), rests_of(r, _entry_rests(e)) if _stale(mm, e) else r)
    return refs


def base_page(hw):
    """The table page the base register names (VSI's PTA, rk's DT), or None."""
    mask = 0xFFFFFFFF if hw.layout == "vsi" else RK_DTE_PT_ADDRESS_MASK
    return hw.kernel.mm.lookup(hw.base & mask)


def reachable_pages(hw):
    """Every table page the walker could read now (device view), for oracles."""
    mm = hw.kernel.mm
    pages = []
    if hw.layout == "vsi":
        pta = mm.lookup(hw.base & 0xFFFFFFFF)
        if pta is None:
            return pages
        pages.append(pta)
        dt = mm.lookup(device_read(pta, (hw.base & 0xFFF) >> 2) & VSI_MASTER_TLB_MASK)
        pt_mask, valid = VSI_DTE_PT_ADDRESS_MASK, VSI_DTE_PT_VALID
    else:
        dt = mm.lookup(hw.base & RK_DTE_PT_ADDRESS_MASK)
        pt_mask, valid = RK_DTE_PT_ADDRESS_MASK, RK_DTE_PT_VALID
    if dt is None:
        return pages
    pages.append(dt)
    for dte in _dev_entries(dt):
        if dte & valid:
            pt = mm.lookup(dte & pt_mask)
            if pt is not None:
                pages.append(pt)
    return pages
