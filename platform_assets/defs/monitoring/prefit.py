"""Pre-train the retrain-every-month policy's models while the replay goes on.

`replay_summary` compares the drift-triggered policy with retraining every month, so it needs M(m),
the model trained on the window before m, for every scored month m that no run registered. Each
of them can train as soon as its window is scored and its month's sensor tick has decided. The
replay (`make run`) starts this module once, in a background process, and writes it a month after
each tick; the process trains the models decided through that month on the core the replay's own
runs leave idle:

    echo 2013-08 | python -m platform_assets.defs.monitoring.prefit

The fits land in PLATFORM_HOME/cache/fits under their content's key (core.tabular.parallel), and
`replay_summary` loads them from there instead of training them again: the same frame, recipe,
columns, training code and thread count give the same weights. A fit this process is training
when the summary starts is waited for, not trained twice; anything missing (a prefit that failed,
a summary materialized on its own) `replay_summary` trains itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from platform_assets.core import constants
from platform_assets.core.resources import shared_resources
from platform_assets.core.tabular.parallel import start_fits
from platform_assets.defs.monitoring.replay import monthly_policy
from platform_assets.defs.monitoring.resources import RetrainPolicy
from platform_assets.delay_model.spec import MODEL

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from platform_assets.core.paths import PlatformPaths


def prefit(
    paths: PlatformPaths, client: MlflowClient, policy: RetrainPolicy, first_month: str, through: str
) -> tuple[list[str], list[str]]:
    """Train into the fit cache the monthly-policy models of the months scored through `through`
    that no run registered, one at a time (each claimed only while it trains); returns (trained
    here, already cached or claimed by another process)."""
    plan = monthly_policy(paths, client, policy, first_month, through)
    trained, skipped = [], []
    for name, frame in plan.to_train.items():
        fits = start_fits({name: frame}, plan.params, MODEL.columns, workers=1, cache=paths.fit_cache)
        fits.wait(others=False)
        (trained if fits.names else skipped).append(name)
    return trained, skipped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_assets.defs.monitoring.prefit",
        description="Reads months (YYYY-MM, one per line: the last month whose sensor tick has decided) "
        "from stdin until it closes.",
    )
    parser.add_argument("--first-month", default=constants.REPLAY_FIRST_SCORED_MONTH)
    args = parser.parse_args(argv)
    os.nice(5)  # beside the run worker, below the month being judged
    resources = shared_resources()
    store = resources["mlflow_store"]
    store.activate(MODEL.experiment)
    client, paths, policy = store.client(), resources["platform"].paths, RetrainPolicy.from_settings()
    for line in sys.stdin:
        through = line.strip()
        started = time.perf_counter()
        trained, skipped = prefit(paths, client, policy, args.first_month, through)
        print(
            f"prefit through {through}: trained {trained or 'none'}, cached or claimed {skipped or 'none'} "
            f"({time.perf_counter() - started:.1f}s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
