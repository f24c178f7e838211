"""Ensemble generation: reproducibility whatever the chunking, restart, statistics, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tests.helpers import raise_if_dask_computes
from tests.test_models import make_domain
from xldas.errors import DimensionError, ParameterRangeError
from xldas.models import ForcingPerturbation, correlated_field, perturb, step, water_storage
from xldas.models.perturb import _key

FP = ForcingPerturbation(length_scale_km=30.0, time_scale_h=6.0)


def test_correlated_field_is_position_keyed():
    key = _key(7, 2, 123)
    y = np.linspace(30, 32, 41)
    x = np.linspace(95, 99, 61)
    full = correlated_field(y, x, 0.3, key, 3, 2)
    part = correlated_field(y[10:25], x[33:50], 0.3, key, 3, 2)
    np.testing.assert_array_equal(full[:, :, 10:25, 33:50], part)
    other = correlated_field(y, x, 0.3, _key(8, 2, 123), 3, 2)
    assert not np.allclose(full, other)


def test_correlated_field_statistics():
    key = _key(1, 2, 5)
    y = np.arange(0, 200) * 0.05
    x = np.arange(0, 200) * 0.05
    f = correlated_field(y, x, 1.0, key, 4, 1)[:, 0]
    assert abs(f.mean()) < 0.1
    assert f.std() == pytest.approx(1.0, abs=0.08)
    # correlation falls with distance: high at 1 cell (0.05), ~0 at 2 length scales
    c1 = np.corrcoef(f[:, :, :-1].ravel(), f[:, :, 1:].ravel())[0, 1]
    c40 = np.corrcoef(f[:, :, :-40].ravel(), f[:, :, 40:].ravel())[0, 1]
    assert c1 > 0.9 and abs(c40) < 0.1


def test_perturb_same_whatever_the_chunking():
    s, f, p = make_domain(ny=6, nx=8, nt=12)
    kw = {
        "forcing_perturbation": FP,
        "params": p,
        "state_perturbation": {"sm": 0.02, "swe": 0.2},
        "parameter_perturbation": {"ksat": 0.5},
        "seed": 42,
    }
    a = perturb(s, 5, **kw)
    with raise_if_dask_computes():
        b = perturb(s.chunk(lat=4, lon=3), 5, **{**kw, "params": p.chunk(lat=2, lon=5)})
        sb, fb = step(b, f.chunk(lat=3, lon=4), p.chunk(lat=2), fluxes=True)
    assert b.pert_precip.chunks[0] == (5,)
    # the AR(1) states are generated per spatial chunk of the state (an index coordinate
    # is never chunked: generated from the grid's indexes, they were one domain-wide
    # block, which each chunk's forecast then had to read whole)
    assert b.pert_precip.chunks[1:] == s.sm.chunk(lat=4, lon=3).chunks[-2:] == ((4, 2), (3, 3, 2))
    xr.testing.assert_identical(a.drop_attrs(), b.compute().drop_attrs())
    sa, fa = step(a, f, p, fluxes=True)
    xr.testing.assert_allclose(sa, sb.compute(), rtol=1e-12)
    xr.testing.assert_allclose(fa, fb.compute(), rtol=1e-12)
    assert set(sa.data_vars) >= {"pert_precip", "pert_swdown", "pert_tair", "ksat"}
    assert ((a.sm >= p.theta_r) & (a.sm <= p.theta_s)).all()
    # members differ, and the water balance closes member by member with the perturbed precip
    assert float(fa.precip.std("member").mean()) > 0
    bal = (fa.precip + fa.glacier_melt - fa.et - fa.runoff - fa.drainage).sum("time") * 3600.0
    np.testing.assert_allclose(bal, water_storage(sa) - water_storage(a), atol=1e-9)


def test_same_seed_same_ensemble_and_restart():
    s, f, p = make_domain(ny=3, nx=4, nt=24)
    e1 = perturb(s, 4, forcing_perturbation=FP, seed=3)
    e2 = s.ldas.perturb(4, forcing_perturbation=FP, seed=3)
    xr.testing.assert_identical(e1.drop_attrs(), e2.drop_attrs())
    e3 = perturb(s, 4, forcing_perturbation=FP, seed=4)
    assert not np.allclose(e1.pert_tair, e3.pert_tair)
    # one 24 h run == two 12 h runs (AR(1) states carried, noise keyed by time)
    full, ffull = step(e1, f, p, fluxes=True)
    a, fa = step(e1, f.isel(time=slice(0, 12)), p, fluxes=True)
    b, fb = step(a, f.isel(time=slice(12, None)), p, fluxes=True)
    xr.testing.assert_allclose(full, b, rtol=1e-12)
    xr.testing.assert_allclose(ffull.precip, xr.concat([fa.precip, fb.precip], "time"), rtol=1e-12)


def test_forcing_perturbation_statistics():
    s, f, p = make_domain(ny=2, nx=2, nt=200, freq="h")
    f = f.assign(precip=f.precip * 0 + 1e-4, swdown=f.swdown * 0 + 300.0, tair=f.tair * 0 + 280.0)
    fp = ForcingPerturbation(time_scale_h=3.0, length_scale_km=50.0)
    ens = perturb(s, 200, forcing_perturbation=fp, seed=11)
    _, fx = step(ens, f, p, fluxes=True, validate=False)
    assert float(fx.precip.mean()) == pytest.approx(1e-4, rel=0.05)  # mean-one log-normal
    from xldas.models.perturb import perturb_forcing

    pf, new = perturb_forcing(f, ens, fp, 11, 3600.0)
    x_p = np.log(pf.precip / 1e-4).values / 0.5 + 0.25
    x_s = np.log(pf.swdown / 300.0).values / 0.3 + 0.15
    x_t = (pf.tair - 280.0).values / 1.0
    cc = np.corrcoef([x_p.ravel(), x_s.ravel(), x_t.ravel()])
    np.testing.assert_allclose(cc, np.asarray(fp.correlation), atol=0.05)
    phi = np.exp(-1.0 / 3.0)
    lag1 = np.corrcoef(x_t[:, :-1].ravel(), x_t[:, 1:].ravel())[0, 1]
    assert lag1 == pytest.approx(phi, abs=0.03)
    np.testing.assert_allclose(new["pert_tair"].values, x_t[:, -1], atol=1e-12)


def test_perturb_errors():
    s, f, p = make_domain(ny=2, nx=2, nt=2)
    with pytest.raises(DimensionError):
        perturb(s.expand_dims(member=2), 3)
    with pytest.raises(ParameterRangeError):
        perturb(s, 0)
    with pytest.raises(ParameterRangeError, match="params"):
        perturb(s, 2, parameter_perturbation={"ksat": 0.1})
    with pytest.raises(ParameterRangeError, match="correlation"):
        ForcingPerturbation(correlation=((1, 2, 0), (2, 1, 0), (0, 0, 1)))
    with pytest.raises(DimensionError, match="member"):
        step(s, f, p, perturbation=FP)
