"""Cosmic-ray neutron sensor (CRNS) kernels: the Desilets et al. (2010) count rate and its
inverse, the pressure / humidity / incoming-intensity / biomass corrections, the Franz et al.
(2012) and Schrön et al. (2017) measurement depths, and the vertical weighting that maps a
layered soil-moisture profile to the one average the probe sees.

Plain numbers and arrays only (no xarray). Units: soil moisture volumetric (m3 m-3), water
offsets gravimetric (g g-1), bulk density g cm-3, depths in cm unless ``_m``, pressure hPa,
absolute humidity g m-3. Each gufunc has a vectorised NumPy reference (``*_np``).
Equations and check values: SCIENCE.md §B10 and §E (E25–E29).
"""

from __future__ import annotations

import math

import numpy as np

from xldas._numba import gufunc, njit
from xldas.physics._arrays import asarray

A0, A1, A2 = 0.0808, 0.372, 0.115  # Desilets et al. (2010)
SOC_WATER_EQUIVALENT = 0.556  # g water per g soil organic carbon
RHO_W = 1.0  # g cm-3
R_V = 461.5  # J kg-1 K-1, gas constant of water vapour
RC_REF = 4.49  # GV, reference cut-off rigidity of Hawdon et al. (2014)


# ------------------------------------------------------------------ Desilets (2010)
@njit
def neutrons_scalar(sm, n0, bulk_density, lattice_water, soc):
    theta_g = sm * RHO_W / bulk_density + lattice_water + SOC_WATER_EQUIVALENT * soc
    return n0 * (A0 / (theta_g + A2) + A1)


@gufunc(["void(float64, float64, float64, float64, float64, float64[:])"], "(),(),(),(),()->()")
def neutrons_kernel(sm, n0, bulk_density, lattice_water, soc, out):
    out[0] = neutrons_scalar(sm, n0, bulk_density, lattice_water, soc)


def neutrons_np(sm, n0, bulk_density, lattice_water, soc):
    """NumPy reference of :func:`neutrons_kernel`."""
    theta_g = asarray(sm) * RHO_W / bulk_density + lattice_water + SOC_WATER_EQUIVALENT * soc
    return n0 * (A0 / (theta_g + A2) + A1)


@njit
def neutron_sm_scalar(n, n0, bulk_density, lattice_water, soc):
    ratio = n / n0
    if not ratio > A1:
        return math.nan
    theta_g = A0 / (ratio - A1) - A2 - lattice_water - SOC_WATER_EQUIVALENT * soc
    return theta_g * bulk_density / RHO_W


@gufunc(["void(float64, float64, float64, float64, float64, float64[:])"], "(),(),(),(),()->()")
def neutron_sm_kernel(n, n0, bulk_density, lattice_water, soc, out):
    out[0] = neutron_sm_scalar(n, n0, bulk_density, lattice_water, soc)


def neutron_sm_np(n, n0, bulk_density, lattice_water, soc):
    """NumPy reference of :func:`neutron_sm_kernel`."""
    ratio = asarray(n, dtype=float) / n0
    ok = ratio > A1
    theta_g = A0 / np.where(ok, ratio - A1, 1.0) - A2 - lattice_water - SOC_WATER_EQUIVALENT * soc
    return np.where(ok, theta_g * bulk_density / RHO_W, np.nan)


# ------------------------------------------------------------------------ corrections
@gufunc(
    [
        "void(float64, float64, float64, float64, float64, float64, float64, float64,"
        " float64[:], float64[:], float64[:])"
    ],
    "(),(),(),(),(),(),(),()->(),(),()",
)
def corrections_kernel(
    pressure_hpa,
    pressure_ref_hpa,
    beta,
    humidity,
    humidity_ref,
    incoming,
    incoming_ref,
    rc,
    f_p,
    f_wv,
    f_i,
):
    f_p[0] = math.exp(beta * (pressure_hpa - pressure_ref_hpa))
    f_wv[0] = 1.0 + 0.0054 * (humidity - humidity_ref)
    scale = -0.075 * (rc - RC_REF) + 1.0
    f_i[0] = 1.0 / (1.0 + scale * (incoming / incoming_ref - 1.0))


def corrections_np(
    pressure_hpa, pressure_ref_hpa, beta, humidity, humidity_ref, incoming, incoming_ref, rc
):
    """NumPy reference of :func:`corrections_kernel`."""
    f_p = np.exp(beta * (asarray(pressure_hpa) - pressure_ref_hpa))
    f_wv = 1.0 + 0.0054 * (asarray(humidity) - humidity_ref)
    scale = -0.075 * (asarray(rc) - RC_REF) + 1.0
    f_i = 1.0 / (1.0 + scale * (asarray(incoming) / incoming_ref - 1.0))
    return f_p, f_wv, f_i


@gufunc(["void(float64, float64[:])"], "()->()")
def biomass_correction_kernel(biomass, out):
    out[0] = 1.0 / (1.0 - 0.009 * biomass)


