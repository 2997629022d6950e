"""The IOMMU core as the driver sees it (drivers/iommu/iommu.c, 6.18+/7.x).

Groups with their mutex, default/blocking/identity domains, attach and
detach, DMA ownership (the VFIO/iommufd path), probe and release.  Every
domain switch goes through ``__iommu_group_set_domain_internal`` under
``group->mutex`` and calls the driver's ``attach_dev(new, dev, old)``
directly: there is no detach, the driver must replace hitlessly, and on
failure the core reverts the devices already switched.

Map and unmap are in :mod:`model.iommu.mapping`; they take no core lock.
"""

from __future__ import annotations

from errno import EBUSY, EINVAL, ENODEV, ENOMEM, ENOSYS, EPERM

EPROBE_DEFER = 517  # include/linux/errno.h (kernel-internal)

from model.kernel.core import current, model_stack
from model.kernel.locks import Mutex, lockdep_assert_held, mutex_lock, mutex_unlock

from .device import DevIommu, dev_iommu_ops
from .dma_iommu import iommu_get_dma_cookie, iommu_put_dma_cookie
from .domain import (
    IOMMU_DOMAIN_BLOCKED,
    IOMMU_DOMAIN_DMA,
    IOMMU_DOMAIN_IDENTITY,
    IOMMU_DOMAIN_UNMANAGED,
    domain_type_name,
)
from .events import iommu_event

__all__ = [
    "IommuGroup",
    "IOMMU_SET_DOMAIN_MUST_SUCCEED",
    "iommu_set_fault_handler",
    "iommu_probe_device",
    "iommu_release_device",
    "iommu_paging_domain_alloc",
    "iommu_domain_alloc",
    "iommu_domain_free",
    "iommu_attach_device",
    "iommu_detach_device",
    "iommu_attach_group",
    "iommu_detach_group",
    "iommu_group_replace_domain",
    "iommu_device_claim_dma_owner",
    "iommu_device_release_dma_owner",
    "iommu_device_use_default_domain",
    "iommu_device_unuse_default_domain",
    "iommu_group_store_type",
    "iommu_get_domain_for_dev",
    "report_iommu_fault",
    "IS_ERR",
]

IOMMU_SET_DOMAIN_MUST_SUCCEED = 1 << 0


def IS_ERR(x):
    """A function returning "a pointer or an errno" returns a negative int on error."""
    return isinstance(x, int)


def _next_id(kernel, what):
    attr = f"_iommu_next_{what}"
    n = getattr(kernel, attr, 0)
    setattr(kernel, attr, n + 1)
    return n


def _warn(message):
    current().kernel.warn(message)


class IommuGroup:
    """``struct iommu_group``: one per device (``generic_single_device_group``),
    or one per IOMMU instance that all its masters join (a driver's own
    ``device_group``, as Rockchip's); see :func:`iommu_probe_device`."""

    def __init__(self, kernel):
        self.id = _next_id(kernel, "group")
        self.name = f"group{self.id}"
        self.mutex = Mutex("group->mutex")
        self.devices = []
        self.domain = None
        self.default_domain = None
        self.blocking_domain = None
        self.owner = None
        self.owner_cnt = 0

    def __repr__(self):
        return self.name


def iommu_get_domain_for_dev(dev):
    group = dev.iommu_group
    return group.domain if group is not None else None


# -- domains -------------------------------------------------------------------


async def __iommu_paging_domain_alloc_flags(dev, type):
    """``ops->domain_alloc_paging`` then ``iommu_domain_init``; a domain or -errno."""
    ops = dev_iommu_ops(dev)
    domain = await ops.domain_alloc_paging(dev)
    if domain is None:
        return -ENOMEM
    if IS_ERR(domain):
        return domain
    # iommu_domain_init()
    domain.type = type
    domain.owner = ops
    if domain.name is None:
        domain.name = f"{domain_type_name(type)}-domain{_next_id(dev.kernel, 'domain')}"
    if type == IOMMU_DOMAIN_DMA:
        # iommu_get_dma_cookie(); iommu_dma_init_fq() when not iommu.strict and
        # the driver can flush everything (IOMMU_CAP_DEFERRED_FLUSH): the
        # model's DMA_FQ domain keeps the type DMA and has a cookie with a queue
        lazy = not getattr(dev.kernel, "iommu_dma_strict", True) and ops.flush_iotlb_all is not None
        iommu_get_dma_cookie(domain, fq=lazy)
    iommu_event("domain_alloc", {"domain": domain, "pages": tuple(domain.table_pages())})
    return domain


