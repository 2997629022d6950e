"""The CLI in a terminal, in CI and in a pipe: lines never broken, no trailing
spaces, no carriage returns, a closed pipe is quiet, every option explained,
budgets that combine and counts that add up."""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import pytest

from stress.cli import build_parser, main

EXE = os.path.join(os.path.dirname(sys.executable), "iommu-stress")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLEAN = "tests.test_cli:locked_update"  # a scenario that never fails
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run(*args, **kw):
    """``iommu-stress ARGS`` with stdout and stderr piped (as in CI)."""
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=kw.pop("cwd", ROOT), **kw)


def assert_plain(text):
    """No carriage return, no line that ends in a space."""
    assert "\r" not in text
    bad = [line for line in text.split("\n") if line != line.rstrip()]
    assert not bad, f"lines ending in a space: {bad[:3]}"


def deep_dir(base, name):
    """A directory whose path is well over 80 characters."""
    d = base / ("d" * 40) / ("e" * 40) / name
    assert len(str(d)) > 80
    return d


@pytest.fixture(scope="module")
def hunted(tmp_path_factory):
    """``hunt --all-kinds`` on the default driver into a deep directory: (process, reports)."""
    out = deep_dir(tmp_path_factory.mktemp("hunt"), "reports")
    p = run("hunt", "--all-kinds", "--schedules", "50", "--out", str(out))
    assert p.returncode == 1, p.stderr
    reports = sorted(str(x) for x in out.glob("*.json"))
    assert reports
    return p, reports


# -- 1. a pipe or a CI log gets whole, plain lines -----------------------------------------


def test_hunt_in_a_pipe_is_plain(hunted):
    p, reports = hunted
    assert_plain(p.stdout)
    assert_plain(p.stderr)
    lines = p.stdout.splitlines()
    for path in reports:  # each report path whole, on one line
        assert any(path in line for line in lines), path
    assert max(len(line) for line in lines) > 80


def test_replay_in_a_pipe_prints_the_reports_text(hunted):
    _, reports = hunted
    path = reports[0]
    p = run("replay", path)
    assert p.returncode == 1, p.stderr
    assert_plain(p.stdout)
    with open(path[: -len(".json")] + ".txt", encoding="utf-8") as f:
        txt = f.read()
    kind = json.loads(open(path, encoding="utf-8").read())["violation"]["kind"]
    assert p.stdout == f"{txt}\nreproduced: expected {kind}, got {kind}\n"
    assert f"Schedule (replay with: iommu-stress replay {path}):" in p.stdout.splitlines()


def test_replay_full_unfolds_boot_and_teardown(hunted):
    _, reports = hunted
    folded = run("replay", reports[0])
    full = run("replay", "--full", reports[0])
    assert full.returncode == 1, full.stderr
    assert_plain(full.stdout)
    assert "boot and teardown events omitted" in folded.stdout
    assert "boot and teardown events omitted" not in full.stdout
    assert len(full.stdout.splitlines()) > len(folded.stdout.splitlines())