def biomass_correction_np(biomass):
    """NumPy reference of :func:`biomass_correction_kernel` (Baatz et al. 2015)."""
    return 1.0 / (1.0 - 0.009 * asarray(biomass))


@gufunc(["void(float64, float64, float64[:])"], "(),()->()")
def absolute_humidity_kernel(vapour_pressure_pa, temperature_k, out):
    out[0] = 1000.0 * vapour_pressure_pa / (R_V * temperature_k)


def absolute_humidity_np(vapour_pressure_pa, temperature_k):
    """NumPy reference of :func:`absolute_humidity_kernel` (g m-3)."""
    return 1000.0 * asarray(vapour_pressure_pa) / (R_V * asarray(temperature_k))


# ------------------------------------------------------------------------------ depths
@njit
def d86_scalar(theta, bulk_density, distance_m):
    """Schrön et al. (2017) penetration depth D86 (cm); theta total volumetric water."""
    return (
        8.321
        + 0.14249 * (0.96655 + math.exp(-distance_m / 100.0)) * (20.0 + theta) / (0.0429 + theta)
    ) / bulk_density


@gufunc(["void(float64, float64, float64, float64[:])"], "(),(),()->()")
def d86_kernel(theta, bulk_density, distance_m, out):
    out[0] = d86_scalar(theta, bulk_density, distance_m)


def d86_np(theta, bulk_density, distance_m):
    """NumPy reference of :func:`d86_kernel`."""
    theta = asarray(theta, dtype=float)
    return (
        8.321
        + 0.14249
        * (0.96655 + np.exp(-asarray(distance_m) / 100.0))
        * (20.0 + theta)
        / (0.0429 + theta)
    ) / bulk_density


@gufunc(["void(float64, float64, float64, float64[:])"], "(),(),()->()")
def franz_depth_kernel(sm, bulk_density, lattice_water, out):
    out[0] = 5.8 / (bulk_density * lattice_water + sm + 0.0829)


def franz_depth_np(sm, bulk_density, lattice_water):
    """NumPy reference of :func:`franz_depth_kernel` (Franz et al. 2012, cm)."""
    return 5.8 / (asarray(bulk_density) * lattice_water + sm + 0.0829)


# ----------------------------------------------------------------- vertical weighting
@njit
def _layer_weights(depth_bottom_m, d86_cm, out):
    """Normalised integrals of exp(-2 d / D86) over each layer (top of layer 0 at 0)."""
    total = 0.0
    top = 0.0
    for j in range(depth_bottom_m.shape[0]):
        bot = depth_bottom_m[j] * 100.0
        w = math.exp(-2.0 * top / d86_cm) - math.exp(-2.0 * bot / d86_cm)
        out[j] = w
        total += w
        top = bot
    for j in range(depth_bottom_m.shape[0]):
        out[j] /= total


@gufunc(["void(float64[:], float64, float64[:])"], "(l),()->(l)")
def vertical_weights_kernel(depth_bottom_m, d86_cm, out):
    _layer_weights(depth_bottom_m, d86_cm, out)


def vertical_weights_np(depth_bottom_m, d86_cm):
    """NumPy reference of :func:`vertical_weights_kernel` (layer is the last axis)."""
    bot = asarray(depth_bottom_m, dtype=float) * 100.0
    top = np.concatenate([np.zeros_like(bot[..., :1]), bot[..., :-1]], axis=-1)
    d = asarray(d86_cm, dtype=float)[..., None]
    w = np.exp(-2.0 * top / d) - np.exp(-2.0 * bot / d)
    return w / w.sum(axis=-1, keepdims=True)


@gufunc(
    ["void(float64[:], float64[:], float64, float64, float64, float64, int64, float64[:])"],
    "(l),(l),(),(),(),(),()->()",
)
def weighted_sm_kernel(
    sm, depth_bottom_m, bulk_density, lattice_water, soc, distance_m, n_iter, out
):
    n = sm.shape[0]
    offset = (lattice_water + SOC_WATER_EQUIVALENT * soc) * bulk_density / RHO_W
    w = np.empty(n)
    theta = sm[0]
    for _ in range(n_iter):
        _layer_weights(depth_bottom_m, d86_scalar(theta + offset, bulk_density, distance_m), w)
        theta = 0.0
        for j in range(n):
            theta += w[j] * sm[j]
    out[0] = theta


def weighted_sm_np(sm, depth_bottom_m, bulk_density, lattice_water, soc, distance_m, n_iter):
    """NumPy reference of :func:`weighted_sm_kernel` (layer is the last axis)."""
    sm = asarray(sm, dtype=float)
    offset = (asarray(lattice_water) + SOC_WATER_EQUIVALENT * asarray(soc)) * bulk_density / RHO_W
    theta = sm[..., 0]
    for _ in range(int(n_iter)):
        w = vertical_weights_np(depth_bottom_m, d86_np(theta + offset, bulk_density, distance_m))
        theta = (w * sm).sum(axis=-1)
    return theta
