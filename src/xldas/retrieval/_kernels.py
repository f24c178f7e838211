"""Retrieval kernels: inversions of the physics forward models, SWI filter, trend tests.

Plain numbers and arrays only (no xarray). The forward models are NOT re-derived here: the
numba kernels call the scalar ``njit`` functions of :mod:`xldas.physics` (water cloud
canopy terms, Oh 2004, Dubois 1995, Dobson, Mironov, Fresnel, rough reflectivity, tau-omega),
and the NumPy references call their NumPy forms (``*_np``).

Each gufunc has a NumPy reference (``*_np``) that the tests compare it with:

* :func:`sar_invert_kernel` — water cloud model with a linear, Oh 2004 or Dubois 1995 soil
  term, solved for soil moisture by Brent's method (NumPy reference: vectorised bisection).
* :func:`radiometer_invert_kernel` — tau-omega SCA-V / SCA-H (Brent on θ) and DCA (Brent on
  τ around an inner SCA-V solve), NumPy reference: vectorised bisection / grid + bisection.
* :func:`swi_kernel` — exponential (SWI) filter of Albergel et al. (2008).
* :func:`mann_kendall_sen_kernel` — Mann–Kendall test with tie correction and Theil–Sen slope
  with Sen's (1968) confidence interval.

Retrieval flags are bit fields (``FLAG_*``), combined with ``|``.
"""

from __future__ import annotations

import math

import numpy as np

from xldas._numba import gufunc, njit
from xldas.physics import _backscatter_kernels as BK
from xldas.physics import _microwave_kernels as MK

# --------------------------------------------------------------------------- flags
FLAG_NO_DATA = 1  #: an input is missing (NaN)
FLAG_VEGETATION = 2  #: vegetation term ≥ observation (SAR) / VWC above the retrieval limit
FLAG_WET = 4  #: observation beyond the wet end of the soil-moisture range
FLAG_DRY = 8  #: observation beyond the dry end of the soil-moisture range
FLAG_VALIDITY = 16  #: incidence angle or roughness outside the soil model's validity
FLAG_FROZEN = 32  #: frozen soil (T_eff below 273.15 K)
FLAG_WATER = 64  #: open water fraction above the limit, or TB below the wet bound
FLAG_NO_CONVERGENCE = 128  #: DCA found no root; the best fit is returned

FLAG_MEANINGS = {
    FLAG_NO_DATA: "no_data",
    FLAG_VEGETATION: "vegetation",
    FLAG_WET: "beyond_wet_end",
    FLAG_DRY: "beyond_dry_end",
    FLAG_VALIDITY: "outside_model_validity",
    FLAG_FROZEN: "frozen_soil",
    FLAG_WATER: "open_water",
    FLAG_NO_CONVERGENCE: "no_convergence",
}

#: soil models of the SAR inversion
SOIL_LINEAR, SOIL_OH2004, SOIL_DUBOIS = 0, 1, 2
#: dielectric models
DIEL_DOBSON, DIEL_MIRONOV = 0, 1
#: radiometer algorithms
ALG_SCAV, ALG_SCAH, ALG_DCA = 0, 1, 2

XTOL = 1e-10
MAXITER = 100
N_BISECT = 60  # NumPy reference: 2^-60 of the bracket


