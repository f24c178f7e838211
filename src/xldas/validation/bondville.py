"""Bondville (Illinois) 1998: the xldas land model on real forcing, with and without
assimilation of in-situ 5 cm soil moisture, scored against the withheld days.

The experiment (used by ``benchmarks/validation.py``, the validation notebook and the
tests):

1. Forcing: :func:`xldas.io.read_noah_forcing` (half-hourly, rain converted from inches
   per half hour, longwave parameterised). Soil: silt loam (sand 0.10, clay 0.25, the
   Flanagan/Drummer series of the site) through
   :func:`xldas.models.parameters_from_texture`; LAI follows the control file's monthly
   green-vegetation fraction (LAI = 5 × GVF, at least 0.1), updated daily.
2. Spin-up: the model is run once through the whole year from the control file's
   initial soil moisture, and the end state starts the experiment (the Noah test case
   cycles the year the same way).
3. Ensembles of ``members`` from the spun-up state with forcing perturbations
   (precipitation ×log-normal σ 0.5, shortwave σ 0.3, air temperature σ 1 K, AR(1) 24 h)
   and an initial soil-moisture spread of 0.02 m3 m-3. The open loop is this ensemble
   without analyses.
4. Analyses at midnight local time (06 UTC) of every other day assimilate the 5 cm
   probe (error 0.02 m3 m-3) through the 5 cm layer weighting of
   :func:`xldas.validation.layer_weights`, with the EnKF and the particle filter.
5. Scores on the withheld days (the other half) at 5, 20 and 60 cm, and for latent
   heat (model ET × 2.45 MJ kg-1) against the eddy-covariance tower (daily means of
   days with at least 40 of 48 valid half hours).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from xldas.validation.matching import layer_weights
from xldas.validation.metrics import skill

__all__ = [
    "BondvilleResult",
    "bondville_calibration",
    "bondville_experiment",
    "bondville_params",
    "shared_data_dir",
]

#: monthly green vegetation fraction of the Noah control file (Jan..Dec)
GVF = (0.01, 0.02, 0.07, 0.17, 0.27, 0.58, 0.93, 0.96, 0.65, 0.24, 0.11, 0.02)
#: initial soil moisture of the control file for the Noah layers 0-10/10-40/40-100/100-200 cm
SMC0 = (0.2981597, 0.2940254, 0.2713114, 0.3070948)
FORCING = ("precip", "tair", "qair", "psurf", "wind", "swdown", "lwdown")
LAMBDA = 2.45e6  # J kg-1
SENSOR_DEPTHS = (0.05, 0.20, 0.60)


def shared_data_dir() -> Path | None:
    """The shared real-data folder: ``$XLDAS_SHARED_DATA`` or ``../shared/data`` next to
    the repository root; None when absent."""
    env = os.environ.get("XLDAS_SHARED_DATA")
    cands = [Path(env)] if env else []
    cands.append(Path(__file__).resolve().parents[3] / ".." / "shared" / "data")
    for c in cands:
        if c.is_dir():
            return c.resolve()
    return None


def bondville_params(sand: float = 0.10, clay: float = 0.25, lat=40.01, lon=-88.37, **kwargs):
    """Land-model parameters of the Bondville cell (silt loam by default)."""
    from xldas.models import parameters_from_texture

    g = {"dims": ("lat", "lon"), "coords": {"lat": [lat], "lon": [lon]}}
    return parameters_from_texture(
        xr.DataArray([[sand]], **g), xr.DataArray([[clay]], **g), lai=1.0, **kwargs
    )


def _lai(day: pd.Timestamp) -> float:
    return max(0.1, 5.0 * GVF[day.month - 1])


def _initial(params, forcing):
    """Spin-up: one pass through the year from the control file's soil moisture."""
    from xldas.models import initial_state, step

    bottoms = params["depth_bottom"].values
    noah = np.array([0.1, 0.4, 1.0, 2.0])
    sm0 = np.interp(bottoms, noah, SMC0)
    st = initial_state(params)
    st["sm"] = st["sm"] * 0 + xr.DataArray(sm0, dims="layer")
    st = step(st, forcing, params, validate=True)
    return st.drop_vars("time")


