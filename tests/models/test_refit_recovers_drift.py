"""Continuous training that pays: after a drift injected at a known month D, the retrain decided on
D's report and refitted through D serves D+1 as well as retraining every month does; the old design,
promoting the candidate trained through D-1, serves D+1 with a model that never saw the drift.

Plain Python on a synthetic frame, with the platform's own windows (`RetrainPolicy.training_window`,
`refit_window`), decision rule (`RetrainPolicy.decide`) and training (`ml.training.fit`)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from platform_assets.lib.models.refit import refit_window
from platform_assets.ml.declaration import declared
from platform_assets.ml.metrics import auc_interval, rank_auc
from platform_assets.ml.params import TrainParams
from platform_assets.ml.policy import RetrainPolicy
from platform_assets.ml.training import FitResult, fit, predict_proba
from platform_assets.months import MonthWindow, month_start

SPEC = declared("delay").spec
MONTHS = ("2013-01", "2013-02", "2013-03", "2013-04", "2013-05")
DRIFT, SERVED = "2013-04", "2013-05"
ROWS_PER_MONTH = 3000
POLICY = RetrainPolicy(window_months=2, auc_drop_threshold=0.03, min_auc_gain=0.0, refit=True)
RECIPE = TrainParams(max_epochs=12, patience=3, batch_size=256, validation_days=10, ensemble_size=2, device="cpu")


def synthetic_flights(seed: int = 3) -> pl.DataFrame:
    """Delays driven by `congestion` in every month; from DRIFT on, `storm` (until then pure noise)
    drives them too, as strongly: a new cause of delay that only data from DRIFT on can show."""
    rng = np.random.default_rng(seed)
    frames = []
    for month in MONTHS:
        n = ROWS_PER_MONTH
        congestion, storm, noise = rng.normal(size=(3, n))
        logit = -1.0 + 1.5 * congestion + (2.0 * storm if month >= DRIFT else 0.0)
        seconds = np.sort(rng.integers(0, 28 * 24 * 3600, n))
        frames.append(
            pl.DataFrame(
                {
                    "flight_id": [f"{month}-{i:05d}" for i in range(n)],
                    "event_timestamp": [month_start(month) + timedelta(seconds=int(s)) for s in seconds],
                    "flight_month": month,
                    "origin": rng.choice(["EWR", "JFK", "LGA"], n),
                    "congestion": congestion,
                    "storm": storm,
                    "noise": noise,
                    SPEC.label: (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int32),
                }
            )
        )
    return pl.concat(frames).with_columns(pl.col("event_timestamp").dt.cast_time_unit("us"))


def months_of(flights: pl.DataFrame, window: MonthWindow) -> pl.DataFrame:
    return flights.filter(pl.col("flight_month").is_in(window.months))


def scores(model: FitResult, flights: pl.DataFrame, month: str) -> tuple[np.ndarray, np.ndarray]:
    rows = flights.filter(pl.col("flight_month") == month)
    return rows[SPEC.label].to_numpy(), predict_proba(model.model, model.preprocessor, rows.to_pandas())


def test_refit_recovers_retrain_every_month_auc_after_drift_and_candidate_does_not() -> None:
    flights = synthetic_flights()

    # D's report: the champion, M(D-1), drops on D and the policy asks for a retrain.
    champion_window = POLICY.training_window("2013-03")
    champion = fit(months_of(flights, champion_window), RECIPE, SPEC.columns)
    holdout_auc = rank_auc(*scores(champion, flights, "2013-03"))
    y_drift, p_drift = scores(champion, flights, DRIFT)
    _, auc_high = auc_interval(y_drift, p_drift)
    decision = POLICY.decide({"auc_drop_significant": holdout_auc - auc_high, "drift_share": None}, DRIFT)
    assert decision.retrain, decision.reason

    # The candidate on D's report trains through D-1 (the old design serves it from D+1); the refit
    # moves its window over D, the month the gate read; retraining every month serves M(D+1).
    candidate_window = POLICY.training_window(DRIFT)
    refit = refit_window(candidate_window, [DRIFT])
    monthly_window = POLICY.training_window(SERVED)
    assert (candidate_window, refit, monthly_window) == (
        MonthWindow("2013-02", "2013-03"), MonthWindow("2013-03", "2013-04"), MonthWindow("2013-03", "2013-04"),
    )
    # The refit reuses the candidate's recipe as its MLflow params logged it.
    refit_recipe = TrainParams.from_mlflow_params({k: str(v) for k, v in RECIPE.as_mlflow_params().items()})
    assert refit_recipe == RECIPE
    train = {}
    for design, window, recipe in (
        ("monthly", monthly_window, RECIPE),
        ("refit", refit, refit_recipe),
        ("candidate", candidate_window, RECIPE),
    ):
        train[design] = fit(months_of(flights, window), recipe, SPEC.columns)
    auc = {design: rank_auc(*scores(model, flights, SERVED)) for design, model in train.items()}

    # The best any model that never saw `storm` matter can do on D+1: rank by congestion alone.
    served = flights.filter(pl.col("flight_month") == SERVED)
    pre_drift_ceiling = rank_auc(served[SPEC.label].to_numpy(), served["congestion"].to_numpy())
    print(f"AUC on {SERVED}: {auc}; congestion-only ceiling {pre_drift_ceiling:.4f}")

    # Same window, same recipe, same seeds: the refit is the model retraining every month would serve.
    assert auc["refit"] == pytest.approx(auc["monthly"], abs=1e-6)
    # The candidate learnt delays before `storm` mattered: it cannot beat congestion-only ranking
    # (0.02 of slack for fitting noise; with the true rule that ceiling is about 0.73). A window half
    # before and half after the drift teaches both causes, at half weight for `storm`: about 0.87 in
    # expectation for that weighting, 0.84 as fitted here, 0.10-0.12 above the candidate on seeds 3-6.
    assert auc["candidate"] <= pre_drift_ceiling + 0.02
    assert auc["refit"] - auc["candidate"] >= 0.08
