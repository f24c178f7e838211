"""The forecast/analysis loop.

For each analysis time ``t_k = start + k * cycle`` (k = 1, 2, ...):

1. **forecast** — the ensemble of the last committed checkpoint (valid at ``t_{k-1}``) is
   stepped through the forcing of the window ``(t_{k-1}, t_k]`` (``ens.ldas.step``);
2. **observations** valid in the window are read from every source (demo group, catalog,
   files, STAC search), put on the model grid, thinned, and given their error model;
3. **QC**: range checks, and for microwave observations (``tb_*``, ``sigma0_*``) frozen-soil
   and snow masks from the forecast (top-layer ``tsoil`` below the threshold, ``swe`` above
   it); the gross-error check is the filter's own;
4. **analysis** with the configured filter (``xldas.filters.assimilate``), one observation
   time after the other; ``method: none`` is the open loop;
5. **outputs** (forecast and analysis ensemble mean and spread, weighted where ``weight``
   exists; diagnostics; optional fluxes) and the **checkpoint** are committed atomically
   (:class:`xldas.cycle.store.CycleStore`).

**Out of core.** Without a Dask client, a cluster or ``output.chunks`` (small in-process
runs) a cycle is computed with NumPy end to end. Otherwise it is one lazy graph per cycle,
evaluated by the commit: one sink task per spatial chunk writes that chunk of the analysis,
of the outputs and of the checkpoint as soon as it is computed, and the next cycle reads the
checkpoint back lazily. The graph grows linearly with the number of chunks and nothing the
size of the domain is gathered in this process. On the in-process schedulers the store
fixes glibc's malloc thresholds (freed chunks are given back) and, for cycles whose chunks
do not need their neighbours (every filter but the LETKF), evaluates the sinks in batches
of neighbouring chunks, so that the domain-wide diagnostics (observation counts,
innovation statistics) do not make Dask's ordering keep the intermediates of every chunk
alive: the peak resident memory is nearly flat in the domain size for them. The local
analyses (LETKF, localised EnKF) need their neighbours' observation side (halos of the
predicted observations, observations and errors; not of the state): their cycle has two
passes. Pass 1 computes, chunk by chunk and in batches, the forecast, its predicted
observations and the observations (before and after QC) into a scratch Zarr store beside
the output store (removed at the end of the run); pass 2, the analysis and the commit,
reads them back, so that a chunk's halos are cheap reads of the scratch store and the
commit runs in batches too. A later local analysis in the same cycle (several
observation times or sources) first writes the analysis so far and its predicted
observations there. Pan-TP at 32 members (``benchmarks/results/pan_tp.md``): peak RSS
0.95 -> 1.13 GB from 32 to 128 chunks; +14 to +24 % at 8 members for 8 -> 32 chunks
(``tests/test_scale.py``).

**Precision.** The carried state is float32: ``sm``, ``tsoil``, ``swe``, ``canopy_water``
and the AR(1) forcing-perturbation states ``pert_*`` (standard normals) are stored and
reloaded in float32 (7 significant digits: far below their errors). float64 is kept where
it matters: inside the land-model kernel (its local water and energy balance, parameters
and fluxes, so that budgets close to round-off), inside the filters (the state is stacked
in float64 for the ensemble covariances and the eigen/Cholesky decompositions of the
transforms, which lose positive definiteness in float32 for ensembles of 30+ members),
particle / sigma-point ``weight`` (tiny weights underflow in float32), augmented
parameters (their dtype is the parameters'), checksums, and the outputs: ensemble means and
spreads are computed and stored in float64 (a float32 member mean depends on the order of
its summation, which Dask's scheduling may change; in float64 the mean of float32 members is
exact to the last bit that float32 would hold, and outputs agree between local and
distributed runs to round-off).

Randomness is keyed by (seed, cycle index, purpose), so a resumed run reproduces an
uninterrupted one exactly. Cycles already committed are never recomputed (idempotence).

Real-time policy: :func:`catch_up` runs the cycles up to the newest observation; an
observation whose time falls in an already committed cycle ("late") is logged and ignored
— committed cycles are immutable; re-run the experiment into a new store to use it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import sys
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from xldas.cycle.config import (
    OBSERVATION_UNITS,
    OPERATORS,
    SIGMA_POINT_METHODS,
    Experiment,
    ObservationConfig,
)
from xldas.cycle.store import CycleStore, _fault
from xldas.errors import (
    CheckpointError,
    ConfigError,
    ForcingError,
    StoreError,
    UnknownOptionError,
)

__all__ = ["CycleReport", "carried_state", "catch_up", "ensemble_stats", "follow", "run"]

log = logging.getLogger("xldas.cycle")

_MICROWAVE = ("tb_", "sigma0_")
_STANDARD_NAMES = {
    "sm": "volume_fraction_of_condensed_water_in_soil",
    "tsoil": "soil_temperature",
    "swe": "surface_snow_amount",
    "canopy_water": "canopy_water_amount",
}


# ============================================================================ reports
@dataclass
class CycleReport:
    """What a run did: cycles run/skipped, per-cycle log records, wall time."""

    store: str
    cycles_run: list[int] = field(default_factory=list)
    times_run: list[pd.Timestamp] = field(default_factory=list)
    already_done: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    wall_time: float = 0.0
    up_to_date: bool = False
    late_observations: int = 0

    def summary(self) -> str:
        if self.up_to_date and not self.cycles_run:
            return f"up to date: {self.store} holds every cycle with observations ({self.already_done} cycles)"
        lines = [
            f"experiment store {self.store}: {len(self.cycles_run)} cycle(s) run, "
            f"{self.already_done} already committed, wall time {self.wall_time:.1f} s"
        ]
        if self.times_run:
            lines.append(f"  cycles {self.times_run[0]} .. {self.times_run[-1]}")
        n_obs = sum(r.get("obs_used", 0) for r in self.records)
        rm = [
            r["innovation_rmse"]
            for r in self.records
            if np.isfinite(r.get("innovation_rmse", np.nan))
        ]
        lines.append(
            f"  observations used: {n_obs}; mean innovation RMSE: "
            + (f"{np.mean(rm):.4g}" if rm else "n/a")
        )
        if self.late_observations:
            lines.append(f"  late observations ignored: {self.late_observations}")
        return "\n".join(lines)


# ============================================================================ helpers
def _seed(seed: int, cycle: int, purpose: int) -> int:
    """A 32-bit seed keyed by (experiment seed, cycle index, purpose)."""
    return int(np.random.SeedSequence([seed, cycle, purpose]).generate_state(1)[0])


_PURPOSE = {"init": 1, "forcing": 2, "analysis": 3}


#: variables carried (checkpointed) in float32, see "Precision" in the module docstring
_FLOAT32_STATE = ("sm", "tsoil", "swe", "canopy_water")


def carried_state(ens: xr.Dataset) -> xr.Dataset:
    """The ensemble as it is checkpointed: model state and ``pert_*`` in float32.

    Sigma-point sets (with ``weight_cov``) stay float64: their weighted moments cancel
    weights of opposite sign (for the UKF with a small α, of order ±10⁶), which float32
    rounding of the points would turn into errors of order 10⁻² m3 m-3.
    """
    out = ens.copy()
    if "weight_cov" in out:
        return out
    for v in out.data_vars:
        if (v in _FLOAT32_STATE or str(v).startswith("pert_")) and out[v].dtype == np.float64:
            out[v] = out[v].astype(np.float32)
    return out


def ensemble_stats(ens: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    """Ensemble mean and spread of every state variable, weighted when ``weight`` exists.

    Perturbation states (``pert_*``) and weights are not included. The spread is the
    (weighted) standard deviation over ``member``: with weights w (normalised per pixel)
    σ = √Σ w (x − x̄)², without them the sample standard deviation (ddof=1).
    """
    names = [
        v
        for v in ens.data_vars
        if "member" in ens[v].dims
        and not v.startswith("pert_")
        and v not in ("weight", "weight_cov")
    ]
    mean, spread = {}, {}
    w = ens.get("weight")
    for v in names:
        x = ens[v]
        if x.dtype == np.float32:
            x = x.astype(np.float64)
        if w is not None:
            ww = w / w.sum("member")
            m = (ww * x).sum("member")
            # sigma points: covariance weights (some negative: a round-off negative is 0)
            wc = ens["weight_cov"] / w.sum("member") if "weight_cov" in ens else ww
            s = np.sqrt(np.maximum((wc * (x - m) ** 2).sum("member"), 0.0))
            how = "weighted"
        else:
            m = x.mean("member")
            s = x.std("member", ddof=1) if ens.sizes["member"] > 1 else xr.zeros_like(m)
            how = "unweighted"
        attrs = {k: x.attrs[k] for k in ("units",) if k in x.attrs}
        sn = _STANDARD_NAMES.get(v)
        mean[v] = m.assign_attrs(
            attrs,
            long_name=f"ensemble mean of {x.attrs.get('long_name', v)}",
            cell_methods=f"member: mean ({how})",
            **({"standard_name": sn} if sn else {}),
        )
        spread[f"{v}_spread"] = s.assign_attrs(
            attrs,
            long_name=f"ensemble spread (standard deviation) of {x.attrs.get('long_name', v)}",
            cell_methods=f"member: standard_deviation ({how})",
        )
    return xr.Dataset(mean), xr.Dataset(spread)


def _rootzone(sm: xr.DataArray, depth: float = 1.0) -> xr.DataArray:
    """Depth-weighted soil moisture over 0–``depth`` m from the layer coordinates."""
    bottom = sm["depth_bottom"]
    dz = sm["dz"] if "dz" in sm.coords else bottom.diff("layer", label="upper")
    top = bottom - dz
    overlap = (np.minimum(bottom, depth) - top).clip(min=0.0)
    out = (sm * overlap).sum("layer") / overlap.sum()
    return out.assign_attrs(
        units=sm.attrs.get("units", "m3 m-3"),
        long_name=f"root-zone soil moisture (depth-weighted 0-{depth:g} m)",
    )


def _outputs(ens: xr.Dataset, kind: str) -> xr.Dataset:
    """Mean and spread of every state variable, plus surface and root-zone soil moisture."""
    derived = ens.copy()
    if "sm" in ens and "depth_bottom" in ens.coords:
        derived["sm_rootzone"] = _rootzone(ens["sm"])
        derived["sm_surface"] = (
            ens["sm"]
            .isel(layer=0, drop=True)
            .assign_attrs(
                units=ens["sm"].attrs.get("units", "m3 m-3"),
                long_name="surface (top-layer) soil moisture",
            )
        )
    mean, spread = ensemble_stats(derived)
    out = xr.merge([mean, spread], combine_attrs="override")
    out.attrs = {"title": f"{kind} ensemble mean and spread", "Conventions": "CF-1.10"}
    return out.drop_vars(
        [c for c in out.coords if c not in out.dims and c not in ("depth_bottom", "dz")]
    )


# ============================================================================ sources
class Sources:
    """Parameters, forcing and observation sources of an experiment, opened lazily."""

    def __init__(self, exp: Experiment, eager: bool = False):
        self.exp = exp
        self.eager = eager
        self._tree = None
        self.params = self._params()
        if eager:
            self.params = self.params.load()
        self.forcing = self._forcing()

    # -- demo tree ---------------------------------------------------------
    @property
    def tree(self):
        """The demo domain: the Heihe twin experiment (cached store) or, with
        ``demo: {domain: pan_tp, ...}``, the lazily generated Pan-Third-Pole domain."""
        if self._tree is None:
            args = dict(self.exp.demo)
            domain = args.pop("domain", "heihe")
            if domain == "pan_tp":
                from xldas.demo import pan_tp

                chunks = dict(self.exp.output.chunks or {})
                if "chunks" not in args and chunks:
                    args["chunks"] = {d: c for d, c in chunks.items() if d in ("lat", "lon")}
                self._tree = pan_tp(**args)
            elif domain == "heihe":
                from xldas.demo import heihe_osse

                self._tree = heihe_osse(**args)
            else:
                raise UnknownOptionError("demo.domain", domain, ("heihe", "pan_tp"))
        return self._tree

    def _group(self, name: str) -> xr.Dataset:
        try:
            return self.tree[name].to_dataset()
        except KeyError:
            raise ConfigError(
                f"the demo experiment has no group {name!r}; groups are {sorted(self.tree.groups)}"
            ) from None

    def _open(self, src, what: str) -> xr.Dataset:
        kind = src.kind
        if kind == "demo":
            return self._group(what if what != "obs" else f"obs/{src.sensor}")
        if kind == "catalog":
            from xldas.io import open_catalog

            return open_catalog(src.catalog)[src.entry].read()
        if kind == "zarr":
            return xr.open_zarr(src.path)
        if kind == "netcdf" and getattr(src, "reader", None) in ("ERA5", "ERA5_LAND"):
            from xldas.io.forcing import open_era5

            return open_era5(src.path, product=src.reader.lower().replace("_", "-"))
        if kind == "netcdf" and getattr(src, "reader", None):
            from xldas.io.observations import open_observations

            target = self.params if what == "obs" else None
            return open_observations(src.path, src.reader, target=target)
        if kind == "netcdf":
            return xr.open_dataset(src.path, chunks={})
        raise ConfigError(f"{what} source kind {kind!r} is not supported here")

    def _chunks(self, ds: xr.Dataset) -> xr.Dataset:
        chunks = dict(self.exp.output.chunks or {})
        chunks = {d: c for d, c in chunks.items() if d in ds.dims}
        return ds.chunk(chunks) if chunks else ds

    def _params(self) -> xr.Dataset:
        p = self._open(self.exp.model.params, "params")
        if self.exp.domain.bbox is not None:
            from xldas.io import regrid

            p = regrid(p, (self.exp.domain.bbox, self.exp.domain.resolution), method="nearest")
        return self._chunks(p)

    def _forcing(self) -> xr.Dataset:
        f = self._open(self.exp.forcing, "forcing")
        return self._regrid(f, self.exp.forcing.regrid)

    def _regrid(self, ds: xr.Dataset, method: str) -> xr.Dataset:
        same = all(
            d in ds.dims
            and d in self.params.dims
            and ds.sizes[d] == self.params.sizes[d]
            and np.allclose(ds[d].values, self.params[d].values)
            for d in ("lat", "lon")
        )
        if not same:
            from xldas.io import regrid

            ds = regrid(ds, self.params[["lat", "lon"]], method=method)
        return self._chunks(ds)

    def forcing_window(self, t0: pd.Timestamp, t1: pd.Timestamp) -> xr.Dataset:
        """Forcing with timestamps in (t0, t1] (period-ending)."""
        f = self.forcing.sel(time=slice(t0 + pd.Timedelta(1, "s"), t1))
        if f.sizes["time"] == 0:
            raise ForcingError(f"no forcing in the window ({t0}, {t1}]")
        if self.eager:
            return f.load()
        # the model step and the forcing perturbation loop over time inside a chunk: the
        # window in one time chunk (a cycle may span several chunks of the forcing store)
        return f.chunk(time=-1) if f.chunks and len(f.chunks.get("time", ())) > 1 else f

    @property
    def dt(self):
        """Model step: ``model.dt``, else the forcing interval (so one-step windows work)."""
        if self.exp.model.dt is not None:
            return self.exp.model.dt
        t = pd.DatetimeIndex(self.forcing["time"].values[:2])
        if len(t) < 2:
            raise ForcingError("forcing has a single time: give model.dt")
        return pd.Timedelta(t[1] - t[0])

    def forcing_end(self) -> pd.Timestamp:
        return pd.Timestamp(self.forcing["time"].values[-1])


class ObservationSource:
    """One configured observation source: listing (for real time) and windowed reads."""

    def __init__(self, cfg: ObservationConfig, sources: Sources, exp: Experiment):
        self.cfg = cfg
        self.sources = sources
        self.exp = exp
        self.operator = _make_operator(cfg.operator)
        self.variables = list(cfg.variables or getattr(self.operator, "variables", []))
        self._data = None

    # -- listing: {item id: time} -------------------------------------------
    def listing(self, t0: pd.Timestamp, t1: pd.Timestamp | None) -> dict[str, pd.Timestamp]:
        src = self.cfg.source
        if src.kind == "stac":
            from pystac_client import Client

            end = ".." if t1 is None else t1.isoformat() + "Z"
            client = Client.open(src.url, timeout=30)
            search = client.search(
                collections=src.collections,
                bbox=self.exp.domain.bbox or _bbox(self.sources.params),
                datetime=f"{t0.isoformat()}Z/{end}",
            )
            return {
                it.id: pd.Timestamp(it.datetime).tz_convert(None)
                for it in search.items()
                if it.datetime is not None
            }
        if src.kind == "files":
            return {Path(p).name: t for p, t in _glob_dated(src.pattern).items()}
        times = pd.DatetimeIndex(self.data["time"].values)
        sel = (times > t0) & ((times <= t1) if t1 is not None else True)
        return {f"{self.cfg.name}@{t.isoformat()}": t for t in times[sel]}

    @property
    def data(self) -> xr.Dataset:
        if self._data is None:
            ds = self.sources._open(self.cfg.source, "obs")
            self._data = self._rescale(self.sources._regrid(ds, self.cfg.source.regrid))
        return self._data

    def _rescale(self, ds: xr.Dataset) -> xr.Dataset:
        """Rescale the observed variables onto the configured reference climatology."""
        rs = self.cfg.rescale
        if rs is None:
            return ds
        from xldas.validation import rescale

        ref = self.sources._regrid(self.sources._open(rs.reference, "rescale"), "bilinear")
        ds = ds.copy()
        for v in [v for v in self.variables if v in ds]:
            r = ref[rs.variable or v]
            if "layer" in r.dims:
                r = r.isel(layer=0, drop=True)
            out = rescale(ds[v], r, method=rs.method)
            if f"{v}_err" in ds:
                ratio = out.std("time") / ds[v].std("time")
                ds[f"{v}_err"] = (ds[f"{v}_err"] * ratio).assign_attrs(
                    units=r.attrs.get("units", ""), long_name=f"1-sigma error of {v} (rescaled)"
                )
            ds[v] = out
        return ds

    # -- window -------------------------------------------------------------
    def window(
        self, t0: pd.Timestamp, t1: pd.Timestamp
    ) -> tuple[xr.Dataset | None, dict[str, Any]]:
        """Observations with times in (t0, t1], on the model grid; and a status record."""
        src = self.cfg.source
        status: dict[str, Any] = {"skipped_files": 0}
        try:
            if src.kind == "files":
                ds = self._files_window(t0, t1, status)
            elif src.kind == "stac":
                ds = self._stac_window(t0, t1)
            else:
                ds = self.data.sel(time=slice(t0 + pd.Timedelta(1, "s"), t1))
        except _Skip as exc:
            log.warning("observations %s for (%s, %s] skipped: %s", self.cfg.name, t0, t1, exc)
            status["skipped_files"] += 1
            return None, status
        if ds is None or "time" not in ds.dims or ds.sizes["time"] == 0:
            return None, status
        keep = [v for v in self.variables if v in ds]
        missing = [v for v in self.variables if v not in ds]
        if missing:
            log.warning("observations %s: variable(s) %s not in the source", self.cfg.name, missing)
        errs = [f"{v}_err" for v in keep if f"{v}_err" in ds]
        ds = ds[keep + errs]
        if self.sources.eager:
            ds = ds.load()
        return self._error_model(self._thin(ds)), status

    def _files_window(self, t0, t1, status) -> xr.Dataset | None:
        """One file per analysis time, named by the strftime ``pattern`` of that time."""
        path = Path(pd.Timestamp(t1).strftime(self.cfg.source.pattern))
        if not path.exists():
            raise _Skip(f"file {path} is missing")
        try:
            ds = xr.open_dataset(path, chunks={})
            ds = ds.load()  # small per-date file; read fully to detect corruption now
        except Exception as exc:
            raise _Skip(f"file {path} cannot be read ({type(exc).__name__}: {exc})") from None
        if "time" not in ds.dims:
            ds = ds.expand_dims(time=[pd.Timestamp(t1).to_datetime64()])
        return self.sources._regrid(ds, self.cfg.source.regrid)

    def _stac_window(self, t0, t1) -> xr.Dataset | None:
        from xldas import search_stac
        from xldas.errors import NoItemsFoundError

        src = self.cfg.source
        start = (t0 + pd.Timedelta(1, "s")).isoformat() + "Z"
        try:
            ds = search_stac(
                src.url,
                src.collections,
                bbox=self.exp.domain.bbox or _bbox(self.sources.params),
                datetime=f"{start}/{t1.isoformat()}Z",
                bands=src.bands,
                resolution=src.resolution,
                crs="EPSG:4326",
            )
        except NoItemsFoundError:
            return None
        ds = ds.rename(
            {
                k: v
                for k, v in {"latitude": "lat", "longitude": "lon", "y": "lat", "x": "lon"}.items()
                if k in ds.dims
            }
        )
        ds = ds.sortby("lat")
        ds = ds.assign_coords(time=pd.DatetimeIndex(ds["time"].values).tz_localize(None))
        ds = ds.sel(time=slice(t0 + pd.Timedelta(1, "s"), t1))
        ds = ds.drop_vars([c for c in ds.coords if c not in ("time", "lat", "lon")])
        return self.sources._regrid(ds.astype("float64"), src.regrid)

    def _thin(self, ds: xr.Dataset) -> xr.Dataset:
        k = self.cfg.thinning
        if k == 1:
            return ds
        keep = (xr.DataArray(np.arange(ds.sizes["lat"]) % k == 0, dims="lat")) & (
            xr.DataArray(np.arange(ds.sizes["lon"]) % k == 0, dims="lon")
        )
        return ds.where(keep)

    def _error_model(self, ds: xr.Dataset) -> xr.Dataset:
        err = self.cfg.error
        for v in [v for v in self.variables if v in ds]:
            if err.std is not None:
                std = err.std
                if (
                    err.units
                    and OBSERVATION_UNITS.get(v)
                    and err.units.strip() != OBSERVATION_UNITS[v]
                ):
                    from xldas.units import conversion

                    a, _ = conversion(err.units, OBSERVATION_UNITS[v])
                    std = std * a
                ds[f"{v}_err"] = (
                    xr.full_like(ds[v], std)
                    .where(ds[v].notnull())
                    .assign_attrs(
                        units=ds[v].attrs.get("units", OBSERVATION_UNITS.get(v, "")),
                        long_name=f"1-sigma error of {v}",
                    )
                )
            elif f"{v}_err" not in ds and "error_std" not in ds[v].attrs:
                raise ConfigError(
                    f"observations[{self.cfg.name}].error.std: the source has no {v}_err "
                    f"variable nor error_std attribute; give error.std"
                )
        return ds


class _Skip(Exception):
    pass


def _bbox(params: xr.Dataset) -> tuple[float, float, float, float]:
    lat, lon = params["lat"].values, params["lon"].values
    return (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))


def _glob_dated(pattern: str) -> dict[str, pd.Timestamp]:
    """Files matching a strftime pattern, with the time parsed from their names."""
    import datetime as _dt

    wild = pattern
    for code in ("%Y", "%m", "%d", "%H", "%M", "%S", "%j"):
        wild = wild.replace(code, "*")
    out = {}
    for p in sorted(glob.glob(wild)):
        try:
            out[p] = pd.Timestamp(_dt.datetime.strptime(p, pattern))
        except ValueError:
            continue
    return out


def _make_operator(spec: dict[str, Any]):
    import xldas.obs as obs_mod

    spec = dict(spec)
    typ = spec.pop("type")
    cls = getattr(obs_mod, OPERATORS[typ])
    preset = spec.pop("preset", None)
    if preset is not None:
        factory = getattr(cls, preset, None)
        if factory is None:
            raise ConfigError(f"operator preset {preset!r} is not available for {OPERATORS[typ]}")
        return factory(**spec)
    return cls(**spec)


# ============================================================================ the engine
class Engine:
    """Runs the cycles of one experiment into its store (see the module docstring)."""

    def __init__(
        self,
        exp: Experiment,
        *,
        quiet: bool = False,
        overwrite: bool | None = None,
        eager: bool | None = None,
    ):
        self.exp = exp
        self.quiet = quiet
        self.overwrite = exp.output.overwrite if overwrite is None else overwrite
        if eager is None:
            # small in-process runs: NumPy end to end (no task-graph overhead); with a Dask
            # client, a cluster or spatial chunks: lazy, chunked, streamed
            eager = (
                exp.cluster.type == "none"
                and not exp.output.chunks
                and exp.demo.get("domain", "heihe") != "pan_tp"  # generated lazily per chunk
                and _no_client()
            )
        self.sources = Sources(exp, eager=eager)
        self.obs = [ObservationSource(o, self.sources, exp) for o in exp.observations]
        self.filter = None if exp.filter.method == "none" else self._make_filter()

    # -- parts ----------------------------------------------------------------
    def _make_filter(self):
        import xldas.filters as filters_mod

        name = {
            "enkf": "EnKF",
            "etkf": "ETKF",
            "letkf": "LETKF",
            "ukf": "UKF",
            "cdkf": "CDKF",
            "srukf": "SRUKF",
            "srcdkf": "SRCDKF",
            "pf": "PF",
        }[self.exp.filter.method]
        cls = getattr(filters_mod, name)
        try:
            return cls(**self.exp.filter.hyperparameters)
        except TypeError as exc:
            import dataclasses

            valid = (
                [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
            )
            raise ConfigError(f"filter: {exc}; hyperparameters of {name} are {valid}") from None

    def initial_state(self) -> xr.Dataset:
        """Deterministic initial state on the model grid (spun up if asked)."""
        params = self.sources.params
        if self.exp.model.initial_state == "demo":
            state = self.sources._chunks(self.sources._group("initial"))
            state = state[[v for v in ("sm", "tsoil", "swe", "canopy_water") if v in state]]
        else:
            from xldas.models import initial_state

            state = initial_state(params, dtype=np.float32)
        if self.exp.spinup.enabled:
            state = self._spinup(state, params)
        if "time" in state.coords:
            state = state.drop_vars("time")
        return state.assign_coords(time=pd.Timestamp(self.exp.period.start).to_datetime64())

    def _spinup(self, state: xr.Dataset, params: xr.Dataset) -> xr.Dataset:
        t0 = pd.Timestamp(self.exp.period.start)
        forcing = self.sources.forcing_window(
            t0 - pd.Timedelta(1, "s"), t0 + pd.Timedelta(self.exp.spinup.length)
        )
        prev = state
        for it in range(1, self.exp.spinup.max_iterations + 1):
            new = prev.ldas.step(forcing, params, dt=self.sources.dt).persist()
            change = float(abs(new["sm"] - prev["sm"]).max().compute())
            log.info("spin-up iteration %d: max |Δsm| = %.3g m3 m-3", it, change)
            prev = new
            if change < self.exp.spinup.tolerance:
                break
        else:
            log.warning(
                "spin-up did not reach tolerance %g in %d iterations", self.exp.spinup.tolerance, it
            )
        if "time" in prev.coords:
            prev = prev.drop_vars("time")
        return prev.assign_coords(time=t0.to_datetime64())

    @property
    def perturbation(self):
        from xldas.models import ForcingPerturbation

        fp = self.exp.ensemble.forcing_perturbation
        return None if fp is None else ForcingPerturbation(**fp)

    @property
    def forcing_seed(self) -> int:
        # the forcing-perturbation generator is keyed by (seed, absolute time step):
        # one seed for the whole experiment gives every cycle its own numbers
        return _seed(self.exp.ensemble.seed, 0, _PURPOSE["forcing"])

    def initial_ensemble(self) -> xr.Dataset:
        state = self.initial_state()
        ens_cfg = self.exp.ensemble
        if self.exp.filter.method in SIGMA_POINT_METHODS:
            ens = self._sigma_point_ensemble(state)
        else:
            ens = state.ldas.perturb(
                ens_cfg.members,
                forcing_perturbation=self.perturbation,
                parameter_perturbation=ens_cfg.parameter_perturbation or None,
                params=self.sources.params,
                state_perturbation=ens_cfg.state_perturbation or None,
                seed=_seed(ens_cfg.seed, 0, _PURPOSE["init"]),
            )
        ens = carried_state(ens)
        if self.sources.eager:
            return ens.load()
        return ens.chunk({"member": -1})

    def _sigma_point_ensemble(self, state: xr.Dataset) -> xr.Dataset:
        """The 2n+1 sigma points of the initial state (``ensemble.state_perturbation``
        as the initial standard deviations); ``ensemble.members``, if set, must be 2n+1."""
        from xldas.filters import n_state_elements, sigma_point_ensemble

        n = n_state_elements(state)
        ens_cfg = self.exp.ensemble
        if "members" in ens_cfg.model_fields_set and ens_cfg.members != 2 * n + 1:
            raise ConfigError(
                f"ensemble.members: {self.exp.filter.method} carries 2n+1 = {2 * n + 1} sigma "
                f"points for the n = {n} state elements per pixel; got {ens_cfg.members} "
                "(leave ensemble.members out to use 2n+1)"
            )
        return sigma_point_ensemble(
            state, self.filter, std=ens_cfg.state_perturbation, params=self.sources.params
        )

    def forecast(self, ens: xr.Dataset, cycle: int, t0, t1) -> tuple[xr.Dataset, xr.Dataset | None]:
        forcing = self.sources.forcing_window(t0, t1)
        fp = self.perturbation
        out = ens.ldas.step(
            forcing,
            self.sources.params,
            dt=self.sources.dt,
            fluxes=self.exp.output.fluxes,
            perturbation=fp,
            seed=self.forcing_seed if fp is not None else None,
        )
        fluxes = None
        if self.exp.output.fluxes:
            out, fluxes = out
        if "time" in out.coords:
            out = out.drop_vars("time")
        return out.assign_coords(time=pd.Timestamp(t1).to_datetime64()), fluxes

    def _local_analysis(self) -> bool:
        """Whether the filter analyses each chunk with its neighbours' observations
        (LETKF, localised EnKF)."""
        return self.filter is not None and getattr(self.filter, "loc_radius", None) is not None

    @property
    def scratch(self) -> Path:
        """Folder beside the output store for a cycle's forecast (two-pass cycles)."""
        store = Path(self.exp.output.store)
        return store.with_name(f".{store.name}.scratch")

    def _through_scratch(self, stage: str, **datasets: xr.Dataset | None) -> dict:
        """Compute ``datasets`` chunk by chunk into the scratch folder ``stage`` (one graph;
        the same stage of the previous cycle is overwritten: that cycle is committed);
        return them reopened lazily from there, with their chunks (two-pass cycle of the
        local analyses).

        A local analysis needs its neighbours' observation side (predicted observations,
        observations and their errors). Computed in the same graph as the forecast, the
        analysis of a chunk waits for the forecasts of its neighbours: the scheduler keeps
        the ensembles of many chunks alive at once, and the commit cannot evaluate the
        chunks in batches. Written first (the model step, the observation operator and the
        QC of a chunk need no other chunk), they are read back by the analysis, whose
        halos are then cheap reads of the scratch store. Same numbers: the store keeps
        every variable's dtype, values and attributes. ``None`` entries are passed through.
        """
        from xldas.cycle.store import write_streamed

        root = self.scratch / stage
        paths = {name: root / f"{name}.zarr" for name, ds in datasets.items() if ds is not None}
        write_streamed({paths[name]: datasets[name] for name in paths})
        out: dict = {}
        for name, ds in datasets.items():
            if ds is None:
                out[name] = None
                continue
            back = xr.open_zarr(
                paths[name], group="data", consolidated=False, zarr_format=3, chunks={}
            )
            chunks = {d: c for d, c in (ds.chunks or {}).items() if d in back.dims}
            out[name] = (back.chunk(chunks) if chunks else back).assign_attrs(ds.attrs)
        return out

    def _regular_chunks(self, obs: xr.Dataset, like: xr.Dataset) -> xr.Dataset:
        """``obs`` chunked like the ensemble ``like`` on their shared dims (one chunk per
        other dim): the uniform chunks a Zarr write needs, aligned with the state's."""
        chunks = {d: -1 for d in obs.dims}
        for d, c in (like.chunks or {}).items():
            if d in obs.dims and obs.sizes[d] == like.sizes[d]:
                chunks[d] = c
        return obs.chunk(chunks)

    def qc(
        self, obs: xr.Dataset, fc_mean: xr.Dataset, cfg: ObservationConfig
    ) -> tuple[xr.Dataset, dict]:
        """Range checks and frozen-soil/snow masks; returns the filtered obs and counts."""
        qc = cfg.qc
        counts = {}
        out = obs.copy()
        for v in [v for v in obs.data_vars if not v.endswith("_err")]:
            ok = obs[v].notnull()
            keep = ok
            if v in qc.range:
                lo, hi = qc.range[v]
                keep = keep & (obs[v] >= lo) & (obs[v] <= hi)
            if v.startswith(_MICROWAVE):
                if qc.frozen_soil and "tsoil" in fc_mean:
                    keep = keep & ~(
                        fc_mean["tsoil"].isel(layer=0, drop=True) < qc.frozen_threshold_k
                    )
                if qc.snow and "swe" in fc_mean:
                    keep = keep & ~(fc_mean["swe"] > qc.snow_threshold)
            out[v] = obs[v].where(keep)
            if f"{v}_err" in out:
                out[f"{v}_err"] = obs[f"{v}_err"].where(keep)
            counts[v] = _qc_rejected(obs, out, v)
        return out, counts

    # -- one cycle -------------------------------------------------------------
    def cycle(self, ens: xr.Dataset, cycle: int, t0: pd.Timestamp, t1: pd.Timestamp):
        """Forecast + QC + analysis of one cycle, lazily; returns what the store commits."""
        params = self.sources.params
        forecast, fluxes = self.forecast(ens, cycle, t0, t1)
        if self.sources.eager:
            forecast = forecast.persist()
        staged = not self.sources.eager and self._local_analysis()
        fc_mean, _ = ensemble_stats(forecast)
        windows = []  # (source, QC'd observations or None, observations before QC, status)
        for src in self.obs:
            obs, status = src.window(t0, t1)
            qcd = None if obs is None else self.qc(obs, fc_mean, src.cfg)[0]
            windows.append((src, qcd, obs, status))
        first = next((i for i, w in enumerate(windows) if w[1] is not None), None)
        pred0 = None
        if staged:
            # pass 1: the forecast, its predicted observations for the first analysis and
            # the observations (before and after QC) into the scratch store, in one graph
            if first is not None and self.filter is not None:
                pred0 = _as_dataset(forecast.ldas.observe(windows[first][0].operator, params))
            extra = {}
            for i, (_, qcd, obs, _) in enumerate(windows):
                if qcd is not None:
                    extra[f"obs{i}"] = self._regular_chunks(qcd, forecast)
                    extra[f"raw{i}"] = self._regular_chunks(obs, forecast)
            back = self._through_scratch("pass1", forecast=forecast, pred=pred0, **extra)
            forecast, pred0 = back["forecast"], back["pred"]
            windows = [
                (src, back.get(f"obs{i}", qcd), back.get(f"raw{i}", obs), status)
                for i, (src, qcd, obs, status) in enumerate(windows)
            ]
            fc_mean, _ = ensemble_stats(forecast)
        _fault("forecast", cycle)
        analysis = forecast
        diag: dict[str, xr.DataArray] = {}
        status_all = {}
        n_used_total = 0
        innov_sq, innov_n = [], []
        stage = 0
        for isrc, (src, obs, raw, status) in enumerate(windows):
            name = src.cfg.name
            status_all[name] = status
            diag[f"{name}_files_skipped"] = xr.DataArray(status["skipped_files"]).assign_attrs(
                long_name=f"{name}: observation files missing or unreadable", units="1"
            )
            if obs is None:
                diag[f"{name}_n_used"] = xr.DataArray(0).assign_attrs(units="1")
                diag[f"{name}_n_qc_rejected"] = xr.DataArray(0).assign_attrs(units="1")
                continue
            values = [v for v in obs.data_vars if not v.endswith("_err")]
            used = sum(obs[v].notnull().sum() for v in values)
            rejected = sum(_qc_rejected(raw, obs, v) for v in values)
            diag[f"{name}_n_used"] = xr.DataArray(used).assign_attrs(
                long_name=f"{name}: observations passed to the analysis", units="1"
            )
            diag[f"{name}_n_qc_rejected"] = xr.DataArray(rejected).assign_attrs(
                long_name=f"{name}: observations rejected by range/frozen-soil/snow QC", units="1"
            )
            for it in range(obs.sizes["time"]):
                y = obs.isel(time=it, drop=True)
                # innovation of the first update against the forecast mean prediction
                if pred0 is not None and analysis is forecast:
                    pred = pred0
                else:
                    pred = _as_dataset(analysis.ldas.observe(src.operator, params))
                    if staged and self.filter is not None:
                        # a later local analysis: the analysis so far and its predicted
                        # observations into the scratch store first (as in pass 1)
                        stage += 1
                        back = self._through_scratch(f"stage{stage}", ens=analysis, pred=pred)
                        analysis, pred = back["ens"], back["pred"]
                pm, _ = ensemble_stats(
                    pred.assign(weight=analysis["weight"]) if "weight" in analysis else pred
                )
                for v in values:
                    if v not in pm:
                        continue
                    d = (y[v] - pm[v]).assign_attrs(
                        units=y[v].attrs.get("units", OBSERVATION_UNITS.get(v, "")),
                        long_name=f"innovation of {v} (observation minus forecast-mean prediction)",
                    )
                    if it == 0:
                        diag[f"{name}_{v}_innovation"] = d
                    innov_sq.append((d**2).sum())
                    innov_n.append(d.notnull().sum())
                if self.filter is not None:
                    # counter-based random numbers keyed by (seed, cycle, sub-analysis)
                    seed = _seed(self.exp.ensemble.seed, 0, _PURPOSE["analysis"])
                    key = 1024 * cycle + 32 * isrc + it
                    operator = _Predicted(src.operator, analysis, pred) if staged else src.operator
                    analysis, fdiag = _assimilate(
                        analysis, y, operator, params, self.filter, seed, key
                    )
                    if it == 0:
                        for k, val in fdiag.data_vars.items():
                            if "member" not in val.dims:
                                diag[f"{name}_filter_{k}"] = val
            n_used_total = n_used_total + used
        if self.sources.eager:
            analysis = analysis.persist()
        diag_ds = xr.Dataset(diag)
        diag_ds["n_obs_used"] = xr.DataArray(n_used_total).assign_attrs(
            units="1", long_name="observations assimilated in this cycle"
        )
        if innov_sq:
            rmse = np.sqrt(sum(innov_sq) / np.maximum(sum(innov_n), 1))
            diag_ds["innovation_rmse"] = rmse.where(sum(innov_n) > 0).assign_attrs(
                long_name="RMSE of all innovations of the cycle (observation units)"
            )
        outputs = {
            "forecast": _outputs(forecast, "forecast"),
            "analysis": _outputs(analysis, "analysis"),
            "diagnostics": diag_ds,
        }
        if fluxes is not None:
            fm, _ = ensemble_stats(fluxes)
            outputs["fluxes"] = fm.mean("time", keep_attrs=True) if "time" in fm.dims else fm
        return carried_state(analysis), outputs

    # -- the loop --------------------------------------------------------------
    def _start(self, store: CycleStore) -> tuple[xr.Dataset, int, pd.Timestamp]:
        """The ensemble to continue from: the last good checkpoint, or a new one."""
        while True:
            info = store.last()
            if info is None:
                ens = self.initial_ensemble()
                t0 = pd.Timestamp(self.exp.period.start)
                store.commit_cycle(0, t0, ens, None, ledger={}, message="initial ensemble")
                log.info("committed the initial ensemble (cycle 0, %s)", t0)
                return self._reload(store), 0, t0
            try:
                ens = store.load_checkpoint(verify=self.exp.checkpoint.verify)
                ens = ens.load() if self.sources.eager else _one_member_chunk(ens)
                return ens, info.cycle, info.time
            except CheckpointError as exc:
                log.error("%s", exc)
                log.error("resuming from the previous committed cycle")
                store.rollback()

    def _reload(self, store: CycleStore) -> xr.Dataset:
        ens = store.load_checkpoint(verify=False)
        return ens.load() if self.sources.eager else _one_member_chunk(ens)

    def run(self, until: pd.Timestamp | None = None, realtime: bool = False) -> CycleReport:
        exp = self.exp
        t_start = _time.perf_counter()
        report = CycleReport(store=exp.output.store)
        with CycleStore(
            exp.output.store,
            exp.config_hash(),
            exp.canonical(),
            overwrite=self.overwrite,
            name=exp.name,
        ) as store:
            ledger = store.ledger()
            last = store.last()
            if realtime:
                until, late = self._realtime_until(last, ledger)
                report.late_observations = late
                if until is None:
                    report.up_to_date = True
                    report.already_done = last.cycle if last else 0
                    report.wall_time = _time.perf_counter() - t_start
                    return report
            if until is None:
                until = self.sources.forcing_end() if exp.period.end is None else None
            times = exp.cycle_times(until)
            ens, done, _ = self._start(store)
            report.already_done = done
            todo = [(k, t) for k, t in enumerate(times, start=1) if k > done]
            if not todo:
                report.up_to_date = True
            bar = _progress(len(todo), self.quiet, exp.name)
            try:
                for k, t in todo:
                    t0 = times[k - 2] if k >= 2 else pd.Timestamp(exp.period.start)
                    wall = _time.perf_counter()
                    for attempt in range(_CYCLE_RETRIES + 1):
                        try:
                            analysis, outputs = self.cycle(ens, k, t0, t)
                            new_ledger = self._update_ledger(ledger, t0, t)
                            store.commit_cycle(k, t, analysis, outputs, ledger=new_ledger)
                            break
                        except _transient_errors() as exc:
                            # a lost worker can cancel a whole graph: nothing of the cycle
                            # was committed (commits are atomic), so run it again from the
                            # last committed checkpoint
                            if attempt == _CYCLE_RETRIES:
                                raise
                            log.warning(
                                "cycle %d failed on the cluster (%s: %s); retrying it from the "
                                "last committed checkpoint (%d/%d)",
                                k,
                                type(exc).__name__,
                                exc,
                                attempt + 1,
                                _CYCLE_RETRIES,
                            )
                            ens = self._reload(store)
                    ledger = new_ledger
                    # continue from the stored checkpoint, exactly as a resumed run does
                    ens = self._reload(store)
                    rec = _record(
                        k,
                        t,
                        store.last_outputs if hasattr(store, "last_outputs") else outputs,
                        _time.perf_counter() - wall,
                    )
                    rec["tasks"] = store.last_graph_size
                    report.records.append(rec)
                    report.cycles_run.append(k)
                    report.times_run.append(t)
                    log.info(
                        "cycle=%d time=%s obs_used=%d innovation_rmse=%.4g wall=%.2fs",
                        rec["cycle"],
                        rec["time"],
                        rec["obs_used"],
                        rec["innovation_rmse"],
                        rec["wall_time"],
                    )
                    bar.update(1)
            finally:
                bar.close()
                if self._local_analysis() and not self.sources.eager:
                    import shutil

                    shutil.rmtree(self.scratch, ignore_errors=True)
        report.wall_time = _time.perf_counter() - t_start
        return report

    # -- real time -------------------------------------------------------------
    def _listing(
        self, t0: pd.Timestamp, t1: pd.Timestamp | None
    ) -> dict[str, dict[str, pd.Timestamp]]:
        return {src.cfg.name: src.listing(t0, t1) for src in self.obs}

    def _update_ledger(self, ledger, t0, t1):
        if not any(src.cfg.source.kind in ("stac", "files") for src in self.obs):
            return ledger
        new = {k: list(v) for k, v in ledger.items()}
        for name, items in self._listing(t0, t1).items():
            ids = [i for i, t in items.items() if t0 < t <= t1]
            new[name] = sorted(set(new.get(name, [])) | set(ids))
        return new

    def _realtime_until(self, last, ledger) -> tuple[pd.Timestamp | None, int]:
        """The last cycle time to run for the observations now published, and the
        number of late observations (ignored)."""
        start = pd.Timestamp(self.exp.period.start)
        last_t = last.time if last is not None else start
        listing = self._listing(start, None)
        late = 0
        newest = None
        for name, items in listing.items():
            seen = set(ledger.get(name, []))
            for item, t in items.items():
                if t <= last_t and item not in seen and last is not None and last.cycle > 0:
                    late += 1
                    log.warning(
                        "late observation %s (%s, %s) belongs to committed cycle; ignored "
                        "(policy: committed cycles are immutable)",
                        item,
                        name,
                        t,
                    )
                elif t > last_t:
                    newest = t if newest is None else max(newest, t)
        if newest is None:
            log.info("up to date: no observation newer than %s", last_t)
            return None, late
        interval = self.exp.period.interval
        k = int(np.ceil((newest - start) / interval))
        until = start + k * interval
        if self.exp.period.end is not None:
            until = min(until, pd.Timestamp(self.exp.period.end))
        until = min(until, self.sources.forcing_end())
        if until <= last_t:
            return None, late
        return until, late


