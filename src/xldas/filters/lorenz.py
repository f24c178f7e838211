"""Lorenz-63 and Lorenz-96 twin experiments run with the xldas filter kernels.

These are the standard test beds of the data-assimilation literature; the setups follow
DAPPER's ``mods/Lorenz96/sakov2008.py`` (Sakov & Oke 2008) and
``mods/Lorenz63/sakov2012.py`` (Sakov et al. 2012):

- Lorenz-96: 40 variables, F = 8, RK4 with dt = 0.05, every variable observed at every
  step with R = I.
- Lorenz-63: σ = 10, ρ = 28, β = 8/3, RK4 with dt = 0.01, all three variables observed
  every 25 steps with R = 2 I.

:func:`twin_experiment` returns the time-averaged analysis RMSE of the (weighted)
ensemble mean after a burn-in. ``PUBLISHED`` holds the RMSE that DAPPER reports for
the benchmark configurations.

Examples
--------
>>> from xldas.filters import EnKF
>>> from xldas.filters.lorenz import LORENZ63, twin_experiment
>>> out = twin_experiment(LORENZ63, EnKF(inflation=1.04), N=10, n_cycles=200, burn_in=50, seed=1)
>>> 0.3 < out["rmse"] < 1.5
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xldas.filters.methods import ETKF, LETKF, PF, EnKF, _SigmaPointFilter, periodic_distance

__all__ = [
    "LORENZ63",
    "LORENZ96",
    "PUBLISHED",
    "TwinSetup",
    "lorenz63_tendency",
    "lorenz96_tendency",
    "rk4",
    "twin_experiment",
]


def lorenz96_tendency(x, forcing=8.0):
    """dx/dt of Lorenz (1996) on the last axis (periodic)."""
    return (np.roll(x, -1, axis=-1) - np.roll(x, 2, axis=-1)) * np.roll(x, 1, axis=-1) - x + forcing


def lorenz63_tendency(x, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    """dx/dt of Lorenz (1963) on the last axis (3 variables)."""
    a, b, c = x[..., 0], x[..., 1], x[..., 2]
    return np.stack([sigma * (b - a), a * (rho - c) - b, a * b - beta * c], axis=-1)


def rk4(tendency, x, dt, nsteps=1):
    """``nsteps`` classical Runge–Kutta steps of ``dx/dt = tendency(x)``."""
    for _ in range(nsteps):
        k1 = tendency(x)
        k2 = tendency(x + 0.5 * dt * k1)
        k3 = tendency(x + 0.5 * dt * k2)
        k4 = tendency(x + dt * k3)
        x = x + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


@dataclass(frozen=True)
class TwinSetup:
    """A twin experiment: model, time step, observation interval and errors."""

    name: str
    tendency: object
    nx: int
    dt: float
    steps_per_obs: int
    obs_var: float
    x0: tuple
    x0_var: float
    spinup_steps: int

    def forecast(self, x):
        """Propagate states (..., nx) over one observation interval."""
        return rk4(self.tendency, x, self.dt, self.steps_per_obs)


LORENZ96 = TwinSetup(
    name="Lorenz-96 (sakov2008)",
    tendency=lorenz96_tendency,
    nx=40,
    dt=0.05,
    steps_per_obs=1,
    obs_var=1.0,
    x0=tuple(8.0 + 0.01 * np.sin(np.arange(40))),
    x0_var=0.001,
    spinup_steps=2000,
)

LORENZ63 = TwinSetup(
    name="Lorenz-63 (sakov2012)",
    tendency=lorenz63_tendency,
    nx=3,
    dt=0.01,
    steps_per_obs=25,
    obs_var=2.0,
    x0=(1.509, -1.531, 25.46),
    x0_var=2.0,
    spinup_steps=1000,
)

#: Published time-averaged analysis RMSE (DAPPER benchmark tables).
PUBLISHED = {
    ("L96", "EnKF N=40 infl=1.06"): 0.22,
    ("L96", "ETKF N=24 infl=1.013"): 0.18,
    ("L96", "LETKF N=7 infl=1.04 loc_rad=4"): 0.22,
    ("L63", "EnKF N=10 infl=1.04"): 0.65,
    ("L63", "PF N=100 reg=2.4 NER=0.3"): 0.38,
}


def twin_experiment(setup, filt, N=None, n_cycles=1000, burn_in=100, seed=0, Q=None):
    """Run a twin experiment and return its time-averaged analysis RMSE.

    Parameters
    ----------
    setup : :data:`LORENZ96`, :data:`LORENZ63` or another :class:`TwinSetup`.
    filt : an xldas filter object (ensemble, particle or sigma-point).
    N : ensemble size (ignored by sigma-point filters, which use 2n+1 points).
    n_cycles : number of analysis cycles; ``burn_in`` of them are not scored.
    seed : seed of the Philox generator (truth, observations, ensemble, filter noise).
    Q : additive process-noise variance per observation interval for sigma-point filters.

    Returns
    -------
    dict with ``rmse`` (mean over the scored cycles), ``spread`` (mean ensemble spread),
    ``rmse_series`` and ``n_scored``.
    """
    rng = np.random.Generator(np.random.Philox(seed))
    nx = setup.nx
    truth = rk4(setup.tendency, np.asarray(setup.x0, float), setup.dt, setup.spinup_steps)
    R = np.full(nx, setup.obs_var)
    x_init = truth + np.sqrt(setup.x0_var) * rng.standard_normal(nx)
    sigma = isinstance(filt, _SigmaPointFilter)
    if sigma:
        E, wm, wc = filt.sigma_points(x_init, cov=setup.x0_var * np.eye(nx))
    else:
        E = x_init + np.sqrt(setup.x0_var) * rng.standard_normal((N, nx))
    w = np.full(N, 1.0 / N) if isinstance(filt, PF) else None
    pos = np.arange(nx, dtype=float)
    dist = periodic_distance(nx)
    errs, spreads = [], []
    for k in range(n_cycles):
        truth = setup.forecast(truth)
        y = truth + np.sqrt(setup.obs_var) * rng.standard_normal(nx)
        E = setup.forecast(E)
        if sigma:
            E, wm, wc = filt.analysis(E, wm, wc, lambda x: x, y, R, Q=Q)
            mean, cov = filt.moments(E, wm, wc)
            spread = np.sqrt(np.trace(cov) / nx)
        elif isinstance(filt, PF):
            E, w = filt.analysis(E, E, y, R, w, rng=rng)
            mean = w @ E
            spread = np.sqrt(np.sum(w[:, None] * (E - mean) ** 2) / nx)
        elif isinstance(filt, LETKF):
            E = filt.analysis(E, E, y, R, pos, pos, dist)
            mean = E.mean(0)
            spread = np.sqrt(E.var(0, ddof=1).mean())
        elif isinstance(filt, EnKF | ETKF):
            E = filt.analysis(E, E, y, R, rng=rng)
            mean = E.mean(0)
            spread = np.sqrt(E.var(0, ddof=1).mean())
        else:
            raise TypeError(f"unsupported filter {filt!r}")
        if k >= burn_in:
            errs.append(np.sqrt(np.mean((mean - truth) ** 2)))
            spreads.append(spread)
    errs = np.asarray(errs)
    return {
        "rmse": float(errs.mean()),
        "spread": float(np.mean(spreads)),
        "rmse_series": errs,
        "n_scored": errs.size,
    }
