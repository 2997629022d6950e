"""DMA masters: devices behind an IOMMU that read and write at IOVAs."""

from __future__ import annotations

from dataclasses import dataclass

from model.kernel.core import current

__all__ = ["DmaAccess", "DmaMaster"]

#: outcomes of an access
OUTCOMES = ("tlb", "walk", "bypass", "fault", "off", "stall")


@dataclass(eq=False)
class DmaAccess:
    """One access as the hardware handled it (the ``dma`` hook's argument).

    ``outcome``: ``"tlb"`` (hit a cached translation), ``"walk"`` (translated
    by a table walk, which filled the TLB), ``"bypass"`` (translation off:
    ``paddr == iova``), ``"fault"`` (translation on, no valid entry or no
    permission), ``"off"`` (the IOMMU's clocks are off: dropped) or
    ``"stall"`` (the MMU is stalled: held back, not replayed).
    ``paddr`` is where it landed, or None.  ``base``/``dt``/``pt`` are the
    table pages used: for a walk the ones it read (``base`` is the page the
    base register points at: the DT on rk, the PTA on vsi), for a TLB hit
    those of the walk that filled the entry, which is ``fill``; ``survived``
    what that entry lived through (:data:`model.hw.tlb.RETENTION_EVENTS`).
    ``cached``: the walk-cache levels (:data:`model.hw.tlb.WALK_CACHE_LEVELS`)
    whose stale entries the walk used (for a hit, the walk that filled the
    line); ``base``/``dt``/``pt`` are then the pages whose contents were used
    (read now, or cached from them earlier) and ``survived`` includes what
    those entries lived through.  Both empty: any MMU would have done the same.
    """

    seq: int
    dev: str
    hw: object
    iova: int
    is_write: bool
    outcome: str = "fault"
    paddr: int | None = None
    base: object = None
    dt: object = None
    pt: object = None
    fill: DmaAccess | None = None
    survived: tuple = ()  # the retention events the cached state it used lived through
    cached: tuple = ()  # walk-cache levels whose stale entries it used (model.hw.tlb)

    def __str__(self):
        where = f" -> {self.paddr:#x}" if self.paddr is not None else ""
        stale = f" (stale walk cache: {', '.join(self.cached)})" if self.cached else ""
        return f"#{self.seq} {self.dev} {'write' if self.is_write else 'read'} {self.iova:#x}: {self.outcome}{where}{stale}"


class DmaMaster:
    """The DMA engine of ``dev`` behind IOMMU ``hw``."""

    def __init__(self, hw, dev):
        self.hw = hw
        self.dev = dev
        self.name = f"dma:{getattr(dev, 'name', dev)}"

    async def dma(self, iova, is_write=False):
        """Issue one access (a preemption point): the :class:`DmaAccess`."""
        cpu = current()
        await cpu.sched.point(cpu)
        return self.issue(iova, is_write)

    def issue(self, iova, is_write=False):
        """The access itself, at the current point (hook ``dma``)."""
        acc = self.hw.translate(getattr(self.dev, "name", str(self.dev)), iova, is_write)
        for fn in self.hw.kernel.hooks.dma:
            fn(self, acc)
        return acc

    def __repr__(self):
        return self.name
