"""The replay of 2013 (`make run`, `python -m platform_assets run`): build 2013 on the local instance and replay it month by month.

The first months train the first champion; every later month is ingested, validated, built into the
warehouse and Feast, scored, compared with the champion's training data, and handed to the drift
sensor, whose decision (the daemon's own code) launches the retraining run.

Three lanes share the cores: the month being judged (scoring, drift report, sensor tick, retrain)
runs here; the months' pipelines (the reference tables and the first months too, while this process
imports what its runs will load) run ahead, queued for a background run worker (replay.launch); the
retrain-every-month models the summary compares against train in a prefit process
(defs.monitoring.prefit) into the fit cache. The worker and the prefit run at a lower priority.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from platform_assets import constants
from platform_assets.lib.instance import ensure_dagster_home
from platform_assets.lib.retrain_replay import KEYS, REPLAYED, latest_report
from platform_assets.paths import PlatformPaths
from platform_assets.replay.launch import in_process_instance, workspace_launcher
from platform_assets.replay.prefit import Prefit
from platform_assets.settings import reload

# Months whose pipelines may run ahead of the month being scored (in the background worker).
LOOKAHEAD = 6

# What the runs this process executes (first champion, scoring, drift reports, retrains) import at
# first use, about 10 s of CPU: imported while the run worker builds the first months instead of on
# the first champion's path. (AdamW imports torch._dynamo.)
PRELOAD = {
    "torch": ("platform_assets.ml.training", "torch._dynamo"),
    "Feast": ("feast",),
    "MLflow": ("mlflow",),
    "Optuna": ("optuna",),
    "scikit-learn": ("sklearn.ensemble",),
    "Evidently": ("evidently.presets",),
    "matplotlib": ("matplotlib.figure",),
}

# Step logs stay in the run's event log (see them in the UI); the terminal gets one line per step.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


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


def preload() -> str:
    """Import PRELOAD's modules; returns the libraries' names."""
    for modules in PRELOAD.values():
        for module in modules:
            importlib.import_module(module)
    return ", ".join(PRELOAD)


def step(label: str, started: float) -> None:
    print(f"  {label:<58} {time.perf_counter() - started:6.1f}s", flush=True)


def promoted(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Did this run move the champion alias (the champion asset materializes only then)?"""
    records = instance.fetch_materializations(KEYS.champion, limit=1).records
    return bool(records) and records[0].run_id == run.run_id


def root_cause(error: Any) -> Any:
    """The innermost error of a serialized chain (Dagster wraps what a step raised)."""
    while error.cause is not None:
        error = error.cause
    return error


def succeeded(instance: dg.DagsterInstance, run: dg.DagsterRun, what: str) -> dg.DagsterRun:
    """The run, if it succeeded; otherwise exit with its failed steps' errors (bad input names its
    file, column and rule there)."""
    if run.status != dg.DagsterRunStatus.SUCCESS:
        failures = [
            f"  {record.event_log_entry.step_key}: {root_cause(data.error).message.strip()}"
            for record in instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
            if (data := record.event_log_entry.dagster_event.step_failure_data) and data.error
        ]
        raise SystemExit(
            "\n".join([f"{what}: run {run.run_id} ended {run.status.value}; see it in `make ui`", *failures])
        )
    return run


def apply_policy_overrides(
    drift_share_threshold: float | None, auc_drop_threshold: float | None, min_auc_gain: float | None
) -> None:
    """The code location runs in its own process (as under `make ui`); the policy travels there as
    settings. The replay ticks the drift sensor once per replayed month, seconds apart."""
    overrides = {
        "PLATFORM_DRIFT_SHARE_THRESHOLD": drift_share_threshold,
        "PLATFORM_AUC_DROP_THRESHOLD": auc_drop_threshold,
        "PLATFORM_MIN_AUC_GAIN": min_auc_gain,
    }
    os.environ.update({k: str(v) for k, v in overrides.items() if v is not None})
    os.environ.setdefault("PLATFORM_SENSOR_INTERVAL_SECONDS", "1")


