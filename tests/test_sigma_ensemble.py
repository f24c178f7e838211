"""Initial sigma-point ensembles (xldas.filters.sigma) and their configuration checks."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xldas.errors import ConfigError, FilterError, ParameterRangeError
from xldas.filters import CDKF, UKF, n_state_elements, sigma_point_ensemble, stack_state


def _state(chunked=False):
    rng = np.random.default_rng(0)
    st = xr.Dataset(
        {
            "sm": (("layer", "lat", "lon"), 0.2 + 0.05 * rng.random((3, 2, 4))),
            "tsoil": (("layer", "lat", "lon"), 280 + rng.random((3, 2, 4))),
            "swe": (("lat", "lon"), 10 * rng.random((2, 4))),
        },
        coords={"lat": [38.0, 38.1], "lon": [100.0, 100.1, 100.2, 100.3]},
    )
    return st.chunk({"lat": 1}) if chunked else st


@pytest.mark.parametrize("filt", [UKF(kappa=-4.0), CDKF(), UKF(alpha=0.5, beta=2.0)])
def test_weighted_moments_are_the_state_and_the_covariance(filt):
    st = _state()
    std = {"sm": 0.02, "tsoil": 0.7, "swe": 1.5}
    ens = sigma_point_ensemble(st, filt, std=std)
    n = n_state_elements(st)
    assert n == 7 and ens.sizes["member"] == 2 * n + 1
    X, _ = stack_state(ens, ["sm", "tsoil", "swe"])
    wm = ens["weight"].isel(lat=0, lon=0).values
    wc = ens["weight_cov"].isel(lat=0, lon=0).values
    x = X.values  # (lat, lon, member, state)
    mean = np.einsum("p,...pn->...n", wm, x)
    dev = x - mean[..., None, :]
    cov = np.einsum("p,...pi,...pj->...ij", wc, dev, dev)
    ref, _ = stack_state(st, ["sm", "tsoil", "swe"], member=False)
    np.testing.assert_allclose(mean, ref.values, atol=1e-12)
    var = np.array([0.02**2] * 3 + [0.7**2] * 3 + [1.5**2])
    np.testing.assert_allclose(cov, np.broadcast_to(np.diag(var), cov.shape), atol=1e-12)


def test_lazy_and_equal_to_numpy():
    a = sigma_point_ensemble(_state(), "cdkf", std={"sm": 0.01})
    b = sigma_point_ensemble(_state(chunked=True), "cdkf", std={"sm": 0.01})
    assert b["sm"].chunks is not None and len(b.chunks["member"]) == 1
    xr.testing.assert_allclose(a, b.compute())


def test_bounds_and_bad_input():
    st = _state()
    params = xr.Dataset(
        {"theta_r": st.sm.isel(layer=0) * 0 + 0.19, "theta_s": st.sm.isel(layer=0) * 0 + 0.25}
    )
    ens = sigma_point_ensemble(st, "cdkf", std={"sm": 0.05}, params=params)
    assert float(ens.sm.min()) >= 0.19 - 1e-12 and float(ens.sm.max()) <= 0.25 + 1e-12
    with pytest.raises(ParameterRangeError, match="canopy"):
        sigma_point_ensemble(st, "ukf", std={"canopy_water": 0.1})
    with pytest.raises(ParameterRangeError, match="sm"):
        sigma_point_ensemble(st, "ukf", std={"sm": -1.0})
    with pytest.raises(FilterError, match="not a sigma-point"):
        sigma_point_ensemble(st, "enkf")


def test_sigma_point_config_refuses_forcing_perturbations():
    from xldas.cycle.config import Experiment

    raw = {
        "name": "x",
        "period": {"start": "2021-04-01", "end": "2021-04-03"},
        "filter": {"method": "ukf", "Q": {"sm": 1e-5}},
        "output": {"store": "/tmp/x"},
    }
    with pytest.raises(ConfigError, match="forcing_perturbation"):
        Experiment.from_dict(raw)
    raw["ensemble"] = {"forcing_perturbation": None}
    assert Experiment.from_dict(raw).filter.hyperparameters["Q"] == {"sm": 1e-5}


@pytest.mark.parametrize("Q", [{"sm": [1e-4, 1e-5]}, {"sm": -1.0}, {"tsoil": float("nan")}])
def test_bad_process_noise_names_the_variable(Q):
    from xldas.obs import Identity

    st = _state()
    ens = sigma_point_ensemble(st, "cdkf", std={"sm": 0.01})
    obs = xr.Dataset({"swe": st["swe"] + 1.0})
    obs["swe"].attrs["error_std"] = 1.0
    name = next(iter(Q))
    with pytest.raises(FilterError, match=f"Q\\['{name}'\\]"):
        ens.ldas.assimilate(obs, Identity("swe"), None, method=CDKF(Q=Q)).compute()
