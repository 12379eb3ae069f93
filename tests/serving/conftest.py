from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest
import requests

from platform_assets.serving.traffic import ReplayResult, month_flights, replay
from tests.serving.world import FS_YAML, MODEL, World, build_world

MODEL_URL = "/v1/models/flight_delay_model"
REPLAY_DAYS = (1, 2)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll until the event happened (the deadline only turns a hang into a failure)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Synthetic Jan-Mar flights, an online Feast store, champion v1 and challenger v2; built once."""
    return build_world(tmp_path_factory.mktemp("serving_world"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, home: Path, process: subprocess.Popen, log_file: Path) -> None:
        self.url, self.home, self.process, self.log_file = url, home, process, log_file

    @property
    def predict_url(self) -> str:
        return f"{self.url}{MODEL_URL}:predict"

    def predict(self, instances: list[dict], session: requests.Session | None = None) -> requests.Response:
        return (session or requests).post(self.predict_url, json={"instances": instances}, timeout=30)

    def infer_url(self, model: str = "flight_delay_model") -> str:
        return f"{self.url}/v2/models/{model}/infer"

    def metric(self, name: str, **labels: str) -> float:
        """A sample of /metrics (Prometheus text), 0 when the series does not exist yet."""
        from prometheus_client.parser import text_string_to_metric_families

        text = requests.get(f"{self.url}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        return 0.0

    def kill(self) -> None:
        """SIGKILL: nothing runs after it, no flush."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM, as a pod gets: the server flushes its request log and exits."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def running_server(world: World, home: Path, *args: str, tracking_uri: str | None = None) -> Iterator[Server]:
    """The real server process (`python -m platform_assets.serving.server`) on a free port, serving
    the world's declarations: the delay and cancellation models (a `--models-dir` or another flag
    in `args` comes later and wins)."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log_file = home / "server.log"
    command = [
        sys.executable, "-m", "platform_assets.serving.server",
        "--port", str(port),
        "--platform-home", str(home),
        "--tracking-uri", tracking_uri or world.tracking_uri,
        "--feature-repo", str(world.feature_repo),
        "--feature-store-yaml", FS_YAML,
        "--log-flush-seconds", "0.2",
        "--models-dir", str(world.models_dir),
        *args,
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with log_file.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", home, process, log_file)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{log_file.read_text()[-3000:]}")
            try:
                if requests.get(f"{server.url}{MODEL_URL}", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready in 90 s:\n{log_file.read_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


def copy_registry(world: World, target: Path) -> str:
    """A copy of the MLflow store (the artefacts stay shared, read-only) for tests that move aliases."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(world.paths.mlflow_dir / "mlflow.db", target / "mlflow.db")
    return f"sqlite:///{target / 'mlflow.db'}"


@pytest.fixture(scope="session")
def replayed(world: World) -> tuple[pl.DataFrame, ReplayResult]:
    """March 1-2 replayed against a shadow-mode server writing its log into the world's home."""
    flights = month_flights(world.paths, "2013-03").filter(pl.col("day").is_in(REPLAY_DAYS))
    with running_server(world, world.home, "--rollout", "shadow") as server:
        result = replay(flights, world.store(), server.url, MODEL.feature_service, MODEL.name)
    return flights, result
