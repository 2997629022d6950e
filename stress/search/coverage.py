"""Interleaving coverage: what a run's interleaving exercised, as a set of features.

A :class:`Coverage` observer watches one run and collects four kinds of
feature, each a small tuple whose first item names its kind:

* ``("lock", held, taken)`` - a lock-order edge: lock class ``taken`` was
  acquired while ``held`` was the last lock its CPU held (class names as
  lockdep names them, ``name/subclass`` for a nested acquisition);
* ``("alias", what, first, then)`` - two accesses to the same memory from
  different CPUs, in the order they happened, at least one a write (Krace's
  alias pairs): ``what`` is ``cell:NAME`` (a ``Shared`` cell), ``table``
  (a word of a page-table page) or ``reg:OFFSET`` (an IOMMU register), and
  ``first``/``then`` the two call sites (``function:line`` of the innermost
  driver frame, else the innermost model frame; ``/w`` marks a write); the IOMMU's table
  walker reading a table page after a CPU wrote it is ``("alias", "walk",
  site, "walker")``;
* ``("overlap", earlier, later)`` - two workload operations (by kind:
  ``map``, ``attach``, ...) in flight at once on different CPUs, ``earlier``
  the one that began first;
* ``("func", name)`` - a driver function that touched a cell, a table word
  or a register: the innermost frame of a driver module (``model.drivers.*``,
  or a plugin's module) at the event (a lock alone does not walk the stack:
  the commonest event is left cheap).

The features are plain tuples of strings, the same for the same run in any
process (no object ids, no addresses), so corpora and soaks compare them.
Boot and teardown run alone (``cpu.id < 0``): they make no alias or overlap
feature, but their lock edges and driver functions count.

Beside the features it keeps ``hazards``: near misses of an oracle, states
one step short of a finding, for the guided strategy to dig at (they are
not coverage: a run that reaches one again is still worth a child):

* ``("tlb-line-outlives-unmap", state)`` - an unmap returned while an
  IOTLB line still translates one of its IOVAs through the tables of the
  domain it was unmapped from (``state``: ``translating`` when the MMU is
  clocked with paging on at that moment, else ``off``).  One DMA through
  that line later is a ``stale-tlb``.  A lazy unmap's line (flush queue)
  is gone by its ``unmap_end``; a correct driver reaches it with the MMU
  off (it zaps on re-enable), or when a concurrent map of the same IOVA
  refilled the line, legally;
* ``("unmap-missed-a-translating-iommu",)`` - an unmap returned while an
  MMU that translates through the domain's tables (clocked, paging on, its
  base register on one of them) saw no invalidation since the unmap began:
  a lost flush, one DMA fill short of a stale line (a lazy unmap's
  ``unmap_end`` comes after its flush queue's flush);
* ``("map-missed-a-translating-iommu",)`` - the same of a map: it
  returned while an MMU translating through the domain's tables saw no
  invalidation since it began.  A driver that invalidates on map (the VSI
  and Rockchip ones do: a walk may have cached the entry as not present)
  reaches it only when its flush misses an MMU that translates through the
  domain, as an attach split from the list it flushes misses it (B4): a
  DMA that fills a line, an unmap and another DMA later, a ``stale-tlb`` or
  a table page freed under the walk cache;
* ``("tlb-line-outlives-translation",)`` - a workload operation ended
  after an MMU that translated when the last one ended stopped translating
  (paging off, or clocks or power gone) with IOTLB lines of a paging domain
  still in it.  Hardware that keeps its lines (``tlb_retention``) is why a
  driver must zap when translation comes back; an unmap of the line's IOVA,
  translation back on and one DMA later, a driver that does not is a
  ``stale-tlb``.  Every correct driver reaches it on such hardware;
* ``("tlb-line-filled",)`` - a workload operation ended with an IOTLB line
  of a paging domain that was not there when the last one ended: where
  every stale TLB starts (an unmap that misses it, or translation going
  off and coming back without a zap, and one more DMA).  Common: it only
  gives the guided strategy a place to try those steps.

Each near miss also leaves ``hints``: where it happened, for the guided
strategy to complete it (:meth:`stress.workload.DriverWorkload.complete`):
``(kind, state, cpu, pos, mmu, iova)``: the near miss's kind and state
(``""`` without one), the CPU and the ordinal of its workload operation
that returned into it (the unmap, or the operation that ended next after
translation stopped), the MMU's name and the IOVA of a line (or of the
unmap).  At most one per near miss and MMU.

It is cheap enough to watch every schedule of a search: a few dictionary
operations per event and one short frame walk (cached per code object) per
cell, table word or register access.  It never reports.
"""

from __future__ import annotations

import sys

