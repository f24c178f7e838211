"""Synthetic meteorological forcing for the embedded Heihe domain (plain NumPy).

The forcing is built from a few latent random fields and climatological normals:

* **precipitation**: a latent Gaussian field ``z`` (unit variance, Gaussian spatial
  correlation of 40 km, AR(1) in time with an e-folding time of 6 h, advected eastward at
  20 km h⁻¹) is censored at a threshold ``q = Φ⁻¹(1 − p_wet)``; the rain rate is
  ``s·(z − q)`` where ``z > q``. ``p_wet`` and ``s`` are chosen per cell and time so that the
  expected rate equals the climatology (``E[(z−q)⁺] = φ(q) − q(1 − Φ(q))``). Storms are
  therefore intermittent, spatially coherent and move; the long-run mean follows the
  climatology: annual totals of ≈ 350–650 mm in the Qilian (increasing with elevation,
  ≈ 400 mm at Arou), ≈ 110–130 mm in the Zhangye oasis and ≈ 30 mm at Ejina, with 70 % falling
  in June–September and an afternoon maximum of convective rain;
* **air temperature**: annual mean 6.5 °C at 1500 m (Zhangye 7 °C), lapse rate
  −6.0 K km⁻¹, seasonal half-range 15 K (19 K in the continental north), diurnal half-range
  5–7.5 K peaking at 15:00 local solar time, synoptic anomalies (2.5 K, 300 km, 2 days) and
  cooling under cloud;
* **radiation**: shortwave from the interval-mean cosine of the solar zenith angle (6 sub-
  samples per step), a clear-sky transmissivity increasing with elevation and a cloud
  factor derived from the latent precipitation field; longwave from the Brutsaert (1975)
  clear-sky emissivity with the Crawford & Duchon (1999) cloud correction;
* humidity from a relative-humidity climatology (moist mountains, dry desert, wetter under
  cloud and at night), surface pressure from the standard atmosphere at the cell elevation,
  wind with a diurnal cycle, synoptic variability and gusts under storms.

Climatological numbers are approximate station normals of the basin (Zhangye, Jiuquan,
Ejina, Qilian, Yeniugou; Cheng et al. 2014, Natl. Sci. Rev. 1:413) and are documented here
as such. Variables follow DESIGN.md's forcing contract; ``precip`` is the mean over the step
ending at the timestamp, radiation is the interval mean, the other variables are evaluated
at the interval midpoint.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from xldas.demo._geography import _LAT0, KM_PER_DEG

__all__ = ["annual_precip_mm", "ar1_fields", "make_forcing", "weather"]

SIGMA_SB = 5.670374419e-8
#: monthly fractions of the annual precipitation (Jan..Dec), Hexi corridor / Qilian
_MONTHLY = np.array([1.0, 1.5, 3.0, 4.5, 9.0, 14.0, 20.0, 21.0, 13.0, 6.0, 2.5, 1.0])
_MONTHLY = _MONTHLY / _MONTHLY.sum()


def annual_precip_mm(geo, lon) -> np.ndarray:
    """Climatological annual precipitation (mm yr⁻¹) from elevation and distance to the front."""
    d = geo["front_distance_km"]
    z = geo["elevation"]
    lon = np.asarray(lon)[None, :]
    mountains = (130.0 + 0.14 * np.maximum(z - 1550.0, 0.0)) * (1.0 + 0.08 * (lon - 99.5))
    plains = 25.0 + 105.0 * np.exp(-np.maximum(-d, 0.0) / 120.0)
    w = 1.0 / (1.0 + np.exp(-np.clip(d, -60.0, 60.0) / 5.0))
    return w * mountains + (1.0 - w) * plains


def _daily_fraction(doy):
    """Fraction of the annual total falling per day at (fractional) day of year ``doy``."""
    mid = (np.arange(12) + 0.5) * 365.25 / 12.0
    x = np.concatenate([mid - 365.25, mid, mid + 365.25])
    y = np.tile(_MONTHLY * 12.0 / 365.25, 3)
    return np.interp(doy, x, y)


def _linear_weights(pos, n):
    """Matrix ``(len(pos), n)`` of linear-interpolation weights at fractional indices ``pos``."""
    eye = np.eye(n, dtype=np.float32)
    return np.stack([np.interp(pos, np.arange(n), eye[:, j]) for j in range(n)], axis=1).astype(
        np.float32
    )


def ar1_fields(
    rng: np.random.Generator,
    nt: int,
    shape,
    dx_km: float,
    dy_km: float,
    length_km: float,
    tau_hours: float,
    dt_hours: float,
    velocity_kmh=(0.0, 0.0),
) -> np.ndarray:
    """``nt`` unit-variance Gaussian fields, AR(1) in time and advected, as ``(nt, ny, nx)`` float32.

    The field evolves in Fourier space on a grid padded by three correlation lengths:
    ``Z(t) = a·shift(Z(t−1)) + √(1−a²)·F·W(t)`` with ``a = exp(−dt/τ)``, ``F`` the Gaussian
    filter of correlation length ``length_km`` and ``shift`` a translation by
    ``velocity_kmh·dt``. The first field is drawn from the stationary distribution.
    """
    ny, nx = shape
    c = int(length_km // (6.0 * max(dx_km, dy_km)))
    if c > 1:  # smooth fields: generate on a coarser grid and interpolate linearly
        coarse = ar1_fields(
            rng,
            nt,
            (ny // c + 2, nx // c + 2),
            dx_km * c,
            dy_km * c,
            length_km,
            tau_hours,
            dt_hours,
            velocity_kmh,
        )
        wy = _linear_weights(np.arange(ny) / c + 0.5, coarse.shape[1])
        wx = _linear_weights(np.arange(nx) / c + 0.5, coarse.shape[2])
        return np.einsum("ia,tab,jb->tij", wy, coarse, wx, optimize=True).astype(np.float32)
    py = ny + 2 * int(np.ceil(3 * length_km / dy_km))
    px = nx + 2 * int(np.ceil(3 * length_km / dx_km))
    ky = np.fft.fftfreq(py, d=dy_km)[:, None]
    kx = np.fft.rfftfreq(px, d=dx_km)[None, :]
    filt = np.exp(-((np.pi * length_km) ** 2) * (kx**2 + ky**2))
    kxf = np.fft.fftfreq(px, d=dx_km)[None, :]
    var = np.mean(np.exp(-((np.pi * length_km) ** 2) * (kxf**2 + ky**2)) ** 2)
    filt = filt / np.sqrt(var)
    u, v = velocity_kmh
    shift = np.exp(-2j * np.pi * (kx * u + ky * v) * dt_hours)
    a = float(np.exp(-dt_hours / tau_hours))
    b = np.sqrt(1.0 - a * a)
    oy, ox = (py - ny) // 2, (px - nx) // 2
    out = np.empty((nt, ny, nx), dtype=np.float32)
    spec = np.fft.rfft2(rng.standard_normal((py, px))) * filt
    for k in range(nt):  # time recursion (each step vectorised over the grid)
        if k:
            spec = a * shift * spec + b * np.fft.rfft2(rng.standard_normal((py, px))) * filt
        out[k] = np.fft.irfft2(spec, s=(py, px))[oy : oy + ny, ox : ox + nx]
    return out


def _time_axes(times, lon, dt_hours):
    """Fractional day of year and local solar hour at the interval midpoints, (nt, 1, nx)."""
    t = np.asarray(times, dtype="datetime64[s]") - np.timedelta64(int(dt_hours * 1800), "s")
    year0 = t.astype("datetime64[Y]").astype("datetime64[s]")
    doy = ((t - year0) / np.timedelta64(86400, "s") + 1.0)[:, None, None]
    hour_utc = ((t - t.astype("datetime64[D]")) / np.timedelta64(3600, "s"))[:, None, None]
    return doy, hour_utc


def _mean_cos_zenith(times, lat, lon, dt_hours, nsub=6):
    """Interval-mean cosine of the solar zenith angle (clipped at 0), shape (nt, ny, nx)."""
    phi = np.deg2rad(lat)[None, :, None]
    acc = 0.0
    end = np.asarray(times, dtype="datetime64[s]")
    for j in range(nsub):  # sub-samples inside the interval
        t = end - np.timedelta64(int(dt_hours * 3600 * (1.0 - (j + 0.5) / nsub)), "s")
        year0 = t.astype("datetime64[Y]").astype("datetime64[s]")
        doy = ((t - year0) / np.timedelta64(86400, "s") + 1.0)[:, None, None]
        hour = ((t - t.astype("datetime64[D]")) / np.timedelta64(3600, "s"))[:, None, None]
        decl = np.deg2rad(23.44) * np.sin(2 * np.pi * (284.0 + doy) / 365.0)
        omega = np.deg2rad(15.0 * (hour + lon[None, None, :] / 15.0 - 12.0))
        cz = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(omega)
        acc = acc + np.maximum(cz, 0.0)
    return acc / nsub


def make_forcing(geo, lat, lon, times, dt_hours, latent, synoptic, tair_error=None):
    """Forcing variables (dict of ``(time, lat, lon)`` float32 arrays) from latent fields.

    ``latent`` is the precipitation/cloud field, ``synoptic`` the large-scale anomaly field
    (both unit variance, ``(nt, ny, nx)``); ``tair_error`` (K) is added to the air
    temperature when given (the degraded forcing of the twin experiment).
    """
    f32 = np.float32
    z = geo["elevation"][None].astype(f32)
    d = geo["front_distance_km"][None].astype(f32)
    dn = np.maximum(-d, f32(0.0))
    irr = geo["irrigated_fraction"][None].astype(f32)
    desert = np.isin(geo["land_cover"], (6, 7))[None]
    mountain = d > 0
    doy, hour_utc = _time_axes(times, lon, dt_hours)
    hloc = (hour_utc + lon[None, None, :] / 15.0).astype(f32)
    doy = doy.astype(f32)
    diurnal = np.cos(2 * np.pi * (hloc - 15.0) / 24.0).astype(f32)

    # ---- precipitation (kg m-2 s-1, mean over the step)
    # a domain other than the Heihe gives its own climatology as geo["annual_precip_mm"]
    annual = geo["annual_precip_mm"] if "annual_precip_mm" in geo else annual_precip_mm(geo, lon)
    daily = annual[None].astype(f32) * _daily_fraction(doy).astype(f32)  # mm d-1
    # wet-step probability: 0.3·m/(m+2) for 3-hourly steps, growing as √dt for longer steps
    p_wet = np.minimum(0.3 * daily / (daily + 2.0) * np.sqrt(dt_hours / 3.0), 0.5)
    q = ndtri(1.0 - np.clip(p_wet, 1e-4, 0.5).astype(np.float64)).astype(f32)
    expect = np.exp(-0.5 * q * q) / np.sqrt(2 * np.pi) - q * (1.0 - ndtr(q))
    conv = 1.0 + 0.5 * np.cos(2 * np.pi * (hloc - 18.0) / 24.0)  # afternoon convection
    step_mean = daily * dt_hours / 24.0 * conv  # mm per step
    precip = np.maximum(latent - q, 0.0) * (step_mean / expect) / (dt_hours * 3600.0)
    cloud = ndtr(2.0 * (latent - q) + 1.5)

    # ---- air temperature (K)
    amp = 15.0 + 2.0 * np.clip(dn / 400.0, 0.0, 1.0)
    drange = 6.0 + 1.5 * desert - 1.5 * irr - 1.0 * mountain
    tair_c = (
        6.5
        + amp * np.cos(2 * np.pi * (doy - 200.0) / 365.25)
        - 0.0060 * (z - 1500.0)
        + drange * diurnal * (1.0 - 0.5 * cloud)
        + 2.5 * synoptic
        - 2.5 * cloud
    )
    if tair_error is not None:
        tair_c = tair_c + tair_error
    tair = tair_c + 273.15

    # ---- pressure (Pa): standard atmosphere, with synoptic highs in cold anomalies
    psurf = 101325.0 * (1.0 - 2.25577e-5 * z) ** 5.25588 * (1.0 - 0.003 * synoptic)

    # ---- humidity (kg kg-1) from relative humidity
    rh_base = np.where(
        mountain, 0.50 + 0.05 * (z - 3000.0) / 1000.0, 0.28 + 0.15 * np.exp(-dn / 100.0)
    )
    rh = rh_base + 0.12 * irr + 0.08 * np.cos(2 * np.pi * (doy - 200.0) / 365.25)
    rh = np.clip(rh - 0.12 * diurnal + 0.35 * cloud, 0.05, 0.98)
    es = 611.2 * np.exp(17.67 * tair_c / (tair_c + 243.5))
    e = rh * es
    qair = 0.622 * e / (psurf - 0.378 * e)

    # ---- radiation (W m-2)
    s0 = 1361.0 * (1.0 + 0.033 * np.cos(2 * np.pi * doy / 365.25))
    tau_clear = np.clip(0.72 + 2.5e-5 * z, 0.70, 0.85)
    swdown = (
        s0
        * _mean_cos_zenith(times, lat, lon, dt_hours).astype(f32)
        * tau_clear
        * (1.0 - 0.75 * cloud)
    )
    eps_clear = 1.24 * (e / 100.0 / tair) ** (1.0 / 7.0)
    lwdown = (cloud + (1.0 - cloud) * eps_clear) * SIGMA_SB * tair**4

    # ---- wind (m s-1)
    base = 2.8 + 0.8 * desert - 0.8 * irr + 0.6 * (z > 3500.0)
    wind = np.maximum(
        base * (1.0 + 0.25 * diurnal) * np.exp(0.3 * synoptic - 0.045) + 1.5 * cloud, 0.5
    )

    out = {
        "precip": precip,
        "tair": tair,
        "qair": qair,
        "psurf": psurf,
        "wind": wind,
        "swdown": swdown,
        "lwdown": lwdown,
    }
    shape = (len(times), lat.size, lon.size)
    return {k: np.broadcast_to(v, shape).astype(np.float32) for k, v in out.items()}


def irrigation_rate(
    geo, times, dt_hours, rng, interval_days=20.0, depth_mm=90.0, season=(110.0, 280.0)
):
    """Flood irrigation on oasis cells (kg m-2 s-1, cell mean, ``(nt, ny, nx)`` float32).

    Each irrigated cell receives ``depth_mm`` over its irrigated fraction every
    ``interval_days`` during the growing season (day of year ``season``), spread over 24 h,
    with a random phase per cell (canal rotation). Typical of the Heihe midstream oases
    (4–6 flood irrigations of 80–120 mm per season).
    """
    irr = geo["irrigated_fraction"]
    phase = rng.uniform(0.0, interval_days, size=irr.shape)
    doy, _ = _time_axes(times, np.zeros(1), dt_hours)
    doy = doy[:, :, :1]
    in_season = (doy >= season[0]) & (doy <= season[1])
    on = ((doy - phase[None]) % interval_days) < 1.0
    rate = depth_mm / 86400.0  # kg m-2 s-1 during the irrigation day
    return (rate * irr[None] * (on & in_season)).astype(np.float32)


def weather(geo, lat, lon, times, dt_hours, rng, precip_correlation=0.6, tair_error_k=1.0):
    """True and degraded forcing of the twin experiment, and the true irrigation.

    The degraded forcing (what the ensemble sees) uses the latent precipitation field
    ``ρ·z_true + √(1−ρ²)·z_other`` (ρ = ``precip_correlation``; same climatology, storms
    displaced in space and time and with other amounts) and an air-temperature error that
    is AR(1) in time (1 day), correlated over 150 km with standard deviation
    ``tair_error_k``. Radiation, humidity and wind follow the degraded cloud field.
    Returns ``(truth, degraded, irrigation)``.
    """
    nt = len(times)
    shape = (lat.size, lon.size)
    dy = abs(lat[1] - lat[0]) * KM_PER_DEG
    dx = abs(lon[1] - lon[0]) * KM_PER_DEG * np.cos(np.deg2rad(_LAT0))
    storm = {
        "length_km": 40.0,
        "tau_hours": 6.0,
        "dt_hours": dt_hours,
        "velocity_kmh": (20.0, -5.0),
    }
    z_true = ar1_fields(rng, nt, shape, dx, dy, **storm)
    z_other = ar1_fields(rng, nt, shape, dx, dy, **storm)
    synoptic = ar1_fields(rng, nt, shape, dx, dy, 300.0, 48.0, dt_hours, (30.0, 0.0))
    terr = tair_error_k * ar1_fields(rng, nt, shape, dx, dy, 150.0, 24.0, dt_hours)
    rho = float(precip_correlation)
    z_deg = rho * z_true + np.sqrt(1.0 - rho * rho) * z_other
    truth = make_forcing(geo, lat, lon, times, dt_hours, z_true, synoptic)
    degraded = make_forcing(geo, lat, lon, times, dt_hours, z_deg, synoptic, tair_error=terr)
    irrigation = irrigation_rate(geo, times, dt_hours, rng)
    return truth, degraded, irrigation
