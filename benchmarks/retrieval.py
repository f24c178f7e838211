"""Retrieval benchmarks: throughput, accuracy curves, water-body labelling memory.

Run ``python benchmarks/retrieval.py [--quick] [--label-size 10000]``. Prints Markdown
tables:

1. index throughput (NDVI, MNDWI, AWEI) in pixels/s per core, lazily through xarray/dask vs
   the NumPy formula on one array;
2. inversion throughput per core (numba kernels with one thread) and the ratio to the NumPy
   reference (vectorised bisection) for the SAR water cloud + Oh 2004 / Dubois 1995 inversion
   and the radiometer SCA-V / DCA;
3. ubRMSE of synthetic round trips against noise and vegetation water content: C-band water
   cloud (noise 0.2–1 dB, VWC bins), L-band SCA-V (noise 0.5–2 K, VWC bins), AMSR2 C/X;
4. water-body labelling of an N × N mask (dask-image, chunks 2048) with the peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numba
import numpy as np
import xarray as xr

warnings.simplefilter("ignore")


def _rate(func, n_pix, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - t0)
    return n_pix / best


def bench_indices(n):
    import dask

    from xldas.retrieval import awei, mndwi, ndvi
    from xldas.retrieval.indices import awei_nsh_kernel, normalized_difference

    rng = np.random.default_rng(0)
    ds = xr.Dataset({b: (("y", "x"), rng.uniform(0.01, 0.5, (n, n)).astype(np.float32))
                     for b in ("blue", "green", "red", "nir", "swir1", "swir2")})  # fmt: skip
    lazy = ds.chunk({"y": 1024, "x": 1024})
    rows = []
    with dask.config.set(scheduler="synchronous"):  # one core
        for name, f, ref in (
            ("NDVI", ndvi, lambda: normalized_difference(ds.nir.values, ds.red.values)),
            ("MNDWI", mndwi, lambda: normalized_difference(ds.green.values, ds.swir1.values)),
            (
                "AWEI_nsh",
                awei,
                lambda: awei_nsh_kernel(
                    ds.green.values, ds.nir.values, ds.swir1.values, ds.swir2.values
                ),
            ),
        ):
            r_np = _rate(ref, n * n)
            r_x = _rate(lambda f=f: f(lazy).compute(), n * n)
            rows.append((name, r_x, r_np, r_x / r_np))
    print("\n### Index throughput (1 core, float32)\n")
    print("| index | xldas lazy (px/s) | NumPy formula (px/s) | ratio |\n|---|---|---|---|")
    for name, a, b, c in rows:
        print(f"| {name} | {a:.3g} | {b:.3g} | {c:.2f} |")


def bench_inversions(n):
    from xldas.physics import _backscatter_kernels as BK
    from xldas.physics import _microwave_kernels as MK
    from xldas.retrieval import _kernels as K

    numba.set_num_threads(1)
    rng = np.random.default_rng(1)
    sm = rng.uniform(0.05, 0.4, n)
    veg = rng.uniform(0, 1, n)
    inc = rng.uniform(31, 45, n)
    rows = []
    for model, name in (
        (K.SOIL_OH2004, "SAR WCM + Oh 2004"),
        (K.SOIL_DUBOIS, "SAR WCM + Dubois 1995 (Dobson)"),
    ):
        soil = (BK.oh2004_np(sm, 0.5, inc)[0] if model == K.SOIL_OH2004
                else BK.dubois1995_np(MK.dobson_np(sm, 0.4, 0.2, 5.405, 20.0, 1.4), 0.5, inc, 5.405)[0])  # fmt: skip
        s0 = BK.wcm_forward_np(soil, veg, veg, inc, 0.1, 0.3)
        a = (
            s0,
            veg,
            veg,
            inc,
            0.1,
            0.3,
            -15.0,
            30.0,
            0.5,
            0.4,
            0.2,
            1.4,
            20.0,
            5.405,
            0.02,
            0.5,
            model,
            0,
        )
        K.sar_invert_kernel(*(x[:10] if isinstance(x, np.ndarray) else x for x in a))  # compile
        r_nb = _rate(lambda a=a: K.sar_invert_kernel(*a), n)
        r_np = _rate(lambda a=a: K.sar_invert_np(*a), n, repeat=1)
        rows.append((name, r_nb, r_np))
    vwc = rng.uniform(0, 5, n)
    teff = rng.uniform(280, 305, n)
    tbh, tbv = K.radiometer_tb_np(
        sm, 0.11 * vwc, teff, 0.05, 0.1, 40.0, 0.4, 0.2, 1.4, 1.41, K.DIEL_MIRONOV
    )
    for alg, name, m in (
        (K.ALG_SCAV, "SCA-V (Mironov)", n),
        (K.ALG_DCA, "DCA (Mironov)", max(n // 10, 100)),
    ):
        a = (tbv[:m], tbh[:m], teff[:m], 0.11 * vwc[:m], vwc[:m], 0.05, 0.1, 40.0, 0.4, 0.2, 1.4, 1.41,
             0.02, 0.47, 1.3, 0.0, 5.0, 0.05, alg, K.DIEL_MIRONOV)  # fmt: skip
        K.radiometer_invert_kernel(*(x[:10] if isinstance(x, np.ndarray) else x for x in a))
        r_nb = _rate(lambda a=a: K.radiometer_invert_kernel(*a), m)
        r_np = _rate(lambda a=a: K.radiometer_invert_np(*a), m, repeat=1)
        rows.append((name, r_nb, r_np))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    print("\n### Inversion throughput (1 core)\n")
    print(
        "| inversion | numba Brent (px/s/core) | NumPy bisection reference (px/s) | speed-up |\n|---|---|---|---|"
    )
    for name, a, b in rows:
        print(f"| {name} | {a:.3g} | {b:.3g} | {a / b:.1f}x |")
    return rows  # (name, numba px/s/core, NumPy px/s) for benchmarks/run.py


def _ub(est, truth):
    d = est - truth
    d = d[np.isfinite(d)]
    return np.sqrt(np.mean((d - d.mean()) ** 2)) if d.size else np.nan


def bench_accuracy(n):
    from xldas.physics import (
        dielectric_dobson,
        dielectric_mironov,
        tau_omega_tb,
        water_cloud_backscatter,
    )
    from xldas.retrieval import soil_moisture_radiometer, soil_moisture_sar

    rng = np.random.default_rng(2)
    sm = rng.uniform(0.05, 0.40, n)
    inc = rng.uniform(30, 45, n)
    bins = [(0, 1), (1, 2), (2, 3), (3, 5)]
    print(
        "\n### C-band water cloud (A = 0.1, B = 0.3 per kg m-2, C = -15 dB, D = 30 dB per m3 m-3): ubRMSE (m3 m-3)\n"
    )
    print(
        "| noise (dB) | " + " | ".join(f"VWC {a}-{b}" for a, b in bins) + " | valid % (VWC 3-5) |"
    )
    print("|---" * (len(bins) + 2) + "|")
    for noise in (0.2, 0.4, 0.6, 0.8, 1.0):
        cells, valid = [], np.nan
        for a, b in bins:
            vwc = rng.uniform(a, b, n)
            s0 = np.asarray(water_cloud_backscatter(sm, vwc, vwc, inc, 0.1, 0.3, -15.0, 30.0))
            s0 = s0 + rng.normal(0, noise, n)
            out = soil_moisture_sar(
                xr.DataArray(s0, dims="x", attrs={"units": "dB"}), veg=vwc, incidence_deg=inc
            )
            est = out.sm.values
            cells.append(f"{_ub(est, sm):.3f}")
            valid = 100 * np.isfinite(est).mean()
        print(f"| {noise} | " + " | ".join(cells) + f" | {valid:.0f} |")
    print(
        "\n### L-band SCA-V (SMAP: 1.41 GHz, 40°, b = 0.11, ω = 0.05, h = 0.1, Mironov): ubRMSE (m3 m-3)\n"
    )
    vb = [(0, 1), (1, 3), (3, 5), (5, 8)]
    print(
        "| noise (K) | "
        + " | ".join(f"VWC {a}-{b}" for a, b in vb)
        + " |\n"
        + "|---" * (len(vb) + 1)
        + "|"
    )
    teff = rng.uniform(280, 305, n)
    sm_l = rng.uniform(0.05, 0.45, n)
    eps = dielectric_mironov(sm_l, 0.2, 1.41)
    for noise in (0.5, 1.0, 1.5, 2.0):
        cells = []
        for a, b in vb:
            vwc = rng.uniform(a, b, n)
            _, tbv = tau_omega_tb(
                eps, teff, teff, tau=0.11 * vwc, omega=0.05, h=0.1, incidence_deg=40.0
            )
            ds = xr.Dataset(
                {"tb_v": ("x", np.asarray(tbv) + rng.normal(0, noise, n), {"units": "K"})}
            )
            out = soil_moisture_radiometer(ds, "sca-v", t_eff=teff, vwc=vwc)
            cells.append(f"{_ub(out.sm.values, sm_l):.3f}")
        print(f"| {noise} | " + " | ".join(cells) + " |")
    print(
        "\n### AMSR2 (55°, ω = 0.06, h = 0.1, Dobson), SCA-V, 1 K noise, VWC 0-1.5 kg m-2 (report only)\n"
    )
    print("| band | b (m2 kg-1) | ubRMSE (m3 m-3) |\n|---|---|---|")
    for band, f, b in (("C 6.925 GHz", 6.925, 0.25), ("X 10.65 GHz", 10.65, 0.35)):
        vwc = rng.uniform(0, 1.5, n)
        eps = dielectric_dobson(sm_l, 0.4, 0.2, f, teff - 273.15)
        _, tbv = tau_omega_tb(eps, teff, teff, tau=b * vwc, omega=0.06, h=0.1, incidence_deg=55.0)
        ds = xr.Dataset({"tb_v": ("x", np.asarray(tbv) + rng.normal(0, 1.0, n), {"units": "K"})})
        sensor = "amsr2-c" if f < 8 else "amsr2-x"
        out = soil_moisture_radiometer(
            ds, "sca-v", t_eff=teff, vwc=vwc, sensor=sensor, dielectric="dobson"
        )
        print(f"| {band} | {b} | {_ub(out.sm.values, sm_l):.3f} |")


def bench_labelling(n):
    import dask.array as dsa

    from xldas.retrieval import water_bodies

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rng = np.random.default_rng(3)
    chunk = 2048

    def lakes(block_info=None):
        (y0, y1), (x0, x1) = block_info[None]["array-location"]
        r = np.random.default_rng([3, y0, x0])
        yy, xx = np.mgrid[y0:y1, x0:x1]
        m = np.zeros((y1 - y0, x1 - x0), bool)
        for cy, cx, rad in zip(r.uniform(y0, y1, 40), r.uniform(x0, x1, 40), r.uniform(1, 60, 40)):
            m |= (yy - cy) ** 2 + (xx - cx) ** 2 <= rad * rad
        return m.astype(np.float32)

    data = dsa.map_blocks(lakes, chunks=((chunk,) * (n // chunk) + ((n % chunk,) if n % chunk else ()),) * 2,
                          dtype=np.float32)  # fmt: skip
    del rng
    res = 30.0
    w = xr.DataArray(
        data, dims=("y", "x"), coords={"y": np.arange(n) * res, "x": np.arange(n) * res}
    )
    t0 = time.perf_counter()
    b = water_bodies(w)
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n### Water-body labelling ({n} x {n} mask, chunks {chunk}, dask-image, 8-connectivity)\n"
    )
    print(
        "| bodies ≥ 4 px | total area (km²) | wall time (s) | peak RSS (MiB) | RSS before (MiB) |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {b.attrs['n_bodies']} | {float(b.area_km2.sum()):.1f} | {dt:.1f} | {rss:.0f} | {rss0:.0f} |"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    ap.add_argument("--label-size", type=int, default=None)
    args = ap.parse_args()
    q = args.quick
    print(f"numba {numba.__version__}, threads available {numba.config.NUMBA_NUM_THREADS}")
    bench_indices(1024 if q else 4096)
    bench_inversions(2000 if q else 20000)
    bench_accuracy(500 if q else 4000)
    bench_labelling(args.label_size or (2048 if q else 10000))


if __name__ == "__main__":
    main()
