from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

from platform_assets.lib.models.promotion import gate_result
from platform_assets.ml.evaluation import EvaluationReport
from platform_assets.ml.params import TrainParams
from platform_assets.ml.preprocessing import (
    Preprocessor,
    category_codes,
    category_strings,
    labelled,
    split_by_time,
)
from platform_assets.ml.pyfunc import log_model, signature_input
from platform_assets.ml.training import BatchedEnsemble, predict_proba
from platform_assets.ml.training import fit as fit_tabular
from tests.models.conftest import FAST_TRAINING, MODEL, TRAIN_END, TRAIN_START

LABEL = MODEL.label


def fit(frame: pl.DataFrame, params: TrainParams):
    """The delay model's fit, as its training asset runs it."""
    return fit_tabular(frame, params, MODEL.columns)


def _training_set(world) -> pl.DataFrame:
    from platform_assets.paths import PlatformPaths

    return pl.read_parquet(PlatformPaths(world).training_set_file(TRAIN_START, TRAIN_END, "delay_training_set"))


def test_preprocessing_ranks_bins_flags_missing_and_maps_unknown_categories() -> None:
    train = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 4.0, 1000.0, None], "carrier": ["AA", "UA", "AA", "AA", "UA", "AA"]}
    )
    pre = Preprocessor.fit(train, ["x"], ["carrier"], knots=5, bins=4)
    assert pre.indicators == ["x"] and pre.bin_edges == [[2.0, 3.0, 4.0]]
    probe = pd.DataFrame(
        {
            "x": [3.0, None, -50.0, 1.0, 1e9, 1000.0, 2.5],
            "carrier": ["AA", "UA", "ZZ", None, "AA", "AA", "AA"],
        }
    )
    numeric, codes = pre.transform(probe)
    ranked, flag = numeric[:, 0], numeric[:, 1]
    # the training median ranks at 0, and so does a missing value (flagged)
    assert ranked[0] == pytest.approx(0.0, abs=1e-6) and ranked[1] == 0.0
    assert flag.tolist() == [0, 1, 0, 0, 0, 0, 0]
    # out-of-range values take the training extremes' ranks: no extrapolation, however far out
    assert ranked[2] == ranked[3] < -3 and ranked[4] == ranked[5] > 3
    # the 1000.0 outlier only ranks: 2.5 lies halfway between the 2nd and 3rd of five knots
    assert ranked[3] < ranked[6] < ranked[0]
    # category codes: AA=1, UA=2, unseen and missing -> 0; then the bin of x, 0 when missing
    assert codes[:, 0].tolist() == [1, 2, 0, 0, 1, 1, 1]
    assert codes[:, 1].tolist() == [3, 0, 1, 1, 4, 4, 2]
    assert pre.cardinalities == [3, 5] and pre.n_inputs == 2
    assert Preprocessor.from_dict(pre.to_dict()) == pre


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # integers stay integral whatever nulls did to the dtype; int() truncates toward zero
        (pd.Series([1.0, None, 7.9, -2.5, 3.0]), ["1", None, "7", "-2", "3"]),
        (pd.Series([5, 17], dtype="int32"), ["5", "17"]),
        (pd.Series(pd.array([1, None, 5], dtype="Int64")), ["1", None, "5"]),
        (pd.Series([True, False]), ["1", "0"]),
        (pd.Series(["EWR", None, float("nan"), "JFK"]), ["EWR", None, None, "JFK"]),
        (pd.Series(["x", 3, None], dtype=object), ["x", "3", None]),
        (pd.Series(pd.array(["a", None], dtype="string")), ["a", None]),
    ],
)
def test_category_strings_are_text_or_none(values: pd.Series, expected: list) -> None:
    got = category_strings(values).tolist()
    assert got == expected
    assert [type(v) for v in got] == [type(v) for v in expected]


def test_category_codes_are_vocabulary_positions_from_one_and_zero_otherwise() -> None:
    codes = category_codes(pd.Series([7.0, None, 3.0, 12.0, 7.0]), ["12", "3", "7"])
    assert codes.tolist() == [3, 0, 2, 1, 3] and codes.dtype == np.int64


def test_time_split_never_validates_on_the_past(synthetic_world) -> None:
    train, valid, cutoff = split_by_time(
        labelled(_training_set(synthetic_world), LABEL), validation_days=10
    )
    assert train["event_timestamp"].max() < valid["event_timestamp"].min()
    assert str(valid["event_timestamp"].min()) >= cutoff


def test_model_beats_base_rate_on_later_weeks_and_serves_identically(
    synthetic_world, tmp_path
) -> None:
    frame = _training_set(synthetic_world)
    result = fit(frame, TrainParams(**FAST_TRAINING))
    assert result.val_metrics["auc"] > 0.65
    valid_rate = result.val_metrics["positive_rate"]
    base_log_loss = -(valid_rate * np.log(valid_rate) + (1 - valid_rate) * np.log(1 - valid_rate))
    assert result.val_metrics["log_loss"] < base_log_loss

    # The logged pyfunc applies the stored preprocessing: same probabilities as in memory, unseen values too.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = log_model(result, frame.head(50), registered_name=None)
    served = mlflow.pyfunc.load_model(info.model_uri)
    probe = frame.tail(200).to_pandas()
    probe.loc[probe.index[:5], "carrier"] = "NEW"
    probe.loc[probe.index[5:10], "precip"] = None
    expected = predict_proba(result.model, result.preprocessor, probe)
    np.testing.assert_allclose(
        served.predict(signature_input(served, probe)), expected, rtol=1e-5, atol=1e-6
    )
    assert set(served.metadata.get_input_schema().input_names()) == set(
        result.preprocessor.input_columns()
    )
    assert LABEL not in served.metadata.get_input_schema().input_names()


