"""CUDA forms of the ensemble analyses: one GPU thread per pixel.

GPU forms exist for the stochastic **EnKF** and the **ETKF** (the methods whose analysis
is independent per pixel). :func:`ensemble_block` has the signature of the per-block
function of :func:`xldas.filters.assimilate` and does on the device, per pixel, what the
CPU path does: observation screening (missing observations, gross-error check,
:class:`~xldas.errors.ObservationError` for a non-positive error variance), the Philox
observation perturbations of the EnKF (the same numbers as on the CPU: they are keyed by
seed, cycle and pixel coordinates) and the analysis with inflation and RTPP/RTPS.

Shared with the CPU kernels of :mod:`xldas.filters._kernels` (compiled as CUDA device
functions by :func:`xldas._cuda.device_function`, not copied): the relaxation
``_relax_col`` and the Philox generator ``philox_normal``. The CPU analysis kernels
allocate (``np.empty``, whole-array copies) and call ``np.linalg`` (``solve``,
``eigh``), which numba's CUDA target lacks (no heap, no LAPACK); here the per-pixel
linear algebra is written by hand in preallocated work arrays (pixel innermost). Both
analyses need functions of the ensemble-space matrix ``A = (N-1) I + Y R^-1 Y^T``
(its inverse for the EnKF gain, its inverse square root for the ETKF transform). ``A``
is ``(N-1) I`` plus a rank-``m`` term, so the kernels decompose the small (m, m) matrix
``R^-1/2 Y^T Y R^-1/2`` with a cyclic Jacobi eigen-solver and apply ``f(A)`` in that
low-rank form: O(N m (n + m)) work per pixel and no (N, N) matrix, instead of the
O(N^3) ``solve``/``eigh`` of the CPU kernels (the same numbers to round-off: ``A`` has
all eigenvalues >= N - 1). Any number of observations per pixel (one included, which
the CPU computes in closed form). As on the CPU, a pixel without a used observation
keeps its forecast (no inflation, no relaxation).

Without a GPU form (the analysis of a CuPy-backed ensemble raises
:class:`~xldas.errors.FilterError` naming the method; move the ensemble to the host with
``xldas.compute.to_backend(ens, "numpy")``): the LETKF (neighbourhood halos, NumPy
geometry), the particle filter and the sigma-point filters (batched QR/Cholesky updates in
NumPy). The particle filter's reweighting and resampling would port directly, but its
jitter uses a lower square root of the weighted covariance that the CPU takes from an
eigen-decomposition and a QR factorisation whenever a block holds a semi-definite
covariance (routinely: a variable without spread, such as ``swe = 0`` in summer); such a
factor is not unique (the jitter of one variable may be drawn from another variable's
column), so a GPU implementation could not reproduce the CPU numbers.

Results equal the CPU kernels to 1e-10 in float64 (``tests/test_cuda.py``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from xldas._cuda import device_function, device_ops, launch, loop_ndim, numba_cuda, pad_loop
from xldas.errors import FilterError, ObservationError
from xldas.filters import _kernels as K

__all__ = ["GPU_METHODS", "check_gpu_method", "ensemble_block"]

#: filter names with a CUDA analysis
GPU_METHODS = ("enkf", "etkf")
_PURPOSE_ENKF = 11  # as xldas.filters.core._PURPOSE["enkf"]
_RANK = 3
JACOBI_SWEEPS = 60

# a module global (the simulator swaps the ``cuda`` module in kernels' globals); this
# module is imported only when a block function meets device arrays
cuda = numba_cuda()


# ------------------------------------------------------------- device helpers
@cuda.jit(device=True)
def _at(n, i):
    return i if n > 1 else 0


@cuda.jit(device=True)
def _screen(HE, y, R, gross, d, rinv):
    """Innovation ``d`` and ``rinv`` (0 = unused) of one pixel; returns 1 for a bad R.

    Same rules as :func:`xldas.filters._kernels.screen_observations` plus the variance
    check of :func:`xldas.filters.methods.prepare_observations`.
    """
    N = HE.shape[0]
    m = HE.shape[1]
    bad = 0
    for k in range(m):
        hb = 0.0
        for i in range(N):
            hb += HE[i, k]
        hb /= N
        yk = y[k]
        rk = R[k]
        present = math.isfinite(yk)
        if present and not rk > 0.0:
            bad = 1
        innov = yk - hb
        # (a bad variance is also left unused: the block raises after the kernel)
        valid = present and rk > 0.0 and math.isfinite(rk) and math.isfinite(hb)
        if valid and not math.isinf(gross):
            var = 0.0
            for i in range(N):
                var += (HE[i, k] - hb) ** 2
            var /= N - 1.0
            if not abs(innov) <= gross * math.sqrt(var + rk):
                valid = False
        if valid:
            d[k] = innov
            rinv[k] = 1.0 / rk
        else:
            d[k] = 0.0
            rinv[k] = 0.0
    return bad


@cuda.jit(device=True)
def _obs_anomalies(HE, infl, Y):
    N = HE.shape[0]
    for k in range(HE.shape[1]):
        hb = 0.0
        for i in range(N):
            hb += HE[i, k]
        hb /= N
        for i in range(N):
            Y[i, k] = infl * (HE[i, k] - hb)


@cuda.jit(device=True)
def _jacobi_eigen(A, V, sweeps):
    """Cyclic Jacobi: A <- diag(eigenvalues) (in place), V <- eigenvectors (columns)."""
    N = A.shape[0]
    total = 0.0
    for a in range(N):
        for b in range(N):
            V[a, b] = 1.0 if a == b else 0.0
            total += A[a, b] * A[a, b]
    tol = total * 1e-32
    for _ in range(sweeps):
        off = 0.0
        for a in range(N):
            for b in range(a + 1, N):
                off += A[a, b] * A[a, b]
        if off <= tol:
            break
        for p in range(N - 1):
            for q in range(p + 1, N):
                apq = A[p, q]
                if apq == 0.0:
                    continue
                theta = (A[q, q] - A[p, p]) / (2.0 * apq)
                t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for k in range(N):
                    akp = A[k, p]
                    akq = A[k, q]
                    A[k, p] = c * akp - s * akq
                    A[k, q] = s * akp + c * akq
                for k in range(N):
                    apk = A[p, k]
                    aqk = A[q, k]
                    A[p, k] = c * apk - s * aqk
                    A[q, k] = s * apk + c * aqk
                for k in range(N):
                    vkp = V[k, p]
                    vkq = V[k, q]
                    V[k, p] = c * vkp - s * vkq
                    V[k, q] = s * vkp + c * vkq
                A[p, q] = 0.0
                A[q, p] = 0.0


_relax = device_function(K._relax_col)
_philox = device_function(K.philox_normal)


@cuda.jit(device=True)
def _keep_if_unobserved(E, rinv, out):
    """Copy the forecast to ``out`` and return True when no observation is used."""
    for k in range(rinv.shape[0]):
        if rinv[k] > 0.0:
            return False
    for i in range(E.shape[0]):
        for j in range(E.shape[1]):
            out[i, j] = E[i, j]
    return True


@cuda.jit(device=True)
def _obs_space(Y, rinv, G, Vg, Q, lam):
    """Low-rank form of ``A = (N-1) I + Y R^-1 Y^T`` from the (m, m) matrix ``G``.

    With ``Ys = Y R^-1/2`` and ``G = Ys^T Ys = Vg diag(x) Vg^T`` (Jacobi), the columns
    ``q_l = Ys v_l`` (|q_l|^2 = x_l) give ``f(A) = f(N-1) I + sum_l (f(N-1+x_l) -
    f(N-1)) / x_l q_l q_l^T`` for any function ``f``. Writes ``Q`` (N, m) and the
    eigenvalues ``x`` into ``lam`` (m).
    """
    N = Y.shape[0]
    m = Y.shape[1]
    for k in range(m):
        for e in range(k, m):
            s = 0.0
            for a in range(N):
                s += Y[a, k] * Y[a, e]
            s *= math.sqrt(rinv[k]) * math.sqrt(rinv[e])
            G[k, e] = s
            G[e, k] = s
    _jacobi_eigen(G, Vg, JACOBI_SWEEPS)
    for e in range(m):
        lam[e] = max(G[e, e], 0.0)  # G is semi-definite: clip round-off
    for a in range(N):
        for e in range(m):
            s = 0.0
            for k in range(m):
                s += Y[a, k] * math.sqrt(rinv[k]) * Vg[k, e]
            Q[a, e] = s


@cuda.jit(device=True)
def _enkf(E, d, rinv, eps, infl, rtpp, rtps, out, Y, G, Vg, Q, vN, vm):
    """Stochastic EnKF of one pixel in observation space (= ``enkf_general``).

    ``x_i <- m + X'_i + sum_k h_k (d_k + eps_ik - Y_ik)`` with ``h = R^-1 Y^T A^-1 X'``
    per state element, ``A^-1`` in its low-rank form (:func:`_obs_space`); ``eps`` is
    flat (member-major, ``eps[i*m + k]``). O(N m (n + m)) per pixel, no (N, N) matrix.
    """
    N = E.shape[0]
    m = Y.shape[1]
    a = N - 1.0
    _obs_space(Y, rinv, G, Vg, Q, vm[0])
    for e in range(m):  # (f(a+x) - f(a)) / x for f = 1/x
        vm[0, e] = -1.0 / (a * (a + vm[0, e]))
    for j in range(E.shape[1]):
        mj = 0.0
        for i in range(N):
            mj += E[i, j]
        mj /= N
        for e in range(m):
            s = 0.0
            for b in range(N):
                s += Q[b, e] * infl * (E[b, j] - mj)
            vm[1, e] = vm[0, e] * s
        for b in range(N):  # z = A^-1 X'
            s = infl * (E[b, j] - mj) / a
            for e in range(m):
                s += Q[b, e] * vm[1, e]
            vN[0, b] = s
        for k in range(m):
            s = 0.0
            if rinv[k] > 0.0:
                for b in range(N):
                    s += vN[0, b] * Y[b, k]
            vm[2, k] = s * rinv[k]
        for i in range(N):
            acc = mj + infl * (E[i, j] - mj)
            for k in range(m):
                if rinv[k] > 0.0:
                    acc += vm[2, k] * (d[k] + eps[i * m + k] - Y[i, k])
            out[i, j] = acc
        _relax(E, out, j, rtpp, rtps)


@cuda.jit(device=True)
def _etkf(E, d, rinv, infl, rtpp, rtps, out, Y, G, Vg, Q, vN, vm):
    """ETKF (symmetric square root) of one pixel in observation space (= ``etkf_general``).

    ``T = A^-1/2 sqrt(N-1) + A^-1 Y R^-1 d 1^T`` in the low-rank form of
    :func:`_obs_space`, applied to each state element without forming ``T``.
    """
    N = E.shape[0]
    m = Y.shape[1]
    a = N - 1.0
    _obs_space(Y, rinv, G, Vg, Q, vm[0])
    for b in range(N):  # C d = Y R^-1 d
        s = 0.0
        for k in range(m):
            s += Y[b, k] * rinv[k] * d[k]
        vN[0, b] = s
    for e in range(m):
        x = vm[0, e]
        qc = 0.0
        for b in range(N):
            qc += Q[b, e] * vN[0, b]
        vm[1, e] = -1.0 / (a * (a + x)) * qc  # inverse: (f(a+x) - f(a)) / x, f = 1/x
        vm[0, e] = -1.0 / (math.sqrt(a + x) * (math.sqrt(a) + math.sqrt(a + x)))  # root
    for b in range(N):  # wbar = A^-1 C d
        s = vN[0, b] / a
        for e in range(m):
            s += Q[b, e] * vm[1, e]
        vN[1, b] = s
    for j in range(E.shape[1]):
        mj = 0.0
        for i in range(N):
            mj += E[i, j]
        mj /= N
        shift = 0.0
        for b in range(N):
            shift += infl * (E[b, j] - mj) * vN[1, b]
        for e in range(m):
            s = 0.0
            for b in range(N):
                s += Q[b, e] * infl * (E[b, j] - mj)
            vm[2, e] = vm[0, e] * s
        for i in range(N):
            acc = mj + shift + infl * (E[i, j] - mj)
            for e in range(m):
                acc += Q[i, e] * vm[2, e]
            out[i, j] = acc
        _relax(E, out, j, rtpp, rtps)


# ------------------------------------------------------------------- kernels
@lru_cache(maxsize=1)
def _kernels():
    @cuda.jit
    def enkf_kernel(
        E,
        HE,
        y,
        R,
        pix,
        seed,
        cycle,
        gross,
        centred,
        infl,
        rtpp,
        rtps,
        out,
        bad,
        d,
        rinv,
        noise,
        Y,
        G,
        Vg,
        Q,
        vN,
        vm,
    ):
        p = cuda.grid(1)
        n0, n1, n2 = bad.shape
        if p >= n0 * n1 * n2:
            return
        i0 = p // (n1 * n2)
        r = p - i0 * (n1 * n2)
        i1 = r // n2
        i2 = r - i1 * n2
        Ep = E[_at(E.shape[0], i0), _at(E.shape[1], i1), _at(E.shape[2], i2)]
        Hp = HE[_at(HE.shape[0], i0), _at(HE.shape[1], i1), _at(HE.shape[2], i2)]
        yp = y[_at(y.shape[0], i0), _at(y.shape[1], i1), _at(y.shape[2], i2)]
        Rp = R[_at(R.shape[0], i0), _at(R.shape[1], i1), _at(R.shape[2], i2)]
        ix = pix[_at(pix.shape[0], i0), _at(pix.shape[1], i1), _at(pix.shape[2], i2)]
        dp = d[:, p]
        rp = rinv[:, p]
        bad[i0, i1, i2] = _screen(Hp, yp, Rp, gross, dp, rp)
        N = Hp.shape[0]
        m = Hp.shape[1]
        z = noise[:, p]
        _philox(ix, seed, cycle, _PURPOSE_ENKF, z, z)
        for k in range(m):  # centre over members, scale by the error std
            zm = 0.0
            if centred:
                for i in range(N):
                    zm += z[i * m + k]
                zm /= N
            sd = 1.0 / math.sqrt(rp[k]) if rp[k] > 0.0 else 0.0
            for i in range(N):
                z[i * m + k] = (z[i * m + k] - zm) * sd
        Op = out[i0, i1, i2]
        if _keep_if_unobserved(Ep, rp, Op):
            return
        Yp = Y[:, :, p]
        _obs_anomalies(Hp, infl, Yp)
        _enkf(
            Ep,
            dp,
            rp,
            z,
            infl,
            rtpp,
            rtps,
            Op,
            Yp,
            G[:, :, p],
            Vg[:, :, p],
            Q[:, :, p],
            vN[:, :, p],
            vm[:, :, p],
        )

    @cuda.jit
    def etkf_kernel(E, HE, y, R, gross, infl, rtpp, rtps, out, bad, d, rinv, Y, G, Vg, Q, vN, vm):
        p = cuda.grid(1)
        n0, n1, n2 = bad.shape
        if p >= n0 * n1 * n2:
            return
        i0 = p // (n1 * n2)
        r = p - i0 * (n1 * n2)
        i1 = r // n2
        i2 = r - i1 * n2
        Ep = E[_at(E.shape[0], i0), _at(E.shape[1], i1), _at(E.shape[2], i2)]
        Hp = HE[_at(HE.shape[0], i0), _at(HE.shape[1], i1), _at(HE.shape[2], i2)]
        yp = y[_at(y.shape[0], i0), _at(y.shape[1], i1), _at(y.shape[2], i2)]
        Rp = R[_at(R.shape[0], i0), _at(R.shape[1], i1), _at(R.shape[2], i2)]
        dp = d[:, p]
        rp = rinv[:, p]
        bad[i0, i1, i2] = _screen(Hp, yp, Rp, gross, dp, rp)
        Op = out[i0, i1, i2]
        if _keep_if_unobserved(Ep, rp, Op):
            return
        Yp = Y[:, :, p]
        _obs_anomalies(Hp, infl, Yp)
        _etkf(
            Ep,
            dp,
            rp,
            infl,
            rtpp,
            rtps,
            Op,
            Yp,
            G[:, :, p],
            Vg[:, :, p],
            Q[:, :, p],
            vN[:, :, p],
            vm[:, :, p],
        )

    return enkf_kernel, etkf_kernel


def check_gpu_method(filt) -> str:
    """Name of ``filt`` if it has a GPU analysis, else :class:`~xldas.errors.FilterError`."""
    name = getattr(filt, "name", type(filt).__name__)
    if name not in GPU_METHODS:
        raise FilterError(
            f"{type(filt).__name__} has no GPU analysis (GPU forms: {', '.join(GPU_METHODS)}); "
            "move the ensemble to the host first: xldas.compute.to_backend(ens, 'numpy')"
        )
    return name


def ensemble_block(E, HE, y, R, pix, *, filt, seed, cycle):
    """GPU analysis of one block: EnKF or ETKF per pixel, arrays on the device.

    Parameters
    ----------
    E : (..., N, n) forecast ensemble; HE : (..., N, m) predicted observations;
    y : (..., m) observations (NaN = none); R : (..., m) error variances;
    pix : (...) int64 pixel keys of the random numbers (host or device).
    filt : :class:`~xldas.filters.EnKF` or :class:`~xldas.filters.ETKF`.
    seed, cycle : key of the EnKF's observation perturbations.

    ``...`` are at most three loop dimensions broadcasting against each other. Returns
    the analysis ensemble as a device array of the kind of ``E`` (CuPy in, CuPy out).

    Raises
    ------
    FilterError
        ``filt`` has no GPU form (see the module docstring).
    ObservationError
        a present observation has a missing or non-positive error variance.
    """
    name = check_gpu_method(filt)
    ops = device_ops(E, HE, y, R, pix)
    Ed, Hd, yd, Rd = (
        pad_loop(a, ops, c, _RANK, np.float64) for a, c in ((E, 2), (HE, 2), (y, 1), (R, 1))
    )
    sh = [tuple(a.shape) for a in (Ed, Hd, yd, Rd)]
    N, n = sh[0][-2:]
    m = sh[1][-1]
    loops = [s[:_RANK] for s in sh]
    if name == "enkf":
        pixd = pad_loop(pix, ops, 0, _RANK, np.int64)
        loops.append(tuple(pixd.shape))
    loop = np.broadcast_shapes(*loops)
    P = int(np.prod(loop))
    out = ops.empty((*loop, N, n), np.float64)
    bad = ops.empty(loop, np.int8)
    d = ops.empty((m, max(P, 1)), np.float64)
    rinv = ops.empty((m, max(P, 1)), np.float64)
    work = (
        ops.empty((N, m, P), np.float64),  # Y: observation anomalies
        ops.empty((m, m, P), np.float64),  # G
        ops.empty((m, m, P), np.float64),  # its eigenvectors
        ops.empty((N, m, P), np.float64),  # Q
        ops.empty((2, N, P), np.float64),
        ops.empty((3, m, P), np.float64),
    )
    enkf_kernel, etkf_kernel = _kernels()
    a = (float(filt.inflation), float(filt.rtpp), float(filt.rtps))
    gross = float(filt.gross_error)
    if P and name == "enkf":
        noise = ops.empty((N * m, P), np.float64)
        args = (int(seed), int(cycle), gross, bool(filt.centred), *a)
        launch(enkf_kernel, P, Ed, Hd, yd, Rd, pixd, *args, out, bad, d, rinv, noise, *work)
    elif P:
        launch(etkf_kernel, P, Ed, Hd, yd, Rd, gross, *a, out, bad, d, rinv, *work)
    if P and ops.any(bad):
        raise ObservationError(
            "observation-error variance R is missing (NaN) or not positive for a present "
            "observation"
        )
    lead = max(loop_ndim(x, c) for x, c in ((E, 2), (HE, 2), (y, 1), (R, 1), (pix, 0)))
    drop = _RANK - lead
    return out.reshape(tuple(out.shape)[drop:]) if drop else out
