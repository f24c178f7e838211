"""xldas: a Dask/Xarray-native remote-sensing land data assimilation system.

``import xldas`` registers the ``.ldas`` accessor on :class:`xarray.Dataset` and
:class:`xarray.DataArray`. Submodules (``io``, ``physics``, ``models``, ``obs``,
``filters``, ``cycle``, ``compute``, ``demo`` ...) are imported on first use so that
``import xldas`` stays fast.
"""

from __future__ import annotations

import importlib

from xldas import accessors as _accessors  # noqa: F401  (registers .ldas)
from xldas import errors

try:
    from xldas._version import __version__
except ImportError:  # running from a source tree that was never built
    try:
        from importlib.metadata import version as _v

        __version__ = _v("xldas")
    except Exception:
        __version__ = "0+unknown"

_SUBMODULES = {
    "io",
    "compute",
    "units",
    "physics",
    "models",
    "obs",
    "filters",
    "cycle",
    "demo",
    "retrieval",
    "validation",
    "budget",
    "cli",
}

# public name -> module that defines it
_LAZY = {
    "open_catalog": "xldas.io",
    "search_stac": "xldas.io",
    "regrid": "xldas.io",
    "Experiment": "xldas.cycle",
}

__all__ = ["Experiment", "__version__", "errors", "open_catalog", "regrid", "search_stac"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"xldas.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xldas' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES | set(_LAZY))
