"""Irrigated cropland mapping (CIrrMap250-type, SCIENCE.md §A5) and irrigation water use (§A6).

**Map** (:func:`irrigation_map`): (1) suitability S ∈ [0, 1] by reclassifying elevation,
slope, distance to water and aridity and overlaying them with weights
(:func:`suitability`); (2) growing-season peak greenness (:func:`peak_greenness`); (3) per
region (county) a score threshold t_c chosen so that the cropland area with
score = VI_max·S ≥ t_c equals the irrigated area of the statistics (weighted histograms per
region, a dask reduction; :func:`county_thresholds`); (4) a training pool of pixels well
inside each side of t_c (top / bottom ``pool_fraction`` of the areas), sampled with a
counter-based hash of the global pixel index (independent of chunking); (5) a scikit-learn
random forest (``max_features="sqrt"``) trained on the pool and applied lazily block by block;
(6) a 3 × 3 majority filter; (7) accuracy against reference labels (overall accuracy, Cohen's
κ, producer's/user's accuracy; :func:`accuracy_assessment`) and agreement of mapped areas
with the statistics.

The reclassification edges below follow SCIENCE.md §A5 (slope) or are stated starting
values for the Heihe oases (elevation, distance to water, aridity) [C: to calibrate].

**Irrigation water use** (:func:`irrigation_water_use`): SM2RAIN-type inversion of the
soil-water balance of the sensed layer, I = Z*·ΔS/Δt + a·S^b + E − P (Brocca et al. 2018),
clipped at 0, from consecutive retrievals only (gaps > ``max_gap_days`` give NaN); or the
residual against a rainfed model run (Zaussinger et al. 2019). Totals per month/year and
per region on request.
"""

from __future__ import annotations

import dask
import dask.array as dsa
import numpy as np
import xarray as xr

from xldas._numba import gufunc
from xldas._xr import add_history, apply_kernel, spatial_dims
from xldas.errors import DimensionError, ParameterRangeError, UnknownOptionError
from xldas.physics._common import dispatch, entry, single_chunk
from xldas.retrieval.water import cell_area_km2
from xldas.units import to_units

__all__ = [
    "accuracy_assessment",
    "county_thresholds",
    "irrigation_map",
    "irrigation_water_use",
    "kappa",
    "peak_greenness",
    "region_ids",
    "regional_mean",
    "suitability",
]

#: reclassification tables: (upper class edges, scores of the len(edges)+1 classes)
RECLASS = {
    "slope": ((2.0, 6.0, 15.0, 25.0), (1.0, 0.75, 0.5, 0.25, 0.0)),  # degrees, SCIENCE §A5
    "elevation": ((1500.0, 2500.0, 3500.0, 4500.0), (1.0, 0.75, 0.5, 0.25, 0.0)),  # m [C]
    "distance_to_water": ((1.0, 3.0, 5.0, 10.0), (1.0, 0.75, 0.5, 0.25, 0.0)),  # km [C]
    "aridity": ((0.05, 0.2, 0.5, 0.65), (1.0, 1.0, 0.75, 0.5, 0.25)),  # P/PET [C]
}
DEFAULT_WEIGHTS = {"slope": 0.3, "elevation": 0.2, "distance_to_water": 0.3, "aridity": 0.2}


# ------------------------------------------------------------------- suitability
def _reclass(x, edges, scores):
    x = np.asarray(x, dtype=float)
    out = np.asarray(scores, dtype=float)[np.digitize(x, np.asarray(edges), right=True)]
    return np.where(np.isnan(x), np.nan, out)


def slope_degrees(elevation: xr.DataArray) -> xr.DataArray:
    """Terrain slope (degrees) from elevation (m), lazily (metres per degree on lat/lon grids)."""
    ydim, xdim = spatial_dims(elevation)
    dzdy = elevation.differentiate(ydim)
    dzdx = elevation.differentiate(xdim)
    if ydim == "lat":
        m = 111_320.0
        dzdy = dzdy / m
        dzdx = dzdx / (m * np.cos(np.deg2rad(elevation["lat"])))
    s = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    return s.rename("slope").assign_attrs(units="degree", long_name="terrain slope")


