"""Extended triple collocation (Stoffelen 1998; McColl et al. 2014), lazily over grids.

Three collocated estimates x, y, z of the same unknown truth t, each linear in t with a
mutually independent, zero-mean error, give through their covariance matrix Q:

    σ²_εx = Q_xx − Q_xy Q_xz / Q_yz          ρ²_{t,x} = Q_xy Q_xz / (Q_xx Q_yz)
    σ²_εy = Q_yy − Q_xy Q_yz / Q_xz          ρ²_{t,y} = Q_xy Q_yz / (Q_yy Q_xz)
    σ²_εz = Q_zz − Q_xz Q_yz / Q_xy          ρ²_{t,z} = Q_xz Q_yz / (Q_zz Q_xy)

(SCIENCE.md §D14, check value E38). Error variances are in each product's own units and
scale; ρ² (squared correlation with the truth) is scale-free.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

from xldas._xr import add_history
from xldas.errors import DimensionError

__all__ = ["tc_from_covariance", "triple_collocation"]


def tc_from_covariance(q) -> tuple[np.ndarray, np.ndarray]:
    """Error variances and ρ² from a 3 × 3 covariance matrix (last two axes).

    Parameters
    ----------
    q : array (..., 3, 3), covariance of (x, y, z).

    Returns
    -------
    (err_var, rho2) : arrays (..., 3).

    Examples
    --------
    >>> import numpy as np
    >>> q = np.array([[1.04, 2, 0.5], [2, 4.09, 1], [0.5, 1, 0.26]])
    >>> ev, r2 = tc_from_covariance(q)
    >>> np.round(ev, 6).tolist(), np.round(r2, 6).tolist()
    ([0.04, 0.09, 0.01], [0.961538, 0.977995, 0.961538])
    """
    q = np.asarray(q, dtype=np.float64)
    xx, yy, zz = q[..., 0, 0], q[..., 1, 1], q[..., 2, 2]
    xy, xz, yz = q[..., 0, 1], q[..., 0, 2], q[..., 1, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ev = np.stack([xx - xy * xz / yz, yy - xy * yz / xz, zz - xz * yz / xy], axis=-1)
        r2 = np.stack([xy * xz / (xx * yz), xy * yz / (yy * xz), xz * yz / (zz * xy)], axis=-1)
    return ev, r2


def triple_collocation(
    a: xr.DataArray,
    b: xr.DataArray,
    c: xr.DataArray,
    dim: Hashable = "time",
    min_n: int = 100,
) -> xr.Dataset:
    """Extended triple collocation of three collocated series, lazily over any grid.

    Parameters
    ----------
    a, b, c : DataArrays aligned by coordinates (inner join) with the dimension ``dim``;
        NaN = missing, only jointly valid triplets count.
    dim : dimension along which the covariances are estimated (default ``"time"``).
    min_n : minimum number of triplets; below it the results are NaN (SCIENCE.md §D14
        recommends ≥ 100).

    Returns
    -------
    xarray.Dataset with a ``product`` dimension (the names of ``a``, ``b``, ``c``) holding
    ``error_variance`` (each product's units squared), ``error_std``, ``error_std_ref``
    (error std in the units and scale of ``a``, using β_a/β_x from Q), ``rho2`` (squared
    correlation with the unknown truth), ``snr_db`` (signal-to-noise ratio,
    10·log10(ρ²/(1−ρ²))), plus ``n`` (triplets) and ``assumptions_ok`` (all error variances
    and ρ² in [0, 1] — False flags violated TC assumptions, e.g. correlated errors).
    Covariances are sample covariances (ddof = 1).

    References
    ----------
    Stoffelen A. (1998) JGR 103:7755. McColl K.A. et al. (2014) GRL 41:6229–6236.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(1)
    >>> t = rng.standard_normal(20000)
    >>> x, y, z = (xr.DataArray(k * t + s * rng.standard_normal(t.size), dims="time")
    ...            for k, s in ((1, 0.2), (2, 0.3), (0.5, 0.1)))
    >>> out = triple_collocation(x.rename("x"), y.rename("y"), z.rename("z"))
    >>> np.round(out.error_variance.values, 2).tolist()
    [0.04, 0.09, 0.01]
    """
    a, b, c = xr.align(a, b, c, join="inner")
    for i, v in enumerate((a, b, c)):
        if dim not in v.dims:
            raise DimensionError(f"triple_collocation: input {i} has no dimension {dim!r}")
    names = []
    for i, v in enumerate((a, b, c)):
        name = str(v.name) if v.name is not None else "abc"[i]
        names.append(name if name not in names else f"{name}_{i}")
    valid = a.notnull() & b.notnull() & c.notnull()
    xs = [v.where(valid) for v in (a, b, c)]
    n = valid.sum(dim)
    enough = n >= max(int(min_n), 3)
    mu = [v.sum(dim) / n.where(n > 0) for v in xs]
    dev = [v - m for v, m in zip(xs, mu)]

    def cov(i, j):
        return (dev[i] * dev[j]).sum(dim) / (n - 1).where(enough)

    qxx, qyy, qzz = cov(0, 0), cov(1, 1), cov(2, 2)
    qxy, qxz, qyz = cov(0, 1), cov(0, 2), cov(1, 2)
    ev = [qxx - qxy * qxz / qyz, qyy - qxy * qyz / qxz, qzz - qxz * qyz / qxy]
    r2 = [qxy * qxz / (qxx * qyz), qxy * qyz / (qyy * qxz), qxz * qyz / (qzz * qxy)]
    product = xr.DataArray(names, dims="product", name="product")
    err_var = xr.concat(ev, dim=product)
    rho2 = xr.concat(r2, dim=product)
    # error std expressed in the units/scale of ``a`` (β_a/β_x from the covariances)
    scale = [1.0, qxz / qyz, qxy / qyz]
    err_ref = xr.concat([np.sqrt(e.where(e >= 0)) * abs(k) for e, k in zip(ev, scale)], dim=product)
    units = [v.attrs.get("units", "") for v in (a, b, c)]
    ok = ((err_var >= 0) & (rho2 >= 0) & (rho2 <= 1)).all("product") & enough
    out = xr.Dataset(
        {
            "error_variance": err_var.assign_attrs(
                long_name="TC error variance (in each product's own units squared)",
                units_of_products=", ".join(f"{n_}: ({u})2" for n_, u in zip(names, units)),
            ),
            "error_std": np.sqrt(err_var.where(err_var >= 0)).assign_attrs(
                long_name="TC error standard deviation (each product's own units)",
                units_of_products=", ".join(f"{n_}: {u}" for n_, u in zip(names, units)),
            ),
            "error_std_ref": err_ref.assign_attrs(
                long_name=f"TC error standard deviation rescaled to the first product ({names[0]})",
                units=units[0],
            ),
            "rho2": rho2.assign_attrs(
                long_name="squared correlation with the unknown truth", units="1"
            ),
            "snr_db": (10 * np.log10(rho2 / (1 - rho2))).assign_attrs(
                long_name="signal-to-noise ratio", units="dB"
            ),
            "n": n.assign_attrs(long_name="number of jointly valid triplets", units="1"),
            "assumptions_ok": ok.assign_attrs(
                long_name="error variances >= 0 and 0 <= rho2 <= 1 with at least min_n triplets"
            ),
        }
    )
    return add_history(out, f"xldas.validation.triple_collocation(dim={dim!r}, min_n={min_n})")
