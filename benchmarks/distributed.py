"""Distributed scaling of the model step, the LETKF analysis and the whole cycle (issue 9).

On the synthetic Pan-Third-Pole domain (``xldas.demo.pan_tp``; default 0.05°, 400 × 800
cells, 16 members, chunks of 100 × 100 cells):

1. **LocalCluster, 1 vs 2 worker processes** (1 thread each): wall time of

   * the model step: the ensemble advanced through one 12-hour window (4 steps of 3 h,
     perturbed forcing), inputs persisted on the workers first so that only the step is
     timed;
   * the LETKF analysis of the forecast (SMAP-like Tb, H and V), forecast persisted first;

   and the speed-up 1 → 2 workers;
2. **the whole cycle through the engine** (two 12-hour cycles into an icechunk store) on
   the LocalCluster of 2 processes, with the size of each cycle's task graph, for two
   domain sizes (the graph must grow linearly with the number of chunks);
3. **Slurm**: the same engine run on 2 Slurm worker jobs (``xldas.compute.slurm_cluster``,
   1 core each) against the LocalCluster of 2 processes. Skipped, with the reason, when
   no Slurm cluster answers (start the CI one with ``sudo bash ci/slurm/start.sh``; it is
   found like ``tests/conftest.py`` does: ``$SLURM_CONF`` or ``/tmp/xldas-slurm-conf``).

Every timing is the best of ``--repeat`` runs; the load average is printed with each
(the machine may be shared). Run: ``python benchmarks/distributed.py [--resolution 0.05]
[--members 16] [--chunk 100] [--skip-components | --skip-engine]
[--out benchmarks/results/pan_tp_distributed.md]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import pandas as pd


def _slurm_conf() -> tuple[str | None, str]:
    """SLURM_CONF of a running cluster (as tests/conftest.py finds it), or None and why."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return None, "Slurm is not installed (ci/slurm/install.sh)"
    conf = os.environ.get("SLURM_CONF")
    if not (conf and Path(conf).exists()):
        f = Path(os.environ.get("XLDAS_SLURM_CONF_FILE", "/tmp/xldas-slurm-conf"))
        conf = f.read_text().strip() if f.exists() else None
    if not conf or not Path(conf).exists():
        return None, "Slurm is not running (start it with `sudo bash ci/slurm/start.sh`)"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"],
            env={**os.environ, "SLURM_CONF": conf},
            capture_output=True,
            text=True,
            timeout=10,
        )
    except subprocess.TimeoutExpired:
        return None, "Slurm is not answering (sinfo timed out)"
    if out.returncode != 0 or not ({"idle", "mix"} & set(out.stdout.split())):
        return None, f"Slurm node not ready: {out.stdout.strip() or out.stderr.strip()!r}"
    return conf, ""


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _graph_size(*collections) -> int:
    from dask.base import collections_to_expr

    return len(collections_to_expr(collections, optimize_graph=True).__dask_graph__())


def _inputs(resolution, members, chunk):
    """Lazy ensemble, forcing window, parameters and observations of one 12 h window."""
    from xldas.demo import osse_forcing_perturbation, pan_tp
    from xldas.models import perturb

    tree = pan_tp(resolution=resolution, days=1, dt_hours=3, chunks=chunk)
    params = tree["params"].to_dataset()
    state = tree["initial"].to_dataset()
    ens = perturb(
        state,
        members,
        forcing_perturbation=osse_forcing_perturbation(),
        params=params,
        state_perturbation={"sm": 0.02},
        seed=1,
    )
    forcing = tree["forcing"].to_dataset().sel(time=slice("2019-07-01T01", "2019-07-01T12"))
    obs = tree["obs/smap"].to_dataset().sel(time="2019-07-01T12").drop_vars("time")
    return ens, forcing, params, obs


