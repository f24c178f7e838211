"""Filters as small dataclasses of hyperparameters with an array-level analysis.

Array-level contract (plain NumPy arrays; leading axes are pixels or anything else):

- ensemble filters ``EnKF``, ``ETKF``, ``PF``:
  ``analysis(E, HE, y, R, rng=None)`` with ``E`` (..., N, n), ``HE`` (..., N, m),
  ``y`` (..., m) (NaN = no observation) and ``R`` the observation-error variances
  (..., m) or a full covariance (..., m, m) (recognised by having one more axis than
  ``y``, or by being one (m, m) matrix when ``y`` has another shape); returns the analysis ensemble of ``E``'s shape. ``PF.analysis`` also takes
  and returns ``weights`` (..., N).
- ``LETKF.analysis(E, HE, y, R, state_pos, obs_pos, distance, rng=None)`` where
  ``distance(state_pos, obs_pos)`` returns the (n, m) distances (use
  :func:`periodic_distance` for a ring, :func:`great_circle_distance` for lat/lon).
- sigma-point filters ``UKF``, ``CDKF``, ``SRUKF``, ``SRCDKF``:
  ``X, wm, wc = f.sigma_points(mean, cov=..., sqrt_cov=...)``;
  after propagating ``X`` through the model,
  ``X, wm, wc = f.analysis(X, wm, wc, h, y, R, Q=None)`` with ``h`` mapping
  (..., 2n+1, n) points to (..., 2n+1, m) observations; ``f.moments(X, wm, wc)``
  gives the mean and covariance.

Conventions (DESIGN.md): ``inflation`` multiplies the forecast anomalies (covariance ×
inflation²); ``rtpp``/``rtps`` relax towards the forecast anomalies; ``loc_radius`` is
DAPPER's ``loc_rad`` (Gaspari–Cohn half-width ``1.82 * loc_radius``); ``gross_error``
``k`` rejects observations whose innovation exceeds ``k*sqrt(HPH^T + R)``.

Examples
--------
>>> import numpy as np
>>> from xldas.filters import EnKF, ETKF
>>> rng = np.random.default_rng(0)
>>> E = rng.normal(size=(100, 3))           # 100 members, 3 state variables
>>> HE = E[:, :1]                            # observe the first variable
>>> Ea = ETKF().analysis(E, HE, np.array([0.5]), np.array([0.1]))
>>> Ea.shape
(100, 3)
>>> bool(abs(Ea[:, 0].mean() - 0.5) < abs(E[:, 0].mean() - 0.5))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.special import ndtr

from xldas.errors import DimensionError, FilterError, ObservationError, UnknownOptionError
from xldas.filters import _kernels as K
from xldas.filters import _local as L

__all__ = [
    "CDKF",
    "ETKF",
    "LETKF",
    "PF",
    "SRCDKF",
    "SRUKF",
    "UKF",
    "EnKF",
    "great_circle_distance",
    "periodic_distance",
]

_ENGINES = ("numba", "numpy")


# ------------------------------------------------------------------ distances
def periodic_distance(period: float) -> Callable:
    """Distance function on a periodic 1-D domain (e.g. the Lorenz-96 ring).

    Examples
    --------
    >>> periodic_distance(40)(np.array([0.0, 39.0]), np.array([1.0])).tolist()
    [[1.0], [2.0]]
    """

    def distance(a, b):
        d = np.abs(np.asarray(a, float)[:, None] - np.asarray(b, float)[None, :]) % period
        return np.minimum(d, period - d)

    return distance


def great_circle_distance(a, b):
    """Great-circle distances in km between (n, 2) and (m, 2) arrays of (lat, lon) degrees."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    lat1, lon1 = np.radians(a[:, 0])[:, None], np.radians(a[:, 1])[:, None]
    lat2, lon2 = np.radians(b[:, 0])[None, :], np.radians(b[:, 1])[None, :]
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * K.EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(h)))


# -------------------------------------------------------------- input handling
def _as_float(a):
    return np.asarray(a, dtype=np.float64)


