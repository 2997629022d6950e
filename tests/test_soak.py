"""``iommu-stress soak``: batches on worker processes, crash safety, resume, signals.

The vsi-mainline soak (:func:`baseline`) runs seed 0, 4,200 schedules in
batches of 300 on two workers (about 15 s on two cores).  Batches are
deterministic, so it is the oracle of the crash tests: a soak of its first
1,800 schedules whose worker was killed, and one killed and resumed, must
end with the signatures and counts its events give for those batches.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from stress.soak.cli import main as soak_main
from stress.soak.cli import parse_duration
from stress.soak.events import read_events
from stress.soak.findings import load_state
from stress.soak.runner import run_soak
from stress.targets import replay_report
from stress.workload import workload_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEDULES, BATCH = 4200, 300
KILL_SCHEDULES = 1800  # the crash tests run the baseline's first 6 batches
MAINLINE = ["--driver", "vsi-mainline", "--seed", "0", "--batch", str(BATCH), "--workers", "2"]


def _cli():
    """The command line that runs ``soak``: ``python -m stress`` once it is wired, else the module."""
    from stress.cli import build_parser

    if "soak" in build_parser()._subparsers._group_actions[0].choices:
        return [sys.executable, "-m", "stress", "soak"]
    return [sys.executable, "-m", "stress.soak.cli"]


def _start(args, **kw):
    return subprocess.Popen(
        [*_cli(), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw
    )


def _events(soakdir):
    return read_events(os.path.join(soakdir, "events.jsonl"))


def _wait_for(pred, timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out")


def _counts(soakdir):
    return {sig: f["count"] for sig, f in load_state(str(soakdir)).findings.items()}


def _counts_below(soakdir, schedules):
    """Each signature's count over the batches of ``soakdir`` below ``schedules``, from its events."""
    counts = {}
    for e in _events(soakdir)[0]:
        if e["event"] in ("find", "repeat") and e["batch"] * BATCH < schedules:
            counts[e["signature"]] = counts.get(e["signature"], 0) + (e["count"] if e["event"] == "find" else e["n"])
    return counts


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """An uninterrupted vsi-mainline soak (in this process): the summary and its directory."""
    soakdir = str(tmp_path_factory.mktemp("baseline") / "soak")
    options = {
        "target": {"driver": "vsi-mainline", "workload": workload_config()},
        "strategy": "pct",
        "seed": 0,
        "checkers": ["lockdep", "cross-schedule", "race", "power", "dma32", "pagetable", "leak", "gfp", "isolation", "kasan", "rpm-usage"],
        "max_steps": 20_000,
        "pct_depth": 3,
        "batch": BATCH,
    }
    summary = run_soak(soakdir, options, schedules=SCHEDULES, workers=2)
    return summary, soakdir


def test_mainline_soak_reports_each_signature_once(baseline):
    summary, soakdir = baseline
    assert summary.reason == "schedules" and summary.schedules == SCHEDULES
    sigs = summary.findings
    races = [s for s in sigs if sigs[s]["kind"] == "data-race"]
    others = [s for s in sigs if sigs[s]["kind"] != "data-race"]
    assert len(races) >= 2, sorted(sigs)
    # both mainline races: the unlocked iommu->enable, and the iommus list touched under another domain's lock
    assert any("vsi_iommu->enable" in sigs[s]["message"] for s in races), sorted(sigs)
    assert any("->iommus" in sigs[s]["message"] for s in races), sorted(sigs)
    assert len(others) >= 3, sorted(sigs)
    # one report (json + txt) per signature, each existing, none shared
    paths = [f["report"] for f in sigs.values()]
    assert None not in paths and len(set(paths)) == len(paths)
    files = sorted(os.listdir(os.path.join(soakdir, "reports")))
    assert len(files) == 2 * len(sigs), files
    for p in paths:
        assert os.path.exists(os.path.join(soakdir, p)) and os.path.exists(os.path.join(soakdir, p[: -len(".json")] + ".txt"))
    # repeats are counted, not reported: one find event per signature
    events, bad = _events(soakdir)
    assert bad == 0
    finds = [e["signature"] for e in events if e["event"] == "find"]
    assert sorted(finds) == sorted(sigs)
    # might_sleep_if(status != RPM_ACTIVE): only the IRQs that find the IOMMU not active count
    assert sigs["sleep-in-atomic in vsi_iommu_irq"]["count"] > 20
    assert any(e["event"] == "repeat" for e in events)
    batches = [e for e in events if e["event"] == "batch"]
    assert sum(e["schedules"] for e in batches) == SCHEDULES and len(batches) == SCHEDULES // BATCH
    assert batches[0]["ops"] and batches[0]["lock_edges"]
    assert {e["v"] for e in events} == {1} and all("time" in e for e in events)
    # a soak's report replays like a hunt's
    with open(os.path.join(soakdir, sigs[races[0]]["report"])) as f:
        assert replay_report(json.load(f), trace=False).kind == "data-race"


