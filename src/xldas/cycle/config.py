"""Experiment configuration: a validated YAML description of one assimilation experiment.

:class:`Experiment` is a pydantic v2 model. Every section forbids unknown keys, so a typo
is an error that names the key and lists the allowed ones; option values (filter method,
cluster type, operator, source kind) are checked against their closed sets; units are
checked with :mod:`xldas.units`. All errors are raised as :class:`xldas.errors.ConfigError`.

A minimal configuration (the embedded Heihe twin experiment, EnKF)::

    name: heihe_osse_enkf
    demo: {resolution: 0.25, days: 30}
    period: {start: 2021-04-01, end: 2021-04-30, cycle: 1D}
    observations:
      - name: smap
        source: {kind: demo, sensor: smap}
        operator: {type: tau_omega, preset: smap}
    filter: {method: enkf, inflation: 1.05}
    ensemble: {members: 16, seed: 1}
    output: {store: ./xldas-demo/enkf}

See ``catalogs/experiments/README.md`` for every key.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xldas.errors import ConfigError, UnitError

__all__ = [
    "FILTER_METHODS",
    "OBSERVATION_UNITS",
    "OPERATORS",
    "ClusterConfig",
    "DomainConfig",
    "EnsembleConfig",
    "Experiment",
    "FilterConfig",
    "ObservationConfig",
    "OutputConfig",
    "PeriodConfig",
    "SpinupConfig",
]

#: filter methods the engine accepts (``none`` = open loop)
FILTER_METHODS = ("none", "enkf", "etkf", "letkf", "ukf", "cdkf", "srukf", "srcdkf", "pf")
#: filters that carry 2n+1 sigma points (``ensemble.members`` is then 2n+1)
SIGMA_POINT_METHODS = ("ukf", "cdkf", "srukf", "srcdkf")
#: observation operator types -> class name in :mod:`xldas.obs`
OPERATORS = {
    "tau_omega": "TauOmega",
    "water_cloud": "WaterCloud",
    "cosmic_ray": "CosmicRay",
    "identity": "Identity",
}
#: canonical units of observed variables (error std must be convertible to them)
OBSERVATION_UNITS = {
    "tb_h": "K",
    "tb_v": "K",
    "sigma0_vv": "dB",
    "sigma0_vh": "dB",
    "sm": "m3 m-3",
    "swe": "kg m-2",
    "neutron_count": "h-1",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _timedelta(value: Any) -> pd.Timedelta:
    try:
        td = pd.Timedelta(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a duration: {value!r} (use e.g. '1D', '6h', '3 days')") from exc
    if td <= pd.Timedelta(0):
        raise ValueError(f"duration must be positive, got {value!r}")
    return td


class DomainConfig(_Section):
    """Model grid: a bounding box and a resolution, or the grid of the parameter source."""

    bbox: tuple[float, float, float, float] | None = Field(
        None, description="west, south, east, north in degrees"
    )
    resolution: float | None = Field(None, gt=0, description="grid spacing in degrees")

    @model_validator(mode="after")
    def _check(self):
        if (self.bbox is None) != (self.resolution is None):
            raise ValueError("give both bbox and resolution, or neither (grid of the parameters)")
        if self.bbox is not None:
            w, s, e, n = self.bbox
            if not (w < e and s < n and -90 <= s and n <= 90):
                raise ValueError(f"bbox must be (west, south, east, north), got {self.bbox}")
        return self


class PeriodConfig(_Section):
    """Analysis period: cycles at ``start + k * cycle`` for k = 1, 2, ... up to ``end``."""

    start: _dt.datetime
    end: _dt.datetime | None = Field(None, description="None: open-ended (real-time mode)")
    cycle: str = Field("1D", description="analysis interval, a pandas duration")

    @field_validator("cycle")
    @classmethod
    def _cycle(cls, v):
        _timedelta(v)
        return v

    @model_validator(mode="after")
    def _order(self):
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self

    @property
    def interval(self) -> pd.Timedelta:
        return _timedelta(self.cycle)


class SourceConfig(_Section):
    """Where a dataset comes from.

    kind:
      ``demo``    a group of the embedded twin experiment (``xldas.demo.heihe_osse``);
      ``catalog`` an entry of an Intake catalog (``entry``, optional ``catalog`` path);
      ``zarr`` / ``netcdf``  a file or store at ``path``;
      ``files``   one file per date, ``pattern`` with strftime fields (``obs_%Y%m%d.nc``);
      ``stac``    a STAC API search (``url``, ``collections``, ``bands``).

    ``reader`` (``netcdf`` kind, ``path`` may be a glob): a product of
    :data:`xldas.io.observations.PRODUCTS` (``SPL3SMP``, ``SPL3SMP_E``, ``SPL1CTB``,
    ``AMSR2_L3``, ``SMOS_L3``, ``GRACE_MASCON``, ``ASCAT_TS``) read with that product's reader
    and, for observations, aggregated onto the model grid with
    :func:`xldas.io.observations.to_model_grid` (footprint-aware errors); for forcing,
    ``ERA5`` / ``ERA5_LAND`` (:func:`xldas.io.forcing.open_era5`).
    """

    kind: Literal["demo", "catalog", "zarr", "netcdf", "files", "stac"]
    sensor: str | None = None
    entry: str | None = None
    catalog: str | None = None
    path: str | None = None
    pattern: str | None = None
    url: str | None = None
    collections: list[str] | None = None
    bands: list[str] | None = None
    resolution: float | None = None
    regrid: Literal["bilinear", "conservative", "nearest"] = "bilinear"
    reader: str | None = Field(None, description="product reader (xldas.io.observations)")

    @field_validator("reader")
    @classmethod
    def _reader(cls, v):
        if v is not None:
            from xldas.io.observations import PRODUCTS

            allowed = [*sorted(PRODUCTS), "ERA5", "ERA5_LAND"]
            if v not in allowed:
                raise ValueError(f"unknown reader {v!r}; allowed: {allowed}")
        return v

    @model_validator(mode="after")
    def _needs(self):
        need = {
            "catalog": ["entry"],
            "zarr": ["path"],
            "netcdf": ["path"],
            "files": ["pattern"],
            "stac": ["url", "collections"],
        }.get(self.kind, [])
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"source kind {self.kind!r} needs key(s) {missing}")
        return self


class ModelConfig(_Section):
    """Land model: parameter source, model step and initial state."""

    params: SourceConfig = SourceConfig(kind="demo")
    dt: str | None = Field(None, description="model step (default: the forcing interval)")
    initial_state: Literal["demo", "field_capacity"] = Field(
        "field_capacity",
        description="'demo': the 'initial' group of the twin experiment; 'field_capacity': "
        "soil moisture at field capacity (xldas.models.initial_state)",
    )

    @field_validator("dt")
    @classmethod
    def _dt(cls, v):
        if v is not None:
            _timedelta(v)
        return v


class ErrorConfig(_Section):
    """Observation error model: a constant 1-sigma ``std`` in ``units``, or the source's
    ``<name>_err`` variable when ``std`` is None."""

    std: float | None = Field(None, gt=0)
    units: str | None = None


class QCConfig(_Section):
    """Quality control applied by the engine before the analysis.

    ``range``: {variable: [min, max]} valid observation range; ``frozen_soil``: reject
    microwave observations where the forecast top-layer soil temperature is below
    ``frozen_threshold_k``; ``snow``: reject where the forecast SWE exceeds
    ``snow_threshold`` kg m-2. The gross-error check belongs to the filters (``gross_error``
    is passed to them).
    """

    range: dict[str, tuple[float, float]] = Field(default_factory=dict)
    frozen_soil: bool = True
    frozen_threshold_k: float = Field(273.15, gt=0)
    snow: bool = True
    snow_threshold: float = Field(1.0, ge=0)


class RescaleConfig(_Section):
    """Rescale retrieved observations onto a reference climatology before assimilation
    (:func:`xldas.validation.rescale`): ``reference`` is a source (e.g. an open-loop run)
    holding ``variable`` (default: the observed variable; its top layer if layered) on the
    model grid; errors are scaled by the ratio of the rescaled to the original spread."""

    method: Literal["cdf_match", "mean_std"] = "cdf_match"
    reference: SourceConfig
    variable: str | None = None


class ObservationConfig(_Section):
    """One observation source with its operator, error model, QC and thinning."""

    name: str
    source: SourceConfig
    operator: dict[str, Any]
    variables: list[str] | None = Field(
        None, description="observed variables (default: operator's)"
    )
    error: ErrorConfig = ErrorConfig()
    qc: QCConfig = QCConfig()
    thinning: int = Field(1, ge=1, description="keep every k-th pixel in lat and lon")
    rescale: RescaleConfig | None = Field(None, description="rescale onto a reference climatology")

    @field_validator("operator")
    @classmethod
    def _operator(cls, v):
        typ = v.get("type")
        if typ not in OPERATORS:
            raise ValueError(
                f"operator.type {typ!r} is not one of {sorted(OPERATORS)}"
                if typ is not None
                else f"operator needs a 'type', one of {sorted(OPERATORS)}"
            )
        return v

    @model_validator(mode="after")
    def _units(self):
        if self.error.units is None:
            return self
        from xldas.units import conversion

        for var in self.variables or []:
            target = OBSERVATION_UNITS.get(var)
            if target is None:
                continue
            try:
                if self.error.units.strip() != target:
                    conversion(self.error.units, target)
            except UnitError:
                raise ValueError(
                    f"error.units {self.error.units!r} cannot be converted to the units of "
                    f"{var!r} ({target!r})"
                ) from None
        return self


class FilterConfig(_Section):
    """Filter method and hyperparameters (passed to the ``xldas.filters`` dataclass)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    method: str = "enkf"

    @field_validator("method")
    @classmethod
    def _method(cls, v):
        v = v.lower()
        if v not in FILTER_METHODS:
            raise ValueError(f"unknown filter method {v!r}; allowed: {list(FILTER_METHODS)}")
        return v

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _filter_builds(self):
        """The hyperparameters make a valid ``xldas.filters`` object (checked at load time)."""
        if self.method == "none":
            return self
        import dataclasses

        from xldas.errors import XldasError
        from xldas.filters import get_filter

        try:
            get_filter(self.method, **self.hyperparameters)
        except TypeError:
            cls = type(get_filter(self.method))
            valid = [f.name for f in dataclasses.fields(cls) if f.init]
            unknown = sorted(set(self.hyperparameters) - set(valid))
            raise ValueError(
                f"unknown hyperparameter(s) {unknown} of {self.method}; allowed: {valid}"
            ) from None
        except XldasError as exc:
            raise ValueError(str(exc)) from None
        return self


