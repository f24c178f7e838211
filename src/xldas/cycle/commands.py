"""Command-line commands of the cycling engine: ``xldas demo``, ``xldas run``, ``xldas cycle``.

They are registered on the typer application of :mod:`xldas.cli`. Each prints a short
report; errors from xldas (bad configuration, locked store, other experiment's store) end
the command with a one-line message and a non-zero exit status instead of a traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from xldas.errors import ConfigError, StoreError, XldasError

__all__ = ["cycle_command", "demo_command", "register", "run_command"]


def _setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("xldas")
    if not any(getattr(h, "_xldas_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._xldas_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    # diagnostics store short variable names as fixed-length strings, which zarr-python
    # flags as not yet in the Zarr v3 spec on every write: once is enough for a user
    import warnings

    warnings.filterwarnings("once", message=".*does not have a Zarr V3 specification.*")


def _fail(exc: Exception) -> None:
    code = 2 if isinstance(exc, ConfigError) else 3 if isinstance(exc, StoreError) else 1
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code)


def _load(path: Path, store: str | None):
    from xldas.cycle.config import Experiment

    overrides = {"output.store": str(Path(store).resolve())} if store else {}
    return Experiment.from_yaml(path, **overrides)


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, warnings only.")]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace an output store of a different experiment.")
]
Store = Annotated[
    str | None, typer.Option("--store", help="Output store (overrides output.store).")
]


def run_command(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    store: Store = None,
    until: Annotated[
        str | None, typer.Option(help="Stop at this time (default period.end).")
    ] = None,
    quiet: Quiet = False,
    overwrite: Overwrite = False,
) -> None:
    """Run (or resume) every cycle of a configured experiment."""
    _setup_logging(quiet)
    try:
        exp = _load(experiment, store)
        from xldas.cycle.engine import run

        report = run(exp, quiet=quiet, overwrite=overwrite or None, until=until)
    except XldasError as exc:
        _fail(exc)
    typer.echo(report.summary())


def cycle_command(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    store: Store = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep polling for new observations.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls with --follow.")] = 600.0,
    max_polls: Annotated[int | None, typer.Option(help="Stop after this many polls.")] = None,
    quiet: Quiet = False,
    overwrite: Overwrite = False,
) -> None:
    """Real-time mode: run the cycles for which new observations were published."""
    _setup_logging(quiet)
    from xldas.cycle.engine import catch_up

    try:
        exp = _load(experiment, store)
        polls = 0
        while True:
            report = catch_up(exp, quiet=quiet, overwrite=overwrite or None)
            typer.echo(report.summary())
            polls += 1
            if not follow or (max_polls is not None and polls >= max_polls):
                break
            import time

            time.sleep(interval)
    except XldasError as exc:
        _fail(exc)


def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("xldas-demo"),
    filters: Annotated[
        str, typer.Option("--filters", help="Comma-separated filters run beside the open loop.")
    ] = "enkf,letkf",
    small: Annotated[
        bool, typer.Option("--small", help="Reduced configuration (0.25 deg, 15 cycles).")
    ] = False,
    resolution: Annotated[
        float | None,
        typer.Option(
            "--resolution",
            help="Grid spacing in degrees (default: the 0.05 of the shipped experiments).",
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace stores under OUT written by another configuration instead of "
            "refusing them.",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Experiments run at once, one process each (default: one per core).",
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Run the embedded Heihe twin experiment end to end (no network).

    Open loop + the filters, Zarr stores under OUT, a skill table against the truth and
    PNG figures.
    """
    _setup_logging(quiet)
    from xldas.cycle.demo import run_demo

    try:
        result = run_demo(
            out,
            [f.strip() for f in filters.split(",") if f.strip()],
            quiet=quiet,
            small=small,
            resolution=resolution,
            overwrite=overwrite,
            workers=workers,
        )
    except XldasError as exc:
        _fail(exc)
    typer.echo(result.summary())


def register(app: typer.Typer) -> None:
    """Add ``demo``, ``run`` and ``cycle`` to a typer application."""
    app.command("demo")(demo_command)
    app.command("run")(run_command)
    app.command("cycle")(cycle_command)
