"""Out-of-core cycling (issue 9): memory and cost as the domain grows.

The same experiment (``catalogs/experiments/pan_tp_letkf.yaml``, the lazily generated
Pan-Third-Pole domain ``xldas.demo.pan_tp``, here at 0.1° and 0.05° with 8 members, 4
layers, perturbed forcing, SMAP-like Tb, LETKF, two 12-hour cycles through the real engine
into an icechunk store) runs in fresh subprocesses on 200 × 400 and 400 × 800 cells with
the same chunks (100 × 100 cells: 8 and 32 chunks). Each reports its peak resident memory
(``getrusage``) and the size of each cycle's task graph.

* **Flat memory.** The peak of the large domain may exceed the small one's by at most
  35 % (for 4× the cells, chunks and written bytes). Measured (2 cores, 2026-11-24, three
  pairs of runs): 0.61 → 0.69, 0.59 → 0.67 and 0.53 → 0.66 GB (+14 to +24 %; the small
  run's peak itself varies by 0.08 GB). Before the fix the engine grew by 53 % (0.59 →
  0.90 GB) and materialising the checkpoint and outputs of the domain (the engine before
  it streamed; ``materialise`` below) by about 115 % (0.66 → 1.41 GB): both fail. What had held the
  memory: glibc's allocator (its mmap threshold rises as chunk-sized arrays are freed,
  after which freed chunks stay in the fragmented heap; ``xldas.cycle.store`` fixes the
  thresholds for streamed cycles), and, for filters without halos, Dask's static
  ordering, which computes the per-chunk terms of the domain-wide diagnostics and the
  inputs of every chunk early (the store evaluates such cycles in batches of chunks).
  The LETKF's cycle has two passes (``xldas.cycle.engine``): its halos are reads of a
  scratch store, so that both passes run in batches too. What remains grows with the
  task graph (a few kB per task): at 32 members (``benchmarks/results/pan_tp.md``)
  0.95 -> 1.13 GB from 32 to 128 chunks.
* **Linear cost.** The number of tasks per cycle is a + b × chunks (+ the log of the tree
  reductions): from 8 to 32 chunks it may grow at most 4× (2 % for the reduction trees),
  and at least 3×.

Wall time is not asserted (``benchmarks/pan_tp.py`` measures it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MEMBERS = 8
CHUNK = 100
#: resolution (degrees) → cells over the default 20° × 40° Pan-TP box
SIZES = {0.1: (200, 400), 0.05: (400, 800)}


def _experiment(resolution: float, store: str, members: int = MEMBERS, method: str = "letkf"):
    """The Pan-TP experiment (its YAML) at ``resolution``: 12-hour steps, every
    observation (no thinning), 10 km localisation."""
    from xldas.demo import pan_tp_experiment

    filt = {"method": method, "inflation": 1.05} | (
        {"loc_radius": 10.0} if method == "letkf" else {}
    )
    return pan_tp_experiment(
        store,
        resolution=resolution,
        members=members,
        chunks=CHUNK,
        cycle="12h",
        overrides={
            "name": "pan_tp_scale_test",
            "demo.dt_hours": 12,
            "observations.0.thinning": 1,
            "filter": filt,
        },
    )


def _child(resolution: float, store: str, *args) -> None:
    """Run the experiment in this (fresh) process; print peak RSS and graph sizes.

    Extra arguments: members, filter method, and ``materialise`` to commit every cycle
    through the in-memory path (the control that the memory test must catch)."""
    import resource

    import dask

    from xldas.cycle.store import CycleStore

    if "materialise" in args:
        CycleStore._write_streaming = CycleStore._write_in_memory
        args = tuple(a for a in args if a != "materialise")

    dask.config.set(scheduler="threads", num_workers=2)
    members = int(args[0]) if args else MEMBERS
    method = args[1] if len(args) > 1 else "letkf"
    exp = _experiment(resolution, store, members, method)
    report = exp.run(quiet=True)
    from xldas.cycle.store import open_output

    ck = open_output(store, "checkpoint")
    out = {
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "tasks": [r["tasks"] for r in report.records],
        "obs_used": [r["obs_used"] for r in report.records],
        "checkpoint_bytes": int(sum(ck[v].nbytes for v in ck.data_vars)),
        "dtypes": {v: str(ck[v].dtype) for v in ck.data_vars},
    }
    print("RESULT " + json.dumps(out))


def _run(resolution: float, tmp_path: Path, *extra: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "2"}
    store = str(tmp_path / f"store-{resolution}-{'-'.join(extra)}")
    proc = subprocess.run(
        [sys.executable, __file__, str(resolution), store, str(MEMBERS), "letkf", *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scale")
    return {res: _run(res, tmp) for res in SIZES}


def test_two_sizes_ran_the_real_cycle(runs):
    for res in SIZES:
        r = runs[res]
        assert len(r["tasks"]) == 2, r  # two analysis times, both streamed
        assert all(n > 0 for n in r["obs_used"]), r  # the LETKF had observations
        ny, nx = SIZES[res]
        # 13 float32 fields per member: sm, tsoil (4 layers each), swe, canopy_water, pert_*
        assert r["checkpoint_bytes"] == 13 * 4 * MEMBERS * ny * nx
        assert set(r["dtypes"].values()) == {"float32"}


def test_peak_rss_is_flat(runs):
    small, large = runs[0.1], runs[0.05]
    growth = large["peak_rss"] - small["peak_rss"]
    mib = 2**20
    assert growth < 0.35 * small["peak_rss"], (
        f"peak RSS grew by {growth / mib:.0f} MiB ({growth / small['peak_rss']:.0%}) from "
        f"200x400 to 400x800 cells ({small['peak_rss'] / mib:.0f} -> "
        f"{large['peak_rss'] / mib:.0f} MiB)"
    )


def test_task_graph_is_linear_in_chunks(runs):
    small, large = runs[0.1], runs[0.05]
    n_small = (200 // CHUNK) * (400 // CHUNK)
    n_large = (400 // CHUNK) * (800 // CHUNK)
    for ts, tl in zip(small["tasks"], large["tasks"]):
        ratio = tl / ts
        assert ratio <= 1.02 * n_large / n_small, (ts, tl)
        # and it does grow with the chunks (not a constant graph that hides the work)
        assert ratio >= 0.75 * n_large / n_small, (ts, tl)


if __name__ == "__main__":
    _child(float(sys.argv[1]), sys.argv[2], *sys.argv[3:])
