"""``iommu-stress bench --campaign``: every bug under every strategy over many seeds, in one run.

:func:`run_campaign` measures, on this machine and in one run:

* the throughput of the engine and the model first, alone on the machine
  (:func:`throughput`: the default workload's schedules/s under PCT on
  vsi-fixed, where nothing is found, and the model's cost per point, from
  :mod:`stress.bench.throughput`'s own functions);
* then, for every bug of :mod:`stress.bench.bugs` and every arm of
  :mod:`stress.bench.arms`, one search per seed (seeds 0 .. N-1) with the
  arm's schedule budget (:func:`budgets`), on ``workers`` processes: found
  or not, and the schedules and seconds to the first find
  (:mod:`stress.bench.job`), summarized per bug and arm
  (:mod:`stress.bench.stats`).

It returns one JSON-able dict (:data:`FORMAT`): the options, the machine
(cpu count, Python, platform, git commit), the throughput, a summary per
(bug, arm) and every job's raw figures.  The order in which the jobs run
is fixed (a shuffle of the plan with a fixed seed, so the estimate of the
time left is fair early on) but no figure depends on it: the schedules to
a find are a function of the bug, arm, seed and budget alone.
"""

from __future__ import annotations

import datetime
import os
import platform
import random
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field

from .arms import all_arms, find_arms
from .bugs import find_bugs
from .job import JobResult, JobSpec, run_job
from .stats import summarize

__all__ = [
    "FORMAT",
    "DEFAULT_BUDGET",
    "ARM_BUDGETS",
    "DEFAULT_SEEDS",
    "QUICK",
    "CampaignOptions",
    "campaign_options",
    "budgets",
    "plan",
    "throughput",
    "machine",
    "run_campaign",
    "dump_json",
    "load_json",
]

#: the JSON's format (its ``format`` field)
FORMAT = "iommu-stress-campaign/1"

#: schedules per search, for an arm not in ARM_BUDGETS
DEFAULT_BUDGET = 3000
#: arms with a budget of their own (``--budget N`` overrides every arm, ``--budget ARM=N`` one).  The
#: random walk costs as much per schedule as PCT and misses every deep bug
#: within 3000 schedules in most seeds; exhaustive walks the seed's first
#: program only, and a program without the bug's operations never shows it
#: at any budget, so a miss of either costs the whole budget for nothing
ARM_BUDGETS = {"random": 1000, "exhaustive": 100}
DEFAULT_SEEDS = 10


@dataclass(frozen=True)
class _Quick:
    """``--quick``: a few shallow bugs, a few seeds, small budgets (well under a minute)."""

    bugs: tuple = ("B1", "B7", "B16")
    arms: tuple = ("random", "pct-d3", "hypothesis", "guided")  # guided when the engine has it
    seeds: int = 3
    budget: int = 100


QUICK = _Quick()


@dataclass
class CampaignOptions:
    bugs: list  # stress.bench.bugs.Bug
    arms: list  # stress.bench.arms.Arm
    seeds: int = DEFAULT_SEEDS
    budget: dict | None = None  # {"*": every arm's, arm name: its own}; None: the defaults
    workers: int = 1
    quick: bool = False
    argv: list = field(default_factory=list)  # the command line, for the record


def campaign_options(*, quick=False, bugs=None, strategies=None, seeds=None, budget=None, workers=None, argv=()):
    """Options from the command line's values (None: the default); ValueError for a
    name that is no bug or strategy."""
    from ..soak.pool import default_workers

    if isinstance(budget, int):
        budget = {"*": budget}
    if quick:
        budget = {"*": QUICK.budget, **(budget or {})}
        names = [a for a in QUICK.arms if a in {x.name for x in all_arms()}]
        bug_list = find_bugs(bugs) if bugs else find_bugs(QUICK.bugs)
        arm_list = find_arms(strategies) if strategies else find_arms(names)
        return CampaignOptions(
            bug_list, arm_list, seeds or QUICK.seeds, _check_budget(budget, arm_list), workers or min(2, default_workers()), True, list(argv)
        )
    bug_list = find_bugs(bugs) if bugs else find_bugs(["zoo", "mainline"])
    arm_list = find_arms(strategies) if strategies else all_arms()
    return CampaignOptions(bug_list, arm_list, seeds or DEFAULT_SEEDS, _check_budget(budget, arm_list), workers or default_workers(), False, list(argv))


def _check_budget(budget, arms):
    """``budget`` if every strategy it names is one of ``arms`` (``pct`` names pct-d1..d3); else ValueError."""
    if not budget:
        return None
    out = {}
    for name, n in budget.items():
        if name == "*":
            out["*"] = n
            continue
        named = [a.name for a in find_arms([name])]  # ValueError for no strategy at all
        missing = [a for a in named if a not in {x.name for x in arms}]
        if missing:
            raise ValueError(f"--budget names {name}, which the campaign does not run")
        out.update({a: n for a in named})
    return out


