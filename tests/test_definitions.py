from pathlib import Path

import dagster as dg
import pytest

from platform_assets.definitions import defs
from platform_assets.settings import Settings

GROUP_OF = {
    "raw_flights": "ingestion",
    "raw_weather": "ingestion",
    "raw_planes": "ingestion",
    "flights": "validation",
    "weather": "validation",
    "planes": "validation",
    "stg_flights": "warehouse",
    "fct_flights": "warehouse",
    "feat_carrier_daily": "warehouse",
}


@pytest.fixture(scope="module")
def graph():
    return defs.resolve_asset_graph()


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)


@pytest.mark.parametrize("asset, group", sorted(GROUP_OF.items()))
def test_assets_sit_in_their_design_group(graph, asset: str, group: str) -> None:
    assert graph.get(dg.AssetKey(asset)).group_name == group


def test_every_asset_has_a_description(graph) -> None:
    undocumented = [k.to_user_string() for k in graph.get_all_asset_keys() if not graph.get(k).description]
    assert undocumented == []


def test_every_asset_page_links_to_its_code(graph) -> None:
    from platform_assets.settings import REPO_ROOT

    def files(key: dg.AssetKey) -> set[str]:
        references = graph.get(key).metadata["dagster/code_references"].code_references
        return {str(Path(r.file_path).relative_to(REPO_ROOT)) for r in references}

    assert files(dg.AssetKey("raw_flights")) == {"platform_assets/defs/ingestion/assets.py"}
    # A declared model's assets: its defs.yaml, and the function that builds them.
    assert files(dg.AssetKey(["delay", "model"])) == {
        "platform_assets/defs/models/delay/defs.yaml", "platform_assets/lib/models/training.py"
    }
    assert all("dagster/code_references" in graph.get(k).metadata for k in graph.get_all_asset_keys())


def test_raw_to_feature_tables_is_one_connected_lineage(graph) -> None:
    chain = ["raw_flights", "flights", "stg_flights", "fct_flights", "feat_carrier_daily"]
    for parent, child in zip(chain, chain[1:]):
        assert dg.AssetKey(parent) in graph.get(dg.AssetKey(child)).parent_keys, f"{parent} -> {child}"
    for key in graph.get_all_asset_keys():
        for parent in graph.get(key).parent_keys:
            assert graph.get(parent).is_materializable, f"{key.to_user_string()} depends on external {parent}"


def test_dbt_tests_are_asset_checks_on_their_models() -> None:
    checks = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert ("fct_flights", "unique_fct_flights_flight_id") in checks
    assert ("fct_flights", "not_null_fct_flights_flight_id") in checks
    assert ("flights", "quarantine_share_within_limit") in checks


def test_warehouse_writers_share_the_single_slot_pool() -> None:
    [dbt_assets] = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and dg.AssetKey("fct_flights") in a.keys]
    assert {node.pool for node in dbt_assets.node_def.iterate_node_defs()} == {"warehouse"}


def test_platform_env_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_ENV", "staging")
    with pytest.raises(ValueError, match="PLATFORM_ENV must be one of local, k8s"):
        Settings.from_env()
    monkeypatch.setenv("PLATFORM_ENV", "k8s")
    assert Settings.from_env().dbt_target == "k8s"