def prepare_observations(HE, y, R, gross_error=np.inf, weights=None):
    """Validate, whiten a full ``R`` and screen the observations.

    Returns ``(HE, d, rinv, used, rejected)`` where a full covariance has been turned
    into unit variances by its Cholesky factor (missing observations decoupled first).
    Raises :class:`ObservationError` for a non-positive or missing error of a present
    observation.
    """
    HE, y, R = _as_float(HE), _as_float(y), _as_float(R)
    m = HE.shape[-1]
    if y.shape[-1:] != (m,):
        raise DimensionError(f"y has shape {y.shape}; its last axis must have m={m} observations")
    present = np.isfinite(y)
    full = R.ndim == y.ndim + 1 or (R.ndim == 2 and R.shape == (m, m) and R.shape != y.shape)
    if full:  # full covariance (a single (m, m) matrix is shared by all pixels)
        if R.shape[-2:] != (m, m):
            raise DimensionError(f"full R must end in ({m}, {m}); got {R.shape}")
        R = np.broadcast_to(R, (*y.shape, m))
        diag = np.diagonal(R, axis1=-2, axis2=-1)
        _check_variances(diag, present)
        both = present[..., :, None] & present[..., None, :]
        eye = np.eye(m, dtype=bool)
        Rd = np.where(both | eye, R, 0.0)
        Rd = np.where(eye & ~present[..., :, None], 1.0, Rd)
        try:
            L = np.linalg.cholesky(Rd)
        except np.linalg.LinAlgError:
            raise ObservationError(
                "observation-error covariance R is not positive definite"
            ) from None
        yf = np.where(present, y, 0.0)
        yw = np.linalg.solve(L, yf[..., None])[..., 0]
        HE = np.swapaxes(np.linalg.solve(L, np.swapaxes(HE, -1, -2)), -1, -2)
        y = np.where(present, yw, np.nan)
        R = np.ones(y.shape)
    else:
        R = np.broadcast_to(R, y.shape)
        _check_variances(R, present)
    if weights is None:
        d, rinv, used, rejected = K.screen_observations(HE, y, R, gross_error)
    else:
        d, rinv, used, rejected = _screen_weighted(HE, y, R, gross_error, *weights)
    return HE, d, rinv, used, rejected


def _check_variances(R, present):
    bad = present & ~(R > 0)
    if np.any(bad):
        what = "missing (NaN)" if np.any(present & np.isnan(R)) else "not positive"
        raise ObservationError(
            f"observation-error variance R is {what} for {int(bad.sum())} present observation(s)"
        )


def _screen_weighted(HE, y, R, gross, wm, wc):
    """:func:`screen_observations` with weighted mean/variance (sigma points, particles)."""
    hbar = np.einsum("...p,...pm->...m", wm, HE)
    innov = y - hbar
    valid = np.isfinite(y) & np.isfinite(R) & np.isfinite(hbar)
    with np.errstate(invalid="ignore"):
        if np.isfinite(gross):
            var = np.einsum("...p,...pm->...m", wc, (HE - hbar[..., None, :]) ** 2)
            rejected = valid & ~(np.abs(innov) <= gross * np.sqrt(np.abs(var) + R))
        else:
            rejected = np.zeros(valid.shape, bool)
        used = valid & ~rejected
        d = np.where(used, innov, 0.0)
        rinv = np.where(used, 1.0 / np.where(used, R, 1.0), 0.0)
    return d, rinv, used, rejected


def _check_ensemble(E, HE, min_members=2, name="ensemble"):
    E, HE = _as_float(E), _as_float(HE)
    if E.ndim < 2 or HE.ndim < 2:
        raise DimensionError("E must be (..., N, n) and HE (..., N, m)")
    N = E.shape[-2]
    if HE.shape[-2] != N:
        raise DimensionError(f"E has {N} members but HE has {HE.shape[-2]}")
    if N < min_members:
        raise FilterError(f"{name} needs at least {min_members} members; got N={N}")
    return E, HE


def _check_number(name, value):
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        unit = " (km on geographic grids)" if name == "loc_radius" else ""
        raise FilterError(
            f"{name} must be a number{unit}; got {value!r} of type {type(value).__name__}"
        )


