"""Forcing adapters: CMFD and ERA5 / ERA5-Land to the land model's forcing convention.

The model forcing (DESIGN.md) is a Dataset (time, lat, lon) with ``precip`` (kg m-2 s-1,
mean over the step ending at the timestamp), ``tair`` (K), ``qair`` (kg kg-1), ``psurf``
(Pa), ``wind`` (m s-1), ``swdown`` and ``lwdown`` (W m-2). The adapters rename variables and
dimensions, convert units from the files' CF ``units`` attributes (a unit that cannot be
converted raises :class:`~xldas.errors.UnitError` naming the variable), de-accumulate the
accumulated ERA5 fields, and insert a lazy NaN check (:func:`check_forcing`). Everything
stays lazy (``open_mfdataset`` with dask chunks); ``grid=`` regrids to the model grid with
:func:`xldas.io.regrid`.

Products
--------
CMFD (China Meteorological Forcing Dataset; He et al. 2020, Sci. Data 7:25): one NetCDF
file per variable and month, named ``<var>_CMFD_..._<YYYYMM>.nc``, variables ``prec``
(mm h-1 in v1.6), ``temp`` (K), ``srad``, ``lrad`` (W m-2), ``shum`` (kg kg-1), ``wind``
(m s-1), ``pres`` (Pa); dims ``time``, ``lat``, ``lon``.

ERA5 / ERA5-Land (Hersbach et al. 2020; Muñoz-Sabater et al. 2021): ``tp`` (m), ``ssrd``,
``strd`` (J m-2) are accumulations — over the hour ending at the timestamp in ERA5 hourly
reanalysis (``product="era5"``), since 00 UTC in ERA5-Land (``product="era5-land"``, the
value at 00 UTC holding the previous day's total); ``t2m``, ``d2m`` (K) give specific
humidity with ``sp`` (Pa) through the IFS saturation formula over water; wind is
√(u10² + v10²). Coordinates ``latitude``/``longitude``/``valid_time`` become
``lat``/``lon``/``time``. GRIB files need ``cfgrib`` (``engine="cfgrib"``), which xldas does
not install: importing its ecCodes library before pyproj crashes the interpreter here.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np
import xarray as xr

from xldas._xr import add_history
from xldas.errors import ForcingError, UnknownOptionError
from xldas.units import to_units

__all__ = [
    "CMFD_VARIABLES",
    "ERA5_VARIABLES",
    "FORCING_ATTRS",
    "check_forcing",
    "from_cmfd",
    "from_era5",
    "open_cmfd",
    "open_era5",
]

FORCING_ATTRS = {
    "precip": (
        "kg m-2 s-1",
        "precipitation rate (mean over the step ending at time)",
        "precipitation_flux",
    ),
    "tair": ("K", "near-surface air temperature", "air_temperature"),
    "qair": ("kg kg-1", "near-surface specific humidity", "specific_humidity"),
    "psurf": ("Pa", "surface air pressure", "surface_air_pressure"),
    "wind": ("m s-1", "near-surface wind speed", "wind_speed"),
    "swdown": (
        "W m-2",
        "surface downwelling shortwave radiation",
        "surface_downwelling_shortwave_flux_in_air",
    ),
    "lwdown": (
        "W m-2",
        "surface downwelling longwave radiation",
        "surface_downwelling_longwave_flux_in_air",
    ),
}

#: CMFD variable -> model variable
CMFD_VARIABLES = {
    "prec": "precip",
    "temp": "tair",
    "shum": "qair",
    "pres": "psurf",
    "wind": "wind",
    "srad": "swdown",
    "lrad": "lwdown",
}

#: ERA5 short names and their long netCDF names used by some CDS downloads
ERA5_VARIABLES = {
    "tp": ("total_precipitation",),
    "ssrd": ("surface_solar_radiation_downwards",),
    "strd": ("surface_thermal_radiation_downwards",),
    "t2m": ("2m_temperature", "2t"),
    "d2m": ("2m_dewpoint_temperature", "2d"),
    "u10": ("10m_u_component_of_wind", "10u"),
    "v10": ("10m_v_component_of_wind", "10v"),
    "sp": ("surface_pressure",),
}


def _finish(da: xr.DataArray, name: str) -> xr.DataArray:
    units, long_name, std = FORCING_ATTRS[name]
    da = da.astype(np.float32) if da.dtype == np.float32 else da.astype(np.float64)
    da.attrs = {"units": units, "long_name": long_name, "standard_name": std}
    da.encoding = {}
    da.name = name
    return da


# ------------------------------------------------------------------ NaN check (lazy)
def _nan_message(name, count, idx, coords, scope=""):
    where = ", ".join(
        f"{d}={c[i]!s}" if c is not None else f"{d}[{i}]"
        for d, i, c in zip(coords[0], idx, coords[1])
    )
    return f"forcing variable {name!r} holds {count} NaN value(s){scope}; first at {where}"


def _nan_block(x, *, var_name, dim_names, coord_values, block_info=None):
    bad = np.isnan(x)
    if bad.any():
        local = np.unravel_index(int(np.flatnonzero(bad)[0]), x.shape)
        offset = [loc[0] for loc in block_info[0]["array-location"]] if block_info else [0] * x.ndim
        idx = [int(a + b) for a, b in zip(local, offset)]
        n = int(bad.sum())
        scope = " in one dask chunk" if block_info else ""
        raise ForcingError(_nan_message(var_name, n, idx, (dim_names, coord_values), scope))
    return x


def check_forcing(ds: xr.Dataset, variables: Iterable[str] | None = None) -> xr.Dataset:
    """Raise :class:`~xldas.errors.ForcingError` for NaN in forcing, naming count and place.

    NumPy-backed variables are checked at once (exact count, first location as
    coordinates). Dask-backed variables get the check inserted into their graph, so it runs
    when the data are computed and never forces a computation; the count is then that of
    the first chunk found holding NaN.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"tair": (("time", "lat"), [[280.0, np.nan]])},
    ...                 coords={"time": [0], "lat": [10.0, 10.5]})
    >>> check_forcing(ds)
    Traceback (most recent call last):
    ...
    xldas.errors.ForcingError: forcing variable 'tair' holds 1 NaN value(s); first at time=0, lat=10.5
    """
    out = ds.copy()
    names = list(variables) if variables is not None else list(ds.data_vars)
    for name in names:
        if name not in out:
            continue
        da = out[name]
        if da.dtype.kind not in "fc":
            continue
        coord_values = tuple(np.asarray(da[d].values) if d in da.coords else None for d in da.dims)
        kw = {"var_name": name, "dim_names": da.dims, "coord_values": coord_values}
        if da.chunks is None:
            _nan_block(np.asarray(da.data), **kw)
        else:
            data = da.data.map_blocks(_nan_block, dtype=da.dtype, **kw)
            out[name] = da.copy(data=data)
    return out


# ------------------------------------------------------------------ CMFD
def _cmfd_files(paths_or_dir) -> dict[str, list[str]]:
    if isinstance(paths_or_dir, str | os.PathLike) and os.path.isdir(paths_or_dir):
        files = sorted(
            glob.glob(os.path.join(os.fspath(paths_or_dir), "**", "*.nc"), recursive=True)
        )
    elif isinstance(paths_or_dir, str | os.PathLike):
        files = sorted(glob.glob(os.fspath(paths_or_dir)))
    else:
        files = sorted(os.fspath(p) for p in paths_or_dir)
    if not files:
        raise ForcingError(f"no CMFD NetCDF files found in {paths_or_dir!r}")
    out: dict[str, list[str]] = {}
    for f in files:
        m = re.match(r"([a-z]+)_", os.path.basename(f))
        if m and m.group(1) in CMFD_VARIABLES:
            out.setdefault(m.group(1), []).append(f)
    return out


def from_cmfd(ds: xr.Dataset, precip_period: str = "ending") -> xr.Dataset:
    """Convert an opened CMFD Dataset (variables ``prec``, ``temp``, ...) to model forcing.

    Parameters
    ----------
    ds : Dataset with CMFD variable names and CF ``units`` attributes.
    precip_period : ``"ending"`` if the precipitation rate labelled t is the mean over the
        interval ending at t (model convention), ``"beginning"`` to shift it one step later.
    """
    ds = _standard_dims(ds)
    out = {}
    for src, dst in CMFD_VARIABLES.items():
        if src not in ds:
            continue
        da = ds[src]
        if src == "prec" and precip_period == "beginning":
            da = da.shift(time=1)
        elif src == "prec" and precip_period != "ending":
            raise UnknownOptionError("precip_period", precip_period, ["ending", "beginning"])
        if src == "shum" and da.attrs.get("units") in ("1", "", None, "-"):
            da = da.assign_attrs(units="kg kg-1")
        out[dst] = _finish(to_units(da, FORCING_ATTRS[dst][0], name=src), dst)
    if not out:
        raise ForcingError(
            f"no CMFD variables in the dataset; expected some of {list(CMFD_VARIABLES)}"
        )
    res = xr.Dataset(out, attrs={"source": "CMFD (China Meteorological Forcing Dataset)"})
    res = check_forcing(res)
    return add_history(res, "from_cmfd: CMFD names and units to xldas forcing")


def open_cmfd(
    paths_or_dir,
    variables: Sequence[str] | None = None,
    chunks: dict | None = None,
    time: slice | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    grid=None,
    precip_period: str = "ending",
) -> xr.Dataset:
    """Open CMFD files (one per variable and month) as lazy model forcing.

    Parameters
    ----------
    paths_or_dir : a directory (searched recursively for ``<var>_*.nc``), a glob pattern,
        or a list of files.
    variables : CMFD names to read (default all seven found).
    chunks : dask chunks (default ``{"time": -1, "lat": 100, "lon": 100}`` per file).
    time : a ``slice`` of times to keep. bbox : (lon_min, lat_min, lon_max, lat_max).
    grid : target grid for :func:`xldas.io.regrid` (bilinear) — the model grid.
    precip_period : see :func:`from_cmfd`.

    Returns
    -------
    Lazy forcing Dataset (time, lat, lon) in model names and units.
    """
    files = _cmfd_files(paths_or_dir)
    wanted = list(variables) if variables is not None else list(files)
    missing = [v for v in wanted if v not in files]
    if missing:
        raise ForcingError(
            f"CMFD variable(s) {missing} not found in {paths_or_dir!r}; found {sorted(files)}"
        )
    chunks = chunks or {"time": -1, "lat": 100, "lon": 100}
    parts = []
    for v in wanted:
        d = xr.open_mfdataset(
            files[v],
            combine="by_coords",
            chunks=chunks,
            data_vars="minimal",
            coords="minimal",
            compat="override",
            join="exact",
        )
        parts.append(d[[v]])
    ds = xr.merge(parts, join="exact", compat="override")
    ds = _subset(_standard_dims(ds), time, bbox)
    out = from_cmfd(ds, precip_period=precip_period)
    if grid is not None:
        from xldas.io.regrid import regrid

        out = regrid(out, grid)
    return out


# ------------------------------------------------------------------ ERA5
def _standard_dims(ds: xr.Dataset) -> xr.Dataset:
    ren = {k: v for k, v in {"latitude": "lat", "longitude": "lon"}.items() if k in ds.variables}
    if "valid_time" in ds.dims and "time" not in ds.dims:
        ds = ds.drop_vars("time", errors="ignore")
        ren["valid_time"] = "time"
    ds = ds.rename(ren)
    return ds.drop_vars(
        [c for c in ("number", "expver", "surface", "step") if c in ds.coords and c not in ds.dims]
    )


def _subset(ds, time, bbox):
    if time is not None:
        ds = ds.sel(time=time)
    if bbox is not None:
        x0, y0, x1, y1 = bbox
        lat = ds["lat"].values
        ds = ds.sel(lat=slice(y1, y0) if lat[0] > lat[-1] else slice(y0, y1), lon=slice(x0, x1))
    return ds


def _step_seconds(time: xr.DataArray) -> float:
    t = time.values
    if t.size < 2:
        raise ForcingError("at least two time steps are needed to convert accumulations")
    d = np.diff(t).astype("timedelta64[s]").astype(np.int64)
    if np.any(d != d[0]):
        raise ForcingError("ERA5 time steps must be regular to de-accumulate")
    return float(d[0])


def _deaccumulate(acc: xr.DataArray, product: str) -> xr.DataArray:
    """Amount per step (same units as ``acc``) from ERA5 / ERA5-Land accumulations."""
    if product == "era5":
        return acc
    prev = acc.shift(time=1)
    first_of_day = acc["time"].dt.hour == 1
    step = xr.where(first_of_day, acc, acc - prev)
    return step.assign_attrs(acc.attrs)


def _find(ds, short):
    for name in (short, *ERA5_VARIABLES[short]):
        if name in ds:
            return ds[name]
    return None


def _specific_humidity(d2m_k, sp_pa):
    """Specific humidity (kg kg-1) from dew point (K) and pressure (Pa), IFS formula over water."""
    e = 611.21 * np.exp(17.502 * (d2m_k - 273.16) / (d2m_k - 32.19))
    return 0.621981 * e / (sp_pa - (1.0 - 0.621981) * e)


def from_era5(ds: xr.Dataset, product: str = "era5", require: Sequence[str] = ()) -> xr.Dataset:
    """Convert an opened ERA5 / ERA5-Land Dataset to model forcing (lazily).

    Parameters
    ----------
    ds : Dataset with ERA5 short names (``tp``, ``ssrd``, ``strd``, ``t2m``, ``d2m``,
        ``u10``, ``v10``, ``sp``) or their long CDS names, with CF ``units``.
    product : ``"era5"`` (hourly accumulations over the hour ending at the timestamp) or
        ``"era5-land"`` (accumulated since 00 UTC; de-accumulated here — the first step of
        the series, unless at 01 UTC, becomes NaN and is dropped).
    require : model variables that must be produced (else ForcingError).

    Returns
    -------
    Forcing Dataset with the model variables that the inputs allow (``precip`` from tp,
    ``swdown``/``lwdown`` from ssrd/strd, ``tair`` from t2m, ``qair`` from d2m + sp,
    ``psurf`` from sp, ``wind`` from u10 + v10).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2020-01-01T01", periods=3, freq="h")
    >>> ds = xr.Dataset({"tp": ("valid_time", [0.001, 0.0, 0.0036], {"units": "m"})},
    ...                 coords={"valid_time": t})
    >>> (from_era5(ds).precip * 3600).round(6).values.tolist()
    [1.0, 0.0, 3.6]
    """
    if product not in ("era5", "era5-land"):
        raise UnknownOptionError("product", product, ["era5", "era5-land"])
    ds = _standard_dims(ds)
    if "time" not in ds.dims:
        raise ForcingError("ERA5 data need a 'time' (or 'valid_time') dimension")
    src = {k: _find(ds, k) for k in ERA5_VARIABLES}
    out = {}
    acc_vars = {
        "tp": ("precip", "kg m-2"),
        "ssrd": ("swdown", "J m-2"),
        "strd": ("lwdown", "J m-2"),
    }
    if any(src[k] is not None for k in acc_vars):
        dt = _step_seconds(ds["time"])
        for k, (dst, unit) in acc_vars.items():
            if src[k] is None:
                continue
            amount = _deaccumulate(to_units(src[k], unit, name=k), product)
            out[dst] = _finish(amount / dt, dst)
    if src["t2m"] is not None:
        out["tair"] = _finish(to_units(src["t2m"], "K", name="t2m"), "tair")
    if src["sp"] is not None:
        out["psurf"] = _finish(to_units(src["sp"], "Pa", name="sp"), "psurf")
    if src["d2m"] is not None and src["sp"] is not None:
        q = _specific_humidity(
            to_units(src["d2m"], "K", name="d2m"), to_units(src["sp"], "Pa", name="sp")
        )
        out["qair"] = _finish(q, "qair")
    if src["u10"] is not None and src["v10"] is not None:
        u = to_units(src["u10"], "m s-1", name="u10")
        v = to_units(src["v10"], "m s-1", name="v10")
        out["wind"] = _finish(np.hypot(u, v), "wind")
    if not out:
        raise ForcingError(
            f"no ERA5 forcing variables in the dataset (found {sorted(ds.data_vars)}); "
            f"expected some of {sorted(ERA5_VARIABLES)}"
        )
    missing = [v for v in require if v not in out]
    if missing:
        raise ForcingError(
            f"ERA5 data cannot provide {missing}: their source variables are missing"
        )
    res = xr.Dataset(
        out, attrs={"source": f"ECMWF {product.upper()} (Copernicus Climate Change Service)"}
    )
    if product == "era5-land":
        first = res["time"].values[0]
        if (first.astype("datetime64[h]").astype(np.int64) % 24) != 1 and any(
            k in res for k in ("precip", "swdown", "lwdown")
        ):
            res = res.isel(time=slice(1, None))
    res = check_forcing(res)
    return add_history(res, f"from_era5(product={product!r})")


def open_era5(
    paths,
    product: str = "era5",
    chunks: dict | None = None,
    time: slice | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    grid=None,
    engine: str | None = None,
    forcing: bool = True,
    require: Sequence[str] = (),
) -> xr.Dataset:
    """Open ERA5 / ERA5-Land files (NetCDF; GRIB with ``engine="cfgrib"``) lazily.

    Parameters
    ----------
    paths : file, glob pattern or list of files (any split by variable or time).
    product : ``"era5"`` or ``"era5-land"`` (see :func:`from_era5`).
    chunks : dask chunks (default ``{"time": -1}`` per file, spatial chunks of 100).
    time, bbox : subset (bbox = lon_min, lat_min, lon_max, lat_max).
    grid : target grid for :func:`xldas.io.regrid`.
    engine : xarray backend (default: guessed from the files).
    forcing : convert to model forcing (default); ``False`` returns the opened data with
        standard dimension names only.
    require : model variables that must be produced.
    """
    if isinstance(paths, str | os.PathLike):
        files = sorted(glob.glob(os.fspath(paths)))
    else:
        files = [os.fspath(p) for p in paths]
    if not files:
        raise ForcingError(f"no ERA5 files match {paths!r}")
    kw = {}
    if engine == "cfgrib":
        kw["backend_kwargs"] = {"indexpath": ""}
    ds = xr.open_mfdataset(
        files,
        combine="by_coords",
        chunks=chunks or {},
        engine=engine,
        data_vars="minimal",
        coords="minimal",
        compat="override",
        join="outer",
        **kw,
    )
    ds = _subset(_standard_dims(ds), time, bbox)
    if not forcing:
        return ds
    out = from_era5(ds, product=product, require=require)
    if grid is not None:
        from xldas.io.regrid import regrid

        out = regrid(out, grid)
    return out
