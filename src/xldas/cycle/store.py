"""The experiment store: outputs and checkpoints with atomic per-cycle commits.

An experiment writes one **icechunk repository** (transactional Zarr v3). Its groups:

``analysis`` / ``forecast``
    ensemble mean (``sm``, ``tsoil``, ``swe`` ...) and spread (``sm_spread`` ...) of every
    state variable at each analysis time, weighted where the ensemble carries ``weight``;
    appended along ``time`` (one chunk per time).
``diagnostics``
    per cycle: observations used/rejected/skipped, innovation statistics, ensemble spread
    before/after, ESS and inflation when the filter reports them, innovation maps.
``fluxes`` (optional)
    ensemble-mean fluxes over each window.
``checkpoint``
    the full ensemble after the last committed analysis: state variables, ``weight``,
    perturbation AR(1) states ``pert_*``, with the cycle index, valid time, RNG seed and
    per-variable checksums in its attributes.

Root attributes hold the experiment name, its configuration (JSON) and configuration hash,
the last committed cycle and the observation ledger used by the real-time mode.

**Commit protocol.** Every cycle writes its outputs and its checkpoint in ONE icechunk
session and makes them visible with ONE ``commit``: a process killed at any instant
(``kill -9``) leaves the branch at the last committed cycle, and nothing of a half-written
cycle is ever visible (uncommitted chunks are garbage that icechunk ignores). A resumed run
reads the checkpoint of the branch tip; if that checkpoint fails verification it says so
and rolls the branch back to the previous snapshot, whose cycle is then recomputed.

**One writer.** A lock file ``<store>.lock`` (PID, host, process start time) refuses a
second writer with a message naming the holder; a lock left by a process that no longer
exists on this host is detected and cleared. icechunk's conflict detection is the second
line of defence (a commit on a moved branch fails instead of overwriting).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from xldas._xr import variable_length_strings
from xldas.errors import CheckpointError, StoreError, StoreLockedError

__all__ = ["CommitInfo", "CycleStore", "WriterLock", "open_output"]

log = logging.getLogger("xldas.cycle")

OUTPUT_GROUPS = ("analysis", "forecast", "diagnostics", "fluxes")
_ZARR_KW = {"consolidated": False, "zarr_format": 3}
_BRANCH = "main"


def _fault(point: str, cycle: int | None = None) -> None:
    """Test hook: ``XLDAS_FAULT=point[:cycle]`` SIGKILLs this process at ``point``.

    Points: ``forecast`` (forecast computed, nothing written), ``write`` (outputs written to
    the session, checkpoint not yet), ``commit`` (everything written, commit not yet made),
    ``committed`` (right after the commit). The optional ``:cycle`` restricts it to one
    cycle index. Used by the kill-and-resume tests; inert otherwise.
    """
    spec = os.environ.get("XLDAS_FAULT")
    if not spec:
        return
    name, _, cyc = spec.partition(":")
    if name != point:
        return
    if cyc and str(cycle) != cyc:
        return
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------------- lock
class WriterLock:
    """Exclusive writer lock on a store, as a ``<store>.lock`` file created with O_EXCL.

    The file records PID, host and the process start time; a lock whose process no longer
    exists on this host (or whose PID was reused by a younger process) is stale and is
    removed with a warning.
    """

    def __init__(self, store: str | Path):
        self.path = Path(f"{os.fspath(store).rstrip('/')}.lock")
        self._held = False

    @staticmethod
    def _me() -> dict[str, Any]:
        import psutil

        p = psutil.Process()
        return {
            "pid": p.pid,
            "host": socket.gethostname(),
            "started": p.create_time(),
            "since": pd.Timestamp.now("UTC").isoformat(),
        }

    def _stale(self, info: dict[str, Any]) -> bool:
        import psutil

        if info.get("host") != socket.gethostname():
            return False  # cannot see processes elsewhere
        pid = int(info.get("pid", -1))
        if not psutil.pid_exists(pid):
            return True
        try:
            p = psutil.Process(pid)
            if p.status() == psutil.STATUS_ZOMBIE:
                return True
            return abs(p.create_time() - float(info.get("started", 0))) > 1.0
        except psutil.NoSuchProcess:
            return True

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    info = json.loads(self.path.read_text() or "{}")
                except (OSError, json.JSONDecodeError):
                    info = {}
                if not info:  # being written right now, or empty leftover
                    _time.sleep(0.2)
                    try:
                        info = json.loads(self.path.read_text() or "{}")
                    except (OSError, json.JSONDecodeError):
                        info = {}
                if not info or self._stale(info):
                    log.warning(
                        "clearing stale writer lock %s (process %s on %s no longer runs)",
                        self.path,
                        info.get("pid", "?"),
                        info.get("host", "?"),
                    )
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    continue
                raise StoreLockedError(
                    f"store {str(self.path)[:-5]} is locked by another writer: process "
                    f"{info.get('pid')} on {info.get('host')} since {info.get('since')} "
                    f"(lock file {self.path}). Wait for it to finish; if that process is gone "
                    f"on another host, delete the lock file."
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump(self._me(), f)
            self._held = True
            return
        raise StoreLockedError(f"could not acquire writer lock {self.path}")

    def release(self) -> None:
        if self._held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


# ----------------------------------------------------------------------------- store
@dataclass(frozen=True)
class CommitInfo:
    """The last committed cycle of a store."""

    cycle: int
    time: pd.Timestamp
    snapshot: str


_LOGS_SET = False


def _local_storage(path: Path):
    """icechunk storage of a local store (its concurrency warning silenced once)."""
    import icechunk

    global _LOGS_SET
    if not _LOGS_SET and "ICECHUNK_LOG" not in os.environ:
        # one writer per store is guaranteed by WriterLock: icechunk's warning that local
        # filesystems are unsafe for concurrent commits does not apply
        icechunk.set_logs_filter("error")
        _LOGS_SET = True
    return icechunk.local_filesystem_storage(str(path))


def _repo(path: Path, create: bool):
    import icechunk

    storage = _local_storage(path)
    if create:
        return icechunk.Repository.open_or_create(storage)
    return icechunk.Repository.open(storage)


def _is_repo(path: Path) -> bool:
    import icechunk

    return path.exists() and icechunk.Repository.exists(_local_storage(path))


def _checksum_parts(ds: xr.Dataset) -> list:
    """Lazy reductions behind :func:`checksums` (to evaluate with the rest of a graph)."""
    parts = []
    for v in sorted(ds.data_vars):
        a = ds[v].astype("float64")
        parts.append(a.where(np.isfinite(a)).sum().data)
        parts.append((~np.isfinite(a)).sum().data)
    return parts


def _checksums_from_parts(ds: xr.Dataset, values) -> dict[str, list[float]]:
    names = sorted(ds.data_vars)
    return {v: [float(values[2 * i]), float(values[2 * i + 1])] for i, v in enumerate(names)}


def checksums(ds: xr.Dataset) -> dict[str, list[float]]:
    """Per-variable [sum of finite values (float64), number of non-finite values]."""
    return _checksums_from_parts(ds, dask.compute(*_checksum_parts(ds)))


def _encode_time(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    enc: dict[str, dict[str, Any]] = {}
    if "time" in ds.coords and np.issubdtype(ds["time"].dtype, np.datetime64):
        enc["time"] = {
            "units": "seconds since 1970-01-01",
            "dtype": "int64",
            "calendar": "proleptic_gregorian",
        }
    return enc


def _strip_history(ds: xr.Dataset) -> xr.Dataset:
    """Drop the timestamped ``history`` attributes the processing chain leaves on variables.

    They would make two runs of the same cycles differ; the store's provenance is its
    configuration (root attributes) and the icechunk commit log.
    """
    ds = ds.copy()
    ds.attrs = {k: v for k, v in ds.attrs.items() if k != "history"}
    for v in ds.variables:
        ds[v].attrs = {k: a for k, a in ds[v].attrs.items() if k != "history"}
    return ds


def _group(store, group: str):
    """The Zarr group ``group`` of ``store`` (read-only), or None where there is none
    (a metadata read: cheaper than opening it as a Dataset)."""
    import zarr

    try:
        return zarr.open_group(store, path=group, mode="r", zarr_format=3)
    except Exception as exc:
        if _not_found(exc):
            return None
        raise


def _not_found(exc: Exception) -> bool:
    """Whether ``exc`` says that a group is absent (zarr raises GroupNotFoundError and
    friends, some stores FileNotFoundError or KeyError)."""
    msg = str(exc).lower()
    return (
        isinstance(exc, FileNotFoundError | KeyError)
        or "not found" in msg
        or ("nothing found" in msg)
    )


def _harmonise(ds: xr.Dataset, store, group: str) -> xr.Dataset:
    """Make ``ds`` fit the variables already in ``group`` before an append.

    A variable stored earlier but absent now is filled (NaN, or 0 for integer counts); a
    new variable is created in the group with fill values for the earlier times (its
    other dimensions must already exist there), so that every time step of every variable
    exists exactly once.
    """
    import zarr

    g = zarr.open_group(store, path=group, mode="a", zarr_format=3)
    stored = {name: arr for name, arr in g.arrays()}
    ntime = stored["time"].shape[0]
    for name, arr in stored.items():
        if name in ds.variables or name == "time":
            continue
        dims = tuple(arr.metadata.dimension_names or ())
        if "time" not in dims:
            continue
        shape = tuple(ds.sizes.get(d, n) if d != "time" else 1 for d, n in zip(dims, arr.shape))
        fill = np.nan if np.issubdtype(arr.dtype, np.floating) else 0
        attrs = {k: v for k, v in arr.attrs.items() if not k.startswith("_")}
        ds[name] = xr.DataArray(np.full(shape, fill, dtype=arr.dtype), dims=dims, attrs=attrs)
    for name in list(ds.data_vars):
        if name in stored:
            continue
        da = ds[name]
        other = [d for d in da.dims if d != "time"]
        if any(d not in stored for d in other):
            log.warning("diagnostic %r has a dimension the store lacks; not stored", name)
            ds = ds.drop_vars(name)
            continue
        floating = np.issubdtype(da.dtype, np.floating)
        arr = g.create_array(
            name,
            shape=(ntime, *[da.sizes[d] for d in other]),
            chunks=(
                1,
                *[
                    da.chunks[da.dims.index(d)][0] if da.chunks is not None else da.sizes[d]
                    for d in other
                ],
            ),
            dtype=da.dtype,
            fill_value=np.nan if floating else 0,
            dimension_names=("time", *other),
        )
        attrs = {k: v for k, v in da.attrs.items() if isinstance(v, (str, int, float))}
        arr.attrs.update(attrs)
    return ds


class CycleStore:
    """Outputs and checkpoints of one experiment in an icechunk repository.

    Parameters
    ----------
    path : path-like
        Folder of the icechunk repository (created if needed).
    config_hash, config :
        Identity of the experiment; a store made by a different configuration is refused.
    overwrite : bool
        Replace a store that belongs to another experiment (or is not an xldas store).
    name : str
        Experiment name, written in the attributes.

    Use it as a context manager: entering takes the writer lock.
    """

    def __init__(
        self,
        path: str | Path,
        config_hash: str,
        config: dict[str, Any] | None = None,
        *,
        overwrite: bool = False,
        name: str = "",
    ):
        self.path = Path(path)
        self.config_hash = config_hash
        self.config = config or {}
        self.overwrite = overwrite
        self.name = name
        self.lock = WriterLock(self.path)
        self.repo = None
        #: tasks in the graph of the last streamed commit (None for in-memory commits)
        self.last_graph_size: int | None = None

    # ---------------------------------------------------------------- open
    def __enter__(self):
        self.lock.acquire()
        try:
            self._open()
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(self, *exc):
        self.lock.release()

    def _open(self) -> None:
        p = self.path
        if p.exists() and not _is_repo(p):
            if any(p.iterdir()) and not self.overwrite:
                raise StoreError(
                    f"output path {p} exists and is not an xldas store; choose another "
                    f"output.store or pass overwrite=True (--overwrite) to replace it"
                )
            shutil.rmtree(p)
        if _is_repo(p):
            self.repo = _repo(p, create=False)
            attrs = self.root_attrs()
            found = attrs.get("xldas_config_hash")
            if found is not None and found != self.config_hash:
                if not self.overwrite:
                    raise StoreError(
                        f"store {p} belongs to a different experiment "
                        f"({attrs.get('xldas_experiment')!r}, config hash {found}; this one is "
                        f"{self.name!r}, {self.config_hash}). Use another output.store, or "
                        f"overwrite=True (--overwrite) to replace it."
                    )
                log.warning("overwriting store %s of experiment %s", p, found)
                shutil.rmtree(p)
                self.repo = None
        if self.repo is None:
            self.repo = _repo(p, create=True)
        if "xldas_config_hash" not in self.root_attrs():
            import zarr

            session = self.repo.writable_session(_BRANCH)
            root = zarr.open_group(session.store, mode="a", zarr_format=3)
            root.attrs.update(
                {
                    "xldas_experiment": self.name,
                    "xldas_config_hash": self.config_hash,
                    "xldas_config": json.dumps(self.config, default=str),
                    "Conventions": "CF-1.10",
                    "title": f"xldas experiment {self.name}",
                    "source": "xldas cycling engine",
                }
            )
            session.commit("xldas: create experiment store", metadata={"cycle": -1})

    # ---------------------------------------------------------------- read
    def root_attrs(self, snapshot: str | None = None) -> dict[str, Any]:
        import zarr

        session = (
            self.repo.readonly_session(snapshot_id=snapshot)
            if snapshot
            else self.repo.readonly_session(branch=_BRANCH)
        )
        try:
            return dict(zarr.open_group(session.store, mode="r", zarr_format=3).attrs)
        except Exception:
            return {}

    def last(self) -> CommitInfo | None:
        """The last committed cycle (None when no cycle has been committed yet)."""
        snap = self.repo.lookup_branch(_BRANCH)
        attrs = self.root_attrs()
        if "xldas_last_cycle" not in attrs:
            return None
        return CommitInfo(
            int(attrs["xldas_last_cycle"]), pd.Timestamp(attrs["xldas_last_time"]), snap
        )

    def ledger(self) -> dict[str, list[str]]:
        """Observation items (per source) already consumed by committed cycles."""
        return json.loads(self.root_attrs().get("xldas_obs_ledger", "{}"))

    def output_times(self, group: str = "analysis") -> pd.DatetimeIndex:
        """Times in an output group at the branch tip (read from its ``time`` array
        alone, without opening the group's other arrays)."""
        from xarray.coding.times import decode_cf_datetime

        g = _group(self.repo.readonly_session(branch=_BRANCH).store, group)
        if g is None or "time" not in g:
            return pd.DatetimeIndex([])
        t = g["time"]
        values = t[:]
        units = t.attrs.get("units")
        if units is None or values.dtype.kind == "M":
            return pd.DatetimeIndex(values)
        return pd.DatetimeIndex(
            decode_cf_datetime(values, units, t.attrs.get("calendar", "proleptic_gregorian"))
        )

    def open(self, group: str, snapshot: str | None = None) -> xr.Dataset | None:
        """Lazy Dataset of a group at the branch tip (or a snapshot); None if absent."""
        session = (
            self.repo.readonly_session(snapshot_id=snapshot)
            if snapshot
            else self.repo.readonly_session(branch=_BRANCH)
        )
        try:
            return xr.open_zarr(session.store, group=group, consolidated=False, zarr_format=3)
        except Exception as exc:
            if _not_found(exc):
                return None
            raise

    def load_checkpoint(self, verify: bool = True) -> xr.Dataset:
        """The ensemble of the last committed cycle, verified against its checksums.

        Raises :class:`CheckpointError` when it cannot be read or its checksums differ.
        """
        info = self.last()
        if info is None:
            raise CheckpointError(f"store {self.path} holds no checkpoint yet")
        try:
            ds = self.open("checkpoint", snapshot=info.snapshot)
            if ds is None:
                raise CheckpointError("group 'checkpoint' is missing")
            if int(ds.attrs.get("cycle", -99)) != info.cycle:
                raise CheckpointError(
                    f"checkpoint is of cycle {ds.attrs.get('cycle')}, the commit says {info.cycle}"
                )
            if verify:
                want = json.loads(ds.attrs["checksums"])
                got = checksums(ds)
                for v, (s0, n0) in want.items():
                    s1, n1 = got.get(v, (np.nan, np.nan))
                    if n0 != n1 or not np.isclose(s0, s1, rtol=1e-9, atol=0.0):
                        raise CheckpointError(
                            f"variable {v!r}: checksum {s1!r}/{n1!r} differs from the "
                            f"committed {s0!r}/{n0!r}"
                        )
        except CheckpointError as exc:
            raise CheckpointError(
                f"checkpoint of cycle {info.cycle} ({info.time}) in {self.path} is corrupt: {exc}"
            ) from None
        except Exception as exc:
            raise CheckpointError(
                f"checkpoint of cycle {info.cycle} ({info.time}) in {self.path} cannot be "
                f"read: {type(exc).__name__}: {exc}"
            ) from exc
        return ds

    # ---------------------------------------------------------------- write
    def rollback(self) -> CommitInfo | None:
        """Move the branch back to the snapshot before its tip (drops the last cycle)."""
        tip = self.repo.lookup_branch(_BRANCH)
        ancestry = list(self.repo.ancestry(snapshot_id=tip))
        if len(ancestry) < 2:
            raise CheckpointError(f"store {self.path}: no earlier snapshot to roll back to")
        parent = ancestry[1]
        if (parent.metadata or {}).get("cycle", -1) == -1 and len(ancestry) < 3:
            pass
        self.repo.reset_branch(_BRANCH, parent.id)
        log.warning(
            "rolled store %s back to snapshot %s (%s)", self.path, parent.id, parent.message
        )
        return self.last()

    def commit_cycle(
        self,
        cycle: int,
        time: pd.Timestamp,
        checkpoint: xr.Dataset,
        outputs: dict[str, xr.Dataset] | None = None,
        *,
        ledger: dict[str, list[str]] | None = None,
        message: str = "",
    ) -> str:
        """Write one cycle's outputs and checkpoint and commit them atomically.

        Outputs are appended along ``time``; a cycle whose time is already in the analysis
        group is refused (idempotence is the engine's job: it never recomputes one).
        Inputs may be lazy: they are computed here (on the active Dask scheduler or
        client) and written from this process. Returns the new snapshot id.
        """
        import zarr

        time = pd.Timestamp(time)
        existing = self.output_times()
        if outputs and time in existing:
            raise StoreError(f"store {self.path} already holds time {time}; not duplicating it")
        outputs = {g: _strip_history(ds) for g, ds in (outputs or {}).items()}
        checkpoint = _strip_history(checkpoint)
        lazy = any(dask.is_dask_collection(ds) for ds in (checkpoint, *outputs.values()))
        if lazy:
            session, sums, small = self._write_streaming(cycle, time, checkpoint, outputs)
        else:
            self.last_graph_size = None
            session, sums, small = self._write_in_memory(cycle, time, checkpoint, outputs)
        root = zarr.open_group(session.store, mode="a", zarr_format=3)
        root["checkpoint"].attrs.update({"checksums": json.dumps(sums)})
        root.attrs.update(
            {
                "xldas_last_cycle": int(cycle),
                "xldas_last_time": time.isoformat(),
                **({"xldas_obs_ledger": json.dumps(ledger)} if ledger is not None else {}),
            }
        )
        _fault("commit", cycle)
        snap = session.commit(
            message or f"cycle {cycle} {time.isoformat()}",
            metadata={"cycle": int(cycle), "time": time.isoformat()},
        )
        _fault("committed", cycle)
        #: the scalar diagnostics of the cycle just committed (computed with the cycle)
        self.last_outputs = {"diagnostics": small}
        return snap

    # -- the two write paths -------------------------------------------------------
    def _checkpoint_ds(self, cycle: int, time: pd.Timestamp, ck: xr.Dataset) -> xr.Dataset:
        ck = ck.copy()
        ck.attrs.update(
            {
                "cycle": int(cycle),
                "time": time.isoformat(),
                "config_hash": self.config_hash,
            }
        )
        if "time" in ck.coords:
            ck = ck.drop_vars("time")
        for v in ck.variables:
            ck[v].encoding = {}
        return ck

    @staticmethod
    def _output_ds(ds: xr.Dataset, time: pd.Timestamp) -> xr.Dataset:
        ds = ds.drop_vars("time", errors="ignore").expand_dims(time=[time.to_datetime64()])
        return variable_length_strings(ds)

    @staticmethod
    def _new_group_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
        """One chunk per time; spatially the dask chunks (whole fields for NumPy data)."""
        enc = _encode_time(ds)
        for v in ds.data_vars:
            da = ds[v]
            chunks = tuple(
                1 if d == "time" else (da.chunks[i][0] if da.chunks is not None else n)
                for i, (d, n) in enumerate(zip(da.dims, da.shape))
            )
            enc.setdefault(v, {})["chunks"] = chunks
        return enc

    def _write_in_memory(self, cycle, time, checkpoint, outputs):
        """Small (NumPy) cycles: compute everything, write from this process."""
        names = list(outputs)
        small = _scalars(outputs.get("diagnostics"))
        # optimize_graph=False: graph optimisation of several collections sharing persisted
        # keys drops dependencies (dask 2026.8, "Missing dependency")
        computed = dask.compute(
            checkpoint, *[outputs[g] for g in names], small, optimize_graph=False
        )
        checkpoint = computed[0]
        outputs = dict(zip(names, computed[1:-1]))
        small = computed[-1]
        session = self.repo.writable_session(_BRANCH)
        for group, ds in outputs.items():
            ds = self._output_ds(ds, time)
            if _group(session.store, group) is None:
                enc = self._new_group_encoding(ds)
                ds.to_zarr(session.store, group=group, mode="w-", encoding=enc, **_ZARR_KW)
            else:
                ds = _harmonise(ds, session.store, group)
                ds.to_zarr(session.store, group=group, append_dim="time", **_ZARR_KW)
            _fault("write", cycle)
        sums = checksums(checkpoint)
        ck = self._checkpoint_ds(cycle, time, checkpoint)
        ck.to_zarr(session.store, group="checkpoint", mode="w", **_ZARR_KW)
        return session, sums, small

    def _write_streaming(self, cycle, time, checkpoint, outputs):
        """Lazy cycles: every spatial chunk is written by one task as soon as it exists.

        One ``dask.compute`` evaluates the whole cycle (forecast, analysis, statistics)
        once. Its sinks are **one task per spatial chunk** that writes that chunk of every
        variable of every group (outputs and checkpoint) and returns the chunk's checksum
        terms: the graph then completes chunk after chunk, and the results of a chunk are
        released as soon as its sink ran. (Sinks per *variable*, such as
        ``dask.array.store`` followed by a reduction, make the scheduler compute a variable
        over the whole domain first and keep every sibling intermediate of every chunk
        alive meanwhile.) The writes go through icechunk fork sessions (pickled to the
        workers of a distributed client, merged here), so nothing the size of the domain
        is held in this process; the session is committed once (the commit protocol is
        unchanged).
        """
        _return_freed_memory()
        session = self.repo.writable_session(_BRANCH)
        jobs = []  # (group, dataset, mode, append_dim, encoding)
        for group, ds in outputs.items():
            ds = self._output_ds(ds, time)
            if _group(session.store, group) is None:
                jobs.append((group, ds, "w-", None, self._new_group_encoding(ds)))
            else:
                jobs.append((group, ds, "a", "time", None))
        ck = self._checkpoint_ds(cycle, time, checkpoint)
        jobs.append(("checkpoint", ck, "w", None, None))
        forks = [session.fork() for _ in jobs]  # all from the clean session
        pieces = []  # (region key, target, region, block, checksum name or None)
        for fork, (group, ds, mode, append_dim, enc) in zip(forks, jobs):
            if append_dim is not None:
                ds = _harmonise(ds, fork.store, group)
            pieces += _lazy_pieces(ds, fork.store, group, mode, append_dim, enc)
        tasks = _chunk_tasks(pieces)
        small = _scalars(outputs.get("diagnostics"))
        _fault("write", cycle)
        # the size of the cycle's task graph (tests/test_scale.py: linear in the chunks)
        from dask.base import collections_to_expr

        sinks = _gathered(tasks)
        todo = [sinks, *([small] if dask.is_dask_collection(small) else [])]
        graph = collections_to_expr(todo, optimize_graph=False).__dask_graph__()
        self.last_graph_size = len(graph) - 1  # without the gathering task
        del graph
        log.info("cycle %d: %d tasks, %d chunk sinks", cycle, self.last_graph_size, len(tasks))
        # optimize_graph=False: see _write_in_memory (and the blocks of different
        # variables must keep their shared keys)
        get = _local_get(todo) if _batch_size() else None
        if get is None:  # a distributed client (its scheduler manages the memory) or no batches
            results, small = dask.compute(sinks, small, optimize_graph=False)
        else:
            spatial = len({p[0] for p in pieces} - {()})
            batched = _compute_in_batches(todo, tasks, spatial, small, get)
            if batched is None:
                results, small = dask.compute(sinks, small, optimize_graph=False)
            else:
                results, small = batched
        sessions, totals = {}, {}
        for sess, sums in results:
            for x in sess:
                sessions[id(x)] = x  # in-process schedulers return the fork itself
            for name, (total, bad) in sums.items():
                t0, b0 = totals.get(name, (0.0, 0))
                totals[name] = (t0 + total, b0 + bad)
        merged = list(sessions.values()) + [
            f for f in forks if not any(f is x for x in sessions.values())
        ]
        from icechunk.dask import merge_sessions

        session.merge(merge_sessions(*merged))
        eager = [v for v in checkpoint.data_vars if not dask.is_dask_collection(checkpoint[v])]
        sums = checksums(checkpoint[eager]) if eager else {}
        for v, (total, bad) in totals.items():
            sums[v] = [float(total), float(bad)]
        sums = {v: sums[v] for v in sorted(sums)}
        return session, sums, small


def _lazy_pieces(ds: xr.Dataset, store, group: str, mode: str, append_dim, encoding) -> list:
    """Write the metadata and the NumPy variables of ``ds`` now; return its dask blocks.

    Each piece is ``(spatial region key, target zarr array, region, Delayed block,
    checksum name)``; the checksum name is the variable name for the checkpoint's data
    variables (their sums make the checksums), else None.
    """
    import zarr

    lazy = [v for v in ds.variables if dask.is_dask_collection(ds[v].data)]
    n0 = 0
    if append_dim is not None:
        g = zarr.open_group(store, path=group, mode="r", zarr_format=3)
        n0 = g[append_dim].shape[0]
    # metadata, coordinates and NumPy variables (the delayed write of the dask variables
    # that to_zarr returns is not used: _chunk_tasks writes them)
    kw = {"encoding": encoding} if encoding else {}
    ds.to_zarr(
        store, group=group, mode=mode, append_dim=append_dim, compute=False, **kw, **_ZARR_KW
    )
    pieces = []
    for v in lazy:
        var = ds[v].variable
        target = zarr.open_array(store, path=f"{group}/{v}", mode="r+", zarr_format=3)
        data = var.data.astype(target.dtype)
        offsets = [np.concatenate([[0], np.cumsum(c)]) for c in data.chunks]
        blocks = data.to_delayed(optimize_graph=False)
        name = v if group == "checkpoint" and v in ds.data_vars else None
        for idx in np.ndindex(*blocks.shape):
            region = tuple(
                slice(
                    (n0 if d == append_dim else 0) + int(off[i]),
                    (n0 if d == append_dim else 0) + int(off[i + 1]),
                )
                for d, off, i in zip(var.dims, offsets, idx)
            )
            key = tuple(
                (d, region[k].start, region[k].stop)
                for k, d in enumerate(var.dims)
                if d in _SPATIAL
            )
            pieces.append((key, target, region, blocks[idx], name))
    return pieces


_SPATIAL = ("lat", "lon", "y", "x", "rlat", "rlon")


def _write_chunk(specs, *blocks):
    """Sink of one spatial chunk: write every block; return the sessions and checksums."""
    sessions, sums = {}, {}
    for (target, region, name), block in zip(specs, blocks):
        block = np.asarray(block)
        target[region] = block
        session = getattr(target.store, "session", None)  # icechunk stores
        if session is not None:
            sessions[id(session)] = session
        if name is not None:
            a = block.astype(np.float64)
            ok = np.isfinite(a)
            t, b = sums.get(name, (0.0, 0))
            sums[name] = (t + float(a[ok].sum()), b + int((~ok).sum()))
    return list(sessions.values()), sums


def _chunk_tasks(pieces) -> list:
    """One delayed sink per spatial region (blocks without spatial dims: one together, last)."""
    groups: dict = {}
    for key, target, region, block, name in pieces:
        groups.setdefault(key, []).append((target, region, block, name))
    write = dask.delayed(_write_chunk, pure=False)
    # spatial regions in row-major order (neighbours together), the non-spatial one last
    order = sorted(groups, key=lambda key: (key == (), key))
    return [
        write([(t, r, n) for t, r, _, n in groups[key]], *[b for _, _, b, _ in groups[key]])
        for key in order
    ]


def write_streamed(datasets: dict[Path, xr.Dataset], group: str = "data") -> None:
    """Write lazy Datasets into new Zarr stores chunk by chunk (``{path: dataset}``).

    The sinks of :meth:`CycleStore._write_streaming` without a transaction: one task per
    spatial chunk writes that chunk of every variable of every dataset, and on a local
    scheduler the sinks are evaluated in batches of neighbouring chunks
    (:func:`_compute_in_batches`), so that the peak memory does not grow with the domain.
    Each dataset goes to ``group`` of its store, replaced if it exists; its variables
    keep their dtypes, values and attributes, with the dask chunks as Zarr chunks (they
    must be uniform but for the last).
    """
    _return_freed_memory()
    pieces = []
    for path, ds in datasets.items():
        ds = ds.copy()
        for v in ds.variables:
            ds[v].encoding = {}
        pieces += _lazy_pieces(ds, str(path), group, "w", None, None)
    if not pieces:
        return
    tasks = _chunk_tasks(pieces)
    sinks = _gathered(tasks)
    get = _local_get([sinks]) if _batch_size() else None
    if get is not None:
        spatial = len({p[0] for p in pieces} - {()})
        if _compute_in_batches([sinks], tasks, spatial, xr.Dataset(), get) is not None:
            return
    dask.compute(sinks, optimize_graph=False)


def _gathered(tasks: list):
    """One Delayed that holds the sinks ``tasks`` (its value: their list).

    Dask turns each Delayed of a ``compute`` into its own expression and materialises
    each one's graph apart: hundreds of sinks over one shared graph cost hundreds of
    copies of it (quadratic in the number of chunks; 8.7 GB for the 800 chunks of the
    Pan-TP domain). Their one gathering Delayed shares the layers once.
    """
    return dask.delayed(list, pure=False)(tasks)


_MALLOC_SET = False


def _return_freed_memory() -> None:
    """Make glibc's allocator give freed blocks back to the system (Linux; once).

    By default glibc raises its mmap threshold each time a large block is freed, so the
    chunk-sized arrays of a streamed cycle end up on the heap, where freed memory is
    fragmented and kept: the resident set then grows with the number of chunks
    processed although the live data does not (``tests/test_scale.py``: +0.25 GB from 8
    to 32 chunks of the same size). A fixed mmap threshold (glibc's default, 128 KiB)
    and trim threshold (64 KiB, as ``distributed`` sets for its workers) keep it at what
    is live. Environment variables ``MALLOC_*_`` set by the user take precedence.
    """
    global _MALLOC_SET
    if _MALLOC_SET or not sys.platform.startswith("linux"):
        return
    _MALLOC_SET = True
    if any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 128 * 1024)
    mallopt(m_trim_threshold, 64 * 1024)