def _check_positive(name, value, allow_zero=False):
    _check_number(name, value)
    ok = value >= 0 if allow_zero else value > 0
    if not (np.isfinite(value) and ok) and not (name == "gross_error" and value == np.inf):
        raise FilterError(f"{name} must be {'>= 0' if allow_zero else '> 0'}; got {value!r}")


def _check_common(f):
    if f.engine not in _ENGINES:
        raise UnknownOptionError("engine", f.engine, _ENGINES)
    _check_positive("inflation", f.inflation)
    for name in ("rtpp", "rtps"):
        v = getattr(f, name)
        _check_number(name, v)
        if not (0.0 <= v <= 1.0 or (name == "rtps" and v > 0)):
            raise FilterError(f"{name} must be in [0, 1]; got {v!r}")
    if f.rtpp and f.rtps:
        raise FilterError("use either rtpp or rtps, not both")
    _check_positive("gross_error", f.gross_error)


# ------------------------------------------------------------ ensemble filters
@dataclass(frozen=True)
class EnKF:
    """Stochastic EnKF with perturbed observations (Burgers, van Leeuwen & Evensen 1998).

    Parameters
    ----------
    inflation : multiplies the forecast anomalies (DAPPER's ``infl``).
    rtpp, rtps : relaxation to prior perturbations / spread (0 = off).
    gross_error : ``k`` of the gross-error check (``inf`` = off).
    centred : centre the observation perturbations to zero ensemble mean.
    loc_radius : ``None`` (default): every observation given to a pixel (or to the
        array-level analysis) updates its whole state. A number: localised EnKF with
        Gaspari–Cohn R-localisation as for :class:`LETKF` (half-width
        ``1.82 * loc_radius``, km on geographic grids, distance units on plain arrays):
        on grids each pixel is analysed with the observations of its neighbours within
        the support, their ``R^-1`` multiplied by the taper and their perturbations
        scaled to the localised variance (:mod:`xldas.filters._local`).
    engine : ``"numba"`` (gufunc kernels) or ``"numpy"`` (references).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> E = rng.normal(1.0, 0.5, size=(4, 40, 2))       # 4 pixels, 40 members, 2 states
    >>> Ea = EnKF(inflation=1.02).analysis(E, E[..., :1], np.full((4, 1), 1.2), np.full((4, 1), 0.05), rng=rng)
    >>> Ea.shape
    (4, 40, 2)

    Localised, on a periodic ring of 40 variables observed everywhere:

    >>> E = rng.normal(size=(20, 40)); pos = np.arange(40.0)
    >>> Ea = EnKF(loc_radius=4).analysis(E, E, np.zeros(40), np.ones(40), rng=rng,
    ...     state_pos=pos, obs_pos=pos, distance=periodic_distance(40))
    >>> Ea.shape
    (20, 40)
    """

    inflation: float = 1.0
    rtpp: float = 0.0
    rtps: float = 0.0
    gross_error: float = np.inf
    centred: bool = True
    loc_radius: float | None = None
    engine: str = "numba"

    name: ClassVar[str] = "enkf"
    min_members: ClassVar[int] = 2

    def __post_init__(self):
        _check_common(self)
        if self.loc_radius is not None:
            _check_positive("loc_radius", self.loc_radius)

    @property
    def half_width(self) -> float:
        """Gaspari–Cohn half-width ``c = 1.82 * loc_radius`` (support ``2c``)."""
        if self.loc_radius is None:
            raise FilterError("EnKF: no loc_radius, hence no localisation half-width")
        return 1.82 * self.loc_radius

    def n_noise(self, N: int, n: int, m: int) -> int:
        """Standard normal numbers per pixel this filter consumes."""
        return N * m

    def analysis(self, E, HE, y, R, rng=None, state_pos=None, obs_pos=None, distance=None):
        """Analysis ensemble (..., N, n); see the module docstring for shapes.

        With ``loc_radius`` set, ``state_pos``, ``obs_pos`` and ``distance`` (as for
        :meth:`LETKF.analysis`) localise the update.
        """
        E, HE = _check_ensemble(E, HE, self.min_members, type(self).__name__)
        noise = _draw(rng, E.shape[:-2], self.n_noise(E.shape[-2], E.shape[-1], HE.shape[-1]))
        local = (state_pos, obs_pos, distance)
        if self.loc_radius is None:
            if any(x is not None for x in local):
                raise FilterError("EnKF: positions and distance need loc_radius to be set")
            return self.update(E, HE, y, R, noise)[0]
        if any(x is None for x in local):
            raise FilterError(
                "EnKF with loc_radius: pass state_pos, obs_pos and distance to analysis()"
            )
        HE, d, rinv, _, _ = prepare_observations(HE, y, R, self.gross_error)
        rho = K.gaspari_cohn(np.asarray(distance(state_pos, obs_pos), float) / self.half_width)
        if rho.shape != (E.shape[-1], HE.shape[-1]):
            raise DimensionError(
                f"distance returned shape {rho.shape}; expected (n, m) = {(E.shape[-1], HE.shape[-1])}"
            )
        eps = self.perturbations(noise, rinv, E.shape[-2])
        a = (self.inflation, self.rtpp, self.rtps)
        if self.engine == "numpy":
            return L.lenkf_taper_reference(E, HE, d, rinv, eps, rho, *a)
        return L.lenkf_taper(E, HE, d, rinv, eps, rho, *a, target=_target(E))

    def perturbations(self, noise, rinv, N):
        """Observation perturbations (..., N, m) from standard normals ``noise`` (..., >= N*m).

        Centred to zero ensemble mean when ``centred``; scaled by the error standard
        deviation ``rinv^-1/2``; zero for unused observations.
        """
        m = rinv.shape[-1]
        z = noise[..., : N * m].reshape(*noise.shape[:-1], N, m)
        if self.centred:
            z = z - z.mean(axis=-2, keepdims=True)
        with np.errstate(divide="ignore"):
            sd = np.where(rinv > 0, 1.0 / np.sqrt(np.where(rinv > 0, rinv, 1.0)), 0.0)
        return z * sd[..., None, :]

    def update(self, E, HE, y, R, noise, weights=None):
        """Core of :meth:`analysis` with the random numbers given: ``(Ea, None)``."""
        E, HE = _check_ensemble(E, HE, self.min_members, type(self).__name__)
        HE, d, rinv, _, _ = prepare_observations(HE, y, R, self.gross_error)
        return self._update(E, HE, d, rinv, noise), None

    def _update(self, E, HE, d, rinv, noise):
        m = HE.shape[-1]
        eps = self.perturbations(noise, rinv, E.shape[-2])
        a = (self.inflation, self.rtpp, self.rtps)
        if self.engine == "numpy":
            return K.enkf_reference(E, HE, d, rinv, eps, *a)
        if m == 1:
            return K.enkf_1obs(
                E, HE[..., 0], d[..., 0], rinv[..., 0], eps[..., 0], *a, target=_target(E)
            )
        return K.enkf_general(E, HE, d, rinv, eps, *a, target=_target(E))


