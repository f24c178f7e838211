"""Land-model throughput: numba gufunc vs vectorised NumPy vs the same algorithm in C.

Prints one table, in cell·member·steps per second, at ≥ 10⁶ cell·members:

* the numba gufunc kernel (:func:`xldas.models._kernels.land_column`) on 1 thread and on
  all cores, float64 and float32 state;
* the NumPy reference vectorised over cells (:func:`land_reference`, 1 core), run on a
  subset of columns (its cost is linear in columns) and reported per cell·member·step;
* the same column algorithm written in C below, compiled here with
  ``gcc -O3 -march=native`` (no fast-math, like numba) and called through ctypes (1 core,
  and all cores with OpenMP when available).

Run: ``python benchmarks/land_model.py [--cells 62500] [--members 16] [--steps 24]``.
The forcing is shared by the members (broadcast), as for an ensemble with unperturbed
forcing; states and parameters differ per member.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from xldas.models import _kernels as K
from xldas.models._kernels import land_column, land_reference

C_SOURCE = r"""
#include <math.h>
#include <stddef.h>
#define T0 273.15
#define T_SNOW 0.0
#define T_RAIN 2.0
#define RHO_W 1000.0
#define SWE_HALF 10.0
#define ALB_SNOW 0.7
#define EMIS 0.97
#define ICAP 0.2
#define IK 0.5
#define KRN 0.6
#define THC_F 0.6
#define KDT (3.0 / 2.0e-6)
#define C_SOLID 2.0e6
#define C_WATER 4.18e6
#define LAM_DRY 0.25
#define LAM_WET 1.5
#define LAM_SNOW 0.3
#define RHO_SNOW 250.0
#define FROZ 0.95
#define S_MIN 1e-6
#define SIGMA 5.670374419e-8
#define MAXL 16

static inline double dmin(double a, double b) { return a < b ? a : b; }
static inline double dmax(double a, double b) { return a > b ? a : b; }

static inline void sith_split(double rn, double g, double tau, double tc, double pkpa,
                              double *pec, double *pes) {
    double lam = 2.501e6 - 2361.0 * tc;
    double es = 0.6108 * exp(17.27 * tc / (tc + 237.3));
    double d = tc + 237.3;
    double delta = 4098.0 * es / (d * d);
    double gamma = 1013.0 * pkpa / (0.622 * lam);
    double c = 1.26 * delta / ((delta + gamma) * lam);
    double rns = rn * tau;
    *pec = dmax(c * (rn - rns), 0.0);
    *pes = dmax(c * (rns - g), 0.0);
}

