"""Instruction counts (``iommu-stress bench --instructions``): the bench's costs, machine-independent.

Wall-clock figures on a shared machine drift by a third within a minute,
and a ratio of two of them (the model's cost per point) swings with
whichever side a neighbour slowed.  The number of instructions a run
executes does not: counted under Valgrind (``cachegrind``, no cache
simulation, ``PYTHONHASHSEED=0``) it repeats to within 0.05% from run to
run, whatever else the machine is doing (SQLite weighs its changes so).
Another machine counts a little differently (another Python build, or a C
library that picks its ``memcpy`` by CPU): compare counts made on one.
What it leaves out is what an instruction costs: a richer program takes
more time per instruction than a tight loop (more code and data to keep in
the CPU's caches and branch predictors), so the time ratio of
:mod:`.throughput` runs above the instruction ratio here; both are real,
and the note with each figure says which it is.

Each figure is the difference of two counted runs of one program, at two
schedule counts, over the difference of their points (or schedules): the
interpreter's start-up and the imports cancel out.  The programs are
:mod:`.throughput`'s: the bare engine (:func:`~.throughput.lock_loop`
under PCT), the driver mix (:func:`~.throughput.driver_mix`), the machine
with empty programs (boot, or its copy, and teardown) and the default
workload, every checker on, seed 0.

``python -m stress.bench.instructions PROGRAM N`` runs one of them for
``N`` schedules and prints ``{"points": ..., "schedules": ...}``: what
:func:`count` runs under Valgrind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

__all__ = ["PROGRAMS", "valgrind", "count", "instruction_figures"]

#: program -> (schedules of the short run, of the long run), full and --quick
#: (whose windows still hold the search's first schedules, run in full while
#: lockdep learns: its figures run higher, a smoke test to compare with itself)
PROGRAMS = {
    "bare": ((1, 3), (1, 2)),  # lock_loop(2000): 8,000 points a schedule
    "mix": ((20, 120), (5, 25)),
    "empty": ((20, 220), None),
    "default": ((20, 120), None),
}

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def valgrind():
    """The path of ``valgrind``, or None."""
    return shutil.which("valgrind")


def _run(program, schedules):
    """``(points, schedules)`` of ``program`` run here (the child's side)."""
    from ..engine import explore
    from ..workload import driver_scenario, workload_config
    from .throughput import driver_mix, empty_programs, lock_loop

    if program == "bare":
        scenario = lock_loop(2_000)
    else:
        cfg = {"mix": driver_mix, "empty": empty_programs, "default": workload_config}[program]()
        scenario = driver_scenario("vsi-fixed", cfg)
    result = explore(scenario, strategy="pct", schedules=schedules, seed=0, shrink=False)
    if result.found:
        raise RuntimeError(f"the bench program {program!r} reported {result.violations[0].kind}")
    return result.points, result.schedules


def count(program, schedules, tool=None):
    """``(instructions, points, schedules)`` of one counted run of ``program``."""
    tool = tool or valgrind()
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = [tool, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, "-m", "stress.bench.instructions", program, str(schedules)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    m = _REFS.search(p.stderr)
    if p.returncode != 0 or m is None:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"counting {program} ({schedules} schedules) under valgrind failed: {tail}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return int(m.group(1).replace(",", "")), out["points"], out["schedules"]


def instruction_figures(quick=False, note=None):
    """Instructions per point and per schedule of :data:`PROGRAMS` (named as
    :mod:`.throughput` names their rates: ``workload`` is the driver mix,
    ``boot`` the machine with empty programs), and the model's cost per
    point in instructions: the mix's per point over the bare engine's
    (``..._after_boot``: the mix's beyond the empty machine's, over its
    points beyond the empty machine's).  ``note(line)`` hears what is about
    to be counted, then of each program.  FileNotFoundError without ``valgrind``."""
    tool = valgrind()
    if tool is None:
        raise FileNotFoundError("valgrind")
    pairs = {prog: counts[1] if quick else counts[0] for prog, counts in PROGRAMS.items()}
    runs = [(prog, n) for prog, pair in pairs.items() if pair is not None for n in pair]
    if note is not None:
        note(f"bench: counting instructions under valgrind ({len(runs)} runs, {'half a minute' if quick else 'a minute or two'}) ...")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counted = dict(zip(runs, pool.map(lambda r: count(*r, tool=tool), runs)))
    per = {}  # program -> (instructions per schedule, points per schedule)
    for prog, (short, long) in ((p, pair) for p, pair in pairs.items() if pair is not None):
        instructions, points, schedules = (b - a for a, b in zip(counted[prog, short], counted[prog, long]))
        per[prog] = (instructions / schedules, points / schedules)
        if note is not None:
            note(f"bench: {_NAMES[prog]}: {instructions / schedules:,.0f} instructions per schedule")
    figures = {}
    for prog, (per_schedule, points) in per.items():
        name = _NAMES[prog]
        if prog != "bare":
            figures[f"{name}_instructions_per_schedule"] = per_schedule
        if prog != "empty":
            figures[f"{name}_instructions_per_point"] = per_schedule / points
    bare = figures["bare_engine_instructions_per_point"]
    figures["model_cost_per_point_instructions"] = figures["workload_instructions_per_point"] / bare
    if "empty" in per:
        (mix_s, mix_p), (empty_s, empty_p) = per["mix"], per["empty"]
        figures["model_cost_per_point_after_boot_instructions"] = (mix_s - empty_s) / (mix_p - empty_p) / bare
    return figures


_NAMES = {"bare": "bare_engine", "mix": "workload", "empty": "boot", "default": "default_workload"}


def main(argv):
    if len(argv) != 2 or argv[0] not in PROGRAMS or not argv[1].isdigit():
        print(f"usage: python -m stress.bench.instructions {{{','.join(PROGRAMS)}}} SCHEDULES", file=sys.stderr)
        return 2
    points, n = _run(argv[0], int(argv[1]))
    print(json.dumps({"points": points, "schedules": n}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
