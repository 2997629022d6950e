"""The guided strategy (stress.search): plans, mutations, corpus, hunt and soak."""

import json
import os
import random

import pytest

from model.drivers.mutants import ZOO
from stress import explore
from stress.choosers import PLAN_THREADS, Plan, PlannedPCT, draw_plan, pct_chooser
from stress.run import run_schedule
from stress.search.corpus import Corpus, Entry
from stress.search.mutate import mutate_plan
from stress.soak.events import read_events
from stress.soak.runner import run_soak
from stress.targets import replay_report
from stress.workload import MAX_PROGRAM, driver_scenario, mutate_programs, workload_config

ZOO_KINDS = {bid: (name, kind if isinstance(kind, tuple) else (kind,)) for bid, name, _cls, kind in ZOO}


def test_a_plan_of_zeros_never_preempts():
    """Equal priorities keep the running CPU: the plan all shrinking heads for."""
    scen, _ = driver_scenario("vsi-fixed", workload_config()).for_schedule(0, 1)
    out = run_schedule(scen, PlannedPCT(Plan()))
    assert out.violation is None
    assert set(out.decisions) <= {0}


def test_a_drawn_plan_is_pct_shaped_and_round_trips():
    plan = draw_plan(random.Random(1), depth=3, k=100, fail_points=8)
    assert len(plan.ranks) == PLAN_THREADS and len(set(plan.ranks)) == PLAN_THREADS
    assert len(plan.change) == 2 and all(1 <= c <= 100 for c in plan.change)
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_mutations_stay_valid_and_deterministic():
    plan = draw_plan(random.Random(2), depth=3, k=80)
    keys = (0, 1, 2, ("irq", 40, 0), ("irq", 40, 1), ("irq", 41, 2))
    kids = [mutate_plan(plan, keys, random.Random(i), 80) for i in range(200)]
    assert kids == [mutate_plan(plan, keys, random.Random(i), 80) for i in range(200)]
    assert len(set(kids)) > 100  # they really move
    for kid in kids:
        assert list(kid.change) == sorted(kid.change) and all(c >= 1 for c in kid.change)
        assert kid.fail == 0  # no failure injection, no failure
    with_fail = {mutate_plan(plan, keys, random.Random(i), 80, fail_points=5).fail for i in range(200)}
    assert with_fail - {0} and with_fail <= set(range(6))


def test_program_mutations_keep_programs_runnable():
    scen = driver_scenario("vsi-fixed", workload_config())
    _, target = scen.for_schedule(0, 3)
    _, donor = scen.for_schedule(0, 4)
    rng = random.Random(0)
    for _ in range(60):
        target = scen.mutate(target, rng, donor)
        programs = target["workload"]["programs"]
        assert all(1 <= len(p) <= MAX_PROGRAM for p in programs)
    out = run_schedule(scen.concrete(target), PlannedPCT(draw_plan(rng, 3, 100)))
    assert out.violation is None


def test_splice_wraps_devices_the_machine_lacks():
    cfg = dict(workload_config(), iommus=1)
    donor = [[["dma", {"dev": 3, "iova": 0, "write": True}]]]
    out = mutate_programs(cfg, [[["suspend", {"dev": 0}]]], random.Random(5), donor)
    assert all(op[1].get("dev", 0) < 1 for p in out for op in p)


def test_corpus_learns_only_new_features_and_round_trips():
    c = Corpus()
    plan = Plan((3, 1), (5,), 0)
    made = c.learn({("lock", "", "a")}, lambda new: Entry(None, 0, plan, (0, 1), new))
    assert made is not None and made.new == 1
    assert c.learn({("lock", "", "a")}, lambda new: Entry(None, 1, plan, (0,), new)) is None
    e = Entry({"driver": "x", "workload": {}}, 7, plan, (0, ("irq", 40, 1)), (("lock", "", "a"), ("func", "f")))
    assert Entry.from_json(json.loads(json.dumps(e.to_json()))) == e
    # a rare feature's first entry is picked over the common ones'
    c.learn({("func", "f")}, lambda new: Entry(None, 2, plan, (0,), new))
    for _ in range(50):
        c.learn({("lock", "", "a")}, lambda new: None)
    picks = [c.pick(random.Random(i)).program for i in range(200)]
    assert picks.count(2) > picks.count(0)


