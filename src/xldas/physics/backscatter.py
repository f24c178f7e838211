"""Radar backscatter forward models: the water cloud model (with a linear-in-dB soil term or
any bare-soil model), its closed-form inversion, and the bare-soil models of Oh et al.
(1992), Oh (2004) and Dubois et al. (1995).

Backscatter is in dB at the interface and linear in all arithmetic. Every function takes
numbers, NumPy arrays or DataArrays (lazy on dask; units converted on entry; CF attributes
and ``history`` on exit). Equations: SCIENCE.md §A1.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xldas._xr import apply_kernel
from xldas.physics import _backscatter_kernels as K
from xldas.physics._common import dispatch, entry, incidence

__all__ = [
    "dubois1995",
    "oh1992",
    "oh2004",
    "water_cloud_backscatter",
    "water_cloud_canopy",
    "water_cloud_soil_backscatter",
    "water_cloud_soil_moisture",
]

OH1992_KS_RANGE = (0.1, 6.0)
OH2004_KS_RANGE = (0.13, 6.98)
OH2004_INCIDENCE_RANGE = (10.0, 70.0)
DUBOIS_KS_MAX = 2.5
DUBOIS_INCIDENCE_MIN = 30.0
DUBOIS_FREQ_RANGE = (1.5, 11.0)


def _sigma_attrs(pol: str, what: str = "backscattering coefficient") -> dict:
    return {"units": "dB", "long_name": f"{what}, {pol.upper()} polarisation"}


def _wcm_args(veg1, veg2, incidence_deg, a, b):
    return (
        entry(veg1, "1", "veg1", 0.0),
        entry(veg2, "1", "veg2", 0.0),
        incidence(incidence_deg),
        entry(a, "1", "a", 0.0),
        entry(b, "1", "b", 0.0),
    )


def water_cloud_canopy(soil_db, veg1, veg2, incidence_deg, a, b, *, engine: str | None = None):
    """Total backscatter (dB) of a vegetated surface for a given bare-soil backscatter.

    σ⁰ = A·V₁·cosθ·(1 − γ²) + γ²·σ⁰_soil (linear), γ² = exp(−2·B·V₂/cosθ).

    Parameters
    ----------
    soil_db : bare-soil backscatter (dB), e.g. from :func:`oh2004` or :func:`dubois1995`.
    veg1, veg2 : vegetation descriptors V₁, V₂ (LAI, NDVI or VWC; units of A and B follow).
    incidence_deg : local incidence angle (degrees).
    a, b : water cloud parameters A, B (> 0; calibrated per site and polarisation).

    References
    ----------
    Attema E.P.W., Ulaby F.T. (1978) Radio Science 13(2):357–364.

    Examples
    --------
    >>> from xldas.physics import water_cloud_canopy
    >>> round(float(water_cloud_canopy(-7.5, 2.0, 2.0, 40.0, 0.1, 0.3)), 5)
    -8.00385
    """
    return apply_kernel(
        dispatch(K.wcm_forward_kernel, K.wcm_forward_np, engine),
        entry(soil_db, "dB", "soil_db"),
        *_wcm_args(veg1, veg2, incidence_deg, a, b),
        output_dtypes=[np.float64],
        names=["sigma0"],
        attrs=[{"units": "dB", "long_name": "backscattering coefficient (water cloud model)"}],
        history="water_cloud_canopy (Attema & Ulaby 1978)",
    )


def water_cloud_backscatter(
    sm, veg1, veg2, incidence_deg, a, b, c, d, *, engine: str | None = None
):
    """Water cloud model backscatter (dB) with the linear-in-dB soil term σ⁰_soil = C + D·θ.

    Parameters
    ----------
    sm : volumetric soil moisture θ (m3 m-3).
    veg1, veg2 : vegetation descriptors V₁, V₂.
    incidence_deg : local incidence angle (degrees).
    a, b : water cloud parameters A, B (> 0).
    c : soil backscatter of dry soil (dB).
    d : sensitivity of the soil backscatter to soil moisture (dB per m3 m-3, > 0).

    Returns
    -------
    σ⁰ in dB, named ``sigma0``. Use :func:`water_cloud_canopy` for a physical soil model.

    Examples
    --------
    >>> from xldas.physics import water_cloud_backscatter
    >>> round(float(water_cloud_backscatter(0.25, 2.0, 2.0, 40.0, 0.1, 0.3, -15.0, 30.0)), 5)
    -8.00385
    """
    sm = entry(sm, "m3 m-3", "sm")
    c = entry(c, "dB", "c")
    d = entry(d, None, "d", 0.0)
    soil_db = c + d * sm
    if isinstance(soil_db, xr.DataArray):
        soil_db = soil_db.assign_attrs(units="dB")
    return water_cloud_canopy(soil_db, veg1, veg2, incidence_deg, a, b, engine=engine)


def water_cloud_soil_backscatter(
    sigma0_db, veg1, veg2, incidence_deg, a, b, *, engine: str | None = None
):
    """Bare-soil backscatter (dB) under a canopy: the water cloud model solved for σ⁰_soil.

    σ⁰_soil = (σ⁰ − A·V₁·cosθ·(1 − γ²))/γ² (linear). Where the vegetation term exceeds the
    observation the result is NaN (never a clipped value). Use it to invert a physical soil
    model (Oh, Dubois) numerically, or through :func:`water_cloud_soil_moisture`.

    Parameters
    ----------
    sigma0_db : observed total backscatter (dB).
    veg1, veg2 : vegetation descriptors V₁, V₂.
    incidence_deg : local incidence angle (degrees).
    a, b : water cloud parameters A, B (> 0).

    Returns
    -------
    Bare-soil backscatter (dB), named ``sigma0_soil``.

    References
    ----------
    Attema E.P.W., Ulaby F.T. (1978) Radio Science 13(2):357–364.

    Examples
    --------
    >>> from xldas.physics import water_cloud_soil_backscatter
    >>> round(float(water_cloud_soil_backscatter(-8.003853, 2.0, 2.0, 40.0, 0.1, 0.3)), 4)
    -7.5
    """
    return apply_kernel(
        dispatch(K.wcm_soil_kernel, K.wcm_soil_np, engine),
        entry(sigma0_db, "dB", "sigma0_db"),
        *_wcm_args(veg1, veg2, incidence_deg, a, b),
        output_dtypes=[np.float64],
        names=["sigma0_soil"],
        attrs=[
            {
                "units": "dB",
                "long_name": "bare-soil backscattering coefficient (water cloud inversion)",
            }
        ],
        history="water_cloud_soil_backscatter (Attema & Ulaby 1978, inverted)",
    )


def water_cloud_soil_moisture(
    sigma0_db, veg1, veg2, incidence_deg, a, b, c, d, *, engine: str | None = None
):
    """Soil moisture from backscatter: closed-form inversion of :func:`water_cloud_backscatter`.

    θ = (σ⁰_soil,dB − C)/D with σ⁰_soil from :func:`water_cloud_soil_backscatter`; NaN where
    the vegetation term exceeds the observation. The result is not clipped to a physical range.

    Parameters
    ----------
    sigma0_db : observed total backscatter (dB).
    veg1, veg2, incidence_deg, a, b, c, d : as in :func:`water_cloud_backscatter`.

    Returns
    -------
    Volumetric soil moisture (m3 m-3), named ``sm``.

    Examples
    --------
    >>> from xldas.physics import water_cloud_soil_moisture
    >>> round(float(water_cloud_soil_moisture(-8.00385279, 2.0, 2.0, 40.0, 0.1, 0.3, -15.0, 30.0)), 6)
    0.25
    """
    c = entry(c, "dB", "c")
    d = entry(d, None, "d", 0.0)
    soil_db = water_cloud_soil_backscatter(
        sigma0_db, veg1, veg2, incidence_deg, a, b, engine=engine
    )
    sm = (soil_db - c) / d
    if isinstance(sm, xr.DataArray):
        sm.name = "sm"
        sm.attrs = {
            "units": "m3 m-3",
            "standard_name": "volume_fraction_of_condensed_water_in_soil",
            "long_name": "surface soil moisture (water cloud model inversion)",
            "history": soil_db.attrs.get("history", ""),
        }
    return sm


def oh1992(eps, ks, incidence_deg, *, engine: str | None = None):
    """Bare-soil backscatter of Oh et al. (1992): (σ⁰_vv, σ⁰_hh, σ⁰_hv) in dB.

    Parameters
    ----------
    eps : complex relative permittivity of the soil.
    ks : rms height times wavenumber (valid 0.1–6).
    incidence_deg : incidence angle (degrees).

    References
    ----------
    Oh Y., Sarabandi K., Ulaby F.T. (1992) IEEE TGRS 30(2):370–381.

    Examples
    --------
    >>> from xldas.physics import oh1992
    >>> [round(float(s), 4) for s in oh1992(15.0, 0.5, 40.0)]
    [-12.8746, -15.7122, -25.6028]
    """
    return apply_kernel(
        dispatch(K.oh1992_kernel, K.oh1992_np, engine, first_last=True),
        entry(ks, "1", "ks", *OH1992_KS_RANGE),
        incidence(incidence_deg),
        entry(eps, "1", "eps"),
        output_core_dims=((), (), ()),
        output_dtypes=[np.float64] * 3,
        names=["sigma0_vv", "sigma0_hh", "sigma0_hv"],
        attrs=[
            _sigma_attrs(p, "bare-soil backscattering coefficient (Oh 1992)")
            for p in ("vv", "hh", "hv")
        ],
        history="oh1992 (Oh et al. 1992)",
    )


def oh2004(sm, ks, incidence_deg, *, engine: str | None = None):
    """Bare-soil backscatter of Oh (2004): (σ⁰_vv, σ⁰_hh, σ⁰_vh) in dB from soil moisture.

    Parameters
    ----------
    sm : volumetric soil moisture (m3 m-3; fitted on 0.04–0.291); values ≤ 0 give NaN.
    ks : rms height times wavenumber (valid 0.13–6.98).
    incidence_deg : incidence angle (degrees, valid 10–70).

    References
    ----------
    Oh Y. (2004) IEEE TGRS 42(3):596–601.

    Examples
    --------
    >>> from xldas.physics import oh2004
    >>> [round(float(s), 4) for s in oh2004(0.25, 0.5, 40.0)]
    [-13.6699, -16.0901, -26.912]
    """
    return apply_kernel(
        dispatch(K.oh2004_kernel, K.oh2004_np, engine),
        entry(sm, "m3 m-3", "sm"),
        entry(ks, "1", "ks", *OH2004_KS_RANGE),
        incidence(incidence_deg, lo=OH2004_INCIDENCE_RANGE[0], hi=OH2004_INCIDENCE_RANGE[1]),
        output_core_dims=((), (), ()),
        output_dtypes=[np.float64] * 3,
        names=["sigma0_vv", "sigma0_hh", "sigma0_vh"],
        attrs=[
            _sigma_attrs(p, "bare-soil backscattering coefficient (Oh 2004)")
            for p in ("vv", "hh", "vh")
        ],
        history="oh2004 (Oh 2004)",
    )


def dubois1995(eps, ks, incidence_deg, frequency_ghz=5.405, *, engine: str | None = None):
    """Bare-soil co-polarised backscatter of Dubois et al. (1995): (σ⁰_vv, σ⁰_hh) in dB.

    Parameters
    ----------
    eps : relative permittivity (its real part is used).
    ks : rms height times wavenumber (valid ≤ 2.5).
    incidence_deg : incidence angle (degrees, valid ≥ 30).
    frequency_ghz : radar frequency (GHz, valid 1.5–11; Sentinel-1: 5.405).

    References
    ----------
    Dubois P.C., van Zyl J., Engman T. (1995) IEEE TGRS 33(4):915–926.

    Examples
    --------
    >>> from xldas.physics import dubois1995
    >>> [round(float(s), 4) for s in dubois1995(15.0, 0.5, 40.0, frequency_ghz=29.9792458 / 5.5465)]
    [-15.6391, -17.8087]
    """
    return apply_kernel(
        dispatch(K.dubois1995_kernel, K.dubois1995_np, engine, first_last=True),
        entry(ks, "1", "ks", 0.0, DUBOIS_KS_MAX),
        incidence(incidence_deg, lo=DUBOIS_INCIDENCE_MIN),
        entry(frequency_ghz, "GHz", "frequency_ghz", *DUBOIS_FREQ_RANGE),
        entry(eps, "1", "eps"),
        output_core_dims=((), ()),
        output_dtypes=[np.float64] * 2,
        names=["sigma0_vv", "sigma0_hh"],
        attrs=[
            _sigma_attrs(p, "bare-soil backscattering coefficient (Dubois 1995)")
            for p in ("vv", "hh")
        ],
        history="dubois1995 (Dubois et al. 1995)",
    )
