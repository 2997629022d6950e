"""Boot images (stress.bootimage): a schedule started from a copy of the booted
machine is the schedule a real boot gives, outcome for outcome and report
byte for byte; an image is only taken and used where that holds."""

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

FIELDS = ("violation", "decisions", "points", "fail_points", "injected", "coverage", "hazards", "hints")


def _fields(out):
    return tuple(sorted(v) if isinstance(v, set) else v for v in (getattr(out, f) for f in FIELDS))


def _runs(monkeypatch, driver, images, n=12, seed=5, **opts):
    """``n`` schedules of the default workload on one shared graph, as a search runs them."""
    monkeypatch.setattr(bootimage, "ENABLED", images)
    family = driver_scenario(driver, dict(DEFAULT_WORKLOAD))
    graph, outs = LockGraph(), []
    for i in range(n):
        scenario, _ = family.for_schedule(seed, i)
        fail = 40 if opts.get("inject_failures") else None
        chooser = pct_chooser(seed, i, 3, 200, fail) if i % 2 else random_chooser(seed, i, fail)
        graph.origin = i
        outs.append(_fields(run_schedule(scenario, chooser, lock_graph=graph, coverage=True, **opts)))
    return outs, graph


@pytest.mark.parametrize(
    "driver, opts",
    [
        ("vsi-fixed", {}),
        ("vsi-fixed", {"inject_failures": True}),
        ("vsi-b5-unlocked-suspend", {"inject_failures": True}),
        ("vsi-b11-high-page-tables", {}),
        ("vsi-mainline", {"kasan_reported": True}),
        ("rk-fixed", {}),
    ],
)
def test_a_run_from_an_image_is_the_run_a_boot_gives(monkeypatch, driver, opts):
    """Every field of every outcome, and the lock graph the search leaves, are equal."""
    real, g_real = _runs(monkeypatch, driver, False, **opts)
    copied, g_copied = _runs(monkeypatch, driver, True, **opts)
    assert bootimage.find(g_copied, _any_key(g_copied)) is not None, "no image was used"
    for i, (a, b) in enumerate(zip(real, copied)):
        assert a == b, f"schedule {i}: {[f for f, x, y in zip(FIELDS, a, b) if x != y]} differ"
    assert (g_real.fwd, g_real.usage, g_real.chains) == (g_copied.fwd, g_copied.usage, g_copied.chains)


def _any_key(graph):
    images = bootimage._IMAGES.get(graph, {})
    return next((k for k, v in images.items() if isinstance(v, bootimage._Image)), None)


def test_only_a_boot_that_taught_lockdep_nothing_is_imaged(monkeypatch):
    """The first boot on a fresh graph learns its locks: no image; the second does not: imaged."""
    monkeypatch.setattr(bootimage, "ENABLED", True)
    scenario = driver_scenario("vsi-fixed", dict(DEFAULT_WORKLOAD, programs=[[["map", {"dom": 0, "iova": 0}]]]))
    graph = LockGraph()
    run_schedule(scenario, random_chooser(0, 0), lock_graph=graph)
    assert _any_key(graph) is None
    run_schedule(scenario, random_chooser(0, 1), lock_graph=graph)
    assert _any_key(graph) is not None
    # no graph shared across runs (each run its own): nothing to key an image on
    before = len(bootimage._IMAGES)
    run_schedule(scenario, random_chooser(0, 2))
    assert len(bootimage._IMAGES) == before


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
    locks, g = bootimage._Image.dump(([_VSI_MAP_MUTEX, mine], graph), graph).load(graph)
    assert locks[0] is _VSI_MAP_MUTEX and locks[1] is not mine and locks[1].name == "mine"
    assert g is graph


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
