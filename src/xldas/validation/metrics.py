"""Deterministic skill metrics (SCIENCE.md §D14), lazy on xarray objects.

Only jointly valid pairs enter a metric: where either the simulation or the reference is
NaN the pair is dropped from every sum. Standard deviations are population (ddof=0)
standard deviations, as in hydroeval and pytesmo. KGE, KGE′ and NSE are NaN where the
reference has zero variance or zero mean.

Weighted ensemble means (particle filters, sigma points) are formed upstream, e.g. by the
cycling engine's outputs; :func:`skill` compares two deterministic series.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import xarray as xr

from xldas._xr import add_history
from xldas.errors import DimensionError, UnknownOptionError
from xldas.units import to_units

__all__ = ["METRICS", "skill"]

METRICS: tuple[str, ...] = (
    "bias",
    "rmse",
    "ubrmse",
    "r",
    "r_p_value",
    "anomaly_r",
    "nse",
    "kge",
    "kge_prime",
    "n",
)

_LONG_NAMES = {
    "bias": "mean error (simulation minus reference)",
    "rmse": "root-mean-square error",
    "ubrmse": "unbiased root-mean-square error (population std of the difference)",
    "r": "Pearson correlation coefficient",
    "r_p_value": "two-sided p-value of the Pearson correlation (t test, n - 2 dof)",
    "anomaly_r": "Pearson correlation of anomalies from the day-of-year climatology",
    "nse": "Nash-Sutcliffe efficiency",
    "kge": "Kling-Gupta efficiency (Gupta et al. 2009)",
    "kge_prime": "modified Kling-Gupta efficiency KGE' (Kling et al. 2012)",
    "n": "number of jointly valid pairs",
}
_DIMENSIONLESS = {"r", "r_p_value", "anomaly_r", "nse", "kge", "kge_prime", "n"}


def _r_p_value(s, o, dim):
    """p-value of Pearson R (xskillscore), jointly valid pairs."""
    import xskillscore as xs

    if s.chunks is not None:  # xskillscore reduces along one chunk
        s, o = s.chunk({d: -1 for d in dim}), o.chunk({d: -1 for d in dim})
    return xs.pearson_r_p_value(s, o, dim=dim, skipna=True)


def _anomaly_r(s, o, dim, window):
    """Pearson R of anomalies (xskillscore), each series' own climatology, joint pairs."""
    import xskillscore as xs

    from xldas.validation.anomaly import anomalies

    a, b = anomalies(s, window), anomalies(o, window)
    if a.chunks is not None:  # xskillscore reduces along one chunk
        a, b = a.chunk({d: -1 for d in dim}), b.chunk({d: -1 for d in dim})
    return xs.pearson_r(a, b, dim=dim, skipna=True)


def _has_datetime(obj, dim) -> bool:
    return dim in obj.coords and np.issubdtype(obj[dim].dtype, np.datetime64)


def _metrics_dataarray(
    sim: xr.DataArray,
    ref: xr.DataArray,
    dim: list[Hashable],
    metrics: Sequence[str],
    anomaly_window: int = 35,
) -> xr.Dataset:
    if "units" in sim.attrs and "units" in ref.attrs:
        ref = to_units(ref, str(sim.attrs["units"]), name=f"reference {ref.name or ''}".strip())
    valid = sim.notnull() & ref.notnull()
    s = sim.where(valid)
    o = ref.where(valid)
    n = valid.sum(dim)
    npos = n.where(n > 0)

    def mean(x):
        return x.sum(dim, skipna=True) / npos

    mu_s = mean(s)
    mu_o = mean(o)
    ds_ = s - mu_s
    do_ = o - mu_o
    var_s = mean(ds_**2)
    var_o = mean(do_**2)
    cov = mean(ds_ * do_)
    sd_s = np.sqrt(var_s)
    sd_o = np.sqrt(var_o)
    bias = mu_s - mu_o
    mse = mean((s - o) ** 2)
    rmse = np.sqrt(mse)
    # ubRMSE = std(s - o) (ddof=0) = sqrt(mse - bias**2); the variance form is exact.
    ubrmse = np.sqrt(np.maximum(mse - bias**2, 0.0))
    sd_o_pos = sd_o.where(sd_o > 0)
    mu_o_nz = mu_o.where(mu_o != 0)
    r = cov / (sd_s * sd_o_pos)
    nse = 1.0 - mse / var_o.where(var_o > 0)
    alpha = sd_s / sd_o_pos
    beta = mu_s / mu_o_nz
    gamma = (sd_s / mu_s.where(mu_s != 0)) / (sd_o_pos / mu_o_nz)
    kge = 1.0 - np.sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2)
    kge_prime = 1.0 - np.sqrt((r - 1) ** 2 + (gamma - 1) ** 2 + (beta - 1) ** 2)
    values = {
        "r_p_value": _r_p_value(s, o, dim) if "r_p_value" in metrics else None,
        "anomaly_r": _anomaly_r(s, o, dim, anomaly_window) if "anomaly_r" in metrics else None,
        "bias": bias,
        "rmse": rmse,
        "ubrmse": ubrmse,
        "r": r,
        "nse": nse,
        "kge": kge,
        "kge_prime": kge_prime,
        "n": n,
    }
    units = sim.attrs.get("units")
    out = {}
    for name in metrics:
        da = values[name]
        attrs = {"long_name": _LONG_NAMES[name]}
        if name in _DIMENSIONLESS:
            attrs["units"] = "1"
        elif units is not None:
            attrs["units"] = units
        out[name] = da.assign_attrs(attrs)
    return xr.Dataset(out)


