"""The code location: every asset group under defs/, plus this environment's resources and executor."""

import dagster as dg

import platform_assets.defs
from platform_assets.lib.environment import platform_resources, platform_executor

defs = dg.Definitions.merge(
    dg.load_defs(defs_root=platform_assets.defs),
    dg.Definitions(resources=platform_resources(), executor=platform_executor()),
)
