"""Water budget of basins and sub-basins (WP4).

Public functions
----------------
:func:`region_masks`
    polygons (GeoJSON, shapefile, GeoDataFrame, regionmask) or integer masks → fractional
    masks (region, y, x) on the model grid.
:func:`basin_mean`
    area-weighted regional means, lazily.
:func:`water_budget`
    P, ET, Q, ΔS in mm per step or period and the residual P − ET − Q − ΔS.
:func:`close_budget`
    constrained-Kalman-filter closure (Pan & Wood 2006): adjusted components with
    posterior errors and a residual of zero.
:func:`budget_trends`
    Theil–Sen / Mann–Kendall trend of each component per region.
:func:`heihe_budget`
    the embedded Heihe twin experiment's sub-basin budgets: truth, degraded, closed.
:func:`camels_experiment`
    a CAMELS basin: land model on disaggregated daily forcing, linear-reservoir routing
    vs USGS streamflow (NSE, KGE), yearly budget and closure.
:func:`plot_budget`
    bars of P, ET, Q, ΔS and residual per region, before and after closure.

Also available as ``ds.ldas.basin_mean(regions)``, ``ds.ldas.water_budget(...)`` and
``budget.ldas.close_budget(errors)``.
"""

from xldas.budget.analysis import budget_trends, heihe_budget, plot_budget
from xldas.budget.camels import camels_experiment, camels_forcing, linear_reservoir
from xldas.budget.closure import COMPONENTS, close_budget, closure_kernel, water_budget
from xldas.budget.regions import basin_mean, region_masks

__all__ = [
    "COMPONENTS",
    "basin_mean",
    "budget_trends",
    "camels_experiment",
    "camels_forcing",
    "close_budget",
    "closure_kernel",
    "heihe_budget",
    "linear_reservoir",
    "plot_budget",
    "region_masks",
    "water_budget",
]
