"""``iommu-stress``: hunt, replay, drivers, bench (and soak, analyze).

Exit status: ``hunt`` 1 found / 0 none; ``replay`` 1 reproduces / 0 not;
2 for bad usage anywhere (one line on stderr, never a traceback); 141 when
the reader of stdout went away (``| head``), quietly.

Output is the same on a terminal, in a pipe and in a CI log: no line is
broken at 80 columns, none ends in a space, and progress is a plain line
per interval unless stderr is a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import __version__
from .cliargs import console as _console
from .cliargs import add_hardware
from .cliargs import positive_int as _positive_int
from .cliargs import print_rich as _print_rich
from .cliargs import run_command as _run_command
from .cliargs import seconds as _seconds
from .cliargs import seed as _seed
from .analyze.cli import add_parser as add_analyze_parser
from .analyze.cli import cmd_analyze
from .bench.cli import add_parser as add_bench_parser
from .bench.cli import cmd_bench
from .soak.cli import add_parser as add_soak_parser
from .soak.cli import cmd_soak
from .targets import UsageError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage in one line and exits 2."""

    def error(self, message):
        raise UsageError(message)


#: ``--strategy`` of hunt, in the order of its help
HUNT_STRATEGIES = ("pct", "random", "exhaustive", "hypothesis", "guided")


