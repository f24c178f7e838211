"""Lazily compiled numba gufuncs, one compilation per target.

Kernels are written once as plain Python loops over 1-D/2-D arrays that write into their
last argument(s) (the ``out`` arrays), in the style of numbagg. :func:`gufunc` wraps such a
function into an object that compiles it with :func:`numba.guvectorize` on first call, for
the serial ``cpu`` target (cached on disk), and for ``cuda`` on request where numba-cuda
and a GPU (or the CUDA simulator, ``NUMBA_ENABLE_CUDASIM=1``) are present. The
``parallel`` target of large batches runs that same serial gufunc on slices of the loop
axis in threads (numba's gufuncs release the GIL), instead of numba's own parallel
target: the latter is rebuilt in every process (about 2 s a kernel, not cached), the
results are the same. The original Python function stays available as ``.py_func`` for
tests and debugging.

Examples
--------
>>> import numpy as np
>>> from xldas._numba import gufunc
>>> @gufunc(["void(float64[:], float64[:])"], "(n)->()")
... def total(x, out):
...     s = 0.0
...     for i in range(x.shape[0]):
...         s += x[i]
...     out[0] = s
>>> total(np.ones((2, 3))).tolist()
[3.0, 3.0]
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["PARALLEL_MIN", "available_targets", "gufunc", "njit"]

#: Loop iterations (e.g. pixels) from which a gufunc called without ``target=`` runs on
#: the ``parallel`` target; smaller batches run serially (see :meth:`gufunc.default_target`).
PARALLEL_MIN = 4096


def _source_hash() -> str:
    """Hash of numba's version and the content of every source file of xldas."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parent
    h = hashlib.sha1(numba.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        with contextlib.suppress(OSError):
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _cache_dir(key: str) -> str | None:
    """Numba cache folder keyed by :func:`_source_hash`, unless ``NUMBA_CACHE_DIR`` is set.

    Numba checks a cached kernel only against its own file, not against the njit helpers
    it inlines from other files: a stale entry could run old machine code, or crash.
    Keying the folder by the content of every source file of the package makes any
    change start a fresh cache; a kernel compiled by a process whose sources changed
    after it started is not cached at all (see :meth:`gufunc._build`).
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    from pathlib import Path

    import platformdirs

    try:
        # the user cache (not XLDAS_DATA_DIR, which tests and experiments redirect)
        folder = Path(platformdirs.user_cache_dir("xldas")) / "numba-cache" / key
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # pragma: no cover - read-only home: numba's default places
        return None
    numba.config.CACHE_DIR = str(folder)
    return str(folder)


@contextlib.contextmanager
def _cache_lock():
    """Serialise compilations that write numba's cache across processes.

    Numba numbers the cached overloads of a function in the order a process compiled
    them; two processes compiling the same kernel at once (pytest-xdist workers, dask
    workers, ``xldas run`` subprocesses) can leave an index pointing at the other's
    data file, which crashes the next process that loads it. Under this lock the second
    process loads what the first wrote.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder = numba.config.CACHE_DIR or os.path.join(
        os.path.expanduser("~"), ".cache", "xldas", "numba-cache"
    )
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ".compile.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_SOURCE_KEY = _source_hash()
#: Folder of numba's on-disk cache of the xldas kernels (None: ``NUMBA_CACHE_DIR``).
CACHE_DIR = _cache_dir(_SOURCE_KEY)

#: ``numba.njit`` with the options every scalar helper of xldas uses. Not cached by
#: itself: a gufunc's cache entry holds the helpers it calls, compiled with it.
njit = numba.njit(cache=False, fastmath=False, nogil=True, inline="never")


def available_targets() -> tuple[str, ...]:
    """Targets usable on this machine: ``("parallel", "cpu")`` plus ``"cuda"`` if present."""
    targets = ["parallel", "cpu"]
    try:  # pragma: no cover - depends on the machine
        from numba import cuda

        if cuda.is_available() or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
            targets.append("cuda")
    except Exception:
        pass
    return tuple(targets)


class gufunc:
    """Decorator: a kernel compiled on first use into a numba generalized ufunc.

    Parameters
    ----------
    signatures : list of numba signatures (``"void(float64[:], float64[:])"`` ...).
    layout : gufunc layout, e.g. ``"(t),(t),()->(t)"``.
    writable_args : indices or names of arguments the kernel may modify in place.
    """

    def __init__(
        self,
        signatures: Sequence[str],
        layout: str,
        writable_args: Sequence[int | str] = (),
    ):
        self.signatures = list(signatures)
        self.layout = layout
        self.writable_args = tuple(writable_args)
        self._compiled: dict[str, Callable] = {}
        self._lock = threading.Lock()
        self.py_func: Callable | None = None
        self._core_ndims: list[int] | None = None

    def __getstate__(self):
        # dask ships kernels to distributed workers by pickling: the lock and the compiled
        # gufuncs stay behind (each process compiles, or loads from the cache, its own)
        state = self.__dict__.copy()
        state["_lock"] = None
        state["_compiled"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        if self.py_func is None:  # used as decorator
            func = args[0]
            self.py_func = func
            self.__name__ = func.__name__
            self.__doc__ = func.__doc__
            self.__wrapped__ = func
            return self
        target = kwargs.pop("target", None)
        if target in (None, "parallel"):  # threads only where they pay off (same results)
            target = self.default_target(args)
        return self.compile(target)(*args, **kwargs)

    def default_target(self, args) -> str:
        """``"parallel"`` for at least :data:`PARALLEL_MIN` loop iterations, else ``"cpu"``.

        Threads do not pay off for small batches (tests, dask tasks on small chunks).
        ``XLDAS_NUMBA_TARGET`` (``cpu`` or ``parallel``) overrides the choice.
        """
        forced = os.environ.get("XLDAS_NUMBA_TARGET")
        if forced in ("cpu", "parallel"):
            return forced
        if self._core_ndims is None:
            ins = self.layout.split("->")[0]
            self._core_ndims = [
                0 if not g.strip() else g.count(",") + 1 for g in ins[1:-1].split("),(")
            ]
        loop = []
        for arg, nc in zip(args, self._core_ndims, strict=False):
            shape = np.shape(arg)
            loop.append(shape[: len(shape) - nc] if len(shape) >= nc else ())
        try:
            size = int(np.prod(np.broadcast_shapes(*loop))) if loop else 1
        except ValueError:  # let numpy raise its own error on the call
            size = 1
        return "parallel" if size >= PARALLEL_MIN else "cpu"

    def _build(self, kw):
        if kw.get("cache") and (_source_hash() != _SOURCE_KEY or kw["target"] != "cpu"):
            # the sources changed since this process started (an entry written now could
            # mix old and new code), or another target than the serial one (whose cache
            # entries it would share): compile without the cache
            kw = {**kw, "cache": False}
        try:
            if kw.get("cache"):
                with _cache_lock():
                    return numba.guvectorize(self.signatures, self.layout, **kw)(self.py_func)
            return numba.guvectorize(self.signatures, self.layout, **kw)(self.py_func)
        except RuntimeError as exc:  # no cache locator: defined in a REPL or a doctest
            if "cannot cache" not in str(exc):
                raise
            return numba.guvectorize(self.signatures, self.layout, **{**kw, "cache": False})(
                self.py_func
            )

    def compile(self, target: str = "parallel") -> Callable:
        """Return the gufunc compiled for ``target`` (``parallel``, ``cpu`` or ``cuda``).

        ``parallel`` is the ``cpu`` gufunc run in threads over the loop axis
        (:class:`_Threaded`).
        """
        if target == "parallel":
            return _Threaded(self.compile("cpu"), self.layout)
        if target in self._compiled:
            return self._compiled[target]
        with self._lock:
            if target in self._compiled:
                return self._compiled[target]
            if target == "cuda":
                from numba import cuda  # numba-cuda

                fn = cuda.guvectorize(self.signatures, self.layout)(self.py_func)
            else:
                # on-disk cache (:data:`CACHE_DIR`; ``NUMBA_CACHE_DIR`` overrides): fresh
                # processes (``xldas run``, dask workers, Slurm jobs) load the machine code
                # instead of compiling it again
                kw = {"target": target, "cache": True}
                if self.writable_args:
                    kw["writable_args"] = self.writable_args
                fn = self._build(kw)
            self._compiled[target] = fn
            return fn


_POOL: dict[int, Any] = {}
_POOL_LOCK = threading.Lock()


def _pool(n: int):
    """A process-wide thread pool of ``n`` workers (created once, reused by every call)."""
    from concurrent.futures import ThreadPoolExecutor

    with _POOL_LOCK:
        if n not in _POOL:
            _POOL[n] = ThreadPoolExecutor(n, thread_name_prefix="xldas-gufunc")
        return _POOL[n]


class _Threaded:
    """A serial gufunc called on slices of the first loop axis, one per thread.

    Arguments whose loop shape spans that axis are sliced, the others (broadcast ones,
    scalars) passed whole; outputs are concatenated (or, passed as the trailing
    positional arguments, written slice by slice). Threads: ``numba.get_num_threads()``
    (``NUMBA_NUM_THREADS``). Every loop element runs the same machine code as in one
    serial call, so the results are identical.
    """

    def __init__(self, fn, layout: str):
        self.fn = fn
        ins, outs = layout.split("->")
        self.core = [_ndim(g) for g in _groups(ins)]
        self.out_core = [_ndim(g) for g in _groups(outs)]

    def __call__(self, *args, **kwargs):
        nin = len(self.core)
        if kwargs or len(args) not in (nin, nin + len(self.out_core)):
            return self.fn(*args, **kwargs)
        arrays = [np.asarray(a) for a in args]
        cores = self.core + (self.out_core if len(args) > nin else [])
        loops = [a.shape[: a.ndim - c] if a.ndim >= c else () for a, c in zip(arrays, cores)]
        try:
            loop = np.broadcast_shapes(*loops)
        except ValueError:
            return self.fn(*args)  # numpy's own error
        threads = numba.get_num_threads()
        if not loop or threads < 2 or int(np.prod(loop)) < PARALLEL_MIN:
            return self.fn(*args)
        # split the first loop axis with a slice per thread (else the longest one)
        ax = next((i for i, n in enumerate(loop) if n >= threads), int(np.argmax(loop)))
        n = min(threads, loop[ax])
        if n < 2:
            return self.fn(*args)
        edges = np.linspace(0, loop[ax], n + 1).round().astype(int)
        nd = len(loop)

        def part(i):
            sl = slice(int(edges[i]), int(edges[i + 1]))
            sliced = []
            for a, lp in zip(arrays, loops):
                k = ax - (nd - len(lp))  # the split axis in this argument, if it has it
                if k >= 0 and lp[k] == loop[ax]:
                    a = a[(slice(None),) * k + (sl,)]
                sliced.append(a)
            return self.fn(*sliced)

        results = list(_pool(n).map(part, range(n)))
        if len(args) > nin:  # outputs given: written in place
            outs = arrays[nin:]
            return outs[0] if len(outs) == 1 else tuple(outs)
        if isinstance(results[0], tuple):
            return tuple(
                np.concatenate([r[k] for r in results], axis=ax) for k in range(len(results[0]))
            )
        return np.concatenate(results, axis=ax)


def _groups(side: str) -> list[str]:
    side = side.strip()
    return [g for g in side[1:-1].split("),(")] if side else []


def _ndim(group: str) -> int:
    return 0 if not group.strip() else group.count(",") + 1


def as_float(x, dtype=np.float64):
    """Return ``x`` as a floating array (keeps float32 input as float32)."""
    a = np.asarray(x)
    if a.dtype.kind == "f":
        return a
    return a.astype(dtype)
