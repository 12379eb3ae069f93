"""The local Dagster instance under PLATFORM_HOME/dagster: the control plane of the Helm deployment
(the daemon dequeues runs from the QueuedRunCoordinator's queue and hands them to a launcher), with
the DefaultRunLauncher (a process per run) where the cluster has the K8sRunLauncher."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from platform_assets.paths import PlatformPaths

# A run the queue or a process still holds: queued, or launched and not ended.
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
]

# - Every pool guards a single-writer store (the DuckDB warehouse, the Feast registry and SQLite
#   online store), so every pool holds one slot.
# - The run queue keeps the months' pipelines in landing order (one `platform/lane: pipeline` run at
#   a time, first queued first launched) and one run per model at a time (`platform/model`: a
#   retrain and the next month's scoring never overlap), three runs in all on a laptop's cores.
# - Dequeue every second, and sensors in threads: a landing, a model's scoring and its drift
#   decision are seconds apart, not a sensor loop each behind the other.
# - Run retries: a run whose process died (a killed `make run`, an evicted pod) is retried once by
#   the daemon; a run that failed on its data (a bad file, a failed check) is not.
LOCAL_DAGSTER_YAML = """\
# Written by platform_assets (lib/instance.py); local instance on SQLite under PLATFORM_HOME.
run_coordinator:
  module: dagster
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
    dequeue_use_threads: true
run_launcher:
  module: dagster
  class: DefaultRunLauncher
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 3
    tag_concurrency_limits:
      - key: platform/lane
        value: pipeline
        limit: 1
      - key: platform/model
        value:
          applyLimitPerUniqueValue: true
        limit: 1
sensors:
  use_threads: true
  num_workers: 4
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
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