@dataclass(frozen=True)
class ETKF:
    """Ensemble transform KF, symmetric square root (Bishop et al. 2001; Hunt et al. 2007).

    Parameters as :class:`EnKF` (no observation perturbations). Needs N >= 3.

    Examples
    --------
    >>> import numpy as np
    >>> E = np.random.default_rng(2).normal(size=(24, 5))
    >>> Ea = ETKF(inflation=1.013).analysis(E, E[:, ::2], np.zeros(3), np.ones(3))
    >>> Ea.shape
    (24, 5)
    """

    inflation: float = 1.0
    rtpp: float = 0.0
    rtps: float = 0.0
    gross_error: float = np.inf
    engine: str = "numba"

    name: ClassVar[str] = "etkf"
    min_members: ClassVar[int] = 3

    def __post_init__(self):
        _check_common(self)

    def n_noise(self, N: int, n: int, m: int) -> int:
        return 0

    def analysis(self, E, HE, y, R, rng=None):
        """Analysis ensemble (..., N, n)."""
        return self.update(E, HE, y, R, None)[0]

    def update(self, E, HE, y, R, noise=None, weights=None):
        E, HE = _check_ensemble(E, HE, self.min_members, type(self).__name__)
        HE, d, rinv, _, _ = prepare_observations(HE, y, R, self.gross_error)
        return self._update(E, HE, d, rinv, noise), None

    def _update(self, E, HE, d, rinv, noise=None):
        a = (self.inflation, self.rtpp, self.rtps)
        if self.engine == "numpy":
            return K.etkf_reference(E, HE, d, rinv, *a)
        if HE.shape[-1] == 1:
            return K.etkf_1obs(E, HE[..., 0], d[..., 0], rinv[..., 0], *a, target=_target(E))
        return K.etkf_general(E, HE, d, rinv, *a, target=_target(E))