def build_parser():
    p = _Parser(prog="iommu-stress", description="Find concurrency bugs in Linux IOMMU drivers.")
    p.add_argument("--version", action="version", version=f"iommu-stress {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    h = sub.add_parser("hunt", help="search schedules for a violation and write a shrunk report")
    what = h.add_mutually_exclusive_group()
    what.add_argument("--driver", help="driver variant to hunt in (default: vsi-v3); see `iommu-stress drivers`")
    what.add_argument("--scenario", help="a scenario function: pkg.module:function or path/to/file.py:function")
    h.add_argument(
        "--strategy",
        default="pct",
        choices=HUNT_STRATEGIES,
        help="how schedules are chosen: pct (default: random priorities, --pct-depth change points), "
        "random (a uniform walk), exhaustive (every schedule within --bound preemptions), "
        "hypothesis (Hypothesis draws the decisions and shrinks them), "
        "guided (PCT plus a corpus of the schedules that reached new interleaving coverage, mutated)",
    )
    h.add_argument("--seed", type=_seed, default=0, help="seed of the search: the same seed and options give the same reports (default 0)")
    h.add_argument(
        "--schedules",
        type=_positive_int,
        default=None,
        help="stop after this many schedules (default 2000, no limit when only --budget-s is given); with --budget-s, whichever comes first",
    )
    h.add_argument("--budget-s", type=_seconds, default=None, help="stop after this many seconds; with --schedules, whichever comes first")
    h.add_argument("--out", default="reports", help="directory for reports (default ./reports)")
    h.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the summary")
    h.add_argument("--all-kinds", action="store_true", help="keep hunting; report each distinct signature (kind and place) once")
    h.add_argument(
        "--checkers",
        help="comma-separated checkers/oracles (default: all); 'cross-schedule' keeps lockdep's graph for the whole search",
    )
    h.add_argument("--pct-depth", type=_positive_int, default=3, help="PCT's bug depth d: d-1 priority change points per schedule (default 3)")
    h.add_argument("--bound", type=int, default=2, help="preemption bound for --strategy exhaustive (default 2)")
    h.add_argument(
        "--max-steps",
        type=_positive_int,
        default=20_000,
        help="steps one CPU may take in a schedule; past it, a CPU on a fair schedule is a livelock (default 20000)",
    )
    h.add_argument(
        "--inject-failures",
        action="store_true",
        help="make allocations and dma_map_single fail now and then, as the kernel's fail_nth does (a decision of the "
        "schedule: recorded, replayed, shrunk away when the bug does not need it); off by default",
    )
    h.add_argument("--no-shrink", action="store_true", help="write the schedule as found")
    h.add_argument("--log", default=None, help="append structured JSON-lines events to this file")
    h.add_argument("--cpus", type=_positive_int, default=None, help="CPUs for a driver workload")
    h.add_argument("--ops", type=_positive_int, default=None, help="operations per CPU for a driver workload")
    add_hardware(h)

    r = sub.add_parser("replay", help="re-run a report's schedule and print it as the report's .txt does")
    r.add_argument("report", help="a report's .json file, as hunt or soak wrote it")
    r.add_argument("--json", action="store_true", help="print one JSON object (reproduced, expected, kind, message, points)")
    r.add_argument("--full", action="store_true", help="show every boot and teardown event (by default those that do not touch the violation are folded)")
    r.add_argument("--out", default=None, help="write the replayed report into this directory")

    d = sub.add_parser("drivers", help="list driver variants")
    d.add_argument("--json", action="store_true", help="print a JSON list of {name, summary}")

    add_soak_parser(sub)
    add_analyze_parser(sub)

    add_bench_parser(sub)
    return p




def main(argv=None):
    commands = {
        "hunt": cmd_hunt,
        "soak": cmd_soak,
        "analyze": cmd_analyze,
        "replay": cmd_replay,
        "drivers": cmd_drivers,
        "bench": cmd_bench,
    }

    def run():
        args = build_parser().parse_args(argv)
        return commands[args.command](args)

    return _run_command(run)


# -- hunt -------------------------------------------------------------------------


def cmd_hunt(args):
    from .checkers import parse_checkers
    from .engine import explore
    from .errors import ScenarioError
    from .report import write_report
    from .signals import StopSignals, check_writable

    from .targets import target_from_args

    scenario, target = target_from_args(args)
    checkers = parse_checkers(args.checkers) if args.checkers is not None else None
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
            options={
                "checkers": checkers,
                "max_steps": args.max_steps,
                "pct_depth": args.pct_depth,
                "bound": args.bound,
                **({"inject_failures": True} if args.inject_failures else {}),
            },
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
                **({"inject_failures": True} if args.inject_failures else {}),
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
            shrink_runs=result.shrink_runs,
            points=result.points,
            coverage=result.coverage_counts,
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
            "shrink_runs": result.shrink_runs,
            "points": result.points,
            "coverage": result.coverage_counts,
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


def _hunt_with_machine(
    scenario, *, schedules, seed, budget_s, checkers, keep_going, max_steps, shrink, target, on_find, stop,
    inject_failures=False, pct_depth=3, **_
):
    """``--strategy hypothesis`` on a driver: the Hypothesis stateful machine.

    One example of the machine is one schedule, run once at its end: the
    programs the default workload draws for a schedule number (PCT's swarm),
    grown by a few rules, run under segments then a PCT plan Hypothesis
    drew.  ``schedules`` is a hard limit on the runs it searches (up to and
    including the first find); the runs spent shrinking the find
    (Hypothesis, then delta debugging, then the traced replay) are shrink
    runs, at most as many again.  The CLI is the composition root: it is the
    one place in ``stress`` that reaches up into ``strategies`` (lazily,
    for this strategy only).
    """
    from strategies.machine import hunt_with_machine

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
        max_runs=schedules or 10_000_000,
        deadline=None if budget_s is None else t0 + budget_s,
        checkers=checkers,
        max_steps=max_steps,
        polish=shrink,
        stats=stats,
        stop=stop,
        inject_failures=inject_failures,
        pct_depth=pct_depth,
    )
    search, shrink_runs = _machine_counts(stats)
    result = Result(schedules=search, shrink_runs=shrink_runs, points=stats.get("points", 0), coverage=stats.get("coverage", set()))
    if found is not None:
        meta = {
            "target": {"driver": name, "workload": found.config},
            "strategy": "hypothesis",
            "seed": seed,
            "options": {
                "checkers": list(default_checkers() if checkers is None else checkers),
                "max_steps": max_steps,
                "machine": True,
                **({"inject_failures": True} if inject_failures else {}),
            },
        }
        found.outcome.decisions = list(found.decisions)
        report = build_report(meta, search - 1, found.outcome, len(found.decisions))
        v = found.outcome.violation
        result.violations.append(Violation(v["kind"], v["message"], report))
        result.first_find_schedules = search
        on_find(result.violations[-1])
    result.elapsed_s = time.monotonic() - t0
    return result


