"""Parameter calibration against stations or retrievals with SciPy's differential evolution.

:func:`calibrate` wraps :func:`scipy.optimize.differential_evolution` (no hand-written
optimiser): each generation's candidate parameter sets are evaluated in parallel on Dask
(``dask.delayed`` on the active scheduler, or a ``distributed.Client``), or — when the
model can run several parameter sets at once, like the xldas land model with a
``member`` dimension — in one vectorised call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from xldas.errors import ParameterRangeError, UnknownOptionError
from xldas.validation.metrics import skill

__all__ = ["CalibrationResult", "calibrate"]

#: objectives: metric name -> sign (minimise sign * metric)
OBJECTIVES = {"rmse": 1.0, "ubrmse": 1.0, "kge": -1.0, "kge_prime": -1.0, "nse": -1.0, "r": -1.0}


@dataclass
class CalibrationResult:
    """Best parameters, objective value and the optimiser's history."""

    params: dict
    objective: float
    metric: str
    nfev: int
    success: bool
    message: str
    history: list = field(default_factory=list)


def _score(sim: xr.DataArray, obs: xr.DataArray, metric: str, dim: str) -> float:
    val = float(skill(sim, obs, dim=dim, metrics=[metric])[metric])
    return OBJECTIVES[metric] * val if np.isfinite(val) else np.inf


def calibrate(
    simulate: Callable,
    bounds: Mapping[str, tuple[float, float]],
    obs: xr.DataArray,
    objective: str | Callable = "kge",
    dim: str = "time",
    vectorized: bool = False,
    client=None,
    maxiter: int = 20,
    popsize: int = 8,
    seed: int = 0,
    tol: float = 1e-3,
    polish: bool = False,
) -> CalibrationResult:
    """Calibrate parameters of ``simulate`` against ``obs`` by differential evolution.

    Parameters
    ----------
    simulate : ``simulate({name: value}) -> DataArray`` comparable with ``obs``; with
        ``vectorized=True`` it is called as ``simulate({name: 1-D array})`` for a whole
        population and returns a DataArray with a leading ``member`` dimension.
    bounds : ``{name: (low, high)}`` search box.
    obs : reference series (station, retrieval); NaN = missing.
    objective : a metric of :func:`xldas.validation.skill` (``"kge"``, ``"nse"``,
        ``"rmse"``, ``"ubrmse"``, ``"kge_prime"``, ``"r"``) or a callable
        ``f(sim, obs) -> float`` to minimise.
    dim : dimension along which the metric is computed.
    vectorized : evaluate each generation in one ``simulate`` call (SciPy's
        ``vectorized=True``, ``updating="deferred"``).
    client : a ``distributed.Client``; its ``map``/``gather`` evaluate the candidates. When
        None and not vectorised, candidates are evaluated with ``dask.delayed`` on the
        current Dask scheduler.
    maxiter, popsize, seed, tol, polish : passed to
        :func:`scipy.optimize.differential_evolution`.

    Returns
    -------
    :class:`CalibrationResult` (``params``, ``objective`` as the metric's value — e.g.
    the KGE itself, not its negative — ``nfev``, ``history`` of best values per generation).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t = np.arange(50.0)
    >>> obs = xr.DataArray(2.0 * np.sin(t / 5) + 1.0, dims="time")
    >>> sim = lambda p: p["a"] * np.sin(xr.DataArray(t, dims="time") / 5) + p["b"]
    >>> res = calibrate(sim, {"a": (0, 5), "b": (-3, 3)}, obs, objective="rmse", maxiter=30,
    ...                 popsize=6, seed=1, polish=True)
    >>> round(res.params["a"], 2), round(res.params["b"], 2)
    (2.0, 1.0)
    """
    from scipy.optimize import differential_evolution

    names = list(bounds)
    box = [tuple(map(float, bounds[n])) for n in names]
    for n, (lo, hi) in zip(names, box):
        if not hi > lo:
            raise ParameterRangeError(
                f"calibration bounds of {n!r} must have low < high, got {(lo, hi)}"
            )
    if callable(objective):
        metric = getattr(objective, "__name__", "objective")

        def score(sim):
            return float(objective(sim, obs))
    else:
        if objective not in OBJECTIVES:
            raise UnknownOptionError("calibration objective", objective, OBJECTIVES)
        metric = objective

        def score(sim):
            return _score(sim, obs, objective, dim)

    def one(x):
        return score(simulate(dict(zip(names, map(float, x)))))

    history: list[float] = []

    def callback(intermediate_result):
        history.append(float(intermediate_result.fun))

    kwargs = {
        "bounds": box,
        "maxiter": maxiter,
        "popsize": popsize,
        "seed": seed,
        "tol": tol,
        "polish": polish,
        "callback": callback,
    }
    if vectorized:

        def batch(xs):  # xs: (n_params, S)
            sims = simulate({n: np.asarray(xs[i]) for i, n in enumerate(names)})
            return np.array([score(sims.isel(member=k)) for k in range(xs.shape[1])])

        res = differential_evolution(batch, vectorized=True, updating="deferred", **kwargs)
    else:
        if client is not None:

            def workers(func, xs):
                return client.gather(client.map(func, list(xs), pure=False))
        else:
            import dask

            def workers(func, xs):
                return list(dask.compute(*[dask.delayed(func)(x) for x in xs]))

        res = differential_evolution(one, workers=workers, updating="deferred", **kwargs)
    best = dict(zip(names, map(float, res.x)))
    sign = OBJECTIVES.get(metric, 1.0)
    return CalibrationResult(
        params=best,
        objective=float(res.fun) * sign,
        metric=metric,
        nfev=int(res.nfev),
        success=bool(res.success),
        message=str(res.message),
        history=[h * sign for h in history],
    )