from model.hw.walker import base_page
from model.kernel.stacks import model_stack

__all__ = ["Coverage", "KINDS", "counts", "feature_kind"]

#: the kinds of feature, in the order summaries list them
KINDS = ("lock", "alias", "overlap", "func")

_SCHED_OR_STOP = ("stress.", "trio", "outcome", "hypothesis", "_pytest", "pluggy")
_NOT_DRIVER = ("model.kernel", "model.hw", "model.iommu", "model.workloads", "model.soc")
# Keyed by id(code), as model.kernel.stacks keys its own (a code object's hash
# is recomputed on every lookup); _CODES keeps the codes, so an id stays theirs.
_DRIVER_OF = {}  # id(code) -> ("func", its name) if a driver's, False if not, None to stop the walk
_SITE = {}  # (id(code), f_lasti) -> "function:line" (f_lineno is computed on every read; f_lasti is a field)
_CODES = []
_UNSEEN = object()


def _driver_of(frame):
    code = frame.f_code
    how = _DRIVER_OF.get(id(code), _UNSEEN)
    if how is _UNSEEN:
        mod = frame.f_globals.get("__name__") or ""
        if mod.startswith(_SCHED_OR_STOP):
            how = None
        elif mod.startswith(_NOT_DRIVER) or mod == "model" or not mod:
            how = False
        else:
            how = ("func", code.co_name)  # the feature itself: made once
        _DRIVER_OF[id(code)] = how
        _CODES.append(code)
    return how


def feature_kind(feature):
    return feature[0]


def counts(features):
    """``{kind: how many}`` of a set of features, every kind listed."""
    out = dict.fromkeys(KINDS, 0)
    for f in features:
        out[f[0]] += 1
    return out


