"""Soak vsi-fixed: >= 100,000 schedules over every workload mix, both choosers.

    python benchmarks/soak_fixed.py [--schedules 100000] [--workers 2]

Prints the figures (schedules, points, seconds, schedules/s, violations) and
exits 1 if anything was found.  Each worker takes its own (mix, strategy,
seed) slices; results are deterministic per slice.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MIXES = [
    None,
    ["map", "unmap", "dma", "iova_to_phys"],
    ["attach", "attach_identity", "attach_blocked", "map", "dma", "fault"],
    ["claim", "release", "attach", "map", "unmap", "dma"],
    ["suspend", "resume", "map", "unmap", "dma", "attach", "fault"],
    ["dom_alloc", "dom_free", "map", "unmap", "attach", "dma"],
]


def run_slice(args):
    mix, strategy, seed, n = args
    from stress import explore
    from stress.workload import driver_scenario, workload_config

    cfg = workload_config(cpus=3, ops=4, kinds=mix)
    r = explore(driver_scenario("vsi-fixed", cfg), strategy=strategy, schedules=n, seed=seed)
    return r.schedules, r.points, [(v.kind, v.message) for v in r.violations]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    slices = []
    per = 2500
    seed = 0
    while len(slices) * per < args.schedules:
        mix = MIXES[len(slices) % len(MIXES)]
        strategy = "pct" if (len(slices) // len(MIXES)) % 2 == 0 else "random"
        slices.append((mix, strategy, seed, per))
        seed += 1
    t0 = time.perf_counter()
    total = points = 0
    found = []
    with ProcessPoolExecutor(args.workers) as pool:
        for s, p, v in pool.map(run_slice, slices):
            total += s
            points += p
            found += v
            print(f"\r{total} schedules, {len(found)} violations", end="", file=sys.stderr)
    elapsed = time.perf_counter() - t0
    print(file=sys.stderr)
    print(f"vsi-fixed soak: {total} schedules, {points} points, {elapsed:.0f} s, "
          f"{total / elapsed:.0f} schedules/s, {points / elapsed:.0f} points/s, {len(found)} violations")
    for kind, msg in found[:10]:
        print(f"  {kind}: {msg}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
