"""Passive microwave forward models: soil dielectric models, Fresnel and rough-surface
reflectivities, the tau-omega emission model, vegetation water content / optical depth and
the effective soil temperature.

Every function takes numbers, NumPy arrays or DataArrays (lazy on dask through
:func:`xldas._xr.apply_kernel`; units converted on entry; CF attributes and ``history`` on
exit). ``engine`` picks the numba kernel (default for NumPy data) or its NumPy reference
(default for CuPy data). Equations: SCIENCE.md §A3.
"""

from __future__ import annotations

import numpy as np

from xldas._xr import apply_kernel
from xldas.physics import _microwave_kernels as K
from xldas.physics._common import dispatch, entry, incidence

__all__ = [
    "dielectric_dobson",
    "dielectric_mironov",
    "effective_temperature",
    "fresnel_reflectivity",
    "rough_reflectivity",
    "tau_omega_tb",
    "vegetation_optical_depth",
    "vegetation_water_content",
]

_EPS_ATTRS = {"units": "1", "long_name": "relative complex dielectric permittivity of soil"}


def _refl_attrs(kind: str, pol: str) -> dict:
    return {"units": "1", "long_name": f"{kind} reflectivity, {pol} polarisation"}


def _tb_attrs(pol: str) -> dict:
    return {
        "units": "K",
        "standard_name": "brightness_temperature",
        "long_name": f"brightness temperature, {pol} polarisation",
    }


def dielectric_dobson(
    sm,
    sand,
    clay,
    frequency_ghz,
    temperature_c=20.0,
    bulk_density=1.4,
    *,
    engine: str | None = None,
):
    """Complex relative permittivity of moist soil, Dobson et al. (1985) with Peplinski (1995).

    Parameters
    ----------
    sm : volumetric soil moisture (m3 m-3); values outside [0, 1] give NaN.
    sand, clay : mass fractions (0–1); a DataArray in percent is converted.
    frequency_ghz : frequency (GHz), valid 0.3–18 GHz; below 1.4 GHz the Peplinski
        low-frequency conductivity and the correction ε′ ← 1.15 ε′ − 0.68 apply.
    temperature_c : soil temperature (°C; a DataArray in K is converted).
    bulk_density : dry bulk density (g cm-3), default 1.4.
    engine : ``"numba"``, ``"numpy"`` or None (automatic).

    Returns
    -------
    Complex permittivity ε′ + iε″ (ε″ ≥ 0), named ``eps``.

    References
    ----------
    Dobson M.C. et al. (1985) IEEE TGRS GE-23(1):35–46; Peplinski N.R., Ulaby F.T., Dobson M.C.
    (1995) IEEE TGRS 33(3):803–807; form of Ulaby & Long (2014).

    Examples
    --------
    >>> from xldas.physics import dielectric_dobson
    >>> eps = dielectric_dobson(0.25, 0.4, 0.2, 1.4, temperature_c=20.0, bulk_density=1.4)
    >>> round(float(eps.real), 4), round(float(eps.imag), 4)
    (14.7386, 1.854)
    """
    f = entry(frequency_ghz, "GHz", "frequency_ghz", *K.DOBSON_FREQ_RANGE)
    args = (
        entry(sm, "m3 m-3", "sm"),
        entry(sand, "1", "sand", 0.0, 1.0),
        entry(clay, "1", "clay", 0.0, 1.0),
        f,
        entry(temperature_c, "degC", "temperature_c", -50.0, 100.0),
        entry(bulk_density, "g cm-3", "bulk_density", 0.1, K.DOBSON_RHO_S),
    )
    return apply_kernel(
        dispatch(K.dobson_kernel, K.dobson_np, engine),
        *args,
        output_dtypes=[np.complex128],
        names=["eps"],
        attrs=[_EPS_ATTRS],
        history="dielectric_dobson (Dobson et al. 1985, Peplinski et al. 1995)",
    )


def dielectric_mironov(sm, clay, frequency_ghz, *, engine: str | None = None):
    """Complex relative permittivity of moist soil, Mironov et al. (2009) (SMAP baseline).

    Parameters
    ----------
    sm : volumetric soil moisture (m3 m-3); values outside [0, 1] give NaN.
    clay : clay mass fraction (0–1; valid up to 0.76). A DataArray in percent is converted;
        a plain number above 1 is an error (divide percent by 100).
    frequency_ghz : frequency (GHz), valid 0.045–26.5 GHz.
    engine : ``"numba"``, ``"numpy"`` or None (automatic).

    Returns
    -------
    Complex permittivity ε′ + iε″, named ``eps`` (soil at about 20 °C).

    References
    ----------
    Mironov V.L., Kosolapova L.G., Fomin S.V. (2009) IEEE TGRS 47(7):2059–2070.

    Examples
    --------
    >>> from xldas.physics import dielectric_mironov
    >>> eps = dielectric_mironov(0.25, 0.20, 1.4)
    >>> round(float(eps.real), 4), round(float(eps.imag), 4)
    (12.9653, 1.5317)
    """
    return apply_kernel(
        dispatch(K.mironov_kernel, K.mironov_np, engine),
        entry(sm, "m3 m-3", "sm"),
        entry(clay, "1", "clay", 0.0, 1.0),
        entry(frequency_ghz, "GHz", "frequency_ghz", *K.MIRONOV_FREQ_RANGE),
        output_dtypes=[np.complex128],
        names=["eps"],
        attrs=[_EPS_ATTRS],
        history="dielectric_mironov (Mironov et al. 2009)",
    )


