"""Oracles: observers of what the hardware and the IOMMU core do.

Each is an observer like lockdep, attached by name (``--checkers``), with a
kind from the fixed vocabulary:

========================  =====================================================
``power``                 mmio-while-suspended
``dma32``                 dma32-violation
``pagetable``             pagetable-use-after-free
``leak``                  leak
``gfp``                   gfp-accounting-dropped
``isolation``             dma-isolation and stale-tlb
========================  =====================================================
"""

from .dma32 import Dma32Oracle
from .gfp import GfpAccountingOracle
from .isolation import IsolationOracle
from .leak import LeakOracle
from .pagetable import PageTableOracle
from .power import PowerOracle

ORACLES = {
    "power": PowerOracle,
    "dma32": Dma32Oracle,
    "pagetable": PageTableOracle,
    "leak": LeakOracle,
    "gfp": GfpAccountingOracle,
    "isolation": IsolationOracle,
}

__all__ = ["ORACLES"]
