"""The text form of a report: what a reviewer pastes into a reply."""

import json

import stress
from model.hw.mmu import IommuHw
from model.hw.regs import reg_name
from model.kernel import Kernel
from stress.report import actor_order, related_rows, report_name, report_text, timeline_lines
from stress.trace import Tracer
from stress.workload import driver_scenario, workload_config


def _report(timeline, message="m", splat="BUG: x", stacks=None, target=None):
    return {
        "tool": "0",
        "target": target or {"driver": "vsi-v3", "workload": {}},
        "strategy": "pct",
        "seed": 0,
        "schedule": 7,
        "decisions": [],
        "preemptions": 0,
        "violation": {"kind": "data-race", "message": message, "splat": splat, "stacks": stacks or {}},
        "timeline": timeline,
    }


# -- 1. registers by name -------------------------------------------------------------


def test_registers_print_by_name_with_hex_offset():
    assert reg_name("vsi", 0x184) == "FLUSH(0x184)"
    assert reg_name("vsi", 0x388) == "AHB_CONTROL(0x388)"
    assert reg_name("rk", 0x08) == "COMMAND(0x8)"
    assert reg_name("vsi", 0x1F0) == "0x1f0"  # not in the layout: hex, never decimal


def test_trace_names_the_register_of_the_mmus_layout():
    k = Kernel()
    hw = IommuHw(k, "iommu0", irq=1, layout="vsi")
    t = Tracer(k)
    t.mmio(None, hw, 0x184, 0x10, True)
    t.mmio(None, hw, 0x384, 0x1, False)
    assert [e[3] for e in t.entries] == ["writel(0x10, iommu0 + FLUSH(0x184))", "readl(iommu0 + STATUS(0x384)) = 0x1"]


# -- 3. stacks once --------------------------------------------------------------------


def test_a_stack_the_splat_shows_is_not_printed_again():
    frames = ["f (model/x.py:1)", "g (model/x.py:2)"]
    splat = "BUG: KCSAN: data-race in f / h\n\n" + "\n".join(" " + f for f in frames)
    text = report_text(_report([], splat=splat, stacks={"write CPU0": frames, "read CPU1": ["h (model/y.py:3)"]}))
    assert text.count("f (model/x.py:1)") == 1
    assert "read CPU1:\n  h (model/y.py:3)" in text  # not in the splat: printed


# -- 4. the schedule table -------------------------------------------------------------


def test_cells_wrap_and_are_never_cut():
    long = "load vsi_iommu->domain = vsi_identity_domain " * 3
    rows = [[0, "CPU1", "runs", ""], [1, "CPU0", "load", long.strip()], [2, "CPU1", "may-sleep", "iommu_map(GFP_KERNEL_ACCOUNT)"]]
    lines = timeline_lines(rows)
    text = " ".join(" ".join(line.split()) for line in lines)
    assert " ".join(long.split()) in text  # every word, in order
    assert "iommu_map(GFP_KERNEL_ACCOUNT)" in text
    assert all(line == line.rstrip() for line in lines)


def test_columns_in_cpu_order():
    rows = [[0, "pm_wq", "runs", ""], [1, "CPU10", "runs", ""], [2, "CPU1", "runs", ""], [3, "CPU0", "runs", ""]]
    assert actor_order(rows) == ["CPU0", "CPU1", "CPU10", "pm_wq"]
    assert timeline_lines(rows)[0].split() == ["step", "CPU0", "CPU1", "CPU10", "pm_wq"]


def test_group_mutex_prints_one_ampersand():
    from model.iommu.core import IommuGroup

    assert repr(IommuGroup(Kernel()).mutex) == "&group->mutex"


def test_replay_line_names_the_report_file():
    rep = _report([[0, "CPU0", "runs", ""]])
    assert "iommu-stress replay reports/x.json" in report_text(rep, path="reports/x.json")
    assert f"iommu-stress replay {report_name(rep)}.json" in report_text(rep)
    assert "REPORT.json" not in report_text(rep)


def test_no_line_of_a_report_ends_in_a_space():
    rows = [[0, "CPU0", "runs", ""], [1, "CPU1", "runs", ""], [2, "CPU0", "done", ""]]
    assert all(line == line.rstrip() for line in report_text(_report(rows)).splitlines())


# -- 5. boot and teardown events that explain the find -----------------------------------

