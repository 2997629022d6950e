"""A driver plugin whose module raises on import."""

raise RuntimeError("firmware blob missing")
