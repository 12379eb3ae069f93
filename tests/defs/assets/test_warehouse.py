import json
import os
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from platform_assets.defs.warehouse.assets import warehouse_models
from platform_assets.lib.dbt import dbt_executable, dbt_project, dbt_resource, installed_dbt_version
from platform_assets.paths import PlatformPaths
from platform_assets.settings import DBT_PROJECT_DIR
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
    # Every dbt test of the project ran once, as an asset check on its model, and passed.
    manifest = json.loads(dbt_project().manifest_path.read_text())
    dbt_tests = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "test"}
    assert sorted(c.check_name for c in checks) == sorted(dbt_tests)
    assert all(c.passed for c in checks)

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

    # The brute-force leak test recomputes the rows a build can change: its months' and the 28
    # days after them. A corrupted count on 2013-01-10 fails a January build (and a full one),
    # not a February one, which January's build already covered.
    table = features / "feat_carrier_daily.parquet"
    day = "2013-01-10"
    duckdb.sql(
        f"copy (select * replace (case when cast(event_timestamp as date) = '{day}' then carrier_flights_7d + 1 "
        f"else carrier_flights_7d end as carrier_flights_7d) from read_parquet('{table}')) to '{table}.bad' (format parquet)"
    )
    (features / "feat_carrier_daily.parquet.bad").replace(table)
    assert leak_test_fails(platform_home, ("2013-01", "2013-01"))
    assert leak_test_fails(platform_home, None)
    assert not leak_test_fails(platform_home, ("2013-02", "2013-02"))
    assert not leak_test_fails(platform_home, ("2012-11", "2012-11"))  # its 28 days end before the 10th
    assert leak_test_fails(platform_home, ("2012-12", "2012-12"))  # ... and December's reach it


def leak_test_fails(home: Path, window: tuple[str, str] | None) -> bool:
    env = {k: v for k, v in os.environ.items() if k not in ("DBT_START_MONTH", "DBT_END_MONTH")}
    env["PLATFORM_HOME"] = str(home)
    if window is not None:
        env["DBT_START_MONTH"], env["DBT_END_MONTH"] = window
    done = subprocess.run(
        [dbt_executable(), "test", "--select", "assert_carrier_daily_uses_only_known_outcomes", "--profiles-dir", ".",
         "--target-path", str(home / "leak_test_target")],
        cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True, check=False,
    )
    assert "Database Error" not in done.stdout, done.stdout[-2000:]
    return done.returncode != 0


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
