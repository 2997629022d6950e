"""Coverage of a soak's batches: ``overlaps`` (operation kinds in flight at once) and ``functions``
(the driver's functions reached), in the ``batch`` events, the state and ``soak_start``."""

import json
import os
import subprocess
import sys

import pytest

from stress.soak import batch as soak_batch
from stress.soak.batch import BatchSpec, _Coverage, driver_functions, run_batch
from stress.soak.events import read_events
from stress.soak.findings import SoakState, load_state
from stress.workload import OP_KINDS, workload_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _soak_exe():
    return os.path.join(os.path.dirname(sys.executable), "iommu-stress")


def test_tiny_soak_records_overlaps_and_functions(tmp_path):
    soakdir = str(tmp_path / "soak")
    cmd = [_soak_exe(), "soak", "--driver", "vsi-fixed", "--schedules", "300", "--workers", "1", "--batch", "100"]
    r = subprocess.run([*cmd, "--dir", soakdir, "--json", "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    events, bad = read_events(os.path.join(soakdir, "events.jsonl"))
    assert bad == 0
    (start,) = [e for e in events if e["event"] == "soak_start"]
    listed = start["driver_functions"]
    assert listed == sorted(listed) and listed == driver_functions(start["target"])
    assert {"map_pages", "attach_dev", "vsi_iommu_map", "vsi_iommu_attach_device"} <= set(listed)
    batches = [e for e in events if e["event"] == "batch"]
    assert len(batches) == 3
    reached = {}
    for e in batches:
        assert e["overlaps"] and e["functions"]
        for key, n in e["overlaps"].items():
            a, b = key.split("|")
            assert a <= b and a in OP_KINDS and b in OP_KINDS, key
            assert 1 <= n <= e["schedules"]  # schedules, at most once per pair each
        assert list(e["overlaps"]) == sorted(e["overlaps"]) and list(e["functions"]) == sorted(e["functions"])
        assert set(e["functions"]) <= set(listed)
        assert all(n > 0 for n in e["functions"].values())
        for name, n in e["functions"].items():
            reached[name] = reached.get(name, 0) + n
    for entry in ("map_pages", "attach_dev", "vsi_iommu_map", "vsi_iommu_attach_device"):
        assert reached.get(entry), entry
    # each core entry point goes through its driver function
    assert reached["map_pages"] == reached["vsi_iommu_map"]
    # the state sums them like ops
    cov = load_state(soakdir).coverage
    assert cov["functions"] == reached
    overlaps = {}
    for e in batches:
        for key, n in e["overlaps"].items():
            overlaps[key] = overlaps.get(key, 0) + n
    assert cov["overlaps"] == overlaps


def test_scenario_target_has_no_driver_functions():
    assert driver_functions({"scenario": "tests.whatever:scenario"}) == []


class _Cpu:
    def __init__(self, n):
        self.n = n


def test_overlap_counting_by_hand():
    cov = _Coverage()
    c0, c1, c2 = _Cpu(0), _Cpu(1), _Cpu(2)
    # schedule 1
    cov.new_run()
    cov.op_begin(c0, "map(d0, 0x1000, 1p)")
    cov.op_begin(c1, "unmap(d0, 0x1000, 1p)")  # map in flight on c0: map|unmap
    cov.op_end(c1, "unmap(d0, 0x1000, 1p)")
    cov.op_begin(c1, "unmap(d0, 0x2000, 1p)")  # again in this schedule: not counted twice
    cov.op_end(c0, "map(d0, 0x1000, 1p)")
    cov.op_begin(c0, "attach(dev0, d0)")  # unmap still in flight on c1
    cov.op_end(c0, "attach(dev0, d0)")
    cov.op_end(c1, "unmap(d0, 0x2000, 1p)")
    cov.op_begin(c2, "map(d1, 0x1000, 1p)")  # nothing in flight: no overlap
    cov.op_end(c2, "map(d1, 0x1000, 1p)")
    cov.op_begin(c2, "map(d1, 0x3000, 1p)")
    cov.op_begin(c2, "map(d1, 0x4000, 1p)")  # the same CPU (the first one crashed): no overlap
    cov.op_end(c2, None)  # the CPU's body ended
    cov.op_begin(c0, "map(d0, 0x5000, 1p)")
    cov.op_begin(c1, "map(d0, 0x6000, 1p)")  # two maps on two CPUs
    assert cov.overlap_counts() == {"attach|unmap": 1, "map|map": 1, "map|unmap": 1}
    # schedule 2: CPUs and in-flight operations start afresh (c0's map did not end)
    cov.new_run()
    cov.op_begin(c1, "unmap(d0, 0x1000, 1p)")
    cov.op_begin(c2, "map(d0, 0x1000, 1p)")
    cov.op_begin(c0, "attach(vpu0, identity)")  # overlaps both
    assert cov.overlap_counts() == {"attach_identity|map": 1, "attach_identity|unmap": 1, "attach|unmap": 1, "map|map": 1, "map|unmap": 2}
    cov.op_begin(c1, "domain_alloc(d2)")  # c1's unmap crashed: replaced; the workload's kind is dom_alloc
    assert cov.overlap_counts() == {
        "attach_identity|dom_alloc": 1,
        "attach_identity|map": 1,
        "attach_identity|unmap": 1,
        "attach|unmap": 1,
        "dom_alloc|map": 1,
        "map|map": 1,
        "map|unmap": 2,
    }
    assert list(cov.overlap_counts()) == sorted(cov.overlap_counts())
    assert cov.ops == {"map": 7, "unmap": 3, "attach": 2, "domain_alloc": 1}  # ops keep the op_begin names


def test_counting_functions_changes_no_find_and_restores_the_class(monkeypatch):
    """A batch with a find: the same finds, counts and reports (stacks) with and without the counters."""
    from model.drivers import get_driver

    cls = get_driver("vsi-mainline")
    before = dict(vars(cls))
    spec = BatchSpec(target={"driver": "vsi-mainline", "workload": workload_config()}, seed=0, batch=40)
    counted = run_batch(spec, 0)
    assert dict(vars(cls)) == before
    assert counted.functions and set(counted.functions) <= set(driver_functions(spec.target))
    assert counted.finds and any(f.report for f in counted.finds)
    monkeypatch.setattr(soak_batch, "_function_names", lambda cls: [])
    plain = run_batch(spec, 0)
    assert plain.functions == {}
    key = lambda r: [(f.signature, f.kind, f.message, f.schedule, f.count, json.dumps(f.report, sort_keys=True)) for f in r.finds]  # noqa: E731
    assert key(counted) == key(plain)
    assert (counted.ops, counted.overlaps, counted.points) == (plain.ops, plain.overlaps, plain.points)


def test_resumed_batch_counts_only_its_counted_schedules():
    spec = BatchSpec(target={"driver": "vsi-fixed", "workload": workload_config()}, seed=0, batch=20)
    whole = run_batch(spec, 0)
    upper = run_batch(spec, 0, start=10)
    assert upper.schedules == 10
    assert sum(upper.functions.values()) < sum(whole.functions.values())
    assert sum(upper.ops.values()) < sum(whole.ops.values())


def test_older_state_without_the_new_keys_loads():
    data = SoakState(options={}).to_json()
    data["coverage"] = {"ops": {"map": 3}, "lock_edges": [["a", "b"]]}
    state = SoakState.from_json(data)
    assert state.coverage == {"ops": {"map": 3}, "overlaps": {}, "functions": {}, "lock_edges": [["a", "b"]]}
    del data["coverage"]
    assert SoakState.from_json(data).coverage == {"ops": {}, "overlaps": {}, "functions": {}, "lock_edges": []}


@pytest.mark.parametrize("driver,strategy,start", [("vsi-mainline", "pct", None), ("vsi-fixed", "guided", 12)])
def test_a_batch_counts_the_same_from_boot_images(monkeypatch, driver, strategy, start):
    """A batch's runs start from boot images as a search's do; each copy is
    counted the driver calls a real boot makes, so the batch's finds, counts
    and coverage are those of a batch that boots every run: in a process
    that has not seen that boot yet and in one that has, and resumed."""
    import stress.bootimage as bootimage

    spec = BatchSpec(target={"driver": driver, "workload": workload_config()}, strategy=strategy, seed=0, batch=30)
    loads = []
    real_load = bootimage._Image.load
    monkeypatch.setattr(bootimage._Image, "load", lambda self, graph: loads.append(1) or real_load(self, graph))

    def batch(images, known):
        monkeypatch.setattr(bootimage, "ENABLED", images)
        if not known:
            monkeypatch.setattr(soak_batch, "_AT_BOOT", {})
        loads.clear()
        r = run_batch(spec, 0, start=start)
        finds = [(f.signature, f.kind, f.message, f.schedule, f.count, json.dumps(f.report, sort_keys=True)) for f in r.finds]
        return finds, r.ops, r.overlaps, r.functions, r.points, r.schedules, r.features, r.lock_edges, r.corpus

    booting = batch(False, False)
    assert not loads and booting[3]
    assert batch(True, False) == booting
    assert len(loads) >= 20  # most runs were copies
    assert batch(True, True) == booting
