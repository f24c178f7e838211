"""Analysis throughput of the xldas filter kernels, with peers where installed.

Run: ``python benchmarks/filters.py [--size 1000] [--members 32] [--small 100]``

Problem (the issue's): ``size × size`` pixels, ``members`` members, a state of 6
variables per pixel, 1 observation per pixel. Rates are pixels per second on ONE core
(numba ``cpu`` target), next to a plain memory copy of the ensemble (``np.copyto``) —
the goal for the 1-observation EnKF/ETKF closed forms is within 3× of the copy. The
LETKF (3 × 3 neighbourhood), the sigma-point filters (2n+1 = 13 points) and the PF are
timed on ``small × small`` pixels. Peers: filterpy's ``UnscentedKalmanFilter`` applied
pixel by pixel (``pip install filterpy``), and DAPPER on Lorenz-96 (``pip install
dapper``) — timed, never copied.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xldas.filters import ETKF, PF, SRUKF, UKF, EnKF
from xldas.filters import _kernels as K


def _best(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _row(name, npix, seconds, copy_s=None):
    rate = npix / seconds
    ratio = f"{seconds / copy_s:6.2f}×" if copy_s else "      "
    print(f"{name:44} {npix:>9d} {seconds:9.4f} {rate:14,.0f} {ratio}", flush=True)
    return rate


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1000)
    p.add_argument("--members", type=int, default=32)
    p.add_argument("--small", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    rng = np.random.default_rng(0)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # rates per core
        _large(a, rng)
        _small(a, rng)


def _large(a, rng):
    N, n = a.members, 6
    P = a.size * a.size
    E = rng.standard_normal((P, N, n))
    HE = E[..., 0] + 0.1 * rng.standard_normal((P, N))
    y = rng.standard_normal(P)
    R = np.full(P, 0.5)
    out = np.empty_like(E)
    print(f"pixels={P} members={N} state={n} obs/pixel=1; rates per core (numba target 'cpu')")
    print(f"{'kernel':44} {'pixels':>9} {'seconds':>9} {'pixels/s/core':>14} {'÷copy':>7}")
    copy_s = _best(lambda: np.copyto(out, E), a.repeat)
    _row("memory copy of the ensemble (np.copyto)", P, copy_s, copy_s)
    d, rinv, _, _ = K.screen_observations(HE[..., None], y[..., None], R[..., None])
    d, rinv = d[..., 0], rinv[..., 0]
    eps = rng.standard_normal((P, N))
    K.enkf_1obs(E[:2], HE[:2], d[:2], rinv[:2], eps[:2], 1.0, 0.0, 0.0, target="cpu")
    K.etkf_1obs(E[:2], HE[:2], d[:2], rinv[:2], 1.0, 0.0, 0.0, target="cpu")
    t = _best(lambda: K.enkf_1obs(E, HE, d, rinv, eps, 1.02, 0.0, 0.0, out, target="cpu"), a.repeat)
    _row("EnKF 1-obs kernel (allocation-free)", P, t, copy_s)
    t = _best(lambda: K.etkf_1obs(E, HE, d, rinv, 1.02, 0.0, 0.0, out, target="cpu"), a.repeat)
    _row("ETKF 1-obs kernel (allocation-free)", P, t, copy_s)
    noise = rng.standard_normal((P, N))
    f = EnKF(inflation=1.02)
    f.update(E[:2], HE[:2, :, None], y[:2, None], R[:2, None], noise[:2])
    t = _best(lambda: f.update(E, HE[..., None], y[:, None], R[:, None], noise), 1)
    _row("EnKF.update (screening + noise + kernel, parallel)", P, t, copy_s)
    t = _best(lambda: ETKF(inflation=1.02).update(E, HE[..., None], y[:, None], R[:, None]), 1)
    _row("ETKF.update (screening + kernel, parallel)", P, t, copy_s)


def _small(a, rng):
    N, n = a.members, 6
    S = a.small
    Ps = S * S
    Eg = rng.standard_normal((S, S, N, n))
    Hg = Eg[..., :1] + 0.1 * rng.standard_normal((S, S, N, 1))
    dg = rng.standard_normal((S, S, 1))
    rg = np.full((S, S, 1), 2.0)
    yc, xc = np.meshgrid(np.arange(S, dtype=float), np.arange(S, dtype=float), indexing="ij")
    K.letkf_grid(
        Eg[:3, :3],
        Hg[:3, :3],
        dg[:3, :3],
        rg[:3, :3],
        yc[:3, :3],
        xc[:3, :3],
        1.0,
        1,
        0,
        1.0,
        0.0,
        0.0,
        target="cpu",
    )
    t = _best(
        lambda: K.letkf_grid(Eg, Hg, dg, rg, yc, xc, 1.0, 1, 0, 1.02, 0.0, 0.0, target="cpu"), 1
    )
    _row("LETKF 3x3 neighbourhood (9 obs per analysis)", Ps, t)

    L = n
    mean = rng.standard_normal((Ps, L)) * 0.1
    Pc = np.broadcast_to(np.eye(L) * 0.01, (Ps, L, L))
    x_obs = rng.standard_normal((Ps, 1)) * 0.1
    Robs = np.full((Ps, 1), 0.01)
    rates = {}
    for filt in (UKF(), SRUKF()):
        X, wm, wc = filt.sigma_points(mean, cov=Pc)
        t = _best(
            lambda filt=filt, X=X, wm=wm, wc=wc: filt.analysis(
                X, wm, wc, lambda x: x[..., :1], x_obs, Robs, Q=1e-4
            ),
            1,
        )
        rates[filt.name] = _row(f"{type(filt).__name__} (13 sigma points, NumPy batched)", Ps, t)
    Ep = rng.standard_normal((Ps, N, n))
    pf = PF(reg=0.5, resample_threshold=0.5)
    noise = rng.standard_normal((Ps, 1 + N * n))
    t = _best(lambda: pf.update(Ep, Ep[..., :1], x_obs, Robs, noise), 1)
    _row("PF (reweight + systematic resampling + jitter)", Ps, t)

    # ---- peers
    try:
        from filterpy.kalman import MerweScaledSigmaPoints, UnscentedKalmanFilter
    except ImportError:
        print("filterpy not installed: pip install filterpy (the 'bench' extra)")
    else:
        npx = min(Ps, 500)
        pts = MerweScaledSigmaPoints(L, alpha=1.0, beta=2.0, kappa=0.0)

        def run_filterpy():
            for i in range(npx):
                ukf = UnscentedKalmanFilter(
                    dim_x=L, dim_z=1, dt=1.0, fx=lambda x, dt: x, hx=lambda x: x[:1], points=pts
                )
                ukf.x = mean[i].copy()
                ukf.P = Pc[i].copy()
                ukf.Q = np.eye(L) * 1e-4
                ukf.R = np.array([[0.01]])
                ukf.predict()
                ukf.update(x_obs[i])

        t = _best(run_filterpy, 1)
        r = _row("filterpy UnscentedKalmanFilter, per pixel", npx, t)
        print(f"  xldas UKF / filterpy UKF speed ratio: {rates['ukf'] / r:,.0f}×")
    try:
        import dapper  # noqa: F401
    except ImportError:
        print("DAPPER not installed: pip install dapper (the 'bench' extra)")
    else:
        _dapper_l96()


def _dapper_l96(cycles=1000):
    """DAPPER's EnKF on its sakov2008 Lorenz-96 setup vs xldas on ours (same config)."""
    import dapper.da_methods as da
    from dapper.mods.Lorenz96.sakov2008 import HMM

    from xldas.filters.lorenz import LORENZ96, twin_experiment

    hmm = HMM.copy()
    hmm.tseq.Ko = cycles
    hmm.tseq.BurnIn = 0.1 * cycles * hmm.tseq.dto
    for label, xp, xf, N in [
        (
            "EnKF PertObs N=40 infl=1.06",
            da.EnKF("PertObs", N=40, infl=1.06),
            EnKF(inflation=1.06),
            40,
        ),
        (
            "ETKF (Sqrt) N=24 infl=1.013",
            da.EnKF("Sqrt", N=24, infl=1.013, rot=True),
            ETKF(inflation=1.013),
            24,
        ),
    ]:
        twin_experiment(LORENZ96, xf, N, n_cycles=3, burn_in=0, seed=0)  # compile first
        xx, yy = hmm.simulate()
        t0 = time.perf_counter()
        xp.assimilate(hmm, xx, yy, liveplots=False)
        t_d = time.perf_counter() - t0
        xp.stats.average_in_time()
        rmse_d = float(xp.avrgs.err.rms.a.val)
        t0 = time.perf_counter()
        res = twin_experiment(LORENZ96, xf, N, n_cycles=cycles, burn_in=cycles // 10, seed=0)
        t_x = time.perf_counter() - t0
        print(
            f"L96 {label:30} DAPPER rmse {rmse_d:.3f} in {t_d:6.1f} s | "
            f"xldas rmse {res['rmse']:.3f} in {t_x:6.1f} s ({cycles} cycles)",
            flush=True,
        )


if __name__ == "__main__":
    main()
