"""The resources every definition under defs/ uses, registered once: state root, raw files, dbt,
MLflow and Feast, each configured from this environment's settings."""

import dagster as dg

from platform_assets.lib.resources import shared_resources


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=shared_resources())
