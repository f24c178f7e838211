"""The localised stochastic EnKF (``EnKF(loc_radius=...)``, xldas.filters._local)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tests.helpers import raise_if_dask_computes
from tests.test_filters import LinearTB, _ensemble, _params, _tb_obs, grid_case
from xldas.errors import FilterError
from xldas.filters import EnKF, assimilate, periodic_distance
from xldas.filters import _grid as GR
from xldas.filters import _kernels as K
from xldas.filters import _local as L


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _case(rng, N=8, n=5, m=4):
    E = rng.normal(size=(N, n))
    HE = E[:, :m] + 0.2 * rng.normal(size=(N, m))
    d = rng.normal(size=m)
    rinv = np.full(m, 1.5)
    rinv[1] = 0.0  # a missing observation
    eps = rng.normal(size=(N, m)) / np.sqrt(1.5)
    return E, HE, d, rinv, eps


def test_taper_kernel_matches_reference():
    rng = np.random.default_rng(0)
    E, HE, d, rinv, eps = _case(rng)
    rho = rng.uniform(0.0, 1.0, size=(5, 4))
    rho[rho < 0.3] = 0.0
    rho[4] = 0.0  # an element that sees no observation keeps its forecast
    args = (1.03, 0.0, 0.4)
    got = L.lenkf_taper(E, HE, d, rinv, eps, rho, *args, target="cpu")
    ref = L.lenkf_taper_reference(E, HE, d, rinv, eps, rho, *args)
    np.testing.assert_allclose(got, ref, atol=1e-12)
    np.testing.assert_array_equal(got[:, 4], E[:, 4])


def test_no_tapering_is_the_global_enkf():
    rng = np.random.default_rng(1)
    E, HE, d, rinv, eps = _case(rng)
    rho = np.ones((5, 4))
    got = L.lenkf_taper(E, HE, d, rinv, eps, rho, 1.05, 0.2, 0.0, target="cpu")
    ref = K.enkf_reference(E, HE, d, rinv, eps, 1.05, 0.2, 0.0)
    np.testing.assert_allclose(got, ref, atol=1e-12)


@pytest.mark.parametrize("metric", [1, 0])
def test_grid_kernel_matches_reference(metric):
    rng = np.random.default_rng(3)
    E, HE, d, rinv, yc, xc, c = grid_case(metric, rng)
    A, B, N = E.shape[:3]
    eps = rng.normal(size=(A, B, N, HE.shape[-1])) * np.sqrt(0.5)
    args = (1.05, 0.0, 0.5)
    got = GR.lenkf_grid(E, HE, d, rinv, eps, yc, xc, c, 10, metric, 0, A, 0, B, *args, target="cpu")
    ref = L.lenkf_grid_reference(E, HE, d, rinv, eps, yc, xc, c, metric, *args)
    np.testing.assert_allclose(got, ref, atol=1e-12)
    # a support shorter than the spacing: each pixel alone, i.e. the per-pixel EnKF
    alone = GR.lenkf_grid(
        E, HE, d, rinv, eps, yc, xc, 0.01, 10, metric, 0, A, 0, B, *args, target="cpu"
    )
    np.testing.assert_allclose(alone, K.enkf_reference(E, HE, d, rinv, eps, *args), atol=1e-12)


def test_perturbations_follow_the_localised_error_variance():
    """One state observed directly (P = 1, R = 1) with taper 0.25: R_loc = 4, so the Kalman
    analysis has gain 0.2 and variance 0.8. Unscaled perturbations would give 0.68."""
    rng = np.random.default_rng(7)
    P, N = 50, 200  # 50 independent pixels of 200 members
    E = rng.normal(size=(P, N, 1))
    E = (E - E.mean(axis=1, keepdims=True)) / E.std(axis=1, ddof=1, keepdims=True)
    eps = rng.normal(size=(P, N, 1))
    one = np.ones((P, 1))
    Ea = L.lenkf_taper(E, E.copy(), one, one, eps, np.full((P, 1, 1), 0.25), 1.0, 0.0, 0.0)
    assert abs(Ea.mean() - 0.2) < 0.02
    assert abs(Ea.var(axis=1, ddof=1).mean() - 0.8) < 0.04


def test_array_level_analysis_on_a_ring():
    rng = np.random.default_rng(4)
    N, nx = 20, 40
    truth = np.sin(np.arange(nx) / 3.0)
    E = truth + 1.0 + rng.normal(size=(N, nx))  # biased by 1
    y = truth + 0.3 * rng.normal(size=nx)
    pos = np.arange(float(nx))
    f = EnKF(loc_radius=3.0)
    kw = {"state_pos": pos, "obs_pos": pos, "distance": periodic_distance(nx)}
    a = f.analysis(E, E, y, np.full(nx, 0.09), rng=np.random.default_rng(5), **kw)
    b = EnKF(loc_radius=3.0, engine="numpy").analysis(
        E, E, y, np.full(nx, 0.09), rng=np.random.default_rng(5), **kw
    )
    np.testing.assert_allclose(a, b, atol=1e-12)
    rmse = lambda x: float(np.sqrt(((x.mean(0) - truth) ** 2).mean()))  # noqa: E731
    assert rmse(a) < 0.5 * rmse(E)
    with pytest.raises(FilterError, match="state_pos"):
        f.analysis(E, E, y, np.full(nx, 0.09))
    with pytest.raises(FilterError, match="loc_radius"):
        EnKF().analysis(E, E, y, np.full(nx, 0.09), **kw)
    with pytest.raises(FilterError, match="loc_radius"):
        EnKF(loc_radius=0.0)


@pytest.mark.parametrize("chunks", [{"lat": 2, "lon": 3}, {"lat": 5, "lon": 8}])
def test_grid_result_is_lazy_and_independent_of_chunking(chunks):
    ens, obs, op, params = _ensemble(), _tb_obs(), LinearTB(), _params()
    kw = {"method": "enkf", "loc_radius": 10.0, "inflation": 1.02, "seed": 5, "cycle": 2}
    ref = assimilate(ens, obs, op, params, **kw)
    with raise_if_dask_computes():
        lazy = assimilate(ens.chunk(chunks), obs, op, params, **kw)
    xr.testing.assert_allclose(ref, lazy.compute(), atol=1e-12)
    # the numpy references give the same analysis
    ref_np = assimilate(
        ens,
        obs,
        op,
        params,
        **{**kw, "method": EnKF(loc_radius=10.0, inflation=1.02, engine="numpy")},
    )
    xr.testing.assert_allclose(ref, ref_np, atol=1e-11)
    # a tiny support is the per-pixel EnKF, same random numbers
    alone = assimilate(ens, obs, op, params, **{**kw, "loc_radius": 0.01})
    plain = assimilate(ens, obs, op, params, **{k: v for k, v in kw.items() if k != "loc_radius"})
    xr.testing.assert_allclose(alone, plain, atol=1e-12)
    # and the neighbours' observations do change the analysis
    assert float(abs(ref.sm - plain.sm).max()) > 1e-6
