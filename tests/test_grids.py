"""EURO-CORDEX / EASE-Grid 2.0 grids and curvilinear regridding."""

import numpy as np
import pytest
import xarray as xr

from tests.helpers import raise_if_dask_computes
from xldas.errors import DimensionError, UnknownOptionError
from xldas.io.grids import (
    ease2_grid,
    ease2_lonlat,
    ease2_rowcol,
    eurocordex,
    geographic_to_rotated,
    rotated_to_geographic,
)
from xldas.io.regrid import grid
from xldas.io.regrid_curvilinear import CurvilinearRegridder, regrid_curvilinear


def test_eurocordex_spec():
    g = eurocordex("EUR-11")
    assert (g.sizes["rlon"], g.sizes["rlat"]) == (424, 412)
    assert g.rlon.values[0] == pytest.approx(-28.375) and g.rlon.values[-1] == pytest.approx(18.155)
    assert g.rlat.values[0] == pytest.approx(-23.375) and g.rlat.values[-1] == pytest.approx(21.835)
    assert g.rotated_pole.attrs["grid_north_pole_latitude"] == 39.25
    assert g.rotated_pole.attrs["grid_north_pole_longitude"] == -162.0
    assert g.lat.dims == ("rlat", "rlon") and g.lat.attrs["units"] == "degrees_north"
    # rotated origin (0, 0) lies on the rotated equator below the pole: 50.75 N, 18 E
    lon, lat = rotated_to_geographic(0.0, 0.0)
    assert (float(lon), float(lat)) == pytest.approx((18.0, 50.75), abs=1e-9)
    rl, rp = geographic_to_rotated(lon, lat)
    assert (float(rl), float(rp)) == pytest.approx((0.0, 0.0), abs=1e-9)
    g44 = eurocordex("EUR-44")
    assert (g44.sizes["rlon"], g44.sizes["rlat"]) == (106, 103)


def test_eurocordex_subdomain_and_errors():
    sub = eurocordex("EUR-11", subdomain=(10.0, 45.0, 11.0, 46.0))
    inside = (sub.lon >= 10) & (sub.lon <= 11) & (sub.lat >= 45) & (sub.lat <= 46)
    assert inside.any() and sub.sizes["rlat"] < 20
    with pytest.raises(UnknownOptionError):
        eurocordex("EUR-22")
    with pytest.raises(DimensionError):
        eurocordex("EUR-11", subdomain=(-150.0, 10.0, -149.0, 11.0))


def test_ease2_matches_ease_lonlat():
    ease_lonlat = pytest.importorskip("ease_lonlat")
    g = ease_lonlat.EASE2GRID(name="EASE2_G36km", **ease_lonlat.SUPPORTED_GRIDS["EASE2_G36km"])
    for row, col in [(0, 0), (134, 65), (405, 963), (203, 482)]:
        ref = g.rc2lonlat(col=col, row=row)
        lon, lat = ease2_lonlat(row, col, "M36")
        assert (float(lon), float(lat)) == pytest.approx(ref, abs=1e-4)
        r, c = ease2_rowcol(lon, lat, "M36")
        assert (int(r), int(c)) == (row, col)
    e = ease2_grid("M36")
    assert (e.sizes["y"], e.sizes["x"]) == (406, 964)
    assert int(ease2_rowcol(0.0, 89.9, "M36")[0]) == -1  # beyond the grid's latitude limit


@pytest.fixture(scope="module")
def alps():
    return eurocordex("EUR-44", subdomain=(5.0, 44.0, 12.0, 49.0))


def test_bilinear_reproduces_linear_field(alps):
    src = grid((0.0, 40.0, 17.0, 53.0), 0.25)
    f = (0.5 * src.lon - 2.0 * src.lat + 3.0).rename("f").chunk({"lat": 10})
    with raise_if_dask_computes():
        out = regrid_curvilinear(f, alps, "bilinear")
    assert out.dims == ("rlat", "rlon")
    np.testing.assert_allclose(out, 0.5 * out.lon - 2.0 * out.lat + 3.0, atol=1e-9)
    # rotated -> regular: linear in the rotated coordinates is reproduced as well
    g = (0.3 * alps.rlat + alps.rlon).rename("g")
    back = regrid_curvilinear(g, grid((7.0, 45.5, 10.0, 47.5), 0.25), "bilinear")
    rl, rp = geographic_to_rotated(*np.meshgrid(back.lon.values, back.lat.values))
    np.testing.assert_allclose(back.values, 0.3 * rp + rl, atol=1e-9)


def test_conservative_preserves_area_weighted_mean(alps):
    src = grid((0.0, 40.0, 17.0, 53.0), 0.1)
    rng = np.random.default_rng(1)
    f = xr.DataArray(
        rng.random((src.sizes["lat"], src.sizes["lon"])),
        coords={"lat": src.lat, "lon": src.lon},
        dims=("lat", "lon"),
        name="f",
    )
    rg = CurvilinearRegridder(f, alps, "conservative")
    out = rg(f.chunk(), nan_threshold=0.0)
    # overlap areas W (target x source): the target mean weighted by covered area equals
    # the source mean weighted by the area of each source cell inside the target domain
    area_t = np.asarray(rg.W.sum(axis=1)).ravel()
    area_s = np.asarray(rg.W.sum(axis=0)).ravel()
    lhs = np.nansum(out.values.ravel() * area_t) / area_t.sum()
    rhs = np.sum(f.values.ravel() * area_s) / area_s.sum()
    assert lhs == pytest.approx(rhs, rel=1e-12)
    # every target cell is fully covered and its overlap area is its spherical area
    assert np.allclose(area_t / rg.full, 1.0, atol=1e-6)
    one = rg(xr.ones_like(f))
    np.testing.assert_allclose(one, 1.0)
    # independent check of the total area: sum of overlaps = geodesic area of the domain
    import pyproj

    geod = pyproj.Geod(ellps="sphere")
    lonb, latb = alps.lon_bounds.values, alps.lat_bounds.values
    areas = [
        abs(geod.polygon_area_perimeter(lonb[i, j], latb[i, j])[0])
        for i in range(lonb.shape[0])
        for j in range(lonb.shape[1])
    ]
    deg2 = (np.pi / 180 * 6370997.0) ** 2
    assert area_t.sum() * deg2 == pytest.approx(np.sum(areas), rel=2e-3)


def test_nearest_and_missing_crs(alps):
    src = grid((0.0, 40.0, 17.0, 53.0), 0.5)
    f = (src.lon * 0 + src.lat).rename("f")
    out = regrid_curvilinear(f, alps, "nearest")
    assert float(abs(out - out.lat).max()) <= 0.25 + 1e-9
    bad = xr.Dataset(coords={"rlat": [0.0, 0.1], "rlon": [0.0, 0.1]})
    with pytest.raises(DimensionError, match="CRS"):
        regrid_curvilinear(f, bad)
    with pytest.raises(UnknownOptionError):
        regrid_curvilinear(f, alps, "cubic")


def test_regrid_dispatches_to_curvilinear(alps):
    from xldas.io import regrid

    src = grid((0.0, 40.0, 17.0, 53.0), 0.25)
    f = (0.5 * src.lon - 2.0 * src.lat).rename("f")
    out = regrid(f, alps, method="bilinear")
    assert out.dims == ("rlat", "rlon")
    np.testing.assert_allclose(out, 0.5 * out.lon - 2.0 * out.lat, atol=1e-9)
