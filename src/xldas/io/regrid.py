"""Regridding between regular grids, lazily, with two interchangeable engines.

``engine="xesmf"`` (ESMF weights; Pangeo hubs get ESMF from conda-forge) is used when
``import xesmf`` works, ``engine="xarray-regrid"`` (pure Python, on PyPI) otherwise; pass
``engine=`` to force one. Both take the same arguments and return the same thing: a lazy
object on the target grid with the input's attributes plus a ``history`` line.

Methods
-------
``"bilinear"``
    Linear interpolation in each spatial dim; reproduces a field that is linear in
    lat/lon exactly. Target points outside the source grid are NaN.
``"conservative"``
    First-order conservative remapping: each target cell is the area-weighted mean of the
    source cells it overlaps (spherical cell areas on geographic grids), so the
    area-weighted mean over a region tiled by target cells is preserved. NaN source cells
    are skipped; a target cell whose NaN-covered area fraction exceeds ``nan_threshold``
    becomes NaN.
``"nearest"``
    Nearest source cell centre.

Rotated-pole (``rlat``/``rlon``) and curvilinear (2-D ``lat``/``lon``) sources or targets
are handed to :func:`xldas.io.regrid_curvilinear.regrid_curvilinear` (same methods).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from xldas._xr import add_history, spatial_dims
from xldas.errors import DimensionError, UnknownOptionError

__all__ = ["ENGINES", "METHODS", "grid", "regrid"]

log = logging.getLogger(__name__)

METHODS = ("bilinear", "conservative", "nearest")
ENGINES = ("xesmf", "xarray-regrid")

_CF_COORDS = {
    "lat": {
        "units": "degrees_north",
        "standard_name": "latitude",
        "long_name": "latitude",
        "axis": "Y",
    },
    "lon": {
        "units": "degrees_east",
        "standard_name": "longitude",
        "long_name": "longitude",
        "axis": "X",
    },
}


def grid(
    bbox: Sequence[float],
    resolution: float | Sequence[float],
    dims: tuple[str, str] = ("lat", "lon"),
) -> xr.Dataset:
    """A regular target grid of cell centres covering ``bbox``.

    Parameters
    ----------
    bbox : (west, south, east, north)
        Outer edges of the grid (degrees for ``lat``/``lon``, CRS units for ``y``/``x``).
    resolution : float or (row, column) pair
        Cell size; the extent must hold a whole number of cells (to 1e-6 of a cell).
    dims : ("lat", "lon") or ("y", "x")
        Names of the row and column dims. Rows ascend (south to north).

    Returns
    -------
    xarray.Dataset
        Coordinates only (cell centres, CF attributes) plus ``<dim>_bounds`` edge
        coordinates named by the ``bounds`` attribute.

    Examples
    --------
    >>> from xldas.io import grid
    >>> g = grid((100.0, 38.0, 101.0, 39.0), 0.25)
    >>> g.lat.values
    array([38.125, 38.375, 38.625, 38.875])
    """
    west, south, east, north = (float(v) for v in bbox)
    dr, dc = (float(resolution),) * 2 if np.ndim(resolution) == 0 else map(float, resolution)
    if not (east > west and north > south and dr > 0 and dc > 0):
        raise ValueError(f"invalid grid: bbox={tuple(bbox)} resolution={resolution}")
    coords = {}
    for dim, lo, hi, step in ((dims[0], south, north, dr), (dims[1], west, east, dc)):
        n = (hi - lo) / step
        if abs(n - round(n)) > 1e-6:
            raise ValueError(
                f"grid extent {lo}..{hi} along {dim!r} is not a whole number of {step} cells"
            )
        n = round(n)
        centres = lo + step * (np.arange(n) + 0.5)
        edges = lo + step * np.arange(n + 1)
        attrs = dict(_CF_COORDS.get(dim, {"axis": "Y" if dim == dims[0] else "X"}))
        attrs["bounds"] = f"{dim}_bounds"
        coords[dim] = xr.Variable(dim, centres, attrs)
        bounds = np.stack([edges[:-1], edges[1:]], axis=-1)
        coords[f"{dim}_bounds"] = xr.Variable((dim, "bounds"), bounds)
    return xr.Dataset(coords=coords)


def _target_grid(target: Any, dims: tuple[str, str]) -> xr.Dataset:
    if isinstance(target, xr.DataArray | xr.Dataset):
        missing = [d for d in dims if d not in target.coords]
        if missing:
            raise DimensionError(
                f"regrid target has no coordinate(s) {missing}; it needs {list(dims)} like the source"
            )
        return xr.Dataset(coords={d: target[d] for d in dims})
    if isinstance(target, tuple | list) and len(target) == 2:
        bbox, resolution = target
        return grid(bbox, resolution, dims=dims)
    raise TypeError(
        "regrid target must be a Dataset/DataArray with the grid's coordinates or a "
        f"(bbox, resolution) pair, got {type(target).__name__}"
    )


def _choose_engine(engine: str | None) -> str:
    if engine is None:
        engine = "xesmf" if importlib.util.find_spec("xesmf") is not None else "xarray-regrid"
        if engine == "xesmf":
            try:
                import xesmf  # noqa: F401  (needs ESMF/esmpy, which may be broken)
            except ImportError:
                engine = "xarray-regrid"
        log.debug("regrid engine: %s", engine)
        return engine
    if engine not in ENGINES:
        raise UnknownOptionError("regrid engine", engine, ENGINES)
    return engine


def _edges(centres: np.ndarray) -> np.ndarray:
    mid = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def _xesmf(ds, target: xr.Dataset, method: str, dims, nan_threshold: float):
    try:
        import xesmf as xe
    except ImportError as err:
        raise ModuleNotFoundError(
            f"engine='xesmf' needs xESMF and ESMF ({err}); install them from conda-forge "
            "(`conda install -c conda-forge xesmf`) or use engine='xarray-regrid'"
        ) from err
    row, col = dims
    src = ds.rename({row: "lat", col: "lon"}) if dims != ("lat", "lon") else ds
    dst = target.rename({row: "lat", col: "lon"}) if dims != ("lat", "lon") else target
    dst = xr.Dataset(coords={"lat": dst["lat"], "lon": dst["lon"]})
    if method == "conservative":
        src = src.assign_coords(
            lat_b=("lat_b", _edges(src["lat"].values)), lon_b=("lon_b", _edges(src["lon"].values))
        )
        dst = dst.assign_coords(
            lat_b=("lat_b", _edges(dst["lat"].values)), lon_b=("lon_b", _edges(dst["lon"].values))
        )
    xe_method = {"bilinear": "bilinear", "conservative": "conservative", "nearest": "nearest_s2d"}[
        method
    ]
    regridder = xe.Regridder(src, dst, xe_method, unmapped_to_nan=True)
    out = regridder(src, keep_attrs=True, skipna=True, na_thres=nan_threshold)
    out = out.drop_vars(["lat_b", "lon_b"], errors="ignore")
    return out.rename({"lat": row, "lon": col}) if dims != ("lat", "lon") else out


def _xarray_regrid(ds, target: xr.Dataset, method: str, dims, nan_threshold: float):
    import xarray_regrid  # noqa: F401  (registers the .regrid accessor)

    time_dim = "time" if "time" in ds.dims else None
    if method == "bilinear":
        out = ds.regrid.linear(target, time_dim=time_dim)
    elif method == "nearest":
        out = ds.regrid.nearest(target, time_dim=time_dim)
    else:
        out = ds.regrid.conservative(
            target,
            latitude_coord=dims[0] if dims[0] == "lat" else None,
            time_dim=time_dim,
            skipna=True,
            nan_threshold=nan_threshold,
        )
    return out


def _curvilinear(obj: Any) -> bool:
    """True for a rotated-pole grid or one whose ``lat``/``lon`` are 2-D."""
    if not isinstance(obj, xr.DataArray | xr.Dataset):
        return False
    if "rlat" in obj.dims and "rlon" in obj.dims:
        return True
    return any(c in obj.coords and obj[c].ndim == 2 for c in ("lat", "lon"))


def regrid(
    ds: xr.Dataset | xr.DataArray,
    target: xr.Dataset | xr.DataArray | tuple,
    method: str = "bilinear",
    engine: str | None = None,
    nan_threshold: float = 0.5,
) -> xr.Dataset | xr.DataArray:
    """Regrid ``ds`` onto ``target``'s grid, lazily.

    Parameters
    ----------
    ds : Dataset or DataArray
        Data on a regular grid with dims ``lat``/``lon`` (or ``y``/``x``) and 1-D
        coordinates of the same names; other dims (``time``, ``member`` ...) are kept.
    target : Dataset, DataArray or (bbox, resolution)
        The target grid: an object with the same spatial coordinate names, or a
        ``((west, south, east, north), resolution)`` pair passed to :func:`grid`.
    method : {"bilinear", "conservative", "nearest"}
        See the module docstring.
    engine : {None, "xesmf", "xarray-regrid"}
        None picks xESMF when it imports, xarray-regrid otherwise.
    nan_threshold : float in [0, 1]
        Conservative method only: largest NaN-covered fraction of a target cell's area
        that still gives a value (renormalised over the valid part); 0 = any NaN input
        makes the cell NaN, 1 = a single valid input is enough.

    Returns
    -------
    Dataset or DataArray
        On the target grid, dask-backed if ``ds`` was, with the input's attributes, the
        target's coordinate attributes and a ``history`` line. Nothing is computed.

    Raises
    ------
    UnknownOptionError
        Unknown ``method`` or ``engine``.
    DimensionError
        ``ds`` or ``target`` lacks the spatial coordinates.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from xldas.io import grid, regrid
    >>> src = grid((100.0, 38.0, 101.0, 39.0), 0.1)
    >>> field = (2 * src.lat + 3 * src.lon).rename("f").chunk()
    >>> out = regrid(field, ((100.2, 38.2, 100.8, 38.8), 0.2), method="bilinear")
    >>> bool(np.allclose(out, 2 * out.lat + 3 * out.lon))
    True
    """
    if method not in METHODS:
        raise UnknownOptionError("regrid method", method, METHODS)
    if not 0.0 <= float(nan_threshold) <= 1.0:
        raise ValueError(f"nan_threshold must lie in [0, 1], got {nan_threshold}")
    if _curvilinear(ds) or _curvilinear(target):
        # rotated-pole / 2-D lat-lon grids: sparse weights (xldas.io.regrid_curvilinear)
        from xldas.io.regrid_curvilinear import regrid_curvilinear

        return regrid_curvilinear(ds, target, method, None, nan_threshold)
    engine = _choose_engine(engine)
    dims = spatial_dims(ds)
    for d in dims:
        if d not in ds.coords:
            raise DimensionError(f"regrid needs a 1-D coordinate {d!r} on the input")
    target_grid = _target_grid(target, dims)

    name = None
    obj = ds
    if isinstance(ds, xr.DataArray):
        name = ds.name
        obj = ds.to_dataset(name="__regrid__" if name is None else name)
    drop = [v for v in obj.coords if v not in obj.dims and set(dims) & set(obj[v].dims)]
    obj = obj.drop_vars(drop)

    run = _xesmf if engine == "xesmf" else _xarray_regrid
    out = run(obj, target_grid, method, dims, float(nan_threshold))
    out = out.assign_coords({d: target_grid[d] for d in dims})
    out.attrs = dict(obj.attrs)
    for v in out.data_vars:
        out[v].attrs = dict(obj[v].attrs)
    res = [
        float(np.median(np.diff(target_grid[d].values))) if target_grid.sizes[d] > 1 else None
        for d in dims
    ]
    add_history(out, f"regrid(method={method!r}, engine={engine!r}) to {dims} grid, cell {res}")
    if isinstance(ds, xr.DataArray):
        da = out["__regrid__" if name is None else name]
        da.attrs["history"] = out.attrs["history"]
        return da.rename(name)
    return out
