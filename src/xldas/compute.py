"""Where the computation runs: Dask cluster factories and the NumPy/CuPy array backend.

Cluster defaults live in the ``xldas`` section of dask's configuration. The file
``xldas/xldas.yaml`` shipped with the package is registered as defaults when this module
is imported (as dask-jobqueue does with ``jobqueue.yaml``), so a user overrides them with
their own ``~/.config/dask/xldas.yaml``, ``DASK_XLDAS__...`` environment variables,
``dask.config.set`` or, winning over all of those, keyword arguments.

Array backends: xarray objects wrap NumPy or CuPy arrays, directly or as the chunks of a
dask array (whose ``_meta`` tells the chunk type without computing anything).
:func:`array_backend` reports which; :func:`to_backend` converts lazily. CuPy is optional
(``pip install "xldas[gpu]"``); without it everything NumPy works and asking for CuPy raises
a clear :class:`ModuleNotFoundError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import dask.array as dsa
import numpy as np
import xarray as xr
import yaml

from xldas._paths import data_dir
from xldas.errors import UnknownOptionError

__all__ = [
    "BACKENDS",
    "array_backend",
    "cluster_config",
    "local_cluster",
    "slurm_cluster",
    "to_backend",
    "to_gpu",
]

BACKENDS = ("numpy", "cupy")

_DEFAULTS_FILE = Path(__file__).with_name("xldas.yaml")


def _register_defaults() -> None:
    with open(_DEFAULTS_FILE) as f:
        defaults = yaml.safe_load(f)
    dask.config.update_defaults(defaults)


_register_defaults()


def cluster_config(kind: str, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for a cluster of ``kind`` ("local" or "slurm").

    The ``xldas.<kind>`` section of dask's config, updated with ``overrides``; entries
    whose value is None are dropped so that the cluster class uses its own default.

    Examples
    --------
    >>> from xldas.compute import cluster_config
    >>> cluster_config("slurm", cores=4)["cores"]
    4
    """
    if kind not in ("local", "slurm"):
        raise UnknownOptionError("cluster kind", kind, ("local", "slurm"))
    kw = dict(dask.config.get(f"xldas.{kind}", default={}) or {})
    kw.update(overrides)
    return {k: v for k, v in kw.items() if v is not None}


def local_cluster(**kwargs: Any):
    """Start a :class:`distributed.LocalCluster` with xldas's defaults.

    Parameters
    ----------
    **kwargs
        Any ``LocalCluster`` argument (``n_workers``, ``threads_per_worker``,
        ``processes``, ``memory_limit`` ...); they override the ``xldas.local`` config.

    Returns
    -------
    distributed.LocalCluster
        Use it with ``distributed.Client(cluster)``; close both when done (context managers).

    Examples
    --------
    >>> from distributed import Client
    >>> from xldas.compute import local_cluster
    >>> with local_cluster(n_workers=1, processes=False) as cluster, Client(cluster) as c:
    ...     c.submit(sum, [1, 2]).result()
    3
    """
    from distributed import LocalCluster

    kw = cluster_config("local", **kwargs)
    kw.setdefault("local_directory", str(data_dir() / "dask-worker-space"))
    return LocalCluster(**kw)


def slurm_cluster(**kwargs: Any):
    """Start a dask-jobqueue :class:`~dask_jobqueue.SLURMCluster` with xldas's defaults.

    Workers are started as Slurm jobs when the cluster is scaled
    (``cluster.scale(jobs=2)`` or ``cluster.adapt(...)``).

    Parameters
    ----------
    **kwargs
        Any ``SLURMCluster`` argument (``queue``, ``account``, ``cores``, ``processes``,
        ``memory``, ``walltime``, ``interface``, ``job_extra_directives`` ...); they
        override the ``xldas.slurm`` config. ``log_directory`` defaults to
        ``<xldas cache dir>/slurm-logs``.

    Returns
    -------
    dask_jobqueue.SLURMCluster

    Examples
    --------
    >>> from xldas.compute import slurm_cluster
    >>> cluster = slurm_cluster(queue="debug", cores=1, memory="2GB")  # doctest: +SKIP
    >>> cluster.scale(jobs=2)  # doctest: +SKIP
    """
    from dask_jobqueue import SLURMCluster

    kw = cluster_config("slurm", **kwargs)
    if "log_directory" not in kw:
        logs = data_dir() / "slurm-logs"
        logs.mkdir(parents=True, exist_ok=True)
        kw["log_directory"] = str(logs)
    return SLURMCluster(**kw)


# ----------------------------------------------------------------- array backends
def _import_cupy():
    try:
        import cupy
    except ImportError as err:  # ModuleNotFoundError or a broken CUDA install
        raise ModuleNotFoundError(
            "the 'cupy' array backend needs CuPy, which is not importable here "
            f"({err}); install the GPU extra: pip install 'xldas[gpu]'"
        ) from err
    return cupy


