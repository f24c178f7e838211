"""Scalar evapotranspiration and melt kernels (numba ``njit``), shared by physics and models.

Every formula of SCIENCE.md §A7 and §B11 used by xldas is written ONCE here, as a scalar
function compiled with :data:`xldas._numba.njit`. The land-model kernel
(:mod:`xldas.models._kernels`) calls these same functions inside its time loop, and the
xarray wrappers of :mod:`xldas.physics.evaporation` call them through small gufuncs.

The functions use only arithmetic and ``np.exp``/``np.log``/``np.sqrt``/``np.maximum``-style
operations, so ``func.py_func`` evaluated on NumPy arrays is the vectorised NumPy reference
the tests compare the compiled kernels with.

Units follow the parameter names: ``_c`` degrees Celsius, ``_kpa`` kilopascal, ``_mj``
MJ m-2 d-1, ``_wm2`` W m-2, ``_rad`` radians.
"""

from __future__ import annotations

import numpy as np

from xldas._numba import gufunc, njit

__all__ = [
    "actual_vapour_pressure_rh",
    "degree_day_melt",
    "et0_fao56",
    "extraterrestrial_radiation",
    "latent_heat_vaporisation",
    "net_radiation_fao56",
    "net_radiation_surface",
    "pressure_from_elevation",
    "priestley_taylor",
    "psychrometric_constant",
    "saturation_vapour_pressure",
    "sith_potential_et",
    "sith_split",
    "slope_svp",
    "solar_radiation_angstrom",
]

#: specific heat of air at constant pressure (J kg-1 K-1), SiTHv2
CP_AIR = 1013.0
#: Stefan–Boltzmann constant (W m-2 K-4)
SIGMA_SB = 5.670374419e-8
#: Stefan–Boltzmann constant of FAO-56 (MJ m-2 d-1 K-4)
SIGMA_FAO = 4.903e-9
#: solar constant of FAO-56 (MJ m-2 min-1)
GSC = 0.0820
#: Beer's-law extinction of net radiation by the canopy (SiTH)
K_RN = 0.6
#: Priestley–Taylor coefficient
ALPHA_PT = 1.26


@njit
def saturation_vapour_pressure(t_c):
    """Saturation vapour pressure e°(T) (kPa) over water, Tetens form of FAO-56 eq. 11."""
    return 0.6108 * np.exp(17.27 * t_c / (t_c + 237.3))


@njit
def slope_svp(es_kpa, t_c):
    """Slope Δ (kPa °C-1) of the saturation curve, FAO-56 eq. 13, from e°(T) already known."""
    d = t_c + 237.3
    return 4098.0 * es_kpa / (d * d)


@njit
def pressure_from_elevation(elevation_m):
    """Standard-atmosphere surface pressure (kPa) at ``elevation_m``, FAO-56 eq. 7."""
    return 101.3 * ((293.0 - 0.0065 * elevation_m) / 293.0) ** 5.26


@njit
def psychrometric_constant(p_kpa):
    """FAO-56 psychrometric constant γ = 0.665e-3·P (kPa °C-1), eq. 8."""
    return 0.665e-3 * p_kpa


@njit
def latent_heat_vaporisation(t_c):
    """Latent heat of vaporisation λ = 2.501e6 − 2361·T (J kg-1), as in SiTHv2."""
    return 2.501e6 - 2361.0 * t_c


@njit
def actual_vapour_pressure_rh(tmin_c, tmax_c, rh_min, rh_max):
    """Actual vapour pressure from daily RH extremes (%), FAO-56 eq. 17 (kPa)."""
    return (
        saturation_vapour_pressure(tmin_c) * rh_max + saturation_vapour_pressure(tmax_c) * rh_min
    ) / 200.0


