"""What the subcommands share: argparse types (one line naming what was expected) and plain output.

Output goes to a terminal, a pipe or a CI log alike: :func:`console` never
hard-wraps (on a terminal it knows the width; elsewhere its lines are as
long as they need to be, so a path or a timeline row is never split) and
:func:`print_rich` drops the trailing spaces rich pads lines with.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["number", "positive_int", "seed", "seconds", "tlb_retention", "walk_cache", "soc", "masters", "group", "HARDWARE_PARAMS", "add_hardware", "is_tty", "console", "print_rich", "quiet_broken_pipe", "run_command"]

#: a pipe or a CI log: wide enough for any line, so nothing is folded
PIPE_WIDTH = 100_000


def number(cast, ok, what):
    """An argparse type: ``cast(text)`` that satisfies ``ok``, else one line naming ``what``."""

    def parse(text):
        try:
            v = cast(text)
        except ValueError:
            v = None
        if v is None or not ok(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


positive_int = number(int, lambda v: v >= 1, "a positive integer")
seed = number(int, lambda v: v >= 0, "an integer seed >= 0")
seconds = number(float, lambda v: 0 < v < float("inf"), "a positive number of seconds")


def tlb_retention(text):
    """``none`` or a comma-separated subset of ``model.hw.tlb.RETENTION_EVENTS``."""
    from model.hw.tlb import RETENTION_EVENTS

    if text.strip() == "none":
        return []
    events = [e.strip() for e in text.split(",") if e.strip()]
    if not events or any(e not in RETENTION_EVENTS for e in events):
        raise argparse.ArgumentTypeError(f"expected none or a comma-separated list of {', '.join(RETENTION_EVENTS)}, got {text!r}")
    return [e for e in RETENTION_EVENTS if e in events]


tlb_retention.__name__ = "tlb retention"


def walk_cache(text):
    """``none`` or a comma-separated subset of ``model.hw.tlb.WALK_CACHE_LEVELS``."""
    from model.hw.tlb import WALK_CACHE_LEVELS

    if text.strip() == "none":
        return []
    levels = [e.strip() for e in text.split(",") if e.strip()]
    if not levels or any(e not in WALK_CACHE_LEVELS for e in levels):
        raise argparse.ArgumentTypeError(f"expected none or a comma-separated list of {', '.join(WALK_CACHE_LEVELS)}, got {text!r}")
    return [e for e in WALK_CACHE_LEVELS if e in levels]


walk_cache.__name__ = "walk cache levels"


def soc(text):
    """The name of a SoC profile (``model.hw.soc.SOCS``)."""
    from model.hw.soc import SOCS

    if text not in SOCS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(SOCS)}, got {text!r}")
    return text


soc.__name__ = "SoC profile"

masters = number(int, lambda v: v >= 1, "a positive number of masters per IOMMU")


def group(text):
    """How the masters of one IOMMU are grouped (``model.workloads.GROUP_MODES``)."""
    from model.workloads import GROUP_MODES

    if text not in GROUP_MODES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(GROUP_MODES)}, got {text!r}")
    return text


group.__name__ = "group mode"

#: hardware parameters of a driver workload: (dest, flag); a report records them
HARDWARE_PARAMS = (
    ("tlb_retention", "--tlb-retention"),
    ("walk_cache", "--walk-cache"),
    ("soc", "--soc"),
    ("masters", "--masters"),
    ("group", "--group"),
)


def add_hardware(parser):
    """The hardware parameters of hunt and soak (a driver workload's, stated in its report)."""
    parser.add_argument(
        "--tlb-retention",
        type=tlb_retention,
        default=None,
        help="what the IOTLB survives: none, or a comma-separated list of disable,clock-off,power-off "
        "(default: disable,clock-off, the VSI part's; a stale-tlb that rests on it says so in its report)",
    )
    parser.add_argument(
        "--walk-cache",
        type=walk_cache,
        default=None,
        help="which table entries the MMU caches besides translations: none, or a comma-separated list of pta,dte "
        "(default: both; a finding that rests on a stale cached entry says so in its report)",
    )
    parser.add_argument(
        "--soc",
        type=soc,
        default=None,
        help="how the IOMMU shares clocks and power with its master: rk3588 (default: one clock pair and "
        "one power domain for both, as in rk3588-base.dtsi) or standalone (own clocks, always powered)",
    )
    parser.add_argument(
        "--masters",
        type=masters,
        default=None,
        help="DMA masters behind each IOMMU (default 1); the program's devices are vpu0, vpu1, ...: "
        "IOMMU i has vpu{i*N} to vpu{i*N+N-1}",
    )
    parser.add_argument(
        "--group",
        type=group,
        default=None,
        help="iommu groups of the masters behind one IOMMU: own (default: a group per master, "
        "generic_single_device_group, as vsi-iommu.c) or shared (one group per IOMMU, as rockchip-iommu.c's "
        "device_group; the group's domain is attached to a master that joins it)",
    )


def is_tty(stream):
    """Whether ``stream`` is a terminal (a closed or odd stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def console(file=None):
    """A rich Console on ``file`` (stdout) that never breaks a line it prints.

    A closed pipe raises :class:`BrokenPipeError` to the caller (rich itself
    would exit 1, the status of a find).
    """
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self):
            self.quiet = True
            raise BrokenPipeError()

    f = file or sys.stdout
    tty = is_tty(f)
    return _Console(file=f, highlight=False, soft_wrap=True, emoji=False, width=None if tty else PIPE_WIDTH)


def print_rich(renderable, file=None, con=None):
    """Print a rich renderable (a table) with no trailing spaces on any line."""
    con = con or console(file)
    with con.capture() as cap:
        con.print(renderable)
    text = "".join(line.rstrip() + "\n" for line in cap.get().splitlines())
    con.file.write(text)
    con.file.flush()


def quiet_broken_pipe():
    """The reader went away (``| head``): point stdout and stderr at /dev/null; the exit status.

    As the Python documentation recommends (signal, "Note on SIGPIPE"), so
    the interpreter's last flush raises nothing; 141 (128 + SIGPIPE) is what
    the shell reports for a C tool in the same place.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (AttributeError, ValueError, OSError):
            pass
    os.close(devnull)
    return 141


def run_command(thunk):
    """Run ``thunk()`` (parse and run a subcommand) and return its exit status,
    or the one every subcommand gives for a closed pipe (141, quietly), a
    usage error (2, one line) and Ctrl-C before a command's own handlers (130)."""
    from .errors import UsageError

    try:
        code = thunk()
        sys.stdout.flush()  # a closed pipe is noticed here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        return quiet_broken_pipe()
    except UsageError as e:
        print(f"iommu-stress: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iommu-stress: interrupted", file=sys.stderr)
        return 130
