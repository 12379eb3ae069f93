"""Runs launched the way the UI and the daemon launch them, executed in this process.

`make run` replays 2013 in seconds per month. It creates every run through the code location that
workspace.yaml names, as `dagster job launch` and the UI's launchpad do, and it lets the sensor
daemon's own iteration evaluate the drift sensor, record the tick and submit the runs it requests.
So each run carries the code location's origin and tags and appears in the UI's Runs, the job's Runs
tab, the Overview timeline and the sensor's tick history, like any run the daemon or the UI launched.

Only where a run executes differs. The instance built here hands runs to `InProcessRunLauncher`,
which executes them synchronously in the launching process. The runs the replay starts ahead (the
next months' pipelines while a month is scored) are queued instead (status QUEUED, as the queued
run coordinator does) for one `RunWorker`: a second process that imported the definitions once
and launches each queued run there, as the daemon's dequeuer would, one after another. The UI's
launcher would spawn one process per run, and each of those would load the code location again.

    python -m platform_assets.replay.launch DAGSTER_HOME LOG   # the worker; RunWorker starts it
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster._core.execution.api import execute_run
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import LaunchRunContext, RunLauncher
from dagster._core.scheduler.instigation import InstigatorTick, TickStatus
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from dagster._utils.hosted_user_process import recon_job_from_origin

from platform_assets.settings import REPO_ROOT

if TYPE_CHECKING:
    from dagster._core.remote_representation import CodeLocation, RemoteRepository
    from dagster._core.workspace.context import BaseWorkspaceRequestContext

WORKSPACE_FILE = REPO_ROOT / "workspace.yaml"
LOCATION_NAME = "platform_assets"


class InProcessRunLauncher(RunLauncher, ConfigurableClass):
    """Executes a launched run synchronously in the launching process (the replay's instance only)."""

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> InProcessRunLauncher:
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        job = recon_job_from_origin(context.job_code_origin)  # type: ignore[arg-type]
        execute_run(job, context.dagster_run, self._instance)

    def terminate(self, run_id: str) -> bool:
        return False


# Same storage, pools and run settings as dagster.yaml; runs start at once (no queue, no daemon to
# dequeue them) and execute in this process.
IN_PROCESS_OVERRIDES: dict[str, Any] = {
    "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    "run_launcher": {"module": "platform_assets.replay.launch", "class": InProcessRunLauncher.__name__},
}


def in_process_instance(dagster_home: Path) -> dg.DagsterInstance:
    """The instance under `dagster_home` (its dagster.yaml), launching runs in this process."""
    ref = InstanceRef.from_dir(str(dagster_home), overrides=IN_PROCESS_OVERRIDES)
    return dg.DagsterInstance.from_ref(ref)


class RunWorker:
    """A second process executing the runs handed to it, in order, one at a time (`serve` below).

    It imports the definitions as it starts, while the first runs execute here, so a handed run
    starts at once. What the runs print goes to `log`; the pipe carries only run ids."""

    def __init__(self, dagster_home: Path, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(dagster_home), str(log)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self._pending: list[str] = []  # handed over, not yet waited for
        self._finished: set[str] = set()  # reported done by the worker, not yet waited for
        self._handed: list[str] = []  # every run handed over, in order

    def submit(self, run_id: str) -> None:
        assert self.process.stdin is not None
        self._pending.append(run_id)
        self._handed.append(run_id)
        self.process.stdin.write(run_id + "\n")
        self.process.stdin.flush()

    @property
    def pending(self) -> list[str]:
        """Runs handed over and not yet waited for."""
        return list(self._pending)

    def wait(self, run_id: str) -> None:
        """Block until the worker has finished `run_id` (whatever the run's outcome)."""
        assert self.process.stdout is not None
        if run_id not in self._pending:
            raise ValueError(f"run {run_id} was not handed to this worker, or was already waited for")
        while run_id not in self._finished:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(
                    f"the run worker exited ({self.process.wait()}) before finishing run {run_id}; see {self.log}"
                )
            if line.startswith("done "):
                self._finished.add(line.split()[1])
        self._finished.discard(run_id)
        self._pending.remove(run_id)

    def cancel_queued(self, instance: dg.DagsterInstance) -> None:
        """Cancel the runs handed over and still queued (the replay ends early): the worker skips
        them and stops after the run in hand, instead of executing every run queued. A run queued
        behind one that failed gets the reason the worker would have given it, whichever of the two
        reaches it first."""
        failed: dg.DagsterRun | None = None
        for run_id in self._handed:
            run = instance.get_run_by_id(run_id)
            if run is None:
                continue
            if failed is None and run.is_finished and run.status != dg.DagsterRunStatus.SUCCESS:
                failed = run
            elif run_id in self._pending and run.status == dg.DagsterRunStatus.QUEUED:
                reason = queued_behind(failed) if failed else "the replay ended before its run worker launched this run"
                instance.report_run_canceled(run, reason)

    def close(self, timeout: float = 300) -> None:
        """No more runs: let the one in hand finish (a run left STARTED would look alive in the UI)."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # the worker is gone already
                self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def queued_behind(failed: dg.DagsterRun) -> str:
    """Why a run queued behind a failed one is canceled, not launched."""
    return f"run {failed.run_id} ({failed.job_name}), queued before it, ended {failed.status.value}"


def serve(dagster_home: Path, log: Path) -> None:
    """The worker's loop: execute each run id read from stdin, answer `done <id>` on stdout. After a
    run that did not succeed, the runs handed over behind it are canceled, not executed."""
    # Below the replay's own runs in the scheduler's eyes: the month being judged comes first, the
    # months landing ahead use what CPU it leaves.
    os.nice(5)
    protocol = os.fdopen(os.dup(1), "w")
    with log.open("a") as sink:  # runs print to the log, like the replay's own runs
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
    instance = in_process_instance(dagster_home)
    # The imports of the code location and of what its pipeline steps load (Feast), once, before
    # the first run arrives.
    import feast  # noqa: F401

    import platform_assets.definitions  # noqa: F401

    failed: dg.DagsterRun | None = None
    for line in sys.stdin:
        run_id = line.strip()
        run = instance.get_run_by_id(run_id)
        # A run canceled while queued (the replay stopped early) is not launched; nor is one queued
        # behind a run that failed: the replay's months build on each other, in the order queued.
        if run is None or run.status != dg.DagsterRunStatus.QUEUED:
            pass
        elif failed is not None:
            instance.report_run_canceled(run, queued_behind(failed))
        else:
            try:
                # As the daemon launches a queued run: STARTING, then this instance's launcher
                # (InProcessRunLauncher) executes it, here.
                instance.launch_run(run_id, workspace=None)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001  launch_run recorded the failure in the run itself
                logging.getLogger(__name__).exception("run %s", run_id)
            ended = instance.get_run_by_id(run_id)
            if ended is not None and ended.status != dg.DagsterRunStatus.SUCCESS:
                failed = ended
        print(f"done {run_id}", file=protocol, flush=True)


class Launcher:
    """Creates and submits runs through the workspace's code location, as `dagster job launch` does."""

    def __init__(
        self, instance: dg.DagsterInstance, context: WorkspaceProcessContext, worker: RunWorker | None = None
    ) -> None:
        self.instance, self.context, self.worker = instance, context, worker

    def _location(self) -> tuple[CodeLocation, RemoteRepository, BaseWorkspaceRequestContext]:
        request = self.context.create_request_context()
        names = list(request.get_code_location_entries())
        # This platform's location; a workspace with a single location (tests) uses that one.
        name = LOCATION_NAME if LOCATION_NAME in names or len(names) != 1 else names[0]
        location = request.get_code_location(name)
        [repository] = location.get_repositories().values()
        return location, repository, request

    def _create(
        self,
        job_name: str,
        partition: str | None,
        partition_range: tuple[str, str] | None,
        run_config: Mapping[str, Any] | None,
        tags: Mapping[str, str] | None,
    ) -> tuple[dg.DagsterRun, BaseWorkspaceRequestContext]:
        from dagster._cli.job import _create_run

        location, repository, request = self._location()
        job = repository.get_full_job(job_name)
        run_tags = dict(tags or {})
        if partition is not None:
            # The tags the launchpad gives a partition's run, from the code location itself.
            snap = location.get_partition_tags_from_repo(repository.handle, job_name, partition, self.instance)
            if not hasattr(snap, "tags"):
                raise ValueError(f"{job_name}: no partition {partition!r}: {snap}")
            run_tags.update(snap.tags)
        if partition_range is not None:
            run_tags[ASSET_PARTITION_RANGE_START_TAG], run_tags[ASSET_PARTITION_RANGE_END_TAG] = partition_range
        run = _create_run(
            instance=self.instance, code_location=location, remote_repo=repository, remote_job=job,
            run_config=dict(run_config or {}), tags=run_tags, op_selection=None, run_id=None,
        )
        return run, request

    def launch(
        self,
        job_name: str,
        *,
        partition: str | None = None,
        partition_range: tuple[str, str] | None = None,
        run_config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dg.DagsterRun:
        """Create the run from the code location's snapshot of the job, submit it, return it finished."""
        run, request = self._create(job_name, partition, partition_range, run_config, tags)
        self.instance.submit_run(run.run_id, request)
        return self.instance.get_run_by_id(run.run_id)  # type: ignore[return-value]

    def start(
        self,
        job_name: str,
        *,
        partition: str | None = None,
        partition_range: tuple[str, str] | None = None,
        run_config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Create the run like `launch` and queue it for the background worker, which launches it
        (as the daemon launches a queued run) when the runs queued before it are done. Returns the
        run's id at once; `finish` waits for it."""
        from dagster._core.events import DagsterEvent

        if self.worker is None:
            raise RuntimeError("no background worker: open the launcher with workspace_launcher(..., worker_log=...)")
        run, _ = self._create(job_name, partition, partition_range, run_config, tags)
        self.instance.report_dagster_event(DagsterEvent.job_enqueue(run), run_id=run.run_id)  # status QUEUED
        self.worker.submit(run.run_id)
        return run.run_id

    def finish(self, run_id: str) -> dg.DagsterRun:
        """The run `start` queued for the worker, once it has ended."""
        assert self.worker is not None
        self.worker.wait(run_id)
        return self.instance.get_run_by_id(run_id)  # type: ignore[return-value]

    def tick_sensor(self, name: str) -> tuple[InstigatorTick, list[dg.DagsterRun]]:
        """One iteration of the sensor daemon (the daemon's own code): evaluate the running sensors,
        record each tick and submit the runs they request. Returns `name`'s tick and its runs."""
        from dagster._daemon.sensor import execute_sensor_iteration

        _, repository, _ = self._location()
        sensor = repository.get_sensor(name)
        before = self._latest_tick(sensor)
        for _ in execute_sensor_iteration(self.context, logging.getLogger("platform_assets.sensor"), None, None):
            pass
        tick = self._latest_tick(sensor)
        if tick is None or (before is not None and tick.tick_id == before.tick_id):
            raise RuntimeError(
                f"sensor {name} did not tick: is it running (default status or the UI's toggle) and is "
                f"its minimum interval ({sensor.min_interval_seconds}s) shorter than the time since its last tick?"
            )
        if tick.status == TickStatus.FAILURE:
            raise RuntimeError(f"sensor {name} failed: {tick.error.to_string() if tick.error else 'no error recorded'}")
        runs = [self.instance.get_run_by_id(run_id) for run_id in tick.run_ids]
        return tick, [run for run in runs if run is not None]

    def _latest_tick(self, sensor: Any) -> InstigatorTick | None:
        ticks = self.instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id, limit=1)
        return ticks[0] if ticks else None


@contextmanager
def workspace_launcher(
    instance: dg.DagsterInstance, workspace_file: Path = WORKSPACE_FILE, worker_log: Path | None = None
) -> Iterator[Launcher]:
    """A launcher on the code locations of `workspace_file` (the one `make ui` serves); with
    `worker_log`, also a background `RunWorker` (its runs print there) for `Launcher.start`."""
    worker = RunWorker(Path(instance.root_directory), worker_log) if worker_log is not None else None
    try:
        with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace_file)])) as context:
            errors = {
                name: entry.load_error
                for name, entry in context.create_request_context().get_code_location_entries().items()
                if entry.load_error
            }
            if errors:
                raise RuntimeError(
                    "the code location failed to load: "
                    + "; ".join(f"{name}: {error.to_string()}" for name, error in errors.items())
                )
            try:
                yield Launcher(instance, context, worker)
            finally:
                if worker is not None:  # at once, before the code server shuts down
                    worker.cancel_queued(instance)
    finally:
        if worker is not None:
            worker.close()
            # A run the worker never finished (the worker was killed) must not look alive in the UI.
            for run_id in worker.pending:
                run = instance.get_run_by_id(run_id)
                if run is not None and not run.is_finished:
                    instance.report_run_failed(run, "the replay ended before its run worker finished this run")

if __name__ == "__main__":
    serve(Path(sys.argv[1]), Path(sys.argv[2]))
