"""The dbt project as Dagster sees it: one cached DbtProject and the translator joining the graphs."""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

from platform_assets.core.settings import DBT_PROJECT_DIR, settings


@functools.cache
def dbt_project() -> DbtProject:
    """The dbt project for this process's settings (profile target local or k8s)."""
    return DbtProject(
        project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=settings().dbt_target
    )


def dbt_executable() -> str:
    """The dbt installed beside this interpreter, so `.venv/bin/python` works without an activated venv."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


class PlatformDbtTranslator(DagsterDbtTranslator):
    """dbt sources are the validated assets (same keys), so raw -> validated -> dbt is one graph."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        return dg.AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "validation" if dbt_resource_props["resource_type"] == "source" else "warehouse"


translator = PlatformDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
