"""SoC profiles: how an IOMMU is wired to its master's clocks and power.

No driver source says this; the device tree does.  A profile is the set of
hardware facts the model takes from it, each with where it comes from, so a
report can say which SoC its verdict holds on (the workload records the
profile by name).

* ``rk3588`` (the default: the SoC the VSI IOMMU ships in).  The AV1
  decoder and its MMU name the same clocks and the same power domain
  (arch/arm64/boot/dts/rockchip/rk3588-base.dtsi, ``av1d`` and ``av1d_mmu``:
  ``clocks = <&cru ACLK_AV1>, <&cru PCLK_AV1>``, ``power-domains = <&power
  RK3588_PD_AV1>``; every Rockchip IOMMU node and its master do the same).
  So the IOMMU is clocked while either driver holds the clocks, and the
  domain (drivers/pmdomain/rockchip/pm-domains.c, a genpd with no
  governor) powers off as soon as both devices are runtime-suspended,
  resetting the IOMMU's registers and, unless the TLB is stated to retain
  its contents across ``power-off``, its TLB.
* ``standalone``: the IOMMU has clocks of its own and an always-on power
  supply (what the model did before profiles, and what a reader should
  assume of a SoC whose device tree gives the IOMMU its own clocks).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SocProfile", "SOCS", "DEFAULT_SOC", "get_soc"]


@dataclass(frozen=True)
class SocProfile:
    name: str
    shared_clocks: bool  # the master's driver and the IOMMU's feed one clock
    power_domain: bool  # master and IOMMU in one genpd domain (off when both suspend)
    source: str  # where the facts come from


SOCS = {
    "rk3588": SocProfile(
        "rk3588",
        shared_clocks=True,
        power_domain=True,
        source="rk3588-base.dtsi: av1d/av1d_mmu share ACLK_AV1, PCLK_AV1 and RK3588_PD_AV1",
    ),
    "standalone": SocProfile(
        "standalone",
        shared_clocks=False,
        power_domain=False,
        source="an IOMMU with clocks of its own and always-on power",
    ),
}
DEFAULT_SOC = "rk3588"


def get_soc(name):
    """The profile called ``name``; ValueError naming the known ones."""
    try:
        return SOCS[name]
    except KeyError:
        raise ValueError(f"unknown SoC profile {name!r} (choose from {', '.join(SOCS)})") from None
