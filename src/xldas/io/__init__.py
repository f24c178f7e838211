"""Data access: Intake catalogs, STAC search, Zarr v3 stores and regridding.

Every function returns lazy, chunked xarray objects with CF attributes.

- :func:`open_catalog` — the Intake 2 catalog shipped with xldas, or any other.
- :func:`search_stac` — pystac-client search + odc-stac lazy load.
- :func:`to_store`, :func:`open_store` — Zarr v3 writes (default encodings, append along
  time, region and template writes) and lazy reads.
- :func:`regrid`, :func:`grid` — regridding with xESMF or xarray-regrid.
- :func:`open_era5`, :func:`open_cmfd`, :func:`from_era5`, :func:`from_cmfd`,
  :func:`check_forcing` — forcing adapters (:mod:`xldas.io.forcing`).
- station readers (:mod:`xldas.io.stations`).
- satellite products (:mod:`xldas.io.observations`: SMAP, AMSR2, SMOS, ASCAT, GRACE readers,
  :func:`to_model_grid`, :func:`search_earthdata`), grids (:mod:`xldas.io.grids`:
  :func:`eurocordex`, :func:`ease2_grid`) and :func:`regrid_curvilinear`.
"""

from __future__ import annotations

from xldas.io.catalog import (
    StacSearchReader,
    XldasCatalog,
    catalog_entries,
    default_catalog_path,
    open_catalog,
)
from xldas.io.forcing import (
    CMFD_VARIABLES,
    ERA5_VARIABLES,
    FORCING_ATTRS,
    check_forcing,
    from_cmfd,
    from_era5,
    open_cmfd,
    open_era5,
)
from xldas.io.grids import ease2_grid, eurocordex
from xldas.io.observations import open_observations, search_earthdata, to_model_grid
from xldas.io.regrid import grid, regrid
from xldas.io.regrid_curvilinear import regrid_curvilinear
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
    "CMFD_VARIABLES",
    "ERA5_VARIABLES",
    "FORCING_ATTRS",
    "StacSearchReader",
    "XldasCatalog",
    "calibrate_n0",
    "catalog_entries",
    "check_forcing",
    "crns_soil_moisture",
    "default_catalog_path",
    "default_chunks",
    "default_encoding",
    "ease2_grid",
    "eurocordex",
    "from_cmfd",
    "from_era5",
    "frozen_soil_flags",
    "grid",
    "open_catalog",
    "open_cmfd",
    "open_era5",
    "open_observations",
    "open_store",
    "read_camels",
    "read_crns",
    "read_crns_samples",
    "read_ismn",
    "read_noah_forcing",
    "regrid",
    "regrid_curvilinear",
    "search_earthdata",
    "search_stac",
    "to_model_grid",
    "to_store",
]
