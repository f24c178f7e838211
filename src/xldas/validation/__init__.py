"""Validation: skill, triple collocation, rescaling, station matching, calibration (WP3).

Public functions
----------------
:func:`skill`
    bias, RMSE, ubRMSE, Pearson R, anomaly R, NSE, KGE (Gupta et al. 2009), KGE′ (Kling
    et al. 2012) and the number of jointly valid pairs, lazily, along any dimension(s).
:func:`climatology`, :func:`anomalies`
    smoothed day-of-year climatology and anomalies.
:func:`triple_collocation`, :func:`tc_from_covariance`
    extended triple collocation: error variances and ρ² with the truth.
:func:`rescale`
    CDF matching or mean/std scaling onto a reference climatology.
:func:`match_station`, :func:`layer_weights`, :func:`sensor_sm`, :func:`match_times`
    stations to grid cells (nearest / footprint average), model layers to sensor depths,
    temporal matching within a tolerance.
:func:`calibrate`
    parameter estimation with SciPy's differential evolution, evaluations on Dask.

Real-data cases: :mod:`xldas.validation.hawaii` (products vs ISMN stations + TC),
:mod:`xldas.validation.bondville` (open loop vs EnKF/PF on real forcing; calibration).

Also available as ``sim.ldas.skill(ref, dim="time")`` and ``obs.ldas.rescale(ref)``.
"""

from xldas.validation.anomaly import anomalies, climatology
from xldas.validation.calibrate import CalibrationResult, calibrate
from xldas.validation.collocation import tc_from_covariance, triple_collocation
from xldas.validation.matching import layer_weights, match_station, match_times, sensor_sm
from xldas.validation.metrics import METRICS, skill
from xldas.validation.rescale import rescale

__all__ = [
    "METRICS",
    "CalibrationResult",
    "anomalies",
    "calibrate",
    "climatology",
    "layer_weights",
    "match_station",
    "match_times",
    "rescale",
    "sensor_sm",
    "skill",
    "tc_from_covariance",
    "triple_collocation",
]
