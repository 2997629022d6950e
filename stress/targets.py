"""What a hunt runs: a user scenario (``pkg.module:function``) or a driver workload.

A report names its target as a small dict, so ``replay`` can rebuild the
exact scenario: ``{"scenario": "pkg.mod:fn"}``, or for a driver hunt
``{"driver": NAME, "workload": {...}}`` (see :mod:`stress.workload`).
"""

from __future__ import annotations

import importlib

from .errors import UsageError

__all__ = ["UsageError", "import_object", "resolve_scenario", "scenario_for_target"]


def import_object(spec, what):
    """Import ``pkg.module:attr``; any failure is a one-line :class:`UsageError`."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise UsageError(f"{what} must be given as pkg.module:name, not {spec!r}")
    mod_name, attr = spec.split(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise UsageError(f"cannot import {what} module {mod_name!r}: {e}") from None
    except Exception as e:  # a plugin that raises on import
        raise UsageError(f"{what} module {mod_name!r} raised on import: {type(e).__name__}: {e}") from None
    obj = mod
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{what} {spec!r}: module {mod_name!r} has no {attr!r}") from None
    return obj


def resolve_scenario(spec):
    fn = import_object(spec, "scenario")
    if not callable(fn):
        raise UsageError(f"scenario {spec!r} is not callable")
    return fn


def scenario_for_target(target):
    """The scenario callable a report's ``target`` names."""
    if not isinstance(target, dict):
        raise UsageError("report target must be an object")
    if target.get("scenario"):
        return resolve_scenario(target["scenario"])
    if target.get("driver"):
        from .workload import driver_scenario

        return driver_scenario(target["driver"], target.get("workload") or {})
    raise UsageError("report target names neither a scenario nor a driver")