def test_vsi_fixed_soak_is_clean(tmp_path):
    soakdir = str(tmp_path / "soak")
    r = subprocess.run(
        [*_cli(), "--driver", "vsi-fixed", "--schedules", "500", "--batch", "125", "--workers", "2", "--dir", soakdir, "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["found"] is False and out["schedules"] == 500 and out["signatures"] == []
    assert not os.path.exists(os.path.join(soakdir, "reports"))


def test_sigint_keeps_every_report_and_summarises(tmp_path):
    soakdir = str(tmp_path / "soak")
    proc = _start([*MAINLINE, "--dir", soakdir])
    try:
        _wait_for(lambda: any(e["event"] == "find" for e in _events(soakdir)[0]))
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - t0
    finally:
        _kill_group(proc)
    assert proc.returncode == 1, err
    assert stopped_in < 3.0
    assert "stopped by SIGINT" in out and "reports/" in out
    state = load_state(soakdir)
    assert state.findings
    for f in state.findings.values():
        assert os.path.exists(os.path.join(soakdir, f["report"]))
    events, bad = _events(soakdir)
    assert bad == 0 and events[-1]["event"] == "soak_end" and events[-1]["reason"] == "signal"
    assert not [n for n in os.listdir(soakdir) if n.startswith(".tmp-")]


def test_sigterm_before_any_schedule_exits_143(tmp_path):
    soakdir = str(tmp_path / "soak")
    proc = _start(["--driver", "vsi-fixed", "--batch", "5000", "--workers", "1", "--dir", soakdir, "--json"])
    try:
        _wait_for(lambda: os.path.exists(os.path.join(soakdir, "state.json")))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        _kill_group(proc)
    assert proc.returncode == 143, err
    assert json.loads(out)["schedules"] == 0


def test_killed_worker_loses_nothing(tmp_path, baseline):
    soakdir = str(tmp_path / "soak")
    proc = _start([*MAINLINE, "--schedules", str(KILL_SCHEDULES), "--dir", soakdir, "--json"])
    try:
        first = _wait_for(lambda: next((e for e in _events(soakdir)[0] if e["event"] == "batch"), None))
        os.kill(first["worker"], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        _kill_group(proc)
    assert proc.returncode == 1, err
    events, bad = _events(soakdir)
    assert bad == 0
    assert any(e["event"] == "worker_lost" for e in events)
    assert json.loads(out)["schedules"] == KILL_SCHEDULES
    assert load_state(soakdir).totals["schedules"] == KILL_SCHEDULES
    assert _counts(soakdir) == _counts_below(baseline[1], KILL_SCHEDULES)


def test_killed_parent_resumes_without_loss_or_double_count(tmp_path, baseline):
    soakdir = str(tmp_path / "soak")
    proc = _start([*MAINLINE, "--schedules", str(KILL_SCHEDULES), "--dir", soakdir])
    try:
        _wait_for(lambda: (s := load_state(soakdir)) is not None and s.totals["batches"] >= 2)
        proc.kill()  # SIGKILL the parent, then its orphaned workers
        proc.wait(timeout=10)
    finally:
        _kill_group(proc)
    before = load_state(soakdir).totals["schedules"]
    assert 0 < before < KILL_SCHEDULES
    # a writer killed mid-line: the resume must tolerate it
    with open(os.path.join(soakdir, "events.jsonl"), "a") as f:
        f.write('{"event": "batch", "wor')
    r = subprocess.run([*_cli(), "--resume", soakdir, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["schedules"] == KILL_SCHEDULES and out["session_schedules"] == KILL_SCHEDULES - before
    assert _counts(soakdir) == _counts_below(baseline[1], KILL_SCHEDULES)
    events, bad = _events(soakdir)
    assert bad == 1
    starts = [e for e in events if e["event"] == "soak_start"]
    assert [e["resumed"] for e in starts] == [False, True]
    finds = [e["signature"] for e in events if e["event"] == "find"]
    assert len(finds) == len(set(finds))  # no signature reported twice
    assert len(os.listdir(os.path.join(soakdir, "reports"))) == 2 * len(out["signatures"])


def test_resume_extends_a_clipped_batch(tmp_path):
    """Raising the schedule limit on resume runs the rest of the clipped batch, nothing twice."""
    one = str(tmp_path / "one")
    two = str(tmp_path / "two")
    args = ["--driver", "vsi-mainline", "--batch", "100", "--workers", "2", "--no-progress", "--json"]
    assert soak_main([*args, "--schedules", "250", "--dir", one]) == 1
    assert soak_main(["--resume", one, "--schedules", "400", "--json"]) == 1
    assert soak_main([*args, "--schedules", "400", "--dir", two]) == 1
    assert load_state(one).totals["schedules"] == 400
    assert _counts(one) == _counts(two)


def test_duration_stops_and_progress_lines_are_plain(tmp_path):
    soakdir = str(tmp_path / "soak")
    args = ["--driver", "vsi-fixed", "--duration", "3s", "--batch", "50", "--workers", "1", "--progress-every", "0.5"]
    r = subprocess.run([*_cli(), *args, "--dir", soakdir], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "duration reached" in r.stdout and "no violation" in r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("soak:")]
    assert lines and "\r" not in r.stderr
    state = load_state(soakdir)
    assert state.totals["elapsed_s"] >= 3 and state.totals["schedules"] > 0
    assert _events(soakdir)[0][-1]["reason"] == "duration"


def test_hypothesis_strategy_soaks(tmp_path):
    soakdir = str(tmp_path / "soak")
    args = ["--driver", "vsi-v3", "--strategy", "hypothesis", "--schedules", "100", "--batch", "50", "--workers", "2"]
    assert soak_main([*args, "--dir", soakdir, "--no-progress", "--json"]) == 1
    state = load_state(soakdir)
    assert state.findings and os.listdir(os.path.join(soakdir, "hypothesis"))
    for f in state.findings.values():
        assert os.path.exists(os.path.join(soakdir, f["report"]))


def _usage(argv, capsys):
    code = soak_main(argv)
    err = capsys.readouterr().err
    return code, err


def test_unwritable_dir_is_one_line_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = _usage(["--driver", "vsi-fixed", "--schedules", "10", "--dir", str(blocker / "soak")], capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot write the soak" in err


@pytest.mark.parametrize("bad", ["10x", "-5m", "0", "m", "1h-3"])
def test_bad_duration_is_one_line_exit_2(bad, tmp_path, capsys):
    code, err = _usage(["--driver", "vsi-fixed", "--duration", bad, "--dir", str(tmp_path / "s")], capsys)
    assert code == 2 and err.count("\n") == 1 and "duration" in err


def test_existing_soak_needs_resume(tmp_path, capsys):
    soakdir = str(tmp_path / "soak")
    args = ["--driver", "vsi-fixed", "--schedules", "20", "--batch", "20", "--workers", "1", "--no-progress", "--json", "--dir", soakdir]
    assert soak_main(args) == 0
    capsys.readouterr()
    code, err = _usage(args, capsys)
    assert code == 2 and "--resume" in err and err.count("\n") == 1
    code, err = _usage(["--resume", soakdir, "--seed", "3"], capsys)
    assert code == 2 and "--seed" in err


def test_parse_duration():
    assert parse_duration("90") == 90
    assert parse_duration("90s") == 90
    assert parse_duration("10m") == 600
    assert parse_duration("8h") == 8 * 3600
    assert parse_duration("1h30m") == 5400
    for bad in ("", "h", "1x", "1h 2m", "-1s", "0s", "inf"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_read_events_counts_torn_lines(tmp_path):
    from stress.soak.events import open_events

    path = str(tmp_path / "events.jsonl")
    log = open_events(path)
    log.event("batch", batch=0)
    log.close()
    with open(path, "a") as f:
        f.write('{"event": "ba')
    log = open_events(path)  # repairs the torn line before appending
    log.event("batch", batch=1)
    log.close()
    events, bad = read_events(path)
    assert [e["batch"] for e in events] == [0, 1] and bad == 1
    assert all(e["v"] == 1 and e["time"].endswith("Z") for e in events)