class Coverage:
    """One run's features (``features``: a set); attach with ``kernel.attach``."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.features = set()
        self.hazards = set()  # oracle near misses (see the module doc)
        self.tables = {}  # table page -> the domain whose tables it holds (domain_alloc)
        self.unmapping = {}  # id(unmap info) -> (info, {MMU: its TLB's invalidations at unmap_begin})
        self.mapping = {}  # (cpu id, IOVA) of a map in flight -> {MMU: its TLB's invalidations at map_begin}
        self.last = {}  # memory key -> (cpu id, site, is_write) of its last access by a CPU
        self.writer = {}  # table page -> site of the last CPU write to it
        self.running = {}  # cpu id -> kind of the operation in flight
        self.ops = {}  # cpu id -> workload operations begun on it
        self.hints = []  # where each near miss happened (see the module doc)
        self.translating = None  # MMUs translating when the last workload operation ended
        self.lines = set()  # (MMU, IOVA) of its paging domains' IOTLB lines then
        self.mmus, self.devices_seen = [], 0  # the MMUs among the kernel's first ``devices_seen`` devices

    # -- the innermost driver frame at an event ---------------------------------------

    def _driver_site(self):
        """``function:line`` of the innermost driver frame of the event's caller
        (its function counted as reached), or the innermost model frame's
        place when no driver frame is on the stack (the IOMMU core's own)."""
        # Frame 2, the event's emitter, is a model primitive (Shared's loads
        # and stores, the DMA API's table accessors, readl/writel): never a
        # driver's, so the walk starts at its caller, one frame object fewer.
        f = sys._getframe(3)
        driver_of = _DRIVER_OF.get
        for _ in range(24):
            if f is None:
                break
            how = driver_of(id(f.f_code), _UNSEEN)
            if how is _UNSEEN:  # first sight (a sentinel: False, not a driver's, == 0)
                how = _driver_of(f)
            if how is None:
                break
            if how:
                self.features.add(how)
                key = (id(f.f_code), f.f_lasti)
                site = _SITE.get(key)
                if site is None:
                    site = _SITE[key] = f"{how[1]}:{f.f_lineno}"
                return site
            f = f.f_back
        stack = model_stack(2, limit=1)  # our frames and plumbing are skipped
        return stack[0] if stack else "?"

    def _alias(self, cpu, key, what, site, is_write):
        if is_write:
            site += "/w"
        prev = self.last.get(key)
        if prev is not None and prev[0] != cpu.id and (is_write or prev[2]):
            self.features.add(("alias", what, prev[1], site))
        self.last[key] = (cpu.id, site, is_write)
        return site

    # -- hooks -------------------------------------------------------------------------

    def lock_acquire(self, cpu, lock, trylock, subclass, read=0):
        cls = lock.name if not subclass else f"{lock.name}/{subclass}"
        held = cpu.held
        self.features.add(("lock", held[-1].name if held else "", cls))

    def access(self, cpu, cell, is_write, marked=False):
        site = self._driver_site()
        if cpu.id >= 0:
            self._alias(cpu, cell, f"cell:{cell.name}", site, is_write)

    def table(self, cpu, page, index, is_write):
        site = self._driver_site()
        if cpu.id >= 0:
            site = self._alias(cpu, (page, index), "table", site, is_write)
            if is_write:
                self.writer[page] = site

    def walk(self, hw, page, rests):
        site = self.writer.get(page)
        if site is not None:
            self.features.add(("alias", "walk", site, "walker"))

    def mmio(self, cpu, hw, reg, value, is_write):
        site = self._driver_site()
        if cpu.id >= 0:
            self._alias(cpu, (hw, reg), f"reg:{reg:#x}", site, is_write)

    def iommu(self, cpu, what, info):
        if what == "domain_alloc":
            for page in info["pages"]:
                self.tables[page] = info["domain"]
        elif what == "map_begin":
            self.mapping[cpu.id, info["iova"]] = {hw: hw.tlb.invalidations for hw in self._mmus()}
        elif what == "map_end":
            begun = self.mapping.pop((cpu.id, info["iova"]), None)
            if begun is not None and info["ret"] == 0:
                self._missed_flush(cpu, info["domain"], info["iova"], begun, ("map-missed-a-translating-iommu",))
        elif what == "unmap_begin":
            self.unmapping[id(info)] = (info, {hw: hw.tlb.invalidations for hw in self._mmus()})
        elif what == "unmap_end":
            begun = self.unmapping.pop(id(info), None)
            if info.get("unmapped"):
                self._lines_outliving(cpu, info["domain"], info["iova"], info["iova"] + info["unmapped"])
                if begun is not None:
                    self._missed_flush(cpu, info["domain"], info["iova"], begun[1], ("unmap-missed-a-translating-iommu",))

    def _mmus(self):
        devices = self.kernel.devices
        if len(devices) != self.devices_seen:  # devices only ever join (at boot)
            self.mmus = [hw for hw in devices if getattr(hw, "tlb", None) is not None]
            self.devices_seen = len(devices)
        return self.mmus

    def _missed_flush(self, cpu, domain, iova, before, hazard):
        for hw, n in before.items():
            if hw.tlb.invalidations == n and hw.paging and hw.powered and self.tables.get(base_page(hw)) is domain:
                self.hazards.add(hazard)
                self._hint(cpu, hazard, hw, iova)
                return

    def _lines_outliving(self, cpu, domain, lo, hi):
        tables = self.tables
        for hw in self._mmus():
            for e in hw.tlb.entries.values():
                if lo <= e.iova < hi and tables.get(e.fill.base) is domain:
                    hazard = ("tlb-line-outlives-unmap", "translating" if hw.paging and hw.powered else "off")
                    self.hazards.add(hazard)
                    self._hint(cpu, hazard, hw, e.iova)
                    return

    def _hint(self, cpu, hazard, hw, iova):
        if cpu.id < 0:
            return
        hint = (hazard[0], hazard[1] if len(hazard) > 1 else "", cpu.id, self.ops.get(cpu.id, 0) - 1, hw.name, iova)
        if all(h[:2] != hint[:2] or h[4] != hint[4] for h in self.hints):
            self.hints.append(hint)

    def _tlb_state(self, cpu):
        """At a workload operation's end: ``tlb-line-filled`` for a line of a
        paging domain new since the last one ended, ``tlb-line-outlives-translation``
        for an MMU that translated then and stopped, keeping such lines."""
        tables = self.tables
        translating, lines = [], set()
        for hw in self._mmus():
            mine = [e.iova for e in hw.tlb.entries.values() if e.fill.base in tables]
            if hw.paging and hw.powered:
                translating.append(hw)
            elif mine and hw in (self.translating or ()):
                self.hazards.add(("tlb-line-outlives-translation",))
                self._hint(cpu, ("tlb-line-outlives-translation",), hw, min(mine))
            for iova in mine:
                lines.add((hw, iova))
                if (hw, iova) not in self.lines:
                    self.hazards.add(("tlb-line-filled",))
                    self._hint(cpu, ("tlb-line-filled",), hw, iova)
        self.translating, self.lines = translating, lines

    def op_begin(self, cpu, name):
        kind = name.split("(", 1)[0]
        for cid, other in self.running.items():
            if cid != cpu.id:
                self.features.add(("overlap", other, kind))
        self.running[cpu.id] = kind
        self.ops[cpu.id] = self.ops.get(cpu.id, 0) + 1

    def op_end(self, cpu, name):
        self.running.pop(cpu.id, None)
        if cpu.id >= 0:
            self._tlb_state(cpu)
