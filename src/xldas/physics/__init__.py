"""Physics forward models shared by retrieval and assimilation (one implementation each).

- :mod:`xldas.physics.microwave`: soil dielectric models (Dobson, Mironov), Fresnel and
  rough-surface reflectivity, the tau-omega emission model, vegetation water content and
  optical depth, effective soil temperature (SCIENCE.md §A3).
- :mod:`xldas.physics.backscatter`: water cloud model and its inversion, Oh 1992, Oh 2004,
  Dubois 1995 (SCIENCE.md §A1).
- :mod:`xldas.physics.neutrons`: cosmic-ray neutron forward model, inverse, corrections,
  D86 / z* depths and vertical weighting (SCIENCE.md §B10).
- :mod:`xldas.physics.evaporation`, :mod:`xldas.physics.ptjpl`: FAO-56 reference ET, net
  radiation, Priestley–Taylor, PT-JPL, the SiTH potential-ET split and degree-day melt
  (SCIENCE.md §A7, §B11).

Every function takes numbers, NumPy arrays or DataArrays; DataArray input stays lazy on
dask, is converted to the expected units on entry, and comes back with CF attributes.
Kernels (numba gufuncs with NumPy references) live in the ``_*_kernels`` modules.
"""

from xldas.physics.backscatter import (
    dubois1995,
    oh1992,
    oh2004,
    water_cloud_backscatter,
    water_cloud_canopy,
    water_cloud_soil_backscatter,
    water_cloud_soil_moisture,
)
from xldas.physics.evaporation import (
    degree_day_melt,
    et0_fao56,
    net_radiation,
    priestley_taylor,
    sith_potential_et,
)
from xldas.physics.microwave import (
    dielectric_dobson,
    dielectric_mironov,
    effective_temperature,
    fresnel_reflectivity,
    rough_reflectivity,
    tau_omega_tb,
    vegetation_optical_depth,
    vegetation_water_content,
)
from xldas.physics.neutrons import (
    absolute_humidity,
    biomass_correction,
    cosmic_ray_neutrons,
    cosmic_ray_soil_moisture,
    crns_vertical_weights,
    crns_weighted_sm,
    d86,
    franz_effective_depth,
    neutron_corrections,
)
from xldas.physics.ptjpl import pt_jpl

__all__ = [
    "absolute_humidity",
    "biomass_correction",
    "cosmic_ray_neutrons",
    "cosmic_ray_soil_moisture",
    "crns_vertical_weights",
    "crns_weighted_sm",
    "d86",
    "degree_day_melt",
    "dielectric_dobson",
    "dielectric_mironov",
    "dubois1995",
    "effective_temperature",
    "et0_fao56",
    "franz_effective_depth",
    "fresnel_reflectivity",
    "net_radiation",
    "neutron_corrections",
    "oh1992",
    "oh2004",
    "priestley_taylor",
    "pt_jpl",
    "rough_reflectivity",
    "sith_potential_et",
    "tau_omega_tb",
    "vegetation_optical_depth",
    "vegetation_water_content",
    "water_cloud_backscatter",
    "water_cloud_canopy",
    "water_cloud_soil_backscatter",
    "water_cloud_soil_moisture",
]
