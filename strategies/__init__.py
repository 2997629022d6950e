"""Hypothesis strategies and stateful machines for iommu-stress.

* :mod:`strategies.ops` - operations and per-CPU programs of a workload;
* :mod:`strategies.schedules` - decision lists, PCT parameters, segment plans
  and the choosers that follow them;
* :mod:`strategies.machine` - a ``RuleBasedStateMachine`` that grows programs
  and a schedule and replays them at every step, and ``hunt_with_machine``.

The submodules keep their names (``strategies.ops`` is the module; its
``ops()`` strategy is ``strategies.ops.ops``).  Arrows go one way:
``strategies`` imports ``stress`` and ``model``, never the reverse.
"""

from .machine import MachineFailure, MachineFind, hunt_with_machine, make_machine, workload_of
from .ops import KIND_ORDER, programs, workloads
from .schedules import PCTParams, PCTPlan, SegmentPlan, decision_lists, pct_plans, segment_plans, sparse_decisions

__all__ = [
    "KIND_ORDER",
    "MachineFailure",
    "MachineFind",
    "PCTParams",
    "PCTPlan",
    "SegmentPlan",
    "decision_lists",
    "hunt_with_machine",
    "make_machine",
    "pct_plans",
    "programs",
    "segment_plans",
    "sparse_decisions",
    "workload_of",
    "workloads",
]
