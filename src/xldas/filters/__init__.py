"""Ensemble, sigma-point and particle filters (xldas WP2, SCIENCE.md §C12).

Filters are small frozen dataclasses of hyperparameters:
:class:`EnKF`, :class:`ETKF`, :class:`LETKF`, :class:`UKF`, :class:`CDKF`,
:class:`SRUKF`, :class:`SRCDKF` and :class:`PF`. Each has an array-level analysis on
plain NumPy arrays (see :mod:`xldas.filters.methods`), and :func:`assimilate` applies any
of them to an ensemble :class:`xarray.Dataset` lazily (also as
``ens.ldas.assimilate(obs, operator, params, method=...)``).
"""

from xldas.filters.core import assimilate, stack_state, state_variables, unstack_state
from xldas.filters.methods import (
    CDKF,
    ETKF,
    FILTERS,
    LETKF,
    PF,
    SRCDKF,
    SRUKF,
    UKF,
    EnKF,
    get_filter,
    great_circle_distance,
    periodic_distance,
)
from xldas.filters.sigma import n_state_elements, sigma_point_ensemble

__all__ = [
    "CDKF",
    "ETKF",
    "FILTERS",
    "LETKF",
    "PF",
    "SRCDKF",
    "SRUKF",
    "UKF",
    "EnKF",
    "assimilate",
    "get_filter",
    "great_circle_distance",
    "n_state_elements",
    "periodic_distance",
    "sigma_point_ensemble",
    "stack_state",
    "state_variables",
    "unstack_state",
]