# ------------------------------------------------------------------ Brent root finder
@njit
def brent(f, a, b, fa, fb, p):
    """Root of ``f(x, p)`` in [a, b] with ``fa``, ``fb`` of opposite sign (Brent 1973)."""
    c, fc = a, fa
    d = e = b - a
    for _ in range(MAXITER):
        if (fb > 0.0) == (fc > 0.0):
            c, fc = a, fa
            d = e = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol = 2.0 * 2.2e-16 * abs(b) + 0.5 * XTOL
        m = 0.5 * (c - b)
        if abs(m) <= tol or fb == 0.0:
            return b
        if abs(e) >= tol and abs(fa) > abs(fb):
            s = fb / fa
            if a == c:
                pp = 2.0 * m * s
                q = 1.0 - s
            else:
                q = fa / fc
                r = fb / fc
                pp = s * (2.0 * m * q * (q - r) - (b - a) * (r - 1.0))
                q = (q - 1.0) * (r - 1.0) * (s - 1.0)
            if pp > 0.0:
                q = -q
            else:
                pp = -pp
            if 2.0 * pp < min(3.0 * m * q - abs(tol * q), abs(e * q)):
                e = d
                d = pp / q
            else:
                d = e = m
        else:
            d = e = m
        a, fa = b, fb
        b = b + d if abs(d) > tol else b + (tol if m > 0.0 else -tol)
        fb = f(b, p)
    return b


def bisect_np(f, lo, hi, f_lo):
    """Vectorised bisection: root of ``f(x)`` between arrays ``lo`` and ``hi`` (NumPy)."""
    lo, hi, f_lo = (np.array(v, dtype=float) for v in np.broadcast_arrays(lo, hi, f_lo))
    for _ in range(N_BISECT):
        mid = 0.5 * (lo + hi)
        fm = f(mid)
        same = np.sign(fm) == np.sign(f_lo)
        lo = np.where(same, mid, lo)
        f_lo = np.where(same, fm, f_lo)
        hi = np.where(same, hi, mid)
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------- SAR inversion
@njit
def sar_soil_db(sm, p):
    """Bare-soil VV backscatter (dB) of the chosen soil model at soil moisture ``sm``."""
    model, ks, inc, c, d, sand, clay, rho, t_c, f_ghz, diel = p
    if model == SOIL_LINEAR:
        return c + d * sm
    if model == SOIL_OH2004:
        return BK.to_db(BK.oh2004_scalar(sm, ks, inc)[0])
    if diel == DIEL_MIRONOV:
        eps = MK.mironov_scalar(sm, clay, f_ghz)
    else:
        eps = MK.dobson_scalar(sm, sand, clay, f_ghz, t_c, rho)
    return BK.to_db(BK.dubois1995_scalar(eps.real, ks, inc, f_ghz)[0])


@njit
def _sar_residual(sm, p):
    return sar_soil_db(sm, p[:-1]) - p[-1]


@njit
def sar_invert_scalar(
    sigma0_db,
    veg1,
    veg2,
    inc,
    a,
    b,
    c,
    d,
    ks,
    sand,
    clay,
    rho,
    t_c,
    f_ghz,
    sm_lo,
    sm_hi,
    model,
    diel,
):
    """Water cloud inversion of one pixel: (soil moisture, flag)."""
    if math.isnan(sigma0_db + veg1 + veg2 + inc + a + b + ks + sm_lo + sm_hi):
        return math.nan, FLAG_NO_DATA
    veg, gamma2 = BK.wcm_parts(veg1, veg2, inc, a, b)
    num = BK.from_db(sigma0_db) - veg
    if num <= 0.0:
        return math.nan, FLAG_VEGETATION
    soil = BK.to_db(num / gamma2)
    if model == SOIL_LINEAR:
        sm = (soil - c) / d
        if sm < sm_lo:
            return math.nan, FLAG_DRY
        if sm > sm_hi:
            return math.nan, FLAG_WET
        return sm, 0
    if model == SOIL_OH2004:
        if inc < 10.0 or inc > 70.0 or ks < 0.13 or ks > 6.98:
            return math.nan, FLAG_VALIDITY
    elif inc < 30.0 or ks > 2.5:
        return math.nan, FLAG_VALIDITY
    p = (float(model), ks, inc, c, d, sand, clay, rho, t_c, f_ghz, float(diel), soil)
    f_lo = _sar_residual(sm_lo, p)
    f_hi = _sar_residual(sm_hi, p)
    if f_lo > 0.0:  # soil backscatter below the model at the dry end
        return math.nan, FLAG_DRY
    if f_hi < 0.0:
        return math.nan, FLAG_WET
    return brent(_sar_residual, sm_lo, sm_hi, f_lo, f_hi, p), 0


