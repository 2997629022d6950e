"""might_sleep() and msleep(): calls that may schedule (include/linux/kernel.h, delay.h).

Time is virtual: a sleep is a preemption point where anything else may run,
never a wait on a clock.
"""

from .cpu import current

__all__ = ["might_sleep", "might_sleep_if", "msleep", "cond_resched", "schedule_point"]


async def might_sleep(what="might_sleep"):
    cpu = current()
    for fn in cpu.kernel.hooks.might_sleep:
        fn(cpu, what)
    await cpu.sched.point(cpu)


async def might_sleep_if(cond, what="might_sleep"):
    if cond:
        await might_sleep(what)


async def msleep(ms):
    await might_sleep(f"msleep({ms})")


async def cond_resched():
    await might_sleep("cond_resched")


async def schedule_point():
    """A bare preemption point (a place where another CPU may interleave)."""
    cpu = current()
    await cpu.sched.point(cpu)
