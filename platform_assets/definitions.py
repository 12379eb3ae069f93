"""The code location: every asset group under defs/, plus this environment's resources and executor."""

from pathlib import Path

import dagster as dg

from platform_assets.lib.environment import platform_executor, platform_resources

defs = dg.Definitions.merge(
    dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
    dg.Definitions(resources=platform_resources(), executor=platform_executor()),
)
