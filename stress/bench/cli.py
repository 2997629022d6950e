"""``iommu-stress bench``: throughput figures, and with ``--campaign`` the time-to-bug campaign."""

from __future__ import annotations

import argparse
import json
import sys

from ..cliargs import console as _console
from ..cliargs import positive_int as _positive_int
from ..cliargs import print_rich as _print_rich
from ..errors import UsageError

__all__ = ["add_parser", "cmd_bench"]


def add_parser(sub):
    b = sub.add_parser("bench", help="throughput figures; --campaign: every bug under every strategy over many seeds")
    b.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="PATH",
        help="the figures as one JSON object: on stdout instead of the table (no PATH, or -), or written to PATH",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="smaller counts (for a smoke test); with --campaign: 3 shallow bugs, 3 seeds, 100 schedules, under a minute",
    )
    b.add_argument(
        "--campaign",
        action="store_true",
        help="every zoo bug and vsi-mainline finding under every strategy (random, pct d=1..3, hypothesis, guided, "
        "exhaustive), one search per seed: found in how many seeds, schedules and seconds to the first find; "
        "and the throughput of the default workload",
    )
    b.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions under valgrind instead of timing: per point and per schedule of the bench's programs, "
        "and the model's cost per point in instructions (the same from run to run, to 0.05%%: compare commits by it on one "
        "machine; 1-2 minutes)",
    )
    b.add_argument("--seeds", type=_positive_int, default=None, help="--campaign: seeds 0..N-1 per bug and strategy (default 10)")
    b.add_argument(
        "--budget",
        type=_budget,
        default=None,
        help="--campaign: schedules per search: N for every strategy, and/or STRATEGY=N for one, comma-separated "
        "(default 3000, random=1000, exhaustive=100; e.g. 1000,exhaustive=50)",
    )
    b.add_argument("--workers", type=_positive_int, default=None, help="--campaign: worker processes (default: every core)")
    b.add_argument(
        "--bugs",
        type=_names,
        default=None,
        help="--campaign: comma-separated bugs: B1..B16, mainline-stale-tlb (any row's name, dashes for spaces), "
        "zoo, mainline (default: all)",
    )
    b.add_argument(
        "--strategies",
        type=_names,
        default=None,
        help="--campaign: comma-separated: random, pct (d1-d3), pct-d1, pct-d2, pct-d3, hypothesis, guided "
        "(when the engine has it), exhaustive (default: all)",
    )
    b.add_argument(
        "--from",
        dest="from_json",
        default=None,
        metavar="PATH",
        help="--campaign: show (and --write-readme) the figures of a campaign's JSON instead of running one",
    )
    b.add_argument(
        "--write-readme",
        default=None,
        metavar="PATH",
        help="--campaign: replace the <!-- campaign-table --> block of this README with the figures",
    )
    return b


def _names(text):
    """A comma-separated list of names (bugs, strategies): at least one."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of names, got {text!r}")
    return names


_names.__name__ = "comma-separated names"


def _budget(text):
    """``N``, ``STRATEGY=N`` or both, comma-separated: ``{"*": N, strategy: N}``."""
    out = {}
    for part in (p.strip() for p in text.split(",")):
        name, _, value = part.rpartition("=")
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1 or (name == "" and "=" in part):
            raise argparse.ArgumentTypeError(f"expected a positive integer or STRATEGY=N (comma-separated), got {text!r}")
        out[name.strip() or "*"] = n
    return out


_budget.__name__ = "budget"


def cmd_bench(args):
    if args.campaign and args.instructions:
        raise UsageError("--instructions counts the throughput programs: it does not go with --campaign")
    if args.campaign:
        return _cmd_campaign(args)
    for flag, value in (("--seeds", args.seeds), ("--budget", args.budget), ("--workers", args.workers), ("--bugs", args.bugs),
                        ("--strategies", args.strategies), ("--from", args.from_json), ("--write-readme", args.write_readme)):
        if value is not None:
            raise UsageError(f"{flag} needs --campaign")
    if args.instructions:
        figures = _instructions(args.quick)
    else:
        from . import run_bench

        figures = run_bench(quick=args.quick)
    if args.json is not None:
        _write_json(args.json, figures)
    if args.json is None or args.json != "-":
        from rich.table import Table

        table = Table(title="iommu-stress bench")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for k, v in figures.items():
            table.add_row(k, f"{v:,.1f}" if isinstance(v, float) else str(v))
        _print_rich(table)
    return 0


def _instructions(quick):
    from .instructions import instruction_figures, valgrind

    if valgrind() is None:
        raise UsageError("--instructions needs valgrind, which is not on PATH (Debian, Ubuntu: apt install valgrind)")
    return instruction_figures(quick, note=lambda line: print(f"iommu-stress: {line}", file=sys.stderr, flush=True))


def _write_json(path, data):
    """``data`` as JSON on stdout (``-``) or into ``path`` (whole or not at all)."""
    from .campaign import dump_json

    if path == "-":
        print(json.dumps(data, sort_keys=True))
        return
    import os

    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(dump_json(data))
        os.replace(tmp, path)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None
    print(f"iommu-stress: wrote {path}", file=sys.stderr)


def _cmd_campaign(args):
    from .campaign import campaign_options, load_json, run_campaign
    from .progress import make_progress
    from .readme import write_readme
    from .tables import footnotes, rich_tables

    import os

    if args.write_readme is not None and not os.path.isfile(args.write_readme):
        raise UsageError(f"cannot open {args.write_readme}")
    if args.from_json is not None:
        given = [f for f, v in (("--quick", args.quick or None), ("--seeds", args.seeds), ("--budget", args.budget), ("--workers", args.workers),
                                ("--bugs", args.bugs), ("--strategies", args.strategies)) if v is not None]
        if given:
            raise UsageError(f"--from shows a campaign as it ran: {given[0]} does not apply")
        try:
            data = load_json(args.from_json)
        except (OSError, ValueError) as e:
            raise UsageError(f"{args.from_json}: {getattr(e, 'strerror', None) or e}") from None
    else:
        try:
            options = campaign_options(
                quick=args.quick, bugs=args.bugs, strategies=args.strategies, seeds=args.seeds, budget=args.budget,
                workers=args.workers, argv=["bench", *(sys.argv[2:] if sys.argv[1:2] == ["bench"] else ["--campaign"])],
            )
        except ValueError as e:
            raise UsageError(str(e)) from None

        def note(line):
            print(line, file=sys.stderr, flush=True)

        data = run_campaign(options, progress=lambda total: make_progress(total), note=note)
    if args.json is not None:
        _write_json(args.json, data)
    if args.json is None or args.json != "-":
        con = _console()
        for table in rich_tables(data):
            _print_rich(table, con=con)
        for line in footnotes(data):
            print(line)
    if args.write_readme is not None:
        try:
            changed = write_readme(args.write_readme, data)
        except ValueError as e:
            raise UsageError(f"{args.write_readme}: {e}") from None
        print(f"iommu-stress: {args.write_readme}: campaign table {'updated' if changed else 'unchanged'}", file=sys.stderr)
    return 0
