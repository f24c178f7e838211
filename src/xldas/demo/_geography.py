"""Static geography of the embedded Heihe domain: grid, relief, land cover, soils, regions, sites.

Everything here is plain NumPy on 2-D ``(lat, lon)`` arrays, generated from a seed. The
geography is synthetic but shaped after the real basin (values are approximate and
documented as such):

* the **Qilian mountain front** runs WNW–ESE from Yumen (97.6°E, 39.75°N) past Jiuquan,
  Zhangye and Shandan to 101.6°E, 38.25°N; south of it the Qilian rise to ≈ 4500 m with
  a western massif (Tuolai / Shule Nanshan) above 5000 m that carries the glaciers, and the
  upper Heihe valley (Qilian town, Arou) cuts down to ≈ 3000 m;
* north of the front the Hexi corridor plain (Zhangye–Jiuquan oases, ≈ 1500 m) slopes
  gently to the terminal lakes of Ejina (≈ 900 m); the Badain Jaran sand sea lies in the
  east of the downstream reach and the Beishan hills in the north-west.

References for the approximate values: Cheng et al. (2014, Natl. Sci. Rev. 1:413–428,
"Integrated study of the water–ecosystem–economy in the Heihe River Basin"); Li et al.
(2013, BAMS 94:1145–1160, HiWATER) for the station names and coordinates.
"""

from __future__ import annotations

import numpy as np
from matplotlib.path import Path

__all__ = [
    "CRNS_PROBES",
    "LAND_COVER",
    "REGION_NAMES",
    "REGION_POLYGONS",
    "SITES",
    "geography",
    "grid",
    "smooth_noise",
]

KM_PER_DEG = 111.32
#: latitude at which longitude distances are evaluated (centre of the domain)
_LAT0 = 40.1

#: Qilian mountain front (lon, lat): south of it is the upstream mountain zone.
_FRONT = np.array(
    [
        (96.5, 40.1),
        (97.6, 39.75),
        (98.4, 39.4),
        (99.3, 39.1),
        (100.2, 38.78),
        (101.0, 38.5),
        (101.6, 38.25),
        (102.5, 38.0),
    ]
)

#: Approximate sub-basin outlines (lon, lat). Not surveyed boundaries: they follow the
#: mountain front (upstream/midstream, near the Yingluoxia gauge) and a line north of the
#: Zhengyixia gauge (midstream/downstream).
REGION_POLYGONS: dict[str, list[tuple[float, float]]] = {
    "upstream": [
        (97.6, 39.75),
        (98.4, 39.4),
        (99.3, 39.1),
        (100.2, 38.78),
        (101.0, 38.5),
        (101.6, 38.25),
        (101.2, 37.75),
        (100.1, 37.7),
        (99.0, 38.1),
        (98.0, 38.5),
        (97.6, 39.0),
    ],
    "midstream": [
        (97.6, 39.75),
        (98.4, 39.4),
        (99.3, 39.1),
        (100.2, 38.78),
        (101.0, 38.5),
        (101.6, 38.25),
        (101.8, 38.6),
        (100.9, 39.3),
        (100.1, 39.8),
        (99.5, 40.1),
        (98.7, 40.2),
        (98.0, 40.05),
    ],
    "downstream": [
        (98.7, 40.2),
        (99.5, 40.1),
        (100.1, 39.8),
        (100.6, 40.3),
        (101.4, 41.0),
        (101.9, 41.7),
        (101.6, 42.5),
        (100.9, 42.6),
        (100.2, 42.2),
        (99.6, 41.5),
        (99.0, 40.8),
    ],
}
#: integer codes of the ``regions`` mask (0 = outside the basin)
REGION_NAMES = {0: "outside", 1: "upstream", 2: "midstream", 3: "downstream"}

#: Named sites, one per sub-basin: HiWATER stations, approximate coordinates (lon, lat,
#: station elevation m, sub-basin).
SITES = {
    "Arou": (100.4643, 38.0473, 3033.0, "upstream"),
    "Daman": (100.3722, 38.8555, 1556.0, "midstream"),
    "Sidaoqiao": (101.1374, 42.0012, 873.0, "downstream"),
}

