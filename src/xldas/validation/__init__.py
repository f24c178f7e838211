"""Validation: skill metrics of a simulation against a reference (WP3).

Public functions
----------------
:func:`skill`
    bias, RMSE, ubRMSE, Pearson R, NSE, KGE (Gupta et al. 2009), KGE′ (Kling et al. 2012)
    and the number of jointly valid pairs, lazily, along any dimension(s).

Also available as ``sim.ldas.skill(ref, dim="time")``.
"""

from xldas.validation.metrics import METRICS, skill

__all__ = ["METRICS", "skill"]
