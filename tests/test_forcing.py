"""Forcing adapters (CMFD, ERA5, ERA5-Land) on files written in the products' layouts."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tests.helpers import raise_if_dask_computes
from xldas.errors import ForcingError, UnitError
from xldas.io.forcing import check_forcing, from_era5, open_cmfd, open_era5

ERA5_SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "era5_samples")
LAT = np.array([39.05, 39.15, 39.25])
LON = np.array([99.55, 99.65, 99.75, 99.85])
CMFD_UNITS = {
    "prec": "mm hr-1",
    "temp": "K",
    "srad": "W m-2",
    "lrad": "W m-2",
    "shum": "kg kg-1",
    "wind": "m s-1",
    "pres": "Pa",
}


def _cmfd_value(var, t):
    rng = np.random.default_rng(abs(hash(var)) % 1000)
    base = {
        "prec": 0.5,
        "temp": 270.0,
        "srad": 200.0,
        "lrad": 250.0,
        "shum": 0.003,
        "wind": 3.0,
        "pres": 70000.0,
    }[var]
    return (base * (1 + 0.1 * rng.uniform(size=(t, LAT.size, LON.size)))).astype(np.float32)


def write_cmfd(root, months=("201801", "201802")):
    """CMFD v1.6 layout: <var>_CMFD_V0106_B-01_03hr_010deg_<YYYYMM>.nc, 3-hourly."""
    for var, unit in CMFD_UNITS.items():
        for ym in months:
            start = pd.Timestamp(f"{ym[:4]}-{ym[4:]}-01")
            t = pd.date_range(
                start, start + pd.offsets.MonthEnd(0) + pd.Timedelta("21h"), freq="3h"
            )
            ds = xr.Dataset(
                {
                    var: (
                        ("time", "lat", "lon"),
                        _cmfd_value(var, t.size),
                        {"units": unit, "long_name": var},
                    )
                },
                coords={
                    "time": t,
                    "lat": ("lat", LAT, {"units": "degrees_north"}),
                    "lon": ("lon", LON, {"units": "degrees_east"}),
                },
            )
            ds.time.encoding.update(units="hours since 1900-01-01 00:00:0.0", dtype="float64")
            ds.to_netcdf(root / f"{var}_CMFD_V0106_B-01_03hr_010deg_{ym}.nc")


def test_open_cmfd_lazy_names_units(tmp_path):
    write_cmfd(tmp_path)
    with raise_if_dask_computes():
        f = open_cmfd(tmp_path)
    assert set(f.data_vars) == {"precip", "tair", "qair", "psurf", "wind", "swdown", "lwdown"}
    assert f.sizes["time"] == (31 + 28) * 8 and f.precip.chunks is not None
    assert f.precip.attrs["units"] == "kg m-2 s-1"
    raw = xr.open_dataset(tmp_path / "prec_CMFD_V0106_B-01_03hr_010deg_201801.nc")
    np.testing.assert_allclose(f.precip.isel(time=slice(0, 248)), raw.prec / 3600.0, rtol=1e-6)
    sub = open_cmfd(
        tmp_path, variables=["temp"], bbox=(99.6, 39.1, 99.8, 39.3), time=slice("2018-02-01", None)
    )
    assert dict(sub.tair.sizes) == {"time": 28 * 8, "lat": 2, "lon": 2}


def test_cmfd_errors(tmp_path):
    write_cmfd(tmp_path, months=("201801",))
    with pytest.raises(ForcingError, match="not found"):
        open_cmfd(tmp_path, variables=["prec", "snow"])
    p = tmp_path / "prec_CMFD_V0106_B-01_03hr_010deg_201801.nc"
    ds = xr.load_dataset(p)
    ds["prec"].attrs["units"] = "degC"
    ds["prec"][3, 1, 2] = np.nan
    os.remove(p)
    ds.to_netcdf(p)
    with pytest.raises(UnitError, match="prec"):
        open_cmfd(tmp_path)
    ds["prec"].attrs["units"] = "mm hr-1"
    os.remove(p)
    ds.to_netcdf(p)
    f = open_cmfd(tmp_path)  # lazy: the NaN check runs at compute
    with pytest.raises(ForcingError, match=r"'precip' holds 1 NaN.*lat=39.15, lon=99.75"):
        f.precip.compute()


def write_era5(path, product="era5", new_layout=False, nt=48):
    t = pd.date_range("2020-06-01T00", periods=nt, freq="h")
    rng = np.random.default_rng(1)
    shp = (nt, LAT.size, LON.size)
    rate_mm_h = rng.exponential(0.3, shp)
    sw_wm2 = np.clip(400 * np.sin(np.pi * ((t.hour.values - 6) % 24) / 12), 0, None)[
        :, None, None
    ] * np.ones(shp)
    lw_wm2 = np.full(shp, 300.0)
    hourly = {"tp": rate_mm_h / 1000.0, "ssrd": sw_wm2 * 3600.0, "strd": lw_wm2 * 3600.0}
    data = {}
    for k, v in hourly.items():
        if product == "era5-land":
            acc = np.empty_like(v)
            for i, ts in enumerate(t):
                acc[i] = v[i] if ts.hour == 1 else (acc[i - 1] + v[i] if i else v[i])
            v = acc
        data[k] = v
    data.update(
        t2m=np.full(shp, 283.15),
        d2m=np.full(shp, 273.16),
        u10=np.full(shp, 3.0),
        v10=np.full(shp, 4.0),
        sp=np.full(shp, 85000.0),
    )
    units = {
        "tp": "m",
        "ssrd": "J m**-2",
        "strd": "J m**-2",
        "t2m": "K",
        "d2m": "K",
        "u10": "m s**-1",
        "v10": "m s**-1",
        "sp": "Pa",
    }
    tname = "valid_time" if new_layout else "time"
    ds = xr.Dataset(
        {
            k: ((tname, "latitude", "longitude"), v.astype(np.float32), {"units": units[k]})
            for k, v in data.items()
        },
        coords={tname: t, "latitude": LAT[::-1], "longitude": LON},
    )
    if new_layout:
        ds = ds.assign_coords(number=0, expver=(tname, np.array(["0001"] * nt)))
    enc = {}
    if not new_layout:  # MARS grib_to_netcdf packs shorts
        for k in data:
            v = ds[k].values
            lo, hi = float(v.min()), float(v.max())
            scale = (hi - lo) / 60000 or 1.0
            enc[k] = {
                "dtype": "int16",
                "scale_factor": scale,
                "add_offset": lo + 30000 * scale,
                "_FillValue": -32767,
            }
    ds.to_netcdf(path, encoding=enc)
    return hourly, data


@pytest.mark.parametrize(
    ("product", "new_layout"), [("era5", False), ("era5", True), ("era5-land", False)]
)
def test_open_era5(tmp_path, product, new_layout):
    hourly, _ = write_era5(tmp_path / "e.nc", product, new_layout)
    with raise_if_dask_computes():
        f = open_era5(
            tmp_path / "e.nc", product=product, require=["precip", "tair", "qair", "swdown"]
        )
    assert set(f.data_vars) == {"precip", "swdown", "lwdown", "tair", "psurf", "qair", "wind"}
    assert f.lat.values[0] > f.lat.values[-1] and "valid_time" not in f.coords
    sl = slice(1, None) if product == "era5-land" else slice(None)
    assert f.sizes["time"] == 48 - (1 if product == "era5-land" else 0)
    want_p = hourly["tp"][sl] * 1000 / 3600.0
    tol = 1e-3 if not new_layout else 1e-5
    np.testing.assert_allclose(f.precip.values, want_p, rtol=tol, atol=2e-7)
    np.testing.assert_allclose(f.swdown.values, hourly["ssrd"][sl] / 3600.0, atol=0.3)
    np.testing.assert_allclose(f.wind.values, 5.0, rtol=1e-3)
    # dew point 0.01 degC: e = 611.21 Pa; q = 0.622 e / (p - 0.378 e)
    np.testing.assert_allclose(
        f.qair.values, 0.621981 * 611.21 / (85000 - 0.378019 * 611.21), rtol=1e-3
    )
    assert (
        f.precip.attrs["units"] == "kg m-2 s-1"
        and f.tair.attrs["standard_name"] == "air_temperature"
    )


def test_era5_errors(tmp_path):
    write_era5(tmp_path / "e.nc")
    ds = xr.open_dataset(tmp_path / "e.nc", chunks={})
    with pytest.raises(ForcingError, match="cannot provide"):
        from_era5(ds[["t2m"]], require=["precip"])
    bad = ds.copy()
    bad["t2m"] = bad.t2m.assign_attrs(units="m s**-1")
    with pytest.raises(UnitError, match="t2m"):
        from_era5(bad)
    with pytest.raises(ForcingError, match="no ERA5 forcing variables"):
        from_era5(ds[["sp"]].rename(sp="swvl1"))


def test_real_era5_sample_netcdf():
    path = os.path.join(ERA5_SAMPLES, "ERA5_swvl1_lsm_20100101_5deg_global.nc")
    if not os.path.exists(path):
        pytest.skip("shared/data/era5_samples not available on this machine")
    with raise_if_dask_computes():
        ds = open_era5(path, forcing=False)
    assert {"lat", "lon", "time"} <= set(ds.dims) and ds.sizes["time"] == 4
    sm = ds.swvl1.where(ds.lsm > 0.5)
    assert -0.01 <= float(sm.min()) and float(sm.max()) <= 0.8  # packed shorts: tiny negatives
    with pytest.raises(ForcingError, match="swvl1"):
        from_era5(ds)


def test_real_era5_grib_sample_is_documented_skip():
    path = os.path.join(ERA5_SAMPLES, "era5-2mt-2019-03-uk.grib")
    if not os.path.exists(path):
        pytest.skip("shared/data/era5_samples not available on this machine")
    pytest.importorskip("cfgrib", reason="GRIB needs cfgrib/ecCodes, not an xldas dependency")
    f = open_era5(path, engine="cfgrib")
    assert f.tair.sizes["time"] == 744 and f.tair.attrs["units"] == "K"


def test_forcing_nan_eager_message():
    ds = xr.Dataset(
        {"precip": (("time", "lat", "lon"), np.zeros((2, 2, 2)), {"units": "kg m-2 s-1"})},
        coords={
            "time": pd.date_range("2020", periods=2, freq="D"),
            "lat": [1.0, 2.0],
            "lon": [3.0, 4.0],
        },
    )
    ds["precip"][1, 0, 1] = np.nan
    ds["precip"][1, 1, 1] = np.nan
    with pytest.raises(
        ForcingError, match=r"holds 2 NaN value\(s\); first at time=2020-01-02.*lat=1.0, lon=4.0"
    ):
        check_forcing(ds)
