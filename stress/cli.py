"""``iommu-stress``: hunt, replay, drivers, bench.

Exit status: ``hunt`` 1 found / 0 none; ``replay`` 1 reproduces / 0 not;
2 for bad usage anywhere (one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import __version__
from .cliargs import positive_int as _positive_int
from .cliargs import seconds as _seconds
from .cliargs import seed as _seed
from .analyze.cli import add_parser as add_analyze_parser
from .analyze.cli import cmd_analyze
from .soak.cli import add_parser as add_soak_parser
from .soak.cli import cmd_soak
from .targets import UsageError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage in one line and exits 2."""

    def error(self, message):
        raise UsageError(message)




def build_parser():
    p = _Parser(prog="iommu-stress", description="Find concurrency bugs in Linux IOMMU drivers.")
    p.add_argument("--version", action="version", version=f"iommu-stress {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    h = sub.add_parser("hunt", help="search schedules for a violation and write a shrunk report")
    what = h.add_mutually_exclusive_group()
    what.add_argument("--driver", help="driver variant to hunt in (default: vsi-v3); see `iommu-stress drivers`")
    what.add_argument("--scenario", help="a scenario function: pkg.module:function or path/to/file.py:function")
    h.add_argument("--strategy", default="pct", choices=["pct", "random", "exhaustive", "hypothesis"])
    h.add_argument("--seed", type=_seed, default=0)
    budget = h.add_mutually_exclusive_group()
    budget.add_argument("--schedules", type=_positive_int, default=None, help="number of schedules (default 2000)")
    budget.add_argument("--budget-s", type=_seconds, default=None, help="wall-time budget in seconds")
    h.add_argument("--out", default="reports", help="directory for reports (default ./reports)")
    h.add_argument("--json", action="store_true", help="print one JSON object")
    h.add_argument("--all-kinds", action="store_true", help="keep hunting; report each distinct signature (kind and place) once")
    h.add_argument(
        "--checkers",
        help="comma-separated checkers/oracles (default: all); 'cross-schedule' keeps lockdep's graph for the whole search",
    )
    h.add_argument("--pct-depth", type=_positive_int, default=3)
    h.add_argument("--bound", type=int, default=2, help="preemption bound for --strategy exhaustive")
    h.add_argument("--max-steps", type=_positive_int, default=20_000)
    h.add_argument("--no-shrink", action="store_true", help="write the schedule as found")
    h.add_argument("--log", default=None, help="append structured JSON-lines events to this file")
    h.add_argument("--cpus", type=_positive_int, default=None, help="CPUs for a driver workload")
    h.add_argument("--ops", type=_positive_int, default=None, help="operations per CPU for a driver workload")

    r = sub.add_parser("replay", help="re-run a report's schedule")
    r.add_argument("report")
    r.add_argument("--json", action="store_true")
    r.add_argument("--out", default=None, help="write the replayed report into this directory")

    d = sub.add_parser("drivers", help="list driver variants")
    d.add_argument("--json", action="store_true")

    add_soak_parser(sub)
    add_analyze_parser(sub)

    b = sub.add_parser("bench", help="throughput figures")
    b.add_argument("--json", action="store_true")
    b.add_argument("--quick", action="store_true", help="smaller counts (for a smoke test)")
    return p


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        commands = {
            "hunt": cmd_hunt,
            "soak": cmd_soak,
            "analyze": cmd_analyze,
            "replay": cmd_replay,
            "drivers": cmd_drivers,
            "bench": cmd_bench,
        }
        return commands[args.command](args)
    except UsageError as e:
        print(f"iommu-stress: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iommu-stress: interrupted", file=sys.stderr)
        return 130


# -- hunt -------------------------------------------------------------------------


def cmd_hunt(args):
    from .checkers import parse_checkers
    from .engine import explore
    from .errors import ScenarioError
    from .report import write_report
    from .signals import StopSignals, check_writable

    from .targets import target_from_args

    scenario, target = target_from_args(args)
    checkers = parse_checkers(args.checkers) if args.checkers else None
    schedules = args.schedules if args.schedules is not None else (None if args.budget_s else 2000)
    check_writable(args.out, "reports")
    log = None
    if args.log:
        import socket

        from .soak.events import open_events, versions

        try:
            log = open_events(args.log)
        except OSError as e:
            raise UsageError(f"cannot open log {args.log}: {e.strerror}") from None
        log.event(
            "hunt_start",
            target=target,
            strategy=args.strategy,
            seed=args.seed,
            schedules=schedules,
            budget_s=args.budget_s,
            options={"checkers": checkers, "max_steps": args.max_steps, "pct_depth": args.pct_depth, "bound": args.bound},
            versions=versions(),
            host=socket.gethostname(),
        )
    progress = None if args.json else _Progress()

    def on_find(v):
        """On disk the moment it is found: a later Ctrl-C or kill loses nothing."""
        v.path = write_report(v.report, args.out)
        if log is not None:
            log.event(
                "find",
                signature=v.report["signature"],
                kind=v.kind,
                message=v.message,
                report=v.path,
                schedule=v.report["schedule"],
                seed=args.seed,
            )

    hunt = explore
    if args.strategy == "hypothesis" and "driver" in target and not args.all_kinds:
        hunt = _hunt_with_machine
    with StopSignals() as stop:
        try:
            result = hunt(
                scenario,
                strategy=args.strategy,
                schedules=schedules,
                seed=args.seed,
                budget_s=args.budget_s,
                checkers=checkers,
                keep_going=args.all_kinds,
                max_steps=args.max_steps,
                pct_depth=args.pct_depth,
                bound=args.bound,
                shrink=not args.no_shrink,
                target=target,
                progress=progress,
                on_find=on_find,
                stop=stop,
            )
        except ScenarioError as e:
            raise UsageError(str(e)) from None
        finally:
            if progress is not None:
                progress.close()
    if log is not None:
        log.event(
            "hunt_end",
            reason="signal" if stop() else ("exhausted" if result.exhausted else "done"),
            found=result.found,
            signatures=len(result.violations),
            schedules=result.schedules,
            points=result.points,
            elapsed_s=round(result.elapsed_s, 3),
            stopped=stop.name,
        )
        log.close()
    if args.json:
        first = result.violations[0] if result.violations else None
        out = {
            "found": result.found,
            "violation": {"kind": first.kind, "message": first.message} if first else None,
            "report": first.path if first else None,
            "schedules": result.schedules,
            "points": result.points,
            "elapsed_s": round(result.elapsed_s, 3),
            "exhausted": result.exhausted,
            "stopped": stop.name,
        }
        if args.all_kinds:
            out["violations"] = [
                {"kind": v.kind, "signature": v.report["signature"], "message": v.message, "report": v.path}
                for v in result.violations
            ]
        print(json.dumps(out, sort_keys=True))
    else:
        _print_hunt(result, target, stop.name)
    if result.found:
        return 1
    return stop.exit_status() if stop() and result.schedules == 0 else 0


def _hunt_with_machine(scenario, *, schedules, seed, budget_s, checkers, keep_going, max_steps, shrink, target, on_find, stop, **_):
    """``--strategy hypothesis`` on a driver: the Hypothesis stateful machine.

    The CLI is the composition root: it is the one place in ``stress`` that
    reaches up into ``strategies`` (lazily, for this strategy only).
    """
    from strategies.machine import hunt_with_machine, workload_of

    from .checkers import default_checkers
    from .results import Result, Violation
    from .report import build_report
    from .workload import driver_scenario

    name, config = target["driver"], target["workload"]
    t0 = time.monotonic()
    stats = {}
    found = hunt_with_machine(
        lambda cfg: driver_scenario(name, cfg),
        config,
        seed=seed,
        max_examples=schedules or 100_000,
        deadline=None if budget_s is None else t0 + budget_s,
        checkers=checkers,
        max_steps=max_steps,
        polish=shrink,
        stats=stats,
        stop=stop,
    )
    result = Result(schedules=stats.get("runs", 0), points=stats.get("points", 0))
    if found is not None:
        meta = {
            "target": {"driver": name, "workload": workload_of(config, found.programs)},
            "strategy": "hypothesis",
            "seed": seed,
            "options": {
                "checkers": list(default_checkers() if checkers is None else checkers),
                "max_steps": max_steps,
                "machine": True,
            },
        }
        found.outcome.decisions = list(found.decisions)
        report = build_report(meta, stats.get("examples", 0), found.outcome, len(found.decisions))
        v = found.outcome.violation
        result.violations.append(Violation(v["kind"], v["message"], report))
        on_find(result.violations[-1])
    result.elapsed_s = time.monotonic() - t0
    return result


class _Progress:
    """A status line on stderr (display only).

    On a terminal it is rewritten in place at most once a second; in a pipe
    or a CI log (stderr not a terminal) it is a plain line every ``every``
    seconds, never a carriage return.
    """

    def __init__(self, every=10.0):
        self.t0 = self.last = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.every = 1.0 if self.tty else every
        self.shown = False

    def __call__(self, result):
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        rate = result.schedules / max(now - self.t0, 1e-9)
        line = f"  {result.schedules} schedules, {result.points} points, {rate:.0f} schedules/s"
        sys.stderr.write(f"\r{line} " if self.tty else f"{line}\n")
        sys.stderr.flush()
        self.shown = self.tty

    def close(self):
        if self.shown:
            sys.stderr.write("\n")


def _print_hunt(result, target, stopped=None):
    from rich.console import Console
    from rich.markup import escape

    con = Console(highlight=False, soft_wrap=True)  # never break a report path (pipes, CI logs)
    what = target.get("driver") or target.get("scenario")
    if stopped:
        con.print(f"stopped by {stopped} after {result.schedules} schedules; every find below is on disk")
    if not result.found:
        extra = " (space exhausted)" if result.exhausted else ""
        con.print(f"no violation in {what}: {result.schedules} schedules, {result.points} points{extra}")
        return
    for v in result.violations:
        rep = v.report
        con.print(f"[bold red]{escape(v.report['signature'])}[/]: {escape(v.message)}")
        con.print(
            f"  found at schedule {rep['schedule']} ({rep['strategy']}, seed {rep['seed']}); "
            f"shrunk {rep['found_decisions']} -> {len(rep['decisions'])} decisions, {rep['preemptions']} preemptions"
        )
        con.print(f"  report: {v.path} (and .txt)")
    con.print(f"{result.schedules} schedules, {result.points} points, {result.elapsed_s:.1f} s")


# -- replay -----------------------------------------------------------------------


def cmd_replay(args):
    from .errors import ScenarioError
    from .report import ReportError, build_report, load_report, write_report
    from .targets import replay_report

    try:
        rep = load_report(args.report)
    except ReportError as e:
        raise UsageError(str(e)) from None
    try:
        out = replay_report(rep)
    except (ScenarioError, ValueError) as e:
        raise UsageError(f"{args.report}: {e}") from None
    expected = rep["violation"]["kind"]
    reproduced = out.kind == expected
    meta = {k: rep[k] for k in ("target", "strategy", "seed", "options")}
    out.decisions = rep["decisions"]  # a report keeps its replay input
    again = build_report(meta, rep.get("schedule", 0), out, rep.get("found_decisions")) if out.violation else None
    if again is not None and rep.get("prior"):
        again["prior"] = rep["prior"]
    if args.out and again is not None:
        write_report(again, args.out)
    if args.json:
        print(
            json.dumps(
                {
                    "reproduced": reproduced,
                    "expected": expected,
                    "kind": out.kind,
                    "message": out.violation["message"] if out.violation else None,
                    "points": out.points,
                },
                sort_keys=True,
            )
        )
    else:
        _print_replay(rep, out, reproduced)
    return 1 if reproduced else 0


def _print_replay(rep, out, reproduced):
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False)
    actors = []
    for _, actor, _, _ in out.timeline or []:
        if actor != "-" and actor not in actors:
            actors.append(actor)
    table = Table(title="schedule", show_lines=False)
    table.add_column("step", justify="right")
    for a in actors:
        table.add_column(a)
    for step, actor, what, detail in out.timeline or []:
        row = [""] * len(actors)
        if actor in actors:
            row[actors.index(actor)] = f"{what} {detail}".strip()
        table.add_row(str(step), *row)
    con.print(table)
    if out.violation:
        con.print(out.violation["splat"], markup=False)
    verdict = "[bold red]reproduced[/]" if reproduced else "[green]not reproduced[/]"
    con.print(f"{verdict}: expected {rep['violation']['kind']}, got {out.kind or 'no violation'}")


# -- drivers ----------------------------------------------------------------------


def cmd_drivers(args):
    from model.drivers import DRIVERS

    rows = [(name, getattr(cls, "summary", "").strip().splitlines()[0] if getattr(cls, "summary", "") else "") for name, cls in DRIVERS.items()]
    if args.json:
        print(json.dumps([{"name": n, "summary": s} for n, s in rows]))
    else:
        width = max(len(n) for n, _ in rows)
        for n, s in rows:
            print(f"{n.ljust(width)}  {s}")
    return 0


# -- bench ------------------------------------------------------------------------


def cmd_bench(args):
    from .bench import run_bench

    figures = run_bench(quick=args.quick)
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="iommu-stress bench")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for k, v in figures.items():
            table.add_row(k, f"{v:,.1f}" if isinstance(v, float) else str(v))
        Console().print(table)
    return 0
