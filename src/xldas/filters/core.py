"""Assimilation of observations into an ensemble :class:`xarray.Dataset`, lazily.

:func:`assimilate` stacks the model variables of an ensemble (every data variable with a
``member`` dimension except ``weight``, ``weight_cov`` and ``pert_*``; a ``layer`` or
other extra dimension becomes several state elements) into one state vector per pixel,
applies the observation operator, screens the observations (NaN skipped, gross-error
check), runs the filter kernel per pixel and unstacks the result (names, dims, coords,
dtypes and attrs preserved). Parameters placed in the ensemble as ordinary variables
are updated like states (state augmentation).

Bounds (SCIENCE.md §C12 "bounded variables"): after every analysis ``sm`` is clipped to
``[theta_r, theta_s]`` (from ``params``), ``swe`` and ``canopy_water`` to ``>= 0``, and
any variable named in ``bounds=`` to its range. Clipping changes the water in the
column; the change is accounted for in the diagnostics as ``bound_adjustment_<var>``
(member-mean, kg m-2 for ``sm`` using ``dz``, in the variable's units otherwise), so a
water budget can book it.

Dask: the result is lazy with the input's spatial chunks; ``member`` is rechunked to one
chunk when needed. The LETKF exchanges halos between spatial chunks through
:func:`dask.array.map_overlap`, so its result does not depend on the chunking.
Random numbers (EnKF observation perturbations, PF resampling and jitter) come from
Philox keyed by (seed, cycle, purpose, pixel coordinates), hence are also independent of
chunking and restarts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial

import numpy as np
import xarray as xr

from xldas._xr import add_history, apply_kernel, spatial_dims
from xldas.errors import DimensionError, FilterError, ObservationError
from xldas.filters import _grid as GR
from xldas.filters import _kernels as K
from xldas.filters import _local as LK
from xldas.filters.methods import (
    ETKF,
    LETKF,
    PF,
    EnKF,
    _SigmaPointFilter,
    get_filter,
    prepare_observations,
)
from xldas.units import conversion

__all__ = ["assimilate", "stack_state", "state_variables", "unstack_state"]

_NON_STATE = ("weight", "weight_cov")
_PURPOSE = {"enkf": 11, "pf": 12}
_DEFAULT_BOUNDS = {"swe": (0.0, None), "canopy_water": (0.0, None)}


# ---------------------------------------------------------------- stacking
def state_variables(ens: xr.Dataset) -> list[str]:
    """Names of the variables that form the state vector of ``ens``."""
    return [
        str(v)
        for v, da in ens.data_vars.items()
        if "member" in da.dims and v not in _NON_STATE and not str(v).startswith("pert_")
    ]


def stack_state(ds: xr.Dataset, names, core: str = "state", member: bool = True):
    """Stack variables into one DataArray (..., [member,] core), float64.

    Returns ``(stacked, layout)``; ``layout`` lists ``(name, extra_dim, size)`` used by
    :func:`unstack_state`. Each variable may have at most one dimension besides the
    spatial ones and ``member`` (e.g. ``layer``).
    """
    sdims = spatial_dims(ds)
    pieces, layout = [], []
    for name in names:
        da = ds[name]
        extra = [d for d in da.dims if d not in (*sdims, "member")]
        if len(extra) > 1:
            raise DimensionError(f"{name} has dims {da.dims}; at most one besides space and member")
        tail = (["member"] if member else []) + extra
        da = da.transpose(..., *tail).astype("f8")
        da = da.drop_vars([c for c in da.coords if c not in da.dims or c in extra])
        if extra:
            da = da.rename({extra[0]: core})
            layout.append((name, extra[0], da.sizes[core]))
        else:
            da = da.expand_dims(core, axis=-1)
            layout.append((name, None, 1))
        pieces.append(da.reset_coords(drop=True) if da.coords else da)
    stacked = xr.concat(pieces, dim=core, coords="minimal", compat="override", join="override")
    if stacked.chunks is not None:
        stacked = stacked.chunk({core: -1, **({"member": -1} if member else {})})
    return stacked, layout


def unstack_state(stacked: xr.DataArray, layout, template: xr.Dataset, core: str = "state"):
    """Inverse of :func:`stack_state` onto the variables of ``template``."""
    out = {}
    i = 0
    for name, extra, size in layout:
        orig = template[name]
        piece = stacked.isel({core: slice(i, i + size)})
        i += size
        piece = piece.rename({core: extra}) if extra else piece.isel({core: 0}, drop=True)
        piece = piece.transpose(*orig.dims).astype(orig.dtype)
        piece = piece.assign_coords({c: orig.coords[c] for c in orig.coords})
        piece.attrs = dict(orig.attrs)
        piece.encoding = dict(orig.encoding)
        out[name] = piece
    return out


# ----------------------------------------------------------- observations
def _error_std(obs: xr.Dataset, name: str) -> xr.DataArray:
    err_name = f"{name}_err"
    if err_name in obs:
        return obs[err_name]
    for attrs in (obs[name].attrs, obs.attrs):
        if "error_std" in attrs:
            val = float(attrs["error_std"])
            if not (np.isfinite(val) and val > 0):
                raise ObservationError(f"{name}: error_std must be > 0; got {attrs['error_std']!r}")
            return xr.DataArray(val)  # one number: broadcast later, as a view
    raise ObservationError(
        f"observation {name!r} has no error: give a '{err_name}' variable or an 'error_std' attribute"
    )


def _align_obs(obs: xr.Dataset, ens: xr.Dataset) -> xr.Dataset:
    sdims = spatial_dims(ens)
    try:
        odims = spatial_dims(obs)
    except DimensionError:
        raise ObservationError(
            f"observations have dims {tuple(obs.dims)}; expected the state's spatial dims {sdims}"
        ) from None
    if odims != sdims:
        raise ObservationError(f"observations are on dims {odims}, the state on {sdims}")
    if "time" in obs.dims:
        if "time" in ens.coords and ens["time"].ndim == 0:
            try:
                obs = obs.sel(time=ens["time"].values)
            except KeyError:
                raise ObservationError(
                    f"no observations at the state time {ens['time'].values}"
                ) from None
        elif obs.sizes["time"] == 1:
            obs = obs.isel(time=0)
        else:
            raise ObservationError(
                "observations have several times; select the analysis time first"
            )
    indexers = {}
    for d in sdims:
        if d not in obs.coords or d not in ens.coords:
            if obs.sizes[d] != ens.sizes[d]:
                raise ObservationError(
                    f"observation dim {d!r} has {obs.sizes[d]} cells, the state {ens.sizes[d]}, "
                    "and no coordinates to align them"
                )
            continue
        a, b = np.asarray(obs[d].values, float), np.asarray(ens[d].values, float)
        if a.shape == b.shape and np.allclose(a, b, rtol=0, atol=1e-9 * max(1.0, np.abs(b).max())):
            continue
        step = np.abs(np.diff(b)).min() if b.size > 1 else 1.0
        tol = 1e-3 * step
        near = (
            np.abs(a[:, None] - b[None, :]).min(axis=0) <= tol if a.size else np.zeros(b.size, bool)
        )
        if not near.any():
            raise ObservationError(
                f"observation grid does not overlap the state grid along {d!r} "
                f"(obs {a.min() if a.size else None}..{a.max() if a.size else None}, "
                f"state {b.min()}..{b.max()})"
            )
        indexers[d] = ens[d]
    if indexers:
        tol = {d: 1e-3 * float(np.abs(np.diff(ens[d].values)).min()) for d in indexers}
        obs = obs.reindex(indexers, method="nearest", tolerance=min(tol.values()))
    return obs


def _prepare_obs(obs, pred: xr.Dataset, names, ens):
    if isinstance(obs, xr.DataArray):
        obs = obs.to_dataset(name=obs.name or names[0])
    missing = [n for n in names if n not in obs]
    if missing:
        raise ObservationError(
            f"observations lack {missing}; the operator predicts {list(names)}, obs hold {list(obs.data_vars)}"
        )
    obs = _align_obs(obs, ens)
    values, errors = {}, {}
    for n in names:
        val = obs[n]
        err = _error_std(obs, n)
        tgt = pred[n].attrs.get("units")
        src = val.attrs.get("units")
        if tgt is not None and src is not None and src != tgt:
            a, b = conversion(str(src), str(tgt))
            val = val * a + b
            err_units = err.attrs.get("units", src)
            err = err * abs(conversion(str(err_units), str(tgt))[0])
        values[n] = val.astype("f8", copy=False)
        err = err.astype("f8", copy=False)
        # a non-positive error becomes a variance of 0, refused by the filter on compute
        var = xr.where(err.isnull(), np.nan, xr.where(err > 0, err**2, 0.0))
        errors[n] = var.broadcast_like(val)  # (a view where the error is one number)
    return xr.Dataset(values), xr.Dataset(errors)


def _predicted(operator, ens, params, names=None) -> xr.Dataset:
    pred = operator(ens, params)
    if isinstance(pred, xr.DataArray):
        pred = pred.to_dataset(name=pred.name or "obs")
    if names is None:
        names = list(getattr(operator, "variables", None) or pred.data_vars)
    for n in names:
        if n not in pred or "member" not in pred[n].dims:
            raise ObservationError(
                f"the operator must return {n!r} with a 'member' dim; got {list(pred.data_vars)}"
            )
    return pred, list(names)


# ----------------------------------------------------------------- blocks
def _pixel_index(ens: xr.Dataset) -> xr.DataArray:
    """Int64 key of each pixel from its global coordinates (chunk/sub-domain independent)."""
    sy, sx = spatial_dims(ens)
    keys = []
    for d in (sy, sx):
        if d in ens.coords:
            c = np.asarray(ens[d].values, float)
            k = np.round((c + (360.0 if d in ("lat", "lon") else 0.0)) * 1e4).astype(np.int64)
        else:
            k = np.arange(ens.sizes[d], dtype=np.int64)
        keys.append(xr.DataArray(k & 0xFFFFFFFF, dims=(d,)))
    idx = (keys[0] << 32) | keys[1]
    ref = ens[state_variables(ens)[0]].isel(member=0, drop=True)
    ref = ref.isel({d: 0 for d in ref.dims if d not in (sy, sx)}, drop=True)
    idx = idx.broadcast_like(ref)
    if ref.chunks is not None:
        idx = idx.chunk(dict(zip(ref.dims, ref.chunks, strict=True)))
    return idx


def _noise(pix, k, seed, cycle, purpose):
    if k == 0:
        return None
    return K.philox_normal(np.asarray(pix, np.int64), seed, cycle, purpose, np.empty(k))


def _ensemble_block(E, HE, y, R, pix, *, filt, seed, cycle):
    from xldas._cuda import is_device_array

    if is_device_array(E):  # CuPy chunks: the CUDA analysis of xldas.filters._cuda
        from xldas.filters._cuda import ensemble_block

        return ensemble_block(E, HE, y, R, pix, filt=filt, seed=seed, cycle=cycle)
    N, n = E.shape[-2:]
    m = HE.shape[-1]
    noise = _noise(pix, filt.n_noise(N, n, m), seed, cycle, _PURPOSE["enkf"])
    return filt.update(E, HE, y, R, noise)[0]


def _localised(filt) -> bool:
    """An EnKF with ``loc_radius``: analysed like the LETKF, with neighbours' observations."""
    return isinstance(filt, EnKF) and filt.loc_radius is not None


