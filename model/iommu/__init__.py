"""The IOMMU core after drivers/iommu/iommu.c, as a driver sees it.

Modules: :mod:`.device` (``struct device``, platform glue), :mod:`.domain`
(domains, gather, iommu-pages), :mod:`.core` (groups, attach, ownership,
probe/release), :mod:`.mapping` (map/unmap), :mod:`.driver` (the driver
interface and :func:`validate_driver`), :mod:`.list` (``list_head`` watched
for races).

Events for oracles
==================

Besides the generic hooks of :mod:`model.kernel` (``alloc``, ``free``,
``mmio``, ``walk``, ``dma``, ...), the core and the DMA layer emit the hook
``iommu(cpu, what, info)``; ``info`` is a dict with exactly these keys:

``dma_map``      ``{dev, page, addr, size, mask}``  (:mod:`model.kernel.dma`)
                 ``dma_map_single`` of ``page`` for ``dev``: ``addr`` is the dma
                 address (= physical), ``mask`` the device's ``dma_mask``.
``dma_unmap``    ``{dev, addr, size}``
``domain_alloc`` ``{domain, pages}``  a paging domain was allocated (default,
                 blocking or user); ``pages`` = ``domain.table_pages()`` then.
``domain_free``  ``{domain, pages}``  emitted BEFORE the driver frees it
                 (``pages`` are still live).  Static identity/blocked domains
                 are never allocated nor freed.
``map_begin``    ``{domain, iova, paddr, size, prot, gfp, ret}``  at the entry of
                 ``iommu_map`` (``ret`` None).  Allocations the same CPU makes
                 before its ``map_end`` are made on this caller's behalf, and
                 ``gfp`` is what the caller asked for.
``map_end``      same keys, ``ret`` = 0 or -errno.  A failed map has undone
                 itself (a nested ``unmap_begin``/``unmap_end`` pair).  The
                 mapping ``[iova, iova+size) -> paddr`` is legitimate from
                 ``map_begin`` until the ``unmap_end`` that removes it.
``unmap_begin``  ``{domain, iova, size, unmapped}``  (``unmapped`` None)
``unmap_end``    the same dict, ``unmapped`` = bytes unmapped; emitted after
                 ``iotlb_sync`` and after the gather's freelist was freed (for
                 ``iommu_unmap_fast``, at the caller's sync; for the DMA API's
                 flush queue, when the queue is flushed, maybe on another CPU):
                 from here on no DMA may reach the removed pages through this
                 domain (through a TLB line or a stale table), else ``stale-tlb``.
``attach_begin`` ``{group, dev, old, new, ret}``  around every call of the
``attach_end``   driver's ``attach_dev(new, dev, old)`` (``ret`` None in begin,
                 0/-errno in end), including probe (``old`` None), the core's
                 reverts, and the release-domain attach of ``iommu_release_device``.
                 Between the two the device may use ``old`` or ``new``; after a
                 successful end, only ``new``; after a failed one, ``old``.
                 Identity: any address (bypass); blocked: nothing.
``probe``        ``{dev}``  ``iommu_probe_device`` finished (default domain attached)
``release``      ``{dev}``  ``iommu_release_device`` finished (no domain any more)
``fault``        ``{domain, dev, iova, flags}``  ``report_iommu_fault`` (IOMMU_FAULT_READ/WRITE)
``iova_to_phys_begin``  ``{domain, iova, phys}``  around ``iommu_iova_to_phys``
``iova_to_phys_end``    (one dict: ``phys`` None in begin, the answer in end)

DMA (hook ``dma(master, access)``, :class:`model.hw.DmaAccess`): ``master.dev``
is the :class:`Device`, ``access.outcome`` one of tlb/walk/bypass/fault/off/stall,
``access.paddr`` where it landed, ``access.base/dt/pt`` the table pages used
(map them to a domain with ``domain.table_pages()``), ``access.fill`` for a TLB
hit the walk access that filled the line (its ``seq`` orders it against the
events above).  ``walk(hw, page, rests)`` for every table page the walker reads or takes
from its walk cache (``rests``: what that use rests on, model.hw.walker);
``hw.referenced_pages()`` what the hardware may still use.
"""

from .core import (
    IommuGroup,
    IS_ERR,
    iommu_attach_device,
    iommu_attach_group,
    iommu_detach_device,
    iommu_detach_group,
    iommu_device_claim_dma_owner,
    iommu_device_release_dma_owner,
    iommu_device_unuse_default_domain,
    iommu_device_use_default_domain,
    iommu_domain_alloc,
    iommu_domain_free,
    iommu_get_domain_for_dev,
    iommu_group_replace_domain,
    iommu_group_store_type,
    iommu_paging_domain_alloc,
    iommu_probe_device,
    iommu_release_device,
    iommu_set_fault_handler,
    report_iommu_fault,
)
from .device import (
    DevIommu,
    Device,
    IommuDevice,
    IommuFwspec,
    PlatformDevice,
    dev_get_drvdata,
    dev_iommu_fwspec_get,
    dev_iommu_ops,
    dev_iommu_priv_get,
    dev_iommu_priv_set,
    devm_platform_ioremap_resource,
    iommu_device_register,
    iommu_device_unregister,
    platform_driver_probe,
    platform_get_irq,
    platform_set_drvdata,
)
from .domain import (
    IOMMU_CACHE,
    IOMMU_DOMAIN_BLOCKED,
    IOMMU_DOMAIN_DMA,
    IOMMU_DOMAIN_IDENTITY,
    IOMMU_DOMAIN_UNMANAGED,
    IOMMU_FAULT_READ,
    IOMMU_FAULT_WRITE,
    IOMMU_READ,
    IOMMU_WRITE,
    SZ_4K,
    Geometry,
    IommuDomain,
    IommuIotlbGather,
    container_of,
    iommu_alloc_pages_sz,
    iommu_free_pages,
    iommu_iotlb_gather_add_page,
    iommu_iotlb_gather_init,
    iommu_pages_list_add,
    iommu_put_pages_list,
)
from .driver import IommuDriver, validate_driver
from .events import iommu_event
from .list import INIT_LIST_HEAD, ListHead, ListNode, list_add_tail, list_del_init, list_empty, list_entries
from .mapping import (
    iommu_flush_iotlb_all,
    iommu_iotlb_sync,
    iommu_iova_to_phys,
    iommu_map,
    iommu_pgsize,
    iommu_unmap,
    iommu_unmap_fast,
    unmaps_done,
)

__all__ = [name for name in dir() if not name.startswith("_")]