@gufunc(
    ["void(" + ", ".join(["float64"] * 16) + ", int64, int64, float64[:], uint8[:])"],
    "(),(),(),(),(),(),(),(),(),(),(),(),(),(),(),(),(),()->(),()",
)
def sar_invert_kernel(
    sigma0_db,
    veg1,
    veg2,
    inc,
    a,
    b,
    c,
    d,
    ks,
    sand,
    clay,
    rho,
    t_c,
    f_ghz,
    sm_lo,
    sm_hi,
    model,
    diel,
    sm,
    flag,
):
    sm[0], flag[0] = sar_invert_scalar(
        sigma0_db,
        veg1,
        veg2,
        inc,
        a,
        b,
        c,
        d,
        ks,
        sand,
        clay,
        rho,
        t_c,
        f_ghz,
        sm_lo,
        sm_hi,
        model,
        diel,
    )


def _sar_soil_db_np(sm, model, ks, inc, c, d, sand, clay, rho, t_c, f_ghz, diel):
    if model == SOIL_LINEAR:
        return c + d * sm
    if model == SOIL_OH2004:
        return BK.oh2004_np(sm, ks, inc)[0]
    if diel == DIEL_MIRONOV:
        eps = MK.mironov_np(sm, clay, f_ghz)
    else:
        eps = MK.dobson_np(sm, sand, clay, f_ghz, t_c, rho)
    return BK.dubois1995_np(eps, ks, inc, f_ghz)[0]


def sar_invert_np(
    sigma0_db,
    veg1,
    veg2,
    inc,
    a,
    b,
    c,
    d,
    ks,
    sand,
    clay,
    rho,
    t_c,
    f_ghz,
    sm_lo,
    sm_hi,
    model,
    diel,
):
    """NumPy reference of :func:`sar_invert_kernel` (vectorised bisection)."""
    model, diel = int(np.ravel(model)[0]), int(np.ravel(diel)[0])
    args = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (sigma0_db, veg1, veg2, inc, a, b, c, d, ks))
    )
    sigma0_db, veg1, veg2, inc, a, b, c, d, ks = args
    shape = sigma0_db.shape
    sand, clay, rho, t_c, f_ghz, sm_lo, sm_hi = (
        np.broadcast_to(np.asarray(v, dtype=float), shape)
        for v in (sand, clay, rho, t_c, f_ghz, sm_lo, sm_hi)
    )
    flag = np.zeros(shape, dtype=np.uint8)
    nodata = np.isnan(sigma0_db + veg1 + veg2 + inc + a + b + ks + sm_lo + sm_hi)
    veg, gamma2 = BK._wcm_parts_np(veg1, veg2, inc, a, b)
    num = 10.0 ** (sigma0_db / 10.0) - veg
    vegflag = ~nodata & ~(num > 0.0)
    soil = BK._db_np(np.where(num > 0.0, num / gamma2, np.nan))
    if model == SOIL_LINEAR:
        sm = (soil - c) / d
    else:
        if model == SOIL_OH2004:
            bad = (inc < 10.0) | (inc > 70.0) | (ks < 0.13) | (ks > 6.98)
        else:
            bad = (inc < 30.0) | (ks > 2.5)
        bad &= ~nodata & ~vegflag
        flag[bad] = FLAG_VALIDITY

        def resid(x):
            return (
                _sar_soil_db_np(x, model, ks, inc, c, d, sand, clay, rho, t_c, f_ghz, diel) - soil
            )

        f_lo, f_hi = resid(sm_lo), resid(sm_hi)
        sm = bisect_np(resid, sm_lo, sm_hi, f_lo)
        sm = np.where(bad, np.nan, sm)
        ok = ~nodata & ~vegflag & ~bad
        sm = np.where(ok & (f_lo > 0.0), -np.inf, sm)  # mark for the range test below
        sm = np.where(ok & (f_hi < 0.0), np.inf, sm)
    dry = ~nodata & ~vegflag & (sm < sm_lo)
    wet = ~nodata & ~vegflag & (sm > sm_hi)
    flag[dry] = FLAG_DRY
    flag[wet] = FLAG_WET
    flag[vegflag] = FLAG_VEGETATION
    flag[nodata] = FLAG_NO_DATA
    sm = np.where(flag == 0, sm, np.nan)
    return sm, flag