def test_near_miss_entries_are_kept_picked_and_round_trip():
    """A run that reached an oracle's near miss joins the corpus even with no
    new feature, and such entries take HAZARD_RATE of the picks."""
    from stress.search.corpus import HAZARD_RATE, HAZARDS

    c = Corpus()
    plan = Plan((3, 1), (5,), 0)
    c.learn({("lock", "", "a")}, lambda new: Entry(None, 0, plan, (0, 1), new))
    near = (("unmap-missed-a-translating-iommu",),)
    made = c.learn({("lock", "", "a")}, lambda new: Entry(None, 1, plan, (0,), new, near), near)
    assert made is not None and made.new == 0 and c.hazards == [made]
    assert Entry.from_json(json.loads(json.dumps(made.to_json()))) == made
    hinted = Entry(None, 1, plan, (0,), (), near, (("tlb-line-filled", "", 0, 2, "iommu1", 0x10000000),))
    assert Entry.from_json(json.loads(json.dumps(hinted.to_json()))) == hinted  # as a soak's workers pass it
    assert Corpus([made]).hazards == [made]  # as a soak's batch rebuilds it
    picks = [c.pick(random.Random(i)).program for i in range(400)]
    assert abs(picks.count(1) / 400 - (HAZARD_RATE + (1 - HAZARD_RATE) * 0.5 * 0.5)) < 0.1
    # a near miss reached again and again keeps HAZARDS entries, not one per run
    for i in range(3 * HAZARDS):
        c.learn({("lock", "", "a")}, lambda new: Entry(None, 2 + i, plan, (0,), new, near), near)
    assert len(c.hazards) == HAZARDS


def test_a_lost_flush_is_a_near_miss_one_dma_short_of_a_find():
    """Map, DMA (the TLB fills), unmap: a driver whose unmap forgets the flush
    leaves both near misses and no violation yet (the DMA that would use the
    line is not in the program); vsi-fixed leaves neither."""
    program = [
        ["attach", {"dev": 0, "dom": 0}],
        ["map", {"dom": 0, "iova": 0, "pages": 2, "gfp": "GFP_KERNEL"}],
        ["dma", {"dev": 0, "iova": 0, "write": False}],
        ["unmap", {"dom": 0, "iova": 0, "pages": 1}],
    ]
    cfg = {"iommus": 2, "domains": 3, "iovas": 4, "programs": [program]}
    out = run_schedule(driver_scenario("tests.test_oracles:NoFlushOnUnmap", cfg), PlannedPCT(Plan((0,), (), 0)), coverage=True)
    assert out.violation is None
    assert out.hazards == {("tlb-line-filled",), ("unmap-missed-a-translating-iommu",), ("tlb-line-outlives-unmap", "translating")}
    # where: CPU 0's third and fourth operations (the DMA that filled the line, the unmap), iommu0, IOVA 0
    iova0 = 0x10000000
    assert out.hints == [
        ("tlb-line-filled", "", 0, 2, "iommu0", iova0),
        ("tlb-line-outlives-unmap", "translating", 0, 3, "iommu0", iova0),
        ("unmap-missed-a-translating-iommu", "", 0, 3, "iommu0", iova0),
    ]
    fixed = run_schedule(driver_scenario("vsi-fixed", cfg), PlannedPCT(Plan((0,), (), 0)), coverage=True)
    assert fixed.violation is None and fixed.hazards == {("tlb-line-filled",)}


