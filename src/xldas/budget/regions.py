"""Regions on the model grid and area-weighted regional means (WP4).

Regions come as polygons — a GeoJSON or shapefile path, a :class:`geopandas.GeoDataFrame`,
a ``{name: shapely geometry}`` mapping, a :class:`regionmask.Regions` — or as an integer
mask on the grid (``flag_values``/``flag_meanings`` attributes, as in the ``regions``
group of :func:`xldas.demo.heihe_osse`). Polygons become fractional masks: the fraction of
each cell inside each region (regionmask's ``mask_3D_frac_approx``, 10 × 10 sub-samples per
cell, on regular lat/lon grids). Regional means weight cells by that fraction times the
cell area (∝ cos(latitude) on lat/lon grids), so they are area means in the proper sense.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from xldas._xr import add_history, spatial_dims
from xldas.errors import DimensionError, ParameterRangeError

__all__ = ["basin_mean", "region_masks"]


def _grid_1d(grid: xr.Dataset | xr.DataArray) -> tuple[str, str, xr.DataArray, xr.DataArray]:
    ydim, xdim = spatial_dims(grid)
    if ydim not in grid.coords or xdim not in grid.coords:
        raise DimensionError(f"region masks need 1-D coordinates {ydim!r} and {xdim!r} on the grid")
    return ydim, xdim, grid[ydim], grid[xdim]


def _from_flag_mask(mask: xr.DataArray) -> xr.DataArray:
    values = list(np.atleast_1d(mask.attrs.get("flag_values", [])))
    meanings = str(mask.attrs.get("flag_meanings", "")).split()
    if not values or len(values) != len(meanings):
        raise DimensionError(
            "an integer region mask needs 'flag_values' and 'flag_meanings' attributes of equal length"
        )
    pairs = [(v, m) for v, m in zip(values, meanings) if m not in ("outside", "none", "0")]
    codes = xr.DataArray(
        [v for v, _ in pairs], dims="region", coords={"region": [m for _, m in pairs]}
    )
    return (mask == codes).astype(np.float64)


def _geodataframe(regions, names_column: str | None):
    import geopandas as gpd

    if isinstance(regions, str | os.PathLike):
        gdf = gpd.read_file(Path(regions))
    elif isinstance(regions, gpd.GeoDataFrame):
        gdf = regions
    elif isinstance(regions, Mapping):
        gdf = gpd.GeoDataFrame(
            {"name": list(regions)}, geometry=list(regions.values()), crs="EPSG:4326"
        )
    else:
        return None
    if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
        gdf = gdf.to_crs("EPSG:4326")
    col = names_column or next(
        (c for c in ("name", "NAME", "region", "basin", "id") if c in gdf.columns), None
    )
    names = [str(v) for v in gdf[col]] if col else [f"region_{i}" for i in range(len(gdf))]
    return gdf.reset_index(drop=True), names


def _wkt_regions(ds: xr.Dataset):
    """Polygons from a Dataset holding WKT strings in ``wkt_<name>`` attributes."""
    from shapely import wkt

    polys = {k[4:]: wkt.loads(v) for k, v in ds.attrs.items() if k.startswith("wkt_")}
    return polys or None


def region_masks(
    regions,
    grid: xr.Dataset | xr.DataArray,
    names: Sequence[str] | None = None,
    names_column: str | None = None,
) -> xr.DataArray:
    """Fractional masks (region, y, x) of ``regions`` on the grid of ``grid``.

    Parameters
    ----------
    regions : GeoJSON/shapefile path, GeoDataFrame, ``{name: geometry}`` mapping,
        :class:`regionmask.Regions`, an integer mask DataArray with ``flag_values`` /
        ``flag_meanings``, a Dataset with ``wkt_<name>`` polygon attributes (the Heihe demo's
        ``regions`` group), or a ready (region, y, x) fraction DataArray (returned checked).
    grid : object with 1-D ``lat``/``lon`` (or ``y``/``x``) coordinates.
    names : keep only these regions (in this order).
    names_column : column of a GeoDataFrame/file holding the region names.

    Returns
    -------
    DataArray (region, y, x) of the fraction (0–1) of each cell inside each region.

    Raises
    ------
    ParameterRangeError
        If a region covers no grid cell (the message names it).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from shapely.geometry import box
    >>> g = xr.Dataset(coords={"lat": np.arange(38.05, 39, 0.1), "lon": np.arange(100.05, 101, 0.1)})
    >>> m = region_masks({"west": box(100, 38, 100.5, 39), "east": box(100.5, 38, 101, 39)}, g)
    >>> m.sizes["region"], float(m.sum())
    (2, 100.0)
    """
    ydim, xdim, yc, xc = _grid_1d(grid)
    if isinstance(regions, xr.DataArray) and "region" in regions.dims:
        frac = regions.astype(np.float64)
    elif isinstance(regions, xr.DataArray):
        frac = _from_flag_mask(regions)
    else:
        if isinstance(regions, xr.DataTree):
            regions = regions.to_dataset()
        if isinstance(regions, xr.Dataset):
            polys = _wkt_regions(regions)
            if polys is None:
                var = next(
                    (v for v in regions.data_vars if "flag_meanings" in regions[v].attrs), None
                )
                if var is None:
                    raise DimensionError(
                        "region Dataset has neither wkt_<name> attributes nor a flag mask variable"
                    )
                return region_masks(regions[var], grid, names=names)
            regions = polys
        import regionmask

        if isinstance(regions, regionmask.Regions):
            rm, rnames = regions, list(regions.names)
        else:
            got = _geodataframe(regions, names_column)
            if got is None:
                raise TypeError(f"cannot make region masks from {type(regions).__name__}")
            gdf, rnames = got
            gdf = gdf.assign(_name=rnames)
            rm = regionmask.from_geopandas(gdf, names="_name", overlap=True)
        lon = xr.DataArray(xc.values, dims=xdim)
        lat = xr.DataArray(yc.values, dims=ydim)
        if lon.size > 1 and lat.size > 1:
            m3 = rm.mask_3D_frac_approx(lon, lat, drop=False)
        else:
            m3 = rm.mask_3D(lon, lat, drop=False).astype(np.float64)
        number_to_name = dict(zip(rm.numbers, rnames))
        frac = m3.assign_coords(region=[number_to_name[int(n)] for n in m3.region.values])
        frac = frac.drop_vars([c for c in frac.coords if c not in ("region", ydim, xdim)])
        frac = frac.rename({"lat": ydim, "lon": xdim}) if ydim != "lat" else frac
        frac = frac.fillna(0.0)
    frac = frac.assign_coords({ydim: yc.values, xdim: xc.values}).transpose("region", ydim, xdim)
    if names is not None:
        missing = [n for n in names if n not in list(frac.region.values)]
        if missing:
            raise ParameterRangeError(
                f"region(s) {missing} not found; regions are {list(frac.region.values)}"
            )
        frac = frac.sel(region=list(names))
    covered = np.asarray((frac > 0).any((ydim, xdim)))
    empty = [str(r) for r, c in zip(frac.region.values, covered) if not c]
    if empty:
        raise ParameterRangeError(
            f"region(s) {empty} cover no cell of the grid "
            f"({ydim} {float(yc.min()):g}..{float(yc.max()):g}, {xdim} {float(xc.min()):g}..{float(xc.max()):g})"
        )
    frac.name = "region_fraction"
    frac.attrs = {"long_name": "fraction of the grid cell inside the region", "units": "1"}
    return frac


def _area_weights(frac: xr.DataArray, ydim: str) -> xr.DataArray:
    if ydim == "lat":
        return frac * np.cos(np.deg2rad(frac["lat"]))
    return frac


def basin_mean(
    ds: xr.Dataset | xr.DataArray,
    regions,
    names: Sequence[str] | None = None,
) -> xr.Dataset | xr.DataArray:
    """Area-weighted mean of ``ds`` over each region, lazily.

    Parameters
    ----------
    ds : DataArray or Dataset on a lat/lon (or y/x) grid; NaN cells are left out of the
        mean (weights renormalised over the valid cells).
    regions : anything :func:`region_masks` accepts, or its output.
    names : keep only these regions.

    Returns
    -------
    Same type, with the spatial dims replaced by ``region``. Weights: fraction of the cell
    in the region × cos(latitude) (cell area on a regular lat/lon grid).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from shapely.geometry import box
    >>> g = xr.DataArray(np.ones((4, 4)), dims=("lat", "lon"),
    ...                  coords={"lat": [38.1, 38.3, 38.5, 38.7], "lon": [100.1, 100.3, 100.5, 100.7]})
    >>> float(basin_mean(g * 2, {"all": box(100, 38, 101, 39)}).squeeze())
    2.0
    """
    ydim, xdim = spatial_dims(ds)
    frac = region_masks(regions, ds, names=names)
    w = _area_weights(frac, ydim)
    if ds.chunks:
        w = w.chunk({ydim: ds.chunksizes.get(ydim), xdim: ds.chunksizes.get(xdim)})
    out = ds.weighted(w).mean((ydim, xdim))
    out = out.drop_vars([c for c in out.coords if c in (ydim, xdim)], errors="ignore")
    if isinstance(ds, xr.Dataset):
        for v in out.data_vars:
            out[v].attrs = {**ds[v].attrs, "cell_methods": "area: mean where region"}
    else:
        out.attrs = {**ds.attrs, "cell_methods": "area: mean where region"}
    return add_history(out, f"xldas.budget.basin_mean(regions={list(frac.region.values)})")
