"""SIGKILL training + gate + promotion just before each registry write, then rerun.

Readers find models through aliases (`candidate`, `champion`), which move last; so a killed run
leaves at most a READY version with no alias, never an alias on a version without its lineage
tags or files, and the rerun promotes a complete, loadable version.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import mlflow
import pytest

from platform_assets.lib.models.training import LINEAGE_TAGS
from platform_assets.ml.declaration import declared
from platform_assets.ml.registry import CANDIDATE, CHAMPION
from tests.models.conftest import synthetic_world  # noqa: F401 - the shared synthetic world
from tests.reliability.mlflow_child import TINY, TRAIN_GATE_PROMOTE, resources

ROOT = Path(__file__).resolve().parents[2]
MODEL = declared("delay").spec


def aliased(client: mlflow.MlflowClient) -> dict[str, str]:
    found = {}
    for alias in (CANDIDATE, CHAMPION):
        try:
            found[alias] = str(client.get_model_version_by_alias(MODEL.name, alias).version)
        except mlflow.exceptions.MlflowException:
            pass
    return found


def assert_complete(client: mlflow.MlflowClient, version: str) -> None:
    found = client.get_model_version(MODEL.name, version)
    assert found.status == "READY"
    assert {"raw_files", "training_start_month", "training_end_month", "mlflow_run_id"} <= set(found.tags)
    mlflow.pyfunc.load_model(f"models:/{MODEL.name}/{version}")


@pytest.mark.e2e
# a version without its tags, and a candidate not yet champion (the alias move in between is the
# same kind of write and costs another 35 s of training)
@pytest.mark.parametrize("point", ["version_tags", "champion_alias"])
def test_sigkill_before_a_registry_write_then_rerun_promotes_a_complete_version(
    point: str, tmp_path: Path, synthetic_world: Path  # noqa: F811
) -> None:
    home = tmp_path / "platform"
    shutil.copytree(synthetic_world, home)
    child = subprocess.run(
        [sys.executable, "-m", "tests.reliability.mlflow_child", str(home), point],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stdout[-2000:] + child.stderr[-2000:]
    res = resources(home)
    client = res["mlflow_store"].client()
    mlflow.set_tracking_uri(res["mlflow_store"].resolved_tracking_uri())
    for alias, version in aliased(client).items():  # whatever a reader can find is whole
        assert_complete(client, version), alias
    killed = {str(v.version): v for v in client.search_model_versions(f"name='{MODEL.name}'")}
    # A version whose lineage tags were all written is complete: same training set, same recipe.
    complete = [v for v, found in killed.items() if LINEAGE_TAGS <= set(found.tags)]

    rerun = dg.materialize(TRAIN_GATE_PROMOTE, resources=res, run_config=TINY)
    assert rerun.success
    now = aliased(client)
    assert now[CHAMPION] == now[CANDIDATE]
    if complete:  # killed before the alias moved: the rerun promotes that version, trains nothing new
        assert now[CHAMPION] in complete
        assert {str(v.version) for v in client.search_model_versions(f"name='{MODEL.name}'")} == set(killed)
    else:  # killed before the tags: the tagless version is never used, a new one is trained
        assert now[CHAMPION] not in killed
    assert_complete(client, now[CHAMPION])
    for version in client.search_model_versions(f"name='{MODEL.name}'"):
        assert version.status == "READY"
