"""Evapotranspiration, net radiation and degree-day melt (SCIENCE.md §A7, §B11).

Thin xarray wrappers around the scalar kernels of :mod:`xldas.physics._et_kernels` (the same
functions the land model calls). Inputs may be numbers, NumPy arrays or (dask-backed)
DataArrays. A DataArray with a CF ``units`` attribute is converted to the unit named in the
parameter (``tmax_c`` → degC, ``rn_mj`` → MJ m-2 d-1, ``rn_wm2`` → W m-2, ``p_kpa`` → kPa ...);
without a ``units`` attribute the parameter's unit is assumed. Work stays lazy on dask.

References: Allen, Pereira, Raes & Smith (1998) FAO Irrigation and Drainage Paper 56;
Priestley & Taylor (1972) MWR 100:81–92; Zhu et al. (2019) J. Hydrol. 577:123928 and
Zhang et al. (2022) J. Hydrol. 613:128440 (SiTH/SiTHv2); Hock (2003) J. Hydrol. 282:104–115.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xldas._xr import apply_kernel
from xldas.errors import UnknownOptionError
from xldas.physics import _et_kernels as _k
from xldas.units import to_units

__all__ = [
    "actual_vapour_pressure",
    "degree_day_melt",
    "et0_fao56",
    "extraterrestrial_radiation",
    "net_radiation",
    "priestley_taylor",
    "saturation_vapour_pressure",
    "sith_potential_et",
    "solar_radiation_angstrom",
    "surface_net_radiation",
]

_MJ_DAY = "MJ m-2 d-1"


def _q(x, units: str, name: str):
    """Convert a DataArray with ``units`` to ``units``; pass other inputs through as float."""
    if isinstance(x, xr.DataArray):
        if "units" in x.attrs:
            return to_units(x, units, name)
        return x
    return np.asarray(x, dtype=np.float64) if not np.isscalar(x) else float(x)


def _out(res, units: str, long_name: str, name: str, standard_name: str | None = None):
    if isinstance(res, xr.DataArray):
        res.name = name
        res.attrs.update({"units": units, "long_name": long_name})
        if standard_name:
            res.attrs["standard_name"] = standard_name
        return res
    res = np.asarray(res)
    return res[()] if res.ndim == 0 else res


def saturation_vapour_pressure(t_c):
    """Saturation vapour pressure e°(T) over water (kPa), FAO-56 eq. 11.

    Parameters
    ----------
    t_c : air temperature (degC; DataArrays in K are converted).

    Examples
    --------
    >>> round(float(saturation_vapour_pressure(20.0)), 4)
    2.3383
    """
    t = _q(t_c, "degC", "t_c")
    res = apply_kernel(_k._esat_gu, t, history="saturation_vapour_pressure (FAO-56 eq. 11)")
    return _out(res, "kPa", "saturation vapour pressure", "es")


def actual_vapour_pressure(tmin_c, tmax_c, rh_min, rh_max):
    """Actual vapour pressure from daily RH extremes (kPa), FAO-56 eq. 17.

    Parameters
    ----------
    tmin_c, tmax_c : daily minimum / maximum air temperature (degC).
    rh_min, rh_max : daily minimum / maximum relative humidity (%).

    Examples
    --------
    >>> round(float(actual_vapour_pressure(12.3, 21.5, 63.0, 84.0)), 3)
    1.409
    """
    e_min = saturation_vapour_pressure(tmin_c)
    e_max = saturation_vapour_pressure(tmax_c)
    res = (
        e_min * _q(rh_max, "percent", "rh_max") + e_max * _q(rh_min, "percent", "rh_min")
    ) / 200.0
    return _out(res, "kPa", "actual vapour pressure", "ea", "water_vapor_partial_pressure_in_air")


def extraterrestrial_radiation(lat_deg, doy):
    """Daily extraterrestrial radiation R_a (MJ m-2 d-1), FAO-56 eqs. 21–25.

    Parameters
    ----------
    lat_deg : latitude (degrees north).
    doy : day of year (1–366).

    Examples
    --------
    >>> round(float(extraterrestrial_radiation(50.8, 187)), 2)
    41.09
    """
    lat = np.deg2rad(lat_deg)
    res = apply_kernel(_k._ra_gu, lat, doy, history="extraterrestrial_radiation (FAO-56 eq. 21)")
    return _out(res, _MJ_DAY, "extraterrestrial radiation", "ra")


def solar_radiation_angstrom(sunshine_h, lat_deg, doy):
    """Incoming shortwave radiation from sunshine hours, R_s = (0.25 + 0.5 n/N) R_a (MJ m-2 d-1).

    Examples
    --------
    >>> round(float(solar_radiation_angstrom(9.25, 50.8, 187)), 2)
    22.07
    """
    lat = np.deg2rad(lat_deg)
    n = _q(sunshine_h, "hour", "sunshine_h")
    res = apply_kernel(
        _k._rs_ang_gu, n, lat, doy, history="solar_radiation_angstrom (FAO-56 eq. 35)"
    )
    return _out(res, _MJ_DAY, "incoming shortwave radiation", "rs")


def net_radiation(rs_mj, tmax_c, tmin_c, ea_kpa, lat_deg, doy, elevation_m=0.0, albedo=0.23):
    """Daily net radiation R_n = R_ns − R_nl (MJ m-2 d-1), FAO-56 eqs. 37–40.

    Parameters
    ----------
    rs_mj : incoming shortwave radiation (MJ m-2 d-1; DataArrays in W m-2 are converted).
    tmax_c, tmin_c : daily maximum / minimum air temperature (degC).
    ea_kpa : actual vapour pressure (kPa).
    lat_deg, doy : latitude (degrees north) and day of year, for R_a and clear-sky R_so.
    elevation_m : station elevation (m).
    albedo : surface albedo (0.23 for the grass reference).

    Examples
    --------
    >>> rs = solar_radiation_angstrom(9.25, 50.8, 187)
    >>> round(float(net_radiation(rs, 21.5, 12.3, 1.409, 50.8, 187, 100.0)), 2)
    13.28
    """
    ra = extraterrestrial_radiation(lat_deg, doy)
    args = (
        _q(rs_mj, _MJ_DAY, "rs_mj"),
        ra,
        _q(tmax_c, "degC", "tmax_c"),
        _q(tmin_c, "degC", "tmin_c"),
        _q(ea_kpa, "kPa", "ea_kpa"),
        _q(elevation_m, "m", "elevation_m"),
        albedo,
    )
    res = apply_kernel(_k._rn_fao_gu, *args, history="net_radiation (FAO-56 eqs. 37-40)")
    return _out(res, _MJ_DAY, "net radiation", "rn", "surface_net_downward_radiative_flux")


def surface_net_radiation(swdown_wm2, lwdown_wm2, tsurf_k, albedo=0.2, emissivity=0.97):
    """Instantaneous net radiation (1−α)·SW↓ + ε·(LW↓ − σT_s⁴) (W m-2), as the land model uses it.

    Examples
    --------
    >>> round(float(surface_net_radiation(500.0, 300.0, 290.0, 0.2, 1.0)), 2)
    298.95
    """
    res = apply_kernel(
        _k._rn_sfc_gu,
        _q(swdown_wm2, "W m-2", "swdown_wm2"),
        _q(lwdown_wm2, "W m-2", "lwdown_wm2"),
        _q(tsurf_k, "K", "tsurf_k"),
        albedo,
        emissivity,
        history="surface_net_radiation",
    )
    return _out(res, "W m-2", "net radiation", "rn", "surface_net_downward_radiative_flux")


def et0_fao56(
    rn_mj,
    tmax_c,
    tmin_c,
    u2_ms,
    ea_kpa,
    elevation_m=0.0,
    g_mj=0.0,
    timestep: str = "daily",
    tmean_c=None,
    daytime: bool = True,
):
    """FAO-56 Penman–Monteith grass-reference evapotranspiration ET₀ (mm d-1 or mm h-1).

    Parameters
    ----------
    rn_mj : net radiation (MJ m-2 per step: d-1 for daily, h-1 for hourly).
    tmax_c, tmin_c : maximum / minimum air temperature (degC); for hourly data pass the
        hourly temperature as both.
    u2_ms : wind speed at 2 m (m s-1).
    ea_kpa : actual vapour pressure (kPa).
    elevation_m : elevation (m), sets P and γ (always use it on the Tibetan Plateau).
    g_mj : soil heat flux (same unit as ``rn_mj``), 0 for daily steps.
    timestep : ``"daily"`` (900, 0.34) or ``"hourly"`` (37, 0.24 day / 0.96 night).
    tmean_c : mean temperature (default (tmax+tmin)/2).
    daytime : hourly only, selects 0.24 (True) or 0.96 (False).

    Returns
    -------
    ET₀ in mm d-1 (daily) or mm h-1 (hourly).

    Examples
    --------
    FAO-56 example 18 (Brussels, 6 July):

    >>> ea = actual_vapour_pressure(12.3, 21.5, 63.0, 84.0)
    >>> rn = net_radiation(solar_radiation_angstrom(9.25, 50.8, 187), 21.5, 12.3, ea, 50.8, 187, 100.0)
    >>> round(float(et0_fao56(rn, 21.5, 12.3, 2.078, ea, elevation_m=100.0)), 2)
    3.88
    """
    if timestep == "daily":
        cn, cd, unit = 900.0, 0.34, "mm d-1"
    elif timestep == "hourly":
        cn, cd, unit = 37.0, (0.24 if daytime else 0.96), "mm h-1"
    else:
        raise UnknownOptionError("timestep", timestep, ["daily", "hourly"])
    rad_unit = _MJ_DAY if timestep == "daily" else "MJ m-2 h-1"
    tmax = _q(tmax_c, "degC", "tmax_c")
    tmin = _q(tmin_c, "degC", "tmin_c")
    tmean = (tmax + tmin) / 2.0 if tmean_c is None else _q(tmean_c, "degC", "tmean_c")
    es = (saturation_vapour_pressure(tmax) + saturation_vapour_pressure(tmin)) / 2.0
    z = _q(elevation_m, "m", "elevation_m")
    p = 101.3 * ((293.0 - 0.0065 * z) / 293.0) ** 5.26
    res = apply_kernel(
        _k._et0_gu,
        _q(rn_mj, rad_unit, "rn_mj"),
        _q(g_mj, rad_unit, "g_mj"),
        tmean,
        _q(u2_ms, "m s-1", "u2_ms"),
        es,
        _q(ea_kpa, "kPa", "ea_kpa"),
        p,
        cn,
        cd,
        history=f"et0_fao56 ({timestep}, FAO-56 eq. 6)",
    )
    return _out(res, unit, "FAO-56 grass reference evapotranspiration", "et0")


def priestley_taylor(rn_wm2, t_c, p_kpa=101.3, g_wm2=0.0, alpha: float = 1.26):
    """Priestley–Taylor (1972) potential evaporation α·Δ/(Δ+γ)·(R_n − G)/λ (kg m-2 s-1).

    λ and γ follow SiTHv2 (λ = 2.501e6 − 2361 T, γ = c_p P/(0.622 λ)), so that
    ``priestley_taylor`` equals the sum of the two parts of :func:`sith_potential_et`.

    Parameters
    ----------
    rn_wm2 : net radiation (W m-2). t_c : air temperature (degC). p_kpa : pressure (kPa).
    g_wm2 : ground heat flux (W m-2). alpha : Priestley–Taylor coefficient.

    Examples
    --------
    >>> round(float(priestley_taylor(150.0, 20.0, 101.3)) * 86400, 4)
    4.5441
    """
    res = apply_kernel(
        _k._pt_gu,
        _q(rn_wm2, "W m-2", "rn_wm2"),
        _q(g_wm2, "W m-2", "g_wm2"),
        _q(t_c, "degC", "t_c"),
        _q(p_kpa, "kPa", "p_kpa"),
        alpha,
        history="priestley_taylor (Priestley & Taylor 1972)",
    )
    return _out(res, "kg m-2 s-1", "Priestley-Taylor potential evaporation", "pet")


def sith_potential_et(rn_wm2, lai, t_c, p_kpa=101.3, g_wm2=0.0):
    """SiTH potential ET split into canopy transpiration and soil evaporation (mm d-1).

    R_ns = R_n·exp(−0.6 LAI), R_nc = R_n − R_ns; pE_c = 1.26 Δ/(Δ+γ) R_nc/λ,
    pE_s = 1.26 Δ/(Δ+γ)(R_ns − G)/λ, both clipped at 0 (SCIENCE.md §A7, SiTHv2
    ``potentialET.m``).

    Returns
    -------
    (pe_canopy, pe_soil) in mm d-1.

    Examples
    --------
    >>> pec, pes = sith_potential_et(150.0, 2.0, 20.0, 101.3)
    >>> round(float(pec), 5), round(float(pes), 5)
    (3.17542, 1.36865)
    """
    res = apply_kernel(
        _k._sith_gu,
        _q(rn_wm2, "W m-2", "rn_wm2"),
        _q(g_wm2, "W m-2", "g_wm2"),
        _q(lai, "1", "lai"),
        _q(t_c, "degC", "t_c"),
        _q(p_kpa, "kPa", "p_kpa"),
        output_core_dims=((), ()),
        history="sith_potential_et (SiTHv2 potentialET)",
    )
    pec, pes = res
    return (
        _out(pec, "mm d-1", "potential canopy transpiration", "pe_canopy"),
        _out(pes, "mm d-1", "potential soil evaporation", "pe_soil"),
    )


def degree_day_melt(ddf, t_c, days=1.0, t0_c=0.0):
    """Degree-day melt M = DDF·max(T − T₀, 0)·days (kg m-2 = mm), SCIENCE.md §B11.

    Parameters
    ----------
    ddf : degree-day factor (kg m-2 K-1 d-1 = mm °C-1 d-1).
    t_c : daily mean air temperature (degC). days : duration (d). t0_c : threshold (degC).

    Examples
    --------
    >>> float(degree_day_melt(4.0, 3.5))
    14.0
    """
    res = apply_kernel(
        _k._ddm_gu,
        _q(ddf, "kg m-2 K-1 d-1", "ddf"),
        _q(t_c, "degC", "t_c"),
        t0_c,
        days,
        history="degree_day_melt (SCIENCE.md B11)",
    )
    return _out(res, "kg m-2", "degree-day melt", "melt")
