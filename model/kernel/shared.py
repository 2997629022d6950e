"""Plain memory that a checker may watch for data races."""

from .core import current

__all__ = ["Shared"]


class Shared:
    """A word of ordinary kernel memory: each access is a preemption point.

    ``await cell.load()`` / ``await cell.store(v)`` are READ_ONCE/WRITE_ONCE
    without any ordering: the data-race checker decides whether two accesses
    were ordered by locks.
    """

    __slots__ = ("name", "value", "race")

    def __init__(self, name, value=None):
        self.name = name
        self.value = value
        self.race = None

    async def load(self):
        cpu = current()
        await cpu.sched.point(cpu)
        for fn in cpu.kernel.hooks.access:
            fn(cpu, self, False)
        return self.value

    async def store(self, value):
        cpu = current()
        await cpu.sched.point(cpu)
        for fn in cpu.kernel.hooks.access:
            fn(cpu, self, True)
        self.value = value

    def __repr__(self):
        return f"Shared({self.name})"
