"""One benchmark table for xldas (issue 9), measured in one run on the current machine.

Run: ``python benchmarks/run.py [--quick] [--out benchmarks/results]``

Prints, with the machine's core count and memory, the table

| row | figure | compared with |

for the land-model step, the EnKF/ETKF/LETKF/UKF/PF analyses, the retrieval inversions,
1 → 2 dask workers, the Pan-Third-Pole cycle and the GPU, and writes it (with the raw
output of every benchmark below it) to ``<out>/<date>-<machine>.md``. Every figure is a
ratio measured side by side in the same run (xldas next to its reference on the same
problem), not an absolute time to compare across machines. It calls the benchmark
scripts of this folder (``land_model.py``, ``filters.py``, ``retrieval.py``, and where
present ``distributed.py``, ``pan_tp.py``, ``gpu.py``); a missing script gives the row
"not run (benchmarks/X.py missing)". ``--quick`` runs smaller problems (minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import io
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# the scripts here are loaded by path; with this folder on sys.path, benchmarks/distributed.py
# would shadow the dask ``distributed`` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]


class _Tee(io.TextIOBase):
    """Write to the terminal and keep a copy (the raw output goes into the results file)."""

    def __init__(self, stream):
        self.stream, self.buf = stream, io.StringIO()

    def write(self, s):
        self.stream.write(s)
        self.buf.write(s)
        return len(s)

    def flush(self):
        self.stream.flush()


def _load(name):
    path = HERE / f"{name}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"xldas_bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def machine() -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) / 2**20
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = m.group(1).strip() if m else cpu
    import numba

    return {
        "host": platform.node() or "machine",
        "cores": cores,
        "memory_gib": mem,
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "load": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def copy_bandwidth(nbytes=2**28, repeat=5) -> float:
    """Bytes per second moved by ``np.copyto`` (read + write) on one core."""
    a = np.ones(nbytes // 8)
    b = np.empty_like(a)
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return 2 * a.nbytes / best


def _run(label, fn, log):
    """Run one benchmark; its output is echoed and kept; an error is reported, not raised."""
    print(f"\n===== {label} =====", flush=True)
    tee = _Tee(sys.stdout)
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(tee):
            out = fn()
        err = None
    except (Exception, SystemExit) as exc:  # a failing benchmark is a row saying so
        traceback.print_exc()
        out, err = None, f"{type(exc).__name__}: {exc}"
    log.append((label, tee.buf.getvalue(), time.perf_counter() - t0))
    return out, err


# ------------------------------------------------------------------------- rows
def land_rows(q, log):
    mod = _load("land_model")
    if mod is None:
        return [("land model step", "not run (benchmarks/land_model.py missing)", "")]
    cells, members, steps = (8_000, 8, 12) if q else (62_500, 16, 24)
    args = ["--cells", str(cells), "--members", str(members), "--steps", str(steps)]
    args += ["--ref-cells", str(1000 if q else 4000), "--repeat", "1" if q else "2"]
    fig, err = _run("land model (benchmarks/land_model.py)", lambda: mod.main(args), log)
    if fig is None:
        return [("land model step", f"failed: {err}", "")]
    rows = {name: rate for name, threads, rate in fig["rows"] if threads == 1}
    nb = rows.get("numba gufunc serial target, float32")
    c1 = fig["c"].get(1)
    # memory-bandwidth bound: every input and output of the kernel streamed once
    from xldas.models._kernels import land_column

    fo, st, pa = mod.make_inputs(64, members, steps)
    res = land_column.compile("cpu")(*fo, *st, *pa, 3600.0, 1.0)
    res = res if isinstance(res, tuple) else (res,)
    per_call = sum(x.nbytes for x in (*fo, *st, *pa, *res)) / (64 * members * steps)
    bound = copy_bandwidth() / per_call
    return [
        (
            "land model step (numba, float32, 1 core)",
            f"{nb:.3g} cell·member·steps/s/core",
            f"{nb / fig['numpy']:.1f}× the NumPy reference; "
            + (f"{nb / c1:.2f}× C `gcc -O3 -march=native`; " if c1 else "C not built; ")
            + f"memory-bandwidth bound {bound:.3g}/s ({per_call:.0f} B per cell·member·step "
            f"at the np.copyto bandwidth): the step runs at {100 * nb / bound:.1f} % of it "
            "(compute-bound)",
        )
    ]


def filter_rows(q, log):
    mod = _load("filters")
    if mod is None:
        return [("analyses", "not run (benchmarks/filters.py missing)", "")]
    kw = {"size": 300, "small_size": 40, "repeat": 2, "dapper_cycles": 300} if q else {}
    fig, err = _run("filters (benchmarks/filters.py)", lambda: mod.figures(**kw), log)
    if fig is None:
        return [("EnKF/ETKF/LETKF/UKF/PF analysis", f"failed: {err}", "")]
    rows = []
    P = fig["pixels"]
    for name in ("EnKF", "ETKF"):
        rate, ratio = fig[f"{name}_full"]
        rate_i, ratio_i = fig[f"{name}_inplace"]
        _, ratio_d = fig[f"{name}_full_diag"]
        _, ratio_k = fig[f"{name}_single"]
        _, ratio_r = fig[f"{name}_single_reuse"]
        _, ratio_s = fig[f"{name}_stacked"]
        rows.append(
            (
                f"{name} analysis, 1 obs/pixel ({P} px, {fig['members']} members, 6 elements)",
                f"{rate_i:.3g} pixels/s/core in place ({rate:.3g} into new arrays)",
                f"memory copy of the ensemble (np.copyto, goal ≤ 3×): full path in place "
                f"(overwrite_ensemble=True) {ratio_i:.1f}× the copy time, {ratio:.1f}× into "
                f"new arrays, {ratio_d:.1f}× with diagnostics; single-pass kernel "
                f"{ratio_k:.1f}× ({ratio_r:.1f}× into reused arrays); general stacked path "
                f"{ratio_s:.1f}×",
            )
        )
    rows.append(
        (
            "LETKF 3 × 3 neighbourhood",
            f"{fig['LETKF_full']:.3g} pixels/s/core (kernel {fig['LETKF_kernel']:.3g})",
            f"full path / kernel = {fig['LETKF_kernel'] / fig['LETKF_full']:.1f}×",
        )
    )
    fp = fig.get("filterpy")
    for key, label in (("ukf", "UKF"), ("srukf", "SR-UKF")):
        cmp = f"{fig[key] / fp:.0f}× filterpy `UnscentedKalmanFilter` per pixel, same problem (goal ≥ 100×)"
        rows.append(
            (
                f"{label} (13 sigma points)",
                f"{fig[key]:.3g} pixels/s/core",
                cmp if fp else "filterpy not installed",
            )
        )
    rows.append(("PF (SIR, jitter)", f"{fig['pf']:.3g} pixels/s/core", "—"))
    dap = fig.get("dapper")
    for label, r in (dap or {}).items():
        rows.append(
            (
                f"Lorenz-96 {label}",
                f"xldas {r['xldas_s']:.1f} s, RMSE {r['xldas_rmse']:.3f}",
                f"DAPPER {r['dapper_s']:.1f} s, RMSE {r['dapper_rmse']:.3f}: "
                f"xldas {r['dapper_s'] / r['xldas_s']:.1f}× faster",
            )
        )
    if dap is None:
        rows.append(("Lorenz-96 vs DAPPER", "not run (DAPPER not installed)", ""))
    return rows


def retrieval_rows(q, log):
    mod = _load("retrieval")
    if mod is None:
        return [("retrieval inversions", "not run (benchmarks/retrieval.py missing)", "")]
    n = 2000 if q else 20000
    fig, err = _run(
        "retrieval inversions (benchmarks/retrieval.py)", lambda: mod.bench_inversions(n), log
    )
    if fig is None:
        return [("retrieval inversions", f"failed: {err}", "")]
    return [
        (f"retrieval: {name}", f"{a:.3g} pixels/s/core", f"{a / b:.0f}× the NumPy reference")
        for name, a, b in fig
    ]


#: command-line arguments of the other benchmark scripts in quick mode
QUICK_ARGS = {
    "pan_tp": ["--sizes", "100x200,200x400", "--members", "8"],
    "gpu": ["--cells", "20000", "--pixels", "20000"],
    "distributed": ["--resolution", "0.1", "--members", "8", "--repeat", "1"],
}


def _summary(output: str) -> str:
    """The speed-up row of a script's markdown tables (else the last row), with headers."""
    lines = [ln.strip() for ln in output.strip().splitlines()]
    blocks, cur = [], []  # markdown tables: runs of lines starting with "|"
    for ln in [*lines, ""]:
        if ln.startswith("|"):
            if not set(ln) <= set("|-: "):
                cur.append(ln)
        elif cur:
            blocks.append(cur)
            cur = []
    blocks = [b for b in blocks if len(b) >= 2]
    # the speed-up row where there is one, else the last row of the last table
    hits = [(b, r) for b in blocks for r in b[1:] if "speed-up" in r.lower()]
    if hits or blocks:
        table, last = hits[-1] if hits else (blocks[-1], blocks[-1][-1])
        head, row = ([c.strip(" *") for c in ln.strip("|").split("|")] for ln in (table[0], last))
        cells = "; ".join(f"{h}: {v}" for h, v in zip(head, row, strict=False))
        return cells
    text = [ln for ln in lines if ln]
    return text[-1] if text else "no output"


