"""Spectral indices, band mapping, masks and scaling rules (SCIENCE.md §A4, check value E15).

Real data: tests/data/optical_chips (a Sentinel-2 L2A composite and labelled Landsat 8
samples; see its PROVENANCE.md). STAC: small GeoTIFF scenes shaped like Sentinel-2 L2A and
Landsat C2 L2 items served by ``rustac serve``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xldas
from tests.helpers import raise_if_dask_computes
from xldas.errors import MissingBandError, ParameterRangeError, UnknownOptionError
from xldas.retrieval import awei, evi, green_index, mndwi, ndvi, ndwi, water_mask
from xldas.retrieval.bands import UnscaledReflectanceWarning, detect_sensor, reflectance
from xldas.retrieval.indices import awei_nsh_kernel, normalized_difference

DATA = Path(__file__).parent / "data" / "optical_chips"
S2_CHIP = DATA / "L3B_S2B_00390821JXN0L2A_20210319_20220730_C01.nc"
L8_SAMPLES = DATA / "spyndex_landsat8_spectral.json"

E15 = dict(nir=0.40, red=0.10, blue=0.05, green=0.08, swir1=0.25, swir2=0.15)


def _generic(values=E15, shape=(3, 4)):
    return xr.Dataset({k: (("y", "x"), np.full(shape, v)) for k, v in values.items()})


# ------------------------------------------------------------------ check values
def test_e15_indices():
    ds = _generic()
    assert float(ndvi(ds)[0, 0]) == pytest.approx(0.6, abs=1e-6)
    assert float(evi(ds)[0, 0]) == pytest.approx(0.461538, abs=1e-6)
    assert float(ndwi(ds)[0, 0]) == pytest.approx(-0.666667, abs=1e-6)
    assert float(mndwi(ds)[0, 0]) == pytest.approx(-0.515152, abs=1e-6)
    assert float(awei(ds)[0, 0]) == pytest.approx(-1.1925, abs=1e-6)
    assert float(awei(ds, shadow=True)[0, 0]) == pytest.approx(-0.7625, abs=1e-6)
    assert float(green_index(ds)[0, 0]) == pytest.approx(5.0)
    assert float(green_index(ds, form="ci")[0, 0]) == pytest.approx(4.0)
    # accessor delegation
    assert float(ds.ldas.ndvi()[0, 0]) == pytest.approx(0.6, abs=1e-6)
    assert float(ds.ldas.awei(shadow=True)[0, 0]) == pytest.approx(-0.7625, abs=1e-6)
    assert ndvi(ds).attrs["units"] == "1" and "history" in ndvi(ds).attrs


def test_spyndex_cross_check_and_awei_sign():
    spyndex = pytest.importorskip("spyndex")
    p = {"N": 0.40, "R": 0.10, "B": 0.05, "G": 0.08, "S1": 0.25, "S2": 0.15}
    p.update(g=2.5, C1=6.0, C2=7.5, L=1.0)
    ds = _generic()
    for name, ours in (("NDVI", ndvi), ("EVI", evi), ("NDWI", ndwi), ("MNDWI", mndwi)):
        assert float(ours(ds)[0, 0]) == pytest.approx(
            spyndex.computeIndex(name, params=p), rel=1e-9
        )
    assert float(awei(ds, shadow=True)[0, 0]) == pytest.approx(
        spyndex.computeIndex("AWEIsh", params=p), rel=1e-9
    )
    # the catalogue's AWEInsh adds 2.75·SWIR2; Feyisa et al. (2014) subtract it (E15)
    assert spyndex.computeIndex("AWEInsh", params=p) == pytest.approx(-0.3675)
    assert float(awei(ds)[0, 0]) == pytest.approx(-1.1925)


def test_denominator_guard_and_kernels():
    a = np.array([0.0, 0.2, 1e-8])
    b = np.array([0.0, 0.1, 0.0])
    out = normalized_difference(a, b)
    assert np.isnan(out[0]) and out[1] == pytest.approx(1 / 3) and np.isnan(out[2])
    assert awei_nsh_kernel(0.08, 0.4, 0.25, 0.15) == pytest.approx(-1.1925)


# ---------------------------------------------------------------- band mapping
def test_sentinel2_scaling_and_scl_mask():
    dn = {"B02": 500, "B03": 800, "B04": 1000, "B08": 4000, "B11": 2500, "B12": 1500}
    ds = xr.Dataset({k: (("y", "x"), np.full((2, 3), v, dtype="uint16")) for k, v in dn.items()})
    scl = np.array([[4, 5, 9], [3, 0, 11]], dtype="uint8")  # veg, bare, cloud; shadow, nodata, snow
    ds["SCL"] = (("y", "x"), scl)
    assert detect_sensor(ds) == "sentinel-2-l2a"
    v = ndvi(ds)
    assert v[0, 0] == pytest.approx(0.6, abs=1e-6) and v[0, 1] == pytest.approx(0.6, abs=1e-6)
    assert np.isnan(v.values[0, 2]) and np.isnan(v.values[1]).all()
    # baseline >= 04.00 offset (BOA_ADD_OFFSET = -1000) through offset=
    r = reflectance(ds, ("nir",), offset=-0.1)["nir"]
    assert float(r[0, 0]) == pytest.approx(0.3, abs=1e-6)
    # digital number 0 is no data
    ds["B08"][0, 0] = 0
    assert np.isnan(ndvi(ds, mask=False).values[0, 0])


def test_landsat_scaling_and_qa_mask():
    def dn(r):  # inverse of SR = DN * 2.75e-5 - 0.2
        return np.uint16(round((r + 0.2) / 2.75e-5))

    bands = dict(
        zip(
            ["SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7"],
            [0.05, 0.08, 0.1, 0.4, 0.25, 0.15],
        )
    )
    ds = xr.Dataset(
        {k: (("y", "x"), np.full((1, 4), dn(v), dtype="uint16")) for k, v in bands.items()}
    )
    qa = np.array([[1 << 6, 1 << 3, 1 << 4, 1 << 7]], dtype="uint16")  # clear, cloud, shadow, water
    ds["QA_PIXEL"] = (("y", "x"), qa)
    assert detect_sensor(ds) == "landsat-c2-l2"
    m = mndwi(ds)
    assert m[0, 0] == pytest.approx(-0.515152, abs=2e-4)
    assert np.isnan(m.values[0, 1:3]).all() and np.isfinite(m.values[0, 3])
    # Planetary Computer names (common names, lower-case qa_pixel) resolve too
    pc = ds.rename({"SR_B3": "green", "SR_B6": "swir16", "QA_PIXEL": "qa_pixel"})
    pc.attrs["stac_collections"] = "landsat-c2-l2"
    assert float(mndwi(pc)[0, 0]) == pytest.approx(float(m[0, 0]))


def test_missing_bands_named():
    ds = xr.Dataset({"B04": (("y", "x"), np.ones((2, 2), "uint16"))})
    with pytest.raises(MissingBandError) as err:
        evi(ds)
    msg = str(err.value)
    assert (
        "nir" in msg
        and "blue" in msg
        and "B08" in msg
        and "B02" in msg
        and "red" not in msg.split(";")[0]
    )
    with pytest.raises(UnknownOptionError):
        green_index(_generic(), form="nope")
    with pytest.raises(UnknownOptionError):
        reflectance(_generic(), sensor="modis")


def test_unscaled_reflectance_rule():
    ds = _generic({k: v * 10000 for k, v in E15.items()})
    with pytest.warns(UnscaledReflectanceWarning, match="unscaled"):
        v = ndvi(ds)
    assert float(v[0, 0]) == pytest.approx(0.6, abs=1e-6)
    assert float(awei(ds, scale=1e-4)[0, 0]) == pytest.approx(-1.1925, abs=1e-6)  # declared
    with pytest.raises(ParameterRangeError, match="unscaled"):
        ndvi(ds, unscaled="error")
    lazy = ds.chunk({"y": 1})
    with raise_if_dask_computes():
        v = ndvi(lazy)  # the check is part of the graph
    with pytest.raises(ParameterRangeError, match=r"above 1\.5"):
        v.compute()
    assert float(ndvi(lazy, scale=1e-4)[0, 0]) == pytest.approx(0.6, abs=1e-6)


def test_all_cloud_scene_gives_nan():
    dn = {"B03": 800, "B04": 1000, "B08": 4000, "B11": 2500}
    ds = xr.Dataset({k: (("y", "x"), np.full((8, 8), v, dtype="uint16")) for k, v in dn.items()})
    ds["SCL"] = (("y", "x"), np.full((8, 8), 9, dtype="uint8"))
    assert np.isnan(ndvi(ds).values).all()
    w = water_mask(ds.chunk(4), tile_size=4)
    assert np.isnan(w.values).all()
    assert float(w.threshold) == 0.0 and int(w.otsu_tiles) == 0  # fallback threshold


def test_dask_equals_numpy_and_lazy():
    rng = np.random.default_rng(1)
    ds = xr.Dataset({k: (("time", "y", "x"), rng.uniform(0.01, 0.5, (2, 30, 40))) for k in E15})
    lazy = ds.chunk({"y": 7, "x": 16})
    for f in (ndvi, evi, green_index, ndwi, mndwi, awei):
        with raise_if_dask_computes():
            out = f(lazy)
        assert isinstance(out.data, dsa.Array)
        np.testing.assert_allclose(out.values, f(ds).values, rtol=1e-12, equal_nan=True)
    # DataArray with a band dimension
    da = ds.to_dataarray("band")
    np.testing.assert_allclose(ndvi(da).values, ndvi(ds).values)


# ------------------------------------------------------------------ real chips
def test_real_sentinel2_chip():
    chip = xr.open_dataset(S2_CHIP).chunk({"y": 256, "x": 256})
    with raise_if_dask_computes():
        v = ndvi(chip, scale=1e-4)
        m = mndwi(chip, scale=1e-4)
    v, m = v.compute(), m.compute()
    # a vegetated, cloud-free composite: NDVI 0.31-0.83, MNDWI negative everywhere
    assert 0.3 < float(v.min()) and float(v.max()) < 0.85 and 0.6 < float(v.mean()) < 0.75
    assert float(m.max()) < 0.0
    w = water_mask(chip, scale=1e-4).compute()
    assert float(w.mean()) == 0.0  # no water body in the scene


def _landsat_samples():
    d = pd.DataFrame(json.loads(L8_SAMPLES.read_text()))
    bands = ["SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7"]
    ds = xr.Dataset({b: (("y", "x"), d[b].to_numpy(float).reshape(10, 12)) for b in bands})
    return d, ds


def test_real_landsat_samples_water_mask_otsu():
    d, ds = _landsat_samples()
    truth = (d["class"] == "Water").to_numpy().reshape(10, 12)
    w = water_mask(ds, tile_size=12)
    assert int(w.otsu_tiles) == 1  # the one tile is bimodal
    acc = float(((w.values == 1) == truth).mean())
    assert acc >= 0.95
    # AWEI (no shadow) with its fixed threshold 0 agrees as well
    wa = water_mask(ds, index="awei", method="threshold")
    assert float(((wa.values == 1) == truth).mean()) >= 0.9


def test_real_landsat_samples_random_forest():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import cross_val_score

    d, ds = _landsat_samples()
    feats = np.stack(
        [f(ds).values.ravel() for f in (ndvi, evi, ndwi, mndwi, awei)]
        + [ds[b].values.ravel() for b in ds.data_vars],
        axis=1,
    )
    rf = RandomForestClassifier(n_estimators=50, max_features="sqrt", random_state=0)
    scores = cross_val_score(rf, feats, d["class"].to_numpy(), cv=5)
    assert scores.mean() >= 0.9


# ----------------------------------------------------------------- STAC-served
@pytest.fixture(scope="module")
def optical_stac(tmp_path_factory):
    """rustac serve with S2 L2A-like and Landsat C2 L2-like items (asset keys, raster/proj ext)."""
    import subprocess
    import time
    import urllib.request

    from tests import conftest as C

    exe = C._rustac()
    if exe is None:
        pytest.skip("the `rustac` command is not installed")
    root = tmp_path_factory.mktemp("optical_stac")
    rng = np.random.default_rng(3)
    truth, features = {}, []
    specs = {
        "s2-l2a": (("B02", "B03", "B04", "B08", "B11", "B12"), "SCL", 1e-4, 0.0),
        "landsat-c2-l2": (
            ("SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7"),
            "QA_PIXEL",
            2.75e-5,
            -0.2,
        ),
    }
    for coll, (names, mask_name, scale, offset) in specs.items():
        refl = {r: rng.uniform(0.02, 0.45, (C.NPIX, C.NPIX)) for r in E15}
        assets = {}
        for role, name in zip(("blue", "green", "red", "nir", "swir1", "swir2"), names):
            dn = np.round((refl[role] - offset) / scale).astype(np.uint16)
            refl[role] = dn * scale + offset
            path = root / f"{coll}-{name}.tif"
            C._write_tif(path, dn, *C.TILES["west"], nodata=0)
            a = C._asset(path, "uint16", 0, "1")
            a["raster:bands"][0].update(scale=scale, offset=offset)
            assets[name] = a
        mask = np.zeros((C.NPIX, C.NPIX), np.uint16 if coll.startswith("landsat") else np.uint8)
        if coll.startswith("landsat"):
            mask[:] = 1 << 6
            mask[:5] |= 1 << 3  # cloud in the top rows
        else:
            mask[:] = 4
            mask[:5] = 9
        path = root / f"{coll}-{mask_name}.tif"
        C._write_tif(path, mask, *C.TILES["west"], nodata=None)
        assets[mask_name] = C._asset(path, mask.dtype.name, None, "1")
        features.append(C._item(f"{coll}-item", coll, "2023-06-01T04:00:00Z", "west", assets))
        truth[coll] = refl
    files = []
    for coll in specs:
        p = root / f"{coll}.json"
        p.write_text(json.dumps(C._collection(coll, coll)))
        files.append(p)
    p = root / "items.json"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    files.append(p)
    port = C._free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([exe, "serve", "--addr", f"127.0.0.1:{port}", *map(str, files)], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(400):
            try:
                with urllib.request.urlopen(f"{url}/collections", timeout=1) as r:
                    if len(json.load(r)["collections"]) == 2:
                        break
            except OSError:
                time.sleep(0.05)
        yield url, truth
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.stac
@pytest.mark.parametrize("coll", ["s2-l2a", "landsat-c2-l2"])
def test_indices_from_stac_items(optical_stac, coll):
    url, truth = optical_stac
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xldas.search_stac(url, coll, bbox=(100.0, 38.8, 100.2, 39.0), datetime=None,
                               chunks={"y": 8, "x": 8})  # fmt: skip
    ds.attrs["stac_collections"] = (
        "landsat-c2-l2" if coll.startswith("landsat") else "sentinel-2-l2a"
    )
    with raise_if_dask_computes():
        v = ds.ldas.ndvi()
        m = ds.ldas.mndwi()
    v, m = v.isel(time=0).values, m.isel(time=0).values
    t = truth[coll]
    expect_v = (t["nir"] - t["red"]) / (t["nir"] + t["red"])
    expect_m = (t["green"] - t["swir1"]) / (t["green"] + t["swir1"])
    assert np.isnan(v[:5]).all() and np.isnan(m[:5]).all()  # cloud rows masked
    np.testing.assert_allclose(v[5:], expect_v[5:], atol=1e-5)
    np.testing.assert_allclose(m[5:], expect_m[5:], atol=1e-5)
