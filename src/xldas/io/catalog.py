"""Intake 2 catalogs: the one shipped with xldas and any user catalog in the same format.

A catalog is a ``version: 2`` Intake YAML file with ``data:`` blocks (where the bytes
are: a Zarr store, a NetCDF file ...) and ``entries:`` blocks (how to read them: a reader
class and its arguments). :func:`open_catalog` loads one and returns an
:class:`XldasCatalog`, an :class:`intake.readers.entry.Catalog` that

* fills in the blocks Intake requires but that a hand-written file may leave out
  (``metadata``, ``user_parameters``, ``aliases``);
* resolves these templates in any string argument:

  ``{CATALOG_DIR}``
      the folder of the catalog file (for data shipped beside it);
  ``{XLDAS_DATA_DIR}``
      the user cache directory :func:`xldas._paths.data_dir` (``$XLDAS_DATA_DIR``
      overrides the platform default). Generated data (the demo twin experiment,
      downloads) live there, never in site-packages;
  ``{env(NAME)}``
      an environment variable (Intake's own template);

* raises :class:`~xldas.errors.CatalogEntryError` (a ``KeyError``) naming the valid
  entries when an entry is missing;
* generates cached data on first use: an entry whose ``metadata`` has
  ``generator: "package.module:function"`` and whose data URL is a local path that does
  not exist yet calls ``function(path)`` once (the function writes the store at
  ``path``), then reads it. Demo entries use this to build their Zarr stores in the
  cache directory on demand.

Entries that read with :class:`StacSearchReader` run :func:`xldas.search_stac` with the
arguments of the entry; a user adds the search window when reading::

    cat = xldas.open_catalog()
    s2 = cat["sentinel2_l2a_pc"].read(bbox=(100.0, 38.8, 100.2, 39.0), datetime="2023-07")
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import yaml
from intake.readers.datatypes import BaseData
from intake.readers.entry import Catalog, DataDescription, ReaderDescription
from intake.readers.readers import BaseReader
from intake.readers.utils import import_name

from xldas._paths import catalog_dir, data_dir
from xldas.errors import CatalogEntryError, CatalogFileError

__all__ = [
    "DEFAULT_CATALOG",
    "StacSearchReader",
    "XldasCatalog",
    "catalog_entries",
    "default_catalog_path",
    "open_catalog",
]

#: file name of the catalog shipped with xldas (inside :func:`xldas._paths.catalog_dir`)
DEFAULT_CATALOG = "xldas.yaml"

_BLOCK_DEFAULTS = {"metadata": {}, "user_parameters": {}, "kwargs": {}}


def default_catalog_path() -> Path:
    """Path of the catalog shipped with xldas (found in wheels and in source checkouts)."""
    return catalog_dir() / DEFAULT_CATALOG


class StacSearchReader(BaseReader):
    """Intake reader that runs :func:`xldas.search_stac` with the entry's arguments.

    An entry fixes the API ``url``, ``collections`` and usually ``bands``,
    ``resolution`` and a URL-signing ``modifier``; the search window (``bbox``,
    ``datetime``) is given when reading: ``cat[name].read(bbox=..., datetime=...)``.
    """

    output_instance = "xarray:Dataset"
    imports: ClassVar[set[str]] = {"pystac_client", "odc.stac"}
    func = "xldas.io.stac:search_stac"

    def _read(self, **kwargs: Any):
        from xldas.io.stac import search_stac

        kwargs.pop("output_instance", None)
        missing = [k for k in ("bbox", "datetime") if k not in kwargs]
        if missing:
            raise TypeError(
                f"STAC catalog entry for {kwargs.get('collections')} at {kwargs.get('url')} "
                f"needs {missing} when read, e.g. .read(bbox=(w, s, e, n), datetime='2023-07')"
            )
        return search_stac(**kwargs)


def _normalise(raw: Any, where: str) -> dict:
    if not isinstance(raw, dict) or raw.get("version") != 2:
        raise CatalogFileError(
            f"{where} is not an Intake 2 catalog (it needs a top-level 'version: 2')"
        )
    cat = {k: dict(raw.get(k) or {}) for k in ("entries", "data", "user_parameters", "metadata")}
    cat["version"] = 2
    for section in ("entries", "data"):
        for name, block in cat[section].items():
            if not isinstance(block, dict):
                raise CatalogFileError(f"{where}: {section}.{name} must be a mapping")
            for key, value in _BLOCK_DEFAULTS.items():
                if block.get(key) is None:
                    block[key] = copy.deepcopy(value)
            if section == "entries":
                if "reader" not in block:
                    raise CatalogFileError(f"{where}: entries.{name} has no 'reader'")
                block.setdefault("output_instance", None)
            elif "datatype" not in block:
                raise CatalogFileError(f"{where}: data.{name} has no 'datatype'")
    clash = sorted(set(cat["data"]) & set(cat["entries"]))
    if clash:
        raise CatalogFileError(
            f"{where}: names {clash} are used both in data: and entries:; Intake resolves "
            "'{data(NAME)}' through the entry names, so give the data blocks other names"
        )
    aliases = dict(raw.get("aliases") or {})
    for name in cat["entries"]:
        aliases.setdefault(name, name)
    cat["aliases"] = aliases
    return cat


def _local_path(url: Any) -> Path | None:
    if not isinstance(url, str):
        return None
    if url.startswith("file://"):
        return Path(url[len("file://") :])
    if "://" in url or "::" in url:
        return None
    return Path(url)


def _data_urls(obj: Any) -> Iterator[Any]:
    if isinstance(obj, BaseData):
        yield getattr(obj, "url", None)
    elif isinstance(obj, BaseReader):
        yield from _data_urls(obj.kwargs)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _data_urls(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _data_urls(v)


class XldasCatalog(Catalog):
    """An Intake 2 catalog with xldas's templates, typed errors and cached generation.

    See the module docstring. ``list(cat)`` gives the entry names; ``cat[name]`` the
    reader; ``cat[name].read()`` the (lazy) data.
    """

    def _entry_names(self) -> list[str]:
        return sorted(self.aliases)

    def entry(self, name: str) -> ReaderDescription | DataDescription:
        """The unprocessed description of ``name`` (templates not yet filled in)."""
        try:
            return self.get_entity(name)
        except KeyError:
            raise CatalogEntryError(
                name, self.user_parameters.get("CATALOG_PATH", "<memory>"), self._entry_names()
            ) from None

    def __getitem__(self, item: str):
        try:
            reader = super().__getitem__(item)
        except KeyError:
            raise CatalogEntryError(
                item, self.user_parameters.get("CATALOG_PATH", "<memory>"), self._entry_names()
            ) from None
        generator = getattr(reader, "metadata", {}).get("generator")
        if generator:
            for url in _data_urls(reader):
                path = _local_path(url)
                if path is not None and not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    import_name(generator)(path)
        return reader

    def __call__(self, **kwargs: Any) -> XldasCatalog:
        """A copy with user-parameter overrides (e.g. ``cat(XLDAS_DATA_DIR="/scratch")``)."""
        new = copy.copy(self)
        new._up_overrides = {**self._up_overrides, **kwargs}
        new.user_parameters = {**self.user_parameters}
        for key in ("CATALOG_DIR", "XLDAS_DATA_DIR"):
            if key in kwargs:
                new.user_parameters[key] = str(kwargs[key])
        return new


def open_catalog(path: str | os.PathLike | None = None, **storage_options: Any) -> XldasCatalog:
    """Open an Intake 2 catalog; the default is the catalog shipped with xldas.

    Parameters
    ----------
    path : str or path-like, optional
        A catalog YAML file (local path or fsspec URL). Default
        :func:`default_catalog_path` (``catalogs/xldas.yaml`` in the source tree,
        ``xldas/catalogs/xldas.yaml`` in an installed wheel).
    **storage_options
        fsspec options for a remote ``path``.

    Returns
    -------
    XldasCatalog
        ``list(cat)`` names the entries; ``cat[name].read()`` returns lazy xarray data.

    Raises
    ------
    CatalogFileError
        The file does not exist or is not an Intake 2 (``version: 2``) catalog.
    CatalogEntryError
        (later, on ``cat[name]``) no such entry; the message lists the valid ones.

    Examples
    --------
    >>> import xldas
    >>> cat = xldas.open_catalog()
    >>> "era5_arco" in list(cat)
    True
    >>> cat["no_such_entry"]
    Traceback (most recent call last):
    ...
    xldas.errors.CatalogEntryError: catalog ... has no entry 'no_such_entry'; entries are ...
    """
    path = default_catalog_path() if path is None else path
    path_str = os.fspath(path)
    try:
        of = fsspec.open(path_str, mode="rt", **storage_options)
        with of as stream:
            raw = yaml.safe_load(stream)
    except FileNotFoundError as err:
        raise CatalogFileError(f"catalog file {path_str} does not exist") from err
    except yaml.YAMLError as err:
        raise CatalogFileError(f"catalog file {path_str} is not valid YAML: {err}") from err
    cat = XldasCatalog.from_dict(_normalise(raw, path_str))
    cat.user_parameters["CATALOG_PATH"] = path_str
    cat.user_parameters["CATALOG_DIR"] = of.fs.unstrip_protocol(of.fs._parent(of.path))
    if cat.user_parameters["CATALOG_DIR"].startswith("file://"):
        cat.user_parameters["CATALOG_DIR"] = cat.user_parameters["CATALOG_DIR"][len("file://") :]
    cat.user_parameters["STORAGE_OPTIONS"] = storage_options
    cat.user_parameters["XLDAS_DATA_DIR"] = str(data_dir())
    return cat


def catalog_entries(cat: Catalog) -> list[dict[str, str]]:
    """One row per entry: name, reader, description, data location (unresolved).

    Used by ``xldas catalog list``.
    """
    rows = []
    for name in sorted(cat.aliases):
        desc = cat.get_entity(name)
        if not isinstance(desc, ReaderDescription):
            continue
        location = ""
        for arg in [*desc.kwargs.get("args", []), desc.kwargs.get("url", "")]:
            if isinstance(arg, str) and arg.startswith("{data(") and arg.endswith(")}"):
                data = cat.data.get(arg[len("{data(") : -2])
                if data is not None:
                    location = str(data.kwargs.get("url", ""))
            elif isinstance(arg, str) and arg:
                location = arg
        if desc.kwargs.get("collections"):
            cols = desc.kwargs["collections"]
            location = f"{location} [{', '.join([cols] if isinstance(cols, str) else cols)}]"
        rows.append(
            {
                "name": name,
                "reader": desc.reader.rsplit(":", 1)[-1],
                "description": str(desc.metadata.get("description", "")).strip().split("\n")[0],
                "location": location,
            }
        )
    return rows
