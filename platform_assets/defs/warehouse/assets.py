"""dbt models on DuckDB: staging views, the fct_flights mart and the feature tables Feast reads."""

import os
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from platform_assets.constants import WAREHOUSE_POOL
from platform_assets.lib.dbt import build_target, dbt_project, keep_partial_parse, translator
from platform_assets.lib.partitions import monthly_partitions
from platform_assets.lib.resources import PlatformPathsResource


@dbt_assets(
    manifest=dbt_project().manifest_path,
    project=dbt_project(),
    dagster_dbt_translator=translator,
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
)
def warehouse_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, platform: PlatformPathsResource
) -> Iterator[Any]:
    """dbt build of the months in this run (DBT_START_MONTH/DBT_END_MONTH); dbt tests become asset checks."""
    paths = platform.paths
    paths.feature_tables.mkdir(parents=True, exist_ok=True)
    window = context.partition_key_range
    # The profile reads where the warehouse and feature tables are from the environment, and the
    # incremental models the months to rebuild: env vars, so dbt's partial parsing survives a new
    # window (--vars would re-parse the whole project on every build, about 2 s).
    paths.export_env()
    os.environ.update({"DBT_START_MONTH": window.start, "DBT_END_MONTH": window.end})
    target = build_target(paths.dbt_target, f"warehouse_models-{context.run_id[:8]}")
    try:
        yield from dbt.cli(["build"], context=context, target_path=target).stream()
    finally:
        keep_partial_parse(target)