/* one column: forcing (nt) strided by fs; layer params (nl) */
static void column(int nt, int nl, int fs,
    const float *precip, const float *tair, const float *psurf, const float *swdown, const float *lwdown,
    float *sm, float *tsoil, float *swe_io, float *cw_io,
    const double *theta_s, const double *theta_r, const double *theta_fc, const double *theta_wp,
    const double *b, const double *ksat, const double *psi_sat, const double *root, const double *dz,
    double lai, double ddf_snow, double ddf_ice, double fglac, double albedo, double dt, int ns,
    double *et, double *runoff, double *drainage, double *snowmelt, double *glacier_melt)
{
    double th[MAXL], ts[MAXL], kk[MAXL], dd[MAXL], imp[MAXL], cp[MAXL], dp[MAXL], kint[MAXL], dzw[MAXL];
    double h = dt / ns, days = h / 86400.0;
    double tau = exp(-KRN * lai), fint = 1.0 - exp(-IK * lai), wmax = ICAP * lai;
    double kfac = 1.0 - exp(-KDT * ksat[0] * days);
    double corr = 0.0;
    for (int j = 0; j < nl; j++) {
        dzw[j] = dz[j] * RHO_W; ts[j] = tsoil[j];
        double v = sm[j];
        if (v > theta_s[j]) { corr += (v - theta_s[j]) * dzw[j]; v = theta_s[j]; }
        else if (v < theta_r[j]) { corr -= (theta_r[j] - v) * dzw[j]; v = theta_r[j]; }
        th[j] = v;
    }
    double swe = *swe_io, cw = *cw_io;
    for (int it = 0; it < nt; it++) {
        double a_et = 0, a_ro = corr, a_dr = 0, a_sm = 0, a_gm = 0; corr = 0;
        double p_rate = precip[it * fs], tk = tair[it * fs], tc = tk - T0;
        double pkpa = psurf[it * fs] * 1e-3, sw = swdown[it * fs], lw = lwdown[it * fs];
        for (int s_ = 0; s_ < ns; s_++) {
            double pr = p_rate * h;
            double fsnow = dmin(dmax((T_RAIN - tc) / (T_RAIN - T_SNOW), 0.0), 1.0);
            double snow = pr * fsnow, rain = pr - snow;
            double fsc = swe / (swe + SWE_HALF);
            double alb = albedo + (ALB_SNOW - albedo) * fsc;
            double t2 = tk * tk;
            double rn = (1.0 - alb) * sw + EMIS * (lw - SIGMA * t2 * t2);
            double pec, pes; sith_split(rn, 0.0, tau, tc, pkpa, &pec, &pes);
            cw += rain * fint;
            double thr = rain * (1.0 - fint);
            if (cw > wmax) { thr += cw - wmax; cw = wmax; }
            double fwet = wmax > 0.0 ? cw / wmax : 0.0;
            double ei = dmin(fwet * pec * h, cw); cw -= ei;
            swe += snow;
            double melt = dmin(ddf_snow * dmax(tc, 0.0) * days, swe); swe -= melt;
            double esub = dmin(fsc * pes * h, swe); swe -= esub;
            fsc = swe / (swe + SWE_HALF);
            double gm = fglac * (1.0 - fsc) * (ddf_ice * dmax(tc, 0.0) * days);
            for (int j = 0; j < nl; j++) imp[j] = 1.0 - FROZ * dmin(dmax(T0 - ts[j], 0.0), 1.0);
            double px = thr + melt + gm, ro = 0.0;
            if (px > 0.0) {
                double deficit = 0.0;
                for (int j = 0; j < nl; j++) deficit += (theta_s[j] - th[j]) * dzw[j];
                double dk = deficit * kfac;
                double infl = dk > 0.0 ? px * dk / (px + dk) : 0.0;
                double cap = ksat[0] * imp[0] * h * RHO_W;
                if (infl > cap) infl = cap;
                ro = px - infl;
                for (int j = 0; j < nl; j++) {
                    if (infl <= 0.0) break;
                    double room = (theta_s[j] - th[j]) * dzw[j];
                    double a = dmin(infl, room);
                    th[j] += a / dzw[j]; infl -= a;
                }
                ro += infl;
            }
            double es = (1.0 - fsc) * pes * h;
            double f1 = (th[0] - theta_r[0]) / (theta_fc[0] - theta_r[0]);
            es *= dmin(dmax(f1, 0.0), 1.0);
            es = dmin(es, (th[0] - theta_r[0]) * dzw[0]);
            th[0] -= es / dzw[0];
            double tpot = pec * h * (1.0 - fwet), tr = 0.0;
            for (int j = 0; j < nl; j++) {
                double thc = theta_wp[j] + THC_F * (theta_fc[j] - theta_wp[j]);
                double beta = dmin(dmax((th[j] - theta_wp[j]) / (thc - theta_wp[j]), 0.0), 1.0);
                double u = dmin(tpot * root[j] * beta, (th[j] - theta_r[j]) * dzw[j]);
                if (u > 0.0) { th[j] -= u / dzw[j]; tr += u; }
            }
            for (int j = 0; j < nl; j++) {
                double s = dmax(th[j] / theta_s[j], S_MIN);
                double p = exp(b[j] * log(s));
                double ks = ksat[j] * imp[j];
                kk[j] = ks * p * p * s * s * s;
                dd[j] = b[j] * ks * psi_sat[j] / theta_s[j] * p * s * s;
            }
            for (int j = 0; j < nl; j++) {
                double c = 2.0 * b[j] + 3.0;
                double g = kk[j] * h * RHO_W;
                g = g / (1.0 + c * g / dmax(th[j] * dzw[j], S_MIN));
                if (j < nl - 1) {
                    double dzm = 0.5 * (dz[j] + dz[j + 1]);
                    double xeq = (th[j] - th[j + 1]) * dzw[j] * dz[j + 1] / (dz[j] + dz[j + 1]);
                    double r = 0.5 * (dd[j] + dd[j + 1]) / dzm * (1.0 / dz[j] + 1.0 / dz[j + 1]) * h;
                    double a = g + xeq * r / (1.0 + r);
                    if (a > 0.0) {
                        a = dmin(a, (th[j] - theta_r[j]) * dzw[j]);
                        a = dmin(a, (theta_s[j + 1] - th[j + 1]) * dzw[j + 1]);
                        a = dmax(a, 0.0);
                    } else {
                        a = dmax(a, -(th[j + 1] - theta_r[j + 1]) * dzw[j + 1]);
                        a = dmax(a, -(theta_s[j] - th[j]) * dzw[j]);
                        a = dmin(a, 0.0);
                    }
                    th[j] -= a / dzw[j]; th[j + 1] += a / dzw[j + 1];
                } else {
                    double a = dmax(dmin(g, (th[j] - theta_r[j]) * dzw[j]), 0.0);
                    th[j] -= a / dzw[j]; a_dr += a;
                }
            }
            for (int j = 0; j < nl; j++) {
                double lam = LAM_DRY + LAM_WET * th[j] / theta_s[j];
                kk[j] = 0.5 * dz[j] / lam;
            }
            for (int j = 0; j < nl - 1; j++) kint[j] = 1.0 / (kk[j] + kk[j + 1]);
            kint[nl - 1] = 0.0;
            double ttop, gtop;
            if (swe > 0.0) { ttop = dmin(tk, T0); gtop = 1.0 / (kk[0] + swe / (RHO_SNOW * LAM_SNOW)); }
            else { ttop = tk; gtop = 1.0 / kk[0]; }
            for (int j = 0; j < nl; j++) {
                double capj = ((1.0 - theta_s[j]) * C_SOLID + th[j] * C_WATER) * dz[j];
                double kup = j == 0 ? gtop : kint[j - 1];
                double diag = capj + h * (kup + kint[j]);
                double rhs = capj * ts[j], low;
                if (j == 0) { rhs += h * gtop * ttop; low = 0.0; } else low = -h * kup;
                double den = diag - low * (j > 0 ? cp[j - 1] : 0.0);
                cp[j] = -h * kint[j] / den;
                dp[j] = (rhs - low * (j > 0 ? dp[j - 1] : 0.0)) / den;
            }
            ts[nl - 1] = dp[nl - 1];
            for (int j = nl - 2; j >= 0; j--) ts[j] = dp[j] - cp[j] * ts[j + 1];
            a_et += ei + esub + es + tr; a_ro += ro; a_sm += melt; a_gm += gm;
        }
        double inv = 1.0 / dt;
        et[it] = a_et * inv; runoff[it] = a_ro * inv; drainage[it] = a_dr * inv;
        snowmelt[it] = a_sm * inv; glacier_melt[it] = a_gm * inv;
    }
    for (int j = 0; j < nl; j++) { sm[j] = (float)th[j]; tsoil[j] = (float)ts[j]; }
    *swe_io = (float)swe; *cw_io = (float)cw;
}