def suitability(weights=None, tables=None, **factors) -> xr.DataArray:
    """Irrigation suitability S = Σ w_k·r_k(x) / Σ w_k over the factors given.

    Parameters
    ----------
    **factors : DataArrays ``elevation`` (m), ``slope`` (degrees; derived from elevation
        when omitted), ``distance_to_water`` (km) and ``aridity`` (P/PET), any subset.
    weights : factor weights (default :data:`DEFAULT_WEIGHTS`, renormalised to the factors
        given).
    tables : overrides of :data:`RECLASS` (``{factor: (edges, scores)}``).

    Examples
    --------
    >>> import xarray as xr
    >>> from xldas.retrieval.irrigation import suitability
    >>> s = suitability(slope=xr.DataArray([1.0, 10.0, 30.0], dims="x", attrs={"units": "degree"}))
    >>> s.values.tolist()
    [1.0, 0.5, 0.0]
    """
    tables = {**RECLASS, **(tables or {})}
    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    units = {"elevation": "m", "slope": "degree", "distance_to_water": "km", "aridity": "1"}
    if "slope" not in factors and factors.get("elevation") is not None:
        factors["slope"] = slope_degrees(factors["elevation"])
    unknown = set(factors) - set(tables)
    if unknown:
        raise UnknownOptionError("suitability factor", sorted(unknown)[0], tables)
    given = {k: v for k, v in factors.items() if v is not None}
    if not given:
        raise ParameterRangeError("suitability needs at least one factor")
    total = 0.0
    wsum = sum(weights[k] for k in given)
    for k, v in given.items():
        if isinstance(v, xr.DataArray) and "units" in v.attrs:
            v = to_units(v, units[k], k)
        edges, scores = tables[k]
        r = apply_kernel(
            _reclass, v, kwargs={"edges": edges, "scores": scores}, output_dtypes=[float]
        )
        total = total + weights[k] / wsum * r
    out = total.rename("suitability") if isinstance(total, xr.DataArray) else total
    if isinstance(out, xr.DataArray):
        out.attrs = {"units": "1", "long_name": "irrigation suitability (weighted overlay)"}
        add_history(out, f"suitability(factors={sorted(given)})")
    return out


def peak_greenness(vi: xr.DataArray, dim: str = "time", months=(4, 10), q: float | None = None):
    """Growing-season peak of a vegetation index: maximum (or quantile ``q``) over ``months``.

    Examples
    --------
    >>> import pandas as pd, xarray as xr
    >>> t = pd.date_range("2020-01-15", periods=12, freq="MS")
    >>> vi = xr.DataArray(range(12), dims="time", coords={"time": t}) / 10
    >>> float(peak_greenness(vi))  # April-October: the October value
    0.8
    """
    if dim not in vi.dims:
        raise DimensionError(f"peak_greenness needs the dimension {dim!r}")
    sel = vi
    if months is not None and np.issubdtype(vi[dim].dtype, np.datetime64):
        m = vi[dim].dt.month
        sel = vi.where((m >= months[0]) & (m <= months[1]), drop=True)
    out = sel.max(dim) if q is None else sel.quantile(q, dim=dim).drop_vars("quantile")
    return out.assign_attrs(
        units="1",
        long_name=f"growing-season {'maximum' if q is None else f'q{q:g}'} of {vi.name or 'VI'}",
    )


# ------------------------------------------------------------------ regions, stats
def region_ids(regions, like: xr.DataArray) -> xr.DataArray:
    """Integer region index per pixel (−1 outside): from regionmask Regions or a label DataArray."""
    ydim, _xdim = spatial_dims(like)
    if isinstance(regions, xr.DataArray):
        rid = regions
    else:
        if ydim != "lat":
            raise DimensionError("regionmask polygons need a lat/lon grid; pass a label DataArray")
        rid = regions.mask(like["lon"], like["lat"])
    return rid.fillna(-1).astype(np.int64).rename("region")


def _region_numbers(regions, rid) -> np.ndarray:
    if isinstance(regions, xr.DataArray):
        return np.unique(np.asarray(rid.values)[np.asarray(rid.values) >= 0])
    return np.asarray(regions.numbers)