# --------------------------------------------------------------- radiometer inversion
@njit
def radiometer_tb(sm, tau, p):
    """(TB_h, TB_v) of the tau-omega model at soil moisture ``sm`` and optical depth ``tau``."""
    t_eff, omega, h, inc, sand, clay, rho, f_ghz, diel = p
    if diel == DIEL_MIRONOV:
        eps = MK.mironov_scalar(sm, clay, f_ghz)
    else:
        eps = MK.dobson_scalar(sm, sand, clay, f_ghz, t_eff - 273.15, rho)
    gh, gv = MK.fresnel_scalar(eps, inc)
    rh = MK.rough_scalar(gh, gv, h, 0.0, 2.0, inc)
    rv = MK.rough_scalar(gv, gh, h, 0.0, 2.0, inc)
    gamma = MK.transmissivity(tau, inc)
    return (
        MK.tb_from_reflectivity(rh, t_eff, t_eff, omega, gamma),
        MK.tb_from_reflectivity(rv, t_eff, t_eff, omega, gamma),
    )


@njit
def _sca_residual(sm, q):
    # q = (tau, pol, tb_obs, *p)
    tb = radiometer_tb(sm, q[0], q[3:])
    return (tb[1] if q[1] == 1.0 else tb[0]) - q[2]


@njit
def sca_scalar(tb_obs, pol, tau, p, sm_lo, sm_hi, nedt):
    """Single-channel inversion: (soil moisture, flag). ``pol`` 0 = H, 1 = V."""
    q = (tau, float(pol), tb_obs) + p  # noqa: RUF005 - numba has no tuple unpacking
    f_lo = _sca_residual(sm_lo, q)
    if f_lo <= 0.0:  # TB_obs at or above the dry end
        return sm_lo, (FLAG_DRY if f_lo < -nedt else 0)
    f_hi = _sca_residual(sm_hi, q)
    if f_hi >= 0.0:  # TB_obs at or below the wet end
        return (sm_hi, 0) if f_hi <= nedt else (math.nan, FLAG_WATER)
    return brent(_sca_residual, sm_lo, sm_hi, f_lo, f_hi, q), 0


@njit
def _dca_residual(tau, r):
    # r = (tb_v, tb_h, sm_lo, sm_hi, nedt, *p): H-pol misfit after a V-pol solve at tau
    p = r[5:]
    sm, _ = sca_scalar(r[0], 1, tau, p, r[2], r[3], math.inf)  # bounds, never NaN: g continuous
    if math.isnan(sm):
        return math.nan
    return radiometer_tb(sm, tau, p)[0] - r[1]


DCA_TAU_GRID = np.linspace(0.0, 2.0, 21)


@njit
def dca_scalar(tb_v, tb_h, p, sm_lo, sm_hi, nedt):
    """Dual-channel inversion for (soil moisture, tau, flag)."""
    r = (tb_v, tb_h, sm_lo, sm_hi, nedt) + p  # noqa: RUF005
    best, best_tau = math.inf, math.nan
    g_prev, t_prev = math.nan, math.nan
    for t in DCA_TAU_GRID:
        g = _dca_residual(t, r)
        if not math.isnan(g):
            if abs(g) < best:
                best, best_tau = abs(g), t
            if not math.isnan(g_prev) and (g > 0.0) != (g_prev > 0.0):
                tau = brent(_dca_residual, t_prev, t, g_prev, g, r)
                sm, flag = sca_scalar(tb_v, 1, tau, p, sm_lo, sm_hi, nedt)
                return sm, tau, flag
        g_prev, t_prev = g, t
    if math.isnan(best_tau):
        return math.nan, math.nan, FLAG_WATER
    sm, flag = sca_scalar(tb_v, 1, best_tau, p, sm_lo, sm_hi, nedt)
    return sm, best_tau, flag | FLAG_NO_CONVERGENCE


