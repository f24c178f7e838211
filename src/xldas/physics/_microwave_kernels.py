"""Passive-microwave kernels: soil dielectric models, Fresnel and rough-surface reflectivity,
the tau-omega emission model, SMAP vegetation water content and effective temperature.

Plain numbers and arrays only (no xarray). Each formula is written once as a scalar
``njit`` function; the gufuncs apply it element-wise, and each gufunc has a vectorised
NumPy reference (``*_np``) that the tests compare against it and that runs on array
types numba cannot take (CuPy). Units follow the parameter names: frequencies in GHz,
angles in degrees at the interface (radians inside), temperatures in K unless ``_c``.
Equations and check values: SCIENCE.md §A3 and §E (E1–E8).
"""

from __future__ import annotations

import cmath
import math

import numpy as np

from xldas._numba import gufunc, njit
from xldas.physics._arrays import asarray

EPS0 = 8.854e-12  # vacuum permittivity, F m-1
EPS_W_INF = 4.9  # high-frequency limit of the permittivity of water

# Dobson et al. (1985) / Peplinski et al. (1995) constants
DOBSON_ALPHA = 0.65
DOBSON_RHO_S = 2.66  # g cm-3, specific density of soil solids
DOBSON_EPS_S = (1.01 + 0.44 * DOBSON_RHO_S) ** 2 - 0.062  # 4.692

# validity ranges (GHz)
DOBSON_FREQ_RANGE = (0.3, 18.0)
MIRONOV_FREQ_RANGE = (0.045, 26.5)


# ------------------------------------------------------------------ dielectric: Dobson
@njit
def dobson_betas(sand, clay):
    """Dobson shape exponents (beta', beta'') from sand and clay fractions."""
    return 1.2748 - 0.519 * sand - 0.152 * clay, 1.33797 - 0.603 * sand - 0.166 * clay


@njit
def dobson_sigma_eff(frequency_ghz, bulk_density, sand, clay):
    """Effective conductivity (S m-1) of Peplinski et al. (1995); never negative."""
    if frequency_ghz >= 1.4:
        sigma = -1.645 + 1.939 * bulk_density - 2.25622 * sand + 1.594 * clay
    else:
        sigma = 0.0467 + 0.2204 * bulk_density - 0.4111 * sand + 0.6614 * clay
    return max(sigma, 0.0)


@njit
def free_water_debye(frequency_ghz, temperature_c):
    """Debye relaxation of free water: (eps'_fw, dipolar part of eps''_fw)."""
    t = temperature_c
    eps_w0 = 88.045 - 0.4147 * t + 6.295e-4 * t * t + 1.075e-5 * t * t * t
    two_pi_tau = 1.1109e-10 - 3.824e-12 * t + 6.938e-14 * t * t - 5.096e-16 * t * t * t
    x = frequency_ghz * 1.0e9 * two_pi_tau
    den = 1.0 + x * x
    return EPS_W_INF + (eps_w0 - EPS_W_INF) / den, x * (eps_w0 - EPS_W_INF) / den


@njit
def dobson_scalar(sm, sand, clay, frequency_ghz, temperature_c, bulk_density):
    """Dobson (1985) with Peplinski (1995) corrections; complex relative permittivity."""
    if not (sm >= 0.0 and sm <= 1.0):
        return complex(math.nan, math.nan)
    f_hz = frequency_ghz * 1.0e9
    beta1, beta2 = dobson_betas(sand, clay)
    sigma_eff = dobson_sigma_eff(frequency_ghz, bulk_density, sand, clay)
    efw_re, efw_im_dipolar = free_water_debye(frequency_ghz, temperature_c)
    a = DOBSON_ALPHA
    eps_re = (
        1.0 + (bulk_density / DOBSON_RHO_S) * (DOBSON_EPS_S**a - 1.0) + sm**beta1 * efw_re**a - sm
    ) ** (1.0 / a)
    if sm > 0.0:
        efw_im = efw_im_dipolar + sigma_eff * (DOBSON_RHO_S - bulk_density) / (
            2.0 * math.pi * f_hz * EPS0 * DOBSON_RHO_S * sm
        )
        eps_im = (sm**beta2 * efw_im**a) ** (1.0 / a)
    else:  # limit of theta^(beta''/alpha) * (c1 + c2/theta) for theta -> 0 (beta''/alpha > 1)
        eps_im = 0.0
    if frequency_ghz < 1.4:
        eps_re = 1.15 * eps_re - 0.68
    return complex(eps_re, eps_im)


@gufunc(
    ["void(float64, float64, float64, float64, float64, float64, complex128[:])"],
    "(),(),(),(),(),()->()",
)
def dobson_kernel(sm, sand, clay, frequency_ghz, temperature_c, bulk_density, out):
    out[0] = dobson_scalar(sm, sand, clay, frequency_ghz, temperature_c, bulk_density)


