"""Resources of the cancellation group: the shared ones, nothing of its own."""

import dagster as dg

from platform_assets.lib.resources import group_resources


@dg.definitions
def resources() -> dg.Definitions:
    return group_resources("platform", "mlflow_store", "feast")
