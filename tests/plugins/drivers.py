"""User drivers, as a user outside the package would write them."""

from model.drivers.vsi_fixed import VsiFixed
from model.kernel import GFP_ATOMIC, GFP_DMA32


class MyIommu(VsiFixed):
    """vsi-fixed, but page tables allocated the way v3 did (the README example)."""

    name = "my-iommu"
    summary = "vsi-fixed with forced GFP_ATOMIC page tables"

    async def vsi_dte_get_page_table(self, vsi_domain, iova, gfp):
        return await super().vsi_dte_get_page_table(vsi_domain, iova, GFP_ATOMIC | GFP_DMA32)


class Crashing(VsiFixed):
    """A driver whose map raises (a bug in the driver, not in the tool)."""

    name = "crashing"

    async def vsi_iommu_map(self, *args):
        raise ZeroDivisionError("oops in map")


class NotADriver:
    """Has a name but none of the ops."""

    name = "not-a-driver"