def test_loading_the_code_location_imports_no_heavy_library(tmp_path) -> None:
    """Every run process and the UI load the definitions: torch, MLflow, Feast, Evidently and
    scikit-learn are imported by the steps that use them, not at load."""
    import subprocess
    import sys

    heavy = ("torch", "mlflow", "feast", "evidently", "sklearn", "pandera", "pandas")
    probe = (
        "import sys, platform_assets.definitions as d; d.defs.resolve_asset_graph(); "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    env = {"PATH": "/usr/bin:/bin", "PLATFORM_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    assert not (tmp_path / "home").exists(), "loading the definitions wrote to PLATFORM_HOME"


# Pipeline assets (ingestion to Feast, serving, the replay summary) and each declared model's seven.
PIPELINE_ASSETS = 29
MODEL_ASSETS = ("training_set", "model", "evaluation", "refit", "champion", "predictions", "drift_report")


def test_the_graph_holds_the_pipeline_and_six_assets_per_declared_model(graph) -> None:
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    modelled = {f"{m}/{a}" for m in ("delay", "cancellation") for a in MODEL_ASSETS}
    assert modelled <= keys
    assert len(keys) == PIPELINE_ASSETS + len(modelled)


@pytest.mark.parametrize("prefix", ["delay", "cancellation"])
def test_each_declared_model_is_its_own_group_with_gate_jobs_sensor_and_schedules(graph, prefix: str) -> None:
    from platform_assets.ml.declaration import declared

    declaration = declared(prefix)
    group = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == prefix}
    assert group == {f"{prefix}/{a}" for a in MODEL_ASSETS}
    # Same tables for every model: its training set reads the dbt events and feature tables.
    parents = {p.to_user_string() for p in graph.get(dg.AssetKey([prefix, "training_set"])).parent_keys}
    assert {"flight_training_events", "feat_origin_weather", "feast_registry"} <= parents
    assert dg.AssetKey([prefix, "champion"]) in graph.get(dg.AssetKey([prefix, "predictions"])).parent_keys
    # The champion promotes after the refit step (which refits through the gate's months, or says why not).
    assert graph.get(dg.AssetKey([prefix, "champion"])).parent_keys == {dg.AssetKey([prefix, "refit"])}
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert (f"{prefix}/evaluation", "promotion_gate") in checks
    assert {f"{prefix}_train_and_promote", f"{prefix}_monthly_scoring", f"{prefix}_hyperparameter_search"} <= {
        j.name for j in defs.jobs
    }
    sensor = defs.resolve_sensor_def(f"{prefix}_drift_retrain_sensor")
    assert [t.job_name for t in sensor.targets] == [f"{prefix}_train_and_promote", f"{prefix}_monthly_scoring"]
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert {f"{prefix}_scheduled_retrain", f"{prefix}_monthly_scoring_schedule"} <= {s.name for s in defs.schedules}
    # The training step's pod: the declaration's GPU count on the GPU pool.
    [model] = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and dg.AssetKey([prefix, "model"]) in a.keys]
    import json

    k8s = json.loads(model.op.tags["dagster-k8s/config"])["container_config"]["resources"]["limits"]
    assert k8s["nvidia.com/gpu"] == str(declaration.k8s.gpu_count)


def test_a_declarations_defaults_are_its_assets_run_config(graph) -> None:
    """The launchpad's defaults are the declaration's: training window, recipe, search budget, gate."""
    import yaml

    from platform_assets.ml.declaration import MODELS_DIR

    attributes = yaml.safe_load((MODELS_DIR / "delay" / "defs.yaml").read_text())["attributes"]
    [model] = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and dg.AssetKey(["delay", "model"]) in a.keys]
    fields = model.op.config_schema.config_type.fields
    assert fields["start_month"].default_value == attributes["training"]["start_month"]
    assert fields["end_month"].default_value == attributes["training"]["end_month"]
    assert fields["search_trials"].default_value == attributes["training"]["search_trials"]
    [evaluation] = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and dg.AssetKey(["delay", "evaluation"]) in a.keys]
    gate = evaluation.op.config_schema.config_type.fields
    assert gate["min_auc_gain"].default_value == attributes["gate"]["min_auc_gain"]
    assert gate["holdout_months"].default_value == attributes["training"]["holdout_months"]


def test_a_bad_declaration_names_its_file_and_field(tmp_path) -> None:
    from platform_assets.ml.declaration import MODELS_DIR, read_declaration

    text = (MODELS_DIR / "delay" / "defs.yaml").read_text().replace("label: is_delayed", "label: arr_time")
    (tmp_path / "defs.yaml").write_text(text)
    with pytest.raises(ValueError, match=r"(?s)defs\.yaml: .*\nlabel\n.*'arr_time' is not an outcome column"):
        read_declaration(tmp_path / "defs.yaml")