def dobson_np(sm, sand, clay, frequency_ghz, temperature_c, bulk_density):
    """NumPy reference of :func:`dobson_kernel`."""
    xp_sm = asarray(sm, dtype=float)
    sm, sand, clay, f, t, rho = np.broadcast_arrays(
        xp_sm, sand, clay, frequency_ghz, temperature_c, bulk_density
    )
    sm = sm.astype(float)
    valid = (sm >= 0.0) & (sm <= 1.0)
    smv = np.where(valid, sm, 0.5)
    f_hz = f * 1.0e9
    beta1 = 1.2748 - 0.519 * sand - 0.152 * clay
    beta2 = 1.33797 - 0.603 * sand - 0.166 * clay
    sig_hi = -1.645 + 1.939 * rho - 2.25622 * sand + 1.594 * clay
    sig_lo = 0.0467 + 0.2204 * rho - 0.4111 * sand + 0.6614 * clay
    sigma_eff = np.maximum(np.where(f >= 1.4, sig_hi, sig_lo), 0.0)
    eps_w0 = 88.045 - 0.4147 * t + 6.295e-4 * t**2 + 1.075e-5 * t**3
    two_pi_tau = 1.1109e-10 - 3.824e-12 * t + 6.938e-14 * t**2 - 5.096e-16 * t**3
    x = f_hz * two_pi_tau
    den = 1.0 + x * x
    efw_re = EPS_W_INF + (eps_w0 - EPS_W_INF) / den
    a = DOBSON_ALPHA
    eps_re = (
        1.0 + (rho / DOBSON_RHO_S) * (DOBSON_EPS_S**a - 1.0) + smv**beta1 * efw_re**a - smv
    ) ** (1.0 / a)
    pos = smv > 0.0
    sm_safe = np.where(pos, smv, 1.0)
    efw_im = x * (eps_w0 - EPS_W_INF) / den + sigma_eff * (DOBSON_RHO_S - rho) / (
        2.0 * np.pi * f_hz * EPS0 * DOBSON_RHO_S * sm_safe
    )
    eps_im = np.where(pos, (sm_safe**beta2 * efw_im**a) ** (1.0 / a), 0.0)
    eps_re = np.where(f < 1.4, 1.15 * eps_re - 0.68, eps_re)
    out = eps_re + 1j * eps_im
    return np.where(valid, out, complex(np.nan, np.nan))


# ----------------------------------------------------------------- dielectric: Mironov
@njit
def _debye_nk(eps0x, tau_x, sigma_x, f_hz):
    """Refractive index (n, k) of a Debye relaxation with ohmic loss (Mironov 2009)."""
    w = 2.0 * math.pi * f_hz * tau_x
    den = 1.0 + w * w
    e_re = EPS_W_INF + (eps0x - EPS_W_INF) / den
    e_im = (eps0x - EPS_W_INF) * w / den + sigma_x / (2.0 * math.pi * f_hz * EPS0)
    mod = math.sqrt(e_re * e_re + e_im * e_im)
    return math.sqrt((mod + e_re) / 2.0), math.sqrt((mod - e_re) / 2.0)


@njit
def mironov_dry(clay):
    """Mironov dry-soil refractive index (n_d, k_d) and maximum bound-water fraction."""
    return (
        1.634 - 0.539 * clay + 0.2748 * clay * clay,
        0.03952 - 0.04038 * clay,
        0.02863 + 0.30673 * clay,
    )


@njit
def mironov_scalar(sm, clay, frequency_ghz):
    """Mironov et al. (2009) generalised refractive mixing model; clay as a fraction."""
    if not (sm >= 0.0 and sm <= 1.0):
        return complex(math.nan, math.nan)
    c = clay
    f_hz = frequency_ghz * 1.0e9
    n_d, k_d, theta_t = mironov_dry(c)
    n_b, k_b = _debye_nk(
        79.8 - 85.4 * c + 32.7 * c * c, 1.062e-11 + 3.450e-12 * c, 0.3112 + 0.467 * c, f_hz
    )
    n_u, k_u = _debye_nk(100.0, 8.5e-12, 0.3631 + 1.217 * c, f_hz)
    if sm <= theta_t:
        n = n_d + (n_b - 1.0) * sm
        k = k_d + k_b * sm
    else:
        n = n_d + (n_b - 1.0) * theta_t + (n_u - 1.0) * (sm - theta_t)
        k = k_d + k_b * theta_t + k_u * (sm - theta_t)
    return complex(n * n - k * k, 2.0 * n * k)


