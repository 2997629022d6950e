"""Driver variants: a registry of named classes.

``DRIVERS`` maps a name to a driver class (see :mod:`model.iommu.driver`);
the versions of the VSI driver (vsi-v3, vsi-mainline, vsi-fixed: each a
subclass of :class:`~model.drivers.vsi_common.VsiDriver` holding only the C
functions where it differs), rk-fixed (vsi-fixed on the Rockchip register
layout) and the single-defect mutants of vsi-fixed register here by adding
a line, or at run time with :func:`register_driver`.  A user's own
driver is found by ``get_driver("pkg.module:Class")`` or through the entry
point group ``iommu_stress.drivers``.
"""

from __future__ import annotations

from model.iommu.driver import validate_driver

from .rk_fixed import RkFixed
from .vsi_fixed import VsiFixed
from .vsi_mainline import VsiMainline
from .vsi_v3 import VsiV3, VsiV3GfpOr

__all__ = ["DRIVERS", "get_driver", "register_driver"]

DRIVERS = {
    "vsi-fixed": VsiFixed,
    "rk-fixed": RkFixed,
    "vsi-mainline": VsiMainline,
    "vsi-v3": VsiV3,
    "vsi-v3-gfp-or": VsiV3GfpOr,
}

from .mutants import ZOO as _ZOO  # noqa: E402  (the bug zoo: one-method mutants of vsi-fixed)

DRIVERS.update({cls.name: cls for _, _, cls, _ in _ZOO})

_ENTRY_POINT_GROUP = "iommu_stress.drivers"
_entry_points_loaded = False


def register_driver(cls, name=None):
    """Add ``cls`` under ``name`` (default ``cls.name``); returns the class."""
    reason = validate_driver(cls)
    if reason:
        raise LookupError(reason)
    DRIVERS[name or cls.name] = cls
    return cls


def _load_entry_points():
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=_ENTRY_POINT_GROUP):
        if ep.name not in DRIVERS:
            try:
                DRIVERS[ep.name] = ep.load()
            except Exception:  # noqa: BLE001 - a broken plugin must not hide the others
                continue


def get_driver(name):
    """The driver class called ``name``, or ``pkg.module:Class``.  LookupError with one line."""
    if isinstance(name, str) and ":" in name:
        import importlib

        mod_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:
            raise LookupError(f"cannot load driver {name!r}: {e}") from None
        reason = validate_driver(cls)
        if reason:
            raise LookupError(f"driver {name!r}: {reason}")
        return cls
    _load_entry_points()
    try:
        return DRIVERS[name]
    except KeyError:
        raise LookupError(f"unknown driver {name!r} (known: {', '.join(sorted(DRIVERS))})") from None
