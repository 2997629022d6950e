"""Generic power domains (drivers/pmdomain/core.c), as far as runtime PM needs them.

A :class:`GenericPmDomain` powers a set of devices together.  A device in
a domain has ``dev.pm_domain`` set, and runtime PM calls the domain's
callbacks instead of the driver's (``RPM_GET_CALLBACK`` looks at
``dev->pm_domain`` first), which call the driver's:

* ``genpd_runtime_suspend``: the driver's ``runtime_suspend``, then under
  the domain's lock ``genpd_power_off``: the domain powers off if every
  other device in it is runtime-suspended (``pm_runtime_suspended``: status
  suspended and runtime PM enabled; the device being suspended is the one
  allowed, ``one_dev_on``);
* ``genpd_runtime_resume``: under the lock ``genpd_power_on``, then the
  driver's ``runtime_resume`` (a failure powers the domain off again).

Powering off calls ``power_off()`` of every piece of hardware the domain
feeds (``genpd.hws``): an IOMMU loses its registers and, unless the
hardware is stated to retain it, its TLB.  Powering on leaves registers at
their reset values: the driver's resume must program them again.

Model simplifications: no governor (the Rockchip domains have none: power
off as soon as allowed), no subdomains, no performance states, no IRQ-safe
domains; system sleep only as its effect on power (``genpd_suspend_noirq``
powers the domain off once all its devices are suspended, whatever their
runtime state, and ``genpd_resume_noirq`` on: the callers are
model.workloads.dpm_suspend/dpm_resume, the devices' noirq callbacks are
not modelled); the domain starts powered (``genpd_dev_pm_attach`` powers it on for probe; the
``genpd_power_off_unused`` late initcall is not modelled).
"""

from __future__ import annotations

from errno import EBUSY

from .cpu import current
from .locks import Mutex, mutex_lock, mutex_unlock
from .pm import driver_pm_callback, pm_runtime_suspended

__all__ = [
    "GenericPmDomain",
    "pm_genpd_init",
    "pm_genpd_add_device",
    "genpd_runtime_suspend",
    "genpd_runtime_resume",
]

class GenericPmDomain:
    """``struct generic_pm_domain``: its devices, status and lock."""

    def __init__(self, name):
        self.name = name
        self.devices = []  # genpd->dev_list
        self.hws = []  # hardware it powers (each has power_off())
        self.on = True  # genpd->status == GENPD_STATE_ON
        self.mlock = Mutex("genpd->mlock")
        self.ops = _GenpdOps()

    def __repr__(self):
        return f"{self.name}({'on' if self.on else 'off'})"


class _GenpdOps:
    """``genpd->domain.ops``: the runtime callbacks runtime PM calls."""

    __slots__ = ()
    runtime_suspend = staticmethod(lambda dev: genpd_runtime_suspend(dev))
    runtime_resume = staticmethod(lambda dev: genpd_runtime_resume(dev))


def pm_genpd_init(name):
    return GenericPmDomain(name)


def pm_genpd_add_device(genpd, dev):
    """``pm_genpd_add_device``: ``dev`` is powered by ``genpd``."""
    genpd.devices.append(dev)
    dev.pm_domain = genpd


def _event(genpd, what):
    cpu = current()
    for fn in cpu.kernel.hooks.event:
        fn(cpu, "genpd", f"{genpd.name}: {what}")


def genpd_power_off(genpd, one_dev_on):
    """``genpd_power_off`` (genpd lock held): -EBUSY while a device is on."""
    if not genpd.on:
        return 0
    not_suspended = sum(1 for dev in genpd.devices if not pm_runtime_suspended(dev))
    if not_suspended > 1 or (not_suspended == 1 and not one_dev_on):
        return -EBUSY
    for hw in genpd.hws:
        hw.power_off()
    genpd.on = False
    _event(genpd, "power off")
    return 0


def genpd_sync_power_off(genpd):
    """``genpd_sync_power_off`` from ``genpd_suspend_noirq``, once every device
    of the domain went through the system suspend: off whatever their runtime
    state (runtime PM is disabled by then), no lock (noirq)."""
    if not genpd.on:
        return
    for hw in genpd.hws:
        hw.power_off()
    genpd.on = False
    _event(genpd, "power off (system sleep)")


def genpd_sync_power_on(genpd):
    """``genpd_sync_power_on`` from ``genpd_resume_noirq``."""
    genpd_power_on(genpd)


def genpd_power_on(genpd):
    """``genpd_power_on`` (genpd lock held)."""
    if genpd.on:
        return 0
    genpd.on = True
    _event(genpd, "power on")
    return 0


async def genpd_runtime_suspend(dev):
    genpd = dev.pm_domain
    cb = driver_pm_callback(dev, "runtime_suspend")
    ret = await cb(dev) if cb is not None else 0
    if ret:
        return ret
    await mutex_lock(genpd.mlock)
    genpd_power_off(genpd, True)
    mutex_unlock(genpd.mlock)
    return 0


async def genpd_runtime_resume(dev):
    genpd = dev.pm_domain
    await mutex_lock(genpd.mlock)
    ret = genpd_power_on(genpd)
    mutex_unlock(genpd.mlock)
    if ret:
        return ret
    cb = driver_pm_callback(dev, "runtime_resume")
    ret = await cb(dev) if cb is not None else 0
    if ret:
        await mutex_lock(genpd.mlock)
        genpd_power_off(genpd, True)
        mutex_unlock(genpd.mlock)
    return ret
