"""Hawaii co-located soil moisture: satellites, reanalyses and an LSM against ISMN stations.

Data: the QA4SM test set (shared ``hawaii_colocated_sm``): ISMN SCAN stations
WaimeaPlain, PuaAkala, Kainaliu (5.08 cm) and the COSMOS probe SilverSword (0–17 cm), and
for the same region SMAP L3 v8 (AM and PM), ASCAT H119, C3S combined v202212, SMOS-IC
v105, GLDAS-2.1 Noah, ERA5 and ERA5-Land, 2017–2018.

Method (:func:`hawaii_table`):

* stations: ISMN data read with :func:`xldas.io.read_ismn` (``good_only``), daily means
  of days with at least 12 hourly values;
* products: the location nearest to each station (great circle; cell files hold
  ``lat``/``lon`` per location; locations without any value, e.g. over sea, are
  skipped), quality-screened (SMAP ``retrieval_qual_flag`` bits 1–2 clear, i.e. retrieval
  attempted and successful — bit 0, "recommended quality", is set for every retrieval of
  the Hawaii cells, which mix coast and volcano slopes, so it cannot be required; ASCAT ``ssf``
  0 or 1 (unknown/unfrozen) and ``proc_flag`` = 0; C3S ``flag`` = 0; SMOS-IC
  ``Quality_Flag`` = 0; sentinel values below −999 dropped), unit-converted (GLDAS 0–10 cm kg m-2 / 100 → m3 m-3; ASCAT stays
  in % saturation) and averaged per UTC day;
* skill on jointly valid days: bias, R, anomaly R (35-day climatology), ubRMSE (ASCAT's
  after mean/std rescaling onto the station, since % saturation has another scale), n;
* extended triple collocation station–SMAP–ASCAT (in situ, passive, active: errors
  assumed independent), error std in station units (m3 m-3) and ρ².
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from xldas.validation.collocation import triple_collocation
from xldas.validation.metrics import skill
from xldas.validation.rescale import rescale

__all__ = ["PRODUCTS", "hawaii_daily", "hawaii_table"]

#: product -> (folder, variable, scale to m3 m-3 or None for % saturation)
PRODUCTS = {
    "SMAP": (("SMAP_V8_AM", "SMAP_V8_PM"), "soil_moisture", 1.0),
    "ASCAT": (("ASCAT_H119",), "sm", None),
    "C3S": (("C3S_V202212",), "sm", 1.0),
    "SMOS-IC": (("SMOS_105_ASC",), "Soil_Moisture", 1.0),
    "GLDAS": (("GLDAS_NOAH025_3H_2_1",), "SoilMoi0_10cm_inst", 0.01),
    "ERA5": (("ERA5_20190613",), "swvl1", 1.0),
    "ERA5-Land": (("ERA5_LAND_V20190904",), "swvl1", 1.0),
}
_EPOCH = {
    "days since 1858-11-17 00:00:00": "1858-11-17",
    "days since 1900-01-01 00:00:00": "1900-01-01",
}
PERIOD = ("2017-01-01", "2018-12-31")


def _haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    a = (
        np.sin((p2 - p1) / 2) ** 2
        + np.cos(p1) * np.cos(p2) * np.sin(np.deg2rad(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * np.arcsin(np.sqrt(a))


def _times(ds, tvar="time"):
    units = ds[tvar].attrs.get("units", "days since 1858-11-17 00:00:00")
    epoch = pd.Timestamp(_EPOCH.get(units, units.split("since")[1].strip()))
    return epoch + pd.to_timedelta(np.asarray(ds[tvar].values, dtype=np.float64), unit="D")


def _qc(name: str, ds: xr.Dataset, sel) -> np.ndarray:
    ok = np.ones(np.shape(sel(ds[PRODUCTS[name][1]])), dtype=bool)
    if name == "SMAP":
        flag = np.nan_to_num(np.asarray(sel(ds["retrieval_qual_flag"])), nan=65534).astype(np.int64)
        ok &= (flag & 6) == 0
    elif name == "ASCAT":
        ssf = np.asarray(sel(ds["ssf"]))
        ok &= ((ssf == 0) | (ssf == 1)) & (np.asarray(sel(ds["proc_flag"])) == 0)
    elif name == "C3S":
        ok &= np.asarray(sel(ds["flag"])) == 0
    elif name == "SMOS-IC":
        ok &= np.asarray(sel(ds["Quality_Flag"])) == 0
    return ok


def _product_series(root: Path, name: str, lat: float, lon: float) -> tuple[pd.Series, float]:
    """Daily series of product ``name`` at the location nearest to (lat, lon)."""
    folders, var, scale = PRODUCTS[name]
    parts, dist = [], np.inf
    for folder in folders:
        best = None
        for f in sorted((root / folder).glob("0*.nc")):
            with xr.open_dataset(f, decode_times=False, mask_and_scale=True) as ds:
                d = _haversine_km(lat, lon, ds["lat"].values, ds["lon"].values)
                if "locations" in ds[var].dims:  # skip locations without any value (sea)
                    d = np.where(ds[var].notnull().any("time").values, d, np.inf)
                i = int(np.argmin(d))
                if best is None or d[i] < best[0]:
                    best = (float(d[i]), f, i)
        if best is None:
            continue
        dist = min(dist, best[0])
        with xr.open_dataset(best[1], decode_times=False, mask_and_scale=True) as ds:
            i = best[2]
            if "row_size" in ds:  # contiguous ragged (ASCAT)
                start = int(ds["row_size"].values[:i].sum())
                stop = start + int(ds["row_size"].values[i])

                def sel(v, start=start, stop=stop):
                    return v.values[start:stop]

                t = _times(ds)[start:stop]
            else:

                def sel(v, i=i):
                    return v.isel(locations=i).values

                t = _times(ds)
            vals = np.asarray(sel(ds[var]), dtype=np.float64)
            ok = _qc(name, ds, sel) & np.isfinite(vals) & (vals > -999)
            if scale is not None:
                vals = vals * scale
            parts.append(pd.Series(np.where(ok, vals, np.nan), index=pd.DatetimeIndex(t)))
    s = pd.concat(parts).sort_index()
    s = s[(s.index >= PERIOD[0]) & (s.index < pd.Timestamp(PERIOD[1]) + pd.Timedelta("1D"))]
    return s.resample("D").mean(), dist


def hawaii_daily(root=None) -> xr.Dataset:
    """Daily station and product soil moisture at each Hawaii ISMN station.

    Returns
    -------
    Dataset (time, station) with ``insitu`` (m3 m-3) and one variable per product (m3
    m-3; ASCAT in % saturation), plus ``<product>_distance_km`` per station.
    """
    from xldas.io.stations import read_ismn
    from xldas.validation.bondville import shared_data_dir

    root = Path(root) if root is not None else shared_data_dir() / "hawaii_colocated_sm"
    ism = read_ismn(root / "ismn" / "ISMN_HAWAII_subset.zip", good_only=True)
    days = pd.date_range(*PERIOD, freq="D")
    out = {}
    stations = [str(s) for s in ism.station.values]
    hourly = ism.sm.to_pandas()
    daily = hourly.resample("D").mean().where(hourly.resample("D").count() >= 12).reindex(days)
    out["insitu"] = xr.DataArray(
        daily.to_numpy(), dims=("time", "station"), attrs={"units": "m3 m-3"}
    )
    dists = {}
    for name in PRODUCTS:
        cols, dd = [], []
        for k in range(ism.sizes["sensor"]):
            s, d = _product_series(root, name, float(ism.lat[k]), float(ism.lon[k]))
            cols.append(s.reindex(days).to_numpy())
            dd.append(d)
        units = "m3 m-3" if PRODUCTS[name][2] is not None else "percent"
        out[name] = xr.DataArray(
            np.stack(cols, 1), dims=("time", "station"), attrs={"units": units}
        )
        dists[f"{name}_distance_km"] = ("station", np.asarray(dd))
    ds = xr.Dataset(out, coords={"time": days, "station": stations, **dists})
    ds = ds.assign_coords(
        depth_to=("station", ism.depth_to.values),
        lat=("station", ism.lat.values),
        lon=("station", ism.lon.values),
    )
    return ds


def hawaii_table(daily: xr.Dataset | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Skill of every product against every station, and triple collocation.

    Returns
    -------
    (skill_table, tc_table) as pandas DataFrames.
    """
    daily = hawaii_daily() if daily is None else daily
    rows = []
    ref = daily["insitu"]
    for name in PRODUCTS:
        prod = daily[name]
        if prod.attrs["units"] == "percent":
            scaled = rescale(prod, ref, method="mean_std")
            sk = skill(scaled, ref, metrics=["r", "anomaly_r", "ubrmse", "n"])
            sk["bias"] = xr.full_like(sk["r"], np.nan)
        else:
            sk = skill(prod, ref, metrics=["bias", "r", "anomaly_r", "ubrmse", "n"])
        for st in daily.station.values:
            rows.append(
                {
                    "station": str(st),
                    "product": name,
                    "distance_km": float(daily[f"{name}_distance_km"].sel(station=st)),
                    **{
                        m: float(sk[m].sel(station=st))
                        for m in ("n", "bias", "r", "anomaly_r", "ubrmse")
                    },
                }
            )
    table = pd.DataFrame(rows)
    table["n"] = table["n"].astype(int)
    tcs = []
    for trip in (("insitu", "SMAP", "ASCAT"), ("insitu", "SMAP", "ERA5-Land")):
        tc = triple_collocation(*(daily[v].rename(v) for v in trip), min_n=100)
        for st in daily.station.values:
            t = tc.sel(station=st)
            tcs.append(
                {
                    "station": str(st),
                    "triplet": "-".join(trip),
                    "n": int(t.n),
                    **{f"err_std_{p}": float(t.error_std_ref.sel(product=p)) for p in trip},
                    **{f"rho2_{p}": float(t.rho2.sel(product=p)) for p in trip},
                    "assumptions_ok": bool(t.assumptions_ok),
                }
            )
    return table, pd.DataFrame(tcs)
