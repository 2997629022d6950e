"""``iommu-stress bench``: throughput figures and the detection campaign.

* :mod:`.throughput`: what ``bench`` measures (switches, points/s, the
  driver workload's schedules/s and the model's cost per point, the soak's
  speed-up); :func:`run_bench`, :func:`raw_handoffs_per_s` and
  :func:`lock_loop` are importable from here as they always were.
* ``bench --instructions``: the same programs' costs counted in
  instructions under Valgrind, the machine's noise left out
  (:mod:`.instructions`).
* ``bench --campaign``: every zoo bug and every vsi-mainline finding under
  every strategy over many seeds (:mod:`.campaign`, from :mod:`.bugs`,
  :mod:`.arms`, :mod:`.job`, :mod:`.stats`; shown by :mod:`.tables` and
  :mod:`.progress`; the README's section by :mod:`.readme`);
* :mod:`.cli`: the ``bench`` subcommand.
"""

from .throughput import lock_loop, raw_handoffs_per_s, run_bench

__all__ = ["run_bench", "raw_handoffs_per_s", "lock_loop"]
