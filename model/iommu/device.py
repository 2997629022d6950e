"""``struct device`` and the platform/firmware glue the IOMMU drivers use.

A master :class:`Device` names its IOMMU through ``dev.fwspec``
(``iommus = <&iommu0>`` in the device tree): the IOMMU's
:class:`PlatformDevice`, whose ``hw`` holds the resources (registers,
interrupt, clocks) of one :class:`~model.hw.IommuHw`.
"""

from __future__ import annotations

from model.kernel.dma import DMA_BIT_MASK
from model.kernel.pm import DevPmInfo

__all__ = [
    "Device",
    "PlatformDevice",
    "DevIommu",
    "IommuFwspec",
    "IommuDevice",
    "dev_iommu_priv_get",
    "dev_iommu_priv_set",
    "dev_iommu_ops",
    "dev_iommu_fwspec_get",
    "dev_get_drvdata",
    "platform_set_drvdata",
    "platform_get_irq",
    "devm_platform_ioremap_resource",
    "platform_driver_probe",
    "iommu_device_register",
    "iommu_device_unregister",
]


class Device:
    """``struct device``: name, DMA mask, runtime PM, IOMMU state."""

    def __init__(self, kernel, name, dma_mask=DMA_BIT_MASK(32)):
        self.kernel = kernel
        self.name = name
        self.dma_mask = dma_mask
        self.power = DevPmInfo(kernel, self)
        self.pm_ops = None  # the bound driver's runtime PM callbacks
        self.pm_domain = None  # a GenericPmDomain powering it (model.kernel.genpd)
        self.driver = None
        self.driver_data = None
        self.iommu = None  # struct dev_iommu, while probed
        self.iommu_group = None
        self.fwspec = None
        self.iommu_device = None  # an IOMMU's own struct iommu_device, once registered

    def __repr__(self):
        return self.name


class PlatformDevice(Device):
    """``struct platform_device`` of an IOMMU: ``hw`` is its MMIO, IRQ and clocks."""

    def __init__(self, kernel, name, hw):
        super().__init__(kernel, name)
        self.hw = hw


class DevIommu:
    """``struct dev_iommu``."""

    __slots__ = ("ops", "iommu_dev", "priv", "attach_deferred", "require_direct")

    def __init__(self, ops):
        self.ops = ops
        self.iommu_dev = None
        self.priv = None
        self.attach_deferred = False
        self.require_direct = False


class IommuFwspec:
    """``struct iommu_fwspec``: which IOMMU this master sits behind."""

    __slots__ = ("iommu_fwnode",)

    def __init__(self, iommu_pdev):
        self.iommu_fwnode = iommu_pdev


class IommuDevice:
    """``struct iommu_device``: an IOMMU instance as the core knows it."""

    __slots__ = ("ops", "dev")

    def __init__(self):
        self.ops = None
        self.dev = None


def dev_iommu_priv_get(dev):
    return dev.iommu.priv if dev.iommu is not None else None


def dev_iommu_priv_set(dev, priv):
    dev.iommu.priv = priv


def dev_iommu_ops(dev):
    return dev.iommu.ops


def dev_iommu_fwspec_get(dev):
    return dev.fwspec


def dev_get_drvdata(dev):
    return dev.driver_data


def platform_set_drvdata(pdev, data):
    pdev.driver_data = data


def platform_get_irq(pdev, index):
    return pdev.hw.irq


def devm_platform_ioremap_resource(pdev, index):
    """``iommu->regs``: the hardware, for ``readl``/``writel``."""
    return pdev.hw


async def platform_driver_probe(drv, pdev):
    """Bind ``drv`` to ``pdev``: its runtime PM callbacks, then ``drv.probe(pdev)``."""
    pdev.driver = drv
    pdev.pm_ops = drv  # .driver.pm = &xxx_pm_ops: drv.runtime_suspend/resume(dev)
    ret = await drv.probe(pdev)
    if ret:
        pdev.driver = None
        pdev.pm_ops = None
    return ret


def iommu_device_register(iommu, ops, hwdev):
    iommu.ops = ops
    iommu.dev = hwdev
    hwdev.iommu_device = iommu
    return 0


def iommu_device_unregister(iommu):
    if iommu.dev is not None:
        iommu.dev.iommu_device = None
