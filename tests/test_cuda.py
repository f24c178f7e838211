"""GPU path (issue 9): CUDA kernels == CPU kernels, dispatch by block array type.

Without a GPU the ``cuda.jit`` kernels run on numba's CUDA simulator. The simulator must
be switched on before ``numba.cuda`` is first imported, so its checks run in one
subprocess started with ``NUMBA_ENABLE_CUDASIM=1`` (:func:`_simulator_results`, shared
by the tests through a module fixture; robust under ``pytest -n``). Sizes are small
(2 members x 6 cells for the model, 2 x 3 pixels for the filters): the simulator runs
one Python thread per GPU thread.

The simulator runs Python, so it cannot tell whether the kernels compile for the real
target: :func:`test_kernels_compile_to_ptx` compiles them to PTX (sm_90) with NVVM when
the CUDA toolkit is found, no GPU needed. The tests on a real GPU (CuPy-backed xarray
objects through ``xldas.compute.to_gpu``) skip with the reason when no device is present.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

FILTER_CASES = [
    ("enkf", {"inflation": 1.1}),
    ("enkf", {"rtps": 0.5, "centred": False}),
    ("etkf", {}),
    ("etkf", {"inflation": 1.05, "rtpp": 0.3, "gross_error": 2.0}),
]


# --------------------------------------------------------- simulator (subprocess)
def _filter_case(m, seed=0):
    rng = np.random.default_rng(seed + m)
    P0, P1, N, n = 2, 3, 5, 4
    E = rng.normal(size=(P0, P1, N, n))
    HE = E[..., [k % n for k in range(m)]] * 1.3 + rng.normal(scale=0.1, size=(P0, P1, N, m))
    y = rng.normal(size=(P0, P1, m))
    y[0, 0, :] = np.nan  # an unobserved pixel keeps its forecast
    y[1, 2, 0] = np.nan
    R = np.full((P0, P1, m), 0.3)
    pix = (np.arange(P0 * P1, dtype=np.int64) * 7919).reshape(P0, P1)
    return E, HE, y, R, pix


def _rel(got, ref) -> float:
    """Largest difference relative to the largest magnitude of the variable."""
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300))


def _simulator_results(path: str) -> None:
    """Run every simulator check, write {name: value} as JSON to ``path``."""
    warnings.simplefilter("ignore")  # Philox's int64 products wrap in NumPy scalars
    from numba import cuda

    from tests.test_models import column_case
    from xldas._cuda import is_device_array
    from xldas.errors import FilterError, ObservationError
    from xldas.filters import get_filter
    from xldas.filters._cuda import ensemble_block
    from xldas.filters.core import _ensemble_block
    from xldas.models._kernels import land_column
    from xldas.models.land import _land_block

    assert cuda.jit.__module__.startswith("numba.cuda.simulator")
    res = {}
    for dtype in (np.float32, np.float64):  # float64 last: also used for the grid case
        f, s, p, dt = column_case(n=6, nt=5, seed=3, dtype=dtype)
        f = [x[None] for x in f]  # shared forcing (1, cell, t)
        s = [np.stack([x, x * 0.97 if x.ndim == 2 else x + 0.5]).astype(dtype) for x in s]
        p = [x if i == 8 else x[None] for i, x in enumerate(p)]  # dz stays (layer,)
        ref = land_column(*f, *s, *p, dt, 2.0, target="cpu")
        dev = [cuda.to_device(np.ascontiguousarray(x)) for x in (*f, *s)]
        got = _land_block(*dev, *p, dt, 2.0)  # mixed device/host arguments
        name = np.dtype(dtype).name
        res[f"land_{name}_device"] = all(is_device_array(g) for g in got)
        res[f"land_{name}_dtypes"] = [g.dtype.name for g in got] == [r.dtype.name for r in ref]
        for k, g, r in zip(("sm", "ts", "swe", "cw", "et", "ro", "dr", "sn", "gm"), got, ref):
            res[f"land_{name}_{k}"] = _rel(g.copy_to_host(), r)
    # three loop dims (member, y, x): the 6 cells as a 2 x 3 grid
    grid = [
        x if i == 17 else x.reshape(*x.shape[:1], 2, 3, *x.shape[2:])
        for i, x in enumerate((*f, *s, *p))
    ]
    ref = land_column(*grid, dt, 2.0, target="cpu")
    got = _land_block(*[cuda.to_device(np.ascontiguousarray(x)) for x in grid], dt, 2.0)
    res["land_grid"] = max(_rel(g.copy_to_host(), r) for g, r in zip(got, ref))
    for m in (1, 3, 7):  # 7 > N: more observations than members
        E, HE, y, R, pix = _filter_case(m)
        for i, (method, kw) in enumerate(FILTER_CASES):
            filt = get_filter(method, **kw)
            ref = _ensemble_block(E, HE, y, R, pix, filt=filt, seed=42, cycle=3)
            dev = [cuda.to_device(E), cuda.to_device(HE), y, R, pix]
            got = _ensemble_block(*dev, filt=filt, seed=42, cycle=3)
            res[f"{method}{i}_m{m}"] = _rel(got.copy_to_host(), ref)
            res[f"{method}{i}_m{m}_unobserved_kept"] = bool(
                np.array_equal(got.copy_to_host()[0, 0], E[0, 0])
            )
    E, HE, y, R, pix = _filter_case(2)
    R[1, 1, 0] = -1.0
    try:
        ensemble_block(cuda.to_device(E), HE, y, R, pix, filt=get_filter("etkf"), seed=1, cycle=0)
        res["bad_variance"] = "no error"
    except ObservationError as err:
        res["bad_variance"] = str(err)
    try:
        ensemble_block(cuda.to_device(E), HE, y, R, pix, filt=get_filter("pf"), seed=1, cycle=0)
        res["pf"] = "no error"
    except FilterError as err:
        res["pf"] = str(err)
    tmp = Path(path).with_suffix(".part")
    tmp.write_text(json.dumps(res))
    tmp.replace(path)  # atomic: waiting workers never read a partial file


def _run_simulator(out: Path) -> None:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(REPO)}
    code = f"from tests.test_cuda import _simulator_results; _simulator_results({str(out)!r})"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        out.with_suffix(".err").write_text(proc.stderr[-4000:] or f"exit {proc.returncode}")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """Results of :func:`_simulator_results`, computed once per test session.

    Under pytest-xdist the first worker to get here runs the subprocess (an exclusive
    lock file in the session's shared temporary directory); the others wait for its
    results instead of running the simulator again.
    """
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    root = tmp_path_factory.getbasetemp()
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run:  # workers share the parent of their base temporary directories
        root = root.parent
    out = root / f"cudasim-{run or 'local'}.json"
    try:
        os.close(os.open(out.with_suffix(".lock"), os.O_CREAT | os.O_EXCL))
        owner = True
    except FileExistsError:
        owner = False
    if owner:
        _run_simulator(out)
    deadline = time.monotonic() + 900
    while not out.exists() and not out.with_suffix(".err").exists():
        if time.monotonic() > deadline:
            pytest.fail("the CUDA simulator subprocess gave no result in 15 minutes")
        time.sleep(0.5)
    if out.with_suffix(".err").exists():
        pytest.fail("CUDA simulator checks failed:\n" + out.with_suffix(".err").read_text())
    return json.loads(out.read_text())


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 1e-6)])
def test_land_step_cuda_kernel_equals_cpu(sim, dtype, tol):
    assert sim[f"land_{dtype}_device"] and sim[f"land_{dtype}_dtypes"]
    errs = {k: v for k, v in sim.items() if k.startswith(f"land_{dtype}_") and isinstance(v, float)}
    assert len(errs) == 9
    assert max(errs.values()) <= tol, errs


def test_land_step_cuda_kernel_three_loop_dims(sim):
    assert sim["land_grid"] <= 1e-10  # float64


@pytest.mark.parametrize("m", [1, 3, 7])
def test_enkf_etkf_cuda_kernels_equal_cpu(sim, m):
    for i, (method, _kw) in enumerate(FILTER_CASES):
        assert sim[f"{method}{i}_m{m}"] <= 1e-10, (method, _kw, sim[f"{method}{i}_m{m}"])
        assert sim[f"{method}{i}_m{m}_unobserved_kept"]


def test_cuda_analysis_errors(sim):
    assert "not positive" in sim["bad_variance"]
    assert "PF has no GPU analysis" in sim["pf"] and "to_backend" in sim["pf"]


# ------------------------------------------------------------ no simulator needed
def test_dispatch_is_by_array_type():
    from xldas._cuda import is_device_array
    from xldas.compute import to_gpu

    assert not is_device_array(np.zeros(2)) and not is_device_array(3.0)

    class FakeCupy:  # anything exposing the CUDA array interface is a device array
        @property
        def __cuda_array_interface__(self):
            return {"shape": (1,), "typestr": "<f8", "data": (0, False)}

    assert is_device_array(FakeCupy())
    assert callable(to_gpu)


def test_kernels_compile_to_ptx(monkeypatch):
    """The kernels compile for the real CUDA target (sm_90), checked without a GPU."""
    cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    if cuda.jit.__module__.startswith("numba.cuda.simulator"):
        pytest.skip("the CUDA simulator is on in this process")
    if cuda.is_available():
        pytest.skip("a GPU is present: the real-GPU tests compile and run the kernels")
    import types

    from numba import boolean, float32, float64, int8, int64

    try:
        import numba.cuda.dispatcher as dispatcher

        # device functions ask the current device for its compute capability: pretend
        monkeypatch.setattr(
            dispatcher,
            "get_current_device",
            lambda: types.SimpleNamespace(compute_capability=(9, 0)),
        )
        cuda.compile_ptx(lambda a: None, (float64[:],), cc=(9, 0))
    except Exception as err:  # no NVVM/NVRTC (CUDA toolkit) on this machine
        pytest.skip(f"cannot compile PTX here (no CUDA toolkit found): {type(err).__name__}")
    from xldas.filters import _cuda as F
    from xldas.models import _cuda as M

    def a(ty, nd):
        return ty[(slice(None),) * nd]

    land = M._kernel()
    for st in (float64, float32):
        sig = (
            [a(st, 4)] * 7
            + [a(st, 3)] * 2
            + [a(float64, 4)] * 9
            + [a(float64, 3)] * 5
            + [float64, float64]
            + [a(st, 4)] * 2
            + [a(st, 3)] * 2
            + [a(float64, 4)] * 5
            + [a(float64, 3)]
        )
        ptx, _ = cuda.compile_ptx(land.py_func, tuple(sig), cc=(9, 0))
        assert ".entry" in ptx
    enkf, etkf = F._kernels()
    head = (a(float64, 5), a(float64, 5), a(float64, 4), a(float64, 4))
    work = (a(float64, 5), a(int8, 3), a(float64, 2), a(float64, 2))
    sig = (*head, a(int64, 3), int64, int64, float64, boolean, float64, float64, float64)
    sig += (*work, a(float64, 2), *(a(float64, 3),) * 6)
    assert ".entry" in cuda.compile_ptx(enkf.py_func, sig, cc=(9, 0))[0]
    sig = (*head, float64, float64, float64, float64, *work, *(a(float64, 3),) * 6)
    assert ".entry" in cuda.compile_ptx(etkf.py_func, sig, cc=(9, 0))[0]


# -------------------------------------------------------------------- real GPU
def _gpu_or_skip():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("the CUDA simulator is on: no real GPU test")
    try:
        from numba import cuda

        present = cuda.is_available()
    except Exception:
        present = False
    if not present:
        pytest.skip("no CUDA GPU on this machine (numba.cuda.is_available() is False)")
    return pytest.importorskip("cupy", reason="CuPy is not installed (pip install 'xldas[gpu]')")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_step_on_gpu_equals_cpu(dtype):
    cupy = _gpu_or_skip()
    from tests.test_models import make_domain
    from xldas.compute import array_backend, to_gpu
    from xldas.models import step

    s, f, p = make_domain(ny=3, nx=4, nt=12)
    s = s.astype(dtype)
    cpu = step(s, f, p)
    gpu = step(to_gpu(s.chunk()), to_gpu(f.chunk()), p)
    assert array_backend(gpu) == "cupy"
    gpu = gpu.compute()
    tol = 1e-10 if dtype == np.float64 else 1e-6
    for v in ("sm", "tsoil", "swe", "canopy_water"):
        assert isinstance(gpu[v].data, cupy.ndarray)
        np.testing.assert_allclose(cupy.asnumpy(gpu[v].data), cpu[v].values, rtol=tol, atol=tol)


@pytest.mark.parametrize("method", ["enkf", "etkf"])
def test_assimilate_on_gpu_equals_cpu(method):
    cupy = _gpu_or_skip()
    import xarray as xr

    from xldas.compute import to_gpu

    rng = np.random.default_rng(0)
    sm = xr.DataArray(
        0.25 + 0.03 * rng.standard_normal((20, 2, 3, 4)),
        dims=("member", "layer", "lat", "lon"),
        attrs={"units": "m3 m-3"},
    )
    ens = xr.Dataset(
        {"sm": sm}, coords={"lat": [38.0, 38.1, 38.2], "lon": [100.0, 100.1, 100.2, 100.3]}
    )
    obs = xr.Dataset({"sm": xr.full_like(sm.isel(member=0, drop=True), 0.3)})
    obs["sm"].attrs.update(units="m3 m-3", error_std=0.02)

    def op(e, p):  # two observations per pixel (both layers): the general path
        return e["sm"]

    cpu = ens.ldas.assimilate(obs, op, None, method=method, seed=3)
    gpu = to_gpu(ens.chunk()).ldas.assimilate(obs, op, None, method=method, seed=3).compute()
    assert isinstance(gpu["sm"].data, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(gpu["sm"].data), cpu["sm"].values, rtol=1e-10)