#: how often a cycle is re-run after a cluster failure (lost worker, cancelled graph)
_CYCLE_RETRIES = 3


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Exceptions of a distributed run that a re-run of the cycle can recover from."""
    import concurrent.futures

    errors: list[type[BaseException]] = [concurrent.futures.CancelledError]
    try:
        from distributed import KilledWorker
        from distributed.client import FutureCancelledError
        from distributed.comm.core import CommClosedError

        errors += [KilledWorker, FutureCancelledError, CommClosedError]
    except ImportError:  # pragma: no cover - distributed is a dependency
        pass
    return tuple(errors)


def _one_member_chunk(ens: xr.Dataset) -> xr.Dataset:
    """The stored ensemble with ``member`` (and ``layer``) in one chunk each, as the model
    step and the filters need; spatial chunks are the store's."""
    need = {d: -1 for d in ("member", "layer") if d in ens.dims}
    lazy = any(v.chunks is not None for v in ens.data_vars.values())
    return ens.chunk(need) if lazy else ens


def _no_client() -> bool:
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return True
    return False


def _qc_rejected(raw: xr.Dataset, qcd: xr.Dataset, v: str) -> xr.DataArray:
    """Number of observations of ``v`` that QC removed (present in ``raw``, NaN after)."""
    return (raw[v].notnull() & qcd[v].isnull()).sum()


