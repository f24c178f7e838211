"""Local analyses on a 2-D grid of columns: the LETKF and the localised stochastic EnKF.

Both kernels analyse each pixel of a block with the observations of its neighbours
inside the Gaspari–Cohn support ``2c`` (``R^-1`` multiplied by ``GC(dist / c)``); their
NumPy references are :func:`xldas.filters._kernels.letkf_grid_reference` and
:func:`xldas.filters._local.lenkf_grid_reference`, which flatten the grid into one state
vector and compute every distance pair.

How the per-pixel work is organised (it dominates a cycle's analysis):

- the inflated observation anomalies of every pixel of the block are computed once,
  stored observation-major (members contiguous);
- on a rectilinear grid (``ycoord`` constant along a row, ``xcoord`` constant down a
  column: regular lat/lon or projected x/y) the taper weights depend only on the two rows
  and the column offset; they are tabulated once per target row (one distance per row
  pair and column offset instead of one per pixel pair). Other grids (2-D coordinates of
  a rotated pole) compute the distance of every pair;
- the used local observations are gathered into a contiguous matrix of rows
  ``sqrt(w) Y_k`` (``w = R^-1 GC``), so that the ensemble-space normal matrix
  ``Y^T R_loc^-1 Y`` (and, for the EnKF, its right-hand side) is one matrix product
  (BLAS ``gemm``) instead of a rank-one update per observation.

The arithmetic is that of the references; results agree with them to rounding (the sums
run in a different order).
"""

from __future__ import annotations

import math

import numpy as np

from xldas._numba import gufunc, njit
from xldas.filters._kernels import (
    _distance,
    _etkf_from_normal,
    _gc,
    _transform_column,
    _update_column,
)

__all__ = ["lenkf_grid", "letkf_grid"]


@njit
def _rectilinear(ycoord, xcoord):
    """True when ``ycoord`` depends on the row only and ``xcoord`` on the column only."""
    A, B = ycoord.shape
    for p in range(A):
        for q in range(B):
            if ycoord[p, q] != ycoord[p, 0] or xcoord[p, q] != xcoord[0, q]:
                return False
    return True


@njit
def _pixel_taper(ycoord, xcoord, c, halo, metric, p, q, tab):
    """Taper weights between pixel ``(p, q)`` and its window: ``tab[pp - p + halo,
    qq - q + halo]`` (any grid: one distance per pair)."""
    A, B = ycoord.shape
    for a in range(2 * halo + 1):
        pp = p - halo + a
        for b in range(2 * halo + 1):
            qq = q - halo + b
            if pp < 0 or pp >= A or qq < 0 or qq >= B:
                tab[a, b] = 0.0
                continue
            tab[a, b] = _gc(
                _distance(ycoord[p, q], xcoord[p, q], ycoord[pp, qq], xcoord[pp, qq], metric) / c
            )


@njit
def _rect_row_taper(ycoord, xcoord, c, halo, metric, p, tab):
    """Rectilinear grids: ``tab[pp - p + halo, dq + halo]`` for the row ``p``, with the
    distance between ``(p, q)`` and ``(pp, q + dq)`` taken from the column spacing of the
    grid's first columns (exact for regular grids up to rounding)."""
    A, B = ycoord.shape
    for a in range(2 * halo + 1):
        pp = p - halo + a
        for b in range(2 * halo + 1):
            dq = b - halo
            if pp < 0 or pp >= A or abs(dq) >= B:
                tab[a, b] = 0.0
                continue
            q0 = 0 if dq >= 0 else -dq
            tab[a, b] = _gc(
                _distance(ycoord[p, 0], xcoord[0, q0], ycoord[pp, 0], xcoord[0, q0 + dq], metric)
                / c
            )


@njit
def _check_interior(E, A, B, i0, i1, j0, j1):
    if not (0 <= i0 <= i1 <= A and 0 <= j0 <= j1 <= B):
        raise ValueError("the analysed pixels [i0, i1) x [j0, j1) must lie in the window")
    if E.shape[0] != i1 - i0 or E.shape[1] != j1 - j0:
        raise ValueError("E must hold exactly the analysed pixels [i0, i1) x [j0, j1)")


