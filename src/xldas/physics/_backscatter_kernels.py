"""Radar backscatter kernels: the water cloud model (forward and closed-form inversion of
its soil term) and the bare-soil models of Oh et al. (1992), Oh (2004) and Dubois et al.
(1995).

Plain numbers and arrays only (no xarray). Backscatter is in dB at the interface and linear
(m2 m-2) in all arithmetic. Angles in degrees at the interface. Each gufunc has a vectorised
NumPy reference (``*_np``). Equations and check values: SCIENCE.md §A1 and §E (E9–E12).
"""

from __future__ import annotations

import cmath
import math

import numpy as np

from xldas._numba import gufunc, njit
from xldas.physics._arrays import asarray
from xldas.physics._microwave_kernels import fresnel_np, fresnel_scalar

C_CM_GHZ = 29.9792458  # speed of light in cm GHz (lambda_cm = C_CM_GHZ / f_GHz)


@njit
def to_db(x):
    return 10.0 * math.log10(x) if x > 0.0 else math.nan


@njit
def from_db(x):
    return 10.0 ** (x / 10.0)


# --------------------------------------------------------------------------- water cloud
@njit
def wcm_parts(veg1, veg2, incidence_deg, a, b):
    """Water cloud canopy terms: (sigma0_veg linear, two-way transmissivity gamma^2)."""
    c = math.cos(math.radians(incidence_deg))
    gamma2 = math.exp(-2.0 * b * veg2 / c)
    return a * veg1 * c * (1.0 - gamma2), gamma2


@gufunc(
    ["void(float64, float64, float64, float64, float64, float64, float64[:])"],
    "(),(),(),(),(),()->()",
)
def wcm_forward_kernel(soil_db, veg1, veg2, incidence_deg, a, b, out):
    veg, gamma2 = wcm_parts(veg1, veg2, incidence_deg, a, b)
    out[0] = to_db(veg + gamma2 * from_db(soil_db))


@gufunc(
    ["void(float64, float64, float64, float64, float64, float64, float64[:])"],
    "(),(),(),(),(),()->()",
)
def wcm_soil_kernel(sigma0_db, veg1, veg2, incidence_deg, a, b, out):
    veg, gamma2 = wcm_parts(veg1, veg2, incidence_deg, a, b)
    num = from_db(sigma0_db) - veg
    out[0] = to_db(num / gamma2) if num > 0.0 else math.nan


def _wcm_parts_np(veg1, veg2, incidence_deg, a, b):
    c = np.cos(np.radians(incidence_deg))
    gamma2 = np.exp(-2.0 * asarray(b) * veg2 / c)
    return a * asarray(veg1) * c * (1.0 - gamma2), gamma2


def _db_np(x):
    x = asarray(x, dtype=float)
    return np.where(x > 0.0, 10.0 * np.log10(np.where(x > 0.0, x, 1.0)), np.nan)


def wcm_forward_np(soil_db, veg1, veg2, incidence_deg, a, b):
    """NumPy reference of :func:`wcm_forward_kernel`."""
    veg, gamma2 = _wcm_parts_np(veg1, veg2, incidence_deg, a, b)
    return _db_np(veg + gamma2 * 10.0 ** (asarray(soil_db) / 10.0))


def wcm_soil_np(sigma0_db, veg1, veg2, incidence_deg, a, b):
    """NumPy reference of :func:`wcm_soil_kernel`."""
    veg, gamma2 = _wcm_parts_np(veg1, veg2, incidence_deg, a, b)
    num = 10.0 ** (asarray(sigma0_db) / 10.0) - veg
    return _db_np(np.where(num > 0.0, num / gamma2, np.nan))


# ------------------------------------------------------------------------- Oh et al. 1992
@njit
def oh1992_scalar(eps, ks, incidence_deg):
    """Oh et al. (1992): linear (sigma_vv, sigma_hh, sigma_hv)."""
    th = math.radians(incidence_deg)
    r = cmath.sqrt(eps)
    g = (1.0 - r) / (1.0 + r)
    gamma0 = g.real**2 + g.imag**2
    gh, gv = fresnel_scalar(eps, incidence_deg)
    p = (1.0 - (2.0 * th / math.pi) ** (1.0 / (3.0 * gamma0)) * math.exp(-ks)) ** 2
    q = 0.23 * math.sqrt(gamma0) * (1.0 - math.exp(-ks))
    vv = 0.7 * (1.0 - math.exp(-0.65 * ks**1.8)) * math.cos(th) ** 3 * (gv + gh) / math.sqrt(p)
    return vv, p * vv, q * vv


@gufunc(
    ["void(complex128, float64, float64, float64[:], float64[:], float64[:])"],
    "(),(),()->(),(),()",
)
def oh1992_kernel(eps, ks, incidence_deg, vv, hh, hv):
    s_vv, s_hh, s_hv = oh1992_scalar(eps, ks, incidence_deg)
    vv[0] = to_db(s_vv)
    hh[0] = to_db(s_hh)
    hv[0] = to_db(s_hv)