@dataclass(frozen=True)
class LETKF:
    """Local ETKF with Gaspari–Cohn R-localisation (Hunt, Kostelich & Szunyogh 2007).

    Each state element (on grids: each pixel's column) is analysed with the
    observations within the GC support, their ``R^-1`` multiplied by
    ``GC(dist / (1.82 * loc_radius))``. ``loc_radius`` is in the units of the distance
    function (km on geographic grids, grid units on plain arrays).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> E = rng.normal(size=(7, 40))
    >>> pos = np.arange(40.0)
    >>> Ea = LETKF(inflation=1.04, loc_radius=4).analysis(
    ...     E, E, np.zeros(40), np.ones(40), pos, pos, periodic_distance(40))
    >>> Ea.shape
    (7, 40)
    """

    inflation: float = 1.0
    loc_radius: float = 1.0
    rtpp: float = 0.0
    rtps: float = 0.0
    gross_error: float = np.inf
    engine: str = "numba"

    name: ClassVar[str] = "letkf"
    min_members: ClassVar[int] = 3

    def __post_init__(self):
        _check_common(self)
        _check_positive("loc_radius", self.loc_radius)

    @property
    def half_width(self) -> float:
        """Gaspari–Cohn half-width ``c = 1.82 * loc_radius`` (support ``2c``)."""
        return 1.82 * self.loc_radius

    def n_noise(self, N: int, n: int, m: int) -> int:
        return 0

    def taper(self, dist):
        """Gaspari–Cohn weights for distances ``dist``."""
        return K.gaspari_cohn(np.asarray(dist, float) / self.half_width)

    def analysis(self, E, HE, y, R, state_pos, obs_pos, distance, rng=None):
        """Analysis ensemble (..., N, n) with localisation by ``distance``."""
        E, HE = _check_ensemble(E, HE, self.min_members, "LETKF")
        HE, d, rinv, _, _ = prepare_observations(HE, y, R, self.gross_error)
        rho = self.taper(distance(state_pos, obs_pos))
        if rho.shape != (E.shape[-1], HE.shape[-1]):
            raise DimensionError(
                f"distance returned shape {rho.shape}; expected (n, m) = {(E.shape[-1], HE.shape[-1])}"
            )
        a = (self.inflation, self.rtpp, self.rtps)
        if self.engine == "numpy":
            return K.letkf_taper_reference(E, HE, d, rinv, rho, *a)
        return K.letkf_taper(E, HE, d, rinv, rho, *a, target=_target(E))


