"""Regridding onto and from curvilinear grids: rotated pole (EURO-CORDEX), EASE-Grid 2.0, other
projected grids and regular lat/lon, lazily, with sparse weights computed once.

Every grid xldas meets is rectilinear *in its own coordinate reference system*: regular
``lat``/``lon`` in EPSG:4326, ``rlat``/``rlon`` in the rotated-pole CRS named by a CF
``rotated_latitude_longitude`` grid mapping, ``y``/``x`` in a projected CRS (EASE-Grid 2.0
EPSG:6933, UTM ...). A :class:`CurvilinearRegridder` takes two such grids and builds a sparse
weight matrix (target cells × source cells) once; calling it applies the weights lazily
(one ``apply_kernel`` call, dask-parallel over the other dims).

Engines
-------
``"xesmf"``
    ESMF weights through xESMF (2-D ``lat``/``lon`` and corner bounds), used when
    ``import xesmf`` works (conda-forge; there is no ESMF on PyPI).
``"pyproj-shapely"``
    What PyPI offers: coordinates are transformed with pyproj (PROJ), cell polygons are
    intersected with shapely 2 (GEOS, vectorised, STR-tree search) and the weights are a
    scipy.sparse matrix. pyresample (PyPI) was considered; its bilinear resampler works on
    swath definitions and it has no conservative method, so the weights are built here from
    the two libraries above. Written here: the bilinear weight formula in the source's
    native coordinates and the overlap-area normalisation.

Methods
-------
``"bilinear"``
    Target cell centres are transformed into the source's native CRS and interpolated
    bilinearly between the four surrounding source centres; a field that is linear in the
    source's native coordinates is reproduced exactly. Targets outside the source are NaN;
    a NaN among the four neighbours gives NaN.
``"conservative"``
    First-order conservative: each target cell is the overlap-area-weighted mean of the
    source cells it intersects. Source cell polygons (corners transformed, edges densified
    with 4 points per side) are intersected with the target's rectangular cells in the
    target's native CRS; areas there are m² for projected CRSs and deg²·cos(native latitude)
    for geographic/rotated ones (the spherical area element). Hence, over a region tiled by
    target cells, the target-area-weighted mean equals the source-area-weighted mean
    (``nan_threshold`` as in :func:`xldas.io.regrid`).
``"nearest"``
    Source cell whose centre is closest (in the source's native coordinates) to the
    target centre; targets outside the source are NaN.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from xldas._xr import add_history, apply_kernel
from xldas.errors import DimensionError, UnknownOptionError

__all__ = ["ENGINES", "METHODS", "CurvilinearRegridder", "grid_info", "regrid_curvilinear"]

log = logging.getLogger(__name__)

METHODS = ("bilinear", "conservative", "nearest")
ENGINES = ("xesmf", "pyproj-shapely")
_PAIRS = (("rlat", "rlon"), ("lat", "lon"), ("y", "x"))


@dataclass(frozen=True)
class GridInfo:
    """A grid rectilinear in its native CRS: dims, 1-D native coords, CRS (WKT)."""

    dims: tuple[str, str]
    row: np.ndarray  # native row coordinate (lat, rlat or y)
    col: np.ndarray  # native column coordinate (lon, rlon or x)
    crs: str
    geographic: bool  # native units are degrees (area element deg^2 cos(lat))


def _crs_of(obj: xr.Dataset | xr.DataArray, dims: tuple[str, str]) -> str:
    import pyproj

    if dims == ("lat", "lon"):
        return "EPSG:4326"
    names = [obj.attrs.get("grid_mapping")]
    if isinstance(obj, xr.Dataset):
        names += [obj[v].attrs.get("grid_mapping") for v in obj.data_vars]
    names += ["rotated_pole", "spatial_ref", "crs"]
    for name in names:
        if name and name in obj.variables if isinstance(obj, xr.Dataset) else name in obj.coords:
            attrs = obj[name].attrs
            if "grid_mapping_name" in attrs or "crs_wkt" in attrs or "spatial_ref" in attrs:
                return pyproj.CRS.from_cf(dict(attrs)).to_wkt()
    crs = obj.attrs.get("crs")
    if crs:
        return pyproj.CRS.from_user_input(crs).to_wkt()
    raise DimensionError(
        f"grid with dims {dims} has no CRS: give a CF grid-mapping variable (e.g. "
        "'rotated_pole' with grid_mapping_name) or a 'crs' attribute"
    )


def grid_info(obj: xr.Dataset | xr.DataArray) -> GridInfo:
    """Describe ``obj``'s grid: dims, native 1-D coordinates and CRS.

    Dims are searched in the order (rlat, rlon), (lat, lon), (y, x); each needs a 1-D
    coordinate of the same name. Rotated and projected grids need a CF grid-mapping
    variable (``rotated_pole``, ``spatial_ref``, ``crs``) or a ``crs`` attribute.
    """
    for pair in _PAIRS:
        if all(d in obj.dims for d in pair):
            for d in pair:
                if d not in obj.coords or obj[d].ndim != 1:
                    raise DimensionError(f"grid dim {d!r} needs a 1-D coordinate of that name")
            crs = _crs_of(obj, pair)
            import pyproj

            geographic = pyproj.CRS.from_user_input(crs).is_geographic
            return GridInfo(
                pair,
                np.asarray(obj[pair[0]].values, float),
                np.asarray(obj[pair[1]].values, float),
                crs,
                geographic,
            )
    raise DimensionError(
        f"no grid dims in {tuple(obj.dims)}; expected one of {[list(p) for p in _PAIRS]}"
    )


def _transform(src_crs: str, dst_crs: str, x, y):
    from xldas.io.grids import _transformer

    if src_crs == dst_crs:
        return np.asarray(x, float), np.asarray(y, float)
    return _transformer(src_crs, dst_crs).transform(np.asarray(x, float), np.asarray(y, float))


def _edges(c: np.ndarray) -> np.ndarray:
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])


def _frac_index(coord: np.ndarray, value: np.ndarray):
    """Fractional index of ``value`` in a monotonic 1-D ``coord`` (NaN outside)."""
    asc = coord[-1] >= coord[0]
    c = coord if asc else coord[::-1]
    i = np.searchsorted(c, value, side="right") - 1
    i = np.clip(i, 0, max(c.size - 2, 0))
    if c.size == 1:
        f = np.where(np.isclose(value, c[0]), 0.0, np.nan)
        return np.zeros_like(i), f
    f = (value - c[i]) / (c[i + 1] - c[i])
    eps = 1e-9
    f = np.where((f < -eps) | (f > 1 + eps) | ~np.isfinite(value), np.nan, np.clip(f, 0, 1))
    if not asc:
        i, f = c.size - 2 - i, 1.0 - f
    return i, f


def _bilinear_weights(src: GridInfo, tgt: GridInfo):
    import scipy.sparse as sp

    TC, TR = np.meshgrid(tgt.col, tgt.row)
    x, y = _transform(tgt.crs, src.crs, TC.ravel(), TR.ravel())
    if src.geographic and src.col.max() > 180 and np.nanmin(x) < 0:
        x = np.where(x < 0, x + 360.0, x)
    ir, fr = _frac_index(src.row, y)
    ic, fc = _frac_index(src.col, x)
    ok = np.isfinite(fr) & np.isfinite(fc)
    nc = src.col.size
    rows, cols, vals = [], [], []
    t = np.flatnonzero(ok)
    for dr, dc, w in (
        (0, 0, (1 - fr) * (1 - fc)),
        (0, 1, (1 - fr) * fc),
        (1, 0, fr * (1 - fc)),
        (1, 1, fr * fc),
    ):
        r = np.minimum(ir[t] + dr, src.row.size - 1)
        c = np.minimum(ic[t] + dc, nc - 1)
        rows.append(t)
        cols.append(r * nc + c)
        vals.append(w[t])
    W = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(tgt.row.size * tgt.col.size, src.row.size * nc),
    ).tocsr()
    W.eliminate_zeros()
    return W


def _nearest_weights(src: GridInfo, tgt: GridInfo):
    import scipy.sparse as sp

    TC, TR = np.meshgrid(tgt.col, tgt.row)
    x, y = _transform(tgt.crs, src.crs, TC.ravel(), TR.ravel())
    ir, fr = _frac_index(src.row, y)
    ic, fc = _frac_index(src.col, x)
    ok = np.isfinite(fr) & np.isfinite(fc)
    r = np.minimum(ir + (np.nan_to_num(fr) >= 0.5), src.row.size - 1)
    c = np.minimum(ic + (np.nan_to_num(fc) >= 0.5), src.col.size - 1)
    t = np.flatnonzero(ok)
    return sp.csr_matrix(
        (np.ones(t.size), (t, r[t] * src.col.size + c[t])),
        shape=(tgt.row.size * tgt.col.size, src.row.size * src.col.size),
    )


def _cell_polygons(g: GridInfo, to_crs: str, densify: int = 4):
    """Source cell polygons (corners densified along the edges) in ``to_crs``."""
    import shapely

    er, ec = _edges(g.row), _edges(g.col)
    t = np.linspace(0.0, 1.0, densify + 1)[:-1]
    r0, r1 = er[:-1], er[1:]
    c0, c1 = ec[:-1], ec[1:]
    R0, C0 = np.meshgrid(r0, c0, indexing="ij")
    R1, C1 = np.meshgrid(r1, c1, indexing="ij")
    # ring: south edge (c0->c1 at r0), east (r0->r1 at c1), north (c1->c0 at r1), west
    ring_c = np.concatenate(
        [
            C0[..., None] + (C1 - C0)[..., None] * t,
            np.broadcast_to(C1[..., None], C1.shape + t.shape),
            C1[..., None] + (C0 - C1)[..., None] * t,
            np.broadcast_to(C0[..., None], C0.shape + t.shape),
        ],
        axis=-1,
    )
    ring_r = np.concatenate(
        [
            np.broadcast_to(R0[..., None], R0.shape + t.shape),
            R0[..., None] + (R1 - R0)[..., None] * t,
            np.broadcast_to(R1[..., None], R1.shape + t.shape),
            R1[..., None] + (R0 - R1)[..., None] * t,
        ],
        axis=-1,
    )
    x, y = _transform(g.crs, to_crs, ring_c, ring_r)
    coords = np.stack([x, y], axis=-1).reshape(-1, ring_c.shape[-1], 2)
    polys = shapely.polygons(coords)
    ok = np.isfinite(coords).all(axis=(1, 2))
    return polys, ok


def _conservative_weights(src: GridInfo, tgt: GridInfo):
    import scipy.sparse as sp
    import shapely

    spolys, sok = _cell_polygons(src, tgt.crs)
    er, ec = _edges(tgt.row), _edges(tgt.col)
    R0, C0 = np.meshgrid(er[:-1], ec[:-1], indexing="ij")
    R1, C1 = np.meshgrid(er[1:], ec[1:], indexing="ij")
    tboxes = shapely.box(
        np.minimum(C0, C1).ravel(),
        np.minimum(R0, R1).ravel(),
        np.maximum(C0, C1).ravel(),
        np.maximum(R0, R1).ravel(),
    )
    sidx = np.flatnonzero(sok & shapely.is_valid(spolys))
    tree = shapely.STRtree(spolys[sidx])
    ti, sj = tree.query(tboxes, predicate="intersects")
    sj = sidx[sj]
    inter = shapely.intersection(tboxes[ti], spolys[sj])
    area = shapely.area(inter)
    if tgt.geographic:
        cy = shapely.get_y(shapely.centroid(inter))
        area = area * np.cos(np.deg2rad(np.nan_to_num(cy)))
    keep = area > 0
    W = sp.csr_matrix(
        (area[keep], (ti[keep], sj[keep])),
        shape=(tgt.row.size * tgt.col.size, src.row.size * src.col.size),
    )
    # the full area of each target cell (to measure how much of it the sources cover)
    full = shapely.area(tboxes)
    if tgt.geographic:
        full = full * np.cos(np.deg2rad(((R0 + R1) / 2).ravel()))
    return W, full


def _apply_weights(x, W=None, rowsum=None, nan_threshold=0.0, out_shape=None):
    """Kernel: ``x`` (..., ny, nx) → (..., *out_shape) = normalised ``W @ x`` with NaN skipping."""
    lead = x.shape[:-2]
    flat = x.reshape(-1, x.shape[-2] * x.shape[-1]).T.astype(np.float64)
    valid = np.isfinite(flat)
    num = W @ np.where(valid, flat, 0.0)
    den = W @ valid.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
        need = (1.0 - nan_threshold) * rowsum[:, None]
        out = np.where((den > 0) & (den >= need - 1e-3 * rowsum[:, None]), out, np.nan)
    return out.T.reshape(*lead, *out_shape).astype(np.result_type(x.dtype, np.float32))


class CurvilinearRegridder:
    """Weights from one grid to another, computed once, applied lazily (like xESMF's
    ``Regridder``).

    Parameters
    ----------
    source, target : Dataset or DataArray
        Objects carrying the grids (see :func:`grid_info`); only coordinates are read.
    method : {"bilinear", "conservative", "nearest"}
    engine : {None, "xesmf", "pyproj-shapely"}
        None: xESMF when it imports, else pyproj + shapely (module docstring).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from xldas.io.grids import eurocordex
    >>> from xldas.io.regrid import grid
    >>> tgt = eurocordex("EUR-44", subdomain=(5.0, 45.0, 10.0, 50.0))
    >>> src = grid((0.0, 40.0, 15.0, 55.0), 0.25)
    >>> f = (0.5 * src.lon - 2.0 * src.lat).rename("f")
    >>> out = CurvilinearRegridder(f, tgt, "bilinear", engine="pyproj-shapely")(f)
    >>> bool(np.allclose(out, 0.5 * out.lon - 2.0 * out.lat))
    True
    """

    def __init__(self, source, target, method: str = "bilinear", engine: str | None = None):
        if method not in METHODS:
            raise UnknownOptionError("regrid method", method, METHODS)
        if engine is None:
            engine = "pyproj-shapely"
            if importlib.util.find_spec("xesmf") is not None:
                try:
                    import xesmf  # noqa: F401

                    engine = "xesmf"
                except ImportError:
                    pass
            log.debug("curvilinear regrid engine: %s", engine)
        if engine not in ENGINES:
            raise UnknownOptionError("regrid engine", engine, ENGINES)
        self.method, self.engine = method, engine
        self.src, self.tgt = grid_info(source), grid_info(target)
        tdims = set(self.tgt.dims)
        keep = [c for c in target.coords if set(target[c].dims) <= tdims]
        self.target_coords = xr.Dataset(coords={c: target.coords[c] for c in keep})
        if engine == "xesmf":
            self.W, self.full = self._xesmf_weights(source, target)
        elif method == "bilinear":
            self.W = _bilinear_weights(self.src, self.tgt)
        elif method == "nearest":
            self.W = _nearest_weights(self.src, self.tgt)
        else:
            self.W, self.full = _conservative_weights(self.src, self.tgt)
        if method != "conservative" or engine == "xesmf":
            self.full = np.asarray(self.W.sum(axis=1)).ravel()

    def _xesmf_weights(self, source, target):
        import xesmf as xe

        def geo(g: GridInfo, with_bounds: bool):
            C, R = np.meshgrid(g.col, g.row)
            lon, lat = _transform(g.crs, "EPSG:4326", C, R)
            ds = xr.Dataset(coords={"lon": (("y", "x"), lon), "lat": (("y", "x"), lat)})
            if with_bounds:
                Cb, Rb = np.meshgrid(_edges(g.col), _edges(g.row))
                lonb, latb = _transform(g.crs, "EPSG:4326", Cb, Rb)
                ds = ds.assign_coords(lon_b=(("y_b", "x_b"), lonb), lat_b=(("y_b", "x_b"), latb))
            return ds

        cons = self.method == "conservative"
        m = {"bilinear": "bilinear", "conservative": "conservative", "nearest": "nearest_s2d"}
        rg = xe.Regridder(
            geo(self.src, cons), geo(self.tgt, cons), m[self.method], unmapped_to_nan=True
        )
        W = rg.weights.data.tocsr() if hasattr(rg.weights, "data") else rg.weights.tocsr()
        return W, np.asarray(W.sum(axis=1)).ravel()

    def __call__(self, obj, nan_threshold: float = 0.5):
        """Regrid every variable of ``obj`` that has the source's grid dims, lazily."""
        if isinstance(obj, xr.DataArray):
            name = obj.name
            out = self(obj.to_dataset(name="__v__"), nan_threshold)["__v__"]
            return out.rename(name)
        sy, sx = self.src.dims
        ty, tx = self.tgt.dims
        thr = float(nan_threshold) if self.method == "conservative" else 0.0
        rowsum = np.asarray(self.full, float)
        out = {}
        for v, da in obj.data_vars.items():
            if not {sy, sx} <= set(da.dims):
                if not ({sy, sx} & set(da.dims)):
                    out[v] = da
                continue
            da = da.drop_vars([c for c in da.coords if c not in da.dims])
            da = da.rename({sy: "_src_y", sx: "_src_x"})
            if da.chunks is not None:
                da = da.chunk({"_src_y": -1, "_src_x": -1})
            res = apply_kernel(
                _apply_weights,
                da,
                input_core_dims=[["_src_y", "_src_x"]],
                output_core_dims=[[ty, tx]],
                output_dtypes=[np.result_type(da.dtype, np.float32)],
                output_sizes={ty: self.tgt.row.size, tx: self.tgt.col.size},
                kwargs=dict(
                    W=self.W,
                    rowsum=rowsum,
                    nan_threshold=thr,
                    out_shape=(self.tgt.row.size, self.tgt.col.size),
                ),
            )
            res.attrs = dict(obj[v].attrs)
            out[v] = res
        ds = xr.Dataset(out, attrs=dict(obj.attrs))
        ds = ds.assign_coords(self.target_coords.coords)
        add_history(
            ds,
            f"regrid_curvilinear(method={self.method!r}, engine={self.engine!r}) "
            f"{self.src.dims} -> {self.tgt.dims}",
        )
        return ds


