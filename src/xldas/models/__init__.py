"""The land-model operator: a compact multi-layer soil water + snow + glacier + ET model.

Public API
----------
- :func:`step` — advance a (deterministic or ensemble) state through forcing, lazily.
- :func:`initial_state`, :func:`water_storage` — state helpers.
- :func:`parameters_from_texture`, :func:`validate_parameters`, :func:`root_fraction`,
  :func:`texture_class`, :func:`layer_coords` — parameters (SCIENCE.md §B9).
- :func:`perturb`, :class:`ForcingPerturbation`, :func:`perturb_forcing` — ensembles.
"""

from xldas.models.land import FORCING_UNITS, initial_state, step, water_storage
from xldas.models.maps import parameters_from_maps
from xldas.models.parameters import (
    DEFAULT_LAYERS,
    TEXTURE_CLASSES,
    layer_coords,
    parameters_from_texture,
    root_fraction,
    texture_class,
    validate_parameters,
)
from xldas.models.perturb import ForcingPerturbation, correlated_field, perturb, perturb_forcing

__all__ = [
    "DEFAULT_LAYERS",
    "FORCING_UNITS",
    "TEXTURE_CLASSES",
    "ForcingPerturbation",
    "correlated_field",
    "initial_state",
    "layer_coords",
    "parameters_from_maps",
    "parameters_from_texture",
    "perturb",
    "perturb_forcing",
    "root_fraction",
    "step",
    "texture_class",
    "validate_parameters",
    "water_storage",
]
