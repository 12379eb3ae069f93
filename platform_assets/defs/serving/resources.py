"""Resources of the serving group: the state root (request log, reports), MLflow, Feast."""

import dagster as dg

from platform_assets.lib.resources import group_resources


@dg.definitions
def resources() -> dg.Definitions:
    return group_resources("platform", "mlflow_store", "feast")