async def iommu_paging_domain_alloc(dev):
    """An UNMANAGED paging domain for ``dev``'s IOMMU, or -errno."""
    if dev.iommu is None:
        return -ENODEV
    return await __iommu_paging_domain_alloc_flags(dev, IOMMU_DOMAIN_UNMANAGED)


async def iommu_domain_alloc(dev):
    """The older spelling: a paging domain or None."""
    domain = await iommu_paging_domain_alloc(dev)
    return None if IS_ERR(domain) else domain


async def iommu_domain_free(domain):
    """``domain->ops->free``.  Static identity/blocked domains have no free op."""
    ops = domain.owner
    if ops is None:
        return
    iommu_event("domain_free", {"domain": domain, "pages": tuple(domain.table_pages())})
    await iommu_put_dma_cookie(domain)
    await ops.domain_free(domain)


# -- switching domains ---------------------------------------------------------------


async def __iommu_attach_device(domain, dev, old):
    """``domain->ops->attach_dev(domain, dev, old)``, bracketed by the attach events."""
    ops = dev_iommu_ops(dev)
    info = {"group": dev.iommu_group, "dev": dev, "old": old, "new": domain, "ret": None}
    iommu_event("attach_begin", info)
    ret = await ops.attach_dev(domain, dev, old)
    iommu_event("attach_end", dict(info, ret=ret))
    if ret:
        return ret
    dev.iommu.attach_deferred = False
    return 0


async def __iommu_device_set_domain(group, dev, new_domain, old_domain, flags):
    if dev.iommu.require_direct and (
        new_domain.type == IOMMU_DOMAIN_BLOCKED or new_domain is group.blocking_domain
    ):
        return -EINVAL
    if dev.iommu.attach_deferred:
        if new_domain is group.default_domain:
            return 0
        dev.iommu.attach_deferred = False
    ret = await __iommu_attach_device(new_domain, dev, old_domain)
    if ret:
        # If we have a blocking domain then try to attach that in hopes of
        # avoiding a UAF.
        if flags & IOMMU_SET_DOMAIN_MUST_SUCCEED and group.blocking_domain and group.blocking_domain is not new_domain:
            await __iommu_attach_device(group.blocking_domain, dev, old_domain)
        return ret
    return 0


async def __iommu_group_set_domain_internal(group, new_domain, flags):
    """Switch every device of ``group`` to ``new_domain``; revert on failure.

    "Changing the domain is done by calling attach_dev() on the new domain.
    This switch does not have to be atomic and DMA can be discarded during
    the transition. DMA must only be able to access either new_domain or
    group->domain, never something else."
    """
    lockdep_assert_held(group.mutex)
    if group.domain is new_domain:
        return 0
    if new_domain is None:
        _warn(f"{group}: __iommu_group_set_domain_internal(NULL)")
        return -EINVAL
    result = 0
    done = []
    for dev in list(group.devices):
        ret = await __iommu_device_set_domain(group, dev, new_domain, group.domain, flags)
        if ret:
            result = ret
            # Keep trying the other devices in the group.
            if flags & IOMMU_SET_DOMAIN_MUST_SUCCEED:
                continue
            # err_revert: "A well behaved driver should always allow us to
            # attach to a domain that was already attached."
            for gdev in done + [dev]:
                if group.domain is not None:
                    r = await __iommu_device_set_domain(
                        group, gdev, group.domain, new_domain, IOMMU_SET_DOMAIN_MUST_SUCCEED
                    )
                    if r:
                        _warn(f"{group}: could not revert {gdev} to {group.domain!r} ({r})")
            return ret
        done.append(dev)
    group.domain = new_domain
    return result


async def __iommu_group_set_domain(group, new_domain):
    return await __iommu_group_set_domain_internal(group, new_domain, 0)


