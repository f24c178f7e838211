"""Monotonic trends: Mann–Kendall test and Theil–Sen slope with confidence interval (§A8).

Works on any variable with a ``time`` (or other) dimension: water area per size class, tree
cover, soil moisture, annual ET ... The per-series kernel (numba gufunc, NumPy reference in
:mod:`xldas.retrieval._kernels`) computes S, Var(S) with the tie correction, Z with the
continuity correction, the two-sided p-value, the Theil–Sen slope (median of pairwise slopes
over actual times, so gaps are handled), the intercept median(x) − slope·median(t), and Sen's
(1968) confidence interval of the slope (as ``scipy.stats.theilslopes``). Missing values are
dropped series by series. No correction for serial correlation is applied: pre-whiten the
series or use ≥ 10 years and a false-discovery-rate control for maps (SCIENCE.md §A8).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.stats import norm

from xldas._xr import apply_kernel
from xldas.errors import DimensionError, ParameterRangeError
from xldas.physics._common import dispatch, single_chunk
from xldas.retrieval import _kernels as K

__all__ = ["trend"]

_OUT = ("slope", "intercept", "mk_s", "mk_var_s", "mk_z", "p_value", "slope_low", "slope_high", "n")


def _time_axis(coord: xr.DataArray) -> tuple[xr.DataArray, str]:
    if np.issubdtype(coord.dtype, np.datetime64):
        years = (coord - coord[0]) / np.timedelta64(1, "D") / 365.25
        return years.astype(float), "yr-1"
    unit = coord.attrs.get("units")
    return coord.astype(float), (f"({unit})-1" if unit else "per unit of the coordinate")


def _trend_da(da: xr.DataArray, dim: str, alpha: float, engine) -> xr.Dataset:
    if dim not in da.dims:
        raise DimensionError(f"trend needs the dimension {dim!r}; {da.name!r} has {da.dims}")
    da = single_chunk(da, dim)
    t, per = _time_axis(da[dim]) if dim in da.coords else (
        xr.DataArray(np.arange(da.sizes[dim], dtype=float), dims=dim), "per step"
    )  # fmt: skip
    z_crit = float(norm.ppf(1.0 - alpha / 2.0))
    units = da.attrs.get("units", "1")
    outs = apply_kernel(
        dispatch(K.mann_kendall_sen_kernel, K.mann_kendall_sen_np, engine),
        da.astype(float),
        t,
        z_crit,
        input_core_dims=[[dim], [dim], []],
        output_core_dims=[()] * 9,
        output_dtypes=[np.float64] * 9,
        names=list(_OUT),
        history=f"trend(dim={dim!r}): Mann-Kendall + Theil-Sen",
    )
    res = dict(zip(_OUT, outs))
    slope_units = f"{units} {per}"
    attrs = {
        "slope": {"units": slope_units, "long_name": "Theil-Sen slope"},
        "intercept": {"units": units, "long_name": "Theil-Sen intercept at the first time"},
        "mk_s": {"units": "1", "long_name": "Mann-Kendall S statistic"},
        "mk_var_s": {"units": "1", "long_name": "variance of S (tie-corrected)"},
        "mk_z": {"units": "1", "long_name": "Mann-Kendall Z (continuity-corrected)"},
        "p_value": {"units": "1", "long_name": "two-sided p-value of the Mann-Kendall test"},
        "slope_low": {
            "units": slope_units,
            "long_name": f"lower bound of the {100 * (1 - alpha):g}% Sen confidence interval",
        },
        "slope_high": {
            "units": slope_units,
            "long_name": f"upper bound of the {100 * (1 - alpha):g}% Sen confidence interval",
        },
        "n": {"units": "1", "long_name": "number of valid values"},
    }
    for k, v in res.items():
        v.attrs.update(attrs[k])
    res["significant"] = (res["p_value"] < alpha).assign_attrs(
        long_name=f"trend significant at the {alpha:g} level (Mann-Kendall)", units="1"
    )
    return xr.Dataset(res, attrs={"trend_alpha": alpha})


def trend(obj, dim: str = "time", alpha: float = 0.05, *, engine: str | None = None) -> xr.Dataset:
    """Mann–Kendall trend test and Theil–Sen slope along ``dim``, lazily per series.

    Parameters
    ----------
    obj : DataArray or Dataset (every data variable having ``dim`` is analysed; output
        variables are prefixed ``<name>_``).
    dim : dimension of the series (made one chunk). With a datetime coordinate the slope
        is per year (time in years since the first time).
    alpha : significance level of the test and of the confidence interval.
    engine : ``"numba"`` (default) or ``"numpy"`` (reference).

    Returns
    -------
    Dataset: ``slope``, ``intercept``, ``slope_low``, ``slope_high`` (Sen CI), ``p_value``,
    ``significant``, ``mk_s``, ``mk_var_s``, ``mk_z``, ``n``.

    References
    ----------
    Mann (1945) Econometrica 13:245; Kendall (1975); Theil (1950); Sen (1968) JASA 63:1379.

    Examples
    --------
    SCIENCE.md E23:

    >>> import xarray as xr
    >>> from xldas.retrieval import trend
    >>> x = xr.DataArray([3.1, 2.9, 3.6, 3.4, 4.0, 3.8, 4.4, 4.4, 5.0, 4.7], dims="time",
    ...                  coords={"time": range(10)})
    >>> r = trend(x)
    >>> float(r.mk_s), float(r.mk_var_s), round(float(r.mk_z), 6), round(float(r.p_value), 6)
    (36.0, 124.0, 3.143093, 0.001672)
    >>> round(float(r.slope), 6), round(float(r.slope_low), 6), round(float(r.slope_high), 6)
    (0.225, 0.15, 0.3)
    """
    if not 0.0 < alpha < 1.0:
        raise ParameterRangeError(f"alpha must lie in (0, 1); got {alpha}")
    if isinstance(obj, xr.DataArray):
        return _trend_da(obj, dim, alpha, engine)
    parts = []
    for name, da in obj.data_vars.items():
        if dim in da.dims:
            parts.append(_trend_da(da, dim, alpha, engine).rename(
                {k: f"{name}_{k}" for k in (*_OUT, "significant")}
            ))  # fmt: skip
    if not parts:
        raise DimensionError(f"no variable of the Dataset has the dimension {dim!r}")
    return xr.merge(parts, combine_attrs="drop_conflicts")
