"""Readers for satellite observation products, footprint-aware aggregation to the model grid,
and NASA Earthdata discovery.

Readers (each returns a Dataset in xldas conventions: CF ``units``, value + ``<var>_err``,
NaN = no observation, quality flags applied as documented, per-time counters)

- :func:`open_smap` — SMAP ``SPL3SMP`` (L3_SM_P, 36 km), ``SPL3SMP_E`` (L3_SM_P_E, 9 km)
  and ``SPL1CTB`` (L1C_TB, 36 km half-orbit cells) HDF5 files.
- :func:`open_amsr2_l3` — JAXA AMSR2 L3 daily brightness temperature / soil moisture HDF5.
- :func:`open_smos_l3` — SMOS L3 (CATDS) and SMOS-IC netCDF soil moisture (and ``BT_H``/``BT_V``
  multi-angle Tb where the file has them).
- :func:`open_grace_mascon` — GRACE/GRACE-FO mascon TWS anomalies (JPL/CSR netCDF).
- :func:`open_timeseries` — TU Wien/pynetcf time-series files (OrthoMulti and contiguous
  ragged) of SMAP L3, ASCAT H SAF (H119/H120 ...), C3S SM, SMOS-IC, GLDAS, ERA5 and ERA5-Land:
  the same per-product QC/renaming as the image readers.
- :func:`open_observations` — dispatch by product name (used by experiment configs).

Aggregation: :func:`to_model_grid`. Discovery: :func:`search_earthdata`.

What is written here and what is reused
---------------------------------------
HDF5/netCDF bytes are read lazily by h5netcdf/xarray (``phony_dims`` for SMAP's dimension-less
HDF5); EASE-Grid 2.0 geometry is pyproj's EPSG:6933 (:mod:`xldas.io.grids`, cross-checked against
``ease-lonlat`` in the tests); search is earthaccess. The maintained product readers
``smap-io``, ``ascat`` and ``smos`` (TU Wien) read one image or one location at a time into
NumPy (no lazy dask arrays) and pull in eccodes and qa4sm-preprocessing, so they are not used:
the per-product variable maps, scale/fill handling and flag rules below (from the product
specifications) are written here. The contiguous-ragged ASCAT layout is indexed eagerly (it
must be split by ``row_size``); every other reader is lazy.

Quality flags (defaults, ``qc=False`` keeps everything)
-------------------------------------------------------
SMAP L3: soil moisture kept where ``retrieval_qual_flag`` bit 0 ("retrieval recommended" not
met) is 0; Tb kept where ``tb_qual_flag_h``/``_v`` bit 0 is 0. SMAP L1C: ``cell_tb_qual_flag_*``
bit 0 is 0. SMOS-IC: ``Quality_Flag == 0``; SMOS L3 (CATDS): ``Soil_Moisture_Dqx`` finite and
< 0.1 m3 m-3. ASCAT: ``ssf`` 0 or 1 (unknown/unfrozen), ``proc_flag == 0``, ``corr_flag`` bits 0–2 = 0.
C3S: ``flag == 0``. AMSR2: fill values (65534, 65535, negative) removed. GRACE: none (the
``uncertainty`` field is the error). Every reader adds ``n_obs`` (time): valid observations
and ``n_flagged`` (time): observations removed by the flags, so a time whose observations are
all flagged is counted and contributes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from xldas._xr import add_history, apply_kernel
from xldas.errors import ObservationError, UnknownOptionError

__all__ = [
    "PRODUCTS",
    "earthdata_query",
    "open_amsr2_l3",
    "open_grace_mascon",
    "open_observations",
    "open_smap",
    "open_smos_l3",
    "open_timeseries",
    "search_earthdata",
    "to_model_grid",
]

log = logging.getLogger(__name__)

#: product name -> (reader, Earthdata short name or None, description)
PRODUCTS = {
    "SPL3SMP": ("open_smap", "SPL3SMP", "SMAP L3 radiometer soil moisture + Tb, 36 km EASE2"),
    "SPL3SMP_E": ("open_smap", "SPL3SMP_E", "SMAP L3 enhanced soil moisture + Tb, 9 km EASE2"),
    "SPL1CTB": ("open_smap", "SPL1CTB", "SMAP L1C brightness temperature, 36 km EASE2 cells"),
    "AMSR2_L3": ("open_amsr2_l3", None, "JAXA GCOM-W AMSR2 L3 daily Tb / soil moisture"),
    "SMOS_L3": ("open_smos_l3", None, "SMOS L3 soil moisture (CATDS) / SMOS-IC, 25 km EASE2"),
    "GRACE_MASCON": (
        "open_grace_mascon",
        "TELLUS_GRAC-GRFO_MASCON_CRI_GRID_RL06.3_V4",
        "GRACE/GRACE-FO JPL mascon TWS anomaly",
    ),
    "ASCAT_TS": ("open_timeseries", None, "H SAF ASCAT SSM CDR time series (pynetcf ragged)"),
}

_MJD = "days since 1858-11-17 00:00:00"
_J2000 = pd.Timestamp("2000-01-01T11:58:55.816")  # SMAP time origin (UTC)


# ============================================================================ helpers
def _bit(flag: xr.DataArray, bit: int) -> xr.DataArray:
    """True where ``bit`` is set (fill/NaN counts as set)."""
    f = flag.fillna(-1) if flag.dtype.kind == "f" else flag
    return (f.astype(np.int64) & (1 << bit)) != 0


def _counts(ds: xr.Dataset, value: str, before: xr.DataArray, spatial: Sequence[str]):
    """Add ``n_obs``/``n_flagged`` (time) counters for ``value`` given pre-QC values."""
    dims = [d for d in spatial if d in ds[value].dims]
    n_after = ds[value].notnull().sum(dims)
    n_before = before.notnull().sum(dims)
    ds["n_obs"] = n_after.assign_attrs(long_name=f"valid {value} observations", units="1")
    ds["n_flagged"] = (n_before - n_after).assign_attrs(
        long_name=f"{value} observations removed by the quality flags", units="1"
    )
    return ds


def _cf(da: xr.DataArray, units: str, long_name: str, standard_name: str | None = None):
    attrs = {"units": units, "long_name": long_name}
    if standard_name:
        attrs["standard_name"] = standard_name
    return da.assign_attrs(attrs)


def _layout_error(path, product: str, expected: str, found: str) -> ObservationError:
    return ObservationError(f"{path} is not a {product} file: expected {expected}, found {found}")


# ============================================================================ SMAP
_SMAP_SHAPES = {(406, 964): "M36", (1624, 3856): "M09"}


def _smap_identity(path) -> tuple[str | None, str | None]:
    import h5py

    with h5py.File(path, "r") as f:
        ident = f.get("Metadata/DatasetIdentification")
        if ident is None:
            return None, None
        short = ident.attrs.get("shortName")
        ver = ident.attrs.get("VersionID")
        dec = [v.decode() if isinstance(v, bytes) else v for v in (short, ver)]
        return (str(dec[0]) if dec[0] is not None else None), (
            str(dec[1]) if dec[1] is not None else None
        )


def _date_from_name(path) -> pd.Timestamp | None:
    m = re.search(r"(\d{8})", Path(path).name)
    return pd.Timestamp(m.group(1)) if m else None


def _smap_l3_group(path, group: str, suffix: str, chunks) -> xr.Dataset:
    ds = xr.open_dataset(
        path, engine="h5netcdf", group=group, phony_dims="sort", chunks=chunks, decode_times=False
    )
    if suffix:
        ds = ds.rename({v: v[: -len(suffix)] for v in ds.data_vars if v.endswith(suffix)})
    dims = ds["soil_moisture"].dims if "soil_moisture" in ds else None
    if dims is None or len(dims) != 2:
        raise ObservationError(f"{path}:{group} has no 2-D 'soil_moisture{suffix}' dataset")
    return ds.rename({dims[0]: "y", dims[1]: "x"})


def smap_l3_qc(raw: xr.Dataset, qc: bool = True, spatial: Sequence[str] = ("y", "x")):
    """SMAP L3 variables → xldas names, units and flags (shared by the image and
    time-series readers). ``raw`` holds the product's variable names (``soil_moisture``,
    ``soil_moisture_error``, ``retrieval_qual_flag``, ``tb_h_corrected`` ...) with fill
    values already masked."""
    out = xr.Dataset(coords=raw.coords)
    sm_raw = raw["soil_moisture"]
    sm = sm_raw.where(~_bit(raw["retrieval_qual_flag"], 0)) if qc else sm_raw
    out["sm"] = _cf(
        sm, "m3 m-3", "SMAP DCA surface soil moisture", "volume_fraction_of_condensed_water_in_soil"
    )
    if "soil_moisture_error" in raw:
        err = raw["soil_moisture_error"].where(sm.notnull())
        out["sm_err"] = _cf(err, "m3 m-3", "1-sigma error of sm (soil_moisture_error)")
    else:
        out["sm"].attrs["error_std"] = 0.04  # SMAP mission accuracy requirement (m3 m-3)
    for pol in ("h", "v"):
        name = f"tb_{pol}_corrected"
        if name in raw:
            tb = raw[name]
            flag = raw.get(f"tb_qual_flag_{pol}")
            if qc and flag is not None:
                tb = tb.where(~_bit(flag, 0))
            out[f"tb_{pol}"] = _cf(
                tb,
                "K",
                f"SMAP {pol.upper()}-pol brightness temperature (water-corrected)",
                "brightness_temperature",
            )
            unc = raw.get(f"tb_{pol}_uncertainty")
            if unc is not None:
                out[f"tb_{pol}_err"] = _cf(
                    unc.where(tb.notnull()), "K", f"1-sigma error of tb_{pol}"
                )
            else:
                out[f"tb_{pol}"].attrs["error_std"] = 1.3  # SMAP L1 Tb total error (K)
    extra = {
        "surface_temperature": (
            "tsurf",
            "K",
            "surface temperature (GEOS-5)",
            "surface_temperature",
        ),
        "vegetation_water_content": ("vwc", "kg m-2", "vegetation water content", None),
        "vegetation_opacity": ("tau", "1", "vegetation optical depth", None),
        "freeze_thaw_fraction": ("frozen_fraction", "1", "frozen fraction of the cell", None),
    }
    for src, (name, units, ln, sn) in extra.items():
        if src in raw:
            out[name] = _cf(raw[src], units, ln, sn)
    for flag in ("retrieval_qual_flag", "surface_flag"):
        if flag in raw:
            out[flag] = raw[flag]
    if "tb_time_seconds" in raw:
        secs = raw["tb_time_seconds"]
        out["obs_time"] = (secs * 1e9).astype("timedelta64[ns]") + _J2000.to_datetime64()
        out["obs_time"].attrs["long_name"] = "UTC time of the Tb acquisition"
    return _counts(out, "sm", sm_raw, spatial)


def open_smap(
    path: str | Path,
    product: str | None = None,
    passes: Sequence[str] = ("AM", "PM"),
    bbox: Sequence[float] | None = None,
    qc: bool = True,
    chunks: dict | None = None,
) -> xr.Dataset:
    """Read a SMAP L3_SM_P / L3_SM_P_E / L1C_TB HDF5 file, lazily.

    Parameters
    ----------
    path : file (``SMAP_L3_SM_P_YYYYMMDD_R*.h5``, ``SMAP_L3_SM_P_E_*``, ``SMAP_L1C_TB_*``).
    product : {"SPL3SMP", "SPL3SMP_E", "SPL1CTB"}, optional
        Expected product; the file's ``/Metadata/DatasetIdentification`` ``shortName`` must
        match (checked when given).
    passes : AM (descending, 6 am local solar time) and/or PM (ascending, 6 pm).
    bbox : (west, south, east, north), optional: keep that window of the EASE-Grid.
    qc : apply the retrieval / Tb quality flags (module docstring).
    chunks : dask chunks (default: one chunk per file window).

    Returns
    -------
    xarray.Dataset
        L3: dims (time, y, x) — one time per pass, the nominal pass time at 6 am/6 pm local
        solar time of the window's central longitude (per-cell UTC in ``obs_time``);
        EASE-Grid 2.0 coords (``y``, ``x`` m, ``ease_row``, ``ease_col``, 2-D ``lat``/``lon``);
        ``sm``, ``sm_err`` (m3 m-3), ``tb_h``, ``tb_v`` (K, with ``error_std``), ``tsurf``,
        ``vwc``, ``tau``, flags, ``n_obs``, ``n_flagged``. L1C: dims (time, cell) with
        ``ease_row``/``ease_col``/``lat``/``lon`` per cell and fore/aft mean ``tb_h``/``tb_v``.

    Raises
    ------
    ObservationError
        Wrong product or version (names the expected layout), missing groups/datasets.

    Examples
    --------
    >>> ds = open_smap("SMAP_L3_SM_P_20170101_R18290_001.h5")  # doctest: +SKIP
    """
    from xldas.io.grids import ease2_grid

    path = Path(path)
    try:
        short, version = _smap_identity(path)
    except OSError as exc:
        raise ObservationError(
            f"{path} is not an HDF5 file ({exc}); expected a SMAP product"
        ) from None
    known = ("SPL3SMP", "SPL3SMP_E", "SPL1CTB")
    if short not in known:
        raise _layout_error(
            path,
            product or "SMAP",
            f"/Metadata/DatasetIdentification shortName in {known}",
            f"shortName={short!r}",
        )
    if product is not None and short != product:
        raise _layout_error(
            path, product, f"shortName {product!r}", f"{short!r} (version {version})"
        )
    if short == "SPL1CTB":
        return _open_smap_l1c(path, qc, chunks)
    date = _date_from_name(path)
    parts = []
    for p in passes:
        if p not in ("AM", "PM"):
            raise UnknownOptionError("SMAP pass", p, ("AM", "PM"))
        group = f"Soil_Moisture_Retrieval_Data_{p}"
        try:
            raw = _smap_l3_group(path, group, "_pm" if p == "PM" else "", chunks or {})
        except OSError:
            raise _layout_error(path, short, f"HDF5 group /{group}", "no such group") from None
        shape = (raw.sizes["y"], raw.sizes["x"])
        grid_name = _SMAP_SHAPES.get(shape)
        expected = "M36" if short == "SPL3SMP" else "M09"
        if grid_name != expected:
            raise _layout_error(
                path,
                short,
                f"EASE-Grid 2.0 {expected} arrays {next(k for k, v in _SMAP_SHAPES.items() if v == expected)}",
                f"shape {shape}",
            )
        g = ease2_grid(grid_name, bbox=bbox)
        raw = raw.isel(
            y=slice(int(g.ease_row[0]), int(g.ease_row[-1]) + 1),
            x=slice(int(g.ease_col[0]), int(g.ease_col[-1]) + 1),
        )
        raw = raw.drop_vars(
            [
                v
                for v in ("latitude", "longitude", "EASE_row_index", "EASE_column_index")
                if v in raw
            ]
        )
        raw = raw.assign_coords(g.coords)
        out = smap_l3_qc(raw, qc=qc)
        lon_c = float(np.nanmean(g["lon"].values))
        hour = 6.0 if p == "AM" else 18.0
        t = (date or pd.Timestamp("2000-01-01")) + pd.Timedelta(hours=hour - lon_c / 15.0)
        parts.append(
            out.expand_dims(time=[t.round("min").to_datetime64()]).assign_coords(
                pass_=("time", [p])
            )
        )
    ds = xr.concat(parts, dim="time", data_vars="all", coords="minimal", compat="override")
    ds = ds.rename({"pass_": "pass"}).sortby("time")
    ds.attrs.update(
        product=short,
        version=str(version),
        source=str(path.name),
        ease_grid=g.attrs["ease_grid"],
        crs="EPSG:6933",
        cell_size_m=g.attrs["cell_size_m"],
    )
    return add_history(ds, f"open_smap({path.name}, passes={list(passes)}, qc={qc})")


def _open_smap_l1c(path: Path, qc: bool, chunks) -> xr.Dataset:
    from xldas.io.grids import ease2_lonlat

    group = "Global_Projection"
    try:
        raw = xr.open_dataset(
            path,
            engine="h5netcdf",
            group=group,
            phony_dims="sort",
            chunks=chunks or {},
            decode_times=False,
        )
    except OSError:
        raise _layout_error(path, "SPL1CTB", f"HDF5 group /{group}", "no such group") from None
    need = ["cell_row", "cell_column", "cell_tb_h_fore", "cell_tb_v_fore"]
    missing = [v for v in need if v not in raw]
    if missing:
        raise _layout_error(path, "SPL1CTB", f"datasets {need} in /{group}", f"missing {missing}")
    cell = raw["cell_row"].dims[0]
    raw = raw.rename({cell: "cell"})
    out = xr.Dataset()
    counts_before = None
    for pol in ("h", "v"):
        looks = []
        for look in ("fore", "aft"):
            name = f"cell_tb_{pol}_{look}"
            if name not in raw:
                continue
            tb = raw[name]
            flag = raw.get(f"cell_tb_qual_flag_{pol}_{look}")
            if qc and flag is not None:
                tb = tb.where(~_bit(flag, 0))
            looks.append(tb)
        tb = xr.concat(looks, "look").mean("look") if len(looks) > 1 else looks[0]
        out[f"tb_{pol}"] = _cf(
            tb, "K", f"SMAP L1C {pol.upper()}-pol Tb (fore/aft mean)", "brightness_temperature"
        )
        out[f"tb_{pol}"].attrs["error_std"] = 1.3
        if counts_before is None:
            counts_before = raw[f"cell_tb_{pol}_fore"]
    # geometry (row/col are small integer coordinates: read them to place the cells)
    row = raw["cell_row"].values.astype(np.int64)
    col = raw["cell_column"].values.astype(np.int64)
    lon, lat = ease2_lonlat(row, col, "M36")
    out = out.assign_coords(
        ease_row=("cell", row), ease_col=("cell", col), lat=("cell", lat), lon=("cell", lon)
    )
    date = _date_from_name(path) or pd.Timestamp("2000-01-01")
    out = _counts(out, "tb_h", counts_before, ("cell",)).expand_dims(time=[date.to_datetime64()])
    out.attrs.update(product="SPL1CTB", ease_grid="M36", crs="EPSG:6933", source=path.name)
    return add_history(out, f"open_smap({path.name}) L1C_TB qc={qc}")


# ============================================================================ AMSR2
_AMSR2_FREQ = {"06": 6.925, "07": 7.3, "10": 10.65, "18": 18.7, "23": 23.8, "36": 36.5, "89": 89.0}


def open_amsr2_l3(path: str | Path, chunks: dict | None = None) -> xr.Dataset:
    """Read a JAXA GCOM-W AMSR2 L3 daily file (``GW1AM2_YYYYMMDD_01D_EQM[AD]_L3SG<P>...h5``).

    Tb files (``L3SGT06`` ... ``T89``) hold ``Brightness Temperature (H)``/``(V)``; soil
    moisture files (``L3SGSMC``) ``Geophysical Data``; both 16-bit integers with a
    ``SCALE FACTOR`` attribute and fills 65534/65535 (unsigned) or negative (signed). The
    equirectangular grid (0.1° or 0.25°) starts at the upper-left corner (90°N, 0°E); it is
    returned with ascending ``lat`` and ``lon`` in [−180, 180).

    Returns dims (time, lat, lon): ``tb_h``, ``tb_v`` (K, ``error_std`` 1 K, attr
    ``frequency_ghz``), or ``sm`` (m3 m-3, ``error_std`` 0.05) plus ``n_obs``/``n_flagged``.

    Raises ObservationError when the file name or datasets do not follow this layout.
    """
    path = Path(path)
    m = re.match(r"GW1AM2_(\d{8})_01D_EQM([AD])_L3SG(T(\d\d)|SMC)", path.name)
    if m is None:
        raise _layout_error(
            path,
            "AMSR2_L3",
            "file name GW1AM2_YYYYMMDD_01D_EQM[A|D]_L3SG<T06..T89|SMC>...",
            path.name,
        )
    raw = xr.open_dataset(
        path,
        engine="h5netcdf",
        phony_dims="sort",
        chunks=chunks or {},
        mask_and_scale=False,
        decode_times=False,
    )
    is_tb = m.group(3).startswith("T")
    names = (
        ["Brightness Temperature (H)", "Brightness Temperature (V)"]
        if is_tb
        else ["Geophysical Data"]
    )
    missing = [n for n in names if n not in raw]
    if missing:
        raise _layout_error(path, "AMSR2_L3", f"datasets {names}", f"missing {missing}")
    out = xr.Dataset()
    before = None
    for n in names:
        da = raw[n]
        if da.ndim == 3:
            da = da.isel({da.dims[2]: 0})
        da = da.rename({da.dims[0]: "lat", da.dims[1]: "lon"})
        scale = float(np.ravel(raw[n].attrs.get("SCALE FACTOR", 1.0))[0])
        if da.dtype.kind == "u":
            ok = da < 65534
        else:
            ok = da >= 0
        before = da.where(da < 65535) if da.dtype.kind == "u" else da.where(da > -32768)
        val = da.where(ok) * scale
        if is_tb:
            pol = "h" if "(H)" in n else "v"
            out[f"tb_{pol}"] = _cf(
                val,
                "K",
                f"AMSR2 {pol.upper()}-pol brightness temperature",
                "brightness_temperature",
            )
            out[f"tb_{pol}"].attrs.update(error_std=1.0, frequency_ghz=_AMSR2_FREQ[m.group(4)])
        else:
            out["sm"] = _cf(val / 100.0, "m3 m-3", "AMSR2 JAXA soil moisture content")
            out["sm"].attrs["error_std"] = 0.05
    ny, nx = out.sizes["lat"], out.sizes["lon"]
    res = 180.0 / ny
    lat = 90.0 - res * (np.arange(ny) + 0.5)
    lon = res * (np.arange(nx) + 0.5)
    lon = np.where(lon >= 180.0, lon - 360.0, lon)
    out = out.assign_coords(
        lat=("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
        lon=("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
    )
    out = out.sortby("lat").sortby("lon")
    first = next(iter(out.data_vars))
    before = before.assign_coords(lat=("lat", lat), lon=("lon", lon))
    out = _counts(out, first, before, ("lat", "lon"))
    hour = 13.5 if m.group(2) == "A" else 1.5  # local solar time of the GCOM-W passes
    t = pd.Timestamp(m.group(1)) + pd.Timedelta(hours=hour)
    out = out.expand_dims(time=[t.to_datetime64()])
    out.attrs.update(
        product="AMSR2_L3",
        pass_direction="ascending" if m.group(2) == "A" else "descending",
        source=path.name,
        time_note="nominal local solar pass time at 0 deg longitude",
    )
    return add_history(out, f"open_amsr2_l3({path.name})")


# ============================================================================ SMOS
def smos_qc(raw: xr.Dataset, qc: bool = True, spatial: Sequence[str] = ("lat", "lon")):
    """SMOS-IC / CATDS L3 variables → ``sm``/``sm_err`` (shared by image and time-series readers)."""
    if "Soil_Moisture" not in raw:
        raise ObservationError(
            "expected SMOS variable 'Soil_Moisture' (SMOS-IC or CATDS L3 layout)"
        )
    sm_raw = raw["Soil_Moisture"]
    sm_raw = sm_raw.where(sm_raw >= 0)
    if "Soil_Moisture_StdError" in raw:  # SMOS-IC
        err = raw["Soil_Moisture_StdError"]
        keep = raw["Quality_Flag"] == 0 if "Quality_Flag" in raw else sm_raw.notnull()
    elif "Soil_Moisture_Dqx" in raw:  # CATDS L3
        err = raw["Soil_Moisture_Dqx"]
        keep = err.notnull() & (err >= 0) & (err < 0.1)
    else:
        raise ObservationError(
            "expected SMOS error variable 'Soil_Moisture_StdError' (SMOS-IC) or 'Soil_Moisture_Dqx' (CATDS L3)"
        )
    sm = sm_raw.where(keep) if qc else sm_raw
    out = xr.Dataset(coords=raw.coords)
    out["sm"] = _cf(
        sm, "m3 m-3", "SMOS surface soil moisture", "volume_fraction_of_condensed_water_in_soil"
    )
    out["sm_err"] = _cf(err.where(sm.notnull()), "m3 m-3", "1-sigma error of sm")
    for src, name in (("BT_H", "tb_h"), ("BT_V", "tb_v")):
        if src in raw:
            out[name] = _cf(
                raw[src], "K", f"SMOS {name[-1].upper()}-pol Tb", "brightness_temperature"
            )
            out[name].attrs["error_std"] = 2.5
    return _counts(out, "sm", sm_raw, spatial)


def open_smos_l3(path: str | Path, qc: bool = True, chunks: dict | None = None) -> xr.Dataset:
    """Read a SMOS-IC or CATDS L3 SM daily netCDF file (EASE-Grid 2.0 25 km, 1-D lat/lon).

    Returns dims (time, lat, lon): ``sm``, ``sm_err`` (m3 m-3), ``tb_h``/``tb_v`` where
    present, ``n_obs``, ``n_flagged``. Raises ObservationError on another layout.
    """
    path = Path(path)
    raw = xr.open_dataset(path, chunks=chunks or {})
    raw = raw.rename(
        {k: v for k, v in {"latitude": "lat", "longitude": "lon"}.items() if k in raw.dims}
    )
    if not {"lat", "lon"} <= set(raw.dims):
        raise _layout_error(path, "SMOS_L3", "dims (lat, lon)", str(tuple(raw.dims)))
    try:
        out = smos_qc(raw, qc)
    except ObservationError as exc:
        raise ObservationError(f"{path}: {exc}") from None
    if "time" not in out.dims:
        t = _date_from_name(path) or pd.Timestamp("2000-01-01")
        out = out.expand_dims(time=[t.to_datetime64()])
    out = out.sortby("lat")
    out.attrs.update(product="SMOS_L3", source=path.name)
    return add_history(out, f"open_smos_l3({path.name}, qc={qc})")


# ============================================================================ GRACE
def open_grace_mascon(
    path: str | Path, chunks: dict | None = None, mascon_deg: float = 3.0
) -> xr.Dataset:
    """Read a GRACE/GRACE-FO mascon netCDF file (JPL RL06.x ``lwe_thickness`` in cm).

    Returns dims (time, lat, lon) with ``lon`` in [−180, 180): ``tws`` (terrestrial water
    storage anomaly, kg m-2 = mm) and ``tws_err`` (from ``uncertainty``), and a
    ``footprint_id`` coordinate numbering the ``mascon_deg`` × ``mascon_deg`` blocks that
    the 0.5° grid copies (JPL mascons are 3° equal-area caps; here approximated by a
    regular 3° tiling), which :func:`to_model_grid` uses so that one mascon value copied onto
    many cells is not counted as independent observations.
    """
    path = Path(path)
    raw = xr.open_dataset(path, chunks=chunks or {})
    if "lwe_thickness" not in raw:
        raise _layout_error(
            path, "GRACE_MASCON", "variable 'lwe_thickness' (cm)", str(list(raw.data_vars))
        )
    fac = {"cm": 10.0, "mm": 1.0, "m": 1000.0}.get(raw["lwe_thickness"].attrs.get("units", "cm"))
    if fac is None:
        raise ObservationError(
            f"{path}: lwe_thickness units {raw['lwe_thickness'].attrs.get('units')!r} not cm/mm/m"
        )
    out = xr.Dataset()
    out["tws"] = _cf(
        raw["lwe_thickness"] * fac,
        "kg m-2",
        "terrestrial water storage anomaly (liquid water equivalent)",
    )
    if "uncertainty" in raw:
        out["tws_err"] = _cf(raw["uncertainty"] * fac, "kg m-2", "1-sigma error of tws")
    else:
        out["tws"].attrs["error_std"] = 20.0
    lon = ((out["lon"] + 180.0) % 360.0) - 180.0
    out = out.assign_coords(lon=lon).sortby("lon").sortby("lat")
    fid = (
        np.floor((out["lat"].values + 90.0) / mascon_deg)[:, None] * 1000
        + np.floor((out["lon"].values + 180.0) / mascon_deg)[None, :]
    ).astype(np.int64)
    out = out.assign_coords(footprint_id=(("lat", "lon"), fid))
    out = _counts(out, "tws", out["tws"], ("lat", "lon"))
    out.attrs.update(product="GRACE_MASCON", source=path.name, mascon_deg=mascon_deg)
    return add_history(out, f"open_grace_mascon({path.name})")


# ============================================================================ time series
def _ts_qc(product: str, raw: xr.Dataset, qc: bool) -> xr.Dataset:
    sp = ("locations",)
    if product == "SMAP":
        return smap_l3_qc(raw, qc, sp)
    if product == "SMOS_IC":
        return smos_qc(raw, qc, sp)
    if product == "C3S":
        sm_raw = raw["sm"].where(raw["sm"] >= 0)  # -9999 fill without _FillValue
        sm = sm_raw.where(raw["flag"] == 0) if qc else sm_raw
        out = xr.Dataset(coords=raw.coords)
        out["sm"] = _cf(
            sm, "m3 m-3", "C3S SM COMBINED", "volume_fraction_of_condensed_water_in_soil"
        )
        out["sm_err"] = _cf(
            raw["sm_uncertainty"].where(sm.notnull()), "m3 m-3", "1-sigma error of sm"
        )
        return _counts(out, "sm", sm_raw, sp)
    if product == "GLDAS":
        out = xr.Dataset(coords=raw.coords)
        sm = raw["SoilMoi0_10cm_inst"] / (0.1 * 1000.0)  # kg m-2 over 0.1 m -> m3 m-3
        out["sm"] = _cf(sm, "m3 m-3", "GLDAS Noah 0-10 cm soil moisture")
        if "SoilTMP0_10cm_inst" in raw:
            out["tsoil"] = _cf(raw["SoilTMP0_10cm_inst"], "K", "GLDAS 0-10 cm soil temperature")
        return _counts(out, "sm", sm, sp)
    if product in ("ERA5", "ERA5_LAND"):
        out = xr.Dataset(coords=raw.coords)
        out["sm"] = _cf(raw["swvl1"], "m3 m-3", f"{product} 0-7 cm volumetric soil water")
        if "stl1" in raw:
            out["tsoil"] = _cf(raw["stl1"], "K", f"{product} 0-7 cm soil temperature")
        return _counts(out, "sm", out["sm"], sp)
    raise UnknownOptionError("time-series product", product, _TS_PRODUCTS)


_TS_PRODUCTS = ("SMAP", "ASCAT", "C3S", "SMOS_IC", "GLDAS", "ERA5", "ERA5_LAND")
_TS_SIGNATURE = {
    "SMAP": "soil_moisture",
    "ASCAT": "row_size",
    "C3S": "sm_uncertainty",
    "SMOS_IC": "Soil_Moisture",
    "GLDAS": "SoilMoi0_10cm_inst",
    "ERA5": "swvl1",
    "ERA5_LAND": "swvl1",
}


def _read_ascat_ragged(path: Path, qc: bool, freq: str) -> xr.Dataset:
    raw = xr.open_dataset(path, decode_times=False)
    n = np.clip(raw["row_size"].values.astype(np.int64), 0, None)  # fill (negative) = empty
    if n.sum() != raw.sizes["obs"]:
        raise _layout_error(
            path,
            "ASCAT_TS",
            "sum(row_size) == len(obs) (contiguous ragged)",
            f"{n.sum()} != {raw.sizes['obs']}",
        )
    loc = np.repeat(np.arange(n.size), n)
    t = pd.to_datetime(raw["time"].values, unit="D", origin=pd.Timestamp("1900-01-01"))
    sm_raw = raw["sm"].values.astype(float)
    noise = raw["sm_noise"].values.astype(float)
    keep = np.isfinite(sm_raw)
    if qc:
        keep &= (raw["ssf"].values <= 1) & (raw["proc_flag"].values == 0)
        keep &= (raw["corr_flag"].values.astype(np.int64) & 0b111) == 0
    day = t.floor(freq)
    times = pd.DatetimeIndex(np.unique(day))
    ti = times.get_indexer(day)
    shape = (n.size, times.size)

    def bin_mean(v, mask):
        s = np.zeros(shape)
        c = np.zeros(shape)
        np.add.at(s, (loc[mask], ti[mask]), v[mask])
        np.add.at(c, (loc[mask], ti[mask]), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(c > 0, s / c, np.nan), c

    sm, cnt = bin_mean(sm_raw, keep)
    var, _ = bin_mean(noise**2, keep)
    err = np.sqrt(var / np.maximum(cnt, 1))
    _, c_all = bin_mean(sm_raw, np.isfinite(sm_raw))
    coords = {
        "location_id": ("locations", raw["location_id"].values),
        "lat": ("locations", raw["lat"].values.astype(float)),
        "lon": ("locations", raw["lon"].values.astype(float)),
        "time": times,
    }
    out = xr.Dataset(coords=coords)
    out["sm"] = _cf(
        xr.DataArray(sm, dims=("locations", "time")),
        "percent",
        "ASCAT surface soil moisture (degree of saturation)",
    )
    out["sm"].attrs["quantity"] = "degree_of_saturation"
    out["sm_err"] = _cf(
        xr.DataArray(err, dims=("locations", "time")).where(out["sm"].notnull()),
        "percent",
        "1-sigma error of sm (sm_noise, averaged)",
    )
    out["n_obs"] = xr.DataArray(
        cnt.sum(0), dims="time", attrs={"units": "1", "long_name": "valid sm observations"}
    )
    out["n_flagged"] = xr.DataArray(
        (c_all - cnt).sum(0),
        dims="time",
        attrs={"units": "1", "long_name": "observations removed by the flags"},
    )
    return out.chunk()


def open_timeseries(
    paths: str | Path | Sequence[str | Path],
    product: str,
    qc: bool = True,
    porosity: float | None = None,
    freq: str = "1D",
) -> xr.Dataset:
    """Read TU Wien/pynetcf per-cell time-series files (``0165.nc`` ...) of a product.

    Parameters
    ----------
    paths : one file, a folder (all ``NNNN.nc`` cell files), or a list of files.
    product : {"SMAP", "ASCAT", "C3S", "SMOS_IC", "GLDAS", "ERA5", "ERA5_LAND"}
    qc : apply the product's flags (module docstring).
    porosity : ASCAT only: convert degree of saturation (%) to m3 m-3 as ``sm/100·porosity``.
    freq : ASCAT only: bin the irregular observation times to this frequency (mean).

    Returns
    -------
    xarray.Dataset with dims (locations, time), ``lat``/``lon``/``location_id`` per location,
    ``sm`` (+ ``sm_err``), ``n_obs``/``n_flagged`` (time). Lazy except ASCAT's ragged layout.

    Raises
    ------
    ObservationError
        A file does not hold the product's variables (names what was expected).
    """
    if product not in _TS_PRODUCTS:
        raise UnknownOptionError("time-series product", product, _TS_PRODUCTS)
    if isinstance(paths, str | Path):
        p = Path(paths)
        files = sorted(p.glob("[0-9][0-9][0-9][0-9].nc")) if p.is_dir() else [p]
    else:
        files = [Path(f) for f in paths]
    if not files:
        raise ObservationError(f"no cell files (NNNN.nc) in {paths}")
    parts = []
    for f in files:
        with xr.open_dataset(f, decode_times=False) as probe:
            sig = _TS_SIGNATURE[product]
            if sig not in probe.variables:
                raise _layout_error(
                    f, product, f"time-series variable {sig!r}", str(sorted(probe.variables))[:200]
                )
        if product == "ASCAT":
            part = _read_ascat_ragged(f, qc, freq)
        else:
            raw = xr.open_dataset(f, chunks={})
            raw = raw.drop_vars([v for v in ("location_description", "alt") if v in raw])
            raw = raw.set_coords([v for v in ("lat", "lon", "location_id") if v in raw])
            part = _ts_qc(product, raw, qc)
        parts.append(part)
    counters = [p[["n_obs", "n_flagged"]] for p in parts]
    body = [p.drop_vars(["n_obs", "n_flagged"]) for p in parts]
    if len(body) == 1:
        out, tot = body[0], counters[0]
    else:
        out = xr.concat(
            body,
            dim="locations",
            join="outer",
            data_vars="all",
            coords="minimal",
            compat="override",
        )
        tot = xr.concat(counters, dim="part", join="outer").fillna(0).sum("part")
    out = out.assign(n_obs=tot["n_obs"], n_flagged=tot["n_flagged"])
    if product == "ASCAT" and porosity is not None:
        out["sm_err"] = _cf(out["sm_err"] / 100.0 * porosity, "m3 m-3", "1-sigma error of sm")
        out["sm"] = _cf(
            out["sm"] / 100.0 * porosity, "m3 m-3", "ASCAT soil moisture (saturation x porosity)"
        )
    out.attrs.update(product=product, source=", ".join(f.name for f in files))
    return add_history(out, f"open_timeseries(product={product!r}, qc={qc})")


# ============================================================================ aggregation
def _agg_kernel(v, e, M=None, P=None, u=None, n_src=None, out_shape=None, what="value"):
    """Kernel of :func:`to_model_grid` on plain arrays (..., *source dims).

    ``M`` (target x source) membership, ``P`` (source x footprint) grouping, ``u`` (source)
    number of target cells fed by the source's footprint (0: unused).
    """
    import scipy.sparse as sp

    lead = v.shape[: v.ndim - len(n_src)]
    vv = v.reshape(-1, int(np.prod(n_src))).T.astype(np.float64)
    ee = np.broadcast_to(e, v.shape).reshape(-1, int(np.prod(n_src))).T.astype(np.float64)
    ok = np.isfinite(vv) & np.isfinite(ee)
    if what == "count":  # per time: valid observations used / outside the domain
        used = (u > 0).astype(np.float64) @ ok
        outside = (u == 0).astype(np.float64) @ ok
        return np.stack([used, outside], -1).reshape(*lead, 2)
    cnt = M @ ok.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if what == "value":
            res = (M @ np.where(ok, vv, 0.0)) / cnt
        else:
            # footprint fp contributes n_{j,fp}/n_j of the mean of cell j; errors of one
            # footprint are fully correlated, different footprints independent, and each
            # footprint's variance is inflated by the number u of cells it feeds
            res = np.empty_like(cnt)
            su = np.sqrt(u)
            for k in range(vv.shape[1]):
                w = np.where(ok[:, k], ee[:, k] * su, 0.0)
                Q = (M @ sp.diags(w) @ P).tocsr()
                res[:, k] = np.sqrt(np.asarray(Q.multiply(Q).sum(axis=1)).ravel()) / cnt[:, k]
    res = np.where(cnt > 0, res, np.nan)
    return res.T.reshape(*lead, *out_shape)


def _membership(lon, lat, fid, t2s, tgt):
    """Membership (target x source), grouping (source x footprint) and usage per source.

    ``t2s`` (target cells) is the source cell holding each target centre, or -1.
    """
    import scipy.sparse as sp

    from xldas.io.regrid_curvilinear import _edges, _transform

    n_src = lon.size
    ny, nx = tgt.row.size, tgt.col.size
    x, y = _transform("EPSG:4326", tgt.crs, lon, lat)
    iy, oky = _locate(_edges(tgt.row), y)
    ix, okx = _locate(_edges(tgt.col), x)
    inside = oky & okx
    t_of_s = np.where(inside, iy * nx + ix, -1)
    rows = [t_of_s[inside]]
    cols = [np.flatnonzero(inside)]
    has = np.zeros(ny * nx, bool)
    has[t_of_s[inside]] = True
    # target cells with no source centre copy the footprint holding their centre
    found = (t2s >= 0) & ~has
    rows.append(np.flatnonzero(found))
    cols.append(t2s[found])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    M = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(ny * nx, n_src))
    uniq, inv = np.unique(fid, return_inverse=True)
    P = sp.csr_matrix((np.ones(n_src), (np.arange(n_src), inv)), shape=(n_src, uniq.size))
    # usage per footprint: number of target cells fed by any source cell of that footprint
    tgt_per_fp = sp.csr_matrix((np.ones(rows.size), (inv[cols], rows)), shape=(uniq.size, ny * nx))
    feeds = np.asarray((tgt_per_fp > 0).sum(axis=1)).ravel()
    u = feeds[inv].astype(np.float64)
    u[np.asarray(M.sum(axis=0)).ravel() == 0] = 0.0
    return M, P, u


def _locate(edges, v):
    """Index of the interval of monotonic ``edges`` holding each ``v`` and a validity mask."""
    asc = edges[-1] > edges[0]
    e = edges if asc else edges[::-1]
    i = np.searchsorted(e, v, side="right") - 1
    ok = (i >= 0) & (i < e.size - 1) & np.isfinite(v)
    return (i if asc else e.size - 2 - i), ok


def _target_to_source(obs, sdims, tgt, rowcol, grid_name) -> np.ndarray:
    """Source cell (flat index) whose footprint holds each target cell centre, or -1."""
    from xldas.io.regrid_curvilinear import _edges, _transform

    TC, TR = np.meshgrid(tgt.col, tgt.row)
    tlon, tlat = _transform(tgt.crs, "EPSG:4326", TC.ravel(), TR.ravel())
    if grid_name is not None:  # EASE-Grid 2.0 cells, located by global row/column
        from xldas.io.grids import ease2_rowcol

        r, c = ease2_rowcol(tlon, tlat, grid_name)
        key_src = rowcol[0] * 100000 + rowcol[1]
        order = np.argsort(key_src)
        key_t = r * 100000 + c
        pos = np.clip(np.searchsorted(key_src[order], key_t), 0, key_src.size - 1)
        hit = (key_src[order][pos] == key_t) & (r >= 0)
        return np.where(hit, order[pos], -1)
    if sdims == ("lat", "lon") and obs["lat"].ndim == 1:  # regular cells
        lat = np.asarray(obs["lat"].values, float)
        lon = np.asarray(obs["lon"].values, float)
        i, oki = _locate(_edges(lat), tlat)
        j, okj = _locate(_edges(lon), tlon)
        return np.where(oki & okj, i * lon.size + j, -1)
    return np.full(tlon.size, -1)  # swath points: bucket only


def to_model_grid(
    obs: xr.Dataset, target: xr.Dataset | xr.DataArray, variables: Sequence[str] | None = None
):
    """Aggregate observations on their native footprints (EASE-Grid cells, L1C cells,
    mascons, regular cells) onto a model grid, with an error model that counts each
    footprint once.

    For each target cell *j*: if source centres fall inside it, the value is the mean of the
    valid ones (bucket mean); otherwise, if its centre lies inside a source footprint (EASE
    cell found by EASE row/column, or a regular source cell), that value is copied.

    Error model: a footprint *f* (an EASE cell, or a ``footprint_id`` group such as a GRACE
    mascon whose value the 0.5° cells repeat) that feeds *u_f* target cells has its variance
    multiplied by *u_f*; within a cell *j* with *n_j* valid sources, of which *n_jf* come
    from footprint *f*, errors of one footprint are fully correlated and different
    footprints independent::

        err_j = sqrt( sum_f (n_jf / n_j)**2 * u_f * sigma_f**2 )

    So the *u_f* copies of one footprint carry together the information 1/σ² of one
    observation, and a bucket mean of *n* independent footprints has σ/√n. Source cells
    that feed no target cell (outside the domain) are ignored and counted.

    Parameters
    ----------
    obs : Dataset from a reader: spatial dims (``y``, ``x``) with EASE ``ease_row``/``ease_col``,
        or (``cell``) with ``lat``/``lon``/``ease_row``/``ease_col``, or regular (``lat``, ``lon``).
    target : the model grid (regular ``lat``/``lon``, or ``rlat``/``rlon`` with 2-D ``lat``/``lon``
        and a rotated-pole grid mapping, e.g. :func:`xldas.io.grids.eurocordex`).
    variables : observed variables to aggregate (default: those with an error).

    Returns
    -------
    xarray.Dataset
        (time, *target dims): each variable and its ``<var>_err``; ``n_used`` and
        ``n_outside`` (time): valid source observations that were used / that fell outside
        the domain; ``n_obs``/``n_flagged`` carried from the reader. Lazy.
    """
    from xldas.io.regrid_curvilinear import grid_info

    tgt = grid_info(target)
    if "cell" in obs.dims:
        sdims = ("cell",)
    elif {"y", "x"} <= set(obs.dims):
        sdims = ("y", "x")
    elif {"lat", "lon"} <= set(obs.dims):
        sdims = ("lat", "lon")
    else:
        raise ObservationError(f"observations have no spatial dims among {tuple(obs.dims)}")
    lat = obs["lat"]
    lon = obs["lon"]
    if sdims == ("lat", "lon") and lat.ndim == 1:
        lon, lat = xr.broadcast(lon, lat)
        lon, lat = lon.transpose("lat", "lon"), lat.transpose("lat", "lon")
    lat = np.asarray(lat.values, float).ravel()
    lon = np.asarray(lon.values, float).ravel()
    grid_name = obs.attrs.get("ease_grid")
    rowcol = None
    if grid_name and "ease_row" in obs.coords:
        r, c = obs["ease_row"], obs["ease_col"]
        if sdims == ("y", "x"):
            r, c = xr.broadcast(r, c)
            r, c = r.transpose("y", "x"), c.transpose("y", "x")
        rowcol = (
            np.asarray(r.values).ravel().astype(np.int64),
            np.asarray(c.values).ravel().astype(np.int64),
        )
    else:
        grid_name = None
    fid = (
        np.asarray(obs["footprint_id"].values).ravel()
        if "footprint_id" in obs.coords
        else np.arange(lat.size)
    )
    t2s = _target_to_source(obs, sdims, tgt, rowcol, grid_name)
    M, P, u = _membership(lon, lat, fid, t2s, tgt)
    ty, tx = tgt.dims
    out_shape = (tgt.row.size, tgt.col.size)
    if variables is None:
        variables = [v for v in obs.data_vars if f"{v}_err" in obs or "error_std" in obs[v].attrs]
    n_src = tuple(obs.sizes[d] for d in sdims)
    tmp = {d: f"_src_{i}" for i, d in enumerate(sdims)}
    out = {}
    counters = None
    for v in variables:
        val = obs[v]
        err = (
            obs[f"{v}_err"]
            if f"{v}_err" in obs
            else xr.full_like(val, float(val.attrs["error_std"]))
        )
        val = val.drop_vars([c for c in val.coords if c not in val.dims]).rename(tmp)
        err = err.drop_vars([c for c in err.coords if c not in err.dims]).rename(tmp)
        if val.chunks is not None:
            val = val.chunk({d: -1 for d in tmp.values()})
            err = err.chunk({d: -1 for d in tmp.values()})
        common = dict(
            input_core_dims=[list(tmp.values())] * 2,
            output_core_dims=[[ty, tx]],
            output_dtypes=[np.float64],
            output_sizes={ty: out_shape[0], tx: out_shape[1]},
        )
        kw = dict(M=M, P=P, u=u, n_src=n_src, out_shape=out_shape)
        out[v] = apply_kernel(
            _agg_kernel,
            val,
            err,
            kwargs={**kw, "what": "value"},
            **common,
            attrs=[{k: a for k, a in obs[v].attrs.items() if k != "error_std"}],
        )
        out[f"{v}_err"] = apply_kernel(
            _agg_kernel,
            val,
            err,
            kwargs={**kw, "what": "err"},
            **common,
            attrs=[
                {
                    "units": obs[v].attrs.get("units", ""),
                    "long_name": f"1-sigma error of {v} (footprint-aware)",
                }
            ],
        )
        if counters is None:
            counters = apply_kernel(
                _agg_kernel,
                val,
                err,
                kwargs={**kw, "what": "count"},
                input_core_dims=[list(tmp.values())] * 2,
                output_core_dims=[["_counter"]],
                output_dtypes=[np.float64],
                output_sizes={"_counter": 2},
            )
    ds = xr.Dataset(out)
    if counters is not None:
        ds["n_used"] = counters.isel(_counter=0).assign_attrs(
            units="1", long_name="valid observations used"
        )
        ds["n_outside"] = counters.isel(_counter=1).assign_attrs(
            units="1", long_name="valid observations outside the model domain (ignored)"
        )
    for c in ("n_obs", "n_flagged"):
        if c in obs:
            ds[c] = obs[c]
    tcoords = [c for c in target.coords if set(target[c].dims) <= {ty, tx}]
    ds = ds.assign_coords({c: target.coords[c] for c in tcoords})
    ds.attrs = {k: a for k, a in obs.attrs.items() if k not in ("ease_grid", "crs", "cell_size_m")}
    ds.attrs["footprint_aggregation"] = "bucket mean / footprint copy with error x sqrt(copies)"
    return add_history(ds, f"to_model_grid({list(variables)}) -> {tgt.dims}")


# ============================================================================ dispatch
def open_observations(path: str | Path, product: str, target: Any = None, **kwargs) -> xr.Dataset:
    """Open ``path`` with the reader of ``product`` (a key of :data:`PRODUCTS`) and, when
    ``target`` (a model grid) is given, aggregate it there with :func:`to_model_grid`.

    A glob pattern (``*``) opens every matching file and concatenates them along time.
    """
    if product not in PRODUCTS:
        raise UnknownOptionError("observation product", product, tuple(PRODUCTS))
    reader = globals()[PRODUCTS[product][0]]
    if reader is open_smap:
        kwargs.setdefault("product", product)
    if reader is open_timeseries:
        kwargs.setdefault("product", "ASCAT")
        return reader(path, **kwargs)
    files = (
        sorted(Path(p) for p in __import__("glob").glob(str(path)))
        if "*" in str(path)
        else [Path(path)]
    )
    if not files:
        raise ObservationError(f"no file matches {path}")
    parts = [reader(f, **kwargs) for f in files]
    if target is not None:
        parts = [to_model_grid(p, target) for p in parts]
    ds = (
        parts[0]
        if len(parts) == 1
        else xr.concat(
            parts, "time", data_vars="minimal", coords="minimal", compat="override", join="override"
        )
    )
    return ds.sortby("time")


# ============================================================================ Earthdata
def earthdata_query(
    short_name: str,
    bbox: Sequence[float] | None = None,
    temporal: tuple[Any, Any] | None = None,
    version: str | None = None,
    count: int = -1,
) -> dict[str, Any]:
    """The keyword arguments :func:`search_earthdata` passes to ``earthaccess.search_data``.

    >>> earthdata_query("SPL3SMP", (-156.1, 18.9, -154.8, 20.3), ("2017-01-01", "2017-01-31"))
    {'short_name': 'SPL3SMP', 'bounding_box': (-156.1, 18.9, -154.8, 20.3), 'temporal': ('2017-01-01T00:00:00Z', '2017-01-31T23:59:59Z'), 'count': -1}
    """
    if not isinstance(short_name, str) or not short_name.strip():
        raise ValueError(f"short_name must be a non-empty string, got {short_name!r}")
    q: dict[str, Any] = {"short_name": short_name.strip()}
    if version is not None:
        q["version"] = str(version)
    if bbox is not None:
        w, s, e, n = (float(v) for v in bbox)
        if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s < n <= 90):
            raise ValueError(
                f"bbox must be (west, south, east, north) in degrees, got {tuple(bbox)}"
            )
        q["bounding_box"] = (w, s, e, n)
    if temporal is not None:
        t0, t1 = (pd.Timestamp(t) for t in temporal)
        if t1 < t0:
            raise ValueError(f"temporal end {t1} is before its start {t0}")
        end = t1 + pd.Timedelta(days=1) - pd.Timedelta(seconds=1) if t1 == t1.normalize() else t1
        q["temporal"] = (t0.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ"))
    q["count"] = int(count)
    return q


def search_earthdata(
    short_name: str,
    bbox: Sequence[float] | None = None,
    temporal: tuple[Any, Any] | None = None,
    version: str | None = None,
    count: int = -1,
    download_to: str | Path | None = None,
):
    """Search NASA Earthdata (CMR) with earthaccess; optionally download the granules.

    Uses the network (and, for downloads, an Earthdata login: ``earthaccess.login()`` reads
    ``~/.netrc`` or ``EARTHDATA_USERNAME``/``EARTHDATA_PASSWORD``). Nothing in xldas calls it
    unless a user does.

    Parameters
    ----------
    short_name : CMR short name, e.g. ``"SPL3SMP"``, ``"SPL3SMP_E"``, ``"SPL1CTB"``,
        ``"TELLUS_GRAC-GRFO_MASCON_CRI_GRID_RL06.3_V4"``.
    bbox : (west, south, east, north) degrees.
    temporal : (start, end); a date-only end includes that whole day.
    version, count : CMR version and maximum number of granules (−1: all).
    download_to : folder: download the granules there and return the local paths.

    Returns
    -------
    list of earthaccess granules, or of local paths when ``download_to`` is given.

    Examples
    --------
    >>> granules = search_earthdata("SPL3SMP", (-156.1, 18.9, -154.8, 20.3),
    ...                             ("2017-01-01", "2017-01-31"))  # doctest: +SKIP
    """
    query = earthdata_query(short_name, bbox, temporal, version, count)
    try:
        import earthaccess
    except ImportError as err:
        raise ModuleNotFoundError(
            "search_earthdata needs earthaccess: pip install earthaccess"
        ) from err
    granules = earthaccess.search_data(**query)
    if download_to is None:
        return granules
    earthaccess.login()
    return earthaccess.download(granules, str(download_to))


# ============================================================================ Intake reader
try:
    from intake.readers.readers import BaseReader as _BaseReader
except ImportError:  # pragma: no cover - intake is a dependency
    _BaseReader = object


class ProductReader(_BaseReader):
    """Intake reader of a satellite product (entries in ``catalogs/xldas.yaml``).

    The entry fixes ``product`` (a key of :data:`PRODUCTS`) and, for NASA products, the
    Earthdata ``short_name``. Read local granules with ``cat[name].read(path="files*.h5")``
    (and ``target=`` a model grid to aggregate); or, with the network and an Earthdata
    login, ``cat[name].read(bbox=..., temporal=(start, end), download_to=folder)`` searches
    with :func:`search_earthdata`, downloads and opens the granules.
    """

    output_instance = "xarray:Dataset"
    func = "xldas.io.observations:open_observations"

    def _read(
        self,
        product=None,
        short_name=None,
        path=None,
        bbox=None,
        temporal=None,
        download_to=None,
        target=None,
        **kwargs,
    ):
        kwargs.pop("output_instance", None)
        if path is None:
            if short_name is None or bbox is None or temporal is None or download_to is None:
                raise TypeError(
                    f"catalog entry {product!r}: give path= (local granules) or bbox=, "
                    "temporal= and download_to= (Earthdata search and download)"
                )
            files = search_earthdata(short_name, bbox, temporal, download_to=download_to)
            if not files:
                raise ObservationError(f"no {short_name} granules for {bbox} {temporal}")
            parts = [open_observations(f, product, target=target, **kwargs) for f in files]
            return xr.concat(
                parts,
                "time",
                data_vars="minimal",
                coords="minimal",
                compat="override",
                join="override",
            ).sortby("time")
        return open_observations(path, product, target=target, **kwargs)
