"""Pre-train the retrain-every-month policy's models while the replay goes on.

`replay_summary` compares the drift-triggered policy with retraining every month, so it needs M(m),
the model trained on the window before m, for every scored month m that no run registered. Each
of them can train as soon as its window is scored and its month's sensor tick has decided; the
replay (`make run`) starts this module in a background process after each tick, at low priority,
on the core its own runs leave idle:

    python -m platform_assets.defs.monitoring.prefit --through 2013-08

The fits land in PLATFORM_HOME/cache/fits under their content's key (core.tabular.parallel), and
`replay_summary` loads them from there instead of training them again: the same frame, recipe,
columns, training code and thread count give the same weights. Anything missing (a prefit that
failed, a summary materialized on its own) `replay_summary` trains itself.
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
    that no run registered; returns (trained now, already in the cache)."""
    plan = monthly_policy(paths, client, policy, first_month, through)
    fits = start_fits(plan.to_train, plan.params, MODEL.columns, workers=1, cache=paths.fit_cache)
    fits.wait()
    return fits.names, fits.cache_hits


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform_assets.defs.monitoring.prefit")
    parser.add_argument("--through", required=True, help="last month whose sensor tick has decided (YYYY-MM)")
    parser.add_argument("--first-month", default=constants.REPLAY_FIRST_SCORED_MONTH)
    args = parser.parse_args(argv)
    os.nice(10)  # the replay's own runs come first
    started = time.perf_counter()
    resources = shared_resources()
    store = resources["mlflow_store"]
    store.activate(MODEL.experiment)
    trained, cached = prefit(
        resources["platform"].paths, store.client(), RetrainPolicy.from_settings(), args.first_month, args.through
    )
    print(
        f"prefit through {args.through}: trained {trained or 'none'}, already cached {cached or 'none'} "
        f"({time.perf_counter() - started:.1f}s)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
