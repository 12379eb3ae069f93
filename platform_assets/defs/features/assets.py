"""Feast over the dbt feature tables: registry, online store per month, point-in-time training sets."""

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import polars as pl
from feast import FeatureStore, FeatureView
from pydantic import Field

from platform_assets.defs.features.repo import apply_repo
from platform_assets.defs.features.resources import (
    FeastResource,
    historical_features,
    service_features,
)
from platform_assets.defs.features.tables import (
    TableContract,
    check_table,
    entities_in_window,
    view_contract,
)
from platform_assets.lib import constants
from platform_assets.lib.model_features import FLIGHT_COLUMNS, LABEL
from platform_assets.lib.partitions import month_keys, monthly_partitions
from platform_assets.lib.paths import write_parquet_atomic
from platform_assets.lib.resources import PlatformPathsResource

FEATURE_MODELS = ("feat_origin_weather", "feat_carrier_daily", "feat_route_daily", "feat_plane")
EVENTS_MODEL = "flight_training_events"

# Columns of a training set before the features; is_delayed (the label) comes last.
ENTITY_COLUMNS = FLIGHT_COLUMNS
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _same_home(feast: FeastResource, platform: PlatformPathsResource) -> None:
    feast_home, platform_home = feast.home().resolve(), platform.paths.home.resolve()
    if feast_home != platform_home:
        raise ValueError(
            f"Feast reads PLATFORM_HOME={feast_home} but the platform resource points at "
            f"{platform_home}; set PLATFORM_HOME to one folder for both."
        )


def _service_views(store: FeatureStore) -> list[FeatureView]:
    service = store.get_feature_service(constants.FEATURE_SERVICE)
    return [store.get_feature_view(p.name) for p in service.feature_view_projections]


def _month_start(month: str) -> datetime:
    return datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)


def _next_month_start(month: str) -> datetime:
    start = _month_start(month)
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


@dg.asset(
    group_name="features",
    deps=[dg.AssetKey(model) for model in FEATURE_MODELS],
    pool=constants.FEAST_POOL,
    kinds={"feast"},
)
def feast_registry(
    context: dg.AssetExecutionContext, feast: FeastResource, platform: PlatformPathsResource
) -> dg.MaterializeResult:
    """Feast definitions of feature_repo/ applied to the registry; unchanged definitions write nothing."""
    _same_home(feast, platform)
    store = feast.store()
    outcome = apply_repo(store, Path(feast.repo_path))
    for change in outcome.changes:
        context.log.info(change)
    registry_file = Path(store.config.registry.path)
    views = sorted(v.name for v in outcome.contents.feature_views)
    return dg.MaterializeResult(
        metadata={
            "changed": outcome.changed,
            "changes": outcome.changes or ["no change: the registry already holds these definitions"],
            "feature_views": views,
            "entities": sorted(e.name for e in outcome.contents.entities if e.name != "__dummy"),
            "feature_services": sorted(s.name for s in outcome.contents.feature_services),
            "registry_path": dg.MetadataValue.path(str(registry_file)),
            "registry_last_updated": store.registry.proto().last_updated.ToJsonString(),
        }
    )


@dg.asset(
    group_name="features",
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[feast_registry, *(dg.AssetKey(model) for model in FEATURE_MODELS)],
    pool=constants.FEAST_POOL,
    kinds={"feast", "sqlite"},
)
def online_features(
    context: dg.AssetExecutionContext, feast: FeastResource, platform: PlatformPathsResource
) -> dg.MaterializeResult:
    """The month's latest feature values per entity, materialized into the Feast online store."""
    _same_home(feast, platform)
    keys = month_keys(context)
    start, end = _month_start(keys[0]), _next_month_start(keys[-1])
    store = feast.store()
    store.refresh_registry()
    views = _service_views(store)
    contracts = {view.name: view_contract(view) for view in views}
    # Every table is checked before the first write, so a bad one leaves the online store untouched.
    for contract in contracts.values():
        check_table(contract)
    # Online rows are overwritten without regard to age: re-running an old month after a newer
    # one would serve older values, so views already materialized past this window are left alone.
    due = [v for v in views if v.most_recent_end_time is None or v.most_recent_end_time <= end]
    skipped = sorted(v.name for v in views if v not in due)
    rows = {v.name: entities_in_window(contracts[v.name], start, end) for v in due}
    started = time.perf_counter()
    if due:
        store.materialize(start_date=start, end_date=end, feature_views=[v.name for v in due])
    seconds = time.perf_counter() - started
    total = sum(rows.values())
    context.log.info(f"{total} entity rows written for {start:%Y-%m-%d}..{end:%Y-%m-%d} in {seconds:.1f}s")
    return dg.MaterializeResult(
        metadata={
            "rows_written": total,
            "dagster/row_count": total,
            "rows_written_by_view": rows,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "seconds": round(seconds, 3),
            "rows_per_second": round(total / seconds) if seconds else 0,
            "views_skipped_newer_online": skipped,
            "online_store": store.config.online_store.type,
        }
    )


