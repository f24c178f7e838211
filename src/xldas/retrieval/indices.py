"""Vegetation and water indices from optical surface reflectance (SCIENCE.md §A4).

``ndvi``, ``evi``, ``green_index``, ``ndwi``, ``mndwi`` and ``awei`` take a Dataset of bands
as loaded by :func:`xldas.search_stac` (Sentinel-2 L2A, Landsat Collection 2 L2) or any
Dataset with variables ``blue``, ``green``, ``red``, ``nir``, ``swir1``, ``swir2``. Bands
are found, scaled to reflectance and cloud-masked by :mod:`xldas.retrieval.bands`;
the formulas are element-wise kernels on plain arrays applied lazily through
:func:`xldas._xr.apply_kernel`. Where a denominator is below 1e-6 in magnitude the index
is NaN (SCIENCE.md §A4 failure modes).

**Why not spyndex.** The Awesome Spectral Indices catalogue (``spyndex``) was evaluated
as the source of the formulas. xldas keeps its own short table because (i) the catalogue's
``AWEInsh`` reads ``4(G − S1) − 0.25 N + 2.75 S2`` while Feyisa et al. (2014, eq. 1) and
SCIENCE.md give ``4(G − S1) − (0.25 N + 2.75 S2)`` (check value E15 distinguishes them:
−1.1925 vs −0.3675); (ii) it has no ratio green index (only ``CIG`` = N/G − 1); (iii) it
evaluates formula strings with ``eval`` and does not mask vanishing denominators; and (iv) it
knows nothing of product band names, scaling or cloud masks, which is most of the work
here. The tests cross-check NDVI, EVI, NDWI, MNDWI and AWEI_sh against spyndex where it is
installed.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xldas._xr import apply_kernel
from xldas.errors import UnknownOptionError
from xldas.retrieval.bands import reflectance

__all__ = [
    "awei",
    "awei_nsh_kernel",
    "awei_sh_kernel",
    "evi",
    "evi_kernel",
    "green_index",
    "mndwi",
    "ndvi",
    "ndwi",
    "normalized_difference",
]

DEN_MIN = 1e-6


# ------------------------------------------------------------ kernels (plain arrays)
def normalized_difference(a, b):
    """(a − b)/(a + b), NaN where |a + b| < 1e-6 (NumPy or dask arrays)."""
    den = a + b
    ok = np.abs(den) >= DEN_MIN
    return np.where(ok, (a - b) / np.where(ok, den, 1.0), np.nan)


def evi_kernel(nir, red, blue):
    """EVI = 2.5(N − R)/(N + 6R − 7.5B + 1) (Huete et al. 2002)."""
    den = nir + 6.0 * red - 7.5 * blue + 1.0
    ok = np.abs(den) >= DEN_MIN
    return np.where(ok, 2.5 * (nir - red) / np.where(ok, den, 1.0), np.nan)


def ratio_kernel(a, b):
    """a/b, NaN where |b| < 1e-6."""
    ok = np.abs(b) >= DEN_MIN
    return np.where(ok, a / np.where(ok, b, 1.0), np.nan)


def awei_nsh_kernel(green, nir, swir1, swir2):
    """AWEI_nsh = 4(G − SWIR1) − (0.25 NIR + 2.75 SWIR2) (Feyisa et al. 2014)."""
    return 4.0 * (green - swir1) - (0.25 * nir + 2.75 * swir2)


def awei_sh_kernel(blue, green, nir, swir1, swir2):
    """AWEI_sh = B + 2.5 G − 1.5 (NIR + SWIR1) − 0.25 SWIR2 (Feyisa et al. 2014)."""
    return blue + 2.5 * green - 1.5 * (nir + swir1) - 0.25 * swir2


# ------------------------------------------------------------------- xarray layer
def _bands(obj, roles, kwargs):
    if isinstance(obj, xr.DataArray):
        if "band" not in obj.dims:
            raise TypeError("a DataArray of bands needs a 'band' dimension")
        obj = obj.to_dataset(dim="band")
    return reflectance(obj, roles, **kwargs)


def _index(func, obj, roles, kwargs, name, long_name, ref):
    r = _bands(obj, roles, kwargs)
    out = apply_kernel(
        func,
        *(r[k] for k in roles),
        output_dtypes=[np.result_type(*(r[k].dtype for k in roles), np.float32)],
        names=[name],
        attrs=[{"units": "1", "long_name": long_name, "references": ref}],
        history=f"{name} from bands {', '.join(roles)}",
    )
    return out


def ndvi(ds, **kwargs) -> xr.DataArray:
    """Normalized difference vegetation index (NIR − R)/(NIR + R) (Rouse et al. 1974).

    Parameters
    ----------
    ds : Dataset of bands (Sentinel-2 L2A, Landsat C2 L2 or generic names) or a DataArray
        with a ``band`` dimension.
    **kwargs : passed to :func:`xldas.retrieval.bands.reflectance` (``sensor``, ``scale``,
        ``offset``, ``mask``, ``unscaled``, explicit band names such as ``nir="B8A"``).

    Returns
    -------
    DataArray ``ndvi`` (dimensionless; float32 from digital numbers), lazy on dask input; NaN where masked.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from xldas.retrieval import ndvi
    >>> ds = xr.Dataset({"red": ("x", [0.10]), "nir": ("x", [0.40])})
    >>> round(float(ndvi(ds)[0]), 6)
    0.6
    """
    return _index(
        normalized_difference, ds, ("nir", "red"), kwargs, "ndvi",
        "normalized difference vegetation index", "Rouse et al. (1974)",
    )  # fmt: skip


def evi(ds, **kwargs) -> xr.DataArray:
    """Enhanced vegetation index 2.5(N − R)/(N + 6R − 7.5B + 1) (Huete et al. 2002, RSE 83:195).

    Examples
    --------
    >>> import xarray as xr
    >>> from xldas.retrieval import evi
    >>> ds = xr.Dataset({"blue": ("x", [0.05]), "red": ("x", [0.10]), "nir": ("x", [0.40])})
    >>> round(float(evi(ds)[0]), 5)
    0.46154
    """
    return _index(
        evi_kernel, ds, ("nir", "red", "blue"), kwargs, "evi", "enhanced vegetation index",
        "Huete et al. (2002) RSE 83:195-213",
    )  # fmt: skip


def green_index(ds, form: str = "ratio", **kwargs) -> xr.DataArray:
    """Green index: the ratio NIR/G (``form="ratio"``, used in irrigation mapping) or the
    green chlorophyll index CI_green = NIR/G − 1 (``form="ci"``) (Gitelson et al. 2003).

    Examples
    --------
    >>> import xarray as xr
    >>> from xldas.retrieval import green_index
    >>> ds = xr.Dataset({"green": ("x", [0.08]), "nir": ("x", [0.40])})
    >>> float(green_index(ds)[0]), float(green_index(ds, form="ci")[0])
    (5.0, 4.0)
    """
    if form not in ("ratio", "ci"):
        raise UnknownOptionError("green index form", form, ("ratio", "ci"))
    out = _index(
        ratio_kernel, ds, ("nir", "green"), kwargs, "green_index", "green index NIR/green",
        "Gitelson et al. (2003) J. Plant Physiol. 160:271-282",
    )  # fmt: skip
    if form == "ci":
        out = (out - 1.0).assign_attrs(out.attrs, long_name="green chlorophyll index NIR/green - 1")
        out.name = "ci_green"
    return out


def ndwi(ds, form: str = "mcfeeters", **kwargs) -> xr.DataArray:
    """Normalized difference water index: McFeeters (1996) (G − NIR)/(G + NIR) (default), or
    Gao (1996) (NIR − SWIR1)/(NIR + SWIR1) (``form="gao"``, also called LSWI).

    Examples
    --------
    >>> import xarray as xr
    >>> from xldas.retrieval import ndwi
    >>> ds = xr.Dataset({"green": ("x", [0.08]), "nir": ("x", [0.40]), "swir1": ("x", [0.25])})
    >>> round(float(ndwi(ds)[0]), 6), round(float(ndwi(ds, form="gao")[0]), 6)
    (-0.666667, 0.230769)
    """
    if form == "mcfeeters":
        return _index(
            normalized_difference, ds, ("green", "nir"), kwargs, "ndwi",
            "normalized difference water index (McFeeters)", "McFeeters (1996) IJRS 17:1425",
        )  # fmt: skip
    if form == "gao":
        return _index(
            normalized_difference, ds, ("nir", "swir1"), kwargs, "lswi",
            "normalized difference water index (Gao) / land surface water index",
            "Gao (1996) RSE 58:257",
        )  # fmt: skip
    raise UnknownOptionError("ndwi form", form, ("mcfeeters", "gao"))


def mndwi(ds, **kwargs) -> xr.DataArray:
    """Modified normalized difference water index (G − SWIR1)/(G + SWIR1) (Xu 2006).

    Examples
    --------
    >>> import xarray as xr
    >>> from xldas.retrieval import mndwi
    >>> ds = xr.Dataset({"green": ("x", [0.08]), "swir1": ("x", [0.25])})
    >>> round(float(mndwi(ds)[0]), 6)
    -0.515152
    """
    return _index(
        normalized_difference, ds, ("green", "swir1"), kwargs, "mndwi",
        "modified normalized difference water index", "Xu (2006) IJRS 27:3025",
    )  # fmt: skip


def awei(ds, shadow: bool = False, **kwargs) -> xr.DataArray:
    """Automated water extraction index (Feyisa et al. 2014, RSE 140:23).

    ``shadow=False``: AWEI_nsh = 4(G − SWIR1) − (0.25 NIR + 2.75 SWIR2);
    ``shadow=True``: AWEI_sh = B + 2.5 G − 1.5 (NIR + SWIR1) − 0.25 SWIR2 (for scenes with
    mountain or building shadow). Water is AWEI > 0.

    Examples
    --------
    >>> import xarray as xr
    >>> from xldas.retrieval import awei
    >>> ds = xr.Dataset({k: ("x", [v]) for k, v in dict(blue=0.05, green=0.08, nir=0.40,
    ...                  swir1=0.25, swir2=0.15).items()})
    >>> round(float(awei(ds)[0]), 4), round(float(awei(ds, shadow=True)[0]), 4)
    (-1.1925, -0.7625)
    """
    if shadow:
        return _index(
            awei_sh_kernel, ds, ("blue", "green", "nir", "swir1", "swir2"), kwargs, "awei_sh",
            "automated water extraction index (shadow)", "Feyisa et al. (2014) RSE 140:23",
        )  # fmt: skip
    return _index(
        awei_nsh_kernel, ds, ("green", "nir", "swir1", "swir2"), kwargs, "awei_nsh",
        "automated water extraction index (no shadow)", "Feyisa et al. (2014) RSE 140:23",
    )  # fmt: skip
