"""Surface water (lazy Otsu, water bodies across chunks, areas, size classes) and trends.

Synthetic lakes with a known truth: area recovered within 2 %, counts exact for bodies
≥ 4 px; Mann–Kendall / Theil–Sen check values E22–E23 and agreement with scipy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import xldas  # noqa: F401
from tests.helpers import raise_if_dask_computes
from xldas.errors import DimensionError, UnknownOptionError
from xldas.retrieval import _kernels as K
from xldas.retrieval import (
    cell_area_km2,
    otsu_threshold,
    trend,
    water_area_by_class,
    water_bodies,
    water_composite,
    water_mask,
)

RES = 0.001  # degrees (~100 m)


def _lakes(n=300, seed=0):
    """A lat/lon scene with disk-shaped lakes (some of 1-3 px) and the truth mask."""
    rng = np.random.default_rng(seed)
    lat = 39.0 - RES * (np.arange(n) + 0.5)
    lon = 100.0 + RES * (np.arange(n) + 0.5)
    yy, xx = np.mgrid[0:n, 0:n]
    truth = np.zeros((n, n), bool)
    centres = [(40, 40, 12), (40, 120, 6), (150, 60, 25), (64, 64, 3), (200, 200, 40),
               (120, 250, 9), (260, 40, 2.2), (270, 270, 1.5), (100, 180, 4)]  # fmt: skip
    for cy, cx, r in centres:
        truth |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    truth[10, 290] = True  # 1 px
    truth[290, 10:12] = True  # 2 px
    truth[5, 150:153] = True  # 3 px, straight
    green = np.where(truth, 0.06, 0.08) + rng.normal(0, 0.004, (n, n))
    swir1 = np.where(truth, 0.01, 0.25) + rng.normal(0, 0.01, (n, n))
    ds = xr.Dataset(
        {"green": (("lat", "lon"), green), "swir1": (("lat", "lon"), swir1)},
        coords={"lat": lat, "lon": lon},
    )
    return ds, xr.DataArray(truth, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})


def test_cell_area_geodesic_and_projected():
    from pyproj import Geod

    lat = 39.0 - RES * (np.arange(50) + 0.5)
    lon = 100.0 + RES * (np.arange(50) + 0.5)
    a = cell_area_km2(
        xr.DataArray(np.zeros((50, 50)), dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    )
    west, east = 100.0, 100.0 + 50 * RES
    south, north = 39.0 - 50 * RES, 39.0
    box = abs(Geod(ellps="WGS84").polygon_area_perimeter([west, east, east, west],
                                                          [south, south, north, north])[0]) / 1e6  # fmt: skip
    assert float(a.sum()) == pytest.approx(box, rel=1e-6)
    proj = xr.DataArray(
        np.zeros((3, 4)), dims=("y", "x"), coords={"y": [0.0, 30, 60], "x": [0.0, 30, 60, 90]}
    )
    assert float(cell_area_km2(proj)[0, 0]) == pytest.approx(0.0009)


def test_synthetic_lakes_areas_and_counts():
    ds, truth = _lakes()
    lazy = ds.chunk({"lat": 64, "lon": 64})  # lakes cross chunk boundaries
    with raise_if_dask_computes():
        w = lazy.ldas.water_mask(tile_size=64)
    assert int(w.otsu_tiles) > 0 and -0.8 < float(w.threshold) < 0.6
    bodies = w.ldas.water_bodies()
    # truth: label the truth mask with the same rules
    ref = water_bodies(truth.astype(float))
    assert bodies.attrs["n_bodies"] == ref.attrs["n_bodies"] == 9  # 1-3 px bodies dropped
    assert (bodies.n_pixels >= 4).all()
    a = np.sort(bodies.area_km2.values)
    t = np.sort(ref.area_km2.values)
    np.testing.assert_allclose(a, t, rtol=0.02)
    assert float(bodies.area_km2.sum()) == pytest.approx(float(ref.area_km2.sum()), rel=0.02)
    # the largest lake (r = 40 px) against the disk area π r² on the ellipsoid
    big = float(a.max())
    assert big == pytest.approx(np.pi * 40**2 * float(cell_area_km2(truth)[200, 200]), rel=0.02)
    # labels are a lazy image, consistent with the table
    assert bodies.labels.chunks is not None
    assert int((bodies.labels > 0).sum()) >= int(bodies.n_pixels.sum())
    assert set(bodies.size_class_name.values) <= {f"{a:g}-{b:g} km2" for a, b in zip(
        [0, 0.01, 0.1, 1, 10, 100], [0.01, 0.1, 1, 10, 100, np.inf])}  # fmt: skip


def test_connectivity_changes_counts():
    m = np.zeros((10, 10))
    m[2:4, 2:4] = 1
    m[4:6, 4:6] = 1  # touches the first block diagonally only
    w = xr.DataArray(m, dims=("y", "x"), coords={"y": np.arange(10.0), "x": np.arange(10.0)})
    assert water_bodies(w, connectivity=8).attrs["n_bodies"] == 1
    assert water_bodies(w, connectivity=4).attrs["n_bodies"] == 2
    with pytest.raises(UnknownOptionError):
        water_bodies(w, connectivity=6)
    with pytest.raises(DimensionError):
        water_bodies(w.expand_dims(time=2))


def test_water_area_by_class_dask_equals_numpy_and_trend():
    truth = _lakes()[1].isel(lat=slice(0, 200), lon=slice(0, 200))
    years = pd.date_range("2000-01-01", periods=4, freq="YS")
    stack = xr.concat([truth.shift(lon=i * 5, fill_value=False) for i in range(4)], dim="time")
    grow = xr.concat([stack.isel(time=i) | (truth.shift(lat=1, fill_value=False) & (i > 2))
                      for i in range(4)], dim="time").assign_coords(time=years).astype(float)  # fmt: skip
    eager = water_area_by_class(grow)
    with raise_if_dask_computes():
        lazy = water_area_by_class(grow.chunk({"lat": 100, "lon": 100}))  # dask-image path
        lazy1 = water_area_by_class(grow.chunk({"time": 2}))  # one chunk per scene
    xr.testing.assert_allclose(lazy.compute(), eager)
    xr.testing.assert_allclose(lazy1.compute(), eager)
    n0 = water_bodies(stack.isel(time=0).astype(float)).attrs["n_bodies"]
    assert eager["count"].sum("size_class").values[0] == n0
    tr = eager.area_km2.sum("size_class").ldas.trend()
    assert float(tr.slope) > 0 and tr.slope.attrs["units"] == "km2 yr-1"


def test_otsu_threshold_numpy_equals_dask_and_fallback():
    rng = np.random.default_rng(3)
    v = np.where(rng.random((2, 96, 96)) < 0.4, 0.4, -0.5) + rng.normal(0, 0.08, (2, 96, 96))
    v[1] = -0.5 + rng.normal(0, 0.05, (96, 96))  # scene without water: no bimodal tile
    da = xr.DataArray(v, dims=("time", "y", "x"))
    thr_np, n_np = otsu_threshold(da, tile_size=32)
    with raise_if_dask_computes():
        thr_d, n_d = otsu_threshold(da.chunk({"y": 48, "x": 40}), tile_size=32)
    np.testing.assert_allclose(thr_d.values, thr_np.values)
    np.testing.assert_array_equal(n_d.values, n_np.values)
    assert n_np.values[0] == 9 and n_np.values[1] == 0
    assert -0.3 < thr_np.values[0] < 0.3 and thr_np.values[1] == 0.0  # fallback
    # SAR backscatter: water is the low class
    s0 = xr.DataArray(
        np.where(v[0] > 0, -22.0, -9.0) + rng.normal(0, 1.0, (96, 96)), dims=("y", "x")
    )
    ws = water_mask(s0, index="sigma0", tile_size=32)
    assert float(((ws == 1) == (v[0] > 0)).mean()) > 0.99


def test_water_composite():
    t = pd.date_range("2020-01-01", periods=6, freq="120D")
    m = xr.DataArray(
        [[1.0], [1.0], [np.nan], [0.0], [1.0], [0.0]], dims=("time", "x"), coords={"time": t}
    )
    c = water_composite(m)
    assert c.occurrence.values.ravel().tolist() == pytest.approx([2 / 3, 0.5])
    assert c.water.values.ravel().tolist() == [1.0, 1.0]


# --------------------------------------------------------------------- trends
def test_e22_e23_mann_kendall_sen():
    r = trend(xr.DataArray(np.arange(1.0, 6.0), dims="time", coords={"time": np.arange(5.0)}))
    assert float(r.mk_s) == 10 and float(r.mk_var_s) == pytest.approx(16.6667, abs=1e-4)
    assert float(r.mk_z) == pytest.approx(2.204541, abs=1e-6)
    assert float(r.p_value) == pytest.approx(0.027486, abs=1e-6) and float(r.slope) == 1.0
    x = xr.DataArray([3.1, 2.9, 3.6, 3.4, 4.0, 3.8, 4.4, 4.4, 5.0, 4.7], dims="time",
                     coords={"time": np.arange(10.0)})  # fmt: skip
    r = x.ldas.trend()
    assert float(r.mk_s) == 36 and float(r.mk_var_s) == 124
    assert float(r.mk_z) == pytest.approx(3.143093, abs=1e-6)
    assert float(r.p_value) == pytest.approx(0.001672, abs=1e-6)
    assert float(r.slope) == pytest.approx(0.225)
    assert (float(r.slope_low), float(r.slope_high)) == pytest.approx((0.15, 0.30))
    assert bool(r.significant)


def test_trend_kernel_equals_numpy_and_scipy():
    rng = np.random.default_rng(4)
    x = np.round(rng.normal(0, 1, (40, 15)) + 0.1 * np.arange(15), 1)  # ties
    x[3, [2, 7]] = np.nan
    t = np.arange(15.0) + np.r_[0, 0, 0.5, np.zeros(12)]
    z = stats.norm.ppf(0.975)
    nb = K.mann_kendall_sen_kernel(x, t, z)
    ref = K.mann_kendall_sen_np(x, t, z)
    for a, b in zip(nb, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True)
    for i in (0, 3, 17):
        ok = np.isfinite(x[i])
        ts = stats.theilslopes(x[i][ok], t[ok], 0.95)
        assert nb[0][i] == pytest.approx(ts.slope) and nb[1][i] == pytest.approx(ts.intercept)
        assert (nb[6][i], nb[7][i]) == pytest.approx((ts.low_slope, ts.high_slope))
        tau = stats.kendalltau(t[ok], x[i][ok])
        assert np.sign(nb[2][i]) == np.sign(tau.statistic)


def test_trend_dask_lazy_dataset_and_datetime():
    rng = np.random.default_rng(5)
    t = pd.date_range("2001-01-01", periods=12, freq="YS")
    ds = xr.Dataset(
        {"tree_cover": (("time", "y", "x"), 30 + 0.5 * np.arange(12)[:, None, None] + rng.normal(0, 0.2, (12, 6, 5)),
                        {"units": "%"}),
         "static": (("y", "x"), np.ones((6, 5)))},
        coords={"time": t},
    )  # fmt: skip
    eager = ds.ldas.trend()
    with raise_if_dask_computes():
        lazy = ds.chunk({"time": 4, "y": 3}).ldas.trend()
    xr.testing.assert_allclose(lazy.compute(), eager)
    assert "tree_cover_slope" in eager and "static_slope" not in eager
    assert eager.tree_cover_slope.attrs["units"] == "% yr-1"
    np.testing.assert_allclose(eager.tree_cover_slope.values, 0.5 * 365.25 / 365.25, atol=0.1)
    with pytest.raises(DimensionError):
        trend(ds.static)
