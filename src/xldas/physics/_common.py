"""Entry checks and engine dispatch shared by the xarray wrappers of :mod:`xldas.physics`.

Every public physics function takes numbers, NumPy arrays or DataArrays. On entry a
DataArray is converted to the unit its parameter expects (:func:`xldas.units.to_units`);
dimensionless quantities without a ``units`` attribute are accepted as they are. Ranges are
checked where the values are already in memory (numbers, NumPy-backed arrays); dask-backed
input is never computed for a check — out-of-range values then give NaN in the kernels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr

from xldas.errors import ParameterRangeError, UnitError, UnknownOptionError
from xldas.units import to_units

ENGINES = ("numba", "numpy")

_DIMENSIONLESS = {"1", "m3 m-3", "g g-1"}


def entry(
    x,
    units: str | None,
    name: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    closed_hi=True,
):
    """Convert ``x`` to ``units`` if it is a DataArray and check ``lo <= x <= hi`` in memory.

    Raises :class:`~xldas.errors.UnitError` for a DataArray without units whose quantity
    has dimensions, and :class:`~xldas.errors.ParameterRangeError` naming ``name`` when an
    in-memory value is out of range.
    """
    if isinstance(x, xr.Dataset):
        raise TypeError(f"{name}: expected a number, an array or a DataArray, got a Dataset")
    if isinstance(x, xr.DataArray):
        if units is None:  # a coefficient whose unit is a combination the registry lacks
            pass
        elif "units" in x.attrs:
            x = to_units(x, units, name=name)
        elif units not in _DIMENSIONLESS:
            raise UnitError(
                f"{name} has no 'units' attribute; expected units convertible to {units!r}"
            )
        data = x.data
    else:
        data = x
    if (lo is not None or hi is not None) and isinstance(
        data, int | float | np.number | np.ndarray
    ):
        arr = np.asarray(data)
        if arr.size and arr.dtype.kind in "fiu" and not np.isnan(arr).all():
            vmin, vmax = np.nanmin(arr), np.nanmax(arr)
            too_high = hi is not None and (vmax > hi if closed_hi else vmax >= hi)
            if (lo is not None and vmin < lo) or too_high:
                span = f"[{lo}, {hi}{']' if closed_hi else ')'}"
                unit = f" {units}" if units not in (None, "1") else ""
                raise ParameterRangeError(
                    f"{name} must lie in {span}{unit}; got values from {vmin:g} to {vmax:g}"
                )
    return x


def incidence(x, name: str = "incidence_deg", lo: float = 0.0, hi: float = 90.0):
    """Incidence angle in degrees, ``lo <= x < hi`` (``hi`` excluded at 90°)."""
    return entry(x, "degree", name, lo, hi, closed_hi=hi < 90.0)


def _is_cupy(a) -> bool:
    return type(a).__module__.split(".")[0] == "cupy"


def dispatch(
    kernel: Callable, reference: Callable, engine: str | None, *, first_last: bool = False
) -> Callable:
    """Return a function running the numba ``kernel`` or its NumPy ``reference``.

    ``engine=None`` picks numba for NumPy chunks and the NumPy reference for other array
    types (CuPy chunks, which NumPy functions dispatch to CuPy). With ``first_last`` the
    caller passes the kernel's first argument last: dask builds the output ``meta`` from the
    first argument, so a complex permittivity there would be cast to a real output dtype.
    """
    if engine is not None and engine not in ENGINES:
        raise UnknownOptionError("engine", engine, ENGINES)

    def run(*args):
        if first_last:
            args = (args[-1], *args[:-1])
        use = engine or ("numpy" if any(_is_cupy(a) for a in args) else "numba")
        return (kernel if use == "numba" else reference)(*args)

    run.__name__ = getattr(kernel, "__name__", "kernel")
    return run


def single_chunk(x, dim: str):
    """Rechunk a dask-backed DataArray so that ``dim`` is one chunk (a kernel core dim)."""
    if isinstance(x, xr.DataArray) and x.chunks is not None and dim in x.dims:
        return x.chunk({dim: -1})
    return x