#: spatial chunks per batch of a streamed commit on a local scheduler (default: 4 per thread,
#: at least 8); ``dask.config.set({"xldas.batch_chunks": n})`` overrides it
BATCH_CHUNKS_KEY = "xldas.batch_chunks"


def _local_get(collections):
    """The scheduler's ``get`` when it runs in this process (threads, sync), else None."""
    import dask.local
    import dask.threaded
    from dask.base import get_scheduler

    get = get_scheduler(collections=collections) or dask.threaded.get
    return get if get in (dask.threaded.get, dask.local.get_sync) else None


def _batch_size() -> int:
    n = dask.config.get(BATCH_CHUNKS_KEY, None)
    if n is not None:
        return max(0, int(n))
    threads = dask.config.get("num_workers", None) or os.cpu_count() or 1
    return max(8, 4 * int(threads))


def _compute_in_batches(todo, tasks, n_spatial: int, small, get):
    """Evaluate the chunk sinks batch after batch, then the scalar diagnostics.

    One ``dask.compute`` of the whole cycle leaves the order to Dask's static ordering,
    which computes cheap inputs (checkpoint reads, parameters) and the per-chunk terms of
    domain-wide reductions for every chunk early and keeps what depends on them alive:
    the peak then grows with the domain. Here the sinks run in batches of
    :func:`_batch_size` neighbouring chunks; each batch computes only what its sinks need
    and not yet computed. Between batches the process keeps only results that tasks
    outside the batches done so far still need: the partial sums of reductions and the
    halos of neighbouring chunks (for them, the tasks that cut a halo out of a block run
    in the batch that computed the block, so that the block itself is released). The peak
    is that of one batch plus those boundary results, whatever the domain size. The same
    tasks run as with one ``dask.compute``: results are bitwise identical. Returns None
    (the caller then computes everything at once) where Dask lacks the task-spec graph
    API this needs (``dask._task_spec``, absent from older Dask releases).
    """
    try:
        from dask._task_spec import DataNode, convert_legacy_graph
    except ImportError:
        log.info("streamed commit: this Dask has no task-spec graphs; one compute, no batches")
        return None
    from dask.base import collections_to_expr

    dsk = convert_legacy_graph(
        dict(collections_to_expr(todo, optimize_graph=False).__dask_graph__())
    )
    deps = {k: set(node.dependencies) for k, node in dsk.items()}
    dependents: dict = {k: set() for k in dsk}
    for k, ds in deps.items():
        for d in ds:
            dependents[d].add(k)
    sink_keys = [t.key for t in tasks]
    # spatial sinks (row-major: neighbours together) in batches; the last batch holds the
    # non-spatial sink and the scalar diagnostics (the reductions over the whole domain)
    n = _batch_size()
    batches = [sink_keys[i : min(i + n, n_spatial)] for i in range(0, n_spatial, n)]
    small_keys = {
        v: _flat(small[v].data.__dask_keys__())
        for v in small.data_vars
        if dask.is_dask_collection(small[v].data)
    }
    batches.append([*sink_keys[n_spatial:], *{k for ks in small_keys.values() for k in ks}])

    def releases(d, need, avail) -> bool:
        # d, computed in this batch, is no longer needed once ``avail`` is; inputs (tasks
        # without dependencies: constants, store handles) and results used all over the
        # domain (more than 16 dependents) are kept rather than completed for every chunk
        return d in need and bool(deps[d]) and len(dependents[d]) <= 16 and dependents[d] <= avail

    wanted = {k for b in batches for k in b}
    finished: set = set()
    held: dict = {}
    out: dict = {}
    for batch in [b for b in batches if b]:
        if all(k in out for k in batch):
            continue
        need: set = set()
        stack = list(batch)
        while stack:
            k = stack.pop()
            if k in need or k in finished:
                continue
            need.add(k)
            stack.extend(deps[k])
        avail = need | finished
        new = set(need)
        while new:  # tasks that let a block computed here be released (halo cuts, partial sums)
            cand = {t for k in new for t in dependents[k] if t not in avail and deps[t] <= avail}
            add = {t for t in cand if any(releases(d, need, avail | cand) for d in deps[t])}
            need |= add
            avail |= add
            new = add
        # results: the outputs computed here (a reduction can complete early) and what
        # tasks not computed yet need
        outs = [k for k in need if k in wanted]
        keep = [k for k in need if dependents[k] - avail and k not in wanted]
        if not finished and len(need) > 1.5 * len(dsk) * len(batch) / max(n_spatial, 1):
            # chunks that need much of their neighbours' work (halos of blocks computed
            # from the forecast): a batch computes and would hold the blocks of the next
            # row; leave the whole graph to Dask's ordering. (The halos of a two-pass
            # cycle are cheap reads of its scratch store: 1.1-1.4x the batch's share.)
            log.debug("first batch needs %d of %d tasks: one compute", len(need), len(dsk))
            return None
        sub = {k: dsk[k] for k in need}
        for d in set().union(*(deps[k] for k in need)) - need:
            sub[d] = DataNode(d, held[d])
        values = get(sub, [*outs, *keep])
        out.update(zip(outs, values[: len(outs)]))
        finished |= need
        for k in outs:
            if dependents[k] - finished:
                held[k] = out[k]
        # small results are held; large ones (blocks of a neighbouring chunk computed for
        # a halo) are computed again by the batch that needs them, with whatever of their
        # inputs is not held
        again = []
        for k, v in zip(keep, values[len(outs) :]):
            if _nbytes(v) <= HOLD_BYTES:
                held[k] = v.copy() if isinstance(v, np.ndarray) and v.base is not None else v
            else:
                again.append(k)
        while again:
            k = again.pop()
            if k in finished and k not in held:
                finished.discard(k)
                again.extend(deps[k])
        held = {k: v for k, v in held.items() if dependents[k] - finished}
        log.debug(
            "batch of %d outputs: %d tasks, %d results held (%.1f MB)",
            len(outs),
            len(need),
            len(held),
            sum(_nbytes(v) for v in held.values()) / 1e6,
        )
    results = [out[k] for k in sink_keys]
    if small_keys:
        small = small.copy()
        for v, ks in small_keys.items():
            small[v] = small[v].copy(data=np.asarray(out[ks[0]]).reshape(small[v].shape))
    return results, small