def test_replay_on_a_terminal_does_not_wrap_at_80_columns(hunted):
    import fcntl
    import pty
    import struct
    import termios

    _, reports = hunted
    path = reports[0]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = dict(os.environ, COLUMNS="80", LINES="24", TERM="xterm")
    p = subprocess.Popen([EXE, "replay", path], stdout=slave, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    p.wait(timeout=60)
    assert p.returncode == 1
    text = ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")
    lines = text.splitlines()
    assert f"Schedule (replay with: iommu-stress replay {path}):" in lines
    assert any(line.startswith("reproduced: expected") for line in lines)


def test_drivers_in_a_pipe_is_one_whole_line_each():
    from model.drivers import DRIVERS

    p = run("drivers")
    assert p.returncode == 0
    assert_plain(p.stdout)
    lines = p.stdout.splitlines()
    assert len(lines) == len(DRIVERS)
    assert max(len(line) for line in lines) > 80


def test_bench_in_a_pipe_has_no_trailing_spaces(tmp_path):
    """The table in a pipe is plain, and ``--json PATH`` keeps the same figures."""
    path = tmp_path / "bench.json"
    p = run("bench", "--quick", "--json", str(path))
    assert p.returncode == 0, p.stderr
    assert_plain(p.stdout)
    assert "points_per_s_pct" in p.stdout
    figures = json.loads(path.read_text())
    assert figures["raw_handoffs_per_s"] > 0 and figures["points_per_s_pct"] > 0


def test_soak_and_analyze_in_a_pipe_are_plain(tmp_path):
    soakdir = deep_dir(tmp_path, "soak")
    p = run(
        "soak", "--driver", "vsi-v3", "--schedules", "100", "--batch", "50", "--workers", "1",
        "--progress-every", "0.05", "--dir", str(soakdir),
    )
    assert p.returncode == 1, p.stderr
    assert_plain(p.stdout)
    assert_plain(p.stderr)
    assert f"soak {soakdir}: schedule limit reached" in p.stdout.splitlines()
    report_lines = [line.strip() for line in p.stdout.splitlines() if line.strip().endswith(".json")]
    assert report_lines and all(os.path.exists(x) for x in report_lines)  # each path whole
    progress = [line for line in p.stderr.splitlines() if line.startswith("soak:")]
    assert progress, p.stderr  # one plain line per interval
    a = run("analyze", str(soakdir))
    assert a.returncode == 0, a.stderr
    assert_plain(a.stdout)
    assert str(soakdir) in a.stdout  # the run's path, in one cell


# -- 2. a reader that goes away ---------------------------------------------------------


def _closed_pipe_run(args, cwd):
    """Run with stdout on a pipe whose reader has already gone: every write is EPIPE."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([EXE, *args], stdout=w, stderr=subprocess.PIPE, text=True, cwd=cwd, timeout=120)
    finally:
        os.close(w)


@pytest.mark.parametrize(
    "args",
    [
        ["drivers"],
        ["drivers", "--json"],
        ["hunt", "--scenario", "stress.examples:lost_update", "--json", "--out", "OUT"],
        ["hunt", "--scenario", "stress.examples:lost_update", "--out", "OUT"],
        ["hunt", "--scenario", CLEAN, "--schedules", "20", "--out", "OUT"],
        ["replay", "REPORT"],
        ["replay", "REPORT", "--json"],
    ],
)
def test_closed_pipe_exits_quietly(args, hunted, tmp_path):
    args = [{"REPORT": hunted[1][0], "OUT": str(tmp_path / "r")}.get(a, a) for a in args]
    p = _closed_pipe_run(args, ROOT)
    assert p.stderr == ""
    assert p.returncode == 141


@pytest.mark.parametrize("command", ["drivers --json", "drivers", "replay REPORT"])
def test_head_in_a_shell_pipeline_is_quiet(command, hunted, tmp_path):
    command = command.replace("REPORT", hunted[1][0])
    for _ in range(3):  # the race between head exiting and the writer, a few times over
        p = subprocess.run(f"'{EXE}' {command} | head -1", shell=True, capture_output=True, text=True, cwd=tmp_path)
        assert p.returncode == 0
        assert p.stderr == ""
        assert len(p.stdout.splitlines()) == 1


# -- 3. help for every option -------------------------------------------------------------


def _actions(parser, path):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
            continue
        yield path, action


def test_every_option_has_help():
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in _actions(build_parser(), "iommu-stress") if not (a.help or "").strip()]
    assert not missing, missing
    commands = {path for path, _ in _actions(build_parser(), "iommu-stress")}
    assert {"iommu-stress hunt", "iommu-stress replay", "iommu-stress soak", "iommu-stress analyze", "iommu-stress bench"} <= commands


def test_strategy_help_lists_its_choices():
    (hunt,) = [a for path, a in _actions(build_parser(), "") if path == " hunt" and a.dest == "strategy"]
    for choice in hunt.choices:
        assert choice in hunt.help


# -- 4. --checkers "" -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", ",", " , "])
@pytest.mark.parametrize("command", ["hunt", "soak"])
def test_empty_checkers_is_a_usage_error(command, text, tmp_path, capsys):
    assert main([command, "--checkers", text, "--schedules", "1", "--out" if command == "hunt" else "--dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "lockdep" in err and "race" in err


# -- 5. --schedules and --budget-s together ---------------------------------------------------


BUDGET_TARGETS = [
    ["--driver", "vsi-fixed", "--strategy", "pct"],
    ["--driver", "vsi-fixed", "--strategy", "random"],
    ["--driver", "vsi-fixed", "--strategy", "hypothesis"],
    ["--driver", "vsi-fixed", "--strategy", "hypothesis", "--all-kinds"],
    ["--scenario", CLEAN, "--strategy", "hypothesis"],
    ["--scenario", CLEAN, "--strategy", "pct"],
]


def _hunt_json(args, tmp_path, capsys):
    rc = main(["hunt", *args, "--json", "--out", str(tmp_path / "r")])
    out = json.loads(capsys.readouterr().out)
    return rc, out


@pytest.mark.parametrize("target", BUDGET_TARGETS, ids=lambda t: " ".join(t))
def test_budget_s_stops_a_large_schedule_budget(target, tmp_path, capsys):
    t0 = time.monotonic()
    rc, out = _hunt_json([*target, "--schedules", "100000", "--budget-s", "1"], tmp_path, capsys)
    assert rc == 0
    assert out["schedules"] < 100000
    assert 0.9 <= out["elapsed_s"] < 3
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("target", [*BUDGET_TARGETS, ["--scenario", CLEAN, "--strategy", "exhaustive", "--bound", "3"]], ids=lambda t: " ".join(t))
def test_schedules_stop_before_a_large_time_budget(target, tmp_path, capsys):
    rc, out = _hunt_json([*target, "--schedules", "5", "--budget-s", "60"], tmp_path, capsys)
    assert rc == 0
    assert out["schedules"] == 5
    assert out["elapsed_s"] < 30


# -- 6. the summary of a clean hunt says how long it took -------------------------------------


def test_no_violation_summary_shows_elapsed_time(tmp_path, capsys):
    assert main(["hunt", "--scenario", CLEAN, "--schedules", "40", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^no violation in tests\.test_cli:locked_update: 40 schedules, \d+ points in \d+\.\d s$", out, re.M), out


# -- 7. hypothesis: schedules searched, never more than the budget; shrink runs apart ---------


@pytest.mark.parametrize("target", [["--driver", "vsi-fixed"], ["--scenario", CLEAN]], ids=["machine", "scenario"])
def test_hypothesis_on_a_clean_target_runs_exactly_the_budget(target, tmp_path, capsys):
    rc, out = _hunt_json([*target, "--strategy", "hypothesis", "--schedules", "30"], tmp_path, capsys)
    assert rc == 0
    assert out["schedules"] == 30 and out["shrink_runs"] == 0


def test_hypothesis_search_stays_within_the_budget_and_counts_shrinking_apart(tmp_path, capsys):
    rc, out = _hunt_json(["--driver", "vsi-mainline", "--all-kinds", "--strategy", "hypothesis", "--schedules", "20"], tmp_path, capsys)
    assert rc == 1
    assert 1 <= out["schedules"] <= 20
    assert out["shrink_runs"] > 0
    rc = main(["hunt", "--scenario", "stress.examples:lost_update", "--strategy", "hypothesis", "--schedules", "30", "--out", str(tmp_path / "t")])
    assert rc == 1
    last = capsys.readouterr().out.splitlines()[-1]
    m = re.fullmatch(r"(\d+) schedules? \(\+ \d+ shrink runs?\), \d+ points? in \d+\.\d s", last)
    assert m and int(m[1]) <= 30, last
