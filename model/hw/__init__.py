"""Simulated VSI/Rockchip-style IOMMU hardware: registers, walker, TLB, DMA masters.

One :class:`IommuHw` per IOMMU instance, programmed with :func:`readl` and
:func:`writel` (preemption points; hook ``mmio``).  Its walker reads table
memory through the device view of :mod:`model.kernel.dma` (hook ``walk``);
a :class:`DmaMaster` issues accesses (hook ``dma`` with a
:class:`DmaAccess`).  Physical memory is ``kernel.mm``.
"""

from .clk import ClkBulk, clk_bulk_disable, clk_bulk_enable, clk_bulk_prepare, clk_bulk_unprepare, devm_clk_bulk_get_all
from .master import DmaAccess, DmaMaster
from .mmu import IommuHw, readl, writel
from . import regs as _regs
from .regs import *  # noqa: F401,F403  (register offsets and bits)
from .tlb import Tlb, TlbEntry
from .walker import Walk, reachable_pages, walk

__all__ = [
    "IommuHw",
    "readl",
    "writel",
    "DmaAccess",
    "DmaMaster",
    "ClkBulk",
    "clk_bulk_prepare",
    "clk_bulk_unprepare",
    "clk_bulk_enable",
    "clk_bulk_disable",
    "devm_clk_bulk_get_all",
    "Tlb",
    "TlbEntry",
    "Walk",
    "walk",
    "reachable_pages",
] + [n for n in dir(_regs) if n[:1].isupper()]
