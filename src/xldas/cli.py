"""The ``xldas`` command line.

::

    xldas --version
    xldas catalog list [PATH]          # entries of the shipped catalog, or of PATH
    xldas catalog show ENTRY [--catalog PATH]

Each command is a small function that parses its arguments and calls the library; the
work happens in the library. Later commands (``demo``, ``run``, ``cycle``) are added as
functions on :data:`app` in the section marked at the end of this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

import xldas
from xldas.errors import XldasError

app = typer.Typer(
    name="xldas",
    help="xldas: Dask/Xarray-native remote-sensing land data assimilation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"xldas {xldas.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """xldas: Dask/Xarray-native remote-sensing land data assimilation."""


def fail(err: Exception, code: int = 1) -> typer.Exit:
    """Print an xldas error on stderr and return the ``typer.Exit`` to raise."""
    typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


# ---------------------------------------------------------------------- catalog
catalog_app = typer.Typer(help="Inspect Intake catalogs (default: the catalog shipped with xldas).")
app.add_typer(catalog_app, name="catalog")

CatalogPath = Annotated[
    Path | None,
    typer.Argument(help="Catalog YAML file; default the catalog shipped with xldas."),
]


@catalog_app.command("list")
def catalog_list(path: CatalogPath = None) -> None:
    """List the entries of a catalog: name, reader, location and description."""
    from xldas.io.catalog import catalog_entries

    try:
        cat = xldas.open_catalog(path)
    except XldasError as err:
        raise fail(err) from err
    rows = catalog_entries(cat)
    typer.echo(f"# {cat.user_parameters['CATALOG_PATH']} ({len(rows)} entries)")
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        typer.echo(f"{r['name']:<{width}}  {r['reader']:<20}  {r['description']}")
        if r["location"]:
            typer.echo(f"{'':<{width}}  {'':<20}  {r['location']}")


@catalog_app.command("show")
def catalog_show(
    entry: Annotated[str, typer.Argument(help="Entry name (see `xldas catalog list`).")],
    catalog: Annotated[
        Path | None, typer.Option("--catalog", "-c", help="Catalog YAML file.")
    ] = None,
) -> None:
    """Show one entry: its reader, arguments (templates resolved) and metadata."""
    try:
        cat = xldas.open_catalog(catalog)
        desc = cat.entry(entry)
    except XldasError as err:
        raise fail(err) from err
    kwargs = dict(desc.kwargs)
    args = []
    for arg in kwargs.pop("args", []):
        if isinstance(arg, str) and arg.startswith("{data(") and arg.endswith(")}"):
            data = cat.data[arg[len("{data(") : -2]]
            resolved = data.get_kwargs(user_parameters=dict(cat.user_parameters))
            args.append({"datatype": data.datatype, **resolved})
        else:
            args.append(arg)
    shown = {
        "entry": entry,
        "reader": desc.reader,
        "output": desc.output_instance,
        "data": args or None,
        "kwargs": kwargs,
        "metadata": dict(desc.metadata),
    }
    shown = {k: v for k, v in shown.items() if v not in (None, {}, [])}
    typer.echo(yaml.safe_dump(shown, sort_keys=False, default_flow_style=False).rstrip())


# ---------------------------------------------------------------------------------------
# Commands added by later issues (demo, run, cycle) go below this line, one function each,
# registered with @app.command("name"). Keep the library doing the work.
# ---------------------------------------------------------------------------------------

# cycling engine: `xldas demo`, `xldas run EXPERIMENT.yaml`, `xldas cycle EXPERIMENT.yaml`
from xldas.cycle.commands import register as _register_cycle_commands  # noqa: E402

_register_cycle_commands(app)


if __name__ == "__main__":  # pragma: no cover
    app()
