"""Boot images (stress.bootimage): a schedule started from a copy of the booted
machine is the schedule a real boot gives, outcome for outcome and report
byte for byte; an image is only taken and used where that holds."""

import gc
import os
import subprocess
import sys
import weakref

import pytest

import stress
import stress.bootimage as bootimage
from model.drivers.mutants import _VSI_MAP_MUTEX
from model.kernel import Mutex
from stress.choosers import pct_chooser, random_chooser
from stress.lockdep import LockGraph
from stress.report import dumps
from stress.run import run_schedule
from stress.workload import DEFAULT_WORKLOAD, driver_scenario

from .scenarios_classic import abba_fixed

FIELDS = ("violation", "decisions", "points", "fail_points", "injected", "coverage", "hazards", "hints")


def _fields(out):
    return tuple(sorted(v) if isinstance(v, set) else v for v in (getattr(out, f) for f in FIELDS))


def _runs(monkeypatch, driver, images, n=12, seed=5, graphs="shared", **opts):
    """``n`` schedules of the default workload: on one shared graph, as a
    search runs them, on a fresh graph each, or each on a copy of a base."""
    monkeypatch.setattr(bootimage, "ENABLED", images)
    family = driver_scenario(driver, dict(DEFAULT_WORKLOAD))
    graph, outs = LockGraph(), []
    base = _base() if graphs == "base" else None
    for i in range(n):
        scenario, _ = family.for_schedule(seed, i)
        fail = 40 if opts.get("inject_failures") else None
        chooser = pct_chooser(seed, i, 3, 200, fail) if i % 2 else random_chooser(seed, i, fail)
        graph.origin = i
        if graphs == "shared":
            opts["lock_graph"] = graph
        elif graphs == "fresh":
            opts["lock_graph"] = graph = LockGraph()
            graph.origin = i
        else:
            opts["lockdep_base"] = base
        # as a search runs it: a copy is released when its run is over
        outs.append(_fields(run_schedule(scenario, chooser, coverage=True, release=True, **opts)))
    return outs, graph


def _base():
    """A graph three vsi-fixed schedules taught (as a replay's recorded base)."""
    graph = LockGraph()
    family = driver_scenario("vsi-fixed", dict(DEFAULT_WORKLOAD))
    for i in range(3):
        graph.origin = i
        run_schedule(family.for_schedule(1, i)[0], random_chooser(1, i), lock_graph=graph)
    return graph


@pytest.mark.parametrize(
    "driver, opts",
    [
        ("vsi-fixed", {}),
        ("vsi-fixed", {"inject_failures": True}),
        ("vsi-fixed", {"graphs": "fresh"}),
        ("vsi-fixed", {"graphs": "base"}),
        ("vsi-b5-unlocked-suspend", {"inject_failures": True}),
        ("vsi-b7-irq-unsafe-lock", {"graphs": "fresh"}),
        ("vsi-b11-high-page-tables", {}),
        ("vsi-mainline", {"kasan_reported": True}),
        ("rk-fixed", {"graphs": "base"}),
    ],
)
def test_a_run_from_an_image_is_the_run_a_boot_gives(monkeypatch, driver, opts):
    """Every field of every outcome, and the lock graph the runs leave, are equal."""
    real, g_real = _runs(monkeypatch, driver, False, **dict(opts))
    hits = []
    find = bootimage.find
    monkeypatch.setattr(bootimage, "find", lambda owner, key: hits.append(find(owner, key) is not None) or find(owner, key))
    copied, g_copied = _runs(monkeypatch, driver, True, **dict(opts))
    assert sum(hits) >= len(hits) // 2, f"images used in {sum(hits)} of {len(hits)} runs"
    for i, (a, b) in enumerate(zip(real, copied)):
        assert a == b, f"schedule {i}: {[f for f, x, y in zip(FIELDS, a, b) if x != y]} differ"
    assert (g_real.fwd, g_real.usage, g_real.chains, g_real.waits) == (g_copied.fwd, g_copied.usage, g_copied.chains, g_copied.waits)


def _any_key(graph):
    images = bootimage._IMAGES.get(graph, {})
    return next((k for k, v in images.items() if isinstance(v, bootimage._Image)), None)


def test_a_boot_is_imaged_on_an_empty_graph_or_where_it_taught_nothing(monkeypatch):
    """On an empty graph the image holds what the boot taught it; on a graph
    that knows other locks the first boot teaches it: no image until the
    next boot, which teaches nothing."""
    monkeypatch.setattr(bootimage, "ENABLED", True)
    monkeypatch.setattr(bootimage, "_IMAGES", type(bootimage._IMAGES)())
    scenario = driver_scenario("vsi-fixed", dict(DEFAULT_WORKLOAD, programs=[[["map", {"dom": 0, "iova": 0}]]]))
    run_schedule(scenario, random_chooser(0, 0))
    assert _any_key(bootimage.FRESH) is not None
    graph = LockGraph()
    stress.run_schedule(abba_fixed, random_chooser(0, 0), lock_graph=graph)  # other locks
    learnt = bootimage.graph_mark(graph)
    run_schedule(scenario, random_chooser(0, 1), lock_graph=graph)
    assert bootimage.graph_mark(graph) != learnt and _any_key(graph) is None
    run_schedule(scenario, random_chooser(0, 2), lock_graph=graph)
    assert _any_key(graph) is not None


