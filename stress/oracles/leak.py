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
        # kmemleak's console line, then its report of each object (as
        # /sys/kernel/debug/kmemleak lists them; no address, no jiffies)
        lines = [f"kmemleak: {len(live)} new suspected memory leak{'s' if len(live) > 1 else ''} (see /sys/kernel/debug/kmemleak)"]
        for obj in live[:20]:
            owner = getattr(obj, "owner", None)
            comm = f"CPU{owner}" if isinstance(owner, int) and owner >= 0 else "swapper/0"
            lines += [f"unreferenced object {obj!r}:", f'  comm "{comm}", pid 0']
        if len(live) > 20:
            lines.append(f"... and {len(live) - 20} more")
        kernel.report(
            "leak",
            f"{len(live)} allocation(s) left after teardown, first {live[0]!r}",
            splat="\n".join(lines),
            stacks={},
        )
