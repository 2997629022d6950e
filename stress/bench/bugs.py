"""What the campaign hunts: every zoo bug and every finding in vsi-mainline.

A :class:`Bug` is a driver, the hardware of its workload, the checkers it
is hunted with, and the kinds that count as finding it.  :func:`all_bugs`
lists them in a fixed order: the zoo (``model.drivers.mutants.ZOO``, B1,
B2, ... whatever it holds now) and then :data:`MAINLINE`, the distinct
kinds ``hunt --driver vsi-mainline --all-kinds`` reports (the README's
driver history), each one real defect of the merged driver.

A *find* is the first violation whose kind is among the bug's kinds; a
violation of another kind first does not end the hunt (the campaign keeps
going past it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Bug", "MAINLINE", "ZOO_CHECKERS_WITHOUT", "all_bugs", "bug_ids", "find_bugs"]


@dataclass(frozen=True)
class Bug:
    """One row of the campaign: what is hunted and what counts as finding it."""

    id: str  # "B4", "mainline stale-tlb"
    driver: str
    kinds: tuple  # a violation of one of these kinds is a find
    hardware: dict = field(default_factory=dict)  # workload_config(**hardware)
    without: tuple = ()  # checkers left out (every other one of default_checkers() is on)
    others: bool = False  # the driver has defects of other kinds too (they may show first)
    note: str = ""

    def checkers(self):
        """The checker names to hunt with, or None for every checker (explore's default)."""
        if not self.without:
            return None
        from ..checkers import default_checkers

        return [c for c in default_checkers() if c not in self.without]

    def workload(self):
        from ..workload import workload_config

        return workload_config(**self.hardware)


#: zoo bugs hunted without a checker (as tests/test_zoo.py's PLAN does): B5's
#: unlocked suspend is first the data race on iommu->enable it is made of, and
#: a schedule ends at its first violation, so with the race checker on the
#: consequence (mmio-while-suspended) is never reached
ZOO_CHECKERS_WITHOUT = {"B5": ("race",)}

#: TLB entries survive the power domain switching off: what vsi-mainline's
#: stale TLB needs (on RK3588 genpd powers the IOMMU off in system sleep)
_ALL_RETENTION = ["disable", "clock-off", "power-off"]

#: the distinct findings of ``hunt --driver vsi-mainline --all-kinds`` (pct,
#: seed 0, 3000 schedules: the first schedule of each in brackets), one row per
#: kind; the README's driver history shows each report
def _mainline(kind, note, **hardware):
    return Bug(f"mainline {kind}", "vsi-mainline", (kind,), hardware=hardware, others=True, note=note)


MAINLINE = (
    _mainline("invalid-access", "identity attach takes container_of(vsi_identity_domain)->lock [0]"),
    _mainline("lock-inversion", "fault handler: vsi_iommu_irq holds iommu->lock, iova_to_phys takes the domain's [25]"),
    _mainline("data-race", "any of its data races on vsi_iommu_domain->iommus and vsi_iommu->enable [45]"),
    _mainline("sleep-in-atomic", "pm_runtime_resume_and_get in vsi_iommu_irq, hard-IRQ context [70]"),
    _mainline("leak", "vsi_iommu_flush_tlb's pm_runtime_get never put [109]"),
    _mainline(
        "stale-tlb",
        "--tlb-retention disable,clock-off,power-off: an unmapped IOVA through a TLB that outlived suspend [97]",
        tlb_retention=_ALL_RETENTION,
    ),
)


def _zoo():
    from model.drivers.mutants import ZOO

    out = []
    for bid, name, _cls, kind in ZOO:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        out.append(Bug(bid, name, tuple(kinds), without=ZOO_CHECKERS_WITHOUT.get(bid, ())))
    return out


def all_bugs():
    """Every bug of the campaign, the zoo first (in ZOO's order), then vsi-mainline's."""
    return [*_zoo(), *MAINLINE]


def bug_ids():
    return [b.id for b in all_bugs()]


def _key(text):
    return "-".join(text.lower().split())


def find_bugs(ids):
    """The bugs named by ``ids``, in the campaign's order.

    An id is spelled as :func:`bug_ids` does, case-insensitive, a space or a
    dash alike (``B4``, ``mainline-stale-tlb``); ``zoo`` and ``mainline``
    name their whole group.  ValueError names the first unknown one.
    """
    bugs = all_bugs()
    groups = {"zoo": [b for b in bugs if b.driver != "vsi-mainline"], "mainline": [b for b in bugs if b.driver == "vsi-mainline"]}
    wanted = set()
    for i in ids:
        k = _key(i)
        if k in groups:
            wanted.update(b.id for b in groups[k])
            continue
        match = [b for b in bugs if _key(b.id) == k]
        if not match:
            raise ValueError(f"unknown bug {i!r} (choose from zoo, mainline, {', '.join(bug_ids())})")
        wanted.add(match[0].id)
    return [b for b in bugs if b.id in wanted]