@njit
def radiometer_invert_scalar(
    tb_v, tb_h, t_eff, tau, vwc, omega, h, inc, sand, clay, rho, f_ghz, sm_lo, sm_hi,
    nedt, water_fraction, vwc_max, water_max, alg, diel,
):  # fmt: skip
    """One pixel of SCA-V, SCA-H or DCA: (soil moisture, tau, flag)."""
    tb = tb_h if alg == ALG_SCAH else tb_v
    need = tb + t_eff + omega + h + inc + sm_lo + sm_hi
    if alg == ALG_DCA:
        need += tb_h
    else:
        need += tau
    if math.isnan(need):
        return math.nan, math.nan, FLAG_NO_DATA
    if t_eff < 273.15:
        return math.nan, math.nan, FLAG_FROZEN
    if water_fraction > water_max:
        return math.nan, math.nan, FLAG_WATER
    p = (t_eff, omega, h, inc, sand, clay, rho, f_ghz, float(diel))
    veg = FLAG_VEGETATION if vwc > vwc_max else 0
    if alg == ALG_DCA:
        sm, tau_r, flag = dca_scalar(tb_v, tb_h, p, sm_lo, sm_hi, nedt)
    else:
        sm, flag = sca_scalar(tb, 1 if alg == ALG_SCAV else 0, tau, p, sm_lo, sm_hi, nedt)
        tau_r = tau
    return sm, tau_r, flag | veg


@gufunc(
    ["void(" + ", ".join(["float64"] * 18) + ", int64, int64, float64[:], float64[:], uint8[:])"],
    "(),(),(),(),(),(),(),(),(),(),(),(),(),(),(),(),(),(),(),()->(),(),()",
)
def radiometer_invert_kernel(
    tb_v, tb_h, t_eff, tau, vwc, omega, h, inc, sand, clay, rho, f_ghz, sm_lo, sm_hi,
    nedt, water_fraction, vwc_max, water_max, alg, diel, sm, tau_out, flag,
):  # fmt: skip
    sm[0], tau_out[0], flag[0] = radiometer_invert_scalar(
        tb_v, tb_h, t_eff, tau, vwc, omega, h, inc, sand, clay, rho, f_ghz, sm_lo, sm_hi,
        nedt, water_fraction, vwc_max, water_max, alg, diel,
    )  # fmt: skip


def radiometer_tb_np(sm, tau, t_eff, omega, h, inc, sand, clay, rho, f_ghz, diel):
    """NumPy form of :func:`radiometer_tb` (through the physics NumPy references)."""
    if diel == DIEL_MIRONOV:
        eps = MK.mironov_np(sm, clay, f_ghz)
    else:
        eps = MK.dobson_np(sm, sand, clay, f_ghz, t_eff - 273.15, rho)
    return MK.tau_omega_np(eps, t_eff, t_eff, tau, omega, h, inc, 0.0, 2.0, 2.0)


def _sca_np(tb_obs, pol, tau, fwd, sm_lo, sm_hi, nedt):
    def resid(x):
        return fwd(x, tau)[pol] - tb_obs

    f_lo, f_hi = resid(sm_lo), resid(sm_hi)
    sm = bisect_np(resid, sm_lo, sm_hi, f_lo)
    flag = np.zeros(np.shape(sm), dtype=np.uint8)
    dry = f_lo <= 0.0
    wet = ~dry & (f_hi >= 0.0)
    sm = np.where(dry, sm_lo, sm)
    flag = np.where(dry & (f_lo < -nedt), FLAG_DRY, flag)
    sm = np.where(wet, np.where(f_hi <= nedt, sm_hi, np.nan), sm)
    flag = np.where(wet & (f_hi > nedt), FLAG_WATER, flag)
    return sm, flag.astype(np.uint8)