def _perturbation_block(rinv, pix, *, filt, N, seed, cycle):
    """Observation perturbations (..., N, m) of each pixel's observations.

    The same Philox draws as the per-pixel EnKF (:func:`_ensemble_block`), so a support
    smaller than the grid spacing gives exactly the per-pixel analysis.
    """
    m = rinv.shape[-1]
    noise = _noise(pix, filt.n_noise(N, 0, m), seed, cycle, _PURPOSE["enkf"])
    return filt.perturbations(noise, np.asarray(rinv, float), N)


def _pf_block(E, HE, y, R, w, pix, *, filt, seed, cycle):
    N, n = E.shape[-2:]
    noise = _noise(pix, filt.n_noise(N, n, HE.shape[-1]), seed, cycle, _PURPOSE["pf"])
    Ea, wa, ess = filt.update(E, HE, y, R, noise, w)
    return Ea, wa, ess


def _screen_block(HE, y, R, gross, wm=None, wc=None):
    w = None if wm is None else (wm, wc)
    _, d, rinv, used, rejected = prepare_observations(HE, y, R, gross, w)
    innov = np.where(used, d, np.nan)
    if wm is None:
        var = np.asarray(HE).var(axis=-2, ddof=1)
    else:
        hbar = np.einsum("...p,...pm->...m", wm, HE)
        var = np.abs(np.einsum("...p,...pm->...m", wc, (HE - hbar[..., None, :]) ** 2))
    spread = np.sqrt(var + np.where(np.isfinite(R), R, np.nan))
    return d, rinv, innov, spread, used.astype("i1"), rejected.astype("i1")


def _sigma_predict_block(X, wm, wc, q, *, filt):
    return filt.predict(X, wm, wc, q)


def _sigma_update_block(Xp, xm, S, HX, y, R, *, filt):
    return filt.update(Xp, xm, S, HX, y, R)[0]


# ------------------------------------------------------------------ LETKF
def _letkf_geometry(ens, filt: LETKF):
    sy, sx = spatial_dims(ens)
    c = filt.half_width
    if (sy, sx) == ("lat", "lon"):
        lat = np.asarray(ens["lat"].values, float)
        lon = np.asarray(ens["lon"].values, float)
        dlat = np.abs(np.diff(lat)).min() if lat.size > 1 else 180.0
        dlon = np.abs(np.diff(lon)).min() if lon.size > 1 else 360.0
        coslat = math.cos(math.radians(min(89.0, float(np.abs(lat).max()))))
        cell = min(dlat * 111.195, dlon * 111.195 * coslat)
        yc, xc, metric = ens["lat"], ens["lon"], 1
    elif "degree" in str(ens[sy].attrs.get("units", "")) and "lat" in ens.coords:
        # rotated-pole grid (rlat/rlon in degrees, 2-D lat/lon): great-circle distances on
        # the true coordinates; grid spacing from the rotated degrees
        rlat = np.asarray(ens[sy].values, float)
        coslat = math.cos(math.radians(min(89.0, float(np.abs(rlat).max()))))
        drl = [float(np.abs(np.diff(ens[d].values)).min()) for d in (sy, sx) if ens.sizes[d] > 1]
        cell = min(drl) * 111.195 * coslat if drl else np.inf
        yc, xc, metric = ens["lat"], ens["lon"], 1
    else:
        units = str(ens[sy].attrs.get("units", "m"))
        fac = 1e-3 if units in ("m", "metre", "meter") else 111.195 if "degree" in units else 1.0
        yc, xc = ens[sy] * fac, ens[sx] * fac
        cell = min(
            float(np.abs(np.diff(yc.values)).min()) if yc.size > 1 else np.inf,
            float(np.abs(np.diff(xc.values)).min()) if xc.size > 1 else np.inf,
        )
        metric = 0
    halo = math.ceil(2 * c / cell) if np.isfinite(cell) and cell > 0 else 0
    halo = max(0, min(halo, max(ens.sizes[sy], ens.sizes[sx])))
    yc2, xc2 = xr.broadcast(yc.astype("f8"), xc.astype("f8"))
    return yc2.transpose(sy, sx), xc2.transpose(sy, sx), c, halo, metric


