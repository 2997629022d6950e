"""vsi-fixed under every workload mix, with the random and PCT choosers: no violation.

The default run does 150 schedules per (mix, strategy): 1,800 in all.  The
soak version (``IOMMU_STRESS_SOAK=1``, marker ``soak``) does 1,700 each:
20,400 in all.
"""

import os

import pytest

from stress import explore
from stress.workload import driver_scenario, workload_config

SOAK = os.environ.get("IOMMU_STRESS_SOAK") == "1"
PER_CASE = 1700 if SOAK else 150

MIXES = {
    "all": None,
    "map-unmap-dma": ["map", "unmap", "dma", "iova_to_phys"],
    "attach-dma": ["attach", "attach_identity", "attach_blocked", "map", "dma", "fault"],
    "vfio": ["claim", "release", "attach", "map", "unmap", "dma"],
    "power": ["suspend", "resume", "map", "unmap", "dma", "attach", "fault"],
    "domains": ["dom_alloc", "dom_free", "map", "unmap", "attach", "dma"],
}


@pytest.mark.soak
@pytest.mark.parametrize("strategy", ["pct", "random"])
@pytest.mark.parametrize("mix", sorted(MIXES))
def test_vsi_fixed_clean(mix, strategy):
    cfg = workload_config(cpus=3, ops=4, kinds=MIXES[mix])
    result = explore(driver_scenario("vsi-fixed", cfg), strategy=strategy, schedules=PER_CASE, seed=11)
    assert result.schedules == PER_CASE
    assert not result.found, result.violations[0].report["violation"]["splat"] if result.found else ""
