"""Out-of-core cycling at the Pan-Third-Pole scale (issue 9).

The synthetic Pan-TP domain (``xldas.demo.pan_tp``: 65–105°E, 25–45°N at 0.01° =
2000 × 4000 cells) with 32 members and 4 soil layers is cycled through the real engine
(``xldas.cycle``: forecast with perturbed forcing, SMAP-like Tb at 00 and 12 UTC, LETKF,
outputs and checkpoint streamed into an icechunk store) for two 12-hour analysis cycles
(model step 3 h: 4 steps per cycle). Each run is a fresh process; it reports

* wall time, peak resident memory (``getrusage``), cell·member·steps per second,
* the size of each cycle's task graph,
* the load average of the machine before and after (other jobs share its cores).

A small domain of the same resolution runs first; its cost per cell·member·step predicts
the larger runs (the prediction a linear cost implies), and the full 2000 × 4000 domain
is run when ``--full`` is given (or predicted from the largest run when it is not).

Run: ``python benchmarks/pan_tp.py [--sizes 250x500,500x1000] [--members 32] [--full]
[--out benchmarks/results/pan_tp.md]``. Sub-domains are boxes of the 0.01° Pan-TP grid
centred on the plateau (90°E, 33°N), clipped to the default box.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESOLUTION = 0.01
FULL = (2000, 4000)
CENTRE = (83.5, 33.0)  # inside both overpasses of the two cycles


def experiment(ny: int, nx: int, members: int, chunk: int, store: str, loc_km: float):
    """The Pan-TP experiment (``catalogs/experiments/pan_tp_letkf.yaml``) on an ``ny`` ×
    ``nx`` box of its 0.01° grid."""
    from xldas.demo import PAN_TP_BBOX, pan_tp_experiment

    w0, s0, e0, n0 = PAN_TP_BBOX
    if (ny, nx) == FULL:
        bbox = PAN_TP_BBOX
    else:
        lon0 = min(max(CENTRE[0] - nx * RESOLUTION / 2, w0), e0 - nx * RESOLUTION)
        lat0 = min(max(CENTRE[1] - ny * RESOLUTION / 2, s0), n0 - ny * RESOLUTION)
        bbox = (
            round(lon0, 2),
            round(lat0, 2),
            round(lon0 + nx * RESOLUTION, 2),
            round(lat0 + ny * RESOLUTION, 2),
        )
    return pan_tp_experiment(
        store,
        resolution=RESOLUTION,
        bbox=bbox,
        members=members,
        chunks=chunk,
        cycle="12h",
        overrides={"name": f"pan_tp_{ny}x{nx}", "filter.loc_radius": loc_km},
    )


def child(spec: dict) -> dict:
    """Run one experiment in this process (threaded scheduler, all cores)."""
    import dask

    dask.config.set(scheduler="threads", num_workers=spec["threads"])
    exp = experiment(
        spec["ny"], spec["nx"], spec["members"], spec["chunk"], spec["store"], spec["loc_km"]
    )
    prof = _TaskTimes() if spec.get("profile") else contextlib.nullcontext()
    t0 = time.perf_counter()
    with prof:
        report = exp.run(quiet=True)
    wall = time.perf_counter() - t0
    from xldas.cycle.store import open_output

    ck = open_output(spec["store"], "checkpoint")
    return {
        "wall_s": wall,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "cycles": [
            {k: r[k] for k in ("cycle", "obs_used", "tasks", "wall_time", "innovation_rmse")}
            for r in report.records
        ],
        "checkpoint_bytes": int(sum(ck[v].nbytes for v in ck.data_vars)),
        "task_seconds": dict(prof.seconds.most_common()) if spec.get("profile") else {},
    }


class _TaskTimes:
    """Dask callback: seconds spent in the tasks of each key prefix (all threads)."""

    def __new__(cls):
        import collections
        import threading

        from dask.callbacks import Callback
        from dask.utils import key_split

        class TaskTimes(Callback):
            def __init__(self):
                super().__init__()
                self.start, self.seconds = {}, collections.Counter()
                self.lock = threading.Lock()

            def _pretask(self, key, dsk, state):
                self.start[key] = time.perf_counter()

            def _posttask(self, key, result, dsk, state, id):
                dt = time.perf_counter() - self.start.pop(key, time.perf_counter())
                with self.lock:
                    self.seconds[key_split(key)] += dt

        return TaskTimes()


def run_size(ny, nx, args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="xldas-pan-tp-", dir=args.scratch))
    spec = {
        "ny": ny,
        "nx": nx,
        "members": args.members,
        "chunk": args.chunk,
        "store": str(tmp / "store"),
        "loc_km": args.loc_km,
        "threads": args.threads,
        "profile": args.profile,
    }
    load0 = os.getloadavg()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    load1 = os.getloadavg()
    disk = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    shutil.rmtree(tmp, ignore_errors=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"run {ny}x{nx} failed:\n{proc.stderr[-4000:]}")
    out = json.loads(lines[-1][7:])
    steps = 8  # two cycles of 12 h at 3 h
    out.update(
        ny=ny,
        nx=nx,
        members=args.members,
        steps=steps,
        cms=ny * nx * args.members * steps,
        load_before=load0,
        load_after=load1,
        store_bytes=disk,
    )
    out["cms_per_s"] = out["cms"] / out["wall_s"]
    return out


def report(results: list[dict], args) -> str:
    from xldas import __version__

    base = results[0]
    per = base["wall_s"] / base["cms"]
    lines = [
        "# Pan-Third-Pole out-of-core cycling benchmark",
        "",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; xldas {__version__}; "
        f"machine: {platform.machine()} {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
        f"Python {platform.python_version()}; dask threaded scheduler, {args.threads} threads.",
        "",
        f"Experiment: 0.01° Pan-TP grid (boxes centred on {CENTRE[0]}°E {CENTRE[1]}°N), "
        f"{args.members} members, 4 layers, forcing perturbation (3 AR(1) fields), 2 cycles "
        f"of 12 h (model step 3 h, 8 steps), SMAP-like Tb (H, V) thinned 1/3 per axis, "
        f"LETKF (loc_radius {args.loc_km} km), chunks {args.chunk} × {args.chunk} cells, "
        "state/outputs/checkpoint streamed to an icechunk store. cms = cells × members × "
        "model steps.",
        "",
        "| cells | cms | wall (s) | cms/s | peak RSS (GiB) | checkpoint (GiB) | tasks/cycle "
        "| predicted wall (s) | load avg before → after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        pred = per * r["cms"]
        tasks = "/".join(str(c["tasks"]) for c in r["cycles"])
        lines.append(
            f"| {r['ny']} × {r['nx']} | {r['cms']:.3g} | {r['wall_s']:.0f} | "
            f"{r['cms_per_s']:.3g} | {r['peak_rss_bytes'] / 2**30:.2f} | "
            f"{r['checkpoint_bytes'] / 2**30:.2f} | {tasks} | {pred:.0f} | "
            f"{r['load_before'][0]:.1f} → {r['load_after'][0]:.1f} |"
        )
    for r in results:
        secs = r.get("task_seconds") or {}
        if not secs:
            continue
        total = sum(secs.values())
        top = sorted(secs.items(), key=lambda kv: -kv[1])[:10]
        lines += [
            "",
            f"Task time of the {r['ny']} × {r['nx']} run by key prefix ({total:.0f} s in "
            f"{args.threads} threads for {r['wall_s']:.0f} s wall): "
            + ", ".join(f"{k} {v / total:.0%}" for k, v in top)
            + ".",
        ]
    big = results[-1]
    if (big["ny"], big["nx"]) != FULL:
        cells_full = FULL[0] * FULL[1]
        cms_full = cells_full * args.members * 8
        rate = big["cms_per_s"]
        lines += [
            "",
            f"**Full domain** (2000 × 4000 cells, {cms_full:.3g} cms) not run here: predicted "
            f"{cms_full / rate / 3600:.1f} h on this machine at the rate of the largest run "
            f"({rate:.3g} cms/s; {cms_full * per / 3600:.1f} h at the rate of the smallest), "
            f"checkpoint {cells_full * args.members * 13 * 4 / 2**30:.1f} GiB (13 float32 "
            "fields per member).",
        ]
        if len(results) > 1:
            a, b = results[0], results[-1]
            ca, cb = a["ny"] * a["nx"], b["ny"] * b["nx"]
            slope = (b["peak_rss_bytes"] - a["peak_rss_bytes"]) / (cb - ca)
            full_rss = a["peak_rss_bytes"] + slope * (cells_full - ca)
            grow = b["peak_rss_bytes"] - a["peak_rss_bytes"]
            lines += [
                "",
                f"**Peak RSS** from {a['ny']} × {a['nx']} to {b['ny']} × {b['nx']} cells "
                f"({cb / ca:.0f}× the cells): {a['peak_rss_bytes'] / 2**30:.2f} → "
                f"{b['peak_rss_bytes'] / 2**30:.2f} GiB ({grow / a['peak_rss_bytes']:+.0%}; "
                f"{slope * 1e6 / 2**30:.2f} GiB per 10⁶ cells, "
                f"{slope / args.members:.0f} bytes per cell and member). Extrapolated "
                f"linearly, the full domain would peak near {full_rss / 2**30:.1f} GiB (an "
                "upper bound: the part that grows is the task graph, a few kB per task, and "
                "the LETKF halos that the single compute of a cycle holds for about a row "
                "of chunks).",
            ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="250x500,500x1000", help="ny x nx boxes, small first")
    p.add_argument("--full", action="store_true", help="also run the 2000 x 4000 domain")
    p.add_argument("--members", type=int, default=32)
    p.add_argument("--chunk", type=int, default=250)
    p.add_argument("--loc-km", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--scratch", default=None, help="folder for the temporary stores")
    p.add_argument("--out", default=None, help="markdown file for the results")
    p.add_argument(
        "--profile", action="store_true", help="report task time per key prefix (threads)"
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    if args.full:
        sizes.append(FULL)
    results = []
    for ny, nx in sizes:
        r = run_size(ny, nx, args)
        print(json.dumps(r), flush=True)
        results.append(r)
    text = report(results, args)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