def test_a_map_whose_flush_misses_a_translating_mmu_is_a_near_miss():
    """A map that no invalidation of a translating MMU follows (as B4's, where
    attach programmed the MMU before putting it on the list map flushes) is
    a near miss, a DMA, an unmap and a DMA short of a find; vsi-fixed, which
    flushes every MMU it translates for, never reaches it, not even under
    a search's many interleavings."""
    program = [["attach", {"dev": 0, "dom": 0}], ["map", {"dom": 0, "iova": 2, "pages": 1, "gfp": "GFP_KERNEL"}]]
    cfg = {"iommus": 2, "domains": 3, "iovas": 4, "programs": [program]}
    out = run_schedule(driver_scenario("tests.test_oracles:NoFlushOnMap", cfg), PlannedPCT(Plan((0,), (), 0)), coverage=True)
    assert out.violation is None and out.hazards == {("map-missed-a-translating-iommu",)}
    assert out.hints == [("map-missed-a-translating-iommu", "", 0, 1, "iommu0", 0x10000000 + 2 * 0x200000)]
    fixed = run_schedule(driver_scenario("vsi-fixed", cfg), PlannedPCT(Plan((0,), (), 0)), coverage=True)
    assert fixed.violation is None and not fixed.hazards
    scen = driver_scenario("vsi-fixed", workload_config())
    for i in range(40):
        concrete, _ = scen.for_schedule(3, i)
        out = run_schedule(concrete, pct_chooser(3, i, 3, 200), coverage=True)
        assert ("map-missed-a-translating-iommu",) not in out.hazards, i


def test_a_line_that_outlives_translation_is_a_near_miss():
    """Map, DMA, suspend on hardware whose lines survive translation off,
    clock gating and power-off: the line is still there when the IOMMU has
    stopped translating, where a driver that does not zap when translation
    comes back goes stale.  vsi-fixed reaches it too; the hint names the
    operation that ended next (the suspend's own work runs later, in pm_wq)
    and the MMU.  On the default hardware power-off loses the lines."""
    program = [
        ["attach", {"dev": 0, "dom": 0}],
        ["map", {"dom": 0, "iova": 1, "pages": 1, "gfp": "GFP_KERNEL"}],
        ["dma", {"dev": 0, "iova": 1, "write": True}],
        ["suspend", {"dev": 0}],
        ["iova_to_phys", {"dom": 0, "iova": 1}],
    ]
    cfg = {"iommus": 2, "domains": 3, "iovas": 4, "programs": [program]}
    keeps = dict(cfg, tlb_retention=["disable", "clock-off", "power-off"])
    out = run_schedule(driver_scenario("vsi-fixed", keeps), PlannedPCT(Plan((1, 5), (), 0)), coverage=True)
    assert out.violation is None
    assert [h[:5] for h in out.hints if h[0] == "tlb-line-outlives-translation"] == [("tlb-line-outlives-translation", "", 0, 4, "iommu0")]
    out = run_schedule(driver_scenario("vsi-fixed", cfg), PlannedPCT(Plan((1, 5), (), 0)), coverage=True)
    assert out.violation is None and ("tlb-line-outlives-translation",) not in out.hazards


def test_completion_puts_the_rest_of_a_stale_tlb_after_the_near_miss():
    """A near miss's hint says where: the steps that make it a finding go in
    right after that operation, on its CPU, for a master behind its MMU."""
    from stress.workload import complete_programs

    cfg = workload_config(iommus=2, masters=2)
    programs = [[["map", {"dom": 2, "iova": 1, "pages": 1, "gfp": "GFP_KERNEL"}], ["dma", {"dev": 3, "iova": 1, "write": False}], ["fault", {"dev": 0}]], [["fault", {"dev": 1}]]]
    iova1 = 0x10000000 + 0x200000
    for seed in range(20):
        rng = random.Random(seed)
        out = complete_programs(cfg, programs, ("tlb-line-filled", "", 0, 1, "iommu1", iova1 + 0x1000), rng)
        assert out[1] == programs[1] and out[0][:2] == programs[0][:2] and out[0][-1] == programs[0][-1]
        steps = out[0][2:-1]
        kinds = [s[0] for s in steps]
        assert kinds in (["unmap", "dma"], ["suspend", "unmap", "resume", "dma"])
        assert steps[kinds.index("unmap")][1] == {"dom": 2, "iova": 1, "pages": 1}  # where the programs map it
        assert steps[-1][1]["dev"] == 3 and steps[-1][1]["iova"] == 1  # the master the DMA named, behind iommu1
        off = complete_programs(cfg, programs, ("tlb-line-outlives-unmap", "off", 0, 0, "iommu1", iova1), rng)[0]
        assert [s[0] for s in off[1:3]] in (["resume", "dma"], ["attach", "dma"]) and off[2][1]["dev"] in (2, 3)
        # a map that missed a translating MMU: a DMA fills a line, the map's own domain unmaps it, a DMA uses it
        mapped = complete_programs(cfg, programs, ("map-missed-a-translating-iommu", "", 0, 0, "iommu1", iova1), rng)[0]
        assert mapped[:1] == programs[0][:1] and mapped[4:] == programs[0][1:]
        assert [s[0] for s in mapped[1:4]] == ["dma", "unmap", "dma"] and mapped[2][1] == {"dom": 2, "iova": 1, "pages": 1}
    # a hint outside the programs' arena (the DMA API's IOVAs, another machine's MMU) changes nothing
    assert complete_programs(cfg, programs, ("tlb-line-filled", "", 0, 1, "iommu1", 0x1000), random.Random(0)) == programs
    assert complete_programs(cfg, programs, ("tlb-line-filled", "", 0, 1, "iommu7", iova1), random.Random(0)) == programs