class EnsembleConfig(_Section):
    """Ensemble size, seed and perturbations (``xldas.models`` perturbation settings)."""

    members: int = Field(16, ge=2)
    seed: int = Field(0, ge=0)
    forcing_perturbation: dict[str, Any] | None = Field(
        default_factory=dict,
        description="xldas.models.ForcingPerturbation settings ({} = its defaults); "
        "None: no forcing perturbation",
    )
    state_perturbation: dict[str, float] = Field(
        default_factory=dict, description="initial-state spread, e.g. {sm: 0.02} (m3 m-3)"
    )
    parameter_perturbation: dict[str, float] = Field(
        default_factory=dict, description="{parameter: log-std}: state augmentation"
    )

    @field_validator("forcing_perturbation")
    @classmethod
    def _fp(cls, v):
        if v is None:
            return v
        from xldas.models import ForcingPerturbation

        try:
            ForcingPerturbation(**v)
        except TypeError as exc:
            import dataclasses

            keys = [f.name for f in dataclasses.fields(ForcingPerturbation)]
            raise ValueError(f"{exc}; allowed keys are {keys}") from None
        except Exception as exc:
            raise ValueError(str(exc)) from None
        return v


class OutputConfig(_Section):
    """Output store (an icechunk repository of Zarr v3 groups) and what goes in it."""

    store: str
    fluxes: bool = False
    overwrite: bool = False
    chunks: dict[str, int] | None = Field(None, description="spatial chunks of the state")


