"""Land-model parameters: Clapp–Hornberger hydraulics from texture, root profiles, checks.

The parameter Dataset (DESIGN.md contracts) holds, per cell (``lat``/``lon`` or ``y``/``x``),
and per layer where the input texture has a ``layer`` dimension:

=================== ============== ===========================================================
variable            units          meaning
=================== ============== ===========================================================
``theta_s``         m3 m-3         porosity (saturated water content)
``theta_r``         m3 m-3         residual water content (model lower bound)
``theta_fc``        m3 m-3         field capacity (ψ = 340 cm)
``theta_wp``        m3 m-3         wilting point (ψ = 15000 cm)
``b``               1              Clapp–Hornberger pore-size exponent
``ksat``            m s-1          saturated hydraulic conductivity
``psi_sat``         m              saturated suction head
``root_fraction``   1              root fraction per ``layer`` (sums to 1)
``ddf_snow``        kg m-2 K-1 d-1 degree-day factor of snow
``ddf_ice``         kg m-2 K-1 d-1 degree-day factor of glacier ice
``glacier_fraction`` 1             glacier-covered fraction of the cell
``elevation``       m              surface elevation
``lai``             m2 m-2         leaf area index
``albedo``          1              snow-free surface albedo
``sand``, ``clay``  1              texture fractions (0–1)
``bulk_density``    g cm-3         dry bulk density
``texture_class``   1              USDA class index into :data:`TEXTURE_CLASSES`
=================== ============== ===========================================================

References: Clapp & Hornberger (1978) WRR 14(4):601–604 (table, SCIENCE.md §B9); Cosby et
al. (1984) WRR 20:682 (pedotransfer); Schenk & Jackson (2002) and SiTHv2 ``get_pftpar.m``
(logistic root profile).
"""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

from xldas._xr import add_history, apply_kernel
from xldas.errors import ParameterRangeError, UnknownOptionError

__all__ = [
    "DEFAULT_LAYERS",
    "TEXTURE_CLASSES",
    "layer_coords",
    "parameters_from_texture",
    "root_fraction",
    "texture_class",
    "validate_parameters",
]

#: default layer bottoms (m): 0–0.05, 0.05–0.3, 0.3–1.0, 1.0–2.0
DEFAULT_LAYERS = (0.05, 0.30, 1.00, 2.00)

#: USDA classes in the order of the Clapp–Hornberger (1978) table.
TEXTURE_CLASSES = (
    "sand",
    "loamy sand",
    "sandy loam",
    "silt loam",
    "loam",
    "sandy clay loam",
    "silty clay loam",
    "clay loam",
    "sandy clay",
    "silty clay",
    "clay",
)

# b, psi_s (cm), K_s (cm s-1), theta_s, theta_fc, theta_wp  (SCIENCE.md §B9)
_CH78 = np.array(
    [
        [4.05, 12.1, 1.76e-2, 0.395, 0.173, 0.068],
        [4.38, 9.0, 1.56e-2, 0.410, 0.179, 0.075],
        [4.90, 21.8, 3.41e-3, 0.435, 0.248, 0.115],
        [5.30, 78.6, 7.20e-4, 0.485, 0.368, 0.180],
        [5.39, 47.8, 6.95e-4, 0.451, 0.313, 0.155],
        [7.12, 29.9, 6.30e-4, 0.420, 0.299, 0.175],
        [7.75, 35.6, 1.70e-4, 0.477, 0.357, 0.219],
        [8.52, 63.0, 2.45e-4, 0.476, 0.391, 0.250],
        [10.4, 15.3, 2.16e-4, 0.426, 0.316, 0.220],
        [10.4, 49.0, 1.03e-4, 0.492, 0.408, 0.284],
        [11.4, 40.5, 1.28e-4, 0.482, 0.400, 0.287],
    ]
)

_PSI_FC_M = 3.40  # 340 cm
_PSI_WP_M = 150.0  # 15000 cm


def _texture_class_np(sand, clay):
    """USDA texture-triangle class index (see :data:`TEXTURE_CLASSES`) from fractions."""
    sa = np.asarray(sand, dtype=np.float64) * 100.0
    cl = np.asarray(clay, dtype=np.float64) * 100.0
    si = 100.0 - sa - cl
    conds = [
        si + 1.5 * cl < 15.0,
        si + 2.0 * cl < 30.0,
        (cl >= 40.0) & (si >= 40.0),
        (cl >= 35.0) & (sa > 45.0),
        cl >= 40.0,
        (cl >= 27.0) & (sa <= 20.0),
        (cl >= 27.0) & (sa <= 45.0),
        (cl >= 20.0) & (si < 28.0) & (sa > 45.0),
        si >= 50.0,
        (cl >= 7.0) & (si >= 28.0) & (sa <= 52.0),
    ]
    codes = [0, 1, 9, 8, 10, 6, 7, 5, 3, 4]
    out = np.select(conds, codes, default=2)  # remaining: sandy loam
    return np.where(np.isnan(sa) | np.isnan(cl), -1, out).astype(np.int16)


