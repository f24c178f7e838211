"""Tests of xldas.filters: check values E31–E34, kernels vs NumPy references, xarray layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

import xldas
from tests.helpers import raise_if_dask_computes
from xldas.errors import (
    DimensionError,
    FilterError,
    ObservationError,
    UnknownOptionError,
)
from xldas.filters import (
    CDKF,
    ETKF,
    LETKF,
    PF,
    SRCDKF,
    SRUKF,
    UKF,
    EnKF,
    assimilate,
    periodic_distance,
)
from xldas.filters import _grid as GR
from xldas.filters import _kernels as K


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas():
    """Small dense algebra: BLAS threads only oversubscribe the 2 shared CI cores."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


# ------------------------------------------------------------------ E31–E33


def test_e31_gaspari_cohn():
    r = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    expected = [1.0, 0.684896, 0.208333, 0.016493, 0.0]
    np.testing.assert_allclose(K.gaspari_cohn(r), expected, atol=5e-7)
    assert K.gaspari_cohn(np.array([1.0]))[0] == pytest.approx(5 / 24, abs=1e-15)
    # both branches agree at r = 1 and the scalar (numba) form equals the array form
    lo = -1 / 4 + 1 / 2 + 5 / 8 - 5 / 3 + 1
    hi = 1 / 12 - 1 / 2 + 5 / 8 + 5 / 3 - 5 + 4 - 2 / 3
    assert lo == pytest.approx(hi, abs=1e-15)
    for x in [0.0, 0.3, 1.0, 1.7, 2.5]:
        assert K._gc(x) == pytest.approx(K.gaspari_cohn(np.array([x]))[0], abs=1e-15)


def test_e32_unscented_weights():
    lam, wm, wc = K.unscented_weights(2, alpha=1.0, beta=2.0, kappa=1.0)
    assert lam == pytest.approx(1.0)
    assert wm[0] == pytest.approx(1 / 3)
    assert wc[0] == pytest.approx(7 / 3)
    np.testing.assert_allclose(wm[1:], 1 / 6)
    np.testing.assert_allclose(wc[1:], 1 / 6)


def test_e33_systematic_resampling_and_ess():
    w = np.array([0.1, 0.2, 0.3, 0.4])
    assert K.systematic_resample(w, 0.125).tolist() == [1, 2, 3, 3]
    assert K.systematic_resample_reference(w, 0.125).tolist() == [1, 2, 3, 3]
    assert K.effective_sample_size(w) == pytest.approx(3.3333, abs=5e-5)


def test_resampling_kernel_matches_reference_batched():
    rng = np.random.default_rng(5)
    w = rng.random((50, 17)) ** 4
    w /= w.sum(-1, keepdims=True)
    u = rng.random(50) / 17
    np.testing.assert_array_equal(
        K.systematic_resample(w, u), K.systematic_resample_reference(w, u)
    )


# ----------------------------------------------------------------------- E34
F34 = np.array([[1, 0.1, 0], [0, 0.9, 0.05], [0.02, 0, 0.95]])
H34 = np.array([[1.0, 0, 0], [0, 0, 1]])
Q34 = np.array([0.01, 0.02, 0.005])
R34 = np.array([0.04, 0.09])
X34 = np.array([0.2, 0.3, 0.25])
P34 = np.diag([0.01, 0.02, 0.03])
Y34 = np.array([0.3, 0.2])
XA34 = np.array([0.253443, 0.284108, 0.230767])
PA34 = np.array([0.0134218, 0.0362047, 0.0236492])


def _exact_kf(Pf=None, xf=None):
    xf = F34 @ X34 if xf is None else xf
    Pf = F34 @ P34 @ F34.T + np.diag(Q34) if Pf is None else Pf
    S = H34 @ Pf @ H34.T + np.diag(R34)
    Kg = Pf @ H34.T @ np.linalg.inv(S)
    return xf + Kg @ (Y34 - H34 @ xf), Pf - Kg @ H34 @ Pf


def test_e34_exact_kalman_check_values():
    xa, Pa = _exact_kf()
    np.testing.assert_allclose(xa, XA34, atol=5e-7)
    np.testing.assert_allclose(np.diag(Pa), PA34, atol=5e-8)


@pytest.mark.parametrize(
    "filt", [UKF(alpha=1.0, beta=2.0, kappa=0.0), CDKF(), SRUKF(), SRCDKF()], ids=lambda f: f.name
)
def test_e34_sigma_point_filters_predict_then_update(filt):
    X, wm, wc = filt.sigma_points(X34, cov=P34)
    Xf = X @ F34.T  # predict: propagate the previous analysis' sigma points
    Xa, wm, wc = filt.analysis(Xf, wm, wc, lambda x: x @ H34.T, Y34, R34, Q=Q34)
    mean, cov = filt.moments(Xa, wm, wc)
    xa, Pa = _exact_kf()
    np.testing.assert_allclose(mean, xa, atol=1e-10)
    np.testing.assert_allclose(cov, Pa, atol=1e-10)
    np.testing.assert_allclose(mean, XA34, atol=5e-7)
    np.testing.assert_allclose(np.diag(cov), PA34, atol=5e-8)
    # batched over pixels, one pixel without observations, full R given as a matrix
    Xb = np.broadcast_to(Xf, (3, *Xf.shape))
    yb = np.stack([Y34, Y34, [np.nan, np.nan]])
    Xa_b, _, _ = filt.analysis(Xb, wm, wc, lambda x: x @ H34.T, yb, np.diag(R34), Q=Q34)
    mb, cb = filt.moments(Xa_b, wm, wc)
    np.testing.assert_allclose(mb[0], xa, atol=1e-10)
    np.testing.assert_allclose(cb[1], Pa, atol=1e-10)
    xf, Pf = F34 @ X34, F34 @ P34 @ F34.T + np.diag(Q34)
    np.testing.assert_allclose(mb[2], xf, atol=1e-10)  # no observation: the forecast
    np.testing.assert_allclose(cb[2], Pf, atol=1e-10)


def test_e34_sigma_point_sqrt_cov_input_and_downdate_safety():
    f = SRUKF()
    X, wm, wc = f.sigma_points(X34, sqrt_cov=np.linalg.cholesky(P34))
    X2, _, _ = f.sigma_points(X34, cov=P34)
    np.testing.assert_allclose(X, X2, atol=1e-15)
    # a huge-precision observation makes the downdate nearly singular: stays finite
    Xa, wm, wc = f.analysis(X @ F34.T, wm, wc, lambda x: x @ H34.T, Y34, np.array([1e-14, 1e-14]))
    assert np.all(np.isfinite(Xa))


