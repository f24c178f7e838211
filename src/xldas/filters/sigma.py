"""Initial sigma-point ensembles for cycling the UKF, CDKF and their square-root forms.

A sigma-point filter carries, between analyses, the 2n+1 points of its last analysis
(``n`` = number of state elements per pixel) with their mean and covariance weights
(``weight``/``weight_cov``), and the model propagates every point like an ensemble
member. :func:`sigma_point_ensemble` builds the first set from a deterministic state and
a diagonal initial covariance; :func:`xldas.filters.assimilate` then regenerates the points
at every analysis (prediction: weighted moments of the propagated points plus the additive
process noise ``Q``; update: points of the analysis mean and covariance).

The points are propagated with the *unperturbed* forcing: the model error of a
sigma-point filter is its ``Q``. Random forcing perturbations per point would be weighted
by the sigma-point weights (for the UKF with α = 10⁻³ the central weight is about −10⁶)
and destroy the moments, which is why the cycling engine refuses the combination.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from xldas._xr import add_history, spatial_dims
from xldas.errors import DimensionError, FilterError, ParameterRangeError
from xldas.filters.methods import _SigmaPointFilter, get_filter

__all__ = ["n_state_elements", "sigma_point_ensemble"]


def _names(state: xr.Dataset) -> list[str]:
    sdims = set(spatial_dims(state))
    return [
        str(v)
        for v, da in state.data_vars.items()
        if sdims <= set(da.dims)
        and not str(v).startswith("pert_")
        and v not in ("weight", "weight_cov")
    ]


def n_state_elements(state: xr.Dataset) -> int:
    """Number of state elements per pixel (layers counted) of a deterministic state.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> st = xr.Dataset({"sm": (("layer", "lat", "lon"), np.zeros((4, 2, 3))),
    ...                  "swe": (("lat", "lon"), np.zeros((2, 3)))})
    >>> n_state_elements(st)
    5
    """
    sdims = spatial_dims(state)
    n = 0
    for name in _names(state):
        extra = [d for d in state[name].dims if d not in sdims]
        if len(extra) > 1:
            raise DimensionError(f"{name} has dims {state[name].dims}; at most one besides space")
        n += state.sizes[extra[0]] if extra else 1
    return n


def sigma_point_ensemble(
    state: xr.Dataset,
    method="ukf",
    std: Mapping[str, float] | None = None,
    params: xr.Dataset | None = None,
) -> xr.Dataset:
    """The 2n+1 sigma points of a deterministic state and a diagonal covariance.

    Parameters
    ----------
    state : model state without a ``member`` dimension (``sm``, ``tsoil``, ``swe``,
        ``canopy_water``; any variable on the grid counts, ``pert_*`` excepted).
    method : ``"ukf"``, ``"cdkf"``, ``"srukf"``, ``"srcdkf"`` or a sigma-point filter
        object (its α, β, κ or h set the spread and the weights).
    std : initial standard deviation per variable, in the variable's units (the same
        for all its layers), e.g. ``{"sm": 0.02}``; variables not named have none. With
        no spread at all the 2n+1 points coincide, and the first prediction spreads them
        by the process noise ``Q``.
    params : parameters; when given, ``sm`` points are kept within [θ_r, θ_s].

    Returns
    -------
    Dataset with ``member`` = 2n+1 (one chunk when dask-backed), ``weight`` and
    ``weight_cov`` (member, y, x) float64: point 0 is the state, points 1..n add and
    n+1..2n subtract ``scale * std`` on one state element each (the order of
    :func:`xldas.filters.stack_state`).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> st = xr.Dataset({"sm": (("layer", "lat", "lon"), np.full((2, 1, 2), 0.2)),
    ...                  "swe": (("lat", "lon"), np.zeros((1, 2)))},
    ...                 coords={"lat": [38.0], "lon": [100.0, 100.1]})
    >>> ens = sigma_point_ensemble(st, "cdkf", std={"sm": 0.01})
    >>> ens.sizes["member"], round(float(ens.sm.isel(member=1, layer=0, lat=0, lon=0)), 4)
    (7, 0.2173)
    >>> round(float(ens.weight.sum("member").isel(lat=0, lon=0)), 12)
    1.0
    """
    filt = get_filter(method)
    if not isinstance(filt, _SigmaPointFilter):
        raise FilterError(f"{type(filt).__name__} is not a sigma-point filter")
    if "member" in state.dims:
        raise DimensionError("state already has a 'member' dimension")
    std = dict(std or {})
    names = _names(state)
    unknown = sorted(set(std) - set(names))
    if unknown:
        raise ParameterRangeError(f"std given for {unknown}, which are not in the state {names}")
    for name, s in std.items():
        if not np.isfinite(s) or s < 0:
            raise ParameterRangeError(f"std of {name!r} must be finite and >= 0, got {s!r}")
    sdims = spatial_dims(state)
    n = n_state_elements(state)
    scale = filt.scale(n)
    wm, wc = filt.weights(n)
    members = np.arange(2 * n + 1)
    ens = xr.Dataset(coords=state.coords, attrs=dict(state.attrs))
    j = 0
    for name in names:
        da = state[name]
        extra = [d for d in da.dims if d not in sdims]
        size = state.sizes[extra[0]] if extra else 1
        offsets = np.zeros((2 * n + 1, size))
        for k in range(size):
            offsets[1 + j + k, k] = scale * std.get(name, 0.0)
            offsets[1 + n + j + k, k] = -scale * std.get(name, 0.0)
        j += size
        off = xr.DataArray(
            offsets if extra else offsets[:, 0],
            dims=("member", *extra),
            coords={"member": members},
        )
        da = da.astype(np.float64)  # the weighted moments need float64 (see carried_state)
        new = (da + off).transpose("member", *da.dims)
        if name == "sm" and params is not None and "theta_r" in params:
            new = new.clip(params["theta_r"], params["theta_s"]).transpose(*new.dims)
        ens[name] = new.astype(da.dtype).assign_attrs(da.attrs)
        ens[name].encoding = dict(da.encoding)
    ref = state[names[0]].isel({d: 0 for d in state[names[0]].dims if d not in sdims}, drop=True)
    for vname, w in (("weight", wm), ("weight_cov", wc)):
        wda = xr.DataArray(np.asarray(w, float), dims="member", coords={"member": members})
        ens[vname] = (wda * xr.ones_like(ref, dtype=float)).transpose("member", *sdims)
        ens[vname].attrs = {
            "units": "1",
            "long_name": f"sigma-point {'mean' if vname == 'weight' else 'covariance'} weight",
        }
    if any(v.chunks is not None for v in ens.data_vars.values()):
        ens = ens.chunk({"member": -1})
    return add_history(ens, f"sigma_point_ensemble({type(filt).__name__}, n={n})")
