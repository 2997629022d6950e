"""wrong-translation: ``iommu_iova_to_phys`` must answer what the core mapped.

The core's truth is what the isolation oracle keeps (``map_begin``/
``map_end`` and ``unmap_begin``/``unmap_end`` on the ``iommu`` hook):
``iommu_map(domain, iova, paddr, size)`` maps each page of ``[iova,
iova+size)`` to the page at the same offset of ``[paddr, paddr+size)``.
The core brackets every ``iommu_iova_to_phys`` (whoever calls it: a
workload, a fault handler) with ``iova_to_phys_begin`` and
``iova_to_phys_end`` (one dict, ``phys`` filled in at the end).  At the end
the oracle asks whether some mapping of the queried page was *certainly
live for the whole query*:

* its ``iommu_map`` returned 0 before the query began (``map_end`` before
  ``iova_to_phys_begin``), and
* no unmap that may have removed it overlapped it or the query: every
  unmap of a range holding the page ended before that map began.  An unmap
  still in flight when the map began may clear the new entry (the driver's
  lock decides which comes first), and an unmap is in flight until its
  ``unmap_end``, which may come long after its entries were cleared (a
  gather's sync, the DMA API's flush queue).

If one was, the answer must be ``paddr + offset`` of a mapping that may be
live then (one that was certain, or another map of the same IOVA that
overlapped: a correct driver refuses it with -EADDRINUSE, another may have
written it, and the isolation oracle allows either too); anything else,
``0`` included, is ``wrong-translation``: the driver's page-table walk in
software disagrees with what it was asked to map (a dropped address bit,
a lost or misplaced entry).  A query with no certainly-live mapping gives
no verdict, as a DMA that overlaps an unmap gives the isolation oracle
none.
"""

from __future__ import annotations

from model.kernel.core import model_stack

from ..splat import warn_lines

__all__ = ["IovaToPhysOracle"]

PAGE = 12
PAGE_MASK = (1 << PAGE) - 1


class _Mapping:
    __slots__ = ("pfn", "begin", "end", "cpu")

    def __init__(self, pfn, begin, cpu):
        self.pfn = pfn  # the physical page it maps to
        self.begin = begin  # map_begin
        self.end = None  # map_end of a map that returned 0
        self.cpu = cpu


class _Unmap:
    __slots__ = ("begin", "end")

    def __init__(self, begin):
        self.begin = begin
        self.end = None  # unmap_end (None: in flight)


