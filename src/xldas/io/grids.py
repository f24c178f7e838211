"""Model and product grids: the EURO-CORDEX rotated-pole domains and EASE-Grid 2.0.

- :func:`eurocordex` — the EUR-11 / EUR-44 grids of the CORDEX archive specification
  (rotated pole 39.25°N, 198°E = −162°E), dims ``rlat``/``rlon``, 2-D ``lat``/``lon``, CF
  ``rotated_latitude_longitude`` grid mapping and cell-corner bounds, optionally cut to a
  geographic sub-domain.
- :func:`ease2_grid` — a (part of a) global EASE-Grid 2.0 (EPSG:6933) at 1, 3, 9, 25 or
  36 km: dims ``y``/``x`` (metres, rows north to south as in the products), integer
  ``ease_row``/``ease_col`` coordinates and 2-D ``lat``/``lon``.
- :func:`ease2_rowcol`, :func:`ease2_lonlat` — EASE-Grid 2.0 row/column ↔ lon/lat.
- :func:`rotated_to_geographic`, :func:`geographic_to_rotated` — rotated-pole transforms.

The projections are pyproj's (PROJ ``ob_tran`` for the rotated pole built from the CF
grid-mapping attributes, EPSG:6933 for EASE-Grid 2.0); only the grid geometry tables
(cell sizes, extents, corner cells) are written here.

References
----------
CORDEX archive design / specification, Table 1 (Christensen et al. 2014):
EUR-11: N-pole (−162.00, 39.25), top-left cell centre (−28.375, 21.835), Nlon = 424,
Nlat = 412, 0.11°; EUR-44: top-left (−28.21, 21.67), Nlon = 106, Nlat = 103, 0.44°.
Brodzik et al. (2012), EASE-Grid 2.0, ISPRS IJGI 1(1):32–45, Table 2 (cell sizes).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import xarray as xr

from xldas.errors import DimensionError, UnknownOptionError

__all__ = [
    "CORDEX_DOMAINS",
    "EASE2_GRIDS",
    "ease2_grid",
    "ease2_lonlat",
    "ease2_rowcol",
    "eurocordex",
    "geographic_to_rotated",
    "grid_crs",
    "rotated_to_geographic",
]

#: CORDEX archive specification, Table 1: pole, first (south-west) rotated cell centre,
#: resolution and size. EUR-11 has 424 rlon x 412 rlat cells.
CORDEX_DOMAINS = {
    "EUR-11": dict(
        pole_lon=-162.0, pole_lat=39.25, rlon0=-28.375, rlat0=-23.375, res=0.11, nlon=424, nlat=412
    ),
    "EUR-44": dict(
        pole_lon=-162.0, pole_lat=39.25, rlon0=-28.21, rlat0=-23.21, res=0.44, nlon=106, nlat=103
    ),
}

#: EASE-Grid 2.0 global (EPSG:6933): cell size (m), columns, rows (Brodzik et al. 2012).
#: The grid is centred on (0, 0): column 0's west edge is -ncol*res/2, row 0's north edge
#: nrow*res/2.
EASE2_GRIDS = {
    "M01": (1000.895023349556, 34704, 14616),
    "M03": (3002.6850700486, 11568, 4872),
    "M09": (9008.055210146, 3856, 1624),
    "M25": (25025.26000081, 1388, 584),
    "M36": (36032.220840584, 964, 406),
}


def grid_crs(pole_lat: float = 39.25, pole_lon: float = -162.0):
    """pyproj CRS of a CF ``rotated_latitude_longitude`` grid mapping."""
    import pyproj

    return pyproj.CRS.from_cf(
        {
            "grid_mapping_name": "rotated_latitude_longitude",
            "grid_north_pole_latitude": pole_lat,
            "grid_north_pole_longitude": pole_lon,
        }
    )


@lru_cache(maxsize=8)
def _transformer(src: str, dst: str):
    import pyproj

    return pyproj.Transformer.from_crs(
        pyproj.CRS.from_user_input(src), pyproj.CRS.from_user_input(dst), always_xy=True
    )


def _rot_wkt(pole_lat: float, pole_lon: float) -> str:
    return grid_crs(pole_lat, pole_lon).to_wkt()


def rotated_to_geographic(rlon, rlat, pole_lat: float = 39.25, pole_lon: float = -162.0):
    """Rotated (rlon, rlat) in degrees → geographic (lon, lat) in degrees (lon in [−180, 180))."""
    t = _transformer(_rot_wkt(pole_lat, pole_lon), "EPSG:4326")
    lon, lat = t.transform(np.asarray(rlon, float), np.asarray(rlat, float))
    return lon, lat


def geographic_to_rotated(lon, lat, pole_lat: float = 39.25, pole_lon: float = -162.0):
    """Geographic (lon, lat) → rotated (rlon, rlat), degrees."""
    t = _transformer("EPSG:4326", _rot_wkt(pole_lat, pole_lon))
    return t.transform(np.asarray(lon, float), np.asarray(lat, float))


def _cf(name: str, **attrs) -> dict:
    return {"long_name": name, **attrs}


def eurocordex(
    domain: str = "EUR-11",
    subdomain: Sequence[float] | None = None,
    *,
    chunks: dict[str, int] | None = None,
) -> xr.Dataset:
    """The EURO-CORDEX rotated-pole model grid (coordinates only).

    Parameters
    ----------
    domain : {"EUR-11", "EUR-44"}
        0.11° (424 × 412 rlon × rlat) or 0.44° (106 × 103) CORDEX domain.
    subdomain : (west, south, east, north) in geographic degrees, optional
        Keep the smallest rectangle of rotated cells that holds every cell whose centre
        lies inside this box (cells are never split; the grid stays rectangular in
        rlat/rlon).
    chunks : dict, optional
        Dask chunks for the 2-D ``lat``/``lon`` coordinates (default: numpy).

    Returns
    -------
    xarray.Dataset
        Coordinates ``rlat``, ``rlon`` (degrees in the rotated frame, CF ``grid_latitude``
        / ``grid_longitude``), 2-D ``lat``/``lon`` (rlat, rlon) of cell centres,
        ``lat_bounds``/``lon_bounds`` (rlat, rlon, 4) of corners (anticlockwise from SW),
        ``rlat_bounds``/``rlon_bounds`` and a ``rotated_pole`` grid-mapping variable.

    Raises
    ------
    UnknownOptionError
        Unknown domain name.
    DimensionError
        ``subdomain`` holds no cell of the domain.

    Examples
    --------
    >>> from xldas.io.grids import eurocordex
    >>> g = eurocordex("EUR-11")
    >>> g.sizes["rlon"], g.sizes["rlat"]
    (424, 412)
    >>> sub = eurocordex("EUR-11", subdomain=(10.0, 45.0, 11.0, 46.0))
    >>> bool(((sub.lat >= 44.5) & (sub.lat <= 46.5)).all())
    True
    """
    if domain not in CORDEX_DOMAINS:
        raise UnknownOptionError("CORDEX domain", domain, tuple(CORDEX_DOMAINS))
    spec = CORDEX_DOMAINS[domain]
    res = spec["res"]
    rlon = np.round(spec["rlon0"] + res * np.arange(spec["nlon"]), 6)
    rlat = np.round(spec["rlat0"] + res * np.arange(spec["nlat"]), 6)
    RLON, RLAT = np.meshgrid(rlon, rlat)
    lon, lat = rotated_to_geographic(RLON, RLAT, spec["pole_lat"], spec["pole_lon"])
    if subdomain is not None:
        w, s, e, n = (float(v) for v in subdomain)
        inside = (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
        if not inside.any():
            raise DimensionError(f"subdomain {tuple(subdomain)} holds no {domain} cell centre")
        rows = np.flatnonzero(inside.any(axis=1))
        cols = np.flatnonzero(inside.any(axis=0))
        rsl, csl = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
        rlat, rlon, lon, lat = rlat[rsl], rlon[csl], lon[rsl, csl], lat[rsl, csl]
    half = res / 2
    # corners, anticlockwise from south-west
    dl = np.array([-half, half, half, -half])
    dp = np.array([-half, -half, half, half])
    blon, blat = rotated_to_geographic(
        rlon[None, :, None] + dl + 0 * rlat[:, None, None],
        rlat[:, None, None] + dp + 0 * rlon[None, :, None],
        spec["pole_lat"],
        spec["pole_lon"],
    )
    ds = xr.Dataset(
        coords={
            "rlat": (
                "rlat",
                rlat,
                _cf(
                    "latitude in rotated pole grid",
                    standard_name="grid_latitude",
                    units="degrees",
                    axis="Y",
                    bounds="rlat_bounds",
                ),
            ),
            "rlon": (
                "rlon",
                rlon,
                _cf(
                    "longitude in rotated pole grid",
                    standard_name="grid_longitude",
                    units="degrees",
                    axis="X",
                    bounds="rlon_bounds",
                ),
            ),
            "lat": (
                ("rlat", "rlon"),
                lat,
                _cf(
                    "latitude",
                    standard_name="latitude",
                    units="degrees_north",
                    bounds="lat_bounds",
                ),
            ),
            "lon": (
                ("rlat", "rlon"),
                lon,
                _cf(
                    "longitude",
                    standard_name="longitude",
                    units="degrees_east",
                    bounds="lon_bounds",
                ),
            ),
            "lat_bounds": (("rlat", "rlon", "nv"), blat),
            "lon_bounds": (("rlat", "rlon", "nv"), blon),
            "rlat_bounds": (("rlat", "bnds"), np.stack([rlat - half, rlat + half], -1)),
            "rlon_bounds": (("rlon", "bnds"), np.stack([rlon - half, rlon + half], -1)),
            "rotated_pole": (
                (),
                np.int32(0),
                {
                    "grid_mapping_name": "rotated_latitude_longitude",
                    "grid_north_pole_latitude": spec["pole_lat"],
                    "grid_north_pole_longitude": spec["pole_lon"],
                    "north_pole_grid_longitude": 0.0,
                },
            ),
        },
        attrs={"domain": domain, "resolution_deg": res, "grid_mapping": "rotated_pole"},
    )
    if chunks:
        ds = ds.chunk({d: c for d, c in chunks.items() if d in ds.dims})
    return ds


def _ease2_spec(grid: str):
    if grid not in EASE2_GRIDS:
        raise UnknownOptionError("EASE-Grid 2.0 grid", grid, tuple(EASE2_GRIDS))
    return EASE2_GRIDS[grid]


def ease2_lonlat(row, col, grid: str = "M36"):
    """Cell-centre (lon, lat) in degrees of EASE-Grid 2.0 global ``row``/``col`` indices.

    >>> lon, lat = ease2_lonlat(0, 0, "M36")
    >>> round(float(lon), 3), round(float(lat), 3)
    (-179.813, 83.632)
    """
    res, ncol, nrow = _ease2_spec(grid)
    x = -ncol * res / 2 + (np.asarray(col, float) + 0.5) * res
    y = nrow * res / 2 - (np.asarray(row, float) + 0.5) * res
    return _transformer("EPSG:6933", "EPSG:4326").transform(x, y)


def ease2_rowcol(lon, lat, grid: str = "M36"):
    """EASE-Grid 2.0 global (row, col) holding each (lon, lat); −1 outside the grid."""
    res, ncol, nrow = _ease2_spec(grid)
    x, y = _transformer("EPSG:4326", "EPSG:6933").transform(
        np.asarray(lon, float), np.asarray(lat, float)
    )
    col = np.floor((x + ncol * res / 2) / res)
    row = np.floor((nrow * res / 2 - y) / res)
    bad = ~np.isfinite(col) | ~np.isfinite(row) | (col < 0) | (col >= ncol) | (row < 0)
    bad |= row >= nrow
    return np.where(bad, -1, row).astype(np.int64), np.where(bad, -1, col).astype(np.int64)


def ease2_grid(
    grid: str = "M36",
    bbox: Sequence[float] | None = None,
    rows: slice | None = None,
    cols: slice | None = None,
) -> xr.Dataset:
    """A global EASE-Grid 2.0 (EPSG:6933) or a window of it, as coordinates.

    Parameters
    ----------
    grid : {"M01", "M03", "M09", "M25", "M36"}
        Nominal cell size in km (SMAP L3_SM_P: M36; L3_SM_P_E: M09; SMOS-IC: M25).
    bbox : (west, south, east, north) degrees, optional
        Keep the rows/columns whose cells intersect the box (by centre, widened by one
        cell).
    rows, cols : slice, optional
        Explicit global row/column window (ignored when ``bbox`` is given).

    Returns
    -------
    xarray.Dataset
        Dims ``y`` (north → south, as stored in the products) and ``x``; coordinates
        ``x``/``y`` (m, EPSG:6933), ``ease_row``/``ease_col`` (global indices), 2-D
        ``lat``/``lon``; attrs ``ease_grid``, ``cell_size_m``, ``crs`` = "EPSG:6933".

    Examples
    --------
    >>> from xldas.io.grids import ease2_grid
    >>> g = ease2_grid("M36")
    >>> g.sizes["y"], g.sizes["x"]
    (406, 964)
    """
    res, ncol, nrow = _ease2_spec(grid)
    if bbox is not None:
        w, s, e, n = (float(v) for v in bbox)
        lon = np.linspace(w, e, 64)
        lat = np.linspace(s, n, 64)
        LON, LAT = np.meshgrid(lon, lat)
        r, c = ease2_rowcol(LON, LAT, grid)
        ok = r >= 0
        if not ok.any():
            raise DimensionError(f"bbox {tuple(bbox)} lies outside EASE-Grid 2.0 {grid}")
        rows = slice(max(int(r[ok].min()) - 1, 0), min(int(r[ok].max()) + 2, nrow))
        cols = slice(max(int(c[ok].min()) - 1, 0), min(int(c[ok].max()) + 2, ncol))
    row = np.arange(nrow)[rows or slice(None)]
    col = np.arange(ncol)[cols or slice(None)]
    x = -ncol * res / 2 + (col + 0.5) * res
    y = nrow * res / 2 - (row + 0.5) * res
    X, Y = np.meshgrid(x, y)
    lon2, lat2 = _transformer("EPSG:6933", "EPSG:4326").transform(X, Y)
    return xr.Dataset(
        coords={
            "y": ("y", y, {"units": "m", "standard_name": "projection_y_coordinate", "axis": "Y"}),
            "x": ("x", x, {"units": "m", "standard_name": "projection_x_coordinate", "axis": "X"}),
            "ease_row": ("y", row.astype(np.int32), {"long_name": "EASE-Grid 2.0 row index"}),
            "ease_col": ("x", col.astype(np.int32), {"long_name": "EASE-Grid 2.0 column index"}),
            "lat": (("y", "x"), lat2, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": (("y", "x"), lon2, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={"ease_grid": grid, "cell_size_m": res, "crs": "EPSG:6933"},
    )
