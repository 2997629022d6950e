"""The two ways a run can fail that are not findings.

* :class:`UsageError` - bad input on the command line or in a report (an
  unknown driver, a malformed file, a bad flag): one line, exit status 2.
* :class:`ScenarioError` - the scenario or plugin itself is wrong (a body
  that is not async, an ``await`` of a plain call, a coroutine of a model
  primitive that was never awaited, no CPUs at all).  It is a subclass of
  :class:`UsageError`: the user must fix their code, and nothing is reported
  as a bug of the driver.  :class:`ReplayMismatch` is the one for a
  scenario that is not deterministic (a find that does not run again the
  same).

And one that is a bug of this tool, never of the driver:

* :class:`EngineError` - the engine broke its own contract (a chooser gave a
  decision out of range): the run stops and raises it, with a traceback.
"""

from __future__ import annotations

__all__ = ["UsageError", "ScenarioError", "ReplayMismatch", "EngineError"]


class UsageError(Exception):
    """Bad input from the user: one line, exit status 2."""


class ScenarioError(UsageError):
    """The scenario (or a plugin driver) is broken: a usage error, never a finding."""


class ReplayMismatch(ScenarioError):
    """A found violation did not replay the same: the scenario is not deterministic."""


class EngineError(RuntimeError):
    """iommu-stress itself is wrong: never reported as a finding of the driver."""
