"""The experiment store: atomic commits, writer lock, checkpoint verification.

These tests exercise :class:`xldas.cycle.store.CycleStore` directly with small
in-test datasets; the full engine is tested in ``test_cycle.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xldas.cycle.store import CycleStore, WriterLock, open_output
from xldas.errors import CheckpointError, StoreError, StoreLockedError

T0 = pd.Timestamp("2021-05-01")


def _ens(k: int) -> xr.Dataset:
    rng = np.random.default_rng(k)
    return xr.Dataset(
        {
            "sm": (
                ("member", "layer", "lat", "lon"),
                rng.random((4, 2, 3, 5)),
                {"units": "m3 m-3"},
            ),
            "swe": (("member", "lat", "lon"), rng.random((4, 3, 5)), {"units": "kg m-2"}),
        },
        coords={"lat": np.arange(3.0), "lon": np.arange(5.0), "layer": [0, 1]},
    )


def _commit(store: CycleStore, k: int) -> None:
    ens = _ens(k)
    outs = {"analysis": ens.mean("member"), "diagnostics": xr.Dataset({"n_obs_used": ((), k)})}
    store.commit_cycle(k, T0 + pd.Timedelta(days=k), ens, outs)


def test_commit_resume_and_duplicate_refused(tmp_path):
    path = tmp_path / "exp"
    with CycleStore(path, "h1", {"a": 1}, name="t") as st:
        assert st.last() is None
        for k in (1, 2, 3):
            _commit(st, k)
        with pytest.raises(StoreError, match="already holds time"):
            _commit(st, 3)
    with CycleStore(path, "h1", {"a": 1}, name="t") as st:
        info = st.last()
        assert (info.cycle, info.time) == (3, T0 + pd.Timedelta(days=3))
        ck = st.load_checkpoint()
        xr.testing.assert_equal(ck[["sm", "swe"]].compute(), _ens(3)[["sm", "swe"]])
    ana = open_output(path, "analysis")
    assert list(ana.time.values) == list((T0 + pd.to_timedelta([1, 2, 3], "D")).values)
    xr.testing.assert_allclose(ana.sm.isel(time=1, drop=True).compute(), _ens(2).sm.mean("member"))


def test_other_experiment_refused_unless_overwrite(tmp_path):
    path = tmp_path / "exp"
    with CycleStore(path, "h1", name="one") as st:
        _commit(st, 1)
    with pytest.raises(StoreError, match=r"different experiment.*overwrite"):
        with CycleStore(path, "h2", name="two"):
            pass
    with CycleStore(path, "h2", name="two", overwrite=True) as st:
        assert st.last() is None
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(StoreError, match="not an xldas store"):
        with CycleStore(tmp_path / "junk", "h1"):
            pass


def test_corrupt_checkpoint_detected_and_rolled_back(tmp_path):
    path = tmp_path / "exp"
    with CycleStore(path, "h1") as st:
        _commit(st, 1)
        _commit(st, 2)
    # corrupt every chunk written by the last commit
    chunks = sorted((path / "chunks").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    newest = chunks[-1].stat().st_mtime_ns
    for p in chunks:
        if p.stat().st_mtime_ns >= newest - 50_000_000:
            p.write_bytes(b"\x00garbage" * 7)
    with CycleStore(path, "h1") as st:
        with pytest.raises(CheckpointError, match="cycle 2"):
            st.load_checkpoint()
        info = st.rollback()
        assert info.cycle == 1
        xr.testing.assert_equal(
            st.load_checkpoint()[["sm", "swe"]].compute(), _ens(1)[["sm", "swe"]]
        )
        assert len(st.output_times()) == 1


_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np, pandas as pd, xarray as xr
    from xldas.cycle.store import CycleStore
    sys.path.insert(0, {tests!r})
    from test_cycle_store import _commit
    with CycleStore({path!r}, "h1") as st:
        for k in range(1, 6):
            _commit(st, k)
        print("ready", flush=True)
        time.sleep(60)
    """
)