def radiometer_invert_np(
    tb_v, tb_h, t_eff, tau, vwc, omega, h, inc, sand, clay, rho, f_ghz, sm_lo, sm_hi,
    nedt, water_fraction, vwc_max, water_max, alg, diel,
):  # fmt: skip
    """NumPy reference of :func:`radiometer_invert_kernel` (bisection; DCA: τ grid + bisection)."""
    alg, diel = int(np.ravel(alg)[0]), int(np.ravel(diel)[0])
    arrs = np.broadcast_arrays(
        *(
            np.asarray(v, dtype=float)
            for v in (
                tb_v,
                tb_h,
                t_eff,
                tau,
                vwc,
                omega,
                h,
                inc,
                sand,
                clay,
                rho,
                f_ghz,
                sm_lo,
                sm_hi,
                nedt,
                water_fraction,
                vwc_max,
                water_max,
            )
        )
    )
    tb_v, tb_h, t_eff, tau, vwc, omega, h, inc, sand, clay, rho, f_ghz = arrs[:12]
    sm_lo, sm_hi, nedt, water_fraction, vwc_max, water_max = arrs[12:]
    # keep invalid pixels harmless inside the vectorised solve
    t_safe = np.where(np.isnan(t_eff) | (t_eff < 273.15), 300.0, t_eff)

    def fwd(x, tau_):
        return radiometer_tb_np(x, tau_, t_safe, omega, h, inc, sand, clay, rho, f_ghz, diel)

    if alg == ALG_DCA:
        grid = DCA_TAU_GRID

        def g_of(tau_):
            sm_, _ = _sca_np(tb_v, 1, tau_, fwd, sm_lo, sm_hi, np.inf)
            g = fwd(np.where(np.isnan(sm_), 0.5 * (sm_lo + sm_hi), sm_), tau_)[0] - tb_h
            return np.where(np.isnan(sm_), np.nan, g)

        gs = np.stack([g_of(np.full(tb_v.shape, t)) for t in grid])
        sign_change = (np.sign(gs[1:]) != np.sign(gs[:-1])) & ~np.isnan(gs[1:] + gs[:-1])
        has_root = sign_change.any(axis=0)
        k = np.argmax(sign_change, axis=0)
        t_lo, t_hi = grid[k], grid[k + 1]
        g_lo = np.take_along_axis(gs, k[None], axis=0)[0]
        tau_root = bisect_np(g_of, t_lo, t_hi, g_lo)
        with np.errstate(invalid="ignore"):
            kbest = np.argmin(np.where(np.isnan(gs), np.inf, np.abs(gs)), axis=0)
        tau_best = np.where(np.isnan(gs).all(axis=0), np.nan, grid[kbest])
        tau_r = np.where(has_root, tau_root, tau_best)
        sm, flag = _sca_np(tb_v, 1, np.where(np.isnan(tau_r), 0.0, tau_r), fwd, sm_lo, sm_hi, nedt)
        flag = np.where(~has_root, flag | FLAG_NO_CONVERGENCE, flag)
        nan_all = np.isnan(tau_r)
        sm = np.where(nan_all, np.nan, sm)
        flag = np.where(nan_all, FLAG_WATER, flag)
        need = tb_v + tb_h
    else:
        pol = 1 if alg == ALG_SCAV else 0
        tb = tb_v if pol == 1 else tb_h
        sm, flag = _sca_np(tb, pol, tau, fwd, sm_lo, sm_hi, nedt)
        tau_r = tau.copy()
        need = tb + tau
    flag = np.where(vwc > vwc_max, flag | FLAG_VEGETATION, flag)
    need = need + t_eff + omega + h + inc + sm_lo + sm_hi
    for cond, fl in (
        (water_fraction > water_max, FLAG_WATER),
        (t_eff < 273.15, FLAG_FROZEN),
        (np.isnan(need), FLAG_NO_DATA),
    ):
        flag = np.where(cond, fl, flag)
        sm = np.where(cond, np.nan, sm)
        tau_r = np.where(cond, np.nan, tau_r)
    return sm, tau_r, flag.astype(np.uint8)


