"""A synthetic Pan-Third-Pole domain generated lazily, chunk by chunk: ``xldas.demo.pan_tp``.

The scale benchmark of xldas (issue 9): the Tibetan Plateau and its surroundings (default
25–45°N, 65–105°E) at up to 0.01° (2000 × 4000 cells), far more than fits in memory once
an ensemble of 32 members is carried. Nothing here holds a full field: every variable is a
dask array whose blocks are computed from the cell coordinates of the block alone, so a
block costs the same whatever the domain size and any sub-domain or chunking gives the
same values.

* **Randomness** is counter-based: the spatially correlated fields come from
  :func:`xldas.models.perturb.correlated_field` (normals on a global lattice keyed by
  (seed, purpose, index), interpolated to the cells), the observation noise from the
  Philox generator keyed by each cell's global coordinates
  (:func:`xldas.filters._kernels.philox_normal_reference`).
* **Geography** (approximate, synthetic, *not* a DEM): the plateau (≈ 4500–5000 m) inside
  a hand-drawn outline from the Pamir to the Hengduan Shan, the Himalaya and Karakoram
  (≈ 6000 m with glaciers) along its southern and western edges, the Qaidam basin
  (≈ 2800 m) inside it, and around it the Tarim basin (Taklimakan sand sea, ≈ 1100 m), the
  Tian Shan, the Hindu Kush, the Indus and Ganges plains, the Sichuan basin and the Gobi.
  Land cover, sand/clay and LAI come from elevation and the precipitation climatology with
  the class tables of the Heihe generator (:mod:`xldas.demo._geography`); parameters from
  :func:`xldas.models.parameters_from_texture`.
* **Climate**: annual precipitation from a monsoon gradient (≈ 1500 mm in the Ganges plain
  and on the Himalayan front, ≈ 600 mm in the south-east of the plateau, ≈ 100 mm in its
  north-west, ≈ 50 mm in the Tarim), the forcing itself from the Heihe weather generator
  (:func:`xldas.demo._weather.make_forcing`: censored latent storm field, lapse-rate
  temperature, Brutsaert longwave, interval-mean solar geometry...) with a latitude
  correction of the air temperature (+0.9 K per degree south of 40°N in the annual mean,
  a seasonal cycle 0.5 K per degree smaller). The latent storm
  field is AR(1)-like in time (node fields every 6 h, linearly blended) and advected
  eastward; the synoptic field has a 300 km scale and a 2-day node spacing.
* **Initial state**: soil moisture halfway between wilting point and field capacity, soil
  at the annual-mean air temperature, no snow (float32).
* **Observations** ``obs/smap``: SMAP-like L-band brightness temperatures (H and V, 2 K)
  at the descending (≈ 6 h local solar time at 90°E, 00 UTC) and ascending (12 UTC)
  overpasses, inside the swaths of :func:`xldas.demo._observations.swath_mask`.
  There is no truth *run* at this scale (the benchmark measures cost, not skill): the
  truth is the initial state with a soil-moisture anomaly (0.04 m3 m-3, 50 km).

The module is a sub-package so that the code fingerprint of the Heihe twin experiment
(``xldas/demo/*.py``) does not change with it.

Examples
--------
>>> import xldas
>>> tree = xldas.demo.pan_tp(resolution=0.1, days=1, chunks=100)
>>> dict(tree["params"].sizes)
{'lat': 200, 'lon': 400, 'layer': 4}
>>> tree["forcing"]["precip"].data.chunksize
(8, 100, 100)
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr
from dask.array.core import PerformanceWarning
from matplotlib.path import Path as _Polygon

from xldas._xr import add_history
from xldas.demo import _geography as geog
from xldas.demo import _weather as wx
from xldas.errors import ConfigError
from xldas.io.forcing import FORCING_ATTRS

__all__ = ["PAN_TP_BBOX", "pan_tp", "pan_tp_experiment"]

#: default domain (west, south, east, north), degrees
PAN_TP_BBOX = (65.0, 25.0, 105.0, 45.0)

_KM = geog.KM_PER_DEG
_COS0 = float(np.cos(np.deg2rad(35.0)))  # x scale of the counter-based noise fields
_PURPOSE = {"relief": 101, "texture": 102, "storm": 103, "synoptic": 104, "obs": 105, "sm": 106}
_GEO_FIELDS = (
    "elevation",
    "front_distance_km",
    "land_cover",
    "sand",
    "clay",
    "lai",
    "glacier_fraction",
    "irrigated_fraction",
    "annual_precip_mm",
)

#: Outline of the plateau (lon, lat), approximate: Pamir → Kunlun → Altun → Qilian →
#: Longmen Shan → Hengduan → Himalaya → Karakoram.
_PLATEAU = np.array(
    [
        (73.0, 37.0),
        (75.5, 37.6),
        (78.0, 36.4),
        (82.0, 36.0),
        (86.0, 36.4),
        (90.0, 37.4),
        (93.0, 38.6),
        (96.0, 39.3),
        (98.5, 39.6),
        (101.5, 38.3),
        (103.5, 36.2),
        (103.3, 34.0),
        (102.6, 31.3),
        (101.6, 28.8),
        (99.8, 26.6),
        (97.6, 28.0),
        (95.0, 27.7),
        (92.0, 27.2),
        (89.0, 27.4),
        (86.0, 27.8),
        (84.0, 28.4),
        (81.0, 29.6),
        (78.6, 31.0),
        (76.2, 33.0),
        (74.0, 34.6),
        (73.0, 37.0),
    ]
)
#: Himalaya–Karakoram crest line (lon, lat): the highest relief and the glaciers
_CREST = np.array(
    [
        (74.5, 35.9),
        (76.5, 35.4),
        (78.5, 33.0),
        (80.5, 30.6),
        (84.0, 28.8),
        (87.0, 28.0),
        (90.0, 28.0),
        (93.0, 28.3),
        (95.0, 29.4),
    ]
)
# (lon, lat, half-width lon, half-width lat, amplitude m): basins and ranges, Gaussian
_BUMPS_IN = [(94.0, 37.3, 3.2, 1.1, -2000.0)]  # Qaidam basin inside the plateau
_BUMPS_OUT = [
    (82.5, 39.3, 5.5, 1.6, -300.0),  # Tarim basin floor
    (83.0, 42.3, 7.0, 0.9, 2600.0),  # Tian Shan
    (70.0, 35.3, 3.0, 1.3, 2800.0),  # Hindu Kush
    (104.8, 30.2, 1.3, 1.2, -500.0),  # Sichuan basin
    (97.0, 43.5, 6.0, 2.0, 300.0),  # Gobi plateau
    (87.5, 44.8, 3.0, 1.0, -700.0),  # Junggar basin
]
# sand seas (lon, lat, half-widths): Taklimakan, Thar, Badain Jaran, Kumtag
_SAND = [
    (83.0, 39.0, 5.0, 1.3),
    (71.0, 27.0, 2.5, 2.0),
    (102.0, 40.5, 1.5, 1.0),
    (91.5, 40.3, 1.5, 0.6),
]


# ============================================================================ blocks
def _noise(lat, lon, length_km, seed, purpose, index, n=1):
    """Unit-variance correlated fields (n, ny, nx) at the cells: chunk independent."""
    from xldas.models.perturb import _key, correlated_field

    y = np.asarray(lat, np.float64) * _KM
    x = np.asarray(lon, np.float64) * _KM * _COS0
    return correlated_field(y, x, length_km, _key(seed, purpose, index), 1, n)[0]


def _gauss(lat2, lon2, bumps):
    out = np.zeros(lat2.shape)
    for lo, la, wl, wa, amp in bumps:  # a handful of named features, vectorised over cells
        out += amp * np.exp(-(((lon2 - lo) / wl) ** 2) - ((lat2 - la) / wa) ** 2)
    return out


def _signed_distance_km(lat2, lon2, outline):
    """Distance (km) to the outline, positive inside it (the plateau)."""
    d = geog._dist_to_polyline_km(lat2, lon2, outline)
    pts = np.column_stack([lon2.ravel(), lat2.ravel()])
    inside = _Polygon(outline).contains_points(pts).reshape(lat2.shape)
    return np.where(inside, d, -d)


def _annual_precip(lat2, lon2, d, z):
    """Climatological annual precipitation (mm a-1): monsoon gradient, orography, rain shadow."""
    monsoon = 1.0 / (1.0 + np.exp(((lat2 - 29.0) - 0.25 * (lon2 - 88.0)) / 1.6))
    wet_east = 1.0 / (1.0 + np.exp(-(lon2 - 97.0) / 2.5))
    outside = 60.0 + 1450.0 * monsoon + 500.0 * wet_east / (1.0 + np.exp((lat2 - 34.0) / 1.0))
    outside += 350.0 * np.exp(-(((lat2 - 42.5) / 1.0) ** 2)) * (z > 2000.0)  # Tian Shan
    outside += 250.0 * np.exp(-(((lon2 - 70.0) / 2.5) ** 2) - ((lat2 - 35.0) / 1.5) ** 2)
    # plateau: wet south-east, dry north-west, wettest just behind the Himalayan front
    se = 1.0 / (1.0 + np.exp(-((lon2 - 90.0) / 5.0 - (lat2 - 33.0) / 2.0)))
    plateau = 80.0 + 620.0 * se + 700.0 * np.exp(-np.maximum(d, 0.0) / 40.0) * monsoon
    w = 1.0 / (1.0 + np.exp(-np.clip(d, -60.0, 60.0) / 10.0))
    return np.maximum(w * plateau + (1.0 - w) * outside, 30.0)


def _geo_block(lat, lon, *, seed, doy):
    """The static geography of one block, stacked as (field, ny, nx) float64."""
    lat = np.asarray(lat, np.float64)
    lon = np.asarray(lon, np.float64)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    n_r = _noise(lat, lon, 40.0, seed, _PURPOSE["relief"], 0, 3)
    n_t = _noise(lat, lon, 15.0, seed, _PURPOSE["texture"], 0, 2)

    # ---- relief (m)
    d = _signed_distance_km(lat2, lon2, _PLATEAU)
    rise = 1.0 / (1.0 + np.exp(-np.clip(d, -80.0, 80.0) / 15.0))
    crest = np.exp(-((geog._dist_to_polyline_km(lat2, lon2, _CREST) / 45.0) ** 2))
    plateau = 4600.0 + 1500.0 * crest + _gauss(lat2, lon2, _BUMPS_IN) + 350.0 * n_r[0]
    lowland = (
        220.0
        + 900.0 / (1.0 + np.exp(-(lat2 - 34.0) / 1.5))  # Indo-Gangetic plain → central Asia
        + _gauss(lat2, lon2, _BUMPS_OUT)
        + 300.0 * np.exp(-np.maximum(-d, 0.0) / 60.0)  # foothills
        + 150.0 * n_r[1]
    )
    z = np.maximum(rise * plateau + (1.0 - rise) * lowland + 150.0 * n_r[2] * rise, 0.0)

    # ---- climate, glaciers, land cover
    p = _annual_precip(lat2, lon2, d, z)
    ela = 5900.0 - 0.9 * np.minimum(p, 1500.0)  # equilibrium-line altitude lowers where wet
    glacier = np.clip((z - ela) / 700.0, 0.0, 0.7)
    sandsea = sum(
        np.exp(-(((lon2 - lo) / wl) ** 2) - ((lat2 - la) / wa) ** 2) for lo, la, wl, wa in _SAND
    )
    cover = np.full(lat2.shape, 6, dtype=np.int8)  # gobi (stony desert) by default
    cover[(sandsea + 0.2 * n_t[0] > 0.55) & (p < 250.0)] = 7
    cover[(p >= 200.0) & (z < 3300.0)] = 4  # steppe
    cover[(p >= 250.0) & (z >= 3300.0)] = 2  # alpine meadow
    cover[(p < 250.0) & (z >= 3300.0)] = 4  # high-cold steppe
    cover[(p >= 700.0) & (z >= 1500.0) & (z < 4000.0)] = 3  # mountain forest
    irr = np.clip((p - 500.0) / 900.0, 0.0, 0.7) * (z < 600.0) + 0.6 * (
        (z < 1500.0) & (p < 250.0) & (n_t[1] > 1.3)
    )  # paddy and wheat of the plains, oases of the deserts
    cover[irr >= 0.3] = 5
    cover[glacier > 0.3] = 1

    sand_c = np.array([0.5] + [geog._CLASS_SAND[k] for k in range(1, 8)])
    clay_c = np.array([0.1] + [geog._CLASS_CLAY[k] for k in range(1, 8)])
    lai_c = np.array([0.1] + [geog._CLASS_LAI[k] for k in range(1, 8)])
    sand = np.clip(sand_c[cover] + 0.05 * n_t[0], 0.05, 0.95)
    clay = np.clip(clay_c[cover] + 0.03 * n_t[1], 0.02, 0.45)
    clay = np.minimum(clay, 0.98 - sand)
    lai = lai_c[cover] * np.clip(0.4 + p / 1000.0, 0.3, 1.4) * (1.0 - glacier)
    lai = np.maximum(lai * geog.seasonal_lai_factor(doy), 0.02)
    fields = {
        "elevation": z,
        "front_distance_km": d,
        "land_cover": cover,
        "sand": sand,
        "clay": clay,
        "lai": lai,
        "glacier_fraction": glacier,
        "irrigated_fraction": irr,
        "annual_precip_mm": p,
    }
    return np.stack([np.asarray(fields[k], np.float64) for k in _GEO_FIELDS])


def _latent(lat, lon, hours, *, length_km, node_hours, velocity_kmh, seed, purpose):
    """Unit-variance space-time fields (nt, ny, nx): correlated node fields every
    ``node_hours``, advected with ``velocity_kmh`` and blended linearly in time."""
    out = np.empty((len(hours), len(lat), len(lon)), np.float32)
    cache: dict[int, np.ndarray] = {}
    u, v = velocity_kmh
    for i, h in enumerate(hours):  # a few steps per block; each vectorised over cells
        k = int(np.floor(h / node_hours))
        w = h / node_hours - k
        fields = []
        for kk in (k, k + 1):
            if kk not in cache:
                t = kk * node_hours  # the node field moves with the flow
                yy = np.asarray(lat) - v * t / _KM
                xx = np.asarray(lon) - u * t / (_KM * _COS0)
                cache[kk] = _noise(yy, xx, length_km, seed, purpose, kk)[0]
            fields.append(cache[kk])
        out[i] = ((1.0 - w) * fields[0] + w * fields[1]) / np.sqrt((1.0 - w) ** 2 + w**2)
    return out


def _forcing_block(geo, lat, lon, times, *, seed, dt_hours):
    """Forcing of one block, stacked (variable, time, ny, nx) float32."""
    geo = np.asarray(geo)
    g = {k: geo[i] for i, k in enumerate(_GEO_FIELDS)}
    g["land_cover"] = g["land_cover"].astype(np.int8)
    times = np.asarray(times).astype("datetime64[s]")
    hours = (times - np.datetime64("2000-01-01T00:00:00")) / np.timedelta64(3600, "s")
    mid = hours - 0.5 * dt_hours
    storm = _latent(
        lat,
        lon,
        mid,
        length_km=40.0,
        node_hours=6.0,
        velocity_kmh=(20.0, -5.0),
        seed=seed,
        purpose=_PURPOSE["storm"],
    )
    synoptic = _latent(
        lat,
        lon,
        mid,
        length_km=300.0,
        node_hours=48.0,
        velocity_kmh=(30.0, 0.0),
        seed=seed,
        purpose=_PURPOSE["synoptic"],
    )
    # latitude correction of the Heihe temperature climatology: warmer to the south
    # (+0.9 K per degree in the annual mean) with a smaller seasonal cycle (-0.5 K per degree)
    lat = np.asarray(lat, np.float64)
    year0 = times.astype("datetime64[Y]").astype("datetime64[s]")
    doy = (times - year0) / np.timedelta64(86400, "s") + 1.0
    season = np.cos(2 * np.pi * (doy - 200.0) / 365.25)[:, None, None]
    south = (40.0 - lat)[None, :, None]
    offset = (0.9 * south - 0.5 * south * season).astype(np.float32)
    f = wx.make_forcing(
        g, lat, np.asarray(lon, np.float64), times, dt_hours, storm, synoptic, offset
    )
    return np.stack([f[k] for k in FORCING_ATTRS])


def _obs_block(lat, lon, passes, *, seed, swath_km, orbits_per_day, phase):
    """Standard-normal noise (time, ny, nx) where a swath sees the cell, NaN elsewhere.

    ``passes`` are 2 × day + (0 descending, 1 ascending); the ascending tracks are shifted
    by half the track spacing."""
    from xldas.filters._kernels import philox_normal_reference

    lat = np.asarray(lat, np.float64)
    lon = np.asarray(lon, np.float64)
    ky = np.round((lat + 360.0) * 1e4).astype(np.int64)
    kx = np.round((lon + 360.0) * 1e4).astype(np.int64)
    index = (ky[:, None] << 32) | kx[None, :]
    passes = np.asarray(passes).ravel()
    out = np.full((len(passes), lat.size, lon.size), np.nan, np.float32)
    for i, k in enumerate(passes):  # one or two overpasses per day
        day, asc = divmod(int(k), 2)
        shift = 0.5 * 360.0 / orbits_per_day * asc
        mask = swath_mask(lat, lon, day, swath_km, orbits_per_day, phase + shift)
        z = philox_normal_reference(index[mask], seed, int(k), _PURPOSE["obs"], 1)[..., 0]
        out[i][mask] = z
    return out


def swath_mask(lat, lon, day, swath_km, orbits_per_day, phase):
    from xldas.demo._observations import swath_mask as _mask

    return _mask(lat, lon, day, swath_km, orbits_per_day, phase)


# ============================================================================ datasets
def _grid(resolution, bbox):
    west, south, east, north = bbox
    if not (west < east and south < north):
        raise ConfigError(f"bbox must be (west, south, east, north), got {bbox}")
    if not 0.001 <= resolution <= 2.0:
        raise ConfigError(f"resolution must be within [0.001, 2] degrees, got {resolution}")
    return geog.grid(resolution, bbox)


def _coords(lat, lon):
    return {
        "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
        "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
    }


def _params(geo: dict[str, xr.DataArray], doy: float) -> xr.Dataset:
    from xldas.models import parameters_from_texture

    albedo_by_class = np.array([0.2, 0.35, 0.20, 0.12, 0.22, 0.18, 0.28, 0.32])
    cover = geo["land_cover"]
    albedo = xr.apply_ufunc(
        lambda c: albedo_by_class[c.astype(np.int64)],
        cover,
        dask="parallelized",
        output_dtypes=[float],
    )
    p = parameters_from_texture(
        geo["sand"],
        geo["clay"],
        lai=geo["lai"],
        elevation=geo["elevation"],
        glacier_fraction=geo["glacier_fraction"],
        albedo=albedo,
        ddf_snow=3.0,
        ddf_ice=6.0,
    )
    flags = sorted(geog.LAND_COVER)
    p["land_cover"] = cover.astype(np.int8).assign_attrs(
        long_name="land cover class",
        flag_values=flags,
        flag_meanings=" ".join(geog.LAND_COVER[k].split(" (")[0].replace(" ", "_") for k in flags),
        units="1",
    )
    woody = xr.where(cover == 3, 2.0, 0.0)
    p["vwc"] = (0.5 * geo["lai"] + woody * geo["lai"] / 3.5).assign_attrs(
        units="kg m-2",
        long_name="vegetation water content (0.5 kg m-2 per unit LAI, plus stems of forests)",
    )
    p["irrigated_fraction"] = geo["irrigated_fraction"].assign_attrs(
        units="1", long_name="irrigated cropland fraction of the cell"
    )
    p["annual_precip"] = geo["annual_precip_mm"].assign_attrs(
        units="mm a-1", long_name="climatological annual precipitation of the generator"
    )
    p.attrs.update(
        title="Pan-Third-Pole synthetic domain: land-model parameters",
        lai_day_of_year=float(doy),
    )
    return p


def _initial(params: xr.Dataset, geo: dict[str, xr.DataArray]) -> xr.Dataset:
    from xldas.models import initial_state

    sm = params["theta_wp"] + 0.5 * (params["theta_fc"] - params["theta_wp"])
    tmean = (
        273.15 + 6.5 - 0.006 * (geo["elevation"] - 1500.0) + 0.9 * (40.0 - geo["elevation"]["lat"])
    )
    return initial_state(
        params,
        sm=sm.reset_coords(drop=True),
        tsoil=tmean.reset_coords(drop=True),
        dtype=np.float32,
    )


def pan_tp(
    resolution: float = 0.01,
    start: str = "2019-07-01",
    days: int = 2,
    dt_hours: int = 3,
    seed: int = 0,
    *,
    bbox: tuple[float, float, float, float] = PAN_TP_BBOX,
    chunks: int | dict[str, int] | None = 250,
) -> xr.DataTree:
    """The synthetic Pan-Third-Pole domain as a lazily generated :class:`xarray.DataTree`.

    Nothing is computed or stored: every block of every variable is generated from the
    coordinates of its cells when (and only when) it is computed, deterministically from
    ``seed``; values do not depend on ``chunks`` nor on the extent.

    Parameters
    ----------
    resolution : grid spacing (degrees); 0.01 gives 2000 × 4000 cells over the default
        ``bbox``.
    start, days, dt_hours : initial time (UTC), length of the forcing and its step (h).
    seed : seed of every random field.
    bbox : (west, south, east, north) in degrees (default 65–105°E, 25–45°N).
    chunks : spatial chunk size in cells (an int for both, or ``{"lat": .., "lon": ..}``).

    Returns
    -------
    xarray.DataTree with the groups ``params`` (land-model parameters with ``vwc``,
    ``land_cover``, ``irrigated_fraction``, ``annual_precip``), ``forcing`` (time, lat,
    lon; one chunk per day), ``initial`` (float32 state valid at ``start``) and
    ``obs/smap`` (``tb_h``, ``tb_v`` and their 1-sigma errors, at 00 and 12 UTC).

    Examples
    --------
    >>> tree = pan_tp(resolution=0.2, days=1, chunks=50)
    >>> tree["obs/smap"]["tb_h"].sizes["time"], str(tree["initial"]["sm"].dtype)
    (2, 'float32')
    """
    if dt_hours not in (1, 2, 3, 4, 6, 8, 12, 24):
        raise ConfigError(f"dt_hours must divide 24, got {dt_hours}")
    if int(days) < 1:
        raise ConfigError(f"days must be at least 1, got {days}")
    seed = int(seed)
    lat, lon = _grid(float(resolution), tuple(bbox))
    if chunks is None:
        cy, cx = lat.size, lon.size
    elif isinstance(chunks, int):
        cy = cx = int(chunks)
    else:
        cy, cx = int(chunks.get("lat", lat.size)), int(chunks.get("lon", lon.size))
    lat_d = dsa.from_array(lat, chunks=cy)
    lon_d = dsa.from_array(lon, chunks=cx)
    t0 = pd.Timestamp(start)
    nt = int(days) * 24 // int(dt_hours)
    times = (t0 + pd.to_timedelta(np.arange(1, nt + 1) * int(dt_hours), "h")).values
    doy = float((t0 + pd.Timedelta(days=int(days) / 2)).day_of_year)
    coords = _coords(lat, lon)

    g = dsa.blockwise(
        _geo_block,
        "fij",
        lat_d,
        "i",
        lon_d,
        "j",
        new_axes={"f": len(_GEO_FIELDS)},
        dtype=np.float64,
        seed=seed,
        doy=doy,
        meta=np.empty((0, 0, 0)),
    )
    geo = {
        k: xr.DataArray(g[i], dims=("lat", "lon"), coords=coords) for i, k in enumerate(_GEO_FIELDS)
    }
    geo["land_cover"] = geo["land_cover"].astype(np.int8)
    params = _params(geo, doy)

    times_d = dsa.from_array(times, chunks=max(1, 24 // int(dt_hours)))
    f = dsa.blockwise(
        _forcing_block,
        "vtij",
        g,
        "fij",
        lat_d,
        "i",
        lon_d,
        "j",
        times_d,
        "t",
        new_axes={"v": len(FORCING_ATTRS)},
        concatenate=True,
        dtype=np.float32,
        seed=seed,
        dt_hours=int(dt_hours),
        meta=np.empty((0, 0, 0, 0), np.float32),
    )
    fcoords = {"time": ("time", times.astype("datetime64[ns]")), **coords}
    forcing = xr.Dataset(
        {
            k: (("time", "lat", "lon"), f[i], {"units": u, "long_name": ln, "standard_name": sn})
            for i, (k, (u, ln, sn)) in enumerate(FORCING_ATTRS.items())
        },
        coords=fcoords,
    )
    forcing["time"].attrs.update(long_name="end of the averaging interval (UTC)")
    forcing.attrs.update(
        title="Pan-Third-Pole synthetic domain: forcing",
        comment="xldas.demo._weather.make_forcing on counter-based latent fields, per block",
        time_step_hours=int(dt_hours),
    )

    initial = _initial(params, geo).assign_coords(time=np.datetime64(t0.to_datetime64(), "ns"))
    initial.attrs.update(title="Pan-Third-Pole synthetic domain: initial state")

    obs = _observations(params, initial, lat_d, lon_d, t0, int(days), times, seed, coords)
    args = {
        "resolution": float(resolution),
        "start": t0.isoformat(),
        "days": int(days),
        "dt_hours": int(dt_hours),
        "seed": seed,
        "bbox": list(bbox),
    }
    root = xr.Dataset(
        attrs={
            "title": "xldas synthetic Pan-Third-Pole domain (scale benchmark)",
            "source": "xldas.demo.pan_tp: generated lazily per chunk, counter-based randomness",
            "Conventions": "CF-1.10",
            "arguments": json.dumps(args, sort_keys=True),
            "comment": (
                "Synthetic but physically plausible: shaped after the Tibetan Plateau and its "
                "surroundings; values are NOT observations of them."
            ),
        }
    )
    tree = xr.DataTree.from_dict(
        {"/": root, "params": params, "forcing": forcing, "initial": initial, "obs/smap": obs}
    )
    return add_history(tree, f"xldas.demo.pan_tp({json.dumps(args)})")


def _observations(params, initial, lat_d, lon_d, t0, days, times, seed, coords) -> xr.Dataset:
    from xldas.demo._osse import OSSE_DEFAULTS
    from xldas.obs import TauOmega

    cfg: dict[str, Any] = OSSE_DEFAULTS["observations"]["smap"]
    anomaly = xr.DataArray(
        dsa.blockwise(
            lambda la, lo: _noise(la, lo, 50.0, seed, _PURPOSE["sm"], 0)[0],
            "ij",
            lat_d,
            "i",
            lon_d,
            "j",
            dtype=np.float64,
            meta=np.empty((0, 0)),
        ),
        dims=("lat", "lon"),
        coords=coords,
    )
    truth = initial.copy()
    truth["sm"] = (
        (initial["sm"] + 0.04 * anomaly)
        .clip(params["theta_r"] + 0.01, params["theta_s"] - 0.01)
        .astype(np.float32)
        .transpose(*initial["sm"].dims)
    )
    op = TauOmega.smap()
    pred = op(truth, params)
    valid = pd.DatetimeIndex(times)
    overpass = [
        (t0.normalize() + pd.Timedelta(days=d, hours=h), 2 * d + k)
        for d in range(days + 1)
        for k, h in enumerate((0, 12))
    ]
    keep = [(t, k) for t, k in overpass if t0 < t <= valid[-1]]
    obs_times = pd.DatetimeIndex([t for t, _ in keep])
    pass_index = np.array([k for _, k in keep], np.int64)
    ds = {}
    for iv, v in enumerate(op.variables):
        with warnings.catch_warnings():  # one block per overpass time: intended
            warnings.simplefilter("ignore", PerformanceWarning)
            noise = dsa.blockwise(
                _obs_block,
                "tij",
                lat_d,
                "i",
                lon_d,
                "j",
                dsa.from_array(pass_index, chunks=1),
                "t",
                dtype=np.float32,
                seed=seed + 7919 * iv,
                swath_km=cfg["swath_km"],
                orbits_per_day=cfg["orbits_per_day"],
                phase=97.3,
                meta=np.empty((0, 0, 0), np.float32),
            )
        nz = xr.DataArray(
            noise, dims=("time", "lat", "lon"), coords={"time": obs_times.values, **coords}
        )
        err = np.float32(cfg["error"])
        ds[v] = (
            (pred[v].astype(np.float32) + err * nz)
            .transpose(*nz.dims)
            .assign_attrs(
                units="K", long_name=f"brightness temperature, {v[-1].upper()} polarisation"
            )
        )
        ds[f"{v}_err"] = (nz * 0 + err).assign_attrs(units="K", long_name=f"1-sigma error of {v}")
    out = xr.Dataset(ds)
    out.attrs.update(
        title="Pan-Third-Pole synthetic domain: SMAP-like brightness temperatures",
        operator=repr(op),
        sensor="smap",
        error_std=str(cfg["error"]),
        overpass_hours_utc="0 (descending), 12 (ascending)",
        comment=(
            "TauOmega.smap applied to a truth = initial state + 0.04 m3 m-3 soil-moisture "
            "anomaly (50 km), plus 2 K Gaussian noise inside the swaths (no truth run)."
        ),
    )
    return out


# ============================================================================ experiment
def pan_tp_experiment(
    store: str | None = None,
    *,
    resolution: float | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    members: int | None = None,
    chunks: int | None = None,
    cycle: str | None = None,
    cycles: int = 2,
    overrides: dict[str, Any] | None = None,
):
    """The Pan-TP experiment of ``catalogs/experiments/pan_tp_letkf.yaml``, overridden.

    The one definition of the scale experiment (benchmarks and tests load it here).

    Parameters
    ----------
    store : output store (``output.store``; the store is overwritten).
    resolution, bbox : grid spacing (degrees) and (west, south, east, north) box of the
        generated domain (``demo.resolution``, ``demo.bbox``).
    members : ensemble size (``ensemble.members``).
    chunks : spatial chunk size in cells (``output.chunks``).
    cycle, cycles : run ``cycles`` analysis cycles of length ``cycle`` (a pandas
        duration, e.g. ``"12h"``) from ``period.start``, with the forcing days they need.
    overrides : further values by dotted key, a number indexing a list, e.g.
        ``{"filter.loc_radius": 10.0, "observations.0.thinning": 1}``.

    Returns
    -------
    xldas.cycle.Experiment

    Examples
    --------
    >>> exp = pan_tp_experiment("/tmp/pan_tp", resolution=0.1, members=8, chunks=100, cycle="12h")
    >>> exp.ensemble.members, exp.demo["resolution"], exp.filter.method, len(exp.cycle_times())
    (8, 0.1, 'letkf', 2)
    """
    import yaml

    from xldas._paths import catalog_dir
    from xldas.cycle import Experiment

    path = catalog_dir() / "experiments" / "pan_tp_letkf.yaml"
    raw = yaml.safe_load(path.read_text())
    values: dict[str, Any] = {}
    if store is not None:
        values.update({"output.store": str(store), "output.overwrite": True})
    if resolution is not None:
        values["demo.resolution"] = float(resolution)
    if bbox is not None:
        values["demo.bbox"] = [float(v) for v in bbox]
    if members is not None:
        values["ensemble.members"] = int(members)
    if chunks is not None:
        values["output.chunks"] = {"lat": int(chunks), "lon": int(chunks)}
    if cycle is not None:
        start = pd.Timestamp(raw["period"]["start"])
        length = int(cycles) * pd.Timedelta(cycle)
        values["period.cycle"] = cycle
        values["period.end"] = (start + length).isoformat()
        values["demo.days"] = int(np.ceil(length / pd.Timedelta(days=1)))
    values.update(overrides or {})
    for key, value in values.items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return Experiment.from_dict(raw)
