"""Resources of the features group: the Feast store and the state root."""

import dagster as dg

from platform_assets.lib.resources import group_resources


@dg.definitions
def resources() -> dg.Definitions:
    return group_resources("platform", "feast")
