"""Array coercion for the NumPy reference kernels of :mod:`xldas.physics`.

The references run on NumPy arrays and on CuPy arrays (NumPy ufuncs and functions dispatch
to CuPy through ``__array_ufunc__``/``__array_function__``); only ``np.asarray`` would copy
device arrays to the host, so it is replaced by :func:`asarray`.
"""

from __future__ import annotations

import numpy as np


def asarray(x, dtype=float):
    """``x`` as an array of ``dtype``: NumPy for numbers, lists and NumPy input; a device
    array (anything with ``__cuda_array_interface__``) keeps its type."""
    if hasattr(x, "__cuda_array_interface__"):
        return x.astype(dtype, copy=False)
    return np.asarray(x, dtype=dtype)
