"""``struct list_head`` for driver structures, watched by the data-race checker.

A list head is a :class:`~model.kernel.shared.Shared` cell holding the
entries in order: iterating it is a load, adding or deleting an entry a load
and a store.  So a list changed under one lock and walked under another is a
``data-race`` report, where the C would corrupt the list (a ``list_del_init``
under the walker's feet sends ``list_for_each_entry`` round its own node or
onto another domain's list).  An entry knows the list it is on
(``node.head``) so that ``list_del_init(&iommu->node)`` needs no head, as in C.
"""

from __future__ import annotations

from model.kernel.shared import Shared

__all__ = ["ListHead", "ListNode", "INIT_LIST_HEAD", "list_add_tail", "list_del_init", "list_empty", "list_entries"]


class ListHead:
    __slots__ = ("cell",)

    def __init__(self, name):
        self.cell = Shared(name, ())

    def __repr__(self):
        return f"list({self.cell.name}: {', '.join(repr(n.entry) for n in self.cell.value)})"


class ListNode:
    """The ``node`` member of an entry; ``entry`` is its container."""

    __slots__ = ("entry", "head")

    def __init__(self, entry):
        self.entry = entry
        self.head = None

    def __repr__(self):
        return repr(self.entry)


def INIT_LIST_HEAD(name):
    return ListHead(name)


async def list_add_tail(node, head):
    items = await head.cell.load()
    await head.cell.store(items + (node,))
    node.head = head


async def list_del_init(node):
    head = node.head
    if head is None:
        return  # already unlinked (list_del_init of an empty node)
    items = await head.cell.load()
    await head.cell.store(tuple(n for n in items if n is not node))
    node.head = None


async def list_empty(head):
    return not await head.cell.load()


async def list_entries(head):
    """``list_for_each_entry``: the containers, as read now (one load)."""
    return [n.entry for n in await head.cell.load()]