# ------------------------------------------------------------------------ SWI filter
@gufunc(["void(float64[:], float64[:], float64, float64[:])"], "(t),(t),()->(t)")
def swi_kernel(t_days, ms, t_char, out):
    """Exponential filter SWI (Albergel et al. 2008); NaN observations are skipped."""
    k = math.nan
    swi = math.nan
    t_last = math.nan
    for i in range(ms.shape[0]):
        if math.isnan(ms[i]) or math.isnan(t_days[i]):
            out[i] = swi
            continue
        if math.isnan(k):
            k = 1.0
            swi = ms[i]
        else:
            k = k / (k + math.exp(-(t_days[i] - t_last) / t_char))
            swi = swi + k * (ms[i] - swi)
        t_last = t_days[i]
        out[i] = swi


def swi_np(t_days, ms, t_char):
    """NumPy reference of :func:`swi_kernel` (loop over time, vectorised over pixels)."""
    ms = np.asarray(ms, dtype=float)
    t_days = np.broadcast_to(np.asarray(t_days, dtype=float), ms.shape)
    t_char = np.broadcast_to(np.asarray(t_char, dtype=float), ms.shape[:-1])
    out = np.full(ms.shape, np.nan)
    k = np.full(ms.shape[:-1], np.nan)
    swi = np.full(ms.shape[:-1], np.nan)
    t_last = np.full(ms.shape[:-1], np.nan)
    for i in range(ms.shape[-1]):
        m, t = ms[..., i], t_days[..., i]
        valid = ~np.isnan(m) & ~np.isnan(t)
        first = valid & np.isnan(k)
        later = valid & ~np.isnan(k)
        with np.errstate(invalid="ignore"):
            k_new = k / (k + np.exp(-(t - t_last) / t_char))
        swi = np.where(first, m, np.where(later, swi + k_new * (m - swi), swi))
        k = np.where(first, 1.0, np.where(later, k_new, k))
        t_last = np.where(valid, t, t_last)
        out[..., i] = swi
    return out


# --------------------------------------------------------- Mann–Kendall and Theil–Sen
@njit
def _tie_term(v):
    """Σ t(t−1)(2t+5) over tie groups of the sorted array ``v``."""
    total, run = 0.0, 1
    for i in range(1, v.shape[0] + 1):
        if i < v.shape[0] and v[i] == v[i - 1]:
            run += 1
        else:
            if run > 1:
                total += run * (run - 1) * (2 * run + 5)
            run = 1
    return total