def test_images_differ_by_boot_configuration(monkeypatch):
    """Two workloads whose machines differ keep two images; programs do not key them."""
    monkeypatch.setattr(bootimage, "ENABLED", True)
    graph = LockGraph()
    prog = [[["map", {"dom": 0, "iova": 0}]]]
    for cfg in (dict(DEFAULT_WORKLOAD, programs=prog), dict(DEFAULT_WORKLOAD, programs=prog + prog), dict(DEFAULT_WORKLOAD, programs=prog, iommus=1)):
        for i in range(2):
            run_schedule(driver_scenario("vsi-fixed", cfg), random_chooser(0, i), lock_graph=graph)
    assert sum(isinstance(v, bootimage._Image) for v in bootimage._IMAGES[graph].values()) == 2


def test_module_level_objects_are_shared_not_copied():
    """A module's own objects (a global lock, a sentinel) stay themselves in a copy; the run's graph too."""
    graph = LockGraph()
    mine = Mutex("mine")
    (locks, g), _ = bootimage._Image.dump(([_VSI_MAP_MUTEX, mine], graph), graph).load(graph)
    assert locks[0] is _VSI_MAP_MUTEX and locks[1] is not mine and locks[1].name == "mine"
    assert g is graph


@pytest.mark.parametrize("release", [True, False])
def test_a_released_copy_is_freed_without_the_cycle_collector(monkeypatch, release):
    """Released, a copy of a booted machine (kernel, CPUs, observers, devices:
    cycles everywhere) is freed by reference counting alone; not released,
    only the cycle collector frees it."""
    monkeypatch.setattr(bootimage, "ENABLED", True)
    monkeypatch.setattr(bootimage, "_IMAGES", type(bootimage._IMAGES)())
    scenario = driver_scenario("vsi-fixed", dict(DEFAULT_WORKLOAD))
    run_schedule(scenario.for_schedule(0, 0)[0], random_chooser(0, 0), coverage=True)  # boots and images
    images = bootimage._IMAGES[bootimage.FRESH]
    image = next(v for v in images.values() if isinstance(v, bootimage._Image))
    gc.collect()
    gc.disable()
    try:
        (kernel, state), instances = image.load(LockGraph())
        assert len(instances) > 20 and any(o is kernel for o in instances) and any(o is state for o in instances)
        alive = [weakref.ref(o) for o in instances]
        if release:
            bootimage.release(instances)
        del kernel, state, instances
        left = sum(r() is not None for r in alive)
        assert left == 0 if release else left == len(alive)
    finally:
        gc.enable()


def test_a_state_that_does_not_pickle_boots_every_time(monkeypatch):
    """A recipe whose state holds a closure is refused once, then boots as if images did not exist."""
    monkeypatch.setattr(bootimage, "ENABLED", True)
    real = driver_scenario("vsi-fixed", dict(DEFAULT_WORKLOAD, programs=[[["map", {"dom": 0, "iova": 0}]]]))
    recipe = real.boot_recipe()

    def scenario(kernel):
        return recipe.bodies(recipe.boot(kernel))

    def boot(kernel):
        sys = recipe.boot(kernel)
        sys.closure = lambda: sys  # noqa: E731 - what pickle cannot copy
        return sys

    scenario.boot_recipe = lambda: bootimage.BootRecipe(("closure",) + recipe.key, boot, recipe.bodies)
    graph = LockGraph()
    outs = [run_schedule(scenario, random_chooser(0, i), lock_graph=graph) for i in range(3)]
    assert bootimage._IMAGES[graph] and all(v is bootimage._NEVER for v in bootimage._IMAGES[graph].values())
    assert [o.kind for o in outs] == [None, None, None]


@pytest.mark.parametrize(
    "driver, strategy",
    [("vsi-b4-split-attach", "guided"), ("vsi-b5-unlocked-suspend", "pct"), ("vsi-b12-unsynced-unmap", "hypothesis")],
)
def test_hunt_reports_are_the_same_bytes_with_images(monkeypatch, driver, strategy):
    """A hunt's find, its shrunk report and its replay: the same with and without images."""
    reports = []
    for images in (False, True):
        monkeypatch.setattr(bootimage, "ENABLED", images)
        result = stress.explore(driver_scenario(driver, dict(DEFAULT_WORKLOAD)), strategy=strategy, schedules=600, seed=3)
        assert result.violations, f"{driver}: nothing found by {strategy}"
        reports.append((result.schedules, result.points, [dumps(v.report) for v in result.violations]))
    assert reports[0] == reports[1]


_CHILD = """
import sys
import stress
from stress.report import dumps
from stress.workload import DEFAULT_WORKLOAD, driver_scenario
r = stress.explore(driver_scenario("vsi-b7-irq-unsafe-lock", dict(DEFAULT_WORKLOAD)), strategy="pct", schedules=600, seed=3)
sys.stdout.write("".join(dumps(v.report) for v in r.violations))
"""


def test_report_bytes_from_images_are_independent_of_the_hash_seed():
    """Pickling rebuilds sets and dicts: two interpreters with different
    PYTHONHASHSEED still write the same report bytes from a hunt that uses images."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def child(hash_seed):
        env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), IOMMU_STRESS_BOOT_IMAGES="1")
        return subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, cwd=root, env=env, check=True).stdout

    first = child(1)
    assert first.count(b'"format": "iommu-stress-report"') == 1
    assert first == child(2)
