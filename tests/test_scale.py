"""Out-of-core cycling (issue 9): memory and cost as the domain grows.

The same experiment (the lazily generated Pan-Third-Pole domain, ``xldas.demo.pan_tp``,
8 members, 4 layers, perturbed forcing, SMAP-like Tb, LETKF, two 12-hour cycles through the
real engine into an icechunk store) runs in fresh subprocesses on 200 × 400 and 400 × 800
cells with the same chunks (100 × 100 cells: 8 and 32 chunks). Each reports its peak
resident memory (``getrusage``) and the size of each cycle's task graph. A third run, the
**control**, commits the large domain the way the engine did before it streamed (compute the
whole checkpoint and outputs, then write them: ``CycleStore._write_in_memory``).

* **Memory.** Streaming must save at least half of what materialising the domain costs:
  the growth of the peak from the small to the large domain must stay below half the growth
  of the control. What the control holds on top (the checkpoint and every output of the
  whole domain at once, ~220 MB here, plus their float64 intermediates) is what an engine
  that materialises the domain cannot avoid, so the test fails if the engine materialises
  it again. Measured (2 cores): small 0.66 GB, large 0.87 GB (+0.21), control 1.41 GB
  (+0.75). The peak is *not flat* yet: the scalar and per-variable diagnostics are
  domain-wide reductions that make Dask's static ordering keep the per-chunk intermediates
  of many chunks alive (the ordering's memory pressure grows with the number of chunks);
  ``benchmarks/results/pan_tp.md`` reports it at larger sizes.
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
    out = {res: _run(res, tmp) for res in SIZES}
    out["control"] = _run(0.05, tmp, "materialise")
    return out


def test_two_sizes_ran_the_real_cycle(runs):
    for res in SIZES:
        r = runs[res]
        assert len(r["tasks"]) == 2, r  # two analysis times, both streamed
        assert all(n > 0 for n in r["obs_used"]), r  # the LETKF had observations
        ny, nx = SIZES[res]
        # 13 float32 fields per member: sm, tsoil (4 layers each), swe, canopy_water, pert_*
        assert r["checkpoint_bytes"] == 13 * 4 * MEMBERS * ny * nx
        assert set(r["dtypes"].values()) == {"float32"}
    # the control computed the same cycles (same observations used)
    assert runs["control"]["obs_used"] == runs[0.05]["obs_used"]


def test_peak_rss_growth_is_far_below_materialising(runs):
    small, large, control = runs[0.1], runs[0.05], runs["control"]
    growth = large["peak_rss"] - small["peak_rss"]
    materialised = control["peak_rss"] - small["peak_rss"]
    mib = 2**20
    assert growth < 0.5 * materialised, (
        f"peak RSS grew by {growth / mib:.0f} MiB from 200x400 to 400x800 cells "
        f"({small['peak_rss'] / mib:.0f} -> {large['peak_rss'] / mib:.0f} MiB); "
        f"materialising the domain costs {materialised / mib:.0f} MiB"
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
