"""Localised stochastic EnKF kernels (R-localisation with perturbed observations).

The stochastic EnKF of :func:`xldas.filters._kernels.enkf_reference`, analysed locally:
state element ``j`` (on grids: the column of one pixel) uses every observation ``k``
whose Gaspari–Cohn weight ``rho_jk = GC(dist(j, k) / c)`` is positive, with the
inverse error variance ``rinv_k * rho_jk`` (the localised error variance is
``R_k / rho_jk``). So that the analysis ensemble keeps the spread the Kalman filter
gives for that localised ``R``, an observation's perturbation is scaled to it as well:
``eps_k / sqrt(rho_jk)`` (each observation has ONE perturbation per member, shared by
every local analysis that uses it). In ensemble space, with inflated anomalies ``X``,
``Y`` and ``D_i = y + eps_i - HE_i``::

    W = ((N-1) I + Y^T R_loc^-1 Y)^-1 Y^T R_loc^-1 D,      x_i^a = x̄ + X_i + X W_i

which is the Kalman gain written with the push-through identity, so that ``rinv = 0``
(missing, rejected or outside the support) simply drops an observation.

With a support smaller than the grid spacing each pixel sees only its own observations
with weight 1 and the update equals the per-pixel EnKF exactly (same random numbers);
the tests check this, the NumPy references, and the independence of the chunking.

Conventions (``d``, ``rinv``, ``infl``, ``rtpp``/``rtps``, no update where nothing is
used) are those of :mod:`xldas.filters._kernels`.
"""

from __future__ import annotations

import math

import numpy as np

from xldas._numba import gufunc, njit
from xldas.filters._kernels import (
    _obs_anomalies,
    _update_column,
    enkf_reference,
    grid_as_vector,
    vector_as_grid,
)

__all__ = ["lenkf_grid_reference", "lenkf_taper", "lenkf_taper_reference"]


def lenkf_taper_reference(E, HE, d, rinv, eps, rho, infl=1.0, rtpp=0.0, rtps=0.0):
    """Localised stochastic EnKF on plain arrays (NumPy reference).

    Parameters
    ----------
    E : (..., N, n) forecast ensemble; HE : (..., N, m) predicted observations.
    d, rinv : (..., m) innovations and inverse error variances (0 = not used).
    eps : (..., N, m) observation perturbations drawn with the error variance ``R``.
    rho : (..., n, m) Gaspari–Cohn weights between state elements and observations.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> E = rng.normal(size=(10, 3)); d = np.array([0.5, -0.2]); rinv = np.ones(2)
    >>> rho = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    >>> lenkf_taper_reference(E, E[:, :2], d, rinv, rng.normal(size=(10, 2)), rho).shape
    (10, 3)
    """
    E, HE, rho = np.asarray(E, float), np.asarray(HE, float), np.asarray(rho, float)
    Ea = np.empty(np.broadcast_shapes(E.shape, E.shape))
    for j in range(E.shape[-1]):
        r = rho[..., j, :]
        rl = rinv * r
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(rl > 0, 1.0 / np.sqrt(np.where(rl > 0, r, 1.0)), 0.0)
        col = enkf_reference(E, HE, d, rl, eps * scale[..., None, :], infl, rtpp, rtps)
        Ea[..., :, j] = col[..., :, j]
    return Ea


@gufunc(
    [
        "void(float64[:,:], float64[:,:], float64[:], float64[:], float64[:,:], float64[:,:], float64, float64, float64, float64[:,:])"
    ],
    "(N,n),(N,m),(m),(m),(N,m),(n,m),(),(),()->(N,n)",
)
def lenkf_taper(E, HE, d, rinv, eps, rho, infl, rtpp, rtps, out):
    """Localised stochastic EnKF, one local analysis per state element (see the reference)."""
    N, n = E.shape
    m = HE.shape[1]
    Y = np.empty((N, m))
    _obs_anomalies(HE, infl, Y)
    A = np.empty((N, N))
    B = np.empty((N, N))
    for j in range(n):
        A[:, :] = 0.0
        B[:, :] = 0.0
        cnt = 0
        for k in range(m):
            rl = rinv[k] * rho[j, k]
            if rl > 0.0:
                _accumulate(A, B, Y[:, k], eps[:, k], d[k], rl, 1.0 / math.sqrt(rho[j, k]))
                cnt += 1
        if cnt == 0:
            for i in range(N):
                out[i, j] = E[i, j]
        else:
            _update_column(E, out, j, _solve(A, B), infl, rtpp, rtps)


def lenkf_grid_reference(
    E, HE, d, rinv, eps, ycoord, xcoord, c, metric, infl=1.0, rtpp=0.0, rtps=0.0
):
    """NumPy reference of :func:`xldas.filters._grid.lenkf_grid` through
    :func:`lenkf_taper_reference`.

    The grid is flattened into one state vector of ``P*n`` elements and ``P*m``
    observations; the weight between element ``(p, j)`` and observation ``(q, k)`` is
    ``GC(dist(p, q)/c)``.
    """
    rho, (Ef, Hf, ef) = grid_as_vector(E, HE, ycoord, xcoord, c, metric, eps)
    Ea = lenkf_taper_reference(Ef, Hf, d.reshape(-1), rinv.reshape(-1), ef, rho, infl, rtpp, rtps)
    return vector_as_grid(Ea, E.shape)


@njit
def _accumulate(A, B, y, e, dk, rl, s):
    """A += rl y y^T (upper triangle), B += rl y (dk + s e - y)^T for one observation."""
    N = y.shape[0]
    for a in range(N):
        ca = rl * y[a]
        if ca == 0.0:
            continue
        for b in range(a, N):
            A[a, b] += ca * y[b]
        for b in range(N):
            B[a, b] += ca * (dk + s * e[b] - y[b])


@njit
def _solve(A, B):
    """Complete A = (N-1) I + Y^T R^-1 Y from its upper triangle; return W = A^-1 B."""
    N = A.shape[0]
    for a in range(N):
        A[a, a] += N - 1.0
        for b in range(a):
            A[a, b] = A[b, a]
    return np.linalg.solve(A, B)
