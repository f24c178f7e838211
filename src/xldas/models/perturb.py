"""Ensemble generation: forcing, parameter and state perturbations.

Forcing perturbations follow the practice of NASA's Land Information System and the GEOS
land DA (Reichle et al. 2007, JGR 112:D09108; Kumar et al. 2008): multiplicative log-normal
(mean one) perturbations of precipitation and shortwave radiation, additive Gaussian
perturbations of air temperature, cross-correlated between variables, AR(1) in time and
spatially correlated with a given length scale. The AR(1) states are carried in the
ensemble as variables ``pert_<var>`` (member, lat, lon), so a run that stops and restarts
continues the same random sequence.

Randomness is counter-based (NumPy ``Philox``): the numbers at a grid node depend only on
(seed, purpose, step index, node position in *global* coordinates), so the same seed gives
the same field whatever the chunking or the sub-domain, and after a restart. Spatial
correlation: independent standard normals on a global node lattice of spacing
``length_scale`` are bilinearly interpolated to the cells and renormalised to unit variance
(a smooth field with correlation ~1 at distance 0 falling to ~0 at one length scale).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np
import xarray as xr

from xldas._xr import add_history, apply_kernel, spatial_dims
from xldas.errors import DimensionError, ParameterRangeError

__all__ = ["ForcingPerturbation", "correlated_field", "perturb", "perturb_forcing"]

_BLOCK = 32  # nodes per side of one Philox stream block
_KM_PER_DEG = 111.32
_PURPOSE = {"init": 1, "forcing": 2, "parameter": 3, "state": 4}
ATTR = "xldas_forcing_perturbation"


@dataclass(frozen=True)
class ForcingPerturbation:
    """Forcing perturbation settings (LIS / GEOS-5 land DA style).

    Parameters
    ----------
    std : standard deviation per variable: of the log for the multiplicative variables
        (``precip``, ``swdown``), in K for ``tair`` (additive).
    correlation : cross-correlation matrix between the variables, in the order of ``std``.
    time_scale_h : AR(1) e-folding time (hours): φ = exp(−Δt/τ).
    length_scale_km : spatial correlation length (km on lat/lon grids; on y/x grids the
        coordinates are taken in metres).

    Examples
    --------
    >>> fp = ForcingPerturbation()
    >>> fp.variables
    ('precip', 'swdown', 'tair')
    """

    std: dict = field(default_factory=lambda: {"precip": 0.5, "swdown": 0.3, "tair": 1.0})
    correlation: tuple = ((1.0, -0.8, -0.1), (-0.8, 1.0, 0.4), (-0.1, 0.4, 1.0))
    time_scale_h: float = 24.0
    length_scale_km: float = 50.0
    multiplicative: tuple = ("precip", "swdown")

    def __post_init__(self):
        c = np.asarray(self.correlation, dtype=np.float64)
        n = len(self.std)
        if c.shape != (n, n) or not np.allclose(c, c.T) or np.any(np.diag(c) != 1.0):
            raise ParameterRangeError(
                f"correlation must be a symmetric {n}x{n} matrix with unit diagonal, got {c.tolist()}"
            )
        if np.any(np.linalg.eigvalsh(c) <= 0):
            raise ParameterRangeError("correlation matrix is not positive definite")
        for k, v in self.std.items():
            if not v >= 0:
                raise ParameterRangeError(f"perturbation std of {k!r} must be >= 0, got {v!r}")
        if not self.time_scale_h > 0 or not self.length_scale_km > 0:
            raise ParameterRangeError("time_scale_h and length_scale_km must be positive")

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(self.std)

    def cholesky(self) -> np.ndarray:
        return np.linalg.cholesky(np.asarray(self.correlation, dtype=np.float64))

    def to_json(self) -> str:
        d = asdict(self)
        d["correlation"] = [list(r) for r in self.correlation]
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> ForcingPerturbation:
        d = json.loads(text)
        d["correlation"] = tuple(tuple(r) for r in d["correlation"])
        d["multiplicative"] = tuple(d["multiplicative"])
        return cls(**d)


# ------------------------------------------------------------------ random fields (kernels)
def _key(seed: int, purpose: int, index: int) -> np.ndarray:
    idx = int(index) + (1 << 62)
    ss = np.random.SeedSequence(
        [
            int(seed) & 0xFFFFFFFF,
            (int(seed) >> 32) & 0xFFFFFFFF,
            purpose,
            idx & 0xFFFFFFFF,
            idx >> 32,
        ]
    )
    return ss.generate_state(2, np.uint64)


def _node_normals(key, iy0, iy1, ix0, ix1, n_members, n_vars):
    """Standard normals on global nodes [iy0, iy1] × [ix0, ix1]: (member, var, ny, nx)."""
    out = np.empty((n_members, n_vars, iy1 - iy0 + 1, ix1 - ix0 + 1))
    for by in range(iy0 // _BLOCK, iy1 // _BLOCK + 1):
        for bx in range(ix0 // _BLOCK, ix1 // _BLOCK + 1):
            counter = np.array([0, 0, by + (1 << 40), bx + (1 << 40)], dtype=np.uint64)
            g = np.random.Generator(np.random.Philox(key=key, counter=counter))
            z = g.standard_normal((n_members, n_vars, _BLOCK, _BLOCK))
            y0, x0 = by * _BLOCK, bx * _BLOCK
            sy = slice(max(iy0, y0), min(iy1, y0 + _BLOCK - 1) + 1)
            sx = slice(max(ix0, x0), min(ix1, x0 + _BLOCK - 1) + 1)
            out[:, :, sy.start - iy0 : sy.stop - iy0, sx.start - ix0 : sx.stop - ix0] = z[
                :, :, sy.start - y0 : sy.stop - y0, sx.start - x0 : sx.stop - x0
            ]
    return out


def correlated_field(yc, xc, spacing, key, n_members, n_vars):
    """Unit-variance spatially correlated normals at cells (yc[i], xc[j]): (member, var, ny, nx).

    ``yc``, ``xc`` are 1-D cell coordinates; ``spacing`` the node spacing in the same units.
    The value at a cell depends only on its coordinates and ``key``.
    """
    fy = np.asarray(yc, dtype=np.float64) / spacing
    fx = np.asarray(xc, dtype=np.float64) / spacing
    iy = np.floor(fy).astype(np.int64)
    ix = np.floor(fx).astype(np.int64)
    wy = (fy - iy)[:, None]
    wx = (fx - ix)[None, :]
    iy0, iy1 = int(iy.min()), int(iy.max()) + 1
    ix0, ix1 = int(ix.min()), int(ix.max()) + 1
    z = _node_normals(key, iy0, iy1, ix0, ix1, n_members, n_vars)
    ry = (iy - iy0)[:, None]
    rx = (ix - ix0)[None, :]
    w00 = (1 - wy) * (1 - wx)
    w01 = (1 - wy) * wx
    w10 = wy * (1 - wx)
    w11 = wy * wx
    v = (
        w00 * z[..., ry, rx]
        + w01 * z[..., ry, rx + 1]
        + w10 * z[..., ry + 1, rx]
        + w11 * z[..., ry + 1, rx + 1]
    )
    return v / np.sqrt(w00**2 + w01**2 + w10**2 + w11**2)


def _coords_1d(yb, xb):
    """Row and column coordinates from apply_ufunc blocks broadcast as (..., ny, 1), (..., 1, nx)."""
    yb = np.asarray(yb)
    xb = np.asarray(xb)
    shape = np.broadcast_shapes(yb.shape, xb.shape)
    y = np.broadcast_to(yb, shape).reshape(-1, shape[-2], shape[-1])[0, :, 0]
    x = np.broadcast_to(xb, shape).reshape(-1, shape[-2], shape[-1])[0, 0, :]
    return y, x, shape


def _field_block(yb, xb, *, spacing, seed, purpose, index, n_members, n_vars):
    y, x, shape = _coords_1d(yb, xb)
    v = correlated_field(y, x, spacing, _key(seed, purpose, index), n_members, n_vars)
    v = np.moveaxis(v, (0, 1), (-2, -1))  # (ny, nx, member, var)
    return np.broadcast_to(v, (*shape, n_members, n_vars)).copy()


def _ar1_block(*args, spacing, seed, chol, phi, std, mult, n_members):
    """Advance the AR(1) perturbations through the forcing steps of one spatial block.

    args: forcing values of each perturbed variable (..., time), AR(1) states (..., member)
    for each, y and x coordinate blocks, step indices (time,). Returns perturbed forcing
    (..., member, time) per variable then new AR(1) states (..., member) per variable.
    """
    nv = len(std)
    fvals = args[:nv]
    states = args[nv : 2 * nv]
    yb, xb, steps = args[2 * nv], args[2 * nv + 1], args[2 * nv + 2]
    y, x, _ = _coords_1d(yb, xb)
    steps = np.asarray(steps).reshape(-1)
    nt = steps.shape[0]
    shape = np.broadcast_shapes(
        *(np.shape(f)[:-1] for f in fvals),
        *(np.shape(s)[:-1] for s in states),
        np.shape(yb),
        np.shape(xb),
    )
    xs = np.stack([np.broadcast_to(s, (*shape, n_members)) for s in states], axis=-1).astype(
        np.float64
    )
    outs = [np.empty((*shape, n_members, nt), dtype=np.result_type(f, np.float32)) for f in fvals]
    q = np.sqrt(1.0 - phi * phi)
    for t in range(nt):
        z = correlated_field(
            y, x, spacing, _key(seed, _PURPOSE["forcing"], int(steps[t])), n_members, nv
        )
        z = np.moveaxis(z, (0, 1), (-2, -1))  # (ny, nx, member, var)
        w = z @ chol.T
        xs = phi * xs + q * np.broadcast_to(w, xs.shape)
        for v in range(nv):
            f = np.broadcast_to(np.asarray(fvals[v])[..., t], shape)[..., None]
            if mult[v]:
                outs[v][..., t] = f * np.exp(std[v] * xs[..., v] - 0.5 * std[v] ** 2)
            else:
                outs[v][..., t] = f + std[v] * xs[..., v]
    return (*outs, *(xs[..., v].copy() for v in range(nv)))


# ------------------------------------------------------------------ xarray layer
def _spacing(obj, length_scale_km: float) -> float:
    ydim, _ = spatial_dims(obj)
    # rotated-pole rlat/rlon are degrees of a great-circle frame, like lat
    return length_scale_km / _KM_PER_DEG if ydim in ("lat", "rlat") else length_scale_km * 1000.0


def _grid_coords(obj):
    """Spatial dims and their 1-D coordinates as plain variables (not indexes: xarray
    never chunks an index, and the fields generated from them must follow the chunks of
    the state, see :func:`_match_chunks`)."""
    ydim, xdim = spatial_dims(obj)

    def plain(dim):
        if dim in obj.coords:
            return xr.DataArray(np.asarray(obj[dim].values), dims=dim)
        return xr.DataArray(np.arange(obj.sizes[dim], dtype=float), dims=dim)

    return ydim, xdim, plain(ydim), plain(xdim)


def _match_chunks(coord: xr.DataArray, like) -> xr.DataArray:
    dim = coord.dims[0]
    chunks = getattr(like, "chunksizes", {}).get(dim)
    return coord.chunk({dim: chunks}) if chunks else coord


def _random_fields(like, n_members, n_vars, spacing, seed, purpose, index):
    """Lazy (member, var, y, x)-indexed fields on the grid of ``like`` → DataArray."""
    ydim, xdim, yc, xc = _grid_coords(like)
    yc, xc = _match_chunks(yc, like), _match_chunks(xc, like)
    res = apply_kernel(
        _field_block,
        yc,
        xc,
        output_core_dims=(("member", "_var"),),
        output_dtypes=[np.float64],
        output_sizes={"member": n_members, "_var": n_vars},
        kwargs={
            "spacing": spacing,
            "seed": seed,
            "purpose": purpose,
            "index": index,
            "n_members": n_members,
            "n_vars": n_vars,
        },
    )
    return res.transpose("member", "_var", ydim, xdim)


def _time_index(time_value, dt_s: float) -> int:
    t = np.datetime64(time_value, "ns").astype(np.int64)
    return int(t // round(dt_s * 1e9))


def perturb_forcing(
    forcing: xr.Dataset, ensemble: xr.Dataset, config: ForcingPerturbation, seed: int, dt_s: float
):
    """Perturb ``forcing`` for every member, advancing the AR(1) states ``pert_<var>``.

    Returns ``(forcing with a member dim on the perturbed variables, dict of new pert
    states)``. Lazy; spatial chunks free, ``time`` and ``member`` one chunk.
    """
    if "member" not in ensemble.dims:
        raise DimensionError(
            "forcing perturbation needs an ensemble state with a 'member' dimension"
        )
    n_members = ensemble.sizes["member"]
    names = config.variables
    missing = [f"pert_{v}" for v in names if f"pert_{v}" not in ensemble]
    if missing:
        raise DimensionError(
            f"ensemble lacks the AR(1) perturbation states {missing}; create it with perturb()"
        )
    ydim, xdim, yc, xc = _grid_coords(forcing)
    like = ensemble[f"pert_{names[0]}"]
    yc, xc = _match_chunks(yc, like), _match_chunks(xc, like)
    steps = xr.DataArray(
        np.array([_time_index(t, dt_s) for t in forcing["time"].values], dtype=np.int64),
        dims="time",
    )
    phi = float(np.exp(-dt_s / (config.time_scale_h * 3600.0)))
    fvals = [forcing[v] for v in names]
    states = [ensemble[f"pert_{v}"] for v in names]
    outs = apply_kernel(
        _ar1_block,
        *fvals,
        *states,
        yc,
        xc,
        steps,
        input_core_dims=[["time"]] * len(names) + [["member"]] * len(names) + [[], [], ["time"]],
        output_core_dims=[["member", "time"]] * len(names) + [["member"]] * len(names),
        output_dtypes=[np.result_type(f.dtype, np.float32) for f in fvals]
        + [np.float64] * len(names),
        kwargs={
            "spacing": _spacing(forcing, config.length_scale_km),
            "seed": seed,
            "chol": config.cholesky(),
            "phi": phi,
            "std": tuple(float(config.std[v]) for v in names),
            "mult": tuple(v in config.multiplicative for v in names),
            "n_members": n_members,
        },
    )
    nv = len(names)
    out = forcing.copy()
    for i, v in enumerate(names):
        out[v] = outs[i].transpose("member", "time", ydim, xdim).assign_attrs(forcing[v].attrs)
    new_states = {
        f"pert_{v}": outs[nv + i]
        .transpose("member", ydim, xdim)
        .assign_attrs(ensemble[f"pert_{v}"].attrs)
        for i, v in enumerate(names)
    }
    return out, new_states


def perturb(
    state: xr.Dataset,
    n_members: int,
    forcing_perturbation: ForcingPerturbation | None = None,
    parameter_perturbation: dict | None = None,
    params: xr.Dataset | None = None,
    state_perturbation: dict | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """Build an ensemble of ``n_members`` from a deterministic model state.

    Parameters
    ----------
    state : model state Dataset (``sm``, ``tsoil``, ``swe``, ``canopy_water``) without a
        ``member`` dimension.
    n_members : ensemble size.
    forcing_perturbation : :class:`ForcingPerturbation`; adds the AR(1) states
        ``pert_<var>`` drawn from their stationary distribution, and records the settings
        and the seed in the attributes so that :func:`xldas.models.step` perturbs the
        forcing of every later step.
    parameter_perturbation : ``{name: std}``: each named parameter of ``params`` becomes a
        member-dependent variable of the ensemble, multiplied by a mean-one log-normal,
        spatially correlated factor (state augmentation; ``step`` uses it in place of
        ``params[name]``).
    params : parameter Dataset (needed for ``parameter_perturbation`` and to keep perturbed
        soil moisture within [θ_r, θ_s]).
    state_perturbation : ``{"sm": std (m3 m-3, additive), "tsoil": std (K, additive),
        "swe": std, "canopy_water": std (log, multiplicative)}``.
    seed : integer seed of the counter-based generator.

    Returns
    -------
    Ensemble state with a ``member`` dimension (one chunk when dask-backed).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> st = xr.Dataset({"swe": (("lat", "lon"), np.zeros((2, 3)))},
    ...                 coords={"lat": [40.0, 40.1], "lon": [100.0, 100.1, 100.2]})
    >>> ens = perturb(st, 4, forcing_perturbation=ForcingPerturbation(), seed=1)
    >>> dict(ens.pert_precip.sizes)
    {'member': 4, 'lat': 2, 'lon': 3}
    """
    if "member" in state.dims:
        raise DimensionError("state already has a 'member' dimension")
    if int(n_members) < 1:
        raise ParameterRangeError(f"n_members must be >= 1, got {n_members!r}")
    n_members = int(n_members)
    ydim, xdim = spatial_dims(state)
    index = _time_index(state["time"].values, 1.0) if "time" in state.coords else 0
    ens = state.expand_dims(member=np.arange(n_members))
    chunked = any(v.chunks is not None for v in state.data_vars.values())
    like = next(iter(state.data_vars.values()))
    if forcing_perturbation is not None:
        fp = forcing_perturbation
        z = _random_fields(
            like,
            n_members,
            len(fp.variables),
            _spacing(state, fp.length_scale_km),
            seed,
            _PURPOSE["init"],
            index,
        )
        w = xr.dot(z, xr.DataArray(fp.cholesky(), dims=("_v", "_var")), dim="_var")
        for i, v in enumerate(fp.variables):
            ens[f"pert_{v}"] = (
                w.isel(_v=i)
                .drop_vars("_v", errors="ignore")
                .transpose("member", ydim, xdim)
                .assign_attrs(
                    units="1",
                    long_name=f"AR(1) forcing perturbation state of {v} (standard normal)",
                )
            )
        ens.attrs[ATTR] = fp.to_json()
        ens.attrs["xldas_seed"] = int(seed)
    if parameter_perturbation:
        if params is None:
            raise ParameterRangeError("parameter_perturbation needs params=")
        for name, sd in parameter_perturbation.items():
            if name not in params:
                raise ParameterRangeError(f"parameter {name!r} is not in params")
            code = zlib.crc32(name.encode())
            z = _random_fields(
                like, n_members, 1, _spacing(state, 50.0), seed, _PURPOSE["parameter"], code
            )
            z = z.isel(_var=0)
            new = params[name].reset_coords(drop=True) * np.exp(sd * z - 0.5 * sd**2)
            order = ["member"] + [d for d in params[name].dims]
            ens[name] = new.transpose(*order).assign_attrs(params[name].attrs)
    if state_perturbation:
        for k, (name, sd) in enumerate(state_perturbation.items()):
            if name not in state:
                raise ParameterRangeError(f"state variable {name!r} is not in the state")
            nl = state.sizes.get("layer", 1) if "layer" in state[name].dims else 1
            z = _random_fields(
                like, n_members, nl, _spacing(state, 50.0), seed, _PURPOSE["state"], index + k
            )
            if "layer" in state[name].dims:
                z = z.rename(_var="layer")
            else:
                z = z.isel(_var=0)
            if name in ("sm", "tsoil"):
                new = state[name] + sd * z
                if name == "sm" and params is not None:
                    new = new.clip(params["theta_r"], params["theta_s"])
            else:
                new = state[name] * np.exp(sd * z - 0.5 * sd**2)
            ens[name] = (
                new.astype(state[name].dtype)
                .transpose(*ens[name].dims)
                .assign_attrs(state[name].attrs)
            )
    if chunked:
        ens = ens.chunk({"member": -1})
    return add_history(ens, f"perturb(n_members={n_members}, seed={seed})")