def _ensemble_from(mean, cov, N, rng):
    """Ensemble with exactly the given sample mean and covariance."""
    Z = rng.standard_normal((N, mean.size))
    Z -= Z.mean(0)
    Lz = np.linalg.cholesky(Z.T @ Z / (N - 1))
    Z = Z @ np.linalg.inv(Lz).T
    return mean + Z @ np.linalg.cholesky(cov).T


def test_e34_etkf_equals_kf_with_its_own_sample_covariance():
    rng = np.random.default_rng(0)
    E = _ensemble_from(X34, P34, 10, rng) @ F34.T
    E = E + rng.standard_normal(E.shape) * np.sqrt(Q34)
    xf, Pf = E.mean(0), np.cov(E.T)
    xa, Pa = _exact_kf(Pf, xf)
    for engine in ("numba", "numpy"):
        Ea = ETKF(engine=engine).analysis(E, E @ H34.T, Y34, R34)
        np.testing.assert_allclose(Ea.mean(0), xa, atol=1e-12)
        np.testing.assert_allclose(np.cov(Ea.T), Pa, atol=1e-12)
        # full R and diagonal R agree
        Ef = ETKF(engine=engine).analysis(E, E @ H34.T, Y34, np.diag(R34))
        np.testing.assert_allclose(Ef, Ea, atol=1e-12)


def test_e34_etkf_correlated_full_r():
    rng = np.random.default_rng(1)
    E = _ensemble_from(F34 @ X34, F34 @ P34 @ F34.T + np.diag(Q34), 12, rng)
    Rf = np.array([[0.04, 0.02], [0.02, 0.09]])
    xf, Pf = E.mean(0), np.cov(E.T)
    Kg = Pf @ H34.T @ np.linalg.inv(H34 @ Pf @ H34.T + Rf)
    Ea = ETKF().analysis(E, E @ H34.T, Y34, Rf)
    np.testing.assert_allclose(Ea.mean(0), xf + Kg @ (Y34 - H34 @ xf), atol=1e-12)
    np.testing.assert_allclose(np.cov(Ea.T), Pf - Kg @ H34 @ Pf, atol=1e-12)


@pytest.mark.parametrize("cls", [EnKF, ETKF])
def test_e34_ensemble_filters_converge_with_n(cls):
    xa, Pa = _exact_kf()
    errs = []
    for N in (20, 100, 400):
        rng = np.random.default_rng(N)
        E = rng.multivariate_normal(X34, P34, size=N) @ F34.T
        E = E + rng.standard_normal(E.shape) * np.sqrt(Q34)  # additive model error
        Ea = cls().analysis(E, E @ H34.T, Y34, R34, rng=rng)
        errs.append(
            np.abs(Ea.mean(0) - xa).max() + np.abs(np.cov(Ea.T) - Pa).max() / np.abs(Pa).max()
        )
    assert errs[2] < errs[0]
    assert errs[2] < 0.15


# --------------------------------------------------- kernels vs NumPy reference
def _case(rng, B=6, N=9, n=4, m=3):
    E = rng.normal(size=(B, N, n))
    HE = 1.3 * E[..., :m] + 0.2 * rng.normal(size=(B, N, m))
    y = rng.normal(size=(B, m))
    y[0, 1] = np.nan
    R = np.full((B, m), 0.4)
    d, rinv, _, _ = K.screen_observations(HE, y, R, 3.0)
    return E, HE, d, rinv


@pytest.mark.parametrize("relax", [(1.0, 0.0, 0.0), (1.1, 0.5, 0.0), (1.05, 0.0, 0.8)])
def test_kernels_match_numpy_reference(relax):
    rng = np.random.default_rng(11)
    E, HE, d, rinv = _case(rng)
    eps = rng.normal(size=HE.shape)
    np.testing.assert_allclose(
        K.enkf_general(E, HE, d, rinv, eps, *relax, target="cpu"),
        K.enkf_reference(E, HE, d, rinv, eps, *relax),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        K.etkf_general(E, HE, d, rinv, *relax, target="cpu"),
        K.etkf_reference(E, HE, d, rinv, *relax),
        atol=1e-12,
    )
    one = (E, HE[..., :1], d[..., :1], rinv[..., :1])
    np.testing.assert_allclose(
        K.enkf_1obs(E, HE[..., 0], d[..., 0], rinv[..., 0], eps[..., 0], *relax),
        K.enkf_reference(*one, eps[..., :1], *relax),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        K.etkf_1obs(E, HE[..., 0], d[..., 0], rinv[..., 0], *relax, target="cpu"),
        K.etkf_reference(*one, *relax),
        atol=1e-12,
    )
    rho = K.gaspari_cohn(rng.uniform(0, 2.5, size=(E.shape[-1], HE.shape[-1])))
    np.testing.assert_allclose(
        K.letkf_taper(E, HE, d, rinv, rho, *relax, target="cpu"),
        K.letkf_taper_reference(E, HE, d, rinv, rho, *relax),
        atol=1e-12,
    )


def grid_case(metric, rng, A=4, B=5, N=6, n=3, m=2):
    """A 4 × 5 grid of columns for the grid kernels: E, HE, d, rinv, coordinates, half-width."""
    E = rng.normal(size=(A, B, N, n))
    HE = E[..., :m] + 0.1 * rng.normal(size=(A, B, N, m))
    d = rng.normal(size=(A, B, m))
    rinv = np.full((A, B, m), 2.0)
    rinv[1, 2, 0] = 0.0
    if metric == 1:
        yc, xc = np.meshgrid(np.linspace(38, 38.4, A), np.linspace(100, 100.5, B), indexing="ij")
        return E, HE, d, rinv, yc, xc, 25.0
    yc, xc = np.meshgrid(np.arange(A) * 1.0, np.arange(B) * 1.0, indexing="ij")
    return E, HE, d, rinv, yc, xc, 1.2