#: results of a batch larger than this (bytes) are computed again rather than held
HOLD_BYTES = 256 * 1024


def _nbytes(value) -> int:
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    n = getattr(value, "nbytes", 0)
    return n if isinstance(n, int) else 0


def _flat(keys) -> list:
    return [k for x in keys for k in _flat(x)] if isinstance(keys, list) else [keys]


def _scalars(ds: xr.Dataset | None) -> xr.Dataset:
    """The 0-d variables of a diagnostics Dataset (what the cycle log reports)."""
    if ds is None:
        return xr.Dataset()
    return ds[[v for v in ds.data_vars if ds[v].ndim == 0]]


def open_output(
    path: str | Path, group: str = "analysis", snapshot: str | None = None
) -> xr.Dataset:
    """Open a group of an experiment store lazily (read-only; no lock needed).

    Parameters
    ----------
    path : path-like
        The experiment's ``output.store``.
    group : {"analysis", "forecast", "diagnostics", "fluxes", "checkpoint"}
    snapshot : str, optional
        An icechunk snapshot id (default: the last committed cycle).

    Examples
    --------
    >>> ds = open_output("xldas-demo/enkf", "analysis")  # doctest: +SKIP
    >>> ds.sm.sel(layer=0).mean(["lat", "lon"]).plot()  # doctest: +SKIP
    """
    path = Path(path)
    if not _is_repo(path):
        raise StoreError(f"{path} is not an xldas experiment store")
    repo = _repo(path, create=False)
    session = (
        repo.readonly_session(snapshot_id=snapshot)
        if snapshot
        else repo.readonly_session(branch=_BRANCH)
    )
    try:
        return xr.open_zarr(session.store, group=group, consolidated=False, zarr_format=3)
    except Exception as exc:
        raise StoreError(f"store {path} has no group {group!r}: {exc}") from None
