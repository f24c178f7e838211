"""Small files in the exact layouts of the observation products (for tests, docs, notebooks).

Each writer takes a folder and a few values and writes one file whose groups, dataset
names, dtypes, fill values, scale factors and flag bits follow the product specification,
so that the readers in :mod:`xldas.io.observations` run on them exactly as on real granules.
Values outside the given window are fill.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "write_amsr2_l3",
    "write_grace_mascon",
    "write_smap_l1c",
    "write_smap_l3",
    "write_smos_l3",
]

FILL = -9999.0


def _ident(f, short: str, version: str = "V008"):
    g = f.create_group("Metadata/DatasetIdentification")
    g.attrs["shortName"] = np.bytes_(short)
    g.attrs["VersionID"] = np.bytes_(version)


def write_smap_l3(
    folder,
    date="2017-01-01",
    cells: dict | None = None,
    product: str = "SPL3SMP",
    version: str = "V008",
) -> Path:
    """Write ``SMAP_L3_SM_P[_E]_YYYYMMDD_R18290_001.h5``.

    ``cells`` maps ``(pass, row, col)`` → dict of values (``soil_moisture``,
    ``soil_moisture_error``, ``retrieval_qual_flag``, ``tb_h_corrected``, ``tb_v_corrected``,
    ``tb_qual_flag_h``/``_v``, ``surface_temperature``, ``vegetation_water_content``,
    ``tb_time_seconds``); pass is "AM" or "PM", row/col global EASE-Grid 2.0 indices.
    """
    import h5py

    shape = (406, 964) if product == "SPL3SMP" else (1624, 3856)
    tag = "SMAP_L3_SM_P" if product == "SPL3SMP" else "SMAP_L3_SM_P_E"
    path = Path(folder) / f"{tag}_{pd.Timestamp(date):%Y%m%d}_R18290_001.h5"
    cells = cells or {}
    floats = [
        "soil_moisture",
        "soil_moisture_error",
        "tb_h_corrected",
        "tb_v_corrected",
        "surface_temperature",
        "vegetation_water_content",
        "vegetation_opacity",
    ]
    ints = ["retrieval_qual_flag", "tb_qual_flag_h", "tb_qual_flag_v", "surface_flag"]
    with h5py.File(path, "w") as f:
        _ident(f, product, version)
        for p in ("AM", "PM"):
            g = f.create_group(f"Soil_Moisture_Retrieval_Data_{p}")
            sfx = "_pm" if p == "PM" else ""
            mine = {(r, c): v for (pp, r, c), v in cells.items() if pp == p}
            for name in floats:
                a = np.full(shape, FILL, np.float32)
                for (r, c), v in mine.items():
                    if name in v:
                        a[r, c] = v[name]
                d = g.create_dataset(name + sfx, data=a, chunks=True, compression="gzip")
                d.attrs["_FillValue"] = np.float32(FILL)
                d.attrs["units"] = np.bytes_("cm**3/cm**3" if "soil" in name else "K")
            for name in ints:
                a = np.full(shape, 65534, np.uint16)
                for (r, c), v in mine.items():
                    if name in v:
                        a[r, c] = v[name]
                d = g.create_dataset(name + sfx, data=a, chunks=True, compression="gzip")
                d.attrs["_FillValue"] = np.uint16(65534)
            a = np.full(shape, FILL, np.float64)
            for (r, c), v in mine.items():
                if "tb_time_seconds" in v:
                    a[r, c] = v["tb_time_seconds"]
            d = g.create_dataset("tb_time_seconds" + sfx, data=a, chunks=True, compression="gzip")
            d.attrs["_FillValue"] = FILL
            rows = np.broadcast_to(np.arange(shape[0], dtype=np.int32)[:, None], shape)
            cols = np.broadcast_to(np.arange(shape[1], dtype=np.int32)[None, :], shape)
            g.create_dataset("EASE_row_index" + sfx, data=rows, chunks=True, compression="gzip")
            g.create_dataset("EASE_column_index" + sfx, data=cols, chunks=True, compression="gzip")
    return path


def write_smap_l1c(folder, date="2017-01-01", cells: list | None = None) -> Path:
    """Write ``SMAP_L1C_TB_NNNNN_D_YYYYMMDDT..._R18290_001.h5`` with a ``Global_Projection``
    group of 1-D cell arrays. ``cells``: list of dicts with ``row``, ``col``, ``tb_h_fore``,
    ``tb_h_aft``, ``tb_v_fore``, ``tb_v_aft`` and optional ``qual_h``/``qual_v`` (uint16)."""
    import h5py

    cells = cells or []
    path = Path(folder) / f"SMAP_L1C_TB_12345_D_{pd.Timestamp(date):%Y%m%d}T060000_R18290_001.h5"
    with h5py.File(path, "w") as f:
        _ident(f, "SPL1CTB", "V005")
        g = f.create_group("Global_Projection")
        g.create_dataset("cell_row", data=np.array([c["row"] for c in cells], np.uint16))
        g.create_dataset("cell_column", data=np.array([c["col"] for c in cells], np.uint16))
        for pol in ("h", "v"):
            for look in ("fore", "aft"):
                d = g.create_dataset(
                    f"cell_tb_{pol}_{look}",
                    data=np.array([c.get(f"tb_{pol}_{look}", FILL) for c in cells], np.float32),
                )
                d.attrs["_FillValue"] = np.float32(FILL)
                q = np.array([c.get(f"qual_{pol}", 0) for c in cells], np.uint16)
                g.create_dataset(f"cell_tb_qual_flag_{pol}_{look}", data=q)
    return path


def write_amsr2_l3(folder, date="2017-01-01", band="06", values: dict | None = None) -> Path:
    """Write a 0.25° JAXA AMSR2 L3 Tb file ``GW1AM2_YYYYMMDD_01D_EQMA_L3SGT06HA2220220.h5``.

    ``values`` maps ``(row, col)`` → (tb_h K, tb_v K); stored as uint16 / 0.01 K with
    ``SCALE FACTOR`` 0.01 and fill 65534; row 0 at 90°N, column 0 at 0°E.
    """
    import h5py

    path = Path(folder) / f"GW1AM2_{pd.Timestamp(date):%Y%m%d}_01D_EQMA_L3SGT{band}HA2220220.h5"
    h = np.full((720, 1440), 65534, np.uint16)
    v = np.full((720, 1440), 65534, np.uint16)
    for (r, c), (th, tv) in (values or {}).items():
        h[r, c] = round(th / 0.01)
        v[r, c] = round(tv / 0.01)
    with h5py.File(path, "w") as f:
        for name, a in (("Brightness Temperature (H)", h), ("Brightness Temperature (V)", v)):
            d = f.create_dataset(name, data=a, chunks=True, compression="gzip")
            d.attrs["SCALE FACTOR"] = np.array([0.01], np.float32)
            d.attrs["UNIT"] = np.bytes_("K")
    return path


def write_smos_l3(folder, date="2017-01-01", values: dict | None = None, ic: bool = True) -> Path:
    """Write a SMOS-IC (``ic=True``) or CATDS L3 daily netCDF on the EASE-Grid 2.0 25 km
    lat/lon vectors. ``values`` maps ``(row, col)`` → (sm, err, quality_flag)."""
    import xarray as xr

    from xldas.io.grids import ease2_grid

    g = ease2_grid("M25")
    lat = g["lat"].values[:, 0]
    lon = g["lon"].values[0, :]
    sm = np.full((lat.size, lon.size), np.nan, np.float32)
    err = np.full_like(sm, np.nan)
    qf = np.full_like(sm, np.nan)
    for (r, c), (a, b, q) in (values or {}).items():
        sm[r, c], err[r, c], qf[r, c] = a, b, q
    dims = ("lat", "lon")
    name = "SM_RE07_MIR_CDF3SA" if not ic else "SMOS_IC_V105_ASC"
    ev = "Soil_Moisture_StdError" if ic else "Soil_Moisture_Dqx"
    ds = xr.Dataset(
        {"Soil_Moisture": (dims, sm, {"units": "m3/m3"}), ev: (dims, err, {"units": "m3/m3"})},
        coords={"lat": ("lat", lat), "lon": ("lon", lon)},
    )
    if ic:
        ds["Quality_Flag"] = (dims, qf)
    path = Path(folder) / f"{name}_{pd.Timestamp(date):%Y%m%d}.nc"
    ds.to_netcdf(path)
    return path


def write_grace_mascon(folder, times=("2017-01-16", "2017-02-15"), value_cm=5.0) -> Path:
    """Write a JPL-mascon-layout netCDF (0.5°, lon 0–360, ``lwe_thickness``/``uncertainty`` cm)
    over 15–25°N, 195–210°E (Hawaii) with a value field ``value_cm`` + 0.1·lat."""
    import xarray as xr

    lat = np.arange(15.25, 25.0, 0.5)
    lon = np.arange(195.25, 210.0, 0.5)
    t = pd.DatetimeIndex(times)
    lwe = np.broadcast_to(value_cm + 0.1 * lat[None, :, None], (t.size, lat.size, lon.size))
    ds = xr.Dataset(
        {
            "lwe_thickness": (("time", "lat", "lon"), lwe.astype(np.float64), {"units": "cm"}),
            "uncertainty": (("time", "lat", "lon"), np.full(lwe.shape, 2.0), {"units": "cm"}),
        },
        coords={"time": t, "lat": lat, "lon": lon},
    )
    path = Path(folder) / "GRCTellus.JPL.200204_202301.GLO.RL06.1M.MSCNv03CRI.nc"
    ds.to_netcdf(path)
    return path


def write_era5_land(folder, bbox, start="2021-05-01", days=3, res=0.1, seed=0) -> Path:
    """Write an hourly ERA5-Land-layout netCDF (``valid_time``, descending ``latitude``,
    ``longitude``; ``t2m``, ``d2m`` K, ``sp`` Pa, ``u10``/``v10`` m s-1 instantaneous;
    ``tp`` m, ``ssrd``/``strd`` J m-2 accumulated since 00 UTC) with a plausible diurnal
    cycle over ``bbox`` (west, south, east, north), widened by one cell."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    w, s, e, n = bbox
    lat = np.round(np.arange(np.floor(n / res) * res + res, s - 2 * res, -res), 4)
    lon = np.round(np.arange(np.floor(w / res) * res - res, e + 2 * res, res), 4)
    t = pd.date_range(start, periods=24 * days + 1, freq="h")
    hour = t.hour.values[:, None, None]
    shape = (t.size, lat.size, lon.size)
    sun = np.clip(np.sin(np.pi * (hour - 6) / 12), 0, None)
    t2m = 285.0 + 6.0 * np.sin(np.pi * (hour - 9) / 12) + np.zeros(shape)
    rate = {
        "ssrd": 800.0 * sun * 3600.0 + np.zeros(shape),
        "strd": 320.0 * 3600.0 + np.zeros(shape),
        "tp": np.where(rng.random(shape[:1])[:, None, None] < 0.1, 2e-3, 0.0) + np.zeros(shape),
    }
    acc = {}
    for k, r in rate.items():
        a = np.zeros(shape)
        for i in range(1, t.size):  # accumulate since 00 UTC (value at 00 = previous day total)
            a[i] = r[i] + (a[i - 1] if t[i - 1].hour != 0 or i == 1 else 0.0)
            if t[i - 1].hour == 0 and i > 1:
                a[i] = r[i]
        acc[k] = a
    dims = ("valid_time", "latitude", "longitude")
    ds = xr.Dataset(
        {
            "t2m": (dims, t2m, {"units": "K"}),
            "d2m": (dims, t2m - 6.0, {"units": "K"}),
            "sp": (dims, np.full(shape, 95000.0), {"units": "Pa"}),
            "u10": (dims, np.full(shape, 2.0), {"units": "m s**-1"}),
            "v10": (dims, np.full(shape, 1.0), {"units": "m s**-1"}),
            "tp": (dims, acc["tp"], {"units": "m"}),
            "ssrd": (dims, acc["ssrd"], {"units": "J m**-2"}),
            "strd": (dims, acc["strd"], {"units": "J m**-2"}),
        },
        coords={"valid_time": t, "latitude": lat, "longitude": lon},
    )
    path = Path(folder) / f"era5_land_{pd.Timestamp(start):%Y%m%d}.nc"
    ds.to_netcdf(path)
    return path