@pytest.mark.parametrize("curvilinear", [False, True])
@pytest.mark.parametrize("metric", [1, 0])
def test_letkf_grid_kernel_matches_reference(metric, curvilinear):
    E, HE, d, rinv, yc, xc, c = grid_case(metric, np.random.default_rng(3))
    if curvilinear:  # 2-D coordinates (a rotated pole): one distance per pixel pair
        yc = yc + 0.02 * np.sin(xc)
    A, B = E.shape[:2]
    got = GR.letkf_grid(
        E, HE, d, rinv, yc, xc, c, 10, metric, 0, A, 0, B, 1.05, 0.0, 0.5, target="cpu"
    )
    ref = K.letkf_grid_reference(E, HE, d, rinv, yc, xc, c, metric, 1.05, 0.0, 0.5)
    np.testing.assert_allclose(got, ref, atol=1e-12)
    # a sub-window analysed (a dask block's interior): E holds only those pixels, the
    # observations of the whole window are used
    part = GR.letkf_grid(
        E[1:3, 1:4], HE, d, rinv, yc, xc, c, 10, metric, 1, 3, 1, 4, 1.05, 0.0, 0.5, target="cpu"
    )
    np.testing.assert_allclose(part, ref[1:3, 1:4], atol=1e-12)
    with pytest.raises(ValueError, match="analysed pixels"):
        GR.letkf_grid(E, HE, d, rinv, yc, xc, c, 10, metric, 1, 3, 1, 4, 1.05, 0.0, 0.5)


@pytest.mark.parametrize("local_enkf", [False, True])
def test_grid_kernels_in_row_bands_equal_one_call(local_enkf):
    """The eager path runs the grid kernels in row bands (threads), each with its
    neighbours' halo rows: every pixel gets exactly the result of one whole-grid call."""
    from xldas.filters.core import _in_bands

    rng = np.random.default_rng(5)
    E, HE, d, rinv, yc, xc, _ = grid_case(1, rng, A=23, B=9)
    # rows 2.02 km apart, columns 5.47 km: the support 2c = 6 km spans 2 rows, 1 column
    c, halo = 3.0, 3
    args = (c, halo, 1, 0, 23, 0, 9, 1.05, 0.0, 0.0)
    arrays = (E, HE, d, rinv)
    kern = GR.letkf_grid
    if local_enkf:
        arrays = (*arrays, rng.normal(size=HE.shape))
        kern = GR.lenkf_grid
    whole = kern(*arrays, yc, xc, *args, target="cpu")

    def block(*a):
        *data, ycb, xcb, win = a
        p0, p1, q0, q1 = win.reshape(4)
        return kern(*data, ycb, xcb, c, halo, 1, p0, p1, q0, q1, 1.05, 0.0, 0.0, target="cpu")

    for threads in (2, 3):
        banded = _in_bands(block, E, (*arrays[1:], yc, xc), halo, threads=threads)
        np.testing.assert_array_equal(banded, whole)
    assert not np.allclose(whole, E)  # the analysis did something


def test_philox_matches_reference_and_is_keyed():
    idx = np.array([[0, 1, 2], [2**40 + 5, 7, 9]])
    z = K.philox_normal(idx, 42, 3, 11, np.empty(7))
    np.testing.assert_allclose(z, K.philox_normal_reference(idx, 42, 3, 11, 7), atol=1e-13)
    assert not np.allclose(z, K.philox_normal(idx, 42, 4, 11, np.empty(7)))
    big = K.philox_normal(np.arange(20000), 1, 0, 1, np.empty(4)).ravel()
    assert abs(big.mean()) < 0.02 and abs(big.std() - 1) < 0.02


def test_one_obs_kernels_do_not_change_pixels_without_obs():
    rng = np.random.default_rng(2)
    E = rng.normal(size=(3, 10, 4))
    HE = E[..., 0]
    d = np.array([0.5, 0.0, 0.2])
    rinv = np.array([1.0, 0.0, 2.0])
    for out in (
        K.enkf_1obs(E, HE, d, rinv, rng.normal(size=(3, 10)), 1.0, 0.0, 0.0),
        K.etkf_1obs(E, HE, d, rinv, 1.0, 0.0, 0.0, target="cpu"),
    ):
        np.testing.assert_allclose(out[1], E[1], atol=1e-14)


# --------------------------------------------------------------- array API
def test_enkf_engines_agree_and_rng_is_reproducible():
    rng = np.random.default_rng(4)
    E, HE, _, _ = _case(rng)
    y = rng.normal(size=(6, 3))
    R = np.full((6, 3), 0.5)
    a = EnKF(inflation=1.02).analysis(E, HE, y, R, rng=np.random.default_rng(9))
    b = EnKF(inflation=1.02, engine="numpy").analysis(E, HE, y, R, rng=np.random.default_rng(9))
    np.testing.assert_allclose(a, b, atol=1e-12)
    # centred perturbations: EnKF mean equals the ETKF mean
    np.testing.assert_allclose(
        a.mean(-2), ETKF(inflation=1.02).analysis(E, HE, y, R).mean(-2), atol=1e-12
    )


def test_inflation_multiplies_anomalies():
    rng = np.random.default_rng(6)
    E = rng.normal(size=(30, 2))
    # an uninformative observation (huge error): the analysis is the inflated forecast
    y = np.array([0.0])
    Ea = ETKF(inflation=1.1).analysis(E, E[:, :1], y, np.array([1e14]))
    np.testing.assert_allclose(Ea - Ea.mean(0), 1.1 * (E - E.mean(0)), atol=1e-6)


@pytest.mark.parametrize("filt", [EnKF(inflation=1.1, rtps=0.5), ETKF(inflation=1.1)])
def test_no_observation_keeps_the_forecast(filt):
    """Where nothing is assimilated there is no inflation: the forecast passes unchanged."""
    rng = np.random.default_rng(6)
    E = rng.normal(size=(3, 30, 2))
    y = np.array([[np.nan], [0.3], [np.nan]])
    Ea = filt.analysis(E, E[..., :1], y, np.ones((3, 1)), rng=np.random.default_rng(1))
    np.testing.assert_array_equal(Ea[[0, 2]], E[[0, 2]])
    assert not np.allclose(Ea[1], E[1])
    ref = type(filt)(**{**filt.__dict__, "engine": "numpy"}).analysis(
        E, E[..., :1], y, np.ones((3, 1)), rng=np.random.default_rng(1)
    )
    np.testing.assert_allclose(Ea, ref, atol=1e-12)


def test_rtpp_and_rtps():
    rng = np.random.default_rng(7)
    E = rng.normal(size=(40, 3))
    y, R = np.array([1.0]), np.array([0.1])
    Ea = ETKF().analysis(E, E[:, :1], y, R)
    Ep = ETKF(rtpp=1.0).analysis(E, E[:, :1], y, R)
    np.testing.assert_allclose(Ep - Ep.mean(0), E - E.mean(0), atol=1e-12)
    np.testing.assert_allclose(Ep.mean(0), Ea.mean(0), atol=1e-12)
    Es = ETKF(rtps=1.0).analysis(E, E[:, :1], y, R)
    np.testing.assert_allclose(Es.std(0), E.std(0), atol=1e-12)


