"""Search beyond one schedule: interleaving coverage and the coverage-guided strategy.

* :mod:`.coverage` - the features a run's interleaving exercised;
* :mod:`.corpus` - the schedules that reached new features, kept and shared;
* :mod:`.mutate` - new schedules made from kept ones;
* :mod:`.guided` - the ``guided`` strategy that ties them together.
"""
