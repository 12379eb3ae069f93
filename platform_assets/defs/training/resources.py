"""Resources of the training group: MLflow (tracking and registry), Feast, the state root."""

import dagster as dg

from platform_assets.lib.resources import group_resources


@dg.definitions
def resources() -> dg.Definitions:
    return group_resources("platform", "mlflow_store", "feast")
