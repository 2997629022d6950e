"""Kernel primitives, named as in C.  Every awaitable one is a preemption point."""

from .core import HOOKS, Cpu, Kernel, ModelBug, current, model_stack, set_current
from .gfp import *  # noqa: F401,F403  (the flags, as in <linux/gfp_types.h>)
from .gfp import gfp_name, gfpflags_allow_blocking
from .irq import IRQ_HANDLED, IRQ_NONE, IRQF_SHARED, free_irq, in_hardirq, raise_irq, request_irq, synchronize_irq
from .locks import (
    cpu_relax,
    Mutex,
    SpinLock,
    assert_spin_locked,
    irqs_disabled,
    local_irq_disable,
    local_irq_enable,
    local_irq_restore,
    local_irq_save,
    lockdep_assert_held,
    mutex_lock,
    mutex_unlock,
    spin_lock,
    spin_lock_irq,
    spin_lock_irqsave,
    spin_lock_nested,
    spin_trylock,
    spin_unlock,
    spin_unlock_irq,
    spin_unlock_irqrestore,
)
from .mm import (
    PAGE_SHIFT,
    PAGE_SIZE,
    SZ_4G,
    KObj,
    Page,
    alloc_pages,
    free_pages,
    kfree,
    kmalloc,
    kzalloc,
    page_to_phys,
    phys_to_page,
    phys_to_virt,
)
from .shared import Shared
from .sleep import cond_resched, might_sleep, might_sleep_if, msleep, schedule_point
from .softirq import (
    in_interrupt,
    in_serving_softirq,
    in_softirq,
    local_bh_disable,
    local_bh_enable,
    open_softirq,
    raise_softirq,
    raise_softirq_irqoff,
)
