"""Zarr v3 output: write with default encodings, append along time, region and template writes.

One function, :func:`to_store`, covers the ways xldas writes analysis stores and
checkpoints; :func:`open_store` reads them back lazily.

Chunk policy (:func:`default_chunks`): ``member`` and ``layer`` are never split (the
filters need whole ensembles per chunk), ``time`` is one step per chunk (so appending a
cycle writes whole chunks), and the spatial dims are split into square-ish tiles of about
:data:`TARGET_CHUNK_BYTES`. Dask-backed input keeps its chunks when they are regular
(every chunk but the last of equal size) along the spatial dims, so that each dask
chunk writes whole Zarr chunks; ``time``/``member``/``layer`` and irregular chunks follow
the policy.

Compression: Blosc/Zstd level 3 with byte shuffle (bit shuffle for 1-byte types), the
usual Pangeo choice for float fields.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from xldas._xr import add_history, variable_length_strings
from xldas.errors import StoreError

__all__ = ["TARGET_CHUNK_BYTES", "default_chunks", "default_encoding", "open_store", "to_store"]

#: target size of one uncompressed chunk of a data variable (bytes)
TARGET_CHUNK_BYTES = 16 * 2**20

#: dims kept in one chunk
WHOLE_DIMS = ("member", "layer")


def _is_local(store: Any) -> bool:
    return isinstance(store, str | os.PathLike) and "://" not in str(store)


def _exists(store: Any) -> bool:
    if _is_local(store):
        return (Path(store) / "zarr.json").exists() or (Path(store) / ".zgroup").exists()
    try:
        import zarr

        zarr.open_group(store, mode="r")
    except Exception:
        return False
    return True


def default_chunks(ds: xr.Dataset | xr.DataArray, target_bytes: int = TARGET_CHUNK_BYTES) -> dict:
    """Chunk sizes following xldas's policy (see the module docstring).

    Returns a mapping dim -> chunk length for every dim of ``ds``.

    Examples
    --------
    >>> import dask.array as dsa, xarray as xr
    >>> from xldas.io import default_chunks
    >>> sm = xr.DataArray(dsa.zeros((5, 32, 4, 2000, 4000), dtype="float32"),
    ...                   dims=("time", "member", "layer", "lat", "lon"))
    >>> default_chunks(sm)  # 1 x 32 x 4 x 181 x 181 float32 = 16 MiB
    {'time': 1, 'member': 32, 'layer': 4, 'lat': 181, 'lon': 181}
    """
    sizes = dict(ds.sizes)
    variables = ds.data_vars.values() if isinstance(ds, xr.Dataset) else [ds]
    itemsize = max((v.dtype.itemsize for v in variables), default=8)
    chunks: dict[Hashable, int] = {}
    fixed = itemsize
    for dim, n in sizes.items():
        if dim in WHOLE_DIMS:
            chunks[dim] = n
            fixed *= n
        elif dim == "time":
            chunks[dim] = 1
    free = [d for d in sizes if d not in chunks]
    if free:
        per_dim = max(1, int((max(target_bytes // max(fixed, 1), 1)) ** (1.0 / len(free))))
        for dim in free:
            chunks[dim] = min(sizes[dim], per_dim)
    return {d: chunks[d] for d in sizes}


def default_encoding(ds: xr.Dataset, chunks: Mapping[Hashable, int] | None = None) -> dict:
    """Per-variable Zarr v3 encodings: Blosc/Zstd compression and ``chunks``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from xldas.io import default_encoding
    >>> enc = default_encoding(xr.Dataset({"v": (("lat", "lon"), np.zeros((4, 4)))}))
    >>> enc["v"]["chunks"]
    (4, 4)
    """
    from zarr.codecs import BloscCodec

    chunks = dict(chunks) if chunks is not None else default_chunks(ds)
    encoding: dict[Hashable, dict] = {}
    for name, var in ds.variables.items():
        if var.dtype.kind not in "biufc":
            continue
        shuffle = "bitshuffle" if var.dtype.itemsize == 1 else "shuffle"
        enc: dict[str, Any] = {
            "compressors": (BloscCodec(cname="zstd", clevel=3, shuffle=shuffle),),
        }
        if name in ds.data_vars and var.ndim:
            enc["chunks"] = tuple(min(chunks.get(d, n), n) for d, n in zip(var.dims, var.shape))
        encoding[name] = enc
    return encoding


def _regular(chunks: tuple[tuple[int, ...], ...]) -> bool:
    return all(len(set(c[:-1])) <= 1 and (len(c) == 1 or c[-1] <= c[0]) for c in chunks)


def _write_chunks(ds: xr.Dataset, chunks: Mapping[Hashable, int] | None) -> dict:
    if chunks is not None:
        return {d: chunks.get(d, n) for d, n in ds.sizes.items()}
    policy = default_chunks(ds)
    if ds.chunks and all(v.chunks is None or _regular(v.chunks) for v in ds.data_vars.values()):
        # keep the caller's (regular) chunks of the other dims
        for dim, c in ds.chunks.items():
            if dim not in WHOLE_DIMS and dim != "time":
                policy[dim] = c[0]
    return policy


def to_store(
    ds: xr.Dataset | xr.DataArray,
    store: str | os.PathLike | Any,
    mode: str | None = None,
    append_dim: str | None = None,
    region: Mapping[str, slice] | str | None = None,
    chunks: Mapping[Hashable, int] | None = None,
    encoding: Mapping[Hashable, Mapping[str, Any]] | None = None,
    compute: bool = True,
    consolidated: bool = False,
    storage_options: Mapping[str, Any] | None = None,
):
    """Write ``ds`` to a Zarr v3 store with xldas's default chunks and compression.

    Parameters
    ----------
    ds : Dataset or DataArray
        What to write (a DataArray is written as a one-variable Dataset named after it).
    store : path, URL or zarr store
        Destination (``"analysis.zarr"``, ``"s3://bucket/run.zarr"`` ...).
    mode : {"w-", "w", "a", "r+"}, optional
        ``"w-"`` create (fail if it exists; the default for a new write), ``"w"``
        overwrite, ``"a"`` add variables / append (the default with ``append_dim``),
        ``"r+"`` write into existing arrays only (the default with ``region``).
    append_dim : str, optional
        Append along this dim (``"time"``). If the store does not exist yet it is
        created, so a cycling loop can call the same line every cycle.
    region : mapping of dim -> slice, or "auto", optional
        Write into this region of existing arrays. Variables that share no dim with the
        region (static fields already in the store) are dropped from ``ds`` first.
    chunks : mapping, optional
        Zarr chunk lengths per dim for a new store; default :func:`default_chunks`, or
        the dask chunks of ``ds`` when they are regular.
    encoding : mapping, optional
        Per-variable encodings merged over :func:`default_encoding` (new stores only).
    compute : bool
        False writes the metadata (and the coordinates) and returns a
        :class:`dask.delayed.Delayed` that writes the data: with a lazy ``ds`` this
        lays out a *template* store that region writes fill later.
    consolidated : bool
        Write consolidated metadata (not part of the Zarr v3 spec; off by default).
    storage_options : mapping, optional
        fsspec options for URL stores.

    Returns
    -------
    The ``store`` argument, or a ``Delayed`` when ``compute=False``.

    Raises
    ------
    StoreError
        Region write into a store that does not exist, or a store that rejects the write
        (the message names the store and the cause).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr, xldas, tempfile, os
    >>> ds = xr.Dataset({"sm": (("time", "lat", "lon"), np.zeros((2, 3, 4)))},
    ...                 coords={"time": pd.date_range("2024-01-01", periods=2)})
    >>> path = os.path.join(tempfile.mkdtemp(), "a.zarr")
    >>> _ = xldas.io.to_store(ds, path)
    >>> later = ds.assign_coords(time=ds.time + pd.Timedelta("2D"))
    >>> _ = xldas.io.to_store(later, path, append_dim="time")
    >>> xldas.io.open_store(path).sizes["time"]
    4
    """
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name if ds.name is not None else "data")
    ds = add_history(ds.copy(), "written by xldas.io.to_store")
    kwargs: dict[str, Any] = {
        "zarr_format": 3,
        "consolidated": consolidated,
        "compute": compute,
    }
    if storage_options:
        kwargs["storage_options"] = dict(storage_options)
    exists = _exists(store)

    if region is not None:
        if not exists:
            raise StoreError(f"region write into {store}, which is not a Zarr store (yet)")
        if isinstance(region, Mapping):
            dims = set(region)
            drop = [n for n, v in ds.variables.items() if not dims.intersection(v.dims)]
            ds = ds.drop_vars(drop)
            region = dict(region)
        kwargs.update(mode=mode or "r+", region=region)
        ds.attrs.pop("history", None)  # group attrs are not rewritten by region writes
    elif append_dim is not None and exists:
        if append_dim not in ds.dims:
            raise StoreError(
                f"cannot append to {store} along {append_dim!r}: not a dim of the data"
            )
        kwargs.update(mode=mode or "a", append_dim=append_dim)
    else:
        ds = ds.drop_encoding()  # stale chunks/compressors of the source must not leak in
        ds = variable_length_strings(ds)  # Zarr v3 has no specified fixed-width text type
        write_chunks = _write_chunks(ds, chunks)
        # rechunk dask-backed variables so each dask chunk covers whole Zarr chunks;
        # NumPy-backed ones stay eager (a template's static fields are written at once)
        ds = ds.assign(
            {
                k: v.chunk({d: write_chunks[d] for d in v.dims})
                for k, v in ds.data_vars.items()
                if v.chunks is not None
            }
        )
        enc = default_encoding(ds, write_chunks)
        for name, extra in (encoding or {}).items():
            enc.setdefault(name, {}).update(extra)
        kwargs.update(mode=mode or "w-", encoding=enc)

    try:
        result = ds.to_zarr(store, **kwargs)
    except (ValueError, FileExistsError, FileNotFoundError, KeyError) as err:
        raise StoreError(f"cannot write to Zarr store {store}: {err}") from err
    return store if compute else result


def open_store(
    store: str | os.PathLike | Any,
    chunks: Mapping[Hashable, int] | str | None = None,
    consolidated: bool | None = False,
    **kwargs: Any,
) -> xr.Dataset:
    """Open a Zarr store lazily (dask-backed, chunked as stored unless ``chunks`` is given).

    Raises :class:`~xldas.errors.StoreError` if ``store`` is not a Zarr store.

    Examples
    --------
    >>> import xldas
    >>> xldas.io.open_store("missing.zarr")
    Traceback (most recent call last):
    ...
    xldas.errors.StoreError: no Zarr store at missing.zarr
    """
    if not _exists(store):
        raise StoreError(f"no Zarr store at {store}")
    return xr.open_zarr(
        store, chunks={} if chunks is None else chunks, consolidated=consolidated, **kwargs
    )
