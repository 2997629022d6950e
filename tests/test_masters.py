"""Several masters behind one IOMMU, and more IOMMU instances.

``SystemConfig.masters`` (``--masters``) puts N masters behind every IOMMU:
device ``k`` of a program is ``vpu{k}``, behind IOMMU ``k // N``.
``group`` (``--group``) says how the core groups them, as a driver's
``device_group`` decides in Linux:

* ``own`` (the default): a group per master (``generic_single_device_group``,
  what vsi-iommu.c declares).  The VSI and Rockchip MMUs have ONE table base
  per instance, so a second master in a group of its own cannot be isolated
  from the first: probing it, or attaching a domain to it, switches the
  translation of both.  The isolation oracle says so at once
  (``dma-isolation``/``stale-tlb``: the first master's DMA goes through a
  domain its group never had) - a true finding about that pairing of
  hardware and ``device_group``, not a false alarm;
* ``shared``: one group per IOMMU, which every master joins
  (``rk_iommu_device_group`` returns ``iommu->group``): the core attaches
  the group's current domain to a joining master (``attach_dev(domain, dev,
  NULL)``), ``iommu_attach_device`` refuses a group of two (-EINVAL),
  ownership and the default domain are the group's, and the user's books
  (claims, the attached domain) are kept per group.  vsi-fixed and rk-fixed
  are clean there.
"""

from errno import EBUSY, EINVAL, EPERM

import pytest

import stress
from model.drivers.rk_fixed import RkFixed
from model.drivers.vsi_fixed import VsiFixed
from model.iommu import iommu_attach_device
from model.kernel import Kernel
from model.workloads import (
    IOMMU_IRQ_BASE,
    SystemConfig,
    build_scenario,
    iova_of,
    op_attach,
    op_claim_dma_owner,
    op_dma,
    op_domain_free,
    op_map,
    op_release_dma_owner,
    op_unbind,
)
from stress.cli import main
from stress.workload import driver_scenario, workload_config

from .test_model import straight as _straight

X = iova_of(0)


class Events:
    def __init__(self):
        self.log = []

    def iommu(self, cpu, what, info):
        self.log.append((what, dict(info)))


def straight(test, driver=VsiFixed, config=None):
    """Boot a System, run ``await test(sys, events)`` on one CPU, tear down
    (tests/test_model.py's, with this module's events and vsi-fixed)."""
    return _straight(test, driver, config, Events)


# -- configuration ----------------------------------------------------------------------


def test_config_defaults_and_bad_values():
    cfg = SystemConfig.from_dict({})
    assert (cfg.masters, cfg.group) == (1, "own")
    for bad, needle in (({"masters": 0}, "masters"), ({"masters": "2"}, "masters"), ({"iommus": 0}, "iommus"), ({"group": "pairs"}, "group")):
        with pytest.raises(ValueError, match=needle):
            SystemConfig.from_dict(bad)


def test_program_devices_range_over_every_master():
    prog = [["dma", {"dev": 5, "iova": 0}]]
    build_scenario(Kernel(), VsiFixed, {"iommus": 3, "masters": 2, "programs": [prog]})  # vpu5: IOMMU 2's second
    with pytest.raises(ValueError, match=r"device 6 out of range \(6 masters: iommus=3 x masters=2\)"):
        build_scenario(Kernel(), VsiFixed, {"iommus": 3, "masters": 2, "programs": [[["dma", {"dev": 6, "iova": 0}]]]})
    with pytest.raises(ValueError, match="out of range"):
        build_scenario(Kernel(), VsiFixed, {"programs": [[["dma", {"dev": 2, "iova": 0}]]]})


# -- the machine ---------------------------------------------------------------------------