class IovaToPhysOracle:
    name = "iova-to-phys"

    def __init__(self, kernel):
        self.kernel = kernel
        self.clock = 0
        self.live = {}  # (domain, iova pfn) -> [_Mapping] that may be live
        self.unmaps = {}  # domain -> [(first pfn, end pfn, _Unmap)]: every unmap begun on it
        self.maps = {}  # (cpu id, domain, iova, size) -> stack of [(key, _Mapping)] of maps in flight
        # an info dict is not hashable: keyed by id(), and kept alive beside
        # its entry so that no other dict can take its id while it is in flight
        self.unmapping = {}  # id(unmap info) -> (info, _Unmap) in flight
        self.queries = {}  # id(iova_to_phys info) -> (info, begin time)

    def iommu(self, cpu, what, info):
        self.clock += 1
        now = self.clock
        if what == "map_begin":
            self._map_begin(cpu, info, now)
        elif what == "map_end":
            self._map_end(cpu, info, now)
        elif what == "unmap_begin":
            self._unmap_begin(info, now)
        elif what == "unmap_end":
            self._unmap_end(info, now)
        elif what == "iova_to_phys_begin":
            self.queries[id(info)] = (info, now)
        elif what == "iova_to_phys_end":
            begun = self.queries.pop(id(info), None)
            if begun is not None:
                self._check(cpu, info, begun[1])
        elif what == "domain_free":
            self._forget(info["domain"])

    # -- the core's truth ---------------------------------------------------------

    @staticmethod
    def _pages(iova, size):
        first = iova >> PAGE
        return range(first, first + ((size + PAGE_MASK) >> PAGE))

    def _map_begin(self, cpu, info, now):
        domain, pfn = info["domain"], info["paddr"] >> PAGE
        added = []
        for i, page in enumerate(self._pages(info["iova"], info["size"])):
            m = _Mapping(pfn + i, now, cpu)
            key = (domain, page)
            self.live.setdefault(key, []).append(m)
            added.append((key, m))
        self.maps.setdefault((cpu.id, domain, info["iova"], info["size"]), []).append(added)

    def _map_end(self, cpu, info, now):
        stack = self.maps.get((cpu.id, info["domain"], info["iova"], info["size"]))
        if not stack:
            return
        for key, m in stack.pop():
            if info["ret"]:  # failed: what it wrote was undone (or never written)
                lst = self.live.get(key, [])
                if m in lst:
                    lst.remove(m)
            else:
                m.end = now

    def _unmap_begin(self, info, now):
        u = _Unmap(now)
        pages = self._pages(info["iova"], info["size"])
        self.unmaps.setdefault(info["domain"], []).append((pages.start, pages.stop, u))
        self.unmapping[id(info)] = (info, u)

    def _unmap_end(self, info, now):
        begun = self.unmapping.pop(id(info), None)
        if begun is None:
            return
        u = begun[1]
        u.end = now
        unmapped = info["unmapped"] or 0
        if unmapped <= 0:
            return
        domain, gone = info["domain"], self._pages(info["iova"], unmapped)
        for key in [k for k in self.live if k[0] is domain and k[1] in gone]:
            # removed: every mapping whose map had returned before this unmap began
            lst = self.live[key]
            lst[:] = [m for m in lst if m.end is None or m.end > u.begin]

    def _forget(self, domain):
        self.unmaps.pop(domain, None)
        for key in [k for k in self.live if k[0] is domain]:
            del self.live[key]

    # -- the driver's answer ----------------------------------------------------------

    def _certain(self, key, m, begin):
        """Whether ``m`` was surely mapped from before the query began (at
        ``begin``) until now: mapped by then, and no unmap of its page in
        flight at any time since its map began."""
        if m.end is None or m.end > begin:
            return False
        domain, pfn = key
        return not any(a <= pfn < b and (u.end is None or u.end > m.begin) for a, b, u in self.unmaps.get(domain, ()))

    def _check(self, cpu, info, begin):
        domain, iova, phys = info["domain"], info["iova"], info["phys"]
        key = (domain, iova >> PAGE)
        lst = self.live.get(key)
        if not lst:
            return
        certain = [m for m in lst if self._certain(key, m, begin)]
        if not certain:
            return
        off = iova & PAGE_MASK
        if any(phys == (m.pfn << PAGE) | off for m in lst):
            return
        self._report(cpu, domain, iova, phys, certain[-1], off)

    def _report(self, cpu, domain, iova, phys, m, off):
        want = (m.pfn << PAGE) | off
        got = "0 (no translation)" if not phys else f"{phys:#x}"
        msg = f"iommu_iova_to_phys({domain!r}, {iova:#x}) returned {got}, but {domain!r} maps {iova:#x} to {want:#x}"
        if phys and phys & 0xFFFFFFFF == want & 0xFFFFFFFF and phys != want:
            why = "the high address bits were lost"
            where = "a mapped IOVA at a truncated address"
        elif not phys:
            why = "a page the core mapped reads as unmapped"
            where = "a mapped IOVA reads as unmapped"
        else:
            why = "the answer is another page"
            where = "a mapped IOVA at another address"
        lines = [
            f"iommu: iova_to_phys of a live mapping is wrong: {why}",
            msg,
            f"mapped by {m.cpu!r} (iommu_map returned 0 before the query began; no unmap of that page since it began)",
        ]
        stack = model_stack(2)
        self.kernel.report(
            "wrong-translation",
            msg,
            splat="\n".join(warn_lines(cpu, stack, lines)),
            stacks={repr(cpu): stack},
            cpu=cpu,
            where=where,
        )
