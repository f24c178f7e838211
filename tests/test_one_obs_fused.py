"""The single-pass one-observation EnKF/ETKF (weights in cache, all variables per tile).

It must give the analysis of the two-kernel path (``one_obs_weights`` +
``apply_weights``) and of their NumPy references, bounds included, whatever the
block, the tiling, the layout of the predicted observations or the store mode.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tests.helpers import raise_if_dask_computes
from xldas.filters import ETKF, EnKF, assimilate
from xldas.filters import _kernels as K

MODES = [K.MODE_ETKF, K.MODE_ENKF, K.MODE_ENKF_UNCENTRED]


def _case(N=13, L=3, P=2 * K._TILE + 77, seed=0):
    """State of two variables (L levels and 1), members first; obs of level 0."""
    rng = np.random.default_rng(seed)
    sm = 0.25 + 0.06 * rng.standard_normal((N, L, P))
    sm[:, :, 5] = np.nan  # a masked pixel stays NaN
    sm[3, 1, 8] = np.nan  # one NaN member: that element of the pixel is NaN
    swe = 0.5 * rng.standard_normal((N, 1, P))  # many values below the bound 0
    y = 0.3 + 0.02 * rng.standard_normal(P)
    y[::7] = np.nan  # missing
    y[11] = 5.0  # rejected by the gross-error check
    R = np.full(P, 0.02**2)
    pix = (np.arange(P, dtype=np.int64) << 32) + 99
    lo = [np.full(P, 0.2), 0.0]  # per pixel (all levels), a number
    hi = [np.tile(np.array([0.33, 0.35, 0.4])[:L, None], (1, P)), np.inf]  # per level
    return sm, swe, y, R, pix, lo, hi


@pytest.mark.parametrize("mode", MODES)
def test_single_pass_equals_two_kernels_and_references(mode):
    sm, swe, y, R, pix, lo, hi = _case()
    N, _, P = sm.shape
    args = (1.04, 3.0, 7, 2, 11, mode)
    HE = sm[:, 0]  # a strided layer of the state, read in place
    outs = [
        K.one_obs_update(HE, y, R, pix, [sm, swe], lo, hi, *args, stream=s) for s in (False, True)
    ]
    # the same numbers from a contiguous copy of the predicted observations
    outs.append(K.one_obs_update(HE.copy(), y, R, pix, [sm, swe], lo, hi, *args))
    bufs = [np.full_like(sm, 7.0), np.full_like(swe, 7.0)]  # analyses into given arrays
    outs.append(K.one_obs_update(HE, y, R, pix, [sm, swe], lo, hi, *args, out=bufs))
    assert all(np.shares_memory(o, b) for o, b in zip(outs[-1], bufs, strict=True))
    # in place: the analysis overwrites the forecast it reads (predicted observations
    # included: a view of the state's first level), one variable in place, one new
    own = [sm.copy(), swe.copy()]
    outs.append(K.one_obs_update(own[0][:, 0], y, R, pix, own, lo, hi, *args, out=[own[0], None]))
    assert np.shares_memory(outs[-1][0], own[0]) and not np.shares_memory(outs[-1][1], own[1])
    np.testing.assert_array_equal(own[1], swe)  # the variable not given as out is untouched
    flat = np.concatenate([sm.ravel(), [0.0]])  # an out that overlaps without being E
    shifted = [flat[:-1].reshape(sm.shape), flat[1:].reshape(sm.shape)]
    with pytest.raises(ValueError, match="C-contiguous"):  # not silently into a copy
        K.one_obs_update(HE, y, R, pix, [sm, swe], lo, hi, *args, out=[bufs[0][:, ::-1], None])
    with pytest.raises(ValueError, match="overlaps"):
        K.one_obs_update(HE, y, R, pix, [shifted[0], swe], lo, hi, *args, out=[shifted[1], None])
    # with the diagnostics of the same pass, in place or not
    own = [sm.copy(), swe.copy()]
    with_diag = [
        K.one_obs_update(HE, y, R, pix, [sm, swe], lo, hi, *args, diagnostics=True),
        K.one_obs_update(own[0][:, 0], y, R, pix, own, lo, hi, *args, out=own, diagnostics=True),
    ]
    outs += [o for o, _ in with_diag]
    u, v, a, *screening = K.one_obs_weights(HE, y, R, pix, *args)
    full = [
        K.apply_weights(
            e.reshape(N, -1),
            u,
            v,
            a,
            0.0,
            0.0,
            np.broadcast_to(b0, (e.shape[1], P)).ravel() if np.ndim(b0) else b0,
            np.ravel(b1) if np.ndim(b1) else b1,
        )
        for e, b0, b1 in zip((sm, swe), lo, hi, strict=True)
    ]
    two = [f[0] for f in full]
    for _, dg in with_diag:  # bitwise the diagnostics of the two kernels
        keys = ("innovation", "expected", "used", "rejected")
        for key, want in zip(keys, screening, strict=True):
            np.testing.assert_array_equal(dg[key], want)
        for k, f in enumerate(full):
            for key, want in zip(("spread_prior", "spread_posterior", "bound_adjustment"), f[1:]):
                np.testing.assert_array_equal(dg[key][k].ravel(), want)
    assert np.nanmax(with_diag[0][1]["bound_adjustment"][1]) > 0  # the bound 0 on swe acted
    ref = K.one_obs_update_reference(HE, y, R, pix, [sm, swe], lo, hi, *args)
    for out in outs:
        for o, t, r in zip(out, two, ref, strict=True):
            np.testing.assert_array_equal(o.reshape(N, -1), t)  # same arithmetic, same order
            np.testing.assert_allclose(o, r, rtol=0, atol=1e-12)
    sm_a, swe_a = outs[0]
    assert np.all(np.isnan(sm_a[:, :, 5])) and np.all(np.isnan(sm_a[:, 1, 8]))
    ok = np.isfinite(sm_a)
    assert np.all(sm_a[ok] >= 0.2) and np.all(sm_a[:, 0][ok[:, 0]] <= 0.33)
    assert swe_a.min() == 0.0 and np.any(swe < 0)  # clipped to the bound
    # pixels without a used observation keep their forecast (clipped to the bounds)
    for p in (0, 7, 11):
        np.testing.assert_array_equal(swe_a[:, 0, p], np.maximum(swe[:, 0, p], 0.0))
    assert not np.allclose(sm_a[:, 0, 1], sm[:, 0, 1])  # an observed pixel moved


def test_single_pass_is_block_independent():
    """Bitwise the same analysis whatever block (and tile) a pixel falls in."""
    sm, swe, y, R, pix, lo, hi = _case(N=8, L=2, P=700, seed=4)
    args = (1.0, np.inf, 3, 1, 11, K.MODE_ENKF)
    whole = K.one_obs_update(sm[:, 0], y, R, pix, [sm, swe], lo, hi, *args)
    cut = 301
    parts = []
    for s in (np.s_[:cut], np.s_[cut:]):
        lo_s = [lo[0][s], lo[1]]
        hi_s = [hi[0][:, s], hi[1]]
        e = [np.ascontiguousarray(sm[..., s]), np.ascontiguousarray(swe[..., s])]
        parts.append(K.one_obs_update(e[0][:, 0], y[s], R[s], pix[s], e, lo_s, hi_s, *args))
    for k in range(2):
        np.testing.assert_array_equal(whole[k], np.concatenate([q[k] for q in parts], axis=-1))


def _dataset(N=12, ny=9, nx=70, seed=1):
    rng = np.random.default_rng(seed)
    coords = {"lat": 38.0 + 0.01 * np.arange(ny), "lon": 100.0 + 0.01 * np.arange(nx)}
    ens = xr.Dataset(
        {
            "sm": (
                ("member", "layer", "lat", "lon"),
                0.25 + 0.05 * rng.standard_normal((N, 3, ny, nx)),
                {"units": "m3 m-3"},
            ),
            "swe": (
                ("member", "lat", "lon"),
                rng.standard_normal((N, ny, nx)),
                {"units": "kg m-2"},
            ),
            "b": (("member", "lat", "lon"), 5 + rng.standard_normal((N, ny, nx)), {"units": "1"}),
        },
        coords={**coords, "layer": np.arange(3), "dz": ("layer", [0.05, 0.1, 0.3])},
    )
    params = xr.Dataset(
        {
            "theta_r": (("lat", "lon"), np.full((ny, nx), 0.2)),
            "theta_s": (("lat", "lon"), np.full((ny, nx), 0.33)),
        },
        coords=coords,
    )
    y = 0.3 + 0.02 * rng.standard_normal((ny, nx))
    y[rng.random((ny, nx)) < 0.25] = np.nan
    obs = xr.Dataset(
        {"sm": (("lat", "lon"), y, {"units": "m3 m-3", "error_std": 0.02})}, coords=coords
    )

    def top(e, p):
        return e["sm"].isel(layer=0, drop=True).rename("sm").assign_attrs(units="m3 m-3")

    top.variables = ("sm",)
    return ens, obs, top, params


def _nohist(ds):
    ds = ds.copy()
    ds.attrs.pop("history", None)  # time-stamped
    return ds


@pytest.mark.parametrize(
    "method", [EnKF(inflation=1.05), ETKF(gross_error=3.0), EnKF(centred=False)]
)
def test_assimilate_single_pass_equals_two_kernel_path_and_is_lazy(method, monkeypatch):
    """``assimilate`` runs the single pass, with or without diagnostics; the two-kernel
    path (``one_obs_weights`` + ``apply_weights``, kept for relaxation and float32) gives
    the same analysis and the same diagnostics, bounds included, on NumPy and (lazily)
    on Dask chunks."""
    import xldas.filters.core as core

    ens, obs, op, params = _dataset()
    calls = []
    single = core._one_obs_single_pass
    monkeypatch.setattr(
        core, "_one_obs_single_pass", lambda *a, **k: calls.append(1) or single(*a, **k)
    )
    fast = assimilate(ens, obs, op, params, method=method, seed=5, cycle=2)
    fast_d, diag = assimilate(
        ens, obs, op, params, method=method, seed=5, cycle=2, return_diagnostics=True
    )
    assert len(calls) == 2  # the single pass ran, diagnostics or not
    monkeypatch.setattr(core, "_one_obs_single_pass", lambda *a, **k: None)
    slow, slow_diag = assimilate(
        ens, obs, op, params, method=method, seed=5, cycle=2, return_diagnostics=True
    )
    for a in (fast, fast_d):
        xr.testing.assert_identical(_nohist(a), _nohist(slow))
    # per pixel and per element bitwise; the domain statistics are NumPy reductions,
    # whose summation order may depend on the alignment of the memory
    domain = ["innovation_mean", "innovation_std"]
    xr.testing.assert_identical(
        _nohist(diag).drop_vars(domain), _nohist(slow_diag).drop_vars(domain)
    )
    xr.testing.assert_allclose(diag[domain], slow_diag[domain], rtol=1e-13)
    assert {"spread_prior_sm", "spread_posterior_b", "bound_adjustment_swe"} <= set(diag)
    assert fast.sm.values.flags.c_contiguous and fast.sm.dims == ens.sm.dims
    assert float(fast.sm.min()) >= 0.2 and float(fast.sm.max()) <= 0.33
    assert float(fast.swe.min()) == 0.0 and float(ens.swe.min()) < 0
    monkeypatch.setattr(core, "_one_obs_single_pass", single)
    kw = {"method": method, "seed": 5, "cycle": 2, "return_diagnostics": True}
    with raise_if_dask_computes():
        lazy, lazy_diag = assimilate(ens.chunk(lat=4, lon=32), obs, op, params, **kw)
    assert lazy.sm.chunks == ens.chunk(lat=4, lon=32).sm.chunks
    xr.testing.assert_identical(_nohist(lazy.compute()), _nohist(fast))
    xr.testing.assert_identical(
        _nohist(lazy_diag.compute()).drop_vars(domain), _nohist(diag).drop_vars(domain)
    )


@pytest.mark.parametrize("method", [EnKF(inflation=1.05), ETKF(gross_error=3.0)])
def test_assimilate_overwrite_ensemble_writes_the_analysis_in_place(method):
    """``overwrite_ensemble=True``: bitwise the analysis of the default path, in the
    memory of the forecast (NumPy), diagnostics or not; dask ensembles are left
    untouched."""
    ens, obs, op, params = _dataset(seed=3)
    ref = assimilate(ens, obs, op, params, method=method, seed=5, cycle=2)
    work = ens.copy(deep=True)
    mem = {v: work[v].values for v in work.data_vars}
    out = assimilate(work, obs, op, params, method=method, seed=5, cycle=2, overwrite_ensemble=True)
    xr.testing.assert_identical(_nohist(out), _nohist(ref))
    for v in ens.data_vars:
        assert np.shares_memory(out[v].values, mem[v])
        np.testing.assert_array_equal(work[v].values, ref[v].values)  # the forecast is gone
    # with diagnostics: in place too, the prior spreads those of the forecast
    kw = {"method": method, "seed": 5, "cycle": 2, "return_diagnostics": True}
    _, ref_diag = assimilate(ens, obs, op, params, **kw)
    work = ens.copy(deep=True)
    out, diag = assimilate(work, obs, op, params, overwrite_ensemble=True, **kw)
    assert np.shares_memory(out["sm"].values, work["sm"].values)
    xr.testing.assert_identical(_nohist(out), _nohist(ref))
    domain = ["innovation_mean", "innovation_std"]
    xr.testing.assert_identical(
        _nohist(diag).drop_vars(domain), _nohist(ref_diag).drop_vars(domain)
    )
    # dask: new chunks, the ensemble untouched
    kept = ens.chunk(lat=4, lon=32)
    res = assimilate(kept, obs, op, params, method=method, seed=5, cycle=2, overwrite_ensemble=True)
    xr.testing.assert_identical(_nohist(res.compute()), _nohist(ref))
    xr.testing.assert_identical(kept.compute(), ens)


def test_assimilate_float32_and_relaxation_use_the_two_kernel_path(monkeypatch):
    import xldas.filters.core as core

    ens, obs, op, params = _dataset(seed=2)
    kernel = K.one_obs_update
    calls = []
    monkeypatch.setattr(K, "one_obs_update", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    a = assimilate(ens, obs, op, params, method=ETKF(rtpp=0.5), seed=1)
    b = assimilate(ens.assign(b=ens.b.astype("f4")), obs, op, params, method="etkf", seed=1)
    assert not calls and a.sm.dtype == np.float64 and b.b.dtype == np.float32
    c = assimilate(ens, obs, op, params, method="etkf", seed=1)
    assert calls
    np.testing.assert_allclose(b.sm.values, c.sm.values, atol=1e-12)
    assert core._one_obs_single_pass is not None