@dataclass(frozen=True)
class PF:
    """Bootstrap (SIR) particle filter (Gordon, Salmond & Smith 1993).

    Weights are multiplied by the Gaussian likelihood; when the effective sample size
    ``1/sum(w^2)`` falls to ``resample_threshold * N`` or below, particles are
    resampled systematically and duplicated particles are jittered with
    ``reg * bandwidth * chol(weighted covariance)`` (Musso et al. 2001). ``bandwidth``
    is ``"scott"`` (``N^(-1/(n+4))``, as DAPPER) or ``"silverman"``
    (``[4/(N(n+2))]^(1/(n+4))``, SCIENCE.md §C12).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(4)
    >>> E = rng.normal(size=(100, 3)); w = np.full(100, 0.01)
    >>> Ea, wa = PF(reg=2.4, resample_threshold=0.3).analysis(E, E[:, :1], np.array([2.0]), np.array([0.1]), w, rng=rng)
    >>> round(float(wa.sum()), 12)
    1.0
    """

    reg: float = 0.0
    resample_threshold: float = 0.5
    bandwidth: str = "scott"
    gross_error: float = np.inf
    engine: str = "numba"

    name: ClassVar[str] = "pf"
    min_members: ClassVar[int] = 2

    def __post_init__(self):
        if self.engine not in _ENGINES:
            raise UnknownOptionError("engine", self.engine, _ENGINES)
        if self.bandwidth not in ("scott", "silverman"):
            raise UnknownOptionError("bandwidth", self.bandwidth, ("scott", "silverman"))
        _check_positive("reg", self.reg, allow_zero=True)
        if not 0.0 <= self.resample_threshold <= 1.0:
            raise FilterError(
                f"resample_threshold must be in [0, 1]; got {self.resample_threshold}"
            )
        _check_positive("gross_error", self.gross_error)

    def n_noise(self, N: int, n: int, m: int) -> int:
        return 1 + N * n

    def analysis(self, E, HE, y, R, weights=None, rng=None):
        """Return ``(E_a, weights_a)``; ``weights`` (..., N) default uniform."""
        E, HE = _check_ensemble(E, HE, 2, "PF")
        noise = _draw(rng, E.shape[:-2], self.n_noise(E.shape[-2], E.shape[-1], HE.shape[-1]))
        Ea, wa, _ = self.update(E, HE, y, R, noise, weights)
        return Ea, wa

    def update(self, E, HE, y, R, noise, weights=None):
        """Return ``(E_a, weights_a, ess)`` (ESS after reweighting, before resampling)."""
        E, HE = _check_ensemble(E, HE, 2, "PF")
        N, n = E.shape[-2:]
        if weights is None:
            w = np.full(E.shape[:-1], 1.0 / N)
        else:
            w = np.broadcast_to(_as_float(weights), E.shape[:-1])
            if np.any(~(w >= 0)):
                raise FilterError("particle weights must be finite and >= 0")
            w = w / w.sum(axis=-1, keepdims=True)
        HE, d, rinv, used, _ = prepare_observations(HE, y, R, self.gross_error, (w, w))
        hbar = np.einsum("...p,...pm->...m", w, HE)
        resid = np.where(used[..., None, :], d[..., None, :] + hbar[..., None, :] - HE, 0.0)
        loglik = -0.5 * np.sum(resid**2 * rinv[..., None, :], axis=-1)
        with np.errstate(divide="ignore"):
            logw = np.log(w) + loglik
        logw = logw - logw.max(axis=-1, keepdims=True)
        w = np.exp(logw)
        w = w / w.sum(axis=-1, keepdims=True)
        ess = K.effective_sample_size(w)
        do = ess <= self.resample_threshold * N
        if not np.any(do):
            return E, w, ess
        u = ndtr(noise[..., 0]) / N
        if self.engine == "numpy":
            idx = K.systematic_resample_reference(w, u)
        else:
            idx = K.systematic_resample(w, u, target=_target(E))
        Er = np.take_along_axis(E, idx[..., None], axis=-2)
        if self.reg > 0:
            Er = Er + self._jitter(E, w, idx, noise[..., 1:].reshape(*noise.shape[:-1], N, n))
        Ea = np.where(do[..., None, None], Er, E)
        wa = np.where(do[..., None], 1.0 / N, w)
        return Ea, wa, ess

    def _jitter(self, E, w, idx, z):
        N, n = E.shape[-2:]
        if self.bandwidth == "scott":
            bw = N ** (-1.0 / (n + 4))
        else:
            bw = (4.0 / (N * (n + 2))) ** (1.0 / (n + 4))
        degenerate = (1.0 - np.sum(w * w, axis=-1)) < 1e-12
        wu = np.where(degenerate[..., None], 1.0 / N, w)
        mu = np.einsum("...p,...pn->...n", wu, E)
        A = E - mu[..., None, :]
        ub = 1.0 / (1.0 - np.sum(wu * wu, axis=-1))
        C = ub[..., None, None] * np.einsum("...p,...pi,...pj->...ij", wu, A, A)
        S = K.sqrt_psd(C)
        dup = (idx == np.roll(idx, 1, axis=-1)) | (idx == np.roll(idx, -1, axis=-1))
        return self.reg * bw * dup[..., None] * np.einsum("...ij,...pj->...pi", S, z)