def texture_class(sand, clay):
    """USDA texture class index from sand and clay fractions (0–1), lazily.

    "silt" (absent from CH78) is mapped to silt loam, as SCIENCE.md §B9 says.

    Examples
    --------
    >>> [TEXTURE_CLASSES[i] for i in texture_class([0.9, 0.4, 0.1], [0.05, 0.2, 0.6])]
    ['sand', 'loam', 'clay']
    """
    _check_fraction(sand, "sand")
    _check_fraction(clay, "clay")
    res = apply_kernel(_texture_class_np, sand, clay, output_dtypes=[np.int16])
    if isinstance(res, xr.DataArray):
        res.name = "texture_class"
        res.attrs = {"long_name": "USDA texture class index", "units": "1"}
    return res


def _check_fraction(x, name):
    if isinstance(x, xr.DataArray) and x.attrs.get("units") in ("%", "percent"):
        raise ParameterRangeError(
            f"{name} must be a fraction 0-1 (units '1'), got percent; divide by 100"
        )


def _from_table(cls):
    idx = np.clip(cls, 0, len(_CH78) - 1)
    row = _CH78[idx]
    bad = cls < 0
    row = np.where(bad[..., None], np.nan, row)
    b, psi_cm, ks_cms, ths, thfc, thwp = np.moveaxis(row, -1, 0)
    return b, psi_cm * 0.01, ks_cms * 0.01, ths, thfc, thwp


def _cosby(sand, clay):
    sa = np.asarray(sand, dtype=np.float64) * 100.0
    cl = np.asarray(clay, dtype=np.float64) * 100.0
    si = 100.0 - sa - cl
    b = 3.10 + 0.157 * cl - 0.003 * sa
    psi = 10.0 ** (1.54 - 0.0095 * sa + 0.0063 * si) * 0.01  # m
    ks = 10.0 ** (-0.60 + 0.0126 * sa - 0.0064 * cl) * 0.0254 / 3600.0  # in/h -> m/s
    ths = 0.505 - 0.00142 * sa - 0.00037 * cl
    thfc = ths * (_PSI_FC_M / psi) ** (-1.0 / b)
    thwp = ths * (_PSI_WP_M / psi) ** (-1.0 / b)
    return b, psi, ks, ths, np.minimum(thfc, ths), np.minimum(thwp, ths)


def _hydraulics_np(sand, clay, method_code):
    if method_code == 0:
        return _from_table(_texture_class_np(sand, clay))
    return _cosby(sand, clay)


def layer_coords(layers=DEFAULT_LAYERS) -> dict:
    """Coordinates ``layer``, ``depth_bottom`` (m) and ``dz`` (m) for the given layer bottoms.

    Examples
    --------
    >>> layer_coords((0.1, 0.5))["dz"][1].round(3).tolist()
    [0.1, 0.4]
    """
    bottoms = np.asarray(layers, dtype=np.float64)
    if bottoms.ndim != 1 or bottoms.size < 1 or np.any(np.diff(np.r_[0.0, bottoms]) <= 0):
        raise ParameterRangeError(f"layers must be increasing positive depths (m), got {layers!r}")
    dz = np.diff(np.r_[0.0, bottoms])
    n = bottoms.size
    return {
        "layer": ("layer", np.arange(n), {"long_name": "soil layer index"}),
        "depth_bottom": (
            "layer",
            bottoms,
            {"units": "m", "long_name": "depth of the layer bottom", "positive": "down"},
        ),
        "dz": ("layer", dz, {"units": "m", "long_name": "layer thickness"}),
    }


def root_fraction(layers=DEFAULT_LAYERS, d50_mm: float = 598.0, d95_mm: float = 1823.0):
    """Root fraction per layer from the logistic profile of SiTHv2 (sums to 1).

    Y(d) = 1/(1 + (d/D50)^c), c = −2.944/ln(D95/D50) is the fraction of roots above d;
    r_j = Y(z_j) − Y(z_{j−1}), renormalised over the column. Defaults: grassland.

    Examples
    --------
    >>> root_fraction().round(3).tolist()
    [0.001, 0.143, 0.683, 0.172]
    """
    z = np.r_[0.0, np.asarray(layers, dtype=np.float64)] * 1000.0
    c = -2.944 / np.log(d95_mm / d50_mm)
    with np.errstate(divide="ignore"):
        y = 1.0 / (1.0 + (z / d50_mm) ** c)
    y[0] = 0.0
    r = y[1:] - y[:-1]
    return r / r.sum()


