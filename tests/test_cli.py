"""The command line: exit codes, one-line errors, reports that replay."""

import json
import os
import subprocess
import sys

import pytest

from stress.cli import main

SCEN = "stress.examples:lost_update"


def run_cli(*args, cwd=None):
    """Run ``python -m stress`` as a user would; returns (rc, stdout, stderr)."""
    p = subprocess.run(
        [sys.executable, "-m", "stress", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    return p.returncode, p.stdout, p.stderr


def test_hunt_json_finds_and_writes_report(tmp_path):
    rc, out, err = run_cli("hunt", "--scenario", SCEN, "--json", "--out", str(tmp_path))
    assert rc == 1, err
    data = json.loads(out)
    assert data["found"] is True
    assert data["violation"]["kind"] == "data-race"
    assert os.path.exists(data["report"])
    assert os.path.exists(data["report"][: -len(".json")] + ".txt")
    assert data["schedules"] >= 1 and data["points"] >= 1
    rc, out, err = run_cli("replay", data["report"], "--json")
    assert rc == 1, err
    assert json.loads(out)["reproduced"] is True


def test_hunt_same_seed_same_report_bytes(tmp_path):
    paths = []
    for sub in ("a", "b"):
        rc = main(["hunt", "--scenario", "stress.examples:abba", "--strategy", "random", "--seed", "7", "--json", "--out", str(tmp_path / sub)])
        assert rc == 1
        (name,) = [n for n in os.listdir(tmp_path / sub) if n.endswith(".json")]
        paths.append(tmp_path / sub / name)
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_hunt_clean_scenario_exits_0(tmp_path, capsys):
    rc = main(["hunt", "--scenario", "tests.test_cli:locked_update", "--schedules", "300", "--out", str(tmp_path)])
    assert rc == 0
    assert "no violation" in capsys.readouterr().out
    assert not os.path.exists(tmp_path) or not os.listdir(tmp_path)


def test_hunt_broken_scenario_exits_2(tmp_path, capsys):
    # lock_loop is a factory, not a scenario: called with a kernel it returns a function
    rc = main(["hunt", "--scenario", "stress.bench:lock_loop", "--schedules", "5", "--out", str(tmp_path)])
    assert rc == 2
    assert "scenario" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["hunt", "--scenario", "no.such.module:fn"], "cannot import"),
        (["hunt", "--scenario", "stress.examples:nope"], "has no"),
        (["hunt", "--scenario", "justaname"], "pkg.module:name"),
        (["hunt", "--seed", "x"], "seed"),
        (["hunt", "--schedules", "0"], "positive"),
        (["hunt", "--budget-s", "-1"], "seconds"),
        (["hunt", "--strategy", "dfs"], "invalid choice"),
        (["hunt", "--scenario", SCEN, "--checkers", "lockdep,nope"], "unknown checker"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_usage_one_line_exit_2(args, needle, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def _write(path, text):
    path.write_text(text)
    return str(path)


def _valid_report(tmp_path):
    rc = main(["hunt", "--scenario", SCEN, "--json", "--out", str(tmp_path / "r")])
    assert rc == 1
    (name,) = [n for n in os.listdir(tmp_path / "r") if n.endswith(".json")]
    return json.loads((tmp_path / "r" / name).read_text())


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda r: "{not json", "not a JSON report"),
        (lambda r: json.dumps(r)[: len(json.dumps(r)) // 2], "not a JSON report"),
        (lambda r: json.dumps({**r, "version": 99}), "version 99"),
        (lambda r: json.dumps({**r, "format": "other"}), "not an iommu-stress report"),
        (lambda r: json.dumps({**r, "decisions": [-1]}), "non-negative"),
        (lambda r: json.dumps({k: v for k, v in r.items() if k != "target"}), "target"),
        (lambda r: json.dumps({**r, "target": {"scenario": "no.such:fn"}}), "cannot import"),
    ],
)
def test_replay_bad_report_exit_2(tmp_path, capsys, mutate, needle):
    rep = _valid_report(tmp_path)
    capsys.readouterr()
    path = _write(tmp_path / "bad.json", mutate(rep))
    assert main(["replay", path]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_replay_missing_file_exit_2(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_replay_not_reproduced_exits_0(tmp_path, capsys):
    rep = _valid_report(tmp_path)
    capsys.readouterr()
    # the same schedule on a scenario without the bug does not reproduce it
    rep["target"] = {"scenario": "tests.test_cli:locked_update"}
    path = _write(tmp_path / "other.json", json.dumps(rep))
    assert main(["replay", path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reproduced"] is False


def locked_update(kernel):
    """lost_update with the lock: the fixed form."""
    from model.kernel import Shared, SpinLock, spin_lock, spin_unlock

    count, lock = Shared("stats->count", 0), SpinLock("stats->lock")

    async def inc():
        await spin_lock(lock)
        await count.store(await count.load() + 1)
        spin_unlock(lock)

    return [inc, inc]


def test_round_trip_report_replay_identical_bytes(tmp_path):
    """report -> replay --out -> the same bytes, for a scenario and for a driver hunt."""
    for i, args in enumerate((["--scenario", "stress.examples:abba"], ["--driver", "vsi-b3-identity-step"])):
        out1 = tmp_path / f"a{i}"
        out2 = tmp_path / f"b{i}"
        assert main(["hunt", *args, "--json", "--out", str(out1)]) == 1
        (name,) = [n for n in os.listdir(out1) if n.endswith(".json")]
        assert main(["replay", str(out1 / name), "--json", "--out", str(out2)]) == 1
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes()
        txt1 = (out1 / name.replace(".json", ".txt")).read_text()
        txt2 = (out2 / name.replace(".json", ".txt")).read_text()
        # the text names the JSON beside it: the same apart from that directory
        assert f"replay {out1 / name})" in txt1 and txt2 == txt1.replace(str(out1), str(out2))


def test_replay_report_of_unknown_driver_exit_2(tmp_path, capsys):
    assert main(["hunt", "--driver", "vsi-b1-gfp-or-atomic", "--json", "--out", str(tmp_path)]) == 1
    (name,) = [n for n in os.listdir(tmp_path) if n.endswith(".json")]
    rep = json.loads((tmp_path / name).read_text())
    rep["target"]["driver"] = "vsi-v9-from-the-future"
    path = _write(tmp_path / "other.json", json.dumps(rep))
    capsys.readouterr()
    assert main(["replay", path]) == 2
    err = capsys.readouterr().err
    assert "unknown driver" in err and len(err.strip().splitlines()) == 1


def test_hunt_log_is_json_lines(tmp_path, capsys):
    log = tmp_path / "hunts.jsonl"
    assert main(["hunt", "--scenario", SCEN, "--json", "--out", str(tmp_path / "r"), "--log", str(log)]) == 1
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["event"] for r in rows] == ["hunt_start", "find", "hunt_end"]
    assert all(r["v"] == 1 and r["time"] for r in rows)
    assert rows[1]["kind"] == "data-race" and os.path.exists(rows[1]["report"]) and rows[1]["signature"].startswith("data-race in ")
    assert rows[2]["found"] is True and rows[2]["schedules"] >= 1
    assert main(["hunt", "--scenario", SCEN, "--log", str(tmp_path / "no" / "such" / "dir.jsonl")]) == 2


_USER_SCENARIO = '''
from model.kernel import Shared

def racy(kernel):
    cell = Shared("mine", 0)

    async def inc():
        await cell.store(await cell.load() + 1)

    return [inc, inc]
'''

_USER_DRIVER = '''
from model.drivers.vsi_fixed import VsiFixed
from model.kernel import GFP_ATOMIC, GFP_DMA32


class Mine(VsiFixed):
    name = "mine"
    summary = "vsi-fixed with GFP_ATOMIC tables"

    async def vsi_dte_get_page_table(self, vsi_domain, iova, gfp):
        return await super().vsi_dte_get_page_table(vsi_domain, iova, GFP_ATOMIC | GFP_DMA32)
'''


@pytest.mark.parametrize(
    "args",
    [
        ["--scenario", "myscen:racy"],
        ["--scenario", "sub/myscen_file.py:racy"],
        ["--driver", "mydriver:Mine", "--schedules", "300"],
    ],
)
def test_user_modules_found_from_the_current_directory(tmp_path, args):
    """As ``python -m`` and pytest do: a module next to the user, or a file path."""
    (tmp_path / "myscen.py").write_text(_USER_SCENARIO)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "myscen_file.py").write_text(_USER_SCENARIO)
    (tmp_path / "mydriver.py").write_text(_USER_DRIVER)
    exe = os.path.join(os.path.dirname(sys.executable), "iommu-stress")
    p = subprocess.run([exe, "hunt", *args, "--json", "--out", "r"], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    data = json.loads(p.stdout)
    assert data["found"], data
    p = subprocess.run([exe, "replay", data["report"], "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert json.loads(p.stdout)["reproduced"] is True


def test_scenario_mistakes_exit_2_with_one_line(tmp_path):
    (tmp_path / "oops.py").write_text(
        "from model.kernel import Shared\n"
        "def empty(kernel):\n    return []\n"
        "def forgot(kernel):\n    c = Shared('c', 0)\n    async def b():\n        c.store(1)\n    return [b]\n"
    )
    for fn, needle in (("empty", "no CPU bodies"), ("forgot", "never awaited")):
        rc, out, err = run_cli("hunt", "--scenario", f"oops:{fn}", "--out", "r", cwd=tmp_path)
        assert rc == 2, err
        assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not list(tmp_path.glob("r/*"))  # no report: nothing was found
