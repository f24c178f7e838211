"""The cycling engine end to end, on a small twin experiment built from the real parts.

Kill-and-resume under SIGKILL, idempotent re-runs, real-time catch-up against a real STAC
API (``rustac serve``), bad input (missing/corrupt observation files, corrupt checkpoint,
invalid configuration, another experiment's store), a worker killed on a LocalCluster,
and the same experiment on Slurm.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from tests import cycle_case as cc
from xldas.cycle import Experiment
from xldas.cycle.engine import Engine, catch_up, run
from xldas.cycle.store import CycleStore, open_output
from xldas.errors import ConfigError, StoreError

GROUPS = ("analysis", "forecast", "diagnostics", "checkpoint")
METHOD = "enkf"


# ----------------------------------------------------------------------------- fixtures
def _shared(tmp_path_factory, name: str) -> Path:
    """A folder shared by all pytest-xdist workers of this session."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    return root / name


@contextlib.contextmanager
def _built_once(folder: Path):
    """Yield True to the first worker (which builds ``folder``), False to the others."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # the others wait here until it is built
        done = folder.parent / f"{folder.name}.done"
        yield not done.exists()
        done.touch()


@pytest.fixture(scope="session")
def case(tmp_path_factory):
    """The twin case on disk, written once per test session (shared by the workers)."""
    folder = _shared(tmp_path_factory, "cycle-case")
    with _built_once(folder) as build:
        if build:
            cc.write_case(folder, days=21)
    return folder


@pytest.fixture(scope="session")
def reference(case, tmp_path_factory):
    """An uninterrupted 10-cycle run, once per test session (shared by the workers)."""
    store = _shared(tmp_path_factory, "cycle-ref") / "ref"
    with _built_once(store.parent) as build:
        if build:
            exp = Experiment.from_yaml(cc.experiment(case, store, method=METHOD))
            report = run(exp, quiet=True)
            assert report.cycles_run == list(range(1, 11))
    return store


def _read(store: Path) -> dict[str, xr.Dataset]:
    out = {}
    for g in GROUPS:
        ds = open_output(store, g).load()
        out[g] = ds.drop_attrs(deep=False) if g == "checkpoint" else ds
    return out


def assert_same_store(a: Path, b: Path) -> None:
    """Same outputs and checkpoint (bitwise), no duplicated or missing times."""
    ra, rb = _read(a), _read(b)
    for g in GROUPS:
        if "time" in ra[g].dims:
            assert pd.DatetimeIndex(rb[g].time.values).is_unique
        xr.testing.assert_identical(ra[g], rb[g])


def _xldas(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.pop("XLDAS_FAULT", None)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "xldas.cli", *args],
        capture_output=True,
        text=True,
        env=e,
        timeout=timeout,
    )


# ----------------------------------------------------------------------------- config
def test_example_experiments_validate():
    from xldas._paths import catalog_dir

    files = sorted((catalog_dir() / "experiments").glob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        exp = Experiment.from_yaml(f)
        assert exp.observations and exp.period.interval == pd.Timedelta("1D")


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        (
            {"period.cylce": "1D"},
            r"period\.cylce: unknown key 'cylce'; allowed keys are \['cycle', 'end', 'start'\]",
        ),
        ({"filter.method": "kalman"}, r"filter\.method.*'kalman'.*'enkf'.*'letkf'"),
        ({"cluster.type": "pbs"}, r"cluster\.type.*'none', 'local' or 'slurm'"),
        ({"period.cycle": "soon"}, r"period\.cycle.*not a duration"),
    ],
)
def test_bad_config_names_the_key(tmp_path, case, patch, match):
    path = cc.experiment(case, tmp_path / "s", method=METHOD)
    with pytest.raises(ConfigError, match=match):
        Experiment.from_yaml(path, **patch)


def test_bad_unit_and_filter_hyperparameter(tmp_path, case):
    raw = yaml.safe_load(cc.experiment(case, tmp_path / "s", method=METHOD).read_text())
    raw["observations"][0]["error"]["units"] = "K"
    with pytest.raises(ConfigError, match=r"observations\.0.*error\.units 'K'.*'sm'"):
        Experiment.from_dict(raw)
    raw["observations"][0]["error"]["units"] = "%"  # convertible: accepted
    Experiment.from_dict(raw)
    # filter hyperparameters are checked when the experiment is loaded, not at run time
    raw["filter"] = {"method": "enkf", "inflaton": 1.1}
    with pytest.raises(ConfigError, match=r"filter.*\['inflaton'\].*allowed.*'inflation'"):
        Experiment.from_dict(raw)
    raw["filter"] = {"method": "letkf", "loc_radius": "25 km"}
    with pytest.raises(ConfigError, match=r"filter.*loc_radius must be a number.*'25 km'"):
        Experiment.from_dict(raw)
    raw["filter"] = {"method": "enkf", "inflation": -1.0}
    with pytest.raises(ConfigError, match=r"filter.*inflation must be > 0"):
        Experiment.from_dict(raw)
    r = _xldas("run", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "does not exist" in r.stderr


# ----------------------------------------------------------------------------- runs
def test_rerun_is_idempotent(reference):
    exp = Experiment.from_yaml(reference.parent / "ref.yaml")
    with CycleStore(reference, exp.config_hash()) as st:
        snap = st.repo.lookup_branch("main")
    report = run(exp, quiet=True)
    assert report.cycles_run == [] and report.already_done == 10
    with CycleStore(reference, exp.config_hash()) as st:
        assert st.repo.lookup_branch("main") == snap
    ana = open_output(reference, "analysis")
    assert ana.sizes["time"] == 10 and ana.sm.attrs["units"] == "m3 m-3"
    assert "standard_name" in ana.sm.attrs and "cell_methods" in ana.sm_spread.attrs
    diag = open_output(reference, "diagnostics").load()
    assert (diag.n_obs_used > 0).all()


def test_filter_beats_open_loop(case, reference, tmp_path):
    exp = Experiment.from_yaml(cc.experiment(case, tmp_path / "ol", method="none"))
    run(exp, quiet=True)
    truth = xr.open_dataset(case / "truth.nc")["sm"].isel(layer=0, drop=True)
    err = {}
    for name, store in (("ol", tmp_path / "ol"), ("da", reference)):
        ana = open_output(store, "analysis").sm_surface.load()
        err[name] = float(np.sqrt(((ana - truth.sel(time=ana.time)) ** 2).mean()))
    assert err["da"] < 0.9 * err["ol"], err


def test_kill_and_resume_is_identical(case, reference, tmp_path):
    store = tmp_path / "killed"
    yml = cc.experiment(case, store, method=METHOD)
    # SIGKILL during the forecast of cycle 3, during the Zarr writes of cycle 5, between
    # the writes and the commit of cycle 7: each leaves the last committed cycle
    for fault, committed in (("forecast:3", 2), ("write:5", 4), ("commit:7", 6)):
        r = _xldas("run", str(yml), "--quiet", env={"XLDAS_FAULT": fault})
        assert r.returncode == -signal.SIGKILL, r.stderr
        with CycleStore(store, Experiment.from_yaml(yml).config_hash()) as st:
            assert st.last().cycle == committed
            assert len(st.output_times()) == committed
    # a kill at an arbitrary instant, timed from the outside
    proc = subprocess.Popen(
        [sys.executable, "-m", "xldas.cli", "run", str(yml)],
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "XLDAS_FAULT"},
    )
    for line in proc.stderr:
        if "cycle=8 " in line:
            time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    r = _xldas("run", str(yml), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "10 already committed" not in r.stdout
    assert_same_store(reference, store)


def test_second_writer_refused_while_running(case, tmp_path):
    store = tmp_path / "busy"
    yml = cc.experiment(case, store, method=METHOD)
    with CycleStore(store, Experiment.from_yaml(yml).config_hash()):
        r = _xldas("run", str(yml))
    assert r.returncode == 3
    assert "locked by another writer" in r.stderr and f"process {os.getpid()}" in r.stderr


def test_other_experiment_refused_unless_overwrite(case, tmp_path):
    store = tmp_path / "s"
    run(Experiment.from_yaml(cc.experiment(case, store, method="none", days=2)), quiet=True)
    yml = cc.experiment(case, store, method=METHOD, days=2)
    r = _xldas("run", str(yml))
    assert r.returncode == 3 and "different experiment" in r.stderr and "--overwrite" in r.stderr
    r = _xldas("run", str(yml), "--overwrite", "--quiet")
    assert r.returncode == 0, r.stderr
    assert open_output(store, "analysis").sizes["time"] == 2


# ----------------------------------------------------------------------------- bad input
def test_missing_and_corrupt_observation_files(case, tmp_path, caplog):
    files = tmp_path / "obs_files"
    shutil.copytree(case / "obs_files", files)
    (files / "sm_20210503.nc").unlink()
    (files / "sm_20210505.nc").write_bytes(b"CDF\x01 this is not netcdf")
    folder = tmp_path / "case"
    folder.mkdir()
    for name in ("params.zarr", "forcing.zarr"):
        (folder / name).symlink_to(case / name)
    (folder / "obs_files").symlink_to(files)
    exp = Experiment.from_yaml(
        cc.experiment(folder, tmp_path / "s", obs_kind="files", method=METHOD, days=6)
    )
    with caplog.at_level(logging.WARNING, logger="xldas.cycle"):
        report = run(exp, quiet=True)
    assert report.cycles_run == [1, 2, 3, 4, 5, 6]
    assert "sm_20210503.nc is missing" in caplog.text
    assert "sm_20210505.nc cannot be read" in caplog.text
    diag = open_output(tmp_path / "s", "diagnostics").load()
    skipped = diag.smos_files_skipped.to_series()
    assert skipped[pd.Timestamp("2021-05-03")] == 1 and skipped[pd.Timestamp("2021-05-05")] == 1
    assert skipped.sum() == 2
    used = diag.n_obs_used.to_series()
    assert used[pd.Timestamp("2021-05-03")] == 0 and used[pd.Timestamp("2021-05-04")] > 0


def test_corrupt_checkpoint_resumes_from_previous(case, reference, tmp_path, caplog):
    store = tmp_path / "s"
    exp = Experiment.from_yaml(cc.experiment(case, store, method=METHOD))
    run(exp, quiet=True, until="2021-05-06")
    chunks = sorted((store / "chunks").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    newest = chunks[-1].stat().st_mtime_ns
    for p in chunks:
        if p.stat().st_mtime_ns >= newest - 50_000_000:
            p.write_bytes(b"corrupt!" * 3)
    with caplog.at_level(logging.ERROR, logger="xldas.cycle"):
        report = run(exp, quiet=True)
    assert "checkpoint of cycle 5" in caplog.text and "resuming from the previous" in caplog.text
    assert report.cycles_run == [5, 6, 7, 8, 9, 10]
    assert_same_store(reference, store)


def test_qc_masks_frozen_soil_and_snow(case, tmp_path):
    raw = yaml.safe_load(cc.experiment(case, tmp_path / "s", method=METHOD).read_text())
    raw["observations"][0]["qc"] = {"range": {"tb_h": [100.0, 320.0]}, "snow_threshold": 1.0}
    exp = Experiment.from_dict(raw)
    eng = Engine(exp)
    grid = {"lat": cc.LAT[:2], "lon": cc.LON[:2]}
    fc = xr.Dataset(
        {
            "tsoil": (("layer", "lat", "lon"), np.array([[[270.0, 280.0], [280.0, 280.0]]])),
            "swe": (("lat", "lon"), np.array([[0.0, 0.0], [5.0, 0.0]])),
        },
        coords=grid,
    )
    obs = xr.Dataset(
        {"tb_h": (("lat", "lon"), np.array([[250.0, 250.0], [250.0, 400.0]]))}, coords=grid
    )
    out, rejected = eng.qc(obs, fc, exp.observations[0])
    np.testing.assert_array_equal(out.tb_h.notnull().values, [[False, True], [False, False]])
    assert int(rejected["tb_h"]) == 3


# ----------------------------------------------------------------------------- real time
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stac_tree(root: Path, obs: xr.Dataset, last_day: int, extra_late: bool = False) -> list[Path]:
    """GeoTIFF per observation day (1..last_day) and the STAC JSON describing them."""
    import rasterio
    from rasterio.transform import from_origin

    root.mkdir(parents=True, exist_ok=True)
    res = 0.25
    west, north = cc.LON[0] - res / 2, cc.LAT[-1] + res / 2
    features = []
    days = list(range(1, last_day + 1))
    for d in days + (["late"] if extra_late else []):
        t = cc.START + pd.Timedelta(3 if d == "late" else d, "D")
        data = obs.sm.sel(time=t).values[::-1].astype("float32")  # north-up
        data = np.where(np.isnan(data), -9999.0, data).astype("float32")
        tif = root / f"sm_{d}.tif"
        with rasterio.open(
            tif,
            "w",
            driver="GTiff",
            width=8,
            height=6,
            count=1,
            dtype="float32",
            crs="EPSG:4326",
            transform=from_origin(west, north, res, res),
            nodata=-9999.0,
        ) as dst:
            dst.write(data, 1)
        bbox = [west, north - 6 * res, west + 8 * res, north]
        features.append(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "stac_extensions": ["https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
                "id": f"sm-{t:%Y%m%d}" + ("-reprocessed" if d == "late" else ""),
                "collection": "sm-retrievals",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [bbox[0], bbox[1]],
                            [bbox[2], bbox[1]],
                            [bbox[2], bbox[3]],
                            [bbox[0], bbox[3]],
                            [bbox[0], bbox[1]],
                        ]
                    ],
                },
                "bbox": bbox,
                "properties": {"datetime": t.isoformat() + "Z"},
                "assets": {
                    "sm": {
                        "href": tif.resolve().as_uri(),
                        "type": "image/tiff; application=geotiff",
                        "roles": ["data"],
                        "raster:bands": [
                            {"data_type": "float32", "nodata": -9999.0, "unit": "m3 m-3"}
                        ],
                    }
                },
                "links": [],
            }
        )
    coll = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": "sm-retrievals",
        "description": "retrieved sm",
        "license": "CC0-1.0",
        "links": [],
        "extent": {
            "spatial": {"bbox": [[98.0, 37.0, 101.0, 40.0]]},
            "temporal": {"interval": [["2021-01-01T00:00:00Z", None]]},
        },
    }
    (root / "collection.json").write_text(json.dumps(coll))
    (root / "items.json").write_text(
        json.dumps({"type": "FeatureCollection", "features": features})
    )
    return [root / "collection.json", root / "items.json"]


class _Server:
    def __init__(self, files: list[Path], port: int):
        self.url = f"http://127.0.0.1:{port}"
        exe = shutil.which("rustac") or str(Path(sys.executable).parent / "rustac")
        self.proc = subprocess.Popen(
            [exe, "serve", "--addr", f"127.0.0.1:{port}", *map(str, files)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                urllib.request.urlopen(self.url, timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("rustac serve did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.mark.stac
def test_realtime_catch_up_against_stac(case, tmp_path, caplog):
    if not (shutil.which("rustac") or (Path(sys.executable).parent / "rustac").exists()):
        pytest.skip("rustac is not installed")
    obs = xr.open_zarr(case / "obs.zarr").load()
    port = _free_port()
    store = tmp_path / "rt"
    # 5 cycles in a fresh process, then the catch-up of 5 more (and one late item)
    server = _Server(_stac_tree(tmp_path / "stac5", obs, 5), port)
    try:
        yml = cc.experiment(case, store, obs_kind="stac", method=METHOD, days=10, url=server.url)
        r = _xldas("cycle", str(yml), "--quiet")
        assert r.returncode == 0, r.stderr
    finally:
        server.stop()
    times = open_output(store, "analysis").time.values
    assert list(times) == list((cc.START + pd.to_timedelta(range(1, 6), "D")).values)
    diag = open_output(store, "diagnostics").load()
    assert (diag.n_obs_used > 0).all()

    server = _Server(_stac_tree(tmp_path / "stac10", obs, 10, extra_late=True), port)
    try:
        exp = Experiment.from_yaml(yml)
        with caplog.at_level(logging.INFO, logger="xldas.cycle"):
            report = catch_up(exp, quiet=True)
        assert report.cycles_run == list(range(6, 11))
        assert report.late_observations == 1
        assert "late observation sm-20210504-reprocessed" in caplog.text
        with CycleStore(store, exp.config_hash()) as st:
            snap = st.repo.lookup_branch("main")
        r = _xldas("cycle", str(yml), "--quiet")
        assert r.returncode == 0 and "up to date" in r.stdout
        with CycleStore(store, exp.config_hash()) as st:
            assert st.repo.lookup_branch("main") == snap
    finally:
        server.stop()
    ana = open_output(store, "analysis")
    assert list(ana.time.values) == list((cc.START + pd.to_timedelta(range(1, 11), "D")).values)


# ----------------------------------------------------------------------------- distributed
def test_worker_killed_mid_run(case, reference, tmp_path):
    from distributed import Client, LocalCluster

    store = tmp_path / "s"
    # the first 4 cycles of the reference experiment, with a worker killed after cycle 2
    n = 4
    exp = Experiment.from_yaml(cc.experiment(case, store, method=METHOD, days=n))
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        killed = []

        def killer():
            while not killed:
                try:
                    ana = open_output(store, "analysis")
                    if ana.sizes["time"] >= 2:
                        pids = client.run(os.getpid)
                        pid = sorted(pids.values())[0]
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                        return
                except (StoreError, OSError, KeyError):
                    pass
                time.sleep(0.02)

        th = threading.Thread(target=killer, daemon=True)
        th.start()
        result = {}
        runner = threading.Thread(
            target=lambda: result.update(report=run(exp, client=client, quiet=True)), daemon=True
        )
        runner.start()
        runner.join(300)  # never hang CI: a run that cannot recover fails the test
        assert "report" in result, "the run did not complete after the worker was killed"
        report = result["report"]
        th.join(5)
        assert killed, "no worker was killed"
        assert report.cycles_run == list(range(1, n + 1))
    a, b = _read(reference), _read(store)
    for g in ("analysis", "forecast", "diagnostics"):
        xr.testing.assert_allclose(a[g].isel(time=slice(0, n)), b[g], rtol=1e-12, atol=1e-12)


@pytest.mark.slurm
def test_slurm_cluster_equals_local(case, reference, tmp_path, slurm):
    store = tmp_path / "s"
    options = {
        "queue": "debug",
        "cores": 1,
        "processes": 1,
        "memory": "2GB",
        "walltime": "00:10:00",
        "interface": "lo",
        "jobs": 1,
        "job_extra_directives": [f"--chdir={tmp_path}"],
        "log_directory": str(tmp_path / "logs"),
    }
    # the first 3 cycles of the reference experiment (same seeds, same cycle keys), so the
    # distributed run stays short; the outputs of those cycles must equal the local run's
    n = 3
    exp = Experiment.from_yaml(
        cc.experiment(
            case,
            store,
            method=METHOD,
            days=n,
            **{"cluster.type": "slurm", "cluster.options": options},
        )
    )
    report = run(exp, quiet=True)
    assert report.cycles_run == list(range(1, n + 1))
    a, b = _read(reference), _read(store)
    for g in ("analysis", "forecast", "diagnostics"):
        xr.testing.assert_allclose(
            a[g].isel(time=slice(0, n)).drop_attrs(), b[g].drop_attrs(), rtol=1e-12, atol=1e-12
        )