#: Cosmic-ray neutron probe sites (approximate positions of HiWATER-era stations).
CRNS_PROBES = {
    "Arou": (100.4643, 38.0473),
    "Dashalong": (98.9406, 38.8399),
    "Daman": (100.3722, 38.8555),
    "Huazhaizi": (100.3201, 38.7659),
    "Sidaoqiao": (101.1374, 42.0012),
}

#: Land-cover classes (code: name).
LAND_COVER = {
    1: "glacier and permanent snow",
    2: "alpine meadow",
    3: "mountain forest (Qinghai spruce)",
    4: "steppe and desert steppe",
    5: "irrigated cropland (oasis)",
    6: "gobi (stony desert)",
    7: "sandy desert",
}

# peak-season LAI, sand and clay fraction per land-cover class
_CLASS_LAI = {1: 0.05, 2: 2.0, 3: 3.5, 4: 0.8, 5: 3.5, 6: 0.15, 7: 0.05}
_CLASS_SAND = {1: 0.60, 2: 0.35, 3: 0.30, 4: 0.50, 5: 0.30, 6: 0.72, 7: 0.92}
_CLASS_CLAY = {1: 0.06, 2: 0.16, 3: 0.20, 4: 0.12, 5: 0.18, 6: 0.08, 7: 0.03}

# oasis centres (lon, lat, radius km): Zhangye, Linze, Gaotai, Jiuquan, Jiayuguan, Jinta,
# Dingxin, Ejina
_OASES = [
    (100.45, 38.93, 22.0),
    (100.16, 39.15, 11.0),
    (99.82, 39.38, 11.0),
    (98.50, 39.72, 16.0),
    (98.29, 39.80, 7.0),
    (98.90, 40.00, 10.0),
    (99.52, 40.30, 5.0),
    (101.05, 41.95, 9.0),
]

# upper Heihe valley (Yingluoxia → Qilian town → Arou → Babao headwaters)
_VALLEY = np.array(
    [
        (100.18, 38.80),
        (100.24, 38.45),
        (100.25, 38.18),
        (100.46, 38.05),
        (100.9, 37.85),
        (101.4, 37.65),
    ]
)


