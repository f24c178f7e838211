"""Filter kernels on plain arrays (no xarray).

Core dimensions are the member (or sigma-point) axis ``N``, the state axis ``n`` and the
observation axis ``m``; every kernel is batched over any leading (pixel) axes. Numba
kernels are :func:`xldas._numba.gufunc` objects; each has a NumPy reference
(``*_reference``) that the tests compare it with.

Conventions shared by all ensemble kernels (SCIENCE.md §C12):

- ``d`` is the innovation ``y - mean(HE)`` per observation, with missing or rejected
  observations filled with 0, and ``rinv`` the inverse observation-error variance, 0 for
  a missing or rejected observation (so it simply drops out of every formula). A full
  error covariance is whitened by the caller before the kernels see it.
- ``infl`` multiplies the forecast anomalies of ``E`` and ``HE`` (covariance × infl²).
- ``rtpp``/``rtps`` relax the analysis anomalies towards the (uninflated) forecast
  anomalies, per state element, after the update (0 = off).
- A pixel (for the LETKF: a local domain) without any used observation keeps its forecast
  unchanged: no inflation and no relaxation where nothing is assimilated, so that the spread
  of unobserved places does not grow cycle after cycle (land DA cycles daily while a swath
  passes a pixel every 2–3 days). Experiments that observe every variable at every cycle
  (Lorenz-63/96) are unaffected.
"""

from __future__ import annotations

import math
import warnings

import numba
import numpy as np
from llvmlite import ir as _llir
from numba.core import cgutils as _cgutils
from numba.extending import intrinsic as _intrinsic

from xldas._numba import gufunc, njit

__all__ = [
    "effective_sample_size",
    "enkf_1obs",
    "enkf_general",
    "enkf_reference",
    "etkf_1obs",
    "etkf_general",
    "etkf_reference",
    "gaspari_cohn",
    "letkf_grid_reference",
    "letkf_taper",
    "letkf_taper_reference",
    "philox_normal",
    "philox_normal_reference",
    "relax_reference",
    "screen_observations",
    "systematic_resample",
    "systematic_resample_reference",
    "unscented_weights",
]

EARTH_RADIUS_KM = 6371.0088
SQRT3 = math.sqrt(3.0)


# --------------------------------------------------------------------- Gaspari–Cohn
def gaspari_cohn(r):
    """Gaspari & Cohn (1999, QJRMS 125:723, eq. 4.10) 5th-order taper of ``r = |d|/c``.

    ``c`` is the half-width; the support is ``2c`` and ``GC(1) = 5/24``.

    Examples
    --------
    >>> gaspari_cohn(np.array([0.0, 1.0, 2.0])).round(6).tolist()
    [1.0, 0.208333, 0.0]
    """
    r = np.abs(np.asarray(r, dtype=float))
    out = np.zeros_like(r)
    a = r <= 1.0
    b = (r > 1.0) & (r < 2.0)
    ra = r[a]
    out[a] = -(ra**5) / 4 + ra**4 / 2 + 5 * ra**3 / 8 - 5 * ra**2 / 3 + 1
    rb = r[b]
    # the outer polynomial r^5/12 - r^4/2 + 5r^3/8 + 5r^2/3 - 5r + 4 - 2/(3r), factored:
    # summed term by term it cancels to rounding noise (~1e-15) near r = 2, and the
    # localised EnKF scales perturbations by sqrt(GC) (noise of ~3e-8 there)
    out[b] = (2.0 - rb) ** 4 * (2.0 * rb**2 + 4.0 * rb - 1.0) / (24.0 * rb)
    return out


@njit
def _gc(r):
    r = abs(r)
    if r <= 1.0:
        return -(r**5) / 4 + r**4 / 2 + 5 * r**3 / 8 - 5 * r**2 / 3 + 1
    if r < 2.0:
        return (2.0 - r) ** 4 * (2.0 * r * r + 4.0 * r - 1.0) / (24.0 * r)  # factored
    return 0.0


# ----------------------------------------------------------------- unscented weights
def unscented_weights(n, alpha=1.0, beta=2.0, kappa=0.0):
    """Scaled unscented transform weights (Wan & van der Merwe 2000).

    Returns ``(lam, wm, wc)`` with ``wm``/``wc`` of length ``2n+1``.

    Examples
    --------
    >>> lam, wm, wc = unscented_weights(2, 1.0, 2.0, 1.0)
    >>> lam, round(float(wm[0]), 6), round(float(wc[0]), 6), round(float(wm[1]), 6)
    (1.0, 0.333333, 2.333333, 0.166667)
    """
    lam = alpha**2 * (n + kappa) - n
    wm = np.full(2 * n + 1, 1.0 / (2 * (n + lam)))
    wc = wm.copy()
    wm[0] = lam / (n + lam)
    wc[0] = lam / (n + lam) + (1 - alpha**2 + beta)
    return float(lam), wm, wc


# ------------------------------------------------------------------ screening (QC)
def screen_observations(HE, y, R, gross=np.inf):
    """Innovations and inverse error variances after NaN and gross-error screening.

    Parameters
    ----------
    HE : (..., N, m) predicted observations per member.
    y : (..., m) observations (NaN = none).
    R : (..., m) observation-error variances (NaN where there is no observation).
    gross : reject when ``|y - mean(HE)| > gross * sqrt(var(HE) + R)``; ``inf`` disables.

    Returns
    -------
    d : (..., m) innovation ``y - mean(HE)``, 0 where unused.
    rinv : (..., m) ``1/R`` for used observations, 0 otherwise.
    used, rejected : (..., m) booleans.
    """
    HE = np.asarray(HE)
    hbar = HE.mean(axis=-2)
    innov = y - hbar
    valid = np.isfinite(y) & np.isfinite(R) & np.isfinite(hbar)
    with np.errstate(invalid="ignore"):
        if np.isfinite(gross):
            var = HE.var(axis=-2, ddof=1)
            rejected = valid & ~(np.abs(innov) <= gross * np.sqrt(var + R))
        else:
            rejected = np.zeros(valid.shape, bool)
        used = valid & ~rejected
        d = np.where(used, innov, 0.0)
        rinv = np.where(used, 1.0 / np.where(used, R, 1.0), 0.0)
    return d, rinv, used, rejected


