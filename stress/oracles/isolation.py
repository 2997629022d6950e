"""dma-isolation and stale-tlb: every DMA checked against what the core allows.

The IOMMU core's rule (drivers/iommu/iommu.c, ``__iommu_group_set_domain``):
while a device switches domains its DMA may be discarded, but it may only
ever reach memory through the old domain (``group->domain``) or the new one,
never anything else (identity, a freed or foreign domain).  At every DMA
that reached memory the oracle asks:

* through which domain did it go?  Bypass (translation off) is the identity
  domain; a walk or a TLB hit names the table base page, which belongs to the
  domain whose tables those are (``domain_alloc`` events);
* may the device use that domain now?  ``group->domain``, the domain of an
  attach in progress, and the last domain an attach succeeded with;
* does that domain map this IOVA to this page?  A mapping is live from
  ``map_begin`` until an ``unmap_end`` whose ``unmap_begin`` came after its
  ``map_end`` (an unmap that overlaps the map in time may or may not have
  removed it: no verdict, no false alarm).

A DMA that fails either test is ``stale-tlb`` when the translation came from
the TLB (a lost invalidation) and ``dma-isolation`` otherwise.
"""

from __future__ import annotations

from model.iommu.domain import IOMMU_DOMAIN_IDENTITY

__all__ = ["IsolationOracle"]

PAGE = 12


#: what a stale-tlb find rests on when its entry lived through an event
#: (model.hw.tlb.RETENTION_EVENTS); ``--tlb-retention none`` drops them
RESTS_ON = {
    "disable": "the IOTLB keeps its entries while translation is disabled (VSI AHB_CONTROL = 0, rk DISABLE_PAGING)",
    "clock-off": "the IOTLB keeps its entries while the IOMMU's clocks are gated",
    "power-off": "the IOTLB keeps its entries while its power domain is off",
}

#: what a find rests on when the walk used a stale walk-cache entry
#: (model.hw.tlb.WALK_CACHE_LEVELS); ``--walk-cache none`` drops them
WALK_CACHE_RESTS_ON = {
    "pta": "the MMU caches the PTA entry (the DT address) it walked and uses it, not memory, until a FLUSH",
    "dte": "the MMU caches DT entries (a paging-structure cache) it walked and uses them, not memory, until zapped "
    "(VSI FLUSH; rk ZAP_CACHE, or ZAP_ONE_LINE of an IOVA in the entry's 4 MiB)",
}


def rests_on(rests):
    """The report lines of ``rests`` (walk-cache levels and retention events, model.hw.walker)."""
    return [WALK_CACHE_RESTS_ON.get(x) or RESTS_ON[x] for x in rests]


def rests_params(rests):
    """Which hardware parameters ``rests`` comes from: ``walk_cache, tlb_retention``."""
    return ", ".join(n for n, ok in (("walk_cache", any(x in WALK_CACHE_RESTS_ON for x in rests)), ("tlb_retention", any(x in RESTS_ON for x in rests))) if ok)

class _Mapping:
    __slots__ = ("paddr", "begin", "end")

    def __init__(self, paddr, begin):
        self.paddr = paddr
        self.begin = begin
        self.end = None  # map_end seen


