"""The engine: controlled scheduler, checkers, oracles, reports and the CLI.

Stable API::

    from stress import explore
    result = explore(scenario, strategy="pct", schedules=1000, seed=0, budget_s=None)
    for v in result.violations:
        print(v.kind, v.message, v.report["decisions"])
"""

__version__ = "0.1.0"

from .engine import explore  # noqa: E402
from .results import Result, Violation  # noqa: E402
from .run import replay_decisions, run_schedule  # noqa: E402

__all__ = ["explore", "Result", "Violation", "run_schedule", "replay_decisions", "__version__"]