def test_letkf_equals_etkf_without_localisation_effect():
    rng = np.random.default_rng(8)
    E = rng.normal(size=(12, 5))
    pos = np.zeros(5)
    y, R = rng.normal(size=5), np.full(5, 0.5)
    a = LETKF(loc_radius=1.0).analysis(E, E, y, R, pos, pos, periodic_distance(40))
    np.testing.assert_allclose(a, ETKF().analysis(E, E, y, R), atol=1e-12)
    # observations beyond the GC support (2 * 1.82 * loc_radius) have no effect
    far = np.full(5, 20.0)
    b = LETKF(loc_radius=1.0).analysis(E, E, y, R, pos, far, periodic_distance(100))
    np.testing.assert_allclose(b, E, atol=1e-12)


def test_pf_weights_ess_resampling_and_jitter():
    rng = np.random.default_rng(10)
    E = rng.normal(size=(200, 2))
    w = np.full(200, 1 / 200)
    pf = PF(reg=0.0, resample_threshold=0.0)
    Ea, wa, ess = pf.update(E, E[:, :1], np.array([0.5]), np.array([0.2]), rng.normal(size=401), w)
    lik = np.exp(-0.5 * (0.5 - E[:, 0]) ** 2 / 0.2)
    np.testing.assert_allclose(wa, lik / lik.sum(), atol=1e-14)
    assert ess == pytest.approx(1 / np.sum(wa**2))
    np.testing.assert_array_equal(Ea, E)  # threshold 0: no resampling
    pf = PF(reg=1.0, resample_threshold=1.0)
    Ea, wa, ess = pf.update(E, E[:, :1], np.array([2.5]), np.array([0.01]), rng.normal(size=401), w)
    np.testing.assert_allclose(wa, 1 / 200)
    assert ess < 20
    # duplicates were jittered: all particles distinct, mean near the observed value
    assert np.unique(Ea[:, 0]).size == 200
    assert abs(Ea[:, 0].mean() - 2.5) < 0.5
    Eb, _ = PF(reg=0.0, resample_threshold=1.0).analysis(
        E, E[:, :1], np.array([2.5]), np.array([0.01]), w, rng=1
    )
    assert np.unique(Eb[:, 0]).size < 50  # plain resampling duplicates


