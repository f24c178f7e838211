"""Lorenz-96 / Lorenz-63 twin experiments with the xldas filter kernels vs DAPPER's scores.

Run: ``python benchmarks/lorenz.py [--cycles 10000] [--seed 0] [--dapper]``

Prints the time-averaged analysis RMSE after burn-in next to the published values
(DAPPER ``mods/Lorenz96/sakov2008.py`` and ``mods/Lorenz63/sakov2012.py``), the
wall time of each run, and with ``--dapper`` (needs ``pip install dapper``) DAPPER's own
RMSE and wall time on the same configuration.
"""

from __future__ import annotations

import argparse
import time

from xldas.filters import CDKF, ETKF, LETKF, PF, SRCDKF, SRUKF, UKF, EnKF
from xldas.filters.lorenz import LORENZ63, LORENZ96, twin_experiment

CASES = [
    ("L96", "EnKF N=40 infl=1.06", LORENZ96, EnKF(inflation=1.06), 40, None, 0.22),
    ("L96", "ETKF N=24 infl=1.013", LORENZ96, ETKF(inflation=1.013), 24, None, 0.18),
    (
        "L96",
        "LETKF N=7 infl=1.04 loc_rad=4",
        LORENZ96,
        LETKF(inflation=1.04, loc_radius=4),
        7,
        None,
        0.22,
    ),
    ("L63", "EnKF N=10 infl=1.04", LORENZ63, EnKF(inflation=1.04), 10, None, 0.65),
    (
        "L63",
        "PF N=100 reg=2.4 NER=0.3",
        LORENZ63,
        PF(reg=2.4, resample_threshold=0.3),
        100,
        None,
        0.38,
    ),
    (
        "L63",
        "UKF a=1 b=2 k=0 Q=0.02",
        LORENZ63,
        UKF(alpha=1.0, beta=2.0, kappa=0.0),
        None,
        0.02,
        None,
    ),
    (
        "L63",
        "SRUKF a=1 b=2 k=0 Q=0.02",
        LORENZ63,
        SRUKF(alpha=1.0, beta=2.0, kappa=0.0),
        None,
        0.02,
        None,
    ),
    ("L63", "CDKF h=sqrt3 Q=0.02", LORENZ63, CDKF(), None, 0.02, None),
    ("L63", "SRCDKF h=sqrt3 Q=0.02", LORENZ63, SRCDKF(), None, 0.02, None),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=10_000)
    p.add_argument("--burn-in", type=int, default=None, help="default: 10% of the cycles")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default=None, help="substring filter on the case names")
    args = p.parse_args(argv)
    burn = args.burn_in if args.burn_in is not None else args.cycles // 10
    print(f"cycles={args.cycles} burn_in={burn} seed={args.seed}")
    print(
        f"{'model':5} {'configuration':34} {'xldas RMSE':>10} {'spread':>7} {'published':>9} {'diff %':>7} {'time s':>7}"
    )
    for model, label, setup, filt, N, Q, pub in CASES:
        if args.only and args.only not in f"{model} {label}":
            continue
        t0 = time.perf_counter()
        out = twin_experiment(
            setup, filt, N, n_cycles=args.cycles, burn_in=burn, seed=args.seed, Q=Q
        )
        dt = time.perf_counter() - t0
        pub_s = f"{pub:9.2f}" if pub else f"{'-':>9}"
        diff = f"{100 * (out['rmse'] - pub) / pub:+7.1f}" if pub else f"{'-':>7}"
        print(
            f"{model:5} {label:34} {out['rmse']:10.3f} {out['spread']:7.3f} {pub_s} {diff} {dt:7.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
