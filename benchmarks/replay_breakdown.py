"""Where the replay's time goes: per step and per kind of overhead, from the Dagster instance.

Reads a finished replay (`make run`, or `--run` to make one in a fresh PLATFORM_HOME first) and sums
its runs' step timings from the event log, so the table covers every run `make run` made:

- each step kind (landing, validation, dbt build, Feast apply/materialize, training set, training,
  evaluation, scoring, Evidently drift report, replay summary), summed over the replay;
- run overhead: each run's wall time minus its steps (run start, resources, event writes);
- outside runs: the replay's wall time when no run was executing (code location load, sensor
  ticks, waits);
- overlap: run time spent while another run was executing too. The replay runs month m+1's
  pipeline in a background worker while month m is scored, so the steps add up to more than the
  replay's wall time; the overlap is by how much.

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


if __name__ == "__main__":
    main()
