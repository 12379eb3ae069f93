"""Online serving over HTTP: the KServe model server (Feast online lookup included) on both protocols,
beside `mlflow models serve` of the same registered version (feature rows sent ready-made, no
lookup); and what the request log loses when the server is killed.

    .venv/bin/python benchmarks/serving.py [--home DIR] [--requests 2000] [--clients 8] [--seconds 10]

Builds the serving tests' small world (synthetic flights, online Feast store, the 5-member delay
model) under --home unless it is already there, starts the servers as processes on free ports, and
prints: per protocol (v1 `instances`, v2 tensors built from the model's metadata) 1 row warm p50/p99,
100 rows p50/p99 and requests/s with `--clients` concurrent clients sending one row each; then the
request log under load: after SIGKILL, the answered requests missing from the log and how long
before the kill the oldest of them was answered (against the flush interval); after SIGTERM, the
missing ones (none expected).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_HOME = Path("/tmp/serving_bench")
MODEL_NAME = "flight_delay_model"


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1e3, cuts[98] * 1e3


def timed(call: Callable[[], requests.Response], calls: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call().raise_for_status()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        response = call()
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
    return samples


def load(make_call: Callable[[requests.Session, int], requests.Response], clients: int,
         until: Callable[[], bool]) -> tuple[dict[str, float], list[int]]:
    """`clients` threads calling until `until()` (or the server is gone): request id -> when its
    answer came (perf_counter), and the statuses of failed requests."""
    answered: dict[str, float] = {}
    failed: list[int] = []

    def client(k: int) -> None:
        with requests.Session() as session:
            i = 0
            while not until():
                try:
                    response = make_call(session, k * 10_000_000 + i)
                except requests.ConnectionError:
                    return
                if response.status_code == 200:
                    answered[f"{k}-{i}"] = time.perf_counter()
                else:
                    failed.append(response.status_code)
                i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answered, failed


def within(metrics_url: str, protocol: str, seconds: float = 0.004) -> tuple[float, float]:
    """The server's own count of answered requests, and of those answered within `seconds`
    (its latency histogram on /metrics: arrival to answer, without the client and the network)."""
    from prometheus_client.parser import text_string_to_metric_families

    found = {"count": 0.0, "within": 0.0}
    for family in text_string_to_metric_families(requests.get(metrics_url, timeout=10).text):
        for sample in family.samples:
            if sample.labels.get("protocol") != protocol or sample.labels.get("model") != MODEL_NAME:
                continue
            if sample.name == "model_request_duration_seconds_count":
                found["count"] += sample.value
            elif sample.name == "model_request_duration_seconds_bucket" and float(sample.labels["le"]) == seconds:
                found["within"] += sample.value
    return found["count"], found["within"]


def measure(url: str, one: dict, hundred: dict, args: argparse.Namespace,
            probe: Callable[[], tuple[float, float]] | None = None) -> tuple[float, ...]:
    """1 row p50/p99, 100 rows p50/p99, requests/s of 1-row requests from concurrent clients, and
    the share of the 1-row requests the server answered within 4 ms by its own clock (`probe`)."""
    session = requests.Session()
    timed(lambda: session.post(url, json=one), 0, 200)  # warm up, outside the server's count below
    before = probe() if probe else (0.0, 0.0)
    p50_1, p99_1 = percentiles(timed(lambda: session.post(url, json=one), args.requests, 0))
    after = probe() if probe else (1.0, float("nan"))
    server_share = (after[1] - before[1]) / (after[0] - before[0])
    p50_100, p99_100 = percentiles(timed(lambda: session.post(url, json=hundred), 300, 20))
    end = time.monotonic() + args.seconds
    answered, failed = load(lambda s, _: s.post(url, json=one), args.clients, lambda: time.monotonic() > end)
    if failed:
        raise RuntimeError(f"{len(failed)} failed requests under load: {failed[:5]}")
    return p50_1, p99_1, p50_100, p99_100, len(answered) / args.seconds, server_share


def v2_body(metadata: dict, instances: list[dict]) -> dict:
    """An Open Inference request built from the model's metadata alone."""
    return {"inputs": [
        {"name": t["name"], "datatype": t["datatype"], "shape": [len(instances)],
         "data": ["" if i[t["name"]] is None and t["datatype"] == "BYTES" else i[t["name"]] for i in instances]}
        for t in metadata["inputs"]
    ]}


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready:\n{log.read_text()[-3000:]}")


