"""Compute layer: cluster factories (LocalCluster, Slurm via dask-jobqueue) and array backends."""

from __future__ import annotations

import importlib.util
import os

import dask
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from tests.helpers import raise_if_dask_computes
from xldas.compute import array_backend, cluster_config, to_backend
from xldas.errors import UnknownOptionError

HAS_CUPY = importlib.util.find_spec("cupy") is not None


def test_defaults_come_from_dask_config_and_kwargs_win():
    cfg = cluster_config("slurm")
    assert cfg["cores"] == 1 and cfg["memory"] == "2GB" and cfg["walltime"] == "01:00:00"
    assert "queue" not in cfg  # null in xldas.yaml: SLURMCluster's own default
    with dask.config.set({"xldas.slurm.queue": "debug", "xldas.slurm.cores": 4}):
        cfg = cluster_config("slurm", cores=8)
    assert cfg["queue"] == "debug" and cfg["cores"] == 8
    assert cluster_config("local")["processes"] is True
    with pytest.raises(UnknownOptionError, match="'pbs'"):
        cluster_config("pbs")


def test_local_cluster_of_processes_computes(local_cluster):
    from distributed import Client

    x = dsa.random.default_rng(0).random((400, 300), chunks=(100, 100))
    da = xr.DataArray(x, dims=("lat", "lon"))
    with Client(local_cluster) as client:
        pids = client.run(os.getpid)
        total = float(da.sum().compute())
    assert len(pids) == 2 and os.getpid() not in pids.values()
    np.testing.assert_allclose(total, x.compute(scheduler="sync").sum())


@pytest.mark.slurm
def test_slurm_cluster_runs_workers_inside_slurm_jobs(slurm, tmp_path):
    from distributed import Client

    from xldas.compute import slurm_cluster

    os.chmod(tmp_path, 0o755)
    with slurm_cluster(
        queue="debug",
        cores=1,
        processes=1,
        memory="1GB",
        walltime="00:10:00",
        interface="lo",
        log_directory=str(tmp_path),
        job_extra_directives=[f"--chdir={tmp_path}"],
    ) as cluster:
        assert "#SBATCH -p debug" in cluster.job_script()
        cluster.scale(jobs=2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            job_ids = client.run(lambda: os.environ.get("SLURM_JOB_ID"))
            x = dsa.arange(1000, chunks=100)
            total = int(x.sum().compute())
    assert total == 499500
    assert len(job_ids) == 2
    assert all(j is not None for j in job_ids.values()), job_ids
    assert len(set(job_ids.values())) == 2  # two different Slurm jobs


def test_array_backend_reports_numpy_without_computing():
    arr = np.arange(12.0).reshape(3, 4)
    ds = xr.Dataset({"a": (("y", "x"), arr), "b": (("y", "x"), arr)}).chunk({"y": 1})
    with raise_if_dask_computes():
        assert array_backend(ds) == "numpy"
        assert array_backend(ds.a) == "numpy"
        assert array_backend(ds.a.compute(scheduler="sync")) == "numpy"
        same = to_backend(ds, "numpy")
    xr.testing.assert_identical(same, ds)
    assert array_backend(xr.Dataset()) == "numpy"


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed here")
def test_cupy_backend_without_cupy_is_a_clear_error():
    da = xr.DataArray(np.zeros(3))
    with pytest.raises(ModuleNotFoundError, match=r"xldas\[gpu\]"):
        to_backend(da, "cupy")
    with pytest.raises(UnknownOptionError, match=r"'torch'.*'cupy', 'numpy'"):
        to_backend(da, "torch")


@pytest.mark.skipif(not HAS_CUPY, reason="CuPy is not installed (pip install 'xldas[gpu]')")
def test_cupy_round_trip_is_lazy():
    import cupy

    try:
        cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:
        pytest.skip("CuPy is installed but no GPU is visible")
    da = xr.DataArray(np.arange(12.0).reshape(3, 4), dims=("lat", "lon")).chunk({"lat": 1})
    with raise_if_dask_computes():
        gpu = to_backend(da, "cupy")
        assert array_backend(gpu) == "cupy"
        back = to_backend(gpu * 2, "numpy")
        assert array_backend(back) == "numpy"
    np.testing.assert_array_equal(back.values, da.values * 2)
