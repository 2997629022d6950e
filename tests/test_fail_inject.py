"""Failure injection: allocations and dma_map_single fail as a decision of the schedule.

With ``inject_failures`` every ``alloc_pages``/``kmalloc`` and
``dma_map_single`` a scheduled CPU makes is a failure point (the kernel's
``fail_nth``): the chooser answers succeed (0) or fail (1), the answer is
recorded, replayed and shrunk like any decision.  Off (the default) there is
no failure point at all.

The driver findings, measured with the focused hunt :func:`_focused` (map,
unmap and iova_to_phys on user domains, no teardown: the teardown
``WARN_ON`` of vsi-v3 and the identity-domain ``container_of`` of
vsi-mainline would end every schedule first; the ``gfp`` oracle off: v3's
dropped ``__GFP_ACCOUNT`` shows in every map):

* vsi-v3 writes the DTE before ``dma_map_single`` of the new page table and
  frees the table when the map fails: the DTE points at freed memory, and
  the next map, unmap or iova_to_phys of that 4 MiB reads it (KASAN
  use-after-free, ``invalid-access``; at teardown it is a double free).
  Seeds 0-9 needed at most 32 schedules (PCT); the test asks 4 of seeds 0-4
  within 80.
* vsi-mainline (the merged driver) maps the page table before it writes the
  DTE and frees it on a map error, and a failed map has written no PTE (its
  map_pages maps one page per call; the core unmaps what earlier calls
  mapped): the same hunt is clean over seeds 0-9 x 3000 schedules while
  failing both calls of its page-table path.
* vsi-fixed stays clean with injection on (every strategy).
"""

import json
import os

import pytest

import stress
from model.kernel import GFP_ATOMIC, GFP_DMA32, GFP_KERNEL, Shared, SpinLock, kfree, kmalloc, spin_lock, spin_unlock
from model.kernel.dma import DMA_MAPPING_ERROR, DMA_TO_DEVICE, dma_map_single, dma_mapping_error
from model.kernel.gfp import __GFP_NOFAIL
from model.kernel.mm import alloc_pages, free_pages
from stress.checkers import default_checkers
from stress.choosers import PCT, Replay, make_rng
from stress.engine import FAIL_POINTS, make_chooser
from stress.report import load_report, write_report
from stress.run import replay_decisions, run_schedule
from stress.scenarios import concretize
from stress.shrink import shrink_decisions
from stress.workload import driver_scenario, workload_config

SOAK = os.environ.get("IOMMU_STRESS_SOAK") == "1"

#: every checker but the gfp oracle (v3's dropped __GFP_ACCOUNT is in every map)
#: and iova-to-phys (v3's iova_to_phys truncates every page above 4 GiB)
NO_GFP = [c for c in default_checkers() if c not in ("gfp", "iova-to-phys")]


def _focused():
    return workload_config(kinds=["map", "unmap", "iova_to_phys"], teardown=False)


def _outcomes(driver, cfg, seed, n, checkers=None):
    """The schedules of a PCT search with injection, as explore runs them (every outcome)."""
    family = driver_scenario(driver, cfg)
    k, fails = 64, FAIL_POINTS
    for index in range(n):
        chooser = make_chooser("pct", seed, index, pct_depth=3, k=k, fail_points=fails)
        concrete, _ = concretize(family, seed, index)
        out = run_schedule(concrete, chooser, checkers=checkers, inject_failures=True)
        k, fails = max(k, out.points), max(fails, out.fail_points)
        yield out


# -- small scenarios -----------------------------------------------------------------

LOCK = SpinLock("dev->lock")


def leaky_error_path(kernel):
    """An error path that forgets the unlock: a bug only a failed kmalloc shows."""

    async def cpu0():
        await spin_lock(LOCK)
        buf = await kmalloc(64, GFP_ATOMIC, tag="buf")
        if buf is None:
            return  # -ENOMEM, dev->lock still held
        kfree(buf)
        spin_unlock(LOCK)

    return [cpu0]


COUNT = Shared("stats->count", 0)


def racy_with_allocations(kernel):
    """A data race that needs no failure; each CPU's allocation handles NULL."""

    def cpu(i):
        async def body():
            buf = await kmalloc(32, GFP_KERNEL, tag=f"buf{i}")
            await COUNT.store(await COUNT.load() + 1)
            kfree(buf)

        return body

    return [cpu(0), cpu(1)]


