"""What a hunt runs: a user scenario (``pkg.module:function``) or a driver workload.

A report names its target as a small dict, so ``replay`` can rebuild the
exact scenario: ``{"scenario": "pkg.mod:fn"}``, or for a driver hunt
``{"driver": NAME, "workload": {...}}`` (see :mod:`stress.workload`).
"""

from __future__ import annotations

from .errors import UsageError
from .loader import import_object
from .workload import driver_scenario

__all__ = ["UsageError", "import_object", "resolve_scenario", "scenario_for_target", "target_from_args", "replay_report"]


def resolve_scenario(spec):
    fn = import_object(spec, "scenario")
    if not callable(fn):
        raise UsageError(f"scenario {spec!r} is not callable")
    return fn


def target_from_args(args):
    """``(scenario, target)`` of ``--scenario`` or ``--driver``/``--cpus``/``--ops`` (hunt and soak).

    The default driver is vsi-v3; a bad spec or an unknown driver is one
    :class:`UsageError` line, before any schedule runs.
    """
    from .cliargs import HARDWARE_PARAMS

    hardware = {dest: getattr(args, dest, None) for dest, _ in HARDWARE_PARAMS}
    if args.scenario:
        for dest, flag in HARDWARE_PARAMS:
            if hardware[dest] is not None:
                raise UsageError(f"{flag} is a parameter of a driver workload's hardware, not of --scenario")
        return resolve_scenario(args.scenario), {"scenario": args.scenario}
    from .workload import workload_config

    name = args.driver or "vsi-v3"
    config = workload_config(cpus=args.cpus, ops=args.ops, **hardware)
    return driver_scenario(name, config), {"driver": name, "workload": config}


def scenario_for_target(target):
    """The scenario callable a report's ``target`` names."""
    if not isinstance(target, dict):
        raise UsageError("report target must be an object")
    if target.get("scenario"):
        return resolve_scenario(target["scenario"])
    if target.get("driver"):
        return driver_scenario(target["driver"], target.get("workload") or {})
    raise UsageError("report target names neither a scenario nor a driver")


def replay_report(report, trace=True):
    """Replay a loaded report: its ``prior`` schedules first (lockdep's graph), then its own."""
    from .engine import prior_graph
    from .run import replay_decisions

    opts = report["options"]
    run_opts = {"checkers": opts.get("checkers"), "max_steps": opts.get("max_steps", 20_000)}
    if opts.get("inject_failures"):
        run_opts["inject_failures"] = True  # the failure points are decisions of the schedule
    if opts.get("kasan_reported"):
        run_opts["kasan_reported"] = True  # found after KASAN's one report of the search
    prior = report.get("prior") or []
    if prior:
        base = prior_graph([(p["schedule"], scenario_for_target(p["target"]), p["decisions"]) for p in prior], run_opts)
        base.origin = report.get("schedule", 0)
        run_opts["lockdep_base"] = base
    return replay_decisions(scenario_for_target(report["target"]), report["decisions"], trace=trace, **run_opts)
