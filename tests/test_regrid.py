"""Regridding: exactness on linear fields, conservation, NaN threshold, laziness, engines."""

from __future__ import annotations

import importlib.util

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xldas
from tests.helpers import raise_if_dask_computes
from xldas.errors import DimensionError, UnknownOptionError
from xldas.io import grid, regrid

HAS_XESMF = importlib.util.find_spec("xesmf") is not None
ENGINES = ["xarray-regrid"] + (["xesmf"] if HAS_XESMF else [])

SRC_BBOX = (97.0, 37.0, 102.0, 42.0)  # Heihe basin neighbourhood


def _band_area(lat_bounds: np.ndarray, dlon: float) -> np.ndarray:
    """Exact spherical area (unit sphere) of cells between latitude bounds, per lon step."""
    lo, hi = np.radians(lat_bounds[:, 0]), np.radians(lat_bounds[:, 1])
    return (np.sin(hi) - np.sin(lo)) * np.radians(dlon)


def _field(g: xr.Dataset, kind: str = "linear", seed: int = 1) -> xr.DataArray:
    if kind == "linear":
        da = 0.7 * g.lat - 1.3 * g.lon + 250.0
    else:
        rng = np.random.default_rng(seed)
        shape = (g.sizes["lat"], g.sizes["lon"])
        coords = {"lat": g.lat.values, "lon": g.lon.values}
        da = xr.DataArray(rng.normal(280, 5, shape), coords=coords, dims=("lat", "lon"))
    da = da.transpose("lat", "lon").rename("tair")
    da.attrs = {"units": "K", "standard_name": "air_temperature"}
    return da


@pytest.mark.parametrize("engine", ENGINES)
def test_bilinear_reproduces_a_linear_field(engine):
    src = grid(SRC_BBOX, 0.1)
    field = _field(src).chunk({"lat": 17, "lon": 23})
    target = ((97.33, 37.41, 101.53, 41.61), 0.07)  # not aligned with the source
    with raise_if_dask_computes():
        out = regrid(field, target, method="bilinear", engine=engine)
    assert isinstance(out.data, dsa.Array)
    expected = 0.7 * out.lat - 1.3 * out.lon + 250.0
    np.testing.assert_allclose(
        out.values, expected.transpose("lat", "lon").values, atol=1e-6, rtol=0
    )
    assert out.attrs["units"] == "K" and "regrid" in out.attrs["history"]
    eager = regrid(field.compute(), target, method="bilinear", engine=engine)
    assert not isinstance(eager.data, dsa.Array)
    np.testing.assert_array_equal(out.values, eager.values)