class FailFirst:
    """A chooser: keep the current CPU, fail the first failure point."""

    name = "fail-first"

    def __init__(self):
        self.seen = 0

    def choose(self, sched, cur, opts):
        return 0

    def fail(self, sched, cur, call):
        self.seen += 1
        return 1 if self.seen == 1 else 0


# -- semantics -------------------------------------------------------------------------


def test_off_has_no_failure_points_and_on_adds_only_zeros():
    """Off: no failure point, no decision for one.  On with nothing failed: the
    same run, with a 0 recorded at each failure point."""
    family = driver_scenario("vsi-v3", workload_config())
    for index in range(20):
        concrete, _ = concretize(family, 0, index)
        off = run_schedule(concrete, PCT(make_rng(0, index), depth=3, k=64))
        on = run_schedule(concrete, PCT(make_rng(0, index), depth=3, k=64), inject_failures=True)
        assert off.fail_points == 0 and not off.injected
        assert on.points == off.points and on.kind == off.kind and not on.injected
        assert len(on.decisions) == len(off.decisions) + on.fail_points
        assert [d for d in on.decisions if d] == [d for d in off.decisions if d]


def test_explore_off_writes_reports_as_before():
    r = stress.explore(driver_scenario("vsi-v3", workload_config()), schedules=3, seed=0, shrink=False)
    rep = r.violations[0].report
    assert "inject_failures" not in rep["options"] and "injected" not in rep
    assert "FAULT_INJECTION" not in rep["violation"]["splat"]


def test_failed_kmalloc_is_null_and_gfp_nofail_never_fails():
    got = {}

    def scenario(kernel):
        async def boot():
            got["boot"] = await kmalloc(8, GFP_KERNEL, tag="boot")  # boot never fails

        kernel.add_setup(boot)

        async def cpu0():
            got["plain"] = await kmalloc(8, GFP_KERNEL, tag="plain")
            got["nofail"] = await kmalloc(8, GFP_KERNEL | __GFP_NOFAIL, tag="nofail")
            got["page"] = await alloc_pages(GFP_KERNEL | __GFP_NOFAIL, tag="page")
            for what in ("boot", "nofail"):
                kfree(got[what])
            free_pages(got["page"])

        return [cpu0]

    out = run_schedule(scenario, Replay([1, 1, 1, 1]), inject_failures=True)
    assert out.violation is None
    assert got["plain"] is None  # the one failure point
    assert got["boot"] is not None and got["nofail"] is not None and got["page"] is not None
    assert out.fail_points == 1 and out.decisions == [1]
    assert [f["call"] for f in out.injected] == ["kmalloc(8, GFP_KERNEL)"]


def test_failed_dma_map_is_a_mapping_error_that_maps_nothing():
    seen, got = [], {}

    class Events:
        def iommu(self, cpu, what, info):
            seen.append(what)

    def scenario(kernel):
        kernel.attach(Events())

        class Dev:
            dma_mask = (1 << 32) - 1

            def __repr__(self):
                return "vpu0"

        async def cpu0():
            page = await alloc_pages(GFP_KERNEL | GFP_DMA32, tag="pt")
            got["addr"] = await dma_map_single(Dev(), page, 4096, DMA_TO_DEVICE)
            got["error"] = dma_mapping_error(Dev(), got["addr"])
            free_pages(page)

        return [cpu0]

    out = run_schedule(scenario, Replay([0, 1]), inject_failures=True, trace=True)
    assert got == {"addr": DMA_MAPPING_ERROR, "error": True}
    assert "dma_map" not in seen
    rows = [r for r in out.timeline if r[2] == "fail"]
    assert rows == [[rows[0][0], "CPU0", "fail", "dma_map_single(vpu0, pt, 4096) -> DMA_MAPPING_ERROR (injected)"]]
    ok = run_schedule(scenario, Replay([]), inject_failures=True)
    assert ok.violation is None and got["error"] is False and "dma_map" in seen


def test_replay_fails_a_call_on_one_modulo_64():
    def scenario(kernel):
        async def cpu0():
            for _ in range(4):
                kfree(await kmalloc(8, GFP_KERNEL))

        return [cpu0]

    out = run_schedule(scenario, Replay([1, 2, 65, 0]), inject_failures=True, trace=True)
    assert out.decisions == [1, 0, 1, 0]
    assert len(out.injected) == 2