_BOOT = [
    [0, "boot", "iommu", "domain_alloc dma-domain0"],
    [1, "boot", "iommu", "attach_dev vpu0: NULL -> dma-domain0"],
    [2, "boot", "store", "vsi_iommu_domain->iommus"],
    [3, "boot", "iommu", "attach_dev vpu0 -> dma-domain0 = 0"],
    [4, "boot", "iommu", "domain_alloc dma-domain1"],
    [5, "boot", "rpm", "vpu1: resuming"],
    [6, "CPU0", "runs", ""],
    [7, "teardown", "iommu", "domain_free dma-domain0"],
    [8, "teardown", "load", "vsi_iommu_domain->iommus = (vsi_iommu(iommu0),)"],
    [9, "teardown", "iommu", "domain_free dma-domain1"],
    [10, "-", "violation", "assertion: ..."],
]


def test_boot_events_touching_a_named_object_are_shown():
    v = {"message": "vsi_iommu_domain_free(dma-domain0): WARN_ON(!list_empty(&vsi_domain->iommus))"}
    keep, names = related_rows(_BOOT, v)
    assert keep == {0, 1, 2, 3, 7, 8}  # the attach and the free, with their steps
    assert names == ["dma-domain0"]
    text = report_text(_report(_BOOT, message=v["message"]))
    assert "boot: iommu attach_dev vpu0: NULL -> dma-domain0" in text
    assert "teardown: load vsi_iommu_domain->iommus = (vsi_iommu(iommu0),)" in text
    assert "dma-domain1" not in text  # an object the violation does not name stays folded
    assert "(3 boot and teardown events omitted; shown: the 6 that touch dma-domain0" in text
    full = report_text(_report(_BOOT, message=v["message"]), full=True)
    assert "domain_alloc dma-domain1" in full and "omitted" not in full


def test_a_name_matches_as_a_whole_word_only():
    rows = [[0, "boot", "rpm", "vpu1: resuming"], [1, "boot", "rpm", "vpu10: resuming"]]
    assert related_rows(rows, {"message": "vpu1 read 0x1000"})[0] == {0}


def test_default_hunt_assertion_report_shows_the_boot_attach(tmp_path):
    """vsi-v3's WARN_ON(!list_empty(iommus)) in domain_free: the attach that
    put iommu0 on the list ran at boot; the report shows it."""
    scenario = driver_scenario("vsi-v3", workload_config())
    result = stress.explore(scenario, strategy="pct", schedules=20, seed=0, keep_going=True)
    reports = [v.report for v in result.violations if "WARN_ON(!list_empty" in v.message]
    assert reports, [v.message for v in result.violations]
    text = report_text(reports[0])
    assert "boot: iommu attach_dev vpu0: NULL -> dma-domain0" in text, text
    assert "teardown: iommu domain_free dma-domain0" in text, text


# -- 6. file names ---------------------------------------------------------------------


def test_plugin_report_is_named_by_the_drivers_name():
    rep = _report([], target={"driver": "tests.plugins.drivers:MyIommu", "workload": {}})
    assert report_name(rep) == "my-iommu-data-race-s0-7"
    rep = _report([], target={"scenario": "stress.examples:abba"})
    assert report_name(rep) == "abba-data-race-s0-7"


def test_written_report_names_are_deterministic(tmp_path):
    rep = _report([[0, "CPU0", "runs", ""]])
    rep.update(format="iommu-stress-report", version=2, options={})
    path = stress.report.write_report(rep, str(tmp_path))
    assert path.endswith("vsi-v3-data-race-s0-7.json")
    assert json.load(open(path))["schedule"] == 7


def test_written_text_names_the_written_json(tmp_path):
    rep = _report([[0, "CPU0", "runs", ""]])
    rep.update(format="iommu-stress-report", version=2, options={})
    path = stress.report.write_report(rep, str(tmp_path / "reports"))
    txt = open(path[: -len(".json")] + ".txt").read()
    assert f"(replay with: iommu-stress replay {path})" in txt


def test_isolation_lists_each_allowed_domain_once():
    from stress.oracles.isolation import IsolationOracle

    class Group:
        domain = "d0"

    class Dev:
        iommu_group = Group()

    o = IsolationOracle.__new__(IsolationOracle)
    dev = Dev()
    o.attaching, o.attached = {dev: ["d0", "d1", "d0"]}, {dev: "d0"}
    assert o._allowed(dev) == ["d0", "d1"]
