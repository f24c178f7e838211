"""Day-of-year climatologies and anomalies, lazily (SCIENCE.md §D14, anomaly R).

The climatology of a series is the multi-year mean for each day of the year, smoothed by
a centred moving window of ``window`` days that wraps around the turn of the year
(``window=35`` follows common practice for soil moisture, e.g. Albergel et al. 2013;
pytesmo's ``moving_average`` climatology). Sub-daily data are grouped by their calendar
day of year. With fewer than one full year of data the climatology degenerates into a
centred ``window``-day moving mean of the available days, which is still a meaningful
"slow" component to remove.

All work is done with xarray's ``groupby``/``rolling`` (flox on dask), so it stays lazy.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xldas._xr import add_history
from xldas.errors import DimensionError, ParameterRangeError

__all__ = ["anomalies", "climatology"]

_DOY = 366


def _check_time(da: xr.DataArray, dim: str) -> None:
    if dim not in da.dims:
        raise DimensionError(f"climatology needs a {dim!r} dimension; dims are {tuple(da.dims)}")
    if dim not in da.coords or not np.issubdtype(da[dim].dtype, np.datetime64):
        raise DimensionError(
            f"climatology needs a datetime64 {dim!r} coordinate (day of year); "
            f"got {da[dim].dtype if dim in da.coords else 'no coordinate'}"
        )


def climatology(da: xr.DataArray, window: int = 35, dim: str = "time") -> xr.DataArray:
    """Smoothed day-of-year climatology of ``da``.

    Parameters
    ----------
    da : DataArray with a datetime64 ``dim`` coordinate; NaN = missing.
    window : width of the centred moving window in days (odd numbers are symmetric),
        applied circularly over the 366 days of the year; 1 disables smoothing.
    dim : time dimension.

    Returns
    -------
    DataArray with dim ``dayofyear`` (1..366) in place of ``dim``, same units. Days of the
    year with no data inside the window are NaN.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2001-01-01", "2003-12-31", freq="D")
    >>> x = xr.DataArray(np.sin(2 * np.pi * t.dayofyear / 365.25), coords={"time": t})
    >>> clim = climatology(x, window=5)
    >>> clim.sizes["dayofyear"], round(float(clim.sel(dayofyear=91)), 2)
    (366, 1.0)
    """
    _check_time(da, dim)
    if int(window) < 1:
        raise ParameterRangeError(f"climatology window must be >= 1 day, got {window}")
    window = int(window)
    doy = da[dim].dt.dayofyear.rename("dayofyear")
    valid = da.notnull()
    total = da.fillna(0.0).groupby(doy).sum(dim)
    count = valid.astype(np.float64).groupby(doy).sum(dim)
    full = np.arange(1, _DOY + 1)
    total = total.reindex(dayofyear=full, fill_value=0.0)
    count = count.reindex(dayofyear=full, fill_value=0.0)
    if window > 1:
        half = window // 2
        pad = {"dayofyear": (half, window - 1 - half)}
        total = total.pad(pad, mode="wrap").rolling(dayofyear=window).sum()
        count = count.pad(pad, mode="wrap").rolling(dayofyear=window).sum()
        total = total.isel(dayofyear=slice(window - 1, window - 1 + _DOY))
        count = count.isel(dayofyear=slice(window - 1, window - 1 + _DOY))
        total = total.assign_coords(dayofyear=full)
        count = count.assign_coords(dayofyear=full)
    clim = total / count.where(count > 0)
    clim.name = da.name
    clim.attrs = {
        **{k: v for k, v in da.attrs.items() if k in ("units", "standard_name")},
        "long_name": f"day-of-year climatology ({window}-day moving window)",
        "cell_methods": f"{dim}: mean within years (window {window} days) over years",
    }
    return add_history(clim, f"xldas.validation.climatology(window={window})")


def anomalies(
    da: xr.DataArray, window: int = 35, dim: str = "time", clim: xr.DataArray | None = None
) -> xr.DataArray:
    """``da`` minus its day-of-year climatology (see :func:`climatology`).

    Parameters
    ----------
    da : DataArray with a datetime64 ``dim`` coordinate.
    window : moving-window width in days for the climatology.
    dim : time dimension.
    clim : a precomputed climatology (dim ``dayofyear``) to remove instead.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2001-01-01", "2002-12-31", freq="D")
    >>> x = xr.DataArray(np.ones(t.size), coords={"time": t})
    >>> float(abs(anomalies(x)).max())
    0.0
    """
    _check_time(da, dim)
    if clim is None:
        clim = climatology(da, window=window, dim=dim)
    seasonal = clim.sel(dayofyear=da[dim].dt.dayofyear).drop_vars("dayofyear")
    out = da - seasonal
    out.attrs = {**da.attrs, "long_name": f"anomaly of {da.name or 'variable'} from climatology"}
    out.name = da.name
    return add_history(out, f"xldas.validation.anomalies(window={window})")