def _optional(name, label, q, log, compared):
    """Rows from a benchmark another part of the project provides (may be missing).

    The script runs in its own process (``python benchmarks/<name>.py``): its dask
    workers must be able to import what it sends them.
    """
    path = HERE / f"{name}.py"
    if not path.exists():
        return [(label, f"not run (benchmarks/{name}.py missing)", compared)]
    args = QUICK_ARGS.get(name, ["--quick"]) if q else []

    def call():
        proc = subprocess.run(
            # -P: without the script folder on sys.path (distributed.py would shadow dask's)
            [sys.executable, "-P", str(path), *args],
            capture_output=True,
            text=True,
            cwd=HERE.parent,
        )
        print(proc.stdout, end="")
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"exit status {proc.returncode}: {tail}")

    _, err = _run(f"{label} (benchmarks/{name}.py {' '.join(args)})", call, log)
    if err:
        return [(label, f"failed: {err}", compared)]
    return [(label, f"{_summary(log[-1][1])} (full output below)", compared)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller problems (minutes)")
    ap.add_argument("--out", default=str(HERE / "results"), help="folder of the results file")
    a = ap.parse_args(argv)
    q = a.quick
    t0 = time.perf_counter()
    m = machine()
    log = []
    rows = []
    rows += land_rows(q, log)
    rows += filter_rows(q, log)
    rows += retrieval_rows(q, log)
    rows += _optional("distributed", "1 → 2 workers", q, log, "ideal 2×")
    rows += _optional(
        "pan_tp", "Pan-TP cycle", q, log, "linear-scaling prediction from a small domain"
    )
    rows += _optional("gpu", "GPU", q, log, "all CPU cores")
    date = dt.datetime.now(dt.UTC)
    mem = f"{m['memory_gib']:.0f} GiB" if m["memory_gib"] else "unknown memory"
    head = [
        f"# xldas benchmark table — {date:%Y-%m-%d %H:%M} UTC — {m['host']}",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {mem}; Python {m['python']}, "
        f"NumPy {m['numpy']}, numba {m['numba']}; load average at start {m['load']}. "
        f"Mode: {'quick' if q else 'full'}; total {time.perf_counter() - t0:.0f} s.",
        "",
        "Figures are ratios measured side by side in this run (rates per core: numba serial",
        "target, one BLAS thread), not absolute times to compare across machines.",
        "",
        "| row | figure | compared with |",
        "|---|---|---|",
    ]
    table = head + [f"| {r} | {f} | {c} |" for r, f, c in rows]
    text = "\n".join(table)
    print("\n" + text)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", m["host"])
    path = out / f"{date:%Y-%m-%d}-{host}-{m['cores']}cores{'-quick' if q else ''}.md"
    raw = ["", "## Raw output", ""]
    for label, buf, secs in log:
        raw += [f"### {label} ({secs:.0f} s)", "", "```", buf.rstrip(), "```", ""]
    path.write_text(text + "\n" + "\n".join(raw))
    print(f"\nwritten to {path}")
    return path


if __name__ == "__main__":
    main()
