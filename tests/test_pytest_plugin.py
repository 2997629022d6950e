"""The pytest plugin: options, the iommu_stress fixture, reports, the example database."""

import os

TEST_FILE = """
from model.kernel import Shared, SpinLock, spin_lock, spin_unlock

def lost_update(kernel):
    count = Shared("stats->count", 0)
    async def inc():
        await count.store(await count.load() + 1)
    return [inc, inc]

def locked_update(kernel):
    count, lock = Shared("stats->count", 0), SpinLock("stats->lock")
    async def inc():
        await spin_lock(lock)
        await count.store(await count.load() + 1)
        spin_unlock(lock)
    return [inc, inc]

def test_buggy(iommu_stress):
    iommu_stress.check(lost_update)

def test_fixed(iommu_stress):
    result = iommu_stress.check(locked_update)
    assert result.schedules == iommu_stress.schedules

def test_options(iommu_stress):
    assert (iommu_stress.driver, iommu_stress.seed, iommu_stress.strategy) == ("vsi-b1-gfp-or-atomic", 3, "hypothesis")
"""


def test_plugin_fails_with_the_report_and_saves_the_example(pytester):
    pytester.makepyfile(test_user=TEST_FILE)
    args = ["-p", "no:cacheprovider", "--iommu-schedules", "200", "--iommu-seed", "3", "--iommu-driver", "vsi-b1-gfp-or-atomic", "--iommu-reports", "rep"]
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "data-race: read by CPU1 races with write by CPU0 on stats->count" in out
    assert "BUG: KCSAN: data-race in inc / inc" in out  # the splat is in the message
    assert "Schedule (replay with" in out
    reports = os.listdir(pytester.path / "rep")
    assert any(n.endswith(".json") for n in reports) and any(n.endswith(".txt") for n in reports)
    db = pytester.path / ".hypothesis" / "iommu-stress"
    saved = [f for _, _, files in os.walk(db) for f in files]
    assert saved, "the failing schedule was not saved in the example database"
    # the next run finds it again (the saved example is tried first)
    again = pytester.runpytest(*args)
    again.assert_outcomes(passed=2, failed=1)
