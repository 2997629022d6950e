"""Plain memory that a checker may watch for data races."""

from .cpu import _current

__all__ = ["Shared"]


class Shared:
    """A word of ordinary kernel memory: each access is a preemption point.

    ``await cell.load()`` / ``await cell.store(v)`` are READ_ONCE/WRITE_ONCE
    without any ordering: the data-race checker decides whether two accesses
    were ordered by locks.

    The cell object only names the memory and holds its initial value
    (``cell.init``): the value a run stores lives in that run's kernel
    (``kernel.cells[cell]``), so a cell created once, at module level, starts
    every schedule from its initial value.  ``cell.value`` reads (and
    assigns) the value in the run of the calling CPU; outside any run it is
    the initial value.
    """

    __slots__ = ("name", "init")

    def __init__(self, name, value=None):
        self.name = name
        self.init = value

    def get(self, kernel):
        """The value of this cell in ``kernel``'s run (no preemption point, no hook)."""
        return kernel.cells.get(self, self.init)

    async def load(self):
        cpu = _current.get()
        await cpu.sched.point(cpu)
        k = cpu.kernel
        for fn in k.hooks.access:
            fn(cpu, self, False)
        return k.cells.get(self, self.init)

    async def store(self, value):
        cpu = _current.get()
        await cpu.sched.point(cpu)
        k = cpu.kernel
        for fn in k.hooks.access:
            fn(cpu, self, True)
        k.cells[self] = value

    @property
    def value(self):
        cpu = _current.get(None)
        if cpu is None:
            return self.init
        return cpu.kernel.cells.get(self, self.init)

    @value.setter
    def value(self, value):
        cpu = _current.get(None)
        if cpu is None:
            self.init = value
        else:
            cpu.kernel.cells[self] = value

    def __repr__(self):
        return f"Shared({self.name})"