@njit
def _anomalies(HE, infl):
    """Inflated observation anomalies, observation-major: ``Yt[p, q, k, i]``."""
    A, B, N, m = HE.shape
    Yt = np.empty((A, B, m, N))
    for p in range(A):
        for q in range(B):
            for k in range(m):
                hb = 0.0
                for i in range(N):
                    hb += HE[p, q, i, k]
                hb /= N
                for i in range(N):
                    Yt[p, q, k, i] = infl * (HE[p, q, i, k] - hb)
    return Yt


@gufunc(
    [
        "void(float64[:,:,:,:], float64[:,:,:,:], float64[:,:,:], float64[:,:,:], float64[:,:], float64[:,:], float64, int64, int64, int64, int64, int64, int64, float64, float64, float64, float64[:,:,:,:])"
    ],
    "(u,v,N,n),(a,b,N,m),(a,b,m),(a,b,m),(a,b),(a,b),(),(),(),(),(),(),(),(),(),()->(u,v,N,n)",
)
def letkf_grid(
    E, HE, d, rinv, ycoord, xcoord, c, halo, metric, i0, i1, j0, j1, infl, rtpp, rtps, out
):
    """LETKF on a 2-D grid of columns: each pixel's state is updated by one local ETKF.

    The local observations are those of the pixels within ``halo`` cells whose
    distance is inside the Gaspari–Cohn support ``2c``, each with ``R^-1`` times
    ``GC(dist/c)``. ``metric`` 1 = great-circle km on (lat, lon) degrees, 0 = Euclidean
    in the coordinate units. The observation-side arrays (``HE``, ``d``, ``rinv``, the
    coordinates) cover a window of ``a × b`` pixels; ``E`` and ``out`` only the pixels
    analysed, ``[i0, i1) × [j0, j1)`` of that window (a dask block's interior: its halo
    rows serve as observations only, and a pixel's analysis needs no other pixel's
    state). Pixels closer than ``halo`` to the window's edge see only the neighbours
    inside it. Reference: :func:`xldas.filters._kernels.letkf_grid_reference`.
    """
    Ab, Bb = HE.shape[0], HE.shape[1]
    N, n = E.shape[2], E.shape[3]
    m = HE.shape[3]
    _check_interior(E, Ab, Bb, i0, i1, j0, j1)
    w = 2 * halo + 1
    Yt = _anomalies(HE, infl)
    G = np.empty((w * w * m, N))
    gd = np.empty(w * w * m)
    T = np.empty((N, N))
    tab = np.empty((w, w))
    rect = _rectilinear(ycoord, xcoord)
    for p in range(i0, i1):
        if rect:
            _rect_row_taper(ycoord, xcoord, c, halo, metric, p, tab)
        for q in range(j0, j1):
            if not rect:
                _pixel_taper(ycoord, xcoord, c, halo, metric, p, q, tab)
            r = 0
            for pp in range(max(0, p - halo), min(Ab, p + halo + 1)):
                for qq in range(max(0, q - halo), min(Bb, q + halo + 1)):
                    g = tab[pp - p + halo, qq - q + halo]
                    if g <= 0.0:
                        continue
                    for k in range(m):
                        wk = rinv[pp, qq, k] * g
                        if wk > 0.0:
                            sw = math.sqrt(wk)
                            for i in range(N):
                                G[r, i] = sw * Yt[pp, qq, k, i]
                            gd[r] = sw * d[pp, qq, k]
                            r += 1
            if r == 0:
                out[p - i0, q - j0] = E[p - i0, q - j0]
                continue
            Gr = G[:r]
            A = np.dot(Gr.T, Gr)
            Cd = np.dot(Gr.T, gd[:r])
            for a in range(N):
                A[a, a] += N - 1.0
            _etkf_from_normal(A, Cd, T)
            for j in range(n):
                _transform_column(E[p - i0, q - j0], out[p - i0, q - j0], j, T, infl, rtpp, rtps)