def print_done_replay(instance: dg.DagsterInstance, home: Path) -> bool:
    """Print the replay this PLATFORM_HOME already holds, if any."""
    done = instance.fetch_materializations(dg.AssetKey("replay_summary"), limit=1).records
    if not done:
        return False
    metadata = done[0].asset_materialization.metadata
    print(f"{home} already holds a replay of 2013 (run {done[0].event_log_entry.run_id[:8]}):\n")
    print(metadata["table"].value)
    print("\n`make ui` to browse it; `make clean && make run` replays from scratch.")
    return True


class Replay:
    """One replay of the year: the runs it launches here, the months it hands to the run worker."""

    def __init__(self, instance: dg.DagsterInstance, launcher: Any, log: Path, months: Sequence[str]) -> None:
        self.instance, self.launcher, self.log = instance, launcher, log
        keys = list(months)
        self.first_scored = first = constants.REPLAY_FIRST_SCORED_MONTH
        self.initial = [m for m in keys if m < first] + ([first] if first in keys else [])
        self.replayed = keys[keys.index(first):] if first in keys else []
        self.ahead: dict[str, str] = {}  # month -> its pipeline's run id, handed to the background worker

    def launch(self, job: str, what: str, ops: dict | None = None, **kwargs: Any) -> dg.DagsterRun:
        run_config = {**QUIET, "ops": ops} if ops else QUIET
        with output_to(self.log):
            return succeeded(self.instance, self.launcher.launch(job, run_config=run_config, **kwargs), what)

    def start_next(self, month: str) -> None:
        # The months' pipelines (landing to Feast) run ahead, in order, up to LOOKAHEAD months
        # past the month being scored, its report decided on and any retrain trained: data keeps
        # arriving while a month is judged. Point-in-time joins read nothing dated after the
        # flight they serve, so a month's scores, reports and retrains do not change when later
        # months land beside them.
        position = self.replayed.index(month)
        for upcoming in self.replayed[position + 1 : position + 1 + LOOKAHEAD]:
            if upcoming not in self.initial and upcoming not in self.ahead:
                with output_to(self.log):
                    self.ahead[upcoming] = self.launcher.start("monthly_pipeline", partition=upcoming, run_config=QUIET)

    def first_months(self) -> None:
        """The reference tables and the months before the first scored one (together: one run, one
        dbt build) run in the background worker, queued with the months after them; meanwhile this
        process imports what its own runs' steps load at first use."""
        t0 = time.perf_counter()
        with output_to(self.log):
            reference = self.launcher.start("reference_tables", run_config=QUIET)
            first_runs = [(reference, "reference tables", "planes, airports, airlines")]
            if self.initial:
                span = f"{self.initial[0]}..{self.initial[-1]}"
                first_runs.append((
                    self.launcher.start(
                        "monthly_pipeline", partition_range=(self.initial[0], self.initial[-1]), run_config=QUIET
                    ),
                    span, "ingest, validate, dbt build, Feast online store",
                ))
        if self.replayed:
            self.start_next(self.first_scored)
            with output_to(self.log):  # libraries' import-time warnings go to the log
                imported = preload()
            step(f"{len(first_runs) + len(self.ahead)} runs queued for the run worker; {imported} imported", t0)
        for run_id, what, steps in first_runs:
            with output_to(self.log):
                done = succeeded(self.instance, self.launcher.finish(run_id), what)
            stats = self.instance.get_run_stats(done.run_id)
            label = f"{what}: {steps}"
            print(f"  {label:<58} {(stats.end_time or 0) - (stats.start_time or 0):6.1f}s (run worker)", flush=True)

    def first_champion(self) -> None:
        """The first champion's hyperparameters come from an Optuna search; the drift sensor's
        retrains reuse the champion's recipe."""
        t0 = time.perf_counter()
        first = self.launch(KEYS.train_job, "the first model", ops={KEYS.op("model"): {"config": {"search": True}}})
        step(
            f"first champion: search ({REPLAYED.training.search_trials} trials), train "
            f"{REPLAYED.training.window}, gate on {self.first_scored}", t0
        )
        if not promoted(self.instance, first):
            raise SystemExit("the first model did not pass the gate; see the run in `make ui`")

    def month(self, month: str) -> None:
        """Land, score and report the month; the drift sensor decides; its retrain runs here."""
        t0 = time.perf_counter()
        if month in self.ahead:
            with output_to(self.log):
                succeeded(self.instance, self.launcher.finish(self.ahead.pop(month)), month)
        elif month not in self.initial:
            self.launch("monthly_pipeline", month, partition=month)
        self.start_next(month)
        self.launch(KEYS.scoring_job, month, partition=month)
        report = latest_report(self.instance, month)
        # The sensor daemon's own iteration: it evaluates the sensor, records the tick and
        # launches the retraining run it asks for (executed here, before it returns).
        with output_to(self.log):
            tick, retrains = self.launcher.tick_sensor(KEYS.sensor)
        if retrains:
            decision = "retrain: " + "; ".join(r.tags["platform/retrain_reason"].split(": ", 1)[1] for r in retrains)
        else:
            decision = "skip: " + (tick.skip_reason or "").split(": ", 1)[-1]
        print(
            f"{month:<8} {report['drift_share']:>11.2f} {report['auc']:>7.4f} {report['model_version']:>8}  "
            f"{decision} ({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )
        for retrain in retrains:
            succeeded(self.instance, retrain, f"retraining after {month}")
            print(f"{'':<8} retrained on {retrain.run_config['ops'][KEYS.op('training_set')]['config']}: "
                  f"{'promoted' if promoted(self.instance, retrain) else 'gate kept the champion'}", flush=True)


def print_summary(instance: dg.DagsterInstance, summary: dg.DagsterRun) -> None:
    [record] = instance.fetch_materializations(dg.AssetKey("replay_summary"), limit=1).records
    assert record.run_id == summary.run_id
    metadata = record.asset_materialization.metadata
    print("\n" + metadata["table"].value)
    for key in ("retrains_drift_policy", "retrains_monthly_policy", "mean_auc_drift_policy", "mean_auc_frozen",
                "mean_auc_monthly", "monthly_policy_models"):
        print(f"{key}: {metadata[key].value}")


def run(
    months: Sequence[str],
    drift_share_threshold: float | None = None,
    auc_drop_threshold: float | None = None,
    min_auc_gain: float | None = None,
) -> None:
    apply_policy_overrides(drift_share_threshold, auc_drop_threshold, min_auc_gain)
    current = reload()
    paths = PlatformPaths.from_settings(current)
    ensure_dagster_home(paths)
    instance = in_process_instance(paths.dagster_home)
    if print_done_replay(instance, current.home):
        return
    log = paths.logs / "make-run.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"PLATFORM_HOME={current.home} (env {current.env}); DAGSTER_HOME={instance.root_directory}")
    print(f"dbt, Feast and MLflow output: {log}", flush=True)
    started = time.perf_counter()
    with ExitStack() as stack:
        t0 = time.perf_counter()
        with output_to(log):  # the code server's own output goes to the log too
            launcher = stack.enter_context(workspace_launcher(instance, worker_log=log))
        step("code location loaded (workspace.yaml, as `make ui` loads it)", t0)
        replay = Replay(instance, launcher, log, months)
        replay.first_months()
        if not replay.replayed:
            print(f"done in {time.perf_counter() - started:.1f}s (no month from {replay.first_scored} on: no training)")
            return
        replay.first_champion()
        print(f"\n{'month':<8} {'drift share':>11} {'AUC':>7} {'champion':>8}  drift sensor's decision", flush=True)
        prefit = Prefit(log)
        stack.callback(prefit.close)
        for month in replay.replayed:
            replay.month(month)
            if month != replay.replayed[-1]:  # the last month's model trains in the summary, beside its scoring
                prefit.after(month)
        t0 = time.perf_counter()
        prefit.finish_at_full_priority()
        summary = replay.launch("replay_summary_job", "replay summary")
        step("replay summary (frozen and monthly-retrain policies computed)", t0)
    print_summary(instance, summary)
    print(f"\ndone in {time.perf_counter() - started:.1f}s; `make ui` to browse the runs, reports and sensor ticks", flush=True)
