"""Ingestion, validation and dbt over the full year: the platform's assets next to bare library calls.

    .venv/bin/python benchmarks/foundation.py [--home /tmp/bench]

Platform figures are the Dagster step durations of the assets (what a run spends inside the step);
the bare figures do the same work with polars, pandera and the dbt CLI directly, in this process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import dagster as dg
import pandera.polars as pa
import polars as pl

MONTHS = {"dagster/asset_partition_range_start": "2013-01", "dagster/asset_partition_range_end": "2013-12"}


def step_seconds(result: dg.ExecuteInProcessResult, step: str) -> float:
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_SUCCESS" and e.step_key == step]
    return event.event_specific_data.duration_ms / 1000


def platform_run(home: Path) -> dict[str, float]:
    os.environ["PLATFORM_HOME"] = str(home)

    from platform_assets.defs.ingestion.assets import raw_assets
    from platform_assets.defs.validation.assets import validated_assets
    from platform_assets.defs.warehouse.assets import warehouse_models
    from platform_assets.lib.dbt import dbt_resource
    from platform_assets.lib.resources import shared_resources

    resources = {**shared_resources(), "dbt": dbt_resource()}
    assets = [*raw_assets, *validated_assets, warehouse_models]
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    dims = ["raw_planes", "planes", "raw_airports", "airports", "raw_airlines", "airlines"]
    dg.materialize(assets, selection=dims, resources=resources, run_config=quiet)
    out: dict[str, float] = {}
    started = time.perf_counter()
    ingest = dg.materialize(assets, selection=["raw_flights", "raw_weather"], resources=resources, tags=MONTHS, run_config=quiet)
    out["ingestion run wall"] = time.perf_counter() - started
    out["ingestion"] = step_seconds(ingest, "raw_flights") + step_seconds(ingest, "raw_weather")
    started = time.perf_counter()
    validate = dg.materialize(assets, selection=["flights", "weather"], resources=resources, tags=MONTHS, run_config=quiet)
    out["validation run wall"] = time.perf_counter() - started
    out["validation"] = step_seconds(validate, "flights") + step_seconds(validate, "weather")
    started = time.perf_counter()
    build = dg.materialize(assets, selection=dg.AssetSelection.groups("warehouse"), resources=resources, tags=MONTHS, run_config=quiet)
    out["dbt run wall"] = time.perf_counter() - started
    out["dbt"] = step_seconds(build, "warehouse_models")
    return out


def bare_run(home: Path) -> dict[str, float]:
    """The same work without the platform: polars reads with a schema, pandera validates, dbt builds."""
    from platform_assets.data.contracts import contract_for
    from platform_assets.data.raw_files import packaged_data_dir
    from platform_assets.data.tables import FLIGHTS, WEATHER

    data = packaged_data_dir()
    out: dict[str, float] = {}
    lake = home / "bare"
    started = time.perf_counter()
    frames = {}
    for spec, blob in (
        (FLIGHTS, zipfile.ZipFile(data / "flights.csv.zip").read("flights.csv")),
        (WEATHER, (data / "weather.csv").read_bytes()),
    ):
        schema = {c: (pl.String if isinstance(t, pl.Datetime) else t) for c, t in spec.columns.items()}
        frame = pl.read_csv(blob, schema=schema, null_values="NA").with_columns(
            pl.col("time_hour").str.to_datetime("%Y-%m-%dT%H:%M:%SZ").dt.replace_time_zone("UTC"),
            pl.lit(None, pl.String).alias("_cast_errors"),
        )
        for (month,), part in frame.partition_by("month", as_dict=True).items():
            path = lake / "landing" / spec.name / f"{month:02d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            part.write_parquet(path, compression="zstd")
        frames[spec.name] = frame
    out["ingestion"] = time.perf_counter() - started

    started = time.perf_counter()
    for spec in (FLIGHTS, WEATHER):
        schema = contract_for(spec.name).pandera_schema()
        for path in sorted((lake / "landing" / spec.name).glob("*.parquet")):
            frame = pl.read_parquet(path)
            try:
                schema.validate(frame, lazy=True)
                bad_rows: set[int] = set()
            except pa.errors.SchemaErrors as err:
                bad_rows = set(err.failure_cases["index"].drop_nulls().to_list())
            is_bad = pl.Series([i in bad_rows for i in range(frame.height)]) if bad_rows else pl.repeat(False, frame.height, eager=True)
            (lake / "validated" / spec.name).mkdir(parents=True, exist_ok=True)
            (lake / "quarantine" / spec.name).mkdir(parents=True, exist_ok=True)
            frame.filter(~is_bad).write_parquet(lake / "validated" / spec.name / path.name, compression="zstd")
            frame.filter(is_bad).write_parquet(lake / "quarantine" / spec.name / path.name, compression="zstd")
    out["validation"] = time.perf_counter() - started

    started = time.perf_counter()
    from platform_assets.lib.dbt import DBT_PROJECT_DIR, dbt_executable

    subprocess.run(
        [dbt_executable(), "build", "--quiet", "--profiles-dir", ".", "--target-path", str(home / "bare_target")],
        cwd=DBT_PROJECT_DIR, check=True, env={**os.environ, "PLATFORM_HOME": str(home)},
    )
    out["dbt"] = time.perf_counter() - started
    return out


def rules_only(rows_repeat: int = 5) -> tuple[float, float]:
    """Rows/s of rule evaluation alone on the full year in memory: one-pass split vs pandera."""
    from platform_assets.data.contracts import contract_for
    from platform_assets.data.raw_files import locate, packaged_data_dir, read_raw
    from platform_assets.data.tables import FLIGHTS

    frame = read_raw(locate(packaged_data_dir(), FLIGHTS), FLIGHTS).frame
    contract = contract_for("flights")
    schema = contract.pandera_schema()
    contract.split(frame, "flights")
    started = time.perf_counter()
    for _ in range(rows_repeat):
        contract.split(frame, "flights")
    split_rate = frame.height * rows_repeat / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(rows_repeat):
        schema.validate(frame, lazy=True)
    pandera_rate = frame.height * rows_repeat / (time.perf_counter() - started)
    return split_rate, pandera_rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="platform-bench-"))
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    rows = {"ingestion": 336_776 + 26_115, "validation": 336_776 + 26_115, "dbt": 336_776}
    platform = platform_run(home)
    bare = bare_run(home)
    print(f"full year, PLATFORM_HOME={home}")
    print(f"{'step':<12}{'platform s':>12}{'bare s':>10}{'ratio':>8}{'platform rows/s':>18}{'bare rows/s':>14}")
    for step in ("ingestion", "validation", "dbt"):
        p, b = platform[step], bare[step]
        print(f"{step:<12}{p:>12.2f}{b:>10.2f}{p / b:>8.2f}{rows[step] / p:>18,.0f}{rows[step] / b:>14,.0f}")
    for step in ("ingestion", "validation", "dbt"):
        print(f"{step} run wall time incl. Dagster run start: {platform[step + ' run wall']:.2f}s")
    split_rate, pandera_rate = rules_only()
    print(f"rule evaluation in memory, flights full year: one-pass split {split_rate:,.0f} rows/s; "
          f"pandera validate(lazy=True) {pandera_rate:,.0f} rows/s")


if __name__ == "__main__":
    main()
