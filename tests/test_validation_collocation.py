"""Extended triple collocation (E38), rescaling, anomaly R, unit handling, laziness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xldas  # noqa: F401  (registers .ldas)
from tests.helpers import raise_if_dask_computes
from xldas.errors import DimensionError, UnitError, UnknownOptionError
from xldas.validation import (
    anomalies,
    climatology,
    rescale,
    skill,
    tc_from_covariance,
    triple_collocation,
)
from xldas.validation.rescale import cdf_match_kernel

E38_Q = np.array([[1.04, 2, 0.5], [2, 4.09, 1], [0.5, 1, 0.26]])


def test_e38_from_covariance():
    ev, r2 = tc_from_covariance(E38_Q)
    np.testing.assert_allclose(ev, [0.04, 0.09, 0.01], atol=1e-12)
    np.testing.assert_allclose(r2, [0.961538, 0.977995, 0.961538], atol=1e-6)


def _e38_triplets():
    """Series whose sample covariance (ddof=1) is exactly the E38 matrix."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((400, 3))
    z -= z.mean(0)
    # whiten to identity sample covariance, then colour with chol(Q)
    c = np.linalg.cholesky(np.cov(z.T))
    w = np.linalg.solve(c, z.T).T
    return w @ np.linalg.cholesky(E38_Q).T


def test_e38_from_series_and_dask_equals_numpy():
    xyz = _e38_triplets()
    t = pd.date_range("2017-01-01", periods=len(xyz), freq="D")
    a, b, c = (
        xr.DataArray(xyz[:, i], dims="time", coords={"time": t}, name=n)
        for i, n in enumerate("xyz")
    )
    out = triple_collocation(a, b, c)
    np.testing.assert_allclose(out.error_variance, [0.04, 0.09, 0.01], atol=1e-9)
    np.testing.assert_allclose(out.rho2, [0.961538, 0.977995, 0.961538], atol=1e-6)
    assert list(out["product"].values) == ["x", "y", "z"] and int(out.n) == 400
    assert bool(out.assumptions_ok)
    # grid + dask, with a gap in one series
    grid = np.stack([xyz, xyz[::-1]], axis=1)  # (time, lon, 3)
    arrs = [
        xr.DataArray(grid[..., i], dims=("time", "lon"), coords={"time": t}, name=n)
        for i, n in enumerate("xyz")
    ]
    arrs[1] = arrs[1].where(arrs[1].time != t[5])
    eager = triple_collocation(*arrs)
    with raise_if_dask_computes():
        lazy = triple_collocation(*[v.chunk(time=100, lon=1) for v in arrs])
    xr.testing.assert_allclose(lazy.compute(), eager)
    assert int(eager.n[0]) == 399


def test_tc_too_few_triplets_and_negative_variance_flag():
    rng = np.random.default_rng(0)
    t = rng.standard_normal(500)
    a = xr.DataArray(t + 0.1 * rng.standard_normal(500), dims="time", name="a")
    e = 0.5 * rng.standard_normal(500)
    b = xr.DataArray(t + e, dims="time", name="b")
    c = xr.DataArray(t - e, dims="time", name="c")  # b and c have correlated errors
    out = triple_collocation(a, b, c)
    assert not bool(out.assumptions_ok)
    few = triple_collocation(a[:50], b[:50], c[:50])
    assert np.isnan(few.error_variance).all() and int(few.n) == 50
    with pytest.raises(DimensionError):
        triple_collocation(a, b, c, dim="lat")


def test_cdf_match_kernel_interpolates_and_extrapolates():
    px, pr = np.array([0.0, 1.0, 1.0, 2.0]), np.array([0.0, 2.0, 2.5, 3.0])
    out = cdf_match_kernel(np.array([-1.0, 0.5, 1.0, 1.5, 3.0, np.nan]), px, pr)
    np.testing.assert_allclose(out[:5], [-2.0, 1.0, 2.5, 2.75, 3.5])
    assert np.isnan(out[5])


@pytest.mark.parametrize("method", ["cdf_match", "mean_std"])
def test_rescale_maps_onto_reference_climatology(method):
    rng = np.random.default_rng(1)
    t = pd.date_range("2015-01-01", periods=1500, freq="D")
    ref = xr.DataArray(
        0.25 + 0.06 * rng.standard_normal((1500, 2)),
        dims=("time", "lon"),
        coords={"time": t},
        attrs={"units": "m3 m-3"},
        name="sm",
    )
    x = (40.0 + 150.0 * (ref - 0.25)).assign_attrs(units="percent")  # % saturation-like
    x = x.where(x.time.dt.day != 3)
    out = rescale(x, ref, method=method)
    both = out.notnull()
    np.testing.assert_allclose(
        out.where(both).mean("time"), ref.where(both).mean("time"), atol=2e-3
    )
    np.testing.assert_allclose(out.where(both).std("time"), ref.where(both).std("time"), rtol=2e-2)
    assert out.attrs["units"] == "m3 m-3"
    with raise_if_dask_computes():
        lazy = x.chunk(time=500, lon=1).ldas.rescale(ref.chunk(time=500, lon=1), method=method)
    xr.testing.assert_allclose(lazy.compute(), out)
    with pytest.raises(UnknownOptionError, match="rescale method"):
        rescale(x, ref, method="quantile")


