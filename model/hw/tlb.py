"""The IOTLB: translations cached by IOVA page until zapped.

What the TLB keeps across a loss of translation or clock is a fact of the
hardware that no driver source states, so it is a parameter
(``Tlb.retention``, from the workload's ``tlb_retention``): the events in
:data:`RETENTION_EVENTS` it survives.  Each entry remembers which of them
it lived through, so a finding that uses it can say what it rests on.

* ``disable`` - translation turned off (VSI ``AHB_CONTROL = 0``, rk
  ``DISABLE_PAGING``);
* ``clock-off`` - the IOMMU's clocks gated (the last ``clk_bulk_disable``).

The default for the VSI part (RK3588's AV1 decoder MMU) keeps both.  No
public document says otherwise, and the review is exactly about it: "How
does the caching hw work at this point? ... either the HW flushes implicitly
or you need to add a flush somewhere" (the reviewer), "I do not have the
documentation for the hardware but it seems that enable/disable are enough"
(the author).  Clock gating stops a clock, it does not clear SRAM.  So the
default is the hardware on which a missing invalidation is a bug, and every
finding that uses an entry which lived through one of these events says so
in its report; ``tlb_retention=()`` (``--tlb-retention none``) hunts on the
hardware the author assumes.  Power-off of the shared power domain would
wipe the TLB; the model does not switch power domains off (yet), so no
finding rests on surviving one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TlbEntry", "Tlb", "RETENTION_EVENTS", "DEFAULT_RETENTION"]

RETENTION_EVENTS = ("disable", "clock-off")
DEFAULT_RETENTION = ("disable", "clock-off")


@dataclass(eq=False)
class TlbEntry:
    """One cached translation; ``fill`` is the :class:`~model.hw.master.DmaAccess`
    whose walk filled it (its pages and sequence number say where it came from)."""

    iova: int  # page-aligned IOVA
    paddr: int  # page-aligned physical address
    readable: bool
    writable: bool
    fill: object
    survived: set = field(default_factory=set)  # RETENTION_EVENTS it lived through


class Tlb:
    def __init__(self, retention=DEFAULT_RETENTION):
        self.entries = {}  # iova >> 12 -> TlbEntry
        self.retention = frozenset(retention)

    def lose(self, event):
        """``event`` (one of :data:`RETENTION_EVENTS`) happened: the entries
        survive it if the hardware keeps them (and remember it), else go."""
        if event in self.retention:
            for e in self.entries.values():
                e.survived.add(event)
        else:
            self.entries.clear()

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
