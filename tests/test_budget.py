"""Water budget: regions, area means, residuals, constrained-KF closure (E35)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from shapely.geometry import box

import xldas
from tests.helpers import raise_if_dask_computes
from xldas.budget import basin_mean, close_budget, closure_kernel, region_masks, water_budget
from xldas.errors import DimensionError, ParameterRangeError, UnitError

G = np.array([1.0, -1, -1, -1])


def test_e35_closure_kernel():
    xc, pc = closure_kernel(np.array([100.0, 60, 30, 5]), np.diag([25.0, 16, 4, 1]), G)
    np.testing.assert_allclose(xc, [97.2826, 61.7391, 30.4348, 5.1087], atol=5e-5)
    np.testing.assert_allclose(np.diag(pc), [11.4130, 10.4348, 3.6522, 0.9783], atol=5e-5)
    assert abs(xc @ G) < 1e-12
    # the posterior covariance is singular along G: the residual is known exactly
    assert abs(G @ pc @ G) < 1e-10


def _budget(values, dims=(), coords=None):
    return xr.Dataset(
        {k: (dims, v, {"units": "mm"}) for k, v in zip(("P", "ET", "Q", "dS"), values)},
        coords=coords,
    )


def test_e35_close_budget_lazy_and_accessor():
    b = _budget([100.0, 60.0, 30.0, 5.0])
    c = b.ldas.close_budget({"P": 5.0, "ET": 4.0, "Q": 2.0, "dS": 1.0})
    assert [round(float(c[k]), 4) for k in ("P", "ET", "Q", "dS")] == [
        97.2826,
        61.7391,
        30.4348,
        5.1087,
    ]
    assert [round(float(c[f"{k}_err"]) ** 2, 4) for k in ("P", "ET", "Q", "dS")] == [
        11.4130,
        10.4348,
        3.6522,
        0.9783,
    ]
    assert abs(float(c.residual)) < 1e-12 and float(c.residual_prior) == 5.0
    # gridded, dask == numpy, lazy; errors as DataArrays and relative strings
    rng = np.random.default_rng(0)
    vals = [
        rng.uniform(50, 150, (10, 6)),
        rng.uniform(20, 60, (10, 6)),
        rng.uniform(0, 30, (10, 6)),
        rng.normal(0, 10, (10, 6)),
    ]
    bg = _budget(vals, dims=("time", "region"))
    errs = {
        "P": "10%",
        "ET": xr.DataArray(np.full(6, 6.0), dims="region", attrs={"units": "mm"}),
        "Q": 3.0,
        "dS": 2.0,
    }
    eager = close_budget(bg, errs)
    with raise_if_dask_computes():
        lazy = close_budget(bg.chunk(time=5), errs)
    xr.testing.assert_allclose(lazy.compute(), eager)
    np.testing.assert_allclose(eager.residual, 0.0, atol=1e-10)
    assert (eager.P_err < eager.P_prior_err).all()


def test_closure_restores_truth_within_uncertainty():
    rng = np.random.default_rng(42)
    n = 4000
    truth = np.stack(
        [rng.uniform(200, 400, n), rng.uniform(100, 200, n), rng.uniform(10, 60, n)], 1
    )
    ds_true = truth[:, 0] - truth[:, 1] - truth[:, 2]
    truth = np.column_stack([truth, ds_true])
    sd = np.array([30.0, 20.0, 5.0, 10.0])
    noisy = truth + sd * rng.standard_normal(truth.shape)
    b = _budget([noisy[:, i] for i in range(4)], dims=("sample",))
    c = close_budget(b, dict(zip(("P", "ET", "Q", "dS"), sd)))
    for i, k in enumerate(("P", "ET", "Q", "dS")):
        z = (c[k].values - truth[:, i]) / c[f"{k}_err"].values
        assert abs(z.std() - 1.0) < 0.05  # posterior errors are calibrated
        prior = np.sqrt(np.mean((noisy[:, i] - truth[:, i]) ** 2))
        post = np.sqrt(np.mean((c[k].values - truth[:, i]) ** 2))
        assert post < prior


def test_close_budget_bad_input():
    b = _budget([100.0, 60.0, 30.0, 5.0])
    with pytest.raises(ParameterRangeError, match="negative"):
        close_budget(b, {"P": 5.0, "ET": -4.0, "Q": 2.0, "dS": 1.0})
    lazy_err = xr.DataArray([-1.0, 2.0], dims="x").chunk(x=1)
    bl = _budget([np.full(2, v) for v in (100.0, 60, 30, 5)], dims=("x",)).chunk(x=1)
    out = close_budget(bl, {"P": lazy_err, "ET": 1.0, "Q": 1.0, "dS": 1.0})
    with pytest.raises(ParameterRangeError, match="negative"):
        out.compute()
    with pytest.raises(DimensionError, match="Q"):
        close_budget(b, {"P": 5.0, "ET": 4.0, "dS": 1.0})
    with pytest.raises(DimensionError, match="dS"):
        close_budget(b.drop_vars("dS"), {"P": 5.0, "ET": 4.0, "Q": 2.0, "dS": 1.0})


def _grid():
    lat = np.arange(38.05, 40.0, 0.1)
    lon = np.arange(99.05, 101.0, 0.1)
    return lat, lon


def test_region_masks_fractional_and_errors(tmp_path):
    lat, lon = _grid()
    g = xr.Dataset(coords={"lat": lat, "lon": lon})
    regions = {"west": box(99.0, 38.0, 100.025, 40.0), "east": box(100.025, 38.0, 101.0, 40.0)}
    m = region_masks(regions, g)
    assert list(m.region.values) == ["west", "east"]
    np.testing.assert_allclose(m.sum("region"), 1.0, atol=1e-12)  # partition of the grid
    col = m.sel(lon=100.05, method="nearest")
    assert 0.0 < float(col.sel(region="west")[0]) < 1.0  # a cut cell is fractional
    # GeoJSON file in another CRS-free form
    path = tmp_path / "r.geojson"
    feats = [
        {
            "type": "Feature",
            "properties": {"name": k},
            "geometry": json.loads(json.dumps(v.__geo_interface__)),
        }
        for k, v in regions.items()
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    m2 = region_masks(path, g)
    xr.testing.assert_allclose(m2, m)
    with pytest.raises(ParameterRangeError, match="'far'"):
        region_masks({**regions, "far": box(10, 10, 11, 11)}, g)
    with pytest.raises(ParameterRangeError, match="nowhere"):
        region_masks(regions, g, names=["nowhere"])


def test_basin_mean_area_weighted_and_lazy():
    lat, lon = _grid()
    rng = np.random.default_rng(1)
    t = pd.date_range("2019-06-01", periods=8, freq="D")
    da = xr.DataArray(
        rng.random((8, lat.size, lon.size)),
        dims=("time", "lat", "lon"),
        coords={"time": t, "lat": lat, "lon": lon},
        attrs={"units": "mm"},
        name="v",
    )
    regions = {"all": box(99.0, 38.0, 101.0, 40.0)}
    out = basin_mean(da, regions)
    w = np.cos(np.deg2rad(lat))[:, None] * np.ones(lon.size)
    expect = (da.values * w).sum((1, 2)) / w.sum()
    np.testing.assert_allclose(out.sel(region="all"), expect, rtol=1e-12)
    with raise_if_dask_computes():
        lazy = da.chunk(time=4, lat=5).to_dataset().ldas.basin_mean(regions)
    xr.testing.assert_allclose(lazy.v.compute(), out)
    assert out.attrs["units"] == "mm"


def test_water_budget_units_periods_and_residual():
    t = pd.date_range("2019-01-01T03", periods=16, freq="3h")
    rate = xr.DataArray(
        np.full(16, 1.0 / 3600.0), dims="time", coords={"time": t}, attrs={"units": "kg m-2 s-1"}
    )
    et = xr.DataArray(np.full(16, 24.0), dims="time", coords={"time": t}, attrs={"units": "mm/day"})
    ds_ = xr.DataArray(np.full(16, 0.5), dims="time", coords={"time": t}, attrs={"units": "kg m-2"})
    b = water_budget(P=rate, ET=et, Q=0.0, dS=ds_, period="D")
    # period-ending 3-hourly steps: day 1 holds 8 (03..24 h), day 2 the other 8
    np.testing.assert_allclose(b.P, [24.0, 24.0])
    np.testing.assert_allclose(b.ET, [24.0, 24.0])
    np.testing.assert_allclose(b.residual, -b.dS)
    with pytest.raises(UnitError, match="ET"):
        water_budget(P=rate, ET=et.assign_attrs(units="K"), Q=0.0, dS=ds_)
    with pytest.raises(UnitError, match="dS"):
        water_budget(P=rate, ET=et, Q=0.0, dS=ds_.drop_attrs())


def test_heihe_twin_closure_restores_truth_within_uncertainty():
    from xldas.budget import heihe_budget

    tree = xldas.demo.heihe_osse(resolution=0.25, days=5)
    r = heihe_budget(tree, seed=0)
    np.testing.assert_allclose(r["truth"].residual, 0.0, atol=1e-3)  # the model conserves water
    np.testing.assert_allclose(r["closed"].residual, 0.0, atol=1e-9)
    for k in ("P", "ET", "Q", "dS"):
        err_before = abs(r["observed"][k] - r["truth"][k])
        err_after = abs(r["closed"][k] - r["truth"][k])
        assert (err_after <= 3 * r["closed"][f"{k}_err"] + 1e-9).all(), k
    # over several error draws the closed components are calibrated: |z| < 2 mostly
    z = []
    for seed in range(1, 5):
        rs = heihe_budget(tree, seed=seed, components=r["components"])
        for k in ("P", "ET", "Q", "dS"):
            z.extend(
                ((rs["closed"][k] - rs["truth"][k]) / rs["closed"][f"{k}_err"]).values.tolist()
            )
    assert np.mean(np.abs(z) < 2.0) > 0.75
    total_before = sum(float(abs(r["observed"][k] - r["truth"][k]).sum()) for k in ("ET", "dS"))
    total_after = sum(float(abs(r["closed"][k] - r["truth"][k]).sum()) for k in ("ET", "dS"))
    assert total_after < total_before
    assert err_before.dims == ("region",)


def test_linear_reservoir_conserves_and_delays():
    from xldas.budget import linear_reservoir

    pulse = np.zeros(400)
    pulse[0] = 10.0
    out = linear_reservoir(pulse, 5.0)
    assert out.sum() == pytest.approx(10.0, rel=1e-6)
    assert np.argmax(out) == 0 and out[5] == pytest.approx(10 * (1 - np.exp(-0.2)) * np.exp(-1.0))


@pytest.mark.slow
def test_camels_basin_budget_and_streamflow():
    from xldas.budget import camels_experiment
    from xldas.validation.bondville import shared_data_dir

    root = shared_data_dir()
    if root is None:
        pytest.skip("shared real-data folder absent (../shared/data or $XLDAS_SHARED_DATA)")
    r = camels_experiment(root / "camels_us_4basins", "02064000")
    d = r["daily"]
    assert d.sizes["time"] >= 1096 and float(d.P.sum()) > 2500
    # daily streamflow of the routed land-model runoff: reported skill, sanity bounds
    for sk in (r["skill_cal"], r["skill_val"]):
        assert int(sk.n) > 300 and np.isfinite(float(sk.kge)) and float(sk.nse) > -1.0
    np.testing.assert_allclose(r["closed"].residual, 0.0, atol=1e-9)
    assert (abs(r["closed"].residual_prior) > 1.0).any()


def test_budget_trends_per_component():
    from xldas.budget import budget_trends

    t = pd.date_range("2000-01-01", periods=20, freq="YS")
    rng = np.random.default_rng(5)
    yr = np.arange(20.0)
    b = water_budget(
        P=xr.DataArray(
            500 + 5 * yr + rng.normal(0, 1, 20),
            dims="time",
            coords={"time": t},
            attrs={"units": "mm"},
        ),
        ET=xr.DataArray(
            300 + rng.normal(0, 1, 20), dims="time", coords={"time": t}, attrs={"units": "mm"}
        ),
        Q=xr.DataArray(
            150 - 2 * yr + rng.normal(0, 1, 20),
            dims="time",
            coords={"time": t},
            attrs={"units": "mm"},
        ),
        dS=xr.DataArray(
            rng.normal(0, 1, 20), dims="time", coords={"time": t}, attrs={"units": "mm"}
        ),
    )
    tr = budget_trends(b, engine="numpy")
    assert float(tr.P_slope) == pytest.approx(5.0, rel=0.05)  # mm per year
    assert float(tr.Q_slope) == pytest.approx(-2.0, rel=0.1)
    assert bool(tr.P_significant) and not bool(tr.dS_significant)