def parameters_from_texture(
    sand,
    clay,
    *,
    layers=DEFAULT_LAYERS,
    method: str = "table",
    lai=1.0,
    elevation=0.0,
    glacier_fraction=0.0,
    ddf_snow=3.0,
    ddf_ice=6.0,
    albedo=0.2,
    theta_r=0.02,
    bulk_density=None,
    root_d50_mm: float = 598.0,
    root_d95_mm: float = 1823.0,
) -> xr.Dataset:
    """Build the land-model parameter Dataset from sand and clay fractions.

    Parameters
    ----------
    sand, clay : DataArray (lat, lon [, layer]) of fractions 0–1 (lazy input stays lazy).
    layers : layer bottoms (m); default 0.05, 0.3, 1.0, 2.0.
    method : ``"table"`` (USDA class → Clapp & Hornberger 1978 table, SCIENCE.md §B9) or
        ``"cosby"`` (Cosby et al. 1984 pedotransfer functions).
    lai, elevation, glacier_fraction, ddf_snow, ddf_ice, albedo, theta_r : scalars or
        DataArrays broadcast to the grid (LAI m2 m-2, elevation m, DDFs kg m-2 K-1 d-1; the
        defaults are the Qilian priors of §B11).
    bulk_density : g cm-3; default (1 − θ_s)·2.65.
    root_d50_mm, root_d95_mm : logistic root profile (default grassland, SiTHv2).

    Returns
    -------
    xarray.Dataset with the variables listed in the module docstring.

    Examples
    --------
    >>> import xarray as xr
    >>> sand = xr.DataArray([[0.4]], dims=("lat", "lon"))
    >>> clay = xr.DataArray([[0.2]], dims=("lat", "lon"))
    >>> p = parameters_from_texture(sand, clay)
    >>> float(p.b[0, 0]), float(p.theta_s[0, 0]), round(float(p.ksat[0, 0]), 8)
    (5.39, 0.451, 6.95e-06)
    """
    methods = {"table": 0, "cosby": 1}
    if method not in methods:
        raise UnknownOptionError("method", method, methods)
    sand = xr.DataArray(sand) if not isinstance(sand, xr.DataArray) else sand
    clay = xr.DataArray(clay) if not isinstance(clay, xr.DataArray) else clay
    _check_fraction(sand, "sand")
    _check_fraction(clay, "clay")
    outs = apply_kernel(
        _hydraulics_np,
        sand,
        clay,
        kwargs={"method_code": methods[method]},
        output_core_dims=((),) * 6,
        output_dtypes=[np.float64] * 6,
    )
    b, psi, ks, ths, thfc, thwp = outs
    coords = layer_coords(layers)
    rf = xr.DataArray(
        root_fraction(layers, root_d50_mm, root_d95_mm),
        dims="layer",
        coords={k: coords[k] for k in coords},
    )
    thr = xr.zeros_like(ths) + theta_r
    thr = xr.where(thr < thwp, thr, 0.5 * thwp)
    bd = (1.0 - ths) * 2.65 if bulk_density is None else xr.zeros_like(ths) + bulk_density
    grid = ths

    def cell(v):
        return xr.zeros_like(grid) + v

    ds = xr.Dataset(
        {
            "theta_s": ths.assign_attrs(
                units="m3 m-3", long_name="porosity (saturated water content)"
            ),
            "theta_r": thr.assign_attrs(units="m3 m-3", long_name="residual water content"),
            "theta_fc": thfc.assign_attrs(
                units="m3 m-3", long_name="field capacity (340 cm suction)"
            ),
            "theta_wp": thwp.assign_attrs(
                units="m3 m-3", long_name="wilting point (15000 cm suction)"
            ),
            "b": b.assign_attrs(units="1", long_name="Clapp-Hornberger exponent b"),
            "ksat": ks.assign_attrs(units="m s-1", long_name="saturated hydraulic conductivity"),
            "psi_sat": psi.assign_attrs(units="m", long_name="saturated suction head"),
            "root_fraction": rf.assign_attrs(units="1", long_name="root fraction per layer"),
            "ddf_snow": cell(ddf_snow).assign_attrs(
                units="kg m-2 K-1 d-1", long_name="snow degree-day factor"
            ),
            "ddf_ice": cell(ddf_ice).assign_attrs(
                units="kg m-2 K-1 d-1", long_name="ice degree-day factor"
            ),
            "glacier_fraction": cell(glacier_fraction).assign_attrs(
                units="1", long_name="glacier fraction"
            ),
            "elevation": cell(elevation).assign_attrs(
                units="m", long_name="surface elevation", standard_name="surface_altitude"
            ),
            "lai": cell(lai).assign_attrs(
                units="m2 m-2", long_name="leaf area index", standard_name="leaf_area_index"
            ),
            "albedo": cell(albedo).assign_attrs(
                units="1", long_name="snow-free surface albedo", standard_name="surface_albedo"
            ),
            "sand": sand.assign_attrs(units="1", long_name="sand fraction"),
            "clay": clay.assign_attrs(units="1", long_name="clay fraction"),
            "bulk_density": bd.assign_attrs(units="g cm-3", long_name="dry bulk density"),
        },
    )
    ds = ds.assign_coords({k: v for k, v in coords.items() if k != "layer"})
    if method == "table":
        ds["texture_class"] = texture_class(sand, clay)
    ds.attrs["texture_classes"] = ", ".join(TEXTURE_CLASSES)
    ds.attrs["hydraulics"] = {
        "table": "Clapp & Hornberger (1978), USDA texture classes",
        "cosby": "Cosby et al. (1984) pedotransfer functions",
    }[method]
    return add_history(ds, f"parameters_from_texture(method={method!r})")