async def __iommu_group_set_domain_nofail(group, new_domain):
    ret = await __iommu_group_set_domain_internal(group, new_domain, IOMMU_SET_DOMAIN_MUST_SUCCEED)
    if ret:
        _warn(f"{group}: attaching {new_domain!r} must succeed, got {ret}")


async def __iommu_group_set_core_domain(group):
    new_domain = group.blocking_domain if group.owner else group.default_domain
    await __iommu_group_set_domain_nofail(group, new_domain)


async def __iommu_attach_group(domain, group):
    if group.domain and group.domain is not group.default_domain and group.domain is not group.blocking_domain:
        return -EBUSY
    dev = group.devices[0]
    if dev.iommu is None or dev_iommu_ops(dev) is not domain.owner:
        return -EINVAL
    return await __iommu_group_set_domain(group, domain)


async def iommu_attach_device(domain, dev):
    """Attach a paging domain in place of the default (or blocking) domain."""
    group = dev.iommu_group
    if group is None:
        return -ENODEV
    # Lock the group to make sure the device-count doesn't change while we are attaching.
    await mutex_lock(group.mutex)
    ret = -EINVAL
    if len(group.devices) == 1:
        ret = await __iommu_attach_group(domain, group)
    mutex_unlock(group.mutex)
    return ret


async def iommu_detach_device(domain, dev):
    """Back to the core domain: blocking if the group is owned, else the default."""
    group = dev.iommu_group
    if group is None:
        return
    await mutex_lock(group.mutex)
    if domain is not group.domain or len(group.devices) != 1:
        _warn(f"iommu_detach_device({domain!r}, {dev}): attached is {group.domain!r}")
    else:
        await __iommu_group_set_core_domain(group)
    mutex_unlock(group.mutex)


async def iommu_attach_group(domain, group):
    await mutex_lock(group.mutex)
    ret = await __iommu_attach_group(domain, group)
    mutex_unlock(group.mutex)
    return ret


async def iommu_detach_group(domain, group):
    await mutex_lock(group.mutex)
    await __iommu_group_set_core_domain(group)
    mutex_unlock(group.mutex)


async def iommu_group_replace_domain(group, new_domain):
    """iommufd's replace: switch an owned group straight to ``new_domain``."""
    if new_domain is None:
        return -EINVAL
    await mutex_lock(group.mutex)
    ret = await __iommu_group_set_domain(group, new_domain)
    mutex_unlock(group.mutex)
    return ret


# -- DMA ownership ------------------------------------------------------------------


async def __iommu_group_alloc_blocking_domain(group):
    if group.blocking_domain is not None:
        return 0
    dev = group.devices[0]
    ops = dev_iommu_ops(dev)
    if ops.blocked_domain is not None:
        group.blocking_domain = ops.blocked_domain
        return 0
    # For drivers that do not yet understand IOMMU_DOMAIN_BLOCKED create an
    # empty PAGING domain instead.
    domain = await iommu_paging_domain_alloc(dev)
    if IS_ERR(domain):
        return domain
    group.blocking_domain = domain
    return 0


async def iommu_device_use_default_domain(dev):
    """The driver core binds a kernel driver (``really_probe`` -> ``dma_configure``).

    It counts in ``owner_cnt`` with no ``owner``: while it is bound, DMA
    ownership cannot be claimed (-EPERM) nor the group's type changed (-EPERM).
    -EBUSY if the group is owned or not on its default domain.
    """
    group = dev.iommu_group
    if group is None:
        return 0
    await mutex_lock(group.mutex)
    ret = 0
    if group.default_domain is None:
        ret = -EPROBE_DEFER  # we may race against bus_iommu_probe() finalising groups
    elif group.owner_cnt and (group.domain is not group.default_domain or group.owner is not None):
        ret = -EBUSY
    else:
        group.owner_cnt += 1
    mutex_unlock(group.mutex)
    return ret


async def iommu_device_unuse_default_domain(dev):
    """The driver core unbinds the kernel driver (``device_unbind_cleanup``)."""
    group = dev.iommu_group
    if group is None:
        return
    await mutex_lock(group.mutex)
    if not group.owner_cnt:
        _warn(f"{group}: iommu_device_unuse_default_domain() with no user")
    else:
        group.owner_cnt -= 1
    mutex_unlock(group.mutex)