@gufunc(["void(float64, float64, float64, complex128[:])"], "(),(),()->()")
def mironov_kernel(sm, clay, frequency_ghz, out):
    out[0] = mironov_scalar(sm, clay, frequency_ghz)


def _debye_nk_np(eps0x, tau_x, sigma_x, f_hz):
    eps = (
        EPS_W_INF
        + (eps0x - EPS_W_INF) / (1.0 - 2j * np.pi * f_hz * tau_x)
        + 1j * sigma_x / (2.0 * np.pi * f_hz * EPS0)
    )
    mod = np.abs(eps)
    return np.sqrt((mod + eps.real) / 2.0), np.sqrt((mod - eps.real) / 2.0)


def mironov_np(sm, clay, frequency_ghz):
    """NumPy reference of :func:`mironov_kernel`."""
    sm, c, f = np.broadcast_arrays(asarray(sm, dtype=float), clay, frequency_ghz)
    f_hz = f * 1.0e9
    n_d = 1.634 - 0.539 * c + 0.2748 * c**2
    k_d = 0.03952 - 0.04038 * c
    theta_t = 0.02863 + 0.30673 * c
    n_b, k_b = _debye_nk_np(
        79.8 - 85.4 * c + 32.7 * c**2, 1.062e-11 + 3.450e-12 * c, 0.3112 + 0.467 * c, f_hz
    )
    n_u, k_u = _debye_nk_np(100.0, 8.5e-12, 0.3631 + 1.217 * c, f_hz)
    bound = np.minimum(sm, theta_t)
    free = np.maximum(sm - theta_t, 0.0)
    n = n_d + (n_b - 1.0) * bound + (n_u - 1.0) * free
    k = k_d + k_b * bound + k_u * free
    out = (n * n - k * k) + 2j * n * k
    valid = (sm >= 0.0) & (sm <= 1.0)
    return np.where(valid, out, complex(np.nan, np.nan))


# ------------------------------------------------------------------- Fresnel, roughness
@njit
def fresnel_cos(eps, c):
    """Fresnel reflectivities (gamma_h, gamma_v) for cos(theta) = c, as |a|^2 / |b|^2."""
    root = cmath.sqrt(eps - (1.0 - c * c))  # principal root of eps - sin^2(theta)
    a = c - root
    b = c + root
    gamma_h = (a.real * a.real + a.imag * a.imag) / (b.real * b.real + b.imag * b.imag)
    ec = eps * c
    a = ec - root
    b = ec + root
    gamma_v = (a.real * a.real + a.imag * a.imag) / (b.real * b.real + b.imag * b.imag)
    return gamma_h, gamma_v


@njit
def fresnel_scalar(eps, incidence_deg):
    """Smooth-surface Fresnel reflectivities (gamma_h, gamma_v), air to soil."""
    return fresnel_cos(eps, math.cos(math.radians(incidence_deg)))


@gufunc(["void(complex128, float64, float64[:], float64[:])"], "(),()->(),()")
def fresnel_kernel(eps, incidence_deg, gamma_h, gamma_v):
    gamma_h[0], gamma_v[0] = fresnel_scalar(eps, incidence_deg)


def fresnel_np(eps, incidence_deg):
    """NumPy reference of :func:`fresnel_kernel`."""
    eps = asarray(eps, dtype=complex)
    th = np.radians(incidence_deg)
    c = np.cos(th)
    root = np.sqrt(eps - np.sin(th) ** 2)
    gh = np.abs((c - root) / (c + root)) ** 2
    gv = np.abs((eps * c - root) / (eps * c + root)) ** 2
    return gh, gv


@njit
def roughness_loss(h, c, n):
    """Roughness attenuation exp(-h cos^N theta) (N = 2 without a pow call)."""
    cn = c * c if n == 2.0 else c**n
    return math.exp(-h * cn)


@njit
def rough_scalar(gamma_p, gamma_q, h, q, n, incidence_deg):
    """Wang & Choudhury (1981) rough-surface reflectivity of polarisation p."""
    c = math.cos(math.radians(incidence_deg))
    return ((1.0 - q) * gamma_p + q * gamma_q) * roughness_loss(h, c, n)


@gufunc(
    ["void(float64, float64, float64, float64, float64, float64, float64, float64[:], float64[:])"],
    "(),(),(),(),(),(),()->(),()",
)
def rough_kernel(gamma_h, gamma_v, h, q, n_h, n_v, incidence_deg, r_h, r_v):
    r_h[0] = rough_scalar(gamma_h, gamma_v, h, q, n_h, incidence_deg)
    r_v[0] = rough_scalar(gamma_v, gamma_h, h, q, n_v, incidence_deg)