@pytest.mark.parametrize("engine", ENGINES)
def test_conservative_preserves_the_area_weighted_mean(engine):
    src = grid(SRC_BBOX, 0.1)
    dst = grid(SRC_BBOX, 0.5)
    field = _field(src, kind="random").chunk({"lat": 25, "lon": 25})
    with raise_if_dask_computes():
        out = regrid(field, dst, method="conservative", engine=engine)
    assert isinstance(out.data, dsa.Array)
    a_src = _band_area(src.lat_bounds.values, 0.1)[:, None] * np.ones(src.sizes["lon"])
    a_dst = _band_area(dst.lat_bounds.values, 0.5)[:, None] * np.ones(dst.sizes["lon"])
    mean_src = np.sum(field.values * a_src) / a_src.sum()
    mean_dst = np.sum(out.values * a_dst) / a_dst.sum()
    assert abs(mean_dst - mean_src) < 1e-6
    # each target cell is the area-weighted mean of its 5 x 5 source cells
    block = field.values[:5, :5]
    w = a_src[:5, :5]
    np.testing.assert_allclose(out.values[0, 0], np.sum(block * w) / w.sum(), rtol=0, atol=1e-9)
    eager = regrid(field.compute(), dst, method="conservative", engine=engine)
    np.testing.assert_allclose(out.values, eager.values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_conservative_nan_threshold(engine):
    src = grid((100.0, 38.0, 101.0, 39.0), 0.1)
    dst = grid((100.0, 38.0, 101.0, 39.0), 0.5)
    values = _field(src, kind="random").values.copy()
    # target cell (0, 0) <- source rows 0-4, cols 0-4: 2 of 5 columns NaN (~40 % of area)
    values[0:5, 0:2] = np.nan
    # target cell (1, 1) <- rows 5-9, cols 5-9: 4 of 5 columns NaN (~80 %)
    values[5:10, 5:9] = np.nan
    field = _field(src, kind="random").copy(data=values).chunk({"lat": 5})
    out = regrid(field, dst, method="conservative", nan_threshold=0.5, engine=engine).values
    area = _band_area(src.lat_bounds.values, 0.1)[:, None] * np.ones(10)
    valid = ~np.isnan(values[0:5, 0:5])
    w = area[0:5, 0:5] * valid
    np.testing.assert_allclose(out[0, 0], np.nansum(values[0:5, 0:5] * w) / w.sum(), atol=1e-9)
    assert np.isnan(out[1, 1])
    assert np.all(np.isfinite(out[[0, 1], [1, 0]]))
    # a stricter threshold drops the 40 % cell too; threshold 1 keeps both
    strict = regrid(field, dst, method="conservative", nan_threshold=0.2, engine=engine).values
    assert np.isnan(strict[0, 0]) and np.isnan(strict[1, 1])
    loose = regrid(field, dst, method="conservative", nan_threshold=1.0, engine=engine).values
    assert np.isfinite(loose[0, 0]) and np.isfinite(loose[1, 1])


@pytest.mark.parametrize("engine", ENGINES)
def test_nearest_picks_source_cells(engine):
    src = grid((100.0, 38.0, 101.0, 39.0), 0.1)
    field = _field(src, kind="random").chunk()
    target = xr.Dataset(
        coords={"lat": src.lat.values[1::3] - 0.03, "lon": src.lon.values[1::2] - 0.02}
    )
    out = regrid(field, target, method="nearest", engine=engine)
    np.testing.assert_array_equal(out.values, field.values[1::3, 1::2])


def test_dataset_with_time_and_other_dims_is_kept_lazy():
    src = grid(SRC_BBOX, 0.25)
    base = _field(src)
    time = pd.date_range("2024-07-01", periods=4, freq="6h")
    ds = xr.Dataset(
        {
            "tair": base.expand_dims(time=time) + xr.DataArray(np.arange(4.0), dims="time"),
            "precip": (
                ("time", "lat", "lon"),
                np.ones((4, src.sizes["lat"], src.sizes["lon"])),
                {"units": "kg m-2 s-1"},
            ),
        },
        attrs={"title": "forcing"},
    ).chunk({"time": 1})
    target = grid((98.0, 38.0, 101.0, 41.0), 0.5)
    with raise_if_dask_computes():
        out = ds.ldas.regrid(target, method="conservative")
        out_b = regrid(ds, ((98.0, 38.0, 101.0, 41.0), 0.5), method="bilinear")
    assert out.sizes == {"time": 4, "lat": 6, "lon": 6}
    assert out.precip.attrs["units"] == "kg m-2 s-1" and out.attrs["title"] == "forcing"
    assert out.tair.chunks[0] == (1, 1, 1, 1)
    np.testing.assert_allclose(out.precip.values, 1.0)
    np.testing.assert_allclose(out_b.tair.isel(time=2) - out_b.tair.isel(time=0), 2.0, atol=1e-9)
    # the accessor is the function
    xr.testing.assert_identical(
        out.drop_attrs(), regrid(ds, target, method="conservative").drop_attrs()
    )


def test_projected_grid_regrids_on_y_x():
    src = grid((0.0, 0.0, 10_000.0, 8_000.0), 500.0, dims=("y", "x"))
    field = (2.0 * src.y + 0.5 * src.x).rename("h").chunk()
    out = regrid(field, ((1_000.0, 1_000.0, 9_000.0, 7_000.0), 1_000.0), method="conservative")
    np.testing.assert_allclose(out.values, (2.0 * out.y + 0.5 * out.x).transpose("y", "x").values)


def test_grid_helper():
    g = grid((100.0, 38.0, 101.0, 39.5), (0.5, 0.25))
    np.testing.assert_allclose(g.lat, [38.25, 38.75, 39.25])
    np.testing.assert_allclose(g.lon, [100.125, 100.375, 100.625, 100.875])
    assert g.lat.attrs["units"] == "degrees_north" and g.lon.attrs["standard_name"] == "longitude"
    np.testing.assert_allclose(g.lat_bounds[0], [38.0, 38.5])
    with pytest.raises(ValueError, match="whole number"):
        grid((100.0, 38.0, 101.0, 39.0), 0.3)


def test_bad_arguments_raise_typed_errors():
    field = _field(grid((100.0, 38.0, 101.0, 39.0), 0.1))
    with pytest.raises(
        UnknownOptionError, match=r"'bicubic'.*'bilinear', 'conservative', 'nearest'"
    ):
        regrid(field, ((100.0, 38.0, 101.0, 39.0), 0.5), method="bicubic")
    with pytest.raises(UnknownOptionError, match="'esmf'"):
        regrid(field, ((100.0, 38.0, 101.0, 39.0), 0.5), engine="esmf")
    with pytest.raises(DimensionError, match="lat"):
        regrid(field, xr.Dataset(coords={"y": [1.0, 2.0], "x": [1.0, 2.0]}))
    with pytest.raises(DimensionError):
        regrid(field.rename(lat="row", lon="col"), ((100.0, 38.0, 101.0, 39.0), 0.5))


@pytest.mark.skipif(HAS_XESMF, reason="xESMF is installed here")
def test_forcing_xesmf_without_it_is_a_clear_error():
    field = _field(grid((100.0, 38.0, 101.0, 39.0), 0.1))
    with pytest.raises(ModuleNotFoundError, match="conda-forge"):
        regrid(field, ((100.0, 38.0, 101.0, 39.0), 0.5), engine="xesmf")
    # and the automatic choice falls back to xarray-regrid
    out = xldas.regrid(field, ((100.0, 38.0, 101.0, 39.0), 0.5))
    assert "xarray-regrid" in out.attrs["history"]
