"""The ``parallel`` target of :class:`xldas._numba.gufunc`: the cached serial gufunc run
in threads over slices of a loop axis, equal to one serial call."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from xldas._numba import PARALLEL_MIN, gufunc


@gufunc(["void(float64[:], float64, float64[:], float64[:])"], "(n),()->(n),()")
def scale_and_sum(x, a, out, total):
    s = 0.0
    for i in range(x.shape[0]):
        out[i] = x[i] * a
        s += x[i]
    total[0] = s


@pytest.fixture
def two_threads():
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    yield numba.get_num_threads()
    numba.set_num_threads(before)


@pytest.mark.parametrize(
    "xshape, ashape",
    [
        ((3, 5000, 7), (5000,)),  # first loop axis split, `a` broadcast along it
        ((1, 9000, 7), (9000,)),  # a length-1 first axis: the second one is split
        ((9000, 7), ()),  # a scalar argument
    ],
)
def test_threaded_parallel_target_equals_serial(two_threads, xshape, ashape):
    rng = np.random.default_rng(0)
    x, a = rng.random(xshape), rng.random(ashape)
    assert int(np.prod(xshape[:-1])) >= PARALLEL_MIN
    serial = scale_and_sum(x, a, target="cpu")
    threaded = scale_and_sum.compile("parallel")(x, a)
    for s, t in zip(serial, threaded, strict=True):
        assert t.shape == s.shape
        np.testing.assert_array_equal(t, s)
    # outputs passed as trailing arguments are written in place, slice by slice
    out, total = np.full(x.shape, np.nan), np.full(x.shape[:-1], np.nan)
    scale_and_sum.compile("parallel")(x, a, out, total)
    np.testing.assert_array_equal(out, serial[0])
    np.testing.assert_array_equal(total, serial[1])


def test_default_target_follows_the_batch_size():
    small, large = np.ones((10, 3)), np.ones((PARALLEL_MIN, 3))
    assert scale_and_sum.default_target((small, 1.0)) == "cpu"
    assert scale_and_sum.default_target((large, 1.0)) == "parallel"
    np.testing.assert_array_equal(scale_and_sum(large, 2.0)[1], np.full(PARALLEL_MIN, 3.0))
