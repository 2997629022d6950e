"""Emitting ``iommu`` hook events (the list of events is in :mod:`model.iommu`)."""

from model.kernel.core import current

__all__ = ["iommu_event"]


def iommu_event(what, info):
    cpu = current()
    for fn in cpu.kernel.hooks.iommu:
        fn(cpu, what, info)
