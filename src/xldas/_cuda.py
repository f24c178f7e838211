"""numba-cuda plumbing shared by the GPU kernels of :mod:`xldas.models._cuda` and
:mod:`xldas.filters._cuda`.

The GPU path is chosen per block from the type of the arrays a block function receives
(:func:`is_device_array`): CuPy arrays (a dask array whose ``_meta`` is a CuPy array has
CuPy chunks), numba device arrays, or anything else exposing
``__cuda_array_interface__``. There is no global switch.

:func:`device_ops` gives the few array operations the block functions need (host→device
copy, allocation, a scalar reduction) for CuPy arrays or for numba device arrays. The
latter also covers numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), whose device
arrays run the same kernels on the CPU, which is how CI tests these kernels without a GPU.

``numba.cuda`` is imported lazily: CPU-only use of xldas never loads it.
"""

from __future__ import annotations

import math
import types
from typing import Any

import numpy as np

__all__ = ["device_function", "device_ops", "is_device_array", "launch", "numba_cuda", "pad_loop"]

THREADS_PER_BLOCK = 128


def is_device_array(a: Any) -> bool:
    """True for arrays in GPU memory: CuPy, numba device arrays (also the simulator's).

    Examples
    --------
    >>> import numpy as np
    >>> is_device_array(np.zeros(3)), is_device_array(1.0)
    (False, False)
    """
    if isinstance(a, np.ndarray | float | int | np.generic):
        return False
    if hasattr(a, "__cuda_array_interface__"):
        return True
    return type(a).__module__.startswith("numba.cuda")  # simulator arrays lack the interface


def numba_cuda():
    """``numba.cuda`` with the NumPy scalar ufuncs the shared kernels use made lowerable.

    numba-cuda (0.30) types ``np.exp``/``np.sqrt`` on scalars but has no lowering for
    them in its ufunc table (``KeyError: <ufunc 'exp'>`` when a kernel is compiled). The
    scalar physics of xldas (e.g. :mod:`xldas.physics._et_kernels`) is written with
    NumPy ufuncs so that it also runs on arrays; this adds the missing entries, mapping
    them to the libdevice functions of ``math.exp``/``math.sqrt``. No effect under the
    simulator, which runs Python.
    """
    from numba import cuda

    if not getattr(cuda, "_xldas_ufuncs", False) and not _simulator(cuda):
        try:
            _register_scalar_ufuncs()
        except (ImportError, AttributeError):  # pragma: no cover - other numba-cuda layout
            pass
        cuda._xldas_ufuncs = True
    return cuda


def _simulator(cuda) -> bool:
    return cuda.jit.__module__.startswith("numba.cuda.simulator")


def _register_scalar_ufuncs() -> None:  # pragma: no cover - needs the real CUDA target
    from numba.cuda import ufuncs
    from numba.cuda.mathimpl import get_unary_impl_for_fn_and_ty

    db = ufuncs.ufunc_db()

    def unary(fn):
        def impl(context, builder, sig, args):
            return get_unary_impl_for_fn_and_ty(fn, sig.args[0])(context, builder, sig, args)

        return impl

    for uf, fn in ((np.exp, math.exp), (np.sqrt, math.sqrt), (np.expm1, math.expm1)):
        if uf not in db:
            db[uf] = {"f->f": unary(fn), "d->d": unary(fn)}


class _CupyOps:
    def __init__(self, cupy):
        self.xp = cupy

    def to_device(self, a, dtype=None):
        return self.xp.asarray(a, dtype=dtype)

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def any(self, a) -> bool:
        return bool(self.xp.any(a))


class _NumbaOps:
    def __init__(self, cuda):
        self.cuda = cuda

    def to_device(self, a, dtype=None):
        if is_device_array(a):
            return a
        return self.cuda.to_device(np.ascontiguousarray(np.asarray(a, dtype=dtype)))

    def empty(self, shape, dtype):
        return self.cuda.device_array(shape, dtype=dtype)

    def any(self, a) -> bool:
        return bool(np.any(a.copy_to_host()))


def device_ops(*arrays):
    """Array operations matching the device arrays among ``arrays`` (CuPy first)."""
    for a in arrays:
        if type(a).__module__.split(".")[0] == "cupy":
            import cupy

            return _CupyOps(cupy)
    return _NumbaOps(numba_cuda())


def launch(kernel, n: int, *args) -> None:
    """Run ``kernel`` on ``n`` threads (1-D grid), no launch for ``n == 0``."""
    if n <= 0:
        return
    tpb = min(THREADS_PER_BLOCK, n)
    kernel[(n + tpb - 1) // tpb, tpb](*args)


_DEVICE_FUNCTIONS: dict[Any, Any] = {}


def device_function(func):
    """CUDA device twin of a numba-compiled CPU function (``@njit`` or a gufunc kernel).

    The Python source of ``func`` (``func.py_func``) is compiled with
    ``cuda.jit(device=True)``, after replacing every ``@njit`` function it calls by that
    function's own device twin (recursively). One implementation thus serves the CPU
    kernels and the GPU kernels, and the twins also run under the CUDA simulator (where
    a CPU-compiled function could not take the simulator's arrays). ``func`` must not
    allocate (no ``np.empty``/``np.linalg``): device code has no heap.
    """
    if func in _DEVICE_FUNCTIONS:
        return _DEVICE_FUNCTIONS[func]
    py = getattr(func, "py_func", func)
    env = dict(py.__globals__)
    for name in py.__code__.co_names:
        dep = env.get(name)
        if dep is not None and type(dep).__name__ == "CPUDispatcher":
            env[name] = device_function(dep)
    clone = types.FunctionType(py.__code__, env, py.__name__, py.__defaults__, py.__closure__)
    clone.__doc__ = py.__doc__
    twin = numba_cuda().jit(device=True)(clone)
    _DEVICE_FUNCTIONS[func] = twin
    return twin


def pad_loop(a, ops, core: int, rank: int, dtype=None):
    """Device copy/view of ``a`` with exactly ``rank`` loop dims before ``core`` core dims.

    Missing leading loop dimensions become size-1 dimensions, which the kernels
    broadcast by indexing them at 0. Host arrays are copied to the device.
    """
    from xldas.errors import DimensionError

    a = ops.to_device(a if is_device_array(a) else np.asarray(a, dtype=dtype))
    shape = tuple(a.shape)
    loop = len(shape) - core
    if loop > rank:
        raise DimensionError(
            f"the GPU kernels handle at most {rank} loop dimensions; got an argument of "
            f"shape {shape} with {core} core dimension(s)"
        )
    return a.reshape((1,) * (rank - loop) + shape) if loop < rank else a


def loop_ndim(a, core: int) -> int:
    """Number of loop (non-core) dimensions of a host or device array."""
    shape = tuple(a.shape) if is_device_array(a) else np.shape(a)
    return len(shape) - core
