"""``iommu-stress soak``: the command line of a soak.

:func:`add_parser` adds the subcommand to ``iommu-stress``'s subparsers and
:func:`cmd_soak` runs it.  Exit status: 1 when the soak holds any signature
(found in this session or an earlier one of a resumed soak), else 0; 130
(SIGINT) or 143 (SIGTERM) only when it was interrupted before a single
schedule was checked; 2 for bad usage (one line on stderr, raised as
:class:`~stress.errors.UsageError`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys

from ..cliargs import add_hardware, run_command
from ..cliargs import positive_int as _positive_int
from ..cliargs import seconds as _seconds
from ..cliargs import seed as _seed
from ..errors import UsageError

__all__ = ["add_parser", "cmd_soak", "main", "parse_duration", "default_dir"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text):
    """Seconds of ``90``, ``90s``, ``10m``, ``8h``, ``1d``, ``1h30m``; anything else is a :class:`ValueError`."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        seconds = float(t)
    elif t and re.fullmatch(rf"(?:{_PART.pattern})+", t):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(t))
    else:
        raise ValueError(text)
    if not 0 < seconds < float("inf"):
        raise ValueError(text)
    return seconds


def _duration(text):
    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90s, 10m, 8h or 1h30m, got {text!r}") from None


#: options fixed when a soak starts: ``--resume`` takes them from the soak
_STORED = ("driver", "scenario", "strategy", "seed", "checkers", "pct_depth", "max_steps", "cpus", "ops", "tlb_retention", "walk_cache", "soc", "masters", "group", "batch", "inject_failures")


def add_parser(sub):
    """Add ``soak`` to ``sub`` (an argparse subparsers object); returns its parser."""
    s = sub.add_parser(
        "soak",
        help="a long, crash-safe search on every core: one report per distinct bug, resumable",
        description="Search schedules in batches on every core until a limit or Ctrl-C; "
        "every distinct signature is shrunk and reported once, the rest counted.",
    )
    what = s.add_mutually_exclusive_group()
    what.add_argument("--driver", help="driver variant (default: vsi-v3); see `iommu-stress drivers`")
    what.add_argument("--scenario", help="a scenario function: pkg.module:function or path/to/file.py:function")
    s.add_argument(
        "--strategy",
        choices=["pct", "random", "hypothesis", "guided"],
        default=None,
        help="how schedules are chosen: pct (default: random priorities, --pct-depth change points), "
        "random (a uniform walk), hypothesis (Hypothesis draws the decisions and shrinks them), "
        "guided (PCT plus a corpus of the schedules that reached new interleaving coverage, shared by the workers)",
    )
    s.add_argument("--seed", type=_seed, default=None, help="seed of the soak: the same seed and options give the same batches (default 0)")
    s.add_argument("--checkers", default=None, help="comma-separated checkers/oracles (default: all)")
    s.add_argument("--pct-depth", type=_positive_int, default=None, help="PCT's bug depth d: d-1 priority change points per schedule (default 3)")
    s.add_argument(
        "--max-steps",
        type=_positive_int,
        default=None,
        help="steps one CPU may take in a schedule; past it, a CPU on a fair schedule is a livelock (default 20000)",
    )
    s.add_argument("--cpus", type=_positive_int, default=None, help="CPUs for a driver workload")
    s.add_argument("--ops", type=_positive_int, default=None, help="operations per CPU for a driver workload")
    add_hardware(s)
    s.add_argument(
        "--inject-failures",
        action="store_true",
        default=None,
        help="make allocations and dma_map_single fail now and then, as the kernel's fail_nth does (off by default)",
    )
    s.add_argument("--batch", type=_positive_int, default=None, help="schedules per batch (default 300: about a second)")
    s.add_argument("--workers", type=_positive_int, default=None, help="worker processes (default: every core)")
    s.add_argument("--duration", type=_duration, default=None, help="stop after this long in all (90s, 10m, 8h, 1h30m); with --schedules, whichever comes first")
    s.add_argument("--schedules", type=_positive_int, default=None, help="stop after this many schedules in all; with --duration, whichever comes first")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--dir", default=None, help="the soak directory (default ./soak-TARGET-SEED)")
    where.add_argument("--resume", metavar="SOAKDIR", default=None, help="continue the soak in SOAKDIR with its stored options")
    s.add_argument("--dask", metavar="ADDRESS", default=None, help="run the batches on a Dask cluster (tcp://host:8786; 'local' starts a LocalCluster)")
    s.add_argument("--redis", metavar="URL", default=None, help="share Hypothesis' example database through Redis (hypothesis strategy; default SOAKDIR/hypothesis)")
    s.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    s.add_argument("--progress-every", type=_seconds, default=10.0, help="seconds between progress lines when stderr is not a terminal")
    s.add_argument("--no-progress", action="store_true", help="no progress display")
    return s


def default_dir(target, seed):
    """``soak-<target>-<seed>`` with the target made filename-safe."""
    name = target.get("driver") or target.get("scenario") or "scenario"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "scenario"
    return f"soak-{safe}-{seed}"


def _options(args):
    """A new soak's stored options from the command line (validated here, before any worker starts)."""
    from ..checkers import default_checkers, parse_checkers
    from ..run import DEFAULT_MAX_STEPS
    from ..targets import target_from_args

    _, target = target_from_args(args)  # a bad spec or driver is one line now, not a worker's traceback
    checkers = list(default_checkers()) if args.checkers is None else parse_checkers(args.checkers)
    options = {
        "target": target,
        "strategy": args.strategy or "pct",
        "seed": 0 if args.seed is None else args.seed,
        "checkers": checkers,
        "max_steps": args.max_steps or DEFAULT_MAX_STEPS,
        "pct_depth": args.pct_depth or 3,
        "batch": args.batch or 300,
    }
    if args.inject_failures:  # stored only when on: a soak without it stores what it always did
        options["inject_failures"] = True
    return options


