"""The monthly partitions of the asset graph (the months of platform_assets.months)."""

from __future__ import annotations

import dagster as dg

from platform_assets.months import END_MONTH, FIRST_MONTH

monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=FIRST_MONTH, end_date=END_MONTH, fmt="%Y-%m"
)


def month_keys(context: dg.AssetExecutionContext) -> list[str]:
    """Partition keys of this run: one month, or a range under a single-run backfill."""
    return list(context.partition_keys) if context.has_partition_key_range else [context.partition_key]