def start_server(world: Any, home: Path, env: dict, *flags: str) -> tuple[subprocess.Popen, str]:
    """The model server for the delay model alone (the world may hold another) on a free port."""
    from tests.serving.conftest import free_port
    from tests.serving.world import FS_YAML

    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "platform_assets.serving.server", "--port", str(port),
             "--platform-home", str(home), "--tracking-uri", world.tracking_uri,
             "--feature-repo", str(world.feature_repo), "--feature-store-yaml", FS_YAML,
             "--models-dir", str(world.models_dir), "--serve-model", MODEL_NAME, *flags],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/v1/models/{MODEL_NAME}", process, log)
    return process, url


def request_log_loss(world: Any, home: Path, env: dict, instances: list[dict], args: argparse.Namespace,
                     stop: signal.Signals) -> tuple[int, int, float]:
    """Load from `args.clients` clients, then `stop` the server: (answered, missing from the log,
    ms between the oldest missing answer and the signal)."""
    from platform_assets.paths import PlatformPaths
    from platform_assets.serving.request_log_files import read_all

    shutil.rmtree(home, ignore_errors=True)
    process, url = start_server(world, home, env, "--log-flush-seconds", str(args.flush_seconds))
    predict = f"{url}/v1/models/{MODEL_NAME}:predict"
    sent_at = time.monotonic()
    killed: list[float] = []

    def until() -> bool:
        if not killed and time.monotonic() - sent_at > args.seconds / 2:
            killed.append(time.perf_counter())
            process.send_signal(stop)
        return bool(killed)

    answered, _ = load(lambda s, i: s.post(predict, json={"instances": [instances[i % len(instances)]]},
                                        headers={"x-request-id": f"{i // 10_000_000}-{i % 10_000_000}"}),
                    args.clients, until)
    process.wait(timeout=60)
    logged = set(read_all(PlatformPaths(home), MODEL_NAME)["request_id"])
    missing = [at for request_id, at in answered.items() if request_id not in logged]
    window = (killed[0] - min(missing)) * 1e3 if missing else 0.0
    return len(answered), len(missing), window


def mlflow_rows(world: Any, instances: list[dict]) -> Callable[[int], dict]:
    """mlflow models serve gets the model's own input: the same flights' feature rows, joined offline."""
    import mlflow

    from platform_assets.featurestore.historical import historical_features
    from platform_assets.ml.pyfunc import load_version, signature_input
    from platform_assets.serving.evaluation import day_outcomes
    from platform_assets.serving.instances import parse_body
    from tests.serving.world import MODEL

    mlflow.set_tracking_uri(world.tracking_uri)
    mlflow.set_registry_uri(world.tracking_uri)
    events = day_outcomes(world.paths, "2013-03")
    offline = historical_features(
        world.store(),
        events.select("flight_id", "event_timestamp", "origin", "dest", "route", "carrier", "tailnum",
                      "distance", "sched_dep_hour", "sched_dep_dow").to_pandas(),
        MODEL.feature_service,
    )
    ids = [f.flight_id for f in parse_body({"instances": instances}, {"EWR", "JFK", "LGA"},
                                           {i["dest"] for i in instances})]
    offline = offline.set_index("flight_id").loc[ids].reset_index()
    rows = signature_input(load_version(MODEL.name, "1"), offline)
    rows = rows.astype(object).where(rows.notna(), None)
    return lambda n: {"dataframe_split": {"columns": list(rows.columns), "data": rows.head(n).values.tolist()}}


