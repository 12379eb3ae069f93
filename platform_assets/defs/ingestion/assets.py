"""Raw files landed as parquet, untouched apart from format, with source file and hash."""

import dagster as dg

from platform_assets.core import landing
from platform_assets.core.partitions import month_keys, monthly_partitions
from platform_assets.core.resources import PlatformPathsResource
from platform_assets.core.tables import TABLES, TableSpec, table_schema
from platform_assets.defs.ingestion.resources import RawSourceResource


def build_raw_asset(spec: TableSpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"raw_{spec.name}",
        group_name="ingestion",
        description=f"{spec.name} file landed as typed parquet with source file, sha256 and ingestion time.",
        partitions_def=monthly_partitions if spec.monthly else None,
        backfill_policy=dg.BackfillPolicy.single_run() if spec.monthly else None,
        kinds={"polars", "parquet"},
    )
    def raw_asset(
        context: dg.AssetExecutionContext, raw_source: RawSourceResource, platform: PlatformPathsResource
    ) -> dg.MaterializeResult:
        paths = platform.paths
        raw = raw_source.read(spec)
        keys = month_keys(context) if spec.monthly else [None]
        landed = {
            key: landing.land(
                paths, spec, raw, landing.partition_rows(raw, spec, key), paths.landing_dir(spec.name, key)
            )
            for key in keys
        }
        unroutable = 0
        if spec.monthly:
            stray = landing.unroutable_rows(raw, monthly_partitions.get_partition_keys())
            unroutable = stray.height
            if unroutable:
                landing.land(paths, spec, raw, stray, paths.landing / spec.name / "_unroutable")
                context.log.warning(f"{unroutable} rows of {raw.path} belong to no month partition")
        for key, result in landed.items():
            state = "already landed" if result.already_landed else "landed"
            context.log.info(f"{spec.name}[{key or '-'}]: {result.rows} rows {state} at {result.path}")
        rows = sum(r.rows for r in landed.values())
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "source_file": str(raw.path),
                "source_sha256": raw.sha256,
                "landing_paths": [str(r.path) for r in landed.values()],
                "already_landed": all(r.already_landed for r in landed.values()),
                "rows_unroutable": unroutable,
                "extra_columns_ignored": list(raw.extra_columns),
                "dagster/column_schema": table_schema(spec),
            }
        )

    return raw_asset


raw_assets = [build_raw_asset(spec) for spec in TABLES.values()]
