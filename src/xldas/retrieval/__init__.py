"""WP1 retrievals: water-cycle variables from satellite observations.

- :mod:`~xldas.retrieval.bands`, :mod:`~xldas.retrieval.indices`: band names, scaling and
  cloud masks of Sentinel-2 L2A / Landsat C2 L2; NDVI, EVI, GI, NDWI, MNDWI, AWEI (§A4).
- :mod:`~xldas.retrieval.sar`: soil moisture from Sentinel-1 (water cloud inversion with a
  linear, Oh 2004 or Dubois 1995 soil term; change detection + SWI), WCM calibration (§A1–A2).
- :mod:`~xldas.retrieval.radiometer`: SMAP / AMSR2 soil moisture (SCA-V, SCA-H, DCA) (§A3).
- :mod:`~xldas.retrieval.water`: Otsu water masks computed lazily, water bodies labelled
  across chunks, areas and size classes, composites (§A4).
- :mod:`~xldas.retrieval.trend`: Mann–Kendall + Theil–Sen trends (§A8).
- :mod:`~xldas.retrieval.irrigation`: irrigated cropland map (§A5) and irrigation water use (§A6).
- :mod:`~xldas.retrieval.et`: evapotranspiration method dispatch (§A7).

Inversions reuse the forward models of :mod:`xldas.physics` (never a second copy of a formula).
Every function is lazy on dask input and returns CF-annotated DataArrays/Datasets; the
``.ldas`` accessor exposes them (``ds.ldas.ndvi()``, ``s1.ldas.soil_moisture_sar(...)`` ...).
"""

from xldas.retrieval.bands import reflectance, resolve_bands
from xldas.retrieval.et import annual_et, evapotranspiration
from xldas.retrieval.indices import awei, evi, green_index, mndwi, ndvi, ndwi
from xldas.retrieval.irrigation import (
    accuracy_assessment,
    county_thresholds,
    irrigation_map,
    irrigation_water_use,
    kappa,
    peak_greenness,
    suitability,
)
from xldas.retrieval.radiometer import soil_moisture_radiometer
from xldas.retrieval.sar import (
    calibrate_water_cloud,
    change_detection,
    soil_moisture_sar,
    swi_filter,
)
from xldas.retrieval.trend import trend
from xldas.retrieval.water import (
    cell_area_km2,
    otsu_threshold,
    water_area_by_class,
    water_bodies,
    water_composite,
    water_mask,
)

__all__ = [
    "accuracy_assessment",
    "annual_et",
    "awei",
    "calibrate_water_cloud",
    "cell_area_km2",
    "change_detection",
    "county_thresholds",
    "evapotranspiration",
    "evi",
    "green_index",
    "irrigation_map",
    "irrigation_water_use",
    "kappa",
    "mndwi",
    "ndvi",
    "ndwi",
    "otsu_threshold",
    "peak_greenness",
    "reflectance",
    "resolve_bands",
    "soil_moisture_radiometer",
    "soil_moisture_sar",
    "suitability",
    "swi_filter",
    "trend",
    "water_area_by_class",
    "water_bodies",
    "water_composite",
    "water_mask",
]
