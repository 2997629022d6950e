"""``bench --instructions``: the bench's costs counted under Valgrind, the same from run to run."""

import os
import subprocess
import sys

import pytest

from stress.bench.instructions import count, instruction_figures, valgrind

needs_valgrind = pytest.mark.skipif(valgrind() is None, reason="valgrind is not installed (bench --instructions says so and exits 2)")


def _bench(*args, path=None):
    env = dict(os.environ, PATH=path) if path is not None else None
    p = subprocess.run([sys.executable, "-m", "stress", "bench", *args], capture_output=True, text=True, env=env)
    return p.returncode, p.stdout, p.stderr


@needs_valgrind
def test_quick_figures_weigh_the_driver_mix_against_the_bare_engine():
    f = instruction_figures(quick=True)
    bare, mix = f["bare_engine_instructions_per_point"], f["workload_instructions_per_point"]
    assert 10_000 < bare < 500_000  # a lock, a store, an unlock: tens of thousands, not zero, not a boot
    assert mix > bare  # a point of the model does everything a bare one does, and more
    assert f["model_cost_per_point_instructions"] == pytest.approx(mix / bare)
    assert f["workload_instructions_per_schedule"] > 100 * mix  # a schedule is many points and a teardown


@needs_valgrind
def test_a_count_repeats_to_a_hundredth_of_a_percent():
    a, b = count("mix", 2), count("mix", 2)
    assert a[1:] == b[1:]  # the same points and schedules: the same search
    assert abs(a[0] - b[0]) <= a[0] * 1e-4


def test_without_valgrind_it_is_a_usage_error():
    rc, out, err = _bench("--instructions", path=os.path.dirname(sys.executable))
    assert rc == 2 and out == ""
    assert err.strip().splitlines() == ["iommu-stress: error: --instructions needs valgrind, which is not on PATH (Debian, Ubuntu: apt install valgrind)"]


def test_instructions_do_not_go_with_the_campaign():
    rc, _, err = _bench("--instructions", "--campaign")
    assert rc == 2 and "does not go with --campaign" in err and "Traceback" not in err
