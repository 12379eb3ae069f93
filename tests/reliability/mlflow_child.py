"""`python -m tests.reliability.mlflow_child HOME POINT`: train, gate and promote the delay model
on the synthetic world in HOME, and SIGKILL this process just before one registry write:
`version_tags` (a version registered, without its lineage tags), `candidate_alias` or
`champion_alias`."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import dagster as dg
from mlflow import MlflowClient

from platform_assets.lib.resources import MLflowResource, PlatformPathsResource
from tests.models.conftest import model_assets, run_config, training_config
from tests.models.feast_store import LocalFeastResource

POINTS = {
    "version_tags": ("set_model_version_tag", 1),
    "candidate_alias": ("set_registered_model_alias", 1),
    "champion_alias": ("set_registered_model_alias", 2),
}


def kill_before(method: str, n: int) -> None:
    real = getattr(MlflowClient, method)
    calls = 0

    def wrapped(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, *args, **kwargs)

    setattr(MlflowClient, method, wrapped)


# The delay model's candidate, gate and promotion (delay/model, delay/evaluation, delay/champion).
ASSETS = model_assets("delay")
TRAIN_GATE_PROMOTE = [ASSETS["model"], ASSETS["evaluation"], ASSETS["refit"], ASSETS["champion"]]
# One small network for a few epochs: this test is about the registry writes, not the model.
TINY = run_config(training_config(ensemble_size=1, max_epochs=2, min_epochs=1, patience=1))


def resources(home: Path) -> dict:
    return {
        "platform": PlatformPathsResource(home=str(home)),
        "mlflow_store": MLflowResource(home=str(home)),
        "feast": LocalFeastResource(feature_dir=str(home / "warehouse" / "features"), repo_dir=str(home / "feast")),
    }


def main() -> None:
    home, point = Path(sys.argv[1]), sys.argv[2]
    kill_before(*POINTS[point])
    result = dg.materialize(
        TRAIN_GATE_PROMOTE, resources=resources(home), run_config=TINY, raise_on_error=False
    )
    print("finished", result.success, flush=True)
    sys.exit(3)  # the kill point was never reached


if __name__ == "__main__":
    main()
