"""Resources of the warehouse group: the dbt CLI on this environment's profile target."""

import dagster as dg

from platform_assets.lib.dbt import dbt_resource
from platform_assets.lib.resources import group_resources


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions.merge(group_resources("platform"), dg.Definitions(resources={"dbt": dbt_resource()}))