def test_a_pct_run_is_kept_as_the_plan_that_runs_it_again():
    """Guided's fresh schedules are PCT's own; the corpus keeps each as a Plan,
    and PlannedPCT of that plan makes the same decisions."""

    scen = driver_scenario("vsi-fixed", workload_config())
    same = 0
    for i in range(20):
        concrete, _ = scen.for_schedule(0, i)
        pct = pct_chooser(0, i, 3, 200)
        a = run_schedule(concrete, pct)
        b = run_schedule(concrete, PlannedPCT(pct.plan))
        same += a.decisions == b.decisions
    assert same >= 18  # unless two change points fall on one decision


def test_guided_starts_as_pct_does():
    """The first WARMUP schedules of a guided search are PCT's: a shallow bug
    PCT finds among them, guided finds at the same schedule."""
    from stress.search.guided import WARMUP

    for bug in ("B14", "B8"):
        name, _ = ZOO_KINDS[bug]
        scen = driver_scenario(name, workload_config())
        for seed in range(3):
            p = explore(scen, strategy="pct", schedules=WARMUP, seed=seed, shrink=False)
            g = explore(scen, strategy="guided", schedules=WARMUP, seed=seed, shrink=False)
            assert p.first_find_schedules == g.first_find_schedules
            assert (p.violations[0].kind if p.found else None) == (g.violations[0].kind if g.found else None)


@pytest.mark.parametrize("bug", ["B4", "B9"])
def test_guided_reaches_deep_zoo_bugs(bug):
    """Deep bugs: B4 (a lost flush behind a split attach; PCT's median on
    seeds 0-9 ~250 schedules) and B9 (no zap when translation comes back: a
    line filled, translation off, an unmap, translation on and a DMA; PCT's
    median ~1000).  Guided digs at the near misses and completes them: found
    within 900 schedules in at least 4 of 5 seeds (5 of 5 measured: B4 at
    15 to 340, B9 at 51 to 831)."""
    name, kinds = ZOO_KINDS[bug]
    found = 0
    for seed in range(5):
        r = explore(driver_scenario(name, workload_config()), strategy="guided", schedules=900, seed=seed, shrink=False)
        found += bool(r.found and r.violations[0].kind in kinds)
    assert found >= 4


def test_guided_is_deterministic_and_its_reports_replay():
    name, kinds = ZOO_KINDS["B8"]
    scen = driver_scenario(name, workload_config())
    a = explore(scen, strategy="guided", schedules=200, seed=1)
    b = explore(scen, strategy="guided", schedules=200, seed=1)
    assert a.found and a.violations[0].kind in kinds
    assert json.dumps(a.violations[0].report, sort_keys=True) == json.dumps(b.violations[0].report, sort_keys=True)
    assert a.first_find_schedules == b.first_find_schedules
    again = replay_report(a.violations[0].report)
    assert again.kind == a.violations[0].kind


