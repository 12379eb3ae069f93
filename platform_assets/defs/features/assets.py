"""Feast over the dbt feature tables: registry, online store per month, point-in-time training sets."""

import time
from pathlib import Path

import dagster as dg

from platform_assets import constants
from platform_assets.events import FEATURE_TABLES
from platform_assets.lib.partitions import month_keys, monthly_partitions
from platform_assets.lib.resources import FeastResource, PlatformPathsResource, check_same_home
from platform_assets.months import MonthWindow


@dg.asset(
    group_name="features",
    deps=[dg.AssetKey(table) for table in FEATURE_TABLES],
    pool=constants.FEAST_POOL,
    kinds={"feast"},
)
def feast_registry(
    context: dg.AssetExecutionContext, feast: FeastResource, platform: PlatformPathsResource
) -> dg.MaterializeResult:
    """Feast definitions of feature_repo/ applied to the registry; unchanged definitions write nothing."""
    from platform_assets.featurestore.repo import apply_repo

    check_same_home(feast, platform)
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
    deps=[feast_registry, *(dg.AssetKey(table) for table in FEATURE_TABLES)],
    pool=constants.FEAST_POOL,
    kinds={"feast", "sqlite"},
)
def online_features(
    context: dg.AssetExecutionContext, feast: FeastResource, platform: PlatformPathsResource
) -> dg.MaterializeResult:
    """The month's latest feature values per entity, materialized into the Feast online store."""
    from platform_assets.featurestore.table_contracts import (
        check_table,
        entities_in_window,
        view_contract,
    )

    check_same_home(feast, platform)
    keys = month_keys(context)
    window = MonthWindow(keys[0], keys[-1])
    start, end = window.start_time, window.end_time
    store = feast.store()
    store.refresh_registry()
    # Every online view, whichever model's feature service reads it.
    views = [view for view in store.list_feature_views() if view.online]
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

