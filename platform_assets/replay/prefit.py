"""Pre-train the retrain-every-month policy's models while the replay goes on.

`replay_summary` compares the drift-triggered policy with retraining every month, so it needs M(m),
the model trained on the window before m, for every scored month m that no run registered. Each
of them can train as soon as its window is scored and its month's sensor tick has decided. The
replay (`make run`) starts this module once, in a background process, and writes it a month after
each tick; the process trains the models decided through that month on the core the replay's own
runs leave idle:

    echo 2013-08 | python -m platform_assets.replay.prefit

The fits land in PLATFORM_HOME/cache/fits under their content's key (ml/parallel.py), and
`replay_summary` loads them from there instead of training them again: the same frame, recipe,
columns, training code and thread count give the same weights. A fit this process is training
when the summary starts is waited for, not trained twice; anything missing (a prefit that failed,
a summary materialized on its own) `replay_summary` trains itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from platform_assets import constants
from platform_assets.lib.resources import shared_resources
from platform_assets.lib.retrain_replay import MODEL, REPLAYED, monthly_policy
from platform_assets.ml.parallel import start_fits

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from platform_assets.ml.policy import RetrainPolicy
    from platform_assets.paths import PlatformPaths


def prefit(
    paths: PlatformPaths,
    client: MlflowClient,
    policy: RetrainPolicy,
    first_month: str,
    through: str,
    settled: Collection[str] = (),
) -> tuple[list[str], list[str]]:
    """Train into the fit cache the monthly-policy models of the months scored through `through`
    that no run registered, one at a time (each claimed only while it trains), except those in
    `settled` (an earlier call's); returns (trained here, already cached or claimed by another
    process)."""
    plan = monthly_policy(paths, client, policy, first_month, through, settled)
    trained, skipped = [], []
    for name, frame in plan.to_train.items():
        fits = start_fits({name: frame}, plan.params, MODEL.columns, workers=1, cache=paths.fit_cache)
        fits.wait(others=False)
        (trained if fits.names else skipped).append(name)
    return trained, skipped


class Prefit:
    """This module run as the replay's background process: it hears of each month once its sensor
    tick has decided (`after`), and trains what that month settled."""

    def __init__(self, log: Path) -> None:
        self.log, self.process = log, None

    def after(self, month: str) -> None:
        if self.process is None:
            with self.log.open("a") as sink:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", __name__],
                    stdin=subprocess.PIPE, stdout=sink, stderr=subprocess.STDOUT, text=True,
                )
        if self.process.poll() is None and self.process.stdin is not None:
            self.process.stdin.write(month + "\n")
            self.process.stdin.flush()

    def finish_at_full_priority(self) -> None:
        """When the summary starts: no more months; the fit it may be training (the summary waits
        for it) goes on at the summary's priority. Raising a priority needs CAP_SYS_NICE (root has
        it); without it the prefit stops, and the summary trains that fit itself."""
        if self.process is None or self.process.poll() is not None:
            return
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            os.setpriority(os.PRIO_PROCESS, self.process.pid, os.getpriority(os.PRIO_PROCESS, 0))
        except PermissionError:
            self.close()

    def close(self) -> None:
        """When the replay ends (or stops early): the fits it stored stay in the cache."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_assets.replay.prefit",
        description="Reads months (YYYY-MM, one per line: the last month whose sensor tick has decided) "
        "from stdin until it closes.",
    )
    parser.add_argument("--first-month", default=constants.REPLAY_FIRST_SCORED_MONTH)
    args = parser.parse_args(argv)
    os.nice(5)  # beside the run worker, below the month being judged
    resources = shared_resources()
    store = resources["mlflow_store"]
    store.activate(MODEL.experiment)
    client, paths, policy = store.client(), resources["platform"].paths, REPLAYED.retrain.policy
    settled: set[str] = set()  # planned once: their frames are not built and hashed again
    for line in sys.stdin:
        through = line.strip()
        started = time.perf_counter()
        trained, skipped = prefit(paths, client, policy, args.first_month, through, settled)
        settled.update(trained + skipped)
        print(
            f"prefit through {through}: trained {trained or 'none'}, cached or claimed {skipped or 'none'} "
            f"({time.perf_counter() - started:.1f}s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