def _target(E) -> str:
    """numba target: threads only pay off with many pixels (a single Lorenz state is serial)."""
    return "parallel" if int(np.prod(E.shape[:-2])) >= 256 else "cpu"


def _draw(rng, batch, k):
    if k == 0:
        return None
    if rng is None:
        rng = np.random.Generator(np.random.Philox())
    elif not isinstance(rng, np.random.Generator):
        rng = np.random.Generator(np.random.Philox(rng))
    return rng.standard_normal((*batch, k))


# -------------------------------------------------------- sigma-point filters
def _diagonal_q(Q, n):
    """Process-noise variances (..., n) for the numba UKF, or None for a full matrix."""
    if Q is None:
        return np.zeros(n)
    Q = np.asarray(Q, dtype=float)
    if Q.ndim >= 2 and Q.shape[-2:] == (n, n):
        return None
    return np.broadcast_to(Q, (*Q.shape[:-1], n)) if Q.ndim else np.full(n, float(Q))


@dataclass(frozen=True, kw_only=True)
class _SigmaPointFilter:
    Q: Any = None
    gross_error: float = np.inf

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""

    def scale(self, n: int) -> float:
        raise NotImplementedError

    def weights(self, n: int):
        """Mean and covariance weights ``(wm, wc)`` of the 2n+1 points."""
        raise NotImplementedError

    def sigma_points(self, mean, cov=None, sqrt_cov=None):
        """Sigma points (..., 2n+1, n) and weights from a mean and (square-root) covariance."""
        mean = _as_float(mean)
        if (cov is None) == (sqrt_cov is None):
            raise FilterError("give exactly one of cov or sqrt_cov")
        S = K.sqrt_psd(_as_float(cov)) if sqrt_cov is None else _as_float(sqrt_cov)
        n = mean.shape[-1]
        wm, wc = self.weights(n)
        return K.sigma_points_from_sqrt(mean, S, self.scale(n)), wm, wc

    @staticmethod
    def moments(X, wm, wc):
        """Weighted mean (..., n) and covariance (..., n, n) of sigma points."""
        X = _as_float(X)
        mean = np.einsum("...p,...pn->...n", wm, X)
        dev = X - mean[..., None, :]
        return mean, np.einsum("...p,...pi,...pj->...ij", wc, dev, dev)

    def predict(self, X, wm, wc, Q=None):
        """Prior sigma points redrawn from the forecast moments (+ Q).

        Returns ``(Xp, mean, sqrt_cov)``.
        """
        X = _as_float(X)
        n = X.shape[-1]
        if X.shape[-2] != 2 * n + 1:
            raise FilterError(
                f"{type(self).__name__} needs 2n+1 = {2 * n + 1} sigma points for n={n}; got {X.shape[-2]}"
            )
        Q = self.Q if Q is None else Q
        if isinstance(Q, dict):
            raise FilterError(
                "Q given per variable name applies to Datasets (xldas.filters.assimilate); "
                "pass variances (n,) or an (n, n) matrix to the array-level filter"
            )
        q = _diagonal_q(Q, n)
        if self.kind == "ukf" and q is not None:  # per-pixel numba kernel, no allocation
            Xp, xm, S, ok = K.ukf_predict(X, wm, wc, q, self.scale(n))
            if np.all(ok > 0):
                return Xp, xm, S
        xm, S = K.sigma_predict(self.kind, X, wm, wc, Q, getattr(self, "h", math.sqrt(3.0)))
        return K.sigma_points_from_sqrt(xm, S, self.scale(n)), xm, S

    def update(self, Xp, xm, S, HX, y, R):
        """Measurement update of prior points: new sigma points and weights."""
        n = Xp.shape[-1]
        wm, wc = self.weights(n)
        HX, d, rinv, _, _ = prepare_observations(HX, y, R, self.gross_error, (wm, wc))
        sr = np.sqrt(rinv)
        ym = np.einsum("...p,...pm->...m", wm, HX)
        Yw = HX * sr[..., None, :]
        yw = (d + ym) * sr
        if self.kind == "ukf" and Yw.shape[-1] == 1:  # per-pixel numba kernel
            Xa, ok = K.ukf_update_1obs(Xp, xm, S, Yw[..., 0], yw[..., 0], wm, wc, self.scale(n))
            if np.all(ok > 0):
                return Xa, wm, wc
        x, Sa = K.sigma_update(
            self.kind, Xp, xm, S, Yw, yw, wm, wc, getattr(self, "h", math.sqrt(3.0))
        )
        return K.sigma_points_from_sqrt(x, Sa, self.scale(n)), wm, wc

    def analysis(self, X, wm, wc, h, y, R, Q=None):
        """Forecast sigma points → analysis sigma points, with observation function ``h``."""
        Xp, xm, S = self.predict(X, wm, wc, Q)
        return self.update(Xp, xm, S, h(Xp), y, R)