/* nmem members x ncell cells (member-major, as xarray's (member, lat, lon));
   forcing (ncell, nt) shared by the members; state and params (nmem, ncell, nl) */
void run(int ncell, int nmem, int nt, int nl,
    const float *precip, const float *tair, const float *psurf, const float *swdown, const float *lwdown,
    float *sm, float *ts, float *swe, float *cw,
    const double *theta_s, const double *theta_r, const double *theta_fc, const double *theta_wp,
    const double *b, const double *ksat, const double *psi_sat, const double *root, const double *dz,
    const double *lai, const double *ddf_snow, const double *ddf_ice, const double *fglac, const double *albedo,
    double dt, int ns, double *flux)
{
    long total = (long)ncell * nmem;
#pragma omp parallel for schedule(static)
    for (long k = 0; k < total; k++) {
        long c = k % ncell;
        long o = k * nl;
        double *f = flux + k * 5L * nt;
        column(nt, nl, 1, precip + c * nt, tair + c * nt, psurf + c * nt, swdown + c * nt, lwdown + c * nt,
               sm + o, ts + o, swe + k, cw + k,
               theta_s + o, theta_r + o, theta_fc + o, theta_wp + o, b + o, ksat + o, psi_sat + o, root + o, dz,
               lai[k], ddf_snow[k], ddf_ice[k], fglac[k], albedo[k], dt, ns,
               f, f + nt, f + 2 * nt, f + 3 * nt, f + 4 * nt);
    }
}
"""


def build_c(workdir: pathlib.Path, openmp: bool):
    src = workdir / "land.c"
    src.write_text(C_SOURCE)
    lib = workdir / ("land_omp.so" if openmp else "land.so")
    cmd = ["gcc", "-O3", "-march=native", "-shared", "-fPIC", str(src), "-o", str(lib), "-lm"]
    if openmp:
        cmd.insert(1, "-fopenmp")
    subprocess.run(cmd, check=True, capture_output=True)
    so = ctypes.CDLL(str(lib))
    so.run.restype = None
    return so


def make_inputs(ncell, nmem, nt, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    nl = 4
    dz = np.array([0.05, 0.25, 0.7, 1.0])
    shp = (ncell, nmem)
    ths = rng.uniform(0.38, 0.48, shp)
    thr = rng.uniform(0.02, 0.05, shp)
    thwp = thr + rng.uniform(0.05, 0.15, shp)
    thfc = thwp + rng.uniform(0.08, 0.15, shp)

    def lay(x):
        return np.repeat(x[..., None], nl, -1)

    hours = np.arange(nt)
    sw = np.clip(600 * np.sin(np.pi * ((hours - 6) % 24) / 12), 0, None)
    forcing = [
        (rng.exponential(1, (ncell, 1, nt)) * (rng.uniform(size=(ncell, 1, nt)) < 0.2) * 5e-4),
        273.15 + 5 + 8 * np.sin(2 * np.pi * (hours - 9) / 24) + rng.normal(0, 3, (ncell, 1, 1)),
        np.full((ncell, 1, nt), 7.5e4) + rng.normal(0, 2e3, (ncell, 1, 1)),
        np.broadcast_to(sw, (ncell, 1, nt)) * rng.uniform(0.6, 1.0, (ncell, 1, 1)),
        np.full((ncell, 1, nt), 290.0),
    ]
    forcing = [
        np.ascontiguousarray(np.broadcast_to(f, (ncell, 1, nt)), dtype=dtype) for f in forcing
    ]
    state = [
        (lay(thr) + rng.uniform(0.2, 0.8, (*shp, nl)) * lay(ths - thr)).astype(dtype),
        (273.15 + rng.normal(3, 3, (*shp, nl))).astype(dtype),
        (rng.exponential(5, shp) * (rng.uniform(size=shp) < 0.3)).astype(dtype),
        rng.uniform(0, 0.1, shp).astype(dtype),
    ]
    params = [
        lay(ths),
        lay(thr),
        lay(thfc),
        lay(thwp),
        lay(rng.uniform(4, 11, shp)),
        lay(10 ** rng.uniform(-6.5, -4, shp)),
        lay(rng.uniform(0.1, 0.7, shp)),
        np.broadcast_to([0.05, 0.3, 0.45, 0.2], (*shp, nl)).copy(),
        dz,
        rng.uniform(0, 3, shp),
        rng.uniform(2, 5, shp),
        rng.uniform(5, 9, shp),
        (rng.uniform(size=shp) < 0.1) * rng.uniform(0.2, 1, shp),
        rng.uniform(0.15, 0.3, shp),
    ]
    # member-major layout, as xarray hands (member, lat, lon) to the gufunc: the forcing
    # broadcasts over the OUTER loop dimension, so the inner gufunc loop runs over cells
    forcing = [f.reshape(1, ncell, nt) for f in forcing]
    state = [np.ascontiguousarray(np.swapaxes(x, 0, 1)) for x in state]
    params = [np.ascontiguousarray(np.swapaxes(x, 0, 1)) if x.ndim > 1 else x for x in params]
    return forcing, state, params


def timeit(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def count_transcendentals() -> str:
    return (
        "per column-step: 1 exp (e_sat) + per layer 1 log + 1 exp (s^b gives psi, K, D); "
        "per column: 4 exp (Beer, interception, Schaake) outside the time loop"
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=62_500)
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--ref-cells", type=int, default=4_000, help="cells for the NumPy reference")
    ap.add_argument("--repeat", type=int, default=2, help="timings per figure (the best is kept)")
    args = ap.parse_args(argv)
    ncell, nmem, nt = args.cells, args.members, args.steps
    cm = ncell * nmem
    work = cm * nt
    ncores = os.cpu_count() or 1
    print(
        f"land model benchmark: {ncell} cells x {nmem} members = {cm:.3g} cell-members, {nt} hourly steps"
    )
    print(
        f"machine: {ncores} cores, numba {numba.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}"
    )
    print(count_transcendentals())
    rows = []

    f32 = make_inputs(ncell, nmem, nt, dtype=np.float32)
    f64 = make_inputs(ncell, nmem, nt, dtype=np.float64)
    kern = land_column.compile("parallel")
    serial = land_column.compile("cpu")
    pool = ThreadPoolExecutor(ncores)

    def chunked(fo, st, pa, nchunks):
        """What dask does: the serial kernel on column chunks, one task per chunk."""
        edges = np.linspace(0, ncell, nchunks + 1).astype(int)

        def one(i):
            s_ = slice(edges[i], edges[i + 1])
            return serial(
                *[x[:, s_] for x in fo],
                *[x[:, s_] for x in st],
                *[x[:, s_] for x in pa[:8]],
                pa[8],
                *[x[:, s_] for x in pa[9:]],
                3600.0,
                1.0,
            )

        return list(pool.map(one, range(nchunks)))

    for name, (fo, st, pa) in (("float32", f32), ("float64", f64)):
        small = ([x[:2] for x in fo], [x[:2] for x in st], [x[:2] if x.ndim > 1 else x for x in pa])
        kern(*small[0], *small[1], *small[2], 3600.0, 1.0)
        serial(*small[0], *small[1], *small[2], 3600.0, 1.0)
        t = timeit(
            lambda fo=fo, st=st, pa=pa: serial(*fo, *st, *pa, 3600.0, 1.0), repeat=args.repeat
        )
        rows.append((f"numba gufunc serial target, {name}", 1, work / t))
        for threads in sorted({1, ncores}):
            numba.set_num_threads(threads)
            t = timeit(
                lambda fo=fo, st=st, pa=pa: kern(*fo, *st, *pa, 3600.0, 1.0), repeat=args.repeat
            )
            rows.append((f"numba gufunc parallel target, {name}", threads, work / t))
        if ncores > 1:
            t = timeit(
                lambda fo=fo, st=st, pa=pa: chunked(fo, st, pa, 4 * ncores), repeat=args.repeat
            )
            rows.append((f"numba serial, {4 * ncores} chunks on threads, {name}", ncores, work / t))
    numba.set_num_threads(ncores)

    # NumPy reference (float64, vectorised over cells), on a subset of columns
    nr = min(args.ref_cells, ncell)
    fo, st, pa = make_inputs(nr, 1, nt, seed=1, dtype=np.float64)
    rargs = (
        [x[0] for x in fo]
        + [st[0][0], st[1][0], st[2][0], st[3][0]]
        + [x[0] for x in pa[:8]]
        + [pa[8]]
        + [x[0] for x in pa[9:]]
    )
    t = timeit(lambda: land_reference(*rargs, 3600.0, 1), repeat=args.repeat)
    rows.append((f"NumPy reference, float64 ({nr} columns)", 1, nr * nt / t))
    ref_rate = nr * nt / t

    # C, gcc -O3 -march=native
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        libs = {1: build_c(tmp, openmp=False)}
        try:
            libs[ncores] = build_c(tmp, openmp=True)
        except subprocess.CalledProcessError:
            pass
        fo, st, pa = f32
        dp = ctypes.POINTER(ctypes.c_double)
        fp = ctypes.POINTER(ctypes.c_float)

        def ptr(a, typ):
            return a.ctypes.data_as(typ)

        pa_c = [np.ascontiguousarray(x, dtype=np.float64) for x in pa]
        flux = np.empty((nmem, ncell, 5, nt))
        c_rates = {}
        for threads, so in libs.items():
            os.environ["OMP_NUM_THREADS"] = str(threads)
            sts = [s.copy() for s in st]

            def call(so=so, sts=sts):
                so.run(
                    ctypes.c_int(ncell),
                    ctypes.c_int(nmem),
                    ctypes.c_int(nt),
                    ctypes.c_int(4),
                    *[ptr(x, fp) for x in fo],
                    *[ptr(x, fp) for x in sts],
                    *[ptr(x, dp) for x in pa_c],
                    ctypes.c_double(3600.0),
                    ctypes.c_int(1),
                    ptr(flux, dp),
                )

            t = timeit(call, repeat=args.repeat)
            c_rates[threads] = work / t
            rows.append(
                (
                    "C gcc -O3 -march=native, float32 state" + (" (OpenMP)" if threads > 1 else ""),
                    threads,
                    work / t,
                )
            )
        # correctness of the C port: one step from the same state agrees with numba
        sts = [np.ascontiguousarray(s[:, :50]) for s in st]
        fl = np.empty((nmem, 50, 5, nt))
        libs[1].run(
            ctypes.c_int(50),
            ctypes.c_int(nmem),
            ctypes.c_int(nt),
            ctypes.c_int(4),
            *[ptr(np.ascontiguousarray(x[:, :50]), fp) for x in fo],
            *[ptr(x, fp) for x in sts],
            *[ptr(np.ascontiguousarray(x[:, :50]), dp) for x in pa_c[:8]],
            ptr(pa_c[8], dp),
            *[ptr(np.ascontiguousarray(x[:, :50]), dp) for x in pa_c[9:]],
            ctypes.c_double(3600.0),
            ctypes.c_int(1),
            ptr(fl, dp),
        )
        nb = kern(
            *[x[:, :50] for x in fo],
            *[x[:, :50] for x in st],
            *[x[:, :50] for x in pa[:8]],
            pa[8],
            *[x[:, :50] for x in pa[9:]],
            3600.0,
            1.0,
        )
        diff = max(float(np.abs(nb[0] - sts[0]).max()), float(np.abs(nb[4] - fl[:, :, 0]).max()))

    print()
    print(
        f"{'implementation':<48} {'threads':>7} {'cell*member*steps/s':>20} {'vs NumPy':>9} {'vs C (same threads)':>20}"
    )
    for name, threads, rate in rows:
        c = c_rates.get(threads)
        vs_c = f"{rate / c:>19.2f}x" if c and not name.startswith("C ") else ""
        print(f"{name:<48} {threads:>7} {rate:>20.3e} {rate / ref_rate:>8.2f}x {vs_c:>20}")
    print(f"\nC port vs numba kernel max |difference| (sm, et): {diff:.2e}")
    scale = {r[1]: r[2] for r in rows if r[0] == "numba gufunc parallel target, float32"}
    if len(scale) > 1:
        print(
            f"numba parallel-target scaling 1 -> {ncores} threads: {scale[ncores] / scale[1]:.2f}x"
        )
    print(f"load average after the run: {os.getloadavg()}")
    print(
        "(constants of the C port mirror xldas.models._kernels:",
        K.T_RAIN,
        K.SWE_HALF_COVER,
        K.THETA_C_FRACTION,
        ")",
    )
    # figures for benchmarks/run.py (rates in cell*member*steps/s)
    return {"rows": rows, "numpy": ref_rate, "c": c_rates, "ncores": ncores, "work": work}


if __name__ == "__main__":
    main()