# ------------------------------------------------------------------- relaxation
def relax_reference(Ef, Ea, rtpp=0.0, rtps=0.0):
    """RTPP (Zhang et al. 2004) or RTPS (Whitaker & Hamill 2012) on (..., N, n) arrays."""
    if not (rtpp or rtps):
        return Ea
    mf = Ef.mean(axis=-2, keepdims=True)
    ma = Ea.mean(axis=-2, keepdims=True)
    Xf, Xa = Ef - mf, Ea - ma
    if rtpp:
        return ma + (1 - rtpp) * Xa + rtpp * Xf
    sf = np.sqrt((Xf**2).sum(axis=-2, keepdims=True))
    sa = np.sqrt((Xa**2).sum(axis=-2, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        fac = np.where(sa > 0, rtps * (sf - sa) / np.where(sa > 0, sa, 1.0) + 1.0, 1.0)
    return ma + fac * Xa


@njit
def _relax_col(E, out, j, rtpp, rtps):
    if rtpp == 0.0 and rtps == 0.0:
        return
    N = E.shape[0]
    mf = 0.0
    ma = 0.0
    for i in range(N):
        mf += E[i, j]
        ma += out[i, j]
    mf /= N
    ma /= N
    if rtpp != 0.0:
        for i in range(N):
            out[i, j] = ma + (1.0 - rtpp) * (out[i, j] - ma) + rtpp * (E[i, j] - mf)
        return
    sf = 0.0
    sa = 0.0
    for i in range(N):
        sf += (E[i, j] - mf) ** 2
        sa += (out[i, j] - ma) ** 2
    if sa > 0.0:
        fac = rtps * (math.sqrt(sf) - math.sqrt(sa)) / math.sqrt(sa) + 1.0
        for i in range(N):
            out[i, j] = ma + fac * (out[i, j] - ma)


def _keep_unobserved(E, Ea, rinv):
    """Return ``Ea`` with the forecast ``E`` where no observation is used (``rinv == 0``)."""
    used = (np.asarray(rinv) > 0).any(axis=-1)
    return np.where(used[..., None, None], Ea, E)


# -------------------------------------------------------------------------- EnKF
def enkf_reference(E, HE, d, rinv, eps, infl=1.0, rtpp=0.0, rtps=0.0):
    """Stochastic EnKF (Burgers et al. 1998) in ensemble space, NumPy reference.

    ``eps`` (..., N, m) are the observation perturbations (already scaled by the error
    standard deviation, centred by the caller when asked). Per member,
    ``x_i += K (y + eps_i - HE_i)`` with ``K = Pxy (Pyy + R)^-1`` written as
    ``X' (Y'^T R^-1 Y' + (N-1) I)^-1 Y'^T R^-1`` so that ``rinv = 0`` drops an observation.
    """
    N = E.shape[-2]
    X = infl * (E - E.mean(axis=-2, keepdims=True))
    Y = infl * (HE - HE.mean(axis=-2, keepdims=True))
    D = d[..., None, :] + np.where(rinv[..., None, :] > 0, eps, 0.0) - Y
    C = Y * rinv[..., None, :]
    A = C @ np.swapaxes(Y, -1, -2) + (N - 1) * np.eye(N)
    W = np.linalg.solve(A, C @ np.swapaxes(D, -1, -2))
    Ea = E.mean(axis=-2, keepdims=True) + X + np.swapaxes(W, -1, -2) @ X
    return _keep_unobserved(E, relax_reference(E, Ea, rtpp, rtps), rinv)


@gufunc(
    [
        "void(float64[:,:], float64[:,:], float64[:], float64[:], float64[:,:], float64, float64, float64, float64[:,:])"
    ],
    "(N,n),(N,m),(m),(m),(N,m),(),(),()->(N,n)",
)
def enkf_general(E, HE, d, rinv, eps, infl, rtpp, rtps, out):
    """Stochastic EnKF for any number of observations per pixel (see :func:`enkf_reference`)."""
    N, n = E.shape
    m = HE.shape[1]
    if not _any_used(rinv):
        out[:, :] = E
        return
    Y = np.empty((N, m))
    _obs_anomalies(HE, infl, Y)
    A = np.zeros((N, N))
    B = np.zeros((N, N))
    for a in range(N):
        A[a, a] = N - 1.0
        for b in range(N):
            s = 0.0
            t = 0.0
            for k in range(m):
                if rinv[k] > 0.0:
                    c = Y[a, k] * rinv[k]
                    s += c * Y[b, k]
                    t += c * (d[k] + eps[b, k] - Y[b, k])
            A[a, b] += s
            B[a, b] = t
    W = np.linalg.solve(A, B)
    for j in range(n):
        _update_column(E, out, j, W, infl, rtpp, rtps)


@njit
def _transform_column(E, out, j, T, infl, rtpp, rtps):
    """Square-root filters: x_ij^a = x̄_j + sum_a infl (x_aj - x̄_j) T_ai, then relaxation."""
    _column_update(E, out, j, T, infl, rtpp, rtps, False)


@njit
def _update_column(E, out, j, W, infl, rtpp, rtps):
    """x_ij^a = x̄_j + infl (x_ij - x̄_j) + sum_a infl (x_aj - x̄_j) W_ai, then relaxation."""
    _column_update(E, out, j, W, infl, rtpp, rtps, True)


@njit
def _column_update(E, out, j, W, infl, rtpp, rtps, own):
    """Column ``j`` of the analysis from the weights ``W`` on the inflated anomalies,
    plus the member's own anomaly when ``own`` (``W`` is then ``T - I``)."""
    N = E.shape[0]
    mj = 0.0
    for i in range(N):
        mj += E[i, j]
    mj /= N
    for i in range(N):
        acc = mj
        if own:
            acc += infl * (E[i, j] - mj)
        for a in range(N):
            acc += infl * (E[a, j] - mj) * W[a, i]
        out[i, j] = acc
    _relax_col(E, out, j, rtpp, rtps)


@njit
def _obs_anomalies(HE, infl, Y):
    """Inflated observation anomalies ``Y[i, k] = infl (HE[i, k] - mean_i HE[:, k])``."""
    N = HE.shape[0]
    for k in range(HE.shape[1]):
        hb = 0.0
        for i in range(N):
            hb += HE[i, k]
        hb /= N
        for i in range(N):
            Y[i, k] = infl * (HE[i, k] - hb)


@gufunc(
    [
        "void(float64[:,:], float64[:], float64, float64, float64[:], float64, float64, float64, float64[:,:])"
    ],
    "(N,n),(N),(),(),(N),(),(),()->(N,n)",
)
def enkf_1obs(E, HE, d, rinv, eps, infl, rtpp, rtps, out):
    """Stochastic EnKF with one observation per pixel: closed form, no allocation.

    ``x_ij += Pxy_j / (Pyy + R) * (d + eps_i - Y_i)``.
    """
    N, n = E.shape
    if not rinv > 0.0:
        out[:, :] = E
        return
    hb = 0.0
    for i in range(N):
        hb += HE[i]
    hb /= N
    yy = 0.0
    for i in range(N):
        yy += (infl * (HE[i] - hb)) ** 2
    denom = (N - 1.0) + rinv * yy
    for j in range(n):
        mj = 0.0
        for i in range(N):
            mj += E[i, j]
        mj /= N
        xy = 0.0
        for i in range(N):
            xy += (E[i, j] - mj) * (HE[i] - hb)
        g = infl * infl * xy * rinv / denom
        for i in range(N):
            dev = d + eps[i] - infl * (HE[i] - hb) if rinv > 0.0 else 0.0
            out[i, j] = mj + infl * (E[i, j] - mj) + g * dev
        _relax_col(E, out, j, rtpp, rtps)


# -------------------------------------------------------------------------- ETKF
def _etkf_transform_reference(Y, d, rinv):
    """Return T (..., N, N) with X_a' + mean shift = X' T (symmetric root + mean weights)."""
    N = Y.shape[-2]
    C = Y * rinv[..., None, :]
    A = C @ np.swapaxes(Y, -1, -2) + (N - 1) * np.eye(N)
    lam, V = np.linalg.eigh(A)
    Pt = (V / lam[..., None, :]) @ np.swapaxes(V, -1, -2)
    W = (V * np.sqrt((N - 1) / lam)[..., None, :]) @ np.swapaxes(V, -1, -2)
    wbar = Pt @ (C @ d[..., :, None])  # (..., N, 1)
    return W + wbar


def etkf_reference(E, HE, d, rinv, infl=1.0, rtpp=0.0, rtps=0.0):
    """ETKF with the symmetric square root (Hunt et al. 2007), NumPy reference."""
    X = infl * (E - E.mean(axis=-2, keepdims=True))
    Y = infl * (HE - HE.mean(axis=-2, keepdims=True))
    T = _etkf_transform_reference(Y, d, rinv)
    Ea = E.mean(axis=-2, keepdims=True) + np.swapaxes(T, -1, -2) @ X
    return _keep_unobserved(E, relax_reference(E, Ea, rtpp, rtps), rinv)


@njit
def _any_used(rinv):
    for k in range(rinv.shape[0]):
        if rinv[k] > 0.0:
            return True
    return False


@njit
def _etkf_transform(Y, d, r, T):
    """T = W + wbar 1^T for inflated obs anomalies Y (N, k), innovations d, weights r."""
    N = Y.shape[0]
    k = Y.shape[1]
    A = np.zeros((N, N))
    Cd = np.zeros(N)
    for a in range(N):
        A[a, a] = N - 1.0
        for q in range(k):
            Cd[a] += Y[a, q] * r[q] * d[q]
        for b in range(a, N):
            s = 0.0
            for q in range(k):
                s += Y[a, q] * r[q] * Y[b, q]
            A[a, b] += s
            if b != a:
                A[b, a] += s
    _etkf_from_normal(A, Cd, T)


@njit
def _etkf_from_normal(A, Cd, T):
    """``T = W + wbar 1^T`` from ``A = (N-1) I + Y^T R^-1 Y`` and ``Cd = Y^T R^-1 d``:
    ``W = sqrt(N-1) A^-1/2`` (symmetric square root), ``wbar = A^-1 Cd``."""
    N = A.shape[0]
    lam, V = np.linalg.eigh(A)
    Vs = np.empty((N, N))
    Vp = np.empty((N, N))
    for a in range(N):
        for e in range(N):
            Vs[a, e] = V[a, e] * math.sqrt((N - 1.0) / lam[e])
            Vp[a, e] = V[a, e] / lam[e]
    Vt = np.ascontiguousarray(V.T)
    W = np.dot(Vs, Vt)
    wbar = np.dot(Vp, np.dot(Vt, Cd))
    for a in range(N):
        for b in range(N):
            T[a, b] = W[a, b] + wbar[a]


@gufunc(
    [
        "void(float64[:,:], float64[:,:], float64[:], float64[:], float64, float64, float64, float64[:,:])"
    ],
    "(N,n),(N,m),(m),(m),(),(),()->(N,n)",
)
def etkf_general(E, HE, d, rinv, infl, rtpp, rtps, out):
    """ETKF (symmetric square root) for any number of observations per pixel."""
    N, n = E.shape
    m = HE.shape[1]
    if not _any_used(rinv):
        out[:, :] = E
        return
    Y = np.empty((N, m))
    for k in range(m):
        hb = 0.0
        for i in range(N):
            hb += HE[i, k]
        hb /= N
        for i in range(N):
            Y[i, k] = infl * (HE[i, k] - hb)
    T = np.empty((N, N))
    _etkf_transform(Y, d, rinv, T)
    for j in range(n):
        _transform_column(E, out, j, T, infl, rtpp, rtps)


@gufunc(
    ["void(float64[:,:], float64[:], float64, float64, float64, float64, float64, float64[:,:])"],
    "(N,n),(N),(),(),(),(),()->(N,n)",
)
def etkf_1obs(E, HE, d, rinv, infl, rtpp, rtps, out):
    """ETKF with one observation per pixel: rank-one closed form, no allocation.

    With ``A = (N-1) I + r Y Y^T`` the symmetric root is
    ``W = I + beta Y Y^T/|Y|^2``, ``beta = (1 + r|Y|^2/(N-1))^(-1/2) - 1``, and the mean
    weights are ``Y r d / (N - 1 + r|Y|^2)``.
    """
    N, n = E.shape
    if not rinv > 0.0:
        out[:, :] = E
        return
    hb = 0.0
    for i in range(N):
        hb += HE[i]
    hb /= N
    yy = 0.0
    for i in range(N):
        yy += (infl * (HE[i] - hb)) ** 2
    s = rinv * yy
    beta = 1.0 / math.sqrt(1.0 + s / (N - 1.0)) - 1.0
    proj = beta / yy if yy > 0.0 else 0.0
    wmean = rinv * d / (N - 1.0 + s)
    for j in range(n):
        mj = 0.0
        for i in range(N):
            mj += E[i, j]
        mj /= N
        xy = 0.0
        for i in range(N):
            xy += infl * (E[i, j] - mj) * infl * (HE[i] - hb)
        shift = mj + xy * wmean
        for i in range(N):
            out[i, j] = shift + infl * (E[i, j] - mj) + proj * xy * infl * (HE[i] - hb)
        _relax_col(E, out, j, rtpp, rtps)


# ------------------------------------------------------------------------- LETKF
def letkf_taper_reference(E, HE, d, rinv, rho, infl=1.0, rtpp=0.0, rtps=0.0):
    """LETKF with R-localisation: state element j uses ``rinv * rho[j]`` (NumPy reference).

    ``rho`` (..., n, m) holds the Gaspari–Cohn weights between state elements and
    observations (Hunt et al. 2007).
    """
    X = infl * (E - E.mean(axis=-2, keepdims=True))
    Y = infl * (HE - HE.mean(axis=-2, keepdims=True))
    Ea = np.empty_like(E)
    mean = E.mean(axis=-2)
    for j in range(E.shape[-1]):
        T = _etkf_transform_reference(Y, d, rinv * rho[..., j, :])
        Ea[..., :, j] = mean[..., j][..., None] + np.einsum("...ai,...a->...i", T, X[..., :, j])
    Ea = relax_reference(E, Ea, rtpp, rtps)
    used = ((rinv[..., None, :] * rho) > 0).any(axis=-1)  # (..., n)
    return np.where(used[..., None, :], Ea, E)


@gufunc(
    [
        "void(float64[:,:], float64[:,:], float64[:], float64[:], float64[:,:], float64, float64, float64, float64[:,:])"
    ],
    "(N,n),(N,m),(m),(m),(n,m),(),(),()->(N,n)",
)
def letkf_taper(E, HE, d, rinv, rho, infl, rtpp, rtps, out):
    """LETKF on plain arrays: one local ETKF per state element (see the reference)."""
    N, n = E.shape
    m = HE.shape[1]
    Yall = np.empty((N, m))
    _obs_anomalies(HE, infl, Yall)
    T = np.empty((N, N))
    for j in range(n):
        cnt = 0
        for k in range(m):
            if rinv[k] * rho[j, k] > 0.0:
                cnt += 1
        Y = np.empty((N, cnt))
        dl = np.empty(cnt)
        rl = np.empty(cnt)
        c = 0
        for k in range(m):
            w = rinv[k] * rho[j, k]
            if w > 0.0:
                for i in range(N):
                    Y[i, c] = Yall[i, k]
                dl[c] = d[k]
                rl[c] = w
                c += 1
        if cnt == 0:
            for i in range(N):
                out[i, j] = E[i, j]
            continue
        _etkf_transform(Y, dl, rl, T)
        _transform_column(E, out, j, T, infl, rtpp, rtps)


@njit
def _distance(lat1, lon1, lat2, lon2, metric):
    if metric == 1:  # great circle, km (haversine)
        p1 = math.radians(lat1)
        p2 = math.radians(lat2)
        dp = p2 - p1
        dl = math.radians(lon2 - lon1)
        a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
    return math.sqrt((lat2 - lat1) ** 2 + (lon2 - lon1) ** 2)


def grid_distance_reference(ycoord, xcoord, metric):
    """All pairwise distances (P, P) between the pixels of 2-D coordinate arrays."""
    y = ycoord.ravel()
    x = xcoord.ravel()
    if metric == 1:
        p1, p2 = np.radians(y)[:, None], np.radians(y)[None, :]
        dl = np.radians(x[None, :] - x[:, None])
        a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
        return 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(a)))
    return np.hypot(y[:, None] - y[None, :], x[:, None] - x[None, :])


def letkf_grid_reference(E, HE, d, rinv, ycoord, xcoord, c, metric, infl=1.0, rtpp=0.0, rtps=0.0):
    """NumPy reference of :func:`xldas.filters._grid.letkf_grid` through
    :func:`letkf_taper_reference`.

    The grid is flattened into one state vector of ``P*n`` elements and ``P*m``
    observations; the taper between element ``(p, j)`` and observation ``(q, k)`` is
    ``GC(dist(p, q)/c)``.
    """
    rho, (Ef, Hf) = grid_as_vector(E, HE, ycoord, xcoord, c, metric)
    Ea = letkf_taper_reference(Ef, Hf, d.reshape(-1), rinv.reshape(-1), rho, infl, rtpp, rtps)
    return vector_as_grid(Ea, E.shape)


def grid_as_vector(E, HE, ycoord, xcoord, c, metric, *member_obs):
    """A grid of columns as one state vector (references of the grid kernels).

    Returns the tapers ``rho`` (P*n, P*m) between state element ``(p, j)`` and
    observation ``(q, k)``, ``GC(dist(p, q)/c)``, and ``E``, ``HE`` and any further
    (A, B, N, m) arrays flattened to (N, P*n) / (N, P*m).
    """
    A, B, N, n = E.shape
    m = HE.shape[-1]
    P = A * B
    dist = grid_distance_reference(ycoord, xcoord, metric)
    rho = np.repeat(np.repeat(gaspari_cohn(dist / c), n, axis=0), m, axis=1)
    flat = [
        np.moveaxis(x.reshape(P, N, x.shape[-1]), 0, 1).reshape(N, -1) for x in (E, HE, *member_obs)
    ]
    return rho, flat


def vector_as_grid(Ea, shape):
    """Inverse of :func:`grid_as_vector` for the state: (N, P*n) -> (A, B, N, n)."""
    A, B, N, n = shape
    return np.moveaxis(Ea.reshape(N, A * B, n), 1, 0).reshape(A, B, N, n)


# --------------------------------------------------------------- particle filter
def effective_sample_size(w):
    """``1 / sum(w^2)`` of normalised weights along the last axis.

    Examples
    --------
    >>> round(float(effective_sample_size(np.array([0.1, 0.2, 0.3, 0.4]))), 4)
    3.3333
    """
    w = np.asarray(w, dtype=float)
    return 1.0 / np.sum(w * w, axis=-1)


def systematic_resample_reference(w, u):
    """Systematic resampling (Kitagawa 1996), NumPy reference.

    ``u`` in ``[0, 1/N)``; returns indices ``min{i : cumsum(w)_i >= u + j/N}``.
    """
    w = np.asarray(w, dtype=float)
    N = w.shape[-1]
    cw = np.cumsum(w, axis=-1)
    cw[..., -1] = np.maximum(cw[..., -1], 1.0)
    uj = np.asarray(u)[..., None] + np.arange(N) / N
    idx = (cw[..., None, :] < uj[..., :, None]).sum(axis=-1)
    return np.minimum(idx, N - 1)


@gufunc(["void(float64[:], float64, int64[:])"], "(N),()->(N)")
def systematic_resample(w, u, out):
    """Systematic resampling indices (0-based); allocation-free merge of two sorted lists."""
    N = w.shape[0]
    i = 0
    cw = w[0]
    for j in range(N):
        uj = u + j / N
        while cw < uj and i < N - 1:
            i += 1
            cw += w[i]
        out[j] = i


# ------------------------------------------------------------- counter-based RNG
_PHILOX_M0 = 0xD2511F53
_PHILOX_M1 = 0xCD9E8D57
_PHILOX_W0 = 0x9E3779B9
_PHILOX_W1 = 0xBB67AE85
_MASK32 = 0xFFFFFFFF
# unsigned forms (Philox is computed on unsigned 64-bit words, see _philox4x32)
_UM0, _UM1 = np.uint64(_PHILOX_M0), np.uint64(_PHILOX_M1)
_UW0, _UW1 = np.uint64(_PHILOX_W0), np.uint64(_PHILOX_W1)
_UMASK, _U1, _U3, _U30, _U32 = (np.uint64(k) for k in (_MASK32, 1, 3, 30, 32))