# ---------------------------------------------------------------- bad input
def test_bad_input_errors():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(5, 3))
    y = np.array([0.1])
    with pytest.raises(ObservationError):
        EnKF().analysis(E, E[:, :1], y, np.array([0.0]))
    with pytest.raises(ObservationError):
        ETKF().analysis(E, E[:, :1], y, np.array([np.nan]))
    with pytest.raises(ObservationError):
        ETKF().analysis(E, E[:, :2], np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(FilterError):
        EnKF().analysis(E[:1], E[:1, :1], y, np.array([1.0]))
    with pytest.raises(FilterError):
        ETKF().analysis(E[:2], E[:2, :1], y, np.array([1.0]))
    with pytest.raises(FilterError):
        EnKF(inflation=0.0)
    with pytest.raises(FilterError):
        ETKF(rtpp=0.5, rtps=0.5)
    # a YAML value with a unit, or a quoted number: a FilterError naming the parameter
    with pytest.raises(FilterError, match="loc_radius must be a number"):
        LETKF(loc_radius="25 km")
    with pytest.raises(FilterError, match="rtps must be a number"):
        EnKF(rtps="0.5")
    with pytest.raises(DimensionError):
        EnKF().analysis(E, E[:4, :1], y, np.array([1.0]))
    with pytest.raises(UnknownOptionError, match=r"'enkf'.*'srcdkf'"):
        xldas.filters.get_filter("kalman")
    # missing observation with NaN error is fine (skipped)
    Ea = ETKF().analysis(E, E[:, :1], np.array([np.nan]), np.array([np.nan]))
    np.testing.assert_allclose(Ea, E)


def test_singular_innovation_covariance_gives_no_nan():
    E = np.ones((10, 3))  # collapsed ensemble: HPH^T = 0
    for f in (EnKF(), ETKF(), LETKF(loc_radius=1)):
        args = (E, E[:, :2], np.array([2.0, 2.0]), np.array([1e-300, 1e-300]))
        if isinstance(f, LETKF):
            Ea = f.analysis(*args, np.zeros(3), np.zeros(2), periodic_distance(10))
        else:
            Ea = f.analysis(*args, rng=0)
        assert np.all(np.isfinite(Ea))
    # duplicated observation with perfectly correlated errors: singular R is refused
    with pytest.raises(ObservationError):
        ETKF().analysis(E, E[:, :2], np.zeros(2), np.ones((2, 2)))


# -------------------------------------------------------------- xarray layer
NY, NX, NL = 6, 8, 2


def _ensemble(n_members=16, seed=0, chunks=None):
    rng = np.random.default_rng(seed)
    lat = np.round(38.0 + 0.1 * np.arange(NY), 6)
    lon = np.round(100.0 + 0.1 * np.arange(NX), 6)
    sm = 0.25 + 0.04 * rng.standard_normal((n_members, NL, NY, NX))
    sm[:, 1] = 0.5 * sm[:, 1] + 0.5 * sm[:, 0]  # correlated layers
    ens = xr.Dataset(
        {
            "sm": (
                ("member", "layer", "lat", "lon"),
                sm,
                {"units": "m3 m-3", "long_name": "soil moisture"},
            ),
            "swe": (
                ("member", "lat", "lon"),
                np.abs(3 + 2 * rng.standard_normal((n_members, NY, NX))),
                {"units": "kg m-2"},
            ),
            "b": (
                ("member", "lat", "lon"),
                5 + rng.standard_normal((n_members, NY, NX)),
                {"units": "1"},
            ),
            "pert_precip": (("member", "lat", "lon"), rng.standard_normal((n_members, NY, NX))),
        },
        coords={"lat": lat, "lon": lon, "layer": np.arange(NL), "dz": ("layer", [0.05, 0.25])},
    )
    # augmented parameter correlated with surface soil moisture
    ens["b"] = ens["b"] + 20 * (ens["sm"].isel(layer=0, drop=True) - 0.25)
    ens["b"].attrs = {"units": "1"}
    if chunks:
        ens = ens.chunk(chunks)
    return ens


def _params():
    base = xr.DataArray(np.zeros((NY, NX)), dims=("lat", "lon"))
    return xr.Dataset({"theta_r": base + 0.05, "theta_s": base + 0.45})


class TopLayerSM:
    """Tiny operator for the tests: surface soil moisture of each member."""

    variables = ("sm",)

    def __call__(self, ens, params):
        out = ens["sm"].isel(layer=0, drop=True)
        out.attrs = {"units": "m3 m-3"}
        return out.rename("sm")


class LinearTB:
    """Tiny linear 'brightness temperature' operator with two channels."""

    variables = ("tb_h", "tb_v")

    def __call__(self, ens, params):
        sm = ens["sm"].isel(layer=0, drop=True)
        return xr.Dataset(
            {
                "tb_h": (280.0 - 300.0 * sm).assign_attrs(units="K"),
                "tb_v": (290.0 - 200.0 * sm - 0.5 * ens["swe"]).assign_attrs(units="K"),
            }
        )


def _obs(value=0.30, frac_missing=0.25, seed=1, err=0.02):
    rng = np.random.default_rng(seed)
    ens = _ensemble()
    v = xr.full_like(ens["sm"].isel(member=0, layer=0, drop=True), value)
    v = v.where(rng.random((NY, NX)) > frac_missing)
    o = xr.Dataset({"sm": v})
    o["sm"].attrs = {"units": "m3 m-3", "error_std": err}
    return o


def _tb_obs():
    ens = _ensemble()
    sm0 = ens["sm"].isel(member=0, layer=0, drop=True) * 0 + 0.3
    o = xr.Dataset(
        {
            "tb_h": (280.0 - 300.0 * sm0).assign_attrs(units="K"),
            "tb_v": (290.0 - 200.0 * sm0 - 1.5).assign_attrs(units="K"),
        }
    )
    o["tb_h_err"] = xr.full_like(o["tb_h"], 2.0).assign_attrs(units="K")
    o["tb_v_err"] = xr.full_like(o["tb_v"], 2.0).assign_attrs(units="K")
    o["tb_v"] = o["tb_v"].where(o.lon < 100.5)
    return o


METHODS = ["enkf", "etkf", "letkf", "pf"]


def _kw(method):
    return {"loc_radius": 8.0} if method == "letkf" else {}


@pytest.mark.parametrize("method", METHODS)
def test_assimilate_dask_equals_numpy_and_is_lazy(method):
    ens, obs, op, params = _ensemble(), _obs(), TopLayerSM(), _params()
    a = assimilate(ens, obs, op, params, method=method, seed=3, **_kw(method))
    with raise_if_dask_computes():
        lazy = assimilate(
            _ensemble(chunks={"lat": 3, "lon": 4}),
            obs.chunk(lat=2),
            op,
            params,
            method=method,
            seed=3,
            **_kw(method),
        )
    assert lazy.sm.chunks is not None
    b = lazy.compute()
    xr.testing.assert_allclose(a, b, atol=1e-12)
    assert a.sm.dims == ens.sm.dims and a.sm.dtype == ens.sm.dtype
    assert a.sm.attrs["long_name"] == "soil moisture"
    xr.testing.assert_identical(a.pert_precip, ens.pert_precip)
    assert "history" in a.attrs
    # the analysis moves the surface towards the observation
    top_err = lambda e: float(abs(e.sm.isel(layer=0).mean() - 0.30))  # noqa: E731
    assert top_err(a) < top_err(ens)


@pytest.mark.parametrize(
    "chunks", [{"lat": 2, "lon": 3}, {"lat": 5, "lon": 8}, {"lat": 1, "lon": 2}]
)
def test_letkf_result_does_not_depend_on_chunking(chunks):
    ens, obs, op, params = _ensemble(), _obs(frac_missing=0.1), LinearTB(), _params()
    obs = _tb_obs()
    ref = assimilate(ens, obs, op, params, method="letkf", loc_radius=10.0, inflation=1.02)
    got = assimilate(
        ens.chunk(chunks), obs, op, params, method="letkf", loc_radius=10.0, inflation=1.02
    )
    xr.testing.assert_allclose(ref, got.compute(), atol=1e-12)
    # and the localisation really uses neighbours: differs from a radius too small to reach them
    local = assimilate(ens, obs, op, params, method="letkf", loc_radius=0.5, inflation=1.02)
    assert float(abs(local.sm - ref.sm).max()) > 1e-6


def test_letkf_grid_matches_reference_engine():
    ens, obs, op, params = _ensemble(n_members=8), _tb_obs(), LinearTB(), _params()
    a = assimilate(ens, obs, op, params, method=LETKF(loc_radius=12.0, rtps=0.5))
    b = assimilate(ens, obs, op, params, method=LETKF(loc_radius=12.0, rtps=0.5, engine="numpy"))
    xr.testing.assert_allclose(a, b, atol=1e-11)


def test_assimilate_multiple_obs_variables_units_and_augmentation():
    ens, obs, op = _ensemble(), _tb_obs(), LinearTB()
    obs["tb_h"] = (obs["tb_h"] - 273.15).assign_attrs(units="degC")  # converted on entry
    a, d = ens.ldas.assimilate(obs, op, _params(), method="etkf", return_diagnostics=True)
    b = assimilate(ens, _tb_obs(), op, _params(), method="etkf")
    xr.testing.assert_allclose(a, b, atol=1e-9)
    assert list(d.obs_variable.values) == ["tb_h", "tb_v"]
    assert int(d.n_used.sum()) == NY * NX + int(_tb_obs().tb_v.notnull().sum())
    # the augmented parameter b (correlated with surface sm) is updated
    assert float(abs(a.b - ens.b).max()) > 1e-3


def test_nan_observations_skipped_and_gross_error_rejected():
    ens, op, params = _ensemble(), TopLayerSM(), _params()
    obs = _obs(frac_missing=0.0)
    obs["sm"][0, 0] = np.nan
    obs["sm"][1, 1] = 0.9  # far outside the ensemble: rejected with k=3
    a, d = assimilate(ens, obs, op, params, method="etkf", gross_error=3.0, return_diagnostics=True)
    xr.testing.assert_allclose(a.isel(lat=0, lon=0), ens.isel(lat=0, lon=0))
    xr.testing.assert_allclose(a.isel(lat=1, lon=1), ens.isel(lat=1, lon=1))
    assert int(d.n_rejected.sum()) == 1 and int(d.n_rejected[1, 1]) == 1
    assert int(d.n_used.sum()) == NY * NX - 2
    assert np.isnan(float(d.innovation.sel(obs_variable="sm")[0, 0]))
    for v in ("innovation_mean", "innovation_std", "spread_prior_sm", "spread_posterior_sm"):
        assert v in d
    assert float(d.spread_posterior_sm.isel(layer=0).mean()) < float(
        d.spread_prior_sm.isel(layer=0).mean()
    )


def test_bounds_keep_sm_in_range_and_swe_non_negative_with_accounting():
    ens, params = _ensemble(), _params()
    ens["sm"] = ens["sm"] * 0 + 0.44 + 0.03 * (ens["sm"] - ens["sm"].mean("member")) / 0.04
    ens["sm"].attrs = {"units": "m3 m-3"}
    obs = _obs(value=0.46, frac_missing=0.0, err=0.005)
    a, d = assimilate(
        ens, obs, TopLayerSM(), params, method="enkf", seed=1, return_diagnostics=True
    )
    assert float(a.sm.max()) <= 0.45 + 1e-12 and float(a.sm.min()) >= 0.05 - 1e-12
    assert float(d.bound_adjustment_sm.min()) < 0  # water removed by the clip, in kg m-2
    assert d.bound_adjustment_sm.attrs["units"] == "kg m-2"
    # the accounting equals the clipped amount
    raw = assimilate(
        ens, obs, TopLayerSM(), params, method="enkf", seed=1, bounds={"sm": (None, None)}
    )
    expected = ((a.sm - raw.sm) * ens.dz * 1000).sum("layer").mean("member")
    xr.testing.assert_allclose(d.bound_adjustment_sm, expected, atol=1e-10)
    # swe >= 0 and user bounds on an augmented parameter
    ens2 = _ensemble()
    ens2["swe"] = ens2["swe"] * 0 + 0.5 + 0.5 * xr.DataArray(np.linspace(-1, 1, 16), dims="member")
    ens2["swe"].attrs = {"units": "kg m-2"}
    obs2 = _tb_obs()
    a2 = assimilate(ens2, obs2, LinearTB(), params, method="etkf", bounds={"b": (4.9, 5.1)})
    assert float(a2.swe.min()) >= 0.0
    assert float(a2.b.min()) >= 4.9 and float(a2.b.max()) <= 5.1


def test_pf_xarray_weights_and_ess():
    ens, obs = _ensemble(n_members=30), _obs(frac_missing=0.0, err=0.01)
    a, d = assimilate(
        ens,
        obs,
        TopLayerSM(),
        _params(),
        method=PF(reg=0.5, resample_threshold=0.5),
        seed=2,
        return_diagnostics=True,
    )
    assert a.weight.dims == ("member", "lat", "lon")
    np.testing.assert_allclose(a.weight.sum("member"), 1.0)
    assert float(d.ess.min()) >= 1.0 and float(d.ess.max()) <= 30.0
    # a second cycle starts from the carried weights
    b = assimilate(a, obs, TopLayerSM(), _params(), method="pf", seed=2, cycle=1)
    np.testing.assert_allclose(b.weight.sum("member"), 1.0)


@pytest.mark.parametrize("method", ["ukf", "srukf", "cdkf", "srcdkf"])
def test_sigma_point_assimilate_matches_array_api_and_is_lazy(method):
    # state: sm (2 layers) + swe + b = 4 elements -> 9 sigma points
    base = _ensemble(n_members=9).drop_vars("pert_precip")
    filt = xldas.filters.get_filter(method, Q={"sm": 1e-4, "swe": 0.1})
    mean = np.array([0.25, 0.24, 3.0, 5.0])
    cov = np.diag([0.04**2, 0.03**2, 1.0, 0.5]) + 0.0005 * (np.ones((4, 4)) - np.eye(4))
    X, wm, wc = filt.sigma_points(mean, cov=cov)
    ens = base.copy()
    ens["sm"] = (
        ("member", "layer", "lat", "lon"),
        np.broadcast_to(X[:, :2, None, None], (9, 2, NY, NX)).copy(),
        {"units": "m3 m-3"},
    )
    ens["swe"] = (
        ("member", "lat", "lon"),
        np.broadcast_to(X[:, 2, None, None], (9, NY, NX)).copy(),
        {"units": "kg m-2"},
    )
    ens["b"] = (
        ("member", "lat", "lon"),
        np.broadcast_to(X[:, 3, None, None], (9, NY, NX)).copy(),
        {"units": "1"},
    )
    obs = _obs(value=0.27, frac_missing=0.0)
    a = assimilate(ens, obs, TopLayerSM(), _params(), method=filt)
    Xa, _, _ = filt.analysis(
        X,
        wm,
        wc,
        lambda x: x[..., :1],
        np.array([0.27]),
        np.array([0.02**2]),
        Q=np.array([1e-4, 1e-4, 0.1, 0.0]),
    )
    np.testing.assert_allclose(a.sm.isel(lat=2, lon=3).values, Xa[:, :2], atol=1e-12)
    np.testing.assert_allclose(a.b.isel(lat=2, lon=3).values, Xa[:, 3], atol=1e-12)
    np.testing.assert_allclose(a.weight.isel(lat=0, lon=0), wm)
    assert a.weight_cov.dims == ("member", "lat", "lon")
    with raise_if_dask_computes():
        lazy = assimilate(ens.chunk(lat=3), obs, TopLayerSM(), _params(), method=filt)
    xr.testing.assert_allclose(a, lazy.compute(), atol=1e-12)
    with pytest.raises(FilterError, match="2n\\+1"):
        assimilate(_ensemble(n_members=8), obs, TopLayerSM(), _params(), method=method)


def test_assimilate_bad_input():
    ens, op, params = _ensemble(), TopLayerSM(), _params()
    obs = _obs()
    del obs["sm"].attrs["error_std"]
    with pytest.raises(ObservationError, match="sm_err"):
        assimilate(ens, obs, op, params)
    obs["sm"].attrs["error_std"] = 0.0
    with pytest.raises(ObservationError):
        assimilate(ens, obs, op, params)
    bad = _obs()
    bad["sm_err"] = xr.full_like(bad["sm"], -1.0)
    with pytest.raises(ObservationError):
        assimilate(ens, bad, op, params, method="etkf")
    with pytest.raises(UnknownOptionError, match="valid choices"):
        assimilate(ens, _obs(), op, params, method="3dvar")
    with pytest.raises(FilterError):
        assimilate(_ensemble(n_members=2), _obs(), op, params, method="etkf")
    with pytest.raises(FilterError):
        assimilate(_ensemble(n_members=1), _obs(), op, params, method="enkf")
    far = _obs().assign_coords(lat=_obs().lat + 50)
    with pytest.raises(ObservationError, match="does not overlap"):
        assimilate(ens, far, op, params)
    with pytest.raises(ObservationError, match="several times"):
        two = xr.concat([_obs(), _obs()], dim="time")
        assimilate(ens, two, op, params)


def test_assimilate_aligns_shifted_subset_grid_and_member_chunks():
    ens, op, params = _ensemble(), TopLayerSM(), _params()
    full = _obs(frac_missing=0.0)
    sub = full.isel(lat=slice(1, 4), lon=slice(2, 7))
    a = assimilate(ens, sub, op, params, method="etkf")
    b = assimilate(
        ens, full.where(full.lat.isin(sub.lat) & full.lon.isin(sub.lon)), op, params, method="etkf"
    )
    xr.testing.assert_allclose(a, b, atol=1e-14)
    # member split across chunks is rechunked to one chunk
    c = assimilate(ens.chunk(member=4), full, op, params, method="etkf")
    assert len(c.sm.chunks[0]) == 1
    xr.testing.assert_allclose(
        c.compute(), assimilate(ens, full, op, params, method="etkf"), atol=1e-12
    )


def test_enkf_random_numbers_independent_of_chunking_and_keyed_by_seed():
    ens, obs, op, params = _ensemble(), _obs(), TopLayerSM(), _params()
    a = assimilate(ens, obs, op, params, method="enkf", seed=5, cycle=2)
    b = assimilate(
        ens.chunk(lat=1, lon=3), obs, op, params, method="enkf", seed=5, cycle=2
    ).compute()
    xr.testing.assert_allclose(a, b, atol=1e-12)
    c = assimilate(ens, obs, op, params, method="enkf", seed=5, cycle=3)
    assert float(abs(c.sm - a.sm).max()) > 1e-6


def test_sigma_point_constants():
    assert math.isclose(CDKF().scale(3), math.sqrt(3.0))
    wm, _ = CDKF().weights(3)
    assert wm.sum() == pytest.approx(1.0)
    assert SRUKF(alpha=0.5).scale(2) == pytest.approx(math.sqrt(0.25 * 2))


def test_letkf_on_a_rotated_grid_localises_in_km(tmp_path):
    """On an rlat/rlon grid (degrees) LETKF measures distances in km on the true lat/lon.

    The same ensemble relabelled onto a rotated grid whose 2-D lat/lon equal the regular
    grid's coordinates must give the same analysis as on the regular grid.
    """
    ens, obs, op = _ensemble(), _tb_obs(), LinearTB()
    params = _params().assign_coords(lat=ens["lat"], lon=ens["lon"])
    ref = assimilate(ens, obs, op, params, method="letkf", loc_radius=15.0, inflation=1.0)

    lat2, lon2 = xr.broadcast(ens["lat"], ens["lon"])
    rot = {"lat": "rlat", "lon": "rlon"}

    def rotated(ds):
        ds = ds.rename(rot)
        ds = ds.assign_coords(
            rlat=ds["rlat"].assign_attrs(units="degrees"),
            rlon=ds["rlon"].assign_attrs(units="degrees"),
        )
        return ds.assign_coords(
            lat=(("rlat", "rlon"), lat2.values), lon=(("rlat", "rlon"), lon2.values)
        )

    class RotatedTB(LinearTB):
        def __call__(self, ens, params):
            return super().__call__(ens, params)

    def run(e):
        return assimilate(
            e,
            rotated(obs),
            RotatedTB(),
            rotated(params),
            method="letkf",
            loc_radius=15.0,
            inflation=1.0,
        )

    got = run(rotated(ens))
    np.testing.assert_allclose(got["sm"].values, ref["sm"].values, atol=1e-12)
    # chunked, with lazy 2-D lat/lon (as opened from Zarr): the coordinates stay lazy,
    # read block by block by the tasks, and the analysis is the same
    rotated(ens).to_zarr(tmp_path / "ens.zarr")
    lazy_ens = xr.open_zarr(tmp_path / "ens.zarr").chunk(rlat=3, rlon=4)
    lazy_ens = lazy_ens.set_coords([c for c in ("lat", "lon") if c in lazy_ens.data_vars])
    assert lazy_ens["lat"].chunks is not None
    with raise_if_dask_computes():
        lazy = run(lazy_ens)
    graph = dict(lazy["sm"].data.__dask_graph__())
    embedded = [v for v in graph.values() if isinstance(v, np.ndarray) and v.shape == lat2.shape]
    assert not any(
        np.array_equal(v, c.values) for v in embedded for c in (lat2, lon2)
    )  # the coordinates are read from the store, not shipped with the graph
    np.testing.assert_allclose(lazy["sm"].values, ref["sm"].values, atol=1e-12)


# ------------------------------------------------ fused one-observation path
@pytest.mark.parametrize("mode", [K.MODE_ETKF, K.MODE_ENKF, K.MODE_ENKF_UNCENTRED])
def test_one_obs_kernels_equal_numpy_references(mode):
    rng = np.random.default_rng(11)
    P, N, L = 40, 12, 3
    HE = rng.standard_normal((P, N))
    HE[9, 2] = np.nan  # an unusable prediction: the pixel is not updated
    y, R = rng.standard_normal(P), np.full(P, 0.5)
    y[3], y[5] = np.nan, 30.0  # missing, and rejected by the gross-error check
    pix = np.arange(P, dtype=np.int64) * 7919
    args = (1.05, 3.0, 7, 2, 11, mode)
    got = K.one_obs_weights(HE.T, y, R, pix, *args)
    ref = K.one_obs_weights_reference(HE, y, R, pix, *args)
    for g, r in zip((got[0].T, got[1].T, *got[2:]), ref, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-14)
    assert got[5][5] == 0 and got[6][5] == 1 and got[5][3] == 0 and got[2][9] == 0
    E = rng.standard_normal((L, P, N))
    E[0, 7] = np.nan
    lo, hi = np.full((L, P), -0.5), np.full((L, P), 1.0)
    E2 = np.moveaxis(E, -1, 0).reshape(N, -1)  # members first, (level, pixel) inner
    u, v, a = ref[0], ref[1], ref[2]
    for rtpp, rtps in ((0.0, 0.0), (0.5, 0.0), (0.0, 0.6)):
        want = K.apply_weights_reference(E, u, v, a, rtpp, rtps, lo, hi)
        out, *stats = K.apply_weights(E2, u.T, v.T, a, rtpp, rtps, lo.ravel(), hi.ravel())
        np.testing.assert_allclose(np.moveaxis(out.reshape(N, L, P), 0, -1), want[0], atol=1e-12)
        for g, r in zip(stats, want[1:], strict=True):
            np.testing.assert_allclose(g.reshape(L, P), r, rtol=1e-10, atol=1e-12)
        out32 = K.apply_weights(E2.astype("f4"), u.T, v.T, a, rtpp, rtps, lo.ravel(), hi.ravel())[0]
        assert out32.dtype == np.float32
        np.testing.assert_allclose(np.moveaxis(out32.reshape(N, L, P), 0, -1), want[0], atol=1e-5)


def test_one_obs_kernels_tiles_remainders_and_block_independence():
    """Several pixel tiles, N not a multiple of 4, odd N for the Philox pairs: equal to
    the references, and bitwise the same whatever block a pixel is computed in."""
    rng = np.random.default_rng(3)
    P, N, L = 2 * K._TILE + 77, 13, 2
    HE = rng.standard_normal((N, P))
    y, R = rng.standard_normal(P), np.full(P, 0.5)
    y[::7] = np.nan
    pix = (np.arange(P, dtype=np.int64) << 32) + 123
    # the vectorised Box-Muller draws: philox_normal's numbers to rounding, any tile
    z = np.empty((N, P))
    K._philox_normal_tile(pix, 9, 4, 11, z, 0, np.empty(P), np.empty(P))
    np.testing.assert_allclose(z.T, K.philox_normal(pix, 9, 4, 11, np.empty(N)), atol=4e-15)
    np.testing.assert_allclose(z.T, K.philox_normal_reference(pix, 9, 4, 11, N), atol=4e-15)
    E = rng.standard_normal((N, L * P))
    lo, hi = np.full(L * P, -1.0), np.full(L * P, 1.5)
    for mode in (K.MODE_ETKF, K.MODE_ENKF):
        args = (1.03, 3.0, 9, 4, 11, mode)
        got = K.one_obs_weights(HE, y, R, pix, *args)
        ref = K.one_obs_weights_reference(HE.T, y, R, pix, *args)
        for g, r in zip((got[0].T, got[1].T, *got[2:]), ref, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-13)
        cut = K._TILE - 5  # a block boundary inside the first tile
        parts = [
            K.one_obs_weights(HE[:, s], y[s], R[s], pix[s], *args)
            for s in (np.s_[:cut], np.s_[cut:])
        ]
        for k, g in enumerate(got):
            np.testing.assert_array_equal(g, np.concatenate([q[k] for q in parts], axis=-1))
        u, v, a = got[:3]
        out = K.apply_weights(E, u, v, a, 0.0, 0.0, lo, hi)
        want = K.apply_weights_reference(
            np.moveaxis(E.reshape(N, L, P), 0, -1), u.T, v.T, a, 0.0, 0.0, -1.0, 1.5
        )
        np.testing.assert_allclose(np.moveaxis(out[0].reshape(N, L, P), 0, -1), want[0], atol=1e-12)
        for g, r in zip(out[1:], want[1:], strict=True):
            np.testing.assert_allclose(g.reshape(L, P), r, rtol=1e-10, atol=1e-12)
        E3 = E.reshape(N, L, P)
        half = [
            K.apply_weights(E3[:, :, s].reshape(N, -1), u[:, s], v[:, s], a[s], 0.0, 0.0, -1.0, 1.5)
            for s in (np.s_[:cut], np.s_[cut:])
        ]
        np.testing.assert_array_equal(
            out[0].reshape(N, L, P),
            np.concatenate([h[0].reshape(N, L, -1) for h in half], axis=-1),
        )


@pytest.mark.parametrize(
    "method", [EnKF(inflation=1.05, rtps=0.5), EnKF(centred=False), ETKF(rtpp=0.3, gross_error=3)]
)
def test_fused_one_obs_path_equals_stacked_numpy_path(method):
    """The fused kernels give the stacked NumPy-reference analysis and diagnostics."""
    from dataclasses import replace

    ens, obs, op, params = _ensemble(), _obs(), TopLayerSM(), _params()
    obs["sm"][1, 1] = 0.9
    a, d = assimilate(ens, obs, op, params, method=method, seed=4, return_diagnostics=True)
    ref = replace(method, engine="numpy")
    b, e = assimilate(ens, obs, op, params, method=ref, seed=4, return_diagnostics=True)
    xr.testing.assert_allclose(a.drop_attrs(), b.drop_attrs(), atol=1e-12)
    assert list(d.data_vars) == list(e.data_vars)
    xr.testing.assert_allclose(d.drop_attrs(), e.drop_attrs(), atol=1e-12)
    assert a.sm.dtype == ens.sm.dtype and a.sm.dims == ens.sm.dims
    assert a.sm.values.flags.c_contiguous  # the analysis comes back in the model's layout
    with raise_if_dask_computes():
        lazy = assimilate(
            ens.chunk(lat=4, lon=3),
            obs,
            op,
            params,
            method=method,
            seed=4,
            return_diagnostics=True,
        )
    xr.testing.assert_allclose(lazy[0].compute(), a, atol=1e-12)
    xr.testing.assert_allclose(lazy[1].compute(), d, atol=1e-12)


def test_ukf_numba_kernels_equal_numpy_forms():
    rng = np.random.default_rng(5)
    P, n = 30, 4
    f = UKF(alpha=0.8, beta=2.0, kappa=1.0)
    A = 0.1 * rng.standard_normal((P, n, n))
    X, wm, wc = f.sigma_points(
        rng.standard_normal((P, n)), cov=A @ np.swapaxes(A, -1, -2) + 0.01 * np.eye(n)
    )
    q = np.full(n, 1e-3)
    Xp, xm, S, ok = K.ukf_predict(X, wm, wc, q, f.scale(n))
    xm_r, S_r = K.sigma_predict("ukf", X, wm, wc, q)
    assert ok.min() == 1.0
    np.testing.assert_allclose(xm, xm_r, atol=1e-13)
    np.testing.assert_allclose(S, S_r, atol=1e-13)
    np.testing.assert_allclose(Xp, K.sigma_points_from_sqrt(xm_r, S_r, f.scale(n)), atol=1e-13)
    Y = Xp[..., 0] * 10.0  # whitened observation of the first element (R = 0.01)
    yw = rng.standard_normal(P)
    yw[3], Y[3] = 0.0, 0.0  # a missing observation: no update
    Xa, ok = K.ukf_update_1obs(Xp, xm, S, Y, yw, wm, wc, f.scale(n))
    x_r, Sa_r = K.sigma_update("ukf", Xp, xm, S, Y[..., None], yw[..., None], wm, wc)
    assert ok.min() == 1.0
    np.testing.assert_allclose(Xa, K.sigma_points_from_sqrt(x_r, Sa_r, f.scale(n)), atol=1e-12)
    np.testing.assert_allclose(Xa[3], Xp[3], atol=1e-12)
