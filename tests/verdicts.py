"""What the primitives' verdict tests share: search a scenario, say what was
found, assert clean runs (PCT and random, several seeds) or a find."""

import stress

__all__ = ["describe", "describe_v", "verdicts"]


def describe_v(v):
    return f"{v.kind}: {v.message}\n{v.splat}"


def describe(result):
    if not result.violations:
        return f"nothing found in {result.schedules} schedules"
    return describe_v(result.violations[0])


def verdicts(schedules, seeds=range(3)):
    """``(search, assert_clean, found)`` with this module's defaults."""

    def search(scenario, strategy="pct", seed=0, schedules=schedules, **kw):
        return stress.explore(scenario, strategy=strategy, schedules=schedules, seed=seed, **kw)

    def assert_clean(scenario, seeds=seeds, schedules=schedules, **kw):
        for strategy in ("pct", "random"):
            for seed in seeds:
                r = search(scenario, strategy, seed, schedules, **kw)
                assert r.violations == [], describe(r)
                assert r.schedules == schedules

    def found(scenario, **kw):
        r = search(scenario, **kw)
        assert r.violations, describe(r)
        return r.violations[0]

    return search, assert_clean, found
