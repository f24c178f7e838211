"""Irrigated cropland map (E16, synthetic scene OA ≥ 0.9, κ ≥ 0.8), irrigation water use (E17)
and evapotranspiration dispatch (E18, E20, E21)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xldas
from tests.helpers import raise_if_dask_computes
from xldas.errors import ForcingError, ParameterRangeError, UnknownOptionError
from xldas.physics import ptjpl
from xldas.retrieval import (
    accuracy_assessment,
    evapotranspiration,
    irrigation_map,
    irrigation_water_use,
    kappa,
    suitability,
)
from xldas.retrieval.et import annual_et
from xldas.retrieval.irrigation import iwu_kernel, iwu_np


def test_e16_kappa():
    r = kappa([[45, 5], [10, 40]])
    assert r["overall_accuracy"] == pytest.approx(0.85)
    assert r["p_e"] == pytest.approx(0.50)
    assert r["kappa"] == pytest.approx(0.70)
    ref = np.array([1] * 50 + [0] * 50, float)
    pred = np.array([1] * 40 + [0] * 10 + [1] * 5 + [0] * 45, float)
    a = accuracy_assessment(pred, ref, classes=(1, 0))
    np.testing.assert_array_equal(a["confusion"], [[40, 10], [5, 45]])


def _scene(n=80, seed=0):
    import regionmask
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    lat = 39.0 - 0.01 * (np.arange(n) + 0.5)
    lon = 100.0 + 0.01 * (np.arange(n) + 0.5)
    c = {"lat": lat, "lon": lon}
    h = n * 0.01 / 2
    polys = [box(100, 39 - h, 100 + h, 39), box(100 + h, 39 - h, 100 + 2 * h, 39),
             box(100, 39 - 2 * h, 100 + h, 39 - h), box(100 + h, 39 - 2 * h, 100 + 2 * h, 39 - h)]  # fmt: skip
    regions = regionmask.Regions(
        polys, numbers=[0, 1, 2, 3], names=list("ABCD"), abbrevs=list("ABCD")
    )
    from scipy.ndimage import gaussian_filter

    def field(lo, hi):  # spatially coherent random field (fields, plots, valleys)
        f = gaussian_filter(rng.normal(size=(n, n)), 4.0)
        return lo + (hi - lo) * (f - f.min()) / (f.max() - f.min())

    slope = xr.DataArray(field(0, 25), dims=("lat", "lon"), coords=c, attrs={"units": "degree"})
    dist = xr.DataArray(field(0, 12), dims=("lat", "lon"), coords=c, attrs={"units": "km"})
    s = suitability(slope=slope, distance_to_water=dist)
    truth = (s.values + field(-0.2, 0.2)) > 0.55
    months = pd.date_range("2020-04-15", periods=6, freq="MS")
    shape = np.sin(np.linspace(0.3, 2.8, 6))[:, None, None]
    peak = np.where(truth, 0.78, 0.45) + rng.normal(0, 0.05, (n, n))
    ndvi = 0.15 + (peak - 0.15) * shape + rng.normal(0, 0.02, (6, n, n))
    vi = xr.DataArray(ndvi, dims=("time", "lat", "lon"), coords={"time": months, **c})
    feats = xr.Dataset({f"ndvi_{i}": vi.isel(time=i, drop=True) for i in range(6)})
    feats["vi_max"] = vi.max("time")
    feats["suitability"] = s
    ref = xr.DataArray(truth.astype(float), dims=("lat", "lon"), coords=c)
    area = xldas.retrieval.cell_area_km2(ref)
    rid = regions.mask(ref.lon, ref.lat)
    stats = {k: float((area * ref).where(rid == k).sum()) for k in range(4)}
    return feats, regions, stats, ref, s


def test_irrigation_map_synthetic_accuracy_and_laziness():
    feats, regions, stats, ref, s = _scene()
    lazy = feats.chunk({"lat": 40, "lon": 40})
    irr, rep = irrigation_map(lazy, regions, stats, vi_max=lazy.vi_max, suitability_map=s,
                              reference=ref, n_samples=600, n_estimators=60)  # fmt: skip
    assert irr.chunks is not None  # the forest is applied block by block, lazily
    assert rep["overall_accuracy"] >= 0.9 and rep["kappa"] >= 0.8
    agree = rep["statistics_agreement"]
    diff = np.abs(agree.mapped_km2 - agree.reported_km2).values
    assert np.all(diff < 0.05 * rep["thresholds"].cropland_area_km2.values)  # small counties
    assert float(agree.mapped_km2.sum()) == pytest.approx(float(agree.reported_km2.sum()), rel=0.15)
    thr = rep["thresholds"]
    np.testing.assert_allclose(thr.irrigated_area_km2.values, [stats[k] for k in range(4)])
    assert (thr.t_lo <= thr.threshold).all() and (thr.threshold <= thr.t_hi).all()
    assert rep["training"]["irrigated"] > 20 and rep["training"]["rainfed"] > 100
    with raise_if_dask_computes():  # re-applying the fitted map stays lazy
        _ = irr * 2
    _eager, rep2 = irrigation_map(feats, regions, stats, vi_max=feats.vi_max, suitability_map=s,
                                 reference=ref, n_samples=600, n_estimators=60)  # fmt: skip
    assert rep2["overall_accuracy"] >= 0.9
    with pytest.raises(ParameterRangeError):
        irrigation_map(feats, regions, stats)


def test_suitability_reclass_and_errors():
    slope = xr.DataArray(
        [0.0, 2.0, 4.0, 10.0, 20.0, 40.0, np.nan], dims="x", attrs={"units": "degree"}
    )
    assert suitability(slope=slope).values.tolist()[:6] == [1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    assert np.isnan(suitability(slope=slope).values[-1])
    with pytest.raises(UnknownOptionError):
        suitability(ndvi=slope)


# ------------------------------------------------------------------------ IWU
def test_e17_sm_inversion_and_kernel_reference():
    sm = xr.DataArray(
        [0.5, 0.6], dims="time", coords={"time": [0.0, 1.0]}, attrs={"units": "m3 m-3"}
    )
    out = sm.ldas.irrigation_water_use(precip=0.0, et=3.0, params={"theta_s": 1.0})
    assert float(out.irrigation[1]) == pytest.approx(8 + 0.7776 + 3, abs=1e-10)
    assert np.isnan(float(out.irrigation[0]))
    rng = np.random.default_rng(2)
    s = rng.uniform(0.2, 0.8, (6, 40))
    s[s < 0.25] = np.nan
    t = np.cumsum(rng.choice([1.0, 1.0, 2.0, 4.0], 40))
    p = rng.exponential(1.0, (6, 40))
    e = rng.uniform(1, 5, (6, 40))
    for pot in (0.0, 1.0):
        a = (t, s, p, e, 80.0, 10.0, 5.0, 0.9, pot, 3.0)
        np.testing.assert_allclose(iwu_kernel(*a), iwu_np(*a), rtol=1e-12, equal_nan=True)


def test_iwu_totals_units_gaps_and_residual():
    t = pd.date_range("2021-05-01", periods=60, freq="D")
    rng = np.random.default_rng(3)
    sm = xr.DataArray(0.2 + 0.05 * rng.random((60, 2, 3)), dims=("time", "y", "x"),
                      coords={"time": t}, attrs={"units": "m3 m-3"})  # fmt: skip
    sm[10:15] = np.nan  # a 6-day gap: no estimate across it
    precip = xr.full_like(sm, 1.0 / 86400).assign_attrs(units="kg m-2 s-1")  # 1 mm/d
    et = xr.full_like(sm, 4.0).assign_attrs(units="mm d-1")
    eager = irrigation_water_use(sm, precip, et, {"theta_s": 0.45, "theta_r": 0.02}, freq="MS")
    with raise_if_dask_computes():
        lazy = irrigation_water_use(
            sm.chunk({"y": 1}), precip, et, {"theta_s": 0.45, "theta_r": 0.02}, freq="MS"
        )
    xr.testing.assert_allclose(lazy.compute(), eager)
    assert np.isnan(eager.irrigation.isel(time=15)).all()
    assert (eager.irrigation.fillna(0) >= 0).all() and eager.irrigation_total.attrs["units"] == "mm"
    rainfed = xr.Dataset({"sm": sm - 0.01 * np.arange(60)[:, None, None] / 60, "et": et * 0.5})
    rainfed["sm"].attrs["units"] = "m3 m-3"
    res = irrigation_water_use(
        sm, precip, et, {"z_star": 100.0}, method="model_residual", rainfed=rainfed
    )
    assert float(res.irrigation.isel(time=1).mean()) > 0
    with pytest.raises(UnknownOptionError):
        irrigation_water_use(sm, precip, et, method="sm2rain_v2")
    with pytest.raises(ParameterRangeError):
        irrigation_water_use(sm, precip, et)  # theta_s missing


# ------------------------------------------------------------------------- ET
def _v(x, u, dims="x"):
    return xr.DataArray([x], dims=dims, attrs={"units": u})


def test_e21_ptjpl_dispatch_and_kernel():
    ds = xr.Dataset({"rn": _v(400.0, "W m-2"), "tair": _v(298.15, "K"), "rh": _v(50.0, "%"),
                     "ndvi": _v(0.6, "1"), "savi": _v(0.4, "1"), "fapar_max": _v(0.6, "1"),
                     "t_opt": _v(25.0, "degC")})  # fmt: skip
    out = ds.ldas.evapotranspiration(method="pt_jpl", gamma_kpa=0.066)
    assert float(out.le_canopy[0]) == pytest.approx(161.696, abs=1e-3)
    assert float(out.le_soil[0]) == pytest.approx(53.743, abs=1e-3)
    assert float(out.le_interception[0]) == pytest.approx(14.385, abs=1e-3)
    assert float(out.le[0]) == pytest.approx(229.824, abs=1e-3)
    assert out.et.attrs["units"] == "kg m-2 s-1"
    rng = np.random.default_rng(4)
    a = (rng.uniform(0, 600, 50), 10.0, rng.uniform(-5, 35, 50), rng.uniform(0.1, 1, 50),
         rng.uniform(0.1, 0.9, 50), rng.uniform(0, 0.7, 50), 0.6, 25.0, 0.066, 1.26)  # fmt: skip
    for x, y in zip(ptjpl.ptjpl_kernel(*a), ptjpl.ptjpl_np(*a)):
        np.testing.assert_allclose(x, y, rtol=1e-12)


def test_ptjpl_derives_topt_and_faparmax_lazily():
    t = pd.date_range("2020-01-01", periods=12, freq="MS")
    rng = np.random.default_rng(5)
    dims = ("time", "y")
    ds = xr.Dataset({
        "rn": (dims, rng.uniform(50, 400, (12, 3)), {"units": "W m-2"}),
        "tair": (dims, rng.uniform(0, 30, (12, 3)), {"units": "degC"}),
        "qair": (dims, rng.uniform(0.002, 0.01, (12, 3)), {"units": "kg kg-1"}),
        "psurf": (dims, np.full((12, 3), 85000.0), {"units": "Pa"}),
        "ndvi": (dims, rng.uniform(0.2, 0.8, (12, 3)), {"units": "1"}),
    }, coords={"time": t})  # fmt: skip
    eager = evapotranspiration(ds, "pt_jpl")
    with raise_if_dask_computes():
        lazy = evapotranspiration(ds.chunk({"y": 1}), "pt_jpl")
    xr.testing.assert_allclose(lazy.compute(), eager)
    assert (eager.le >= 0).all()
    ann = annual_et(eager.et)
    assert ann.attrs["units"] == "mm yr-1" and float(ann.min()) > 0
    with pytest.raises(ForcingError):
        evapotranspiration(ds.isel(time=0).drop_vars("time"), "pt_jpl")


def test_fao56_pt_sith_dispatch():
    # E18 (FAO-56 example 18, Brussels): R_n 13.28 MJ m-2 d-1 -> ET0 3.88 mm/d
    ds = xr.Dataset({"rn": _v(13.28, "MJ m-2 d-1"), "tmax": _v(21.5, "degC"), "tmin": _v(12.3, "degC"),
                     "u2": _v(2.078, "m s-1"), "ea": _v(1.409, "kPa"), "elevation": _v(100.0, "m")})  # fmt: skip
    out = ds.ldas.evapotranspiration(method="fao56")
    assert float(out.et0[0]) == pytest.approx(3.88, abs=0.01)
    assert float(out.et[0]) * 86400 == pytest.approx(float(out.et0[0]))
    # E20 (SiTH potential ET) through the dispatcher; PT equals the sum of the SiTH parts at LAI 0
    sd = xr.Dataset({"rn": _v(150.0, "W m-2"), "lai": _v(2.0, "1"), "tair": _v(20.0, "degC"),
                     "psurf": _v(101.3, "kPa")})  # fmt: skip
    si = evapotranspiration(sd, "sith")
    assert float(si.pe_canopy[0]) == pytest.approx(3.17542, abs=1e-5)
    assert float(si.pe_soil[0]) == pytest.approx(1.36865, abs=1e-5)
    pt = evapotranspiration(sd, "priestley_taylor")
    assert float(pt.et[0]) == pytest.approx(float(si.et[0]), rel=1e-9)
    with pytest.raises(UnknownOptionError):
        evapotranspiration(sd, "penman")
    with pytest.raises(ForcingError, match="lai"):
        evapotranspiration(sd.drop_vars("lai"), "sith")
