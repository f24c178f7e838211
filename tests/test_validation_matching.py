"""Station matching: layer-to-sensor weights, nearest/footprint cells, time tolerance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tests.helpers import raise_if_dask_computes
from xldas.errors import ParameterRangeError, UnknownOptionError
from xldas.validation.matching import layer_weights, match_station, match_times, sensor_sm

BOTTOMS = [0.05, 0.3, 1.0, 2.0]


def test_layer_weights_point_and_range():
    np.testing.assert_allclose(layer_weights(BOTTOMS, 0.05), [12.5 / 15, 2.5 / 15, 0, 0])
    np.testing.assert_allclose(layer_weights(BOTTOMS, 0.20), [0, 45 / 47.5, 2.5 / 47.5, 0])
    np.testing.assert_allclose(layer_weights(BOTTOMS, 0.01), [1, 0, 0, 0])
    np.testing.assert_allclose(layer_weights(BOTTOMS, 3.0), [0, 0, 0, 1])
    np.testing.assert_allclose(layer_weights(BOTTOMS, 0.0, 1.0), [0.05, 0.25, 0.7, 0])
    for d in (0.0, 0.05, 0.17, 0.6, 1.7):
        assert float(layer_weights(BOTTOMS, d).sum()) == pytest.approx(1.0)
    with pytest.raises(ParameterRangeError):
        layer_weights(BOTTOMS, 0.3, 0.1)
    with pytest.raises(ParameterRangeError):
        layer_weights([0.3, 0.05], 0.1)
    # a linear profile is read exactly between mid-depths
    sm = xr.DataArray(
        0.2 + 0.1 * np.array([0.025, 0.175, 0.65, 1.5]),
        dims="layer",
        coords={"layer": np.arange(4), "depth_bottom": ("layer", BOTTOMS)},
    )
    assert float(sensor_sm(sm, 0.4)) == pytest.approx(0.2 + 0.1 * 0.4)


def _grid():
    lat = np.arange(40.0, 40.5, 0.1)
    lon = np.arange(-89.0, -88.4, 0.1)
    data = np.arange(lat.size * lon.size, dtype=float).reshape(lat.size, lon.size)
    t = pd.date_range("2020-01-01", periods=3)
    da = xr.DataArray(
        data[None] + np.arange(3)[:, None, None] * 100,
        dims=("time", "lat", "lon"),
        coords={"time": t, "lat": lat, "lon": lon},
    )
    return da


def test_match_station_nearest_footprint_lazy():
    da = _grid()
    near = match_station(da, [40.01, 40.33], [-88.37, -88.99])
    assert near.dims == ("time", "station")
    np.testing.assert_allclose(
        near.isel(time=0),
        [
            da[0].sel(lat=40.0, lon=-88.4, method="nearest"),
            da[0].sel(lat=40.3, lon=-89.0, method="nearest"),
        ],
    )
    # footprint over a radius that holds the 4 neighbours and the centre
    fp = match_station(da, 40.2, -88.7, method="footprint", radius_km=12.0)
    cells = [(40.2, -88.7), (40.1, -88.7), (40.3, -88.7), (40.2, -88.8), (40.2, -88.6)]
    vals = np.array([float(da[0].sel(lat=a, lon=b, method="nearest")) for a, b in cells])
    w = np.cos(np.deg2rad([c[0] for c in cells]))
    assert float(fp.isel(time=0)) == pytest.approx((vals * w).sum() / w.sum())
    with raise_if_dask_computes():
        lazy = match_station(da.chunk(lat=2), 40.2, -88.7, method="footprint", radius_km=12.0)
    xr.testing.assert_allclose(lazy.compute(), fp)
    with pytest.raises(UnknownOptionError):
        match_station(da, 40.2, -88.7, method="bilinear")


def test_match_times_tolerance():
    ref = xr.DataArray(
        np.zeros(4),
        dims="time",
        coords={
            "time": pd.to_datetime(
                ["2020-01-01 00:00", "2020-01-01 06:00", "2020-01-01 12:00", "2020-01-02 00:00"]
            )
        },
    )
    other = xr.DataArray(
        [1.0, np.nan, 3.0, 4.0],
        dims="time",
        coords={
            "time": pd.to_datetime(
                ["2019-12-31 23:40", "2020-01-01 06:10", "2020-01-01 12:50", "2020-01-01 23:55"]
            )
        },
    )
    out = match_times(ref, other, tolerance="30min")
    np.testing.assert_allclose(out.values, [1.0, np.nan, np.nan, 4.0])
    assert out.time_offset.values[0] == np.timedelta64(-20, "m")
    out2 = match_times(ref, other, tolerance="1h")
    np.testing.assert_allclose(out2.values, [1.0, np.nan, 3.0, 4.0])