@njit
def extraterrestrial_radiation(lat_rad, doy):
    """Daily extraterrestrial radiation R_a (MJ m-2 d-1), FAO-56 eqs. 21–25."""
    x = 2.0 * np.pi * doy / 365.0
    dr = 1.0 + 0.033 * np.cos(x)
    decl = 0.409 * np.sin(x - 1.39)
    arg = -np.tan(lat_rad) * np.tan(decl)
    arg = np.minimum(np.maximum(arg, -1.0), 1.0)  # polar day / night
    ws = np.arccos(arg)
    return (
        24.0
        * 60.0
        / np.pi
        * GSC
        * dr
        * (ws * np.sin(lat_rad) * np.sin(decl) + np.cos(lat_rad) * np.cos(decl) * np.sin(ws))
    )


@njit
def solar_radiation_angstrom(sunshine_h, lat_rad, doy):
    """Incoming shortwave R_s = (0.25 + 0.5·n/N)·R_a (MJ m-2 d-1), FAO-56 eqs. 34–35."""
    x = 2.0 * np.pi * doy / 365.0
    decl = 0.409 * np.sin(x - 1.39)
    arg = np.minimum(np.maximum(-np.tan(lat_rad) * np.tan(decl), -1.0), 1.0)
    daylength = 24.0 / np.pi * np.arccos(arg)
    return (0.25 + 0.5 * sunshine_h / daylength) * extraterrestrial_radiation(lat_rad, doy)


@njit
def net_radiation_fao56(rs_mj, ra_mj, tmax_c, tmin_c, ea_kpa, elevation_m, albedo):
    """Daily net radiation R_n = R_ns − R_nl (MJ m-2 d-1), FAO-56 eqs. 37–40.

    R_s/R_so is capped at 1 (FAO-56 p. 52).
    """
    rso = (0.75 + 2e-5 * elevation_m) * ra_mj
    ratio = np.minimum(rs_mj / rso, 1.0)
    tk4x = (tmax_c + 273.16) ** 4
    tk4n = (tmin_c + 273.16) ** 4
    rnl = SIGMA_FAO * 0.5 * (tk4x + tk4n) * (0.34 - 0.14 * np.sqrt(ea_kpa)) * (1.35 * ratio - 0.35)
    return (1.0 - albedo) * rs_mj - rnl


@njit
def net_radiation_surface(swdown_wm2, lwdown_wm2, tsurf_k, albedo, emissivity):
    """Instantaneous surface net radiation (W m-2): (1−α)·SW↓ + ε·LW↓ − ε·σ·T_s⁴."""
    t2 = tsurf_k * tsurf_k
    return (1.0 - albedo) * swdown_wm2 + emissivity * (lwdown_wm2 - SIGMA_SB * t2 * t2)


@njit
def et0_fao56(rn_mj, g_mj, tmean_c, u2_ms, es_kpa, ea_kpa, p_kpa, cn, cd):
    """FAO-56 Penman–Monteith reference ET (eq. 6; hourly eq. 53).

    Daily: ``cn = 900``, ``cd = 0.34``, radiation in MJ m-2 d-1, result mm d-1. Hourly:
    ``cn = 37``, ``cd = 0.24`` (day) / ``0.96`` (night), MJ m-2 h-1, result mm h-1.
    """
    delta = slope_svp(saturation_vapour_pressure(tmean_c), tmean_c)
    gamma = psychrometric_constant(p_kpa)
    num = 0.408 * delta * (rn_mj - g_mj) + gamma * cn / (tmean_c + 273.0) * u2_ms * (
        es_kpa - ea_kpa
    )
    return num / (delta + gamma * (1.0 + cd * u2_ms))


@njit
def sith_split(rn_wm2, g_wm2, soil_rn_fraction, t_c, p_kpa):
    """SiTH potential canopy transpiration and soil evaporation rates (kg m-2 s-1).

    ``soil_rn_fraction`` is exp(−0.6·LAI), the share of R_n reaching the soil (Beer's law),
    so that a caller stepping in time computes the exponential once per cell. Returns
    ``(pE_c, pE_s)``, each clipped at 0. Multiply by 86400 for mm d-1.
    """
    lam = latent_heat_vaporisation(t_c)
    es = saturation_vapour_pressure(t_c)
    delta = slope_svp(es, t_c)
    gamma = CP_AIR * p_kpa / (0.622 * lam)
    c = ALPHA_PT * delta / ((delta + gamma) * lam)
    rns = rn_wm2 * soil_rn_fraction
    pec = np.maximum(c * (rn_wm2 - rns), 0.0)
    pes = np.maximum(c * (rns - g_wm2), 0.0)
    return pec, pes


