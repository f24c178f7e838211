"""Matching stations to a model: space (grid cells), depth (layers) and time.

* :func:`match_station` — the model series at a station: the nearest grid cell, or the
  average of the cells inside a footprint radius (e.g. ~150 m for a cosmic-ray probe,
  ~36 km for a SMAP pixel), weighted by cell area.
* :func:`layer_weights` — weights that turn layered soil moisture into what a sensor at a
  depth (or over a depth range) measures.
* :func:`match_times` — pairs each reference time with the nearest valid value of
  another series within a tolerance window.

Layer-to-sensor weighting (documented choice)
---------------------------------------------
A *point* sensor at depth d (most in-situ probes: 5, 20, 60 cm) reads the soil profile
linearly interpolated between the mid-depths of the model layers: with mid-depths m_j,
for m_j ≤ d ≤ m_{j+1} the weights are w_j = (m_{j+1} − d)/(m_{j+1} − m_j) and
w_{j+1} = 1 − w_j; above the first mid-depth all weight is on the top layer, below the
last on the bottom layer. A sensor over a *range* [d₁, d₂] (e.g. a 0–5 cm retrieval, a
vertical probe, a CRNS footprint depth) weights each layer by its thickness inside the
range. Both sum to one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from xldas._xr import add_history, spatial_dims
from xldas.errors import DimensionError, ParameterRangeError

__all__ = ["layer_weights", "match_station", "match_times", "sensor_sm"]

_EARTH_KM = 6371.0


def layer_weights(depth_bottom, depth, depth_to=None) -> xr.DataArray:
    """Weights over model layers for a sensor at ``depth`` (m), or over [depth, depth_to].

    Parameters
    ----------
    depth_bottom : layer bottoms (m), increasing (DataArray on ``layer`` or array).
    depth : sensor depth (m) for a point sensor, or top of the measured range.
    depth_to : bottom of the measured range (m); None for a point sensor.

    Returns
    -------
    DataArray (layer,) of non-negative weights summing to one.

    Examples
    --------
    >>> [round(float(w), 4) for w in layer_weights([0.05, 0.3, 1.0, 2.0], 0.05)]
    [0.8333, 0.1667, 0.0, 0.0]
    >>> [round(float(w), 4) for w in layer_weights([0.05, 0.3, 1.0, 2.0], 0.0, 0.1)]
    [0.5, 0.5, 0.0, 0.0]
    """
    bottoms = np.asarray(depth_bottom, dtype=np.float64)
    if bottoms.ndim != 1 or np.any(np.diff(bottoms) <= 0) or bottoms[0] <= 0:
        raise ParameterRangeError(f"depth_bottom must increase from > 0, got {bottoms.tolist()}")
    tops = np.r_[0.0, bottoms[:-1]]
    d = float(depth)
    if d < 0:
        raise ParameterRangeError(f"sensor depth must be >= 0 m, got {d}")
    if depth_to is None:
        mid = 0.5 * (tops + bottoms)
        w = np.zeros(bottoms.size)
        if d <= mid[0]:
            w[0] = 1.0
        elif d >= mid[-1]:
            w[-1] = 1.0
        else:
            j = int(np.searchsorted(mid, d, side="right") - 1)
            f = (mid[j + 1] - d) / (mid[j + 1] - mid[j])
            w[j], w[j + 1] = f, 1.0 - f
        how = f"point sensor at {d:g} m (linear between layer mid-depths)"
    else:
        d2 = float(depth_to)
        if d2 <= d:
            raise ParameterRangeError(f"depth_to ({d2}) must exceed depth ({d})")
        overlap = np.clip(np.minimum(bottoms, d2) - np.maximum(tops, d), 0.0, None)
        if d2 > bottoms[-1]:
            overlap[-1] += d2 - max(bottoms[-1], d)
        w = overlap / overlap.sum()
        how = f"sensor range {d:g}-{d2:g} m (layer thickness inside the range)"
    coords = {"layer": np.arange(bottoms.size)}
    return xr.DataArray(
        w, dims="layer", coords=coords, name="layer_weight", attrs={"units": "1", "long_name": how}
    )


def sensor_sm(sm: xr.DataArray, depth, depth_to=None) -> xr.DataArray:
    """Soil moisture a sensor at ``depth`` (or over [depth, depth_to]) sees (lazy).

    ``sm`` carries ``layer`` with a ``depth_bottom`` coordinate.
    """
    if "layer" not in sm.dims or "depth_bottom" not in sm.coords:
        raise DimensionError("sensor_sm needs sm with a 'layer' dim and 'depth_bottom' coordinate")
    w = layer_weights(sm["depth_bottom"].values, depth, depth_to)
    w = w.assign_coords(layer=sm["layer"].values)
    out = (sm.drop_vars(["depth_bottom", "dz"], errors="ignore") * w).sum("layer")
    out.attrs = {**sm.attrs, "comment": w.attrs["long_name"]}
    return out


def _haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dphi = p2 - p1
    dl = np.deg2rad(lon2 - lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * _EARTH_KM * np.arcsin(np.sqrt(a))


def match_station(
    ds: xr.Dataset | xr.DataArray,
    lat,
    lon,
    method: str = "nearest",
    radius_km: float | None = None,
    station_dim: str = "station",
) -> xr.Dataset | xr.DataArray:
    """Model values at stations, lazily.

    Parameters
    ----------
    ds : gridded model output (lat/lon dims).
    lat, lon : station coordinates (scalars or 1-D arrays, degrees).
    method : ``"nearest"`` (the cell whose centre is closest, great-circle) or
        ``"footprint"`` (area-weighted mean of the cells with centres within
        ``radius_km``; the nearest cell when none is).
    radius_km : footprint radius (km) for ``"footprint"``.
    station_dim : name of the new dimension (kept when arrays are given).

    Returns
    -------
    Same type with the spatial dims replaced by ``station_dim`` (or dropped for scalars),
    and ``station_lat``/``station_lon``/``distance_km`` coordinates.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> g = xr.DataArray(np.arange(12.0).reshape(3, 4), dims=("lat", "lon"),
    ...                  coords={"lat": [40.0, 40.1, 40.2], "lon": [100.0, 100.1, 100.2, 100.3]})
    >>> float(match_station(g, 40.09, 100.21))
    6.0
    >>> round(float(match_station(g, 40.1, 100.15, method="footprint", radius_km=6)), 3)
    5.5
    """
    ydim, xdim = spatial_dims(ds)
    if (ydim, xdim) != ("lat", "lon"):
        raise DimensionError("match_station needs a lat/lon grid")
    scalar = np.ndim(lat) == 0
    slat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    slon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    glat = ds["lat"].values
    glon = ds["lon"].values
    dist = _haversine_km(
        slat[:, None, None], slon[:, None, None], glat[None, :, None], glon[None, None, :]
    )  # (station, lat, lon)
    flat = dist.reshape(dist.shape[0], -1)
    nearest = flat.argmin(axis=1)
    if method == "nearest":
        w = np.zeros_like(flat)
        w[np.arange(flat.shape[0]), nearest] = 1.0
    elif method == "footprint":
        if radius_km is None or radius_km <= 0:
            raise ParameterRangeError("footprint matching needs radius_km > 0")
        area = np.cos(np.deg2rad(glat))[:, None] * np.ones(glon.size)
        w = (flat <= radius_km) * area.ravel()[None, :]
        none = w.sum(1) == 0
        w[none, nearest[none]] = 1.0
        w = w / w.sum(1, keepdims=True)
    else:
        from xldas.errors import UnknownOptionError

        raise UnknownOptionError("station matching method", method, ("nearest", "footprint"))
    weights = xr.DataArray(
        w.reshape(dist.shape), dims=(station_dim, "lat", "lon"), coords={"lat": glat, "lon": glon}
    )
    if ds.chunks:
        weights = weights.chunk({"lat": ds.chunksizes["lat"], "lon": ds.chunksizes["lon"]})
    out = ds.weighted(weights).mean(("lat", "lon")) if method == "footprint" else None
    if out is None:
        iy, ix = np.unravel_index(nearest, dist.shape[1:])
        out = ds.isel(
            lat=xr.DataArray(iy, dims=station_dim), lon=xr.DataArray(ix, dims=station_dim)
        )
        out = out.drop_vars(["lat", "lon"], errors="ignore")
    out = out.assign_coords(
        station_lat=(station_dim, slat),
        station_lon=(station_dim, slon),
        distance_km=(station_dim, flat[np.arange(flat.shape[0]), nearest]),
    )
    if scalar:
        out = out.isel({station_dim: 0})
    return add_history(
        out, f"xldas.validation.match_station(method={method!r}, radius_km={radius_km})"
    )


def match_times(
    ref: xr.DataArray | xr.Dataset,
    other: xr.DataArray | xr.Dataset,
    tolerance="1h",
    dim: str = "time",
) -> xr.DataArray | xr.Dataset:
    """``other`` at the times of ``ref``: nearest valid value within ``tolerance``.

    Parameters
    ----------
    ref : object whose ``dim`` coordinate gives the target times.
    other : series to match (NaN values are not candidates).
    tolerance : largest allowed time difference (pandas offset string or timedelta).
    dim : time dimension.

    Returns
    -------
    ``other`` on ``ref``'s times (NaN where nothing lies within the tolerance), with a
    ``time_offset`` coordinate (matched minus target time).

    Examples
    --------
    >>> import pandas as pd, xarray as xr
    >>> a = xr.DataArray([1.0, 2.0, 3.0], dims="time",
    ...                  coords={"time": pd.to_datetime(["2020-01-01T00:00", "2020-01-01T06:00", "2020-01-02T00:00"])})
    >>> b = xr.DataArray([10.0, 20.0], dims="time",
    ...                  coords={"time": pd.to_datetime(["2020-01-01T00:20", "2020-01-01T12:00"])})
    >>> match_times(a, b, tolerance="1h").values.tolist()
    [10.0, nan, nan]
    """
    tol = pd.Timedelta(tolerance)
    target = pd.DatetimeIndex(ref[dim].values)
    if isinstance(other, xr.Dataset):
        return xr.Dataset({v: match_times(ref, other[v], tolerance, dim) for v in other.data_vars})
    valid_any = other.notnull()
    for d in other.dims:
        if d != dim:
            valid_any = valid_any.any(d)
    src = other.isel({dim: np.flatnonzero(np.asarray(valid_any))})
    if src.sizes[dim] == 0:
        out = other.isel({dim: np.zeros(target.size, dtype=int)}) * np.nan
        return out.assign_coords({dim: target})
    st = pd.DatetimeIndex(src[dim].values)
    idx = st.get_indexer(target, method="nearest", tolerance=tol)
    ok = idx >= 0
    picked = src.isel({dim: np.where(ok, idx, 0)})
    offset = np.where(ok, (st.values[np.where(ok, idx, 0)] - target.values), np.timedelta64("NaT"))
    out = picked.where(xr.DataArray(ok, dims=dim)).assign_coords(
        {dim: target, "time_offset": (dim, offset)}
    )
    out.attrs = dict(other.attrs)
    return add_history(out, f"xldas.validation.match_times(tolerance={tolerance!r})")
