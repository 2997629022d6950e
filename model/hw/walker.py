"""The two-level table walker: DTE -> PTE, 1024 x 1024 x 4 KiB.

It reads table memory through the DEVICE view (what was synced), never the
CPU's, and emits ``walk(hw, page)`` for every table page it reads (the page
object found at that physical address, which may be a freed one: the
oracle decides).  Memory where no page was ever allocated reads as zero.
Addresses are 32-bit: a table above 4 GiB cannot be named in a register or
a DTE, so its upper bits are lost, as on the real bus.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.kernel.dma import device_read

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

__all__ = ["Walk", "walk"]


@dataclass(eq=False)
class Walk:
    """What one walk found: a page address and its permissions, or nothing."""

    ok: bool = False
    paddr: int | None = None  # page-aligned
    readable: bool = False
    writable: bool = False
    base: object = None  # the page the base register points at (rk: DT, vsi: PTA)
    dt: object = None
    pt: object = None


def _read_word(hw, addr):
    """One 32-bit device read of table memory: ``(page, word)``."""
    addr &= 0xFFFFFFFF
    page = hw.kernel.mm.lookup(addr)
    if page is None:
        return None, 0
    for fn in hw.kernel.hooks.walk:
        fn(hw, page)
    return page, device_read(page, (addr & 0xFFF) >> 2)


def _walk_rk(hw, iova, w):
    dt_addr = hw.base & RK_DTE_PT_ADDRESS_MASK
    w.dt, dte = _read_word(hw, dt_addr + 4 * ((iova & IOVA_DTE_MASK) >> IOVA_DTE_SHIFT))
    w.base = w.dt
    if not dte & RK_DTE_PT_VALID:
        return w
    w.pt, pte = _read_word(hw, (dte & RK_DTE_PT_ADDRESS_MASK) + 4 * ((iova & IOVA_PTE_MASK) >> IOVA_PTE_SHIFT))
    if not pte & RK_PTE_PAGE_VALID:
        return w
    w.ok = True
    w.paddr = pte & RK_PTE_PAGE_ADDRESS_MASK
    w.readable = bool(pte & RK_PTE_PAGE_READABLE)
    w.writable = bool(pte & RK_PTE_PAGE_WRITABLE)
    return w


def _walk_vsi(hw, iova, w):
    # PTA entry 0 is a u64; the DT address is in its low word (GENMASK(31, 10)).
    w.base, pta0 = _read_word(hw, hw.base)
    w.dt, dte = _read_word(hw, (pta0 & VSI_MASTER_TLB_MASK) + 4 * ((iova & IOVA_DTE_MASK) >> IOVA_DTE_SHIFT))
    if not dte & VSI_DTE_PT_VALID:
        return w
    w.pt, pte = _read_word(hw, (dte & VSI_DTE_PT_ADDRESS_MASK) + 4 * ((iova & IOVA_PTE_MASK) >> IOVA_PTE_SHIFT))
    if not pte & VSI_PTE_PAGE_VALID:
        return w
    w.ok = True
    w.paddr = ((pte << VSI_PAGE_DESC_HI_SHIFT) & VSI_PAGE_DESC_HI_MASK) | (pte & VSI_PAGE_DESC_LO_MASK)
    w.readable = True  # the VSI format has no READABLE bit
    w.writable = bool(pte & VSI_PTE_PAGE_WRITABLE)
    return w


def walk(hw, iova):
    """Translate ``iova`` through the tables ``hw.base`` points at."""
    w = Walk()
    (_walk_vsi if hw.layout == "vsi" else _walk_rk)(hw, iova & ~IOVA_PAGE_MASK & 0xFFFFFFFF, w)
    return w


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
    words = dt.dev if dt.dev is not None else dt.words
    for dte in words:
        if dte & valid:
            pt = mm.lookup(dte & pt_mask)
            if pt is not None:
                pages.append(pt)
    return pages
