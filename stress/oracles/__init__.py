"""Oracles: observers of what the hardware and the IOMMU core do.

Each is an observer like lockdep, attached by name (``--checkers``), with a
kind from the fixed vocabulary:

========================  =====================================================
``power``                 mmio-while-suspended
``dma32``                 dma32-violation
``pagetable``             pagetable-use-after-free
``leak``                  leak
``rpm-usage``             leak (a runtime-PM reference never dropped)
``gfp``                   gfp-accounting-dropped
``isolation``             dma-isolation and stale-tlb
``kasan``                 invalid-access (a field read outside any object)
``iova-to-phys``          wrong-translation (``iommu_iova_to_phys`` of a live mapping)
========================  =====================================================
"""

from .dma32 import Dma32Oracle
from .gfp import GfpAccountingOracle
from .iova_to_phys import IovaToPhysOracle
from .isolation import IsolationOracle
from .kasan import KasanChecker
from .leak import LeakOracle
from .pagetable import PageTableOracle
from .power import PowerOracle
from .rpm_usage import RpmUsageOracle

ORACLES = {
    "power": PowerOracle,
    "dma32": Dma32Oracle,
    "pagetable": PageTableOracle,
    "leak": LeakOracle,
    "rpm-usage": RpmUsageOracle,
    "gfp": GfpAccountingOracle,
    "isolation": IsolationOracle,
    "kasan": KasanChecker,
    "iova-to-phys": IovaToPhysOracle,
}

__all__ = ["ORACLES"]
