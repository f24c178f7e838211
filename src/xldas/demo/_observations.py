"""Synthetic observations of the Heihe twin experiment: operators on the truth, plus noise.

Acquisition model (simplified, documented): a sun-synchronous satellite passes over the
domain once a day at a fixed UTC hour; its ground tracks are approximated as meridians
spaced ``360°/R`` apart (``R`` orbits per day) and shifted each day by the fractional part of
``R`` times that spacing (the repeat-cycle drift); a cell is observed when it lies within
half a swath width of a track. For SMAP (1000 km swath, 117 orbits in 8 days) this gives a
revisit of 2–3 days at 40°N, for AMSR2 (1450 km, 233 orbits in 16 days) 1–2 days and for a
Sentinel-1-like radar (250 km, 175 orbits in 12 days) about a week.

Noise: Gaussian with the stated 1-sigma error for Tb and σ⁰; Poisson counting noise of
the integrated counts for the cosmic-ray probes (``err = √(N/T)`` for a rate N (h⁻¹)
integrated over T hours). Cosmic-ray counts are masked when the truth has snow (the
operator does not model it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from xldas.demo import _geography as geog

__all__ = ["make_operator", "observations", "swath_mask"]

_OPERATOR_CLASSES = {
    "tau_omega": "TauOmega",
    "water_cloud": "WaterCloud",
    "cosmic_ray": "CosmicRay",
    "identity": "Identity",
}
_STATE_VARS = ["sm", "tsoil", "swe", "canopy_water"]


def make_operator(spec: dict):
    """An :mod:`xldas.obs` operator from a spec ``{"type": ..., "preset": ..., **kwargs}``.

    The spelling is the cycle configuration's (``xldas.cycle.config.OPERATORS``).
    """
    import xldas.obs as obs

    spec = dict(spec)
    cls = getattr(obs, _OPERATOR_CLASSES[spec.pop("type")])
    preset = spec.pop("preset", None)
    return getattr(cls, preset)(**spec) if preset else cls(**spec)


def swath_mask(lat, lon, day: int, swath_km: float, orbits_per_day: float, phase: float = 0.0):
    """Cells ``(lat, lon)`` seen on day ``day`` by a sun-synchronous swath (see module doc)."""
    spacing = 360.0 / orbits_per_day
    drift = (orbits_per_day % 1.0) * spacing
    track = (phase - day * drift) % spacing
    dlon = (lon[None, :] - track) % spacing
    dlon = np.minimum(dlon, spacing - dlon)
    km = dlon * geog.KM_PER_DEG * np.cos(np.deg2rad(lat))[:, None]
    return km <= swath_km / 2.0


def _overpass_times(args, hour_utc, times_all):
    t0 = pd.Timestamp(args["start"])
    day0 = t0.normalize()
    cand = [day0 + pd.Timedelta(days=d, hours=hour_utc) for d in range(args["days"] + 2)]
    valid = pd.DatetimeIndex(times_all)
    keep = [(i, t) for i, t in enumerate(cand) if t > t0 and t <= valid[-1]]
    # snap to the model time grid (the overpass hour rounded to the step)
    snapped = [(i, valid[np.abs((valid - t).total_seconds()).argmin()]) for i, t in keep]
    return [i for i, _ in snapped], pd.DatetimeIndex([t for _, t in snapped])


def _finish(values, mask, err, name, units, times, coords, attrs, rng):
    noise = rng.standard_normal(values.shape).astype(np.float32) * np.float32(err)
    obs = np.where(mask, values + noise, np.nan).astype(np.float32)
    errs = np.where(mask, np.float32(err), np.nan).astype(np.float32)
    dims = ("time", "lat", "lon")
    return {
        name: xr.DataArray(
            obs, dims=dims, coords={"time": times, **coords}, attrs={**attrs, "units": units}
        ),
        f"{name}_err": xr.DataArray(
            errs,
            dims=dims,
            coords={"time": times, **coords},
            attrs={"units": units, "long_name": f"1-sigma error of {name}"},
        ),
    }


def observations(args, truth, params, geo, lat, lon, rng) -> dict[str, xr.Dataset]:
    """Observation Datasets ``{sensor: Dataset}`` made from the truth (see module doc)."""
    from xldas.demo._osse import OSSE_DEFAULTS

    out = {}
    times_all = truth["time"].values[1:]
    coords = {"lat": truth["lat"], "lon": truth["lon"]}
    phases = {"smap": 97.3, "amsr2": 101.1, "sentinel1": 99.0}
    for sensor in args["sensors"]:
        cfg = OSSE_DEFAULTS["observations"][sensor]
        op = make_operator(cfg["operator"])
        days, times = _overpass_times(args, cfg["hour_utc"], times_all)
        state = truth[_STATE_VARS].sel(time=times)
        if sensor in ("smap", "amsr2"):
            pred = op(state, params).compute()
            mask = np.stack(
                [
                    swath_mask(lat, lon, d, cfg["swath_km"], cfg["orbits_per_day"], phases[sensor])
                    for d in days
                ]
            )
            ds = {}
            for v in op.variables:
                ds.update(
                    _finish(
                        pred[v].transpose("time", "lat", "lon").values,
                        mask,
                        cfg["error"],
                        v,
                        "K",
                        times,
                        coords,
                        {"long_name": f"brightness temperature, {v[-1].upper()} polarisation"},
                        rng,
                    )
                )
            ds = xr.Dataset(ds)
        elif sensor == "sentinel1":
            ds = _sentinel1(
                args, cfg, op, state, params, lat, lon, days, times, rng, phases[sensor]
            )
        elif sensor == "crns":
            ds = _crns(cfg, op, state, params, lat, lon, times, rng)
        ds.attrs.update(
            title=f"Heihe twin experiment: synthetic {sensor} observations",
            operator=repr(op),
            source=f"xldas.obs operator applied to the truth, plus noise ({sensor}-like)",
            sensor=sensor,
            error_std=str(cfg["error"]),
            overpass_hour_utc=cfg["hour_utc"],
            comment=_comment(sensor, cfg),
        )
        out[sensor] = ds.chunk({"time": 16})
    return out


def _comment(sensor, cfg):
    if sensor == "crns":
        return (
            f"Counts integrated over {cfg['integration_hours']} h (Poisson noise, err = sqrt(N/T)) "
            "at the cosmic-ray probe cells; NaN elsewhere and on snow-covered days."
        )
    where = "on the model grid" if cfg["grid"] == "model" else "on a finer grid than the model"
    return (
        f"{sensor}-like swath {cfg['swath_km']} km, {cfg.get('orbits_per_day', 0):.4f} orbits per day, "
        f"{where}; Gaussian noise of {cfg['error']} {cfg['units']}; NaN outside the swath."
    )


def _sentinel1(args, cfg, op, state, params, lat, lon, days, times, rng, phase):
    r = int(args["s1_refinement"])
    res = args["resolution"] / r
    flat = lat[0] - args["resolution"] / 2 + (np.arange(lat.size * r) + 0.5) * res
    flon = lon[0] - args["resolution"] / 2 + (np.arange(lon.size * r) + 0.5) * res
    ii = np.arange(flat.size) // r
    jj = np.arange(flon.size) // r
    fcoords = {
        "lat": ("lat", flat, {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": ("lon", flon, {"units": "degrees_east", "standard_name": "longitude"}),
    }

    def refine(obj):
        return obj.isel(
            lat=xr.DataArray(ii, dims="lat"), lon=xr.DataArray(jj, dims="lon")
        ).assign_coords(lat=fcoords["lat"], lon=fcoords["lon"])

    fparams = refine(params[["lai", "clay", "sand", "bulk_density", "theta_r", "theta_s"]])
    dy = res * geog.KM_PER_DEG
    dx = dy * np.cos(np.deg2rad(40.0))
    shape = (flat.size, flon.size)
    # sub-grid heterogeneity: zero-mean within each model cell
    anom = geog.smooth_noise(rng, shape, dx, dy, 1.5 * dx)
    anom = anom - anom.reshape(lat.size, r, lon.size, r).mean(axis=(1, 3)).repeat(r, 0).repeat(r, 1)
    anom = cfg["subgrid_sm_std"] * anom / max(anom.std(), 1e-12)
    lai_f = geog.smooth_noise(rng, shape, dx, dy, 2.0 * dx)
    fparams["lai"] = (fparams["lai"] * np.clip(1.0 + 0.2 * lai_f, 0.5, 1.5)).assign_attrs(
        params["lai"].attrs
    )
    fstate = refine(state)
    sm = fstate["sm"]
    top = (sm.isel(layer=0) + xr.DataArray(anom.astype(np.float32), dims=("lat", "lon"))).clip(
        fparams["theta_r"] + 0.005, fparams["theta_s"] - 0.005
    )
    fstate["sm"] = xr.concat(
        [top.expand_dims(layer=1).transpose(*sm.dims), sm.isel(layer=slice(1, None))], "layer"
    ).assign_attrs(sm.attrs)
    pred = op(fstate, fparams)
    v = op.variables[0]
    pred = (
        (pred[v] if isinstance(pred, xr.Dataset) else pred).transpose("time", "lat", "lon").values
    )
    mask = np.stack(
        [swath_mask(flat, flon, d, cfg["swath_km"], cfg["orbits_per_day"], phase) for d in days]
    )
    ds = xr.Dataset(
        _finish(
            pred,
            mask,
            cfg["error"],
            v,
            "dB",
            times,
            {"lat": flat, "lon": flon},
            {"long_name": "backscattering coefficient, VV polarisation"},
            rng,
        )
    )
    ds = ds.assign_coords(lat=fcoords["lat"], lon=fcoords["lon"])
    ds.attrs["refinement"] = r
    ds.attrs["subgrid_sm_std"] = cfg["subgrid_sm_std"]
    return ds


def _crns(cfg, op, state, params, lat, lon, times, rng):
    names = list(geog.CRNS_PROBES)
    plon = np.array([geog.CRNS_PROBES[n][0] for n in names])
    plat = np.array([geog.CRNS_PROBES[n][1] for n in names])
    ii = np.abs(lat[None, :] - plat[:, None]).argmin(axis=1)
    jj = np.abs(lon[None, :] - plon[:, None]).argmin(axis=1)
    pred = op(state, params)
    pred = (
        (pred["neutron_count"] if isinstance(pred, xr.Dataset) else pred)
        .transpose("time", "lat", "lon")
        .values
    )
    snow = state["swe"].transpose("time", "lat", "lon").values > 1.0
    mask = np.zeros(pred.shape, dtype=bool)
    mask[:, ii, jj] = True
    mask &= ~snow
    hours = float(cfg["integration_hours"])
    counts = rng.poisson(np.where(mask, np.maximum(pred, 0.0), 0.0) * hours)
    rate = counts / hours
    dims = ("time", "lat", "lon")
    crd = {"time": times, "lat": lat, "lon": lon}
    ds = xr.Dataset(
        {
            "neutron_count": xr.DataArray(
                np.where(mask, rate, np.nan).astype(np.float32),
                dims=dims,
                coords=crd,
                attrs={
                    "units": "h-1",
                    "long_name": "corrected neutron count rate of the cosmic-ray probe",
                },
            ),
            "neutron_count_err": xr.DataArray(
                np.where(mask, np.sqrt(np.maximum(rate, 1.0) / hours), np.nan).astype(np.float32),
                dims=dims,
                coords=crd,
                attrs={"units": "h-1", "long_name": "1-sigma counting error of neutron_count"},
            ),
        }
    )
    ds.attrs.update(
        probe_names=names,
        probe_lat=plat.tolist(),
        probe_lon=plon.tolist(),
        integration_hours=hours,
        n0=float(cfg["operator"].get("n0", np.nan)),
    )
    return ds