def grid(resolution: float = 0.05, bbox=(97.0, 37.5, 102.0, 42.7)) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre latitudes (ascending) and longitudes of a regular grid over ``bbox``.

    ``bbox`` is ``(west, south, east, north)`` in degrees; the number of cells is the
    nearest integer to the extent divided by ``resolution``.
    """
    west, south, east, north = bbox
    nlon = max(2, round((east - west) / resolution))
    nlat = max(2, round((north - south) / resolution))
    lon = west + (np.arange(nlon) + 0.5) * resolution
    lat = south + (np.arange(nlat) + 0.5) * resolution
    return lat, lon


def _km_xy(lat2, lon2):
    x = (lon2 - 99.5) * KM_PER_DEG * np.cos(np.deg2rad(_LAT0))
    y = (lat2 - _LAT0) * KM_PER_DEG
    return x, y


def smooth_noise(
    rng: np.random.Generator, shape, dx_km: float, dy_km: float, length_km: float, n: int = 0
):
    """Unit-variance Gaussian random field(s) with a Gaussian correlation of ``length_km``.

    White noise on a grid padded by three correlation lengths is filtered in Fourier space
    and cropped, so there is no wrap-around correlation across the domain edges. With
    ``n > 0`` a stack of ``n`` independent fields is returned (first axis).
    """
    ny, nx = shape
    py = ny + 2 * int(np.ceil(3 * length_km / dy_km))
    px = nx + 2 * int(np.ceil(3 * length_km / dx_km))
    ky = np.fft.fftfreq(py, d=dy_km)[:, None]
    kx = np.fft.rfftfreq(px, d=dx_km)[None, :]
    # Gaussian correlation exp(-r²/(2ℓ²)) ⇔ filter amplitude exp(-π² ℓ² k² ) (on k in cycles/km)
    filt = np.exp(-((np.pi * length_km) ** 2) * (kx**2 + ky**2))
    m = max(n, 1)
    white = rng.standard_normal((m, py, px))
    field = np.fft.irfft2(np.fft.rfft2(white) * filt, s=(py, px))
    oy, ox = (py - ny) // 2, (px - nx) // 2
    field = field[:, oy : oy + ny, ox : ox + nx]
    field /= field.std(axis=(1, 2), keepdims=True)
    return field if n > 0 else field[0]


def _front_lat(lon):
    return np.interp(lon, _FRONT[:, 0], _FRONT[:, 1])


def _dist_to_polyline_km(lat2, lon2, line):
    x, y = _km_xy(lat2, lon2)
    lx, ly = _km_xy(line[:, 1], line[:, 0])
    best = np.full(x.shape, np.inf)
    for i in range(len(line) - 1):  # loop over a handful of segments, vectorised over cells
        ax, ay, bx, by = lx[i], ly[i], lx[i + 1], ly[i + 1]
        vx, vy = bx - ax, by - ay
        t = np.clip(((x - ax) * vx + (y - ay) * vy) / (vx * vx + vy * vy), 0.0, 1.0)
        best = np.minimum(best, np.hypot(x - ax - t * vx, y - ay - t * vy))
    return best


def region_mask(lat, lon) -> np.ndarray:
    """Integer sub-basin mask (codes in :data:`REGION_NAMES`) from the polygons."""
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    pts = np.column_stack([lon2.ravel(), lat2.ravel()])
    mask = np.zeros(lat2.size, dtype=np.int8)
    for code, name in ((1, "upstream"), (2, "midstream"), (3, "downstream")):
        inside = Path(np.asarray(REGION_POLYGONS[name])).contains_points(pts)
        mask[inside & (mask == 0)] = code
    return mask.reshape(lat2.shape)


def polygon_wkt(name: str) -> str:
    """WKT ``POLYGON`` string of a sub-basin outline (closed ring, lon lat order)."""
    ring = [*REGION_POLYGONS[name], REGION_POLYGONS[name][0]]
    return "POLYGON ((" + ", ".join(f"{x:.2f} {y:.2f}" for x, y in ring) + "))"


def seasonal_lai_factor(doy: float) -> float:
    """Fraction of the peak-season LAI at day of year ``doy`` (growing season Apr–Oct)."""
    s = np.sin(np.pi * (doy - 110.0) / 200.0)
    return float(0.15 + 0.85 * (max(s, 0.0) if 110.0 <= doy <= 310.0 else 0.0) ** 1.5)


def geography(lat, lon, rng: np.random.Generator, mid_doy: float) -> dict[str, np.ndarray]:
    """Static fields on the ``(lat, lon)`` grid.

    Returns a dict of 2-D arrays: ``elevation`` (m), ``front_distance_km`` (positive south
    of the Qilian front), ``land_cover`` (codes of :data:`LAND_COVER`), ``sand``, ``clay``
    (fractions), ``lai`` (for day of year ``mid_doy``), ``glacier_fraction``,
    ``irrigated_fraction``, ``regions``.
    """
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    dy = abs(lat[1] - lat[0]) * KM_PER_DEG
    dx = abs(lon[1] - lon[0]) * KM_PER_DEG * np.cos(np.deg2rad(_LAT0))
    shape = lat2.shape

    # ---- relief
    d = (_front_lat(lon2) - lat2) * KM_PER_DEG  # km, > 0 in the mountains
    dm = np.maximum(d, 0.0)
    dn = np.maximum(-d, 0.0)
    rise = 1.0 - np.exp(-dm / 30.0)
    ridges = (
        300.0 * np.sin(2 * np.pi * dm / 45.0 + 2.0 * smooth_noise(rng, shape, dx, dy, 40.0))
        + 300.0 * smooth_noise(rng, shape, dx, dy, 10.0)
    ) * rise
    massif = 600.0 * np.exp(-(((lon2 - 98.3) / 0.8) ** 2)) * rise
    valley_w = np.exp(-((_dist_to_polyline_km(lat2, lon2, _VALLEY) / 9.0) ** 2))
    mountains = (
        1700.0
        + 2700.0 * rise
        + massif
        + ridges * (1.0 - valley_w)
        - 1250.0 * valley_w * (1.0 - np.exp(-dm / 20.0))
    )
    plains = (
        np.maximum(1550.0 - 1.75 * dn, 880.0)
        + 350.0
        * np.exp(-(((lon2 - 101.9) / 0.5) ** 2) - ((lat2 - 40.2) / 0.7) ** 2)  # Badain Jaran
        + 600.0 * np.exp(-(((lon2 - 97.6) / 0.8) ** 2) - ((lat2 - 41.4) / 0.8) ** 2)  # Beishan
        + 40.0 * smooth_noise(rng, shape, dx, dy, 8.0)
    )
    # blend across the front over ~5 km so the foothills are continuous
    blend = 1.0 / (1.0 + np.exp(-np.clip(d, -60.0, 60.0) / 2.5))
    elevation = blend * mountains + (1.0 - blend) * plains

    # ---- glaciers (only where the relief rises above the ~4650 m equilibrium line)
    glacier = np.clip((elevation - 4650.0) / 800.0, 0.0, 0.6) * (d > 0)

    # ---- oases (irrigated fraction of the cell)
    x, y = _km_xy(lat2, lon2)
    irr = np.zeros(shape)
    for olon, olat, radius in _OASES:  # eight named oases, each vectorised over cells
        ox, oy = _km_xy(np.float64(olat), np.float64(olon))
        irr = np.maximum(irr, 0.85 * np.exp(-(((x - ox) ** 2 + (y - oy) ** 2) / radius**2)))
    irr = irr * np.clip(1.0 + 0.3 * smooth_noise(rng, shape, dx, dy, 6.0), 0.3, 1.3)
    irr = np.where((irr > 0.08) & (d <= 5.0), np.clip(irr, 0.0, 0.9), 0.0)

    # ---- land cover
    sandsea = np.exp(-(((lon2 - 101.9) / 0.55) ** 2) - ((lat2 - 40.2) / 0.8) ** 2) + 0.5 * np.exp(
        -(((lon2 - 100.2) / 0.4) ** 2) - ((lat2 - 40.9) / 0.3) ** 2
    )
    patch = smooth_noise(rng, shape, dx, dy, 5.0)
    cover = np.full(shape, 6, dtype=np.int8)  # gobi by default
    cover[(sandsea + 0.15 * patch) > 0.45] = 7
    steppe = (d > -25) & (elevation < 3300)
    cover[steppe] = 4
    cover[(elevation >= 2500) & (elevation < 3300) & (patch > 0.2) & (d > 0)] = 3
    cover[(elevation >= 3300) & (d > 0)] = 2
    cover[glacier > 0.3] = 1
    cover[irr >= 0.3] = 5

    sand_c = np.array([0.5] + [_CLASS_SAND[k] for k in range(1, 8)])
    clay_c = np.array([0.1] + [_CLASS_CLAY[k] for k in range(1, 8)])
    lai_c = np.array([0.1] + [_CLASS_LAI[k] for k in range(1, 8)])
    sand = np.clip(sand_c[cover] + 0.05 * smooth_noise(rng, shape, dx, dy, 10.0), 0.05, 0.95)
    clay = np.clip(clay_c[cover] + 0.03 * smooth_noise(rng, shape, dx, dy, 10.0), 0.02, 0.45)
    clay = np.minimum(clay, 0.98 - sand)
    # cell-mean peak LAI: oasis cells mix cropland with their surroundings
    lai_peak = np.where(cover == 5, irr * _CLASS_LAI[5] + (1 - irr) * _CLASS_LAI[4], lai_c[cover])
    lai_peak = lai_peak * np.clip(1.0 + 0.15 * patch, 0.6, 1.4) * (1.0 - glacier)
    lai = np.maximum(lai_peak * seasonal_lai_factor(mid_doy), 0.02)

    return {
        "elevation": elevation,
        "front_distance_km": d,
        "land_cover": cover,
        "sand": sand,
        "clay": clay,
        "lai": lai,
        "glacier_fraction": glacier,
        "irrigated_fraction": irr,
        "regions": region_mask(lat, lon),
    }