@pytest.mark.parametrize("driver", [VsiFixed, RkFixed])
def test_four_iommus_two_masters_each_wired_apart(driver):
    async def t(sys, ev):
        assert [d.name for d in sys.devices] == [f"vpu{k}" for k in range(8)]
        assert [h.name for h in sys.hws] == ["iommu0", "iommu1", "iommu2", "iommu3"]
        assert [h.irq for h in sys.hws] == [IOMMU_IRQ_BASE + i for i in range(4)]  # a line each
        for k, dev in enumerate(sys.devices):
            pdev = sys.iommus[k // 2]
            assert dev.fwspec.iommu_fwnode is pdev and sys.masters[k].hw is pdev.hw
            assert dev.pm_domain is pdev.hw.power_domain  # rk3588: master and MMU in one genpd
        assert len({h.power_domain for h in sys.hws}) == 4
        groups = [d.iommu_group for d in sys.devices]
        assert [g.devices for g in groups[::2]] == [sys.devices[i : i + 2] for i in range(0, 8, 2)]
        assert all(groups[k] is groups[k + 1] for k in range(0, 8, 2)) and len(set(groups)) == 4
        # the second master joined the group: its domain attached with old = NULL
        joins = [i for w, i in ev.log if w == "attach_begin" and i["dev"] is sys.devices[1]]
        assert joins and joins[0]["old"] is None and joins[0]["new"] is groups[0].default_domain
        assert sum(1 for w, _ in ev.log if w == "domain_alloc") == 4 + 3  # a default domain per group, 3 user slots
        # every master DMAs through its IOMMU's default domain
        for k in range(8):
            assert groups[k].domain is groups[k].default_domain

    k, sys = straight(t, driver, {"iommus": 4, "masters": 2, "group": "shared"})
    assert k.mm.live() == []  # teardown gave everything back


def test_own_groups_are_one_per_master():
    async def t(sys, ev):
        groups = [d.iommu_group for d in sys.devices]
        assert len(set(groups)) == 6 and all(g.devices == [d] for g, d in zip(groups, sys.devices))

    straight(t, VsiFixed, {"iommus": 3, "masters": 2})


def test_one_master_is_the_machine_of_before():
    """masters=1 (either group mode): the same devices, groups and names."""

    async def t(sys, ev):
        assert [d.name for d in sys.devices] == ["vpu0", "vpu1"]
        assert [d.iommu_group.name for d in sys.devices] == ["group0", "group1"]

    for group in ("own", "shared"):
        straight(t, VsiFixed, {"group": group})


def test_a_shared_group_is_owned_attached_and_released_as_one():
    async def t(sys, ev):
        v0, v1 = sys.devices[0], sys.devices[1]
        group = v0.iommu_group
        # a kernel driver's own domain: not on a group of two (iommu_attach_device)
        assert await iommu_attach_device(sys.slots[0], v0) == -EINVAL
        assert await op_attach(sys, 0, 0) == -EINVAL
        # VFIO may claim the group only when no kernel driver uses any of its devices
        assert await op_unbind(sys, 0) == 0
        assert await op_claim_dma_owner(sys, 0) == -EPERM  # vpu1 is still bound
        assert await op_unbind(sys, 1) == 0
        assert await op_claim_dma_owner(sys, 0) == 0
        assert await op_claim_dma_owner(sys, 1) == 0  # the same owner: one more claim on the group
        assert group.owner_cnt == 2 and group.domain is group.blocking_domain
        assert await op_map(sys, 0, X) == 0
        assert await op_attach(sys, 1, 0) == 0  # through vpu1: the group goes to d0
        assert group.domain is sys.slots[0]
        assert sys.attached[v0] is sys.slots[0]  # the books are the group's
        a = await op_dma(sys, 0, X)  # vpu0 translates through d0 as well
        assert a.outcome == "walk"
        assert await op_release_dma_owner(sys, 0) == 0
        assert group.owner_cnt == 1 and group.domain is sys.slots[0]  # still owned, still attached
        assert await op_domain_free(sys, 0) == -EBUSY  # attached to the group: not freed under it
        assert await op_release_dma_owner(sys, 1) == 0
        assert group.owner is None and group.domain is group.default_domain
        assert sys.attached[v1] is None

    k, sys = straight(t, VsiFixed, {"masters": 2, "group": "shared"})
    assert k.mm.live() == []


# -- hunts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "driver, iommus",
    [("vsi-fixed", 4), ("rk-fixed", 3)],
)
def test_fixed_drivers_clean_with_shared_groups(driver, iommus):
    cfg = workload_config(iommus=iommus, masters=2, group="shared")
    r = stress.explore(driver_scenario(driver, cfg), strategy="pct", schedules=150, seed=0, shrink=False)
    assert r.schedules == 150
    assert not r.violations, r.violations[0].report["violation"]["splat"]


def test_own_groups_on_one_table_base_break_isolation():
    """Two masters of one VSI MMU in groups of their own: the second's probe
    points the MMU at its own default domain, and the first master's DMA
    goes through a domain its group never had.  True of the hardware with
    generic_single_device_group (vsi-iommu.c's), which is why Rockchip
    keeps one group per IOMMU."""
    runs = [stress.explore(driver_scenario("vsi-fixed", workload_config(masters=2)), strategy="pct", schedules=100, seed=0) for _ in range(2)]
    v = runs[0].violations[0]
    assert v.kind in ("dma-isolation", "stale-tlb")
    assert "which the device may not use now" in v.message
    w = runs[1].violations[0]  # the same search twice: the same find, the same shrunk schedule
    assert (w.message, w.report["decisions"], w.report["target"]) == (v.message, v.report["decisions"], v.report["target"])


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, needle",
    [
        (["hunt", "--driver", "vsi-fixed", "--masters", "0"], "--masters: expected a positive number"),
        (["hunt", "--driver", "vsi-fixed", "--masters", "two"], "--masters: expected a positive number"),
        (["hunt", "--driver", "vsi-fixed", "--group", "pairs"], "--group: expected one of own, shared"),
        (["hunt", "--scenario", "stress.examples:abba", "--masters", "2"], "--masters is a parameter of a driver workload"),
        (["hunt", "--scenario", "stress.examples:abba", "--group", "shared"], "--group is a parameter of a driver workload"),
    ],
)
def test_bad_masters_or_group_is_one_line_exit_2(args, needle, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_cli_masters_and_group_reach_the_workload(tmp_path, capsys):
    import json

    rc = main(["hunt", "--driver", "vsi-fixed", "--masters", "2", "--schedules", "30", "--json", "--out", str(tmp_path)])
    assert rc == 1  # own groups on one table base: see above
    out = json.loads(capsys.readouterr().out)
    (name,) = [n for n in (tmp_path).iterdir() if n.suffix == ".json"]
    report = json.loads(name.read_text())
    assert report["target"]["workload"]["masters"] == 2 and "group" not in report["target"]["workload"]
    assert out["violation"]["kind"] in ("dma-isolation", "stale-tlb")
    rc = main(["hunt", "--driver", "vsi-fixed", "--masters", "2", "--group", "shared", "--schedules", "30", "--json", "--out", str(tmp_path / "s")])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["violation"] is None