def _as_dataset(pred) -> xr.Dataset:
    return pred.to_dataset() if isinstance(pred, xr.DataArray) else pred


class _Predicted:
    """An observation operator whose predictions of one ensemble are already known (read
    back from the scratch store); any other ensemble goes to the operator itself."""

    def __init__(self, operator, ens: xr.Dataset, pred: xr.Dataset):
        self.operator, self.ens, self.pred = operator, ens, pred
        self.variables = operator.variables

    def __call__(self, ens, params=None):
        if ens is self.ens:
            return self.pred
        # e.g. the filter rechunked the ensemble: the same values, predicted again (one
        # more pass over the state, not a different analysis)
        log.debug("%r: the predictions are computed again for another ensemble", self)
        return self.operator(ens, params)

    def __repr__(self) -> str:
        return repr(self.operator)


def _assimilate(ens, obs, operator, params, filt, seed: int, key: int):
    """One analysis with ``xldas.filters.assimilate``; random numbers keyed by (seed, key)."""
    from xldas.filters import assimilate

    analysis, diag = assimilate(
        ens, obs, operator, params, method=filt, seed=seed, cycle=key, return_diagnostics=True
    )
    if isinstance(diag, xr.DataArray):
        diag = diag.to_dataset()
    return analysis, diag


def _record(k: int, t: pd.Timestamp, outputs: dict[str, xr.Dataset], wall: float) -> dict[str, Any]:
    d = outputs["diagnostics"]
    used = int(d["n_obs_used"].values) if "n_obs_used" in d else 0
    rmse = float(d["innovation_rmse"].values) if "innovation_rmse" in d else float("nan")
    return {
        "cycle": k,
        "time": t.isoformat(),
        "obs_used": used,
        "innovation_rmse": rmse,
        "wall_time": wall,
    }


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress(total: int, quiet: bool, name: str):
    if quiet or not sys.stderr.isatty() or total == 0:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{name} cycles", unit="cycle", file=sys.stderr)


