"""``xldas demo``: the embedded Heihe twin experiment, end to end, with no network.

Runs the open loop and each requested filter through the real cycling engine, from the
example experiments shipped in ``catalogs/experiments/`` (``heihe_osse_openloop.yaml``,
``heihe_osse_<filter>.yaml``; a filter without its own file reuses the EnKF one with the
method replaced), into ``<out>/<name>`` stores; then scores the analyses against the
truth and draws the figures.
"""

from __future__ import annotations

import logging
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from xldas._paths import catalog_dir
from xldas.cycle.config import FILTER_METHODS, SIGMA_POINT_METHODS, Experiment
from xldas.errors import UnknownOptionError

__all__ = ["DemoResult", "demo_experiments", "run_demo", "skill_table", "truth_outputs"]

log = logging.getLogger("xldas.cycle")

SKILL_VARIABLES = {
    "sm_surface": "surface soil moisture (m3 m-3)",
    "sm_rootzone": "root-zone soil moisture (m3 m-3)",
    "swe": "snow water equivalent (kg m-2)",
}
SKILL_METRICS = ("rmse", "ubrmse", "r")


@dataclass
class DemoResult:
    """What ``xldas demo`` produced."""

    out: Path
    stores: dict[str, Path]
    skill: pd.DataFrame
    figures: list[Path] = field(default_factory=list)
    wall_time: float = 0.0

    def summary(self) -> str:
        table = self.skill.to_string(float_format=lambda v: f"{v:.4f}")
        lines = [
            "Skill of the analysis ensemble mean against the truth",
            "(per-pixel metric over the analysis times, then the domain mean):",
            table,
            "",
        ]
        if "open_loop" in self.skill.columns:
            for col in self.skill.columns:
                if col == "open_loop":
                    continue
                for var in ("sm_surface", "sm_rootzone"):
                    ol = self.skill.loc[(var, "rmse"), "open_loop"]
                    fi = self.skill.loc[(var, "rmse"), col]
                    lines.append(
                        f"{col}: {var} RMSE {fi:.4f}, {100 * (fi / ol - 1):+.1f}% vs the open "
                        f"loop ({ol:.4f})"
                    )
        lines.append("")
        lines.append("stores: " + ", ".join(str(p) for p in self.stores.values()))
        lines.append("figures: " + ", ".join(str(p) for p in self.figures))
        lines.append(f"wall time: {self.wall_time:.1f} s")
        return "\n".join(lines)


#: a reduced twin experiment (coarser grid, shorter period, fewer members) for notebooks
#: and quick checks: ``run_demo(..., small=True)``
SMALL = {
    "demo": {
        "resolution": 0.25,
        "start": "2019-06-01",
        "days": 21,
        "dt_hours": 3,
        "seed": 0,
        "sensors": ["smap"],
    },
    "period.end": "2019-06-21T00:00",
    "ensemble.members": 16,
}


#: grid spacing (degrees) of ``xldas demo`` by default; None = that of the shipped
#: experiment files (0.05°, 100 × 104 cells, where ``benchmarks/heihe_twin.py`` measures the
#: filters too). ``--resolution 0.1`` runs a quarter of the cells for a quicker look.
DEMO_RESOLUTION = None


#: How the demo runs the sigma-point filters (``--filters ukf,cdkf,srukf,srcdkf``), which
#: have no experiment file of their own: the EnKF file with the forcing perturbations
#: replaced by additive process noise ``Q`` (the points are propagated with the unperturbed
#: forcing; see :mod:`xldas.filters.sigma`), 2n+1 = 21 points for the n = 10 state elements
#: (4 layers of ``sm`` and ``tsoil``, ``swe``, ``canopy_water``). ``Q`` (variances per
#: daily cycle) is of the order of the variance the forcing perturbations give the
#: open-loop ensemble (spread of ``sm`` 0.010/0.004/0.002/0.0003 m3 m-3 and of ``tsoil``
#: 0.8/0.5/0.2/0.06 K by layer at 0.1°). The UKF variants use ``kappa = 3 - n`` (Julier &
#: Uhlmann 1997): the default ``kappa = 0`` spreads the points to ±√n σ (±3.2 σ), where the
#: clipping to [θ_r, θ_s] and the thresholds of the snow and frozen-soil physics bias their
#: mean (measured: root-zone RMSE 0.078 instead of the open loop's 0.006).
SIGMA_POINT_SETUP = {
    "Q": {
        "sm": [1.0e-4, 2.0e-5, 4.0e-6, 1.0e-6],
        "tsoil": [0.5, 0.2, 0.05, 0.01],
        "swe": 1.0,
        "canopy_water": 0.01,
    },
    "gross_error": 5.0,
    "n_state": 10,
}