@njit
def mann_kendall_sen_scalar(x, t, z_crit):
    """(slope, intercept, S, var_S, Z, p, slope_lo, slope_hi, n) of one series."""
    n_all = x.shape[0]
    xs = np.empty(n_all)
    ts = np.empty(n_all)
    n = 0
    for i in range(n_all):
        if not (math.isnan(x[i]) or math.isnan(t[i])):
            xs[n] = x[i]
            ts[n] = t[i]
            n += 1
    nan = math.nan
    if n < 3:
        return nan, nan, nan, nan, nan, nan, nan, nan, float(n)
    xs, ts = xs[:n], ts[:n]
    s = 0.0
    slopes = np.empty(n * (n - 1) // 2)
    m = 0
    for i in range(n - 1):
        for j in range(i + 1, n):
            dx = xs[j] - xs[i]
            dt = ts[j] - ts[i]
            if dt != 0.0:
                s += (1.0 if dx > 0 else (-1.0 if dx < 0 else 0.0)) * (1.0 if dt > 0 else -1.0)
                slopes[m] = dx / dt
                m += 1
    slopes = np.sort(slopes[:m])
    var_s = (n * (n - 1.0) * (2.0 * n + 5.0) - _tie_term(np.sort(xs))) / 18.0
    if s > 0:
        z = (s - 1.0) / math.sqrt(var_s)
    elif s < 0:
        z = (s + 1.0) / math.sqrt(var_s)
    else:
        z = 0.0
    p = math.erfc(abs(z) / math.sqrt(2.0))
    if m == 0:
        return nan, nan, s, var_s, z, p, nan, nan, float(n)
    slope = 0.5 * (slopes[(m - 1) // 2] + slopes[m // 2])
    intercept = np.median(xs) - slope * np.median(ts)
    # Sen (1968) eq. 2.6 with ties in both x and t (as scipy.stats.theilslopes)
    sig = math.sqrt(
        (n * (n - 1.0) * (2.0 * n + 5.0) - _tie_term(np.sort(xs)) - _tie_term(np.sort(ts))) / 18.0
    )
    ru = min(int(np.round((m + z_crit * sig) / 2.0)), m - 1)
    rl = max(int(np.round((m - z_crit * sig) / 2.0)) - 1, 0)
    return slope, intercept, s, var_s, z, p, slopes[rl], slopes[ru], float(n)


@gufunc(
    ["void(float64[:], float64[:], float64" + ", float64[:]" * 9 + ")"],
    "(t),(t),()->(),(),(),(),(),(),(),(),()",
)
def mann_kendall_sen_kernel(x, t, z_crit, slope, icpt, s, var_s, z, p, lo, hi, n):
    r = mann_kendall_sen_scalar(x, t, z_crit)
    slope[0], icpt[0], s[0], var_s[0], z[0], p[0], lo[0], hi[0], n[0] = r


def mann_kendall_sen_np(x, t, z_crit):
    """NumPy reference of :func:`mann_kendall_sen_kernel` (pairwise arrays, no numba)."""
    x = np.asarray(x, dtype=float)
    t = np.broadcast_to(np.asarray(t, dtype=float), x.shape)
    flat_x = x.reshape(-1, x.shape[-1])
    flat_t = t.reshape(-1, t.shape[-1])
    out = np.full((flat_x.shape[0], 9), np.nan)

    def tie_term(v):
        _, c = np.unique(v, return_counts=True)
        return float(np.sum(c * (c - 1.0) * (2.0 * c + 5.0)))

    for k in range(flat_x.shape[0]):  # reference only: loops over series
        ok = ~np.isnan(flat_x[k]) & ~np.isnan(flat_t[k])
        xs, ts = flat_x[k][ok], flat_t[k][ok]
        n = xs.size
        out[k, 8] = n
        if n < 3:
            continue
        i, j = np.triu_indices(n, 1)
        dx, dt = xs[j] - xs[i], ts[j] - ts[i]
        keep = dt != 0
        s = float(np.sum(np.sign(dx[keep]) * np.sign(dt[keep])))
        var_s = (n * (n - 1.0) * (2.0 * n + 5.0) - tie_term(xs)) / 18.0
        z = (s - np.sign(s)) / np.sqrt(var_s) if s != 0 else 0.0
        p = math.erfc(abs(z) / math.sqrt(2.0))
        slopes = np.sort(dx[keep] / dt[keep])
        m = slopes.size
        out[k, 2:6] = s, var_s, z, p
        if m == 0:
            continue
        slope = float(np.median(slopes))
        sig = np.sqrt((n * (n - 1.0) * (2.0 * n + 5.0) - tie_term(xs) - tie_term(ts)) / 18.0)
        ru = min(int(np.round((m + z_crit * sig) / 2.0)), m - 1)
        rl = max(int(np.round((m - z_crit * sig) / 2.0)) - 1, 0)
        out[k, :2] = slope, np.median(xs) - slope * np.median(ts)
        out[k, 6:8] = slopes[rl], slopes[ru]
    out = out.reshape((*x.shape[:-1], 9))
    return tuple(out[..., i] for i in range(9))