# -- strategies ---------------------------------------------------------------------------


def test_exhaustive_tries_each_failure_at_bound_one():
    off = stress.explore(leaky_error_path, strategy="exhaustive", bound=1, schedules=100)
    assert not off.found and off.exhausted
    r = stress.explore(leaky_error_path, strategy="exhaustive", bound=1, schedules=100, inject_failures=True)
    assert r.found and r.violations[0].kind == "lock-held-at-exit"
    rep = r.violations[0].report
    assert rep["options"]["inject_failures"] is True and rep["decisions"] == [1]
    assert rep["injected"][0]["call"] == "kmalloc(64, GFP_ATOMIC)" and rep["preemptions"] == 0
    zero = stress.explore(leaky_error_path, strategy="exhaustive", bound=0, schedules=100, inject_failures=True)
    assert not zero.found  # a failure costs one against the bound, as a preemption


@pytest.mark.parametrize("strategy", ["pct", "random", "hypothesis"])
def test_every_strategy_finds_an_error_path_bug(strategy):
    r = stress.explore(leaky_error_path, strategy=strategy, schedules=400, seed=0, inject_failures=True)
    assert r.found and r.violations[0].kind == "lock-held-at-exit"
    assert r.violations[0].report["injected"]


def test_pct_fails_at_most_one_call_per_schedule():
    """Half the schedules plan the n-th failure point, n uniform up to the most
    seen (11 here, 2.5 on average): 26 of these 200 fail a call."""
    outs = list(_outcomes("vsi-fixed", workload_config(), 0, 200))
    failed = [o for o in outs if o.injected]
    assert all(len(o.injected) == 1 for o in failed)
    assert 10 <= len(failed) <= 100


def test_segment_plan_fails_the_next_call_of_a_cpu():
    from strategies.schedules import FAIL, SegmentPlan

    out = run_schedule(leaky_error_path, SegmentPlan([(FAIL, 0)]), inject_failures=True)
    assert out.kind == "lock-held-at-exit" and out.decisions == [1]
    assert run_schedule(leaky_error_path, SegmentPlan([]), inject_failures=True).violation is None


def test_machine_has_a_fail_rule_only_with_injection():
    from strategies.machine import make_machine

    make = lambda cfg: driver_scenario("vsi-fixed", cfg)  # noqa: E731
    assert hasattr(make_machine(make, workload_config(), inject_failures=True), "fail_call")
    assert not hasattr(make_machine(make, workload_config()), "fail_call")


# -- shrinking -------------------------------------------------------------------------------


def test_shrinking_drops_a_failure_the_bug_does_not_need():
    out = run_schedule(racy_with_allocations, FailFirst(), inject_failures=True)
    assert out.kind == "data-race" and out.injected
    decisions = shrink_decisions(racy_with_allocations, out.decisions, out.kind, {"inject_failures": True})
    again = replay_decisions(racy_with_allocations, decisions, inject_failures=True)
    assert again.kind == "data-race" and not again.injected


def test_shrinking_keeps_a_failure_the_bug_needs():
    out = run_schedule(leaky_error_path, FailFirst(), inject_failures=True)
    decisions = shrink_decisions(leaky_error_path, out.decisions, out.kind, {"inject_failures": True})
    assert decisions == [1]


def test_explore_report_of_a_race_keeps_no_failure():
    r = stress.explore(racy_with_allocations, strategy="random", schedules=50, seed=0, inject_failures=True)
    rep = r.violations[0].report
    assert rep["violation"]["kind"] == "data-race" and "injected" not in rep


# -- the drivers -------------------------------------------------------------------------------


def test_v3_dte_written_before_dma_map_is_found():
    """4 of seeds 0-4 within 80 schedules (seeds 0-9 needed at most 32)."""
    hits, misses = [], []
    for seed in range(5):
        r = stress.explore(
            driver_scenario("vsi-v3", _focused()), schedules=80, seed=seed, shrink=False, checkers=NO_GFP, inject_failures=True
        )
        v = r.violations[0] if r.violations else None
        failed = v.report.get("injected") if v else None
        if v is not None and v.kind == "invalid-access" and failed and failed[0]["where"] == "_vsi_dte_get_page_table":
            assert failed[0]["call"].startswith("dma_map_single(") and "freed" in v.message
            hits.append((seed, r.schedules))
        else:
            misses.append((seed, v.report["signature"] if v else "nothing"))
        if len(hits) >= 4:
            break
    assert len(hits) >= 4, f"found {hits}, missed {misses}"


