"""Evapotranspiration from a Dataset of forcing and satellite variables (SCIENCE.md §A7).

:func:`evapotranspiration` dispatches to the physics forward models, finding inputs by
name in the Dataset (names of the forcing contract where one exists):

========================  ==========================================================================
method                    variables (units converted from the ``units`` attribute)
========================  ==========================================================================
``"fao56"``               ``rn`` (net radiation), ``tmax``, ``tmin`` (or ``tair``), wind at 2 m ``u2``
                          (or ``wind`` at ``wind_height_m``), ``ea`` (or ``qair`` + ``psurf``),
                          ``elevation`` (default 0), optional ``g``
``"priestley_taylor"``    ``rn``, ``tair``, ``psurf`` (default 101.3 kPa), optional ``g``
``"pt_jpl"``              ``rn``, ``tair``, ``rh`` (or ``qair`` + ``psurf``), ``ndvi``, ``savi`` or
                          ``evi`` (default SAVI = 0.45·NDVI + 0.132), optional ``fapar_max``,
                          ``t_opt`` (derived along ``time`` when absent), ``g``
``"sith"``                ``rn``, ``lai``, ``tair``, ``psurf``, optional ``g``: the SiTH potential
                          transpiration + soil evaporation (the soil-water-limited SiTH ET is the
                          land model's, :mod:`xldas.models`)
========================  ==========================================================================

The result holds ``et`` in kg m-2 s-1 (the flux unit of DESIGN.md) and the method's own
terms (``et0`` mm d-1, ``le`` and components W m-2, ``pe_canopy``/``pe_soil`` mm d-1).
:func:`annual_et` sums ``et`` to mm per year, per region on request.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xldas._xr import add_history
from xldas.errors import ForcingError, UnknownOptionError
from xldas.physics import et0_fao56, priestley_taylor, pt_jpl, sith_potential_et
from xldas.physics._et_kernels import (
    latent_heat_vaporisation,
    saturation_vapour_pressure,
)
from xldas.units import to_units

__all__ = ["METHODS", "annual_et", "evapotranspiration"]

METHODS = ("fao56", "priestley_taylor", "pt_jpl", "sith")
_ET_ATTRS = {
    "units": "kg m-2 s-1",
    "standard_name": "water_evapotranspiration_flux",
}


def _get(ds, names, what, method, default=None):
    for n in names:
        if n in ds:
            return ds[n]
    if default is not None:
        return default
    raise ForcingError(
        f"evapotranspiration(method={method!r}) needs {what}: one of the variables {list(names)}"
    )


def _c(x):
    """Temperature in degC (DataArray with units converted; numbers assumed degC)."""
    return (
        to_units(x, "degC", "temperature")
        if isinstance(x, xr.DataArray) and "units" in x.attrs
        else x
    )


def _kpa(x):
    return (
        to_units(x, "kPa", "pressure") if isinstance(x, xr.DataArray) and "units" in x.attrs else x
    )


def _vapour_pressure(ds, method):
    """Actual vapour pressure (kPa) from ``ea`` or specific humidity + pressure."""
    if "ea" in ds:
        return _kpa(ds["ea"])
    q = _get(ds, ("qair",), "humidity (ea, rh or qair)", method)
    p = _kpa(_get(ds, ("psurf",), "surface pressure psurf", method, 101.3))
    return q * p / (0.622 + 0.378 * q)


def _relative_humidity(ds, t_c, method):
    if "rh" in ds:
        rh = ds["rh"]
        rh = to_units(rh, "1", "rh") if "units" in rh.attrs else rh  # percent -> fraction
        return rh.clip(0.0, 1.0).assign_attrs(units="1")
    es = saturation_vapour_pressure.py_func(t_c)
    return (_vapour_pressure(ds, method) / es).clip(0.0, 1.0).assign_attrs(units="1")


def evapotranspiration(
    ds: xr.Dataset, method: str = "fao56", dim: str = "time", **kwargs
) -> xr.Dataset:
    """Evapotranspiration by FAO-56, Priestley–Taylor, PT-JPL or the SiTH potential split.

    Parameters
    ----------
    ds : Dataset of inputs (module docstring table).
    method : ``"fao56"``, ``"priestley_taylor"``, ``"pt_jpl"`` or ``"sith"``.
    dim : time dimension (PT-JPL derives ``fapar_max`` and ``t_opt`` along it).
    **kwargs : passed to the physics function (``alpha=``, ``timestep=``, ``wind_height_m=``
        for FAO-56 with 10 m wind, ...).

    Returns
    -------
    Dataset with ``et`` (kg m-2 s-1) and the method's terms; lazy on dask input.

    References
    ----------
    Allen et al. (1998) FAO-56; Priestley & Taylor (1972) MWR 100:81; Fisher et al. (2008)
    RSE 112:901; Zhu et al. (2019) J. Hydrol. 577:123928.

    Examples
    --------
    SCIENCE.md E21 through the dispatcher:

    >>> import xarray as xr
    >>> from xldas.retrieval import evapotranspiration
    >>> v = lambda x, u: xr.DataArray([x], dims="x", attrs={"units": u})
    >>> ds = xr.Dataset({"rn": v(400.0, "W m-2"), "tair": v(25.0, "degC"), "rh": v(0.5, "1"),
    ...                  "ndvi": v(0.6, "1"), "savi": v(0.4, "1"), "fapar_max": v(0.6, "1"),
    ...                  "t_opt": v(25.0, "degC")})
    >>> out = evapotranspiration(ds, "pt_jpl", gamma_kpa=0.066)
    >>> round(float(out.le[0]), 3)
    229.824
    """
    if method not in METHODS:
        raise UnknownOptionError("method", method, METHODS)
    out = xr.Dataset()
    if method == "fao56":
        rn = _get(ds, ("rn",), "net radiation rn", method)
        tmax = _get(ds, ("tmax", "tair"), "tmax (or tair)", method)
        tmin = _get(ds, ("tmin", "tair"), "tmin (or tair)", method)
        if "u2" in ds:
            u2 = ds["u2"]
        else:
            z = kwargs.pop("wind_height_m", 2.0)
            u2 = _get(ds, ("wind",), "wind speed u2 or wind", method) * (
                4.87 / np.log(67.8 * z - 5.42)
            )
        ea = _vapour_pressure(ds, method)
        elev = _get(ds, ("elevation",), "elevation", method, 0.0)
        g = _get(ds, ("g",), "ground heat flux", method, 0.0)
        et0 = et0_fao56(rn, tmax, tmin, u2, ea, elevation_m=elev, g_mj=g, **kwargs)
        per_day = 86400.0 if kwargs.get("timestep", "daily") == "daily" else 3600.0
        out["et0"] = et0
        out["et"] = (et0 / per_day).assign_attrs(_ET_ATTRS, long_name="FAO-56 reference ET")
    elif method == "priestley_taylor":
        rn = _get(ds, ("rn",), "net radiation rn", method)
        t = _c(_get(ds, ("tair",), "air temperature tair", method))
        p = _kpa(_get(ds, ("psurf",), "surface pressure", method, 101.3))
        g = _get(ds, ("g",), "ground heat flux", method, 0.0)
        pet = priestley_taylor(rn, t, p, g_wm2=g, **kwargs)
        out["et"] = pet.assign_attrs(_ET_ATTRS, long_name="Priestley-Taylor potential ET")
    elif method == "pt_jpl":
        rn = _get(ds, ("rn",), "net radiation rn", method)
        t = _c(_get(ds, ("tair",), "air temperature tair", method))
        rh = _relative_humidity(ds, t, method)
        ndvi = _get(ds, ("ndvi",), "NDVI", method)
        vi = ds["savi"] if "savi" in ds else (ds["evi"] if "evi" in ds else 0.45 * ndvi + 0.132)
        fapar_max, t_opt = ds.get("fapar_max"), ds.get("t_opt")
        if (fapar_max is None or t_opt is None) and dim not in ndvi.dims:
            raise ForcingError(
                f"pt_jpl needs fapar_max and t_opt, or a {dim!r} dimension to derive them"
            )
        if fapar_max is None:
            fapar_max = (1.3632 * vi - 0.048).clip(0.01, 1.0).max(dim)
        if t_opt is None:  # T_a at the time of max(R_n·T_a·SAVI/VPD)
            es = saturation_vapour_pressure.py_func(t)
            vpd = (es * (1.0 - rh)).clip(min=1e-3)
            metric = rn * t * vi / vpd
            t_opt = t.where(metric == metric.max(dim)).max(dim)
        g = _get(ds, ("g",), "ground heat flux", method, 0.0)
        le_c, le_s, le_i, le = pt_jpl(rn, t, rh, ndvi, vi, fapar_max, _c(t_opt), g_wm2=g, **kwargs)
        lam = latent_heat_vaporisation.py_func(t)
        out.update({"le_canopy": le_c, "le_soil": le_s, "le_interception": le_i, "le": le})
        out["et"] = (le / lam).assign_attrs(_ET_ATTRS, long_name="PT-JPL evapotranspiration")
    else:
        rn = _get(ds, ("rn",), "net radiation rn", method)
        lai = _get(ds, ("lai",), "leaf area index lai", method)
        t = _c(_get(ds, ("tair",), "air temperature tair", method))
        p = _kpa(_get(ds, ("psurf",), "surface pressure", method, 101.3))
        g = _get(ds, ("g",), "ground heat flux", method, 0.0)
        pec, pes = sith_potential_et(rn, lai, t, p, g_wm2=g)
        out["pe_canopy"], out["pe_soil"] = pec, pes
        out["et"] = ((pec + pes) / 86400.0).assign_attrs(
            _ET_ATTRS, long_name="SiTH potential ET (transpiration + soil evaporation)"
        )
    return add_history(out, f"evapotranspiration(method={method!r})")


def annual_et(et: xr.DataArray, dim: str = "time", regions=None) -> xr.DataArray:
    """Annual ET totals (mm yr-1) from an ET flux (kg m-2 s-1, mean over each step).

    Each value is multiplied by its step length (period-ending convention: the interval
    before the time stamp; the first step uses the second's length) and summed per year.
    With ``regions`` (regionmask Regions or a region DataArray) the result is the
    area-weighted mean per region (dim ``region``).

    Examples
    --------
    >>> import pandas as pd, xarray as xr
    >>> t = pd.date_range("2020-01-01", "2020-12-31", freq="D")
    >>> et = xr.DataArray([1.0 / 86400] * t.size, dims="time", coords={"time": t},
    ...                   attrs={"units": "kg m-2 s-1"})
    >>> float(annual_et(et)[0])
    366.0
    """
    from xldas.retrieval.irrigation import regional_mean

    et = to_units(et, "kg m-2 s-1", "et") if "units" in et.attrs else et
    step = et[dim].diff(dim) / np.timedelta64(1, "s")
    step = xr.concat([step.isel({dim: 0}).assign_coords({dim: et[dim][0]}), step], dim)
    total = (et * step).resample({dim: "YS"}).sum(min_count=1)
    total = total.assign_attrs(units="mm yr-1", long_name="annual evapotranspiration")
    if regions is not None:
        total = regional_mean(total, regions).assign_attrs(total.attrs)
    return total.rename("et_annual")