def fresnel_reflectivity(eps, incidence_deg, *, engine: str | None = None):
    """Smooth-surface Fresnel reflectivities (Γ_h, Γ_v) from air into soil.

    Parameters
    ----------
    eps : complex (or real) relative permittivity of the soil.
    incidence_deg : incidence angle (degrees, 0 ≤ θ < 90).

    Returns
    -------
    ``(gamma_h, gamma_v)``, dimensionless in [0, 1].

    Examples
    --------
    >>> from xldas.physics import fresnel_reflectivity
    >>> gh, gv = fresnel_reflectivity(20.0, 40.0)
    >>> round(float(gh), 6), round(float(gv), 6)
    (0.496883, 0.304428)
    """
    return apply_kernel(
        dispatch(K.fresnel_kernel, K.fresnel_np, engine, first_last=True),
        incidence(incidence_deg),
        entry(eps, "1", "eps"),
        output_core_dims=((), ()),
        output_dtypes=[np.float64, np.float64],
        names=["gamma_h", "gamma_v"],
        attrs=[_refl_attrs("Fresnel", "H"), _refl_attrs("Fresnel", "V")],
        history="fresnel_reflectivity",
    )


def rough_reflectivity(
    gamma_h, gamma_v, h, incidence_deg, q=0.0, n_h=2.0, n_v=2.0, *, engine: str | None = None
):
    """Rough-surface reflectivities r_p = [(1 − Q)Γ_p + QΓ_q]·exp(−h cos^N θ).

    Parameters
    ----------
    gamma_h, gamma_v : smooth-surface reflectivities (see :func:`fresnel_reflectivity`).
    h : effective roughness parameter (≈0.1–0.16 at L-band).
    incidence_deg : incidence angle (degrees).
    q : polarisation mixing Q (SMAP: 0).
    n_h, n_v : angular exponents N (SMAP: 2).

    Returns
    -------
    ``(r_h, r_v)``.

    References
    ----------
    Wang J.R., Choudhury B.J. (1981) JGR 86:5277–5282.

    Examples
    --------
    >>> from xldas.physics import fresnel_reflectivity, rough_reflectivity
    >>> gh, gv = fresnel_reflectivity(20.0, 40.0)
    >>> rh, rv = rough_reflectivity(gh, gv, h=0.1, incidence_deg=40.0)
    >>> round(float(rh), 6), round(float(rv), 6)
    (0.468563, 0.287078)
    """
    return apply_kernel(
        dispatch(K.rough_kernel, K.rough_np, engine),
        entry(gamma_h, "1", "gamma_h", 0.0, 1.0),
        entry(gamma_v, "1", "gamma_v", 0.0, 1.0),
        entry(h, "1", "h", 0.0),
        entry(q, "1", "q", 0.0, 1.0),
        entry(n_h, "1", "n_h"),
        entry(n_v, "1", "n_v"),
        incidence(incidence_deg),
        output_core_dims=((), ()),
        output_dtypes=[np.float64, np.float64],
        names=["r_h", "r_v"],
        attrs=[_refl_attrs("rough-surface", "H"), _refl_attrs("rough-surface", "V")],
        history="rough_reflectivity (Wang & Choudhury 1981)",
    )


