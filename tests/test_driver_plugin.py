"""User drivers named as pkg.module:Class, and bad drivers."""

import json

import pytest

from stress.cli import main


def hunt(*args):
    return main(["hunt", "--schedules", "300", "--json", *args])


def test_user_driver_found_without_editing_the_package(tmp_path, capsys):
    rc = hunt("--driver", "tests.plugins.drivers:MyIommu", "--out", str(tmp_path))
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert out["violation"]["kind"] == "gfp-accounting-dropped"
    assert main(["replay", out["report"], "--json"]) == 1


def test_driver_raising_inside_an_operation_is_an_assertion(tmp_path, capsys):
    rc = hunt("--driver", "tests.plugins.drivers:Crashing", "--out", str(tmp_path))
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert out["violation"]["kind"] == "assertion"
    assert "ZeroDivisionError" in out["violation"]["message"]
    report = json.loads(open(out["report"]).read())
    frames = [f for stack in report["violation"]["stacks"].values() for f in stack]
    assert any(f.startswith("vsi_iommu_map (tests/plugins/drivers.py:") for f in frames), frames


@pytest.mark.parametrize(
    "driver, needle",
    [
        ("no-such-driver", "unknown driver"),
        ("tests.plugins.drivers:NotADriver", "missing method"),
        ("tests.plugins.drivers:Nope", "has no 'Nope'"),
        ("tests.plugins.broken_import:X", "raised on import"),
        ("no_such_module:X", "cannot import driver module"),
    ],
)
def test_bad_driver_one_line_exit_2(driver, needle, tmp_path, capsys):
    assert hunt("--driver", driver, "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_drivers_lists_every_variant(capsys):
    assert main(["drivers", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in rows]
    assert "vsi-fixed" in names
    assert all(r["summary"] for r in rows)
