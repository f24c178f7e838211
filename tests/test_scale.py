"""Out-of-core cycling (issue 9): flat peak memory and linear cost with the domain size.

The same experiment (the lazily generated Pan-Third-Pole domain, ``xldas.demo.pan_tp``,
16 members, 4 layers, LETKF, two 12-hour cycles through the real engine into an icechunk
store) is run in two fresh subprocesses on 200 × 400 and 400 × 800 cells with the same
chunks (50 × 50 cells). Each reports its peak resident memory (``getrusage``) and the
size of each cycle's task graph.

* **Flat peak RSS.** A streaming engine holds a few chunks per thread whatever the
  domain, so the peak of the 4× larger domain may exceed the small one's only by noise
  (allocator, graph bookkeeping, which grows with the number of tasks: a few kB per task).
  An engine that materialises the domain holds at least one full copy of the ensemble at
  some instant (the old engine computed the whole checkpoint before writing it), which is
  ``checkpoint_bytes`` at the large size (13 float32 fields × 16 members × 320 000 cells
  = 266 MB); its peak rises by at least 3/4 of that (the small run holds 1/4). The
  tolerance, half the large checkpoint (133 MB), lies between both.
* **Linear cost.** The number of tasks per cycle is a + b × chunks: from 8 × 4 to 16 × 8
  chunks it may grow at most 4× (the constant part makes it a bit less), never faster.

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


def _experiment(
    resolution: float, store: str, members: int = MEMBERS, method: str = "letkf"
) -> dict:
    return {
        "name": "pan_tp_scale_test",
        "demo": {
            "domain": "pan_tp",
            "resolution": resolution,
            "start": "2019-07-01",
            "days": 1,
            "dt_hours": 12,
            "seed": 0,
        },
        "period": {"start": "2019-07-01T00:00", "end": "2019-07-02T00:00", "cycle": "12h"},
        "model": {"params": {"kind": "demo"}, "initial_state": "demo"},
        "forcing": {"kind": "demo"},
        "observations": [
            {
                "name": "smap",
                "source": {"kind": "demo", "sensor": "smap"},
                "operator": {"type": "tau_omega", "preset": "smap"},
                "variables": ["tb_h", "tb_v"],
                "error": {"std": 2.0, "units": "K"},
            }
        ],
        "filter": {"method": method, "inflation": 1.05}
        | ({"loc_radius": 10.0} if method == "letkf" else {}),
        "ensemble": {
            "members": members,
            "seed": 1,
            "forcing_perturbation": {},
            "state_perturbation": {"sm": 0.02},
        },
        "output": {"store": store, "overwrite": True, "chunks": {"lat": CHUNK, "lon": CHUNK}},
    }


def _child(resolution: float, store: str, *args) -> None:
    """Run the experiment in this (fresh) process; print peak RSS and graph sizes.

    Extra arguments: members, filter method, and ``materialise`` to commit every cycle
    through the in-memory path (the control that the memory test must catch)."""
    import resource

    import dask

    from xldas.cycle import Experiment
    from xldas.cycle.store import CycleStore

    if "materialise" in args:
        CycleStore._write_streaming = CycleStore._write_in_memory
        args = tuple(a for a in args if a != "materialise")

    dask.config.set(scheduler="threads", num_workers=2)
    members = int(args[0]) if args else MEMBERS
    method = args[1] if len(args) > 1 else "letkf"
    exp = Experiment.from_dict(_experiment(resolution, store, members, method))
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


def _run(resolution: float, tmp_path: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "2"}
    store = str(tmp_path / f"store-{resolution}")
    proc = subprocess.run(
        [sys.executable, __file__, str(resolution), store],
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
    for res, r in runs.items():
        assert len(r["tasks"]) == 2, r  # two analysis times, both streamed
        assert all(n > 0 for n in r["obs_used"]), r  # the LETKF had observations
        ny, nx = SIZES[res]
        # 13 float32 fields per member: sm, tsoil (4 layers each), swe, canopy_water, pert_*
        assert r["checkpoint_bytes"] == 13 * 4 * MEMBERS * ny * nx
        assert set(r["dtypes"].values()) == {"float32"}


def test_peak_rss_is_flat(runs):
    small, large = runs[0.1], runs[0.05]
    growth = large["peak_rss"] - small["peak_rss"]
    tolerance = 0.5 * large["checkpoint_bytes"]
    assert growth < tolerance, (
        f"peak RSS grew by {growth / 2**20:.0f} MiB from 200x400 to 400x800 cells "
        f"(tolerance {tolerance / 2**20:.0f} MiB = half the ensemble at the large size): "
        f"{small['peak_rss'] / 2**20:.0f} -> {large['peak_rss'] / 2**20:.0f} MiB"
    )


def test_task_graph_is_linear_in_chunks(runs):
    small, large = runs[0.1], runs[0.05]
    n_small = (200 // CHUNK) * (400 // CHUNK)
    n_large = (400 // CHUNK) * (800 // CHUNK)
    for ts, tl in zip(small["tasks"], large["tasks"]):
        ratio = tl / ts
        assert ratio <= n_large / n_small, (ts, tl)
        # and it does grow with the chunks (not a constant graph that hides the work)
        assert ratio >= 0.75 * n_large / n_small, (ts, tl)


if __name__ == "__main__":
    _child(float(sys.argv[1]), sys.argv[2], *sys.argv[3:])