@dataclass(frozen=True)
class UKF(_SigmaPointFilter):
    """Unscented KF, scaled form (Julier & Uhlmann 2004; Wan & van der Merwe 2000).

    ``Q`` is the additive process noise (variances (n,) or a full (n, n) matrix).

    Examples
    --------
    >>> import numpy as np
    >>> f = UKF(alpha=1.0, beta=2.0, kappa=0.0)
    >>> X, wm, wc = f.sigma_points(np.zeros(2), cov=np.eye(2))
    >>> Xa, wm, wc = f.analysis(X, wm, wc, lambda x: x[..., :1], np.array([1.0]), np.array([1.0]))
    >>> np.round(f.moments(Xa, wm, wc)[0], 6).tolist()
    [0.5, 0.0]
    """

    alpha: float = 1.0
    beta: float = 2.0
    kappa: float = 0.0

    kind: ClassVar[str] = "ukf"
    name: ClassVar[str] = "ukf"

    def __post_init__(self):
        _check_positive("alpha", self.alpha)

    def scale(self, n):
        lam, _, _ = K.unscented_weights(n, self.alpha, self.beta, self.kappa)
        if n + lam <= 0:
            raise FilterError(f"alpha²(n+kappa) must be > 0; got n={n}, kappa={self.kappa}")
        return math.sqrt(n + lam)

    def weights(self, n):
        _, wm, wc = K.unscented_weights(n, self.alpha, self.beta, self.kappa)
        return wm, wc


@dataclass(frozen=True)
class SRUKF(UKF):
    """Square-root UKF (van der Merwe & Wan 2001): QR and Cholesky rank-one updates."""

    kind: ClassVar[str] = "srukf"
    name: ClassVar[str] = "srukf"


@dataclass(frozen=True)
class CDKF(_SigmaPointFilter):
    """Central-difference KF (Nørgaard et al. 2000; Ito & Xiong 2000), step ``h``."""

    h: float = math.sqrt(3.0)

    kind: ClassVar[str] = "cdkf"
    name: ClassVar[str] = "cdkf"

    def __post_init__(self):
        if not self.h >= 1.0:
            raise FilterError(f"CDKF step h must be >= 1; got {self.h}")

    def scale(self, n):
        return self.h

    def weights(self, n):
        h2 = self.h**2
        wm = np.full(2 * n + 1, 1.0 / (2 * h2))
        wm[0] = (h2 - n) / h2
        return wm, wm.copy()


@dataclass(frozen=True)
class SRCDKF(CDKF):
    """Square-root CDKF (van der Merwe 2004): QR only, all weights non-negative."""

    kind: ClassVar[str] = "srcdkf"
    name: ClassVar[str] = "srcdkf"


FILTERS = {
    "enkf": EnKF,
    "etkf": ETKF,
    "letkf": LETKF,
    "ukf": UKF,
    "cdkf": CDKF,
    "srukf": SRUKF,
    "srcdkf": SRCDKF,
    "pf": PF,
}


def get_filter(method, **kwargs):
    """Filter object from a name (``"enkf"`` ...) or pass a filter object through."""
    if isinstance(method, str):
        key = method.lower().replace("-", "").replace("_", "")
        if key not in FILTERS:
            raise UnknownOptionError("method", method, FILTERS)
        return FILTERS[key](**kwargs)
    if isinstance(method, tuple(FILTERS.values())):
        if kwargs:
            from dataclasses import replace

            return replace(method, **kwargs)
        return method
    raise UnknownOptionError("method", method, FILTERS)
