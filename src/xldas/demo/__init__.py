"""The embedded Heihe twin experiment: ``xldas.demo.heihe_osse(...)``.

A synthetic but physically plausible observing-system simulation experiment (OSSE) over
the Heihe river basin (97–102°E, 37.5–42.7°N) that needs no network: parameters with the
basin's south–north gradient (Qilian mountains with glaciers upstream, Zhangye–Jiuquan
oases midstream, Ejina and the Badain Jaran desert downstream), forcing, a truth run of the
xldas land model, and synthetic SMAP / AMSR2 / Sentinel-1 / cosmic-ray observations made
with the :mod:`xldas.obs` operators. It is the default data of ``xldas demo``, of the
notebooks and of the tests, and is listed in the catalog shipped with xldas.

Examples
--------
>>> import xldas
>>> tree = xldas.demo.heihe_osse(resolution=0.25, days=10)  # doctest: +SKIP
>>> sorted(tree.groups)  # doctest: +SKIP
['/', '/forcing', '/initial', '/obs', '/obs/amsr2', '/obs/crns', ...]
"""

from xldas.demo._osse import (
    GENERATOR_VERSION,
    OSSE_DEFAULTS,
    cache_path,
    heihe_osse,
    osse_forcing_perturbation,
    write_default,
)
from xldas.demo._pantp import PAN_TP_BBOX, pan_tp, pan_tp_experiment

__all__ = [
    "GENERATOR_VERSION",
    "OSSE_DEFAULTS",
    "PAN_TP_BBOX",
    "cache_path",
    "heihe_osse",
    "osse_forcing_perturbation",
    "pan_tp",
    "pan_tp_experiment",
    "write_default",
]