def budgets(options):
    """``{arm name: schedules per search}``: the arm's own (``options.budget[name]``),
    else every arm's (``options.budget["*"]``), else the default (:data:`ARM_BUDGETS`,
    :data:`DEFAULT_BUDGET`)."""
    given = options.budget or {}
    return {a.name: given.get(a.name, given.get("*", ARM_BUDGETS.get(a.name, DEFAULT_BUDGET))) for a in options.arms}


def _groups(bugs):
    """Bugs that one search serves alike: same driver, hardware and checkers, in order."""
    groups = {}
    for b in bugs:
        key = (b.driver, repr(sorted(b.hardware.items())), b.without)
        groups.setdefault(key, []).append(b)
    return [tuple(g) for g in groups.values()]


def plan(options):
    """Every search of the campaign, in the (fixed) order they run."""
    per_arm = budgets(options)
    jobs = [JobSpec(g, a, seed, per_arm[a.name]) for g in _groups(options.bugs) for a in options.arms for seed in range(options.seeds)]
    random.Random(0).shuffle(jobs)
    return jobs


def throughput(quick=False):
    """The engine's and the model's speed on this machine, alone (no job runs meanwhile).

    ``default_workload_schedules_per_s`` (and ``..._points_per_s``): what
    ``hunt --driver vsi-fixed`` runs, the default workload under PCT (seed
    0, every checker; nothing to find); ``model_cost_per_point`` and the
    rest as ``iommu-stress bench`` defines them
    (:func:`stress.bench.throughput.bench_workload`); on a machine with
    valgrind (not with ``quick``), the instruction counts of ``bench
    --instructions`` too (:mod:`stress.bench.instructions`).
    """
    from .. import bootimage
    from ..workload import workload_config
    from .instructions import instruction_figures, valgrind
    from .throughput import bench_workload, engine_points_per_s, workload_rate

    raw, pts, pts_r = engine_points_per_s(quick)
    per_schedule, points = workload_rate(workload_config(), 30 if quick else 300)
    with bootimage.disabled():  # the same search, every schedule booting (stress.bootimage)
        per_schedule_booting, _ = workload_rate(workload_config(), 30 if quick else 300)
    figures = {
        "default_workload_schedules_per_s": 1 / per_schedule,
        "default_workload_schedules_per_s_no_images": 1 / per_schedule_booting,
        "default_workload_points_per_s": points / per_schedule,
        "default_workload_points_per_schedule": points,
        "raw_handoffs_per_s": raw,
        "points_per_s_pct": pts,
        "points_per_s_random": pts_r,
    }
    figures.update(bench_workload(quick))
    if not quick and valgrind() is not None:  # the same costs in instructions: the machine's noise left out
        figures.update(instruction_figures())
    return figures


def _git(*args):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        p = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def machine():
    """What the figures were measured on."""
    from .. import __version__
    from ..soak.pool import default_workers

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": default_workers(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "iommu_stress": __version__,
        "git_commit": commit,
        "git_dirty": bool(status) if status is not None else None,
    }


def _describe(options):
    return {
        "quick": options.quick,
        "seeds": list(range(options.seeds)),
        "workers": options.workers,
        "budgets": budgets(options),
        "bugs": [
            {
                "id": b.id,
                "driver": b.driver,
                "kinds": list(b.kinds),
                "hardware": b.hardware,
                "checkers_without": list(b.without),
                "note": b.note,
            }
            for b in options.bugs
        ],
        "arms": [dict(asdict(a), heading=a.heading()) for a in options.arms],
    }


def estimate_s(jobs, schedules_per_s, workers):
    """The wall time if every search ran to its budget at ``schedules_per_s``: an upper
    bound of sorts (most searches stop at their find, far sooner)."""
    return sum(j.budget for j in jobs) / max(schedules_per_s, 1e-9) / max(workers, 1)


