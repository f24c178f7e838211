"""Tests of the observation operators in xldas.obs and of ``ens.ldas.observe``."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xldas  # noqa: F401  (registers .ldas)
from tests.helpers import raise_if_dask_computes
from xldas.errors import DimensionError, ObservationError, ParameterRangeError, UnknownOptionError
from xldas.obs import CosmicRay, Identity, TauOmega, WaterCloud, observe
from xldas.physics import (
    cosmic_ray_neutrons,
    crns_weighted_sm,
    dielectric_dobson,
    dielectric_mironov,
    oh2004,
    tau_omega_tb,
    vegetation_optical_depth,
    vegetation_water_content,
    water_cloud_canopy,
)

DEPTHS = [0.05, 0.3, 1.0, 2.0]


def make_state(n_members=3, ny=2, nx=3, sm=None, tsoil=None, chunks=False):
    """A small ensemble state following the DESIGN.md contract."""
    rng = np.random.default_rng(0)
    shape = (n_members, len(DEPTHS), ny, nx)
    sm = rng.uniform(0.05, 0.40, shape) if sm is None else np.broadcast_to(sm, shape)
    tsoil = rng.uniform(275.0, 305.0, shape) if tsoil is None else np.broadcast_to(tsoil, shape)
    dims = ("member", "layer", "lat", "lon")
    ds = xr.Dataset(
        {
            "sm": (dims, np.array(sm, dtype=float), {"units": "m3 m-3"}),
            "tsoil": (dims, np.array(tsoil, dtype=float), {"units": "K"}),
            "swe": (
                ("member", "lat", "lon"),
                rng.uniform(0, 50, (n_members, ny, nx)),
                {"units": "kg m-2"},
            ),
        },
        coords={
            "member": np.arange(n_members),
            "layer": np.arange(len(DEPTHS)),
            "depth_bottom": ("layer", DEPTHS, {"units": "m"}),
            "dz": ("layer", np.diff([0.0, *DEPTHS]), {"units": "m"}),
            "lat": 38.0 + 0.05 * np.arange(ny),
            "lon": 100.0 + 0.05 * np.arange(nx),
        },
    )
    if chunks:
        ds = ds.chunk({"member": -1, "layer": 1, "lat": 1})
    return ds


def make_params(ny=2, nx=3, chunks=False):
    rng = np.random.default_rng(1)
    dims = ("lat", "lon")

    def f(lo, hi, units):
        return (dims, rng.uniform(lo, hi, (ny, nx)), {"units": units})

    ds = xr.Dataset(
        {
            "sand": f(0.2, 0.6, "1"),
            "clay": f(0.05, 0.35, "1"),
            "bulk_density": f(1.2, 1.6, "g cm-3"),
            "lai": f(0.2, 3.0, "m2 m-2"),
            "vwc": f(0.0, 3.0, "kg m-2"),
            "n0": f(1500.0, 2500.0, "h-1"),
        },
        coords={"lat": 38.0 + 0.05 * np.arange(ny), "lon": 100.0 + 0.05 * np.arange(nx)},
    )
    return ds.chunk({"lat": 1}) if chunks else ds


# ------------------------------------------------------------------------------ TauOmega
def test_tau_omega_smap_matches_physics_chain():
    state, params = make_state(tsoil=300.0), make_params()
    op = TauOmega.smap()
    out = op(state, params)
    assert isinstance(out, xr.Dataset) and set(out.data_vars) == {"tb_h", "tb_v"} == set(
        op.variables
    )
    assert out.tb_v.dims == ("member", "lat", "lon")
    assert "layer" not in out.coords and "depth_bottom" not in out.coords
    eps = dielectric_mironov(state.sm.isel(layer=0), params.clay, 1.41)
    tau = vegetation_optical_depth(params.vwc, 0.11)
    tb_h, tb_v = tau_omega_tb(eps, 300.0, 300.0, tau, 0.05, 0.1, 40.0)
    np.testing.assert_allclose(out.tb_h, tb_h.transpose(*out.tb_h.dims), rtol=1e-12)
    np.testing.assert_allclose(out.tb_v, tb_v.transpose(*out.tb_v.dims), rtol=1e-12)
    assert out.tb_v.attrs["units"] == "K" and "TauOmega" in out.tb_v.attrs["xldas_operator"]


def test_tau_omega_e7_through_operator():
    # bare soil with eps = 20 is not reachable from sm, so check E7 via tau = 0.1 and T = 300 K
    state, params = make_state(n_members=1, ny=1, nx=1, sm=0.25, tsoil=300.0), make_params(1, 1)
    params = params.assign(tau=(("lat", "lon"), [[0.1]], {"units": "1"}))
    out = TauOmega.smap(pol="v")(state, params)
    eps = dielectric_mironov(0.25, params.clay, 1.41)
    want = tau_omega_tb(eps, 300.0, 300.0, 0.1, 0.05, 0.1, 40.0)[1]
    assert out.name == "tb_v" and isinstance(out, xr.DataArray)
    np.testing.assert_allclose(out.squeeze(), want.squeeze(), rtol=1e-12)


def test_tau_omega_effective_temperature_from_layers():
    tsoil = np.array([300.0, 295.0, 290.0, 285.0])[:, None, None]
    state = make_state(n_members=1, ny=1, nx=1, tsoil=tsoil)
    t_eff = TauOmega.smap().effective_temperature(state)
    # T_deep is the first layer reaching 0.5 m (layer 2, 290 K); C = 0.246
    np.testing.assert_allclose(t_eff, 290.0 + 0.246 * 10.0)
    assert t_eff.attrs["units"] == "K"
    np.testing.assert_allclose(TauOmega.amsr2("x").effective_temperature(state), 300.0)
    deep = TauOmega.smap(deep_depth_m=5.0).effective_temperature(state)  # deeper than the column
    np.testing.assert_allclose(deep, 285.0 + 0.246 * 15.0)


def test_tau_omega_per_cell_incidence():
    state, params = make_state(), make_params()
    params = params.assign(inc=(params.lai * 0 + 40.0).assign_attrs(units="degree"))
    xr.testing.assert_allclose(
        TauOmega.smap(incidence_deg="inc")(state, params), TauOmega.smap()(state, params)
    )


def test_tau_omega_tsoil_in_celsius_converted():
    state, params = make_state(), make_params()
    state_c = state.assign(tsoil=(state.tsoil - 273.15).assign_attrs(units="degC"))
    xr.testing.assert_allclose(TauOmega.smap()(state, params), TauOmega.smap()(state_c, params))


def test_tau_omega_dobson_and_ndvi_vegetation():
    state, params = make_state(tsoil=293.15), make_params()
    params = params.drop_vars("vwc").assign(
        ndvi=params.lai * 0 + 0.5, ndvi_max=params.lai * 0 + 0.7, ndvi_min=params.lai * 0 + 0.1
    )
    for v in ("ndvi", "ndvi_max", "ndvi_min"):
        params[v].attrs = {"units": "1"}
    op = TauOmega.amsr2("c", dielectric="dobson", pol="h", stem_factor=3.0)
    out = op(state, params)
    eps = dielectric_dobson(
        state.sm.isel(layer=0),
        params.sand,
        params.clay,
        6.925,
        temperature_c=20.0,
        bulk_density=params.bulk_density,
    )
    tau = vegetation_optical_depth(vegetation_water_content(0.5, 0.7, 0.1, 3.0), 0.25)
    want = tau_omega_tb(eps, 293.15, 293.15, tau, 0.06, 0.1, 55.0)[0]
    np.testing.assert_allclose(out, want.transpose(*out.dims), rtol=1e-10)
    assert out.name == "tb_h" and op.frequency_ghz == 6.925 and op.incidence_deg == 55.0


def test_tau_omega_lazy_and_dask_equals_numpy():
    op = TauOmega.smap()
    with raise_if_dask_computes():
        lazy = op(make_state(chunks=True), make_params(chunks=True))
    assert lazy.tb_v.chunks is not None
    xr.testing.assert_allclose(lazy.compute(), op(make_state(), make_params()))


def test_tau_omega_errors():
    with pytest.raises(ParameterRangeError, match="incidence_deg"):
        TauOmega(incidence_deg=75.0)
    with pytest.raises(ParameterRangeError, match="frequency_ghz"):
        TauOmega(frequency_ghz=30.0)  # beyond Mironov's 26.5 GHz
    with pytest.raises(ParameterRangeError, match="frequency_ghz"):
        TauOmega(frequency_ghz=0.2, dielectric="dobson")
    with pytest.raises(UnknownOptionError, match="dielectric"):
        TauOmega(dielectric="wang")
    with pytest.raises(UnknownOptionError, match="pol"):
        TauOmega(pol="x")
    with pytest.raises(UnknownOptionError, match="band"):
        TauOmega.amsr2("ku")
    with pytest.raises(ObservationError, match="vegetation"):
        TauOmega.smap()(make_state(), make_params().drop_vars("vwc"))
    with pytest.raises(ObservationError, match="clay"):
        TauOmega.smap()(make_state(), make_params().drop_vars("clay"))


# ---------------------------------------------------------------------------- WaterCloud
def test_water_cloud_e12_through_operator():
    state = make_state(n_members=1, ny=1, nx=1, sm=0.25)
    params = make_params(1, 1).assign(lai=(("lat", "lon"), [[2.0]], {"units": "m2 m-2"}))
    op = WaterCloud(pol="vv", a=0.1, b=0.3, c=-15.0, d=30.0, incidence_deg=40.0)
    out = op(state, params)
    assert out.name == "sigma0_vv" and op.variables == ("sigma0_vv",)
    assert round(float(out.squeeze()), 5) == -8.00385
    assert out.attrs["units"] == "dB"


def test_water_cloud_physical_soil_and_param_names():
    state, params = make_state(), make_params()
    params = params.assign(inc=params.lai * 0 + 38.0, a_vh=params.lai * 0 + 0.05)
    params["inc"].attrs = {"units": "degree"}
    op = WaterCloud.sentinel1(
        "vh", a="a_vh", b=0.2, soil_model="oh2004", ks=0.6, incidence_deg="inc"
    )
    out = op(state, params)
    soil = oh2004(state.sm.isel(layer=0), 0.6, params.inc)[2]
    want = water_cloud_canopy(soil, params.lai, params.lai, params.inc, params.a_vh, 0.2)
    np.testing.assert_allclose(out, want.transpose(*out.dims), rtol=1e-12)
    for model in ("oh1992", "dubois1995"):
        o = WaterCloud.sentinel1("vv", a=0.1, b=0.3, soil_model=model, ks=0.5)(state, params)
        assert o.name == "sigma0_vv" and np.isfinite(o).all()


def test_water_cloud_lazy():
    op = WaterCloud.sentinel1(a=0.1, b=0.3, c=-15.0, d=30.0)
    with raise_if_dask_computes():
        lazy = op(make_state(chunks=True), make_params(chunks=True))
    xr.testing.assert_allclose(lazy.compute(), op(make_state(), make_params()))


def test_water_cloud_errors():
    with pytest.raises(ParameterRangeError, match="c"):
        WaterCloud(a=0.1, b=0.3)  # linear soil needs c and d
    with pytest.raises(ParameterRangeError, match="incidence_deg"):
        WaterCloud(a=0.1, b=0.3, c=-15.0, d=30.0, incidence_deg=5.0)
    with pytest.raises(ParameterRangeError, match="incidence_deg"):
        WaterCloud(a=0.1, b=0.3, soil_model="dubois1995", incidence_deg=25.0)
    with pytest.raises(ParameterRangeError, match="frequency_ghz"):
        WaterCloud(a=0.1, b=0.3, soil_model="dubois1995", frequency_ghz=13.5, incidence_deg=40.0)
    with pytest.raises(UnknownOptionError, match="pol"):
        WaterCloud(pol="vh", a=0.1, b=0.3, soil_model="dubois1995", incidence_deg=40.0)
    with pytest.raises(UnknownOptionError, match="soil_model"):
        WaterCloud(a=0.1, b=0.3, soil_model="iem")
    with pytest.raises(ObservationError, match="ndvi"):
        WaterCloud(a=0.1, b=0.3, c=-15.0, d=30.0, vegetation="ndvi")(make_state(), make_params())


# ----------------------------------------------------------------------------- CosmicRay
def test_cosmic_ray_uniform_profile_e25():
    # uniform theta_v = 0.28 at rho_b = 1.4 -> theta_g = 0.20 -> N/N0 = 0.628508 (E25)
    state = make_state(n_members=2, ny=1, nx=1, sm=0.28)
    params = make_params(1, 1).assign(bulk_density=(("lat", "lon"), [[1.4]], {"units": "g cm-3"}))
    out = CosmicRay(n0=1.0)(state, params)
    assert out.name == "neutron_count" and out.dims == ("member", "lat", "lon")
    np.testing.assert_allclose(out, 0.628508, atol=5e-7)


def test_cosmic_ray_layered_matches_physics_and_is_lazy():
    state, params = make_state(), make_params()
    op = CosmicRay(n0="n0", lattice_water=0.03, soc=0.01)
    out = op(state, params)
    theta = crns_weighted_sm(
        state.sm, bulk_density=params.bulk_density, lattice_water=0.03, soc=0.01
    )
    want = cosmic_ray_neutrons(theta, params.n0, params.bulk_density, 0.03, 0.01)
    np.testing.assert_allclose(out, want.transpose(*out.dims), rtol=1e-12)
    with raise_if_dask_computes():
        lazy = op(make_state(chunks=True), make_params(chunks=True))
    xr.testing.assert_allclose(lazy.compute(), out)


def test_cosmic_ray_errors():
    with pytest.raises(ParameterRangeError, match="n0"):
        CosmicRay(n0=-5.0)
    with pytest.raises(DimensionError, match="depth_bottom"):
        CosmicRay(n0=1000.0)(make_state().drop_vars("depth_bottom"), make_params())
    with pytest.raises(ObservationError, match="n0"):
        CosmicRay(n0="n0")(make_state(), make_params().drop_vars("n0"))


# ------------------------------------------------------------------------------ Identity
def test_identity():
    state = make_state()
    sm = Identity("sm", layer=0)(state)
    assert sm.name == "sm" and sm.dims == ("member", "lat", "lon") and "layer" not in sm.coords
    xr.testing.assert_equal(sm, state.sm.isel(layer=0).drop_vars(["layer", "depth_bottom", "dz"]))
    swe = Identity("swe")(state, None)
    assert swe.attrs["units"] == "kg m-2" and Identity("swe").variables == ("swe",)
    with pytest.raises(DimensionError):
        Identity("sm")(state)
    with pytest.raises(DimensionError):
        Identity("swe", layer=0)(state)
    with pytest.raises(ParameterRangeError):
        Identity("sm", layer=7)(state)
    with pytest.raises(ObservationError, match="snow_depth"):
        Identity("snow_depth")(state)


# ------------------------------------------------------------------------------ accessor
def test_observe_accessor_is_lazy_and_equals_call():
    op = TauOmega.smap(pol="v")
    ens, params = make_state(chunks=True), make_params(chunks=True)
    with raise_if_dask_computes():
        via_accessor = ens.ldas.observe(op, params)
        via_function = observe(ens, op, params)
    xr.testing.assert_allclose(via_accessor.compute(), op(make_state(), make_params()))
    xr.testing.assert_allclose(via_function.compute(), via_accessor.compute())
    assert "observe" in via_accessor.attrs["history"]
    with pytest.raises(TypeError):
        observe(ens, "tau-omega", params)
