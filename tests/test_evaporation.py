"""ET, net radiation and degree-day melt: SCIENCE.md check values E18–E20, E30; kernels vs NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tests.helpers import raise_if_dask_computes
from xldas.physics import _et_kernels as k
from xldas.physics import (
    degree_day_melt,
    et0_fao56,
    net_radiation,
    priestley_taylor,
    sith_potential_et,
)
from xldas.physics import evaporation as ev

BRUSSELS = {"lat": 50 + 48 / 60, "doy": 187, "z": 100.0, "tmax": 21.5, "tmin": 12.3}


def test_e18_fao56_example18_brussels():
    b = BRUSSELS
    es = (ev.saturation_vapour_pressure(b["tmax"]) + ev.saturation_vapour_pressure(b["tmin"])) / 2
    ea = ev.actual_vapour_pressure(b["tmin"], b["tmax"], 63.0, 84.0)
    tmean = (b["tmax"] + b["tmin"]) / 2
    delta = k.slope_svp(k.saturation_vapour_pressure(tmean), tmean)
    gamma = k.psychrometric_constant(k.pressure_from_elevation(b["z"]))
    ra = ev.extraterrestrial_radiation(b["lat"], b["doy"])
    rs = ev.solar_radiation_angstrom(9.25, b["lat"], b["doy"])
    rso = (0.75 + 2e-5 * b["z"]) * ra
    rn = net_radiation(rs, b["tmax"], b["tmin"], ea, b["lat"], b["doy"], b["z"])
    rnl = (1 - 0.23) * rs - rn
    assert round(float(es), 3) == 1.997
    assert round(float(ea), 3) == 1.409
    assert round(float(delta), 3) == 0.122
    assert round(float(gamma), 4) == 0.0666
    assert round(float(ra), 2) == 41.09
    assert round(float(rs), 2) == 22.07
    assert round(float(rso), 2) == 30.90
    assert round(float(rnl), 2) == 3.71
    assert round(float(rn), 2) == 13.28
    et0 = et0_fao56(rn, b["tmax"], b["tmin"], 2.078, ea, elevation_m=b["z"])
    assert round(float(et0), 2) == 3.88


@pytest.mark.parametrize("doy", [105, 106])
def test_e19_fao56_example17_bangkok_monthly(doy):
    lat = 13 + 44 / 60
    rs = ev.solar_radiation_angstrom(8.5, lat, doy)
    rn = net_radiation(rs, 34.8, 25.6, 2.85, lat, doy, 2.0)
    et0 = et0_fao56(rn, 34.8, 25.6, 2.0, 2.85, elevation_m=2.0, g_mj=0.14 * (30.2 - 29.2))
    assert round(float(et0), 2) == 5.72
    if doy == 106:
        assert round(float(rn), 2) == 14.34


def test_e20_sith_potential_et():
    lam = k.latent_heat_vaporisation(20.0)
    delta = k.slope_svp(k.saturation_vapour_pressure(20.0), 20.0)
    gamma = k.CP_AIR * 101.3 / (0.622 * lam)
    assert f"{lam:.5e}" == "2.45378e+06"
    assert round(delta, 6) == 0.144740
    assert round(gamma, 6) == 0.067235
    pec, pes = sith_potential_et(150.0, 2.0, 20.0, 101.3)
    assert round(float(pec), 5) == 3.17542
    assert round(float(pes), 5) == 1.36865
    # Priestley-Taylor is the unsplit total
    assert float(priestley_taylor(150.0, 20.0, 101.3)) * 86400 == pytest.approx(
        float(pec + pes), rel=1e-12
    )


def test_e30_degree_day():
    assert float(degree_day_melt(4.0, 3.5, days=1.0)) == pytest.approx(14.0, abs=1e-12)
    assert float(degree_day_melt(4.0, -3.5)) == 0.0


def _rand(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "rn": rng.uniform(-100, 800, n),
        "t": rng.uniform(-30, 45, n),
        "p": rng.uniform(50, 105, n),
        "lai": rng.uniform(0, 7, n),
        "sw": rng.uniform(0, 1000, n),
        "lw": rng.uniform(150, 450, n),
    }


def test_kernels_match_numpy_reference():
    """The compiled scalar kernels equal their vectorised NumPy evaluation (py_func)."""
    d = _rand()
    got = np.array(
        [
            k.sith_potential_et(a, 0.0, b, c, e)
            for a, b, c, e in zip(d["rn"], d["lai"], d["t"], d["p"])
        ]
    )
    ref = np.array(k.sith_potential_et.py_func(d["rn"], 0.0, d["lai"], d["t"], d["p"])).T
    np.testing.assert_allclose(got, ref, rtol=1e-13)
    got = np.array(
        [k.priestley_taylor(a, 0.0, c, e, 1.26) for a, c, e in zip(d["rn"], d["t"], d["p"])]
    )
    np.testing.assert_allclose(
        got, k.priestley_taylor.py_func(d["rn"], 0.0, d["t"], d["p"], 1.26), rtol=1e-13
    )
    got = np.array(
        [
            k.net_radiation_surface(a, b, c + 273.15, 0.2, 0.97)
            for a, b, c in zip(d["sw"], d["lw"], d["t"])
        ]
    )
    np.testing.assert_allclose(
        got,
        k.net_radiation_surface.py_func(d["sw"], d["lw"], d["t"] + 273.15, 0.2, 0.97),
        rtol=1e-13,
    )
    lat = np.deg2rad(np.linspace(-60, 60, 50))
    got = np.array([k.extraterrestrial_radiation(x, 200.0) for x in lat])
    np.testing.assert_allclose(got, k.extraterrestrial_radiation.py_func(lat, 200.0), rtol=1e-13)
    # and the gufunc wrappers on arrays equal the same reference
    pec, pes = sith_potential_et(d["rn"], d["lai"], d["t"], d["p"])
    np.testing.assert_allclose(np.c_[pec, pes], ref * 1.0, rtol=1e-13)


def test_dask_equals_numpy_and_stays_lazy():
    d = _rand(60)
    da = {kk: xr.DataArray(v.reshape(6, 10), dims=("lat", "lon")) for kk, v in d.items()}
    dd = {kk: v.chunk(lat=2, lon=5) for kk, v in da.items()}
    with raise_if_dask_computes():
        pec_l, pes_l = sith_potential_et(dd["rn"], dd["lai"], dd["t"], dd["p"])
        pt_l = priestley_taylor(dd["rn"], dd["t"], dd["p"])
        m_l = degree_day_melt(4.0, dd["t"])
    pec, pes = sith_potential_et(da["rn"], da["lai"], da["t"], da["p"])
    xr.testing.assert_allclose(pec_l.compute(), pec)
    xr.testing.assert_allclose(pes_l.compute(), pes)
    xr.testing.assert_allclose(pt_l.compute(), priestley_taylor(da["rn"], da["t"], da["p"]))
    assert m_l.attrs["units"] == "kg m-2"
    assert pec.attrs["units"] == "mm d-1"
    assert pt_l.attrs["units"] == "kg m-2 s-1"


def test_units_converted_on_entry():
    t_k = xr.DataArray([293.15], dims="x", attrs={"units": "K"})
    p_pa = xr.DataArray([101300.0], dims="x", attrs={"units": "Pa"})
    rn = xr.DataArray([150.0], dims="x", attrs={"units": "W m-2"})
    lai = xr.DataArray([2.0], dims="x", attrs={"units": "m2 m-2"})
    pec, _pes = sith_potential_et(rn, lai, t_k, p_pa)
    assert float(pec[0]) == pytest.approx(3.17542, abs=5e-6)
    rs_w = xr.DataArray([22.07205161436855 / 0.0864], dims="x", attrs={"units": "W m-2"})
    b = BRUSSELS
    rn_mj = net_radiation(rs_w, b["tmax"], b["tmin"], 1.4086238, b["lat"], b["doy"], b["z"])
    assert round(float(rn_mj[0]), 2) == 13.28
    assert rn_mj.attrs["units"] == "MJ m-2 d-1"


def test_bad_input_errors():
    from xldas.errors import UnitError, UnknownOptionError

    with pytest.raises(UnknownOptionError, match="timestep"):
        et0_fao56(10.0, 20.0, 10.0, 2.0, 1.0, timestep="weekly")
    bad = xr.DataArray([1.0], dims="x", attrs={"units": "m s-1"}, name="t_c")
    with pytest.raises(UnitError, match="t_c"):
        priestley_taylor(100.0, bad)


def test_hourly_et0_coefficients():
    """Hourly form: 900 -> 37 and 0.34 -> 0.24 (day) / 0.96 (night), by hand."""
    delta = k.slope_svp(k.saturation_vapour_pressure(38.0), 38.0)
    gamma = k.psychrometric_constant(k.pressure_from_elevation(8.0))
    es = k.saturation_vapour_pressure(38.0)
    for day, cd in ((True, 0.24), (False, 0.96)):
        want = (0.408 * delta * (1.749 - 0.175) + gamma * 37 / 311 * 3.3 * (es - 3.402)) / (
            delta + gamma * (1 + cd * 3.3)
        )
        got = et0_fao56(
            1.749,
            38.0,
            38.0,
            3.3,
            3.402,
            elevation_m=8.0,
            g_mj=0.175,
            timestep="hourly",
            daytime=day,
        )
        assert float(got) == pytest.approx(want, rel=1e-12)
