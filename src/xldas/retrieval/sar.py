"""Surface soil moisture from C-band SAR backscatter (SCIENCE.md §A1, §A2).

* :func:`soil_moisture_sar` with ``method="water_cloud"`` inverts the water cloud model
  (:func:`xldas.physics.water_cloud_canopy`) with a vegetation descriptor (NDVI, LAI or VWC
  from Sentinel-2) and a soil term that is linear in dB (closed form), Oh (2004) or
  Dubois et al. (1995) (Brent's method on θ ∈ [sm_min, sm_max] in a numba gufunc that calls
  the physics kernels). With ``method="change_detection"`` it scales the
  incidence-normalised backscatter between per-pixel dry and wet references (TU Wien) and
  adds the exponential-filter soil water index.
* :func:`calibrate_water_cloud` fits A, B, C, D against in-situ or model soil moisture.

Invalid retrievals are NaN with a bit flag in ``sm_flag`` (meanings in its attributes),
never clipped values.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xldas._xr import apply_kernel
from xldas.errors import DimensionError, ParameterRangeError, UnknownOptionError
from xldas.physics._backscatter_kernels import wcm_forward_np
from xldas.physics._common import dispatch, entry, single_chunk
from xldas.retrieval import _kernels as K

__all__ = [
    "calibrate_water_cloud",
    "change_detection",
    "flag_attrs",
    "soil_moisture_sar",
    "swi_filter",
]

SOIL_MODELS = {"linear": K.SOIL_LINEAR, "oh2004": K.SOIL_OH2004, "dubois1995": K.SOIL_DUBOIS}
DIELECTRIC = {"dobson": K.DIEL_DOBSON, "mironov": K.DIEL_MIRONOV}
SENTINEL1_GHZ = 5.405

_SM_ATTRS = {
    "units": "m3 m-3",
    "standard_name": "volume_fraction_of_condensed_water_in_soil",
}

#: default parameters of the SAR inversion (override with ``params=``)
DEFAULT_PARAMS = {
    "a": 0.1,  # water cloud A (per unit descriptor)
    "b": 0.3,  # water cloud B (per unit descriptor)
    "c": -15.0,  # dB, linear soil term
    "d": 30.0,  # dB per m3 m-3, linear soil term
    "ks": 0.5,  # roughness k*s
    "sand": 0.4,
    "clay": 0.2,
    "bulk_density": 1.4,  # g cm-3
    "temperature_c": 20.0,
    "sm_min": 0.02,
    "sm_max": 0.5,
}


def flag_attrs(what: str) -> dict:
    """CF flag attributes of a retrieval flag variable."""
    return {
        "long_name": f"{what} retrieval quality flag",
        "flag_masks": np.array(list(K.FLAG_MEANINGS), dtype=np.uint8),
        "flag_meanings": " ".join(K.FLAG_MEANINGS.values()),
        "units": "1",
    }


def _param(params, key, units=None, lo=None, hi=None):
    return entry(params[key], units, key, lo, hi)


def soil_moisture_sar(
    sigma0,
    veg=None,
    incidence_deg=None,
    method: str = "water_cloud",
    soil_model: str = "linear",
    params=None,
    dielectric: str = "dobson",
    frequency_ghz: float = SENTINEL1_GHZ,
    veg2=None,
    *,
    engine: str | None = None,
    **cd_kwargs,
) -> xr.Dataset:
    """Surface soil moisture from VV backscatter.

    Parameters
    ----------
    sigma0 : DataArray of σ⁰_VV in dB (or a Dataset with ``sigma0_vv`` and, optionally,
        ``incidence_deg`` / ``incidence_angle``).
    veg : vegetation descriptor V₁ (NDVI, LAI or VWC; A and B follow its unit). Water cloud only.
    incidence_deg : local incidence angle (degrees); taken from the Dataset when omitted.
    method : ``"water_cloud"`` or ``"change_detection"`` (see :func:`change_detection`,
        which receives ``cd_kwargs``).
    soil_model : ``"linear"`` (σ⁰_soil = C + D·θ, closed form), ``"oh2004"`` (VV of Oh 2004;
        validity 10–70°, ks 0.13–6.98) or ``"dubois1995"`` (VV of Dubois et al. 1995 with the
        ``dielectric`` model; validity θ ≥ 30°, ks ≤ 2.5).
    params : mapping overriding :data:`DEFAULT_PARAMS` (``a``, ``b``, ``c``, ``d``, ``ks``,
        ``sand``, ``clay``, ``bulk_density``, ``temperature_c``, ``sm_min``, ``sm_max``);
        values may be numbers or DataArrays (e.g. calibrated per pixel).
    dielectric : ``"dobson"`` or ``"mironov"`` (Dubois only).
    frequency_ghz : radar frequency (Sentinel-1: 5.405 GHz).
    veg2 : descriptor V₂ of the attenuation (default V₁).
    engine : ``"numba"`` (default) or ``"numpy"`` (the reference bisection).

    Returns
    -------
    Dataset with ``sm`` (m3 m-3; NaN where invalid) and ``sm_flag`` (uint8 bit flags:
    vegetation term above the observation, beyond the dry/wet end, incidence or roughness
    outside the model validity, no data).

    References
    ----------
    Attema & Ulaby (1978) Radio Sci. 13:357; Oh (2004) IEEE TGRS 42:596; Dubois et al. (1995)
    IEEE TGRS 33:915.

    Examples
    --------
    SCIENCE.md E12 (the water cloud model inverted back to θ = 0.25):

    >>> import xarray as xr
    >>> from xldas.retrieval import soil_moisture_sar
    >>> s0 = xr.DataArray([-8.00385279], dims="x", attrs={"units": "dB"})
    >>> out = soil_moisture_sar(s0, veg=2.0, incidence_deg=40.0)
    >>> round(float(out.sm[0]), 6), int(out.sm_flag[0])
    (0.25, 0)
    """
    if method == "change_detection":
        return change_detection(sigma0, incidence_deg=incidence_deg, **cd_kwargs)
    if method != "water_cloud":
        raise UnknownOptionError("method", method, ("water_cloud", "change_detection"))
    if soil_model not in SOIL_MODELS:
        raise UnknownOptionError("soil_model", soil_model, SOIL_MODELS)
    if dielectric not in DIELECTRIC:
        raise UnknownOptionError("dielectric", dielectric, DIELECTRIC)
    sigma0, incidence_deg = _unpack(sigma0, incidence_deg)
    if veg is None:
        raise ParameterRangeError("the water cloud inversion needs a vegetation descriptor veg=")
    p = {**DEFAULT_PARAMS, **(params or {})}
    args = (
        entry(sigma0, "dB", "sigma0"),
        entry(veg, None, "veg", 0.0),  # LAI, NDVI or VWC: A and B follow its unit
        entry(veg if veg2 is None else veg2, None, "veg2", 0.0),
        entry(incidence_deg, "degree", "incidence_deg", 0.0, 90.0, closed_hi=False),
        _param(p, "a", "1", 0.0),
        _param(p, "b", "1", 0.0),
        _param(p, "c", "dB"),
        _param(p, "d", None),
        _param(p, "ks", "1", 0.0),
        _param(p, "sand", "1", 0.0, 1.0),
        _param(p, "clay", "1", 0.0, 1.0),
        _param(p, "bulk_density", "g cm-3", 0.1, 2.66),
        _param(p, "temperature_c", "degC"),
        entry(frequency_ghz, "GHz", "frequency_ghz", 0.3, 18.0),
        _param(p, "sm_min", "m3 m-3", 0.0, 1.0),
        _param(p, "sm_max", "m3 m-3", 0.0, 1.0),
        SOIL_MODELS[soil_model],
        DIELECTRIC[dielectric],
    )
    sm, flag = apply_kernel(
        dispatch(K.sar_invert_kernel, K.sar_invert_np, engine),
        *args,
        output_core_dims=((), ()),
        output_dtypes=[np.float64, np.uint8],
        names=["sm", "sm_flag"],
        attrs=[
            {**_SM_ATTRS, "long_name": f"surface soil moisture (water cloud + {soil_model})"},
            flag_attrs("SAR soil moisture"),
        ],
        history=f"soil_moisture_sar(water_cloud, soil_model={soil_model!r})",
    )
    if not isinstance(sm, xr.DataArray):
        dims = [f"dim_{i}" for i in range(np.ndim(sm))]
        return xr.Dataset({"sm": (dims, sm), "sm_flag": (dims, flag)})
    return xr.Dataset({"sm": sm, "sm_flag": flag})


def _unpack(sigma0, incidence_deg, required: bool = True):
    """σ⁰ and incidence angle from a DataArray (+ angle) or a Dataset holding both."""
    if isinstance(sigma0, xr.Dataset):
        ds = sigma0
        if "sigma0_vv" not in ds:
            raise DimensionError("the SAR Dataset needs a 'sigma0_vv' variable (dB)")
        sigma0 = ds["sigma0_vv"]
        if incidence_deg is None:
            for name in ("incidence_deg", "incidence_angle", "local_incidence_angle"):
                if name in ds:
                    incidence_deg = ds[name]
                    break
    if incidence_deg is None and required:
        raise ParameterRangeError("the incidence angle is needed: pass incidence_deg=")
    return sigma0, incidence_deg


# ------------------------------------------------------------------ change detection
def _days(time) -> xr.DataArray:
    t = time
    if np.issubdtype(t.dtype, np.datetime64):
        return ((t - t[0]) / np.timedelta64(1, "D")).astype(float)
    return t.astype(float)


def swi_filter(ms: xr.DataArray, t_char_days: float = 10.0, dim: str = "time", *, engine=None):
    """Soil water index: exponential filter of a surface soil-moisture series.

    K_n = K_{n−1}/(K_{n−1} + exp(−(t_n − t_{n−1})/T)), SWI_n = SWI_{n−1} + K_n·(m_n − SWI_{n−1}),
    K₀ = 1, SWI₀ = m₀; missing observations are skipped (Albergel et al. 2008, HESS 12:1323).

    Parameters
    ----------
    ms : surface soil moisture (any units) with dimension ``dim`` (datetime or days).
    t_char_days : characteristic time T (days, 5–20 typical).

    Examples
    --------
    SCIENCE.md E14:

    >>> import xarray as xr
    >>> from xldas.retrieval import swi_filter
    >>> ms = xr.DataArray([0.2, 0.5, 0.3], dims="time", coords={"time": [0.0, 2.0, 5.0]})
    >>> [round(float(v), 6) for v in swi_filter(ms, 10.0)]
    [0.2, 0.36495, 0.337281]
    """
    if dim not in ms.dims:
        raise DimensionError(f"swi_filter needs the dimension {dim!r}; got {ms.dims}")
    ms = single_chunk(ms, dim)
    out = apply_kernel(
        dispatch(K.swi_kernel, K.swi_np, engine),
        _days(ms[dim]),
        ms,
        t_char_days,
        input_core_dims=[[dim], [dim], []],
        output_core_dims=[[dim]],
        output_dtypes=[np.float64],
        names=["swi"],
        attrs=[
            {
                "units": ms.attrs.get("units", "1"),
                "long_name": f"soil water index (exponential filter, T = {t_char_days:g} d)",
            }
        ],
        history=f"swi_filter(T={t_char_days:g} d) (Albergel et al. 2008)",
    )
    return out.transpose(*ms.dims)


def change_detection(
    sigma0,
    incidence_deg=None,
    beta=None,
    dry_percentile: float = 5.0,
    wet_percentile: float = 95.0,
    reference_deg: float = 40.0,
    min_sensitivity_db: float = 1.0,
    theta_r=None,
    theta_s=None,
    t_char_days: float | None = 10.0,
    dim: str = "time",
) -> xr.Dataset:
    """TU Wien change detection: relative surface soil moisture from a σ⁰ time series.

    σ⁰(40°) = σ⁰(θ) − β(θ − 40°); m_s = (σ⁰(40°) − σ⁰_dry)/(σ⁰_wet − σ⁰_dry), clipped to
    [0, 1]; σ⁰_dry/σ⁰_wet are per-pixel low/high percentiles of the normalised series.

    Parameters
    ----------
    sigma0 : σ⁰ (dB) with dimension ``dim`` (one chunk along it is made), or a Dataset
        with ``sigma0_vv`` (and the incidence angle).
    incidence_deg : incidence angle (degrees), optional; with ``beta=None`` the slope β
        (dB deg⁻¹) is regressed per pixel on the history.
    beta : per-pixel slope β (dB deg⁻¹), optional.
    dry_percentile, wet_percentile : percentiles of the references.
    min_sensitivity_db : pixels with σ⁰_wet − σ⁰_dry below it are NaN (flag).
    theta_r, theta_s : optional residual / saturated soil moisture to convert m_s to θ.
    t_char_days : characteristic time of the SWI filter (None: no SWI).

    Returns
    -------
    Dataset: ``ms`` (relative saturation 0–1), ``sm`` (m3 m-3, if θ_r/θ_s given), ``swi``,
    ``sigma0_dry``, ``sigma0_wet``, ``sensitivity`` (dB) and ``sm_flag``.

    Examples
    --------
    SCIENCE.md E13: σ⁰₄₀ = −12, dry −18, wet −8 dB give m_s = 0.6:

    >>> import xarray as xr
    >>> from xldas.retrieval import change_detection
    >>> s0 = xr.DataArray([-18.0, -12.0, -8.0], dims="time", attrs={"units": "dB"})
    >>> out = change_detection(s0, dry_percentile=0, wet_percentile=100, t_char_days=None)
    >>> [round(float(v), 6) for v in out.ms]
    [0.0, 0.6, 1.0]
    """
    sigma0, incidence_deg = _unpack(sigma0, incidence_deg, required=False)
    if dim not in sigma0.dims:
        raise DimensionError(
            f"change detection needs the time dimension {dim!r}; got {sigma0.dims}"
        )
    s0 = single_chunk(entry(sigma0, "dB", "sigma0"), dim)
    s40 = s0
    if incidence_deg is not None:
        inc = entry(incidence_deg, "degree", "incidence_deg", 0.0, 90.0, closed_hi=False)
        if beta is None and isinstance(inc, xr.DataArray) and dim in inc.dims:
            inc = single_chunk(inc, dim)  # per-pixel least-squares slope on the history
            ok = s0.notnull() & inc.notnull()
            x, y = inc.where(ok), s0.where(ok)
            dx = x - x.mean(dim)
            beta = (dx * (y - y.mean(dim))).sum(dim) / (dx**2).sum(dim)
        if beta is not None:
            s40 = s0 - beta * (inc - reference_deg)
    dry = s40.quantile(dry_percentile / 100.0, dim=dim).drop_vars("quantile")
    wet = s40.quantile(wet_percentile / 100.0, dim=dim).drop_vars("quantile")
    sens = wet - dry
    ms_raw = (s40 - dry) / sens
    insensitive = sens < min_sensitivity_db
    ms = ms_raw.clip(0.0, 1.0).where(~insensitive)
    flag = xr.where(s40.isnull(), K.FLAG_NO_DATA, 0) | xr.where(
        insensitive & s40.notnull(), K.FLAG_VALIDITY, 0
    )
    out = xr.Dataset(
        {
            "ms": ms.assign_attrs(
                units="1", long_name="relative surface soil moisture (degree of saturation)"
            ),
            "sigma0_dry": dry.assign_attrs(
                units="dB", long_name="dry reference backscatter at 40 deg"
            ),
            "sigma0_wet": wet.assign_attrs(
                units="dB", long_name="wet reference backscatter at 40 deg"
            ),
            "sensitivity": sens.assign_attrs(
                units="dB", long_name="backscatter sensitivity wet - dry"
            ),
            "sm_flag": flag.astype(np.uint8).assign_attrs(flag_attrs("change detection")),
        }
    )
    if theta_r is not None and theta_s is not None:
        tr = entry(theta_r, "m3 m-3", "theta_r")
        ts = entry(theta_s, "m3 m-3", "theta_s")
        out["sm"] = (tr + ms * (ts - tr)).assign_attrs(
            _SM_ATTRS, long_name="surface soil moisture (change detection)"
        )
    if t_char_days is not None:
        out["swi"] = swi_filter(ms, t_char_days, dim=dim)
    out.attrs["history"] = (
        f"change_detection(dry={dry_percentile}%, wet={wet_percentile}%, reference={reference_deg} deg)"
        " (Wagner et al. 1999; Bauer-Marschallinger et al. 2019)"
    )
    return out


# ---------------------------------------------------------------------- calibration
def calibrate_water_cloud(
    sigma0,
    sm,
    veg,
    incidence_deg,
    veg2=None,
    x0=(0.1, 0.3, -15.0, 30.0),
    bounds=((1e-6, 1e-6, -40.0, 1e-3), (5.0, 5.0, 5.0, 200.0)),
) -> dict:
    """Fit the water cloud parameters A, B, C, D (linear soil term) by least squares in dB.

    Minimises Σ(σ⁰_model(θ, V, θ_inc; A, B, C, D) − σ⁰_obs)² over the jointly valid samples
    with the bounds A > 0, B > 0, D > 0 (SCIENCE.md §A1), using the same forward model as
    the retrieval (:func:`xldas.physics.water_cloud_canopy`'s NumPy form). The samples (a
    station's time series, or a set of calibration pixels) are read into memory: calibrate
    on a sample, then retrieve lazily with the result as ``params``.

    Parameters
    ----------
    sigma0 : observed σ⁰ (dB). sm : in-situ or model soil moisture (m3 m-3).
    veg, veg2 : vegetation descriptors V₁, V₂. incidence_deg : incidence angle (degrees).
    x0, bounds : start and bounds of (A, B, C, D).

    Returns
    -------
    dict with ``a``, ``b``, ``c``, ``d``, ``rmse_db`` and ``n`` (samples used).

    Examples
    --------
    >>> import numpy as np
    >>> from xldas.physics import water_cloud_backscatter
    >>> from xldas.retrieval import calibrate_water_cloud
    >>> rng = np.random.default_rng(0)
    >>> sm = rng.uniform(0.05, 0.4, 200); lai = rng.uniform(0.2, 3.0, 200); inc = rng.uniform(30, 45, 200)
    >>> s0 = water_cloud_backscatter(sm, lai, lai, inc, 0.12, 0.25, -16.0, 25.0)
    >>> p = calibrate_water_cloud(s0, sm, lai, inc)
    >>> [round(p[k], 3) for k in "abcd"]
    [0.12, 0.25, -16.0, 25.0]
    """
    from scipy.optimize import least_squares

    arrs = [np.asarray(v, dtype=float).ravel() for v in np.broadcast_arrays(
        *(np.asarray(getattr(v, "data", v)) for v in (sigma0, sm, veg, veg if veg2 is None else veg2, incidence_deg))
    )]  # fmt: skip
    s0, theta, v1, v2, inc = arrs
    ok = np.isfinite(s0) & np.isfinite(theta) & np.isfinite(v1) & np.isfinite(v2) & np.isfinite(inc)
    if ok.sum() < 4:
        raise ParameterRangeError(f"calibrate_water_cloud needs ≥ 4 valid samples; got {ok.sum()}")
    s0, theta, v1, v2, inc = (a[ok] for a in (s0, theta, v1, v2, inc))

    def resid(x):
        a, b, c, d = x
        return wcm_forward_np(c + d * theta, v1, v2, inc, a, b) - s0

    fit = least_squares(resid, np.asarray(x0, dtype=float), bounds=bounds, x_scale="jac")
    a, b, c, d = (float(v) for v in fit.x)
    return {
        "a": a,
        "b": b,
        "c": c,
        "d": d,
        "rmse_db": float(np.sqrt(np.mean(fit.fun**2))),
        "n": int(ok.sum()),
    }
