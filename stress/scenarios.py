"""What the engine runs: a scenario, or a family of them (the target protocol).

The engine knows nothing of drivers.  It runs *scenarios*: callables
``scenario(kernel) -> [async body per CPU]``.  A *family* is any object with
``for_schedule(seed, index) -> (scenario, target)``: it builds the concrete
scenario of schedule ``index`` (a driver workload draws that schedule's
programs there).  A concrete scenario may carry two optional attributes:

* ``target`` - a small JSON-able dict naming it for a report, from which
  :func:`stress.targets.scenario_for_target` rebuilds it for ``replay``;
* ``shrink(decisions, kind, opts) -> (scenario, decisions)`` - its own
  shrinker, for a scenario that can get smaller than its schedule (a driver
  workload drops CPUs and operations); without it the engine shrinks the
  decisions alone (:func:`stress.shrink.shrink_decisions`).

The same ``(seed, index)`` must always give the same concrete scenario.
"""

from __future__ import annotations

__all__ = ["concretize", "target_of", "shrinker_of"]


def concretize(scenario, seed, index):
    """``(concrete scenario, its target or None)`` of schedule ``index``."""
    for_schedule = getattr(scenario, "for_schedule", None)
    if for_schedule is None:
        return scenario, None
    return for_schedule(seed, index)


def target_of(scenario):
    """The report's name for ``scenario``: its ``target``, else ``pkg.module:qualname``."""
    if isinstance(getattr(scenario, "target", None), dict):
        return scenario.target
    mod, name = getattr(scenario, "__module__", None), getattr(scenario, "__qualname__", None)
    if mod and name and "<" not in name:
        return {"scenario": f"{mod}:{name}"}
    return {"scenario": None}


def shrinker_of(scenario):
    """The scenario's own ``shrink`` or None (then only its decisions shrink)."""
    shrink = getattr(scenario, "shrink", None)
    return shrink if callable(shrink) else None
