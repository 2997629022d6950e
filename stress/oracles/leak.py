"""leak: memory still allocated when a scenario that tears down has finished.

Only scenarios that register a teardown (``kernel.add_teardown``) promise to
give everything back; for them, any page or kmalloc object allocated during
the run (boot included) and still live at the end is a leak.
"""


class LeakOracle:
    name = "leak"

    def __init__(self, kernel):
        self.kernel = kernel

    def run_end(self, kernel):
        if not kernel.teardown:
            return
        live = kernel.mm.live()
        if not live:
            return
        lines = ["unreferenced objects after teardown:"] + [f"  {obj!r} (allocated by CPU{obj.owner})" for obj in live[:20]]
        if len(live) > 20:
            lines.append(f"  ... and {len(live) - 20} more")
        kernel.report(
            "leak",
            f"{len(live)} allocation(s) left after teardown, first {live[0]!r}",
            splat="\n".join(["kmemleak: " + lines[0], *lines[1:]]),
            stacks={},
        )