def test_rescale_applies_at_times_reference_lacks():
    rng = np.random.default_rng(2)
    t = pd.date_range("2015-01-01", periods=600, freq="D")
    ref = xr.DataArray(rng.gamma(2.0, 1.0, 600), dims="time", coords={"time": t})
    x = xr.DataArray(
        rng.gamma(2.0, 3.0, 700),
        dims="time",
        coords={"time": pd.date_range("2015-01-01", periods=700)},
    )
    out = rescale(x, ref)
    assert out.sizes["time"] == 700 and out.notnull().all()


def test_climatology_and_anomaly_r():
    t = pd.date_range("2010-01-01", "2014-12-31", freq="D")
    seas = np.sin(2 * np.pi * t.dayofyear.values / 365.25)
    rng = np.random.default_rng(4)
    noise = rng.standard_normal(t.size)
    o = xr.DataArray(0.25 + 0.08 * seas + 0.02 * noise, dims="time", coords={"time": t})
    s = xr.DataArray(
        0.20 + 0.05 * seas + 0.02 * noise + 0.01 * rng.standard_normal(t.size),
        dims="time",
        coords={"time": t},
    )
    clim = climatology(o, window=31)
    assert clim.sizes["dayofyear"] == 366
    assert float(abs(anomalies(o) - 0.02 * noise).std()) < 0.005
    out = skill(s, o, anomaly_window=31)
    # the anomalies share the noise term only: R_anom = 0.02/sqrt(0.02^2+0.01^2) = 0.894
    assert float(out.anomaly_r) == pytest.approx(0.894, abs=0.03)
    assert float(out.r) > float(out.anomaly_r)  # the shared seasonal cycle inflates R
    assert out.anomaly_r.attrs["units"] == "1"
    # lazy and dask == numpy
    with raise_if_dask_computes():
        lazy = skill(
            s.chunk(time=365), o.chunk(time=365), metrics=["anomaly_r", "n"], anomaly_window=31
        )
    assert float(lazy.anomaly_r) == pytest.approx(float(out.anomaly_r), rel=1e-10)
    # no datetime coordinate: dropped silently by default, refused when asked for
    plain = skill(s.drop_vars("time"), o.drop_vars("time"))
    assert "anomaly_r" not in plain
    with pytest.raises(DimensionError, match="anomaly_r"):
        skill(s.drop_vars("time"), o.drop_vars("time"), metrics=["anomaly_r"])


def test_skill_no_overlap_and_units():
    t = pd.date_range("2020-01-01", periods=6, freq="D")
    s = xr.DataArray(
        [0.1, np.nan, 0.2, np.nan, 0.3, np.nan],
        dims="time",
        coords={"time": t},
        attrs={"units": "m3 m-3"},
    )
    o = xr.DataArray(
        [np.nan, 0.1, np.nan, 0.2, np.nan, 0.3],
        dims="time",
        coords={"time": t},
        attrs={"units": "m3 m-3"},
    )
    out = skill(s, o)
    assert int(out.n) == 0
    assert all(np.isnan(out[m]) for m in ("bias", "rmse", "r", "anomaly_r", "kge"))
    # ref in percent is converted to the simulation's units
    pct = (o.fillna(0) * 0 + s.fillna(0) * 100).assign_attrs(units="percent")
    conv = skill(s, pct)
    assert float(conv.rmse) == pytest.approx(0.0, abs=1e-12) and int(conv.n) == 3
    with pytest.raises(UnitError, match="reference"):
        skill(s, o.assign_attrs(units="K"))


def test_r_p_value_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(8)
    o = rng.standard_normal(40)
    s = 0.3 * o + rng.standard_normal(40)
    s[3] = np.nan
    out = skill(
        xr.DataArray(s, dims="time"), xr.DataArray(o, dims="time"), metrics=["r", "r_p_value", "n"]
    )
    ok = ~np.isnan(s)
    r, p = stats.pearsonr(s[ok], o[ok])
    assert float(out.r) == pytest.approx(r, rel=1e-10)
    assert float(out.r_p_value) == pytest.approx(p, rel=1e-6)
