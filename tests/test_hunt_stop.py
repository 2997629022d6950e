"""hunt under Ctrl-C, SIGTERM and a bad --out: nothing found is lost, nothing is a traceback."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

EXE = os.path.join(os.path.dirname(sys.executable), "iommu-stress")


def _start(tmp_path, *args):
    return subprocess.Popen(
        [EXE, "hunt", *args, "--out", str(tmp_path / "r"), "--log", str(tmp_path / "log.jsonl")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )


def _wait_for_reports(tmp_path, n, timeout=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if len(list((tmp_path / "r").glob("*.json"))) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} reports after {timeout} s")


def test_sigint_keeps_every_find_and_prints_the_summary(tmp_path):
    p = _start(tmp_path, "--driver", "vsi-mainline", "--all-kinds", "--schedules", "200000")
    _wait_for_reports(tmp_path, 2)
    before = sorted(x.name for x in (tmp_path / "r").glob("*.json"))
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert time.monotonic() - t0 < 5, "a hunt stops within seconds of Ctrl-C"
    assert p.returncode == 1, err
    assert "Traceback" not in err and "ExceptionGroup" not in err
    assert "stopped by SIGINT" in out
    after = sorted(x.name for x in (tmp_path / "r").glob("*.json"))
    assert set(before) <= set(after)
    for name in after:  # every report complete, and named in the summary
        json.loads((tmp_path / "r" / name).read_text())
        assert name in out
    assert not list((tmp_path / "r").glob("*.tmp*"))
    events = [json.loads(line)["event"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert events[0] == "hunt_start" and events[-1] == "hunt_end"
    assert events.count("find") == len(after)


def test_sigterm_on_a_clean_driver_says_what_was_covered(tmp_path):
    p = _start(tmp_path, "--driver", "vsi-fixed", "--schedules", "200000", "--json")
    time.sleep(4)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    data = json.loads(out)
    assert data["found"] is False and data["stopped"] == "SIGTERM" and data["schedules"] > 0
    end = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert end["event"] == "hunt_end" and end["schedules"] == data["schedules"] and end["stopped"] == "SIGTERM"


def test_unwritable_out_is_refused_before_the_first_schedule(tmp_path, capsys):
    from stress.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["hunt", "--driver", "vsi-v3", "--out", str(blocker / "reports")]) == 2
    err = capsys.readouterr().err
    assert "cannot write reports" in err and len(err.strip().splitlines()) == 1


def test_all_kinds_reports_each_signature_once(tmp_path):
    """Two data races in two places are two finds; each report is written once."""
    from stress.cli import main

    assert main(["hunt", "--driver", "vsi-mainline", "--all-kinds", "--schedules", "400", "--json", "--out", str(tmp_path)]) == 1
    reports = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    sigs = [r["signature"] for r in reports]
    assert len(sigs) == len(set(sigs)) >= 4
    assert sum(1 for s in sigs if s.startswith("data-race in ")) >= 1


def test_sigint_stops_a_hypothesis_hunt_too(tmp_path):
    (tmp_path / "clean.py").write_text(
        "from model.kernel import Shared, SpinLock, spin_lock, spin_unlock\n"
        "def locked(kernel):\n"
        "    count, lock = Shared('count', 0), SpinLock('lock')\n"
        "    async def inc():\n"
        "        await spin_lock(lock)\n"
        "        await count.store(await count.load() + 1)\n"
        "        spin_unlock(lock)\n"
        "    return [inc, inc]\n"
    )
    p = _start(tmp_path, "--scenario", "clean:locked", "--strategy", "hypothesis", "--schedules", "10000000")
    time.sleep(4)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert time.monotonic() - t0 < 5
    assert p.returncode == 0, err
    assert "stopped by SIGINT" in out and "Traceback" not in err
