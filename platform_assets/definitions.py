"""The code location: every asset group under defs/ (each registers its own resources), and this
environment's executor."""

from pathlib import Path

import dagster as dg

from platform_assets.lib.k8s import platform_executor

defs = dg.Definitions.merge(
    dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
    dg.Definitions(executor=platform_executor()),
)
