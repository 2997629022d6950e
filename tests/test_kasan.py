"""container_of() of an object that is not embedded: reported where KASAN would,
for every driver alike, once per search, and the runs go on past it."""

import json
import os

import stress
from model.drivers import VsiMainline
from model.kernel import GFP_KERNEL, kzalloc
from stress.checkers import default_checkers
from stress.soak.signature import signature
from stress.workload import driver_scenario, workload_config

OOB = "invalid-access in vsi_iommu_identity_attach"


def _hunt(driver, schedules=40, checkers=None, seed=0):
    return stress.explore(
        driver_scenario(driver, workload_config()),
        strategy="pct",
        schedules=schedules,
        seed=seed,
        keep_going=True,
        checkers=checkers,
    )


def _sigs(result):
    return [v.report["signature"] for v in result.violations]


def test_both_vsi_versions_report_the_identity_domain_lock_at_the_dereference():
    """v3 locks ``iommus_lock``, mainline ``lock``, of the bare static identity
    domain: the same defect, the same signature, at the spin_lock line."""
    for driver, field in (("vsi-v3", "iommus_lock"), ("vsi-mainline", "lock")):
        r = _hunt(driver)
        oob = [v for v in r.violations if v.report["signature"] == OOB]
        assert len(oob) == 1, (driver, _sigs(r))
        v = oob[0].report["violation"]
        assert v["message"].startswith("container_of(vsi_identity_domain, ") and f")->{field}: " in v["message"], v["message"]
        assert "BUG: KASAN: global-out-of-bounds in vsi_iommu_identity_attach" in v["splat"]
        frame = next(iter(v["stacks"].values()))[0]
        assert frame.startswith("vsi_iommu_identity_attach (model/drivers/"), frame


class LeakOnAlloc(VsiMainline):
    """vsi-mainline whose domain allocation forgets one object: a leak that
    only teardown's check can see, and teardown first runs the identity attach."""

    name = "test-leak-on-alloc"

    async def vsi_iommu_domain_alloc_paging(self, dev):
        domain = await super().vsi_iommu_domain_alloc_paging(dev)
        await kzalloc(64, GFP_KERNEL, tag="forgotten")
        return domain


def test_teardown_leak_checks_stay_live_after_the_kasan_report():
    """KASAN speaks once per boot (a search): the next schedules run through
    the identity attach and teardown's leak check finds the leak."""
    for seed in range(3):
        r = _hunt("tests.test_kasan:LeakOnAlloc", schedules=6, seed=seed)
        sigs = _sigs(r)
        assert OOB in sigs and any(s.startswith("leak") for s in sigs), sigs
        leak = next(v for v in r.violations if v.kind == "leak")
        assert leak.report["options"].get("kasan_reported") is True
        assert leak.report["schedule"] >= 1  # after the schedule KASAN spoke in


def test_without_the_kasan_checker_the_run_goes_on_through_static_memory():
    names = [c for c in default_checkers() if c != "kasan"]
    r = _hunt("tests.test_kasan:LeakOnAlloc", schedules=3, checkers=names)
    assert OOB not in _sigs(r)
    assert any(v.kind == "leak" and v.report["schedule"] == 0 for v in r.violations), _sigs(r)


def test_a_find_after_kasan_spoke_replays(tmp_path):
    from stress.cli import main

    out = tmp_path / "r"
    main(["hunt", "--driver", "tests.test_kasan:LeakOnAlloc", "--all-kinds", "--schedules", "4", "--out", str(out), "--json"])
    leaks = [n for n in os.listdir(out) if n.endswith(".json") and "-leak-" in n]
    assert leaks
    rep = json.load(open(out / leaks[0]))
    assert rep["options"]["kasan_reported"] is True
    assert signature(rep["violation"]).startswith("leak")
    assert main(["replay", str(out / leaks[0])]) == 1  # reproduced: the same leak, KASAN silent