async def __iommu_take_dma_ownership(group, owner):
    if group.domain is not None and group.domain is not group.default_domain:
        return -EBUSY
    ret = await __iommu_group_alloc_blocking_domain(group)
    if ret:
        return ret
    ret = await __iommu_group_set_domain(group, group.blocking_domain)
    if ret:
        return ret
    group.owner = owner
    group.owner_cnt += 1
    return 0


async def iommu_device_claim_dma_owner(dev, owner):
    """VFIO/iommufd take the group: it is switched to the blocking domain."""
    if owner is None:
        _warn(f"iommu_device_claim_dma_owner({dev}, NULL)")
        return -EINVAL
    group = dev.iommu_group
    if group is None:
        return -ENODEV
    await mutex_lock(group.mutex)
    if group.owner_cnt:
        if group.owner is not owner:
            ret = -EPERM
        else:
            group.owner_cnt += 1
            ret = 0
    else:
        ret = await __iommu_take_dma_ownership(group, owner)
    mutex_unlock(group.mutex)
    return ret


async def __iommu_release_dma_ownership(group):
    if not group.owner_cnt or group.owner is None:
        _warn(f"{group}: release of DMA ownership that is not held")
        return
    group.owner_cnt = 0
    group.owner = None
    await __iommu_group_set_domain_nofail(group, group.default_domain)


async def iommu_device_release_dma_owner(dev):
    """Give the group back: the default domain is attached again."""
    group = dev.iommu_group
    await mutex_lock(group.mutex)
    if group.owner_cnt > 1:
        group.owner_cnt -= 1
    else:
        await __iommu_release_dma_ownership(group)
    mutex_unlock(group.mutex)


# -- default domains, probe and release ------------------------------------------------


async def __iommu_group_alloc_default_domain(group, req_type):
    dev = group.devices[0]
    ops = dev_iommu_ops(dev)
    if req_type == IOMMU_DOMAIN_IDENTITY:
        if ops.identity_domain is None:
            return -EINVAL
        return ops.identity_domain
    return await __iommu_paging_domain_alloc_flags(dev, IOMMU_DOMAIN_DMA)


async def iommu_setup_default_domain(group, req_type):
    lockdep_assert_held(group.mutex)
    old_dom = group.default_domain
    dom = await __iommu_group_alloc_default_domain(group, req_type)
    if IS_ERR(dom):
        return dom
    if group.default_domain is dom:
        return 0
    group.default_domain = dom
    if group.domain is None:
        # Drivers are not allowed to fail the first domain attach.
        ret = await __iommu_group_set_domain_internal(group, dom, IOMMU_SET_DOMAIN_MUST_SUCCEED)
        if ret:
            _warn(f"{group}: first attach of {dom!r} failed ({ret})")
    else:
        ret = await __iommu_group_set_domain(group, dom)
        if ret:
            # err_restore_def_domain
            if old_dom is not None:
                await iommu_domain_free(dom)
                group.default_domain = old_dom
            return ret
    if old_dom is not None:
        await iommu_domain_free(old_dom)
    return ret


async def iommu_group_store_type(group, req_type):
    """``echo identity|DMA > /sys/kernel/iommu_groups/N/type``: a new default domain.

    Only with no driver using the group (``owner_cnt == 0``); the old default
    domain is freed after the switch.
    """
    await mutex_lock(group.mutex)
    if not group.devices or group.owner_cnt:
        ret = -EPERM
    else:
        ret = await iommu_setup_default_domain(group, req_type)
    mutex_unlock(group.mutex)
    return ret


