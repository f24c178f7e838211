"""Shared fixtures: a real STAC API server, the one-node Slurm, a LocalCluster.

* ``stac_api`` (session): writes small GeoTIFFs with rasterio, describes them as STAC
  collections/items whose asset hrefs are ``file://`` URIs, serves them with
  ``rustac serve`` on 127.0.0.1 (a free port) and yields a :class:`StacServer` with the
  URL and what was written (for exact comparisons).
* ``slurm`` (session): the Slurm cluster started by ``ci/slurm/start.sh``; skips with the
  reason when it is not running (e.g. a non-root user without Slurm).
* ``local_cluster`` (module): a ``distributed.LocalCluster`` of 2 worker processes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------ STAC API
#: the two collections the fixture serves
OPTICAL = "xl-optical"
DEM = "xl-dem"
#: pixel size (degrees) and tile size (pixels) of the test rasters
RES = 0.01
NPIX = 20
#: tiles: name -> (west, north) corner, each NPIX x NPIX pixels of RES degrees
TILES = {"west": (100.0, 39.0), "east": (100.2, 39.0)}
DATES = ["2023-06-01T04:00:00Z", "2023-06-11T04:00:00Z", "2023-07-01T04:00:00Z"]


@dataclass
class StacServer:
    """What the ``stac_api`` fixture serves."""

    url: str
    root: Path
    #: item id -> {"collection", "datetime", "tile", "bbox", "bands": {band: array}}
    items: dict = field(default_factory=dict)

    def ids(self, collection=None, tile=None, dates=None):
        """Item ids matching a collection / tile / set of datetimes."""
        return sorted(
            i
            for i, it in self.items.items()
            if (collection is None or it["collection"] == collection)
            and (tile is None or it["tile"] == tile)
            and (dates is None or it["datetime"] in dates)
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_tif(path: Path, data: np.ndarray, west: float, north: float, nodata) -> None:
    import rasterio
    from rasterio.transform import from_origin

    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": "EPSG:4326",
        "transform": from_origin(west, north, RES, RES),
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 16,
        "blockysize": 16,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _polygon(west, south, east, north):
    return {
        "type": "Polygon",
        "coordinates": [
            [[west, south], [east, south], [east, north], [west, north], [west, south]]
        ],
    }


def _collection(cid: str, description: str) -> dict:
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": cid,
        "description": description,
        "license": "CC0-1.0",
        "extent": {
            "spatial": {"bbox": [[100.0, 38.8, 100.4, 39.0]]},
            "temporal": {"interval": [["2023-01-01T00:00:00Z", None]]},
        },
        "links": [],
    }


def _item(iid, collection, dt, tile, assets) -> dict:
    west, north = TILES[tile]
    east, south = west + NPIX * RES, north - NPIX * RES
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": iid,
        "collection": collection,
        "geometry": _polygon(west, south, east, north),
        "bbox": [west, south, east, north],
        "properties": {
            "datetime": dt,
            "proj:epsg": 4326,
            "proj:shape": [NPIX, NPIX],
            "proj:transform": [RES, 0.0, west, 0.0, -RES, north, 0.0, 0.0, 1.0],
        },
        "assets": assets,
        "links": [],
    }


def _asset(path: Path, dtype: str, nodata, unit: str) -> dict:
    return {
        "href": path.resolve().as_uri(),
        "type": "image/tiff; application=geotiff",
        "roles": ["data"],
        "raster:bands": [{"data_type": dtype, "nodata": nodata, "unit": unit}],
    }


def _build_stac_tree(root: Path) -> tuple[list[Path], dict]:
    """Write the rasters and the STAC JSON; return the files to serve and the item table."""
    root.mkdir(parents=True, exist_ok=True)
    table: dict = {}
    features = []
    base = np.arange(NPIX * NPIX, dtype=np.uint16).reshape(NPIX, NPIX)
    for d, dt in enumerate(DATES):
        for t, tile in enumerate(TILES):
            iid = f"opt-{tile}-{dt[:10]}"
            bands = {
                "red": (base + 1000 * (d + 1) + 100 * t).astype(np.uint16),
                "nir": (base + 5000 * (d + 1) + 100 * t).astype(np.uint16),
            }
            assets = {}
            for band, arr in bands.items():
                path = root / f"{iid}-{band}.tif"
                _write_tif(path, arr, *TILES[tile], nodata=0)
                assets[band] = _asset(path, "uint16", 0, "1")
            features.append(_item(iid, OPTICAL, dt, tile, assets))
            table[iid] = {"collection": OPTICAL, "datetime": dt, "tile": tile, "bands": bands}
    for t, tile in enumerate(TILES):
        iid = f"dem-{tile}"
        elev = (3000.0 + 10.0 * base + 500.0 * t).astype(np.float32)
        path = root / f"{iid}.tif"
        _write_tif(path, elev, *TILES[tile], nodata=-9999.0)
        dt = "2021-04-22T00:00:00Z"
        features.append(
            _item(iid, DEM, dt, tile, {"elevation": _asset(path, "float32", -9999.0, "m")})
        )
        table[iid] = {"collection": DEM, "datetime": dt, "tile": tile, "bands": {"elevation": elev}}

    files = []
    for cid, text in ((OPTICAL, "test optical tiles"), (DEM, "test elevation tiles")):
        p = root / f"{cid}.json"
        p.write_text(json.dumps(_collection(cid, text)))
        files.append(p)
    p = root / "items.json"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    files.append(p)
    return files, table


def _rustac() -> str | None:
    exe = Path(sys.executable).with_name("rustac")
    return str(exe) if exe.exists() else shutil.which("rustac")


@pytest.fixture(scope="session")
def stac_api(tmp_path_factory) -> StacServer:
    """A real STAC API (``rustac serve``) on 127.0.0.1 serving local GeoTIFFs."""
    exe = _rustac()
    if exe is None:
        pytest.skip("the `rustac` command is not installed (pip install rustac, in the dev extra)")
    root = tmp_path_factory.mktemp("stac")
    files, table = _build_stac_tree(root)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "rustac.log", "w")  # closed in the finally block
    proc = subprocess.Popen(
        [exe, "serve", "--addr", f"127.0.0.1:{port}", *map(str, files)],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/collections", timeout=1) as r:
                    if r.status == 200 and len(json.load(r)["collections"]) == 2:
                        break
            except (urllib.error.URLError, ConnectionError, OSError, KeyError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"rustac serve did not start (exit {proc.poll()}): {(root / 'rustac.log').read_text()}"
                )
            time.sleep(0.05)
        yield StacServer(url=url, root=root, items=table)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# ------------------------------------------------------------------------ Slurm
SLURM_CONF_FILE = Path(os.environ.get("XLDAS_SLURM_CONF_FILE", "/tmp/xldas-slurm-conf"))


def slurm_conf() -> str | None:
    """Path of the running test cluster's slurm.conf, or None."""
    if os.environ.get("SLURM_CONF") and Path(os.environ["SLURM_CONF"]).exists():
        return os.environ["SLURM_CONF"]
    if SLURM_CONF_FILE.exists():
        conf = SLURM_CONF_FILE.read_text().strip()
        if conf and Path(conf).exists():
            return conf
    return None


@pytest.fixture(scope="session")
def slurm() -> str:
    """The SLURM_CONF of the running one-node cluster; skip (with the reason) if none."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        pytest.skip(
            "Slurm is not installed: `sudo bash ci/slurm/install.sh && sudo bash ci/slurm/start.sh` "
            "(ci/test.sh does this when run as root)"
        )
    conf = slurm_conf()
    if conf is None:
        pytest.skip(
            f"Slurm is not running (no {SLURM_CONF_FILE}): start it with `sudo bash ci/slurm/start.sh`"
        )
    env = {**os.environ, "SLURM_CONF": conf}
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        pytest.skip("Slurm is not answering (sinfo timed out)")
    if out.returncode != 0 or ("idle" not in out.stdout and "mix" not in out.stdout):
        pytest.skip(
            f"Slurm node is not ready: sinfo says {out.stdout.strip() or out.stderr.strip()!r}"
        )
    os.environ["SLURM_CONF"] = conf
    return conf


# ------------------------------------------------------------------------ Dask
@pytest.fixture(scope="module")
def local_cluster():
    """A real LocalCluster of 2 single-threaded worker processes."""
    from xldas.compute import local_cluster as make

    with make(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GiB") as cluster:
        yield cluster
