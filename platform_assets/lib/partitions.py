"""The months of the reference year, shared by every monthly asset."""

import dagster as dg

monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date="2013-01", end_date="2014-01", fmt="%Y-%m"
)


def month_keys(context: dg.AssetExecutionContext) -> list[str]:
    """Partition keys of this run: one month, or a range under a single-run backfill."""
    return list(context.partition_keys) if context.has_partition_key_range else [context.partition_key]