def bench_components(resolution, members, chunk, workers, repeat):
    """Model step and LETKF wall times on a LocalCluster of ``workers`` processes."""
    from distributed import Client, wait

    from xldas.compute import local_cluster
    from xldas.filters import assimilate
    from xldas.obs import TauOmega

    out = {}
    with (
        local_cluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        ens, forcing, params, obs = _inputs(resolution, members, chunk)
        ens, forcing, params, obs = client.persist([ens, forcing, params, obs])
        wait([ens, forcing, params, obs])

        def step():
            new = ens.ldas.step(forcing, params)
            wait(client.persist(new))
            return new

        fc = step()  # warm-up (numba compilation on every worker)
        out["step_tasks"] = _graph_size(ens.ldas.step(forcing, params))
        out["step_s"] = _best(step, repeat)
        out["step_load"] = _load()
        fc = client.persist(fc)
        wait(fc)
        op = TauOmega.smap()

        def analysis():
            ana = assimilate(fc, obs, op, params, method="letkf", inflation=1.05, loc_radius=10.0)
            wait(client.persist(ana))

        analysis()  # warm-up
        out["letkf_tasks"] = _graph_size(
            assimilate(fc, obs, op, params, method="letkf", inflation=1.05, loc_radius=10.0)
        )
        out["letkf_s"] = _best(analysis, repeat)
        out["letkf_load"] = _load()
    return out


def engine_run(resolution, members, chunk, client, scratch) -> dict:
    """Two 12 h cycles through the engine on ``client``; wall time and tasks per cycle."""
    from xldas.demo import pan_tp_experiment

    tmp = Path(tempfile.mkdtemp(prefix="xldas-dist-", dir=scratch))
    # the Pan-TP experiment of the catalog at this resolution: every observation
    # (no thinning), 10 km localisation
    exp = pan_tp_experiment(
        str(tmp / "store"),
        resolution=resolution,
        members=members,
        chunks=chunk,
        cycle="12h",
        overrides={
            "name": "pan_tp_distributed",
            "filter.loc_radius": 10.0,
            "observations.0.thinning": 1,
        },
    )
    t = time.perf_counter()
    rep = exp.run(client=client, quiet=True)
    wall = time.perf_counter() - t
    shutil.rmtree(tmp, ignore_errors=True)
    return {"wall_s": wall, "tasks": [r["tasks"] for r in rep.records], "load": _load()}


@contextlib.contextmanager
def _slurm_client(conf, workers, memory, interface):
    from distributed import Client

    from xldas.compute import slurm_cluster

    os.environ["SLURM_CONF"] = conf
    cluster = slurm_cluster(
        cores=1, processes=1, memory=memory, walltime="01:00:00", interface=interface
    )
    cluster.scale(jobs=workers)
    try:
        with Client(cluster) as client:
            client.wait_for_workers(workers, timeout=180)
            yield client
    finally:
        cluster.close()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--resolution", type=float, default=0.05)
    p.add_argument("--members", type=int, default=16)
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--slurm-memory", default="6GB")
    p.add_argument(
        "--slurm-interface", default="lo", help="network interface of the workers (lo: one node)"
    )
    p.add_argument("--scratch", default=None)
    p.add_argument("--skip-components", action="store_true")
    p.add_argument("--skip-engine", action="store_true", help="no engine or Slurm runs")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    from distributed import Client

    from xldas import __version__
    from xldas.compute import local_cluster
    from xldas.demo._pantp import PAN_TP_BBOX

    w, s, e, n = PAN_TP_BBOX
    ny, nx = round((n - s) / args.resolution), round((e - w) / args.resolution)
    chunks = -(-ny // args.chunk) * -(-nx // args.chunk)
    lines = [
        "# Distributed scaling on the Pan-Third-Pole domain",
        "",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; xldas {__version__}; "
        f"machine: {platform.machine()}, {os.cpu_count()} cores "
        f"(load average 1/5/15 min now {_load()}); dask {dask.__version__}.",
        "",
        f"Domain: {ny} × {nx} cells ({args.resolution}°), {args.members} members, 4 layers, "
        f"chunks {args.chunk} × {args.chunk} ({chunks} chunks); model step = one 12 h window "
        "(4 steps of 3 h, perturbed forcing); LETKF = one analysis of SMAP-like Tb (H, V), "
        "loc_radius 10 km. Best of "
        f"{args.repeat}. Workers: 1 thread each.",
        "",
    ]
    if not args.skip_components:
        res = {
            k: bench_components(args.resolution, args.members, args.chunk, k, args.repeat)
            for k in (1, 2)
        }
        lines += [
            "| LocalCluster | model step (s) | LETKF analysis (s) | load avg (step; LETKF) |",
            "|---|---|---|---|",
        ]
        for k in (1, 2):
            r = res[k]
            lines.append(
                f"| {k} worker process{'es' if k > 1 else ''} | {r['step_s']:.1f} | "
                f"{r['letkf_s']:.1f} | {r['step_load']}; {r['letkf_load']} |"
            )
        lines += [
            f"| **speed-up 1 → 2** | **{res[1]['step_s'] / res[2]['step_s']:.2f}×** | "
            f"**{res[1]['letkf_s'] / res[2]['letkf_s']:.2f}×** | |",
            "",
            f"Task graphs: model step {res[2]['step_tasks']} tasks, LETKF analysis "
            f"{res[2]['letkf_tasks']} tasks ({chunks} chunks).",
            "",
        ]
        print("\n".join(lines), flush=True)

    if args.skip_engine:
        _finish(lines, args.out)
        return
    # the engine cycle: LocalCluster(2) at two sizes (linear task graphs)
    lines += [
        "## The cycle through the engine (2 cycles of 12 h, icechunk store)",
        "",
        "| cluster | cells | chunks | wall (s) | tasks per cycle | load avg after |",
        "|---|---|---|---|---|---|",
    ]
    half = 2 * args.resolution
    sizes = [(half, args.chunk), (args.resolution, args.chunk)]
    local = {}
    with (
        local_cluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        for res_deg, ch in sizes:
            yy, xx = round((n - s) / res_deg), round((e - w) / res_deg)
            r = engine_run(res_deg, args.members, ch, client, args.scratch)
            local[res_deg] = r
            lines.append(
                f"| LocalCluster, 2 processes | {yy} × {xx} | {-(-yy // ch) * -(-xx // ch)} | "
                f"{r['wall_s']:.1f} | {' / '.join(map(str, r['tasks']))} | {r['load']} |"
            )
            print(lines[-1], flush=True)
    conf, why = _slurm_conf()
    if conf is None:
        lines += ["", f"Slurm part skipped: {why}."]
    else:
        with _slurm_client(conf, 2, args.slurm_memory, args.slurm_interface) as client:
            r = engine_run(args.resolution, args.members, args.chunk, client, args.scratch)
        lines.append(
            f"| Slurm, 2 worker jobs | {ny} × {nx} | {chunks} | {r['wall_s']:.1f} | "
            f"{' / '.join(map(str, r['tasks']))} | {r['load']} |"
        )
        ratio = r["wall_s"] / local[args.resolution]["wall_s"]
        lines += ["", f"Slurm (2 jobs) / LocalCluster (2 processes) wall-time ratio: {ratio:.2f}."]
    _finish(lines, args.out)
    _ = (np, pd)


def _finish(lines, out) -> None:
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)


if __name__ == "__main__":
    import sys

    # this file is named like the ``distributed`` package: run as a script, its folder
    # comes first on sys.path and would shadow the package (imported inside the functions)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.modules.pop("distributed", None)
    main()
