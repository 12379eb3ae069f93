"""The local Dagster instance under PLATFORM_HOME/dagster."""

from __future__ import annotations

import os
from pathlib import Path

from platform_assets.paths import PlatformPaths

# Every pool this platform uses guards a single-writer store (the DuckDB warehouse, the Feast
# registry and SQLite online store), so every pool holds one slot.
LOCAL_DAGSTER_YAML = """\
# Written by platform_assets (core/instance.py); local instance on SQLite under PLATFORM_HOME.
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 4
run_monitoring:
  enabled: true
telemetry:
  enabled: false
# No newsletter sign-up dialog over the UI on first visit.
nux:
  enabled: false
"""


def ensure_dagster_home(paths: PlatformPaths) -> Path:
    home = paths.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() != LOCAL_DAGSTER_YAML:
        config.write_text(LOCAL_DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
