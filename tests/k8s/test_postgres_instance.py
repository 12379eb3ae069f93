"""The production instance's storage for real: deploy/dagster.yaml's Postgres section on a live server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
# The check-execution status enum has no public export.
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from .postgres_server import postgres_server, server_binaries

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

# One process per run, launched together: reference tables, and one month of flights and weather.
RUNS = {
    "planes": (["raw_planes", "planes"], None),
    "airports": (["raw_airports", "airports"], None),
    "airlines": (["raw_airlines", "airlines"], None),
    "flights": (["raw_flights", "flights"], "2013-01"),
    "weather": (["raw_weather", "weather"], "2013-01"),
}

RUN_SCRIPT = textwrap.dedent(
    """
    import sys
    import dagster as dg
    from platform_assets.defs.ingestion.assets import raw_assets
    from platform_assets.defs.validation.assets import validated_assets
    from platform_assets.lib.resources import PlatformPathsResource, RawSourceResource

    selection, partition, home, raw_dir = sys.argv[1].split(","), sys.argv[2] or None, sys.argv[3], sys.argv[4]
    result = dg.materialize(
        [*raw_assets, *validated_assets], selection=selection, partition_key=partition,
        instance=dg.DagsterInstance.get(),
        resources={"platform": PlatformPathsResource(home=home), "raw_source": RawSourceResource(data_dir=raw_dir)},
    )
    print(result.run_id)
    """
)


@pytest.fixture
def postgres_env() -> Iterator[dict[str, str]]:
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.fail(
            "no PostgreSQL server binaries: install the dev extra (pgserver ships them) or "
            "apt-get install postgresql"
        )
    with postgres_server(bin_dir) as env:
        yield env


def write_instance(dagster_home: Path) -> None:
    """deploy/dagster.yaml with the parts that need a cluster (run launcher) left out."""
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    local = {key: config[key] for key in ("storage", "concurrency", "run_retries", "telemetry")}
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(local))


def test_concurrent_runs_on_the_postgres_instance(
    postgres_env: dict[str, str], platform_home: Path, raw_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dagster_home = platform_home / "dagster"
    write_instance(dagster_home)
    env = {**os.environ, **postgres_env, "DAGSTER_HOME": str(dagster_home), "PLATFORM_HOME": str(platform_home)}
    for key, value in postgres_env.items():
        monkeypatch.setenv(key, value)
    # As in a deployment, the schema exists before runs arrive (the webserver and daemon create it
    # when they start): five processes racing to create it on an empty database collide in
    # PostgreSQL's catalog ("duplicate key ... pg_type_typname_nsp_index").
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.get_runs() == []

    processes = {
        name: subprocess.Popen(
            [sys.executable, "-c", RUN_SCRIPT, ",".join(sel), part or "", str(platform_home), str(raw_dir)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, (sel, part) in RUNS.items()
    }
    outputs = {name: p.communicate(timeout=300) for name, p in processes.items()}
    for name, p in processes.items():
        assert p.returncode == 0, f"{name} run failed:\n{outputs[name][1][-3000:]}"
        assert "could not obtain lock" not in outputs[name][1].lower()

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        runs = instance.get_runs()
        assert len(runs) == len(RUNS)
        assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
        flights = instance.get_latest_materialization_event(dg.AssetKey("flights"))
        assert flights.asset_materialization.partition == "2013-01"
        for name in RUNS:
            assert instance.get_latest_materialization_event(dg.AssetKey(name)) is not None
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("weather"), "quarantine_share_within_limit"), limit=5
        )
        assert checks[0].status == AssetCheckExecutionRecordStatus.SUCCEEDED
