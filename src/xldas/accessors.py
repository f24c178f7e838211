"""The ``.ldas`` accessor on :class:`xarray.Dataset` and :class:`xarray.DataArray`.

One namespace for everything xldas does to an xarray object. Methods are thin: they turn
their arguments into calls of the domain modules (``xldas.io``, ``xldas.models``,
``xldas.filters`` ...) and return new objects. The accessor holds no state of its own and
never modifies the object it is attached to.

Examples
--------
>>> import numpy as np, xarray as xr, xldas
>>> da = xr.DataArray(np.zeros((2, 3)), dims=("lat", "lon"))
>>> hasattr(da, "ldas") and hasattr(da.to_dataset(name="v"), "ldas")
True
"""

from __future__ import annotations

import importlib
from typing import Any

import xarray as xr

__all__ = ["LdasDataArrayAccessor", "LdasDatasetAccessor"]


def _call(module: str, func: str, *args: Any, **kwargs: Any) -> Any:
    """Import ``xldas.<module>`` on first use and call ``func`` from it."""
    return getattr(importlib.import_module(f"xldas.{module}"), func)(*args, **kwargs)


class _LdasAccessor:
    """Methods shared by the Dataset and DataArray accessors."""

    __slots__ = ("_obj",)

    def __init__(self, xarray_obj: xr.Dataset | xr.DataArray):
        self._obj = xarray_obj

    # ------------------------------------------------------------------ io
    def to_store(self, store, **kwargs):
        """Write to a Zarr v3 store with xldas's default encodings.

        See :func:`xldas.io.to_store` for the arguments (``mode``, ``append_dim``,
        ``region``, ``chunks`` ...).
        """
        return _call("io", "to_store", self._obj, store, **kwargs)

    def regrid(self, target, method: str = "bilinear", **kwargs):
        """Regrid to ``target`` (a grid Dataset, or ``(bbox, resolution)``), lazily.

        See :func:`xldas.io.regrid`.
        """
        return _call("io", "regrid", self._obj, target, method=method, **kwargs)

    # --------------------------------------------------------------- models
    def step(self, forcing, params, dt=None, fluxes: bool = False, **kwargs):
        """Advance this model state (or ensemble) through ``forcing``, lazily.

        See :func:`xldas.models.step` (``perturbation=``, ``seed=``, ``validate=``).
        """
        return _call("models", "step", self._obj, forcing, params, dt=dt, fluxes=fluxes, **kwargs)

    def perturb(self, n_members: int, **kwargs):
        """Ensemble of ``n_members`` from this deterministic state.

        See :func:`xldas.models.perturb` (``forcing_perturbation=``,
        ``parameter_perturbation=``, ``params=``, ``state_perturbation=``, ``seed=``).
        """
        return _call("models", "perturb", self._obj, n_members, **kwargs)

    # ------------------------------------------------------------------ obs
    def observe(self, operator, params=None):
        """Predicted observations per member, lazily: ``operator(state, params)``.

        ``operator`` is an :mod:`xldas.obs` operator (``TauOmega``, ``WaterCloud``,
        ``CosmicRay``, ``Identity``). See :func:`xldas.obs.observe`.
        """
        return _call("obs", "observe", self._obj, operator, params)

    # ------------------------------------------------------------ retrieval
    def ndvi(self, **kwargs):
        """NDVI from Sentinel-2 / Landsat / generic bands (see :func:`xldas.retrieval.ndvi`)."""
        return _call("retrieval", "ndvi", self._obj, **kwargs)

    def evi(self, **kwargs):
        """EVI (see :func:`xldas.retrieval.evi`)."""
        return _call("retrieval", "evi", self._obj, **kwargs)

    def green_index(self, form: str = "ratio", **kwargs):
        """Green index NIR/G or CI_green (see :func:`xldas.retrieval.green_index`)."""
        return _call("retrieval", "green_index", self._obj, form=form, **kwargs)

    def ndwi(self, form: str = "mcfeeters", **kwargs):
        """NDWI, McFeeters or Gao (see :func:`xldas.retrieval.ndwi`)."""
        return _call("retrieval", "ndwi", self._obj, form=form, **kwargs)

    def mndwi(self, **kwargs):
        """MNDWI (see :func:`xldas.retrieval.mndwi`)."""
        return _call("retrieval", "mndwi", self._obj, **kwargs)

    def awei(self, shadow: bool = False, **kwargs):
        """AWEI_nsh / AWEI_sh (see :func:`xldas.retrieval.awei`)."""
        return _call("retrieval", "awei", self._obj, shadow=shadow, **kwargs)

    def soil_moisture_sar(self, veg=None, method: str = "water_cloud", **kwargs):
        """Soil moisture from σ⁰ (water cloud or change detection; :func:`xldas.retrieval.soil_moisture_sar`)."""
        return _call("retrieval", "soil_moisture_sar", self._obj, veg=veg, method=method, **kwargs)

    def soil_moisture_radiometer(self, method: str = "sca-v", **kwargs):
        """Soil moisture from TB (SCA-V/SCA-H/DCA; :func:`xldas.retrieval.soil_moisture_radiometer`)."""
        return _call("retrieval", "soil_moisture_radiometer", self._obj, method=method, **kwargs)

    def water_mask(self, index: str = "mndwi", method="otsu", **kwargs):
        """Water mask with a lazy tile-merged Otsu threshold (:func:`xldas.retrieval.water_mask`)."""
        return _call("retrieval", "water_mask", self._obj, index=index, method=method, **kwargs)

    def water_bodies(self, connectivity: int = 8, min_pixels: int = 4, **kwargs):
        """Labelled water bodies, areas and size classes (:func:`xldas.retrieval.water_bodies`)."""
        return _call(
            "retrieval", "water_bodies", self._obj, connectivity=connectivity,
            min_pixels=min_pixels, **kwargs,
        )  # fmt: skip

    def trend(self, dim: str = "time", alpha: float = 0.05, **kwargs):
        """Mann–Kendall + Theil–Sen trend along ``dim`` (:func:`xldas.retrieval.trend`)."""
        return _call("retrieval", "trend", self._obj, dim=dim, alpha=alpha, **kwargs)

    def irrigation_water_use(self, precip, et, params=None, method: str = "sm_inversion", **kwargs):
        """Irrigation from soil moisture (:func:`xldas.retrieval.irrigation_water_use`)."""
        kwargs.update(method=method)
        return _call("retrieval", "irrigation_water_use", self._obj, precip, et, params, **kwargs)

    def evapotranspiration(self, method: str = "fao56", **kwargs):
        """ET by FAO-56, Priestley–Taylor, PT-JPL or SiTH (:func:`xldas.retrieval.evapotranspiration`)."""
        return _call("retrieval", "evapotranspiration", self._obj, method=method, **kwargs)

    # -------------------------------------------------------------- filters
    # (methods of the assimilation layer are added here)
    def assimilate(self, obs, operator, params=None, method="enkf", seed=None, **kwargs):
        """One filter analysis of this ensemble with ``obs``, lazily.

        ``method`` is ``"enkf"``, ``"etkf"``, ``"letkf"``, ``"ukf"``, ``"cdkf"``,
        ``"srukf"``, ``"srcdkf"``, ``"pf"`` or a filter object; see
        :func:`xldas.filters.assimilate` (``cycle``, ``bounds``, ``return_diagnostics``,
        ``overwrite_ensemble``: the analysis may be written into this ensemble's NumPy
        arrays, as PDAF and DART do, for half the memory and no fresh pages).
        """
        kwargs.update(method=method, seed=seed)
        return _call("filters", "assimilate", self._obj, obs, operator, params, **kwargs)

    # ----------------------------------------------------------- validation
    def skill(self, ref, dim="time", metrics=None, **kwargs):
        """Skill metrics against ``ref`` along ``dim`` (see :func:`xldas.validation.skill`)."""
        return _call("validation", "skill", self._obj, ref, dim=dim, metrics=metrics, **kwargs)

    # validation and budget
    def rescale(self, ref, method: str = "cdf_match", **kwargs):
        """Rescale onto the climatology of ``ref`` (see :func:`xldas.validation.rescale`)."""
        return _call("validation", "rescale", self._obj, ref, method=method, **kwargs)

    def basin_mean(self, regions, **kwargs):
        """Area-weighted mean over each region (see :func:`xldas.budget.basin_mean`)."""
        return _call("budget", "basin_mean", self._obj, regions, **kwargs)

    def water_budget(self, **kwargs):
        """Budget P − ET − Q − ΔS and residual (see :func:`xldas.budget.water_budget`)."""
        return _call("budget", "water_budget", self._obj, **kwargs)

    def close_budget(self, errors, **kwargs):
        """Constrained-KF budget closure (see :func:`xldas.budget.close_budget`)."""
        return _call("budget", "close_budget", self._obj, errors, **kwargs)


@xr.register_dataset_accessor("ldas")
class LdasDatasetAccessor(_LdasAccessor):
    """``ds.ldas``: xldas methods on a Dataset."""

    __slots__ = ()


@xr.register_dataarray_accessor("ldas")
class LdasDataArrayAccessor(_LdasAccessor):
    """``da.ldas``: xldas methods on a DataArray."""

    __slots__ = ()
