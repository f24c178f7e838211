"""Tests of the embedded Heihe twin experiment (xldas.demo.heihe_osse).

A coarse domain (0.25°, 15 days) is generated once per session into a temporary cache
directory; every physical check below could fail on a wrong generator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xldas
from tests.helpers import raise_if_dask_computes
from xldas.demo import OSSE_DEFAULTS, cache_path, heihe_osse
from xldas.demo._observations import make_operator
from xldas.demo._osse import _key, _normalise_args, _write, generate

SMALL = {"resolution": 0.25, "days": 15}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("xldas-cache")
    mp.setenv("XLDAS_DATA_DIR", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def tree(cache_dir):
    return heihe_osse(**SMALL)


def _region_mean(da, regions, code):
    return float(da.where(regions == code).mean())


def test_groups_and_contracts(tree):
    groups = set(tree.groups)
    for g in ("/params", "/forcing", "/truth", "/initial", "/regions", "/sites"):
        assert g in groups
    for s in ("smap", "amsr2", "sentinel1", "crns"):
        assert f"/obs/{s}" in groups
    forcing = tree["forcing"].to_dataset()
    units = {"precip": "kg m-2 s-1", "tair": "K", "qair": "kg kg-1", "psurf": "Pa", "wind": "m s-1"}
    for v, u in units.items():
        assert forcing[v].attrs["units"] == u
    assert forcing.sizes["time"] == 15 * 8  # 3-hourly, period-ending
    assert pd.Timestamp(forcing.time.values[0]) == pd.Timestamp("2019-06-01T03")
    truth = tree["truth"].to_dataset()
    assert truth["sm"].dims == ("time", "layer", "lat", "lon")
    assert pd.Timestamp(truth.time.values[0]) == pd.Timestamp("2019-06-01")
    assert {"et", "runoff", "drainage", "glacier_melt", "precip", "irrigation"} <= set(
        truth.data_vars
    )
    for s, v in (
        ("smap", "tb_h"),
        ("amsr2", "tb_v"),
        ("sentinel1", "sigma0_vv"),
        ("crns", "neutron_count"),
    ):
        obs = tree[f"obs/{s}"].to_dataset()
        assert f"{v}_err" in obs
        assert obs[v].dims == ("time", "lat", "lon")
    s1 = tree["obs/sentinel1"].to_dataset()
    assert s1.sizes["lat"] == 4 * truth.sizes["lat"]  # finer grid for the radar
    sites = tree["sites"].to_dataset()
    assert list(sites.site.values) == ["Arou", "Daman", "Sidaoqiao"]
    assert list(sites.region_code.values) == [1, 2, 3]
    # the sites lie in their sub-basins on the grid
    regions = tree["regions"].to_dataset()["regions"].values
    assert [int(regions[i, j]) for i, j in zip(sites.lat_index.values, sites.lon_index.values)] == [
        1,
        2,
        3,
    ]


def test_opened_lazily(tree):
    assert tree["truth"]["sm"].chunks is not None
    assert tree["forcing"]["precip"].chunks is not None


def test_deterministic_with_seed(tree, cache_dir):
    again = generate(**SMALL)
    np.testing.assert_array_equal(
        tree["forcing"]["precip"].values, again["forcing"]["precip"].values
    )
    np.testing.assert_allclose(
        tree["obs/smap"]["tb_h"].values,
        again["obs/smap"]["tb_h"].values.astype(np.float32),
        equal_nan=True,
    )
    np.testing.assert_allclose(tree["truth"]["sm"].values, again["truth"]["sm"].values, rtol=1e-6)
    other = generate(**SMALL, seed=1)
    assert not np.array_equal(other["forcing"]["precip"].values, again["forcing"]["precip"].values)


def test_cache_reused_and_keyed(tree, cache_dir):
    path = cache_path(**SMALL)
    stamp = (path / "zarr.json").stat().st_mtime_ns
    heihe_osse(**SMALL)
    assert (path / "zarr.json").stat().st_mtime_ns == stamp  # not regenerated
    assert cache_path(**SMALL, seed=3) != path
    assert cache_path() == xldas._paths.data_dir() / "demo" / "heihe_osse.zarr"
    # a store written by another generator (stale key) is replaced
    tiny = {"resolution": 0.5, "days": 2, "sensors": ["smap"]}
    _write(xr.DataTree(xr.Dataset()), cache_path(**tiny), "stale")
    fresh = heihe_osse(**tiny)
    assert fresh.attrs["xldas_demo_key"] == _key(_normalise_args(**tiny))
    assert set(fresh.groups) >= {"/truth", "/obs/smap"} and "/obs/amsr2" not in fresh.groups


def test_precipitation_gradient(tree):
    regions = tree["regions"]["regions"]
    clim = tree["params"]["annual_precip"]
    up, mid, down = (_region_mean(clim, regions, c) for c in (1, 2, 3))
    assert up > 300.0 and 60.0 < mid < 250.0 and down < 60.0
    assert up > mid > down
    p = tree["truth"]["precip"].mean("time")
    assert _region_mean(p, regions, 1) > _region_mean(p, regions, 2) > _region_mean(p, regions, 3)
    pf = tree["forcing"]["precip"].mean("time")
    assert (
        _region_mean(pf, regions, 1) > _region_mean(pf, regions, 2) > _region_mean(pf, regions, 3)
    )


def test_elevation_gradient_and_glaciers(tree):
    params = tree["params"].to_dataset()
    regions = tree["regions"]["regions"]
    z = params["elevation"]
    up, mid, down = (_region_mean(z, regions, c) for c in (1, 2, 3))
    assert up > 3000.0 > mid > 1200.0 > down > 800.0
    assert float(z.max()) > 4500.0
    glacier = params["glacier_fraction"] > 0
    assert int(glacier.sum()) > 0
    assert not bool((glacier & (regions >= 2)).any())  # no glaciers mid- or downstream
    assert float(z.where(glacier).min()) > 4000.0
    assert float(params["lai"].where(params["land_cover"] == 5).mean()) > 1.0  # irrigated oases
    assert float(params["irrigated_fraction"].where(regions == 2).max()) > 0.3


def test_truth_soil_moisture_within_bounds(tree):
    sm = tree["truth"]["sm"]
    params = tree["params"].to_dataset()
    lo = params["theta_r"] - 1e-6
    hi = params["theta_s"] + 1e-6
    assert bool(((sm >= lo) & (sm <= hi)).all())
    assert float(sm.isel(layer=0).std()) > 0.01  # the surface is not static


def test_truth_water_balance_closed(tree):
    t = tree["truth"].to_dataset().astype(np.float64)
    dt_s = (t.time.values[2] - t.time.values[1]) / np.timedelta64(1, "s")
    dz = t["dz"] * 1000.0
    storage = (t["sm"] * dz).sum("layer") + t["swe"] + t["canopy_water"]
    src = (t["precip"] + t["irrigation"] + t["glacier_melt"]).isel(time=slice(1, None)).sum(
        "time"
    ) * dt_s
    sink = (t["et"] + t["runoff"] + t["drainage"]).isel(time=slice(1, None)).sum("time") * dt_s
    d_storage = storage.isel(time=-1) - storage.isel(time=0)
    residual = src - sink - d_storage
    assert float(src.mean()) > 5.0  # something happened
    np.testing.assert_allclose(residual.values, 0.0, atol=0.02)


def _noise_z(tree, sensor, var):
    obs = tree[f"obs/{sensor}"].to_dataset()
    truth = tree["truth"].to_dataset()
    params = tree["params"].to_dataset()
    op = make_operator(OSSE_DEFAULTS["observations"][sensor]["operator"])
    state = truth[["sm", "tsoil", "swe", "canopy_water"]].sel(time=obs.time)
    pred = op(state, params)
    pred = pred[var] if isinstance(pred, xr.Dataset) else pred
    z = ((obs[var] - pred) / obs[f"{var}_err"]).values
    return z[np.isfinite(z)]


@pytest.mark.parametrize("sensor", ["smap", "amsr2"])
def test_tb_noise_matches_stated_error(tree, sensor):
    obs = tree[f"obs/{sensor}"]
    err = float(obs["tb_h_err"].mean())
    assert err == pytest.approx(OSSE_DEFAULTS["observations"][sensor]["error"])
    z = _noise_z(tree, sensor, "tb_h")
    assert z.size > 1000
    assert np.std(z) == pytest.approx(1.0, abs=0.06)
    assert abs(np.mean(z)) < 0.1
    tb = obs["tb_v"].values
    assert 180.0 < np.nanmin(tb) and np.nanmax(tb) < 320.0


def test_crns_counting_noise(tree):
    z = _noise_z(tree, "crns", "neutron_count")
    assert z.size >= 20
    assert 0.5 < np.std(z) < 1.6
    obs = tree["obs/crns"].to_dataset()
    probes = np.isfinite(obs["neutron_count"]).any("time")
    assert 1 <= int(probes.sum()) <= 5  # a few probe cells, NaN elsewhere


def test_sentinel1_backscatter_plausible(tree):
    s1 = tree["obs/sentinel1"]["sigma0_vv"].values
    seen = np.isfinite(s1)
    assert seen.any() and (~seen).any()
    assert -30.0 < np.nanmin(s1) and np.nanmax(s1) < 0.0
    # lower frequency than SMAP: each fine cell is seen on fewer days
    smap = np.isfinite(tree["obs/smap"]["tb_h"].values).sum(axis=0).mean()
    assert seen.sum(axis=0).mean() < 0.6 * smap


def test_smap_revisit_two_to_three_days(tree):
    obs = tree["obs/smap"]["tb_h"]
    seen = np.isfinite(obs.values)  # (time, lat, lon), one overpass per day
    days = (obs.time.values - obs.time.values[0]) / np.timedelta64(1, "D")
    gaps = []
    for cell in seen.reshape(seen.shape[0], -1).T:  # test code: loop over cells is fine
        d = days[cell]
        gaps.extend(np.diff(d))
    gaps = np.asarray(gaps)
    assert 2.0 <= gaps.mean() <= 3.0
    assert gaps.max() <= 4.0
    assert (np.asarray(obs.time.dt.hour) == 0).all()


def test_catalog_entries_open_lazily(tree, cache_dir, monkeypatch):
    import xldas.demo

    calls = []

    def small_default(path):
        calls.append(path)
        _write(generate(**SMALL), path, "catalog-test")

    monkeypatch.setattr(xldas.demo, "write_default", small_default)
    default = cache_path()
    assert not default.exists()
    cat = xldas.open_catalog()
    truth = cat["heihe_osse_truth"].read()  # generates the store on first use
    assert len(calls) == 1
    assert truth["sm"].chunks is not None
    with raise_if_dask_computes():
        mean = truth["sm"].isel(layer=0).mean("time")
    assert mean.dims == ("lat", "lon")
    smap = cat["heihe_osse_obs_smap"].read()
    assert {"tb_h", "tb_h_err"} <= set(smap.data_vars)
    assert len(calls) == 1  # reused
    xr.testing.assert_allclose(
        cat["heihe_osse_params"].read()["elevation"], tree["params"]["elevation"]
    )


def test_osse_defaults_usable():
    fp = xldas.demo.osse_forcing_perturbation()
    assert fp.variables == ("precip", "swdown", "tair")
    assert OSSE_DEFAULTS["observations"]["smap"]["error"] == 2.0
    assert OSSE_DEFAULTS["n_members"] >= 16
    for spec in OSSE_DEFAULTS["observations"].values():
        op = make_operator(spec["operator"])
        assert set(spec["variables"]) <= set(op.variables)


def test_bad_arguments():
    with pytest.raises(xldas.errors.UnknownOptionError, match="sensor"):
        heihe_osse(sensors=("smap", "radar"))
    with pytest.raises(xldas.errors.ConfigError, match="dt_hours"):
        heihe_osse(dt_hours=5)


def test_kernel_driver_matches_models_step(tree):
    """The generator's direct kernel calls give the state of xldas.models.step."""
    from xldas.demo._osse import _Columns, _spin_up
    from xldas.models import step

    params = tree["params"].to_dataset().load()
    state = tree["initial"].to_dataset().load().drop_vars("time")
    forcing = tree["forcing"].to_dataset().isel(time=slice(0, 12)).load()
    dt = int((forcing.time.values[1] - forcing.time.values[0]) / np.timedelta64(1, "h"))
    ours = _spin_up(_Columns(params, dt), state, forcing, passes=1)
    ref = step(state, forcing, params)
    for v in ("sm", "tsoil", "swe", "canopy_water"):
        np.testing.assert_allclose(ours[v].values, ref[v].values, rtol=1e-6, atol=1e-6)
