"""20 runs started at once in the platform's local Dagster instance: every month of 2013 once, and
eight months a second time concurrently with themselves, all writing the same reference tables.

Each run is its own process (forked after the imports by tests/reliability/concurrent_child.py),
as runs launched by the instance are. None may fail or log a lock error, and no row may be lost or doubled: per
month, landed rows = raw rows = valid + quarantined.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from platform_assets.lib.instance import ensure_dagster_home
from platform_assets.lib.partitions import monthly_partitions
from platform_assets.months import all_months
from platform_assets.paths import PlatformPaths
from tests.conftest import write_csv

ROOT = Path(__file__).resolve().parents[2]
FLIGHTS_PER_MONTH = 1000
LOCK_ERROR = re.compile(r"database is locked|lock(ed)? (error|timeout)|could not (obtain|acquire) lock", re.IGNORECASE)


@pytest.fixture
def raw(tmp_path: Path, real_data_dir: Path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    for name in ("weather.csv", "planes.csv", "airports.csv"):
        shutil.copy(real_data_dir / name, folder / name)
    flights = pl.read_csv(zipfile.ZipFile(real_data_dir / "flights.csv.zip").read("flights.csv"), infer_schema=False)
    write_csv(flights.group_by("month", maintain_order=True).head(FLIGHTS_PER_MONTH).select(flights.columns), folder / "flights.csv")
    return folder


def test_twenty_concurrent_runs_lose_no_rows_and_hit_no_lock(
    tmp_path: Path, raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "platform"
    months = all_months()
    assert len(months) == 12
    assert set(months) <= set(monthly_partitions.get_partition_keys())
    # The instance exists before runs start, as under `make run`/`make ui` or a deployment's
    # webserver and daemon: twenty processes creating its SQLite schema at once race in alembic.
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    ensure_dagster_home(PlatformPaths(home))
    with dg.DagsterInstance.get():
        pass
    launched = months + months[:8]
    child = subprocess.run(
        [sys.executable, "-m", "tests.reliability.concurrent_child", str(home), str(raw), *launched],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )
    assert child.returncode == 0, child.stdout + child.stderr[-3000:]
    assert child.stdout.count(" True\n") == 20
    assert not LOCK_ERROR.search(child.stderr)

    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records()
        assert len(records) == 20
        assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
        for record in records:
            logged = " ".join(e.message or "" for e in instance.all_logs(record.dagster_run.run_id))
            assert not LOCK_ERROR.search(logged)

    paths = PlatformPaths(home)
    weather = pl.read_csv(raw / "weather.csv", infer_schema=False)
    for month in months:
        n = int(month[-2:])
        expected = {"flights": FLIGHTS_PER_MONTH, "weather": weather.filter(pl.col("month") == str(n)).height}
        for table, rows in expected.items():
            landed = list(paths.landing_dir(table, month).glob("*.parquet"))
            assert len(landed) == 1 and pl.read_parquet(landed[0]).height == rows
            valid = pl.read_parquet(paths.validated_file(table, month))
            quarantined = pl.read_parquet(paths.quarantine_file(table, month))
            assert valid.height + quarantined.height == rows, (table, month)
            assert valid["_source_row"].is_unique().all()
    assert pl.read_parquet(paths.validated_file("planes")).height == 3322
    assert pl.read_parquet(paths.validated_file("airports")).height == 1458
    assert not [p for p in home.rglob("*.tmp")]  # no run was killed, so no temp file may remain