def rough_np(gamma_h, gamma_v, h, q, n_h, n_v, incidence_deg):
    """NumPy reference of :func:`rough_kernel`."""
    c = np.cos(np.radians(incidence_deg))
    r_h = ((1.0 - q) * gamma_h + q * gamma_v) * np.exp(-h * c**n_h)
    r_v = ((1.0 - q) * gamma_v + q * gamma_h) * np.exp(-h * c**n_v)
    return r_h, r_v


# ------------------------------------------------------------------------- tau-omega
@njit
def transmissivity(tau, incidence_deg):
    """One-way canopy transmissivity gamma = exp(-tau / cos(theta))."""
    return math.exp(-tau / math.cos(math.radians(incidence_deg)))


@njit
def tb_from_reflectivity(r, t_soil, t_canopy, omega, gamma):
    """TB = T_s (1 - r) gamma + T_c (1 - omega)(1 - gamma)(1 + r gamma) (Mo et al. 1982)."""
    return t_soil * (1.0 - r) * gamma + t_canopy * (1.0 - omega) * (1.0 - gamma) * (1.0 + r * gamma)


@gufunc(
    [
        "void(complex128, float64, float64, float64, float64, float64, float64, float64,"
        " float64, float64, float64[:], float64[:])"
    ],
    "(),(),(),(),(),(),(),(),(),()->(),()",
)
def tau_omega_kernel(eps, t_soil, t_canopy, tau, omega, h, incidence_deg, q, n_h, n_v, tb_h, tb_v):
    c = math.cos(math.radians(incidence_deg))  # every angular term from one cosine
    gh, gv = fresnel_cos(eps, c)
    loss_h = roughness_loss(h, c, n_h)
    loss_v = loss_h if n_v == n_h else roughness_loss(h, c, n_v)
    rh = ((1.0 - q) * gh + q * gv) * loss_h
    rv = ((1.0 - q) * gv + q * gh) * loss_v
    gamma = math.exp(-tau / c)
    tb_h[0] = tb_from_reflectivity(rh, t_soil, t_canopy, omega, gamma)
    tb_v[0] = tb_from_reflectivity(rv, t_soil, t_canopy, omega, gamma)


def tau_omega_np(eps, t_soil, t_canopy, tau, omega, h, incidence_deg, q, n_h, n_v):
    """NumPy reference of :func:`tau_omega_kernel`."""
    gh, gv = fresnel_np(eps, incidence_deg)
    rh, rv = rough_np(gh, gv, h, q, n_h, n_v, incidence_deg)
    gamma = np.exp(-asarray(tau) / np.cos(np.radians(incidence_deg)))

    def tb(r):
        return t_soil * (1.0 - r) * gamma + t_canopy * (1.0 - omega) * (1.0 - gamma) * (
            1.0 + r * gamma
        )

    return tb(rh), tb(rv)


# -------------------------------------------------------------- vegetation, temperature
@njit
def vwc_scalar(ndvi, ndvi_max, ndvi_min, stem_factor):
    """SMAP vegetation water content (kg m-2) from NDVI (Chan et al. 2013)."""
    return (
        1.9134 * ndvi * ndvi
        - 0.3215 * ndvi
        + stem_factor * (ndvi_max - ndvi_min) / (1.0 - ndvi_min)
    )


@gufunc(["void(float64, float64, float64, float64, float64[:])"], "(),(),(),()->()")
def vwc_kernel(ndvi, ndvi_max, ndvi_min, stem_factor, out):
    out[0] = vwc_scalar(ndvi, ndvi_max, ndvi_min, stem_factor)


def vwc_np(ndvi, ndvi_max, ndvi_min, stem_factor):
    """NumPy reference of :func:`vwc_kernel`."""
    ndvi = asarray(ndvi, dtype=float)
    return 1.9134 * ndvi**2 - 0.3215 * ndvi + stem_factor * (ndvi_max - ndvi_min) / (1.0 - ndvi_min)


@gufunc(["void(float64, float64, float64[:])"], "(),()->()")
def optical_depth_kernel(vwc, b, out):
    out[0] = b * vwc


def optical_depth_np(vwc, b):
    """NumPy reference of :func:`optical_depth_kernel` (tau = b * VWC)."""
    return asarray(b) * vwc


@gufunc(["void(float64, float64, float64, float64[:])"], "(),(),()->()")
def effective_temperature_kernel(t_surface, t_deep, c, out):
    out[0] = t_deep + c * (t_surface - t_deep)


def effective_temperature_np(t_surface, t_deep, c):
    """NumPy reference of :func:`effective_temperature_kernel` (Choudhury et al. 1982)."""
    return asarray(t_deep) + c * (asarray(t_surface) - t_deep)
