"""Static maps -> parameters (texture, DEM, WorldCover, RGI) on small maps written by the tests."""

import numpy as np
import pytest
import shapely
import xarray as xr

from xldas.io.regrid import grid
from xldas.models import parameters_from_maps, parameters_from_texture
from xldas.models.maps import glacier_fraction, slope, texture_fractions


def _map(values, res=0.1, bbox=(100.0, 38.0, 101.0, 39.0)):
    g = grid(bbox, res)
    return xr.DataArray(values, coords={"lat": g.lat, "lon": g.lon}, dims=("lat", "lon"))


def test_texture_dem_landcover_glacier():
    n = 10
    tex = xr.Dataset(
        {
            "sand": _map(np.full((n, n), 400.0)),
            "clay": _map(np.full((n, n), 200.0)),
            "bdod": _map(np.full((n, n), 140.0)),
        }
    )
    lc = np.full((n, n), 30)
    lc[:, :5] = 40  # west half cropland
    lc[:2, :] = 10
    g = grid((100.0, 38.0, 101.0, 39.0), 0.1)
    dem = 1000.0 + 0.0 * g.lat + 0.0 * g.lon
    dem = (dem + 1000.0 * (g.lat - 38.0)).transpose("lat", "lon")
    glacier = [shapely.box(100.0, 38.5, 100.25, 39.0)]
    target = grid((100.0, 38.0, 101.0, 39.0), 0.5)
    p = parameters_from_maps(target, tex, dem=dem, landcover=_map(lc), glaciers=glacier)
    ref = parameters_from_texture(
        xr.DataArray([[0.4]], dims=("lat", "lon")), xr.DataArray([[0.2]], dims=("lat", "lon"))
    )
    np.testing.assert_allclose(p.b.values, float(ref.b[0, 0]))
    np.testing.assert_allclose(p.bulk_density.values, 1.4)
    np.testing.assert_allclose(
        p.elevation.values[:, 0], [1250.0, 1750.0], rtol=1e-3
    )  # cos(lat) areas
    np.testing.assert_allclose(p.glacier_fraction.values, [[0.0, 0.0], [0.5, 0.0]], atol=1e-12)
    # west cells: 5x5 subcells, crop except the southernmost 2 rows (trees)
    np.testing.assert_allclose(p.irrigated_prior.values[0, 0], 15 / 25, rtol=3e-3)  # cos(lat)
    np.testing.assert_allclose(p.irrigated_prior.values[:, 1], 0.0, atol=1e-9)
    assert p.landcover.values[1, 1] == 30 and p.landcover.values[0, 0] == 40
    assert float(p.lai[1, 1]) == pytest.approx(1.5)


def test_slope_and_units():
    z = xr.DataArray(
        np.arange(5.0)[:, None] * 100.0 + np.zeros((5, 5)),
        coords={"y": np.arange(5) * 100.0, "x": np.arange(5) * 100.0},
        dims=("y", "x"),
    )
    np.testing.assert_allclose(slope(z.chunk()), 45.0)
    h = texture_fractions(
        xr.Dataset(
            {"T_SAND": _map(np.full((10, 10), 40.0)), "T_CLAY": _map(np.full((10, 10), 20.0))}
        ),
        "hwsd",
    )
    assert float(h.sand.mean()) == pytest.approx(0.4) and h.sand.attrs["units"] == "1"
    gf = glacier_fraction(
        [shapely.box(100.0, 38.0, 101.0, 39.0)], grid((100.0, 38.0, 101.0, 39.0), 0.5)
    )
    np.testing.assert_allclose(gf, 1.0)


def test_open_map_geotiff_lazy(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from xldas.models.maps import open_map

    data = np.arange(20, dtype="float32").reshape(4, 5)
    data[0, 0] = -9999.0
    p = tmp_path / "dem.tif"
    with rasterio.open(
        p,
        "w",
        driver="GTiff",
        height=4,
        width=5,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=from_origin(100.0, 39.0, 0.25, 0.25),
        nodata=-9999.0,
    ) as dst:
        dst.write(data, 1)
    da = open_map(p, "elevation")
    assert da.chunks is not None and da.dims == ("lat", "lon")
    assert float(da.lat[0]) == pytest.approx(38.125)  # ascending (south first)
    assert np.isnan(float(da.sel(lat=38.875, lon=100.125)))
    assert float(da.sel(lat=38.125, lon=100.125)) == 15.0
