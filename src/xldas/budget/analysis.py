"""Budget trends, the Heihe twin-experiment budget and the before/after-closure figure."""

from __future__ import annotations

import numpy as np
import xarray as xr

from xldas.budget.closure import COMPONENTS, close_budget, water_budget

__all__ = ["budget_trends", "heihe_budget", "plot_budget"]


def budget_trends(
    budget: xr.Dataset, dim: str = "time", alpha: float = 0.05, **kwargs
) -> xr.Dataset:
    """Mann–Kendall / Theil–Sen trend of each component (and residual) per region.

    Delegates to ``ds.ldas.trend`` (:func:`xldas.retrieval.trend`); slopes are per year
    with a datetime ``dim``. Output variables are prefixed ``<component>_``; ``kwargs``
    (e.g. ``engine="numpy"``) go to the trend function.
    """
    names = [v for v in (*COMPONENTS, "residual") if v in budget]
    return budget[names].ldas.trend(dim=dim, alpha=alpha, **kwargs)


def heihe_budget(
    tree: xr.DataTree,
    errors=None,
    seed: int = 0,
    period: str | None = None,
    components: tuple | None = None,
) -> dict:
    """Budget of the embedded Heihe twin experiment per sub-basin, before and after closure.

    The truth budget uses the truth run (water input P = precipitation + glacier melt +
    irrigation,
    ET, Q = surface runoff + drainage, ΔS = change of soil water + SWE + canopy water).
    The "observed" budget takes P from the forcing the ensemble sees (degraded; plus the
    glacier melt and the irrigation schedule, which an LDAS of the basin knows) and adds
    random errors to the model ET, Q and ΔS with the 1-sigma ``errors`` (mm over the
    whole period; default P 30 % ⊕ 1 mm — the forcing's storms are correlated only 0.6
    with the truth's —, ET 15 %, Q 20 %, ΔS 10 mm) — the closure spreads the
    residual back in proportion to those variances.

    ``components`` reuses the ``(truth, forcing_budget)`` pair returned as
    ``result["components"]`` by an earlier call (to redraw errors cheaply).

    Returns
    -------
    dict with ``truth``, ``observed`` and ``closed`` Datasets (region) in mm, and
    ``components``.
    """
    if components is None:
        components = _heihe_components(tree, period)
    tb, pf = components
    if errors is None:
        # P: 30 % relative plus a 1 mm floor (light-rain regions), in quadrature
        p_err = np.sqrt((0.3 * abs(pf["P"])) ** 2 + 1.0).assign_attrs(units="mm")
        errors = {"P": p_err, "ET": "15%", "Q": "20%", "dS": 10.0}
    rng = np.random.default_rng(seed)
    obs = pf.copy()
    for k in ("ET", "Q", "dS"):
        e = errors[k]
        sd = (
            abs(tb[k]) * float(e[:-1]) / 100.0
            if isinstance(e, str)
            else xr.zeros_like(tb[k]) + float(e)
        )
        obs[k] = (tb[k] + sd * rng.standard_normal(tb[k].shape)).assign_attrs(units="mm")
    obs["residual"] = obs.P - obs.ET - obs.Q - obs.dS
    closed = close_budget(obs, errors).compute()
    return {"truth": tb, "observed": obs, "closed": closed, "components": components}


def _heihe_components(tree: xr.DataTree, period: str | None):
    """Truth budget and the forcing-P budget of the twin experiment (computed)."""
    truth = tree["truth"].to_dataset()
    forcing = tree["forcing"].to_dataset()
    regions = tree["regions"].to_dataset()
    dz = truth["dz"].astype(np.float64)
    storage = (
        (truth["sm"].astype(np.float64) * dz * 1000.0).sum("layer")
        + truth["swe"]
        + truth["canopy_water"]
    )
    storage = storage.assign_attrs(units="kg m-2")
    flux = truth.isel(time=slice(1, None))
    ds_step = storage.diff("time").assign_attrs(units="kg m-2")
    comp = xr.Dataset(
        {
            "P": (
                flux["precip"]
                + flux["glacier_melt"]
                + (flux["irrigation"] if "irrigation" in flux else 0.0)
            ).assign_attrs(units="kg m-2 s-1"),
            "ET": flux["et"].assign_attrs(units="kg m-2 s-1"),
            "Q": (flux["runoff"] + flux["drainage"]).assign_attrs(units="kg m-2 s-1"),
            "dS": ds_step,
        }
    )

    def total(b):
        return b.sum("time") if period is None else b

    tb = water_budget(comp, regions=regions, period=period)
    tb = total(tb) if period is None else tb
    tb["residual"] = tb.P - tb.ET - tb.Q - tb.dS
    irrigation = flux["irrigation"] if "irrigation" in flux else 0.0
    p_obs = (
        forcing["precip"].astype(np.float64)
        + (flux["glacier_melt"] + irrigation).reindex(time=forcing.time)
    ).assign_attrs(units="kg m-2 s-1")
    pf = water_budget(
        P=p_obs,
        ET=comp["ET"],
        Q=comp["Q"],
        dS=comp["dS"],
        regions=regions,
        period=period,
    )
    pf = total(pf) if period is None else pf
    return tb.compute(), pf.compute()


def plot_budget(before: xr.Dataset, after: xr.Dataset, truth: xr.Dataset | None = None, ax=None):
    """Bars of P, ET, Q, ΔS and the residual per region, before and after closure.

    ``after`` may carry ``<c>_err`` (posterior 1-sigma) drawn as error bars; ``truth``
    (optional) is marked with black ticks.
    """
    import matplotlib.pyplot as plt

    names = [*COMPONENTS, "residual"]
    regions = [str(r) for r in before["region"].values]
    if ax is None:
        _, ax = plt.subplots(figsize=(2.2 + 2.4 * len(regions), 3.6))
    width = 0.38
    x = np.arange(len(names))
    colors = {
        "P": "#4477aa",
        "ET": "#228833",
        "Q": "#66ccee",
        "dS": "#ccbb44",
        "residual": "#ee6677",
    }
    for i, region in enumerate(regions):
        off = i * (len(names) + 1.5)
        b = [float(before[n].sel(region=region)) for n in names]
        a = [float(after[n].sel(region=region)) for n in names]
        err = [
            float(after[f"{n}_err"].sel(region=region)) if f"{n}_err" in after else 0.0
            for n in names
        ]
        ax.bar(
            x + off - width / 2,
            b,
            width,
            color=[colors[n] for n in names],
            alpha=0.45,
            label="before" if i == 0 else None,
        )
        ax.bar(
            x + off + width / 2,
            a,
            width,
            yerr=err,
            color=[colors[n] for n in names],
            label="after" if i == 0 else None,
            capsize=2,
        )
        if truth is not None:
            t = [float(truth[n].sel(region=region)) for n in names]
            ax.scatter(
                x + off,
                t,
                marker="_",
                s=200,
                color="k",
                zorder=3,
                label="truth" if i == 0 else None,
            )
        ax.text(off + 2, ax.get_ylim()[1] if i else 0, "", ha="center")
        ax.annotate(
            region, (off + 2, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom"
        )
    ticks = np.concatenate([x + i * (len(names) + 1.5) for i in range(len(regions))])
    ax.set_xticks(ticks, [n if n != "dS" else "ΔS" for n in names] * len(regions), fontsize=8)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("mm over the period")
    ax.legend(fontsize=8, loc="upper right")
    return ax
