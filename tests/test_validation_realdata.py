"""Real-data validation (shared/data): Bondville assimilation, Fürstensee CRNS, Maqu QC.

The data are read from the shared data folder (``$XLDAS_SHARED_DATA`` or
``../shared/data`` beside the repository); ISMN-derived files are never copied into the
repository. Tests skip, saying why, where the folder is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from xldas.validation.bondville import shared_data_dir

DATA = shared_data_dir()
pytestmark = pytest.mark.skipif(
    DATA is None,
    reason="shared real-data folder absent (../shared/data or $XLDAS_SHARED_DATA); "
    "ISMN-derived data are not redistributed with xldas",
)


def test_bondville_reader_units():
    from xldas.io import read_noah_forcing

    ds = read_noah_forcing(DATA / "bondville_noah_1998" / "forcing98_with_validation.dat")
    assert ds.sizes["time"] == 17520
    # rain: 36.45 inches in 1998 (inches per half hour, converted to kg m-2 s-1)
    assert float(ds.precip.sum() * 1800) == pytest.approx(925.83, abs=0.01)
    assert str(ds.time.values[0])[:16] == "1998-01-01T06:30"  # CST -> UTC
    lw = ds.lwdown.squeeze().to_series()
    jan, jul = lw["1998-01"].mean(), lw["1998-07"].mean()
    assert 250 < jan < 320 and 370 < jul < 430  # parameterised longwave, mid-latitude values
    assert float(ds.qair.max()) < 0.03 and ds.sm_obs.sizes["depth"] == 3


@pytest.mark.slow
def test_bondville_assimilation_improves_withheld_5cm():
    from xldas.validation.bondville import bondville_experiment

    res = bondville_experiment(start="1998-04-10T06:00", end="1998-05-10T06:00", members=10)
    sk = res.skill_sm.sel(depth=0.05)
    assert int(sk.n.sel(run="open_loop")) >= 15
    ol = float(sk.rmse.sel(run="open_loop"))
    for method in ("enkf", "pf"):
        assert float(sk.rmse.sel(run=method)) < ol, (method, float(sk.rmse.sel(run=method)), ol)
    # 20/60 cm and latent heat are reported, whatever they are
    assert set(res.skill_sm.depth.values.tolist()) == {0.05, 0.2, 0.6}
    assert np.isfinite(res.skill_le.rmse.sel(run="enkf"))


def test_fuerstensee_neutrons_to_soil_moisture():
    from xldas.io import calibrate_n0, crns_soil_moisture, read_crns, read_crns_samples

    crns = read_crns(DATA / "crns_fuerstensee" / "FSC001_time_series.csv")
    samples = read_crns_samples(DATA / "crns_fuerstensee" / "FSCD001_calibration.csv")
    times = np.unique(samples.time.values)
    assert len(times) == 2 and samples.sizes["sample"] > 200
    cals = [calibrate_n0(crns, samples.where(samples.time == t, drop=True)) for t in times]
    for c in cals:
        assert 800 < c["n0"] < 2000 and 0.1 < c["sm"] < 0.5
    n0s = [c["n0"] for c in cals]
    # the two campaigns (Jan and Nov 2014) agree on N0 within 20 % (forest site with a
    # humus layer; no incoming-intensity correction is possible without a monitor series)
    assert abs(n0s[0] - n0s[1]) / np.mean(n0s) < 0.2
    n0 = float(np.mean(n0s))
    for c in cals:
        own = crns_soil_moisture(crns, c["n0"], c["bulk_density"], c["lattice_water"], c["soc"])
        got = float(own.sel(time=c["time"], method="nearest"))
        assert got == pytest.approx(c["sm"], abs=0.02)  # N0 inverts its own campaign (24 h mean)
        both = crns_soil_moisture(crns, n0, c["bulk_density"], c["lattice_water"], c["soc"])
        assert abs(float(both.sel(time=c["time"], method="nearest")) - c["sm"]) < 0.15
    sm = crns_soil_moisture(crns, n0, np.mean([c["bulk_density"] for c in cals]), 0.0013, 0.0236)
    valid = sm.where(np.isfinite(sm), drop=True)
    assert 0.02 < float(valid.quantile(0.05)) and float(valid.quantile(0.95)) < 0.7


def test_maqu_reader_flags_and_frozen_soil():
    from xldas.io import frozen_soil_flags, read_ismn

    ds = read_ismn(DATA / "ismn_samples" / "zips" / "Data_header_values.zip", network="MAQU")
    assert ds.sizes["sensor"] == 2 and set(ds.station.values) == {"CST-01", "CST-02"}
    assert float(ds.depth_from[0]) == pytest.approx(0.05)
    sm = ds.sm.sel(sensor=ds.sensor[0]).dropna("time")
    flags = ds.sm_flag.sel(sensor=ds.sensor[0]).sel(time=sm.time)
    frozen_ismn = flags.str.contains("D0").values
    mine = frozen_soil_flags(sm).values
    # winter (DJF) liquid water drops well below the summer level
    month = sm.time.dt.month
    assert (
        float(sm.where(month.isin([12, 1, 2])).median())
        < float(sm.where(month.isin([7, 8])).median()) - 0.1
    )
    # our drop test flags mostly what ISMN flags as frozen (soil temperature < 0)
    assert mine.sum() > 100
    assert (mine & frozen_ismn).sum() / mine.sum() > 0.7
    good = read_ismn(
        DATA / "ismn_samples" / "zips" / "Data_header_values.zip", network="MAQU", good_only=True
    ).sm
    assert 0.5 * ds.sm.count() < good.count() < ds.sm.count()
    assert float(good.min()) >= 0.0 and float(good.max()) <= 0.8


@pytest.mark.slow
def test_hawaii_table_and_triple_collocation():
    from xldas.validation.hawaii import PRODUCTS, hawaii_table

    table, tc = hawaii_table()
    assert set(table["product"]) == set(PRODUCTS) and table.station.nunique() == 4
    sw = table.set_index(["station", "product"]).loc["SilverSword"]
    # the COSMOS probe (0-17 cm, light vegetation): SMAP behaves as published (ubRMSE ~0.04-0.06)
    assert sw.loc["SMAP", "ubrmse"] < 0.07 and sw.loc["SMAP", "r"] > 0.6
    assert sw.loc["ERA5-Land", "n"] > 600 and sw.loc["GLDAS", "r"] > 0.6
    t = tc.set_index(["station", "triplet"]).loc[("SilverSword", "insitu-SMAP-ASCAT")]
    assert t["n"] >= 100 and bool(t["assumptions_ok"])
    assert t["err_std_SMAP"] < 0.06 and 0.5 < t["rho2_SMAP"] <= 1.0
