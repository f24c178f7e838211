"""Unit checks and conversions on entry, following DESIGN.md's unit table.

Conversions use pint with cf-xarray's CF-aware unit registry. They are applied as an
affine map ``a * x + b`` computed once from the two unit strings, so they stay lazy on
dask-backed data. Water depths and water-mass fluxes are interchangeable through the
density of liquid water (1 mm of water = 1 kg m-2), as hydrologists expect.

Examples
--------
>>> import xarray as xr
>>> from xldas.units import to_units
>>> t = xr.DataArray([0.0, 25.0], dims="x", attrs={"units": "degC"}, name="tair")
>>> to_units(t, "K").values.tolist()
[273.15, 298.15]
>>> p = xr.DataArray([24.0], dims="x", attrs={"units": "mm/day"}, name="precip")
>>> float(to_units(p, "kg m-2 s-1")[0])  # doctest: +ELLIPSIS
0.000277...
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import xarray as xr

from xldas.errors import UnitError

__all__ = ["check_units", "conversion", "to_units"]

_WATER_DENSITY = 1000.0  # kg m-3

# Unit strings that pint cannot parse but are common in our inputs.
_ALIASES = {
    "m3 m-3": "m3/m3",
    "m3/m3": "m3/m3",
    "%": "percent",
    "fraction": "1",
    "-": "1",
    "": "1",
    "degrees_celsius": "degC",
    "celsius": "degC",
    "degrees_kelvin": "K",
    "kelvin": "K",
    "mm/d": "mm/day",
}

# Units that are not physical quantities for pint: they convert only to themselves.
_LOGARITHMIC = {"dB", "db", "decibel"}


@functools.cache
def _registry():
    from cf_xarray.units import units as ureg

    return ureg


def _parse(u: str):
    ureg = _registry()
    u = _ALIASES.get(u.strip(), u.strip())
    return ureg.Unit(u)


@functools.cache
def conversion(src: str, dst: str) -> tuple[float, float]:
    """Return ``(a, b)`` with ``value_in_dst = a * value_in_src + b``.

    Raises :class:`~xldas.errors.UnitError` when the units cannot be converted.
    """
    if src.strip() == dst.strip():
        return 1.0, 0.0
    if src.strip() in _LOGARITHMIC or dst.strip() in _LOGARITHMIC:
        raise UnitError(f"cannot convert {src!r} to {dst!r}")
    ureg = _registry()
    try:
        us, ud = _parse(src), _parse(dst)
    except Exception as exc:  # pint raises several unrelated types
        raise UnitError(f"unknown unit {src!r} or {dst!r}: {exc}") from None
    q0, q1 = ureg.Quantity(0.0, us), ureg.Quantity(1.0, us)
    try:
        b = q0.to(ud).magnitude
        a = q1.to(ud).magnitude - b
        return float(a), float(b)
    except Exception:
        pass
    # Water equivalence: a depth of water is a mass per area (and so for rates).
    rho = ureg.Quantity(_WATER_DENSITY, "kg m-3")
    for factor in (rho, 1.0 / rho):
        try:
            a = (q1 * factor).to(ud).magnitude
            return float(a), 0.0
        except Exception:
            continue
    raise UnitError(f"cannot convert units {src!r} to {dst!r}")


def to_units(da: xr.DataArray, units: str, name: str | None = None) -> xr.DataArray:
    """Convert ``da`` to ``units`` (lazily), erroring when it has none.

    Parameters
    ----------
    da : DataArray with a CF ``units`` attribute.
    units : target unit string (CF/UDUNITS style, e.g. ``"kg m-2 s-1"``).
    name : variable name used in error messages (defaults to ``da.name``).
    """
    label = name or da.name or "variable"
    src = da.attrs.get("units")
    if src is None:
        raise UnitError(
            f"{label!s} has no 'units' attribute; expected units convertible to {units!r}"
        )
    try:
        a, b = conversion(str(src), units)
    except UnitError as exc:
        raise UnitError(f"{label!s}: {exc}") from None
    if a == 1.0 and b == 0.0:
        out = da
    else:
        out = da * a + b if b else da * a
    out = out.copy(deep=False) if out is da else out
    out.attrs = {**da.attrs, "units": units}
    out.encoding = dict(da.encoding)
    return out


def check_units(ds: xr.Dataset, spec: Mapping[str, str]) -> xr.Dataset:
    """Return ``ds`` with each variable named in ``spec`` converted to its units.

    Variables of ``spec`` missing from ``ds`` are ignored here; callers check presence
    with their own, more specific error.
    """
    out = ds.copy(deep=False)
    for var, units in spec.items():
        if var in out.variables:
            out[var] = to_units(out[var], units, name=var)
    return out
