"""Data access: Intake catalogs, STAC search, Zarr v3 stores and regridding.

Every function returns lazy, chunked xarray objects with CF attributes.

- :func:`open_catalog` — the Intake 2 catalog shipped with xldas, or any other.
- :func:`search_stac` — pystac-client search + odc-stac lazy load.
- :func:`to_store`, :func:`open_store` — Zarr v3 writes (default encodings, append along
  time, region and template writes) and lazy reads.
- :func:`regrid`, :func:`grid` — regridding with xESMF or xarray-regrid.
"""

from __future__ import annotations

from xldas.io.catalog import (
    StacSearchReader,
    XldasCatalog,
    catalog_entries,
    default_catalog_path,
    open_catalog,
)
from xldas.io.regrid import grid, regrid
from xldas.io.stac import search_stac
from xldas.io.stations import (
    calibrate_n0,
    crns_soil_moisture,
    frozen_soil_flags,
    read_camels,
    read_crns,
    read_crns_samples,
    read_ismn,
    read_noah_forcing,
)
from xldas.io.store import default_chunks, default_encoding, open_store, to_store

__all__ = [
    "StacSearchReader",
    "XldasCatalog",
    "calibrate_n0",
    "catalog_entries",
    "crns_soil_moisture",
    "default_catalog_path",
    "default_chunks",
    "default_encoding",
    "frozen_soil_flags",
    "grid",
    "open_catalog",
    "open_store",
    "read_camels",
    "read_crns",
    "read_crns_samples",
    "read_ismn",
    "read_noah_forcing",
    "regrid",
    "search_stac",
    "to_store",
]