class IsolationOracle:
    name = "isolation"

    def __init__(self, kernel):
        self.kernel = kernel
        self.clock = 0
        # keyed by the objects themselves (identity), never by id(): the
        # books hold them alive, so a freed page or domain can never lend its
        # address to a new one and its mappings or owner with it
        self.live = {}  # (domain, iova pfn) -> [_Mapping]
        self.tables = {}  # table page -> domain
        self.attaching = {}  # dev -> (old, new)
        self.attached = {}  # dev -> domain of the last successful attach
        self.maps = {}  # (cpu id, domain, iova, size) -> [[(key, _Mapping)]] of maps in progress
        self.unmaps = {}  # id(unmap info) -> (info, begin time): the info kept alive with its id

    # -- the core's truth ---------------------------------------------------------

    def iommu(self, cpu, what, info):
        self.clock += 1
        now = self.clock
        if what == "domain_alloc":
            for page in info["pages"]:
                self.tables[page] = info["domain"]
        elif what == "attach_begin":
            self.attaching[info["dev"]] = (info["old"], info["new"])
        elif what == "attach_end":
            self.attaching.pop(info["dev"], None)
            if not info["ret"]:
                self.attached[info["dev"]] = info["new"]
        elif what == "map_begin":
            self._map_begin(cpu, info, now)
        elif what == "map_end":
            self._map_end(cpu, info)
        elif what == "unmap_begin":
            self.unmaps[id(info)] = (info, now)  # the same dict comes back in unmap_end, maybe on another CPU (flush queue)
        elif what == "unmap_end":
            self._unmap_end(cpu, info)

    def _map_key(self, cpu, info):
        return (cpu.id, info["domain"], info["iova"], info["size"])

    def _map_begin(self, cpu, info, now):
        d, iova, paddr = info["domain"], info["iova"] >> PAGE, info["paddr"] >> PAGE
        added = []
        for i in range((info["size"] + (1 << PAGE) - 1) >> PAGE):
            m = _Mapping(paddr + i, now)
            self.live.setdefault((d, iova + i), []).append(m)
            added.append(((d, iova + i), m))
        self.maps.setdefault(self._map_key(cpu, info), []).append(added)

    def _map_end(self, cpu, info):
        stack = self.maps.get(self._map_key(cpu, info))
        if not stack:
            return
        added = stack.pop()
        for key, m in added:
            if info["ret"]:
                # the map failed: what it wrote was unrolled (or never written)
                lst = self.live.get(key, [])
                if m in lst:
                    lst.remove(m)
            else:
                m.end = self.clock

    def _unmap_end(self, cpu, info):
        d = info["domain"]
        begun = self.unmaps.pop(id(info), None)
        if begun is None or not info["unmapped"]:
            return
        begin = begun[1]
        iova = info["iova"] >> PAGE
        for i in range(info["unmapped"] >> PAGE):
            lst = self.live.get((d, iova + i))
            if lst:
                lst[:] = [m for m in lst if m.end is None or m.end > begin]

    # -- the hardware's deeds ---------------------------------------------------------

    def _allowed(self, dev):
        group = getattr(dev, "iommu_group", None)
        if group is None:
            return None  # not probed: nothing to check against
        allowed = [group.domain]
        if dev in self.attaching:
            allowed += self.attaching[dev]
        if dev in self.attached:
            allowed.append(self.attached[dev])
        return list(dict.fromkeys(d for d in allowed if d is not None))  # each once

    def dma(self, master, acc):
        if acc.paddr is None or acc.outcome not in ("tlb", "walk", "bypass"):
            return
        dev = getattr(master, "dev", None)
        allowed = self._allowed(dev)
        if allowed is None:
            return
        if acc.outcome == "bypass":
            if any(d.type == IOMMU_DOMAIN_IDENTITY for d in allowed):
                return
            self._report(master, acc, None, allowed, "translation is off (identity bypass)", "identity bypass")
            return
        domain = self.tables.get(acc.base)
        if domain is None:
            self._report(master, acc, None, allowed, f"the walk went through {acc.base!r}, no domain's tables", "tables of no domain")
            return
        if not any(d is domain for d in allowed):
            self._report(master, acc, domain, allowed, f"through {domain!r}, which the device may not use now", "a domain the device may not use")
            return
        lst = self.live.get((domain, acc.iova >> PAGE), ())
        if any(m.paddr == acc.paddr >> PAGE for m in lst):
            return
        self._report(master, acc, domain, allowed, f"{domain!r} does not map {acc.iova:#x} to {acc.paddr:#x}", "an unmapped IOVA")

    def _report(self, master, acc, domain, allowed, why, where):
        """``where``: what went wrong in a few stable words (the find's signature)."""
        kind = "stale-tlb" if acc.outcome == "tlb" else "dma-isolation"
        via = {
            "tlb": f"a TLB entry filled by DMA #{acc.fill.seq if acc.fill is not None else '?'}",
            "walk": "a table walk",
            "bypass": "bypass",
        }[acc.outcome]
        msg = f"{acc.dev} {'wrote' if acc.is_write else 'read'} {acc.paddr:#x} at IOVA {acc.iova:#x} via {via}: {why}"
        lines = [
            f"BUG: IOMMU {'stale TLB entry used' if kind == 'stale-tlb' else 'isolation broken'}",
            msg,
            f"domains {acc.dev} may use now: " + (", ".join(repr(d) for d in allowed) or "none"),
            f"access: {acc}",
        ]
        rests = tuple(acc.cached) + tuple(acc.survived)
        assumptions = rests_on(rests)
        if assumptions:
            lines += [f"this rests on a hardware fact the model assumes ({rests_params(rests)}):", *(f"  {a}" for a in assumptions)]
            self.kernel.report(kind, msg, splat="\n".join(lines), stacks={}, cpu=None, where=where, assumptions=assumptions)
        else:
            self.kernel.report(kind, msg, splat="\n".join(lines), stacks={}, cpu=None, where=where)
