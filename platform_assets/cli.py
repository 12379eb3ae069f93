"""`python -m platform_assets run`: materialize the asset graph on the local instance, month by month."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import dagster as dg

from platform_assets.lib import settings
from platform_assets.lib.instance import ensure_dagster_home
from platform_assets.lib.partitions import monthly_partitions
from platform_assets.lib.paths import PlatformPaths

# Step logs stay in the run's event log (see them in the UI); the terminal gets one line per step.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _materialize(defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str, partition: str | None) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(
        instance=instance, partition_key=partition, raise_on_error=True, run_config=QUIET
    )


def run(months: Sequence[str]) -> None:
    current = settings.current()
    ensure_dagster_home(PlatformPaths(current.home))
    from platform_assets.definitions import defs  # after DAGSTER_HOME and PLATFORM_HOME are set

    instance = dg.DagsterInstance.get()
    print(f"PLATFORM_HOME={current.home} (env {current.env})", flush=True)
    started = time.perf_counter()
    t0 = time.perf_counter()
    _materialize(defs, instance, "reference_tables", None)
    print(f"reference tables (planes, airports, airlines): {time.perf_counter() - t0:.1f}s", flush=True)
    for month in months:
        t0 = time.perf_counter()
        _materialize(defs, instance, "monthly_pipeline", month)
        print(f"{month}: ingested, validated, warehouse built in {time.perf_counter() - t0:.1f}s", flush=True)
    print(f"done in {time.perf_counter() - started:.1f}s; `make ui` to browse the runs", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform_assets")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="materialize every asset for every month")
    run_parser.add_argument(
        "--months", nargs="*", default=monthly_partitions.get_partition_keys(), help="YYYY-MM keys"
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.months)
    return 0