def write_ldas_eu_inputs(
    folder, subdomain=(10.0, 45.0, 10.6, 45.5), start="2021-05-01", days=3, noise_k=1.0, seed=0
) -> dict:
    """Generate the inputs of ``catalogs/experiments/ldas_eu.yaml`` for a twin experiment on
    a small EUR-11 sub-domain: ``params.nc`` (EUR-11, from texture maps), ERA5-Land forcing
    and daily SMAP L3 files whose AM Tb are the truth run (model from field capacity with
    wetter soil, unperturbed forcing) seen through the SMAP tau-omega operator, averaged over
    each 36 km EASE cell, plus Gaussian noise ``noise_k``. Returns the paths."""
    import xarray as xr

    from xldas.io.forcing import open_era5
    from xldas.io.grids import ease2_rowcol, eurocordex
    from xldas.io.regrid_curvilinear import regrid_curvilinear
    from xldas.models import initial_state, parameters_from_texture, step
    from xldas.obs import TauOmega

    folder = Path(folder)
    (folder / "smap").mkdir(parents=True, exist_ok=True)
    g = eurocordex("EUR-11", subdomain=subdomain)
    shape = (g.sizes["rlat"], g.sizes["rlon"])
    gc = {k: g[k] for k in ("rlat", "rlon", "lat", "lon", "rotated_pole")}
    sand = xr.DataArray(np.full(shape, 0.4), coords=gc, dims=("rlat", "rlon"))
    clay = xr.full_like(sand, 0.2)
    params = parameters_from_texture(sand, clay, lai=2.0, elevation=200.0)
    params["vwc"] = xr.full_like(sand, 1.0).assign_attrs(units="kg m-2")
    params = params.assign_coords(gc)
    params.to_netcdf(folder / "params.nc")
    w, s, e, n = (float(g.lon.min()), float(g.lat.min()), float(g.lon.max()), float(g.lat.max()))
    era = write_era5_land(folder, (w, s, e, n), start, days, seed=seed)
    forcing = regrid_curvilinear(open_era5(era, product="era5-land"), g, "bilinear").load()
    truth = initial_state(params)
    truth["sm"] = (truth["sm"] + 0.05).clip(max=params["theta_s"] - 0.01)
    op = TauOmega.smap()
    rng = np.random.default_rng(seed)
    r, c = ease2_rowcol(params.lon.values, params.lat.values, "M36")
    paths = []
    t0 = pd.Timestamp(start)
    for d in range(days):
        day = t0 + pd.Timedelta(days=d)
        f = forcing.sel(time=slice(day + pd.Timedelta(hours=1), day + pd.Timedelta(days=1)))
        truth = step(truth, f, params).load()
        tb = op(truth, params).load()
        cells = {}
        for key in set(zip(r.ravel().tolist(), c.ravel().tolist(), strict=True)):
            m = (r == key[0]) & (c == key[1])
            cells[("AM", *key)] = {
                "tb_h_corrected": float(
                    tb["tb_h"].values[m].mean() + noise_k * rng.standard_normal()
                ),
                "tb_v_corrected": float(
                    tb["tb_v"].values[m].mean() + noise_k * rng.standard_normal()
                ),
                "tb_qual_flag_h": 0,
                "tb_qual_flag_v": 0,
                "soil_moisture": float(truth["sm"].isel(layer=0).values[m].mean()),
                "soil_moisture_error": 0.04,
                "retrieval_qual_flag": 0,
            }
        paths.append(write_smap_l3(folder / "smap", day + pd.Timedelta(days=1), cells))
    return {"params": folder / "params.nc", "forcing": era, "smap": paths}
