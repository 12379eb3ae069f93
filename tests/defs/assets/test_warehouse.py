from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from platform_assets.defs.warehouse.assets import warehouse_models
from platform_assets.core.dbt import dbt_executable, dbt_resource, installed_dbt_version
from platform_assets.core.paths import PlatformPaths

from tests.conftest import SMALL_FLIGHT_ROWS
from .helpers import materialize, resources

UPSTREAM = ["raw_flights", "flights", "raw_weather", "weather"]
REFERENCE = ["raw_planes", "planes", "raw_airports", "airports", "raw_airlines", "airlines"]


def build_month(home: Path, raw_dir: Path, month: str) -> dg.ExecuteInProcessResult:
    materialize(UPSTREAM, home, raw_dir, month)
    dbt = dbt_resource("local")
    return dg.materialize(
        [warehouse_models], partition_key=month, resources={**resources(home, raw_dir), "dbt": dbt}
    )


def fct_flights_months(home: Path) -> dict[str, int]:
    with duckdb.connect(str(PlatformPaths(home).warehouse_db), read_only=True) as con:
        rows = con.sql("select flight_month, count(*) from fct_flights group by 1 order by 1").fetchall()
    return dict(rows)


@pytest.mark.e2e
def test_monthly_dbt_builds_grow_the_mart_and_rebuilding_a_month_is_idempotent(
    platform_home: Path, raw_dir: Path
) -> None:
    materialize(REFERENCE, platform_home, raw_dir)
    first = build_month(platform_home, raw_dir, "2013-01")
    assert first.success
    assert fct_flights_months(platform_home) == {"2013-01": SMALL_FLIGHT_ROWS}

    checks = first.get_asset_check_evaluations()
    assert len(checks) > 40 and all(c.passed for c in checks)

    build_month(platform_home, raw_dir, "2013-02")
    assert fct_flights_months(platform_home) == {"2013-01": SMALL_FLIGHT_ROWS, "2013-02": SMALL_FLIGHT_ROWS}
    features = PlatformPaths(platform_home).feature_tables
    events = pl.read_parquet(features / "flight_training_events.parquet")
    assert events.height == 2 * SMALL_FLIGHT_ROWS
    before = (features / "feat_carrier_daily.parquet").read_bytes()

    build_month(platform_home, raw_dir, "2013-02")
    assert fct_flights_months(platform_home) == {"2013-01": SMALL_FLIGHT_ROWS, "2013-02": SMALL_FLIGHT_ROWS}
    assert (features / "feat_carrier_daily.parquet").read_bytes() == before

    # Each build starts from the previous build's partial parse (kept under PLATFORM_HOME), so
    # only the first build of a home may parse the whole project again.
    logs = sorted(PlatformPaths(platform_home).dbt_target.glob("warehouse_models-*/dbt.log"), key=lambda p: p.stat().st_mtime)
    assert len(logs) == 3
    reparsed = ['"UnableToPartialParse"' in log.read_text() for log in logs]
    assert reparsed[1:] == [False, False]


def test_the_dbt_resource_knows_the_version_dbt_prints_without_asking_dbt(tmp_path: Path) -> None:
    import subprocess

    printed = subprocess.check_output([dbt_executable(), "--version"], text=True)
    resource = dbt_resource("local")
    assert resource.dbt_executable == dbt_executable()
    assert f"installed: {resource._cli_version}" in printed
    # Another executable is asked (once per process): a script that prints a version.
    fake = tmp_path / "dbt"
    fake.write_text("#!/bin/sh\necho 'Core:\n  - installed: 9.8.7'\n")
    fake.chmod(0o755)
    assert str(installed_dbt_version(str(fake))) == "9.8.7"