@dataclass
class BondvilleResult:
    """Outputs of :func:`bondville_experiment`."""

    #: (run, time, depth) model soil moisture at the analysis times (before the update)
    #: and the observations (run ``obs``); ``assimilated`` flags the analysis days
    sm: xr.Dataset
    #: (run, time) daily mean latent heat (W m-2), run ``obs`` = tower
    le: xr.DataArray
    #: skill on the withheld days: Dataset (run, depth) for SM, and (run,) for LE
    skill_sm: xr.Dataset
    skill_le: xr.Dataset


def _weighted_mean(ens: xr.DataArray, weight) -> xr.DataArray:
    if weight is None:
        return ens.mean("member")
    return (ens * weight).sum("member") / weight.sum("member")


def bondville_experiment(
    path=None,
    start: str = "1998-01-01T06:00",
    end: str = "1999-01-01T06:00",
    members: int = 24,
    methods=("enkf", "pf"),
    obs_error: float = 0.02,
    seed: int = 1,
    params: xr.Dataset | None = None,
) -> BondvilleResult:
    """Run the Bondville open loop and assimilation experiments (see module docstring).

    Parameters
    ----------
    path : the ``forcing98_with_validation.dat`` file (default: in the shared data).
    start, end : UTC analysis times bounding the experiment (days end at 06 UTC).
    members : ensemble size.
    methods : filters to run besides the open loop (``"enkf"``, ``"pf"``, any of
        :func:`xldas.filters.assimilate`'s methods).
    obs_error : 1-sigma error of the 5 cm probe (m3 m-3).
    seed : seed of the perturbations and filters.
    params : land-model parameters (default :func:`bondville_params`).

    Returns
    -------
    :class:`BondvilleResult`.
    """
    from xldas.filters import assimilate
    from xldas.io.stations import read_noah_forcing
    from xldas.models import ForcingPerturbation, perturb, step

    if path is None:
        root = shared_data_dir()
        if root is None:
            raise FileNotFoundError("shared data folder not found (set XLDAS_SHARED_DATA)")
        path = root / "bondville_noah_1998" / "forcing98_with_validation.dat"
    data = read_noah_forcing(path)
    forcing = data[list(FORCING)]
    params = bondville_params() if params is None else params
    state0 = _initial(params, forcing)

    t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
    days = pd.date_range(t0, t1, freq="D")[1:]
    obs5 = data["sm_obs"].sel(depth=0.05)
    w5 = layer_weights(params["depth_bottom"].values, 0.05)
    wts = xr.concat(
        [layer_weights(params["depth_bottom"].values, d) for d in SENSOR_DEPTHS], dim="depth"
    ).assign_coords(depth=list(SENSOR_DEPTHS))

    def operator(ens, p=None):
        sm = ens["sm"].drop_vars(["depth_bottom", "dz"], errors="ignore")
        return (sm * w5.assign_coords(layer=sm["layer"].values)).sum("layer").rename("sm")

    fp = ForcingPerturbation(std={"precip": 0.5, "swdown": 0.3, "tair": 1.0})
    ens0 = perturb(
        state0.assign_coords(time=np.datetime64(t0, "ns")),
        members,
        forcing_perturbation=fp,
        params=params,
        state_perturbation={"sm": 0.02},
        seed=seed,
    ).drop_vars("time")
    runs = ["open_loop", *methods]
    sm_out = {r: [] for r in runs}
    le_out = {r: [] for r in runs}
    assimilated = []
    for r in runs:
        ens = ens0
        for k, day in enumerate(days):
            f = forcing.sel(time=slice(day - pd.Timedelta("1D") + pd.Timedelta("1s"), day))
            p = params.assign(lai=params["lai"] * 0 + _lai(day - pd.Timedelta("12h")))
            ens, fx = step(ens, f, p, fluxes=True, validate=False)
            weight = ens["weight"] if "weight" in ens else None
            mean_sm = _weighted_mean(ens["sm"], weight)
            sm_out[r].append(
                (
                    mean_sm.drop_vars(["depth_bottom", "dz"], errors="ignore")
                    * wts.assign_coords(layer=mean_sm["layer"].values)
                )
                .sum("layer")
                .isel(lat=0, lon=0)
                .values
            )
            le_out[r].append(
                float(_weighted_mean(fx["et"], weight).mean("time").squeeze()) * LAMBDA
            )
            do_da = k % 2 == 0
            if r == runs[0]:
                assimilated.append(do_da)
            y = float(obs5.sel(time=day).squeeze()) if day in obs5.time else np.nan
            if r != "open_loop" and do_da and np.isfinite(y):
                ob = xr.Dataset(
                    {"sm": (("lat", "lon"), [[y]], {"units": "m3 m-3", "error_std": obs_error})},
                    coords={"lat": ens["lat"].values, "lon": ens["lon"].values},
                )
                ens = assimilate(ens, ob, operator, params, method=r, seed=seed, cycle=k)
            ens = ens.drop_vars("time", errors="ignore")
    time = days.values
    obs = data["sm_obs"].sel(time=time).isel(lat=0, lon=0).transpose("time", "depth").values
    run_index = [*runs, "obs"]
    sm = xr.DataArray(
        np.stack([np.asarray(sm_out[r]) for r in runs] + [obs]),
        dims=("run", "time", "depth"),
        coords={"run": run_index, "time": time, "depth": list(SENSOR_DEPTHS)},
        name="sm",
        attrs={
            "units": "m3 m-3",
            "long_name": "soil moisture at the sensor depths, daily at 06 UTC",
        },
    )
    flags = xr.DataArray(np.asarray(assimilated), dims="time", coords={"time": time})
    sm_ds = xr.Dataset({"sm": sm, "assimilated": flags})
    le_tower = data["le"].isel(lat=0, lon=0)
    day_index = pd.DatetimeIndex(le_tower.time.values).ceil("D") + pd.Timedelta("6h")
    day_index = day_index.where(
        pd.DatetimeIndex(le_tower.time.values).hour >= 6, day_index - pd.Timedelta("1D")
    )
    grp = le_tower.assign_coords(day=("time", day_index)).groupby("day")
    le_mean = grp.mean().rename(day="time")
    le_n = grp.count().rename(day="time")
    le_obs = le_mean.where(le_n >= 40).reindex(time=time)
    le = xr.DataArray(
        np.stack([np.asarray(le_out[r]) for r in runs] + [le_obs.values]),
        dims=("run", "time"),
        coords={"run": run_index, "time": time},
        name="le",
        attrs={"units": "W m-2", "long_name": "daily mean latent heat flux"},
    )
    withheld = ~flags
    ref_sm = sm.sel(run="obs").where(withheld)
    skill_sm = skill(
        sm.sel(run=runs).where(withheld),
        ref_sm,
        dim="time",
        metrics=["bias", "rmse", "ubrmse", "r", "n"],
    )
    skill_le = skill(
        le.sel(run=runs).where(withheld),
        le.sel(run="obs"),
        dim="time",
        metrics=["bias", "rmse", "r", "kge", "n"],
    )
    return BondvilleResult(sm=sm_ds, le=le, skill_sm=skill_sm, skill_le=skill_le)


