"""`python -m platform_assets run`: build 2013 on the local instance and replay it month by month.

The first months train the first champion; every later month is ingested, validated, built into the
warehouse and Feast, scored, compared with the champion's training data, and handed to the drift
sensor, whose decision (the daemon's own code) launches the retraining run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from platform_assets.core import constants
from platform_assets.core.instance import ensure_dagster_home
from platform_assets.core.partitions import all_months
from platform_assets.core.paths import PlatformPaths
from platform_assets.core.settings import settings

# Step logs stay in the run's event log (see them in the UI); the terminal gets one line per step.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
RUN_KEY = "dagster/run_key"


@contextmanager
def output_to(log: Path) -> Iterator[None]:
    """Send everything runs print (dbt, Feast, MLflow; subprocesses too) to a log file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("a") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class Runner:
    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, log: Path) -> None:
        self.defs, self.instance, self.log = defs, instance, log

    def __call__(
        self, job_name: str, partition: str | None = None, run_config: dict | None = None,
        tags: dict | None = None, raise_on_error: bool = True,
    ) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_job_def(job_name)
        with output_to(self.log):
            return job.execute_in_process(
                instance=self.instance, partition_key=partition, raise_on_error=raise_on_error,
                run_config={**QUIET, **(run_config or {})}, tags=tags,
            )


def sensor_run_tags(sensor: dg.SensorDefinition, request: dg.RunRequest) -> dict[str, str]:
    """Tags of a run launched for a sensor's request, as the daemon tags its own launches: a daemon
    started later (make ui) finds the run key and launches nothing twice."""
    return {**request.tags, **dg.DagsterRun.tags_for_sensor(sensor), RUN_KEY: request.run_key}


def step(label: str, started: float) -> None:
    print(f"  {label:<58} {time.perf_counter() - started:6.1f}s", flush=True)


def run(months: Sequence[str], drift_share_threshold: float | None = None, auc_drop_threshold: float | None = None) -> None:
    current = settings()
    paths = PlatformPaths.from_settings(current)
    ensure_dagster_home(paths)
    from platform_assets.definitions import defs  # after DAGSTER_HOME is set
    from platform_assets.defs.monitoring.replay import latest_report
    from platform_assets.defs.monitoring.resources import RetrainPolicy

    instance = dg.DagsterInstance.get()
    done = instance.fetch_materializations(dg.AssetKey("replay_summary"), limit=1).records
    if done:
        metadata = done[0].asset_materialization.metadata
        print(f"{current.home} already holds a replay of 2013 (run {done[0].event_log_entry.run_id[:8]}):\n")
        print(metadata["table"].value)
        print("\n`make ui` to browse it; `make clean && make run` replays from scratch.")
        return
    log = paths.logs / "make-run.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    runner = Runner(defs, instance, log)
    overrides = {"drift_share_threshold": drift_share_threshold, "auc_drop_threshold": auc_drop_threshold}
    policy = RetrainPolicy(**{k: v for k, v in overrides.items() if v is not None})
    keys = list(months)
    first_scored = constants.REPLAY_FIRST_SCORED_MONTH
    initial = [m for m in keys if m < first_scored] + ([first_scored] if first_scored in keys else [])
    sensor = defs.resolve_sensor_def("drift_retrain_sensor")
    print(f"PLATFORM_HOME={current.home} (env {current.env}); DAGSTER_HOME={instance.root_directory}")
    print(f"dbt, Feast and MLflow output: {log}", flush=True)
    started = time.perf_counter()

    t0 = time.perf_counter()
    runner("reference_tables")
    step("reference tables: planes, airports, airlines", t0)
    if initial:
        # The months before the first scored one land together: one run, one dbt build.
        t0 = time.perf_counter()
        runner("monthly_pipeline", tags={RANGE_START: initial[0], RANGE_END: initial[-1]})
        step(f"{initial[0]}..{initial[-1]}: ingest, validate, dbt build, Feast online store", t0)
    if first_scored not in keys:
        print(f"done in {time.perf_counter() - started:.1f}s (no month from {first_scored} on: no training)")
        return

    t0 = time.perf_counter()
    first = runner("train_and_promote", raise_on_error=False)
    step(f"first champion: train {constants.TRAINING_SET_START_MONTH}..{constants.TRAINING_SET_END_MONTH}, gate on {first_scored}", t0)
    if not first.success:
        raise SystemExit("the first model did not pass the gate; see the run in `make ui`")

    cursor: str | None = None
    print(f"\n{'month':<8} {'drift share':>11} {'AUC':>7} {'champion':>8}  drift sensor's decision", flush=True)
    for month in keys[keys.index(first_scored):]:
        t0 = time.perf_counter()
        if month not in initial:
            runner("monthly_pipeline", month)
        runner("monthly_scoring", month)
        report = latest_report(instance, month)
        # The sensor's own evaluation, as the daemon runs it, on this replay's policy.
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"retrain_policy": policy})
        with output_to(log):
            tick = sensor.evaluate_tick(context)
        requests = list(tick.run_requests or [])
        cursor = tick.cursor or cursor
        if requests:
            decision = "retrain: " + "; ".join(r.tags["platform/retrain_reason"].split(": ", 1)[1] for r in requests)
        else:
            decision = "skip: " + (tick.skip_message or "").split(": ", 1)[-1]
        print(
            f"{month:<8} {report['drift_share']:>11.2f} {report['auc']:>7.4f} {report['model_version']:>8}  "
            f"{decision} ({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )
        for request in requests or []:
            outcome = runner(
                "train_and_promote", run_config=request.run_config,
                tags=sensor_run_tags(sensor, request),
                raise_on_error=False,
            )
            print(f"{'':<8} retrained on {request.run_config['ops']['training_set']['config']}: "
                  f"{'promoted' if outcome.success else 'gate kept the champion'}", flush=True)

    t0 = time.perf_counter()
    summary = runner("replay_summary_job")
    step("replay summary (frozen and monthly-retrain policies computed)", t0)
    event = summary.get_asset_materialization_events()[0].materialization
    print("\n" + event.metadata["table"].value)
    for key in ("retrains_drift_policy", "retrains_monthly_policy", "mean_auc_drift_policy", "mean_auc_frozen", "mean_auc_monthly"):
        print(f"{key}: {event.metadata[key].value}")
    print(f"\ndone in {time.perf_counter() - started:.1f}s; `make ui` to browse the runs, reports and sensor ticks", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform_assets")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="materialize every asset for every month and replay 2013")
    run_parser.add_argument(
        "--months", nargs="*", default=all_months(), help="YYYY-MM keys"
    )
    run_parser.add_argument(
        "--drift-share-threshold", type=float, default=None,
        help=f"replay another policy: retrain at this drift share (default {constants.DRIFT_SHARE_THRESHOLD})",
    )
    run_parser.add_argument(
        "--auc-drop-threshold", type=float, default=None,
        help=f"replay another policy: retrain at this AUC drop (default {constants.AUC_DROP_THRESHOLD})",
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.months, args.drift_share_threshold, args.auc_drop_threshold)
    return 0
