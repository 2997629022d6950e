"""``iommu-stress analyze``: what a soak found, how fast, and what it never reached.

DuckDB over the structured logs (``SOAKDIR/events.jsonl``, ``hunt --log``):
:mod:`.queries` holds every SQL query (named, reusable by hand), :mod:`.load`
turns PATHs into the ``ev`` table, :mod:`.tables` collects and prints,
:mod:`.plots` draws, :mod:`.html` writes one self-contained page.
"""

from .load import load
from .tables import collect

__all__ = ["load", "collect"]