def _start_writer(tmp_path: Path, fault: str | None = None) -> subprocess.Popen:
    code = _WRITER.format(tests=str(Path(__file__).parent), path=str(tmp_path / "exp"))
    env = dict(os.environ)
    env.pop("XLDAS_FAULT", None)
    if fault:
        env["XLDAS_FAULT"] = fault
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )


def test_second_writer_refused_and_stale_lock_cleared(tmp_path):
    proc = _start_writer(tmp_path)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError, match=f"process {proc.pid}"):
            with CycleStore(tmp_path / "exp", "h1"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    info = json.loads((tmp_path / "exp.lock").read_text())
    assert info["pid"] == proc.pid  # the dead writer left its lock behind
    with CycleStore(tmp_path / "exp", "h1") as st:  # stale: cleared
        assert st.last().cycle == 5
    assert not (tmp_path / "exp.lock").exists()


@pytest.mark.parametrize("point", ["write:3", "commit:3", "committed:3"])
def test_sigkill_leaves_last_committed_cycle(tmp_path, point):
    proc = _start_writer(tmp_path, fault=point)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with CycleStore(tmp_path / "exp", "h1") as st:
        last = 3 if point.startswith("committed") else 2
        assert st.last().cycle == last
        times = st.output_times()
        assert len(times) == last and times.is_unique
        xr.testing.assert_equal(st.load_checkpoint()[["sm"]].compute(), _ens(last)[["sm"]])
        for k in range(last + 1, 6):  # resume
            _commit(st, k)
        assert len(st.output_times()) == 5


def test_lock_released_on_error(tmp_path):
    lock = WriterLock(tmp_path / "s")
    with pytest.raises(RuntimeError):
        with lock:
            raise RuntimeError("boom")
    assert not lock.path.exists()
    t = time.time()
    with WriterLock(tmp_path / "s"):
        pass
    assert time.time() - t < 5


def test_diagnostics_schema_changes_between_cycles(tmp_path):
    grid = {"lat": np.arange(3.0), "lon": np.arange(5.0)}
    diags = [
        xr.Dataset({"a": ((), 1), "m": (("lat", "lon"), np.ones((3, 5)))}, coords=grid),
        xr.Dataset(
            {"a": ((), 2), "b": ((), 0.5), "m": (("lat", "lon"), 2 * np.ones((3, 5)))}, coords=grid
        ),
        xr.Dataset({"b": ((), 0.7)}, coords=grid),
    ]
    with CycleStore(tmp_path / "exp", "h1") as st:
        for k, d in enumerate(diags, start=1):
            st.commit_cycle(k, T0 + pd.Timedelta(days=k), _ens(k), {"diagnostics": d})
    out = open_output(tmp_path / "exp", "diagnostics").load()
    np.testing.assert_array_equal(out.a.values, [1, 2, 0])
    np.testing.assert_array_equal(out.b.values, [np.nan, 0.5, 0.7])
    assert np.isnan(out.m.isel(time=2)).all() and (out.m.isel(time=1) == 2).all()


def test_text_coordinates_are_written_as_variable_length_strings(tmp_path):
    """A filter's ``obs_variable`` coordinate (fixed-width NumPy text) is stored as Zarr v3
    variable-length strings: no unspecified fixed-width UTF-32 type, same labels back."""
    import warnings

    from zarr.errors import UnstableSpecificationWarning

    d = xr.Dataset(
        {"innovation_mean": (("obs_variable",), [0.1, -0.2])},
        coords={"obs_variable": np.array(["tb_h", "tb_v"])},
    )
    assert d.obs_variable.dtype.kind == "U"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnstableSpecificationWarning)
        with CycleStore(tmp_path / "exp", "h1") as st:
            for k in (1, 2):
                st.commit_cycle(k, T0 + pd.Timedelta(days=k), _ens(k), {"diagnostics": d})
    out = open_output(tmp_path / "exp", "diagnostics").load()
    assert list(out.obs_variable.values) == ["tb_h", "tb_v"]
    np.testing.assert_array_equal(out.innovation_mean.values, [[0.1, -0.2]] * 2)
