"""PT-JPL evapotranspiration (Fisher, Tu & Baldocchi 2008), SCIENCE.md §A7.

The Priestley–Taylor potential rate α·Δ/(Δ+γ) is split between canopy transpiration, soil
evaporation and interception by ecophysiological constraints from NDVI, a second vegetation
index (SAVI or EVI), air temperature and humidity:

    f_APAR = 1.3632·VI − 0.048;  f_IPAR = NDVI − 0.05;  LAI = −ln(1 − f_IPAR)/0.5
    R_ns = R_n·exp(−0.6·LAI), R_nc = R_n − R_ns
    f_wet = RH⁴; f_g = f_APAR/f_IPAR; f_T = exp(−((T − T_opt)/T_opt)²); f_M = f_APAR/f_APAR,max
    f_SM = RH^(VPD/β), β = 1 kPa
    LE_c = (1 − f_wet)·f_g·f_T·f_M·α·Δ/(Δ+γ)·R_nc
    LE_s = (f_wet + f_SM·(1 − f_wet))·α·Δ/(Δ+γ)·(R_ns − G)
    LE_i = f_wet·α·Δ/(Δ+γ)·R_nc

The saturation vapour pressure and its slope are the FAO-56 functions of
:mod:`xldas.physics._et_kernels` (one implementation of each formula). The scalar
:func:`ptjpl_scalar` is compiled with numba; :func:`ptjpl_np` is its NumPy reference.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from xldas._numba import gufunc, njit
from xldas._xr import apply_kernel
from xldas.physics import _et_kernels as _k
from xldas.physics._common import dispatch, entry

__all__ = ["pt_jpl", "ptjpl_np", "ptjpl_scalar"]

K_PAR = 0.5  # extinction of PAR
K_RN = 0.6  # extinction of net radiation
M1, B1 = 1.2 * 1.136, 1.2 * -0.04  # f_APAR = M1 * VI + B1
BETA_KPA = 1.0  # soil-moisture constraint scale (kPa)
ALPHA_PT = 1.26
FIPAR_MIN, FC_MAX = 0.01, 0.999


def _clip01(x):
    return min(max(x, 0.0), 1.0)


_clip01_nb = njit(_clip01)


@njit
def ptjpl_scalar(rn, g, t_c, rh, ndvi, vi, fapar_max, t_opt_c, gamma, alpha):
    """PT-JPL latent heat fluxes (LE_c, LE_s, LE_i) in W m-2 (inputs as :func:`pt_jpl`)."""
    es = _k.saturation_vapour_pressure(t_c)
    delta = _k.slope_svp(es, t_c)
    vpd = max(es * (1.0 - rh), 0.0)
    fapar = _clip01_nb(M1 * vi + B1)
    fipar = min(max(ndvi - 0.05, FIPAR_MIN), 1.0)
    lai = -math.log(1.0 - min(fipar, FC_MAX)) / K_PAR
    rns = rn * math.exp(-K_RN * lai)
    rnc = rn - rns
    fwet = rh**4
    fg = _clip01_nb(fapar / fipar)
    ft = math.exp(-(((t_c - t_opt_c) / t_opt_c) ** 2))
    fm = _clip01_nb(fapar / fapar_max)
    fsm = _clip01_nb(rh ** (vpd / BETA_KPA))
    pt = alpha * delta / (delta + gamma)
    le_c = (1.0 - fwet) * fg * ft * fm * pt * rnc
    le_s = (fwet + fsm * (1.0 - fwet)) * pt * (rns - g)
    le_i = fwet * pt * rnc
    return le_c, le_s, le_i


@gufunc(
    ["void(" + ", ".join(["float64"] * 10) + ", float64[:], float64[:], float64[:])"],
    "(),(),(),(),(),(),(),(),(),()->(),(),()",
)
def ptjpl_kernel(rn, g, t_c, rh, ndvi, vi, fapar_max, t_opt_c, gamma, alpha, le_c, le_s, le_i):
    le_c[0], le_s[0], le_i[0] = ptjpl_scalar(
        rn, g, t_c, rh, ndvi, vi, fapar_max, t_opt_c, gamma, alpha
    )


def ptjpl_np(rn, g, t_c, rh, ndvi, vi, fapar_max, t_opt_c, gamma, alpha):
    """NumPy reference of :func:`ptjpl_kernel` (same formulas, vectorised)."""
    es = _k.saturation_vapour_pressure.py_func(np.asarray(t_c, dtype=float))
    delta = _k.slope_svp.py_func(es, t_c)
    vpd = np.maximum(es * (1.0 - rh), 0.0)
    fapar = np.clip(M1 * np.asarray(vi) + B1, 0.0, 1.0)
    fipar = np.clip(np.asarray(ndvi) - 0.05, FIPAR_MIN, 1.0)
    lai = -np.log(1.0 - np.minimum(fipar, FC_MAX)) / K_PAR
    rns = rn * np.exp(-K_RN * lai)
    rnc = rn - rns
    fwet = np.asarray(rh, dtype=float) ** 4
    fg = np.clip(fapar / fipar, 0.0, 1.0)
    ft = np.exp(-(((t_c - t_opt_c) / t_opt_c) ** 2))
    fm = np.clip(fapar / fapar_max, 0.0, 1.0)
    fsm = np.clip(np.asarray(rh, dtype=float) ** (vpd / BETA_KPA), 0.0, 1.0)
    pt = alpha * delta / (delta + gamma)
    return (
        (1.0 - fwet) * fg * ft * fm * pt * rnc,
        (fwet + fsm * (1.0 - fwet)) * pt * (rns - g),
        fwet * pt * rnc,
    )


def pt_jpl(
    rn_wm2,
    t_c,
    rh,
    ndvi,
    vi,
    fapar_max,
    t_opt_c,
    g_wm2=0.0,
    p_kpa=101.3,
    gamma_kpa=None,
    alpha: float = ALPHA_PT,
    *,
    engine: str | None = None,
) -> tuple:
    """PT-JPL latent heat flux and its three components (W m-2).

    Parameters
    ----------
    rn_wm2 : net radiation R_n (W m-2).
    t_c : air temperature (degC; DataArrays in K are converted).
    rh : relative humidity as a fraction (0–1; DataArrays in percent are converted).
    ndvi : NDVI (gives f_IPAR, f_c and LAI).
    vi : the index for f_APAR: SAVI (Fisher et al. 2008: SAVI = 0.45·NDVI + 0.132) or EVI
        (as the open PT-JPL code does).
    fapar_max : annual maximum f_APAR of the pixel (for f_M).
    t_opt_c : optimum growth temperature (degC): T_a at the time of max(R_n·T_a·SAVI/VPD).
    g_wm2 : ground heat flux (W m-2).
    p_kpa : surface pressure (kPa) for γ = 0.665e-3·P when ``gamma_kpa`` is not given.
    gamma_kpa : psychrometric constant (kPa °C-1), overrides ``p_kpa``.
    alpha : Priestley–Taylor coefficient.

    Returns
    -------
    Tuple ``(le_canopy, le_soil, le_interception, le)`` (``le`` is their sum), W m-2:
    DataArrays for DataArray input (lazy on dask), arrays or numbers otherwise.

    References
    ----------
    Fisher J.B., Tu K.P., Baldocchi D.D. (2008) RSE 112:901–919; open code kunlz/PT_JPL_global.

    Examples
    --------
    SCIENCE.md check value E21:

    >>> from xldas.physics import pt_jpl
    >>> le_c, le_s, le_i, le = pt_jpl(400.0, 25.0, 0.5, 0.6, 0.4, 0.6, 25.0, gamma_kpa=0.066)
    >>> [round(float(v), 3) for v in (le_c, le_s, le_i, le)]
    [161.696, 53.743, 14.385, 229.824]
    """
    rn = entry(rn_wm2, "W m-2", "rn_wm2")
    g = entry(g_wm2, "W m-2", "g_wm2")
    t = entry(t_c, "degC", "t_c", -80.0, 70.0)
    rh = entry(rh, "1", "rh", 0.0, 1.0)
    ndvi = entry(ndvi, "1", "ndvi", -1.0, 1.0)
    vi = entry(vi, "1", "vi", -1.0, 2.5)
    fmax = entry(fapar_max, "1", "fapar_max", 0.0, 1.0)
    topt = entry(t_opt_c, "degC", "t_opt_c")
    if gamma_kpa is None:
        gamma = _k.psychrometric_constant.py_func(entry(p_kpa, "kPa", "p_kpa", 1.0))
    else:
        gamma = entry(gamma_kpa, None, "gamma_kpa", 0.0)
    outs = apply_kernel(
        dispatch(ptjpl_kernel, ptjpl_np, engine),
        rn,
        g,
        t,
        rh,
        ndvi,
        vi,
        fmax,
        topt,
        gamma,
        alpha,
        output_core_dims=((), (), ()),
        output_dtypes=[np.float64] * 3,
        names=["le_canopy", "le_soil", "le_interception"],
        attrs=[
            {"units": "W m-2", "long_name": f"PT-JPL latent heat flux, {part}"}
            for part in ("canopy transpiration", "soil evaporation", "interception evaporation")
        ],
        history="pt_jpl (Fisher et al. 2008)",
    )
    le = outs[0] + outs[1] + outs[2]
    if isinstance(le, xr.DataArray):
        le = le.rename("le").assign_attrs(
            units="W m-2",
            standard_name="surface_upward_latent_heat_flux",
            long_name="PT-JPL latent heat flux (total)",
            history=outs[0].attrs.get("history", ""),
        )
    return (*outs, le)