class ClusterConfig(_Section):
    """Where the cycle computes: in-process (``none``), a LocalCluster, or Slurm."""

    type: Literal["none", "local", "slurm"] = "none"
    options: dict[str, Any] = Field(default_factory=dict)


class CheckpointConfig(_Section):
    """Checkpoint policy: the ensemble is checkpointed atomically after every cycle;
    ``verify`` checks the stored checksums when resuming."""

    verify: bool = True


class SpinupConfig(_Section):
    """Repeat the first ``length`` of forcing until soil moisture changes less than
    ``tolerance`` (m3 m-3, max abs change of the domain) between repetitions."""

    enabled: bool = False
    length: str = "365D"
    tolerance: float = Field(1e-3, gt=0)
    max_iterations: int = Field(10, ge=1)

    @field_validator("length")
    @classmethod
    def _len(cls, v):
        _timedelta(v)
        return v


class Experiment(_Section):
    """A validated assimilation experiment.

    Examples
    --------
    >>> from xldas.cycle import Experiment
    >>> exp = Experiment.model_validate({
    ...     "name": "ol", "period": {"start": "2021-04-01", "end": "2021-04-05"},
    ...     "filter": {"method": "none"}, "output": {"store": "/tmp/ol"}})
    >>> exp.filter.method, len(exp.cycle_times())
    ('none', 4)
    """

    name: str
    description: str = ""
    demo: dict[str, Any] = Field(
        default_factory=dict, description="arguments of xldas.demo.heihe_osse for demo sources"
    )
    domain: DomainConfig = DomainConfig()
    period: PeriodConfig
    model: ModelConfig = ModelConfig()
    forcing: SourceConfig = SourceConfig(kind="demo")
    observations: list[ObservationConfig] = Field(default_factory=list)
    filter: FilterConfig = FilterConfig()
    ensemble: EnsembleConfig = EnsembleConfig()
    output: OutputConfig
    cluster: ClusterConfig = ClusterConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    spinup: SpinupConfig = SpinupConfig()

    @model_validator(mode="after")
    def _sigma_points(self):
        if (
            self.filter.method in SIGMA_POINT_METHODS
            and self.ensemble.forcing_perturbation is not None
        ):
            raise ValueError(
                f"filter.method {self.filter.method!r} propagates deterministic sigma points: set "
                "ensemble.forcing_perturbation: null and give the model error as filter.Q "
                "(variances per variable, e.g. {sm: 1.0e-5})"
            )
        return self

    # ------------------------------------------------------------ loading
    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> Experiment:
        """Read and validate a YAML experiment file.

        ``overrides`` are dotted keys replacing values (``{"output.store": "..."}``).
        Relative source paths are resolved against the file's folder; a relative
        ``output.store`` against the current working directory.
        """
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"experiment file {path} does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"experiment file {path} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"experiment file {path} must hold a mapping at top level")
        for key, value in overrides.items():
            node = raw
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        exp = cls.from_dict(raw)
        return exp.resolve_paths(path.parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Experiment:
        """Validate a mapping, turning pydantic errors into :class:`ConfigError`."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_format_errors(exc)) from None

    def resolve_paths(self, base: Path) -> Experiment:
        """Return a copy whose relative file paths are anchored at ``base``."""

        def fix(p):
            if p is None or "://" in p:
                return p
            q = Path(p).expanduser()
            return str(q if q.is_absolute() else (base / q).resolve())

        store = str(Path(self.output.store).expanduser().resolve())
        out = self.model_copy(update={"output": self.output.model_copy(update={"store": store})})
        obs = []
        for o in out.observations:
            src = o.source.model_copy(
                update={"path": fix(o.source.path), "pattern": fix(o.source.pattern)}
            )
            upd: dict[str, Any] = {"source": src}
            if o.rescale is not None:
                ref = o.rescale.reference
                ref = ref.model_copy(update={"path": fix(ref.path)})
                upd["rescale"] = o.rescale.model_copy(update={"reference": ref})
            obs.append(o.model_copy(update=upd))
        forcing = out.forcing.model_copy(update={"path": fix(out.forcing.path)})
        return out.model_copy(update={"observations": obs, "forcing": forcing})

    # ------------------------------------------------------------ identity
    def canonical(self) -> dict[str, Any]:
        """The configuration as plain JSON-able data (stored in the output's attrs)."""
        return json.loads(self.model_dump_json())

    def config_hash(self) -> str:
        """Hash of everything that changes the results (not the store path nor the cluster)."""
        data = self.canonical()
        for key in ("output", "cluster", "checkpoint", "description"):
            data.pop(key, None)
        data.pop("name", None)
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # ------------------------------------------------------------ cycles
    def cycle_times(self, until: _dt.datetime | pd.Timestamp | None = None) -> pd.DatetimeIndex:
        """Analysis times ``start + k * cycle`` (k ≥ 1) up to ``end`` (and ``until``)."""
        start = pd.Timestamp(self.period.start)
        ends = [pd.Timestamp(t) for t in (self.period.end, until) if t is not None]
        if not ends:
            raise ConfigError("period.end is open: cycle_times needs 'until'")
        end = min(ends)
        n = int((end - start) // self.period.interval)
        return pd.DatetimeIndex([start + (k + 1) * self.period.interval for k in range(max(n, 0))])

    # ------------------------------------------------------------ running
    def run(self, client=None, **kwargs):
        """Run (or resume) every cycle of the period; see :func:`xldas.cycle.engine.run`."""
        from xldas.cycle.engine import run

        return run(self, client=client, **kwargs)

    def cycle(self, client=None, **kwargs):
        """Real-time mode: run the cycles for which new observations exist."""
        from xldas.cycle.engine import catch_up

        return catch_up(self, client=client, **kwargs)


def _format_errors(exc: ValidationError) -> str:
    """One line per problem: the dotted key, what is wrong, and what is allowed."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(err["loc"][:-1])
            msg = f"unknown key {err['loc'][-1]!r}" + (
                f"; allowed keys are {sorted(allowed)}" if allowed else ""
            )
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{loc or '<top level>'}: {msg}")
    return "invalid experiment configuration:\n  " + "\n  ".join(lines)


def _allowed_keys(loc: tuple) -> list[str] | None:
    model: Any = Experiment
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ()) or ()
        cand = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not cand:
            return None
        model = cand[0]
    return list(model.model_fields)
