"""Dagster's own webserver and daemon for the replay: `dagster dev` on the local instance.

`make run` starts it as `make ui` does (same workspace.yaml, same DAGSTER_HOME, the instance's
QueuedRunCoordinator and DefaultRunLauncher), and stops it and every process it started (code
server, daemon, run workers) when the replay ends, fails or is interrupted. Runs are submitted only
through the public GraphQL API (`dagster_graphql.DagsterGraphQLClient`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psutil

from platform_assets.settings import REPO_ROOT

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
STOP_TIMEOUT = 30.0


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) != 0


def wait_until_served(process: subprocess.Popen, port: int, log: Path, timeout: float = 180) -> None:
    """Until the webserver answers and the code location has loaded (or `dagster dev` exits)."""
    deadline = time.monotonic() + timeout
    url = f"http://{HOST}:{port}/server_info"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited ({process.returncode}) before serving; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"dagster dev did not serve {url} within {timeout:.0f}s; see {log}")


def stop_tree(process: subprocess.Popen, timeout: float = STOP_TIMEOUT, dagster_home: str | None = None) -> list[int]:
    """SIGTERM `process` and everything it started (found before the signal, so none escapes by
    being re-parented), wait, then SIGKILL what is left. Returns the pids that had to be killed."""
    try:
        root = psutil.Process(process.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        process.wait()
        return stop_strays(dagster_home)
    for member in tree:
        try:
            member.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=timeout)
    for member in alive:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout)
    process.wait()
    return [member.pid for member in alive] + stop_strays(dagster_home)


def stop_strays(dagster_home: str | None) -> list[int]:
    """Kill what escaped the tree (a code server re-parented before the tree was read, say): any
    process but this one whose environment names this DAGSTER_HOME."""
    if dagster_home is None:
        return []
    strays = []
    for other in psutil.process_iter():
        try:
            if other.pid != os.getpid() and other.environ().get("DAGSTER_HOME") == dagster_home:
                other.kill()
                strays.append(other)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    psutil.wait_procs(strays, timeout=STOP_TIMEOUT)
    return [other.pid for other in strays]


@contextmanager
def dagster_dev(env: Mapping[str, str], log: Path, port: int = 3000) -> Iterator[subprocess.Popen]:
    """`dagster dev` (webserver on `port`, daemon, code server) with its output in `log`."""
    if not port_free(port):
        raise SystemExit(f"port {port} is in use (is `make ui` running?): stop it first")
    with log.open("a") as sink:
        process = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", HOST, "-p", str(port)],
            cwd=REPO_ROOT, env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT,
        )
    try:
        wait_until_served(process, port, log)
        yield process
    finally:
        stop_tree(process, dagster_home=env.get("DAGSTER_HOME"))


def graphql(port: int, query: str, variables: Mapping[str, object]) -> dict:
    """One request to the webserver's public GraphQL API (what the UI and DagsterGraphQLClient send)."""
    request = urllib.request.Request(
        f"http://{HOST}:{port}/graphql",
        data=json.dumps({"query": query, "variables": dict(variables)}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        body = json.load(answer)
    if body.get("errors"):
        raise RuntimeError(f"GraphQL error: {body['errors']}")
    return body["data"]


SENSOR_STATE = """
query SensorState($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { id status } }
    ... on PythonError { message }
  }
}"""

STOP_SENSOR = """
mutation StopSensor($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}"""


def stop_sensor(port: int, location: str, name: str) -> str:
    """Stop a sensor as the UI's toggle does; returns its status afterwards."""
    selector = {"repositoryLocationName": location, "repositoryName": "__repository__", "sensorName": name}
    found = graphql(port, SENSOR_STATE, {"selector": selector})["sensorOrError"]
    if found["__typename"] != "Sensor":
        raise RuntimeError(f"sensor {name}: {found}")
    if found["sensorState"]["status"] == "STOPPED":
        return "STOPPED"
    stopped = graphql(port, STOP_SENSOR, {"id": found["sensorState"]["id"]})["stopSensor"]
    if stopped["__typename"] != "StopSensorMutationResult":
        raise RuntimeError(f"stopping sensor {name}: {stopped}")
    return stopped["instigationState"]["status"]
