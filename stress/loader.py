"""Loading the user's code named on the command line or in a report.

``pkg.module:name`` is imported as ``python -m`` and pytest would: with
the current directory on ``sys.path``, so a scenario or driver module next
to the user is found without installing it.  ``path/to/file.py:name``
loads that file (a module named after its path, kept in ``sys.modules`` so
its frames and reports name it the same way every time).  Every failure is
one :class:`~stress.errors.UsageError` line.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from .errors import UsageError

__all__ = ["import_object"]


def _ensure_cwd_on_path():
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def _load_file(path, what):
    if not os.path.isfile(path):
        raise UsageError(f"{what} file {path!r}: no such file")
    rel = os.path.relpath(os.path.abspath(path))
    mod_name = "_iommu_stress_user." + rel.removesuffix(".py").replace(os.sep, ".").replace("-", "_").lstrip(".")
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{what} file {path!r} cannot be loaded as Python")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception as e:
        del sys.modules[mod_name]
        raise UsageError(f"{what} file {path!r} raised on import: {type(e).__name__}: {e}") from None
    return mod


def import_object(spec, what):
    """Import ``pkg.module:attr`` or ``path/file.py:attr``; failures are one-line usage errors."""
    if not isinstance(spec, str) or ":" not in spec or spec.startswith(":") or spec.endswith(":"):
        raise UsageError(f"{what} must be given as pkg.module:name or path/to/file.py:name, not {spec!r}")
    mod_name, attr = spec.rsplit(":", 1)
    if mod_name.endswith(".py") or os.sep in mod_name or "/" in mod_name:
        mod = _load_file(mod_name, what)
    else:
        _ensure_cwd_on_path()
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as e:
            raise UsageError(f"cannot import {what} module {mod_name!r}: {e}") from None
        except Exception as e:  # a plugin that raises on import
            raise UsageError(f"{what} module {mod_name!r} raised on import: {type(e).__name__}: {e}") from None
    obj = mod
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{what} {spec!r}: module {mod_name!r} has no {attr!r}") from None
    return obj