def demo_experiments(
    out: str | Path,
    filters=("enkf", "letkf"),
    small: bool = False,
    resolution: float | None = None,
) -> dict[str, Experiment]:
    """The demo's experiments (open loop first), writing to ``<out>/<name>``.

    ``resolution`` (degrees) replaces the grid spacing of the shipped experiment files
    (ignored with ``small=True``).
    """
    out = Path(out).resolve()
    folder = catalog_dir() / "experiments"
    exps = {}
    names = ["openloop", *[f.lower() for f in filters]]
    for name in names:
        if name not in FILTER_METHODS and name != "openloop":
            raise UnknownOptionError("filter", name, [m for m in FILTER_METHODS if m != "none"])
        path = folder / f"heihe_osse_{name}.yaml"
        overrides = {"output.store": str(out / ("open_loop" if name == "openloop" else name))}
        if small:
            overrides.update(SMALL)
        elif resolution is not None:
            overrides["demo.resolution"] = float(resolution)
        if not path.exists():
            path = folder / "heihe_osse_enkf.yaml"
            overrides.update({"filter": {"method": name}, "name": f"heihe_osse_{name}"})
            if name in SIGMA_POINT_METHODS:
                n = SIGMA_POINT_SETUP["n_state"]
                hyper = {
                    "Q": SIGMA_POINT_SETUP["Q"],
                    "gross_error": SIGMA_POINT_SETUP["gross_error"],
                }
                if name in ("ukf", "srukf"):
                    hyper["kappa"] = 3.0 - n
                overrides.update(
                    {
                        "filter": {"method": name, **hyper},
                        "ensemble.forcing_perturbation": None,
                        "ensemble.members": 2 * n + 1,
                    }
                )
        exps["open_loop" if name == "openloop" else name] = Experiment.from_yaml(path, **overrides)
    return exps


def truth_outputs(truth: xr.Dataset) -> xr.Dataset:
    """Truth in the engine's output variables (``sm_surface``, ``sm_rootzone``, ``swe``)."""
    from xldas.cycle.engine import _rootzone

    out = xr.Dataset()
    out["sm_surface"] = truth["sm"].isel(layer=0, drop=True)
    out["sm_rootzone"] = _rootzone(truth["sm"])
    if "swe" in truth:
        out["swe"] = truth["swe"]
    return out


def skill_table(analyses: dict[str, xr.Dataset], truth: xr.Dataset) -> pd.DataFrame:
    """Domain mean of the per-pixel RMSE, ubRMSE and R of each analysis against the truth."""
    from xldas.validation import skill

    rows = {}
    for label, ana in analyses.items():
        ref = truth.sel(time=ana.time)
        for var in SKILL_VARIABLES:
            if var not in ana or var not in ref:
                continue
            s = skill(ana[var], ref[var], dim="time", metrics=list(SKILL_METRICS)).compute()
            for m in SKILL_METRICS:
                rows.setdefault((var, m), {})[label] = float(np.nanmean(s[m].values))
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index = pd.MultiIndex.from_tuples(df.index, names=["variable", "metric"])
    return df


def _cores() -> int:
    import os

    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, int(n or 1))


def _run_in_processes(exps: dict[str, Experiment], workers: int, overwrite: bool) -> None:
    """Run the experiments in at most ``workers`` child processes at once.

    Each child is ``python -m xldas.cycle._worker SPEC`` (a fresh interpreter: nothing
    to fork, and no import of the caller's script, which a spawned multiprocessing
    worker would re-run). Log lines go to this process's stderr, labelled with the
    experiment. The first failure stops launching further ones and is raised here (the
    xldas error class of the child when it had one).
    """
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    level = logging.getLogger("xldas").getEffectiveLevel()
    log.info(
        "demo: running %s, %d at a time, in child processes (stores under %s)",
        ", ".join(exps),
        workers,
        Path(next(iter(exps.values())).output.store).parent,
    )
    tmp = Path(tempfile.mkdtemp(prefix="xldas-demo-"))
    # the filters first: the open loop, the quickest, fills the gap a filter leaves
    pending = sorted(exps.items(), key=lambda kv: kv[1].filter.method == "none")
    running: dict[str, subprocess.Popen] = {}
    failure = None
    try:
        while pending or running:
            while pending and failure is None and len(running) < workers:
                label, exp = pending.pop(0)
                spec = tmp / f"{label}.json"
                spec.write_text(
                    json.dumps(
                        {
                            "experiment": exp.canonical(),
                            "label": label,
                            "overwrite": overwrite or None,
                            "level": level,
                            "result": str(tmp / f"{label}.result.json"),
                        }
                    )
                )
                cmd = [sys.executable, "-m", "xldas.cycle._worker", str(spec)]
                running[label] = subprocess.Popen(cmd)
            if failure is not None:
                pending.clear()
            _time.sleep(0.1)
            for label, proc in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                del running[label]
                path = tmp / f"{label}.result.json"
                result = json.loads(path.read_text()) if path.exists() else {}
                if rc == 0:
                    log.info("demo: %s finished. %s", label, result.get("summary", ""))
                elif failure is None:
                    failure = (label, rc, result)
    finally:
        for proc in running.values():  # interrupted: stop the children too
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    if failure is not None:
        from xldas import errors

        label, rc, result = failure
        message = result.get("message") or (
            f"demo experiment {label!r} failed (exit status {rc}); its log is above"
        )
        cls = getattr(errors, result.get("error", ""), None)
        try:
            exc = cls(message) if isinstance(cls, type) else errors.XldasError(message)
        except TypeError:  # an error class with another signature
            exc = errors.XldasError(message)
        raise exc