# ============================================================================ entry points
@contextlib.contextmanager
def _client_for(exp: Experiment, client):
    """Use ``client`` when given; else start the configured cluster (closed afterwards)."""
    if client is not None or exp.cluster.type == "none":
        yield client
        return
    from distributed import Client

    import xldas.compute as compute

    opts = dict(exp.cluster.options)
    if exp.cluster.type == "local":
        cluster = compute.local_cluster(**opts)
    else:
        jobs = int(opts.pop("jobs", 1))
        cluster = compute.slurm_cluster(**opts)
        cluster.scale(jobs=jobs)
    try:
        with Client(cluster) as c:
            if exp.cluster.type == "slurm":
                c.wait_for_workers(1, timeout=120)
            yield c
    finally:
        cluster.close()


def run(
    exp: Experiment, client=None, *, quiet: bool = False, overwrite: bool | None = None, until=None
) -> CycleReport:
    """Run (or resume) every cycle of ``exp.period`` into ``exp.output.store``.

    Cycles already committed are skipped; a killed run resumes at the last committed cycle.

    Parameters
    ----------
    exp : Experiment
    client : distributed.Client, optional
        Compute on this client; otherwise on the cluster of ``exp.cluster`` (``none``: the
        default Dask scheduler in this process).
    quiet : bool
        No progress bar.
    overwrite : bool, optional
        Replace a store of a different experiment (default ``exp.output.overwrite``).
    until : timestamp, optional
        Stop at this time (default ``period.end``).
    """
    with _client_for(exp, client):
        return Engine(exp, quiet=quiet, overwrite=overwrite).run(
            until=None if until is None else pd.Timestamp(until)
        )


def catch_up(
    exp: Experiment, client=None, *, quiet: bool = False, overwrite: bool | None = None
) -> CycleReport:
    """Real-time mode: run exactly the cycles for which new observations were published.

    Observation sources are listed (STAC ``datetime`` search, file listing, or the time
    axis of a dataset); cycles up to the one holding the newest observation are run.
    Returns a report with ``up_to_date=True`` when nothing is new. Observations for cycles
    already committed are logged as late and ignored.
    """
    with _client_for(exp, client):
        return Engine(exp, quiet=quiet, overwrite=overwrite).run(realtime=True)


def follow(
    exp: Experiment, interval: float = 600.0, max_polls: int | None = None, **kwargs
) -> None:
    """Keep polling: :func:`catch_up` every ``interval`` seconds (``max_polls`` times)."""
    n = 0
    while max_polls is None or n < max_polls:
        report = catch_up(exp, **kwargs)
        log.info("%s", report.summary())
        n += 1
        if max_polls is not None and n >= max_polls:
            break
        _time.sleep(interval)


# silence unused-import linters for names used in type hints / re-exports
_ = (json, os, dask, StoreError)
