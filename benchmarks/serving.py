"""Online serving latency over HTTP: the KServe model server (Feast online lookup included) beside
`mlflow models serve` of the same registered version (feature rows sent ready-made, no lookup).

    .venv/bin/python benchmarks/serving.py [--home DIR] [--requests 2000] [--clients 8]

Builds the serving tests' small world (synthetic flights, online Feast store, two registered
versions of the 5-member delay model) under --home unless it is already there, starts both servers
as processes on free ports, and prints one table: one row warm p50/p99, 100 rows p50/p99, and
requests/s with `--clients` concurrent clients sending one row each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_HOME = Path("/tmp/serving_bench")


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


def throughput(make_call: Callable[[requests.Session], Callable[[], requests.Response]],
               clients: int, seconds: float) -> float:
    done = [0] * clients
    failed = []
    stop = threading.Event()

    def client(k: int) -> None:
        with requests.Session() as session:
            call = make_call(session)
            while not stop.is_set():
                if call().status_code != 200:
                    failed.append(k)
                done[k] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    if failed:
        raise RuntimeError(f"{len(failed)} failed requests under load")
    return sum(done) / seconds


def measure(url: str, one: dict, hundred: dict, args: argparse.Namespace) -> tuple[float, ...]:
    """1 row p50/p99, 100 rows p50/p99, and requests/s of 1-row requests from concurrent clients."""
    session = requests.Session()
    p50_1, p99_1 = percentiles(timed(lambda: session.post(url, json=one), args.requests, 200))
    p50_100, p99_100 = percentiles(timed(lambda: session.post(url, json=hundred), 300, 20))
    rps = throughput(lambda s: (lambda: s.post(url, json=one)), args.clients, args.seconds)
    return p50_1, p99_1, p50_100, p99_100, rps


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    from platform_assets.featurestore.historical import historical_features
    from platform_assets.paths import PlatformPaths
    from platform_assets.serving.traffic import FeatureClock, _instance, month_flights
    from tests.serving.conftest import free_port
    from tests.serving.world import FS_YAML, MODEL, World, build_world, served_models_dir

    home = args.home.resolve()
    world = World(home=home, feature_repo=home / "feature_repo")
    if not (world.paths.mlflow_dir / "mlflow.db").exists():
        shutil.rmtree(home, ignore_errors=True)
        print(f"building the serving world in {home} ...", flush=True)
        world = build_world(home)
    models_dir = served_models_dir(world)  # the delay model alone: the world registers no other
    flights = month_flights(world.paths, "2013-03")
    FeatureClock(world.store(), MODEL.feature_service).advance(flights["departure"].max())
    instances = [_instance(r) for r in flights.head(100).to_dicts()]

    # mlflow models serve gets the model's own input: the same flights' feature rows, joined offline.
    from platform_assets.serving.evaluation import day_outcomes

    events = day_outcomes(world.paths, "2013-03")
    offline = historical_features(
        world.store(),
        events.select("flight_id", "event_timestamp", "origin", "dest", "route", "carrier", "tailnum",
                      "distance", "sched_dep_hour", "sched_dep_dow").to_pandas(),
        MODEL.feature_service,
    )
    import mlflow

    from platform_assets.ml.pyfunc import load_version, signature_input

    mlflow.set_tracking_uri(world.tracking_uri)
    mlflow.set_registry_uri(world.tracking_uri)

    from platform_assets.serving.instances import parse_body

    # The same 100 flights, in the same order, as the instances sent to the model server.
    ids = [f.flight_id for f in parse_body({"instances": instances}, {"EWR", "JFK", "LGA"},
                                           {i["dest"] for i in instances})]
    offline = offline.set_index("flight_id").loc[ids].reset_index()
    model_rows = signature_input(load_version(MODEL.name, "1"), offline)
    model_rows = model_rows.astype(object).where(model_rows.notna(), None)

    def split(n: int) -> dict:
        return {"dataframe_split": {"columns": list(model_rows.columns),
                                    "data": model_rows.head(n).values.tolist()}}

    # mlflow models serve execs `uvicorn` from PATH: the virtualenv's bin comes first.
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MLFLOW_TRACKING_URI": world.tracking_uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    ours_port, mlflow_port = free_port(), free_port()
    logs = home / "bench_logs"
    logs.mkdir(exist_ok=True)
    processes = []
    try:
        ours_log = logs / "kserve.log"
        with ours_log.open("w") as out:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "platform_assets.serving.server", "--port", str(ours_port),
                 "--platform-home", str(home / "bench_home"), "--tracking-uri", world.tracking_uri,
                 "--feature-repo", str(world.feature_repo), "--feature-store-yaml", FS_YAML,
                 "--models-dir", str(models_dir)],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT))
        mlflow_log = logs / "mlflow.log"
        with mlflow_log.open("w") as out:
            processes.append(subprocess.Popen(
                [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
                 f"models:/{MODEL.name}/1", "-p", str(mlflow_port), "-h", "127.0.0.1",
                 "--env-manager", "local", "-w", "1"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT))
        ours = f"http://127.0.0.1:{ours_port}"
        theirs = f"http://127.0.0.1:{mlflow_port}"
        wait_ready(f"{ours}/v1/models/{MODEL.name}", processes[0], ours_log)
        wait_ready(f"{theirs}/ping", processes[1], mlflow_log)

        predict = f"{ours}/v1/models/{MODEL.name}:predict"
        invocations = f"{theirs}/invocations"
        rows = {
            "kserve server + Feast lookup": measure(
                predict, {"instances": instances[:1]}, {"instances": instances}, args
            ),
            "mlflow models serve (no lookup)": measure(invocations, split(1), split(100), args),
        }
        # The same flights with the same feature values get the same probability from both: the
        # feature values the model server logged are sent to mlflow models serve.
        answered = requests.post(predict, json={"instances": instances}).json()["predictions"]
        processes[0].terminate()
        processes[0].wait(timeout=30)  # flushes the request log
        from platform_assets.serving.evaluation import served_features
        from platform_assets.serving.request_log_files import read_all

        served = served_features(read_all(PlatformPaths(home / "bench_home"), MODEL.name)).set_index("flight_id")
        same = offline.set_index("flight_id").loc[ids].copy()
        for column in served.columns.drop("event_timestamp"):
            same[column] = served.loc[ids, column].to_numpy()
        rows_served = signature_input(load_version(MODEL.name, "1"), same.reset_index())
        rows_served = rows_served.astype(object).where(rows_served.notna(), None)
        body = {"dataframe_split": {"columns": list(rows_served.columns), "data": rows_served.values.tolist()}}
        mlflow_scores = requests.post(invocations, json=body).json()["predictions"]
        gap = max(abs(a - b) for a, b in zip(answered, mlflow_scores))
    finally:
        for p in processes:
            p.terminate()
            p.wait(timeout=30)

    load = os.getloadavg()[0]
    print(f"\nserving benchmark: {os.cpu_count()} CPU cores (load average {load:.1f}), {args.requests} warm 1-row requests, "
          f"300 requests of 100 rows, {args.clients} clients x {args.seconds:.0f} s")
    header = f"{'server':34} {'1 row p50':>10} {'1 row p99':>10} {'100 p50':>9} {'100 p99':>9} {'req/s (8 cl.)':>14}"
    print(header)
    print("-" * len(header))
    for name, (a, b, c, d, e) in rows.items():
        print(f"{name:34} {a:8.2f}ms {b:8.2f}ms {c:7.2f}ms {d:7.2f}ms {e:14.0f}")
    print(f"max |score difference| between the two on 100 flights, same feature values: {gap:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
