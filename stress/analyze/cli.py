"""``iommu-stress analyze PATH... [--html FILE] [--png DIR] [--json]``.

Wire it into ``iommu-stress``: ``from .analyze.cli import add_parser as
add_analyze_parser`` then ``add_analyze_parser(sub)``; the parser's default
``func`` is :func:`cmd_analyze` (returns the exit status: 0; bad usage raises
:class:`~stress.errors.UsageError`, exit 2).
"""

from __future__ import annotations

import json
import sys

__all__ = ["add_parser", "cmd_analyze", "main"]


def add_parser(sub):
    """Add ``analyze`` to ``sub`` (argparse subparsers); returns its parser."""
    a = sub.add_parser(
        "analyze",
        help="what a soak (or hunt --log) found, how fast, and what it never reached: tables, plots, HTML",
        description="Query soak directories / event logs with DuckDB: distinct signatures, the discovery "
        "curve, throughput, coverage; several PATHs side by side.",
    )
    a.add_argument("paths", nargs="+", metavar="PATH", help="a soak directory, an events .jsonl file (soak or hunt --log), or LABEL=PATH")
    a.add_argument("--html", metavar="FILE", default=None, help="write one self-contained HTML page (tables + plots)")
    a.add_argument("--png", metavar="DIR", default=None, help="write the figures as PNG files into DIR (created)")
    a.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    a.add_argument("--bucket", type=float, default=None, metavar="SECONDS", help="throughput bucket width (default: about 30 buckets)")
    a.set_defaults(func=cmd_analyze)
    return a


def cmd_analyze(args):
    from ..errors import UsageError
    from .load import load
    from .tables import collect, render

    if args.bucket is not None and not args.bucket > 0:
        raise UsageError("--bucket must be a positive number of seconds")
    analysis = load(args.paths)
    data = collect(analysis, bucket_s=args.bucket)
    written = {}
    if args.png or args.html:
        from .plots import pngs, write_pngs

        images = pngs(data)
        if args.png:
            try:
                written["png"] = write_pngs(images, args.png)
            except OSError as e:
                raise UsageError(f"--png {args.png}: {e.strerror}") from None
        if args.html:
            from .html import write_html

            try:
                written["html"] = write_html(args.html, data, images)
            except OSError as e:
                raise UsageError(f"--html {args.html}: {e.strerror}") from None
    if args.json:
        print(json.dumps({**data, "written": written}, default=str))
    else:
        render(data)
        for kind, what in written.items():
            for p in [what] if isinstance(what, str) else what:
                print(f"wrote {p}")
    return 0


def main(argv=None):
    """Standalone entry point (until ``stress.cli`` wires it): ``python -m stress.analyze.cli PATH...``."""
    import argparse

    from ..cliargs import run_command

    p = argparse.ArgumentParser(prog="iommu-stress")
    sub = p.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = p.parse_args(["analyze", *(sys.argv[1:] if argv is None else argv)])
    return run_command(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
