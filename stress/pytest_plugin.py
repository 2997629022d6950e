"""pytest plugin (entry point ``pytest11``): run your scenarios under the explorer.

Options::

    --iommu-driver NAME       driver variant for driver workloads (default vsi-fixed)
    --iommu-schedules N       schedules per check (default 500)
    --iommu-seed N            seed (default 0)
    --iommu-strategy S        pct | random | exhaustive | hypothesis (default hypothesis)
    --iommu-reports DIR       where failing reports are written (default ./reports)

The ``iommu_stress`` fixture::

    def test_my_locking(iommu_stress):
        iommu_stress.check(my_scenario)            # fails with the shrunk report

A failure shows the report's text (splat, stacks, timeline) in the assertion
message and writes ``NAME.json``/``NAME.txt``.  With the hypothesis strategy
the failing schedule is saved in Hypothesis' example database
(``.hypothesis/``), so the next run tries it first.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["IommuStress"]


def pytest_addoption(parser):
    group = parser.getgroup("iommu-stress")
    group.addoption("--iommu-driver", default="vsi-fixed", help="driver variant for driver workloads")
    group.addoption("--iommu-schedules", type=int, default=500, help="schedules per check")
    group.addoption("--iommu-seed", type=int, default=0, help="seed of the search")
    group.addoption(
        "--iommu-strategy",
        default="hypothesis",
        choices=["pct", "random", "exhaustive", "hypothesis"],
        help="search strategy",
    )
    group.addoption("--iommu-reports", default="reports", help="directory for failing reports")


class IommuStress:
    """What the fixture hands a test: the options, and ``check``/``explore``."""

    def __init__(self, config, rootdir):
        self.driver = config.getoption("--iommu-driver")
        self.schedules = config.getoption("--iommu-schedules")
        self.seed = config.getoption("--iommu-seed")
        self.strategy = config.getoption("--iommu-strategy")
        self.reports = config.getoption("--iommu-reports")
        self._db_path = os.path.join(str(rootdir), ".hypothesis", "iommu-stress")

    def explore(self, scenario, **kw):
        from hypothesis.database import DirectoryBasedExampleDatabase

        from .engine import explore

        kw.setdefault("strategy", self.strategy)
        kw.setdefault("schedules", self.schedules)
        kw.setdefault("seed", self.seed)
        if kw["strategy"] == "hypothesis":
            kw.setdefault("database", DirectoryBasedExampleDatabase(self._db_path))
        return explore(scenario, **kw)

    def check(self, scenario, **kw):
        """Explore ``scenario``; fail the test with the shrunk report if anything is found."""
        from .report import report_text, write_report

        result = self.explore(scenario, **kw)
        if result.found:
            v = result.violations[0]
            path = write_report(v.report, self.reports)
            pytest.fail(f"{v.kind}: {v.message}\nreport: {path}\n\n{report_text(v.report)}", pytrace=False)
        return result


@pytest.fixture
def iommu_stress(request):
    """Run scenarios under the controlled scheduler with the command-line options."""
    return IommuStress(request.config, request.config.rootpath)
