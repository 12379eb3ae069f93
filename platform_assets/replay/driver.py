"""The replay of 2013 (`make run`, `python -m platform_assets run`): time-lapse production on
Dagster's own daemon.

`dagster dev` (webserver, daemon, code server) runs on the local instance, whose run queue and
launcher are the deployment's control plane (lib/instance.py). This process is only the world
around it: a feeder lands 2013 in the landing folder as month files, a few months ahead of the month
being judged, and a clock watches the instance and prints what the platform did. Everything else is
Dagster's: the landing sensor requests each month's pipeline, each model's drift sensor requests its
first model, each month's scoring and drift report, and the retrains its policy calls for; the
QueuedRunCoordinator launches every run in its own process. At the end the clock submits the replay
summary through the GraphQL API, prints its table and stops every process it started.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from platform_assets import constants
from platform_assets.lib.instance import IN_FLIGHT, ensure_dagster_home
from platform_assets.lib.models.keys import ModelKeys
from platform_assets.lib.resources import shared_resources
from platform_assets.lib.retrain_replay import KEYS, latest_report
from platform_assets.ml.declaration import declared_models
from platform_assets.paths import PlatformPaths
from platform_assets.replay.engine import HOST, dagster_dev, port_free, stop_sensor
from platform_assets.replay.feeder import Feeder
from platform_assets.replay.prefit import Prefit
from platform_assets.settings import reload

# Months landed ahead of the month being judged: data keeps arriving while a month is scored.
LOOKAHEAD = 3
POLL_SECONDS = 0.5
# No run queued or running this long (sensor ticks come every 5 s): the sensors are waiting on
# something that will not come (a failed month's corrected file).
STALL_SECONDS = 90
PORT = int(os.environ.get("PLATFORM_REPLAY_PORT", "3000"))
LOCATION = "platform_assets"  # workspace.yaml's code location


def declared_prefixes() -> list[str]:
    return [declaration.key_prefix for declaration in declared_models().values()]


def root_cause(error: Any) -> Any:
    """The innermost error of a serialized chain (Dagster wraps what a step raised)."""
    while error.cause is not None:
        error = error.cause
    return error


def step_failures(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The failed steps' errors of a run (bad input names its file, column and rule there)."""
    return [
        f"  {record.event_log_entry.step_key}: {root_cause(data.error).message.strip()}"
        for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
        if (data := record.event_log_entry.dagster_event.step_failure_data) and data.error
    ]


def apply_policy_overrides(
    drift_share_threshold: float | None, auc_drop_threshold: float | None, min_auc_gain: float | None
) -> None:
    """The code location runs in dagster dev's processes; the policy travels there as settings.
    Sensors tick every second in the replay (a month is seconds long)."""
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


def fail_interrupted_runs(instance: dg.DagsterInstance) -> list[str]:
    """Runs a killed replay left starting or started (no process runs them any more: this replay
    has not started its daemon yet) are marked failed; the daemon's run retries relaunch them.
    Queued runs stay queued: the daemon launches them."""
    stale = instance.get_runs(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.NOT_STARTED])
    )
    for run in stale:
        instance.report_run_failed(run, "the replay that launched it was stopped before the run ended")
    return [run.run_id for run in stale]


def decision(instance: dg.DagsterInstance, month: str) -> dict | None:
    """The drift sensor's decision on `month`'s newest report (an observation it records), if made."""
    reports = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=KEYS.drift_report, asset_partitions=[month]), limit=1
    ).records
    if not reports:
        return None
    observed = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=KEYS.drift_report, asset_partitions=[month], after_storage_id=reports[0].storage_id),
        limit=1,
    ).records
    return {k: v.value for k, v in observed[0].asset_observation.metadata.items()} if observed else None