def cmd_soak(args):
    """Run ``iommu-stress soak``; returns the exit status."""
    from ..errors import ScenarioError
    from .progress import make_progress
    from .runner import SoakError, run_soak

    if args.resume:
        given = [name for name in _STORED if getattr(args, name, None) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UsageError(f"{flag} cannot change a soak: --resume runs with the soak's stored options (only --duration, --schedules, --workers may change)")
        soakdir, options = args.resume, None
    else:
        options = _options(args)
        soakdir = args.dir or default_dir(options["target"], options["seed"])
    executor = database = None
    if args.redis is not None:
        from .exampledb import database_factory, is_redis_url

        if not is_redis_url(args.redis):
            raise UsageError(f"--redis takes a redis://, rediss:// or unix:// URL, not {args.redis!r}")
        database = database_factory(args.redis, soakdir)
    if args.dask is not None:
        from .dask import DaskExecutor

        try:
            executor = DaskExecutor(args.dask, n_workers=args.workers)
        except ImportError:
            raise UsageError("--dask needs Dask: pip install 'iommu-stress[cluster]'") from None
        except (OSError, TimeoutError) as e:
            raise UsageError(f"cannot reach the Dask scheduler at {args.dask}: {e}") from None
    progress = None if args.no_progress else make_progress(every=args.progress_every)
    if not args.resume and args.duration is None and args.schedules is None:
        print("iommu-stress soak: no --duration or --schedules: running until interrupted (Ctrl-C)", file=sys.stderr)
    try:
        summary = run_soak(
            soakdir,
            options,
            schedules=args.schedules,
            duration_s=args.duration,
            resume=bool(args.resume),
            workers=args.workers,
            executor=executor,
            database=database,
            progress=progress,
        )
    except ScenarioError as e:
        raise UsageError(str(e)) from None
    except SoakError as e:
        raise UsageError(str(e)) from None
    finally:
        if progress is not None:
            progress.close()
    code = exit_status(summary)
    if args.json:
        print(json.dumps(summary_json(summary, code), sort_keys=True))
    else:
        print_summary(summary)
    return code


def exit_status(summary):
    if summary.found:
        return 1
    if summary.signal is not None and summary.schedules == 0:
        return 128 + summary.signal
    return 0


def _report_path(summary, entry):
    return os.path.join(summary.soakdir, entry["report"]) if entry.get("report") else None


def summary_json(summary, code):
    return {
        "dir": summary.soakdir,
        "reason": summary.reason,
        "signal": signal.Signals(summary.signal).name if summary.signal else None,
        "schedules": summary.schedules,
        "points": summary.points,
        "elapsed_s": round(summary.elapsed_s, 3),
        "session_schedules": summary.session_schedules,
        "session_s": round(summary.session_s, 3),
        "schedules_per_s": round(summary.rate, 1),
        "workers": summary.workers,
        "workers_lost": summary.lost,
        "found": summary.found,
        "by_kind": summary.by_kind(),
        "signatures": [
            {
                "signature": sig,
                "kind": e["kind"],
                "count": e["count"],
                "report": _report_path(summary, e),
                "new": sig in summary.new,
            }
            for sig, e in sorted(summary.findings.items())
        ],
        "exit": code,
    }


def print_summary(summary):
    from .progress import duration_text

    why = {
        "signal": f"stopped by {signal.Signals(summary.signal).name if summary.signal else 'request'}",
        "duration": "duration reached",
        "schedules": "schedule limit reached",
        "error": "stopped by an error",
    }.get(summary.reason, summary.reason)
    out = [
        f"soak {summary.soakdir}: {why}",
        f"  {summary.schedules:,} schedules, {summary.points:,} points in {duration_text(summary.elapsed_s)} "
        f"(this session {summary.session_schedules:,} at {summary.rate:,.0f}/s on {summary.workers} worker{'' if summary.workers == 1 else 's'}"
        + (f", {summary.lost} batches re-run after a worker died" if summary.lost else "")
        + ")",
    ]
    if not summary.found:
        out.append("  no violation")
    else:
        kinds = ", ".join(f"{k} {n}" for k, n in summary.by_kind().items())
        out.append(f"  {len(summary.findings)} signatures ({kinds}), {len(summary.new)} new in this session:")
        for sig, e in sorted(summary.findings.items(), key=lambda kv: (kv[1]["kind"], kv[0])):
            mark = "new " if sig in summary.new else ""
            out.append(f"    {mark}{sig}  x{e['count']}")
            path = _report_path(summary, e)
            out.append(f"      {path if path else '(no report yet: the next session writes it)'}")
    print("\n".join(out))


class _Parser(argparse.ArgumentParser):
    """argparse reporting bad usage as a :class:`UsageError` (one line, exit 2)."""

    def error(self, message):
        raise UsageError(message)


def main(argv=None):
    """``python -m stress.soak.cli ARGS``: the soak alone, as ``iommu-stress soak ARGS``."""
    p = _Parser(prog="iommu-stress")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_parser(sub)
    return run_command(lambda: cmd_soak(p.parse_args(["soak", *(sys.argv[1:] if argv is None else argv)])))


if __name__ == "__main__":
    sys.exit(main())
