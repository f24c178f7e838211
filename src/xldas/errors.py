"""Typed exceptions raised by xldas.

Every exception derives from :class:`XldasError` and, where it makes sense, from the
built-in exception a user would catch (``KeyError``, ``ValueError``, ``ConnectionError``,
``FileNotFoundError``). Messages name the offending file, URL, variable, unit or option and,
where there is a closed set of valid choices, list them.
"""

from __future__ import annotations

from collections.abc import Iterable


class XldasError(Exception):
    """Base class of every error raised by xldas."""


def _choices(valid: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in sorted(valid))


class UnknownOptionError(XldasError, ValueError):
    """An option (method, engine, filter, soil model ...) is not one of the valid choices."""

    def __init__(self, option: str, value: object, valid: Iterable[str]):
        self.option = option
        self.value = value
        self.valid = sorted(valid)
        super().__init__(f"unknown {option} {value!r}; valid choices are {_choices(self.valid)}")


# Backwards-friendly alias with the name used in the issues.
UnknownMethodError = UnknownOptionError


class CatalogEntryError(XldasError, KeyError):
    """A catalog has no entry with the requested name."""

    def __init__(self, entry: str, catalog: str, valid: Iterable[str]):
        self.entry = entry
        self.catalog = catalog
        self.valid = sorted(valid)
        super().__init__(
            f"catalog {catalog} has no entry {entry!r}; entries are {_choices(self.valid)}"
        )

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class CatalogFileError(XldasError, FileNotFoundError):
    """A catalog file is missing or cannot be parsed."""


class StacError(XldasError):
    """Base class of the STAC search and load errors."""


class StacUnreachableError(StacError, ConnectionError):
    """The STAC API did not answer within the timeout, or refused the connection."""


class NoItemsFoundError(StacError, LookupError):
    """A STAC search matched no item."""


class MissingBandError(StacError, KeyError):
    """A requested band/asset is not offered by the STAC items."""

    def __init__(self, band: str, valid: Iterable[str], where: str = "the STAC items"):
        self.band = band
        self.valid = sorted(valid)
        super().__init__(
            f"band {band!r} is not in {where}; available bands are {_choices(self.valid)}"
        )

    def __str__(self) -> str:
        return self.args[0]


class UnitError(XldasError, ValueError):
    """A variable has no units, or units that cannot be converted to the expected ones."""


class DimensionError(XldasError, ValueError):
    """A required dimension is missing, misnamed, or chunked in a way that is not allowed."""


class ParameterRangeError(XldasError, ValueError):
    """A physical parameter or input lies outside its valid range."""


class ForcingError(XldasError, ValueError):
    """Forcing data are missing variables, hold NaN, or do not cover the requested period."""


class ObservationError(XldasError, ValueError):
    """Observations are malformed: missing or non-positive errors, misaligned grid, ..."""


class FilterError(XldasError, ValueError):
    """A filter cannot run with the given ensemble or hyperparameters."""


class ConfigError(XldasError, ValueError):
    """An experiment configuration is invalid (the message names the key)."""


class StoreError(XldasError):
    """A Zarr store is missing, locked, belongs to another experiment, or is corrupt."""


class CheckpointError(StoreError):
    """A checkpoint is missing or corrupt."""


class StoreLockedError(StoreError):
    """Another process holds the writer lock of a store."""
