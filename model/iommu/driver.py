"""The driver interface: what the IOMMU core calls, as one class per driver.

A driver is a class (a user names one as ``pkg.module:Class``); the core
makes one instance per machine.  Each method mirrors one op of
``struct iommu_ops`` / ``struct iommu_domain_ops``, and drivers implement
them with one method per C function, so that a one-defect mutant is a
subclass that overrides ONE method.  All methods that the C can interleave
are coroutines.

=====================================  ==============================================
``name``, ``summary``                   registry name, one-line description
``layout``                              register layout of the hardware: ``"rk"``/``"vsi"``
``async probe(pdev)``                   platform probe, once per IOMMU instance
                                        (``pdev.hw``): request the IRQ, set up runtime
                                        PM, ``iommu_device_register``; 0 or -errno
``async probe_device(dev)``             the ``struct iommu_device`` of dev's IOMMU, or -errno
``async release_device(dev)``
``async domain_alloc_paging(dev)``      a new paging domain (an :class:`IommuDomain`
                                        subclass) or None
``async domain_free(domain)``           ``domain->ops->free``
``identity_domain``                     static identity domain, or None
``blocked_domain``                      static blocked domain, or None (the core then
                                        allocates an empty paging domain)
``release_domain``                      attached before ``release_device``, or None
``async attach_dev(domain, dev, old)``  ``domain->ops->attach_dev`` for any domain
                                        (dispatch to the identity attach as the C does
                                        through ``domain->ops``); 0 or -errno
``async map_pages(domain, iova,         ``(ret, mapped)``
paddr, pgsize, pgcount, prot, gfp)``
``async unmap_pages(domain, iova,       bytes unmapped
pgsize, pgcount, gather)``
``iotlb_sync``                          None, or ``async (domain, gather)``
``iotlb_sync_map``                      None, or ``async (domain, iova, size) -> ret``
``flush_iotlb_all``                     None, or ``async (domain)``
``async iova_to_phys(domain, iova)``    physical address or 0
``async runtime_suspend(dev)``          the IOMMU platform device's runtime PM callbacks
``async runtime_resume(dev)``
``suspend``, ``resume``                 its system-sleep callbacks (``dev_pm_ops``
                                        ``.suspend``/``.resume``), ``async (dev)``, or None
                                        for none; the default is what every driver
                                        modelled here has in its C:
                                        ``pm_runtime_force_suspend`` /
                                        ``pm_runtime_force_resume`` (vsi-iommu.c through
                                        ``DEFINE_RUNTIME_DEV_PM_OPS``, rockchip-iommu.c
                                        through ``SET_SYSTEM_SLEEP_PM_OPS``)
=====================================  ==============================================

The interrupt handler is whatever the driver passes to ``request_irq`` in
its probe.
"""

from __future__ import annotations

import inspect

from model.kernel.pm import pm_runtime_force_resume, pm_runtime_force_suspend

__all__ = ["IommuDriver", "validate_driver", "REQUIRED_METHODS", "OPTIONAL_OPS"]

REQUIRED_METHODS = (
    "probe",
    "probe_device",
    "release_device",
    "domain_alloc_paging",
    "domain_free",
    "attach_dev",
    "map_pages",
    "unmap_pages",
    "iova_to_phys",
    "runtime_suspend",
    "runtime_resume",
)
OPTIONAL_OPS = ("iotlb_sync", "iotlb_sync_map", "flush_iotlb_all")


class IommuDriver:
    """Base class: the optional ops and static domains default to None."""

    name = None
    summary = ""
    layout = "rk"
    identity_domain = None
    blocked_domain = None
    release_domain = None
    iotlb_sync = None
    iotlb_sync_map = None
    flush_iotlb_all = None

    # SET_SYSTEM_SLEEP_PM_OPS(pm_runtime_force_suspend, pm_runtime_force_resume)
    async def suspend(self, dev):
        return await pm_runtime_force_suspend(dev)

    async def resume(self, dev):
        return await pm_runtime_force_resume(dev)

    def __repr__(self):
        return f"<driver {self.name}>"


def validate_driver(cls):
    """None if ``cls`` implements the interface, else a one-line reason."""
    if not isinstance(cls, type):
        return f"{cls!r} is not a class"
    label = getattr(cls, "__qualname__", repr(cls))
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        return f"{label}: no driver name (class attribute `name`)"
    if getattr(cls, "layout", "rk") not in ("rk", "vsi"):
        return f"{label}: layout must be 'rk' or 'vsi', not {cls.layout!r}"
    for meth in REQUIRED_METHODS:
        fn = getattr(cls, meth, None)
        if fn is None:
            return f"{label}: missing method {meth}()"
        if not inspect.iscoroutinefunction(fn):
            return f"{label}: {meth}() must be a coroutine (async def)"
    for op in OPTIONAL_OPS:
        fn = getattr(cls, op, None)
        if fn is not None and not inspect.iscoroutinefunction(fn):
            return f"{label}: {op} must be None or a coroutine"
    return None
