"""Throughput of the microwave forward model: numba gufuncs vs the NumPy references.

Times ``tau_omega_tb`` (Fresnel + roughness + tau-omega, from a complex permittivity) and
the full chain ``dielectric_mironov`` → ``tau_omega_tb`` on 10⁶ pixels, for the numba
kernel on the ``parallel`` target (all cores), on the serial ``cpu`` target (one core),
and for the vectorised NumPy reference. Prints a table of pixels per second.

Run: ``python benchmarks/physics.py [--n 1000000] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from xldas.physics import _microwave_kernels as K


def best_time(fn, repeat: int) -> float:
    fn()  # warm-up (and compilation)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(n: int = 1_000_000, repeat: int = 5) -> None:
    rng = np.random.default_rng(0)
    sm = rng.uniform(0.02, 0.45, n)
    clay = rng.uniform(0.05, 0.5, n)
    t = rng.uniform(270.0, 310.0, n)
    tau = rng.uniform(0.0, 0.6, n)
    eps = K.mironov_np(sm, clay, 1.41)
    tb_args = (eps, t, t, tau, 0.05, 0.1, 40.0, 0.0, 2.0, 2.0)

    cases = {
        "tau_omega_tb": {
            "numba parallel": lambda: K.tau_omega_kernel(*tb_args, target="parallel"),
            "numba 1 core": lambda: K.tau_omega_kernel(*tb_args, target="cpu"),
            "numpy": lambda: K.tau_omega_np(*tb_args),
        },
        "mironov + tau_omega_tb": {
            "numba parallel": lambda: K.tau_omega_kernel(
                K.mironov_kernel(sm, clay, 1.41, target="parallel"), *tb_args[1:], target="parallel"
            ),
            "numba 1 core": lambda: K.tau_omega_kernel(
                K.mironov_kernel(sm, clay, 1.41, target="cpu"), *tb_args[1:], target="cpu"
            ),
            "numpy": lambda: K.tau_omega_np(K.mironov_np(sm, clay, 1.41), *tb_args[1:]),
        },
    }
    # the kernels agree before we time them
    np.testing.assert_allclose(
        cases["tau_omega_tb"]["numba 1 core"]()[1], K.tau_omega_np(*tb_args)[1], rtol=1e-10
    )

    print(f"{n:,} pixels, best of {repeat}, {os.cpu_count()} CPUs visible")
    print(f"{'model':<26}{'engine':<16}{'time (ms)':>11}{'Mpixel/s':>11}{'vs numpy':>10}")
    for model, engines in cases.items():
        ref = best_time(engines["numpy"], repeat)
        for engine, fn in engines.items():
            dt = ref if engine == "numpy" else best_time(fn, repeat)
            print(f"{model:<26}{engine:<16}{dt * 1e3:>11.1f}{n / dt / 1e6:>11.2f}{ref / dt:>10.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    a = parser.parse_args()
    main(a.n, a.repeat)
