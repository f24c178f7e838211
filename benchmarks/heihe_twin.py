"""Heihe land twin experiment: open loop and every grid filter through the cycling engine.

Issue 4's accuracy target: in the default configuration of the embedded Heihe twin
experiment (``xldas.demo.OSSE_DEFAULTS`` / ``catalogs/experiments/heihe_osse_*.yaml``:
SMAP-like Tb H and V on the model grid where the 1000 km swath passes, i.e. every 2–3
days per pixel, 2 K noise, the default forcing perturbations, 24 members, daily cycles,
fixed before any filter was run), assimilating SMAP-like Tb with EnKF and LETKF should
reduce the domain-mean surface soil-moisture RMSE against the truth by at least 30% and
the root-zone RMSE by at least 10% relative to the open loop.

This script runs the experiments of :func:`xldas.cycle.demo.demo_experiments` (the same
YAML files as ``xldas demo``) through :func:`xldas.cycle.engine.run`, then prints, for
every filter and for the whole domain and each sub-basin of the demo's ``regions``
(upstream / midstream / downstream), the RMSE of the analysis ensemble mean against the
truth (per pixel over the analysis times, then averaged over the pixels) of surface
(top layer, 0–5 cm) and root-zone (depth-weighted 0–100 cm) soil moisture, with the
reduction relative to the open loop, and the ratio of ensemble spread to RMSE.

Filters: ``enkf``, ``etkf``, ``letkf`` and ``pf`` by default (a filter without its own YAML
file reuses the EnKF file with ``filter.method`` replaced, as ``xldas demo`` does, so it runs
with its default hyperparameters, i.e. cell by cell). The sigma-point filters (``--filters ukf cdkf srukf
srcdkf``) cycle 2n+1 = 21 weighted points (n = 10 state elements: 4 layers of ``sm`` and
``tsoil``, ``swe``, ``canopy_water``) propagated with the unperturbed forcing, their model
error being the process noise ``Q`` of :data:`xldas.cycle.demo.SIGMA_POINT_SETUP`.

Measured 2026-11-24 (default configuration, 0.05° = 104 × 100 cells, 30 daily cycles, 24
members, 21 sigma points; 2 cores shared with other jobs, run at nice 5–19; domain = every
grid cell, sub-basins from ``regions``). The EnKF and LETKF of the experiment files are
localised with ``loc_radius`` 15 km (Gaspari–Cohn R-localisation: each cell is analysed with
its own and its neighbours' Tb); the rows marked "per cell" are the same filters with every
cell analysed with its own Tb only (no ``loc_radius``: the EnKF, ETKF and PF), and the
LETKF with 25 km is the first radius tried::

    RMSE (m3 m-3) and reduction vs open loop   domain           downstream midstream upstream
    surface     open loop                      0.0187           0.0136     0.0168    0.0270
                EnKF, localised 15 km          0.0124 (-33.6%)  -36.2%     -35.0%    -32.3%
                LETKF, 15 km                   0.0124 (-33.7%)  -36.2%     -35.2%    -32.9%
                LETKF, 25 km                   0.0127 (-31.7%)  -34.7%     -31.4%    -30.8%
                EnKF, localised 25 km          0.0127 (-31.8%)  -34.7%     -31.5%    -30.5%
                EnKF, per cell                 0.0140 (-24.7%)  -31.9%     -29.9%    -21.8%
                ETKF, per cell                 0.0137 (-26.8%)  -33.2%     -34.3%    -22.6%
                PF, per cell                   0.0143 (-23.3%)  -29.6%     -29.2%    -19.6%
                UKF / SR-UKF                   0.0144 (-23.0%)  -27.8%     -32.0%    -17.7%
                CDKF / SR-CDKF                 0.0144 (-22.8%)  -27.7%     -31.4%    -17.4%
    root zone   open loop                      0.0049           0.0010     0.0017    0.0126
                EnKF, localised 15 km          0.0035 (-27.9%)  -34.5%     -15.2%    -31.3%
                LETKF, 15 km                   0.0035 (-28.2%)  -33.5%     -15.3%    -31.7%
                LETKF, 25 km                   0.0038 (-23.7%)  -30.2%     +1.1%     -28.1%
                EnKF, localised 25 km          0.0037 (-24.2%)  -30.6%     -0.6%     -27.2%
                EnKF, per cell                 0.0041 (-17.4%)  -33.4%     -20.5%    -21.4%
                ETKF, per cell                 0.0040 (-17.8%)  -34.9%     -22.3%    -21.6%
                PF, per cell                   0.0041 (-16.3%)  -32.5%     -25.5%    -18.7%
                UKF / SR-UKF                   0.0050 (+1.4%)   +69%       +12%      -16.3%
                CDKF / SR-CDKF                 0.0051 (+4.4%)   +90%       +19%      -16.1%

Targets (EnKF and LETKF, at least 30% surface and 10% root zone): both met by the
experiment files' filters (EnKF -33.6% / -27.9%, LETKF -33.7% / -28.2%). Localisation is what
carries the surface past 30%: analysed cell by cell, the EnKF reaches -24.7%. Where the swath
passes and QC keeps the Tb, an analysis takes the surface error from ~0.015–0.022 to
~0.005–0.008, but about a tenth of the cells (snow and glaciers upstream) are never
assimilated (snow/frozen-soil QC), and between overpasses (2–3 days) the error grows back
within a day or two: the storm displacement of the degraded forcing is not in the forcing
perturbations (open-loop surface spread 0.010 for an error of 0.019). A localised filter
also corrects the cells the swath or QC missed, and averages the observation noise, from the
neighbours' Tb (the forcing errors are correlated over ~50 km). `xldas demo` runs this
configuration (0.05°). At 0.1° (cells of ~9–11 km, 30 cycles) the same files give -28.9% / -25.4% (EnKF) and -29.0% / -25.1% (LETKF);
inflation 1.2–1.3, RTPS 0.5–0.7 and radii of 10–40 km were tried there and stayed at or below
-29.2% for the surface. The hyperparameters were chosen after the twin's truth,
observations, errors and forcing perturbations were fixed; those were not changed. The
root-zone gains follow two changes made after the first filter runs: the initial ensemble
has no state spread (the first set-up, 0.02 m3 m-3 independently per layer, gave the deep
layers a spread 4–10× their error and every filter degraded the root zone by 50–140%), and a
cell without any used observation keeps its forecast (no inflation where nothing is
assimilated). The sigma-point filters' deep-layer spread grows from ``Q`` added at every
analysis (root-zone spread 0.0056 for an error of 0.005), which costs them the dry mid- and
downstream root zone. The sigma-point outputs are reproducible only to rounding between
processes (NumPy reductions; the SWE bound amplifies such differences to ~1e-2 kg m-2 within
a few cycles); the ensemble filters' are bitwise.

Usage::

    python benchmarks/heihe_twin.py                 # default configuration (0.05°, June 2019)
    python benchmarks/heihe_twin.py --small         # the demo's SMALL set-up (0.25°, 21 days)
    python benchmarks/heihe_twin.py --filters enkf letkf ukf --out /tmp/twin
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from xldas.cycle.demo import SMALL, demo_experiments, truth_outputs
from xldas.cycle.engine import run
from xldas.cycle.store import open_output
from xldas.demo import heihe_osse
from xldas.validation import skill

GRID_FILTERS = ("enkf", "etkf", "letkf", "pf")
SIGMA_FILTERS = ("ukf", "cdkf", "srukf", "srcdkf")
VARIABLES = {"sm_surface": "surface (0-5 cm)", "sm_rootzone": "root zone (0-100 cm)"}

#: a further scaled-down twin experiment for the tests and the notebook: the same YAML
#: files, operator, 2 K error, swath/revisit, forcing perturbations and filter settings
#: as the default, on a 0.5° grid (10 × 10 cells) over 11 daily cycles with 16 members
TINY = {
    "demo": {
        "resolution": 0.5,
        "start": "2019-06-01",
        "days": 12,
        "dt_hours": 3,
        "seed": 0,
        "sensors": ["smap"],
    },
    "period.end": "2019-06-12T00:00",
    "ensemble.members": 16,
}


def experiments(out, filters=GRID_FILTERS, config: str = "default"):
    """The twin experiments (open loop first) for ``config`` = default | small | tiny."""
    sigma = [f for f in filters if f in SIGMA_FILTERS]
    exps = demo_experiments(out, [f for f in filters if f not in SIGMA_FILTERS], small=False)
    if sigma:
        sp = demo_experiments(out, sigma, small=False)
        exps.update({k: v for k, v in sp.items() if k != "open_loop"})
    extra = {"default": {}, "small": SMALL, "tiny": TINY}[config]
    if extra or sigma:
        exps = {k: _override(e, extra, sigma_point=k in SIGMA_FILTERS) for k, e in exps.items()}
    return exps


def _override(exp, extra, sigma_point=False):
    from xldas.cycle.config import Experiment

    raw = exp.canonical()
    for key, value in extra.items():
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    if sigma_point:
        raw["ensemble"]["members"] = 21  # 2n + 1 with n = 10 state elements
    return Experiment.from_dict(raw)


def run_all(exps, quiet=True) -> dict[str, float]:
    """Run (or resume) every experiment; returns the wall time of each. A sigma-point
    filter that fails is reported and removed from ``exps``."""
    walls = {}
    for label, exp in list(exps.items()):
        t0 = time.perf_counter()
        try:
            run(exp, quiet=quiet, overwrite=True)
        except Exception as exc:  # report it, score the others
            if label not in SIGMA_FILTERS:
                raise
            print(f"  {label}: FAILED ({type(exc).__name__}: {exc})")
            del exps[label]
            continue
        walls[label] = time.perf_counter() - t0
    return walls


def load(exps):
    """Analyses, truth (surface/root zone), regions and diagnostics of finished runs."""
    first = next(iter(exps.values()))
    tree = heihe_osse(**first.demo)
    analyses = {k: open_output(e.output.store, "analysis").load() for k, e in exps.items()}
    diags = {k: open_output(e.output.store, "diagnostics").load() for k, e in exps.items()}
    times = next(iter(analyses.values())).time
    truth = truth_outputs(tree["truth"].to_dataset()).sel(time=times).load()
    regions = tree["regions"].to_dataset().load()
    return analyses, truth, regions, diags


def region_masks(regions: xr.Dataset) -> dict[str, xr.DataArray]:
    """``domain`` (every cell) and one mask per sub-basin."""
    code = regions["regions"]
    masks = {"domain": xr.ones_like(code, dtype=bool)}
    for name, c in zip(regions["region"].values, regions["region_code"].values, strict=True):
        masks[str(name)] = code == c
    return masks


def rmse_table(analyses, truth, regions) -> pd.DataFrame:
    """Domain/sub-basin mean of the per-pixel RMSE (over time) and spread/RMSE ratio."""
    masks = region_masks(regions)
    rows = []
    for label, ana in analyses.items():
        for var in VARIABLES:
            rmse = skill(ana[var], truth[var], dim="time", metrics=["rmse"])["rmse"]
            spread = ana[f"{var}_spread"].mean("time")
            for region, m in masks.items():
                rows.append(
                    {
                        "filter": label,
                        "variable": var,
                        "region": region,
                        "rmse": float(rmse.where(m).mean()),
                        "spread": float(spread.where(m).mean()),
                    }
                )
    df = pd.DataFrame(rows).set_index(["variable", "region", "filter"])
    ol = df.xs("open_loop", level="filter")["rmse"]
    df["reduction_%"] = [100.0 * (1.0 - r / ol.loc[(v, g)]) for (v, g, _), r in df["rmse"].items()]
    return df


def rmse_time(analyses, truth, var="sm_surface") -> xr.Dataset:
    """Spatial RMSE (over all cells) of each analysis at every analysis time."""
    return xr.Dataset(
        {k: np.sqrt(((a[var] - truth[var]) ** 2).mean(("lat", "lon"))) for k, a in analyses.items()}
    )


def innovations(diags, name="smap") -> dict[str, np.ndarray]:
    """Every recorded Tb innovation (K) of each run, pooled over cycles and pixels."""
    out = {}
    for k, d in diags.items():
        vals = [
            d[v].values.ravel()
            for v in d.data_vars
            if v.startswith(f"{name}_tb_") and v.endswith("_innovation")
        ]
        vals = np.concatenate(vals) if vals else np.array([])
        out[k] = vals[np.isfinite(vals)]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--filters", nargs="*", default=list(GRID_FILTERS))
    ap.add_argument("--small", action="store_true", help="0.25°, 21 days, 16 members")
    ap.add_argument("--tiny", action="store_true", help="0.5°, 12 days, 16 members (tests)")
    ap.add_argument("--out", default="xldas-twin")
    ap.add_argument("--no-run", action="store_true", help="only score existing stores")
    args = ap.parse_args(argv)
    config = "tiny" if args.tiny else "small" if args.small else "default"
    exps = experiments(Path(args.out), args.filters, config)
    first = next(iter(exps.values()))
    print(f"Heihe twin experiment ({config}): demo={first.demo}, {first.ensemble.members} members")
    if not args.no_run:
        walls = run_all(exps)
        for k, w in walls.items():
            print(f"  {k:10s} {w:7.1f} s wall")
    analyses, truth, regions, diags = load(exps)
    df = rmse_table(analyses, truth, regions)
    with pd.option_context("display.width", 140, "display.max_rows", 200):
        for var, title in VARIABLES.items():
            t = df.xs(var, level="variable")
            print(
                f"\n{title} soil moisture: RMSE (m3 m-3), spread (m3 m-3), reduction vs open loop"
            )
            print(
                t.unstack("region")
                .reindex(columns=["rmse", "spread", "reduction_%"], level=0)
                .to_string(float_format=lambda v: f"{v:.4f}")
            )
    inn = innovations(diags)
    print("\nTb innovations (K): mean, std, n")
    for k, v in inn.items():
        if v.size:
            print(f"  {k:10s} {v.mean():+7.3f} {v.std():7.3f} {v.size:8d}")
    print("\ntargets (issue 4): surface ≥ 30%, root zone ≥ 10% reduction (domain), EnKF and LETKF")
    for f in ("enkf", "letkf"):
        if f in analyses:
            s = df.loc[("sm_surface", "domain", f), "reduction_%"]
            r = df.loc[("sm_rootzone", "domain", f), "reduction_%"]
            ok = "met" if s >= 30 and r >= 10 else "MISSED"
            print(f"  {f}: surface {s:+.1f}%, root zone {r:+.1f}% -> {ok}")
    return df


if __name__ == "__main__":
    main()
