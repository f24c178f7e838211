"""Search a STAC API and load the matching items lazily as an xarray Dataset.

:func:`search_stac` is the one entry point: a `pystac-client` search (collections, bbox,
datetime, optional CQL ``query``) followed by an `odc-stac` load into a Dataset with dims
``time``, ``y``, ``x`` (``latitude``/``longitude`` become ``lat``/``lon`` for geographic
output), one variable per band, CRS kept in ``spatial_ref``. Nothing is read from the
rasters until the result is computed.

Network failures are turned into typed errors (:mod:`xldas.errors`):
:class:`~xldas.errors.StacUnreachableError` when the API does not answer within the
timeout, :class:`~xldas.errors.NoItemsFoundError` when the search matches nothing, and
:class:`~xldas.errors.MissingBandError` when a requested band is not offered by the items.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import xarray as xr

from xldas._xr import add_history
from xldas.errors import MissingBandError, NoItemsFoundError, StacUnreachableError

__all__ = ["DEFAULT_STAC_CHUNKS", "search_stac"]

log = logging.getLogger(__name__)

#: dask chunks used when ``chunks`` is not given: one time step, 1024 x 1024 pixels.
DEFAULT_STAC_CHUNKS = {"time": 1, "y": 1024, "x": 1024}


def _resolve_modifier(modifier: Callable | str | None) -> Callable | None:
    """Accept a callable or an import path ``"package.module:function"``."""
    if modifier is None or callable(modifier):
        return modifier
    module, _, attr = str(modifier).partition(":")
    try:
        obj = importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"STAC item modifier {modifier!r} needs the package {module.split('.')[0]!r}; "
            f"install it (e.g. `pip install {module.split('.')[0].replace('_', '-')}`)"
        ) from err
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _stac_io(timeout: float):
    """A pystac-client IO object whose total time per request is bounded."""
    from pystac_client.stac_api_io import StacApiIO
    from urllib3.util.retry import Retry

    # One quick retry of failed connections and of overloaded-server answers; read
    # timeouts are not retried, so a silent server costs at most ~2 x timeout.
    retry = Retry(
        total=1,
        connect=1,
        read=0,
        status=1,
        backoff_factor=0.1,
        status_forcelist=(429, 502, 503, 504),
        allowed_methods=None,
    )
    return StacApiIO(timeout=timeout, max_retries=retry)


def _unreachable(url: str, timeout: float, err: Exception) -> StacUnreachableError:
    return StacUnreachableError(
        f"STAC API {url} is unreachable (timeout {timeout:g} s): {type(err).__name__}: {err}"
    )


def _band_units(items: Sequence[Any]) -> dict[str, str]:
    """Band names (and aliases) odc-stac can load from ``items`` -> their units."""
    import odc.stac

    units: dict[str, str] = {}
    seen: set[str | None] = set()
    for item in items:
        if item.collection_id in seen:
            continue
        seen.add(item.collection_id)
        md = odc.stac.extract_collection_metadata(item)
        for (asset, _), band in md.bands.items():
            units.setdefault(asset, band.units or "1")
        for alias, keys in md.aliases.items():
            units.setdefault(alias, md.bands[keys[0]].units or "1")
    return units


def search_stac(
    url: str,
    collections: str | Sequence[str],
    bbox: Sequence[float],
    datetime: str | Sequence[Any] | None,
    bands: str | Sequence[str] | None = None,
    resolution: float | None = None,
    crs: str | int | None = None,
    chunks: Mapping[str, int] | None = None,
    query: Mapping[str, Any] | None = None,
    modifier: Callable | str | None = None,
    timeout: float = 30.0,
    max_items: int | None = None,
    groupby: str | None = "time",
    **load_kwargs: Any,
) -> xr.Dataset:
    """Search a STAC API and load the matching items lazily.

    Parameters
    ----------
    url : str
        Root URL of a STAC API (``/search`` conformance), e.g.
        ``https://planetarycomputer.microsoft.com/api/stac/v1``.
    collections : str or sequence of str
        Collection id(s) to search.
    bbox : (west, south, east, north)
        Bounding box in degrees (EPSG:4326). The loaded Dataset is cropped to it.
    datetime : str, pair or None
        A STAC datetime or interval, e.g. ``"2023-06-01/2023-06-30"``; None = any time.
    bands : str or sequence of str, optional
        Asset keys (or ``eo:bands`` common names) to load; default all raster assets.
    resolution : float, optional
        Output pixel size in units of ``crs`` (metres for UTM, degrees for EPSG:4326);
        default the native resolution of the items.
    crs : str or int, optional
        Output CRS (``"EPSG:32647"``, ``4326`` ...); default the items' native CRS.
    chunks : mapping, optional
        Dask chunks of the output (dims ``time``, ``y``, ``x``); default
        :data:`DEFAULT_STAC_CHUNKS`. The result is always dask-backed.
    query : mapping, optional
        STAC API ``query`` extension filter, e.g. ``{"eo:cloud_cover": {"lt": 20}}``.
    modifier : callable or str, optional
        Called on every item before loading, to sign asset URLs; a hub user passes
        ``planetary_computer.sign_inplace`` (or the string
        ``"planetary_computer:sign_inplace"``).
    timeout : float
        Seconds allowed for each HTTP request to the API (connect and read). A
        silent or refusing server fails within about twice this time.
    max_items : int, optional
        Stop after this many items.
    groupby : str or None
        How odc-stac merges items into time slices (``"time"``, ``"solar_day"`` ...).
    **load_kwargs
        Passed on to :func:`odc.stac.load` (``resampling``, ``dtype``, ``fail_on_error`` ...).

    Returns
    -------
    xarray.Dataset
        Lazy, dask-backed, dims ``time``, ``y``, ``x`` (or ``lat``/``lon`` for geographic
        output), one variable per band, CRS in the ``spatial_ref`` coordinate. Attributes
        ``stac_url``, ``stac_collections``, ``stac_items`` and ``history`` record the source.

    Raises
    ------
    StacUnreachableError
        The API refused the connection or did not answer within ``timeout``.
    NoItemsFoundError
        The search matched no item (the message repeats the search).
    MissingBandError
        A requested band is not offered by the items (the message lists those that are).

    Examples
    --------
    >>> import xldas
    >>> s2 = xldas.search_stac(  # doctest: +SKIP
    ...     "https://planetarycomputer.microsoft.com/api/stac/v1",
    ...     collections="sentinel-2-l2a", bbox=(100.0, 38.8, 100.2, 39.0),
    ...     datetime="2023-07-01/2023-07-15", bands=["B04", "B08"], resolution=20,
    ...     modifier="planetary_computer:sign_inplace")
    >>> ndvi = (s2.B08 - s2.B04) / (s2.B08 + s2.B04)  # doctest: +SKIP
    """
    import odc.stac
    import pystac_client
    import requests
    from pystac_client.exceptions import APIError

    collections = [collections] if isinstance(collections, str) else list(collections)
    band_list = [bands] if isinstance(bands, str) else (list(bands) if bands else None)
    modifier = _resolve_modifier(modifier)
    bbox = tuple(float(v) for v in bbox)

    try:
        client = pystac_client.Client.open(
            url, modifier=modifier, stac_io=_stac_io(timeout), timeout=timeout
        )
        search = client.search(
            collections=collections,
            bbox=bbox,
            datetime=datetime,
            query=dict(query) if query else None,
            max_items=max_items,
        )
        items = list(search.items())
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
        raise _unreachable(url, timeout, err) from err
    except APIError as err:
        if "timed out" in str(err).lower() or "connection" in str(err).lower():
            raise _unreachable(url, timeout, err) from err
        raise
    if not items:
        raise NoItemsFoundError(
            f"no STAC items in {url} for collections={collections}, bbox={list(bbox)}, "
            f"datetime={datetime!r}" + (f", query={dict(query)}" if query else "")
        )
    log.info("STAC search of %s matched %d items", url, len(items))

    units = _band_units(items)
    for band in band_list or ():
        if band not in units:
            raise MissingBandError(band, units, where=f"collections {collections} of {url}")

    load_args: dict[str, Any] = {
        "bands": band_list,
        "chunks": dict(chunks) if chunks else dict(DEFAULT_STAC_CHUNKS),
        "bbox": bbox,
        "groupby": groupby,
    }
    if resolution is not None:
        load_args["resolution"] = resolution
    if crs is not None:
        load_args["crs"] = crs
    load_args.update(load_kwargs)
    ds = odc.stac.load(items, **load_args)
    ds = ds.rename(
        {k: v for k, v in {"latitude": "lat", "longitude": "lon"}.items() if k in ds.dims}
    )

    for name in ds.data_vars:  # units from the raster extension ("1" when not given)
        ds[name].attrs.setdefault("units", units.get(str(name), "1"))
        ds[name].attrs.setdefault("long_name", f"{name} band")
    ds.attrs.update(
        stac_url=url,
        stac_collections=", ".join(collections),
        stac_items=", ".join(item.id for item in items[:50]) + (" ..." if len(items) > 50 else ""),
    )
    return add_history(
        ds,
        f"search_stac({url!r}, collections={collections}, bbox={list(bbox)}, "
        f"datetime={datetime!r}) -> {len(items)} items",
    )