@pytest.mark.parametrize("bug", ["B1", "B8", "B16"])
def test_guided_finds_shallow_zoo_bugs(bug):
    """Found in at least 4 of 5 seeds within 60 schedules (PCT needs a handful)."""
    name, kinds = ZOO_KINDS[bug]
    found = 0
    for seed in range(5):
        r = explore(driver_scenario(name, workload_config()), strategy="guided", schedules=60, seed=seed, shrink=False)
        found += bool(r.found and r.violations[0].kind in kinds)
    assert found >= 4


def test_guided_keeps_a_corpus_and_mutates_programs():
    """Over a search the corpus grows and children run mutated programs (their
    targets are not the programs any fresh schedule drew)."""
    from stress.search.guided import Guided

    scen = driver_scenario("vsi-fixed", workload_config())
    g = Guided(scen, seed=0, pct_depth=3)
    fresh, children = set(), 0
    for i in range(150):
        concrete, target, chooser = g.next(i, 200)
        out = run_schedule(concrete, chooser, coverage=True)
        assert out.violation is None
        g.learn(i, target, chooser, out)
        programs = json.dumps(target["workload"]["programs"])
        if programs == json.dumps(scen.for_schedule(0, i)[1]["workload"]["programs"]):
            fresh.add(i)
        else:
            children += 1
    assert len(g.corpus) >= 10
    assert children >= 15 and len(fresh) >= 15


def test_vsi_fixed_is_clean_under_guided():
    r = explore(driver_scenario("vsi-fixed", workload_config()), strategy="guided", schedules=300, seed=7, keep_going=True, shrink=False)
    assert not r.found, [v.message for v in r.violations]


@pytest.mark.soak
@pytest.mark.skipif(os.environ.get("IOMMU_STRESS_SOAK") != "1", reason="set IOMMU_STRESS_SOAK=1 for the long guided search")
def test_vsi_fixed_is_clean_under_a_long_guided_search():
    for seed in range(3):
        r = explore(driver_scenario("vsi-fixed", workload_config()), strategy="guided", schedules=3000, seed=seed, keep_going=True, shrink=False)
        assert not r.found, [v.message for v in r.violations]


def test_guided_soak_shares_its_corpus_between_batches(tmp_path):
    soakdir = str(tmp_path / "soak")
    options = {
        "target": {"driver": "vsi-fixed", "workload": workload_config()},
        "strategy": "guided",
        "seed": 0,
        "checkers": [],
        "max_steps": 20_000,
        "pct_depth": 3,
        "batch": 40,
    }
    summary = run_soak(soakdir, options, schedules=120, workers=2)
    assert not summary.found and summary.schedules == 120
    batches = [e for e in read_events(os.path.join(soakdir, "events.jsonl"))[0] if e["event"] == "batch"]
    assert len(batches) == 3 and all("corpus" in b for b in batches)
    with open(os.path.join(soakdir, "corpus.jsonl")) as f:
        entries = [json.loads(line) for line in f]
    assert len(entries) == sum(b["corpus_added"] for b in batches) > 0
    # the third batch started after one of the first two came back: it was handed their corpus
    assert max(b["corpus"] for b in batches) == len(entries)
    # resumed, the soak reads its corpus back and goes on from it
    more = run_soak(soakdir, None, schedules=160, resume=True, workers=1)
    assert more.schedules == 160
    with open(os.path.join(soakdir, "corpus.jsonl")) as f:
        assert len(f.readlines()) >= len(entries)


def test_a_rare_near_miss_is_picked_more_often_than_a_common_one():
    """Parents among near-miss entries: each near miss weighs one over the runs
    that reached it, so a line filled in every run does not bury a lost flush."""
    from stress.search.corpus import HAZARD_RATE

    c = Corpus()
    plan = Plan((3, 1), (5,), 0)
    common, rare = (("tlb-line-filled",),), (("unmap-missed-a-translating-iommu",),)
    c.learn({("lock", "", "a")}, lambda new: Entry(None, 0, plan, (0,), new, rare), rare)
    for i in range(40):
        c.learn({("lock", "", "a")}, lambda new: Entry(None, 1 + i, plan, (0,), new, common), common)
    picks = [c.pick(random.Random(i)).program for i in range(600)]
    # about HAZARD_RATE * 40/41 of the picks go to the one rare entry
    assert picks.count(0) / 600 > 0.8 * HAZARD_RATE
