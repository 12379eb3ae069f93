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
from platform_assets.lib.retrain_replay import DEFAULT, Replayed, monthly_policy
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
    model: Replayed = DEFAULT,
) -> tuple[list[str], list[str]]:
    """Train into the fit cache the monthly-policy models of the months scored through `through`
    that no run registered, one at a time (each claimed only while it trains), except those in
    `settled` (an earlier call's); returns (trained here, already cached or claimed by another
    process)."""
    plan = monthly_policy(paths, client, policy, first_month, through, settled, model)
    trained, skipped = [], []
    for name, frame in plan.to_train.items():
        fits = start_fits({name: frame}, plan.params, model.spec.columns, workers=1, cache=paths.fit_cache)
        fits.wait(others=False)
        (trained if fits.names else skipped).append(name)
    return trained, skipped


class Prefit:
    """This module run as the replay's background process: it hears of each month once its sensor
    tick has decided (`after`), and trains what that month settled."""

    def __init__(self, log: Path, models: Sequence[str] = (DEFAULT.keys.prefix,)) -> None:
        self.log, self.models, self.process = log, list(models), None

    def after(self, month: str) -> None:
        if self.process is None:
            with self.log.open("a") as sink:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", __name__, "--models", *self.models],
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
    parser.add_argument("--models", nargs="+", default=[DEFAULT.keys.prefix], help="key prefixes of the models replayed")
    args = parser.parse_args(argv)
    os.nice(5)  # beside the run worker, below the month being judged
    resources = shared_resources()
    store = resources["mlflow_store"]
    client, paths = store.client(), resources["platform"].paths
    models = [Replayed.of(prefix) for prefix in args.models]
    # Per model, planned once: their frames are not built and hashed again.
    settled: dict[str, set[str]] = {m.keys.prefix: set() for m in models}
    for line in sys.stdin:
        through = line.strip()
        for model in models:
            started = time.perf_counter()
            store.activate(model.spec.experiment)
            try:
                trained, skipped = prefit(
                    paths, client, model.policy, args.first_month, through, settled[model.keys.prefix], model
                )
            except ValueError as error:  # nothing of this model scored yet: its months come later
                print(f"prefit {model.keys.prefix} through {through}: {error}", flush=True)
                continue
            settled[model.keys.prefix].update(trained + skipped)
            print(
                f"prefit {model.keys.prefix} through {through}: trained {trained or 'none'}, cached or claimed "
                f"{skipped or 'none'} ({time.perf_counter() - started:.1f}s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