def bondville_calibration(
    path=None,
    calibration=("1998-01-01T06:00", "1998-07-02T06:00"),
    validation=("1998-07-02T06:00", "1999-01-01T06:00"),
    every: str = "7D",
    maxiter: int = 6,
    popsize: int = 4,
    seed: int = 0,
) -> dict:
    """Calibrate soil parameters on 1998 H1 against the 5 cm probe; validate on H2.

    Parameters calibrated: ``b`` (Clapp–Hornberger exponent, 3–12) and a log10
    multiplier of ``ksat`` (−2 … 0.5). Each generation runs the whole population at once
    as ``member``s of one land-model run (state augmentation: per-member ``b`` and
    ``ksat`` replace the parameters), stopping every ``every`` to sample the 5 cm soil
    moisture at that instant; the objective is the RMSE against the probe. The optimiser
    is :func:`xldas.validation.calibrate` (SciPy differential evolution, vectorised).

    Returns
    -------
    dict with the calibration result and the validation skill (H2) of the default and
    the calibrated parameters.
    """
    from xldas.io.stations import read_noah_forcing
    from xldas.models import step
    from xldas.validation.calibrate import calibrate

    if path is None:
        path = shared_data_dir() / "bondville_noah_1998" / "forcing98_with_validation.dat"
    data = read_noah_forcing(path)
    forcing = data[list(FORCING)]
    params = bondville_params()
    state0 = _initial(params, forcing)
    w5 = layer_weights(params["depth_bottom"].values, 0.05)
    obs5 = data["sm_obs"].sel(depth=0.05).isel(lat=0, lon=0)

    def run(b, log_ks, period):
        b = np.atleast_1d(np.asarray(b, dtype=np.float64))
        mult = 10.0 ** np.atleast_1d(np.asarray(log_ks, dtype=np.float64))
        member = xr.DataArray(np.arange(b.size), dims="member")
        st = state0.expand_dims(member=member.values).copy()
        st["b"] = (params["b"] * 0 + xr.DataArray(b, dims="member")).transpose("member", ...)
        st["ksat"] = (params["ksat"] * xr.DataArray(mult, dims="member")).transpose("member", ...)
        times = pd.date_range(pd.Timestamp(period[0]), pd.Timestamp(period[1]), freq=every)
        out = []
        for a, z in itertools.pairwise(times):
            f = forcing.sel(time=slice(a + pd.Timedelta("1s"), z))
            p = params.assign(lai=params["lai"] * 0 + _lai(z - pd.Timedelta("3D")))
            st = step(st, f, p, validate=False).drop_vars("time")
            sm = st["sm"].drop_vars(["depth_bottom", "dz"], errors="ignore")
            out.append(
                (sm * w5.assign_coords(layer=sm["layer"].values)).sum("layer").isel(lat=0, lon=0)
            )
        return xr.concat(out, dim="time").assign_coords(time=times[1:].values)

    obs_cal = obs5.sel(time=pd.date_range(*[pd.Timestamp(t) for t in calibration], freq=every)[1:])

    def simulate(p):
        return run(p["b"], p["log10_ksat_factor"], calibration).transpose("member", "time")

    res = calibrate(
        simulate,
        {"b": (3.0, 12.0), "log10_ksat_factor": (-2.0, 0.5)},
        obs_cal,
        objective="rmse",
        vectorized=True,
        maxiter=maxiter,
        popsize=popsize,
        seed=seed,
    )
    default = run(float(params["b"].squeeze()), 0.0, validation).isel(member=0)
    tuned = run(res.params["b"], res.params["log10_ksat_factor"], validation).isel(member=0)
    obs_val = obs5.sel(time=default.time)
    metrics = ["bias", "rmse", "ubrmse", "r"]
    return {
        "result": res,
        "validation_default": skill(default, obs_val, metrics=metrics),
        "validation_calibrated": skill(tuned, obs_val, metrics=metrics),
        "calibration_default": skill(
            run(float(params["b"].squeeze()), 0.0, calibration).isel(member=0),
            obs_cal,
            metrics=metrics,
        ),
    }
