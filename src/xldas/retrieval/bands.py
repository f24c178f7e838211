"""Band names, scaling and cloud masks of optical surface-reflectance products.

The spectral indices of :mod:`xldas.retrieval.indices` ask for *roles* (``blue``, ``green``,
``red``, ``nir``, ``swir1``, ``swir2``) and this module finds the variable holding each role
in a Dataset as loaded by :func:`xldas.search_stac` (variables named after STAC asset keys),
turns digital numbers into reflectance and masks no-data, clouds, shadows and snow.

Documented mapping (a table kept here rather than read from item metadata, because
odc-stac does not carry the ``raster:bands`` scale/offset onto the loaded variables):

============================  ===================================  =====================  ==========
product                       band variables (roles in order        reflectance =           mask band
                              blue, green, red, nir, swir1, swir2)  (integer DN)
============================  ===================================  =====================  ==========
Sentinel-2 L2A (ESA / MPC)    B02 B03 B04 B08 (B8A) B11 B12         DN·1e-4 + offset        SCL
Sentinel-2 L2A (Earth Search) blue green red nir (nir08) swir16     DN·1e-4 + offset        scl
                              swir22
Landsat C2 L2 (USGS)          SR_B2 SR_B3 SR_B4 SR_B5 SR_B6 SR_B7   DN·2.75e-5 − 0.2        QA_PIXEL
Landsat C2 L2 (MPC)           blue green red nir08 swir16 swir22    DN·2.75e-5 − 0.2        qa_pixel
generic / composites          blue green red nir swir1 swir2        as S2 (×1e-4) when      —
                                                                    integer
============================  ===================================  =====================  ==========

The Sentinel-2 offset is 0 before processing baseline 04.00 (25 January 2022) and −0.1
(``BOA_ADD_OFFSET`` = −1000) after; pass ``offset=`` (or set the variable attribute
``add_offset``) for harmonised data. Variable attributes ``scale_factor`` / ``add_offset``
override the table. No-data: DN 0 for both missions (and the variable's ``nodata`` attribute).

Masks (pixels set to NaN): Sentinel-2 scene classification ``SCL`` classes 0 no data,
1 saturated/defective, 3 cloud shadow, 8/9 cloud medium/high probability, 10 thin cirrus and
11 snow; Landsat ``QA_PIXEL`` bits 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud
shadow and 5 snow.

**Unscaled reflectance rule.** Integer bands are digital numbers and are always scaled by
the table. Float bands are taken as reflectance already; if in-memory float values exceed
1.5 the band is treated as unscaled digital numbers: scaled with the table and a
:class:`UnscaledReflectanceWarning` (``unscaled="scale"``, default) or rejected with
:class:`~xldas.errors.ParameterRangeError` (``unscaled="error"``). For dask-backed float
bands the check runs per block when the result is computed and raises
:class:`~xldas.errors.ParameterRangeError` (the data cannot be looked at lazily); pass
``scale=`` to declare the scaling.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import dask.array as dsa
import numpy as np
import xarray as xr

from xldas.errors import MissingBandError, ParameterRangeError, UnknownOptionError

__all__ = [
    "ROLES",
    "SENSORS",
    "UnscaledReflectanceWarning",
    "detect_sensor",
    "reflectance",
    "resolve_bands",
]

ROLES = ("blue", "green", "red", "nir", "swir1", "swir2")

#: above this value a float "reflectance" is taken for unscaled digital numbers
UNSCALED_LIMIT = 1.5


class UnscaledReflectanceWarning(UserWarning):
    """A float band looked like unscaled digital numbers and was scaled."""


@dataclass(frozen=True)
class Sensor:
    """Band names, scaling and mask band of one optical product."""

    name: str
    bands: dict  # role -> candidate variable names, first found wins
    scale: float
    offset: float
    mask: tuple  # candidate names of the mask band
    mask_kind: str  # "scl", "qa_pixel" or ""


SENSORS = {
    "sentinel-2-l2a": Sensor(
        "sentinel-2-l2a",
        {
            "blue": ("B02", "blue", "B2"),
            "green": ("B03", "green", "B3"),
            "red": ("B04", "red", "B4"),
            "nir": ("B08", "nir", "B8", "B8A", "nir08"),
            "swir1": ("B11", "swir16", "swir1"),
            "swir2": ("B12", "swir22", "swir2"),
        },
        1e-4,
        0.0,
        ("SCL", "scl"),
        "scl",
    ),
    "landsat-c2-l2": Sensor(
        "landsat-c2-l2",
        {
            "blue": ("SR_B2", "blue"),
            "green": ("SR_B3", "green"),
            "red": ("SR_B4", "red"),
            "nir": ("SR_B5", "nir08", "nir"),
            "swir1": ("SR_B6", "swir16", "swir1"),
            "swir2": ("SR_B7", "swir22", "swir2"),
        },
        2.75e-5,
        -0.2,
        ("QA_PIXEL", "qa_pixel"),
        "qa_pixel",
    ),
    "generic": Sensor(
        "generic",
        {r: (r,) for r in ROLES}
        | {
            "nir": ("nir", "nir08"),
            "swir1": ("swir1", "swir16"),
            "swir2": ("swir2", "swir22"),
        },
        1e-4,
        0.0,
        (),
        "",
    ),
}

#: SCL classes masked: no data, saturated, cloud shadow, cloud medium/high, cirrus, snow
SCL_MASKED = (0, 1, 3, 8, 9, 10, 11)
#: QA_PIXEL bits masked: fill, dilated cloud, cirrus, cloud, cloud shadow, snow
QA_MASKED_BITS = (0, 1, 2, 3, 4, 5)


def detect_sensor(ds: xr.Dataset) -> str:
    """Guess the product from the variable names and the ``stac_collections`` attribute."""
    names = set(map(str, ds.data_vars))
    coll = str(ds.attrs.get("stac_collections", "")).lower()
    if "landsat" in coll or names & {"SR_B2", "SR_B5", "QA_PIXEL", "qa_pixel", "nir08"}:
        return "landsat-c2-l2"
    if "sentinel-2" in coll or names & {"B02", "B03", "B04", "B08", "B8A", "SCL", "scl"}:
        return "sentinel-2-l2a"
    return "generic"


def resolve_bands(ds: xr.Dataset, roles, sensor: str | None = None, **names) -> dict:
    """Variable name of each role in ``roles``; ``names`` overrides (``nir="B8A"``).

    Raises
    ------
    MissingBandError
        Naming every role that has no variable, with the names that were tried.
    """
    sensor = sensor or detect_sensor(ds)
    if sensor not in SENSORS:
        raise UnknownOptionError("sensor", sensor, SENSORS)
    table = SENSORS[sensor].bands
    found, missing = {}, []
    for role in roles:
        candidates = (names[role],) if names.get(role) else table[role]
        hit = next((c for c in candidates if c in ds.data_vars), None)
        if hit is None:
            missing.append(f"{role} ({'/'.join(candidates)})")
        else:
            found[role] = hit
    if missing:
        raise MissingBandError(
            ", ".join(missing), map(str, ds.data_vars), where=f"the {sensor} dataset"
        )
    return found


def _mask(ds: xr.Dataset, sensor: Sensor):
    """Boolean DataArray: True where the pixel is clear (None if no mask band)."""
    name = next((m for m in sensor.mask if m in ds.data_vars), None)
    if name is None:
        return None
    m = ds[name]
    if sensor.mask_kind == "scl":
        return ~m.isin(SCL_MASKED)
    bits = sum(1 << b for b in QA_MASKED_BITS)
    return (m.astype(np.int64) & bits) == 0


def _check_block(block, band):
    if block.size and np.nanmax(block, initial=-np.inf) > UNSCALED_LIMIT:
        raise ParameterRangeError(
            f"band {band!r} holds float values above {UNSCALED_LIMIT}: unscaled digital "
            "numbers? pass scale= (e.g. 1e-4 for Sentinel-2) to declare the scaling"
        )
    return block


def reflectance(
    ds: xr.Dataset,
    roles=ROLES,
    sensor: str | None = None,
    scale: float | None = None,
    offset: float | None = None,
    mask: bool = True,
    unscaled: str = "scale",
    **names,
) -> dict:
    """Surface reflectance (0–1, float) of each role, masked, as a dict role -> DataArray.

    Parameters
    ----------
    ds : Dataset with band variables (dims ``time?``, ``y``/``x`` or ``lat``/``lon``).
    roles : roles to return (subset of :data:`ROLES`).
    sensor : ``"sentinel-2-l2a"``, ``"landsat-c2-l2"``, ``"generic"`` or None (detect).
    scale, offset : override the table's scaling of digital numbers.
    mask : apply the SCL / QA_PIXEL mask when the mask band is present.
    unscaled : ``"scale"`` or ``"error"``: what to do with float bands above 1.5 (module
        docstring).
    **names : explicit variable name per role (``nir="B8A"``).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({b: (("y", "x"), np.full((2, 2), v, dtype="uint16"))
    ...                  for b, v in {"B04": 1000, "B08": 4000}.items()})
    >>> r = reflectance(ds, ("red", "nir"))
    >>> round(float(r["nir"][0, 0]), 6)
    0.4
    """
    if unscaled not in ("scale", "error"):
        raise UnknownOptionError("unscaled", unscaled, ("scale", "error"))
    sensor_name = sensor or detect_sensor(ds)
    found = resolve_bands(ds, roles, sensor_name, **names)
    sen = SENSORS[sensor_name]
    clear = _mask(ds, sen) if mask else None
    out = {}
    for role, var in found.items():
        da = ds[var]
        sc = scale if scale is not None else da.attrs.get("scale_factor", sen.scale)
        of = offset if offset is not None else da.attrs.get("add_offset", sen.offset)
        nodata = da.attrs.get("nodata", da.encoding.get("_FillValue", 0))
        if da.dtype.kind in "iu":
            valid = da != 0
            if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
                valid = valid & (da != nodata)
            r = (da.astype(np.float32) * np.float32(sc) + np.float32(of)).where(valid)
        else:
            r = da
            if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
                r = r.where(r != nodata)
            if scale is not None:
                r = r * np.float32(sc) + np.float32(of)
            elif isinstance(r.data, dsa.Array):
                r = r.copy(data=r.data.map_blocks(_check_block, var, dtype=r.dtype))
            elif np.nanmax(np.asarray(r.data), initial=-np.inf) > UNSCALED_LIMIT:
                if unscaled == "error":
                    _check_block(np.asarray(r.data), var)
                warnings.warn(
                    f"band {var!r} holds float values above {UNSCALED_LIMIT}; treating it as "
                    f"unscaled digital numbers: reflectance = DN*{sc:g} + {of:g} ({sen.name})",
                    UnscaledReflectanceWarning,
                    stacklevel=3,
                )
                r = r * np.float32(sc) + np.float32(of)
        if clear is not None:
            r = r.where(clear)
        r.attrs = {"units": "1", "long_name": f"{role} surface reflectance ({var})"}
        out[role] = r.rename(role)
    return out
