"""Figures of an assimilation experiment (matplotlib, written as PNG).

Each function takes the opened output groups (:func:`xldas.cycle.store.open_output`) and
the truth, draws one figure and returns it; :func:`save` writes it. Nothing here reads or
computes more than the figure shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = ["analysis_map", "innovation_histogram", "save", "site_timeseries"]


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def analysis_map(analysis: xr.Dataset, truth: xr.Dataset | None = None, time=None, title: str = ""):
    """Map of analysis surface soil moisture, its ensemble spread (and the truth) at ``time``
    (default the last analysis)."""
    plt = _plt()
    a = analysis.sel(time=time, method="nearest") if time is not None else analysis.isel(time=-1)
    panels = [
        ("analysis mean", a["sm_surface"], "viridis"),
        ("ensemble spread", a["sm_surface_spread"], "magma"),
    ]
    if truth is not None:
        panels.insert(
            0, ("truth", truth["sm_surface"].sel(time=a.time, method="nearest"), "viridis")
        )
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 4.0), constrained_layout=True
    )
    vmin, vmax = float(a["sm_surface"].min()), float(a["sm_surface"].max())
    for ax, (label, da, cmap) in zip(np.atleast_1d(axes), panels):
        kw = {"vmin": vmin, "vmax": vmax} if cmap == "viridis" else {}
        da.plot(ax=ax, cmap=cmap, cbar_kwargs={"label": "m3 m-3", "shrink": 0.8}, **kw)
        ax.set_title(label)
        ax.set_aspect("equal")
    fig.suptitle(f"{title} surface soil moisture, {np.datetime_as_string(a.time.values, unit='D')}")
    return fig


def site_timeseries(
    analyses: Mapping[str, xr.Dataset],
    truth: xr.Dataset,
    sites: xr.Dataset,
    variable: str = "sm_surface",
):
    """Time series at each site: truth, open loop and each analysis with ±1 spread."""
    plt = _plt()
    n = sites.sizes["site"]
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.6 * n), sharex=True, constrained_layout=True)
    colors = dict(zip(analyses, plt.rcParams["axes.prop_cycle"].by_key()["color"][1:]))
    for i, ax in enumerate(np.atleast_1d(axes)):
        site = sites.isel(site=i)
        where = {"lat": float(site["lat"]), "lon": float(site["lon"])}
        name = str(site["site"].values)
        first = next(iter(analyses.values()))
        tr = truth[variable].sel(where, method="nearest").sel(time=first.time, method="nearest")
        ax.plot(first.time, tr, color="k", lw=2, label="truth")
        for label, ana in analyses.items():
            m = ana[variable].sel(where, method="nearest")
            s = ana[f"{variable}_spread"].sel(where, method="nearest")
            ax.plot(ana.time, m, color=colors[label], label=label)
            ax.fill_between(ana.time.values, m - s, m + s, color=colors[label], alpha=0.2, lw=0)
        kind = str(site["region"].values) if "region" in site else ""
        ax.set_title(f"{name} {('(' + kind + ')') if kind else ''}".strip())
        ax.set_ylabel(f"{variable} (m3 m-3)")
    np.atleast_1d(axes)[0].legend(loc="upper right", ncol=len(analyses) + 1, fontsize=8)
    return fig


def innovation_histogram(diagnostics: Mapping[str, xr.Dataset]):
    """Histograms of the innovations (observation minus forecast-mean prediction)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    units = ""
    for label, diag in diagnostics.items():
        names = [v for v in diag.data_vars if v.endswith("_innovation")]
        if not names:
            continue
        vals = np.concatenate([np.ravel(diag[v].values) for v in names])
        vals = vals[np.isfinite(vals)]
        units = diag[names[0]].attrs.get("units", units)
        if vals.size:
            ax.hist(
                vals,
                bins=60,
                histtype="step",
                lw=1.5,
                density=True,
                label=f"{label}: mean {vals.mean():.2f}, std {vals.std():.2f}",
            )
    ax.set_xlabel(f"innovation y - H(x_f) ({units})")
    ax.set_ylabel("density")
    ax.set_title("innovations over all cycles")
    ax.legend(fontsize=8)
    return fig


def save(fig, path: str | Path) -> Path:
    """Write a figure as PNG and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path
