"""Calibration with SciPy differential evolution: Dask-parallel and vectorised paths."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xldas.errors import ParameterRangeError, UnknownOptionError
from xldas.validation.calibrate import calibrate

T = xr.DataArray(np.arange(60.0), dims="time")
OBS = 0.3 + 0.1 * np.exp(-T / 12.0) * np.cos(T / 4.0)


def _sim(p):
    return p["a"] + p["k"] * np.exp(-T / 12.0) * np.cos(T / 4.0)


def test_calibrate_dask_delayed_recovers_parameters():
    res = calibrate(
        _sim,
        {"a": (0.0, 1.0), "k": (0.0, 0.5)},
        OBS,
        objective="kge",
        maxiter=25,
        popsize=6,
        seed=2,
        polish=True,
    )
    assert res.params["a"] == pytest.approx(0.3, abs=1e-3) and res.params["k"] == pytest.approx(
        0.1, abs=1e-3
    )
    assert res.objective == pytest.approx(1.0, abs=1e-3) and res.metric == "kge"
    assert res.history == sorted(res.history)  # KGE of the best never decreases


def test_calibrate_vectorised_population():
    calls = []

    def batch(p):
        calls.append(np.size(p["a"]))
        a = xr.DataArray(np.atleast_1d(p["a"]), dims="member")
        k = xr.DataArray(np.atleast_1d(p["k"]), dims="member")
        return _sim({"a": a, "k": k}).transpose("member", "time")

    res = calibrate(
        batch,
        {"a": (0.0, 1.0), "k": (0.0, 0.5)},
        OBS,
        objective="rmse",
        vectorized=True,
        maxiter=30,
        popsize=6,
        seed=0,
    )
    assert max(calls) > 1  # whole generations per call
    assert res.objective < 0.02


def test_calibrate_bad_input():
    with pytest.raises(ParameterRangeError, match="'a'"):
        calibrate(_sim, {"a": (1.0, 0.0), "k": (0, 1)}, OBS)
    with pytest.raises(UnknownOptionError, match="objective"):
        calibrate(_sim, {"a": (0.0, 1.0), "k": (0, 1)}, OBS, objective="mae")


def test_calibrate_on_distributed_workers(local_cluster):
    import sys

    import cloudpickle
    from distributed import Client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need no tests/ import
    try:
        with Client(local_cluster) as client:
            res = calibrate(
                _sim,
                {"a": (0.0, 1.0), "k": (0.0, 0.5)},
                OBS,
                objective="rmse",
                client=client,
                maxiter=6,
                popsize=4,
                seed=3,
                polish=False,
            )
            assert sum(client.run(lambda: 1).values()) == 2  # two worker processes
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert res.nfev >= 8 * 7 and res.objective < 0.05