def skill(
    sim: xr.DataArray | xr.Dataset,
    ref: xr.DataArray | xr.Dataset,
    dim: Hashable | Iterable[Hashable] = "time",
    metrics: Sequence[str] | None = None,
    anomaly_window: int = 35,
) -> xr.Dataset:
    """Skill metrics of ``sim`` against ``ref`` along ``dim``, lazily.

    Parameters
    ----------
    sim, ref : DataArray or Dataset
        Simulation (estimate) and reference, aligned by coordinates (inner join); where
        both carry ``units`` the reference is converted to the simulation's units
        (:class:`~xldas.errors.UnitError` when impossible). NaN in either marks a missing value; only jointly valid pairs count.
        With Datasets, every data variable present in both is scored.
    dim : str or sequence of str
        Dimension(s) reduced (default ``"time"``); the others are kept.
    metrics : sequence of str, optional
        Subset of ``bias, rmse, ubrmse, r, r_p_value, anomaly_r, nse, kge, kge_prime, n`` (default
        all; ``anomaly_r`` only where ``dim`` is a single datetime ``time`` dimension).
    anomaly_window : width (days) of the moving window of the day-of-year climatology
        removed before ``anomaly_r`` (see :func:`xldas.validation.climatology`).

    Returns
    -------
    xarray.Dataset
        For DataArray input, one variable per metric. For Dataset input, one variable per
        input variable with a new leading ``metric`` dimension. bias, rmse and ubrmse carry
        the units of ``sim``; the others are dimensionless.

    Notes
    -----
    bias = mean(s − o); RMSE = √mean((s − o)²); ubRMSE = √(RMSE² − bias²) (Entekhabi et
    al. 2010); R Pearson; NSE = 1 − Σ(s − o)²/Σ(o − ō)² (Nash & Sutcliffe 1970);
    KGE = 1 − √[(r−1)² + (α−1)² + (β−1)²], α = σ_s/σ_o, β = μ_s/μ_o (Gupta et al. 2009);
    KGE′ uses γ = (σ_s/μ_s)/(σ_o/μ_o) instead of α (Kling et al. 2012). Population
    standard deviations throughout (SCIENCE.md §D14).

    Examples
    --------
    >>> import xarray as xr
    >>> o = xr.DataArray([1.0, 2, 3, 4, 5], dims="time")
    >>> s = 2 * o
    >>> out = skill(s, o)
    >>> round(float(out.rmse), 6), round(float(out.kge), 6), float(out.kge_prime)
    (3.316625, -0.414214, 0.0)
    """
    chosen = list(METRICS if metrics is None else metrics)
    for m in chosen:
        if m not in METRICS:
            raise UnknownOptionError("metric", m, METRICS)
    dims = [dim] if isinstance(dim, str) or not isinstance(dim, Iterable) else list(dim)
    sim, ref = xr.align(sim, ref, join="inner")
    if "anomaly_r" in chosen and (len(dims) != 1 or not _has_datetime(sim, dims[0])):
        if metrics is not None:
            raise DimensionError(
                f"anomaly_r needs one datetime64 dimension to reduce; got dims {dims}"
            )
        chosen.remove("anomaly_r")
    if isinstance(sim, xr.DataArray) != isinstance(ref, xr.DataArray):
        raise TypeError("sim and ref must both be DataArrays or both be Datasets")
    for d in dims:
        if d not in sim.dims or d not in ref.dims:
            raise DimensionError(
                f"skill: dimension {d!r} is not in both inputs (sim dims {tuple(sim.dims)}, "
                f"ref dims {tuple(ref.dims)})"
            )
    if isinstance(sim, xr.DataArray):
        out = _metrics_dataarray(sim, ref, dims, chosen, anomaly_window)
    else:
        names = [v for v in sim.data_vars if v in ref.data_vars]
        if not names:
            raise DimensionError("skill: sim and ref share no data variable")
        per_var = {}
        for v in names:
            m = _metrics_dataarray(sim[v], ref[v], dims, chosen, anomaly_window)
            per_var[v] = m.to_dataarray("metric").assign_attrs(
                {
                    "long_name": f"skill of {v}",
                    "units_of_error_metrics": sim[v].attrs.get("units", ""),
                }
            )
        out = xr.Dataset(per_var)
    return add_history(out, f"xldas.validation.skill(dim={dims}, metrics={chosen})")
