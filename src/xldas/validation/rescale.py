"""Rescaling of one data set onto the climatology of another, lazily over grids.

Two methods (SCIENCE.md §D14):

* ``"mean_std"`` — linear scaling x′ = μ_ref + (x − μ_x)·σ_ref/σ_x;
* ``"cdf_match"`` — x′ = F_ref⁻¹(F_x(x)), piece-wise linear between matched percentiles
  (default 0, 5, …, 100) and extrapolated linearly beyond the end points (Reichle &
  Koster 2004; Drusch et al. 2005).

The statistics are estimated on the jointly valid pairs of the common period (inner join
on the coordinates) and applied to every value of the input, including times the
reference does not have — the usual case when observations are rescaled onto a model
climatology before assimilation.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import xarray as xr

from xldas._xr import add_history, apply_kernel
from xldas.errors import DimensionError, UnknownOptionError

__all__ = ["METHODS", "cdf_match_kernel", "rescale"]

METHODS = ("cdf_match", "mean_std")


def cdf_match_kernel(x: np.ndarray, px: np.ndarray, pr: np.ndarray) -> np.ndarray:
    """Piece-wise linear map of ``x`` through the knots ``(px, pr)`` (last axis).

    ``x`` (..., time), ``px`` and ``pr`` (..., P) with ``px`` non-decreasing. Values
    outside [px₀, px_P] follow the first/last segment (linear extrapolation). Flat
    segments (tied percentiles) map to their reference value. NaN stays NaN.

    Examples
    --------
    >>> import numpy as np
    >>> cdf_match_kernel(np.array([-1.0, 0.5, 3.0]), np.array([0.0, 1, 2]), np.array([0.0, 2, 3]))
    array([-2.,  1.,  4.])
    """
    x = np.asarray(x, dtype=np.float64)
    px = np.asarray(px, dtype=np.float64)[..., None, :]
    pr = np.asarray(pr, dtype=np.float64)[..., None, :]
    npct = px.shape[-1]
    # segment k runs from knot k-1 to knot k, k in 1..P-1
    k = np.clip((x[..., None] >= px).sum(axis=-1), 1, npct - 1)[..., None]
    x0 = np.take_along_axis(px, k - 1, axis=-1)[..., 0]
    x1 = np.take_along_axis(px, k, axis=-1)[..., 0]
    y0 = np.take_along_axis(pr, k - 1, axis=-1)[..., 0]
    y1 = np.take_along_axis(pr, k, axis=-1)[..., 0]
    dx = x1 - x0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(dx > 0, y0 + (x - x0) * (y1 - y0) / dx, y1)
    allnan = np.isnan(px).any(axis=-1) | np.isnan(pr).any(axis=-1)
    return np.where(np.isnan(x) | allnan, np.nan, out)


def _one(
    x: xr.DataArray,
    ref: xr.DataArray,
    method: str,
    dim: Hashable,
    percentiles: Sequence[float],
) -> xr.DataArray:
    if dim not in x.dims or dim not in ref.dims:
        raise DimensionError(f"rescale: dimension {dim!r} must be in both inputs")
    xa, ra = xr.align(x, ref, join="inner")
    valid = xa.notnull() & ra.notnull()
    xa, ra = xa.where(valid), ra.where(valid)
    if method == "mean_std":
        sx, sr = xa.std(dim), ra.std(dim)
        out = ra.mean(dim) + (x - xa.mean(dim)) * sr / sx.where(sx > 0)
    else:
        q = np.asarray(percentiles, dtype=np.float64) / 100.0
        if q.ndim != 1 or q.size < 2 or np.any(np.diff(q) <= 0) or q[0] < 0 or q[-1] > 1:
            raise UnknownOptionError(
                "percentiles (increasing, 0..100, at least 2)", list(percentiles), ["0..100"]
            )
        xa = xa.chunk({dim: -1}) if xa.chunks else xa
        ra = ra.chunk({dim: -1}) if ra.chunks else ra
        px = xa.quantile(q, dim=dim, skipna=True).rename(quantile="percentile")
        pr = ra.quantile(q, dim=dim, skipna=True).rename(quantile="percentile")
        xin = x.chunk({dim: -1}) if x.chunks else x
        out = apply_kernel(
            cdf_match_kernel,
            xin,
            px,
            pr,
            input_core_dims=[[dim], ["percentile"], ["percentile"]],
            output_core_dims=[[dim]],
            output_dtypes=[np.float64],
        )
        out = out.transpose(*x.dims)
    out.name = x.name
    out.attrs = {**x.attrs}
    out.attrs.pop("units", None)
    if "units" in ref.attrs:
        out.attrs["units"] = ref.attrs["units"]
    out.attrs["comment"] = f"rescaled onto the reference climatology ({method})"
    return out


def rescale(
    ds: xr.DataArray | xr.Dataset,
    ref: xr.DataArray | xr.Dataset,
    method: str = "cdf_match",
    dim: Hashable = "time",
    percentiles: Sequence[float] = tuple(range(0, 101, 5)),
) -> xr.DataArray | xr.Dataset:
    """Rescale ``ds`` onto the climatology of ``ref`` along ``dim``, lazily.

    Parameters
    ----------
    ds : DataArray or Dataset to rescale (e.g. satellite soil moisture); NaN = missing.
    ref : reference (e.g. the open-loop model); a DataArray, or a Dataset whose variables
        are matched by name. The output takes the reference's units (rescaling maps any
        scale, e.g. ASCAT % saturation, onto the reference's).
    method : ``"cdf_match"`` (default) or ``"mean_std"``.
    dim : dimension along which statistics are estimated (default ``"time"``); for
        ``cdf_match`` it is brought to one dask chunk.
    percentiles : matched percentiles for ``cdf_match`` (default 0, 5, …, 100).

    Returns
    -------
    Same type as ``ds``, every value mapped (also at times ``ref`` lacks). Statistics come
    from the jointly valid pairs of the common period; cells without any are NaN.

    References
    ----------
    Reichle R.H., Koster R.D. (2004) GRL 31:L19501. Drusch M., Wood E.F., Gao H. (2005)
    GRL 32:L15403.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> ref = xr.DataArray(0.25 + 0.05 * rng.standard_normal(500), dims="time")
    >>> x = 3.0 * ref + 10.0
    >>> out = rescale(x, ref, method="mean_std")
    >>> bool(np.allclose(out, ref))
    True
    """
    if method not in METHODS:
        raise UnknownOptionError("rescale method", method, METHODS)
    if isinstance(ds, xr.DataArray):
        if isinstance(ref, xr.Dataset):
            if ds.name not in ref:
                raise DimensionError(f"rescale: reference Dataset has no variable {ds.name!r}")
            ref = ref[ds.name]
        out = _one(ds, ref, method, dim, percentiles)
    else:
        out = ds.copy()
        for v in ds.data_vars:
            if dim not in ds[v].dims:
                continue
            if isinstance(ref, xr.DataArray):
                out[v] = _one(ds[v], ref, method, dim, percentiles)
            elif v in ref:
                out[v] = _one(ds[v], ref[v], method, dim, percentiles)
    return add_history(out, f"xldas.validation.rescale(method={method!r}, dim={dim!r})")