class TrainingSetConfig(dg.Config):
    start_month: str = Field(
        default=constants.TRAINING_SET_START_MONTH,
        description="First month (YYYY-MM) whose labelled flights enter the training set.",
    )
    end_month: str = Field(
        default=constants.TRAINING_SET_END_MONTH,
        description="Last month (YYYY-MM, inclusive) whose labelled flights enter the training set.",
    )


def labelled_flights(events_file: Path, start_month: str, end_month: str) -> pd.DataFrame:
    """Flights of the window with a known outcome, as the entity frame of a point-in-time join."""
    frame = (
        pl.scan_parquet(events_file)
        .filter(pl.col("flight_month").is_between(pl.lit(start_month), pl.lit(end_month)), pl.col(LABEL).is_not_null())
        .select(*ENTITY_COLUMNS, LABEL)
        .sort("event_timestamp", "flight_id")
        .collect()
    )
    return frame.to_pandas(use_pyarrow_extension_array=False)


@dg.asset(
    group_name="features",
    deps=[feast_registry, dg.AssetKey(EVENTS_MODEL), *(dg.AssetKey(model) for model in FEATURE_MODELS)],
    kinds={"feast", "parquet"},
)
def training_set(
    context: dg.AssetExecutionContext,
    config: TrainingSetConfig,
    feast: FeastResource,
    platform: PlatformPathsResource,
) -> dg.MaterializeResult:
    """Point-in-time correct features of the model's feature service for the window's labelled flights."""
    for month in (config.start_month, config.end_month):
        if not _MONTH.match(month):
            raise ValueError(f"training_set: month {month!r} is not YYYY-MM")
    if config.start_month > config.end_month:
        raise ValueError(f"training_set: start_month {config.start_month} is after end_month {config.end_month}")
    _same_home(feast, platform)
    paths = platform.paths
    store = feast.store()
    store.refresh_registry()
    events_file = paths.feature_tables / f"{EVENTS_MODEL}.parquet"
    check_table(TableContract(events_file, keys=("flight_id", "event_timestamp"), columns=(*ENTITY_COLUMNS, LABEL)))
    for view in _service_views(store):
        check_table(view_contract(view))
    entity_df = labelled_flights(events_file, config.start_month, config.end_month)
    if entity_df.empty:
        raise ValueError(
            f"training_set: no labelled flights in {config.start_month}..{config.end_month} in {events_file}"
        )
    features = service_features(store)
    joined = historical_features(store, entity_df)
    frame = joined[[*ENTITY_COLUMNS, *features, LABEL]].astype({LABEL: "int8"})
    target = paths.training_set_file(config.start_month, config.end_month)
    write_parquet_atomic(pl.from_pandas(frame), target)
    label_rate = float(frame[LABEL].mean())
    context.log.info(f"{len(frame)} flights, label rate {label_rate:.3f}, written to {target}")
    return dg.MaterializeResult(
        metadata={
            "rows": len(frame),
            "dagster/row_count": len(frame),
            "label_rate": label_rate,
            "window": f"{config.start_month}..{config.end_month}",
            "feature_service": constants.FEATURE_SERVICE,
            "features": features,
            "feature_null_share": {f: round(float(frame[f].isna().mean()), 4) for f in features},
            "path": dg.MetadataValue.path(str(target)),
        }
    )
