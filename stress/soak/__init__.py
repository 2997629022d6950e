"""Soak: long, crash-safe, multi-core searches that never lose a find.

* :mod:`.signature` - the name of a bug (syzbot-style titles)
"""