def regrid_curvilinear(
    ds: xr.Dataset | xr.DataArray,
    target: Any,
    method: str = "bilinear",
    engine: str | None = None,
    nan_threshold: float = 0.5,
):
    """Regrid ``ds`` onto ``target``'s grid where either is rotated, projected or curvilinear.

    Parameters
    ----------
    ds : Dataset or DataArray on a grid :func:`grid_info` understands.
    target : Dataset or DataArray carrying the target grid (e.g. :func:`xldas.io.grids.eurocordex`).
    method : {"bilinear", "conservative", "nearest"}
    engine : {None, "xesmf", "pyproj-shapely"}
    nan_threshold : float in [0, 1]
        Conservative only: largest uncovered/NaN fraction of a target cell that still gives
        a value.

    Returns
    -------
    Same type as ``ds``, lazy, on the target grid with the target's coordinates (including
    2-D ``lat``/``lon`` and the grid-mapping variable) and a ``history`` line.

    Examples
    --------
    >>> import numpy as np
    >>> from xldas.io.grids import eurocordex
    >>> from xldas.io.regrid import grid
    >>> src = grid((0.0, 40.0, 15.0, 55.0), 0.25)
    >>> f = (src.lat * 0 + src.lon * 0 + 1.0).rename("one")
    >>> out = regrid_curvilinear(f, eurocordex("EUR-44", subdomain=(5, 45, 10, 50)), "conservative")
    >>> bool(np.allclose(out, 1.0))
    True
    """
    if not 0.0 <= float(nan_threshold) <= 1.0:
        raise ValueError(f"nan_threshold must lie in [0, 1], got {nan_threshold}")
    return CurvilinearRegridder(ds, target, method, engine)(ds, nan_threshold)