# (variable, lower, upper, lower inclusive, upper inclusive)
_RANGES = {
    "theta_s": (0.0, 1.0, False, False),
    "theta_r": (0.0, 1.0, True, False),
    "theta_fc": (0.0, 1.0, False, False),
    "theta_wp": (0.0, 1.0, True, False),
    "b": (0.0, 50.0, False, True),
    "ksat": (0.0, 1.0, True, True),
    "psi_sat": (0.0, 100.0, False, True),
    "root_fraction": (0.0, 1.0, True, True),
    "ddf_snow": (0.0, 50.0, True, True),
    "ddf_ice": (0.0, 50.0, True, True),
    "glacier_fraction": (0.0, 1.0, True, True),
    "lai": (0.0, 20.0, True, True),
    "albedo": (0.0, 1.0, True, True),
}


def _range_check_block(x, name, lo, hi, lo_in, hi_in):
    x = np.asarray(x)
    bad_lo = (x < lo) if lo_in else (x <= lo)
    bad_hi = (x > hi) if hi_in else (x >= hi)
    bad = bad_lo | bad_hi | np.isnan(x)
    if bad.any():
        v = x[bad].ravel()[0]
        lo_s = "[" if lo_in else "("
        hi_s = "]" if hi_in else ")"
        raise ParameterRangeError(
            f"parameter {name!r} out of range {lo_s}{lo}, {hi}{hi_s}: {int(bad.sum())} value(s), e.g. {v!r}"
        )
    return x


def _order_check_block(lo, hi, name_lo, name_hi):
    lo, hi = np.broadcast_arrays(np.asarray(lo), np.asarray(hi))
    bad = lo > hi
    if bad.any():
        raise ParameterRangeError(
            f"parameter {name_hi!r} must be >= {name_lo!r}: {int(bad.sum())} cell(s) violate it"
        )
    return hi


def validate_parameters(params: xr.Dataset) -> xr.Dataset:
    """Check physical ranges; returns ``params`` (with lazy checks inserted for dask data).

    Raises :class:`~xldas.errors.ParameterRangeError` naming the parameter (e.g. porosity
    ``theta_s`` ≥ 1, negative ``ksat``) — at once for NumPy data, when computed for dask
    data (the check runs inside the graph, so validation never forces a computation).
    Ordering θ_r ≤ θ_wp ≤ θ_fc ≤ θ_s is checked too.

    Examples
    --------
    >>> import xarray as xr
    >>> bad = xr.Dataset({"theta_s": ("lat", [0.4, 1.2])})
    >>> validate_parameters(bad)
    Traceback (most recent call last):
    ...
    xldas.errors.ParameterRangeError: parameter 'theta_s' out of range (0.0, 1.0): 1 value(s), e.g. np.float64(1.2)
    """
    out = params.copy()
    for name, (lo, hi, lo_in, hi_in) in _RANGES.items():
        if name not in out:
            continue
        out[name] = apply_kernel(
            _range_check_block,
            out[name],
            kwargs={"name": name, "lo": lo, "hi": hi, "lo_in": lo_in, "hi_in": hi_in},
            output_dtypes=[out[name].dtype],
            keep_attrs=True,
        )
    order = ["theta_r", "theta_wp", "theta_fc", "theta_s"]
    for a, b_ in itertools.pairwise(order):
        if a in out and b_ in out:
            checked = apply_kernel(
                _order_check_block,
                out[a],
                out[b_],
                kwargs={"name_lo": a, "name_hi": b_},
                output_dtypes=[out[b_].dtype],
                keep_attrs=True,
            )
            out[b_] = checked.transpose(*out[b_].dims) if checked.dims != out[b_].dims else checked
    return out
