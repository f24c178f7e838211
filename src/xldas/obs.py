"""Observation operators: map a model state (+ parameters) to predicted observations.

Each operator is a small frozen dataclass of configuration, built only on
:mod:`xldas.physics` (no formula is written here). Calling it,
``op(state, params) -> DataArray | Dataset``, returns the predicted observations for every
member (and cell) of ``state``, lazily, named like the observed variables listed in
``op.variables``:

- :class:`TauOmega` — passive microwave brightness temperatures ``tb_h``/``tb_v`` (K), with
  presets :meth:`TauOmega.smap` (L-band) and :meth:`TauOmega.amsr2` (C/X band);
- :class:`WaterCloud` — radar backscatter ``sigma0_<pol>`` (dB), e.g. Sentinel-1 VV/VH;
- :class:`CosmicRay` — cosmic-ray probe ``neutron_count`` (counts per hour), with the D86
  vertical weighting over the model layers;
- :class:`Identity` — a state variable as observed (retrieved soil moisture, SWE).

State and parameters follow DESIGN.md: ``sm`` and ``tsoil`` (member?, layer, lat, lon) with
coordinate ``depth_bottom`` (m); parameters ``sand``, ``clay`` (fractions), ``bulk_density``
(g cm-3), vegetation (``tau``, ``vwc`` or ``ndvi``; ``lai`` for the water cloud model).
Parameters of an operator given as a string name a variable of ``params`` (per-cell values).

Examples
--------
>>> import numpy as np, xarray as xr, xldas
>>> state = xr.Dataset(
...     {"sm": (("layer", "lat", "lon"), np.full((2, 1, 1), 0.25), {"units": "m3 m-3"}),
...      "tsoil": (("layer", "lat", "lon"), np.full((2, 1, 1), 300.0), {"units": "K"})},
...     coords={"depth_bottom": ("layer", [0.05, 1.0])})
>>> params = xr.Dataset({"clay": (("lat", "lon"), [[0.2]], {"units": "1"}),
...                      "vwc": (("lat", "lon"), [[0.0]], {"units": "kg m-2"})})
>>> tb = xldas.obs.TauOmega.smap()(state, params)
>>> sorted(tb.data_vars), tb.tb_v.attrs["units"]
(['tb_h', 'tb_v'], 'K')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from xldas._xr import add_history
from xldas.errors import DimensionError, ObservationError, ParameterRangeError, UnknownOptionError
from xldas.physics import (
    cosmic_ray_neutrons,
    crns_weighted_sm,
    dielectric_dobson,
    dielectric_mironov,
    dubois1995,
    effective_temperature,
    oh1992,
    oh2004,
    tau_omega_tb,
    vegetation_optical_depth,
    vegetation_water_content,
    water_cloud_backscatter,
    water_cloud_canopy,
)
from xldas.physics._microwave_kernels import DOBSON_FREQ_RANGE, MIRONOV_FREQ_RANGE

__all__ = ["CosmicRay", "Identity", "TauOmega", "WaterCloud", "observe"]

LAYER = "layer"
_LAYER_COORDS = ["layer", "depth_bottom", "dz"]
_DIELECTRIC_RANGES = {"mironov": MIRONOV_FREQ_RANGE, "dobson": DOBSON_FREQ_RANGE}


# ------------------------------------------------------------------------ helpers
def _var(ds: xr.Dataset | None, name: str, who: str, what: str = "params") -> xr.DataArray:
    if ds is None or name not in ds.variables:
        have = sorted(map(str, ds.data_vars)) if ds is not None else []
        raise ObservationError(f"{who} needs variable {name!r} in {what}; {what} has {have}")
    return ds[name]


def _value(value: Any, params: xr.Dataset | None, who: str) -> Any:
    """An operator parameter: a number, or the name of a per-cell variable of ``params``."""
    return _var(params, value, who) if isinstance(value, str) else value


def _surface(state: xr.Dataset, name: str, who: str) -> xr.DataArray:
    da = _var(state, name, who, "state")
    if LAYER in da.dims:
        da = da.isel({LAYER: 0})
    return da.drop_vars(_LAYER_COORDS, errors="ignore")


def _in_range(name: str, value: float, lo: float, hi: float, who: str) -> None:
    if not lo <= value <= hi:
        raise ParameterRangeError(
            f"{who}: {name}={value:g} is outside the operator's validity [{lo:g}, {hi:g}]"
        )


def _pack(arrays: dict[str, xr.DataArray], op: Any) -> xr.DataArray | xr.Dataset:
    for name, da in arrays.items():
        da.name = name
        da.attrs["xldas_operator"] = repr(op)
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    return xr.Dataset(arrays)


# -------------------------------------------------------------------------- TauOmega
@dataclass(frozen=True, kw_only=True)
class TauOmega:
    """Passive microwave operator: top-layer soil moisture → brightness temperatures (K).

    ε from the top-layer ``sm`` through a dielectric model; T_s = T_c = T_eff from
    ``tsoil`` (Choudhury et al. 1982: T_eff = T_deep + C·(T_surf − T_deep), T_surf the top
    layer, T_deep the first layer reaching ``deep_depth_m``); τ = b·VWC; TB from
    :func:`xldas.physics.tau_omega_tb`.

    Vegetation is taken from ``params``, first match of: ``tau`` (optical depth), ``vwc``
    (kg m-2), ``ndvi`` with ``ndvi_max`` and ``ndvi_min`` (SMAP VWC; ``stem_factor`` from
    params or this operator).

    Parameters
    ----------
    frequency_ghz : radiometer frequency (GHz), within the dielectric model's validity.
    incidence_deg : incidence angle (degrees, 0–65: zero-order RT validity), or the name of
        a ``params`` variable holding per-cell angles.
    pol : ``"h"``, ``"v"`` or a tuple of both.
    dielectric : ``"mironov"`` (needs ``clay``) or ``"dobson"`` (``sand``, ``clay``,
        ``bulk_density``, and T_eff as soil temperature).
    b, omega, h, q, n_h, n_v : vegetation and roughness parameters (numbers or names of
        ``params`` variables).
    teff_c : Choudhury coefficient C (0.246 at L-band; 1 uses the top layer alone).
    deep_depth_m : depth (m) of T_deep.
    stem_factor : SMAP stem factor (kg m-2) when ``params`` has none.
    """

    frequency_ghz: float = 1.41
    incidence_deg: float | str = 40.0
    pol: str | tuple[str, ...] = ("h", "v")
    dielectric: str = "mironov"
    b: float | str = 0.11
    omega: float | str = 0.05
    h: float | str = 0.1
    q: float | str = 0.0
    n_h: float = 2.0
    n_v: float = 2.0
    teff_c: float = 0.246
    deep_depth_m: float = 0.5
    stem_factor: float = 0.0

    INCIDENCE_RANGE = (0.0, 65.0)

    def __post_init__(self):
        pol = (self.pol,) if isinstance(self.pol, str) else tuple(self.pol)
        for p in pol:
            if p not in ("h", "v"):
                raise UnknownOptionError("pol", p, ("h", "v"))
        object.__setattr__(self, "pol", pol)
        if self.dielectric not in _DIELECTRIC_RANGES:
            raise UnknownOptionError("dielectric", self.dielectric, _DIELECTRIC_RANGES)
        who = f"TauOmega(dielectric={self.dielectric!r})"
        _in_range("frequency_ghz", self.frequency_ghz, *_DIELECTRIC_RANGES[self.dielectric], who)
        if not isinstance(self.incidence_deg, str):
            _in_range("incidence_deg", self.incidence_deg, *self.INCIDENCE_RANGE, "TauOmega")
        _in_range("teff_c", self.teff_c, 0.0, 1.0, "TauOmega")

    @classmethod
    def smap(cls, **kwargs) -> TauOmega:
        """SMAP L-band radiometer: 1.41 GHz, 40°, Mironov, b = 0.11, ω = 0.05, h = 0.1, C = 0.246."""
        return cls(**{"frequency_ghz": 1.41, "incidence_deg": 40.0, **kwargs})

    @classmethod
    def amsr2(cls, band: str = "c", **kwargs) -> TauOmega:
        """AMSR2 at 55°: C band (6.925 GHz) or X band (10.65 GHz).

        At C/X band the emission comes from the top centimetres, so T_eff is the top-layer
        temperature (C = 1). Starting vegetation and roughness values (calibrate them): ω = 0.06,
        h = 0.1, b = 0.25 (C) / 0.35 (X) m2 kg-1 (τ grows with frequency).
        """
        bands = {"c": (6.925, 0.25), "x": (10.65, 0.35)}
        if band.lower() not in bands:
            raise UnknownOptionError("AMSR2 band", band, bands)
        f, b = bands[band.lower()]
        defaults = {
            "frequency_ghz": f,
            "incidence_deg": 55.0,
            "b": b,
            "omega": 0.06,
            "h": 0.1,
            "teff_c": 1.0,
        }
        return cls(**{**defaults, **kwargs})

    @property
    def variables(self) -> tuple[str, ...]:
        """Names of the predicted observations (``tb_h``, ``tb_v``)."""
        return tuple(f"tb_{p}" for p in self.pol)

    def effective_temperature(self, state: xr.Dataset) -> xr.DataArray:
        """T_eff (K) from the layered soil temperature of ``state`` (lazy)."""
        tsoil = _var(state, "tsoil", "TauOmega", "state")
        if LAYER not in tsoil.dims:
            return effective_temperature(tsoil, tsoil, self.teff_c)
        t_surf = tsoil.isel({LAYER: 0})
        if "depth_bottom" in tsoil.coords:
            db = tsoil["depth_bottom"].reset_coords(drop=True)
            n = db.sizes[LAYER]
            last = xr.DataArray(np.arange(n) == n - 1, dims=LAYER)
            deep = (db >= self.deep_depth_m) | last
            first = deep & (deep.cumsum(LAYER) == 1)
            t_deep = (tsoil * first).sum(LAYER).assign_attrs(tsoil.attrs)
        else:
            t_deep = tsoil.isel({LAYER: -1})
        t_eff = effective_temperature(t_surf, t_deep, self.teff_c)
        return t_eff.drop_vars(_LAYER_COORDS, errors="ignore")

    def optical_depth(self, params: xr.Dataset) -> xr.DataArray | float:
        """Vegetation optical depth τ from ``params`` (``tau``, ``vwc`` or ``ndvi``)."""
        if params is not None and "tau" in params:
            return params["tau"]
        b = _value(self.b, params, "TauOmega")
        if params is not None and "vwc" in params:
            return vegetation_optical_depth(params["vwc"], b)
        if params is not None and "ndvi" in params:
            stem = params["stem_factor"] if "stem_factor" in params else self.stem_factor
            vwc = vegetation_water_content(
                params["ndvi"],
                _var(params, "ndvi_max", "TauOmega"),
                _var(params, "ndvi_min", "TauOmega"),
                stem,
            )
            return vegetation_optical_depth(vwc, b)
        have = sorted(map(str, params.data_vars)) if params is not None else []
        raise ObservationError(
            f"TauOmega needs vegetation in params: 'tau', 'vwc' (kg m-2) or 'ndvi' with "
            f"'ndvi_max' and 'ndvi_min'; params has {have}"
        )

    def __call__(self, state: xr.Dataset, params: xr.Dataset) -> xr.DataArray | xr.Dataset:
        sm = _surface(state, "sm", "TauOmega")
        t_eff = self.effective_temperature(state)
        clay = _var(params, "clay", "TauOmega")
        if self.dielectric == "mironov":
            eps = dielectric_mironov(sm, clay, self.frequency_ghz)
        else:
            eps = dielectric_dobson(
                sm,
                _var(params, "sand", "TauOmega"),
                clay,
                self.frequency_ghz,
                temperature_c=t_eff,
                bulk_density=_var(params, "bulk_density", "TauOmega"),
            )
        tb_h, tb_v = tau_omega_tb(
            eps,
            t_eff,
            t_eff,
            self.optical_depth(params),
            _value(self.omega, params, "TauOmega"),
            _value(self.h, params, "TauOmega"),
            _value(self.incidence_deg, params, "TauOmega"),
            q=_value(self.q, params, "TauOmega"),
            n_h=self.n_h,
            n_v=self.n_v,
        )
        out = {"tb_h": tb_h, "tb_v": tb_v}
        return _pack({f"tb_{p}": out[f"tb_{p}"] for p in self.pol}, self)


# ------------------------------------------------------------------------ WaterCloud
_SOIL_MODELS = ("linear", "oh1992", "oh2004", "dubois1995")
_RADAR_POLS = ("vv", "vh", "hv", "hh")


@dataclass(frozen=True, kw_only=True)
class WaterCloud:
    """Radar operator: water cloud model over a bare-soil model → σ⁰ (dB).

    σ⁰ = A·V·cosθ·(1 − γ²) + γ²·σ⁰_soil with V₁ = V₂ = ``params[vegetation]``; the soil term
    is ``C + D·sm`` (``soil_model="linear"``) or Oh 1992, Oh 2004 or Dubois 1995 from the
    top-layer ``sm`` (Oh 1992 and Dubois 1995 through a dielectric model, with ``clay``).
    A, B, C, D are site- and polarisation-specific: calibrate them (SCIENCE.md §A1).

    Parameters
    ----------
    pol : ``"vv"``, ``"vh"``, ``"hh"`` or ``"hv"`` (Dubois 1995: co-pol only).
    a, b, c, d : water cloud parameters (numbers or names of ``params`` variables); ``c``
        and ``d`` only with ``soil_model="linear"``.
    incidence_deg : local incidence angle (degrees), or the name of a ``params`` variable.
    vegetation : name of the vegetation descriptor in ``params`` (``"lai"``, ``"ndvi"``, ``"vwc"``).
    soil_model : ``"linear"``, ``"oh1992"``, ``"oh2004"`` or ``"dubois1995"``.
    ks : rms height × wavenumber for the physical soil models.
    frequency_ghz : radar frequency (GHz; Sentinel-1 5.405).
    dielectric : ``"mironov"`` or ``"dobson"`` for Oh 1992 / Dubois 1995.
    """

    pol: str = "vv"
    a: float | str
    b: float | str
    c: float | str | None = None
    d: float | str | None = None
    incidence_deg: float | str = 39.0
    vegetation: str = "lai"
    soil_model: str = "linear"
    ks: float | str = 0.5
    frequency_ghz: float = 5.405
    dielectric: str = "mironov"

    INCIDENCE_RANGE = (15.0, 65.0)

    def __post_init__(self):
        if self.pol not in _RADAR_POLS:
            raise UnknownOptionError("pol", self.pol, _RADAR_POLS)
        if self.soil_model not in _SOIL_MODELS:
            raise UnknownOptionError("soil_model", self.soil_model, _SOIL_MODELS)
        if self.dielectric not in _DIELECTRIC_RANGES:
            raise UnknownOptionError("dielectric", self.dielectric, _DIELECTRIC_RANGES)
        who = f"WaterCloud(soil_model={self.soil_model!r})"
        if self.soil_model == "linear" and (self.c is None or self.d is None):
            raise ParameterRangeError(f"{who} needs c (dB) and d (dB per m3 m-3)")
        if self.soil_model == "dubois1995" and self.pol not in ("vv", "hh"):
            raise UnknownOptionError("pol for dubois1995", self.pol, ("vv", "hh"))
        lo, hi = self.INCIDENCE_RANGE
        if self.soil_model == "dubois1995":
            lo = 30.0
        if not isinstance(self.incidence_deg, str):
            _in_range("incidence_deg", self.incidence_deg, lo, hi, who)
        if self.soil_model in ("oh1992", "dubois1995"):
            _in_range(
                "frequency_ghz", self.frequency_ghz, *_DIELECTRIC_RANGES[self.dielectric], who
            )
        if self.soil_model == "dubois1995":
            _in_range("frequency_ghz", self.frequency_ghz, 1.5, 11.0, who)

    @classmethod
    def sentinel1(cls, pol: str = "vv", **kwargs) -> WaterCloud:
        """Sentinel-1 C-band (5.405 GHz, λ = 5.55 cm), IW mid-swath incidence 39°."""
        return cls(**{"pol": pol, "frequency_ghz": 5.405, "incidence_deg": 39.0, **kwargs})

    @property
    def variables(self) -> tuple[str, ...]:
        """Name of the predicted observation (``sigma0_<pol>``)."""
        return (f"sigma0_{self.pol}",)

    def soil_backscatter(self, sm, params: xr.Dataset, incidence):
        """Bare-soil σ⁰ (dB) of the physical soil models (not for ``"linear"``)."""
        ks = _value(self.ks, params, "WaterCloud")
        pol = {"hv": "vh"}.get(self.pol, self.pol)
        if self.soil_model == "oh2004":
            vv, hh, vh = oh2004(sm, ks, incidence)
            return {"vv": vv, "hh": hh, "vh": vh}[pol]
        clay = _var(params, "clay", "WaterCloud")
        if self.dielectric == "mironov":
            eps = dielectric_mironov(sm, clay, self.frequency_ghz)
        else:
            eps = dielectric_dobson(
                sm,
                _var(params, "sand", "WaterCloud"),
                clay,
                self.frequency_ghz,
                bulk_density=_var(params, "bulk_density", "WaterCloud"),
            )
        if self.soil_model == "oh1992":
            vv, hh, hv = oh1992(eps, ks, incidence)
            return {"vv": vv, "hh": hh, "vh": hv}[pol]
        vv, hh = dubois1995(eps, ks, incidence, self.frequency_ghz)
        return {"vv": vv, "hh": hh}[pol]

    def __call__(self, state: xr.Dataset, params: xr.Dataset) -> xr.DataArray:
        sm = _surface(state, "sm", "WaterCloud")
        veg = _var(params, self.vegetation, "WaterCloud")
        inc = _value(self.incidence_deg, params, "WaterCloud")
        a = _value(self.a, params, "WaterCloud")
        b = _value(self.b, params, "WaterCloud")
        if self.soil_model == "linear":
            c = _value(self.c, params, "WaterCloud")
            d = _value(self.d, params, "WaterCloud")
            sigma = water_cloud_backscatter(sm, veg, veg, inc, a, b, c, d)
        else:
            sigma = water_cloud_canopy(self.soil_backscatter(sm, params, inc), veg, veg, inc, a, b)
        sigma.attrs["long_name"] = f"backscattering coefficient, {self.pol.upper()} polarisation"
        return _pack({self.variables[0]: sigma}, self)


# ------------------------------------------------------------------------- CosmicRay
@dataclass(frozen=True, kw_only=True)
class CosmicRay:
    """Cosmic-ray neutron probe operator: layered soil moisture → neutron count (cph).

    H(x) = N₀·[a₀/(θ̄_g + θ_off + a₂) + a₁] with θ̄ the D86-weighted average of the model
    layers (:func:`xldas.physics.crns_weighted_sm`, ``n_iter`` fixed-point iterations) and
    :func:`xldas.physics.cosmic_ray_neutrons`. Snow is not modelled: mask snow-covered dates.

    Parameters
    ----------
    n0 : dry-soil count rate N₀ (counts per hour), number or name of a ``params`` variable.
    bulk_density, lattice_water, soc : numbers or ``params`` variable names (g cm-3, g g-1).
    distance_m : distance from the probe at which D86 is taken (m).
    n_iter : fixed-point iterations for D86(θ̄).
    """

    n0: float | str
    bulk_density: float | str = "bulk_density"
    lattice_water: float | str = 0.0
    soc: float | str = 0.0
    distance_m: float = 0.0
    n_iter: int = 3

    def __post_init__(self):
        if not isinstance(self.n0, str) and not self.n0 > 0:
            raise ParameterRangeError(f"CosmicRay: n0 must be positive; got {self.n0}")
        if self.n_iter < 1:
            raise ParameterRangeError(f"CosmicRay: n_iter must be at least 1; got {self.n_iter}")
        if self.distance_m < 0:
            raise ParameterRangeError(f"CosmicRay: distance_m must be >= 0; got {self.distance_m}")

    @property
    def variables(self) -> tuple[str, ...]:
        return ("neutron_count",)

    def __call__(self, state: xr.Dataset, params: xr.Dataset | None = None) -> xr.DataArray:
        sm = _var(state, "sm", "CosmicRay", "state")
        if LAYER not in sm.dims:
            raise DimensionError(f"CosmicRay needs layered 'sm' with a {LAYER!r} dimension")
        if "depth_bottom" not in sm.coords:
            raise DimensionError("CosmicRay needs the 'depth_bottom' coordinate (m) of the layers")
        rho = _value(self.bulk_density, params, "CosmicRay")
        lattice = _value(self.lattice_water, params, "CosmicRay")
        soc = _value(self.soc, params, "CosmicRay")
        theta = crns_weighted_sm(
            sm,
            bulk_density=rho,
            lattice_water=lattice,
            soc=soc,
            distance_m=self.distance_m,
            n_iter=self.n_iter,
        )
        n = cosmic_ray_neutrons(theta, _value(self.n0, params, "CosmicRay"), rho, lattice, soc)
        return _pack({"neutron_count": n.drop_vars(_LAYER_COORDS, errors="ignore")}, self)


# -------------------------------------------------------------------------- Identity
@dataclass(frozen=True)
class Identity:
    """A state variable observed as it is (retrieved soil moisture, SWE ...).

    Parameters
    ----------
    variable : name of the state variable (``"sm"``, ``"swe"`` ...), also the observation's name.
    layer : layer index to select (``0``: surface soil moisture); None for variables without layers.
    """

    variable: str
    layer: int | None = None

    @property
    def variables(self) -> tuple[str, ...]:
        return (self.variable,)

    def __call__(self, state: xr.Dataset, params: xr.Dataset | None = None) -> xr.DataArray:
        da = _var(state, self.variable, repr(self), "state")
        if self.layer is not None:
            if LAYER not in da.dims:
                raise DimensionError(f"{self!r}: {self.variable!r} has no {LAYER!r} dimension")
            if not -da.sizes[LAYER] <= self.layer < da.sizes[LAYER]:
                raise ParameterRangeError(
                    f"{self!r}: layer {self.layer} out of range for {da.sizes[LAYER]} layers"
                )
            da = da.isel({LAYER: self.layer}).drop_vars(_LAYER_COORDS, errors="ignore")
        elif LAYER in da.dims:
            raise DimensionError(f"{self!r}: {self.variable!r} is layered; give layer=")
        out = da.copy(deep=False)
        out.attrs = dict(da.attrs)
        return _pack({self.variable: out}, self)


# --------------------------------------------------------------------------- observe
def observe(state: xr.Dataset, operator, params: xr.Dataset | None = None):
    """Predicted observations of ``state`` (per member, lazily): ``operator(state, params)``.

    Parameters
    ----------
    state : model state Dataset (``sm``, ``tsoil`` ... with optional ``member`` dim).
    operator : an operator of :mod:`xldas.obs` (anything with ``variables`` and a call).
    params : parameter Dataset the operator reads (texture, vegetation ...).

    Returns
    -------
    DataArray or Dataset named like ``operator.variables``.
    """
    if not isinstance(state, xr.Dataset):
        raise TypeError("observe needs a state Dataset")
    if not callable(operator) or not hasattr(operator, "variables"):
        raise TypeError(
            f"{operator!r} is not an observation operator (needs a call and 'variables')"
        )
    out = operator(state, params)
    items = [out] if isinstance(out, xr.DataArray) else list(out.data_vars.values())
    for da in items:
        add_history(da, f"xldas.obs.observe with {type(operator).__name__}")
    return out
