"""The land-model operator on xarray objects: :func:`step`.

Advances a deterministic or ensemble model state through all the forcing times it is
given, lazily, with one gufunc call (:func:`xldas.models._kernels.land_column`) that loops
over time inside and is vectorised over cells and members. See the kernel module for the
physics (SCIENCE.md §B9, §B11).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import xarray as xr

from xldas._cuda import is_device_array
from xldas._xr import add_history, apply_kernel, spatial_dims
from xldas.errors import DimensionError, ForcingError, ParameterRangeError
from xldas.models._kernels import land_column
from xldas.models.parameters import validate_parameters
from xldas.models.perturb import ATTR, ForcingPerturbation, perturb_forcing
from xldas.units import check_units

__all__ = ["FLUX_ATTRS", "FORCING_UNITS", "STATE_ATTRS", "initial_state", "step", "water_storage"]

#: forcing variables the model needs, and their units
FORCING_UNITS = {
    "precip": "kg m-2 s-1",
    "tair": "K",
    "psurf": "Pa",
    "swdown": "W m-2",
    "lwdown": "W m-2",
}
_LAYER_PARAMS = (
    "theta_s",
    "theta_r",
    "theta_fc",
    "theta_wp",
    "b",
    "ksat",
    "psi_sat",
    "root_fraction",
)
_CELL_PARAMS = ("lai", "ddf_snow", "ddf_ice", "glacier_fraction", "albedo")
_PARAM_UNITS = {
    "ksat": "m s-1",
    "psi_sat": "m",
    "ddf_snow": "kg m-2 K-1 d-1",
    "ddf_ice": "kg m-2 K-1 d-1",
}
_DEFAULTS = {"albedo": 0.2, "glacier_fraction": 0.0, "ddf_ice": 6.0}

STATE_ATTRS = {
    "sm": {
        "units": "m3 m-3",
        "long_name": "volumetric soil moisture",
        "standard_name": "volume_fraction_of_condensed_water_in_soil",
    },
    "tsoil": {"units": "K", "long_name": "soil temperature", "standard_name": "soil_temperature"},
    "swe": {
        "units": "kg m-2",
        "long_name": "snow water equivalent",
        "standard_name": "surface_snow_amount",
    },
    "canopy_water": {
        "units": "kg m-2",
        "long_name": "canopy interception store",
        "standard_name": "canopy_water_amount",
    },
}
FLUX_ATTRS = {
    "et": {
        "units": "kg m-2 s-1",
        "long_name": "evapotranspiration (transpiration + soil evaporation + interception loss + sublimation)",
        "standard_name": "water_evapotranspiration_flux",
    },
    "runoff": {
        "units": "kg m-2 s-1",
        "long_name": "surface runoff",
        "standard_name": "surface_runoff_flux",
    },
    "drainage": {
        "units": "kg m-2 s-1",
        "long_name": "drainage at the bottom of the soil column",
        "standard_name": "subsurface_runoff_flux",
    },
    "snowmelt": {
        "units": "kg m-2 s-1",
        "long_name": "snowmelt",
        "standard_name": "surface_snow_melt_flux",
    },
    "glacier_melt": {
        "units": "kg m-2 s-1",
        "long_name": "glacier ice melt (source of water)",
        "standard_name": "land_ice_surface_melt_flux",
    },
}


def _layer_info(state: xr.Dataset, params: xr.Dataset) -> xr.DataArray:
    for src in (state, params):
        if "dz" in src.coords or "dz" in src:
            dz = src["dz"]
            if dz.dims != ("layer",):
                raise DimensionError(f"dz must have the single dimension 'layer', got {dz.dims}")
            return dz.reset_coords(drop=True).astype(np.float64)
    raise DimensionError(
        "no layer thickness 'dz' (coordinate on 'layer') in the state or the parameters"
    )


def _forcing_interval(forcing: xr.Dataset, state: xr.Dataset, dt) -> float:
    times = forcing["time"].values
    if times.size > 1:
        d = np.diff(times).astype("timedelta64[ns]").astype(np.int64)
        if np.any(d != d[0]) or d[0] <= 0:
            raise ForcingError("forcing time steps must be regular and increasing")
        return d[0] / 1e9
    if "time" in state.coords and np.issubdtype(state["time"].dtype, np.datetime64):
        d = (times[0] - state["time"].values).astype("timedelta64[ns]").astype(np.int64)
        if d > 0:
            return d / 1e9
    if dt is not None:
        return _seconds(dt)
    raise ForcingError("cannot infer the forcing interval from one forcing time; pass dt=")


def _seconds(dt) -> float:
    if isinstance(dt, int | float):
        return float(dt)
    return float(
        np.timedelta64(dt if not isinstance(dt, str) else _parse_td(dt), "ns").astype(np.int64)
        / 1e9
    )


def _parse_td(s: str):
    import pandas as pd

    return pd.Timedelta(s).to_timedelta64()


def _land_block(*args, target: str = "parallel"):
    """One block of the model step, dispatched on the array type of the block.

    Device arrays (CuPy chunks, numba device arrays) run the CUDA kernel
    :func:`xldas.models._cuda.land_step`; anything else the CPU gufunc
    :func:`~xldas.models._kernels.land_column` on ``target``.
    """
    if any(is_device_array(a) for a in args):
        from xldas.models._cuda import land_step

        return land_step(*args)
    return land_column(*args, target=target)


def _one_chunk(da: xr.DataArray, dims) -> xr.DataArray:
    if da.chunks is None:
        return da
    need = {d: -1 for d in dims if d in da.dims and len(da.chunksizes[d]) > 1}
    return da.chunk(need) if need else da


def initial_state(
    params: xr.Dataset, sm=None, tsoil=273.15 + 5.0, swe=0.0, canopy_water=0.0, dtype=np.float64
) -> xr.Dataset:
    """A model state on the grid of ``params``: soil moisture at field capacity by default.

    Examples
    --------
    >>> import xarray as xr
    >>> from xldas.models import parameters_from_texture
    >>> p = parameters_from_texture(xr.DataArray([[0.4]], dims=("lat", "lon")),
    ...                             xr.DataArray([[0.2]], dims=("lat", "lon")))
    >>> st = initial_state(p)
    >>> sorted(st.data_vars), dict(st.sm.sizes)
    (['canopy_water', 'sm', 'swe', 'tsoil'], {'layer': 4, 'lat': 1, 'lon': 1})
    """
    ydim, xdim = spatial_dims(params)
    layer = params["root_fraction"].reset_coords(drop=True) * 0 + 1.0
    grid = params["theta_s"].reset_coords(drop=True) * 0.0
    if "layer" not in grid.dims:
        grid = grid * layer
    sm0 = params["theta_fc"] * (grid + 1.0) if sm is None else grid + sm
    dims = ("layer", ydim, xdim)
    ds = xr.Dataset(
        {
            "sm": sm0.transpose(*dims).astype(dtype).assign_attrs(STATE_ATTRS["sm"]),
            "tsoil": (grid + tsoil)
            .transpose(*dims)
            .astype(dtype)
            .assign_attrs(STATE_ATTRS["tsoil"]),
            "swe": (
                params["theta_s"].isel(layer=0, drop=True)
                if "layer" in params["theta_s"].dims
                else params["theta_s"]
            ).reset_coords(drop=True)
            * 0
            + swe,
            "canopy_water": (params["lai"].reset_coords(drop=True) * 0 + canopy_water),
        }
    )
    ds["swe"] = ds["swe"].astype(dtype).assign_attrs(STATE_ATTRS["swe"])
    ds["canopy_water"] = ds["canopy_water"].astype(dtype).assign_attrs(STATE_ATTRS["canopy_water"])
    coords = {k: params[k] for k in ("depth_bottom", "dz") if k in params.coords}
    return ds.assign_coords(coords)


def water_storage(state: xr.Dataset) -> xr.DataArray:
    """Total water storage Σ θ_j Δz_j ρ_w + swe + canopy_water (kg m-2), in float64."""
    dz = state["dz"].reset_coords(drop=True).astype(np.float64)
    soil = (state["sm"].astype(np.float64) * dz * 1000.0).sum("layer")
    out = soil + state["swe"].astype(np.float64) + state["canopy_water"].astype(np.float64)
    return out.assign_attrs(units="kg m-2", long_name="total water storage")


def step(
    state: xr.Dataset,
    forcing: xr.Dataset,
    params: xr.Dataset,
    dt=None,
    fluxes: bool = False,
    perturbation: ForcingPerturbation | None = None,
    seed: int | None = None,
    validate: bool = True,
    check_nan: bool = True,
):
    """Advance ``state`` through every time of ``forcing``.

    Parameters
    ----------
    state : model state (``sm``, ``tsoil`` (layer, y, x); ``swe``, ``canopy_water``), with or
        without a ``member`` dimension. Extra variables are kept; ``pert_<var>`` states are
        advanced when the forcing is perturbed; variables named like a parameter
        (state augmentation) replace that parameter member by member.
    forcing : Dataset (time, y, x) with ``precip``, ``tair``, ``psurf``, ``swdown``,
        ``lwdown`` (any CF-convertible units; converted on entry). Fluxes are period-ending.
    params : parameter Dataset (see :mod:`xldas.models.parameters`).
    dt : model time step (seconds, numpy/pandas timedelta or string like ``"30min"``);
        default the forcing interval, which must be a whole multiple of it.
    fluxes : also return the per-step fluxes (``et``, ``runoff``, ``drainage``,
        ``snowmelt``, ``glacier_melt`` in kg m-2 s-1, means over each forcing step), and the
        ``precip`` the model used (perturbed, per member, for ensembles).
    perturbation : :class:`~xldas.models.ForcingPerturbation` for an ensemble; default the
        settings recorded by :func:`~xldas.models.perturb` in the ensemble's attributes.
    seed : seed of the forcing perturbation (default the one recorded by ``perturb``).
    validate : check parameter ranges (lazily for dask data).
    check_nan : raise :class:`~xldas.errors.ForcingError` (count and first location) for NaN
        in the forcing, lazily for dask data.

    Returns
    -------
    New state with ``time`` = last forcing time; with ``fluxes=True`` a tuple
    ``(state, fluxes)``. Lazy on dask input: spatial chunks are free; ``time``, ``member``
    and ``layer`` are brought to one chunk each.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from xldas.models import parameters_from_texture, initial_state, step
    >>> g = dict(dims=("lat", "lon"), coords={"lat": [39.0], "lon": [100.0]})
    >>> p = parameters_from_texture(xr.DataArray([[0.4]], **g), xr.DataArray([[0.2]], **g))
    >>> t = pd.date_range("2020-07-01T01", periods=24, freq="h")
    >>> f = xr.Dataset({k: (("time", "lat", "lon"), np.full((24, 1, 1), v), {"units": u})
    ...                 for k, v, u in [("precip", 1e-4, "kg m-2 s-1"), ("tair", 293.0, "K"),
    ...                 ("psurf", 8e4, "Pa"), ("swdown", 250.0, "W m-2"), ("lwdown", 320.0, "W m-2")]},
    ...                coords={"time": t, "lat": [39.0], "lon": [100.0]})
    >>> new, fx = step(initial_state(p), f, p, fluxes=True)
    >>> str(new.time.values)[:13], sorted(fx.data_vars)
    ('2020-07-02T00', ['drainage', 'et', 'glacier_melt', 'precip', 'runoff', 'snowmelt'])
    """
    if "time" not in forcing.dims:
        raise DimensionError("forcing needs a 'time' dimension")
    ydim, xdim = spatial_dims(state)
    missing = [v for v in FORCING_UNITS if v not in forcing]
    if missing:
        raise ForcingError(f"forcing lacks variable(s) {missing}; needs {list(FORCING_UNITS)}")
    for v in ("sm", "tsoil", "swe", "canopy_water"):
        if v not in state:
            raise DimensionError(f"state lacks variable {v!r}")
    forcing = check_units(forcing[list(FORCING_UNITS)], FORCING_UNITS)
    if check_nan:
        from xldas.io.forcing import check_forcing

        forcing = check_forcing(forcing)
    interval = _forcing_interval(forcing, state, dt)
    h = interval if dt is None else _seconds(dt)
    nsub = interval / h
    if h <= 0 or abs(nsub - round(nsub)) > 1e-9:
        raise ForcingError(
            f"the forcing interval ({interval} s) must be a whole multiple of dt ({h} s)"
        )
    nsub = round(nsub)
    dz = _layer_info(state, params)

    # parameters: units, defaults, validation, member overrides (state augmentation)
    params = params.copy()
    for k, v in _DEFAULTS.items():
        if k not in params:
            params[k] = (
                xr.zeros_like(
                    params["theta_s"].isel(layer=0, drop=True)
                    if "layer" in params["theta_s"].dims
                    else params["theta_s"]
                )
                + v
            )
    need = [*_LAYER_PARAMS, *_CELL_PARAMS]
    miss = [k for k in need if k not in params]
    if miss:
        raise ParameterRangeError(f"parameters lack {miss}")
    params = check_units(
        params, {k: u for k, u in _PARAM_UNITS.items() if "units" in params[k].attrs}
    )
    if validate:
        params = validate_parameters(params)
    pv = {}
    for k in need:
        src = state[k] if k in state.data_vars else params[k]
        pv[k] = src.reset_coords(drop=True).astype(np.float64)
    for k in _LAYER_PARAMS:
        if "layer" not in pv[k].dims:
            pv[k] = pv[k].expand_dims(layer=dz.sizes["layer"])
            pv[k] = pv[k].assign_coords(layer=state["layer"]) if "layer" in state.coords else pv[k]

    # forcing perturbation of ensembles
    new_pert = {}
    cfg = perturbation
    if cfg is None and ATTR in state.attrs and "member" in state.dims:
        cfg = ForcingPerturbation.from_json(state.attrs[ATTR])
    if cfg is not None:
        sd = seed if seed is not None else int(state.attrs.get("xldas_seed", 0))
        forcing, new_pert = perturb_forcing(forcing, state, cfg, sd, interval)

    dtype = np.dtype(np.float32) if state["sm"].dtype == np.float32 else np.dtype(np.float64)
    f = [_one_chunk(forcing[v].astype(dtype), ("time", "member")) for v in FORCING_UNITS]
    if "member" in state.dims:
        # The gufunc loops over the broadcast dims in the order apply_ufunc finds them, and
        # the first argument decides: put ``member`` outermost (a zero-stride broadcast when
        # the forcing is shared), so that the innermost loop runs over contiguous cells.
        # With ``member`` innermost the ensemble step runs about 10x slower.
        if "member" not in f[0].dims:
            f[0] = f[0].expand_dims(member=state["member"].to_index())
        f = [v.transpose("member", ...) if "member" in v.dims else v for v in f]
    st = [
        _one_chunk(state[v].astype(dtype), ("layer", "member"))
        for v in ("sm", "tsoil", "swe", "canopy_water")
    ]
    lp = [_one_chunk(pv[k], ("layer", "member")) for k in _LAYER_PARAMS]
    cp = [_one_chunk(pv[k], ("member",)) for k in _CELL_PARAMS]
    # dask already runs chunks in parallel: use the serial kernel there (no oversubscription,
    # and the parallel gufunc has a larger per-column overhead); threads for in-memory data.
    lazy = any(getattr(a, "chunks", None) is not None for a in (*f, *st, *lp, *cp))
    outs = apply_kernel(
        partial(_land_block, target="cpu" if lazy else "parallel"),
        *f,
        *st,
        *lp,
        dz,
        *cp,
        float(interval),
        float(nsub),
        input_core_dims=[["time"]] * 5
        + [["layer"], ["layer"], [], []]
        + [["layer"]] * 9
        + [[]] * 7,
        output_core_dims=[
            ["layer"],
            ["layer"],
            [],
            [],
            ["time"],
            ["time"],
            ["time"],
            ["time"],
            ["time"],
        ],
        output_dtypes=[dtype] * 4 + [np.float64] * 5,
    )
    sm, ts, swe, cw = outs[:4]
    lead = ("member",) if "member" in sm.dims else ()
    new = state.copy()
    for name, da in zip(("sm", "tsoil", "swe", "canopy_water"), (sm, ts, swe, cw)):
        dims = (*lead, "layer", ydim, xdim) if "layer" in da.dims else (*lead, ydim, xdim)
        extra = [d for d in da.dims if d not in dims]
        new[name] = da.transpose(*extra, *dims).assign_attrs(STATE_ATTRS[name])
    for k, v in new_pert.items():
        new[k] = v
    if cfg is not None and ATTR not in new.attrs:
        new.attrs[ATTR] = cfg.to_json()
        new.attrs["xldas_seed"] = int(seed or 0)
    new = new.assign_coords(time=forcing["time"].values[-1])
    desc = f"step({forcing.sizes['time']} forcing steps of {interval:g} s, {nsub} sub-step(s))"
    add_history(new, desc)
    if not fluxes:
        return new
    fx = xr.Dataset()
    for name, da in zip(FLUX_ATTRS, outs[4:]):
        extra = [d for d in da.dims if d not in (*lead, "time", ydim, xdim)]
        fx[name] = da.transpose(*extra, *lead, "time", ydim, xdim).assign_attrs(
            {**FLUX_ATTRS[name], "cell_methods": "time: mean (interval: period ending)"}
        )
    fx["precip"] = (
        f[0]
        .astype(np.float64)
        .transpose(*lead, "time", ydim, xdim)
        .assign_attrs(
            units="kg m-2 s-1",
            long_name="precipitation used by the model (perturbed for ensembles)",
            standard_name="precipitation_flux",
        )
    )
    fx = fx.assign_coords(time=forcing["time"])
    add_history(fx, desc)
    if cfg is not None:
        fx.attrs[ATTR] = cfg.to_json()
    return new, fx
