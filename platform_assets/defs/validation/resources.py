"""Resources of the validation group."""

import dagster as dg

from platform_assets.lib.resources import group_resources


@dg.definitions
def resources() -> dg.Definitions:
    return group_resources("platform")
