"""Where xldas finds its shipped catalogs and where it writes generated data."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import platformdirs

__all__ = ["catalog_dir", "data_dir"]


def catalog_dir() -> Path:
    """Directory of the catalogs shipped with xldas.

    In a wheel the catalogs live in ``xldas/catalogs``; in a source checkout (editable
    install) they are the top-level ``catalogs/`` folder of the repository.
    """
    packaged = Path(str(resources.files("xldas"))) / "catalogs"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parents[2] / "catalogs"
    if source.is_dir():
        return source
    from xldas.errors import CatalogFileError

    raise CatalogFileError(f"xldas catalogs not found in {packaged} nor in {source}")


def data_dir() -> Path:
    """User cache directory for generated demo data, caches and downloads.

    ``$XLDAS_DATA_DIR`` overrides the platform default
    (``~/.cache/xldas`` on Linux). The directory is created if needed; it is never
    inside site-packages.
    """
    env = os.environ.get("XLDAS_DATA_DIR")
    path = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("xldas"))
    path.mkdir(parents=True, exist_ok=True)
    return path