def _machine_counts(stats):
    """``(search schedules, shrink runs)`` of a machine hunt's ``stats``: every
    run up to and including the first failure is a search schedule, every
    run after it (shrinking, the final replay) a shrink run."""
    return stats.get("search_runs", 0), stats.get("shrink_runs", 0)


def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _covered(result):
    """``N schedules (+ M shrink runs), P points in T s``."""
    shrink = result.shrink_runs
    extra = f" (+ {_plural(shrink, 'shrink run')})" if shrink else ""
    return f"{_plural(result.schedules, 'schedule')}{extra}, {_plural(result.points, 'point')} in {result.elapsed_s:.1f} s"


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
        try:
            sys.stderr.write(f"\r{line} " if self.tty else f"{line}\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # a display never stops a hunt (stderr's reader went away)
            return
        self.shown = self.tty

    def close(self):
        if self.shown:
            try:
                sys.stderr.write("\n")
            except (OSError, ValueError):
                pass


def _print_hunt(result, target, stopped=None):
    from rich.markup import escape

    con = _console()  # never break a report path (pipes, CI logs)
    what = target.get("driver") or target.get("scenario")
    if stopped:
        con.print(f"stopped by {stopped} after {result.schedules} schedules; every find below is on disk")
    if not result.found:
        extra = " (space exhausted)" if result.exhausted else ""
        con.print(_coverage_line(result))
        con.print(f"no violation in {escape(str(what))}: {_covered(result)}{extra}")
        return
    for v in result.violations:
        rep = v.report
        con.print(f"[bold red]{escape(v.report['signature'])}[/]: {escape(v.message)}")
        con.print(
            f"  found at schedule {rep['schedule']} ({rep['strategy']}, seed {rep['seed']}); "
            f"shrunk {rep['found_decisions']} -> {len(rep['decisions'])} decisions, {rep['preemptions']} preemptions"
            + (f", {len(rep['injected'])} injected failure{'s' if len(rep['injected']) > 1 else ''}" if rep.get("injected") else "")
        )
        con.print(f"  report: {escape(str(v.path))} (and .txt)")
    con.print(_coverage_line(result))
    con.print(_covered(result))


def _coverage_line(result):
    """``coverage: 21 lock edges, 43 alias pairs, ...`` (stress.search.coverage)."""
    c = result.coverage_counts
    return (
        f"coverage: {_plural(c['lock'], 'lock edge')}, {_plural(c['alias'], 'alias pair')}, "
        f"{_plural(c['overlap'], 'overlapping operation pair')}, {_plural(c['func'], 'driver function')}"
    )


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
        _print_replay(args, again, out, expected, reproduced)
    return 1 if reproduced else 0


def _print_replay(args, again, out, expected, reproduced):
    """The replayed report as its .txt shows it (``--full``: boot and teardown too), then the verdict."""
    from .report import report_text, timeline_lines

    if again is not None:
        text = report_text(again, full=args.full, path=args.report)
    else:
        lines = ["no violation on replay; the schedule ran:", "", *timeline_lines(out.timeline or [])]
        text = "".join(line.rstrip() + "\n" for line in lines)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    verdict = "[bold red]reproduced[/]" if reproduced else "[green]not reproduced[/]"
    _console().print(f"{verdict}: expected {expected}, got {out.kind or 'no violation'}")


# -- drivers ----------------------------------------------------------------------


def cmd_drivers(args):
    from model.drivers import DRIVERS

    rows = [(name, getattr(cls, "summary", "").strip().splitlines()[0] if getattr(cls, "summary", "") else "") for name, cls in DRIVERS.items()]
    if args.json:
        print(json.dumps([{"name": n, "summary": s} for n, s in rows]))
    else:
        width = max(len(n) for n, _ in rows)
        for n, s in rows:
            print(f"{n.ljust(width)}  {s}".rstrip())
    return 0
