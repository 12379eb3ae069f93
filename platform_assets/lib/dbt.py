"""The dbt project as Dagster sees it: the cached DbtProject, the translator joining the graphs, the
CLI resource the builds run through, and the target folders that keep dbt's partial parse."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
)
from packaging import version

from platform_assets.settings import DBT_PROJECT_DIR, settings


@functools.cache
def dbt_project() -> DbtProject:
    """The dbt project for this process's settings (profile target local or k8s)."""
    return DbtProject(
        project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=settings().dbt_target
    )


PARTIAL_PARSE = "partial_parse.msgpack"


def build_target(root: Path, step: str) -> Path:
    """A new target folder for one dbt build, seeded with the last build's partial parse.

    dagster-dbt gives each invocation its own target path and seeds it from the project's
    `target/partial_parse.msgpack` (written by `dbt parse` for the manifest). That file's profile is
    the one the manifest was parsed with; a build under another PLATFORM_HOME or FEATURES_ROOT
    renders a different profile, so dbt discarded it and parsed the whole project again on every
    build (about 2 s). Seeding from the previous build of this home keeps a profile that matches.
    """
    target = root / f"{step}-{uuid.uuid4().hex[:8]}"
    target.mkdir(parents=True)
    kept = root / PARTIAL_PARSE
    if kept.exists():
        shutil.copyfile(kept, target / PARTIAL_PARSE)
    return target


def keep_partial_parse(target: Path) -> None:
    """After a build: its partial parse becomes the one the next build starts from (atomically)."""
    fresh = target / PARTIAL_PARSE
    if fresh.exists():
        staged = target.parent / f".{PARTIAL_PARSE}.{uuid.uuid4().hex}.tmp"
        shutil.copyfile(fresh, staged)
        os.replace(staged, target.parent / PARTIAL_PARSE)


def _dbt_beside_interpreter() -> Path:
    return Path(sys.executable).parent / "dbt"


def dbt_executable() -> str:
    """The dbt installed beside this interpreter, so `.venv/bin/python` works without an activated venv."""
    beside = _dbt_beside_interpreter()
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


@functools.cache
def installed_dbt_version(executable: str) -> version.Version:
    """The dbt version of an executable: dbt-core's package version when it is the dbt installed
    beside this interpreter, otherwise what `dbt --version` prints (asked once per process)."""
    if Path(executable) == _dbt_beside_interpreter():
        return version.parse(importlib.metadata.version("dbt-core"))
    printed = subprocess.check_output([executable, "--version"], text=True)
    match = re.search(r"(\d+\.\d+\.\d+)", printed)
    if match is None:
        raise ValueError(f"could not read a version from `{executable} --version`: {printed.strip()}")
    return version.parse(match.group(1))


class PlatformDbtCliResource(DbtCliResource):
    """dagster-dbt's DbtCliResource without two costs of its own in every run's build.

    - The version check: dagster-dbt asks the executable for its version (to tell dbt Core from the
      Fusion engine) once per resource instance, and a resource is built anew for every run, so
      each build paid a whole extra dbt start (about 2 s). Here the version comes from
      `installed_dbt_version`, cached per process and free for the dbt beside this interpreter.
    - The in-process adapter: dagster-dbt loads the profile, project and macros into a dbt adapter
      in the run's own process (about 1 s) before it starts `dbt build`. It serves only
      `.fetch_row_counts()` and `.fetch_column_metadata()`, which the platform does not call: a
      build streams the same materializations and checks without it (tested). A subclass that
      wants those fetches sets `in_process_adapter = True`.
    """

    in_process_adapter: bool = False

    @functools.cached_property
    def _cli_version(self) -> version.Version:
        return installed_dbt_version(self.dbt_executable)

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        return super()._initialize_dbt_core_adapter(args) if self.in_process_adapter else None


def dbt_resource(target: str | None = None) -> PlatformDbtCliResource:
    """The dbt CLI resource on this project, for a profile target (default: this environment's)."""
    return PlatformDbtCliResource(
        project_dir=dbt_project(), target=target or settings().dbt_target, dbt_executable=dbt_executable()
    )


class PlatformDbtTranslator(DagsterDbtTranslator):
    """dbt sources are the validated assets (same keys), so raw -> validated -> dbt is one graph."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        return dg.AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "validation" if dbt_resource_props["resource_type"] == "source" else "warehouse"


translator = PlatformDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