async def iommu_probe_device(dev, def_domain_type=IOMMU_DOMAIN_DMA, group=None):
    """``__iommu_probe_device``: ``probe_device``, the group, a domain attached.

    ``group`` is what ``ops->device_group`` returns: None for a new group of
    this device alone (``generic_single_device_group``), or a group the
    driver keeps per IOMMU instance (``rk_iommu_device_group`` returns
    ``iommu->group``), which other masters may have joined already.  A
    new group gets its default domain; a device joining a group that has a
    domain gets that domain attached (``__iommu_device_set_domain(group,
    gdev, group->domain, NULL, 0)``: ``old`` is NULL), the group's default
    domain, ownership and current domain staying the group's.
    """
    fwspec = dev.fwspec
    iommu_pdev = fwspec.iommu_fwnode if fwspec is not None else None
    iommu_device = getattr(iommu_pdev, "iommu_device", None)
    if iommu_device is None:
        return -ENODEV
    ops = iommu_device.ops
    # iommu_init_device()
    dev.iommu = DevIommu(ops)
    iommu_dev = await ops.probe_device(dev)
    if IS_ERR(iommu_dev) or iommu_dev is None:
        dev.iommu = None
        return iommu_dev if IS_ERR(iommu_dev) else -ENODEV
    dev.iommu.iommu_dev = iommu_dev
    if group is None:
        group = IommuGroup(dev.kernel)  # ops->device_group: generic_single_device_group
    await mutex_lock(group.mutex)
    group.devices.append(dev)
    dev.iommu_group = group
    if group.domain is not None:
        # a second master joins: the group's current domain is attached to it
        ret = await __iommu_device_set_domain(group, dev, group.domain, None, 0)
        if ret:
            # err_remove_gdev: out of the group again; iommu_deinit_device()
            group.devices.remove(dev)
            await ops.release_device(dev)
            dev.iommu_group = None
            dev.iommu = None
    else:
        ret = await iommu_setup_default_domain(group, def_domain_type)
    mutex_unlock(group.mutex)
    if ret:
        return ret
    iommu_event("probe", {"dev": dev})
    return 0


async def iommu_release_device(dev):
    """``iommu_release_device`` -> ``iommu_deinit_device``, under the group mutex."""
    group = dev.iommu_group
    if group is None or dev.iommu is None:
        return
    ops = dev_iommu_ops(dev)
    await mutex_lock(group.mutex)
    # If the driver provides release_domain, the core attaches it before
    # release_device() so that the idle IOMMU has a known translation.
    if not dev.iommu.attach_deferred and ops.release_domain is not None:
        release_domain = ops.release_domain
        if dev.iommu.require_direct and ops.identity_domain is not None and release_domain is ops.blocked_domain:
            release_domain = ops.identity_domain
        info = {"group": group, "dev": dev, "old": group.domain, "new": release_domain, "ret": None}
        iommu_event("attach_begin", info)
        ret = await ops.attach_dev(release_domain, dev, group.domain)
        iommu_event("attach_end", dict(info, ret=ret))
    await ops.release_device(dev)
    group.devices.remove(dev)
    # If this is the last driver to use the group then we must free the
    # domains before we do iommu_group_put().
    if not group.devices:
        if group.default_domain is not None:
            await iommu_domain_free(group.default_domain)
            group.default_domain = None
        if group.blocking_domain is not None:
            await iommu_domain_free(group.blocking_domain)
            group.blocking_domain = None
        group.domain = None
    mutex_unlock(group.mutex)
    dev.iommu_group = None
    dev.iommu = None
    iommu_event("release", {"dev": dev})


def iommu_set_fault_handler(domain, handler, token):
    """``iommu_set_fault_handler``: ``await handler(domain, dev, iova, flags, token)``
    is called by ``report_iommu_fault``, i.e. from the driver's IRQ handler
    (hard-IRQ context, with whatever locks the driver holds there)."""
    if domain is None:
        _warn("iommu_set_fault_handler(NULL)")
        return
    domain.handler = handler
    domain.handler_token = token


async def report_iommu_fault(domain, dev, iova, flags):
    """Call the domain's fault handler, if any; -ENOSYS without one."""
    cpu = current()
    if domain is None or getattr(domain, "freed", False):
        cpu.kernel.report(
            "invalid-access",
            f"report_iommu_fault({domain!r}): {'NULL' if domain is None else 'freed'} domain dereferenced",
            stacks={repr(cpu): model_stack(2)},
            cpu=cpu,
        )
        return -EINVAL
    iommu_event("fault", {"domain": domain, "dev": dev, "iova": iova, "flags": flags})
    if domain.handler is not None:
        return await domain.handler(domain, dev, iova, flags, domain.handler_token)
    return -ENOSYS
