"""Held-out AUC of the torch delay model next to the HistGradientBoosting baseline, window by window.

    .venv/bin/python benchmarks/model_quality.py [--home .platform] [--ensemble-size K] [--months-ahead 2]

Needs a replayed PLATFORM_HOME (`make run`): the first training set and the prediction logs hold the
point-in-time features and labels of every month. For each rolling 4-month window with a month after it,
both models train on the window's rows exactly as `delay/model` and `delay/evaluation` do (same time
split, same validation days and seed) and are scored on the next month and, with --months-ahead 2,
on the month after that as well. Prints one row per window, then the mean and worst gap.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from platform_assets import constants
from platform_assets.lib.partitions import monthly_partitions
from platform_assets.lib.retrain_replay import (
    MODEL,
    REPLAYED,
    TRAINING_SET,
    month_features,
    scored_months,
)
from platform_assets.ml.evaluation import hgb_baseline
from platform_assets.ml.metrics import rank_auc
from platform_assets.ml.params import TrainParams
from platform_assets.ml.training import fit, predict_proba
from platform_assets.paths import PlatformPaths

LABEL = MODEL.label


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--home", type=Path, default=Path(".platform"), help="a replayed PLATFORM_HOME"
    )
    parser.add_argument("--ensemble-size", type=int, default=TrainParams().ensemble_size)
    parser.add_argument(
        "--recipe-of", default="",
        help="a registered version whose recipe (MLflow params) to train, e.g. the first champion's "
        "searched one; default: TrainParams' defaults",
    )
    parser.add_argument("--months-ahead", type=int, default=2, choices=(1, 2))
    parser.add_argument("--window-months", type=int, default=constants.RETRAIN_WINDOW_MONTHS)
    args = parser.parse_args()

    paths = PlatformPaths(args.home)
    initial = paths.training_set_file(
        REPLAYED.training.start_month, REPLAYED.training.end_month, TRAINING_SET
    )
    if not initial.exists():
        sys.exit(
            f"{initial} is missing: run `make run` (or set --home to a replayed PLATFORM_HOME)"
        )
    initial_set = pl.read_parquet(initial)
    keys = monthly_partitions.get_partition_keys()
    scored = set(scored_months(paths, constants.REPLAY_FIRST_SCORED_MONTH))
    known = set(initial_set["flight_month"].unique().to_list()) | scored
    params = replace(TrainParams(), device="cpu", ensemble_size=args.ensemble_size)
    if args.recipe_of:
        from platform_assets.lib.resources import MLflowResource

        client = MLflowResource(home=str(args.home)).client()
        run_id = client.get_model_version(MODEL.name, args.recipe_of).run_id
        logged = TrainParams.from_mlflow_params(client.get_run(run_id).data.params)
        params = replace(logged, device="cpu", ensemble_size=args.ensemble_size)
    print(
        f"torch: {params.ensemble_size} x MLP{list(params.hidden_sizes)} dropout {params.dropout}; "
        f"HistGradientBoosting: early-stopped on the same validation days; home {args.home}"
    )
    gaps: dict[int, list[tuple[float, float]]] = {k: [] for k in range(1, args.months_ahead + 1)}
    for end in range(args.window_months - 1, len(keys) - 1):
        window = keys[end - args.window_months + 1 : end + 1]
        ahead = [keys[end + k] for k in gaps if end + k < len(keys) and keys[end + k] in scored]
        if not ahead or not set(window) <= known:
            continue
        frame = pl.concat([month_features(paths, initial_set, m) for m in window])
        started = time.perf_counter()
        torch_fit = fit(frame, params, MODEL.columns)
        torch_seconds = time.perf_counter() - started
        started = time.perf_counter()
        hgb = hgb_baseline(frame, MODEL.columns, params.validation_days, params.seed)
        hgb_seconds = time.perf_counter() - started
        cells = [f"{window[0]}..{window[-1]}  torch {torch_seconds:5.1f}s  hgb {hgb_seconds:4.1f}s"]
        for k, month in enumerate(ahead, start=1):
            holdout = month_features(paths, initial_set, month).to_pandas()
            y = holdout[LABEL].to_numpy()
            a = rank_auc(y, predict_proba(torch_fit.model, torch_fit.preprocessor, holdout))
            b = rank_auc(y, hgb.predict_proba(holdout))
            gaps[k].append((a, b))
            cells.append(f"{month}: torch {a:.4f} hgb {b:.4f} ({a - b:+.4f})")
        print("  ".join(cells), flush=True)
    for k, pairs in gaps.items():
        if not pairs:
            continue
        torch_auc, hgb_auc = np.array(pairs).T
        diff = torch_auc - hgb_auc
        print(
            f"month +{k}: {len(pairs)} windows, mean AUC torch {torch_auc.mean():.4f} hgb {hgb_auc.mean():.4f}, "
            f"gap mean {diff.mean():+.4f} worst {diff.min():+.4f}, "
            f"within 0.01 or better: {(diff >= -0.01).sum()}/{len(pairs)}"
        )


if __name__ == "__main__":
    main()
