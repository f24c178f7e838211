"""Station readers: ISMN in-situ soil moisture, cosmic-ray probes, flux towers, basins.

* :func:`read_ismn` — ISMN downloads (zip or folder) through the ``ismn`` package
  (:class:`ismn.interface.ISMN_Interface`); its metadata index goes to the user cache
  (``meta_path``), never into the data folder.
* :func:`read_crns` / :func:`read_crns_samples` — raw cosmic-ray neutron probe series and
  calibration soil samples in the layout of the TERENO Fürstensee example shipped with
  neptoon; :func:`calibrate_n0` and :func:`crns_soil_moisture` turn counts into soil
  moisture with :mod:`xldas.physics` (corrections, Desilets inverse, Schrön weighting).
* :func:`read_noah_forcing` — the half-hourly Bondville (Illinois) 1998 forcing and flux
  tower file of the Noah LSM test case, converted to model forcing.
* :func:`read_camels` — CAMELS-US basin-mean daily forcing and USGS streamflow.
* :func:`longwave_down`, :func:`specific_humidity`, :func:`pressure_from_elevation` —
  the derivations the readers use for variables the sources lack.

Everything returns xarray objects with CF units. Station series are small: readers load
them eagerly (the files are parsed anyway) and return NumPy-backed objects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from xldas._paths import data_dir
from xldas.errors import CatalogFileError, ParameterRangeError

__all__ = [
    "calibrate_n0",
    "corrected_counts",
    "cos_solar_zenith",
    "crns_soil_moisture",
    "frozen_soil_flags",
    "longwave_down",
    "pressure_from_elevation",
    "read_camels",
    "read_crns",
    "read_crns_samples",
    "read_ismn",
    "read_noah_forcing",
    "specific_humidity",
]

_SIGMA = 5.670374419e-8  # Stefan-Boltzmann, W m-2 K-4
_S0 = 1361.0  # solar constant, W m-2


# ------------------------------------------------------------------ derived forcing
def cos_solar_zenith(time, lat_deg: float, lon_deg: float) -> np.ndarray:
    """Cosine of the solar zenith angle at UTC ``time`` (NOAA/Spencer approximations).

    Examples
    --------
    >>> import pandas as pd
    >>> round(float(cos_solar_zenith(pd.DatetimeIndex(["2020-06-21T12:00"]), 23.44, 0.0)[0]), 3)
    1.0
    """
    t = pd.DatetimeIndex(time)
    doy = t.dayofyear.values
    hour = t.hour.values + t.minute.values / 60.0 + t.second.values / 3600.0
    g = 2 * np.pi / 365.0 * (doy - 1 + (hour - 12) / 24.0)
    decl = (
        0.006918
        - 0.399912 * np.cos(g)
        + 0.070257 * np.sin(g)
        - 0.006758 * np.cos(2 * g)
        + 0.000907 * np.sin(2 * g)
        - 0.002697 * np.cos(3 * g)
        + 0.00148 * np.sin(3 * g)
    )
    eot = 229.18 * (
        0.000075
        + 0.001868 * np.cos(g)
        - 0.032077 * np.sin(g)
        - 0.014615 * np.cos(2 * g)
        - 0.040849 * np.sin(2 * g)
    )  # minutes
    solar_time = hour * 60.0 + eot + 4.0 * lon_deg  # minutes
    ha = np.deg2rad(solar_time / 4.0 - 180.0)
    phi = np.deg2rad(lat_deg)
    return np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(ha)


def _mean_cosz(time, lat, lon, step_s: float, nsub: int = 6) -> np.ndarray:
    """Mean of max(cos z, 0) over each period-ending interval of ``step_s`` seconds."""
    t = pd.DatetimeIndex(time)
    acc = np.zeros(t.size)
    for k in range(nsub):  # a handful of sub-samples inside each interval
        off = pd.to_timedelta(step_s * (k + 0.5) / nsub - step_s, unit="s")
        acc += np.maximum(cos_solar_zenith(t + off, lat, lon), 0.0)
    return acc / nsub


def specific_humidity(vapour_pressure_pa, pressure_pa):
    """Specific humidity (kg kg-1) from vapour pressure and air pressure (Pa)."""
    e = np.asarray(vapour_pressure_pa, dtype=np.float64)
    p = np.asarray(pressure_pa, dtype=np.float64)
    return 0.622 * e / (p - 0.378 * e)


def _esat_pa(t_c):
    """Saturation vapour pressure over water (Pa), Tetens/FAO-56 form."""
    return 610.8 * np.exp(17.27 * np.asarray(t_c) / (np.asarray(t_c) + 237.3))


def pressure_from_elevation(elevation_m, tair_k=None):
    """Surface pressure (Pa) from elevation: FAO-56 eq. 7 (standard atmosphere, 293 K).

    Examples
    --------
    >>> round(float(pressure_from_elevation(1800.0)))
    81756
    """
    z = np.asarray(elevation_m, dtype=np.float64)
    return 101300.0 * ((293.0 - 0.0065 * z) / 293.0) ** 5.26


def longwave_down(tair_k, vapour_pressure_pa, swdown_wm2, time, lat_deg, lon_deg, step_s):
    """Incoming longwave radiation (W m-2) for sources that lack it.

    Clear-sky emissivity after Brutsaert (1975), ε_clr = 1.24·(e/T)^(1/7) with e in hPa;
    cloud effect after Crawford & Duchon (1999): ε = c + (1 − c)·ε_clr, where the cloud
    fraction c = 1 − S/S_clr compares the measured shortwave S with the clear-sky
    S_clr = 0.75·S₀·cos z (FAO-56's 0.75 transmissivity near sea level), evaluated while
    the sun is higher than ~11° (mean cos z > 0.2) and carried over the night (and
    before the first daylight of the record, c = 0.5). L↓ = ε·σ·T⁴.

    Parameters
    ----------
    tair_k, vapour_pressure_pa, swdown_wm2 : 1-D arrays along ``time``.
    time : period-ending UTC times; ``step_s`` their interval (s).
    lat_deg, lon_deg : site position.

    References
    ----------
    Brutsaert W. (1975) WRR 11:742–744. Crawford T.M., Duchon C.E. (1999) J. Appl.
    Meteorol. 38:474–480.
    """
    t = np.asarray(tair_k, dtype=np.float64)
    e_hpa = np.asarray(vapour_pressure_pa, dtype=np.float64) / 100.0
    eps_clr = 1.24 * (np.maximum(e_hpa, 1e-3) / t) ** (1.0 / 7.0)
    cosz = _mean_cosz(time, lat_deg, lon_deg, step_s)
    s_clr = 0.75 * _S0 * cosz
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(cosz > 0.2, 1.0 - np.clip(np.asarray(swdown_wm2) / s_clr, 0.0, 1.0), np.nan)
    c = pd.Series(c).ffill().fillna(0.5).to_numpy()
    eps = c + (1.0 - c) * eps_clr
    return eps * _SIGMA * t**4


# ------------------------------------------------------------------ Bondville / Noah
_NOAH_COLUMNS = (
    "jday time wind wdir ta rh pres rg par_in par_out rnet ghf rain wet irt t2 t4 t8 t16 t32 t64 "
    "ubar uw u2 v2 w2 h le co2 lw_in sm_5 sm_20 sm_60"
).split()


def read_noah_forcing(
    path,
    lat: float = 40.01,
    lon: float = -88.37,
    year: int = 1998,
    utc_offset_h: float = -6.0,
) -> xr.Dataset:
    """Read the Noah LSM test-case file (Bondville 1998) into forcing + validation data.

    Parameters
    ----------
    path : ``forcing98_with_validation.dat`` (33 whitespace columns, half-hourly, local
        standard time, period-ending; -6999 = missing).
    lat, lon : site position (Bondville, Illinois: 40.01 N, 88.37 W).
    year : calendar year of the first row (the file has day of year only).
    utc_offset_h : local standard time minus UTC (CST: −6 h).

    Returns
    -------
    Dataset on ``(time, lat, lon)`` (one cell), UTC period-ending times, with the model
    forcing ``precip`` (kg m-2 s-1; the file's rain is in inches per half hour),
    ``tair`` (K), ``qair`` (kg kg-1, from RH capped at 100 %), ``psurf`` (Pa), ``wind``
    (m s-1, the 6 m sonic wind, gaps filled with the 10 m cup wind), ``swdown`` and
    ``lwdown`` (W m-2; the site has no longwave measurement, so it is parameterised by
    :func:`longwave_down`), and the validation data ``le``, ``h``, ``rnet``, ``ghf``
    (W m-2) and ``sm_obs`` (time, ``depth`` = 0.05/0.20/0.60 m; m3 m-3).

    Examples
    --------
    >>> ds = read_noah_forcing("forcing98_with_validation.dat")  # doctest: +SKIP
    >>> float(ds.precip.sum() * 1800)  # mm in 1998  # doctest: +SKIP
    925.8
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogFileError(f"Noah forcing file not found: {path}")
    df = pd.read_csv(path, sep=r"\s+", header=None, names=_NOAH_COLUMNS, na_values=[-6999, -6999.0])
    # day of year + hhmm (period-ending); the last row is "day 1, 0000" of the next year
    day = df["jday"].to_numpy()
    hhmm = df["time"].to_numpy()
    step = pd.Timedelta(minutes=30)
    t0 = pd.Timestamp(f"{year}-01-01")
    minutes = (hhmm // 100) * 60 + hhmm % 100
    rollover = np.r_[False, np.diff(day) < 0]
    year_off = np.cumsum(rollover)
    local = pd.DatetimeIndex(
        [
            pd.Timestamp(f"{year + int(y)}-01-01") + pd.Timedelta(days=int(d) - 1, minutes=int(m))
            for y, d, m in zip(year_off, day, minutes)
        ]
    )
    del t0
    time = local - pd.Timedelta(hours=utc_offset_h)
    if not (np.diff(time.values) == step.to_timedelta64()).all():
        raise CatalogFileError(f"{path}: times are not a regular half-hourly series")
    tair = df["ta"].to_numpy() + 273.15
    rh = np.clip(df["rh"].to_numpy(), 0.0, 100.0)
    ps = df["pres"].to_numpy() * 100.0
    e = rh / 100.0 * _esat_pa(df["ta"].to_numpy())
    sw = np.clip(df["rg"].to_numpy(), 0.0, None)
    wind = df["ubar"].where(df["ubar"].notna(), df["wind"]).to_numpy()
    precip = df["rain"].to_numpy() * 25.4 / 1800.0  # inches per half hour -> kg m-2 s-1
    fill = {
        "tair": tair,
        "psurf": ps,
        "e": e,
        "swdown": sw,
        "wind": wind,
        "precip": precip,
    }
    for k, v in fill.items():  # short gaps in the forcing: linear interpolation in time
        if np.isnan(v).any():
            fill[k] = pd.Series(v).interpolate(limit_direction="both").to_numpy()
    lw = longwave_down(fill["tair"], fill["e"], fill["swdown"], time, lat, lon, 1800.0)
    q = specific_humidity(fill["e"], fill["psurf"])

    def cell(a):
        return np.asarray(a, dtype=np.float64)[:, None, None]

    dims = ("time", "lat", "lon")
    ds = xr.Dataset(
        {
            "precip": (
                dims,
                cell(fill["precip"]),
                {
                    "units": "kg m-2 s-1",
                    "standard_name": "precipitation_flux",
                    "long_name": "precipitation (rain gauge; inches per half hour converted)",
                },
            ),
            "tair": (
                dims,
                cell(fill["tair"]),
                {
                    "units": "K",
                    "standard_name": "air_temperature",
                    "long_name": "air temperature at 3 m",
                },
            ),
            "qair": (
                dims,
                cell(q),
                {
                    "units": "kg kg-1",
                    "standard_name": "specific_humidity",
                    "long_name": "specific humidity (from RH capped at 100 %)",
                },
            ),
            "psurf": (
                dims,
                cell(fill["psurf"]),
                {
                    "units": "Pa",
                    "standard_name": "surface_air_pressure",
                    "long_name": "surface pressure",
                },
            ),
            "wind": (
                dims,
                cell(fill["wind"]),
                {
                    "units": "m s-1",
                    "standard_name": "wind_speed",
                    "long_name": "wind speed (6 m sonic; 10 m cup where missing)",
                },
            ),
            "swdown": (
                dims,
                cell(fill["swdown"]),
                {
                    "units": "W m-2",
                    "standard_name": "surface_downwelling_shortwave_flux_in_air",
                    "long_name": "incoming shortwave radiation",
                },
            ),
            "lwdown": (
                dims,
                cell(lw),
                {
                    "units": "W m-2",
                    "standard_name": "surface_downwelling_longwave_flux_in_air",
                    "long_name": "incoming longwave radiation (parameterised: Brutsaert 1975 clear sky, Crawford & Duchon 1999 clouds)",
                },
            ),
            "le": (
                dims,
                cell(df["le"]),
                {
                    "units": "W m-2",
                    "standard_name": "surface_upward_latent_heat_flux",
                    "long_name": "latent heat flux (eddy covariance)",
                },
            ),
            "h": (
                dims,
                cell(df["h"]),
                {
                    "units": "W m-2",
                    "standard_name": "surface_upward_sensible_heat_flux",
                    "long_name": "sensible heat flux (eddy covariance)",
                },
            ),
            "rnet": (
                dims,
                cell(df["rnet"]),
                {
                    "units": "W m-2",
                    "standard_name": "surface_net_downward_radiative_flux",
                    "long_name": "net radiation",
                },
            ),
            "ghf": (
                dims,
                cell(df["ghf"]),
                {
                    "units": "W m-2",
                    "standard_name": "downward_heat_flux_in_soil",
                    "long_name": "ground heat flux",
                },
            ),
            "sm_obs": (
                ("time", "depth", "lat", "lon"),
                np.stack([df[c].to_numpy(dtype=np.float64) for c in ("sm_5", "sm_20", "sm_60")], 1)[
                    ..., None, None
                ],
                {
                    "units": "m3 m-3",
                    "standard_name": "volume_fraction_of_condensed_water_in_soil",
                    "long_name": "in-situ volumetric soil moisture",
                },
            ),
        },
        coords={
            "time": ("time", time.values, {"long_name": "end of the half-hour (UTC)"}),
            "lat": ("lat", [lat], {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", [lon], {"units": "degrees_east", "standard_name": "longitude"}),
            "depth": (
                "depth",
                [0.05, 0.20, 0.60],
                {"units": "m", "long_name": "sensor depth", "positive": "down"},
            ),
        },
        attrs={
            "title": "Bondville (IL) 1998 half-hourly forcing and flux-tower validation (Noah LSM test case)",
            "source": str(path),
            "acknowledgement": "NOAA/ARL (T. Meyers) Bondville flux site, via NOAA/NCEP EMC Noah LSM test case",
            "references": "Chen et al. (1996) JGR 101:7251; Ek et al. (2003) JGR 108:8851",
            "comment": (
                "times converted from local standard time (UTC-6) to UTC; rain converted from "
                "inches per half hour; RH capped at 100 %; short forcing gaps interpolated; "
                "lwdown parameterised (no measurement)"
            ),
        },
    )
    return ds


# ------------------------------------------------------------------ ISMN
_ISMN_NAMES = {
    "soil_moisture": ("sm", "m3 m-3", "volume_fraction_of_condensed_water_in_soil"),
    "soil_temperature": ("ts", "degC", "soil_temperature"),
    "precipitation": ("p", "mm", "precipitation_amount"),
    "air_temperature": ("ta", "degC", "air_temperature"),
}


def _ismn_meta_path(data_path: Path) -> Path:
    return data_dir() / "ismn_metadata" / data_path.name.replace(".", "_")


def read_ismn(
    path,
    variable: str = "soil_moisture",
    network: str | None = None,
    station: str | None = None,
    depth: tuple[float, float] | None = None,
    good_only: bool = False,
    meta_path=None,
) -> xr.Dataset:
    """Read ISMN data (zip or folder) with the ``ismn`` package into one Dataset.

    Parameters
    ----------
    path : an ISMN download (zip archive or extracted folder, any ISMN format).
    variable : ISMN variable (``"soil_moisture"``, ``"soil_temperature"``,
        ``"precipitation"`` ...).
    network, station : restrict to one network / station name.
    depth : ``(from, to)`` in metres: keep sensors measuring inside this range.
    good_only : set values with an ISMN exceedance (``C``), dubious (``D``, e.g. frozen
        soil) or missing (``M``) flag to NaN; ``G`` (good) and ``U`` (unchecked) pass.
    meta_path : folder for the ``ismn`` package's metadata index (default a folder in the
        xldas user cache, :func:`xldas._paths.data_dir`) — never inside the data folder,
        which may be read-only.

    Returns
    -------
    Dataset (time, sensor) on the union of the sensors' times (UTC) with the values
    (``sm`` m3 m-3, ``ts`` degC, ``p`` mm ... after the ISMN variable) and ``<name>_flag``
    (ISMN quality flag strings), and per-sensor coordinates ``network``, ``station``,
    ``lat``, ``lon``, ``elevation``, ``depth_from``, ``depth_to``, ``instrument``.

    Notes
    -----
    ISMN terms of use apply to the data (scientific use, no redistribution; cite Dorigo
    et al. 2021, HESS 25:5749, and the network).

    Examples
    --------
    >>> ds = read_ismn("Data_header_values.zip", network="MAQU")  # doctest: +SKIP
    >>> ds.sm.sizes  # doctest: +SKIP
    """
    from ismn.interface import ISMN_Interface

    path = Path(path)
    if not path.exists():
        raise CatalogFileError(f"ISMN data not found: {path}")
    meta = Path(meta_path) if meta_path is not None else _ismn_meta_path(path)
    meta.mkdir(parents=True, exist_ok=True)
    iface = ISMN_Interface(str(path), meta_path=str(meta), parallel=False)
    name, units, std = _ISMN_NAMES.get(variable, (variable, "", None))
    series, flags, info = [], [], []
    for net_name, net in iface.networks.items():
        if network is not None and net_name != network:
            continue
        for st_name, st in net.stations.items():
            if station is not None and st_name != station:
                continue
            for sen in st.sensors.values():
                if sen.variable != variable:
                    continue
                d0, d1 = float(sen.depth.start), float(sen.depth.end)
                if depth is not None and not (d0 >= depth[0] - 1e-9 and d1 <= depth[1] + 1e-9):
                    continue
                df = sen.read_data()
                vals = df[variable].astype(float)
                flg = df[f"{variable}_flag"].astype(str)
                if good_only:  # G (good) and U (unchecked) pass; C, D and M codes do not
                    vals = vals.where(~flg.str.contains("C|D|M", regex=True))
                key = f"{net_name}/{st_name}/{sen.instrument}/{d0:g}-{d1:g}"
                series.append(vals.rename(key))
                flags.append(flg.rename(key))
                info.append(
                    (key, net_name, st_name, st.lat, st.lon, st.elev, d0, d1, str(sen.instrument))
                )
    if not series:
        raise CatalogFileError(
            f"no ISMN sensor of {variable!r} in {path} (network={network!r}, station={station!r}, depth={depth})"
        )
    values = pd.concat(series, axis=1).sort_index()
    fl = pd.concat(flags, axis=1).reindex(values.index)
    keys = [i[0] for i in info]
    coords = {
        "time": ("time", values.index.values),
        "sensor": ("sensor", keys),
        "network": ("sensor", [i[1] for i in info]),
        "station": ("sensor", [i[2] for i in info]),
        "lat": ("sensor", np.array([i[3] for i in info], float), {"units": "degrees_north"}),
        "lon": ("sensor", np.array([i[4] for i in info], float), {"units": "degrees_east"}),
        "elevation": ("sensor", np.array([i[5] for i in info], float), {"units": "m"}),
        "depth_from": ("sensor", np.array([i[6] for i in info]), {"units": "m"}),
        "depth_to": ("sensor", np.array([i[7] for i in info]), {"units": "m"}),
        "instrument": ("sensor", [i[8] for i in info]),
    }
    attrs = {"units": units, "long_name": f"ISMN {variable}"}
    if std:
        attrs["standard_name"] = std
    ds = xr.Dataset(
        {
            name: (("time", "sensor"), values.to_numpy(dtype=np.float64), attrs),
            f"{name}_flag": (
                ("time", "sensor"),
                fl.fillna("").to_numpy(dtype=str),
                {"long_name": "ISMN quality flag (G = good)"},
            ),
        },
        coords=coords,
        attrs={
            "source": str(path),
            "references": "Dorigo W. et al. (2021) HESS 25:5749-5804 (ISMN)",
            "comment": "ISMN terms of use: scientific use only, no onward distribution",
        },
    )
    return ds


def frozen_soil_flags(
    sm: xr.DataArray,
    drop: float = 0.05,
    baseline_days: int = 30,
    cold_months=(11, 12, 1, 2, 3, 4),
    tsoil: xr.DataArray | None = None,
    dim: str = "time",
) -> xr.DataArray:
    """Flag frozen-soil readings: winter drops of the liquid water content.

    Capacitance/TDR probes measure liquid water only; when the soil freezes the reading
    collapses although the total water stays. A value is flagged when, in a cold month,
    it lies more than ``drop`` (m3 m-3) below the median of the preceding
    ``baseline_days``, or when a soil temperature ``tsoil`` (°C or K) is below 0 °C.

    Returns
    -------
    Boolean DataArray like ``sm`` (True = frozen, do not use).
    """
    t = pd.DatetimeIndex(sm[dim].values)
    steps = max(
        1, round(pd.Timedelta(days=baseline_days) / pd.Timedelta(np.median(np.diff(t.values))))
    )
    base = sm.rolling({dim: steps}, min_periods=max(1, steps // 4)).median().shift({dim: 1})
    cold = xr.DataArray(np.isin(t.month, cold_months), dims=dim, coords={dim: sm[dim]})
    flag = cold & (sm < base - drop)
    if tsoil is not None:
        tc = tsoil - 273.15 if tsoil.attrs.get("units") in ("K", "kelvin") else tsoil
        flag = flag | (tc < 0.0)
    flag.attrs = {"long_name": "frozen-soil flag (winter drop of liquid water content)"}
    return flag.rename(f"{sm.name or 'sm'}_frozen")


# ------------------------------------------------------------------ cosmic-ray probes
def read_crns(path) -> xr.Dataset:
    """Read an hourly cosmic-ray probe series (TERENO Fürstensee / neptoon layout).

    Returns
    -------
    Dataset (time) with ``neutron_count_raw`` (epithermal, counts per hour),
    ``pressure`` (hPa), ``tair`` (°C) and ``rh`` (%) (the ``_Sensor2`` columns where
    present, as neptoon's site configuration prefers), ``precip`` (mm) and the absolute
    humidity ``abs_humidity`` (g m-3) computed with :func:`xldas.physics.absolute_humidity`.
    """
    from xldas.physics import absolute_humidity

    path = Path(path)
    if not path.is_file():
        raise CatalogFileError(f"CRNS file not found: {path}")
    df = pd.read_csv(path)
    t = pd.to_datetime(df["DateTime_utc"], utc=True).dt.tz_localize(None)
    ta = df.get("AirTemperature_Sensor2", df["AirTemperature"]).astype(float)
    ta = ta.where(ta.notna(), df["AirTemperature"])
    rh = df.get("AirHumidity_Relative_Sensor2", df["AirHumidity_Relative"]).astype(float)
    rh = rh.where(rh.notna(), df["AirHumidity_Relative"]).clip(0, 100)
    e = rh / 100.0 * _esat_pa(ta)
    ah = np.asarray(absolute_humidity(e.to_numpy(), ta.to_numpy() + 273.15), dtype=np.float64)
    ds = xr.Dataset(
        {
            "neutron_count_raw": (
                "time",
                df["NeutronCount_Epithermal_Cum1h"].to_numpy(float),
                {"units": "h-1", "long_name": "raw epithermal neutron counts per hour"},
            ),
            "pressure": (
                "time",
                df["AirPressure"].to_numpy(float),
                {"units": "hPa", "standard_name": "surface_air_pressure"},
            ),
            "tair": ("time", ta.to_numpy(), {"units": "degC", "standard_name": "air_temperature"}),
            "rh": ("time", rh.to_numpy(), {"units": "%", "standard_name": "relative_humidity"}),
            "precip": (
                "time",
                df["Precipitation"].to_numpy(float),
                {"units": "mm", "standard_name": "precipitation_amount"},
            ),
            "abs_humidity": ("time", ah, {"units": "g m-3", "long_name": "absolute humidity"}),
        },
        coords={"time": t.values},
        attrs={
            "source": str(path),
            "acknowledgement": "TERENO (GFZ/UFZ) Fürstensee CRNS, via neptoon (UFZ)",
        },
    )
    return ds


def read_crns_samples(path) -> xr.Dataset:
    """Read CRNS calibration soil samples (neptoon calibration CSV layout).

    Returns
    -------
    Dataset (sample) with ``sm_grav`` (g g-1), ``bulk_density`` (g cm-3), ``soc`` and
    ``lattice_water`` (g g-1), and coordinates ``time``, ``profile``, ``distance``
    (m from the probe) and ``depth`` (cm, sample mid-depth).
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogFileError(f"CRNS calibration file not found: {path}")
    df = pd.read_csv(path)
    t = pd.to_datetime(df["DateTime_utc"], format="%d.%m.%Y %H:%M")
    return xr.Dataset(
        {
            "sm_grav": (
                "sample",
                df["SoilMoisture_g_g"].to_numpy(float),
                {"units": "g g-1", "long_name": "gravimetric soil moisture"},
            ),
            "bulk_density": (
                "sample",
                df["DryBulkDensity_g_cm3"].to_numpy(float),
                {"units": "g cm-3"},
            ),
            "soc": ("sample", df["SoilOrganicCarbon_g_g"].to_numpy(float), {"units": "g g-1"}),
            "lattice_water": ("sample", df["LatticeWater_g_g"].to_numpy(float), {"units": "g g-1"}),
        },
        coords={
            "time": ("sample", t.values),
            "profile": ("sample", df["Profile_ID"].to_numpy()),
            "distance": ("sample", df["Distance_to_CRNS_m"].to_numpy(float), {"units": "m"}),
            "depth": ("sample", df["Profile_Depth_cm"].to_numpy(float), {"units": "cm"}),
        },
        attrs={"source": str(path)},
    )


def corrected_counts(
    crns: xr.Dataset, pressure_ref_hpa: float | None = None, smooth_hours: int = 12
):
    """Raw counts × f_p × f_wv (× f_i = 1: no neutron-monitor series), smoothed.

    ``pressure_ref_hpa`` defaults to the series' mean pressure. The moving mean over
    ``smooth_hours`` reduces the Poisson noise (σ_N = √N per hour).
    """
    from xldas.physics import neutron_corrections

    p_ref = float(crns["pressure"].mean()) if pressure_ref_hpa is None else pressure_ref_hpa
    f_p, f_wv, _ = neutron_corrections(
        crns["pressure"], crns["abs_humidity"], pressure_ref_hpa=p_ref
    )
    n = crns["neutron_count_raw"] * f_p * f_wv
    if smooth_hours > 1:
        n = n.rolling(time=smooth_hours, center=True, min_periods=smooth_hours // 2).mean()
    n.attrs = {
        "units": "h-1",
        "long_name": "corrected epithermal counts (pressure, humidity; no incoming correction)",
        "pressure_ref_hpa": p_ref,
    }
    return n.rename("neutron_count")


def _sample_average(samples: xr.Dataset, iterations: int = 3):
    """Depth-weighted (Schrön et al. 2017 D86) mean of the samples of one campaign.

    Each profile is averaged vertically with W_d = exp(−2d/D86(r, ρ_b, θ)) (fixed-point
    iterations on θ), then profiles are averaged with equal weights (the COSMOS 18-profile
    design at 25/75/175 m is built for equal weighting; Franz et al. 2012).
    """
    from xldas.physics import d86

    theta_g = samples["sm_grav"].values
    rho = samples["bulk_density"].values
    theta_v = theta_g * rho
    prof = samples["profile"].values
    dist = samples["distance"].values
    dep = samples["depth"].values
    mean_v = float(np.nanmean(theta_v))
    for _ in range(iterations):
        out_v, out_g, out_rho, out_lw, out_soc = [], [], [], [], []
        for p in np.unique(prof):  # a few profiles per campaign
            m = prof == p
            rho_p = float(np.nanmean(rho[m]))
            depth86 = float(d86(mean_v, rho_p, float(np.nanmean(dist[m]))))
            w = np.exp(-2.0 * dep[m] / depth86)
            ok = np.isfinite(theta_v[m])
            w = np.where(ok, w, 0.0)
            if w.sum() == 0:
                continue
            wn = w / w.sum()
            out_v.append(np.nansum(wn * theta_v[m]))
            out_g.append(np.nansum(wn * theta_g[m]))
            out_rho.append(rho_p)
            out_lw.append(float(np.nanmean(samples["lattice_water"].values[m])))
            out_soc.append(float(np.nanmean(samples["soc"].values[m])))
        mean_v = float(np.mean(out_v))
    return {
        "sm": mean_v,
        "sm_grav": float(np.mean(out_g)),
        "bulk_density": float(np.mean(out_rho)),
        "lattice_water": float(np.mean(out_lw)),
        "soc": float(np.mean(out_soc)),
    }


def calibrate_n0(crns: xr.Dataset, samples: xr.Dataset, window_hours: int = 24, **kw) -> dict:
    """N₀ from a sampling campaign by inverting the Desilets forward equation.

    The campaign's field-average soil moisture (:func:`_sample_average`, Schrön et al.
    2017 vertical weights) and the mean corrected count over ``window_hours`` centred
    on the sampling time give N₀ = N / [a₀/(θ_g + θ_off + a₂) + a₁] through
    :func:`xldas.physics.cosmic_ray_neutrons` (with N₀ = 1).

    Returns
    -------
    dict with ``n0`` (counts per hour), the campaign averages and the count used.
    """
    from xldas.physics import cosmic_ray_neutrons

    avg = _sample_average(samples)
    t = pd.Timestamp(pd.DatetimeIndex(samples["time"].values).mean())
    n = corrected_counts(crns, **kw)
    half = pd.Timedelta(hours=window_hours / 2)
    n_mean = float(n.sel(time=slice(t - half, t + half)).mean())
    ratio = float(
        cosmic_ray_neutrons(avg["sm"], 1.0, avg["bulk_density"], avg["lattice_water"], avg["soc"])
    )
    if not np.isfinite(n_mean):
        raise ParameterRangeError(f"no neutron counts around the sampling time {t}")
    return {**avg, "n0": n_mean / ratio, "neutron_count": n_mean, "time": t}


def crns_soil_moisture(
    crns: xr.Dataset, n0: float, bulk_density: float, lattice_water=0.0, soc=0.0, **kw
):
    """Volumetric soil moisture series of a cosmic-ray probe (m3 m-3).

    Counts corrected for pressure and humidity (no incoming-intensity correction: the
    data carry no neutron-monitor series, so f_i = 1 — a limitation, worth ~±2 % in
    counts over a solar cycle), smoothed, and inverted with
    :func:`xldas.physics.cosmic_ray_soil_moisture`.
    """
    from xldas.physics import cosmic_ray_soil_moisture

    n = corrected_counts(crns, **kw)
    return cosmic_ray_soil_moisture(n, n0, bulk_density, lattice_water, soc)


# ------------------------------------------------------------------ CAMELS
def read_camels(root, gauge: str, forcing: str = "daymet") -> xr.Dataset:
    """CAMELS-US daily basin-mean forcing and USGS streamflow of one gauge.

    Parameters
    ----------
    root : CAMELS folder (``basin_mean_forcing/``, ``usgs_streamflow/``).
    gauge : 8-digit USGS gauge id.
    forcing : ``"daymet"``, ``"maurer"`` or ``"nldas"``.

    Returns
    -------
    Dataset (time, daily) with ``prcp`` (mm d-1), ``srad`` (W m-2, mean over daylight),
    ``dayl`` (s), ``tmax``, ``tmin`` (degC), ``vp`` (Pa), ``swe`` (mm) and ``q`` (observed
    streamflow, mm d-1; NaN where missing), attributes ``lat``, ``elevation`` (m),
    ``area_m2``. Cite Newman et al. (2015) HESS 19:209 and Addor et al. (2017).
    """
    root = Path(root)
    sub = {"daymet": "daymet", "maurer": "maurer", "nldas": "nldas"}[forcing]
    tag = {"daymet": "cida", "maurer": "maurer", "nldas": "nldas"}[forcing]
    files = list((root / "basin_mean_forcing" / sub).rglob(f"{gauge}_lump_{tag}_forcing_leap.txt"))
    if not files:
        raise CatalogFileError(f"no {forcing} forcing for gauge {gauge} under {root}")
    with open(files[0]) as fh:
        lat = float(fh.readline())
        elev = float(fh.readline())
        area = float(fh.readline())
    df = pd.read_csv(files[0], sep=r"\s+", skiprows=3)
    df.columns = [c.split("(")[0].strip().lower() for c in df.columns]
    t = pd.to_datetime(dict(year=df["year"], month=df["mnth"], day=df["day"]))
    qf = list((root / "usgs_streamflow").rglob(f"{gauge}_streamflow_qc.txt"))
    ds = xr.Dataset(
        {
            "prcp": (
                "time",
                df["prcp"].to_numpy(float),
                {"units": "mm d-1", "long_name": "precipitation"},
            ),
            "srad": (
                "time",
                df["srad"].to_numpy(float),
                {"units": "W m-2", "long_name": "shortwave radiation, mean over daylight"},
            ),
            "dayl": ("time", df["dayl"].to_numpy(float), {"units": "s", "long_name": "day length"}),
            "tmax": ("time", df["tmax"].to_numpy(float), {"units": "degC"}),
            "tmin": ("time", df["tmin"].to_numpy(float), {"units": "degC"}),
            "vp": (
                "time",
                df["vp"].to_numpy(float),
                {"units": "Pa", "long_name": "vapour pressure"},
            ),
            "swe": ("time", df["swe"].to_numpy(float), {"units": "mm"}),
        },
        coords={"time": t.values},
        attrs={
            "gauge": gauge,
            "lat": lat,
            "elevation": elev,
            "area_m2": area,
            "forcing": forcing,
            "references": "Newman et al. (2015) HESS 19:209; Addor et al. (2017) HESS 21:5293",
        },
    )
    if qf:
        q = pd.read_csv(qf[0], sep=r"\s+", header=None, names=["gauge", "y", "m", "d", "q", "flag"])
        qt = pd.to_datetime(dict(year=q["y"], month=q["m"], day=q["d"]))
        cfs = q["q"].where(q["q"] >= 0).to_numpy(float)
        mm = cfs * 0.0283168 * 86400.0 / area * 1000.0
        ds["q"] = xr.DataArray(mm, dims="time", coords={"time": qt.values}).reindex(time=ds.time)
        ds["q"].attrs = {"units": "mm d-1", "long_name": "observed streamflow (USGS)"}
    return ds
