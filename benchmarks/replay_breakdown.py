"""Where the replay's time goes: per step and per kind of overhead, from the Dagster instance.

Reads a finished replay (`make run`, or `--run` to make one in a fresh PLATFORM_HOME first) and sums
its runs' step timings from the event log, so the table covers every run `make run` made:

- each step kind (landing, validation, dbt build, Feast apply/materialize, training set, training,
  evaluation, scoring, Evidently drift report, replay summary), summed over the replay;
- run overhead: each run's wall time minus its steps (run start, resources, event writes);
- outside runs: the replay's wall time when no run was executing (code location load, sensor
  ticks, waits);
- overlap: run time spent while another run was executing too. The months' pipelines run ahead
  while a month is scored, so the steps add up to more than the replay's wall time; the overlap is
  by how much.

and the engine's cost per run, per job (every run is queued, dequeued by the daemon and launched as
a process of its own):

- queued: run created (by a sensor or the GraphQL API) to its launch by the daemon (RUN_STARTING;
  the months' pipelines wait there for their lane);
- start-up: launch to the first step (process start, code-location load, resources)
  (the first-use imports of Feast, torch, MLflow and Evidently fall in the steps that use them);
- tick latency: for a model's runs, the model's previous run's end to this run's creation (the
  drift sensor's next tick: the sensor daemon evaluates at most every 5 s).

    .venv/bin/python benchmarks/replay_breakdown.py [--home .platform] [--run]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Step key -> kind, first match wins.
KINDS: list[tuple[str, str]] = [
    (r"^raw_", "landing (raw files to parquet)"),
    (r"^(flights|weather|planes|airports|airlines)$", "validation (pandera, quarantine)"),
    (r"dbt|^warehouse_models$", "dbt build (warehouse + feature tables)"),
    (r"^feast_registry$", "Feast apply"),
    (r"^online_features$", "Feast materialize (online store)"),
    (r"training_set$", "training set (point-in-time join)"),
    (r"^[a-z_]+__model$", "training (torch ensemble + MLflow logging)"),  # each model's <prefix>__model
    (r"evaluation$", "evaluation (gate, HGB baseline, MLflow)"),
    (r"champion$", "promotion (MLflow alias)"),
    (r"predictions$", "scoring (features + champion)"),
    (r"drift_report$", "drift report (Evidently)"),
    (r"^replay_summary$", "replay summary (frozen/monthly policies)"),
]


def kind_of(step_key: str) -> str:
    for pattern, kind in KINDS:
        if re.search(pattern, step_key):
            return kind
    return f"other ({step_key})"


def breakdown(home: Path) -> tuple[list[tuple[str, float, int]], dict[str, float]]:
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        if not runs:
            raise SystemExit(f"no runs in {home / 'dagster'}: run `make run` (or pass --run)")
        steps: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        in_steps = in_runs = 0.0
        intervals: list[tuple[float, float]] = []
        for run in runs:
            stats = instance.get_run_stats(run.run_id)
            if not (stats.start_time and stats.end_time):
                continue
            in_runs += stats.end_time - stats.start_time
            intervals.append((stats.start_time, stats.end_time))
            for step in instance.get_run_step_stats(run.run_id):
                if step.start_time and step.end_time:
                    kind = kind_of(step.step_key)
                    steps[kind] += step.end_time - step.start_time
                    counts[kind] += 1
                    in_steps += step.end_time - step.start_time
        rows = sorted(((k, v, counts[k]) for k, v in steps.items()), key=lambda r: -r[1])
        busy = covered(intervals)
        span = max(end for _, end in intervals) - min(start for start, _ in intervals)
        totals = {
            "runs": float(len(runs)),
            "steps": in_steps,
            "run overhead (in runs, outside steps)": in_runs - in_steps,
            "between runs (code location, sensor ticks, process)": span - busy,
            "overlap (runs executing beside another run)": in_runs - busy,
            "first run start to last run end": span,
        }
        return rows, totals


def engine_costs(home: Path) -> list[tuple[str, int, float, float, float]]:
    """Per job: (job, runs, mean queued s, mean start-up s, mean tick latency s or nan)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        records = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
        per_job: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        model_end: dict[str, float] = {}
        for record in records:
            run = record.dagster_run
            created = record.create_timestamp.timestamp()
            events = {
                e.dagster_event.event_type_value: e.timestamp
                for e in reversed(instance.all_logs(run.run_id))
                if e.dagster_event is not None
            }
            dequeued = events.get("PIPELINE_STARTING", created)  # the daemon dequeued and launched it
            first_step = events.get("STEP_START")
            if first_step is None or record.end_time is None:
                continue
            model = run.tags.get("platform/model")
            tick = created - model_end[model] if model in model_end and run.tags.get("dagster/sensor_name") else float("nan")
            if model:
                model_end[model] = record.end_time
            per_job[run.job_name].append((dequeued - created, first_step - dequeued, tick))
        rows = []
        for job, costs in sorted(per_job.items()):
            ticks = [c[2] for c in costs if c[2] == c[2]]
            rows.append((job, len(costs), sum(c[0] for c in costs) / len(costs), sum(c[1] for c in costs) / len(costs),
                         sum(ticks) / len(ticks) if ticks else float("nan")))
        return rows


def covered(intervals: list[tuple[float, float]]) -> float:
    """Seconds during which at least one of the intervals was open."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, default=REPO / ".platform")
    parser.add_argument("--run", action="store_true", help="make a fresh replay in --home first")
    args = parser.parse_args()
    home = args.home.resolve()
    wall = None
    if args.run:
        if (home / "dagster").exists():
            raise SystemExit(f"{home} already holds a replay; pass an empty --home")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "platform_assets", "run"], cwd=REPO, check=True,
                       env={**os.environ, "PLATFORM_HOME": str(home)})
        wall = time.perf_counter() - started
    rows, totals = breakdown(home)
    span = totals["first run start to last run end"]
    print(f"\nreplay in {home}: {int(totals['runs'])} runs")
    print(f"{'where':<52} {'seconds':>8} {'share':>6} {'steps':>6}")
    for kind, seconds, count in rows:
        print(f"{kind:<52} {seconds:>8.1f} {seconds / span:>6.1%} {count:>6}")
    for key in ("run overhead (in runs, outside steps)", "between runs (code location, sensor ticks, process)"):
        print(f"{key:<52} {totals[key]:>8.1f} {totals[key] / span:>6.1%}")
    key = "overlap (runs executing beside another run)"
    print(f"{'minus ' + key:<52} {-totals[key]:>8.1f} {-totals[key] / span:>6.1%}")
    print(f"{'first run start to last run end':<52} {span:>8.1f}")
    if wall is not None:
        print(f"{'make run wall time (process start to exit)':<52} {wall:>8.1f}")
    print(f"\n{'job (engine cost per run, means)':<36} {'runs':>5} {'queued':>7} {'start-up':>9} {'tick':>6}")
    for job, count, queued, startup, tick in engine_costs(home):
        print(f"{job:<36} {count:>5} {queued:>7.1f} {startup:>9.1f} {tick:>6.1f}")


if __name__ == "__main__":
    main()