def promoted(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Did this run move the champion alias (the champion asset materializes only then)?"""
    records = instance.fetch_materializations(KEYS.champion, limit=20).records
    return any(record.run_id == run.run_id for record in records)


def describe(record: dg.RunRecord) -> str:
    run = record.dagster_run
    what = run.tags.get("dagster/partition") or "..".join(
        filter(None, (run.tags.get("dagster/asset_partition_range_start"), run.tags.get("dagster/asset_partition_range_end")))
    )
    return f"{run.job_name}{f' {what}' if what else ''}"


@dataclass
class Clock:
    """Lands the months and reports what the daemon did with them, as it happens."""

    instance: dg.DagsterInstance
    feeder: Feeder
    months: Sequence[str]
    started: float = field(default_factory=time.time)
    landed: list[str] = field(default_factory=list)
    decided: list[str] = field(default_factory=list)
    reported: set[str] = field(default_factory=set)
    first_scored: str = constants.REPLAY_FIRST_SCORED_MONTH
    last: float = field(default_factory=time.time)  # when the last month was decided
    idle_since: float = field(default_factory=time.time)  # since when no run was queued or running

    @property
    def initial(self) -> list[str]:
        return [m for m in self.months if m <= self.first_scored]

    @property
    def replayed(self) -> list[str]:
        return [m for m in self.months if m >= self.first_scored]

    def land(self) -> None:
        """The reference tables and the first months as one landing, then each month on its own,
        up to LOOKAHEAD months past the last month decided."""
        if not self.landed:
            self.feeder.land_reference()
            self.feeder.land_months(self.initial)
            self.landed.extend(self.initial)
            print(f"  landed planes, airports, airlines and {self.initial[0]}..{self.initial[-1]}", flush=True)
        horizon = self.replayed[: len(self.decided) + LOOKAHEAD + 1]
        for month in horizon:
            if month not in self.landed:
                self.feeder.land_months([month])
                self.landed.append(month)

    def ended_runs(self) -> list[dg.RunRecord]:
        # Runs that ended since this replay started, whoever created them (a killed replay's runs too).
        records = self.instance.get_run_records(
            dg.RunsFilter(updated_after=dg_datetime(self.started)), order_by="create_timestamp", ascending=True
        )
        return [r for r in records if r.dagster_run.is_finished and r.dagster_run.run_id not in self.reported]

    def report_runs(self) -> None:
        for record in self.ended_runs():
            run = record.dagster_run
            self.reported.add(run.run_id)
            queued = (record.start_time or record.create_timestamp.timestamp()) - record.create_timestamp.timestamp()
            took = (record.end_time or 0) - (record.start_time or 0)
            if run.status != dg.DagsterRunStatus.SUCCESS:
                failures = step_failures(self.instance, run.run_id)
                if failures or run.tags.get("dagster/retry_number"):
                    raise SystemExit(
                        "\n".join([f"{describe(record)}: run {run.run_id} ended {run.status.value}; see it in `make ui`", *failures])
                    )
                print(f"  {describe(record):<44} {run.status.value} (the daemon retries it)", flush=True)
                continue
            if run.job_name != KEYS.scoring_job:  # scoring shows in the month's line
                print(f"  {describe(record):<44} {took:6.1f}s run, {queued:4.1f}s queued", flush=True)
            if run.job_name == KEYS.train_job and run.tags.get("platform/trigger") == "drift":
                window = run.run_config["ops"][KEYS.op("training_set")]["config"]
                print(f"  {'':<8} retrained on {window['start_month']}..{window['end_month']} after "
                      f"{run.tags['platform/drift_report_month']}'s report: "
                      f"{'promoted' if promoted(self.instance, run) else 'gate kept the champion'}", flush=True)

    def report_decisions(self) -> None:
        for month in self.replayed:
            if month in self.decided:
                continue
            made = decision(self.instance, month)
            if made is None:
                return
            report = latest_report(self.instance, month)
            if not self.decided:
                print(f"\n{'month':<8} {'drift share':>11} {'AUC':>7} {'champion':>8}  drift sensor's decision", flush=True)
            self.decided.append(month)
            print(
                f"{month:<8} {report['drift_share']:>11.2f} {report['auc']:>7.4f} {report['model_version']:>8}  "
                f"{made['decision']}: {made['reason'].split(': ', 1)[-1]} ({time.time() - self.last:.1f}s)",
                flush=True,
            )
            self.last = time.time()

    def in_flight(self) -> list[dg.DagsterRun]:
        return self.instance.get_runs(dg.RunsFilter(statuses=IN_FLIGHT))

    def done(self) -> bool:
        busy = bool(self.in_flight())
        if len(self.decided) == len(self.replayed) and not busy:
            return True
        if busy:
            self.idle_since = time.time()
        elif time.time() - self.idle_since > STALL_SECONDS:
            raise SystemExit(
                f"no run queued or running for {STALL_SECONDS}s and {len(self.replayed) - len(self.decided)} "
                "month(s) not decided: see the sensors' ticks in `make ui` (Automation) for why"
            )
        return False

    def tick(self) -> None:
        self.land()
        self.report_runs()
        self.report_decisions()


def dg_datetime(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)


def interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def run_summary(instance: dg.DagsterInstance, port: int) -> dg.DagsterRun:
    """The replay summary, submitted through the GraphQL API as the UI's launchpad would."""
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient(HOST, port_number=port)
    run_id = client.submit_job_execution("replay_summary_job", repository_location_name="platform_assets")
    while not (run := instance.get_run_by_id(run_id)) or not run.is_finished:
        time.sleep(POLL_SECONDS)
    if run.status != dg.DagsterRunStatus.SUCCESS:
        raise SystemExit("\n".join([f"replay summary: run {run_id} ended {run.status.value}", *step_failures(instance, run_id)]))
    return run


def print_summary(instance: dg.DagsterInstance, summary: dg.DagsterRun) -> None:
    [record] = instance.fetch_materializations(dg.AssetKey("replay_summary"), limit=1).records
    assert record.run_id == summary.run_id
    metadata = record.asset_materialization.metadata
    print("\n" + metadata["table"].value)
    for key in ("retrains_drift_policy", "retrains_monthly_policy", "mean_auc_drift_policy", "mean_auc_frozen",
                "mean_auc_monthly", "share_of_monthly_gain", "monthly_policy_models"):
        print(f"{key}: {metadata[key].value}")
    # One row per model replayed (make run --models); each model's frontier is in the UI.
    print("\n" + metadata["models"].value)


def run(
    months: Sequence[str],
    models: Sequence[str] = (KEYS.prefix,),
    drift_share_threshold: float | None = None,
    auc_drop_threshold: float | None = None,
    min_auc_gain: float | None = None,
) -> None:
    apply_policy_overrides(drift_share_threshold, auc_drop_threshold, min_auc_gain)
    current = reload()
    paths = PlatformPaths.from_settings(current)
    ensure_dagster_home(paths)
    # A terminated replay (SIGTERM) stops what it started, as Ctrl-C does.
    signal.signal(signal.SIGTERM, interrupt)
    if not port_free(PORT):
        raise SystemExit(f"port {PORT} is in use (is `make ui` running?): stop it, or set PLATFORM_REPLAY_PORT")
    with dg.DagsterInstance.get() as instance:
        if print_done_replay(instance, current.home):
            return
        interrupted = fail_interrupted_runs(instance)
        log = paths.logs / "make-run.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"PLATFORM_HOME={current.home} (env {current.env}); DAGSTER_HOME={instance.root_directory}")
        print(f"dagster dev (webserver, daemon, code server) and the runs' output: {log}", flush=True)
        if interrupted:
            print(f"{len(interrupted)} run(s) of an interrupted replay marked failed; the daemon retries them")
        started = time.perf_counter()
        # The MLflow store exists before the first runs: two models' first runs creating its
        # SQLite tables at once would race.
        shared_resources()["mlflow_store"].activate()
        with ExitStack() as stack:
            stack.enter_context(dagster_dev({"DAGSTER_HOME": str(instance.root_directory)}, log, PORT))
            print(f"  Dagster's webserver and daemon up {time.perf_counter() - started:6.1f}s: "
                  f"watch the year unfold at http://{HOST}:{PORT}", flush=True)
            for prefix in sorted(set(declared_prefixes()) - set(models)):
                # Its sensor would train and score it beside the replayed models: stopped, as the
                # UI's toggle stops it (start it there to bring the model into the loop).
                stop_sensor(PORT, LOCATION, ModelKeys(prefix).sensor)
                print(f"  {ModelKeys(prefix).sensor} stopped (not replayed; `--models` adds it)", flush=True)
            clock = Clock(instance, Feeder(current.raw_data_dir, current.landing_incoming), months)
            prefit = Prefit(log, models)
            stack.callback(prefit.close)
            while True:
                before = len(clock.decided)
                clock.tick()  # before `done`: the last run's line is printed too
                for month in clock.decided[before:]:
                    if month != clock.replayed[-1]:  # the last month's model trains in the summary
                        prefit.after(month)
                if clock.done():
                    break
                time.sleep(POLL_SECONDS)
            t0 = time.perf_counter()
            prefit.finish_at_full_priority()
            summary = run_summary(instance, PORT)
            print(f"  replay summary (frozen and monthly-retrain policies) {time.perf_counter() - t0:6.1f}s", flush=True)
        print_summary(instance, summary)
        print(f"\ndone in {time.perf_counter() - started:.1f}s; `make ui` to browse the runs, reports and sensor ticks",
              flush=True)