def test_the_code_location_loads_without_a_warning(tmp_path) -> None:
    """What `make ui` loads, loaded the way its code server loads it: no warning on the way."""
    import subprocess
    import sys

    from platform_assets.settings import REPO_ROOT

    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {"PATH": "/usr/bin:/bin", "PLATFORM_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    # The code server's own loader (no public API loads a workspace the way it does).
    probe = (
        "import warnings; warnings.simplefilter('always'); "
        "from dagster._core.workspace.context import WorkspaceProcessContext; "
        "from dagster._core.workspace.load_target import WorkspaceFileTarget; "
        "from dagster import DagsterInstance; "
        f"ctx = WorkspaceProcessContext(DagsterInstance.get(), WorkspaceFileTarget(paths=[{str(REPO_ROOT / 'workspace.yaml')!r}])); "
        "[entry] = ctx.create_request_context().get_code_location_entries().values(); "
        "assert entry.load_error is None, entry.load_error; "
        "print('ASSETS', len(entry.code_location.get_repository('__repository__').get_asset_node_snaps())); ctx.__exit__(None, None, None)"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    [count] = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("ASSETS ")]
    assert int(count) == PIPELINE_ASSETS + 2 * len(MODEL_ASSETS)
    warnings = [line for line in (out.stdout + out.stderr).splitlines() if "warn" in line.lower()]
    assert warnings == []


def test_the_definitions_load_in_the_cluster_configuration(tmp_path) -> None:
    """README "Beyond one machine": the same code, configured for shared engines, by settings only."""
    import json
    import subprocess
    import sys

    env = {
        "PATH": "/usr/bin:/bin",
        "PLATFORM_ENV": "k8s",
        "PLATFORM_HOME": str(tmp_path / "volume"),
        "MLFLOW_TRACKING_URI": "http://mlflow.flight-platform.svc.cluster.local:5000",
        "WAREHOUSE_DUCKDB_PATH": "md:flights",
        "FEAST_REDIS_CONNECTION_STRING": "redis-master.feast:6379",
    }
    probe = (
        "import json, platform_assets.definitions as d; defs = d.defs; "
        "r = defs.resources; job = defs.resolve_job_def('delay_train_and_promote'); "
        "print(json.dumps({'executor': job.executor_def.name, "
        "'tracking': r['mlflow_store'].resolved_tracking_uri(), 'feast': r['feast'].fs_yaml, "
        "'dbt_target': __import__('platform_assets.lib.dbt', fromlist=['x']).dbt_project().target}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {
        "executor": "platform_k8s_executor",
        "tracking": "http://mlflow.flight-platform.svc.cluster.local:5000",
        "feast": "feature_store.redis.yaml",
        "dbt_target": "k8s",
    }
    assert not (tmp_path / "volume").exists(), "loading the definitions wrote to PLATFORM_HOME"


def test_dg_lists_and_checks_both_declared_models() -> None:
    """`dg list defs` and `dg check defs`, a newcomer's first tools, on this project."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from platform_assets.settings import REPO_ROOT

    dg_cli = str(Path(sys.executable).parent / "dg")
    listed = subprocess.run([dg_cli, "list", "defs", "--json"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = json.loads(listed.stdout)
    sensors = {s["name"]: s.get("source", "") for s in found["sensors"]}
    for prefix in ("delay", "cancellation"):
        # Each model's definitions point at its declaration, the one file that makes them.
        assert sensors[f"{prefix}_drift_retrain_sensor"].startswith(f"platform_assets/defs/models/{prefix}/defs.yaml")
        assert {f"{prefix}/{a}" for a in MODEL_ASSETS} <= {a["asset_key"] for a in found["assets"]}
    checked = subprocess.run([dg_cli, "check", "defs"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
    assert "All definitions loaded successfully." in checked.stdout + checked.stderr
