"""The monthly partitions of the asset graph: every month from FIRST_MONTH (platform_assets.months)
up to the last complete month, as a team's would be. Months land as data arrives (landing_sensor);
the replay's are 2013, and a month landed after it (2014-01, …) is a partition like any other."""

from __future__ import annotations

import dagster as dg

from platform_assets.months import FIRST_MONTH

monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=FIRST_MONTH, fmt="%Y-%m")


def month_keys(context: dg.AssetExecutionContext) -> list[str]:
    """Partition keys of this run: one month, or a range under a single-run backfill."""
    return list(context.partition_keys) if context.has_partition_key_range else [context.partition_key]