@gufunc(
    [
        "void(float64[:,:,:,:], float64[:,:,:,:], float64[:,:,:], float64[:,:,:], float64[:,:,:,:], float64[:,:], float64[:,:], float64, int64, int64, int64, int64, int64, int64, float64, float64, float64, float64[:,:,:,:])"
    ],
    "(u,v,N,n),(a,b,N,m),(a,b,m),(a,b,m),(a,b,N,m),(a,b),(a,b),(),(),(),(),(),(),(),(),(),()->(u,v,N,n)",
)
def lenkf_grid(
    E, HE, d, rinv, eps, ycoord, xcoord, c, halo, metric, i0, i1, j0, j1, infl, rtpp, rtps, out
):
    """Localised stochastic EnKF on a 2-D grid of columns (one local analysis per pixel).

    The local observations are those of the pixels within ``halo`` cells whose distance
    is inside the Gaspari–Cohn support ``2c``; ``metric`` 1 = great-circle km on
    (lat, lon) degrees, 0 = Euclidean in the coordinate units. Pixels closer than
    ``halo`` to the window's edge see only the neighbours inside it. ``eps`` are the
    perturbations of each pixel's observations, scaled for each local analysis by
    ``1/sqrt(GC)`` (:mod:`xldas.filters._local`). As in :func:`letkf_grid`, ``E`` and
    ``out`` hold only the analysed pixels ``[i0, i1) × [j0, j1)`` of the observation
    window. Reference: :func:`xldas.filters._local.lenkf_grid_reference`.

    With ``w = R^-1 GC`` and ``s = 1/sqrt(GC)``, the rows gathered for one local analysis
    are ``sqrt(w) Y_k`` and ``sqrt(w) (d_k + s eps_k - Y_k)``; one product of the first
    block with both gives ``Y^T R_loc^-1 Y`` and ``Y^T R_loc^-1 D``.
    """
    Ab, Bb = HE.shape[0], HE.shape[1]
    N, n = E.shape[2], E.shape[3]
    m = HE.shape[3]
    _check_interior(E, Ab, Bb, i0, i1, j0, j1)
    w = 2 * halo + 1
    Yt = _anomalies(HE, infl)
    H = np.empty((w * w * m, 2 * N))
    tab = np.empty((w, w))
    rect = _rectilinear(ycoord, xcoord)
    for p in range(i0, i1):
        if rect:
            _rect_row_taper(ycoord, xcoord, c, halo, metric, p, tab)
        for q in range(j0, j1):
            if not rect:
                _pixel_taper(ycoord, xcoord, c, halo, metric, p, q, tab)
            r = 0
            for pp in range(max(0, p - halo), min(Ab, p + halo + 1)):
                for qq in range(max(0, q - halo), min(Bb, q + halo + 1)):
                    g = tab[pp - p + halo, qq - q + halo]
                    if g <= 0.0:
                        continue
                    for k in range(m):
                        wk = rinv[pp, qq, k] * g
                        if wk > 0.0:
                            sw = math.sqrt(wk)
                            se = math.sqrt(rinv[pp, qq, k])  # sqrt(w) / sqrt(GC)
                            dk = sw * d[pp, qq, k]
                            for i in range(N):
                                yi = sw * Yt[pp, qq, k, i]
                                H[r, i] = yi
                                H[r, N + i] = dk + se * eps[pp, qq, i, k] - yi
                            r += 1
            if r == 0:
                out[p - i0, q - j0] = E[p - i0, q - j0]
                continue
            Hr = H[:r]
            M = np.dot(np.ascontiguousarray(Hr[:, :N].T), Hr)
            A = np.ascontiguousarray(M[:, :N])
            B = np.ascontiguousarray(M[:, N:])
            for a in range(N):
                A[a, a] += N - 1.0
            Wt = np.linalg.solve(A, B)
            for j in range(n):
                _update_column(E[p - i0, q - j0], out[p - i0, q - j0], j, Wt, infl, rtpp, rtps)