def oh1992_np(eps, ks, incidence_deg):
    """NumPy reference of :func:`oh1992_kernel` (dB)."""
    eps = asarray(eps, dtype=complex)
    th = np.radians(incidence_deg)
    r = np.sqrt(eps)
    gamma0 = np.abs((1.0 - r) / (1.0 + r)) ** 2
    gh, gv = fresnel_np(eps, incidence_deg)
    p = (1.0 - (2.0 * th / np.pi) ** (1.0 / (3.0 * gamma0)) * np.exp(-ks)) ** 2
    q = 0.23 * np.sqrt(gamma0) * (1.0 - np.exp(-ks))
    vv = 0.7 * (1.0 - np.exp(-0.65 * asarray(ks) ** 1.8)) * np.cos(th) ** 3 * (gv + gh) / np.sqrt(p)
    return _db_np(vv), _db_np(p * vv), _db_np(q * vv)


# ------------------------------------------------------------------------------ Oh 2004
@njit
def oh2004_scalar(sm, ks, incidence_deg):
    """Oh (2004): linear (sigma_vv, sigma_hh, sigma_vh) from volumetric soil moisture."""
    th = math.radians(incidence_deg)
    vh = 0.11 * sm**0.7 * math.cos(th) ** 2.2 * (1.0 - math.exp(-0.32 * ks**1.8))
    q = 0.095 * (0.13 + math.sin(1.5 * th)) ** 1.4 * (1.0 - math.exp(-1.3 * ks**0.9))
    p = 1.0 - (2.0 * th / math.pi) ** (0.35 * sm**-0.65) * math.exp(-0.4 * ks**1.4)
    vv = vh / q
    return vv, p * vv, vh


@gufunc(
    ["void(float64, float64, float64, float64[:], float64[:], float64[:])"],
    "(),(),()->(),(),()",
)
def oh2004_kernel(sm, ks, incidence_deg, vv, hh, vh):
    if not (sm > 0.0 and sm <= 1.0):
        vv[0] = hh[0] = vh[0] = math.nan
        return
    s_vv, s_hh, s_vh = oh2004_scalar(sm, ks, incidence_deg)
    vv[0] = to_db(s_vv)
    hh[0] = to_db(s_hh)
    vh[0] = to_db(s_vh)


def oh2004_np(sm, ks, incidence_deg):
    """NumPy reference of :func:`oh2004_kernel` (dB)."""
    sm = asarray(sm, dtype=float)
    valid = (sm > 0.0) & (sm <= 1.0)
    smv = np.where(valid, sm, 0.5)
    th = np.radians(incidence_deg)
    vh = 0.11 * smv**0.7 * np.cos(th) ** 2.2 * (1.0 - np.exp(-0.32 * asarray(ks) ** 1.8))
    q = 0.095 * (0.13 + np.sin(1.5 * th)) ** 1.4 * (1.0 - np.exp(-1.3 * asarray(ks) ** 0.9))
    p = 1.0 - (2.0 * th / np.pi) ** (0.35 * smv**-0.65) * np.exp(-0.4 * asarray(ks) ** 1.4)
    vv = vh / q
    out = (_db_np(vv), _db_np(p * vv), _db_np(vh))
    return tuple(np.where(valid, o, np.nan) for o in out)


# -------------------------------------------------------------------------- Dubois 1995
@njit
def dubois1995_scalar(eps_re, ks, incidence_deg, frequency_ghz):
    """Dubois et al. (1995): linear (sigma_vv, sigma_hh); wavelength in cm inside."""
    th = math.radians(incidence_deg)
    lam = C_CM_GHZ / frequency_ghz
    s, c, t = math.sin(th), math.cos(th), math.tan(th)
    hh = 10.0**-2.75 * c**1.5 / s**5 * 10.0 ** (0.028 * eps_re * t) * (ks * s) ** 1.4 * lam**0.7
    vv = 10.0**-2.35 * c**3 / s**3 * 10.0 ** (0.046 * eps_re * t) * (ks * s) ** 1.1 * lam**0.7
    return vv, hh


@gufunc(
    ["void(complex128, float64, float64, float64, float64[:], float64[:])"],
    "(),(),(),()->(),()",
)
def dubois1995_kernel(eps, ks, incidence_deg, frequency_ghz, vv, hh):
    s_vv, s_hh = dubois1995_scalar(eps.real, ks, incidence_deg, frequency_ghz)
    vv[0] = to_db(s_vv)
    hh[0] = to_db(s_hh)


def dubois1995_np(eps, ks, incidence_deg, frequency_ghz):
    """NumPy reference of :func:`dubois1995_kernel` (dB)."""
    e = asarray(eps, dtype=complex).real
    th = np.radians(incidence_deg)
    lam = C_CM_GHZ / asarray(frequency_ghz, dtype=float)
    s, c, t = np.sin(th), np.cos(th), np.tan(th)
    ks = asarray(ks, dtype=float)
    hh = 10.0**-2.75 * c**1.5 / s**5 * 10.0 ** (0.028 * e * t) * (ks * s) ** 1.4 * lam**0.7
    vv = 10.0**-2.35 * c**3 / s**3 * 10.0 ** (0.046 * e * t) * (ks * s) ** 1.1 * lam**0.7
    return _db_np(vv), _db_np(hh)
