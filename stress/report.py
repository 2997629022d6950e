"""Bug reports: a versioned JSON document, and its text form for a mail reply.

Format (``"format": "iommu-stress-report"``, ``"version": 2``)::

    tool        tool version that wrote it
    target      what ran: {"scenario": "pkg.mod:fn"} or {"driver": ..., "workload": ...}
    strategy, seed, schedule    how it was found (schedule = index in the search)
    options     checkers, max_steps, pct_depth, bound
    signature   the bug's name: kind and where (stress.soak.signature)
    decisions   the shrunk schedule (replay input)
    found_decisions   length of the schedule before shrinking
    preemptions, points
    violation   kind, message, splat, stacks {label: [frames]}, cpu, point
    timeline    [[step, actor, what, detail], ...]
    prior       only for a lockdep find that rests on orders seen in earlier
                schedules of the search: [{schedule, target, decisions}, ...],
                replayed in order (lockdep's graph only) before ``decisions``

Version 2 (this one) added ``prior`` and ``signature`` and prints stack frames as
``function (path/file.py:LINE)``; version 1 reports still replay.

Everything in it is derived from the seed and options: writing the same find
twice gives the same bytes.
"""

from __future__ import annotations

import json
import os
import re

from . import __version__
from .shrink import preemptions
from .soak.signature import signature

__all__ = [
    "FORMAT",
    "VERSION",
    "ReportError",
    "build_report",
    "dumps",
    "write_report",
    "write_atomic",
    "load_report",
    "report_text",
]

FORMAT = "iommu-stress-report"
VERSION = 2


class ReportError(ValueError):
    """A report file that cannot be replayed (one line, for the CLI)."""


def build_report(meta, index, outcome, original_decisions=None):
    v = outcome.violation
    return {
        "format": FORMAT,
        "version": VERSION,
        "tool": __version__,
        "target": meta["target"],
        "strategy": meta["strategy"],
        "seed": meta["seed"],
        "schedule": index,
        "options": meta["options"],
        "decisions": list(outcome.decisions),
        "found_decisions": original_decisions if original_decisions is not None else len(outcome.decisions),
        "preemptions": preemptions(outcome.decisions),
        "points": outcome.points,
        "signature": signature(v),
        "violation": {
            "kind": v["kind"],
            "message": v["message"],
            "splat": v["splat"],
            "stacks": v["stacks"],
            "cpu": v["cpu"],
            "point": v["point"],
        },
        "timeline": outcome.timeline or [],
    }


def dumps(report):
    return json.dumps(report, indent=1, sort_keys=True) + "\n"


def report_name(report):
    t = report["target"]
    what = re.sub(r"[^A-Za-z0-9_-]+", "-", t.get("driver") or t.get("scenario") or "scenario").strip("-")
    return f"{what}-{report['violation']['kind']}-s{report['seed']}-{report['schedule']}"


def write_atomic(path, text):
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new, never half.

    A temporary file beside it, flushed to the disk (fsync), then renamed over
    ``path``; the directory is synced too, so the rename itself survives.
    """
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_report(report, out_dir):
    """Write ``NAME.json`` and ``NAME.txt`` into ``out_dir``; returns the JSON path."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, report_name(report))
    for path, text in ((base + ".json", dumps(report)), (base + ".txt", report_text(report))):
        write_atomic(path, text)
    return base + ".json"


def load_report(path):
    """Read and validate a report; raises :class:`ReportError` with one line."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not a JSON report (line {e.lineno}: {e.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ReportError(f"{path}: not an iommu-stress report (no \"format\": \"{FORMAT}\")")
    ver = data.get("version")
    if not isinstance(ver, int) or ver > VERSION or ver < 1:
        raise ReportError(f"{path}: report version {ver!r} is not supported (this tool reads version {VERSION})")
    for key, typ in (("target", dict), ("decisions", list), ("violation", dict), ("options", dict)):
        if not isinstance(data.get(key), typ):
            raise ReportError(f"{path}: field {key!r} missing or not a {typ.__name__}")
    if not all(isinstance(d, int) and d >= 0 for d in data["decisions"]):
        raise ReportError(f"{path}: decisions must be non-negative integers")
    if not isinstance(data["violation"].get("kind"), str):
        raise ReportError(f"{path}: violation has no kind")
    prior = data.get("prior", [])
    if not isinstance(prior, list) or not all(
        isinstance(p, dict)
        and isinstance(p.get("target"), dict)
        and isinstance(p.get("schedule"), int)
        and isinstance(p.get("decisions"), list)
        and all(isinstance(d, int) and d >= 0 for d in p["decisions"])
        for p in prior
    ):
        raise ReportError(f"{path}: field 'prior' must be a list of {{schedule, target, decisions}}")
    return data


def report_text(report):
    """The mailing-list form: header, the splat, the stacks, the schedule."""
    v = report["violation"]
    t = report["target"]
    what = ", ".join(f"{k}={val}" for k, val in sorted(t.items()) if val is not None and not isinstance(val, dict))
    lines = [
        f"iommu-stress {report['tool']}: {v['kind']} in {what}",
        f"found by {report['strategy']} (seed {report['seed']}, schedule {report['schedule']}); "
        f"shrunk to {len(report['decisions'])} decisions, {report['preemptions']} preemptions",
        "",
        v["splat"],
        "",
    ]
    for label, frames in v["stacks"].items():
        lines.append(f"{label}:")
        lines += [f"  {fr}" for fr in frames] or ["  (none)"]
    lines += ["", "Schedule (replay with: iommu-stress replay REPORT.json):", ""]
    rows = [r for r in report["timeline"] if r[1] not in ("boot", "teardown")]
    hidden = len(report["timeline"]) - len(rows)
    if hidden:
        lines.append(f"({hidden} boot and teardown events omitted; the JSON has them)")
    lines += timeline_lines(rows)
    return "\n".join(lines) + "\n"


def timeline_lines(timeline, width=34):
    """A side-by-side plain-text table: one column per actor."""
    actors = []
    for _, actor, _, _ in timeline:
        if actor != "-" and actor not in actors:
            actors.append(actor)
    head = "step  " + "".join(a.ljust(width) for a in actors)
    out = [head, "-" * len(head)]
    for step, actor, what, detail in timeline:
        if actor not in actors:
            out.append(f"{step:>4}  {what} {detail}")
            continue
        cell = f"{what} {detail}".strip()[: width - 1]
        col = actors.index(actor)
        out.append(f"{step:>4}  " + " " * (width * col) + cell)
    return out
