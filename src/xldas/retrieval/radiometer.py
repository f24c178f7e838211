"""Surface soil moisture from passive microwave brightness temperatures (SCIENCE.md §A3).

Inverts the zero-order tau-omega model (:func:`xldas.physics.tau_omega_tb`, with Mironov or
Dobson permittivity, Fresnel and Wang–Choudhury rough reflectivities) for soil moisture:

* ``"sca-v"`` / ``"sca-h"``: single-channel algorithm (SMAP baseline SCA-V): τ from
  vegetation water content (τ = b·VWC, VWC from NDVI by the SMAP ancillary formula), then
  Brent's method on f(θ) = TB_model(θ) − TB_obs over [sm_min, θ_max] (TB decreases with θ).
* ``"dca"``: dual-channel algorithm, retrieves θ and τ from TB_V and TB_H together (τ found by
  Brent's method on the H-pol misfit after a V-pol solve at each τ).

The per-pixel solvers are numba gufuncs calling the physics kernels (NumPy reference:
vectorised bisection). Masks: frozen soil (T_eff < 273.15 K), open water (water fraction
above ``water_max``, or TB below the wet bound by more than NEΔT), dense vegetation (VWC
above ``vwc_max``: value kept, flag set). TB above the dry bound returns the lower bound with
a flag (SCIENCE.md §A3).

Sensor presets (:data:`SENSORS`, the same numbers as :meth:`xldas.obs.TauOmega.smap` and
:meth:`~xldas.obs.TauOmega.amsr2`): SMAP L-band 1.41 GHz, 40°; AMSR2 C band 6.925 GHz and
X band 10.65 GHz, 55°.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xldas._xr import apply_kernel
from xldas.errors import DimensionError, ParameterRangeError, UnknownOptionError
from xldas.physics import vegetation_optical_depth, vegetation_water_content
from xldas.physics._common import dispatch, entry
from xldas.retrieval import _kernels as K
from xldas.retrieval.sar import DIELECTRIC, flag_attrs

__all__ = ["SENSORS", "soil_moisture_radiometer"]

SENSORS = {
    "smap": {"frequency_ghz": 1.41, "incidence_deg": 40.0, "b": 0.11, "omega": 0.05, "h": 0.1},
    "amsr2-c": {"frequency_ghz": 6.925, "incidence_deg": 55.0, "b": 0.25, "omega": 0.06, "h": 0.1},
    "amsr2-x": {"frequency_ghz": 10.65, "incidence_deg": 55.0, "b": 0.35, "omega": 0.06, "h": 0.1},
}
METHODS = {"sca-v": K.ALG_SCAV, "sca-h": K.ALG_SCAH, "dca": K.ALG_DCA}

#: soil and mask defaults (override with ``params=``)
DEFAULT_PARAMS = {
    "sand": 0.4,
    "clay": 0.2,
    "bulk_density": 1.4,  # g cm-3
    "sm_min": 0.02,
    "nedt": 1.3,  # K, radiometric noise used in the bound tests
    "vwc_max": 5.0,  # kg m-2, SMAP retrieval limit
    "water_max": 0.05,  # open-water fraction limit
    "stem_factor": 0.0,  # kg m-2, SMAP VWC ancillary
}


def _var(ds, names, what):
    for n in names:
        if n in ds:
            return ds[n]
    return None if what is None else _missing(what, names)


def _missing(what, names):
    raise DimensionError(f"{what} is needed: pass it or give the Dataset one of {list(names)}")


def soil_moisture_radiometer(
    tb,
    method: str = "sca-v",
    t_eff=None,
    vwc=None,
    ndvi=None,
    ndvi_max=None,
    ndvi_min=None,
    tau=None,
    water_fraction=None,
    sensor: str = "smap",
    dielectric: str = "mironov",
    params=None,
    *,
    engine: str | None = None,
) -> xr.Dataset:
    """Soil moisture from brightness temperatures by inverting the tau-omega model.

    Parameters
    ----------
    tb : Dataset with ``tb_v`` and/or ``tb_h`` (K) and optionally ``t_eff`` (or ``tsurf``)
        and ``vwc`` / ``ndvi``; or a DataArray of TB in the polarisation of ``method``.
    method : ``"sca-v"``, ``"sca-h"`` or ``"dca"``.
    t_eff : effective soil (= canopy) temperature (K; DataArrays in °C are converted).
    vwc : vegetation water content (kg m-2). If omitted it is computed from ``ndvi``
        (with ``ndvi_max``/``ndvi_min``, default the NDVI itself and 0) by
        :func:`xldas.physics.vegetation_water_content`. Not needed for DCA.
    tau : nadir optical depth; overrides ``b``·VWC.
    water_fraction : open-water fraction of the footprint (0–1), optional.
    sensor : ``"smap"``, ``"amsr2-c"`` or ``"amsr2-x"`` (frequency, incidence, b, ω, h).
    dielectric : ``"mironov"`` (SMAP baseline) or ``"dobson"``.
    params : overrides of the sensor preset and :data:`DEFAULT_PARAMS` (``b``, ``omega``,
        ``h``, ``incidence_deg``, ``frequency_ghz``, ``sand``, ``clay``, ``bulk_density``,
        ``sm_min``, ``sm_max`` (default porosity 1 − ρ_b/2.65), ``nedt``, ``vwc_max``,
        ``water_max``, ``stem_factor``); numbers or DataArrays.
    engine : ``"numba"`` (default) or ``"numpy"`` (reference).

    Returns
    -------
    Dataset: ``sm`` (m3 m-3), ``tau`` (optical depth used or retrieved), ``sm_flag`` (bit flags).

    References
    ----------
    O'Neill et al., SMAP L2/L3 Radiometer Soil Moisture ATBD (JPL D-66480); Mo et al. (1982)
    JGR 87:11229; Jackson & Schmugge (1991) RSE 36:203.

    Examples
    --------
    >>> import xarray as xr
    >>> from xldas.physics import dielectric_mironov, tau_omega_tb
    >>> from xldas.retrieval import soil_moisture_radiometer
    >>> tb_h, tb_v = tau_omega_tb(dielectric_mironov(0.25, 0.2, 1.41), 295.0, 295.0,
    ...                           tau=0.11 * 1.5, omega=0.05, h=0.1, incidence_deg=40.0)
    >>> ds = xr.Dataset({"tb_v": ("x", [float(tb_v)], {"units": "K"}),
    ...                  "tb_h": ("x", [float(tb_h)], {"units": "K"})})
    >>> out = soil_moisture_radiometer(ds, "sca-v", t_eff=295.0, vwc=1.5)
    >>> round(float(out.sm[0]), 6)
    0.25
    >>> out = soil_moisture_radiometer(ds, "dca", t_eff=295.0)
    >>> round(float(out.sm[0]), 6), round(float(out.tau[0]), 6)
    (0.25, 0.165)
    """
    if method not in METHODS:
        raise UnknownOptionError("method", method, METHODS)
    if sensor not in SENSORS:
        raise UnknownOptionError("sensor", sensor, SENSORS)
    if dielectric not in DIELECTRIC:
        raise UnknownOptionError("dielectric", dielectric, DIELECTRIC)
    p = {**SENSORS[sensor], **DEFAULT_PARAMS, **(params or {})}
    if isinstance(tb, xr.Dataset):
        ds = tb
        tb_v = _var(ds, ("tb_v",), None)
        tb_h = _var(ds, ("tb_h",), None)
        t_eff = t_eff if t_eff is not None else _var(ds, ("t_eff", "tsurf", "tsoil_eff"), None)
        vwc = vwc if vwc is not None else _var(ds, ("vwc",), None)
        ndvi = ndvi if ndvi is not None else _var(ds, ("ndvi",), None)
        tau = tau if tau is not None else _var(ds, ("tau",), None)
        water_fraction = (
            water_fraction if water_fraction is not None else _var(ds, ("water_fraction",), None)
        )
    else:
        tb_v, tb_h = (None, tb) if method == "sca-h" else (tb, None)
    need = {"sca-v": ("tb_v",), "sca-h": ("tb_h",), "dca": ("tb_v", "tb_h")}[method]
    have = {"tb_v": tb_v, "tb_h": tb_h}
    missing = [n for n in need if have[n] is None]
    if missing:
        raise DimensionError(f"method {method!r} needs brightness temperatures {missing}")
    if t_eff is None:
        raise ParameterRangeError("the effective temperature t_eff (K) is needed")
    if vwc is None and ndvi is not None:
        nmax = ndvi if ndvi_max is None else ndvi_max
        vwc = vegetation_water_content(
            ndvi, nmax, 0.0 if ndvi_min is None else ndvi_min, p["stem_factor"]
        )
    if tau is None:
        if vwc is None and method != "dca":
            raise ParameterRangeError(f"method {method!r} needs vwc=, ndvi= or tau=")
        tau = vegetation_optical_depth(vwc, p["b"]) if vwc is not None else np.nan
    rho = entry(p["bulk_density"], "g cm-3", "bulk_density", 0.1, 2.65)
    sm_max = p.get("sm_max", 1.0 - rho / 2.65)
    args = (
        entry(tb_v if tb_v is not None else np.nan, "K", "tb_v", 0.0, 400.0),
        entry(tb_h if tb_h is not None else np.nan, "K", "tb_h", 0.0, 400.0),
        entry(t_eff, "K", "t_eff", 0.0, 400.0),
        entry(tau, "1", "tau", 0.0),
        entry(np.nan if vwc is None else vwc, "kg m-2", "vwc"),
        entry(p["omega"], "1", "omega", 0.0, 1.0),
        entry(p["h"], "1", "h", 0.0),
        entry(p["incidence_deg"], "degree", "incidence_deg", 0.0, 90.0, closed_hi=False),
        entry(p["sand"], "1", "sand", 0.0, 1.0),
        entry(p["clay"], "1", "clay", 0.0, 1.0),
        rho,
        entry(p["frequency_ghz"], "GHz", "frequency_ghz", 0.3, 26.5),
        entry(p["sm_min"], "m3 m-3", "sm_min", 0.0, 1.0),
        entry(sm_max, "m3 m-3", "sm_max", 0.0, 1.0),
        entry(p["nedt"], "K", "nedt", 0.0),
        entry(0.0 if water_fraction is None else water_fraction, "1", "water_fraction"),
        entry(p["vwc_max"], "kg m-2", "vwc_max"),
        entry(p["water_max"], "1", "water_max"),
        METHODS[method],
        DIELECTRIC[dielectric],
    )
    sm, tau_out, flag = apply_kernel(
        dispatch(K.radiometer_invert_kernel, K.radiometer_invert_np, engine),
        *args,
        output_core_dims=((), (), ()),
        output_dtypes=[np.float64, np.float64, np.uint8],
        names=["sm", "tau", "sm_flag"],
        attrs=[
            {
                "units": "m3 m-3",
                "standard_name": "volume_fraction_of_condensed_water_in_soil",
                "long_name": f"surface soil moisture ({method.upper()}, {sensor}, {dielectric})",
            },
            {
                "units": "1",
                "long_name": "vegetation optical depth at nadir"
                + (" (retrieved)" if method == "dca" else ""),
            },
            flag_attrs(f"{method.upper()} soil moisture"),
        ],
        history=f"soil_moisture_radiometer(method={method!r}, sensor={sensor!r}, dielectric={dielectric!r})",
    )
    if not isinstance(sm, xr.DataArray):
        dims = [f"dim_{i}" for i in range(np.ndim(sm))]
        return xr.Dataset({"sm": (dims, sm), "tau": (dims, tau_out), "sm_flag": (dims, flag)})
    return xr.Dataset({"sm": sm, "tau": tau_out, "sm_flag": flag})
