"""GPU row of the benchmark table: model step and EnKF/ETKF analysis, GPU vs all CPU cores.

On a machine with a CUDA GPU, CuPy and numba-cuda (``pip install -e ".[gpu]"``) it times

* the land-model step (:func:`xldas.models._cuda.land_step`, one thread per column) against
  the CPU gufunc (:func:`xldas.models._kernels.land_column`, ``parallel`` target = all
  cores), in cell·member·steps per second;
* the EnKF and ETKF analyses (:func:`xldas.filters._cuda.ensemble_block`, one thread per
  pixel) against the CPU block function of :func:`xldas.filters.assimilate` (numba,
  all cores), in pixels per second;

and prints the speed-up, with the largest difference between the two results (the GPU
path equals the CPU path to round-off). Inputs start on the device for the GPU timings
and on the host for the CPU timings (no transfers timed); GPU timings synchronise the
device. Without a GPU it prints ``GPU: not present on this machine`` and exits 0.

Run: ``python benchmarks/gpu.py [--cells 100000] [--members 16] [--steps 24]
[--pixels 100000] [--ens 32]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def gpu_present() -> str | None:
    """Name of the GPU, or None when there is none (or only the simulator)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return None
    try:
        import cupy
        from numba import cuda

        if not cuda.is_available():
            return None
        props = cupy.cuda.runtime.getDeviceProperties(0)
        return props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    except Exception:
        return None


def best_of(fn, repeat=3, sync=None):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        best = min(best, time.perf_counter() - t)
    return best


def land_inputs(cells, members, steps, seed=0):
    """Column inputs as ``models.step`` passes them: (member, cell, core), shared forcing."""
    rng = np.random.default_rng(seed)
    nl = 4
    dz = np.array([0.05, 0.25, 0.7, 1.0])
    ths = rng.uniform(0.35, 0.5, cells)
    thr = rng.uniform(0.01, 0.05, cells)
    thwp = thr + rng.uniform(0.03, 0.15, cells)
    thfc = thwp + rng.uniform(0.05, 0.15, cells)

    def lay(x):
        return np.repeat(x[None, :, None], nl, 2)

    forcing = [
        rng.exponential(1, (1, cells, steps)) * (rng.uniform(size=(1, cells, steps)) < 0.3) * 1e-3,
        273.15 + rng.normal(5, 8, (1, cells, steps)),
        rng.uniform(5.5e4, 1.02e5, (1, cells, steps)),
        np.maximum(rng.normal(200, 250, (1, cells, steps)), 0),
        rng.uniform(180, 420, (1, cells, steps)),
    ]
    sm = (
        thr[None, :, None]
        + rng.uniform(0.2, 0.9, (members, cells, nl)) * (ths - thr)[None, :, None]
    )
    state = [
        sm,
        273.15 + rng.normal(3, 4, (members, cells, nl)),
        rng.exponential(5, (members, cells)),
        rng.uniform(0, 0.2, (members, cells)),
    ]
    params = [
        lay(ths),
        lay(thr),
        lay(thfc),
        lay(thwp),
        lay(rng.uniform(3, 12, cells)),
        lay(10 ** rng.uniform(-7, -4.5, cells)),
        lay(rng.uniform(0.05, 0.8, cells)),
        np.tile([0.1, 0.4, 0.4, 0.1], (1, cells, 1)),
        dz,
        rng.uniform(0, 5, (1, cells)),
        rng.uniform(2, 6, (1, cells)),
        rng.uniform(5, 10, (1, cells)),
        np.zeros((1, cells)),
        rng.uniform(0.15, 0.3, (1, cells)),
    ]
    return [np.ascontiguousarray(a) for a in (*forcing, *state, *params)]


def filter_inputs(pixels, N, n, m, seed=1):
    rng = np.random.default_rng(seed)
    E = rng.normal(0.25, 0.03, (pixels, N, n))
    HE = E[..., :m] + rng.normal(0, 0.01, (pixels, N, m))
    y = rng.normal(0.27, 0.02, (pixels, m))
    R = np.full((pixels, m), 0.02**2)
    pix = np.arange(pixels, dtype=np.int64)
    return E, HE, y, R, pix


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--pixels", type=int, default=100_000)
    ap.add_argument("--ens", type=int, default=32, help="members of the filter benchmark")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    name = gpu_present()
    if name is None:
        print("GPU: not present on this machine")
        return 0

    import cupy

    from xldas.filters import ETKF, EnKF
    from xldas.filters._cuda import ensemble_block
    from xldas.filters.core import _ensemble_block
    from xldas.models._cuda import land_step
    from xldas.models._kernels import land_column

    sync = cupy.cuda.Device().synchronize
    cores = os.cpu_count()
    print(f"GPU: {name}; CPU: {cores} cores (numba parallel target)")
    rows = []

    # ---------------------------------------------------------------- model step
    host = land_inputs(args.cells, args.members, args.steps)
    dev = [cupy.asarray(a) for a in host]
    cpu_fn = land_column.compile("parallel")
    work = args.cells * args.members * args.steps
    ref = cpu_fn(*host, 3600.0, 1.0)
    got = land_step(*dev, 3600.0, 1.0)
    sync()
    diff = max(
        float(np.max(np.abs(cupy.asnumpy(g) - r)) / max(np.max(np.abs(r)), 1e-300))
        for g, r in zip(got, ref)
    )
    t_cpu = best_of(lambda: cpu_fn(*host, 3600.0, 1.0), args.repeat)
    t_gpu = best_of(lambda: land_step(*dev, 3600.0, 1.0), args.repeat, sync)
    rows.append(
        (
            f"model step ({args.cells} cells x {args.members} members x {args.steps} steps)",
            work / t_cpu,
            work / t_gpu,
            "cell·member·steps/s",
            diff,
        )
    )

    # ----------------------------------------------------------------- analyses
    for filt in (EnKF(), ETKF()):
        for m in (1, 3):
            E, HE, y, R, pix = filter_inputs(args.pixels, args.ens, 8, m)
            dE, dH = cupy.asarray(E), cupy.asarray(HE)
            dy, dR, dp = cupy.asarray(y), cupy.asarray(R), cupy.asarray(pix)
            kw = {"filt": filt, "seed": 7, "cycle": 1}
            ref = _ensemble_block(E, HE, y, R, pix, **kw)
            got = ensemble_block(dE, dH, dy, dR, dp, **kw)
            sync()
            diff = float(np.max(np.abs(cupy.asnumpy(got) - ref)) / np.max(np.abs(ref)))
            t_cpu = best_of(lambda: _ensemble_block(E, HE, y, R, pix, **kw), args.repeat)  # noqa: B023
            t_gpu = best_of(
                lambda: ensemble_block(dE, dH, dy, dR, dp, **kw),  # noqa: B023
                args.repeat,
                sync,
            )
            rows.append(
                (
                    f"{type(filt).__name__} analysis ({args.pixels} pixels, N={args.ens}, n=8, m={m})",
                    args.pixels / t_cpu,
                    args.pixels / t_gpu,
                    "pixels/s",
                    diff,
                )
            )

    w = max(len(r[0]) for r in rows)
    print(f"{'':{w}}  {'CPU (all cores)':>16}  {'GPU':>16}  {'speed-up':>9}  max rel diff")
    for label, cpu, gpu, unit, diff in rows:
        print(f"{label:{w}}  {cpu:16.4g}  {gpu:16.4g}  {gpu / cpu:8.1f}x  {diff:.1e}  ({unit})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
