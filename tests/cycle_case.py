"""A small twin experiment for the cycling-engine tests, built from the real xldas parts.

6 × 8 cells, 3-hourly forcing, a truth run of :func:`xldas.models.step` with the true
forcing, the ensemble forced by a degraded copy (70 % of the rain), and daily retrieved
surface soil moisture (``xldas.obs.Identity``) with 0.02 m3 m-3 noise and a swath gap.
Everything is written to files so that the experiment YAML can point at them (``zarr``
sources for parameters and forcing; observations as a Zarr store, as one NetCDF file per
date, or as GeoTIFFs behind a STAC API).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import yaml

START = pd.Timestamp("2021-05-01")
LAT = 38.0 + 0.25 * np.arange(6)
LON = 99.0 + 0.25 * np.arange(8)
OBS_ERR = 0.02


def _grid(values):
    return xr.DataArray(values, dims=("lat", "lon"), coords={"lat": LAT, "lon": LON})


def params() -> xr.Dataset:
    from xldas.models import parameters_from_texture

    rng = np.random.default_rng(3)
    sand = _grid(np.clip(0.3 + 0.3 * rng.random((6, 8)), 0, 1))
    clay = _grid(np.clip(0.1 + 0.2 * rng.random((6, 8)), 0, 1))
    return parameters_from_texture(sand, clay, lai=1.5, elevation=1500.0)


def forcing(days: int, degraded: bool) -> xr.Dataset:
    rng = np.random.default_rng(7)
    time = pd.date_range(START + pd.Timedelta("3h"), periods=8 * days, freq="3h")
    nt = len(time)
    hour = time.hour.values + time.day_of_year.values * 24
    diurnal = np.sin(2 * np.pi * (hour - 9) / 24)[:, None, None]
    shape = (nt, 6, 8)
    storm = (rng.random((nt, 1, 1)) < 0.12) * rng.gamma(2.0, 4e-4, (nt, 1, 1))
    precip = storm * (0.5 + rng.random(shape))
    if degraded:
        precip = 0.7 * precip
    ds = xr.Dataset(
        {
            "precip": (("time", "lat", "lon"), precip, {"units": "kg m-2 s-1"}),
            "tair": (("time", "lat", "lon"), 288.0 + 6 * diurnal + np.zeros(shape), {"units": "K"}),
            "psurf": (("time", "lat", "lon"), np.full(shape, 8.5e4), {"units": "Pa"}),
            "swdown": (
                ("time", "lat", "lon"),
                np.clip(700 * diurnal, 0, None) + np.zeros(shape),
                {"units": "W m-2"},
            ),
            "lwdown": (("time", "lat", "lon"), np.full(shape, 310.0), {"units": "W m-2"}),
        },
        coords={"time": time, "lat": LAT, "lon": LON},
    )
    return ds


def truth_and_obs(days: int) -> tuple[xr.Dataset, xr.Dataset]:
    """Daily truth states and daily observations of surface soil moisture at 00 UTC."""
    from xldas.models import initial_state, step

    p = params()
    f = forcing(days, degraded=False)
    state = initial_state(p)
    states = []
    for d in range(1, days + 1):
        window = f.sel(
            time=slice(
                START + pd.Timedelta(d - 1, "D") + pd.Timedelta("1s"), START + pd.Timedelta(d, "D")
            )
        )
        state = step(state, window, p, dt="3h").compute()
        states.append(state.drop_vars("time").expand_dims(time=[START + pd.Timedelta(d, "D")]))
    truth = xr.concat(states, "time")
    rng = np.random.default_rng(11)
    sm = truth["sm"].isel(layer=0, drop=True).drop_vars(["depth_bottom", "dz"], errors="ignore")
    noisy = sm + OBS_ERR * rng.standard_normal(sm.shape)
    gap = xr.DataArray(rng.random(sm.shape) < 0.15, dims=sm.dims, coords=sm.coords)
    obs = xr.Dataset({"sm": noisy.where(~gap).assign_attrs(units="m3 m-3")})
    return truth, obs


def write_case(folder: Path, days: int = 12) -> dict[str, Path]:
    """Write parameters, forcing and observations (all forms) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    p = params()
    p.to_zarr(folder / "params.zarr", mode="w")
    forcing(days, degraded=True).to_zarr(folder / "forcing.zarr", mode="w")
    truth, obs = truth_and_obs(days)
    truth.to_netcdf(folder / "truth.nc")
    obs.to_zarr(folder / "obs.zarr", mode="w")
    (folder / "obs_files").mkdir(exist_ok=True)
    for t in obs.time.values:
        ts = pd.Timestamp(t)
        obs.sel(time=[t]).to_netcdf(folder / "obs_files" / f"sm_{ts:%Y%m%d}.nc")
    return {"folder": folder}


def experiment(
    folder: Path,
    store: Path,
    *,
    obs_kind: str = "zarr",
    method: str = "enkf",
    days: int = 10,
    **extra,
) -> Path:
    """Write an experiment YAML for the case in ``folder`` and return its path."""
    src = {"kind": "zarr", "path": str(folder / "obs.zarr")}
    if obs_kind == "files":
        src = {"kind": "files", "pattern": str(folder / "obs_files" / "sm_%Y%m%d.nc")}
    elif obs_kind == "stac":
        src = {
            "kind": "stac",
            "url": extra.pop("url"),
            "collections": ["sm-retrievals"],
            "bands": ["sm"],
            "resolution": 0.25,
            "regrid": "nearest",
        }
    cfg = {
        "name": f"case_{method}",
        "period": {
            "start": START.isoformat(),
            "end": (START + pd.Timedelta(days, "D")).isoformat(),
            "cycle": "1D",
        },
        "model": {
            "params": {"kind": "zarr", "path": str(folder / "params.zarr")},
            "initial_state": "field_capacity",
        },
        "forcing": {"kind": "zarr", "path": str(folder / "forcing.zarr")},
        "observations": [
            {
                "name": "smos",
                "source": src,
                "operator": {"type": "identity", "variable": "sm", "layer": 0},
                "variables": ["sm"],
                "error": {"std": OBS_ERR, "units": "m3 m-3"},
                "qc": {"range": {"sm": [0.0, 0.6]}},
            }
        ],
        "filter": {"method": method, **({"inflation": 1.05} if method != "none" else {})},
        "ensemble": {
            "members": 8,
            "seed": 5,
            "forcing_perturbation": {"std": {"precip": 0.5, "swdown": 0.2, "tair": 1.0}},
            "state_perturbation": {"sm": 0.02},
        },
        "output": {"store": str(store)},
    }
    for key, value in extra.items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = store.parent / f"{store.name}.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(cfg, default=str)), sort_keys=False))
    return path
