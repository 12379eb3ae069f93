"""The code location: every definition under defs/ (the domains' folders and each model's
defs.yaml), the resources registered once in defs/resources.py, and this environment's executor.
Every asset page links to its code: a declared model's assets to their defs.yaml (Dagster's
components do that) and to the function that builds them, the others to their function."""

import warnings
from pathlib import Path

import dagster as dg

from platform_assets.lib.k8s import platform_executor


def build_defs() -> dg.Definitions:
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    with warnings.catch_warnings():
        # with_source_code_references is marked beta; the code location loads without a warning.
        warnings.simplefilter("ignore", dg.BetaWarning)
        assets = dg.with_source_code_references(list(loaded.assets or []))
    return dg.Definitions(
        assets=assets,
        asset_checks=loaded.asset_checks,
        jobs=loaded.jobs,
        schedules=loaded.schedules,
        sensors=loaded.sensors,
        resources=loaded.resources,
        executor=platform_executor(),
    )


defs = build_defs()