def serve_mlflow(world: Any, env: dict, logs: Path) -> tuple[subprocess.Popen, str]:
    from tests.serving.conftest import free_port

    port = free_port()
    log = logs / "mlflow.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", f"models:/{MODEL_NAME}/1",
             "-p", str(port), "-h", "127.0.0.1", "--env-manager", "local", "-w", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/ping", process, log)
    return process, url


def the_world(home: Path) -> tuple[Any, list[dict]]:
    from platform_assets.serving.traffic import FeatureClock, _instance, month_flights
    from tests.serving.world import MODEL, World, build_world, served_models_dir

    world = World(home=home, feature_repo=home / "feature_repo")
    if not (world.paths.mlflow_dir / "mlflow.db").exists():
        shutil.rmtree(home, ignore_errors=True)
        print(f"building the serving world in {home} ...", flush=True)
        world = build_world(home)
    served_models_dir(world)
    flights = month_flights(world.paths, "2013-03")
    FeatureClock(world.store(), MODEL.feature_service).advance(flights["departure"].max())
    return world, [_instance(r) for r in flights.head(100).to_dicts()]


def latencies(world: Any, instances: list[dict], env: dict, args: argparse.Namespace) -> dict[str, tuple]:
    split = mlflow_rows(world, instances)
    processes = []
    try:
        ours, url = start_server(world, args.home / "bench_home", env)
        processes.append(ours)
        theirs, mlflow_url = serve_mlflow(world, env, args.home)
        processes.append(theirs)
        metadata = requests.get(f"{url}/v2/models/{MODEL_NAME}", timeout=10).json()
        v1, v2 = f"{url}/v1/models/{MODEL_NAME}:predict", f"{url}/v2/models/{MODEL_NAME}/infer"
        probe = {p: (lambda p=p: within(f"{url}/metrics", p)) for p in ("v1", "v2")}
        return {
            "kserve v1 + Feast lookup": measure(v1, {"instances": instances[:1]}, {"instances": instances}, args,
                                                probe["v1"]),
            "kserve v2 + Feast lookup": measure(v2, v2_body(metadata, instances[:1]), v2_body(metadata, instances),
                                                args, probe["v2"]),
            "mlflow models serve (no lookup)": measure(f"{mlflow_url}/invocations", split(1), split(100), args),
        }
    finally:
        for p in processes:
            p.terminate()
            p.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flush-seconds", type=float, default=1.0, help="the server's request log flush interval")
    args = parser.parse_args()
    args.home = args.home.resolve()
    world, instances = the_world(args.home)
    # mlflow models serve execs `uvicorn` from PATH: the virtualenv's bin comes first.
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MLFLOW_TRACKING_URI": world.tracking_uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    rows = latencies(world, instances, env, args)
    killed = request_log_loss(world, args.home / "kill_home", env, instances, args, signal.SIGKILL)
    termed = request_log_loss(world, args.home / "term_home", env, instances, args, signal.SIGTERM)

    print(f"\nserving benchmark: {os.cpu_count()} CPU cores (load average {os.getloadavg()[0]:.1f}), "
          f"{args.requests} warm 1-row requests, 300 requests of 100 rows, {args.clients} clients x {args.seconds:.0f} s")
    header = (f"{'server':34} {'1 row p50':>10} {'1 row p99':>10} {'100 p50':>9} {'100 p99':>9} {'req/s':>8}"
              f" {'1 row <= 4 ms, server clock':>28}")
    print(header)
    print("-" * len(header))
    for name, (a, b, c, d, e, f) in rows.items():
        share = "-" if math.isnan(f) else f"{f:.2%}"  # nan: not our server, no histogram
        print(f"{name:34} {a:8.2f}ms {b:8.2f}ms {c:7.2f}ms {d:7.2f}ms {e:8.0f} {share:>28}")
    print(f"request log, {args.clients} clients, flush every {args.flush_seconds:.1f} s:")
    print(f"  SIGKILL: {killed[1]} of {killed[0]} answered requests not in the log, the oldest answered "
          f"{killed[2]:.0f} ms before the kill")
    print(f"  SIGTERM: {termed[1]} of {termed[0]} answered requests not in the log")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
