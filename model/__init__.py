"""The system under test: kernel primitives, hardware, IOMMU core, drivers.

Nothing here knows about schedulers, checkers or Hypothesis; the engine
(``stress``) plugs into :mod:`model.kernel`.
"""