def _letkf(E, HE, d, rinv, ens, filt, eps=None):
    """Local analyses on the grid: LETKF, or the localised EnKF when ``eps`` is given.

    Halos of ``ceil(2c / cell)`` pixels of the observation side (``HE``, ``d``, ``rinv``,
    the EnKF's perturbations, coordinates) are exchanged between spatial chunks, so the
    result does not depend on the chunking; the state ``E`` needs none (a pixel's
    analysis uses its neighbours' observations, not their state).
    """
    sy, sx = spatial_dims(ens)
    extra = [x for x in E.dims if x not in (sy, sx, "member", "state")]
    if extra:
        raise DimensionError(f"LETKF supports only spatial, member and state dims; got {extra}")
    yc, xc, c, halo, metric = _letkf_geometry(ens, filt)
    E = E.transpose(sy, sx, "member", "state")
    HE = HE.transpose(sy, sx, "member", "obs")
    d = d.transpose(sy, sx, "obs")
    rinv = rinv.transpose(sy, sx, "obs")
    args = (filt.inflation, filt.rtpp, filt.rtps)
    kern = partial(_letkf_kernel, c=c, halo=halo, metric=metric, args=args, engine=filt.engine)
    if eps is not None:
        eps = eps.transpose(sy, sx, "member", "obs")
        kern = partial(_local_enkf_kernel, c=c, halo=halo, metric=metric, args=args)
        kern = partial(kern, engine=filt.engine)
    if all(a.chunks is None for a in (E, HE, d, rinv)):
        extra = () if eps is None else (np.asarray(eps.values, float),)
        arrays = (HE.values, d.values, rinv.values, *extra, yc.values, xc.values)
        return E.copy(data=_in_bands(kern, E.values, arrays, halo))
    if E.chunks is None:
        E = E.chunk()
    import dask.array as dsa
    from dask.array.overlap import ensure_minimum_chunksize, overlap

    # chunks of at least the halo; an axis no longer than the halo is one chunk (every
    # pixel sees all the others along it), which needs no overlap
    chunks2 = tuple(
        (sum(c),) if sum(c) <= halo else ensure_minimum_chunksize(max(halo, 1), c)
        for c in E.chunks[:2]
    )
    depth = {ax: halo if len(chunks2[ax]) > 1 else 0 for ax in (0, 1)}
    E4 = E.data.rechunk((*chunks2, -1, -1))
    H4 = HE.data.rechunk((*chunks2, -1, -1))
    d3 = d.data.rechunk((*chunks2, -1)) if d.chunks else dsa.from_array(d.values, (*chunks2, -1))
    r3 = (
        rinv.data.rechunk((*chunks2, -1))
        if rinv.chunks
        else dsa.from_array(rinv.values, (*chunks2, -1))
    )
    ycd, xcd = _coordinate_blocks(yc, chunks2), _coordinate_blocks(xc, chunks2)
    N, m = HE.sizes["member"], HE.sizes["obs"]
    parts = [(H4, "ijkm"), (d3, "ijm"), (r3, "ijm")]
    if eps is not None:
        e4 = eps.data if eps.chunks else dsa.from_array(eps.values, (*chunks2, -1, -1))
        parts.append((e4.rechunk((*chunks2, -1, -1)), "ijkm"))
    parts += [(ycd, "ij"), (xcd, "ij")]
    # everything the halos carry packed into one array per block: one overlap (its
    # slices and concatenations) instead of one per array, a fraction of the tasks
    K = N * m + 2 * m + (N * m if eps is not None else 0) + 2
    packed = dsa.blockwise(
        _pack_obs_side,
        "ijz",
        *[x for part in parts for x in part],
        new_axes={"z": K},
        concatenate=True,
        dtype="f8",
        meta=np.empty((0, 0, 0)),
    )
    packed = overlap(packed, depth={**depth, 2: 0}, boundary={0: "none", 1: "none"})
    data = dsa.blockwise(
        partial(_unpack_and_run, kern=kern, N=N, m=m, eps=eps is not None),
        "ijkl",
        E4,
        "ijkl",
        packed,
        "ijz",
        _interiors(chunks2, halo),
        "ijw",
        dtype="f8",
        concatenate=True,
        align_arrays=False,  # overlapped blocks, and one window element per block
        adjust_chunks={"i": E4.chunks[0], "j": E4.chunks[1]},
        meta=np.empty((0, 0, 0, 0)),
    )
    data = data.rechunk(E.data.chunks)
    return E.copy(data=data)


def _coordinate_blocks(coord: xr.DataArray, chunks2):
    """A 2-D coordinate (``sy``, ``sx``) as a dask array of ``chunks2`` blocks.

    A coordinate that varies along one axis only (lat/lon or y/x grids) is broadcast block
    by block from its 1-D values: the graph carries a few kB instead of the 2-D field
    (at 2000 × 4000 cells, 64 MB per coordinate shipped to every worker with the graph).
    A lazy 2-D coordinate (the lat/lon of a rotated-pole grid opened from Zarr) stays
    lazy, read block by block by the workers; only an in-memory 2-D field is embedded.
    """
    import dask.array as dsa

    if coord.chunks is not None:
        return coord.data.astype("f8").rechunk(chunks2)
    c2 = coord.values
    if c2.ndim == 2 and c2.strides[1] == 0:
        col = dsa.from_array(np.ascontiguousarray(c2[:, 0]), chunks=(chunks2[0],))
        return dsa.broadcast_to(col[:, None], c2.shape, chunks=chunks2)
    if c2.ndim == 2 and c2.strides[0] == 0:
        row = dsa.from_array(np.ascontiguousarray(c2[0, :]), chunks=(chunks2[1],))
        return dsa.broadcast_to(row[None, :], c2.shape, chunks=chunks2)
    return dsa.from_array(c2, chunks=chunks2)


def _pack_obs_side(*arrays):
    """``(a, b, K)``: each pixel's observation-side values side by side (``HE``, ``d``,
    ``rinv``, the EnKF's perturbations, then the two coordinates)."""
    a, b = arrays[0].shape[:2]
    return np.concatenate([np.asarray(x, float).reshape(a, b, -1) for x in arrays], axis=2)


def _unpack_and_run(E, packed, win, *, kern, N, m, eps):
    """Split a packed, overlapped block (:func:`_pack_obs_side`) and run the kernel."""
    a, b = packed.shape[:2]
    o = N * m
    parts = [
        packed[..., :o].reshape(a, b, N, m),
        packed[..., o : o + m],
        packed[..., o + m : o + 2 * m],
    ]
    o += 2 * m
    if eps:
        parts.append(packed[..., o : o + N * m].reshape(a, b, N, m))
        o += N * m
    return kern(E, *parts, packed[..., o], packed[..., o + 1], win)


def _interiors(chunks2, halo):
    """Per block of the overlapped grid, the pixels it analyses: ``(p0, p1, q0, q1)``.

    A block carries ``halo`` extra rows/columns on each side that has a neighbour
    (``boundary="none"``: none at the domain edges); those serve as observations only and
    are trimmed afterwards, so the kernels skip them. One int64 block per grid block.
    """
    import dask.array as dsa

    ny, nx = len(chunks2[0]), len(chunks2[1])
    win = np.empty((ny, nx, 4), np.int64)
    for i, a in enumerate(chunks2[0]):
        lo = halo if i > 0 else 0
        win[i, :, 0], win[i, :, 1] = lo, lo + a
    for j, b in enumerate(chunks2[1]):
        lo = halo if j > 0 else 0
        win[:, j, 2], win[:, j, 3] = lo, lo + b
    return dsa.from_array(win, chunks=(1, 1, 4))


