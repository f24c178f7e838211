"""CUDA form of the land-model step: one GPU thread per (member, cell) column.

:func:`land_step` takes the same arguments as the CPU gufunc
:func:`xldas.models._kernels.land_column` (the way :func:`xldas.models.step` passes them
through :func:`~xldas._xr.apply_kernel`: loop dimensions first, core dimensions ``time``
/``layer`` last, NumPy broadcasting between arguments) and returns the same nine outputs,
as device arrays of the input's kind (CuPy in, CuPy out). The physics is not written
twice: the kernel calls :func:`xldas.models._kernels.column_physics`, the allocation-free
body of the CPU kernel, compiled as a CUDA device function (its scalar helpers from
:mod:`xldas.physics._et_kernels` are compiled for the device along with it). Its scratch
space is a (9, layer, column) device work array, column innermost so that neighbouring
threads touch neighbouring words.

:func:`xldas.models.step` dispatches here per block when the state/forcing chunks are
device arrays (:func:`xldas._cuda.is_device_array`, i.e. CuPy chunks behind
``xldas.compute.to_gpu(ds)``); NumPy chunks use the CPU gufunc. Results equal the CPU
path to round-off: libdevice's ``exp``/``log`` and NVVM's fused multiply-adds differ from
the CPU's in the last bit, and the model is well conditioned (a 1-ulp change of any input
moves the outputs by ~1e-15 relative), so float64 states agree to far better than 1e-10
and float32 states to their last bit or two (``tests/test_cuda.py``).

Examples
--------
Run under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) or on a GPU:

>>> from numba import cuda  # doctest: +SKIP
>>> outs = land_step(*[cuda.to_device(a) for a in args])  # doctest: +SKIP
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from xldas._cuda import device_function, device_ops, launch, loop_ndim, numba_cuda, pad_loop
from xldas.models._kernels import column_physics

# a module global (the simulator swaps the ``cuda`` module in kernels' globals); this
# module is imported only when a block function meets device arrays
cuda = numba_cuda()

__all__ = ["land_step"]

#: core dimensions (0: none, 1: time or layer) of the 25 arguments of ``land_column``
_CORE = (1,) * 5 + (1, 1, 0, 0) + (1,) * 9 + (0,) * 5
_LOOP_RANK = 3


@lru_cache(maxsize=1)
def _kernel():
    column = device_function(column_physics)

    @cuda.jit(device=True)
    def at(n, i):
        return i if n > 1 else 0

    @cuda.jit
    def land_kernel(
        precip,
        tair,
        psurf,
        swdown,
        lwdown,
        sm0,
        ts0,
        swe0,
        cw0,
        theta_s,
        theta_r,
        theta_fc,
        theta_wp,
        b,
        ksat,
        psi_sat,
        root,
        dz,
        lai,
        ddf_snow,
        ddf_ice,
        fglac,
        albedo,
        dt,
        nsub,
        sm_out,
        ts_out,
        swe_out,
        cw_out,
        et,
        runoff,
        drainage,
        snowmelt,
        glacier_melt,
        work,
    ):
        p = cuda.grid(1)
        n0, n1, n2 = swe_out.shape
        if p >= n0 * n1 * n2:
            return
        i0 = p // (n1 * n2)
        r = p - i0 * (n1 * n2)
        i1 = r // n2
        i2 = r - i1 * n2
        s = precip.shape
        j0, j1, j2 = at(s[0], i0), at(s[1], i1), at(s[2], i2)
        f_p, f_t, f_ps, f_sw, f_lw = (
            precip[j0, j1, j2],
            tair[at(tair.shape[0], i0), at(tair.shape[1], i1), at(tair.shape[2], i2)],
            psurf[at(psurf.shape[0], i0), at(psurf.shape[1], i1), at(psurf.shape[2], i2)],
            swdown[at(swdown.shape[0], i0), at(swdown.shape[1], i1), at(swdown.shape[2], i2)],
            lwdown[at(lwdown.shape[0], i0), at(lwdown.shape[1], i1), at(lwdown.shape[2], i2)],
        )
        column(
            f_p,
            f_t,
            f_ps,
            f_sw,
            f_lw,
            sm0[at(sm0.shape[0], i0), at(sm0.shape[1], i1), at(sm0.shape[2], i2)],
            ts0[at(ts0.shape[0], i0), at(ts0.shape[1], i1), at(ts0.shape[2], i2)],
            swe0[at(swe0.shape[0], i0), at(swe0.shape[1], i1), at(swe0.shape[2], i2)],
            cw0[at(cw0.shape[0], i0), at(cw0.shape[1], i1), at(cw0.shape[2], i2)],
            theta_s[at(theta_s.shape[0], i0), at(theta_s.shape[1], i1), at(theta_s.shape[2], i2)],
            theta_r[at(theta_r.shape[0], i0), at(theta_r.shape[1], i1), at(theta_r.shape[2], i2)],
            theta_fc[
                at(theta_fc.shape[0], i0), at(theta_fc.shape[1], i1), at(theta_fc.shape[2], i2)
            ],
            theta_wp[
                at(theta_wp.shape[0], i0), at(theta_wp.shape[1], i1), at(theta_wp.shape[2], i2)
            ],
            b[at(b.shape[0], i0), at(b.shape[1], i1), at(b.shape[2], i2)],
            ksat[at(ksat.shape[0], i0), at(ksat.shape[1], i1), at(ksat.shape[2], i2)],
            psi_sat[at(psi_sat.shape[0], i0), at(psi_sat.shape[1], i1), at(psi_sat.shape[2], i2)],
            root[at(root.shape[0], i0), at(root.shape[1], i1), at(root.shape[2], i2)],
            dz[at(dz.shape[0], i0), at(dz.shape[1], i1), at(dz.shape[2], i2)],
            lai[at(lai.shape[0], i0), at(lai.shape[1], i1), at(lai.shape[2], i2)],
            ddf_snow[
                at(ddf_snow.shape[0], i0), at(ddf_snow.shape[1], i1), at(ddf_snow.shape[2], i2)
            ],
            ddf_ice[at(ddf_ice.shape[0], i0), at(ddf_ice.shape[1], i1), at(ddf_ice.shape[2], i2)],
            fglac[at(fglac.shape[0], i0), at(fglac.shape[1], i1), at(fglac.shape[2], i2)],
            albedo[at(albedo.shape[0], i0), at(albedo.shape[1], i1), at(albedo.shape[2], i2)],
            dt,
            nsub,
            sm_out[i0, i1, i2],
            ts_out[i0, i1, i2],
            swe_out[i0, i1, i2 : i2 + 1],
            cw_out[i0, i1, i2 : i2 + 1],
            et[i0, i1, i2],
            runoff[i0, i1, i2],
            drainage[i0, i1, i2],
            snowmelt[i0, i1, i2],
            glacier_melt[i0, i1, i2],
            work[:, :, p],
        )

    return land_kernel


def land_step(*args):
    """GPU form of :func:`~xldas.models._kernels.land_column`: same 25 arguments, same outputs.

    Parameters
    ----------
    *args : forcing (..., t) ×5, ``sm0``/``ts0`` (..., l), ``swe0``/``cw0`` (...), layer
        parameters (..., l) ×8, ``dz`` (l), cell parameters (...) ×5, ``dt`` (s), ``nsub``;
        device arrays (CuPy, numba, simulator) or host arrays, which are copied to the
        device of the first device argument. ``...`` are at most 3 loop dimensions that
        broadcast against each other (e.g. member, y, x).

    Returns
    -------
    tuple of device arrays
        ``(sm, ts, swe, cw, et, runoff, drainage, snowmelt, glacier_melt)`` with the loop
        shape in front: states in the dtype of ``sm0`` (float32 or float64), fluxes
        (kg m-2 s-1) in float64.
    """
    if len(args) != len(_CORE) + 2:
        raise TypeError(f"land_step takes {len(_CORE) + 2} arguments; got {len(args)}")
    arrays, (dt, nsub) = args[: len(_CORE)], args[len(_CORE) :]
    ops = device_ops(*arrays)
    state_dtype = np.dtype(np.float32 if arrays[5].dtype == np.float32 else np.float64)
    dtypes = [state_dtype] * 9 + [np.float64] * 14
    padded = [pad_loop(a, ops, c, _LOOP_RANK, dt_) for a, c, dt_ in zip(arrays, _CORE, dtypes)]
    shapes = [tuple(a.shape) for a in padded]  # (the simulator's shapes index forwards only)
    loop = np.broadcast_shapes(*(sh[:_LOOP_RANK] for sh in shapes))
    nt = shapes[0][-1]
    nl = shapes[5][-1]
    n = int(np.prod(loop))
    outs = (
        ops.empty((*loop, nl), state_dtype),
        ops.empty((*loop, nl), state_dtype),
        ops.empty(loop, state_dtype),
        ops.empty(loop, state_dtype),
        *(ops.empty((*loop, nt), np.float64) for _ in range(5)),
    )
    if n:
        work = ops.empty((9, nl, n), np.float64)
        launch(_kernel(), n, *padded, float(dt), float(nsub), *outs, work)
    lead = max(loop_ndim(a, c) for a, c in zip(arrays, _CORE))
    drop = _LOOP_RANK - lead
    return tuple(o.reshape(o.shape[drop:]) if drop else o for o in outs)