@njit
def _philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 (Salmon et al. 2011, SC'11) on 32-bit words (non-negative int64).

    Computed on unsigned 64-bit words: the 32 × 32-bit products reach 2**64, which signed
    int64 arithmetic would overflow (undefined behaviour for numba's LLVM). Returns the
    four output words as int64.
    """
    x0, x1, x2, x3 = np.uint64(c0), np.uint64(c1), np.uint64(c2), np.uint64(c3)
    u0, u1 = np.uint64(k0), np.uint64(k1)
    for _ in range(10):
        p0 = _UM0 * x0
        p1 = _UM1 * x2
        hi0 = (p0 >> _U32) & _UMASK
        lo0 = p0 & _UMASK
        hi1 = (p1 >> _U32) & _UMASK
        lo1 = p1 & _UMASK
        x0, x1, x2, x3 = hi1 ^ x1 ^ u0, lo1, hi0 ^ x3 ^ u1, lo0
        u0 = (u0 + _UW0) & _UMASK
        u1 = (u1 + _UW1) & _UMASK
    return np.int64(x0), np.int64(x1), np.int64(x2), np.int64(x3)


@gufunc(["void(int64, int64, int64, int64, float64[:], float64[:])"], "(),(),(),(),(k)->(k)")
def philox_normal(index, seed, cycle, purpose, template, out):
    """Standard normal numbers, a pure function of (seed, cycle, purpose, index, k).

    ``index`` is the global position of the pixel (row-major over the full grid), so the
    numbers do not depend on chunking or restarts. Box–Muller on Philox4x32-10 output.
    ``template`` only fixes the length ``k``.
    """
    _philox_fill(index, seed, cycle, purpose, out)


@njit
def _philox_fill(index, seed, cycle, purpose, out):
    """Fill ``out`` with the numbers of :func:`philox_normal` (no allocation)."""
    k = out.shape[0]
    k0 = seed & _MASK32
    k1 = ((seed >> 32) ^ (purpose * 0x85EBCA6B)) & _MASK32
    c1 = (index >> 32) & _MASK32
    c3 = cycle & _MASK32
    for blk in range((k + 1) // 2):
        r0, r1, _r2, _r3 = _philox4x32(index & _MASK32, c1, blk & _MASK32, c3, k0, k1)
        u1 = (r0 + 0.5) / 4294967296.0
        u2 = (r1 + 0.5) / 4294967296.0
        rad = math.sqrt(-2.0 * math.log(u1))
        out[2 * blk] = rad * math.cos(2.0 * math.pi * u2)
        if 2 * blk + 1 < k:
            out[2 * blk + 1] = rad * math.sin(2.0 * math.pi * u2)


def philox_normal_reference(index, seed, cycle, purpose, k):
    """NumPy reference of :func:`philox_normal` (vectorised Philox4x32-10 + Box–Muller)."""
    index = np.asarray(index, dtype=np.uint64)
    nb = (k + 1) // 2
    M = np.uint64(_MASK32)
    blk = np.arange(nb, dtype=np.uint64)
    c0 = np.broadcast_to(index[..., None] & M, (*index.shape, nb)).astype(np.uint64)
    c1 = np.broadcast_to((index[..., None] >> np.uint64(32)) & M, c0.shape).astype(np.uint64)
    c2 = np.broadcast_to(blk, c0.shape).astype(np.uint64)
    c3 = np.full(c0.shape, np.uint64(cycle) & M, dtype=np.uint64)
    k0 = np.uint64(seed) & M
    k1 = (np.uint64(seed >> 32) ^ np.uint64((purpose * 0x85EBCA6B) & 0xFFFFFFFFFFFFFFFF)) & M
    for _ in range(10):
        p0 = np.uint64(_PHILOX_M0) * c0
        p1 = np.uint64(_PHILOX_M1) * c2
        hi0, lo0 = (p0 >> np.uint64(32)) & M, p0 & M
        hi1, lo1 = (p1 >> np.uint64(32)) & M, p1 & M
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + np.uint64(_PHILOX_W0)) & M
        k1 = (k1 + np.uint64(_PHILOX_W1)) & M
    u1 = (c0.astype(float) + 0.5) / 4294967296.0
    u2 = (c1.astype(float) + 0.5) / 4294967296.0
    rad = np.sqrt(-2.0 * np.log(u1))
    z = np.stack([rad * np.cos(2 * np.pi * u2), rad * np.sin(2 * np.pi * u2)], axis=-1)
    return z.reshape((*index.shape, 2 * nb))[..., :k]


# ------------------------------------------------ fused one-observation analysis
# One observation per pixel (the common land-DA case) has a rank-one closed form for
# both the EnKF and the ETKF: every state element ``j`` of a pixel is updated as
#
#     x_ij <- m_j + a (x_ij - m_j) + c_j v_i,    c_j = sum_k (x_kj - m_j) u_k,
#
# with per-pixel member vectors ``u`` (the observation anomalies) and ``v`` (the gain
# applied to each member) and the anomaly factor ``a`` (the inflation; ``a = 0`` marks a
# pixel without a used observation, whose forecast passes unchanged). ``one_obs_weights``
# computes ``u, v, a`` and the screening diagnostics from the predicted observations,
# drawing the EnKF perturbations itself from Philox (the draws of :func:`philox_normal`);
# ``apply_weights`` then updates each variable in its own layout (no stacked copy of the
# state), with relaxation, bounds, the bound accounting and the prior/posterior spread in
# the same pass. Neither allocates per pixel. Both work on tiles of pixels with the
# pixels innermost: every loop over members runs along contiguous memory for a whole
# tile (SIMD across pixels; per pixel the sums still run over the members in order), and
# a tile stays in cache between the passes over it, so the ensemble is read once from
# memory and written once.
MODE_ETKF, MODE_ENKF, MODE_ENKF_UNCENTRED = 0, 1, 2
# pixels per tile: 32 members × 256 pixels × 8 B = 64 KiB per level, in L2 with the
# tile's weights; 256 ran 5-15 % faster than 512, 1024 or 2048 at 1000 × 1000 pixels
# (and 64 or 128) on a Zen 4 core with 1 MiB of L2, most of all in place
_TILE = 256
# tiles ahead whose rows the single-pass kernel prefetches (into L2) while it reads a
# tile: members outermost, a tile is 32 short rows per level, too short for the CPU's
# own prefetcher to run ahead; at 2 tiles (prefetcht2) a tiled read of 192 rows of 256
# pixels ran 1.8x faster on a Zen 4 core (prefetcht0, or 1 tile ahead: no gain)
_PREFETCH_TILES = 2

# Philox4x32-10 on unsigned 64-bit words. Numba compiles signed integer arithmetic with
# LLVM's ``nsw`` flag (signed overflow is undefined), and the 32 × 32-bit products of
# Philox exceed 2**63: in vectorised code LLVM then folds comparisons on the result
# wrongly. Unsigned arithmetic wraps by definition.
_UHALF30, _UPURPOSE = np.uint64(1 << 29), np.uint64(0x85EBCA6B)


def _bm_coefficients():
    """Polynomial coefficients of the Box–Muller transform (IEEE operations only).

    ``log(1 + f) = f - f²/2 + s (f²/2 + R(s²))``, ``s = f / (2 + f)``, with the series
    ``R = Σ_k 2 s^(2k) / (2k + 1)`` (k = 1..10: |s| ≤ 0.1716 leaves < 1e-18); Taylor
    series of ``sin(π g / 2)`` (odd powers to 17) and ``cos(π g / 2)`` (even powers to 18)
    for ``|g| ≤ 1/2`` (remainder < 1e-18). Built by multiplications and divisions only,
    so the constants are the same on every IEEE machine.
    """
    hp = math.pi / 2.0
    log_c = tuple(2.0 / (2 * k + 1) for k in range(1, 11))
    sin_c, cos_c = [], []
    power, fact = 1.0, 1.0
    for n in range(1, 19):
        power *= hp
        fact *= n
        term = power / fact
        if n % 2:
            sin_c.append(-term if (n // 2) % 2 else term)
        else:
            cos_c.append(-term if (n // 2) % 2 else term)
    return log_c, tuple(sin_c), tuple(cos_c)


(_LG1, _LG2, _LG3, _LG4, _LG5, _LG6, _LG7, _LG8, _LG9, _LG10), _SIN_C, _COS_C = _bm_coefficients()
_S1, _S3, _S5, _S7, _S9, _S11, _S13, _S15, _S17 = _SIN_C
_C2, _C4, _C6, _C8, _C10, _C12, _C14, _C16, _C18 = _COS_C
# The vectorised draws sum fewer terms than _bm_coefficients builds, as many as double
# precision needs: the first neglected term of R is 2 s^21 / 21 < 1e-17 (|s| <= 0.1716),
# of sin (pi g / 2) (pi/4)^17 / 17! < 5e-17 and of cos (pi/4)^18 / 18! < 3e-18, each below
# half an ulp of the value it is added to.
_LN2_HI = 6.93147180369123816490e-01  # ln 2 = _LN2_HI + _LN2_LO, _LN2_HI with 21
_LN2_LO = 1.90821492927058770002e-10  # trailing zero bits (k ln2_hi exact for |k| < 2**11)
_SQRT2 = math.sqrt(2.0)
_MANTISSA, _EXP_ONE, _U52 = (
    np.uint64(0x000FFFFFFFFFFFFF),
    np.uint64(0x3FF0000000000000),
    np.uint64(52),
)


@_intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (IEEE fused multiply-add, ``llvm.fma``).

    Exact by definition on every machine (in hardware where there is an FMA unit, in
    software elsewhere), so that results do not depend on the compiler contracting a
    product and a sum or not; LLVM vectorises it.
    """
    f8 = numba.types.float64
    sig = f8(f8, f8, f8)

    def codegen(context, builder, signature, args):
        d = _llir.DoubleType()
        fn = _cgutils.get_or_insert_function(
            builder.module, _llir.FunctionType(d, [d, d, d]), "llvm.fma.f64"
        )
        return builder.call(fn, args)

    return sig, codegen


# the polynomials of the vectorised draws, highest power first (see the note above)
_LOG_HORNER = (_LG9, _LG8, _LG7, _LG6, _LG5, _LG4, _LG3, _LG2, _LG1)
_SIN_HORNER = (_S15, _S13, _S11, _S9, _S7, _S5, _S3, _S1)
_COS_HORNER = (_C16, _C14, _C12, _C10, _C8, _C6, _C4, _C2, 1.0)


@numba.njit(cache=False, fastmath=False, nogil=True, error_model="numpy", inline="always")
def _horner(x, coeffs):
    """``Σ coeffs[k] x^(K-k)`` (``coeffs`` highest power first), one FMA per term."""
    r = coeffs[0]
    for k in range(1, len(coeffs)):
        r = _fma(x, r, coeffs[k])
    return r


@_intrinsic
def _f64_bits(typingctx, x):
    """The IEEE 754 bits of a float64, as a uint64 (a bit cast: no conversion)."""
    sig = numba.types.uint64(numba.types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _llir.IntType(64))

    return sig, codegen


@_intrinsic
def _bits_f64(typingctx, b):
    """The float64 of IEEE 754 bits given as a uint64 (a bit cast: no conversion)."""
    sig = numba.types.float64(numba.types.uint64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _llir.DoubleType())

    return sig, codegen


@_intrinsic
def _prefetch(typingctx, arr, index):
    """Ask the CPU to bring the cache line of ``arr.flat[index]`` into its L2 cache.

    ``arr`` C-contiguous; ``llvm.prefetch`` for reading with locality 1 (``prefetcht2``
    on x86: into the outer caches). A hint: it never faults, and is a no-op where the
    target has no such instruction.
    """
    sig = numba.types.void(arr, index)

    def codegen(context, builder, signature, args):
        a = context.make_array(signature.args[0])(context, builder, args[0])
        i8p, i32 = _llir.IntType(8).as_pointer(), _llir.IntType(32)
        fn = _cgutils.get_or_insert_function(
            builder.module,
            _llir.FunctionType(_llir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0i8",
        )
        ptr = builder.bitcast(builder.gep(a.data, [args[1]]), i8p)
        builder.call(fn, [ptr, i32(0), i32(1), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=False, fastmath=False, nogil=True, error_model="numpy", inline="always")
def _prefetch_rows(E, i0, i1, lev, t0, n):
    """Prefetch ``E[i0:i1, lev, t0:t0+n]`` (E C-contiguous (N, L, X)), a line at a time."""
    L, X = E.shape[1], E.shape[2]
    for i in range(i0, i1):
        base = (i * L + lev) * X + t0
        for c in range(0, n, 8):
            _prefetch(E, base + c)


# error_model="numpy": a float division is not checked for zero (the check would be a
# branch that keeps LLVM from vectorising the loop)
@numba.njit(cache=False, fastmath=False, nogil=True, error_model="numpy")
def _philox_normal_tile(pix, seed, cycle, purpose, out, t0, za, zb):
    """``out[:, t0:t0+nt]`` ← the numbers of :func:`philox_normal` of the ``nt`` pixels ``pix``.

    ``pix`` (nt) keys of a tile of pixels, ``out`` (k, X) C-contiguous, row ``i`` = the
    ``i``-th number of each pixel; ``za``, ``zb`` scratch of at least ``nt``. The same Philox4x32-10 integers as
    :func:`philox_normal`; Box–Muller with polynomial ``log``/``sin``/``cos`` (IEEE
    arithmetic only, fused multiply-adds included, no libm), so that the loop over the
    pixels runs in SIMD lanes and every pixel gets bitwise the same numbers whatever
    lane, block or chunk it falls in. The angle ``2π u2 = (π/2)(q + g)`` is reduced
    exactly (``q`` the nearest quarter turn); ``log u1`` follows the classic
    ``k ln2 + log(m)`` split, with the exponent and mantissa read from the bits of
    ``u1``'s float64. The numbers equal those of :func:`philox_normal` (libm) to a few
    units in the last place.
    """
    k = out.shape[0]
    nt = pix.shape[0]
    useed = np.uint64(seed)
    k0i = useed & _UMASK
    k1i = ((useed >> _U32) ^ (np.uint64(purpose) * _UPURPOSE)) & _UMASK
    c3i = np.uint64(cycle) & _UMASK
    for blk in range((k + 1) // 2):
        cb = np.uint64(blk) & _UMASK
        for p in range(nt):
            idx = np.uint64(pix[p])
            c0 = idx & _UMASK
            c1 = (idx >> _U32) & _UMASK
            c2 = cb
            c3 = c3i
            k0 = k0i
            k1 = k1i
            for _ in range(10):
                p0 = _UM0 * c0
                p1 = _UM1 * c2
                hi0 = (p0 >> _U32) & _UMASK
                lo0 = p0 & _UMASK
                hi1 = (p1 >> _U32) & _UMASK
                lo1 = p1 & _UMASK
                c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
                k0 = (k0 + _UW0) & _UMASK
                k1 = (k1 + _UW1) & _UMASK
            # u1 = (c0 + 1/2) 2^-32 = x0 2^-33, x0 = 2^e m an odd integer < 2^33, exact
            # in a float64: e and m (in [1, 2)) are its exponent and mantissa bits
            bits = _f64_bits(2.0 * float(c0) + 1.0)
            x6 = _bits_f64((bits & _MANTISSA) | _EXP_ONE)
            m = x6 * 0.5 if x6 > _SQRT2 else x6  # m in (1/√2, √2]
            dk = float(bits >> _U52) - (1023.0 + 33.0 - (1.0 if x6 > _SQRT2 else 0.0))
            f = m - 1.0
            s = f / (2.0 + f)
            z = s * s
            r = z * _horner(z, _LOG_HORNER)
            hfsq = 0.5 * f * f
            log_u1 = dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)
            rad = math.sqrt(-2.0 * log_u1)
            # 2π u2 = (π/2)(q + g), u2 = (c1 + 1/2) 2^-32, q = nearest integer to 4 u2
            q = (c1 + _UHALF30) >> _U30
            g = ((float(c1) + 0.5) - float(q) * 1073741824.0) * 9.313225746154785e-10
            g2 = g * g
            sn = g * _horner(g2, _SIN_HORNER)
            cs = _horner(g2, _COS_HORNER)
            # quarter turns, branch-free: (cos, sin) of q·π/2 + φ
            qm = q & _U3
            odd = (qm & _U1) == _U1
            sgc = 1.0 - 2.0 * float(((qm + _U1) >> _U1) & _U1)
            sgs = 1.0 - 2.0 * float((qm >> _U1) & _U1)
            za[p] = rad * (sgc * (sn if odd else cs))
            zb[p] = rad * (sgs * (cs if odd else sn))
        row = out[2 * blk, t0 : t0 + nt]  # views: contiguous stores
        for p in range(nt):
            row[p] = za[p]
        if 2 * blk + 1 < k:
            row = out[2 * blk + 1, t0 : t0 + nt]
            for p in range(nt):
                row[p] = zb[p]


@gufunc(
    [
        "void(float64[:,::1], float64[::1], float64[::1], int64[::1], float64, float64, int64,"
        " int64, int64, int64, float64[:,::1], float64[:,::1], float64[::1], float64[::1],"
        " float64[::1], int8[::1], int8[::1])"
    ],
    "(N,x),(x),(x),(x),(),(),(),(),(),()->(N,x),(N,x),(x),(x),(x),(x),(x)",
)
def _one_obs_weights_gu(
    HE, y, R, pix, infl, gross, seed, cycle, purpose, mode, u, v, a, innov, expected, used, rej
):
    """Per-pixel weights of the one-observation EnKF/ETKF and the screening diagnostics.

    Core dims: the ``N`` members and ``x`` pixels, C-contiguous (pixels innermost, so
    the loops run along contiguous memory and vectorise; one call per block). Inputs per
    pixel: ``HE`` (N) predicted observations, ``y`` the observation (NaN = none), ``R``
    its error variance, ``pix`` the global pixel key of the random numbers; scalars
    ``infl`` (inflation), ``gross`` (gross-error factor, ``inf`` = off), ``seed``,
    ``cycle``, ``purpose`` (Philox key) and ``mode`` (0 = ETKF, 1 = EnKF with centred
    perturbations, 2 = uncentred). Outputs per pixel ``u``, ``v``, ``a`` (see above),
    ``innov`` (``y - mean(HE)`` where used, NaN otherwise), ``expected``
    (``sqrt(var(HE) + R)``), ``used`` and ``rej`` (gross-error rejection). Same screening
    as :func:`screen_observations`. The EnKF perturbations of pixel ``p`` are the numbers
    of ``philox_normal(pix[p], seed, cycle, purpose, N)`` (see
    :func:`_philox_normal_tile`). Tiles of :data:`_TILE` pixels: the tile's ``HE``,
    ``u`` and ``v`` stay in cache between its passes.
    """
    N, X = HE.shape
    if X == 0:
        return
    T = min(X, _TILE)
    w = np.empty((9, T + 8))  # per tile, not per pixel; rows 4 KiB apart would alias in the CPU
    hb, yy, coef, dd, zmean, sd, ok_, za, zb = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8]
    f2 = infl * infl
    for tile in range((X + T - 1) // T):
        t0 = tile * T
        t1 = min(t0 + T, X)
        nt = t1 - t0
        # rows of the tile as 1-D views indexed from 0: plain contiguous (SIMD) loads and
        # stores (a computed offset of unknown sign would need wraparound selects: gathers)
        yt, Rt, at, it = y[t0:t1], R[t0:t1], a[t0:t1], innov[t0:t1]
        et, ut, rt = expected[t0:t1], used[t0:t1], rej[t0:t1]
        for p in range(nt):
            hb[p] = 0.0
            yy[p] = 0.0
            zmean[p] = 0.0
        for i in range(N):
            h = HE[i, t0:t1]
            for p in range(nt):
                hb[p] += h[p]
        for p in range(nt):
            hb[p] /= N
        for i in range(N):
            h = HE[i, t0:t1]
            for p in range(nt):
                yy[p] += (h[p] - hb[p]) ** 2
        for p in range(nt):
            var = yy[p] / (N - 1.0)
            d = yt[p] - hb[p]
            r_ = Rt[p]
            valid = math.isfinite(yt[p]) and math.isfinite(r_) and math.isfinite(hb[p])
            et[p] = math.sqrt(var + r_) if math.isfinite(r_) else np.nan
            rejected = False
            if valid and gross < np.inf:
                rejected = not (abs(d) <= gross * math.sqrt(var + r_))
            ok = valid and not rejected
            ut[p] = 1 if ok else 0
            rt[p] = 1 if rejected else 0
            it[p] = d if ok else np.nan
            at[p] = infl if ok else 0.0
            ok_[p] = 1.0 if ok else 0.0
            r = 1.0 / r_ if ok else 0.0
            yyi = f2 * yy[p]
            s = r * yyi
            if mode == MODE_ETKF:
                beta = 1.0 / math.sqrt(1.0 + s / (N - 1.0)) - 1.0
                coef[p] = infl * beta / yyi if (ok and yyi > 0.0) else 0.0  # projection × infl
                dd[p] = r * d / (N - 1.0 + s) if ok else 0.0  # mean weight
            else:
                coef[p] = f2 * r / ((N - 1.0) + s) if ok else 0.0
                dd[p] = d if ok else 0.0
                sd[p] = 1.0 / math.sqrt(r) if ok else 0.0
        if mode == MODE_ETKF:
            for i in range(N):
                h, ui, vi = HE[i, t0:t1], u[i, t0:t1], v[i, t0:t1]
                for p in range(nt):
                    up = h[p] - hb[p] if ok_[p] > 0.0 else 0.0
                    ui[p] = up
                    vi[p] = f2 * (dd[p] + coef[p] * up)
            continue
        # z_i of every pixel of the tile (unused pixels too: their gain is 0 below)
        _philox_normal_tile(pix[t0:t1], seed, cycle, purpose, v, t0, za, zb)
        if mode == MODE_ENKF:
            for i in range(N):
                vi = v[i, t0:t1]
                for p in range(nt):
                    zmean[p] += vi[p]
            for p in range(nt):
                zmean[p] /= N
        for i in range(N):
            h, ui, vi = HE[i, t0:t1], u[i, t0:t1], v[i, t0:t1]
            for p in range(nt):
                up = h[p] - hb[p] if ok_[p] > 0.0 else 0.0
                ui[p] = up
                vi[p] = coef[p] * (dd[p] + (vi[p] - zmean[p]) * sd[p] - infl * up)


def _c(x, dtype="f8"):
    return np.ascontiguousarray(x, dtype=dtype)


def one_obs_weights(HE, y, R, pix, infl, gross, seed, cycle, purpose, mode, target="cpu"):
    """Weights of the one-observation EnKF/ETKF (:func:`_one_obs_weights_gu`).

    ``HE`` (N, x) members first, ``y``, ``R``, ``pix`` (x). Returns ``u``, ``v`` (N, x)
    and ``a``, ``innov``, ``expected``, ``used``, ``rejected`` (x). Inputs that are not
    C-contiguous are copied first (the kernel is compiled for contiguous memory).
    """
    HE = _c(HE)
    X = HE.shape[1]
    y, R = (_c(np.broadcast_to(z, (X,))) for z in (y, R))
    pix = _c(np.broadcast_to(pix, (X,)), np.int64)
    u, v = np.empty_like(HE), np.empty_like(HE)
    rest = [np.empty(X), np.empty(X), np.empty(X), np.empty(X, "i1"), np.empty(X, "i1")]
    with np.errstate(invalid="ignore"):  # NaN (masked) pixels stay NaN
        _one_obs_weights_gu(
            HE, y, R, pix, infl, gross, seed, cycle, purpose, mode, u, v, *rest, target=target
        )
    return (u, v, *rest)


def apply_weights(E, u, v, a, rtpp=0.0, rtps=0.0, lo=-np.inf, hi=np.inf, target="cpu"):
    """Update a state variable with the weights of :func:`one_obs_weights`.

    ``E`` (N, L*q) members first (float32 or float64; ``L`` levels of ``q`` pixels),
    ``u``, ``v`` (N, q), ``a`` (q), ``lo``/``hi`` broadcastable to (L*q,). Returns the
    analysis (E's dtype), the prior and posterior spread and the bound change (L*q,).
    See :func:`_apply_weights_gu`.
    """
    E = np.ascontiguousarray(E) if E.dtype in (np.float32, np.float64) else _c(E)
    M = E.shape[1]
    u, v = _c(u), _c(v)
    if M % max(u.shape[1], 1):
        raise ValueError(f"E has {M} elements per member, not a multiple of {u.shape[1]} pixels")
    a = _c(np.broadcast_to(a, (u.shape[1],)))
    lo, hi = (_c(np.broadcast_to(z, (M,))) for z in (lo, hi))
    out = np.empty_like(E)
    stats = [np.empty(M) for _ in range(3)]
    with np.errstate(invalid="ignore"):  # NaN (masked) pixels stay NaN
        _apply_weights_gu(E, u, v, a, rtpp, rtps, lo, hi, out, *stats, target=target)
    return (out, *stats)


def one_obs_weights_reference(HE, y, R, pix, infl, gross, seed, cycle, purpose, mode):
    """NumPy reference of :func:`one_obs_weights` (batched over leading axes)."""
    HE = np.asarray(HE, float)
    y = np.asarray(y, float)
    R = np.asarray(R, float)
    N = HE.shape[-1]
    d, rinv, used, rejected = screen_observations(HE[..., None], y[..., None], R[..., None], gross)
    d, rinv, used, rejected = d[..., 0], rinv[..., 0], used[..., 0], rejected[..., 0]
    hb = HE.mean(axis=-1)
    with np.errstate(invalid="ignore"):
        expected = np.sqrt(HE.var(axis=-1, ddof=1) + np.where(np.isfinite(R), R, np.nan))
    u = HE - hb[..., None]
    yy = (infl * u) ** 2
    yy = yy.sum(axis=-1)
    s = rinv * yy
    if mode == MODE_ETKF:
        beta = 1.0 / np.sqrt(1.0 + s / (N - 1.0)) - 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            proj = np.where(yy > 0, beta / np.where(yy > 0, yy, 1.0), 0.0)
        wmean = rinv * d / (N - 1.0 + s)
        v = infl**2 * (wmean[..., None] + proj[..., None] * infl * u)
    else:
        z = philox_normal_reference(np.broadcast_to(pix, hb.shape), seed, cycle, purpose, N)
        if mode == MODE_ENKF:
            z = z - z.mean(axis=-1, keepdims=True)
        with np.errstate(divide="ignore"):
            sd = np.where(rinv > 0, 1.0 / np.sqrt(np.where(rinv > 0, rinv, 1.0)), 0.0)
        coef = infl**2 * rinv / ((N - 1.0) + s)
        v = coef[..., None] * (d[..., None] + z * sd[..., None] - infl * u)
    u = np.where(used[..., None], u, 0.0)
    v = np.where(used[..., None], v, 0.0)
    a = np.where(used, float(infl), 0.0)
    innov = np.where(used, d, np.nan)
    return u, v, a, innov, expected, used.astype("i1"), rejected.astype("i1")


@numba.njit(cache=False, fastmath=False, nogil=True, error_model="numpy", inline="always")
def _bounded(e, vv, mjma, mj, fa, cc, ap, lo, hi):
    """One analysis value of :func:`_apply_weights_gu`: ``(clipped, clip change, counted)``."""
    x = mjma + fa * (e - mj) + cc * vv
    x = e if ap == 0.0 else x
    xc = x if x >= lo else lo
    xc = xc if xc <= hi else hi
    ok = x == x
    xc = xc if ok else x
    return xc, (xc - x if ok else 0.0), (1.0 if ok else 0.0)


# rows of the per-tile scratch of _apply_weights_gu (each _TILE long, one allocation at
# fixed offsets: LLVM sees one object, so the SIMD loops need few run-time alias checks)
_W_X0, _W_S1, _W_S2, _W_SU, _W_SXU, _W_SF, _W_MJ, _W_CC, _W_FA, _W_MA, _W_MJMA, _W_M, _W_SA = range(
    13
)
_W_T1, _W_T2, _W_TOT, _W_CNT, _W_AT, _W_LO, _W_HI, _W_OUT = range(13, 21)  # _W_OUT: 4 rows
_W_NSLOT = 25


@gufunc(
    [
        "void(float64[:,::1], float64[:,::1], float64[:,::1], float64[::1], float64, float64,"
        " float64[::1], float64[::1], float64[:,::1], float64[::1], float64[::1], float64[::1])",
        "void(float32[:,::1], float64[:,::1], float64[:,::1], float64[::1], float64, float64,"
        " float64[::1], float64[::1], float32[:,::1], float64[::1], float64[::1], float64[::1])",
    ],
    "(N,m),(N,q),(N,q),(q),(),(),(m),(m)->(N,m),(m),(m),(m)",
)
def _apply_weights_gu(E, u, v, a, rtpp, rtps, lo, hi, out, sprior, spost, adj):
    """Update one state variable of a block of pixels with :func:`one_obs_weights`.

    ``E`` (N, m) is the variable in the model's own layout, members outermost and
    ``m = L q`` elements: ``L`` levels (e.g. soil layers, 1 for a 2-D variable) of the
    ``q`` pixels of ``u``, ``v`` (N, q) and ``a`` (q). Per element
    ``out = mean + a (E - mean) + c v`` with ``c = sum (E - mean) u``, then RTPP/RTPS,
    then the bounds ``[lo, hi]`` (m) (``-inf``/``inf`` = none; NaN stays NaN). ``a == 0``
    keeps the forecast unchanged. Outputs the analysis (same layout), the prior and
    posterior spread (standard deviation, ddof=1) and ``adj``, the member-mean change
    made by the bounds. All arrays C-contiguous, elements innermost.

    Tiles of :data:`_TILE` pixels, pixels innermost in every loop (SIMD across pixels;
    per-pixel sums in a small scratch, still accumulated over the members in order):
    one pass over the members for the sums, one more with relaxation, one for the
    update, bounds and posterior spread. The tile of ``E`` is read from memory once and
    stays in cache for the next pass; members go four at a time, so that the per-pixel
    values and sums are loaded and stored once per four members. ``E`` may be float32
    (the analysis is then rounded to float32; the arithmetic is float64).
    """
    N, M = E.shape
    Q = u.shape[1]
    if Q == 0:
        return
    L = M // Q
    T = _TILE
    S = _TILE + 8  # row stride of the scratch: rows 4 KiB apart would alias in the CPU
    N4 = N // 4
    E3, out3 = E.reshape((N, L, Q)), out.reshape((N, L, Q))
    lo2, hi2 = lo.reshape((L, Q)), hi.reshape((L, Q))
    sp0, sp1, adj2 = sprior.reshape((L, Q)), spost.reshape((L, Q)), adj.reshape((L, Q))
    wk = np.empty(_W_NSLOT * S)  # per-tile scratch (no allocation per pixel)
    relax = rtpp != 0.0 or rtps != 0.0
    for tile in range((Q + T - 1) // T):
        q0 = tile * T
        q1 = min(q0 + T, Q)
        nt = q1 - q0
        # rows of the tile as 1-D views indexed from 0: plain contiguous (SIMD) loads and
        # stores (a computed offset of unknown sign would need wraparound selects: gathers)
        # the rows of the tile _PREFETCH_TILES ahead, requested while this one is read
        tp = q0 + _PREFETCH_TILES * T
        np_ = min(T, Q - tp) if tp < Q else 0
        a_t = a[q0:q1]
        for p in range(nt):
            wk[_W_AT * S + p] = a_t[p]
            wk[_W_SU * S + p] = 0.0
        for i in range(N):
            if np_ > 0:
                _prefetch_rows(u.reshape((N, 1, Q)), i, i + 1, 0, tp, np_)
                _prefetch_rows(v.reshape((N, 1, Q)), i, i + 1, 0, tp, np_)
            ui = u[i, q0:q1]
            for p in range(nt):
                wk[_W_SU * S + p] += ui[p]
        for lev in range(L):
            lo_t, hi_t = lo2[lev, q0:q1], hi2[lev, q0:q1]
            # sums over the members, shifted by the first member (no cancellation)
            e0 = E3[0, lev, q0:q1]
            for p in range(nt):
                wk[_W_LO * S + p] = lo_t[p]
                wk[_W_HI * S + p] = hi_t[p]
                wk[_W_X0 * S + p] = e0[p]
                wk[_W_S1 * S + p] = 0.0
                wk[_W_S2 * S + p] = 0.0
                wk[_W_SXU * S + p] = 0.0
            for b in range(N4):
                i = 4 * b
                if np_ > 0:
                    _prefetch_rows(E3, i, i + 4, lev, tp, np_)
                ea, eb, ec, ed = (
                    E3[i, lev, q0:q1],
                    E3[i + 1, lev, q0:q1],
                    E3[i + 2, lev, q0:q1],
                    E3[i + 3, lev, q0:q1],
                )
                ua, ub, uc, ud = u[i, q0:q1], u[i + 1, q0:q1], u[i + 2, q0:q1], u[i + 3, q0:q1]
                for p in range(nt):
                    xp = wk[_W_X0 * S + p]
                    da, db, dc, de = ea[p] - xp, eb[p] - xp, ec[p] - xp, ed[p] - xp
                    wk[_W_S1 * S + p] = wk[_W_S1 * S + p] + da + db + dc + de
                    wk[_W_S2 * S + p] = wk[_W_S2 * S + p] + da * da + db * db + dc * dc + de * de
                    wk[_W_SXU * S + p] = (
                        wk[_W_SXU * S + p] + da * ua[p] + db * ub[p] + dc * uc[p] + de * ud[p]
                    )
            if np_ > 0:
                _prefetch_rows(E3, 4 * N4, N, lev, tp, np_)
            for i in range(4 * N4, N):
                ei, ui = E3[i, lev, q0:q1], u[i, q0:q1]
                for p in range(nt):
                    dx = ei[p] - wk[_W_X0 * S + p]
                    wk[_W_S1 * S + p] += dx
                    wk[_W_S2 * S + p] += dx * dx
                    wk[_W_SXU * S + p] += dx * ui[p]
            spt = sp0[lev, q0:q1]
            for p in range(nt):
                dm = wk[_W_S1 * S + p] / N
                wk[_W_SF * S + p] = max(wk[_W_S2 * S + p] - wk[_W_S1 * S + p] * dm, 0.0)
                spt[p] = math.sqrt(wk[_W_SF * S + p] / (N - 1.0))
                wk[_W_CC * S + p] = wk[_W_SXU * S + p] - dm * wk[_W_SU * S + p]
                wk[_W_MJ * S + p] = wk[_W_X0 * S + p] + dm
                wk[_W_FA * S + p] = wk[_W_AT * S + p]
                wk[_W_MA * S + p] = 0.0
            if relax:
                for p in range(nt):
                    wk[_W_M * S + p] = 0.0
                    wk[_W_SA * S + p] = 0.0
                for i in range(N):
                    ei, vi = E3[i, lev, q0:q1], v[i, q0:q1]
                    for p in range(nt):
                        xa = (
                            wk[_W_AT * S + p] * (ei[p] - wk[_W_MJ * S + p])
                            + wk[_W_CC * S + p] * vi[p]
                        )
                        wk[_W_M * S + p] += xa
                        wk[_W_SA * S + p] += xa * xa
                for p in range(nt):
                    ap = wk[_W_AT * S + p]
                    if ap != 0.0:
                        mm = wk[_W_M * S + p] / N
                        sap = max(wk[_W_SA * S + p] - N * mm * mm, 0.0)
                        f_, g_ = 1.0, 0.0
                        if rtpp != 0.0:
                            f_, g_ = 1.0 - rtpp, rtpp
                        elif sap > 0.0:
                            f_ = (
                                rtps
                                * (math.sqrt(wk[_W_SF * S + p]) - math.sqrt(sap))
                                / math.sqrt(sap)
                                + 1.0
                            )
                        # relaxed: mean + mm + f_ (a dx + c v - mm) + g_ dx
                        wk[_W_MA * S + p] = mm * (1.0 - f_)
                        wk[_W_FA * S + p] = f_ * ap + g_
                        wk[_W_CC * S + p] = f_ * wk[_W_CC * S + p]
            for p in range(nt):
                wk[_W_MJMA * S + p] = wk[_W_MJ * S + p] + wk[_W_MA * S + p]
                wk[_W_TOT * S + p] = 0.0
                wk[_W_CNT * S + p] = 0.0
                wk[_W_T1 * S + p] = 0.0
                wk[_W_T2 * S + p] = 0.0
            for b in range(N4):
                i = 4 * b
                ea, eb, ec, ed = (
                    E3[i, lev, q0:q1],
                    E3[i + 1, lev, q0:q1],
                    E3[i + 2, lev, q0:q1],
                    E3[i + 3, lev, q0:q1],
                )
                va, vb, vc, vd = v[i, q0:q1], v[i + 1, q0:q1], v[i + 2, q0:q1], v[i + 3, q0:q1]
                for p in range(nt):  # results to the scratch (few alias checks), copied below
                    g, h, f_, c_ = (
                        wk[_W_MJMA * S + p],
                        wk[_W_MJ * S + p],
                        wk[_W_FA * S + p],
                        wk[_W_CC * S + p],
                    )
                    ap, lp, hp = wk[_W_AT * S + p], wk[_W_LO * S + p], wk[_W_HI * S + p]
                    ra, ja, na = _bounded(ea[p], va[p], g, h, f_, c_, ap, lp, hp)
                    rb, jb, nb = _bounded(eb[p], vb[p], g, h, f_, c_, ap, lp, hp)
                    rc, jc, nc = _bounded(ec[p], vc[p], g, h, f_, c_, ap, lp, hp)
                    rd, jd, nd = _bounded(ed[p], vd[p], g, h, f_, c_, ap, lp, hp)
                    wk[_W_OUT * S + p] = ra
                    wk[(_W_OUT + 1) * S + p] = rb
                    wk[(_W_OUT + 2) * S + p] = rc
                    wk[(_W_OUT + 3) * S + p] = rd
                    wk[_W_TOT * S + p] = wk[_W_TOT * S + p] + ja + jb + jc + jd
                    wk[_W_CNT * S + p] = wk[_W_CNT * S + p] + na + nb + nc + nd
                    xp = wk[_W_X0 * S + p]
                    da, db, dc, de = ra - xp, rb - xp, rc - xp, rd - xp
                    wk[_W_T1 * S + p] = wk[_W_T1 * S + p] + da + db + dc + de
                    wk[_W_T2 * S + p] = wk[_W_T2 * S + p] + da * da + db * db + dc * dc + de * de
                oa, ob = out3[i, lev, q0:q1], out3[i + 1, lev, q0:q1]
                oc, od = out3[i + 2, lev, q0:q1], out3[i + 3, lev, q0:q1]
                for p in range(nt):
                    oa[p] = wk[_W_OUT * S + p]
                for p in range(nt):
                    ob[p] = wk[(_W_OUT + 1) * S + p]
                for p in range(nt):
                    oc[p] = wk[(_W_OUT + 2) * S + p]
                for p in range(nt):
                    od[p] = wk[(_W_OUT + 3) * S + p]
            for i in range(4 * N4, N):
                ei, vi, oi = E3[i, lev, q0:q1], v[i, q0:q1], out3[i, lev, q0:q1]
                for p in range(nt):
                    ra, ja, na = _bounded(
                        ei[p],
                        vi[p],
                        wk[_W_MJMA * S + p],
                        wk[_W_MJ * S + p],
                        wk[_W_FA * S + p],
                        wk[_W_CC * S + p],
                        wk[_W_AT * S + p],
                        wk[_W_LO * S + p],
                        wk[_W_HI * S + p],
                    )
                    oi[p] = ra
                    wk[_W_TOT * S + p] += ja
                    wk[_W_CNT * S + p] += na
                    dx = ra - wk[_W_X0 * S + p]
                    wk[_W_T1 * S + p] += dx
                    wk[_W_T2 * S + p] += dx * dx
            adt, spt = adj2[lev, q0:q1], sp1[lev, q0:q1]
            for p in range(nt):
                adt[p] = (
                    wk[_W_TOT * S + p] / wk[_W_CNT * S + p] if wk[_W_CNT * S + p] > 0.0 else np.nan
                )
                spt[p] = math.sqrt(
                    max(wk[_W_T2 * S + p] - wk[_W_T1 * S + p] * wk[_W_T1 * S + p] / N, 0.0)
                    / (N - 1.0)
                )


def apply_weights_reference(E, u, v, a, rtpp=0.0, rtps=0.0, lo=-np.inf, hi=np.inf):
    """NumPy reference of :func:`apply_weights` (member axis last, batched)."""
    E = np.asarray(E, float)
    a = np.asarray(a, float)[..., None]
    m = E.mean(axis=-1, keepdims=True)
    c = ((E - m) * u).sum(axis=-1, keepdims=True)
    Ea = m + a * (E - m) + c * v
    Ea = relax_reference(E[..., None], Ea[..., None], rtpp, rtps)[..., 0]
    Ea = np.where(a == 0.0, E, Ea)
    lo = np.asarray(lo, float)[..., None]
    hi = np.asarray(hi, float)[..., None]
    clipped = np.where(Ea >= lo, Ea, lo)
    clipped = np.where(clipped <= hi, clipped, hi)
    clipped = np.where(np.isnan(Ea), np.nan, clipped)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        adj = np.nanmean(clipped - Ea, axis=-1)
    return clipped, E.std(axis=-1, ddof=1), clipped.std(axis=-1, ddof=1), adj


# ----------------------------------- one-observation analysis of a whole state, one pass
# Without diagnostics and relaxation, the weights of a tile of pixels are computed into a
# small scratch (never written to memory) and applied at once to every state variable:
# the predicted observations are read once, each state element is read once from memory
# (a second time from cache) and its analysis written once. The analysis is written
# with non-temporal (streaming) stores on large arrays: a store that misses the cache
# would first read the line it fills (50 % more traffic) and evict the tile the next
# pass needs. Same arithmetic, in the same order, as ``one_obs_weights`` followed by
# ``apply_weights`` (results are bitwise equal).
#: output bytes of :func:`one_obs_update` from which the analysis is written with
#: streaming stores (below, it is likely to be read again from cache)
STREAM_MIN_BYTES = 16 << 20


@_intrinsic
def _stream_row(typingctx, dst, doff, src, n):
    """``dst.flat[doff:doff+n] = src[:n]``, the 64-byte aligned part with non-temporal stores.

    LLVM's ``!nontemporal`` store of 8 doubles (``vmovntpd`` on x86, ``stnp`` on
    AArch64), plain stores for the unaligned head and the tail. The stores are weakly
    ordered: :func:`_store_fence` after the last one.
    """
    sig = numba.types.void(dst, doff, src, n)

    def codegen(context, builder, signature, args):
        dty, _, sty, _ = signature.args
        d = context.make_array(dty)(context, builder, args[0])
        s = context.make_array(sty)(context, builder, args[2])
        i64 = _llir.IntType(64)
        dptr = builder.gep(d.data, [args[1]])
        sptr = s.data
        n = args[3]
        head = builder.and_(builder.ptrtoint(dptr, i64), i64(63))  # bytes past alignment
        head = builder.and_(builder.lshr(builder.sub(i64(64), head), i64(3)), i64(7))
        head = builder.select(builder.icmp_signed("<", n, head), n, head)
        with _cgutils.for_range(builder, head) as loop:
            val = builder.load(builder.gep(sptr, [loop.index]))
            builder.store(val, builder.gep(dptr, [loop.index]))
        nvec = builder.ashr(builder.sub(n, head), i64(3))
        vty = _llir.VectorType(_llir.DoubleType(), 8)
        nontemporal = builder.module.add_metadata([_llir.IntType(32)(1)])
        dv, sv = builder.gep(dptr, [head]), builder.gep(sptr, [head])
        with _cgutils.for_range(builder, nvec) as loop:
            off = builder.mul(loop.index, i64(8))
            val = builder.load(builder.bitcast(builder.gep(sv, [off]), vty.as_pointer()), align=8)
            st = builder.store(
                val, builder.bitcast(builder.gep(dv, [off]), vty.as_pointer()), align=64
            )
            st.set_metadata("nontemporal", nontemporal)
        done = builder.add(head, builder.shl(nvec, i64(3)))
        dt, st_ = builder.gep(dptr, [done]), builder.gep(sptr, [done])
        with _cgutils.for_range(builder, builder.sub(n, done)) as loop:
            val = builder.load(builder.gep(st_, [loop.index]))
            builder.store(val, builder.gep(dt, [loop.index]))
        return context.get_dummy_value()

    return sig, codegen


@_intrinsic
def _store_fence(typingctx):
    """A full memory fence: orders the streaming stores before any later access."""
    sig = numba.types.void()

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=False, fastmath=False, nogil=True, error_model="numpy", inline="always")
def _clip(x, lo, hi):
    """``x`` clipped to ``[lo, hi]``, NaN kept (the rules of :func:`_bounded`)."""
    xc = x if x >= lo else lo
    xc = xc if xc <= hi else hi
    return xc if x == x else x


@numba.njit(cache=False, fastmath=False, nogil=True, error_model="numpy", inline="always")
def _put_row(EA, i, lev, t0, row, stream):
    """``EA[i, lev, t0:t0+n] = row`` (streaming stores if ``stream``)."""
    n = row.shape[0]
    if stream:
        _stream_row(EA, (i * EA.shape[1] + lev) * EA.shape[2] + t0, row, n)
    else:
        dst = EA[i, lev, t0 : t0 + n]
        for p in range(n):
            dst[p] = row[p]


@numba.njit(cache=False, fastmath=False, nogil=True, error_model="numpy", inline="always")
def _update_level_diag(E, EA, lev, t0, nt, N, inplace, stream, V, wk, S):
    """The update of one level of a tile with the sums of the diagnostics (bound change,
    posterior spread) of :func:`_apply_weights_gu`, members in order. Reads and writes
    the rows of the scratch ``wk`` (row stride ``S``) by offset: one object, so the SIMD
    loop needs run-time alias checks against ``E`` and ``V`` only. The analysis goes
    through the scratch row ``_U_OUT`` to ``EA`` (in place or not)."""
    for p in range(nt):
        wk[_U_TOT * S + p] = 0.0
        wk[_U_CNT * S + p] = 0.0
        wk[_U_T1 * S + p] = 0.0
        wk[_U_T2 * S + p] = 0.0
    ob = wk[_U_OUT * S : _U_OUT * S + nt]
    for i in range(N):
        ei, vi = E[i, lev, t0 : t0 + nt], V[i, :nt]
        for p in range(nt):
            m = wk[_U_MJ * S + p]
            x = m + wk[_U_FA * S + p] * (ei[p] - m) + wk[_U_CC * S + p] * vi[p]
            xc = _clip(x, wk[_U_LO * S + p], wk[_U_HI * S + p])
            wk[_U_OUT * S + p] = xc
            ok = x == x
            wk[_U_TOT * S + p] += xc - x if ok else 0.0
            wk[_U_CNT * S + p] += 1.0 if ok else 0.0
            dx = xc - wk[_U_X0 * S + p]
            wk[_U_T1 * S + p] += dx
            wk[_U_T2 * S + p] += dx * dx
        _put_row(EA, i, lev, t0, ob, stream and not inplace)


# rows of the per-tile scratch of _one_obs_update_kernel
_U_HB, _U_YY, _U_COEF, _U_DD, _U_ZM, _U_SD, _U_OK, _U_ZA, _U_ZB, _U_SU = range(10)
_U_X0, _U_S1, _U_SXU, _U_MJ, _U_FA, _U_CC, _U_LO, _U_HI, _U_RR = range(10, 19)
_U_OUT = 19  # the analysis of a member before it goes to memory
_U_S2, _U_TOT, _U_CNT, _U_T1, _U_T2 = range(20, 25)  # the diagnostics' sums
_U_NSLOT = 25


@numba.njit(cache=False, fastmath=False, nogil=True, error_model="numpy")
def _one_obs_update_kernel(
    HE, hs, y, R, pix, infl, gross, seed, cycle, purpose, mode, Es, Os, Los, His, stream, same, dg
):
    """One-observation EnKF/ETKF analysis of all state variables, tile by tile.

    ``HE`` the predicted observations, member ``i`` at ``HE[i * hs : i * hs + X]`` (a
    1-D view from the first to the last value, so that a layer of a state variable is
    read in place), ``y``, ``R``, ``pix`` (X) as in :func:`_one_obs_weights_gu`; ``Es`` a tuple of
    state variables (N, L, X) (``L`` levels, pixels innermost) and ``Os`` their analyses
    (same shapes); ``Los``/``His`` their bounds, (1 or L, 1 or X) each (a single column
    = one value for all pixels). ``stream``: write ``Os`` with streaming stores.

    Per tile of :data:`_TILE` pixels: the screening and the weights ``u``, ``v`` of
    :func:`_one_obs_weights_gu` (EnKF numbers from :func:`_philox_normal_tile`) into a
    scratch, then per variable and level the sums over the members and the update with
    the bounds of :func:`_apply_weights_gu` (without relaxation). A pixel without a used
    observation keeps its forecast (clipped to the bounds, as in
    :func:`_apply_weights_gu`). ``same[k]``: ``Os[k]`` is ``Es[k]`` (in place).

    ``dg = (diag, Inn, Exp, Used, Rej, Sp0s, Sp1s, Adjs)``: if ``diag``, also the
    diagnostics of :func:`_one_obs_weights_gu` (``Inn``, ``Exp``, ``Used``, ``Rej``, per
    pixel) and of :func:`_apply_weights_gu` (``Sp0s``, ``Sp1s``, ``Adjs``: per variable,
    (L, X) prior and posterior spread and the member-mean change by the bounds),
    bitwise the same values (the same sums, in the same order).
    """
    diag, Inn, Exp, Used, Rej, Sp0s, Sp1s, Adjs = dg
    N = Es[0].shape[0]
    X = y.shape[0]
    if X == 0:
        return
    T = min(X, _TILE)
    # row stride of the scratch, a constant (rows 4 KiB apart would alias in the CPU): the
    # distance between two rows read and written in one loop is then known to LLVM
    S = _TILE + 8
    wk = np.empty(_U_NSLOT * S)
    U = np.empty((N, S))
    V = np.empty((N, S))
    f2 = infl * infl
    N4 = N // 4
    check_gross = gross < np.inf
    for tile in range((X + T - 1) // T):
        t0 = tile * T
        t1 = min(t0 + T, X)
        nt = t1 - t0
        # the rows of the tile _PREFETCH_TILES ahead, requested while this one is read
        tp = t0 + _PREFETCH_TILES * T
        np_ = min(T, X - tp) if tp < X else 0
        yt, Rt = y[t0:t1], R[t0:t1]
        hb, yy = wk[_U_HB * S : _U_HB * S + nt], wk[_U_YY * S : _U_YY * S + nt]
        coef, dd = wk[_U_COEF * S : _U_COEF * S + nt], wk[_U_DD * S : _U_DD * S + nt]
        zmean, sd = wk[_U_ZM * S : _U_ZM * S + nt], wk[_U_SD * S : _U_SD * S + nt]
        ok_, su = wk[_U_OK * S : _U_OK * S + nt], wk[_U_SU * S : _U_SU * S + nt]
        za, zb = wk[_U_ZA * S : _U_ZA * S + nt], wk[_U_ZB * S : _U_ZB * S + nt]
        rr = wk[_U_RR * S : _U_RR * S + nt]
        # ---- weights (as _one_obs_weights_gu; branch-free screening, so it vectorises)
        for p in range(nt):
            hb[p] = 0.0
            yy[p] = 0.0
            zmean[p] = 0.0
            su[p] = 0.0
        for i in range(N):
            h = HE[i * hs + t0 : i * hs + t1]
            for p in range(nt):
                hb[p] += h[p]
        for p in range(nt):
            hb[p] /= N
        for i in range(N):
            h = HE[i * hs + t0 : i * hs + t1]
            for p in range(nt):
                yy[p] += (h[p] - hb[p]) ** 2
        # screening; rr = 1/R where used, else 0 (and, if diag, the screening diagnostics
        # of _one_obs_weights_gu; the test on diag is loop-invariant: LLVM unswitches it)
        it, et, ut, rt = Inn[t0:t1], Exp[t0:t1], Used[t0:t1], Rej[t0:t1]
        for p in range(nt):
            d = yt[p] - hb[p]
            r_ = Rt[p]
            valid = (abs(yt[p]) < np.inf) & (abs(r_) < np.inf) & (abs(hb[p]) < np.inf)
            sdev = math.sqrt(yy[p] / (N - 1.0) + r_)
            far = not (abs(d) <= gross * sdev)
            ok = valid & (not (check_gross & far))
            ok_[p] = 1.0 if ok else 0.0
            rr[p] = 1.0 / r_ if ok else 0.0
            dd[p] = d if ok else 0.0
            if diag:
                et[p] = sdev if abs(r_) < np.inf else np.nan
                it[p] = d if ok else np.nan
                ut[p] = 1 if ok else 0
                rt[p] = 1 if (valid & check_gross & far) else 0
        if mode == MODE_ETKF:
            for p in range(nt):
                yyi = f2 * yy[p]
                s = rr[p] * yyi
                beta = 1.0 / math.sqrt(1.0 + s / (N - 1.0)) - 1.0
                coef[p] = infl * beta / yyi if ((ok_[p] > 0.0) & (yyi > 0.0)) else 0.0
                dd[p] = rr[p] * dd[p] / (N - 1.0 + s) if ok_[p] > 0.0 else 0.0  # mean weight
        else:
            for p in range(nt):
                s = rr[p] * (f2 * yy[p])
                coef[p] = f2 * rr[p] / ((N - 1.0) + s) if ok_[p] > 0.0 else 0.0
                sd[p] = 1.0 / math.sqrt(rr[p]) if ok_[p] > 0.0 else 0.0
        if mode == MODE_ETKF:
            for i in range(N):
                h, ui, vi = HE[i * hs + t0 : i * hs + t1], U[i, :nt], V[i, :nt]
                for p in range(nt):
                    up = h[p] - hb[p] if ok_[p] > 0.0 else 0.0
                    ui[p] = up
                    vi[p] = f2 * (dd[p] + coef[p] * up)
        else:
            _philox_normal_tile(pix[t0:t1], seed, cycle, purpose, V, 0, za, zb)
            if mode == MODE_ENKF:
                for i in range(N):
                    vi = V[i, :nt]
                    for p in range(nt):
                        zmean[p] += vi[p]
                for p in range(nt):
                    zmean[p] /= N
            for i in range(N):
                h, ui, vi = HE[i * hs + t0 : i * hs + t1], U[i, :nt], V[i, :nt]
                for p in range(nt):
                    up = h[p] - hb[p] if ok_[p] > 0.0 else 0.0
                    ui[p] = up
                    vi[p] = coef[p] * (dd[p] + (vi[p] - zmean[p]) * sd[p] - infl * up)
        for i in range(N):
            ui = U[i, :nt]
            for p in range(nt):
                su[p] += ui[p]
        # ---- update of every variable and level (as _apply_weights_gu)
        x0, s1 = wk[_U_X0 * S : _U_X0 * S + nt], wk[_U_S1 * S : _U_S1 * S + nt]
        sxu, mj = wk[_U_SXU * S : _U_SXU * S + nt], wk[_U_MJ * S : _U_MJ * S + nt]
        fa, cc = wk[_U_FA * S : _U_FA * S + nt], wk[_U_CC * S : _U_CC * S + nt]
        lo_, hi_ = wk[_U_LO * S : _U_LO * S + nt], wk[_U_HI * S : _U_HI * S + nt]
        ob = wk[_U_OUT * S : _U_OUT * S + nt]
        s2, tot = wk[_U_S2 * S : _U_S2 * S + nt], wk[_U_TOT * S : _U_TOT * S + nt]
        cnt, q1 = wk[_U_CNT * S : _U_CNT * S + nt], wk[_U_T1 * S : _U_T1 * S + nt]
        q2 = wk[_U_T2 * S : _U_T2 * S + nt]
        for k in range(len(Es)):
            E, EA, LO, HI = Es[k], Os[k], Los[k], His[k]
            L = E.shape[1]
            for lev in range(L):
                lb, lh = (lev if LO.shape[0] > 1 else 0), (lev if HI.shape[0] > 1 else 0)
                if LO.shape[1] == 1:
                    for p in range(nt):
                        lo_[p] = LO[lb, 0]
                else:
                    lot = LO[lb, t0:t1]
                    for p in range(nt):
                        lo_[p] = lot[p]
                if HI.shape[1] == 1:
                    for p in range(nt):
                        hi_[p] = HI[lh, 0]
                else:
                    hit = HI[lh, t0:t1]
                    for p in range(nt):
                        hi_[p] = hit[p]
                # sums over the members, shifted by the first member (no cancellation)
                e0 = E[0, lev, t0:t1]
                for p in range(nt):
                    x0[p] = e0[p]
                    s1[p] = 0.0
                    s2[p] = 0.0
                    sxu[p] = 0.0
                for b in range(N4):
                    i = 4 * b
                    if np_ > 0:
                        _prefetch_rows(E, i, i + 4, lev, tp, np_)
                    ea, eb = E[i, lev, t0:t1], E[i + 1, lev, t0:t1]
                    ec, ed = E[i + 2, lev, t0:t1], E[i + 3, lev, t0:t1]
                    ua, ub, uc, ud = U[i, :nt], U[i + 1, :nt], U[i + 2, :nt], U[i + 3, :nt]
                    for p in range(nt):
                        xp = x0[p]
                        da, db, dc, de = ea[p] - xp, eb[p] - xp, ec[p] - xp, ed[p] - xp
                        s1[p] = s1[p] + da + db + dc + de
                        if diag:  # (loop-invariant: LLVM unswitches the loop)
                            s2[p] = s2[p] + da * da + db * db + dc * dc + de * de
                        sxu[p] = sxu[p] + da * ua[p] + db * ub[p] + dc * uc[p] + de * ud[p]
                if np_ > 0:
                    _prefetch_rows(E, 4 * N4, N, lev, tp, np_)
                for i in range(4 * N4, N):
                    ei, ui = E[i, lev, t0:t1], U[i, :nt]
                    for p in range(nt):
                        dx = ei[p] - x0[p]
                        s1[p] += dx
                        if diag:
                            s2[p] += dx * dx
                        sxu[p] += dx * ui[p]
                # x = mj + fa (e - mj) + cc v; an unused pixel: mj = 0, fa = 1, cc = v = 0
                for p in range(nt):
                    dm = s1[p] / N
                    used = ok_[p] > 0.0
                    cc[p] = sxu[p] - dm * su[p] if used else 0.0
                    mj[p] = x0[p] + dm if used else 0.0
                    fa[p] = infl if used else 1.0
                if diag:
                    _update_level_diag(E, EA, lev, t0, nt, N, same[k], stream, V, wk, S)
                    sp0, sp1, adj = Sp0s[k][lev, t0:t1], Sp1s[k][lev, t0:t1], Adjs[k][lev, t0:t1]
                    for p in range(nt):  # as _apply_weights_gu
                        sp0[p] = math.sqrt(max(s2[p] - s1[p] * (s1[p] / N), 0.0) / (N - 1.0))
                        adj[p] = tot[p] / cnt[p] if cnt[p] > 0.0 else np.nan
                        sp1[p] = math.sqrt(max(q2[p] - q1[p] * q1[p] / N, 0.0) / (N - 1.0))
                elif same[k]:  # in place: read and write one row, the same element
                    for i in range(N):
                        row, vi = EA[i, lev, t0:t1], V[i, :nt]
                        for p in range(nt):
                            m = mj[p]
                            row[p] = _clip(m + fa[p] * (row[p] - m) + cc[p] * vi[p], lo_[p], hi_[p])
                else:
                    for i in range(N):
                        ei, vi = E[i, lev, t0:t1], V[i, :nt]
                        for p in range(nt):  # to the scratch (L1), then to memory
                            m = mj[p]
                            ob[p] = _clip(m + fa[p] * (ei[p] - m) + cc[p] * vi[p], lo_[p], hi_[p])
                        _put_row(EA, i, lev, t0, ob, stream)
    if stream:
        _store_fence()


def _obs_rows(HE):
    """(N, ...) predicted observations → ``(flat, stride)`` for :func:`_one_obs_update_kernel`.

    When the values of each member are contiguous and the members evenly spaced (e.g. a
    layer of a state variable, members outermost), ``flat`` views the memory from the
    first to the last value in place (all of it inside the array's buffer); otherwise
    the values are copied.
    """
    x = np.asarray(HE)
    N = x.shape[0]
    x2 = x.reshape(N, -1) if x.ndim != 2 else x  # a view when the pixels are contiguous
    X = x2.shape[1]
    if x2.dtype == np.float64 and N > 0 and X > 0 and (N == 1 or x2.strides[0] > 0):
        s0 = x2.strides[0] if N > 1 else 8 * X
        if x2.strides[1] == 8 and s0 % 8 == 0 and s0 >= 8 * X:
            hs = s0 // 8
            return np.lib.stride_tricks.as_strided(x2, ((N - 1) * hs + X,), (8,)), hs
    x2 = np.ascontiguousarray(x2, dtype=np.float64)
    return x2.reshape(-1), X


def _ro(a):
    """A read-only view of ``a`` (numba types read-only arrays apart)."""
    v = a.view()
    v.flags.writeable = False
    return v


def _bound2(b, L, X):
    """A bound (number or array of 1, X or L×X values) as a C-contiguous (1|L, 1|X) array."""
    b = np.asarray(b, dtype=np.float64)
    if b.size == 1:
        return np.full((1, 1), float(b.reshape(-1)[0]))
    if b.size == X:
        return _c(b.reshape(1, X))
    if b.size == L * X:
        return _c(b.reshape(L, X))
    raise ValueError(f"a bound of {b.size} values for {L} levels of {X} pixels")


def one_obs_update(
    HE,
    y,
    R,
    pix,
    E,
    lo,
    hi,
    infl,
    gross,
    seed,
    cycle,
    purpose,
    mode,
    stream=None,
    out=None,
    diagnostics=False,
):
    """One-observation EnKF/ETKF analysis of several state variables at once.

    Parameters
    ----------
    HE : (N, X) predicted observations, members first (a strided layer of a state
        variable is read in place).
    y, R, pix : (X) observation, its error variance (NaN = none) and the pixel key of
        the EnKF random numbers (see :func:`one_obs_weights`).
    E : sequence of float64 state variables (N, L, X) (``L`` levels; pixels innermost).
    lo, hi : sequences of bounds per variable: numbers or arrays broadcastable to (L, X)
        (``-inf``/``inf`` = none).
    infl, gross, seed, cycle, purpose, mode : as in :func:`one_obs_weights`.
    stream : write the analyses with streaming stores (default: when they exceed
        :data:`STREAM_MIN_BYTES`, unless an analysis is written in place: the kernel has
        just read its lines into the cache, and a plain store to a cached line costs no
        extra read).
    out : optional sequence, one item per variable, of C-contiguous float64 arrays of
        the shapes of ``E`` to write the analyses into (e.g. buffers reused from one
        analysis to the next, or ``E`` itself: the analysis in place), or None (a new
        array).
    diagnostics : also return the diagnostics, in the same pass: a dict of
        ``innovation``, ``expected``, ``used``, ``rejected`` (X) as from
        :func:`one_obs_weights` and ``spread_prior``, ``spread_posterior``,
        ``bound_adjustment`` (a list of (L, X) arrays, one per variable) as from
        :func:`apply_weights`, with the same values.

    Returns
    -------
    list of analyses (float64, the shapes of ``E``): the values of :func:`apply_weights`
    with the weights of :func:`one_obs_weights` (no relaxation), and the diagnostics'
    dict if asked for. See :func:`_one_obs_update_kernel`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> E = [0.25 + 0.03 * rng.standard_normal((20, 2, 5))]
    >>> Ea = one_obs_update(E[0][:, 0], np.full(5, 0.3), np.full(5, 4e-4), np.arange(5),
    ...                     E, [0.05], [0.45], 1.0, np.inf, 1, 0, 11, MODE_ETKF)
    >>> bool(np.all(np.abs(Ea[0][:, 0].mean(0) - 0.3) < np.abs(E[0][:, 0].mean(0) - 0.3)))
    True
    """
    hflat, hs = _obs_rows(HE)
    N = np.shape(HE)[0]
    X = int(np.prod(np.shape(HE)[1:]))
    y, R = (_c(np.broadcast_to(z, (X,))) for z in (y, R))
    pix = _c(np.broadcast_to(pix, (X,)), np.int64)
    Es = tuple(_c(e).reshape(N, -1, X) for e in E)
    out = [None] * len(Es) if out is None else list(out)
    for o, e in zip(out, Es, strict=True):  # (a reshape of another array could copy it)
        if o is not None and (not isinstance(o, np.ndarray) or o.size != e.size):
            raise ValueError("out: arrays of the sizes of E (or None)")
        if o is not None and not o.flags.c_contiguous:
            raise ValueError("out: writeable C-contiguous float64 arrays of the shapes of E")
    Os = tuple(
        np.empty_like(e) if o is None else o.reshape(e.shape) for o, e in zip(out, Es, strict=True)
    )
    if not all(o.flags.c_contiguous and o.flags.writeable and o.dtype == np.float64 for o in Os):
        raise ValueError("out: writeable C-contiguous float64 arrays of the shapes of E")
    # an analysis in place: ``out`` is the variable itself (the same view of memory)
    same = np.array(
        [
            given is not None
            and o.__array_interface__["data"][0] == e.__array_interface__["data"][0]
            and o.strides == e.strides
            for o, e, given in zip(Os, Es, out, strict=True)
        ],
        dtype=np.bool_,
    )
    for o, e, s_ in zip(Os, Es, same, strict=True):
        if not s_ and np.may_share_memory(o, e):
            raise ValueError("out: an analysis array overlaps its variable without being it")
    in_place = bool(same.any())

    Los = tuple(_ro(_bound2(b, e.shape[1], X)) for b, e in zip(lo, Es, strict=True))
    His = tuple(_ro(_bound2(b, e.shape[1], X)) for b, e in zip(hi, Es, strict=True))
    Es = tuple(_ro(e) for e in Es)  # inputs typed read-only: one compilation for all
    hflat, y, R, pix = (_ro(a) for a in (hflat, y, R, pix))
    if stream is None:
        stream = sum(o.nbytes for o in Os) >= STREAM_MIN_BYTES and not in_place
    if diagnostics:
        inn, exp_ = np.empty(X), np.empty(X)
        used, rej = np.empty(X, np.int8), np.empty(X, np.int8)
        sp0, sp1, adj = ([np.empty(e.shape[1:]) for e in Es] for _ in range(3))
    else:  # (typed placeholders, not written)
        inn, exp_, used, rej = np.empty(0), np.empty(0), np.empty(0, np.int8), np.empty(0, np.int8)
        sp0, sp1, adj = ([np.empty((0, 0)) for _ in Es] for _ in range(3))
    with np.errstate(invalid="ignore"):
        _one_obs_update_kernel(
            hflat,
            hs,
            y,
            R,
            pix,
            float(infl),
            float(gross),
            int(seed),
            int(cycle),
            int(purpose),
            int(mode),
            Es,
            Os,
            Los,
            His,
            bool(stream),
            same,
            (bool(diagnostics), inn, exp_, used, rej, tuple(sp0), tuple(sp1), tuple(adj)),
        )
    if not diagnostics:
        return list(Os)
    diag = {"innovation": inn, "expected": exp_, "used": used, "rejected": rej}
    diag.update(spread_prior=sp0, spread_posterior=sp1, bound_adjustment=adj)
    return list(Os), diag


def one_obs_update_reference(HE, y, R, pix, E, lo, hi, infl, gross, seed, cycle, purpose, mode):
    """NumPy reference of :func:`one_obs_update` (arguments as there)."""
    N = np.shape(HE)[0]
    HE = np.asarray(HE, float).reshape(N, -1).T  # (X, N)
    X = HE.shape[0]
    y, R, pix = (np.broadcast_to(z, (X,)) for z in (y, R, pix))
    u, v, a, *_ = one_obs_weights_reference(HE, y, R, pix, infl, gross, seed, cycle, purpose, mode)
    out = []
    for e, lo_, hi_ in zip(E, lo, hi, strict=True):
        e = np.asarray(e, float)
        L = e.size // (N * X)
        e3 = np.moveaxis(e.reshape(N, L, X), 0, -1)  # (L, X, N)
        b = [np.broadcast_to(_bound2(z, L, X), (L, X)) for z in (lo_, hi_)]
        ea = apply_weights_reference(e3, u, v, a, 0.0, 0.0, *b)[0]
        out.append(np.moveaxis(ea, -1, 0).reshape(e.shape))
    return out


# ------------------------------------------------------------ sigma-point filters
# Batched NumPy kernels (pixels on the leading axes, small dense matrices in the core);
# the covariance forms are the reference of the square-root forms and both reproduce
# the exact Kalman analysis on linear-Gaussian problems (SCIENCE.md E34).
def _mT(a):
    return np.swapaxes(a, -1, -2)


def sqrt_psd(P):
    """Lower Cholesky factor of a symmetric matrix, made safe for semi-definite input.

    Uses Cholesky when it succeeds for the whole batch; otherwise the symmetric
    eigen-decomposition with negative eigenvalues clipped to 0 followed by a QR
    triangularisation, so that the result is always finite.
    """
    P = 0.5 * (P + _mT(P))
    try:
        return np.linalg.cholesky(P)
    except np.linalg.LinAlgError:
        lam, V = np.linalg.eigh(P)
        root = V * np.sqrt(np.clip(lam, 0.0, None))[..., None, :]
        return tria(root)


def tria(A):
    """Lower-triangular S with ``S S^T = A A^T`` from the QR factors of ``A^T``.

    ``A`` is (..., n, k); ``k < n`` is padded with zero columns. Diagonal signs are made
    non-negative.
    """
    n, k = A.shape[-2:]
    if k < n:
        A = np.concatenate([A, np.zeros((*A.shape[:-1], n - k))], axis=-1)
    r = np.linalg.qr(_mT(A), mode="r")[..., :n, :]
    S = _mT(r)
    sign = np.where(np.diagonal(S, axis1=-2, axis2=-1) < 0, -1.0, 1.0)
    return S * sign[..., None, :]


def cholupdate(S, u, sign=1.0):
    """Rank-one update (``sign=+1``) or downdate (``-1``) of a lower Cholesky factor.

    Returns ``S'`` with ``S' S'^T = S S^T + sign u u^T`` (batched over leading axes). A
    downdate that would lose positive definiteness is stopped at a zero pivot instead of
    producing NaN.
    """
    S = np.array(S, dtype=float, copy=True)
    u = np.array(u, dtype=float, copy=True)
    n = S.shape[-1]
    for k in range(n):
        skk = S[..., k, k]
        r2 = skk * skk + sign * u[..., k] ** 2
        r = np.sqrt(np.maximum(r2, 0.0))
        safe = skk != 0
        c = np.where(safe, r / np.where(safe, skk, 1.0), 1.0)
        s = np.where(safe, u[..., k] / np.where(safe, skk, 1.0), 0.0)
        S[..., k, k] = r
        if k + 1 < n:
            cz = np.where(c == 0, 1.0, c)[..., None]
            col = (S[..., k + 1 :, k] + sign * s[..., None] * u[..., k + 1 :]) / cz
            col = np.where((c == 0)[..., None], 0.0, col)
            S[..., k + 1 :, k] = col
            u[..., k + 1 :] = c[..., None] * u[..., k + 1 :] - s[..., None] * col
    return S


def sigma_points_from_sqrt(x, S, scale):
    """Symmetric sigma points ``x, x + scale S_i, x - scale S_i`` → (..., 2n+1, n)."""
    cols = _mT(S) * scale
    x = x[..., None, :]
    return np.concatenate([x, x + cols, x - cols], axis=-2)


def _sqrt_q(Q, n, shape):
    if Q is None:
        return None
    Q = np.asarray(Q, dtype=float)
    if Q.ndim >= 2 and Q.shape[-2:] == (n, n):
        return sqrt_psd(np.broadcast_to(Q, (*shape, n, n)))
    q = np.broadcast_to(Q, (*shape, n))
    return np.sqrt(q)[..., :, None] * np.eye(n)


def sigma_predict(kind, X, wm, wc, Q=None, h=SQRT3):
    """Forecast moments of propagated sigma points ``X`` (..., 2n+1, n).

    ``kind`` is ``"ukf"``, ``"srukf"``, ``"cdkf"`` or ``"srcdkf"``. Returns the mean
    (..., n) and the lower square root of the forecast covariance (..., n, n), with the
    additive process noise ``Q`` (variances (..., n) or a full (..., n, n) matrix).
    """
    n = X.shape[-1]
    shape = X.shape[:-2]
    wm = np.broadcast_to(wm, (*shape, 2 * n + 1))
    wc = np.broadcast_to(wc, (*shape, 2 * n + 1))
    sq = _sqrt_q(Q, n, shape)
    if kind in ("ukf", "srukf"):
        xm = np.einsum("...p,...pn->...n", wm, X)
        dev = X - xm[..., None, :]
        if kind == "ukf":
            P = np.einsum("...p,...pi,...pj->...ij", wc, dev, dev)
            if sq is not None:
                P = P + sq @ _mT(sq)
            return xm, sqrt_psd(P)
        A = _mT(np.sqrt(wc[..., 1:, None]) * dev[..., 1:, :])
        if sq is not None:
            A = np.concatenate([A, sq], axis=-1)
        S = tria(A)
        w0 = wc[..., 0]
        u = np.sqrt(np.abs(w0))[..., None] * dev[..., 0, :]
        if np.all(w0 >= 0):
            return xm, cholupdate(S, u, 1.0)
        if np.all(w0 < 0):
            return xm, cholupdate(S, u, -1.0)
        raise ValueError("mixed signs of the central covariance weight")
    if kind in ("cdkf", "srcdkf"):
        h2 = h * h
        wm0, wmi = (h2 - n) / h2, 1.0 / (2 * h2)
        wc1, wc2 = 1.0 / (4 * h2), (h2 - 1.0) / (4 * h2 * h2)
        xm = wm0 * X[..., 0, :] + wmi * X[..., 1:, :].sum(axis=-2)
        a = _mT(X[..., 1 : n + 1, :] - X[..., n + 1 :, :])
        b = _mT(X[..., 1 : n + 1, :] + X[..., n + 1 :, :] - 2 * X[..., :1, :])
        if kind == "cdkf":
            P = wc1 * a @ _mT(a) + wc2 * b @ _mT(b)
            if sq is not None:
                P = P + sq @ _mT(sq)
            return xm, sqrt_psd(P)
        blocks = [math.sqrt(wc1) * a, math.sqrt(wc2) * b]
        if sq is not None:
            blocks.append(sq)
        return xm, tria(np.concatenate(blocks, axis=-1))
    raise ValueError(f"unknown sigma-point kind {kind!r}")


def sigma_update(kind, Xp, xm, S, Y, yw, wm, wc, h=SQRT3):
    """Measurement update of the prior sigma points ``Xp`` drawn from (``xm``, ``S``).

    ``Y`` (..., 2n+1, m) are the predicted observations of ``Xp`` and ``yw`` (..., m) the
    observations, both already whitened (``R = I``; a missing observation is a zero row
    and a zero value, which gives it zero gain). Returns the analysis mean and lower
    square-root covariance.
    """
    n = Xp.shape[-1]
    m = Y.shape[-1]
    shape = Xp.shape[:-2]
    eye = np.broadcast_to(np.eye(m), (*shape, m, m))
    if kind in ("ukf", "srukf"):
        wm = np.broadcast_to(wm, (*shape, 2 * n + 1))
        wc = np.broadcast_to(wc, (*shape, 2 * n + 1))
        ym = np.einsum("...p,...pm->...m", wm, Y)
        dy = Y - ym[..., None, :]
        dx = Xp - xm[..., None, :]
        Pxy = np.einsum("...p,...pi,...pj->...ij", wc, dx, dy)
        if kind == "ukf":
            Pyy = np.einsum("...p,...pi,...pj->...ij", wc, dy, dy) + eye
            K = _mT(np.linalg.solve(Pyy, _mT(Pxy)))
            x = xm + np.einsum("...ij,...j->...i", K, yw - ym)
            P = S @ _mT(S) - K @ Pyy @ _mT(K)
            return x, sqrt_psd(P)
        A = np.concatenate([_mT(np.sqrt(wc[..., 1:, None]) * dy[..., 1:, :]), eye], axis=-1)
        Sy = tria(A)
        w0 = wc[..., 0]
        u = np.sqrt(np.abs(w0))[..., None] * dy[..., 0, :]
        Sy = cholupdate(Sy, u, 1.0 if np.all(w0 >= 0) else -1.0)
        K = _mT(_tri_solve_pair(Sy, _mT(Pxy)))
        x = xm + np.einsum("...ij,...j->...i", K, yw - ym)
        U = K @ Sy
        Sa = S
        for k in range(m):
            Sa = cholupdate(Sa, U[..., :, k], -1.0)
        return x, Sa
    if kind in ("cdkf", "srcdkf"):
        h2 = h * h
        wm0, wmi = (h2 - n) / h2, 1.0 / (2 * h2)
        wc1, wc2 = 1.0 / (4 * h2), (h2 - 1.0) / (4 * h2 * h2)
        ym = wm0 * Y[..., 0, :] + wmi * Y[..., 1:, :].sum(axis=-2)
        a = _mT(Y[..., 1 : n + 1, :] - Y[..., n + 1 :, :])  # (..., m, n)
        b = _mT(Y[..., 1 : n + 1, :] + Y[..., n + 1 :, :] - 2 * Y[..., :1, :])
        Pxy = math.sqrt(wc1) * S @ _mT(a)
        if kind == "cdkf":
            Pyy = wc1 * a @ _mT(a) + wc2 * b @ _mT(b) + eye
            K = _mT(np.linalg.solve(Pyy, _mT(Pxy)))
            x = xm + np.einsum("...ij,...j->...i", K, yw - ym)
            P = S @ _mT(S) - K @ Pyy @ _mT(K)
            return x, sqrt_psd(P)
        Sy = tria(np.concatenate([math.sqrt(wc1) * a, math.sqrt(wc2) * b, eye], axis=-1))
        K = _mT(_tri_solve_pair(Sy, _mT(Pxy)))
        x = xm + np.einsum("...ij,...j->...i", K, yw - ym)
        Sa = tria(np.concatenate([S - math.sqrt(wc1) * K @ a, math.sqrt(wc2) * K @ b, K], axis=-1))
        return x, Sa
    raise ValueError(f"unknown sigma-point kind {kind!r}")


# Allocation-free per-pixel UKF (covariance form, scaled points, diagonal Q, one
# observation): the numba forms of ``sigma_predict``/``sigma_update`` for ``kind="ukf"``
# followed by ``sigma_points_from_sqrt``; the n x n work matrices live in the output
# arrays. A covariance that is not positive definite sets ``ok = 0`` (the caller redoes
# that pixel with the NumPy forms, which handle semi-definite matrices).
@njit
def _chol_lower(A, n):
    """Lower Cholesky factor of the symmetric A (lower triangle read) in place."""
    for j in range(n):
        s = A[j, j]
        for k in range(j):
            s -= A[j, k] * A[j, k]
        if not s > 0.0:
            return False
        d = math.sqrt(s)
        A[j, j] = d
        for i in range(j + 1, n):
            t = A[i, j]
            for k in range(j):
                t -= A[i, k] * A[j, k]
            A[i, j] = t / d
    for i in range(n):
        for j in range(i + 1, n):
            A[i, j] = 0.0
    return True


@gufunc(
    [
        "void(float64[:,:], float64[:], float64[:], float64[:], float64, float64[:,:],"
        " float64[:], float64[:,:], float64[:])"
    ],
    "(p,n),(p),(p),(n),()->(p,n),(n),(n,n),()",
)
def ukf_predict(X, wm, wc, q, scale, Xp, xm, S, ok):
    """UKF prediction: mean, lower root of ``sum wc dx dx^T + diag(q)``, new points."""
    P, n = X.shape
    for j in range(n):
        t = 0.0
        for k in range(P):
            t += wm[k] * X[k, j]
        xm[j] = t
    for i in range(n):
        for j in range(i + 1):
            t = 0.0
            for k in range(P):
                t += wc[k] * (X[k, i] - xm[i]) * (X[k, j] - xm[j])
            S[i, j] = t + (q[i] if i == j else 0.0)
    good = _chol_lower(S, n)
    ok[0] = 1.0 if good else 0.0
    for j in range(n):
        Xp[0, j] = xm[j]
        for k in range(n):
            Xp[1 + k, j] = xm[j] + scale * S[j, k]
            Xp[1 + n + k, j] = xm[j] - scale * S[j, k]


@gufunc(
    [
        "void(float64[:,:], float64[:], float64[:,:], float64[:], float64, float64[:],"
        " float64[:], float64, float64[:,:], float64[:])"
    ],
    "(p,n),(n),(n,n),(p),(),(p),(p),()->(p,n),()",
)
def ukf_update_1obs(Xp, xm, S, Y, yw, wm, wc, scale, Xa, ok):
    """UKF update with one whitened observation (``R = 1``; a missing one is ``Y = yw = 0``).

    ``Pyy = sum wc dy^2 + 1``, ``K = Pxy / Pyy``, ``x = xm + K (yw - ym)``,
    ``P = S S^T - K Pyy K^T``; returns the analysis points of (x, chol(P)).
    """
    P, n = Xp.shape
    ym = 0.0
    for k in range(P):
        ym += wm[k] * Y[k]
    pyy = 1.0
    for k in range(P):
        pyy += wc[k] * (Y[k] - ym) ** 2
    for j in range(n):  # K in row 0
        t = 0.0
        for k in range(P):
            t += wc[k] * (Xp[k, j] - xm[j]) * (Y[k] - ym)
        Xa[0, j] = t / pyy
    L = Xa[n + 1 :, :]  # P, then its root, in rows n+1..2n
    for i in range(n):
        for j in range(i + 1):
            t = 0.0
            for k in range(n):
                t += S[i, k] * S[j, k]
            L[i, j] = t - Xa[0, i] * pyy * Xa[0, j]
    good = _chol_lower(L, n)
    ok[0] = 1.0 if good else 0.0
    for j in range(n):
        Xa[0, j] = xm[j] + Xa[0, j] * (yw - ym)
    for k in range(n):
        for j in range(n):
            Xa[1 + k, j] = Xa[0, j] + scale * L[j, k]
    for k in range(n):
        for j in range(n):
            Xa[1 + n + k, j] = 2.0 * Xa[0, j] - Xa[1 + k, j]


def _tri_solve_pair(Sy, B):
    """Solve ``(Sy Sy^T) Z = B`` as two solves with the triangular factors (batched)."""
    return np.linalg.solve(_mT(Sy), np.linalg.solve(Sy, B))
