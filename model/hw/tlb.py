"""The IOTLB: translations cached by IOVA page until zapped.

What the TLB keeps across a loss of translation or clock is a fact of the
hardware that no driver source states, so it is a parameter
(``Tlb.retention``, from the workload's ``tlb_retention``): the events in
:data:`RETENTION_EVENTS` it survives.  Each entry remembers which of them
it lived through, so a finding that uses it can say what it rests on.

* ``disable`` - translation turned off (VSI ``AHB_CONTROL = 0``, rk
  ``DISABLE_PAGING``);
* ``clock-off`` - the IOMMU's clocks gated (the last ``clk_bulk_disable``
  of any consumer: the clocks are shared with the master, model.hw.clk);
* ``power-off`` - its power domain switched off (model.kernel.genpd).

The default for the VSI part (RK3588's AV1 decoder MMU) keeps both.  No
public document says otherwise, and the review is exactly about it: "How
does the caching hw work at this point? ... either the HW flushes implicitly
or you need to add a flush somewhere" (the reviewer), "I do not have the
documentation for the hardware but it seems that enable/disable are enough"
(the author).  Clock gating stops a clock, it does not clear SRAM.  So the
default is the hardware on which a missing invalidation is a bug, and every
finding that uses an entry which lived through one of these events says so
in its report; ``tlb_retention=()`` (``--tlb-retention none``) hunts on the
hardware the author assumes.  Power-off is another matter: SRAM whose
supply is cut loses its contents, so the default does not keep entries
across ``power-off`` (on RK3588 the IOMMU shares ``RK3588_PD_AV1`` with the
decoder, and genpd turns it off once both are suspended: model.hw.soc);
``--tlb-retention disable,clock-off,power-off`` states the opposite.

The walk cache (paging-structure cache)
---------------------------------------
Besides final translations the MMU may cache the table entries a walk read
on its way down (``Tlb.walk``, levels from the workload's ``walk_cache``,
:data:`WALK_CACHE_LEVELS`):

* ``dte`` - a valid DT entry (the PT address), rk and vsi;
* ``pta`` - VSI's PTA entry 0 (the DT address); rk has no PTA.

An entry is keyed by the physical address of the table word it copies, so
a walk uses it exactly where it would otherwise read that word: with the
DT/PTA word unchanged the cached walk and an uncached one are the same
walk.  The cache matters only when the word changed in memory, or its page
was freed or reused, without a zap; a walk that then uses it is "stale" and
every finding that rests on such a use says so (``DmaAccess.cached``, the
``walk`` hook's ``rests``).  Keying by address is the weakest caching that
has the effect (a cache tagged only by IOVA would hit in every case this one
does), so a finding here needs no more than an MMU that caches DTEs and has
not yet evicted the entry (capacity is not modelled: an entry stays until
zapped or lost).  Invalid DTEs are not cached (negative caching would only
cause spurious faults, never a misdirected access).

What zaps it: whatever zaps the TLB - VSI ``FLUSH``, rk ``ZAP_CACHE`` and
``FORCE_RESET`` - and rk ``ZAP_ONE_LINE``, which drops the line and the DTE
cached for that IOVA's 4 MiB (rockchip-iommu.c, ``rk_iommu_zap_iova_first_last``:
"Zap the first and last iova to evict from iotlb any previously mapped
cachelines holding stale values for its dte and pte").  It lives through
``disable``/``clock-off``/``power-off`` as the TLB does (``retention``),
and an entry remembers what it survived.

The default caches both levels.  That comment is the C's own statement that
the Rockchip IOTLB (from which the VSI driver descends) holds DTEs; for the
VSI part nothing public says either way, and, as for retention, the default
is the hardware on which a missing paging-structure invalidation is a bug,
each finding that needs it naming it.  ``walk_cache=()`` (``--walk-cache
none``) hunts on an MMU that re-reads every table word.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TlbEntry", "Tlb", "WalkCacheEntry", "RETENTION_EVENTS", "DEFAULT_RETENTION", "WALK_CACHE_LEVELS", "DEFAULT_WALK_CACHE"]

RETENTION_EVENTS = ("disable", "clock-off", "power-off")
DEFAULT_RETENTION = ("disable", "clock-off")

#: paging-structure entries the MMU may cache (see "The walk cache" above)
WALK_CACHE_LEVELS = ("pta", "dte")
DEFAULT_WALK_CACHE = ("pta", "dte")


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


@dataclass(eq=False)
class WalkCacheEntry:
    """One cached paging-structure entry: the table word at physical ``addr``
    (``level`` "pta": PTA entry 0, the DT address; "dte": a DT entry, the PT
    address) read as ``value`` from page ``src``; ``target`` the table page it
    named then (the DT or PT page object, which may since have been freed)."""

    level: str
    addr: int
    value: int
    src: object
    target: object
    survived: set = field(default_factory=set)  # RETENTION_EVENTS it lived through


class Tlb:
    def __init__(self, retention=DEFAULT_RETENTION, walk_cache=DEFAULT_WALK_CACHE):
        self.entries = {}  # iova >> 12 -> TlbEntry
        self.retention = frozenset(retention)
        self.walk_levels = frozenset(walk_cache)  # WALK_CACHE_LEVELS the MMU caches
        self.walk = {}  # physical address of the table word -> WalkCacheEntry
        self.invalidations = 0  # zaps and losses so far (observers compare counts)

    def lose(self, event):
        """``event`` (one of :data:`RETENTION_EVENTS`) happened: the entries
        (translations and walk-cache entries alike) survive it if the hardware
        keeps them (and remember it), else go."""
        if event in self.retention:
            for e in self.entries.values():
                e.survived.add(event)
            for e in self.walk.values():
                e.survived.add(event)
        else:
            self.entries.clear()
            self.walk.clear()
            self.invalidations += 1

    def lookup(self, iova):
        return self.entries.get(iova >> 12)

    def insert(self, entry):
        self.entries[entry.iova >> 12] = entry

    def zap_all(self):
        self.entries.clear()
        self.walk.clear()
        self.invalidations += 1

    def zap_line(self, iova):
        """rk ZAP_ONE_LINE: the line of ``iova`` and the DTE cached for its
        4 MiB (whatever DT it was read from: the line is named by IOVA)."""
        iova &= 0xFFFFFFFF
        self.invalidations += 1
        self.entries.pop(iova >> 12, None)
        if self.walk:
            idx = iova >> 22
            for addr in [a for a, e in self.walk.items() if e.level == "dte" and (a & 0xFFF) >> 2 == idx]:
                del self.walk[addr]

    def cache_walk(self, entry):
        self.walk[entry.addr] = entry

    def __len__(self):
        return len(self.entries)
