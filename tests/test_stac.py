"""xldas.search_stac against a real STAC API (rustac serve) on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import xarray as xr

import xldas
from tests.conftest import DEM, NPIX, OPTICAL
from tests.helpers import raise_if_dask_computes
from xldas.errors import MissingBandError, NoItemsFoundError, StacUnreachableError

pytestmark = pytest.mark.stac

WEST_INSIDE = (100.05, 38.85, 100.15, 38.95)  # strictly inside the west tile
BOTH_TILES = (100.0, 38.8, 100.4, 39.0)


def _item_ids(ds: xr.Dataset) -> list[str]:
    return sorted(ds.attrs["stac_items"].split(", "))


def test_search_filters_return_exactly_the_expected_items(stac_api):
    june = ["2023-06-01T04:00:00Z", "2023-06-11T04:00:00Z"]
    ds = xldas.search_stac(stac_api.url, OPTICAL, bbox=WEST_INSIDE, datetime="2023-06")
    assert _item_ids(ds) == stac_api.ids(OPTICAL, tile="west", dates=june)
    np.testing.assert_array_equal(
        ds.time.values, np.array(["2023-06-01T04:00", "2023-06-11T04:00"], dtype="datetime64[us]")
    )
    # a datetime interval and both tiles
    ds = xldas.search_stac(
        stac_api.url, [OPTICAL], bbox=BOTH_TILES, datetime="2023-06-05/2023-07-31"
    )
    assert _item_ids(ds) == stac_api.ids(
        OPTICAL, dates=["2023-06-11T04:00:00Z", "2023-07-01T04:00:00Z"]
    )
    # the collection filter: the DEM collection holds only the DEM items
    dem = xldas.search_stac(stac_api.url, DEM, bbox=BOTH_TILES, datetime=None)
    assert _item_ids(dem) == stac_api.ids(DEM)
    assert set(dem.data_vars) == {"elevation"}


def test_loaded_values_equal_what_was_written(stac_api):
    ds = xldas.search_stac(
        stac_api.url, OPTICAL, bbox=WEST_INSIDE, datetime="2023-06-01", bands=["red", "nir"]
    )
    assert set(ds.data_vars) == {"red", "nir"}
    assert ds.red.dims == ("time", "lat", "lon")
    written = stac_api.items["opt-west-2023-06-01"]["bands"]
    # the load is cropped to the bbox: 10 x 10 pixels starting at row 5, column 5
    rows = slice(5, 15)
    for band in ("red", "nir"):
        got = ds[band].isel(time=0).values
        np.testing.assert_array_equal(got, written[band][rows, rows])
        assert ds[band].dtype == np.uint16

    # a mosaic of both DEM tiles, float32 with nodata, exactly as written
    dem = xldas.search_stac(
        stac_api.url, DEM, bbox=BOTH_TILES, datetime=None, chunks={"x": 8, "y": 8}
    )
    expected = np.concatenate(
        [
            stac_api.items["dem-west"]["bands"]["elevation"],
            stac_api.items["dem-east"]["bands"]["elevation"],
        ],
        axis=1,
    )
    assert dem.elevation.shape == (1, NPIX, 2 * NPIX)
    np.testing.assert_array_equal(dem.elevation.isel(time=0).values, expected)
    assert dem.elevation.attrs["units"] == "m"
    assert dem.elevation.attrs["nodata"] == -9999.0


def test_result_is_lazy_and_keeps_the_crs(stac_api):
    with raise_if_dask_computes():
        ds = xldas.search_stac(
            stac_api.url, OPTICAL, bbox=BOTH_TILES, datetime="2023-06", chunks={"x": 16, "y": 16}
        )
        red = ds.red.astype("float32") * 2  # arithmetic stays lazy too
    assert red.chunks is not None
    assert ds.red.data.chunksize == (1, 16, 16)
    assert ds.odc.crs == "EPSG:4326"
    assert int(ds.spatial_ref) == 4326
    assert "search_stac" in ds.attrs["history"]

    # reprojected output: projected dims y/x, CRS kept
    utm = xldas.search_stac(
        stac_api.url,
        OPTICAL,
        bbox=WEST_INSIDE,
        datetime="2023-06-01",
        crs="EPSG:32647",
        resolution=500,
        bands="red",
    )
    assert utm.red.dims == ("time", "y", "x")
    assert utm.odc.crs == "EPSG:32647"
    assert float(abs(utm.x[1] - utm.x[0])) == 500.0


def test_modifier_rewrites_items_before_loading(stac_api):
    """The hub path: a modifier (e.g. planetary_computer.sign_inplace) edits asset hrefs."""
    seen = []

    def redirect(obj):  # pages arrive as dicts; point "red" at the "nir" file
        for feature in obj.get("features", []) if isinstance(obj, dict) else []:
            seen.append(feature["id"])
            feature["assets"]["red"]["href"] = feature["assets"]["nir"]["href"]

    ds = xldas.search_stac(
        stac_api.url, OPTICAL, bbox=WEST_INSIDE, datetime="2023-07", bands="red", modifier=redirect
    )
    assert sorted(seen) == stac_api.ids(OPTICAL, tile="west", dates=["2023-07-01T04:00:00Z"])
    nir = stac_api.items["opt-west-2023-07-01"]["bands"]["nir"]
    np.testing.assert_array_equal(ds.red.isel(time=0).values, nir[5:15, 5:15])


def test_modifier_given_as_import_path_must_be_importable(stac_api):
    with pytest.raises(ModuleNotFoundError, match="no_such_signer"):
        xldas.search_stac(
            stac_api.url,
            OPTICAL,
            bbox=WEST_INSIDE,
            datetime="2023-07",
            modifier="no_such_signer:sign_inplace",
        )


def test_zero_matches_raise_the_typed_error(stac_api):
    with pytest.raises(NoItemsFoundError, match=r"no STAC items .*xl-optical.*2020-01"):
        xldas.search_stac(stac_api.url, OPTICAL, bbox=WEST_INSIDE, datetime="2020-01")
    with pytest.raises(NoItemsFoundError):  # outside the tiles
        xldas.search_stac(stac_api.url, OPTICAL, bbox=(10.0, 10.0, 10.1, 10.1), datetime=None)


def test_missing_band_is_named_with_the_valid_ones(stac_api):
    with pytest.raises(MissingBandError) as info:
        xldas.search_stac(
            stac_api.url, OPTICAL, bbox=WEST_INSIDE, datetime="2023-06", bands=["red", "swir16"]
        )
    msg = str(info.value)
    assert "'swir16'" in msg and "'nir'" in msg and "'red'" in msg
    assert isinstance(info.value, KeyError)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_is_unreachable():
    url = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(StacUnreachableError, match=r"127\.0\.0\.1.*unreachable"):
        xldas.search_stac(url, OPTICAL, bbox=WEST_INSIDE, datetime=None, timeout=2)
    assert time.monotonic() - start < 20  # bounded: no endless retries


def test_silent_server_fails_within_a_bounded_timeout():
    """A server that accepts connections but never answers: fail after ~timeout, not hang."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_hold():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_hold, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        start = time.monotonic()
        with pytest.raises(StacUnreachableError, match=r"timeout 1 s"):
            xldas.search_stac(url, OPTICAL, bbox=WEST_INSIDE, datetime=None, timeout=1)
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
    assert 0.9 < elapsed < 15  # it waited for the timeout, and not much longer