def _chunk_type(array: Any) -> Any:
    return array._meta if isinstance(array, dsa.Array) else array


def _backend_of(array: Any) -> str:
    chunk = _chunk_type(array)
    module = type(chunk).__module__.split(".")[0]
    if module == "cupy":
        return "cupy"
    if isinstance(chunk, np.ndarray):
        return "numpy"
    return module


def array_backend(obj: xr.DataArray | xr.Dataset | Any) -> str:
    """Name the array library behind ``obj``: ``"numpy"``, ``"cupy"`` (or another module).

    Works without computing anything: for dask arrays the chunk type comes from
    ``_meta``. A Dataset whose data variables differ reports ``"mixed"``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from xldas.compute import array_backend
    >>> array_backend(xr.DataArray(np.zeros(3)).chunk())
    'numpy'
    """
    if isinstance(obj, xr.Dataset):
        kinds = {_backend_of(v.data) for v in obj.data_vars.values()}
        if not kinds:
            return "numpy"
        return kinds.pop() if len(kinds) == 1 else "mixed"
    if isinstance(obj, xr.DataArray | xr.Variable):
        return _backend_of(obj.data)
    return _backend_of(obj)


def _convert(array: Any, backend: str) -> Any:
    if _backend_of(array) == backend:
        return array
    if backend == "cupy":
        cupy = _import_cupy()
        if isinstance(array, dsa.Array):
            meta = cupy.empty((0,) * array.ndim, dtype=array.dtype)
            return array.map_blocks(cupy.asarray, dtype=array.dtype, meta=meta)
        return cupy.asarray(array)
    if isinstance(array, dsa.Array):
        meta = np.empty((0,) * array.ndim, dtype=array.dtype)
        return array.map_blocks(_to_numpy, dtype=array.dtype, meta=meta)
    return _to_numpy(array)


def _to_numpy(block: Any) -> np.ndarray:
    """NumPy copy of a CuPy block (``.get()``), or ``np.asarray`` of anything else."""
    if not isinstance(block, np.ndarray) and hasattr(block, "get"):
        return block.get()
    return np.asarray(block)


def to_backend(obj: xr.DataArray | xr.Dataset, backend: str) -> xr.DataArray | xr.Dataset:
    """Return ``obj`` with its data variables on ``backend`` (``"numpy"`` or ``"cupy"``).

    Dask-backed data stay lazy: each chunk is converted when computed, and the dask
    ``_meta`` is set so that :func:`array_backend` and downstream code see the new type.
    Coordinates stay NumPy (indexes must). The input is not modified.

    Raises
    ------
    UnknownOptionError
        ``backend`` is not one of :data:`BACKENDS`.
    ModuleNotFoundError
        ``backend="cupy"`` and CuPy is not installed (``pip install 'xldas[gpu]'``).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from xldas.compute import to_backend
    >>> to_backend(xr.DataArray(np.arange(3.0)), "numpy").sum().item()
    3.0
    """
    if backend not in BACKENDS:
        raise UnknownOptionError("array backend", backend, BACKENDS)
    if isinstance(obj, xr.Dataset):
        return obj.assign(
            {k: v.copy(data=_convert(v.data, backend)) for k, v in obj.data_vars.items()}
        )
    if isinstance(obj, xr.DataArray):
        return obj.copy(data=_convert(obj.data, backend))
    raise TypeError(f"to_backend expects an xarray Dataset or DataArray, got {type(obj).__name__}")


def to_gpu(obj: xr.DataArray | xr.Dataset) -> xr.DataArray | xr.Dataset:
    """Move ``obj``'s data variables to the GPU (CuPy), lazily for dask data.

    Shorthand for ``to_backend(obj, "cupy")`` (the same as cupy-xarray's
    ``ds.cupy.as_cupy()`` but keeping dask arrays lazy). Functions with a GPU form then
    run their CUDA kernels, chosen per chunk from the chunk type (no global switch):

    * :func:`xldas.models.step` (one thread per member and cell,
      :mod:`xldas.models._cuda`);
    * the EnKF and ETKF analyses of :func:`xldas.filters.assimilate` (one thread per
      pixel, :mod:`xldas.filters._cuda`), observation screening and EnKF perturbations
      included.

    No GPU form (move the data back with ``to_backend(obj, "numpy")``): the LETKF, the
    particle filter and the sigma-point filters (``assimilate`` raises
    :class:`~xldas.errors.FilterError` for a CuPy-backed ensemble), and the forcing
    perturbation of ensembles (:class:`~xldas.models.ForcingPerturbation`).

    Raises
    ------
    ModuleNotFoundError
        CuPy is not installed (``pip install 'xldas[gpu]'``).

    Examples
    --------
    >>> from xldas.compute import to_gpu
    >>> gpu_state = to_gpu(state)  # doctest: +SKIP
    """
    return to_backend(obj, "cupy")