def test_ensemble_averages_members_trained_from_consecutive_seeds(synthetic_world) -> None:
    frame = _training_set(synthetic_world)
    params = TrainParams(**{**FAST_TRAINING, "max_epochs": 3, "ensemble_size": 2})
    pair = fit(frame, params)
    second_alone = fit(frame, replace(params, ensemble_size=1, seed=params.seed + 1))
    assert len(pair.model.members) == 2 and pair.best_epochs[1] == second_alone.best_epochs[0]
    for name, weights in second_alone.model.members[0].state_dict().items():
        torch.testing.assert_close(pair.model.members[1].state_dict()[name], weights)
    # the ensemble's logit is the members' mean logit
    probe = frame.tail(300).to_pandas()
    logits = [
        np.log(p / (1 - p))
        for p in (predict_proba(m, pair.preprocessor, probe) for m in pair.model.members)
    ]
    np.testing.assert_allclose(
        predict_proba(pair.model, pair.preprocessor, probe),
        1 / (1 + np.exp(-(logits[0] + logits[1]) / 2)),
        rtol=1e-5,
    )


def test_stacked_ensemble_scores_as_its_members_do_in_one_pass(synthetic_world, tmp_path) -> None:
    frame = _training_set(synthetic_world)
    params = TrainParams(**{**FAST_TRAINING, "max_epochs": 2, "min_epochs": 1, "ensemble_size": 5})
    result = fit(frame, params)
    probe = frame.tail(500).to_pandas()
    probe.loc[probe.index[:5], "carrier"] = "NEW"
    probe.loc[probe.index[5:10], "precip"] = None
    member_by_member = predict_proba(result.model, result.preprocessor, probe)
    stacked = BatchedEnsemble(result.model)
    np.testing.assert_allclose(
        predict_proba(stacked, result.preprocessor, probe), member_by_member, rtol=0, atol=1e-6
    )
    # one forward pass: a single first-layer matmul over the five members, no per-member module
    assert stacked.numeric_weight.shape[1] == 5 * params.hidden_sizes[0]
    assert not any(isinstance(m, torch.nn.Linear) for m in stacked.modules())
    # the logged pyfunc serves through the stacked pass and agrees with the members too
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = log_model(result, frame.head(50), registered_name=None)
    served = mlflow.pyfunc.load_model(info.model_uri)
    assert isinstance(served.unwrap_python_model().model, BatchedEnsemble)
    np.testing.assert_allclose(
        served.predict(signature_input(served, probe)), member_by_member, rtol=0, atol=1e-6
    )


def _report(
    candidate_auc: float, candidate_ll: float, champion_auc: float | None
) -> EvaluationReport:
    metrics = {
        "candidate": {"auc": candidate_auc, "log_loss": candidate_ll},
        "base_rate": {"auc": 0.5, "log_loss": 0.6},
    }
    if champion_auc is not None:
        metrics["champion"] = {"auc": champion_auc, "log_loss": 0.5}
    return EvaluationReport(
        months=["2013-03"], rows=10, champion_version="1" if champion_auc else None, metrics=metrics
    )


@pytest.mark.parametrize(
    ("candidate_auc", "candidate_ll", "champion_auc", "margin", "passed"),
    [
        (0.70, 0.50, None, 0.0, True),  # first model, beats the base rate
        (0.70, 0.65, None, 0.0, False),  # worse log loss than predicting the base rate
        (0.50, 0.55, None, 0.0, False),  # no ranking skill
        (0.70, 0.50, 0.69, 0.005, True),  # beats the champion by the margin
        (0.70, 0.50, 0.698, 0.005, False),  # better, but not by the margin
        (0.69, 0.50, 0.70, -0.02, True),  # a tolerated small loss
    ],
)
def test_gate(candidate_auc, candidate_ll, champion_auc, margin, passed) -> None:
    assert (
        gate_result(_report(candidate_auc, candidate_ll, champion_auc), margin, 0.5).passed
        is passed
    )


def test_a_model_logged_before_the_ensemble_fails_to_load_with_a_clear_error(
    synthetic_world, tmp_path
) -> None:
    import json

    frame = _training_set(synthetic_world)
    result = fit(frame, TrainParams(**{**FAST_TRAINING, "max_epochs": 1, "ensemble_size": 1}))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = log_model(result, frame.head(50), registered_name=None)
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "m")))
    # Rewrite it as the earlier format stored it: means/stds, one network's architecture.
    [pre_file] = local.rglob("preprocessor.json")
    stored = json.loads(pre_file.read_text())
    stored = {k: v for k, v in stored.items() if k not in ("knots", "levels", "bin_edges")}
    pre_file.write_text(json.dumps({**stored, "means": [0.0], "stds": [1.0]}))
    [weights] = local.rglob("weights.pt")
    checkpoint = torch.load(weights, weights_only=True)
    del checkpoint["architecture"]["members"]
    torch.save(checkpoint, weights)
    with pytest.raises(mlflow.exceptions.MlflowException, match="no longer served.*make clean"):
        mlflow.pyfunc.load_model(str(local))
