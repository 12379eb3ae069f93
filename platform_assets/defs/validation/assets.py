"""Validated tables: rows that pass every rule; the rest go to quarantine with the rules they broke."""


import time

import dagster as dg
from pydantic import Field

from platform_assets import constants
from platform_assets.data import landing
from platform_assets.data.contracts import contract_for
from platform_assets.data.rules import key_conflicts, rule_counts
from platform_assets.data.tables import LINEAGE_COLUMNS, TABLES, TableSpec, table_schema
from platform_assets.defs.validation.checks import quarantine_check_result, quarantine_check_spec
from platform_assets.lib.partitions import month_keys, monthly_partitions
from platform_assets.lib.resources import PlatformPathsResource
from platform_assets.paths import PlatformPaths, write_parquet_atomic


class ValidationConfig(dg.Config):
    max_quarantine_share: float = Field(
        default=constants.MAX_QUARANTINE_SHARE,
        description="Largest share of a partition's rows that may be quarantined before the "
        "blocking check fails and stops downstream assets.",
    )


def validate_partition(paths: PlatformPaths, spec: TableSpec, partition: str | None) -> dict:
    """Validate one landed partition; writes nothing unless the whole partition could be validated."""
    source, frame = landing.read_current(paths, spec.name, partition)
    valid, quarantined = contract_for(spec.name, partition).split(frame, str(source))
    if valid.height + quarantined.height != frame.height:
        raise AssertionError(f"{spec.name}[{partition}]: rows in != valid + quarantined")
    keep = [*spec.columns, *LINEAGE_COLUMNS]
    # quarantine first: a run killed between the two writes leaves the previous validated table,
    # which downstream reads, and the rerun rewrites both from the same landing copy
    write_parquet_atomic(quarantined.drop("_ingested_at"), paths.quarantine_file(spec.name, partition))
    write_parquet_atomic(valid.select(keep), paths.validated_file(spec.name, partition))
    return {
        "rows_in": frame.height,
        "rows_valid": valid.height,
        "rows_quarantined": quarantined.height,
        "rules_broken": dict(rule_counts(quarantined)),
        "key_conflicts": key_conflicts(quarantined, spec),
        "source_sha256": frame["_source_sha256"].unique().to_list(),
    }


def build_validated_asset(spec: TableSpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.name,
        group_name="validation",
        description=f"Validated {spec.name}: rows passing the pandera contract; failures quarantined with reasons.",
        deps=[f"raw_{spec.name}"],
        partitions_def=monthly_partitions if spec.monthly else None,
        backfill_policy=dg.BackfillPolicy.single_run() if spec.monthly else None,
        check_specs=[quarantine_check_spec(spec.name)],
        kinds={"pandera", "polars", "parquet"},
    )
    def validated_asset(
        context: dg.AssetExecutionContext, config: ValidationConfig, platform: PlatformPathsResource
    ) -> dg.MaterializeResult:
        paths = platform.paths
        started = time.perf_counter()
        keys = month_keys(context) if spec.monthly else [None]
        stats = {key or spec.name: validate_partition(paths, spec, key) for key in keys}
        seconds = time.perf_counter() - started
        rows_in = sum(s["rows_in"] for s in stats.values())
        quarantined = sum(s["rows_quarantined"] for s in stats.values())
        for key, s in stats.items():
            context.log.info(f"{spec.name}[{key}]: {s['rows_valid']} valid, {s['rows_quarantined']} quarantined {s['rules_broken']}")
            for conflict in s["key_conflicts"]:
                context.log.warning(f"{spec.name}[{key}]: key conflict {conflict}")
        shares = {k: s["rows_quarantined"] / max(s["rows_in"], 1) for k, s in stats.items()}
        last_key = keys[-1]
        return dg.MaterializeResult(
            metadata={
                "rows_in": rows_in,
                "rows_valid": rows_in - quarantined,
                "rows_quarantined": quarantined,
                "dagster/row_count": rows_in - quarantined,
                "quarantine_share": quarantined / max(rows_in, 1),
                "rules_broken": {k: s["rules_broken"] for k, s in stats.items() if s["rules_broken"]},
                "key_conflicts": {k: s["key_conflicts"] for k, s in stats.items() if s["key_conflicts"]},
                "source_sha256": {k: s["source_sha256"] for k, s in stats.items()},
                "validated_path": dg.MetadataValue.path(str(paths.validated_file(spec.name, last_key))),
                "quarantine_path": dg.MetadataValue.path(str(paths.quarantine_file(spec.name, last_key))),
                "rows_per_second": round(rows_in / seconds) if seconds else 0,
                "dagster/column_schema": table_schema(spec),
            },
            check_results=[quarantine_check_result(shares, config.max_quarantine_share)],
        )

    return validated_asset


validated_assets = [build_validated_asset(spec) for spec in TABLES.values()]