@njit
def sith_potential_et(rn_wm2, g_wm2, lai, t_c, p_kpa):
    """SiTH potential ET split (Zhu et al. 2019; Zhang et al. 2022): ``(pE_c, pE_s)`` in mm d-1."""
    pec, pes = sith_split(rn_wm2, g_wm2, np.exp(-K_RN * lai), t_c, p_kpa)
    return pec * 86400.0, pes * 86400.0


@njit
def priestley_taylor(rn_wm2, g_wm2, t_c, p_kpa, alpha):
    """Priestley–Taylor (1972) evaporation α·Δ/(Δ+γ)·(R_n − G)/λ (kg m-2 s-1), λ and γ as SiTH."""
    lam = latent_heat_vaporisation(t_c)
    es = saturation_vapour_pressure(t_c)
    delta = slope_svp(es, t_c)
    gamma = CP_AIR * p_kpa / (0.622 * lam)
    return alpha * delta / (delta + gamma) * (rn_wm2 - g_wm2) / lam


@njit
def degree_day_melt(ddf, t_c, t0_c, days):
    """Degree-day melt M = DDF·max(T − T₀, 0)·days (kg m-2 if DDF in kg m-2 K-1 d-1), §B11."""
    return ddf * np.maximum(t_c - t0_c, 0.0) * days


# --------------------------------------------------------------------------- gufuncs
# Element-wise gufuncs used by the xarray layer (lazy on dask via apply_kernel).
_F8 = "float64"


@gufunc([f"void({', '.join([_F8] * 9)}, {_F8}[:])"], "(),(),(),(),(),(),(),(),()->()")
def _et0_gu(rn, g, tmean, u2, es, ea, p, cn, cd, out):
    out[0] = et0_fao56(rn, g, tmean, u2, es, ea, p, cn, cd)


@gufunc([f"void({', '.join([_F8] * 7)}, {_F8}[:])"], "(),(),(),(),(),(),()->()")
def _rn_fao_gu(rs, ra, tmax, tmin, ea, z, albedo, out):
    out[0] = net_radiation_fao56(rs, ra, tmax, tmin, ea, z, albedo)


@gufunc([f"void({', '.join([_F8] * 5)}, {_F8}[:])"], "(),(),(),(),()->()")
def _rn_sfc_gu(sw, lw, ts, albedo, emis, out):
    out[0] = net_radiation_surface(sw, lw, ts, albedo, emis)


@gufunc([f"void({', '.join([_F8] * 5)}, {_F8}[:], {_F8}[:])"], "(),(),(),(),()->(),()")
def _sith_gu(rn, g, lai, t, p, pec, pes):
    pec[0], pes[0] = sith_potential_et(rn, g, lai, t, p)


@gufunc([f"void({', '.join([_F8] * 5)}, {_F8}[:])"], "(),(),(),(),()->()")
def _pt_gu(rn, g, t, p, alpha, out):
    out[0] = priestley_taylor(rn, g, t, p, alpha)


@gufunc([f"void({', '.join([_F8] * 4)}, {_F8}[:])"], "(),(),(),()->()")
def _ddm_gu(ddf, t, t0, days, out):
    out[0] = degree_day_melt(ddf, t, t0, days)


@gufunc([f"void({_F8}, {_F8}, {_F8}[:])"], "(),()->()")
def _ra_gu(lat, doy, out):
    out[0] = extraterrestrial_radiation(lat, doy)


@gufunc([f"void({_F8}, {_F8}, {_F8}, {_F8}[:])"], "(),(),()->()")
def _rs_ang_gu(n, lat, doy, out):
    out[0] = solar_radiation_angstrom(n, lat, doy)


@gufunc([f"void({_F8}, {_F8}[:])"], "()->()")
def _esat_gu(t, out):
    out[0] = saturation_vapour_pressure(t)