def run_campaign(options, progress=None, note=None):
    """Run the campaign; the JSON-able dict described in the module docstring.

    ``note(line)`` receives the plain lines worth printing as it goes (the
    throughput, the estimate); ``progress`` (a :mod:`stress.bench.progress`
    display, or a factory ``progress(total)``) receives every job done.
    """
    note = note or (lambda line: None)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    note("campaign: measuring throughput (nothing else runs meanwhile) ...")
    figures = throughput(options.quick)
    rate = figures["default_workload_schedules_per_s"]
    note(
        f"campaign: default workload {rate:,.0f} schedules/s, {figures['default_workload_points_per_s']:,.0f} points/s; "
        f"model cost per point x{figures['model_cost_per_point']:.1f}"
    )
    jobs = plan(options)
    total_bugjobs = sum(len(j.bugs) for j in jobs)
    bound = estimate_s(jobs, rate, options.workers)
    note(
        f"campaign: {_n(len(options.bugs), 'bug')} x {_n(len(options.arms), 'strategy', 'strategies')} x {_n(options.seeds, 'seed')} "
        f"= {_n(total_bugjobs, 'job')} in {_n(len(jobs), 'search', 'searches')} on {_n(options.workers, 'worker')}; at most about {_minutes(bound)} if every search ran "
        f"to its budget at that rate (most stop at their find, far sooner)"
    )
    display = progress(len(jobs)) if callable(progress) and not hasattr(progress, "job_done") else progress
    results = _run_jobs(jobs, options.workers, display, t0)
    elapsed = time.monotonic() - t0
    note(f"campaign: done in {_minutes(elapsed)}")
    return _assemble(options, figures, results, started, elapsed, bound)


def _n(count, one, many=None):
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _minutes(seconds):
    from ..soak.progress import duration_text

    return duration_text(seconds)


def _run_jobs(jobs, workers, display, t0):
    """Every job's results (a list of JobResult per job, in plan order)."""
    from ..soak.pool import ProcessExecutor

    results = [None] * len(jobs)
    ex = ProcessExecutor(workers)
    t_jobs = time.monotonic()
    old_term = _term_is_interrupt()
    try:
        for i, job in enumerate(jobs):
            ex.submit(i, run_job, job)
        done = 0
        while done < len(jobs):
            finished = ex.poll(1.0)
            if not finished and display is not None:
                display.tick(done, len(jobs), time.monotonic() - t_jobs)
            for i, outs, err in finished:
                if err is not None:  # the worker died under it
                    msg = f"{type(err).__name__}: {err}".splitlines()[0]
                    outs = [JobResult(b.id, jobs[i].arm.name, jobs[i].seed, jobs[i].budget, shared=len(jobs[i].bugs), error=msg) for b in jobs[i].bugs]
                results[i] = outs
                done += 1
                if display is not None:
                    display.job_done(done, len(jobs), time.monotonic() - t_jobs, outs[0])
    finally:
        ex.close(cancel=True)  # Ctrl-C or SIGTERM: the workers end now, not at their search's end
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if display is not None:
            display.close()
    return results


def _term_is_interrupt():
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does (main thread only); the old handler, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt()

    return signal.signal(signal.SIGTERM, interrupt)


def _assemble(options, figures, results, started, elapsed, bound):
    by_cell = {}
    flat = []
    for outs in results:
        for out in outs:
            d = out.to_json() if isinstance(out, JobResult) else out
            if d.get("trace") is None:
                d.pop("trace", None)
            flat.append(d)
            by_cell.setdefault((d["bug"], d["arm"]), []).append(d)
    order = {b.id: i for i, b in enumerate(options.bugs)}
    arm_order = {a.name: i for i, a in enumerate(options.arms)}
    flat.sort(key=lambda d: (order[d["bug"]], arm_order[d["arm"]], d["seed"]))
    summary = []
    for b in options.bugs:
        for a in options.arms:
            cell = sorted(by_cell.get((b.id, a.name), []), key=lambda d: d["seed"])
            summary.append({"bug": b.id, "arm": a.name, **summarize(cell)})
    searches = len(results)
    return {
        "format": FORMAT,
        "command": "iommu-stress " + " ".join(options.argv) if options.argv else "iommu-stress bench --campaign",
        "started": started.isoformat(timespec="seconds"),
        "elapsed_s": elapsed,
        "estimate_s": bound,
        "searches": searches,
        "machine": machine(),
        **_describe(options),
        "throughput": figures,
        "summary": summary,
        "jobs": flat,
    }


def dump_json(data):
    """``data`` as JSON text: indented, but a job, a summary cell and a bug on one line each
    (a campaign has a thousand jobs or more)."""
    import json

    def lines(key, items):
        if not items:
            return f' "{key}": []'
        inner = ",\n".join("  " + json.dumps(x, sort_keys=True) for x in items)
        return f' "{key}": [\n{inner}\n ]'

    flat = {k: v for k, v in data.items() if k not in ("jobs", "summary", "bugs")}
    parts = [lines(k, data[k]) for k in ("bugs", "summary", "jobs") if k in data]
    if not parts:  # plain figures (``bench --json PATH``)
        return json.dumps(flat, indent=1, sort_keys=True) + "\n"
    head = json.dumps(flat, indent=1, sort_keys=True)[:-2]  # without the closing "\n}"
    return head + ",\n" + ",\n".join(parts) + "\n}\n"


def load_json(path):
    """A campaign's JSON; ValueError if it is not one."""
    import json

    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a campaign's JSON (format {FORMAT!r} expected)")
    return data
