"""Skill metrics: SCIENCE.md check values E36, E37; joint validity; laziness."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import xldas
from tests.helpers import raise_if_dask_computes
from xldas.errors import DimensionError, UnknownOptionError
from xldas.validation import skill


def _series(values):
    return xr.DataArray(np.asarray(values, dtype=float), dims="time", attrs={"units": "m3 m-3"})


def test_e36_hand_values():
    o = _series([1, 2, 3, 4, 5])
    s = _series([2, 4, 6, 8, 10])
    out = skill(s, o)
    assert float(out.bias) == pytest.approx(3.0, abs=1e-6)
    assert float(out.rmse) == pytest.approx(3.316625, abs=1e-6)
    assert float(out.ubrmse) == pytest.approx(1.414214, abs=1e-6)
    assert float(out.r) == pytest.approx(1.0, abs=1e-12)
    assert float(out.nse) == pytest.approx(-4.5, abs=1e-12)
    assert float(out.kge) == pytest.approx(-0.414214, abs=1e-6)
    assert float(out.kge_prime) == pytest.approx(0.0, abs=1e-12)
    assert int(out.n) == 5


def test_e37_derived_values():
    o = _series([0.10, 0.15, 0.22, 0.30, 0.25, 0.18])
    s = _series([0.12, 0.14, 0.25, 0.27, 0.28, 0.20])
    out = skill(s, o)
    assert float(out.r) == pytest.approx(0.940100, abs=1e-6)
    assert float(out.kge) == pytest.approx(0.906386, abs=1e-6)
    assert float(out.kge_prime) == pytest.approx(0.875605, abs=1e-6)
    assert float(out.nse) == pytest.approx(0.860465, abs=1e-6)
    assert float(out.rmse) == pytest.approx(0.024495, abs=1e-6)
    assert float(out.bias) == pytest.approx(0.01, abs=1e-9)
    assert float(out.ubrmse) == pytest.approx(0.022361, abs=1e-6)
    # alpha and beta of E37 follow from the definitions
    sd = lambda x: float(np.std(x.values))  # noqa: E731
    assert sd(s) / sd(o) == pytest.approx(0.948275, abs=1e-6)
    assert float(s.mean() / o.mean()) == pytest.approx(1.05, abs=1e-9)
    assert out.rmse.attrs["units"] == "m3 m-3" and out.r.attrs["units"] == "1"


def test_jointly_valid_pairs_only():
    o = _series([1, 2, np.nan, 4, 5, 3])
    s = _series([2, 4, 100, 8, 10, np.nan])
    out = skill(s, o)
    ref = skill(_series([2, 4, 8, 10]), _series([1, 2, 4, 5]))
    assert int(out.n) == 4
    for m in ("bias", "rmse", "ubrmse", "r", "nse", "kge", "kge_prime"):
        assert float(out[m]) == pytest.approx(float(ref[m]), rel=1e-12)


def test_degenerate_reference_gives_nan():
    out = skill(_series([1, 2, 3]), _series([2, 2, 2]))
    assert np.isnan(out.nse) and np.isnan(out.kge) and np.isnan(out.r)
    empty = skill(_series([np.nan, 1.0]), _series([1.0, np.nan]))
    assert int(empty.n) == 0 and np.isnan(empty.rmse)


def test_lazy_dask_equals_numpy_and_accessor():
    rng = np.random.default_rng(0)
    o = rng.random((30, 4, 5))
    s = o + 0.1 * rng.standard_normal(o.shape)
    s[3, 1, 2] = np.nan
    dims = ("time", "lat", "lon")
    on, sn = xr.DataArray(o, dims=dims), xr.DataArray(s, dims=dims)
    od = xr.DataArray(da.from_array(o, chunks=(10, 2, 5)), dims=dims)
    sd_ = xr.DataArray(da.from_array(s, chunks=(10, 2, 5)), dims=dims)
    with raise_if_dask_computes():
        lazy = sd_.ldas.skill(od, dim="time")
    eager = skill(sn, on)
    assert lazy.rmse.chunks is not None
    xr.testing.assert_allclose(lazy.compute(), eager, rtol=1e-12)
    assert eager.rmse.dims == ("lat", "lon")
    assert int(eager.n[1, 2]) == 29 and int(eager.n[0, 0]) == 30


def test_dataset_input_and_errors():
    ds_o = xr.Dataset({"sm": _series([1, 2, 3, 4.0]), "swe": _series([0, 1, 2, 5.0])})
    ds_s = ds_o + 0.5
    out = xldas.validation.skill(ds_s, ds_o, metrics=["bias", "rmse"])
    assert list(out.metric.values) == ["bias", "rmse"]
    np.testing.assert_allclose(out.sm.values, [0.5, 0.5])
    with pytest.raises(UnknownOptionError, match="metric"):
        skill(ds_s, ds_o, metrics=["mae"])
    with pytest.raises(DimensionError, match="member"):
        skill(ds_s, ds_o, dim="member")