def run_demo(
    out: str | Path = "xldas-demo",
    filters=("enkf", "letkf"),
    quiet: bool = False,
    small: bool = False,
    resolution: float | None = DEMO_RESOLUTION,
    overwrite: bool = False,
    workers: int | None = None,
) -> DemoResult:
    """Run the demo (see the module docstring) and return its :class:`DemoResult`.

    Parameters
    ----------
    out : folder of the stores, figures and ``skill.csv``.
    filters : filters run beside the open loop.
    quiet : no progress bars.
    small : the reduced configuration :data:`SMALL` (0.25°, 15 cycles, 16 members).
    resolution : grid spacing in degrees; the default (:data:`DEMO_RESOLUTION`, ``None``)
        keeps the 0.05° of the shipped experiment files.
    overwrite : replace stores under ``out`` written by another configuration (another
        resolution, filter setting or xldas version) instead of refusing them; without it
        a store of the same experiment is resumed (finished cycles are not recomputed).
    workers : experiments run at once, each in its own process (they are independent:
        the open loop and each filter write their own store). Default: one per core
        (at most one per experiment); 1 with ``small=True``, where starting processes
        would cost about as much as the runs. With several workers the progress bars
        give way to the per-cycle log lines, labelled with the experiment.

    Examples
    --------
    >>> from xldas.cycle.demo import run_demo
    >>> result = run_demo("xldas-demo", small=True)  # doctest: +SKIP
    >>> print(result.skill)  # doctest: +SKIP
    """
    from xldas.cycle import figures
    from xldas.cycle.engine import run
    from xldas.cycle.store import open_output
    from xldas.demo import heihe_osse

    t0 = _time.perf_counter()
    out = Path(out).resolve()
    exps = demo_experiments(out, filters, small=small, resolution=resolution)
    first = next(iter(exps.values()))
    tree = heihe_osse(**first.demo)  # generated (and cached) once, before any run
    if workers is None:
        workers = 1 if small else _cores()
    workers = max(1, min(int(workers), len(exps)))
    if workers == 1:
        for label, exp in exps.items():
            log.info("demo: running %s into %s", label, exp.output.store)
            report = run(exp, quiet=quiet, overwrite=overwrite or None)
            log.info("%s", report.summary())
    else:
        _run_in_processes(exps, workers, overwrite)
    truth = truth_outputs(tree["truth"].to_dataset())
    analyses = {k: open_output(e.output.store, "analysis") for k, e in exps.items()}
    analyses = {k: v.load() for k, v in analyses.items()}
    truth = truth.sel(time=next(iter(analyses.values())).time).load()
    table = skill_table(analyses, truth)
    figs = []
    filt = [k for k in analyses if k != "open_loop"]
    shown = filt[0] if filt else "open_loop"
    figs.append(
        figures.save(
            figures.analysis_map(analyses[shown], truth, title=shown), out / "analysis_map.png"
        )
    )
    if "sites" in tree:
        sites = tree["sites"].to_dataset()
        figs.append(
            figures.save(
                figures.site_timeseries(analyses, truth, sites), out / "sites_timeseries.png"
            )
        )
    diags = {k: open_output(e.output.store, "diagnostics").load() for k, e in exps.items()}
    figs.append(figures.save(figures.innovation_histogram(diags), out / "innovation_histogram.png"))
    table.to_csv(out / "skill.csv")
    return DemoResult(
        out,
        {k: Path(e.output.store) for k, e in exps.items()},
        table,
        figs,
        _time.perf_counter() - t0,
    )
