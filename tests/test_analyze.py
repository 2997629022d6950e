"""``iommu-stress analyze`` over a short real soak (and a hunt --log), end to end."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from stress.analyze.plots import FIGURES, HEIGHT, WIDTH

EXE = os.path.join(os.path.dirname(sys.executable), "iommu-stress")


def _run_cli(argv, capsys):
    """``iommu-stress analyze ARGV`` in process: (exit status, stdout, stderr)."""
    from stress import cli as main_cli

    wired = "analyze" in main_cli.build_parser()._subparsers._group_actions[0].choices
    if wired:
        rc = main_cli.main(["analyze", *argv])
    else:  # until stress.cli wires the subcommand
        from stress.analyze.cli import main

        rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _analyze_json(argv, capsys):
    rc, out, err = _run_cli([*argv, "--json"], capsys)
    assert rc == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    d = tmp_path_factory.mktemp("analyze") / "soak"
    p = subprocess.run(
        [EXE, "soak", "--driver", "vsi-mainline", "--schedules", "900", "--workers", "2", "--batch", "150", "--dir", str(d), "--json", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode in (0, 1), p.stderr
    return d


def _batches(log):
    with open(log) as f:
        return [e for e in map(json.loads, f) if e["event"] == "batch"]


def test_signatures_discovery_and_coverage(soak, capsys):
    data = _analyze_json([str(soak)], capsys)
    findings = json.loads((soak / "findings.json").read_text())
    assert findings, "the short vsi-mainline soak finds something"
    assert {s["signature"] for s in data["signatures"]} == set(findings)
    for s in data["signatures"]:
        f = findings[s["signature"]]
        assert s["kind"] == f["kind"]
        assert s["count"] == f["count"]
        assert s["report"] == f["report"][: -len(".json")] + ".txt"
        assert os.path.isfile(s["report_path"])
    # the discovery curve: non-decreasing, ends at the number of signatures and of schedules
    curve = data["discovery"]
    for key in ("schedules", "elapsed_s", "signatures"):
        values = [p[key] for p in curve]
        assert values == sorted(values), key
    assert curve[0]["signatures"] == 0 and curve[-1]["signatures"] == len(findings)
    assert curve[-1]["schedules"] == 900 == data["runs"][0]["schedules"]
    # coverage: the sum of the batch events' ops, computed here with json
    want = {}
    batches = _batches(soak / "events.jsonl")
    for b in batches:
        for k, n in b["ops"].items():
            want[k] = want.get(k, 0) + n
    assert {r["op"]: r["count"] for r in data["coverage"]["ops"]} == want
    edges = {tuple(e) for b in batches for e in b["lock_edges"]}
    assert {(r["lock_a"], r["lock_b"]) for r in data["coverage"]["lock_edges"]} == edges
    assert sum(r["schedules"] for r in data["workers"]) == 900
    assert sum(r["schedules"] for r in data["throughput"]["rows"]) == 900
    assert data["runs"][0]["bad_lines"] == 0
    # the new coverage fields, when the soak writes them
    if any("functions" in b for b in batches):
        reached = {r["function"] for r in data["coverage"]["functions"] if r["reached"]}
        assert reached == {k for b in batches for k, n in b.get("functions", {}).items() if n}
    # interleaving coverage: the growth per kind never falls and ends at what
    # the soak's coverage.json holds (the log and the file agree)
    from stress.search.coverage import counts
    from stress.soak.corpusfiles import load_features

    on_disk = counts(load_features(soak))
    assert all(on_disk.values())
    growth = data["coverage"]["interleavings_growth"]
    for kind, total in on_disk.items():
        values = [r["features"] for r in growth if r["kind"] == kind]
        assert values == sorted(values) and values[-1] == total, kind
    assert {r["kind"]: r["features"] for r in data["coverage"]["interleavings"]} == on_disk
    for r in data["coverage"]["interleavings"]:
        assert 0 < r["per_batch"] <= r["features"]


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.stack = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag == "a":
            self.links.append(a.get("href", ""))


def test_png_and_html(soak, tmp_path, capsys):
    out = tmp_path / "out"
    page = out / "page" / "analysis.html"
    rc, stdout, err = _run_cli([str(soak), "--png", str(out / "png"), "--html", str(page)], capsys)
    assert rc == 0, err
    assert "Distinct signatures" in stdout
    for name in FIGURES:
        assert _png_size(out / "png" / name) == (WIDTH, HEIGHT)
    text = page.read_text()
    p = _Page()
    p.feed(text)
    p.close()
    assert len([s for s in p.imgs if s.startswith("data:image/png;base64,")]) == len(FIGURES)
    assert "http://" not in text and "https://" not in text
    findings = json.loads((soak / "findings.json").read_text())
    for f in findings.values():
        txt = soak / (f["report"][: -len(".json")] + ".txt")
        rel = os.path.relpath(txt, page.parent)
        assert rel in p.links
        assert (page.parent / rel).resolve() == txt.resolve()


def test_two_runs_side_by_side(soak, tmp_path, capsys):
    other = tmp_path / "copy"
    shutil.copytree(soak, other)
    data = _analyze_json([f"A={soak}", f"B={other}"], capsys)
    assert data["labels"] == ["A", "B"]
    assert {r["run"] for r in data["discovery"]} == {"A", "B"}
    assert {s["run"] for s in data["signatures"]} == {"A", "B"}
    for f in data["first_find"]:
        assert set(f["runs"]) == {"A", "B"}
        assert f["runs"]["A"] == f["runs"]["B"]
    # the same path twice gets two labels
    data = _analyze_json([str(soak), str(soak)], capsys)
    assert len(data["labels"]) == 2 and len(set(data["labels"])) == 2
    rc, out, err = _run_cli([f"A={soak}", f"B={other}", "--png", str(tmp_path / "png")], capsys)
    assert rc == 0 and "Time to first find" in out


def test_corrupt_lines_counted(soak, tmp_path, capsys):
    log = tmp_path / "torn.jsonl"
    lines = (soak / "events.jsonl").read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:3]) + b"garbage line\n" + b"".join(lines[3:]) + lines[1][:40])
    data = _analyze_json([str(log)], capsys)
    assert data["runs"][0]["bad_lines"] == 2
    assert data["runs"][0]["events"] == len(lines)
    rc, out, err = _run_cli([str(log)], capsys)
    assert rc == 0 and "2 line(s) skipped" in " ".join(out.split())


def test_empty_log(tmp_path, capsys):
    log = tmp_path / "events.jsonl"
    log.write_text("")
    data = _analyze_json([str(tmp_path)], capsys)
    assert data["signatures"] == [] and data["discovery"] == [] and data["coverage"]["ops"] == []
    rc, out, err = _run_cli([str(log), "--html", str(tmp_path / "p.html"), "--png", str(tmp_path / "png")], capsys)
    assert rc == 0, err
    assert _png_size(tmp_path / "png" / "coverage.png") == (WIDTH, HEIGHT)


def test_bad_usage(tmp_path, capsys):
    rc, out, err = _run_cli([str(tmp_path / "missing")], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "missing" in err
    notlog = tmp_path / "notes.txt"
    notlog.write_text("hello\n{\"x\": 1}\n")
    rc, out, err = _run_cli([str(notlog)], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "not an event log" in err
    rc, out, err = _run_cli([str(tmp_path)], capsys)  # a directory without events.jsonl
    assert rc == 2 and len(err.strip().splitlines()) == 1


def test_hunt_log(tmp_path, capsys):
    log = tmp_path / "hunt.jsonl"
    p = subprocess.run(
        [EXE, "hunt", "--driver", "vsi-mainline", "--schedules", "60", "--all-kinds", "--out", str(tmp_path / "reports"), "--log", str(log), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode in (0, 1), p.stderr
    finds = [e for e in map(json.loads, log.read_text().splitlines()) if e["event"] == "find"]
    data = _analyze_json([str(log)], capsys)
    assert {s["signature"] for s in data["signatures"]} == {f["signature"] for f in finds}
    assert data["runs"][0]["kind"] == "hunt" and data["runs"][0]["schedules"] == 60
    curve = data["discovery"]
    assert [c["signatures"] for c in curve] == sorted(c["signatures"] for c in curve)
    assert curve[-1]["signatures"] == len(finds)
    assert data["coverage"]["ops"] == []