def test_v3_report_with_an_injected_failure_replays_exactly(tmp_path, capsys):
    from stress.cli import main

    r = stress.explore(driver_scenario("vsi-v3", _focused()), schedules=80, seed=0, checkers=NO_GFP, inject_failures=True)
    v = r.violations[0]
    rep = v.report
    assert v.kind == "invalid-access" and rep["options"]["inject_failures"] is True
    assert [f["call"].split("(")[0] for f in rep["injected"]] == ["dma_map_single"]
    path = write_report(rep, str(tmp_path / "a"))
    text = open(path[:-5] + ".txt").read()
    assert "with failure injection: dma_map_single in _vsi_dte_get_page_table failed (CPU" in text
    assert "FAULT_INJECTION: forcing a failure." in text and "DMA_MAPPING_ERROR (injected)" in text
    assert [r[2:] for r in rep["timeline"] if r[2] == "fail"] == [["fail", "dma_map_single(iommu0, vsi pt, 4096) -> DMA_MAPPING_ERROR (injected)"]]
    assert "injected failure" in text.splitlines()[1]
    assert load_report(path)["decisions"] == rep["decisions"]
    assert main(["replay", path, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["reproduced"] is True
    assert main(["replay", path, "--out", str(tmp_path / "b")]) == 1
    again = tmp_path / "b" / os.path.basename(path)
    assert again.read_bytes() == open(path, "rb").read()


def test_mainline_map_error_path_holds_under_injection():
    """The merged driver's page-table path survives each failure: no violation
    while alloc_pages and dma_map_single of vsi_dte_get_page_table fail."""
    failed = set()
    for out in _outcomes("vsi-mainline", _focused(), 0, 300, checkers=NO_GFP):
        assert out.violation is None, out.violation["message"]
        failed.update((f["call"].split("(")[0], f["where"]) for f in out.injected)
    assert {("alloc_pages", "vsi_dte_get_page_table"), ("dma_map_single", "vsi_dte_get_page_table")} <= failed


def test_vsi_fixed_clean_with_injection():
    for strategy, seed, n in (("pct", 0, 1000), ("random", 1, 400)):
        r = stress.explore(
            driver_scenario("vsi-fixed", workload_config()), strategy=strategy, schedules=n, seed=seed, shrink=False, inject_failures=True
        )
        assert r.schedules == n
        assert not r.violations, r.violations[0].report["violation"]["splat"]


@pytest.mark.soak
@pytest.mark.skipif(not SOAK, reason="set IOMMU_STRESS_SOAK=1 for 3000 schedules x 5 seeds")
@pytest.mark.parametrize("strategy", ["pct", "random"])
def test_vsi_fixed_clean_with_injection_long(strategy):
    for seed in range(5):
        r = stress.explore(
            driver_scenario("vsi-fixed", workload_config()), strategy=strategy, schedules=3000, seed=seed, shrink=False, inject_failures=True
        )
        assert not r.violations, r.violations[0].report["violation"]["splat"]


# -- the options ---------------------------------------------------------------------------------


def test_hunt_option_is_recorded(tmp_path, capsys):
    from stress.cli import main

    assert main(["hunt", "--driver", "vsi-v3", "--inject-failures", "--schedules", "3", "--no-shrink", "--out", str(tmp_path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert load_report(out["report"])["options"]["inject_failures"] is True


def test_soak_passes_the_option_to_its_batches(tmp_path):
    import argparse

    from stress.soak.batch import BatchSpec, run_batch
    from stress.soak.cli import add_parser, _options

    sub = argparse.ArgumentParser().add_subparsers()
    add_parser(sub)
    args = sub.choices["soak"].parse_args(["--driver", "vsi-v3", "--inject-failures"])
    assert _options(args)["inject_failures"] is True
    plain = sub.choices["soak"].parse_args(["--driver", "vsi-v3"])
    assert "inject_failures" not in _options(plain)
    spec = BatchSpec(
        target={"driver": "vsi-v3", "workload": _focused()}, checkers=tuple(NO_GFP), batch=40, inject_failures=True
    )
    res = run_batch(spec, 0)
    reports = [f.report for f in res.finds if f.report]
    assert any(rep.get("injected") for rep in reports)
    assert all(rep["options"]["inject_failures"] is True for rep in reports)