def _hist_kernel(rid, score, w, nreg, bins, lo, hi):
    ok = (rid >= 0) & np.isfinite(score) & np.isfinite(w) & (w > 0)
    b = np.clip(((np.where(ok, score, lo) - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1)
    key = np.where(ok, rid * bins + b, 0)
    return np.bincount(key.ravel(), weights=np.where(ok, w, 0.0).ravel(), minlength=nreg * bins)[
        None
    ]


def _region_hist(rid, score, weights, nreg, bins, lo, hi) -> np.ndarray:
    """Weighted histograms of ``score`` per region (nreg, bins), one dask reduction."""
    ydim, xdim = spatial_dims(score)
    args = [a.transpose(ydim, xdim).data for a in (rid, score, weights)]
    if not any(isinstance(a, dsa.Array) for a in args):
        return _hist_kernel(*(np.asarray(a) for a in args), nreg, bins, lo, hi)[0].reshape(
            nreg, bins
        )
    ref = next(a for a in args if isinstance(a, dsa.Array))
    args = [dsa.asarray(a).rechunk(ref.chunks) for a in args]
    per = dsa.map_blocks(
        lambda r, s, w: _hist_kernel(r, s, w, nreg, bins, lo, hi)[None],
        *args, chunks=((1,) * ref.numblocks[0], (1,) * ref.numblocks[1], (nreg * bins,)),
        new_axis=2, dtype=float,
    )  # fmt: skip
    (hist,) = dask.compute(per.sum(axis=(0, 1)))
    return np.asarray(hist).reshape(nreg, bins)


def _region_sums(rid, values, nreg) -> np.ndarray:
    """Sum of ``values`` per region number (computed)."""
    return _region_hist(rid, xr.zeros_like(values), values, nreg, 1, -1.0, 1.0)[:, 0]


def county_thresholds(
    score: xr.DataArray,
    regions,
    statistics,
    cropland=None,
    bins: int = 2000,
    score_range=(0.0, 1.0),
    pool_fraction: float = 0.2,
):
    """Per-region score thresholds matching the irrigated areas of the statistics.

    t_c is chosen so that Σ_{x∈c, score ≥ t_c} f_c(x)·a(x) = A_c (the weighted histogram of
    the scores per region is cumulated from the top). The pool thresholds ``t_hi`` / ``t_lo``
    enclose the top ``pool_fraction`` of the irrigated area and the bottom ``pool_fraction``
    of the remaining cropland.

    Parameters
    ----------
    score : VI_max·S (or any score where irrigated cropland is high), in ``score_range``.
    regions : regionmask ``Regions`` (lat/lon grids) or a DataArray of region numbers.
    statistics : irrigated area per region in km², a mapping region number -> area (or a
        pandas Series indexed by region number).
    cropland : cropland fraction (0–1) per pixel (default 1).

    Returns
    -------
    Dataset (dim ``region``): ``threshold``, ``t_hi``, ``t_lo``, ``irrigated_area_km2``
    (target), ``cropland_area_km2`` (computed: the histograms are a single dask reduction).
    """
    rid = region_ids(regions, score)
    numbers = _region_numbers(regions, rid)
    nreg = int(max(numbers.max() + 1, 1)) if numbers.size else 1
    area = cell_area_km2(score) * (1.0 if cropland is None else cropland)
    lo, hi = map(float, score_range)
    hist = _region_hist(rid, score, area.broadcast_like(score), nreg, bins, lo, hi)
    edges = np.linspace(lo, hi, bins + 1)
    stats = {int(k): float(v) for k, v in dict(statistics).items()}
    rows = []
    for r in numbers:
        h = hist[int(r)]
        total = h.sum()
        target = min(stats.get(int(r), 0.0), total)
        from_top = np.cumsum(h[::-1])[::-1]  # area with score in bin k or above

        def edge_top(a, h_top=from_top):  # lowest bin edge with area-above ≥ a
            k = np.nonzero(h_top >= a)[0]
            return edges[k[-1]] if k.size and a > 0 else hi + 1e-9

        t = edge_top(target)
        t_hi = edge_top(pool_fraction * target)
        from_bottom = np.cumsum(h)
        k = np.nonzero(from_bottom >= pool_fraction * (total - target))[0]
        t_lo = edges[k[0] + 1] if k.size and total - target > 0 else lo - 1e-9
        rows.append((t, t_hi, min(t_lo, t), target, total))
    arr = np.array(rows, dtype=float).reshape(-1, 5)
    names = ("threshold", "t_hi", "t_lo", "irrigated_area_km2", "cropland_area_km2")
    return xr.Dataset(
        {n: ("region", arr[:, i]) for i, n in enumerate(names)}, coords={"region": numbers}
    )


# -------------------------------------------------------------------- sampling, RF
def _splitmix_uniform(iy, ix, seed):
    """Uniform [0, 1) from a splitmix64 hash of (seed, row, column): chunking-independent."""
    with np.errstate(over="ignore"):
        z = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
             + np.asarray(iy, dtype=np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
             + np.asarray(ix, dtype=np.uint64) * np.uint64(0x94D049BB133111EB))  # fmt: skip
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _lookup(rid, table):
    rid = np.asarray(rid)
    return np.where(rid >= 0, np.asarray(table)[np.clip(rid, 0, len(table) - 1)], np.nan)


def _predict_block(*arrays, model=None):
    x = np.stack([np.asarray(a, dtype=float) for a in arrays], axis=-1)
    shape = x.shape[:-1]
    x = x.reshape(-1, x.shape[-1])
    ok = np.isfinite(x).all(axis=1)
    out = np.full(x.shape[0], np.nan, dtype=np.float32)
    if ok.any():
        out[ok] = model.predict(x[ok]).astype(np.float32)
    return out.reshape(shape)


def _majority(block):
    from scipy import ndimage

    valid = np.isfinite(block)
    ones = ndimage.uniform_filter(np.where(block == 1, 1.0, 0.0), 3, mode="nearest")
    n = ndimage.uniform_filter(valid.astype(float), 3, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(ones / n > 0.5, 1.0, 0.0).astype(np.float32)
    return np.where(valid, out, np.nan).astype(np.float32)


def kappa(confusion) -> dict:
    """Overall accuracy, chance agreement p_e and Cohen's κ of a confusion matrix.

    Examples
    --------
    SCIENCE.md E16:

    >>> r = kappa([[45, 5], [10, 40]])
    >>> round(r["overall_accuracy"], 6), round(r["p_e"], 6), round(r["kappa"], 6)
    (0.85, 0.5, 0.7)
    """
    n = np.asarray(confusion, dtype=float)
    tot = n.sum()
    po = np.trace(n) / tot
    pe = float((n.sum(axis=1) * n.sum(axis=0)).sum() / tot**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        pa = np.diag(n) / n.sum(axis=1)  # rows = reference
        ua = np.diag(n) / n.sum(axis=0)  # columns = map
    return {
        "overall_accuracy": float(po),
        "p_e": pe,
        "kappa": float((po - pe) / (1.0 - pe)) if pe < 1 else float("nan"),
        "producers_accuracy": pa.tolist(),
        "users_accuracy": ua.tolist(),
    }


def accuracy_assessment(predicted, reference, classes=(0, 1)) -> dict:
    """Confusion matrix (rows reference, columns map), OA, κ, producer's/user's accuracy.

    ``predicted`` and ``reference`` are arrays/DataArrays on the same grid; pixels where
    either is NaN are skipped. The (sampled) pairs are read into memory.
    """
    p, r = (getattr(v, "data", v) for v in (predicted, reference))
    p, r = (np.asarray(v) for v in dask.compute(p, r))
    ok = np.isfinite(p) & np.isfinite(r)
    p, r = p[ok].astype(int), r[ok].astype(int)
    conf = np.array([[np.sum((r == c) & (p == d)) for d in classes] for c in classes], dtype=float)
    return {"confusion": conf, "n": int(ok.sum()), **kappa(conf)}


def irrigation_map(
    features: xr.Dataset,
    regions,
    statistics,
    score=None,
    vi_max=None,
    suitability_map=None,
    cropland=None,
    reference=None,
    n_samples: int = 2000,
    pool_fraction: float = 0.2,
    n_estimators: int = 100,
    smooth: bool = True,
    seed: int = 0,
    score_range=(0.0, 1.0),
):
    """Irrigated cropland map with statistics-constrained training and a random forest.

    Parameters
    ----------
    features : Dataset of per-pixel features (e.g. monthly VIs, VI_max, LSWI, suitability),
        dims ``lat``/``lon`` or ``y``/``x`` (dask chunks are kept).
    regions, statistics : counties (regionmask Regions or region-number DataArray) and their
        irrigated areas (km²), see :func:`county_thresholds`.
    score : ranking score; default ``vi_max·suitability_map`` (VI clipped to [0, 1]).
    cropland : cropland fraction (0–1); the map is NaN where it is 0 or NaN (default 1).
    reference : optional reference labels (1 irrigated, 0 rainfed, NaN none) for accuracy.
    n_samples : training pixels drawn per class. pool_fraction : see :func:`county_thresholds`.
    n_estimators : trees of the random forest. smooth : 3 × 3 majority filter.
    seed : seeds the pixel sampling hash and the forest.

    Returns
    -------
    (map, report): map is a lazy DataArray ``irrigated`` (1, 0, NaN); report is a dict with
    ``thresholds`` (Dataset), ``training`` (samples per class), ``model`` (the fitted forest),
    ``statistics_agreement`` (Dataset of mapped vs reported area per region) and, with
    ``reference``, the accuracy figures of :func:`accuracy_assessment`.
    """
    from sklearn.ensemble import RandomForestClassifier

    if score is None:
        if vi_max is None or suitability_map is None:
            raise ParameterRangeError(
                "irrigation_map needs score= or both vi_max= and suitability_map="
            )
        score = vi_max.clip(0.0, 1.0) * suitability_map
    ydim, xdim = spatial_dims(score)
    crop = xr.ones_like(score) if cropland is None else cropland
    thr = county_thresholds(score, regions, statistics, crop, score_range=score_range,
                            pool_fraction=pool_fraction)  # fmt: skip
    rid = region_ids(regions, score)
    nreg = int(max(thr.region.max().item() + 1, 1))

    def table(name, fill):
        t = np.full(nreg, fill)
        t[thr.region.values.astype(int)] = thr[name].values
        return t

    t_hi = apply_kernel(
        _lookup, rid, kwargs={"table": table("t_hi", np.inf)}, output_dtypes=[float]
    )
    t_lo = apply_kernel(
        _lookup, rid, kwargs={"table": table("t_lo", -np.inf)}, output_dtypes=[float]
    )
    iy = xr.DataArray(np.arange(score.sizes[ydim]), dims=ydim)
    ix = xr.DataArray(np.arange(score.sizes[xdim]), dims=xdim)
    u = apply_kernel(_splitmix_uniform, iy, ix, kwargs={"seed": seed}, output_dtypes=[float])
    is_crop = crop > 0
    feats = [features[v].transpose(ydim, xdim) for v in features.data_vars]
    all_ok = is_crop
    for f in feats:
        all_ok = all_ok & f.notnull()
    pos_pool = (score >= t_hi) & all_ok
    neg_pool = (score <= t_lo) & all_ok
    n_pos, n_neg = dask.compute(pos_pool.sum().data, neg_pool.sum().data)
    n_pos, n_neg = int(n_pos), int(n_neg)
    if n_pos == 0 or n_neg == 0:
        raise ParameterRangeError(
            f"empty training pool (irrigated {n_pos}, rainfed {n_neg} pixels): check statistics"
        )
    take_pos = pos_pool & (u < min(1.0, n_samples / n_pos))
    take_neg = neg_pool & (u < min(1.0, n_samples / n_neg))
    label = xr.where(take_pos, 1.0, xr.where(take_neg, 0.0, np.nan)).transpose(ydim, xdim)
    cols = [a.transpose(ydim, xdim).data for a in (label, *feats)]
    if any(isinstance(c, dsa.Array) for c in cols):
        mat = dsa.stack([dsa.asarray(c).reshape(-1) for c in cols])
        (sample,) = dask.compute(mat[:, dsa.isfinite(mat[0])])
    else:
        mat = np.stack([np.asarray(c).reshape(-1) for c in cols])
        sample = mat[:, np.isfinite(mat[0])]
    y, x = sample[0], sample[1:].T
    rf = RandomForestClassifier(
        n_estimators=n_estimators, max_features="sqrt", random_state=seed, n_jobs=1,
        class_weight="balanced",
    )  # fmt: skip
    rf.fit(x, y.astype(int))
    pred = apply_kernel(_predict_block, *feats, kwargs={"model": rf}, output_dtypes=[np.float32])
    pred = pred.where(is_crop)
    if smooth:
        data = pred.transpose(ydim, xdim).data
        if isinstance(data, dsa.Array):
            data = data.map_overlap(_majority, depth=1, boundary="none", dtype=np.float32)
        else:
            data = _majority(np.asarray(data))
        pred = pred.transpose(ydim, xdim).copy(data=data)
    pred = pred.rename("irrigated")
    pred.attrs = {
        "units": "1",
        "long_name": "irrigated cropland (1 irrigated, 0 rainfed)",
        "flag_values": np.array([0.0, 1.0], dtype=np.float32),
        "flag_meanings": "rainfed irrigated",
    }
    add_history(pred, f"irrigation_map(random forest, {n_estimators} trees, {len(y)} samples)")
    area = (cell_area_km2(score) * crop).transpose(ydim, xdim)
    mapped_v = _region_sums(rid, (pred.fillna(0.0) * area).transpose(ydim, xdim), nreg)
    agreement = xr.Dataset(
        {
            "mapped_km2": ("region", mapped_v[thr.region.values.astype(int)]),
            "reported_km2": ("region", thr.irrigated_area_km2.values),
        },
        coords={"region": thr.region.values},
    )
    agreement["relative_difference"] = (
        agreement.mapped_km2 - agreement.reported_km2
    ) / agreement.reported_km2
    report = {
        "thresholds": thr,
        "training": {"irrigated": int((y == 1).sum()), "rainfed": int((y == 0).sum())},
        "model": rf,
        "statistics_agreement": agreement,
    }
    if reference is not None:
        report.update(accuracy_assessment(pred, reference.transpose(ydim, xdim)))
    return pred, report


# ----------------------------------------------------------- irrigation water use
@gufunc(
    ["void(float64[:], float64[:], float64[:], float64[:], float64, float64, float64, float64,"
     " float64, float64, float64[:])"],
    "(t),(t),(t),(t),(),(),(),(),(),()->(t)",
)  # fmt: skip
def iwu_kernel(t_days, s, p, e, z_star, a, b, kc, potential, max_gap, out):
    """SM2RAIN-type irrigation per interval between consecutive valid S (mm); NaN elsewhere."""
    last = -1
    p_acc = 0.0
    e_acc = 0.0
    for i in range(s.shape[0]):
        out[i] = np.nan
        if i > 0 and last >= 0:
            dt = t_days[i] - t_days[i - 1]
            p_acc += p[i] * dt
            e_acc += e[i] * dt
        if np.isnan(s[i]):
            continue
        if last >= 0 and t_days[i] - t_days[last] <= max_gap:
            dt_tot = t_days[i] - t_days[last]
            evap = kc * e_acc * s[i] if potential > 0.5 else e_acc
            irr = z_star * (s[i] - s[last]) + a * s[i] ** b * dt_tot + evap - p_acc
            out[i] = max(irr, 0.0) if not np.isnan(irr) else np.nan
        last = i
        p_acc = 0.0
        e_acc = 0.0


def iwu_np(t_days, s, p, e, z_star, a, b, kc, potential, max_gap):
    """NumPy reference of :func:`iwu_kernel` (loop over time, vectorised over pixels)."""
    s = np.asarray(s, dtype=float)
    shp = s.shape
    t_days = np.broadcast_to(t_days, shp)
    p = np.broadcast_to(p, shp)
    e = np.broadcast_to(e, shp)
    z_star, a, b, kc, potential, max_gap = (
        np.broadcast_to(np.asarray(v, dtype=float), shp[:-1])
        for v in (z_star, a, b, kc, potential, max_gap)
    )
    out = np.full(shp, np.nan)
    last_s = np.full(shp[:-1], np.nan)
    last_t = np.full(shp[:-1], np.nan)
    p_acc = np.zeros(shp[:-1])
    e_acc = np.zeros(shp[:-1])
    for i in range(shp[-1]):
        if i > 0:
            dt = t_days[..., i] - t_days[..., i - 1]
            has = ~np.isnan(last_s)
            p_acc = np.where(has, p_acc + p[..., i] * dt, p_acc)
            e_acc = np.where(has, e_acc + e[..., i] * dt, e_acc)
        si = s[..., i]
        valid = ~np.isnan(si)
        dt_tot = t_days[..., i] - last_t
        ok = valid & ~np.isnan(last_s) & (dt_tot <= max_gap)
        evap = np.where(potential > 0.5, kc * e_acc * si, e_acc)
        with np.errstate(invalid="ignore"):
            irr = z_star * (si - last_s) + a * np.abs(si) ** b * dt_tot + evap - p_acc
        out[..., i] = np.where(ok, np.where(np.isnan(irr), np.nan, np.maximum(irr, 0.0)), np.nan)
        last_s = np.where(valid, si, last_s)
        last_t = np.where(valid, t_days[..., i], last_t)
        p_acc = np.where(valid, 0.0, p_acc)
        e_acc = np.where(valid, 0.0, e_acc)
    return out


IWU_DEFAULTS = {
    "z_star": 80.0,  # mm
    "a": 10.0,  # mm d-1
    "b": 5.0,
    "kc": 1.0,
    "theta_r": 0.0,
    "theta_s": None,  # required unless sm is already a relative saturation
    "max_gap_days": 3.0,
    "et_kind": "actual",  # "actual" (E given) or "potential" (E = Kc·ET_pot·S)
}


def _rate_mm_d(x, name):
    if isinstance(x, xr.DataArray) and "units" in x.attrs:
        return to_units(x, "mm d-1", name)
    return x


def _days(coord):
    if np.issubdtype(coord.dtype, np.datetime64):
        return ((coord - coord[0]) / np.timedelta64(1, "D")).astype(float)
    return coord.astype(float)


def regional_mean(da, regions):
    """Area-weighted mean of ``da`` over each region (lazy groupby, dim ``region``)."""
    rid = region_ids(regions, da)
    w = cell_area_km2(da)
    num = (da * w).groupby(rid).sum()
    den = (w * da.notnull()).groupby(rid).sum()
    out = num / den
    return out.sel(region=out.region >= 0)


def irrigation_water_use(
    sm,
    precip,
    et,
    params=None,
    method: str = "sm_inversion",
    rainfed=None,
    freq: str | None = None,
    regions=None,
    dim: str = "time",
    *,
    engine: str | None = None,
) -> xr.Dataset:
    """Irrigation water use from satellite soil moisture (SCIENCE.md §A6).

    Parameters
    ----------
    sm : surface soil moisture (m3 m-3) with dimension ``dim`` (one chunk is made).
    precip : precipitation rate over each step ending at the timestamp (mm d-1 or
        kg m-2 s-1, converted).
    et : actual evaporation (``et_kind="actual"``) or potential ET (``"potential"``:
        E = Kc·ET_pot·S), same units as ``precip``; for ``"model_residual"`` the observed ET.
    params : overrides of :data:`IWU_DEFAULTS` (``z_star`` mm, ``a`` mm d-1, ``b``, ``kc``,
        ``theta_r``, ``theta_s``, ``max_gap_days``, ``et_kind``); numbers or DataArrays.
    method : ``"sm_inversion"`` (SM2RAIN, Brocca et al. 2018) or ``"model_residual"``
        (I = Z·(ΔS_obs − ΔS_rainfed) + (ET_obs − ET_rainfed)·Δt (+ drainage difference), clipped
        at 0; needs ``rainfed`` = Dataset with ``sm`` and ``et`` (and optional ``drainage``)
        of a no-irrigation model run, and ``params["z_star"]`` as the layer depth in mm).
    freq : resample totals (``"MS"``, ``"YS"`` ...) into ``irrigation_total``.
    regions : regionmask Regions or region DataArray: adds ``irrigation_regional`` (mean
        depth per region of the totals, or of the series).

    Returns
    -------
    Dataset: ``irrigation`` (mm per interval ending at each time, NaN where no estimate),
    optionally ``irrigation_total`` (mm per period) and ``irrigation_regional``.

    Examples
    --------
    SCIENCE.md E17 (Z* = 80 mm, a = 10 mm/d, b = 5, S 0.5 → 0.6 in 1 d, E = 3 mm, P = 0):

    >>> import xarray as xr
    >>> from xldas.retrieval import irrigation_water_use
    >>> sm = xr.DataArray([0.5, 0.6], dims="time", coords={"time": [0.0, 1.0]}, attrs={"units": "m3 m-3"})
    >>> out = irrigation_water_use(sm, precip=0.0, et=3.0, params={"theta_s": 1.0})
    >>> round(float(out.irrigation[1]), 4)
    11.7776
    """
    if method not in ("sm_inversion", "model_residual"):
        raise UnknownOptionError("method", method, ("sm_inversion", "model_residual"))
    if dim not in sm.dims:
        raise DimensionError(f"irrigation_water_use needs the dimension {dim!r}")
    p = {**IWU_DEFAULTS, **(params or {})}
    sm = single_chunk(entry(sm, "m3 m-3", "sm"), dim)
    t = _days(sm[dim])
    if method == "sm_inversion":
        if p["et_kind"] not in ("actual", "potential"):
            raise UnknownOptionError("et_kind", p["et_kind"], ("actual", "potential"))
        if p["theta_s"] is None:
            raise ParameterRangeError("params['theta_s'] (porosity) is needed to form S")
        s = ((sm - p["theta_r"]) / (p["theta_s"] - p["theta_r"])).clip(0.0, 1.0)
        pr = xr.zeros_like(sm) + _rate_mm_d(precip, "precip")
        ev = xr.zeros_like(sm) + _rate_mm_d(et, "et")
        irr = apply_kernel(
            dispatch(iwu_kernel, iwu_np, engine),
            t, s, single_chunk(pr, dim), single_chunk(ev, dim),
            p["z_star"], p["a"], p["b"], p["kc"], float(p["et_kind"] == "potential"),
            p["max_gap_days"],
            input_core_dims=[[dim], [dim], [dim], [dim], [], [], [], [], [], []],
            output_core_dims=[[dim]],
            output_dtypes=[np.float64],
        ).transpose(*sm.dims)  # fmt: skip
        how = "SM2RAIN inversion (Brocca et al. 2018)"
    else:
        if rainfed is None or "sm" not in rainfed or "et" not in rainfed:
            raise ParameterRangeError("method='model_residual' needs rainfed= with 'sm' and 'et'")
        dt = t.diff(dim)
        ds_obs = sm.diff(dim)
        ds_rf = entry(rainfed["sm"], "m3 m-3", "rainfed sm").diff(dim)
        d_et = (_rate_mm_d(et, "et") - _rate_mm_d(rainfed["et"], "rainfed et")).isel(
            {dim: slice(1, None)}
        )
        irr = p["z_star"] * (ds_obs - ds_rf) + d_et * dt
        if "drainage" in rainfed and "drainage" in p:
            d_dr = _rate_mm_d(p["drainage"], "drainage") - _rate_mm_d(
                rainfed["drainage"], "rainfed drainage"
            )
            irr = irr + d_dr.isel({dim: slice(1, None)}) * dt
        irr = irr.clip(min=0.0).reindex({dim: sm[dim]})
        how = "residual against a rainfed model run (Zaussinger et al. 2019)"
    irr = irr.rename("irrigation").assign_attrs(
        units="mm", long_name="irrigation water use per interval ending at the time stamp"
    )
    out = xr.Dataset({"irrigation": irr})
    if freq is not None:
        out["irrigation_total"] = (
            irr.resample({dim: freq}).sum(min_count=1).rename({dim: f"{dim}_{freq}"})
            .assign_attrs(units="mm", long_name=f"irrigation water use total per {freq} period")
        )  # fmt: skip
    if regions is not None:
        base = out["irrigation_total"] if freq is not None else irr
        out["irrigation_regional"] = regional_mean(base, regions).assign_attrs(
            units="mm", long_name="regional mean irrigation water use"
        )
    return add_history(out, f"irrigation_water_use({method}): {how}")
