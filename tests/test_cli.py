"""The `xldas` command line: --version, catalog list, catalog show."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

import xldas
from xldas.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"xldas {xldas.__version__}"


def test_catalog_list_default_and_path(tmp_path):
    result = runner.invoke(app, ["catalog", "list"])
    assert result.exit_code == 0, result.output
    for name in (
        "sentinel1_rtc_pc",
        "sentinel2_l2a_pc",
        "landsat_c2_l2_pc",
        "cop_dem_glo30_pc",
        "era5_arco",
    ):
        assert name in result.stdout
    assert "xldas.yaml" in result.stdout.splitlines()[0]

    path = tmp_path / "mine.yaml"
    path.write_text(
        "version: 2\n"
        "data: {sm_data: {datatype: intake.readers.datatypes:Zarr, kwargs: {url: '{CATALOG_DIR}/sm.zarr'}}}\n"
        "entries:\n"
        "  soil_moisture:\n"
        "    reader: intake.readers.readers:XArrayDatasetReader\n"
        "    kwargs: {args: ['{data(sm_data)}']}\n"
        "    metadata: {description: my analysis}\n"
    )
    result = runner.invoke(app, ["catalog", "list", str(path)])
    assert result.exit_code == 0, result.output
    assert "soil_moisture" in result.stdout and "my analysis" in result.stdout
    assert "(1 entries)" in result.stdout


def test_catalog_show_resolves_data_and_reports_missing_entries():
    result = runner.invoke(app, ["catalog", "show", "era5_arco"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["reader"] == "intake.readers.readers:XArrayDatasetReader"
    assert shown["data"][0]["url"].startswith("gs://gcp-public-data-arco-era5/")
    assert shown["metadata"]["network"] is True

    result = runner.invoke(app, ["catalog", "show", "sentinel2_l2a_pc"])
    assert yaml.safe_load(result.stdout)["kwargs"]["collections"] == ["sentinel-2-l2a"]

    result = runner.invoke(app, ["catalog", "show", "era6"])
    assert result.exit_code == 1
    assert "no entry 'era6'" in result.stderr and "'era5_arco'" in result.stderr


def test_missing_catalog_file_exits_nonzero(tmp_path):
    result = runner.invoke(app, ["catalog", "list", str(tmp_path / "none.yaml")])
    assert result.exit_code == 1
    assert "does not exist" in result.stderr


def test_console_script_runs_from_another_directory(tmp_path):
    exe = shutil.which("xldas", path=str(Path(sys.executable).parent)) or shutil.which("xldas")
    assert exe is not None, "the `xldas` console script is not installed"
    env = {**os.environ, "XLDAS_DATA_DIR": str(tmp_path / "cache")}
    out = subprocess.run([exe, "catalog", "list"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    assert "era5_land_edh" in out.stdout