def _in_bands(kern, E, arrays, halo, threads=None):
    """Run a grid kernel on NumPy arrays in row bands, one per core, in threads.

    Each band gets its own rows of the state ``E`` and, of the observation-side
    ``arrays``, those rows plus ``halo`` rows of its neighbours (observations only): every
    pixel gets the result of one call on the whole grid. The numba kernels release the
    GIL. A Dask computation parallelises over its chunks instead (one call per block).
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    ny, nx = E.shape[:2]
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        threads = max(1, min(int(threads), os.cpu_count() or 1))
    nb = max(1, min(threads, ny // max(1, 2 * halo)))
    if nb == 1:
        return kern(E, *arrays, np.array([[[0, ny, 0, nx]]]))
    edges = np.linspace(0, ny, nb + 1).round().astype(int)
    out = np.empty(E.shape, dtype=float)

    def band(b):
        r0, r1 = int(edges[b]), int(edges[b + 1])
        lo, hi = max(0, r0 - halo), min(ny, r1 + halo)
        window = np.array([[[r0 - lo, r1 - lo, 0, nx]]])
        out[r0:r1] = kern(E[r0:r1], *(a[lo:hi] for a in arrays), window)

    with ThreadPoolExecutor(nb) as pool:
        list(pool.map(band, range(nb)))
    return out


def _letkf_kernel(E, HE, d, rinv, yc, xc, win, *, c, halo, metric, args, engine):
    p0, p1, q0, q1 = (int(v) for v in np.asarray(win).reshape(4))
    if engine == "numpy":  # the reference analyses the whole window: pad E to it
        Ew = _pad_to_window(E, HE.shape[:2], p0, q0)
        return K.letkf_grid_reference(Ew, HE, d, rinv, yc, xc, c, metric, *args)[p0:p1, q0:q1]
    # all dims are core dims (one block): the serial target avoids thread start-up costs
    return GR.letkf_grid(
        E, HE, d, rinv, yc, xc, c, halo, metric, p0, p1, q0, q1, *args, target="cpu"
    )


def _local_enkf_kernel(E, HE, d, rinv, eps, yc, xc, win, *, c, halo, metric, args, engine):
    p0, p1, q0, q1 = (int(v) for v in np.asarray(win).reshape(4))
    if engine == "numpy":
        Ew = _pad_to_window(E, HE.shape[:2], p0, q0)
        ref = LK.lenkf_grid_reference(Ew, HE, d, rinv, eps, yc, xc, c, metric, *args)
        return ref[p0:p1, q0:q1]
    return GR.lenkf_grid(
        E, HE, d, rinv, eps, yc, xc, c, halo, metric, p0, p1, q0, q1, *args, target="cpu"
    )


def _pad_to_window(E, shape, p0, q0):
    """``E`` of the analysed pixels placed in a window of ``shape`` (zeros around: the
    references analyse every pixel of the window; only the analysed ones are kept)."""
    Ew = np.zeros((*shape, *E.shape[2:]))
    Ew[p0 : p0 + E.shape[0], q0 : q0 + E.shape[1]] = E
    return Ew


# ----------------------------------------------------------------- bounds
def _bounds(name, params, bounds):
    if bounds and name in bounds:
        return bounds[name]
    if name == "sm" and params is not None and "theta_r" in params and "theta_s" in params:
        return params["theta_r"], params["theta_s"]
    return _DEFAULT_BOUNDS.get(name)


def _apply_bounds(analysis: dict, ens: xr.Dataset, params, bounds):
    adjustments = {}
    for name, da in list(analysis.items()):
        b = _bounds(name, params, bounds)
        if b is None:
            continue
        lo, hi = b
        lo = params[lo] if isinstance(lo, str) else lo
        hi = params[hi] if isinstance(hi, str) else hi
        # aligned by their indexes only: comparing the non-index coordinates of the
        # bounds and the state (e.g. the 2-D lat/lon of a rotated grid, lazy) would
        # compute them
        lo, hi = (x.reset_coords(drop=True) if isinstance(x, xr.DataArray) else x for x in (lo, hi))
        clipped = da
        if lo is not None:
            clipped = clipped.where(clipped >= lo, lo)
        if hi is not None:
            clipped = clipped.where(clipped <= hi, hi)
        clipped = clipped.where(da.notnull())
        clipped = clipped.transpose(*da.dims).astype(da.dtype)
        clipped.attrs = da.attrs
        clipped.encoding = da.encoding
        delta = clipped - da
        units = da.attrs.get("units", "")
        if name == "sm" and "dz" in ens.coords:
            delta = (delta * ens["dz"] * 1000.0).sum("layer")
            units = "kg m-2"
        elif "layer" in delta.dims:
            delta = delta.sum("layer")
        adj = delta.mean("member")
        adj.attrs = {
            "units": units,
            "long_name": f"member-mean change of {name} by the bounds after the analysis",
        }
        adjustments[f"bound_adjustment_{name}"] = adj
        analysis[name] = clipped
    return adjustments


# ------------------------------------------------------------------- main
def assimilate(
    ens: xr.Dataset,
    obs: xr.Dataset,
    operator,
    params: xr.Dataset | None = None,
    method="enkf",
    seed: int | None = None,
    cycle: int = 0,
    bounds: Mapping | None = None,
    return_diagnostics: bool = False,
    overwrite_ensemble: bool = False,
    **filter_kwargs,
):
    """Assimilate ``obs`` into the ensemble ``ens`` with one filter analysis, lazily.

    Parameters
    ----------
    ens : ensemble Dataset (``member``, [``layer``,] lat/lon or y/x). Sigma-point sets
        carry 2n+1 members and ``weight``/``weight_cov``; particle sets ``weight``.
    obs : observations Dataset: value variables named like the operator's output and
        ``<name>_err`` (1-sigma) or an ``error_std`` attribute; NaN = no observation. A
        ``time`` dim is matched to the state's ``time`` coordinate (or must have length
        1). Observations on a shifted/subset grid are aligned by coordinates.
    operator : callable ``operator(ens, params)`` returning the predicted observations
        per member (DataArray/Dataset named like the observed variables).
    params : parameters Dataset passed to the operator (and used for the bounds).
    method : ``"enkf"``, ``"etkf"``, ``"letkf"``, ``"ukf"``, ``"cdkf"``, ``"srukf"``,
        ``"srcdkf"``, ``"pf"`` or a filter object; ``filter_kwargs`` build or override it.
    seed, cycle : key of the counter-based random numbers (EnKF, PF); ``seed=None``
        draws a fresh seed.
    bounds : ``{var: (lo, hi)}`` extra bounds (numbers, DataArrays, names of ``params``
        variables or None), e.g. for augmented parameters.
    return_diagnostics : also return a Dataset of diagnostics: ``innovation`` (y - H x̄
        per obs variable and pixel, NaN where unused), ``innovation_mean``/``innovation_std``
        (domain statistics per obs variable), ``innovation_expected_std``
        (sqrt(HPHᵀ + R)), ``n_used``/``n_rejected`` per pixel, ``ess`` (PF),
        ``spread_prior_<var>``/``spread_posterior_<var>`` and ``bound_adjustment_<var>``.
    overwrite_ensemble : allow the analysis to be written into the memory of the
        forecast ensemble, as PDAF or DART do with their state arrays: half the memory,
        and no new pages for the operating system to clear, which saves as much time as
        a copy of the ensemble. The forecast in ``ens`` is then lost (its variables hold
        the analysis). Like SciPy's ``overwrite_a``, a permission, not a promise: it
        applies to in-memory (NumPy) float64 ensembles, members first in memory, on the
        single-pass path (EnKF or ETKF with one observation per pixel, without relaxation
        or localisation); dask or CuPy ensembles and the other paths write new arrays,
        and ``ens`` is left unchanged.

    Returns
    -------
    The analysis ensemble (same variables, dims, chunks and attrs), or
    ``(analysis, diagnostics)``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, xldas
    >>> rng = np.random.default_rng(0)
    >>> sm = xr.DataArray(0.25 + 0.03 * rng.standard_normal((20, 2, 3, 4)),
    ...                   dims=("member", "layer", "lat", "lon"), attrs={"units": "m3 m-3"})
    >>> ens = xr.Dataset({"sm": sm}, coords={"lat": [38.0, 38.1, 38.2], "lon": [100.0, 100.1, 100.2, 100.3]})
    >>> top = lambda e, p: e["sm"].isel(layer=0, drop=True)
    >>> obs = xr.Dataset({"sm": xr.full_like(ens["sm"].isel(member=0, layer=0, drop=True), 0.30)})
    >>> obs["sm"].attrs.update(units="m3 m-3", error_std=0.02)
    >>> ana = ens.ldas.assimilate(obs, top, None, method="etkf")
    >>> bool(abs(ana.sm.isel(layer=0).mean() - 0.30) < abs(ens.sm.isel(layer=0).mean() - 0.30))
    True
    """
    filt = get_filter(method, **filter_kwargs)
    if not isinstance(ens, xr.Dataset):
        raise DimensionError("assimilate needs an ensemble Dataset")
    from xldas.compute import array_backend

    if array_backend(ens) == "cupy":  # GPU analyses: EnKF and ETKF only
        from xldas.filters._cuda import check_gpu_method

        check_gpu_method(filt)
        if _localised(filt):
            raise FilterError(
                "EnKF with loc_radius has no GPU form: move the ensemble to NumPy chunks "
                "(xldas.compute.to_backend(ens, 'numpy')) or use EnKF/ETKF without "
                "localisation on the GPU"
            )
    if "member" not in ens.dims:
        raise DimensionError("the ensemble has no 'member' dimension")
    n_members = ens.sizes["member"]
    need = getattr(filt, "min_members", 2)
    if n_members < need:
        raise FilterError(f"{type(filt).__name__} needs at least {need} members; got {n_members}")
    if ens.chunks and len(ens.chunks.get("member", (n_members,))) > 1:
        ens = ens.chunk(member=-1)
    names = state_variables(ens)
    if not names:
        raise DimensionError("no state variable with a 'member' dim in the ensemble")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**62))

    # one observation per pixel on CPU: fused kernels without a stacked state copy
    # (CuPy ensembles take the stacked path, whose blocks dispatch to the CUDA kernels)
    if (
        type(filt) in (EnKF, ETKF)
        and not _localised(filt)
        and filt.engine == "numba"
        and array_backend(ens) == "numpy"
    ):
        fused = _one_obs_update(
            ens,
            obs,
            operator,
            params,
            filt,
            names,
            seed,
            cycle,
            bounds,
            return_diagnostics,
            overwrite=bool(overwrite_ensemble),
        )
        if fused is not None:
            return _finish(ens, filt, seed, cycle, *fused, return_diagnostics)

    diag = {}
    E, layout = stack_state(ens, names)
    w_prior = w_post = None
    weights = {}
    screen_kw = {}
    if isinstance(filt, _SigmaPointFilter):
        n = E.sizes["state"]
        if n_members != 2 * n + 1:
            raise FilterError(
                f"{type(filt).__name__}: the state has n={n} elements, so the ensemble needs "
                f"2n+1={2 * n + 1} sigma points as members; got {n_members}"
            )
        wm, wc = filt.weights(n)
        wm_da = xr.DataArray(wm, dims="member")
        wc_da = xr.DataArray(wc, dims="member")
        q = xr.DataArray(_q_vector(filt.Q, layout, n), dims="state")
        Xp, xm, S = apply_kernel(
            partial(_sigma_predict_block, filt=filt),
            E,
            wm_da,
            wc_da,
            q,
            input_core_dims=[["member", "state"], ["member"], ["member"], ["state"]],
            output_core_dims=[["member", "state"], ["state"], ["state", "state_b"]],
            output_dtypes=["f8", "f8", "f8"],
            output_sizes={"state_b": n},
        )
        prior = ens.copy()
        for name, da in unstack_state(Xp.transpose(*E.dims), layout, ens).items():
            prior[name] = da
        pred, onames = _predicted(operator, prior, params)
        y_ds, R_ds = _prepare_obs(obs, pred, onames, ens)
        HE, olayout = stack_state(pred, onames, core="obs")
        y, _ = stack_state(y_ds, onames, core="obs", member=False)
        R, _ = stack_state(R_ds, onames, core="obs", member=False)
        Ea = apply_kernel(
            partial(_sigma_update_block, filt=filt),
            Xp,
            xm,
            S,
            HE,
            y,
            R,
            input_core_dims=[
                ["member", "state"],
                ["state"],
                ["state", "state_b"],
                ["member", "obs"],
                ["obs"],
                ["obs"],
            ],
            output_core_dims=[["member", "state"]],
            output_dtypes=["f8"],
        )
        ref = ens[names[0]].isel(member=0, drop=True)
        ref = ref.isel({d: 0 for d in ref.dims if d not in spatial_dims(ens)}, drop=True)
        weights["weight"] = wm_da.broadcast_like(ref).transpose("member", ...)
        weights["weight_cov"] = wc_da.broadcast_like(ref).transpose("member", ...)
        w_prior = w_post = (wm_da, wc_da)
        screen_kw = {"wm": wm, "wc": wc}
    else:
        pred, onames = _predicted(operator, ens, params)
        y_ds, R_ds = _prepare_obs(obs, pred, onames, ens)
        HE, olayout = stack_state(pred, onames, core="obs")
        y, _ = stack_state(y_ds, onames, core="obs", member=False)
        R, _ = stack_state(R_ds, onames, core="obs", member=False)
        if isinstance(filt, LETKF):
            d, rinv = _screen(HE, y, R, filt.gross_error)[:2]
            Ea = _letkf(E, HE, d, rinv, ens, filt)
        elif _localised(filt):
            d, rinv = _screen(HE, y, R, filt.gross_error)[:2]
            eps = apply_kernel(
                partial(_perturbation_block, filt=filt, N=n_members, seed=seed, cycle=cycle),
                rinv,
                _pixel_index(ens),
                input_core_dims=[["obs"], []],
                output_core_dims=[["member", "obs"]],
                output_dtypes=["f8"],
                output_sizes={"member": n_members},
            )
            Ea = _letkf(E, HE, d, rinv, ens, filt, eps=eps)
        elif isinstance(filt, PF):
            wp = (
                ens["weight"].astype("f8")
                if "weight" in ens
                else xr.full_like(E.isel(state=0, drop=True), 1.0 / n_members)
            )
            Ea, wa, ess = apply_kernel(
                partial(_pf_block, filt=filt, seed=seed, cycle=cycle),
                E,
                HE,
                y,
                R,
                wp,
                _pixel_index(ens),
                input_core_dims=[
                    ["member", "state"],
                    ["member", "obs"],
                    ["obs"],
                    ["obs"],
                    ["member"],
                    [],
                ],
                output_core_dims=[["member", "state"], ["member"], []],
                output_dtypes=["f8", "f8", "f8"],
            )
            ess.attrs = {"long_name": "effective sample size after reweighting", "units": "1"}
            diag["ess"] = ess
            weights["weight"] = wa.transpose("member", ...)
            w_prior, w_post = (wp, wp), (weights["weight"], weights["weight"])
            screen_kw = {}
        else:
            Ea = apply_kernel(
                partial(_ensemble_block, filt=filt, seed=seed, cycle=cycle),
                E,
                HE,
                y,
                R,
                _pixel_index(ens),
                input_core_dims=[["member", "state"], ["member", "obs"], ["obs"], ["obs"], []],
                output_core_dims=[["member", "state"]],
                output_dtypes=["f8"],
            )
    analysis = unstack_state(Ea.transpose(*E.dims), layout, ens)
    adjustments = _apply_bounds(analysis, ens, params, bounds)
    out = ens.copy()
    for name, da in analysis.items():
        out[name] = da
    for wname, w in weights.items():
        w = w.astype("f8")
        w.attrs = {
            "long_name": "mean weight" if wname == "weight" else "covariance weight",
            "units": "1",
        }
        out[wname] = w
    add_history(out, f"assimilate: {filt!r}, seed={seed}, cycle={cycle}")
    if not return_diagnostics:
        return out
    diag.update(adjustments)
    diag.update(_diagnostics(HE, y, R, filt, olayout, ens, screen_kw))
    for name in names:
        diag[f"spread_prior_{name}"] = _spread(ens[name], w_prior)
        diag[f"spread_posterior_{name}"] = _spread(out[name], w_post)
    dds = xr.Dataset(diag)
    dds.attrs["filter"] = repr(filt)
    return out, add_history(dds, f"assimilate diagnostics: {type(filt).__name__}")


# ------------------------------------------------ fused one-observation path
def _one_obs_update(
    ens, obs, operator, params, filt, names, seed, cycle, bounds, diagnostics=True, overwrite=False
):
    """EnKF/ETKF analysis with one observation per pixel, without a stacked state.

    Without relaxation (and with float64 state variables): one kernel,
    :func:`~xldas.filters._kernels.one_obs_update`, that computes the weights of a tile
    of pixels in cache and updates every state variable with them, bounds included,
    reading each variable in its own layout, the diagnostics in the same pass (see
    :func:`_one_obs_single_pass`). Otherwise two kernels:
    :func:`~xldas.filters._kernels.one_obs_weights` on the predicted observations
    (screening, random numbers and diagnostics in one pass), then
    :func:`~xldas.filters._kernels.apply_weights` once per state variable in its own
    layout (update, relaxation, bounds, bound accounting and spreads in one pass). Both
    give the same analysis and diagnostics. ``overwrite``: the single pass may write the
    analysis into the ensemble's own NumPy arrays (see :func:`assimilate`).

    Returns ``(analysis, diagnostics)`` (a dict of DataArrays and a function that builds
    the diagnostics' variables, so that nothing is reduced when they are not asked for;
    None for the single pass without diagnostics), or None when the observations are not
    one value per pixel (general path).
    """
    sdims = spatial_dims(ens)
    pred, onames = _predicted(operator, ens, params)
    if len(onames) != 1 or set(pred[onames[0]].dims) != {"member", *sdims}:
        return None
    name = onames[0]
    y_ds, R_ds = _prepare_obs(obs, pred, onames, ens)
    y, R = y_ds[name], R_ds[name]
    HE = pred[name].astype("f8", copy=False)
    if HE.chunks and len(HE.chunks[HE.dims.index("member")]) > 1:
        HE = HE.chunk(member=-1)
    mode = (
        K.MODE_ETKF
        if isinstance(filt, ETKF)
        else K.MODE_ENKF
        if filt.centred
        else K.MODE_ENKF_UNCENTRED
    )
    if filt.rtpp == 0.0 and filt.rtps == 0.0:
        single = _one_obs_single_pass(
            ens, HE, y, R, params, filt, names, seed, cycle, bounds, mode, overwrite, diagnostics
        )
        if single is not None:
            analysis, parts = single
            if parts is None:
                return analysis, None
            return analysis, partial(_one_obs_diagnostics, ens, name, *parts)
    u, v, a, innov, expected, used, rejected = apply_kernel(
        partial(_weights_block, mode=mode),
        HE,
        y,
        R,
        _pixel_index(ens),
        input_core_dims=[["member"], [], [], []],
        output_core_dims=[["member"], ["member"], [], [], [], [], []],
        output_dtypes=["f8", "f8", "f8", "f8", "f8", "i1", "i1"],
        kwargs={
            "infl": float(filt.inflation),
            "gross": float(filt.gross_error),
            "seed": int(seed),
            "cycle": int(cycle),
            "purpose": _PURPOSE["enkf"],
        },
    )
    # u, v, a are on the ensemble's own grid: passed as Variables, they need no alignment
    u, v, a = u.variable, v.variable, a.variable
    analysis, spreads, bound_adj = {}, {}, []
    for vname in names:
        orig = ens[vname]
        lo, hi, has_bounds = _bound_arrays(vname, params, bounds, orig)
        E = orig if orig.dtype in (np.float32, np.float64) else orig.astype("f8")
        extra = [d for d in E.dims if d not in ("member", *sdims)]
        if len(extra) > 1:
            raise DimensionError(f"{vname} has dims {E.dims}; at most one besides space and member")
        E = E.transpose("member", *extra, *sdims)
        Ea, sp0, sp1, adj = apply_kernel(
            partial(_apply_block, rtpp=float(filt.rtpp), rtps=float(filt.rtps)),
            E,
            u,
            v,
            a,
            lo,
            hi,
            input_core_dims=[["member"], ["member"], ["member"], [], [], []],
            output_core_dims=[["member"], [], [], []],
            output_dtypes=[E.dtype, "f8", "f8", "f8"],
        )
        Ea = Ea.transpose(*orig.dims).astype(orig.dtype, copy=False)
        Ea = Ea.assign_coords({c: orig.coords[c] for c in orig.coords})
        Ea.attrs = dict(orig.attrs)
        Ea.encoding = dict(orig.encoding)
        analysis[vname] = Ea
        units = orig.attrs.get("units", "")
        for key, sp in ((f"spread_prior_{vname}", sp0), (f"spread_posterior_{vname}", sp1)):
            spreads[key] = sp.assign_attrs(units=units, long_name=f"ensemble spread of {vname}")
        if has_bounds:
            bound_adj.append((vname, adj, units))
    parts = (innov, expected, used, rejected, spreads, bound_adj)
    return analysis, partial(_one_obs_diagnostics, ens, name, *parts)


def _one_obs_diagnostics(ens, name, innov, expected, used, rejected, spreads, bound_adj):
    """The diagnostics Dataset's variables of a one-observation analysis (built only when
    asked for): from the per-pixel screening (``innov``, ``expected``, ``used``,
    ``rejected``), the spreads ``{key: DataArray}`` and ``[(variable, bound change,
    units)]``."""
    sdims = spatial_dims(ens)
    adjustments = {}
    for vname, adj, units in bound_adj:
        if vname == "sm" and "dz" in ens.coords and "layer" in adj.dims:
            adj = (adj * ens["dz"] * 1000.0).sum("layer")
            units = "kg m-2"
        elif "layer" in adj.dims:
            adj = adj.sum("layer")
        adj.attrs = {
            "units": units,
            "long_name": f"member-mean change of {vname} by the bounds after the analysis",
        }
        adjustments[f"bound_adjustment_{vname}"] = adj.drop_vars(
            [c for c in adj.coords if c not in adj.dims], errors="ignore"
        )
    ren = {"obs_variable": [name]}
    inn = innov.expand_dims(ren, axis=-1)
    diag = {
        "innovation": inn.assign_attrs(long_name="innovation y - H(x) of the ensemble mean"),
        "innovation_expected_std": expected.expand_dims(ren, axis=-1).assign_attrs(
            long_name="expected innovation standard deviation sqrt(HPH^T + R)"
        ),
        "innovation_mean": inn.mean(sdims).assign_attrs(long_name="domain-mean innovation"),
        "innovation_std": inn.std(sdims).assign_attrs(
            long_name="domain standard deviation of the innovations"
        ),
        "n_used": used.astype("i4").assign_attrs(long_name="observations used"),
        "n_rejected": rejected.astype("i4").assign_attrs(
            long_name="observations rejected by the gross-error check"
        ),
    }
    return {**adjustments, **diag, **spreads}


def _one_obs_single_pass(
    ens, HE, y, R, params, filt, names, seed, cycle, bounds, mode, overwrite=False, diag=False
):
    """The analysis of :func:`_one_obs_update` by one kernel call per block, or None.

    One :func:`apply_kernel` call for all state variables: inputs the predicted
    observations, ``y``, ``R``, the pixel keys, then per variable the ensemble (core
    dims ``member`` and its level dim, e.g. ``layer``) and its bounds where they are
    arrays; outputs the analyses. Blocks see each variable as (member, level, pixels)
    in place (no stacked copy). None (two-kernel path) for a non-float64 variable or
    a bound with a dim the variable lacks. ``overwrite`` (NumPy ensembles only): each
    variable whose block is members-first and writeable in memory receives its own
    analysis (the kernel reads every value of a tile of pixels before it writes them).
    ``diag``: the same pass returns the diagnostics of the two-kernel path (the same
    values). Returns ``(analysis, parts)``, ``parts`` the arguments of
    :func:`_one_obs_diagnostics` after ``ens, name`` (None without ``diag``), or None.
    """
    sdims = spatial_dims(ens)
    args = [HE, y, R, _pixel_index(ens)]
    in_dims = [["member"], [], [], []]
    out_dims, spec = [], []
    for vname in names:
        orig = ens[vname]
        if orig.dtype != np.float64:
            return None
        extra = [d for d in orig.dims if d not in ("member", *sdims)]
        if len(extra) > 1:
            raise DimensionError(
                f"{vname} has dims {orig.dims}; at most one besides space and member"
            )
        E = orig
        if E.chunks and extra and len(E.chunks[E.dims.index(extra[0])]) > 1:
            E = E.chunk({extra[0]: -1})
        lo, hi, _ = _bound_arrays(vname, params, bounds, orig)
        args.append(E.variable)
        in_dims.append(["member", *extra])
        bspec = []
        for b in (lo, hi):
            if isinstance(b, xr.DataArray):
                if not set(b.dims) <= set(orig.dims) - {"member"}:
                    return None
                bd = [d for d in extra if d in b.dims]
                args.append(b.variable)
                in_dims.append(bd)
                bspec.append(len(bd))  # an array input with 0 or 1 level dims
            else:
                bspec.append(float(b))
        out_dims.append(["member", *extra])
        spec.append((len(extra), tuple(bspec)))
    n = len(names)
    dtypes = ["f8"] * n
    if diag:  # per variable: prior and posterior spread, bound change; per pixel: screening
        out_dims += [d[1:] for d in out_dims for _ in range(3)] + [[]] * 4
        dtypes += ["f8"] * (3 * n) + ["f8", "f8", "i1", "i1"]
    outs = apply_kernel(
        partial(
            _single_pass_block,
            spec=tuple(spec),
            mode=mode,
            infl=float(filt.inflation),
            gross=float(filt.gross_error),
            seed=int(seed),
            cycle=int(cycle),
            purpose=_PURPOSE["enkf"],
            overwrite=bool(overwrite) and not any(ens[v].chunks for v in names),
            diagnostics=bool(diag),
        ),
        *args,
        input_core_dims=in_dims,
        output_core_dims=out_dims,
        output_dtypes=dtypes,
    )
    outs = outs if isinstance(outs, tuple) else (outs,)
    analysis = {}
    for vname, Ea in zip(names, outs[:n], strict=True):
        orig = ens[vname]
        Ea = xr.DataArray(
            Ea.transpose(*orig.dims).data, coords=orig.coords, dims=orig.dims, name=vname
        )
        Ea.attrs = dict(orig.attrs)
        Ea.encoding = dict(orig.encoding)
        analysis[vname] = Ea
    if not diag:
        return analysis, None
    spreads, bound_adj = {}, []
    for k, vname in enumerate(names):
        orig = ens[vname]
        dims = [d for d in orig.dims if d not in ("member", *sdims)] + list(sdims)
        coords = {c: v for c, v in orig.coords.items() if set(v.dims) <= set(dims)}
        sp0, sp1, adj = (
            xr.DataArray(x.transpose(*dims).data, coords=coords, dims=dims)
            for x in outs[n + 3 * k : n + 3 * k + 3]
        )
        units = orig.attrs.get("units", "")
        for key, sp in ((f"spread_prior_{vname}", sp0), (f"spread_posterior_{vname}", sp1)):
            spreads[key] = sp.assign_attrs(units=units, long_name=f"ensemble spread of {vname}")
        if _bounds(vname, params, bounds) is not None:
            bound_adj.append((vname, adj, units))
    return analysis, (*outs[4 * n :], spreads, bound_adj)


def _single_pass_block(
    HE,
    y,
    R,
    pix,
    *rest,
    spec,
    mode,
    infl,
    gross,
    seed,
    cycle,
    purpose,
    overwrite=False,
    diagnostics=False,
):
    """Block of :func:`K.one_obs_update`: loop (spatial) dims first, core dims last.

    ``overwrite``: a variable whose (N, L, X) view is C-contiguous and writeable gets
    its analysis in that memory (the block's own input). ``diagnostics``: then, per
    variable, its prior and posterior spread and bound change, and per pixel the
    innovation, its expected deviation, used and rejected flags.
    """
    shape = HE.shape[:-1]  # the block's pixels
    X = int(np.prod(shape))
    y, R, pix = (np.broadcast_to(x, shape).reshape(-1) for x in (y, R, pix))
    _check_variances_1obs(R, np.isfinite(y))
    E, lo, hi, it = [], [], [], iter(rest)
    for n_extra, bspec in spec:
        e = next(it)  # (*shape, N[, L]) → (N, L, X), a view of a members-first array
        e = np.moveaxis(
            e, (len(shape), len(shape) + 1) if n_extra else len(shape), (0, 1) if n_extra else 0
        )
        E.append(e.reshape(e.shape[0], -1, X))  # a copy only if not members-first in memory
        for dst, b in zip((lo, hi), bspec, strict=True):
            if isinstance(b, float):
                dst.append(b)
                continue
            arr = next(it)  # (*loop dims[, L])
            lev = arr.shape[-1] if b else 1
            arr = np.broadcast_to(arr, (*shape, lev) if b else shape)
            dst.append(np.moveaxis(arr, -1, 0).reshape(lev, X) if b else arr.reshape(1, X))
    dest = None
    if overwrite:
        dest = [
            e if e.flags.c_contiguous and e.flags.writeable and e.dtype == np.float64 else None
            for e in E
        ]
    key = (infl, gross, seed, cycle, purpose, mode)  # weights and random numbers
    out = K.one_obs_update(
        np.moveaxis(HE, -1, 0), y, R, pix, E, lo, hi, *key, out=dest, diagnostics=diagnostics
    )
    if diagnostics:
        out, dg = out
    res = []
    for (n_extra, _), o in zip(spec, out, strict=True):
        o = o.reshape(o.shape[0], o.shape[1], *shape)  # (N, L, *shape)
        res.append(np.moveaxis(o, (0, 1), (-2, -1)) if n_extra else np.moveaxis(o[:, 0], 0, -1))
    if diagnostics:
        for k, (n_extra, _) in enumerate(spec):
            for key in ("spread_prior", "spread_posterior", "bound_adjustment"):
                x = dg[key][k].reshape(-1, *shape)  # (L, *shape)
                res.append(np.moveaxis(x, 0, -1) if n_extra else x[0])
        res += [dg[key].reshape(shape) for key in ("innovation", "expected", "used", "rejected")]
    return tuple(res) if len(res) > 1 else res[0]


def _members_first(x):
    """(..., N) block with member last → C-contiguous (N, prod(...)) (a view when possible)."""
    x = np.moveaxis(x, -1, 0)
    return np.ascontiguousarray(x).reshape(x.shape[0], -1)


def _members_last(x2d, shape):
    """Inverse of :func:`_members_first`: (N, prod(...)) → a (..., N) view."""
    return np.moveaxis(x2d.reshape(shape[-1], *shape[:-1]), 0, -1)


def _weights_block(HE, y, R, pix, *, mode, infl, gross, seed, cycle, purpose):
    """Block of :func:`K.one_obs_weights`; blocks (..., N) in and out, members last."""
    shape = HE.shape
    y, R, pix = (np.broadcast_to(x, shape[:-1]).reshape(-1) for x in (y, R, pix))
    _check_variances_1obs(R, np.isfinite(y))
    with np.errstate(invalid="ignore"):
        u, v, *rest = K.one_obs_weights(
            _members_first(HE), y, R, pix, infl, gross, seed, cycle, purpose, mode
        )
    return (
        _members_last(u, shape),
        _members_last(v, shape),
        *(r.reshape(shape[:-1]) for r in rest),
    )


def _apply_block(E, u, v, a, lo, hi, *, rtpp, rtps):
    """Block of :func:`K.apply_weights`: ``E`` (..., sy, sx, N), ``u``/``v`` (sy, sx, N)."""
    shape = E.shape
    a = np.broadcast_to(a, shape[-3:-1]).reshape(-1) if len(shape) > 2 else a
    lo, hi = (np.broadcast_to(x, shape[:-1]).reshape(-1) for x in (lo, hi))
    with np.errstate(invalid="ignore"):
        out, *stats = K.apply_weights(
            _members_first(E), _members_first(u), _members_first(v), a, rtpp, rtps, lo, hi
        )
    return (_members_last(out, shape), *(x.reshape(shape[:-1]) for x in stats))


def _check_variances_1obs(R, present):
    bad = present & ~(R > 0)
    if np.any(bad):
        what = "missing (NaN)" if np.any(present & np.isnan(R)) else "not positive"
        raise ObservationError(
            f"observation-error variance R is {what} for {int(bad.sum())} present observation(s)"
        )


def _bound_arrays(name, params, bounds, orig):
    """``(lo, hi, has_bounds)`` for :func:`apply_weights`: floats or aligned DataArrays."""
    b = _bounds(name, params, bounds)
    if b is None:
        return -np.inf, np.inf, False
    out = []
    for val, inf in zip(b, (-np.inf, np.inf), strict=True):
        val = params[val] if isinstance(val, str) else val
        if val is None:
            out.append(inf)
        elif isinstance(val, xr.DataArray):
            val = val.astype("f8")
            idx = {
                d: orig[d]
                for d in val.dims
                if d in val.indexes
                and d in orig.indexes
                and not val.indexes[d].equals(orig.indexes[d])
            }
            out.append(val.sel(idx) if idx else val)
        else:
            out.append(float(val))
    return out[0], out[1], True


def _finish(ens, filt, seed, cycle, analysis, diagnostics, return_diagnostics):
    """The analysis Dataset (and, if asked, the diagnostics: ``diagnostics()``)."""
    if all(da.dims == ens[n].dims and da.shape == ens[n].shape for n, da in analysis.items()):
        # new data in the same variables (attrs, encoding and coords kept): no alignment
        data = {n: (analysis[n] if n in analysis else ens[n]).data for n in ens.data_vars}
        out = ens.copy(data=data)
    else:
        out = ens.copy()
        for name, da in analysis.items():
            out[name] = da
    add_history(out, f"assimilate: {filt!r}, seed={seed}, cycle={cycle}")
    if not return_diagnostics:
        return out
    dds = xr.Dataset(diagnostics())
    dds.attrs["filter"] = repr(filt)
    return out, add_history(dds, f"assimilate diagnostics: {type(filt).__name__}")


def _q_vector(Q, layout, n):
    if Q is None:
        return np.zeros(n)
    if isinstance(Q, Mapping):
        parts = []
        for name, extra, size in layout:
            v = np.asarray(Q.get(name, 0.0), float)
            if v.ndim > 1 or v.size not in (1, size):
                raise FilterError(
                    f"Q[{name!r}] must be one variance or one per {extra or 'element'} "
                    f"({size} values); got {v.size}"
                )
            if not np.all(np.isfinite(v)) or np.any(v < 0):
                raise FilterError(f"Q[{name!r}] must hold finite variances >= 0; got {v.tolist()}")
            parts.append(np.broadcast_to(v, (size,)))
        return np.concatenate(parts)
    return np.broadcast_to(np.asarray(Q, float), (n,)).copy()


def _screen(HE, y, R, gross, wm=None, wc=None):
    return apply_kernel(
        partial(_screen_block, gross=gross, wm=wm, wc=wc),
        HE,
        y,
        R,
        input_core_dims=[["member", "obs"], ["obs"], ["obs"]],
        output_core_dims=[["obs"]] * 6,
        output_dtypes=["f8", "f8", "f8", "f8", "i1", "i1"],
    )


def _obs_labels(olayout):
    labels = []
    for name, extra, size in olayout:
        labels += [name] if extra is None else [f"{name}[{i}]" for i in range(size)]
    return labels


def _diagnostics(HE, y, R, filt, olayout, ens, screen_kw):
    sdims = spatial_dims(ens)
    _, _, innov, expected, used, rejected = _screen(HE, y, R, filt.gross_error, **screen_kw)
    labels = _obs_labels(olayout)
    ren = {"obs": "obs_variable"}
    innov = innov.rename(ren).assign_coords(obs_variable=labels)
    expected = expected.rename(ren).assign_coords(obs_variable=labels)
    out = {
        "innovation": innov.assign_attrs(long_name="innovation y - H(x) of the ensemble mean"),
        "innovation_expected_std": expected.assign_attrs(
            long_name="expected innovation standard deviation sqrt(HPH^T + R)"
        ),
        "innovation_mean": innov.mean(sdims).assign_attrs(long_name="domain-mean innovation"),
        "innovation_std": innov.std(sdims).assign_attrs(
            long_name="domain standard deviation of the innovations"
        ),
        "n_used": used.sum("obs").astype("i4").assign_attrs(long_name="observations used"),
        "n_rejected": rejected.sum("obs")
        .astype("i4")
        .assign_attrs(long_name="observations rejected by the gross-error check"),
    }
    return out


def _spread(da, w):
    """Ensemble standard deviation over ``member`` (weighted with (wm, wc) if given)."""
    if w is None:
        s = da.std("member", ddof=1)
    else:
        wm, wc = w
        mean = (da * wm).sum("member")
        s = np.sqrt(np.abs((wc * (da - mean) ** 2).sum("member")))
    s.attrs = {"units": da.attrs.get("units", ""), "long_name": f"ensemble spread of {da.name}"}
    return s
