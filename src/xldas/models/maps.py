"""Static maps → model parameters: soil texture, DEM, land cover and glacier outlines.

:func:`parameters_from_maps` regrids each map to the model grid (conservative for
continuous fields and fractions, most-common-by-area for classes) and builds the parameter
Dataset with :func:`xldas.models.parameters_from_texture`. Readers are lazy (rioxarray with
dask chunks for rasters; glacier polygons are rasterised per block).

- SoilGrids (``sand``/``clay`` in g kg-1, ``bdod`` in cg cm-3) or HWSD (percent, g cm-3)
  → fractions 0–1 and bulk density g cm-3 (:func:`texture_fractions`).
- DEM → ``elevation`` (m) and ``slope`` (degrees, :func:`slope`).
- ESA WorldCover classes → ``lai`` (class table below) and ``irrigated_prior`` (cropland
  fraction of the cell, class 40, the prior for the irrigated-area mapping).
- RGI outlines → ``glacier_fraction`` (area fraction of each cell covered by glacier
  polygons, exact polygon/cell intersection with shapely).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from xldas._xr import add_history, apply_kernel, spatial_dims
from xldas.errors import UnknownOptionError

__all__ = [
    "WORLDCOVER_LAI",
    "glacier_fraction",
    "parameters_from_maps",
    "slope",
    "texture_fractions",
]

#: ESA WorldCover 2020/2021 class -> growing-season LAI (m2 m-2), a prior
#: (tree 10, shrub 20, grass 30, crop 40, built 50, bare 60, snow/ice 70, water 80,
#: wetland 90, mangrove 95, moss/lichen 100)
WORLDCOVER_LAI = {
    10: 4.5,
    20: 1.5,
    30: 1.5,
    40: 3.0,
    50: 0.5,
    60: 0.1,
    70: 0.0,
    80: 0.0,
    90: 2.0,
    95: 4.0,
    100: 0.5,
}
_CROPLAND = 40


def open_map(path, name: str | None = None, chunks: dict | None = None) -> xr.DataArray:
    """Open a single-band raster map (GeoTIFF/COG: SoilGrids, HWSD, Copernicus DEM, ESA
    WorldCover tiles) lazily with rioxarray. Geographic rasters get ``lat``/``lon`` dims
    (ascending ``lat``), projected ones keep ``y``/``x``; the nodata value becomes NaN."""
    import rioxarray

    da = rioxarray.open_rasterio(path, chunks=chunks or {}, masked=True).squeeze("band", drop=True)
    crs = da.rio.crs
    if crs is not None and crs.is_geographic:
        da = da.rename({"y": "lat", "x": "lon"}).sortby("lat")
    da = da.drop_vars([c for c in da.coords if c not in da.dims])
    return da.rename(name or Path(str(path)).stem)


def texture_fractions(ds: xr.Dataset, source: str = "soilgrids") -> xr.Dataset:
    """Convert a texture map to xldas conventions: ``sand``, ``clay`` (fractions 0–1) and
    ``bulk_density`` (g cm-3) where present. SoilGrids: ``sand``/``clay`` g kg-1, ``bdod``
    cg cm-3; HWSD: ``sand``/``clay`` percent (``T_SAND``/``T_CLAY``), ``bulk_density`` g cm-3."""
    if source == "soilgrids":
        out = xr.Dataset({"sand": ds["sand"] / 1000.0, "clay": ds["clay"] / 1000.0})
        if "bdod" in ds:
            out["bulk_density"] = ds["bdod"] / 100.0
    elif source == "hwsd":
        s = ds["sand"] if "sand" in ds else ds["T_SAND"]
        c = ds["clay"] if "clay" in ds else ds["T_CLAY"]
        out = xr.Dataset({"sand": s / 100.0, "clay": c / 100.0})
        if "bulk_density" in ds:
            out["bulk_density"] = ds["bulk_density"]
    else:
        raise UnknownOptionError("texture source", source, ("soilgrids", "hwsd"))
    for v, u in (("sand", "1"), ("clay", "1"), ("bulk_density", "g cm-3")):
        if v in out:
            out[v].attrs = {"units": u, "long_name": v.replace("_", " ")}
    return out


def _slope_np(z, dy=1.0, dx=1.0):
    gy, gx = np.gradient(z, dy, dx, axis=(-2, -1))
    return np.degrees(np.arctan(np.hypot(gx, gy)))


def slope(dem: xr.DataArray) -> xr.DataArray:
    """Terrain slope (degrees) of a DEM (m) by centred differences; on geographic grids the
    cell size is converted to metres at each row's latitude (spherical Earth, R = 6371 km).
    Computed per block with a one-cell halo (``map_overlap``) so it stays lazy."""
    ydim, xdim = spatial_dims(dem)
    dy = float(abs(dem[ydim][1] - dem[ydim][0]))
    dx = float(abs(dem[xdim][1] - dem[xdim][0]))
    if ydim == "lat":
        r = 6371000.0 * np.pi / 180.0
        coslat = np.cos(np.deg2rad(dem["lat"])).broadcast_like(dem).transpose(*dem.dims)
        dem_x = dem / (coslat * r * dx)  # gradient in x per metre
        gx = dem_x.differentiate(xdim) * dx
        gy = (dem / (r * dy)).differentiate(ydim) * dy
        out = np.degrees(np.arctan(np.hypot(gx, gy)))
    else:
        out = apply_kernel(
            _slope_np,
            dem,
            input_core_dims=[[ydim, xdim]],
            output_core_dims=[[ydim, xdim]],
            output_dtypes=[float],
            kwargs={"dy": dy, "dx": dx},
        )
    out.attrs = {"units": "degree", "long_name": "terrain slope"}
    return add_history(out.rename("slope"), "slope from DEM (centred differences)")


def glacier_fraction(outlines: Any, target: xr.Dataset) -> xr.DataArray:
    """Area fraction of each target cell (regular ``lat``/``lon``) covered by glacier
    polygons (RGI outlines: a GeoDataFrame, a list of shapely polygons, or a path read with
    geopandas). Exact polygon ∩ cell area ratio (shapely) in degree² within each cell."""
    import shapely

    if isinstance(outlines, str) or hasattr(outlines, "__fspath__"):
        import geopandas as gpd

        outlines = gpd.read_file(outlines)
    geoms = list(outlines.geometry) if hasattr(outlines, "geometry") else list(outlines)
    union = shapely.union_all(geoms)
    lat, lon = target["lat"].values, target["lon"].values
    from xldas.io.regrid_curvilinear import _edges

    el, eo = _edges(lat), _edges(lon)
    LA0, LO0 = np.meshgrid(el[:-1], eo[:-1], indexing="ij")
    LA1, LO1 = np.meshgrid(el[1:], eo[1:], indexing="ij")
    boxes = shapely.box(LO0, LA0, LO1, LA1)
    frac = shapely.area(shapely.intersection(boxes, union)) / shapely.area(boxes)
    out = xr.DataArray(
        np.clip(frac, 0.0, 1.0),
        coords={"lat": lat, "lon": lon},
        dims=("lat", "lon"),
        name="glacier_fraction",
        attrs={"units": "1", "long_name": "glacier area fraction"},
    )
    return add_history(out, f"glacier_fraction from {len(geoms)} outlines")


def _regrid(da, target, method):
    from xldas.io.regrid import regrid

    return regrid(da, target, method=method)


def class_fractions(classes: xr.DataArray, target: xr.Dataset, values) -> xr.DataArray:
    """Area fraction of each class value in every target cell (conservative regridding of
    the one-hot class maps), dims (class, lat, lon)."""
    parts = [
        _regrid((classes == v).astype("float64").where(classes.notnull()), target, "conservative")
        for v in values
    ]
    return xr.concat(parts, dim=xr.DataArray(list(values), dims="class", name="class"))


def parameters_from_maps(
    target: xr.Dataset,
    texture: xr.Dataset,
    texture_source: str = "soilgrids",
    dem: xr.DataArray | None = None,
    landcover: xr.DataArray | None = None,
    glaciers: Any = None,
    **kwargs,
) -> xr.Dataset:
    """Build the parameter Dataset on ``target``'s grid from static maps.

    Parameters
    ----------
    target : model grid (regular ``lat``/``lon``).
    texture : SoilGrids/HWSD map (see :func:`texture_fractions`), any regular grid; an
        optional ``layer`` dim gives per-layer texture (Clapp–Hornberger per layer).
    dem : elevation (m) → ``elevation`` (conservative) and ``slope`` (degrees, computed on the
        DEM grid then averaged conservatively).
    landcover : ESA WorldCover classes → ``landcover`` (most common class by area), ``lai``
        (area-weighted class LAI, :data:`WORLDCOVER_LAI`) and ``irrigated_prior`` (cropland
        fraction).
    glaciers : RGI outlines → ``glacier_fraction``.
    kwargs : passed to :func:`xldas.models.parameters_from_texture` (layers, method ...).

    Returns
    -------
    xarray.Dataset of model parameters (``theta_s``, ``b``, ``ksat`` ... per layer) plus the
    map-derived fields above.
    """
    from xldas.models.parameters import parameters_from_texture

    tex = _regrid(texture_fractions(texture, texture_source), target, "conservative")
    extra: dict[str, Any] = {}
    fields: dict[str, xr.DataArray] = {}
    if dem is not None:
        fields["elevation"] = _regrid(dem.rename("elevation"), target, "conservative")
        fields["elevation"].attrs = {"units": "m", "long_name": "surface elevation"}
        fields["slope"] = _regrid(slope(dem), target, "conservative")
        extra["elevation"] = fields["elevation"]
    if landcover is not None:
        vals = list(WORLDCOVER_LAI)
        frac = class_fractions(landcover, target, vals)
        lai_tab = xr.DataArray([WORLDCOVER_LAI[v] for v in vals], dims="class")
        tot = frac.sum("class")
        fields["lai"] = ((frac * lai_tab).sum("class") / tot).assign_attrs(
            units="m2 m-2", long_name="LAI prior"
        )
        fields["irrigated_prior"] = (frac.sel({"class": _CROPLAND}) / tot).assign_attrs(
            units="1", long_name="cropland fraction (irrigated-area prior)"
        )
        mode = frac.fillna(-1).argmax("class")
        fields["landcover"] = (
            xr.DataArray(np.array(vals))[mode]
            .where(tot > 0)
            .assign_attrs(long_name="most common ESA WorldCover class")
        )
        extra["lai"] = fields["lai"]
    if glaciers is not None:
        fields["glacier_fraction"] = glacier_fraction(glaciers, target)
        extra["glacier_fraction"] = fields["glacier_fraction"]
    bd = tex["bulk_density"] if "bulk_density" in tex else None
    params = parameters_from_texture(tex["sand"], tex["clay"], bulk_density=bd, **extra, **kwargs)
    for k, v in fields.items():
        if k not in params:
            params[k] = v
    return add_history(params, "parameters_from_maps")
