"""Resources of the warehouse group: the dbt CLI on this environment's profile target."""

import dagster as dg
from dagster_dbt import DbtCliResource

from platform_assets.core.dbt import dbt_executable, dbt_project
from platform_assets.core.resources import group_resources
from platform_assets.core.settings import settings


@dg.definitions
def resources() -> dg.Definitions:
    dbt = DbtCliResource(
        project_dir=dbt_project(), target=settings().dbt_target, dbt_executable=dbt_executable()
    )
    return dg.Definitions.merge(group_resources("platform"), dg.Definitions(resources={"dbt": dbt}))