def tau_omega_tb(
    eps,
    t_soil,
    t_canopy,
    tau,
    omega,
    h,
    incidence_deg,
    q=0.0,
    n_h=2.0,
    n_v=2.0,
    *,
    engine: str | None = None,
):
    """Brightness temperatures (TB_h, TB_v) of vegetated soil, zero-order tau-omega model.

    TB_p = T_s(1 − r_p)γ + T_c(1 − ω)(1 − γ)(1 + r_p γ), γ = exp(−τ/cosθ), with r_p the
    rough-surface reflectivity of the Fresnel reflectivities of ``eps``. Soil moisture
    enters through a dielectric model (:func:`dielectric_mironov`, :func:`dielectric_dobson`).

    Parameters
    ----------
    eps : complex relative permittivity of the soil.
    t_soil, t_canopy : soil (effective) and canopy temperatures (K; DataArrays in °C are converted).
    tau : nadir vegetation optical depth (see :func:`vegetation_optical_depth`).
    omega : single-scattering albedo.
    h, q, n_h, n_v : roughness parameters (see :func:`rough_reflectivity`).
    incidence_deg : incidence angle (degrees, 0 ≤ θ < 90).

    Returns
    -------
    ``(tb_h, tb_v)`` in K.

    References
    ----------
    Mo T., Choudhury B.J., Schmugge T.J., Wang J.R., Jackson T.J. (1982) JGR 87(C13):11229–11237.

    Examples
    --------
    >>> from xldas.physics import tau_omega_tb
    >>> tb_h, tb_v = tau_omega_tb(20.0, 300.0, 300.0, tau=0.1, omega=0.05, h=0.1, incidence_deg=40.0)
    >>> round(float(tb_h), 3), round(float(tb_v), 3)
    (189.141, 231.368)
    """
    return apply_kernel(
        dispatch(K.tau_omega_kernel, K.tau_omega_np, engine, first_last=True),
        entry(t_soil, "K", "t_soil", 0.0),
        entry(t_canopy, "K", "t_canopy", 0.0),
        entry(tau, "1", "tau", 0.0),
        entry(omega, "1", "omega", 0.0, 1.0),
        entry(h, "1", "h", 0.0),
        incidence(incidence_deg),
        entry(q, "1", "q", 0.0, 1.0),
        entry(n_h, "1", "n_h"),
        entry(n_v, "1", "n_v"),
        entry(eps, "1", "eps"),
        output_core_dims=((), ()),
        output_dtypes=[np.float64, np.float64],
        names=["tb_h", "tb_v"],
        attrs=[_tb_attrs("H"), _tb_attrs("V")],
        history="tau_omega_tb (Mo et al. 1982)",
    )


def vegetation_water_content(ndvi, ndvi_max, ndvi_min, stem_factor, *, engine: str | None = None):
    """SMAP ancillary vegetation water content (kg m-2) from NDVI.

    VWC = (1.9134·NDVI² − 0.3215·NDVI) + stem_factor·(NDVI_max − NDVI_min)/(1 − NDVI_min).

    Parameters
    ----------
    ndvi : NDVI of the date.
    ndvi_max, ndvi_min : annual maximum and minimum NDVI (climatology).
    stem_factor : land-cover stem factor (kg m-2) of the SMAP ancillary table.

    References
    ----------
    Chan S. et al. (2013) SMAP ancillary data report: vegetation water content, JPL D-53061.

    Examples
    --------
    >>> from xldas.physics import vegetation_water_content
    >>> round(float(vegetation_water_content(0.5, 0.7, 0.1, 3.0)), 4)
    2.3176
    """
    return apply_kernel(
        dispatch(K.vwc_kernel, K.vwc_np, engine),
        entry(ndvi, "1", "ndvi", -1.0, 1.0),
        entry(ndvi_max, "1", "ndvi_max", -1.0, 1.0),
        entry(ndvi_min, "1", "ndvi_min", -1.0, 1.0, closed_hi=False),
        entry(stem_factor, "kg m-2", "stem_factor", 0.0),
        output_dtypes=[np.float64],
        names=["vwc"],
        attrs=[{"units": "kg m-2", "long_name": "vegetation water content"}],
        history="vegetation_water_content (SMAP, Chan et al. 2013)",
    )


def vegetation_optical_depth(vwc, b, *, engine: str | None = None):
    """Nadir vegetation optical depth τ = b·VWC (Jackson & Schmugge 1991).

    Parameters
    ----------
    vwc : vegetation water content (kg m-2).
    b : vegetation parameter (m2 kg-1; ≈0.08–0.12 at L-band).

    Examples
    --------
    >>> from xldas.physics import vegetation_optical_depth
    >>> round(float(vegetation_optical_depth(2.3176, 0.11)), 5)
    0.25494
    """
    return apply_kernel(
        dispatch(K.optical_depth_kernel, K.optical_depth_np, engine),
        entry(vwc, "kg m-2", "vwc", 0.0),
        entry(b, "m2 kg-1", "b", 0.0),
        output_dtypes=[np.float64],
        names=["tau"],
        attrs=[{"units": "1", "long_name": "vegetation optical depth at nadir"}],
        history="vegetation_optical_depth (tau = b * VWC)",
    )


def effective_temperature(t_surface, t_deep, c=0.246, *, engine: str | None = None):
    """Effective soil temperature T_eff = T_deep + C·(T_surf − T_deep) (Choudhury et al. 1982).

    Parameters
    ----------
    t_surface, t_deep : surface and deep soil temperatures (K; DataArrays in °C are converted).
    c : coefficient C (≈0.246 at L-band; C → 1 where the sampling depth is within the
        surface layer, e.g. at C/X band).

    Examples
    --------
    >>> from xldas.physics import effective_temperature
    >>> round(float(effective_temperature(300.0, 290.0)), 3)
    292.46
    """
    return apply_kernel(
        dispatch(K.effective_temperature_kernel, K.effective_temperature_np, engine),
        entry(t_surface, "K", "t_surface", 0.0),
        entry(t_deep, "K", "t_deep", 0.0),
        entry(c, "1", "c", 0.0, 1.0),
        output_dtypes=[np.float64],
        names=["t_eff"],
        attrs=[{"units": "K", "long_name": "effective soil temperature for microwave emission"}],
        history="effective_temperature (Choudhury et al. 1982)",
    )
