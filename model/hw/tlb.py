"""The IOTLB: translations cached by IOVA page until zapped."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TlbEntry", "Tlb"]


@dataclass(eq=False)
class TlbEntry:
    """One cached translation; ``fill`` is the :class:`~model.hw.master.DmaAccess`
    whose walk filled it (its pages and sequence number say where it came from)."""

    iova: int  # page-aligned IOVA
    paddr: int  # page-aligned physical address
    readable: bool
    writable: bool
    fill: object


class Tlb:
    def __init__(self):
        self.entries = {}  # iova >> 12 -> TlbEntry

    def lookup(self, iova):
        return self.entries.get(iova >> 12)

    def insert(self, entry):
        self.entries[entry.iova >> 12] = entry

    def zap_all(self):
        self.entries.clear()

    def zap_line(self, iova):
        self.entries.pop((iova & 0xFFFFFFFF) >> 12, None)

    def __len__(self):
        return len(self.entries)
