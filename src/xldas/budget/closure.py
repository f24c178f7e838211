"""Water budgets P − ET − Q − ΔS and their closure by a constrained Kalman filter.

The closure (Pan & Wood 2006; SCIENCE.md §C13, check value E35) treats the budget
equation as a perfect pseudo-observation of the residual: with x̂ = [P, ET, Q, ΔS]ᵀ, its
error covariance Σ, G = [1, −1, −1, −1] and r = 0,

    K_c = Σ Gᵀ (G Σ Gᵀ)⁻¹,   x̂_c = x̂ − K_c (G x̂ − r),   Σ_c = Σ − K_c G Σ,

so the residual is spread over the components in proportion to their error variances
and the closed budget has residual exactly zero.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from xldas._xr import add_history, apply_kernel
from xldas.errors import DimensionError, ParameterRangeError, UnitError
from xldas.units import conversion

__all__ = ["COMPONENTS", "close_budget", "closure_kernel", "water_budget"]

#: budget components and their sign in P − ET − Q − ΔS
COMPONENTS = {"P": 1.0, "ET": -1.0, "Q": -1.0, "dS": -1.0}
_LONG = {
    "P": "precipitation",
    "ET": "evapotranspiration",
    "Q": "runoff / river discharge",
    "dS": "change of water storage",
    "residual": "budget residual P - ET - Q - dS",
}


def closure_kernel(x: np.ndarray, cov: np.ndarray, g: np.ndarray, r: float = 0.0):
    """Constrained-KF closure on plain arrays.

    Parameters
    ----------
    x : (..., k) component estimates.
    cov : (..., k, k) their error covariance (symmetric, non-negative diagonal).
    g : (k,) constraint row, e.g. [1, −1, −1, −1].
    r : value the constraint must take (0 for a closed budget).

    Returns
    -------
    (x_c, cov_c) : (..., k) and (..., k, k).

    Examples
    --------
    >>> import numpy as np
    >>> xc, pc = closure_kernel(np.array([100.0, 60, 30, 5]), np.diag([25.0, 16, 4, 1]),
    ...                         np.array([1.0, -1, -1, -1]))
    >>> np.round(xc, 4).tolist(), np.round(np.diag(pc), 4).tolist()
    ([97.2826, 61.7391, 30.4348, 5.1087], [11.413, 10.4348, 3.6522, 0.9783])
    """
    x = np.asarray(x, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    diag = np.diagonal(cov, axis1=-2, axis2=-1)
    if np.any(diag < 0):
        raise ParameterRangeError(
            f"negative error variance(s) in the budget closure: min {np.nanmin(diag):g}"
        )
    sg = cov @ g  # Σ Gᵀ, (..., k)
    s = sg @ g  # G Σ Gᵀ, (...)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = sg / s[..., None]
    innov = x @ g - r
    xc = x - k * innov[..., None]
    covc = cov - k[..., :, None] * sg[..., None, :]
    return xc, covc


def _as_amount(da: xr.DataArray, name: str, dim: str) -> xr.DataArray:
    """Convert ``da`` to mm per time step (amount), from an amount or a rate."""
    units = da.attrs.get("units")
    if units is None:
        raise UnitError(f"budget component {name} has no 'units' attribute")
    try:
        a, b = conversion(str(units), "mm")
        rate = False
    except UnitError:
        try:
            a, b = conversion(str(units), "mm s-1")
        except UnitError:
            raise UnitError(
                f"budget component {name}: units {units!r} are neither a water amount (mm, "
                "kg m-2) nor a rate (mm s-1, kg m-2 s-1, mm/day)"
            ) from None
        rate = True
    if not rate:
        out = da * a + b
    else:
        if dim not in da.dims or da.sizes[dim] < 2:
            raise DimensionError(
                f"budget component {name} is a rate ({units}); it needs a {dim!r} dimension "
                "of at least 2 steps to know the step length"
            )
        t = da[dim]
        step = (t.diff(dim) / np.timedelta64(1, "s")).astype(np.float64)
        step = xr.concat([step.isel({dim: 0}).assign_coords({dim: t[0]}), step], dim)
        out = da * a * step
    out.attrs = {"units": "mm", "long_name": _LONG.get(name, name)}
    return out


def water_budget(
    ds: xr.Dataset | None = None,
    *,
    P="P",
    ET="ET",
    Q="Q",
    dS="dS",
    regions=None,
    period: str | None = None,
    dim: str = "time",
) -> xr.Dataset:
    """Water budget components and residual P − ET − Q − ΔS, per region and period.

    Parameters
    ----------
    ds : Dataset holding the components (optional when all are given as DataArrays).
    P, ET, Q, dS : DataArrays, names of variables of ``ds``, or numbers (e.g. ``Q=0`` for
        an endorheic basin). Amounts (mm, kg m-2) per time step or rates (kg m-2 s-1,
        mm/day ...; period-ending, multiplied by the step length). ``dS`` is the change of
        storage over each step (an amount).
    regions : optional regions (see :func:`xldas.budget.region_masks`); components on a
        grid are area-averaged first (:func:`xldas.budget.basin_mean`).
    period : optional pandas offset (``"MS"``, ``"YS"``, ``"7D"`` ...): amounts are summed
        over each period, labelled at its start. Steps are period-ending, so a step ending
        at midnight belongs to the day before (``closed="right"``).
    dim : time dimension.

    Returns
    -------
    Dataset with ``P``, ``ET``, ``Q``, ``dS`` and ``residual`` in mm per step/period.

    Examples
    --------
    >>> import xarray as xr
    >>> b = water_budget(P=xr.DataArray([10.0], dims="time", attrs={"units": "mm"}),
    ...                  ET=xr.DataArray([6.0], dims="time", attrs={"units": "kg m-2"}),
    ...                  Q=0.0, dS=xr.DataArray([3.0], dims="time", attrs={"units": "mm"}))
    >>> float(b.residual[0])
    1.0
    """
    comps = {}
    for name, value in (("P", P), ("ET", ET), ("Q", Q), ("dS", dS)):
        if isinstance(value, str):
            if ds is None or value not in ds:
                raise DimensionError(f"water_budget: no variable {value!r} for component {name}")
            value = ds[value]
        if isinstance(value, int | float):
            comps[name] = float(value)
            continue
        comps[name] = _as_amount(value, name, dim)
    if regions is not None:
        from xldas.budget.regions import basin_mean

        comps = {
            k: basin_mean(v, regions) if isinstance(v, xr.DataArray) else v
            for k, v in comps.items()
        }
    if period is not None:
        comps = {
            k: v.resample({dim: period}, closed="right", label="left")
            .sum(skipna=False)
            .assign_attrs(v.attrs)
            if isinstance(v, xr.DataArray)
            else v
            for k, v in comps.items()
        }
    arrays = [v for v in comps.values() if isinstance(v, xr.DataArray)]
    if not arrays:
        raise DimensionError("water_budget: at least one component must be a DataArray")
    template = xr.zeros_like(arrays[0])
    for k, v in comps.items():
        if not isinstance(v, xr.DataArray):
            comps[k] = (template + v).assign_attrs(units="mm", long_name=_LONG[k])
    out = xr.Dataset(comps)
    out["residual"] = (out.P - out.ET - out.Q - out.dS).assign_attrs(
        units="mm", long_name=_LONG["residual"]
    )
    return add_history(out, f"xldas.budget.water_budget(period={period!r})")


def _error_variance(errors, name: str, like: xr.DataArray, budget: xr.Dataset) -> xr.DataArray:
    """Variance (mm²) of component ``name`` from a 1-sigma error spec."""
    if isinstance(errors, xr.Dataset):
        if name not in errors:
            raise DimensionError(f"close_budget: errors lack component {name!r}")
        e = errors[name]
    elif isinstance(errors, Mapping):
        if name not in errors:
            raise DimensionError(f"close_budget: errors lack component {name!r}")
        e = errors[name]
    else:
        raise TypeError("errors must be a Dataset or a mapping of component -> 1-sigma error")
    if isinstance(e, str) and e.endswith("%"):
        e = abs(like) * float(e[:-1]) / 100.0
    if not isinstance(e, xr.DataArray):
        arr = np.asarray(e, dtype=np.float64)
        if np.any(arr < 0):
            raise ParameterRangeError(f"close_budget: negative error for {name}: {e}")
        e = xr.zeros_like(like) + arr
    elif "units" in e.attrs:
        a, b = conversion(str(e.attrs["units"]), "mm")
        e = e * a + b
    # a negative 1-sigma error becomes a negative variance, refused by the closure
    return e.astype(np.float64) ** 2 * np.sign(e)


def close_budget(
    budget: xr.Dataset,
    errors,
    covariance: xr.DataArray | None = None,
) -> xr.Dataset:
    """Close a water budget with the constrained Kalman filter (Pan & Wood 2006), lazily.

    Parameters
    ----------
    budget : Dataset with ``P``, ``ET``, ``Q``, ``dS`` (mm; from :func:`water_budget`).
    errors : 1-sigma errors per component (mm): a Dataset or mapping of numbers,
        DataArrays, or strings like ``"10%"`` (relative to the component's magnitude).
        Negative values raise :class:`~xldas.errors.ParameterRangeError`; a variance of 0
        keeps that component fixed.
    covariance : optional full error covariance (dims ``component``, ``component_2``,
        ordered P, ET, Q, dS; mm²) that replaces ``errors`` (e.g. from the spread of
        several products).

    Returns
    -------
    Dataset with the closed ``P``, ``ET``, ``Q``, ``dS`` (mm), their posterior 1-sigma
    ``<c>_err``, the prior ``<c>_prior`` and ``<c>_prior_err``, the prior ``residual_prior``
    and the closed ``residual`` (zero to round-off). Lazy on dask input; negative
    variances found at compute time raise too.

    References
    ----------
    Pan M., Wood E.F. (2006) J. Hydrometeorol. 7:534–547.

    Examples
    --------
    >>> import xarray as xr
    >>> b = xr.Dataset({k: ((), v, {"units": "mm"}) for k, v in
    ...                 dict(P=100.0, ET=60.0, Q=30.0, dS=5.0).items()})
    >>> c = close_budget(b, {"P": 5, "ET": 4, "Q": 2, "dS": 1})
    >>> round(float(c.P), 4), round(float(c.P_err) ** 2, 4), abs(float(c.residual)) < 1e-12
    (97.2826, 11.413, True)
    """
    names = list(COMPONENTS)
    missing = [n for n in names if n not in budget]
    if missing:
        raise DimensionError(f"close_budget: budget lacks component(s) {missing}")
    comp = xr.DataArray(names, dims="component", name="component")
    x = xr.concat([budget[n].astype(np.float64) for n in names], dim=comp)
    if covariance is None:
        var = xr.concat([_error_variance(errors, n, budget[n], budget) for n in names], dim=comp)
        cov = var * xr.DataArray(np.eye(4), dims=("component", "component_2"))
    else:
        if set(covariance.dims) < {"component", "component_2"}:
            raise DimensionError("covariance needs dims ('component', 'component_2')")
        cov = covariance.astype(np.float64)
    cov = cov.transpose(..., "component", "component_2")
    if not (cov.chunks or x.chunks):
        d = np.diagonal(np.asarray(cov), axis1=-2, axis2=-1)
        if np.any(d < 0):
            raise ParameterRangeError(
                f"close_budget: negative error variance(s) (min {np.nanmin(d):g} mm²)"
            )
    g = np.array([COMPONENTS[n] for n in names])
    xc, covc = apply_kernel(
        closure_kernel,
        x.chunk({"component": -1}) if x.chunks else x,
        cov.chunk({"component": -1, "component_2": -1}) if cov.chunks else cov,
        input_core_dims=[["component"], ["component", "component_2"]],
        output_core_dims=[["component"], ["component", "component_2"]],
        output_dtypes=[np.float64, np.float64],
        kwargs={"g": g},
    )
    out = xr.Dataset()
    sd_post = np.sqrt(np.maximum(_diag(covc), 0.0))
    sd_prior = np.sqrt(np.maximum(_diag(cov), 0.0))
    for i, n in enumerate(names):
        attrs = {"units": "mm", "long_name": _LONG[n]}
        out[n] = xc.isel(component=i, drop=True).assign_attrs(
            {**attrs, "comment": "closed by the constrained Kalman filter (Pan & Wood 2006)"}
        )
        out[f"{n}_err"] = sd_post.isel(component=i, drop=True).assign_attrs(
            units="mm", long_name=f"posterior 1-sigma error of {_LONG[n]}"
        )
        out[f"{n}_prior"] = x.isel(component=i, drop=True).assign_attrs(attrs)
        out[f"{n}_prior_err"] = sd_prior.isel(component=i, drop=True).assign_attrs(
            units="mm", long_name=f"prior 1-sigma error of {_LONG[n]}"
        )
    gx = xr.DataArray(g, dims="component")
    out["residual_prior"] = (
        (x * gx)
        .sum("component")
        .assign_attrs(units="mm", long_name="budget residual before closure")
    )
    out["residual"] = (
        (xc * gx)
        .sum("component")
        .assign_attrs(units="mm", long_name="budget residual after closure")
    )
    out["covariance"] = covc.assign_attrs(units="mm2", long_name="posterior error covariance")
    return add_history(out, "xldas.budget.close_budget (constrained KF, Pan & Wood 2006)")


def _diag(cov: xr.DataArray) -> xr.DataArray:
    eye = xr.DataArray(np.eye(cov.sizes["component"]), dims=("component", "component_2"))
    return (cov * eye).sum("component_2")
