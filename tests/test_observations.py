"""Observation readers on files written in each product's layout, the Hawaii series, the
footprint-aware aggregation and the Earthdata query."""

import os
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import raise_if_dask_computes
from xldas.errors import ObservationError
from xldas.io import samples as _samples
from xldas.io.grids import ease2_rowcol, eurocordex
from xldas.io.observations import (
    earthdata_query,
    open_amsr2_l3,
    open_grace_mascon,
    open_observations,
    open_smap,
    open_smos_l3,
    open_timeseries,
    to_model_grid,
)
from xldas.io.regrid import grid

HAWAII = Path(os.environ.get("XLDAS_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))
HAWAII = HAWAII / "hawaii_colocated_sm"
BBOX = (-156.2, 18.8, -154.7, 20.4)
R, C = (int(v) for v in ease2_rowcol(-155.5, 19.7, "M36"))


@pytest.fixture(scope="module")
def smap_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("smap")
    good = dict(
        soil_moisture=0.25,
        soil_moisture_error=0.03,
        retrieval_qual_flag=0,
        tb_h_corrected=250.5,
        tb_v_corrected=270.25,
        tb_qual_flag_h=0,
        tb_qual_flag_v=0,
        surface_temperature=295.0,
        vegetation_water_content=1.5,
        tb_time_seconds=536500000.0,
    )
    cells = {
        ("AM", R, C): good,
        ("AM", R, C + 1): dict(
            good, soil_moisture=0.30, retrieval_qual_flag=1, tb_qual_flag_h=1
        ),  # bit 0: not recommended
        ("AM", R + 3, C + 3): dict(good, soil_moisture=0.1),  # outside the model domain
        ("PM", R, C): dict(good, soil_moisture=0.2, retrieval_qual_flag=5),  # all flagged
    }
    return _samples.write_smap_l3(d, "2017-01-01", cells)


def test_smap_l3_values_units_flags(smap_file):
    with raise_if_dask_computes():
        ds = open_smap(smap_file, bbox=BBOX)
    assert ds.sm.attrs["units"] == "m3 m-3" and ds.tb_h.attrs["units"] == "K"
    am = ds.sel(time=ds["pass"] == "AM").isel(time=0)
    cell = dict(y=list(ds.ease_row.values).index(R), x=list(ds.ease_col.values).index(C))
    assert float(am.sm.isel(cell)) == pytest.approx(0.25)
    assert float(am.sm_err.isel(cell)) == pytest.approx(0.03)
    assert float(am.tb_v.isel(cell)) == pytest.approx(270.25)
    nxt = dict(cell, x=cell["x"] + 1)
    assert np.isnan(float(am.sm.isel(nxt))) and np.isnan(float(am.tb_h.isel(nxt)))
    assert float(am.tb_v.isel(nxt)) == pytest.approx(270.25)  # V flag clear
    assert int(am.sm.notnull().sum()) == 2  # fill -9999 is NaN everywhere else
    assert list(ds["pass"].values) == ["AM", "PM"]
    # AM pass ~ 6 am local solar time in Hawaii = about 16 UTC
    assert ds.time.dt.hour.values[0] == 16
    np.testing.assert_array_equal(ds.n_obs.values, [2, 0])
    np.testing.assert_array_equal(ds.n_flagged.values, [1, 1])
    raw = open_smap(smap_file, bbox=BBOX, qc=False)
    assert int(raw.sm.notnull().sum()) == 4


def test_smap_wrong_product_and_file(smap_file, tmp_path):
    with pytest.raises(ObservationError, match="SPL3SMP_E"):
        open_smap(smap_file, product="SPL3SMP_E")
    txt = tmp_path / "x.h5"
    txt.write_text("not hdf5")
    with pytest.raises(ObservationError, match="SMAP"):
        open_smap(txt)
    import h5py

    other = tmp_path / "SMAP_L3_SM_A_20170101.h5"
    with h5py.File(other, "w") as f:
        f.create_group("Metadata/DatasetIdentification").attrs["shortName"] = np.bytes_("SPL3SMA")
    with pytest.raises(ObservationError, match="shortName"):
        open_smap(other)


def test_footprint_aggregation_error_and_counters(smap_file):
    ds = open_smap(smap_file, bbox=BBOX)
    g = grid((-156.0, 19.5, -155.0, 20.0), 0.1)
    with raise_if_dask_computes():
        out = to_model_grid(ds, g, ["sm"])
    am = out.isel(time=0)
    n = int(am.sm.notnull().sum())
    assert n > 1  # one 36 km footprint copied onto the 0.1 deg cells it covers
    np.testing.assert_allclose(am.sm.values[am.sm.notnull().values], 0.25)
    # error inflated by sqrt(copies): the copies together weigh as one observation
    err = am.sm_err.values[am.sm.notnull().values]
    np.testing.assert_allclose(err, 0.03 * np.sqrt(n))
    assert float((1 / err**2).sum()) == pytest.approx(1 / 0.03**2)
    # the south-east cell is valid but outside the domain: ignored and counted
    np.testing.assert_array_equal(out.n_used.values, [1, 0])
    np.testing.assert_array_equal(out.n_outside.values, [1, 0])
    # the all-flagged PM time contributes nothing and is counted
    assert int(out.isel(time=1).sm.notnull().sum()) == 0
    assert int(out.n_flagged.values[1]) == 1
    # coarse model grid: bucket mean of the footprints inside, error sigma/sqrt(n)
    coarse = to_model_grid(ds, grid((-157.0, 17.0, -151.0, 23.0), 3.0), ["sm"])
    coarse = coarse.isel(time=0, lat=0, lon=0)
    assert float(coarse.sm.values.squeeze()) == pytest.approx(0.175)  # mean of 0.25 and 0.1
    assert float(coarse.sm_err.values.squeeze()) == pytest.approx(0.03 / np.sqrt(2))


def test_rotated_target_and_dispatch(smap_file):
    out = open_observations(smap_file, "SPL3SMP", target=eurocordex("EUR-44", (-10, 40, 0, 45)))
    assert out.sm.dims == ("time", "rlat", "rlon")
    assert int(out.sm.notnull().sum()) == 0 and out.n_outside.values.tolist() == [2, 0]


def test_smap_l1c(tmp_path):
    p = _samples.write_smap_l1c(
        tmp_path,
        cells=[
            dict(row=R, col=C, tb_h_fore=250.0, tb_h_aft=252.0, tb_v_fore=270.0, tb_v_aft=272.0),
            dict(
                row=R,
                col=C + 1,
                tb_h_fore=240.0,
                tb_h_aft=240.0,
                tb_v_fore=260.0,
                tb_v_aft=260.0,
                qual_h=1,
            ),
        ],
    )
    ds = open_smap(p, product="SPL1CTB")
    np.testing.assert_allclose(ds.tb_h.values[0], [251.0, np.nan])
    np.testing.assert_allclose(ds.tb_v.values[0], [271.0, 260.0])
    assert ds.lat.values[0] == pytest.approx(19.7, abs=0.3)
    out = to_model_grid(ds, grid((-156.0, 19.5, -155.0, 20.0), 0.1), ["tb_v"])
    assert float(out.tb_v.max()) == pytest.approx(271.0)


def test_amsr2_l3(tmp_path):
    # row 280 = 19.875 N; column 817 = 204.375 E = -155.625
    p = _samples.write_amsr2_l3(tmp_path, values={(280, 817): (250.13, 270.5)})
    ds = open_amsr2_l3(p)
    v = ds.sel(lat=19.875, lon=-155.625).isel(time=0)
    assert float(v.tb_h) == pytest.approx(250.13, abs=1e-4)
    assert float(v.tb_v) == pytest.approx(270.5)
    assert ds.tb_h.attrs["frequency_ghz"] == 6.925 and int(ds.n_obs[0]) == 1
    bad = tmp_path / "GW1AM2_20170101_01D_EQMA_L2SGT06.h5"
    bad.write_bytes(p.read_bytes())
    with pytest.raises(ObservationError, match="GW1AM2_YYYYMMDD"):
        open_amsr2_l3(bad)


def test_smos_l3_and_grace(tmp_path):
    r, c = (int(v) for v in ease2_rowcol(-155.5, 19.7, "M25"))
    p = _samples.write_smos_l3(
        tmp_path, values={(r, c): (0.3, 0.04, 0), (r, c + 1): (0.2, 0.04, 2)}
    )
    ds = open_smos_l3(p)
    assert int(ds.n_obs[0]) == 1 and int(ds.n_flagged[0]) == 1
    assert float(ds.sm.max()) == pytest.approx(0.3) and ds.sm_err.attrs["units"] == "m3 m-3"
    q = _samples.write_smos_l3(tmp_path, values={(r, c): (0.3, 0.2, 0)}, ic=False)
    assert int(open_smos_l3(q).n_obs[0]) == 0  # CATDS Dqx >= 0.1 rejected
    g = open_grace_mascon(_samples.write_grace_mascon(tmp_path))
    assert g.tws.attrs["units"] == "kg m-2" and float(g.lon.min()) < 0
    v = g.tws.sel(lat=19.75, lon=-155.25, method="nearest").isel(time=0)
    assert float(v) == pytest.approx(10 * (5.0 + 0.1 * 19.75))
    out = to_model_grid(g, grid((-156.0, 19.0, -155.0, 20.0), 0.25), ["tws"]).isel(time=0)
    # 16 cells (copies of 0.5 deg cells) all from one 3-degree mascon block: together they
    # carry the information of one 20 kg m-2 observation
    err = out.tws_err.values
    assert np.isfinite(err).all() and err.size == 16
    np.testing.assert_allclose(err, 20.0 * 4.0)
    assert float((1 / err**2).sum()) == pytest.approx(1 / 20.0**2)
    # a 1-degree cell holding four 0.5 deg cells of one mascon: fully correlated, error 20
    one = to_model_grid(g, grid((-156.0, 19.0, -155.0, 20.0), 1.0), ["tws"]).isel(time=0)
    np.testing.assert_allclose(one.tws_err.values, 20.0)


def test_earthdata_query_construction():
    q = earthdata_query("SPL3SMP", BBOX, ("2017-01-01", "2017-01-31"), version="008")
    assert q == {
        "short_name": "SPL3SMP",
        "version": "008",
        "bounding_box": BBOX,
        "temporal": ("2017-01-01T00:00:00Z", "2017-01-31T23:59:59Z"),
        "count": -1,
    }
    with pytest.raises(ValueError, match="bbox"):
        earthdata_query("SPL3SMP", (10, 50, 5, 40))
    with pytest.raises(ValueError, match="before"):
        earthdata_query("SPL3SMP", None, ("2017-02-01", "2017-01-01"))


# ------------------------------------------------------------------ real Hawaii series
needs_hawaii = pytest.mark.skipif(
    not HAWAII.is_dir(), reason=f"shared Hawaii data not found at {HAWAII} (set XLDAS_SHARED_DATA)"
)


@needs_hawaii
@pytest.mark.parametrize(
    ("folder", "product", "lo", "hi"),
    [
        ("SMAP_V8_AM", "SMAP", 0.0, 0.6),
        ("C3S_V202212", "C3S", 0.0, 0.6),
        ("SMOS_105_ASC", "SMOS_IC", 0.0, 0.7),
        ("GLDAS_NOAH025_3H_2_1", "GLDAS", 0.0, 0.6),
        ("ERA5_20190613", "ERA5", 0.0, 0.8),
        ("ERA5_LAND_V20190904", "ERA5_LAND", 0.0, 0.8),
    ],
)
def test_hawaii_series(folder, product, lo, hi):
    ds = open_timeseries(HAWAII / folder / "0165.nc", product)
    assert ds.sm.attrs["units"] == "m3 m-3"
    sm = ds.sm.sel(time=slice("2017-01-01", "2018-12-31"))
    v = sm.values
    assert np.isfinite(v).sum() > 100
    assert lo <= np.nanmin(v) and np.nanmax(v) <= hi
    if product in ("SMAP", "C3S", "SMOS_IC"):
        assert int(ds.n_flagged.sum()) > 0 and "sm_err" in ds


@needs_hawaii
def test_hawaii_ascat_and_wrong_product():
    ds = open_timeseries(HAWAII / "ASCAT_H119" / "0165.nc", "ASCAT", porosity=0.5)
    assert ds.sizes["locations"] == 55 and ds.sm.attrs["units"] == "m3 m-3"
    assert 0 <= float(ds.sm.min()) and float(ds.sm.max()) <= 0.5
    assert int(ds.n_flagged.sum()) > 0
    with pytest.raises(ObservationError, match="soil_moisture"):
        open_timeseries(HAWAII / "C3S_V202212" / "0165.nc", "SMAP")


# ------------------------------------------------------------------ LDAS-EU through `xldas run`
def test_ldas_eu_twin_runs_through_xldas_run(tmp_path, monkeypatch):
    """The shipped LDAS-EU config (EUR-11, ERA5-Land, SMAP L3 Tb, EnKF) on a small
    sub-domain with generated files: the SMAP-L3-layout observation source is read, flagged,
    aggregated onto the rotated grid and assimilated."""
    from typer.testing import CliRunner

    from xldas.cli import app
    from xldas.cycle import Experiment
    from xldas.cycle.store import open_output

    yaml = Path(__file__).parents[1] / "catalogs" / "experiments" / "ldas_eu.yaml"
    text = yaml.read_text().replace('end: "2021-05-04T00:00"', 'end: "2021-05-03T00:00"')
    (tmp_path / "ldas_eu.yaml").write_text(text)
    _samples.write_ldas_eu_inputs(tmp_path / "ldas_eu", days=2)
    monkeypatch.chdir(tmp_path)
    exp = Experiment.from_yaml(tmp_path / "ldas_eu.yaml")
    assert exp.observations[0].source.reader == "SPL3SMP"
    res = CliRunner().invoke(app, ["run", str(tmp_path / "ldas_eu.yaml")])
    assert res.exit_code == 0, res.output
    store = tmp_path / "xldas-ldas-eu"
    ana = open_output(store, "analysis")
    assert ana.sm.dims[-2:] == ("rlat", "rlon")
    assert ana.sizes["time"] == 2
    diag = open_output(store, "diagnostics")
    used = [v for v in diag.data_vars if v.endswith("n_used")]
    assert used and float(diag[used[0]].sum()) > 0


def test_product_reader_local_and_argument_errors(smap_file):
    from xldas.io.observations import ProductReader

    rd = ProductReader(product="SPL3SMP", short_name="SPL3SMP")
    ds = rd.read(path=str(smap_file), target=grid((-156.0, 19.5, -155.0, 20.0), 0.1))
    assert "tb_h_err" in ds and ds.sizes["lat"] == 5
    with pytest.raises(TypeError, match="download_to"):
        rd.read(bbox=BBOX, temporal=("2017-01-01", "2017-01-02"))


def test_catalog_entries_read_local_granules(smap_file):
    import xldas

    cat = xldas.open_catalog()
    for name in (
        "smap_l3_sm_p",
        "smap_l3_sm_p_e",
        "smap_l1c_tb",
        "amsr2_l3_jaxa",
        "smos_l3_sm",
        "ascat_ssm_hsaf",
        "grace_mascon_jpl",
    ):
        assert name in list(cat)
    ds = cat["smap_l3_sm_p"].read(path=str(smap_file))
    assert ds.attrs["product"] == "SPL3SMP"


def test_identity_source_with_rescale(tmp_path):
    """Retrieved soil moisture (ASCAT-like % saturation) as an Identity source with
    ``rescale:`` onto a model climatology: rescaled values take the reference's mean/std."""
    import pandas as pd
    import xarray as xr

    from xldas.cycle import Experiment
    from xldas.cycle.engine import ObservationSource, Sources

    g = grid((100.0, 38.0, 100.5, 38.5), 0.25)
    lat, lon = g.lat.values, g.lon.values
    t = pd.date_range("2021-01-02", periods=60, freq="D")
    rng = np.random.default_rng(0)
    base = rng.standard_normal((t.size, 2, 2))
    xy = {"lat": lat, "lon": lon}
    xr.Dataset({"sand": (("lat", "lon"), np.full((2, 2), 0.4))}, coords=xy).to_netcdf(
        tmp_path / "params.nc"
    )
    forcing = {v: (("time", "lat", "lon"), np.ones((t.size, 2, 2))) for v in ("tair", "precip")}
    xr.Dataset(forcing, coords={"time": t, **xy}).to_netcdf(tmp_path / "forcing.nc")
    obs = xr.Dataset(
        {
            "sm": (("time", "lat", "lon"), 50 + 10 * base, {"units": "percent"}),
            "sm_err": (("time", "lat", "lon"), np.full(base.shape, 5.0), {"units": "percent"}),
        },
        coords={"time": t, **xy},
    )
    obs.to_netcdf(tmp_path / "ascat.nc")
    ref = xr.Dataset(
        {
            "sm": (
                ("time", "layer", "lat", "lon"),
                (0.25 + 0.02 * rng.standard_normal((t.size, 2, 2)))[:, None]
                * np.ones((1, 4, 1, 1)),
                {"units": "m3 m-3"},
            )
        },
        coords={"time": t, **xy},
    )
    ref.to_netcdf(tmp_path / "openloop.nc")
    exp = Experiment.from_dict(
        {
            "name": "rescale",
            "period": {"start": "2021-01-01", "end": "2021-03-01"},
            "model": {"params": {"kind": "netcdf", "path": str(tmp_path / "params.nc")}},
            "forcing": {"kind": "netcdf", "path": str(tmp_path / "forcing.nc")},
            "observations": [
                {
                    "name": "ascat",
                    "source": {"kind": "netcdf", "path": str(tmp_path / "ascat.nc")},
                    "operator": {"type": "identity", "variable": "sm", "layer": 0},
                    "rescale": {
                        "method": "mean_std",
                        "reference": {"kind": "netcdf", "path": str(tmp_path / "openloop.nc")},
                    },
                }
            ],
            "output": {"store": str(tmp_path / "out")},
        }
    )
    src = ObservationSource(exp.observations[0], Sources(exp), exp)
    d = src.data
    r = ref.sm.isel(layer=0)
    np.testing.assert_allclose(d.sm.mean("time"), r.mean("time"), atol=1e-12)
    np.testing.assert_allclose(d.sm.std("time"), r.std("time"), rtol=1e-10)
    expected = (5.0 * r.std("time") / obs.sm.std("time")).broadcast_like(d.sm_err)
    np.testing.assert_allclose(d.sm_err.transpose(*expected.dims), expected, rtol=1e-10)
    assert d.sm_err.attrs["units"] == "m3 m-3"


def test_smap_l3_enhanced_9km(tmp_path):
    r, c = (int(v) for v in ease2_rowcol(-155.5, 19.7, "M09"))
    cell = dict(
        soil_moisture=0.21,
        soil_moisture_error=0.035,
        retrieval_qual_flag=0,
        tb_h_corrected=240.0,
        tb_v_corrected=262.0,
    )
    p = _samples.write_smap_l3(tmp_path, cells={("PM", r, c): cell}, product="SPL3SMP_E")
    ds = open_smap(p, product="SPL3SMP_E", bbox=BBOX, passes=("PM",))
    assert ds.attrs["ease_grid"] == "M09" and ds.attrs["cell_size_m"] == pytest.approx(9008.055)
    sm = ds.sm.isel(time=0).load()
    hit = sm.where(sm.notnull(), drop=True)
    assert float(hit.values.squeeze()) == pytest.approx(0.21)
    assert float(hit.lat.values.squeeze()) == pytest.approx(19.7, abs=0.05)
    assert float(hit.lon.values.squeeze()) == pytest.approx(-155.5, abs=0.05)
    with pytest.raises(ObservationError, match="SPL3SMP"):
        open_smap(p, product="SPL3SMP")
