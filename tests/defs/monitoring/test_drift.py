from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from platform_assets.ml.drift import deterministic_sample, run_drift_report

LABELS = {"target": "is_delayed", "prediction": "delay_probability"}


def frame(n: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    temp = rng.normal(50 + shift, 10, n)
    label = (rng.random(n) < 1 / (1 + np.exp(-(temp - 50) / 10))).astype(int)
    return pd.DataFrame(
        {
            "flight_id": [f"f{seed}-{i}" for i in range(n)],
            "temp": temp,
            "distance": rng.normal(1000, 300, n),
            "carrier": rng.choice(["AA", "UA", "DL"], n),
            "is_delayed": label,
            "delay_probability": 1 / (1 + np.exp(-(temp - 50) / 10)),
        }
    )


def test_shifted_feature_is_the_one_reported_drifted(tmp_path: Path) -> None:
    reference, current = frame(3000, 0, 1), frame(3000, 25, 2)
    summary = run_drift_report(reference, current, ["temp", "distance"], ["carrier"], tmp_path / "r.html", tmp_path / "r.json", **LABELS)
    assert summary.drifted_columns == ["temp"]
    assert summary.drift_share == pytest.approx(1 / 3)
    assert summary.prediction_drifted
    assert summary.auc == pytest.approx(roc_auc_score(current["is_delayed"], current["delay_probability"]), abs=1e-6)
    assert (tmp_path / "r.html").stat().st_size > 10_000
    assert "DriftedColumnsCount" in (tmp_path / "r.json").read_text()


def test_same_distribution_reports_no_drift(tmp_path: Path) -> None:
    summary = run_drift_report(frame(3000, 0, 1), frame(3000, 0, 3), ["temp", "distance"], ["carrier"], tmp_path / "r.html", tmp_path / "r.json", **LABELS)
    assert summary.drift_share == 0.0 and summary.drifted_columns == []
    assert not summary.prediction_drifted


def test_sample_is_deterministic_and_independent_of_row_order() -> None:
    data = frame(5000, 0, 4)
    a = deterministic_sample(data, 500)
    b = deterministic_sample(data.sample(frac=1.0, random_state=9), 500)
    assert len(a) == 500
    assert sorted(a["flight_id"]) == sorted(b["flight_id"])
    assert len(deterministic_sample(data.head(100), 500)) == 100


def test_column_drift_gives_the_reports_verdicts_and_scores_without_a_report(tmp_path: Path) -> None:
    """The replay summary's drift triggers recompute drift per column for every model and month;
    they must be the drift report's own numbers: shifted, unshifted, low-cardinality and missing
    values alike, with both sizes of reference Evidently picks a different test for."""
    from platform_assets.ml.drift import column_drift

    for n in (3000, 800):  # Wasserstein / Jensen-Shannon above 1,000 reference rows; KS / chi-squared below
        reference, current = frame(n, 0, 5), frame(n, 4, 6)
        rng = np.random.default_rng(7)
        reference["stops"] = rng.integers(0, 3, n).astype(float)  # 3 values: tested as a category
        current["stops"] = rng.choice([0.0, 1.0, 2.0], n, p=[0.2, 0.3, 0.5])
        current.loc[current.index[:50], "distance"] = np.nan
        current.loc[current.index[:40], "carrier"] = None
        numeric, categorical = ["temp", "distance", "stops"], ["carrier"]
        summary = run_drift_report(reference, current, numeric, categorical, tmp_path / "r.html", tmp_path / "r.json", **LABELS)
        mine = column_drift(reference, current, numeric, categorical)
        assert sorted(c for c, (_, drifted) in mine.items() if drifted) == summary.drifted_columns
        assert {"temp", "stops"} <= set(summary.drifted_columns) and "distance" not in summary.drifted_columns
        for column, (score, _) in mine.items():
            assert score == pytest.approx(summary.column_scores[column], abs=1e-6), (n, column)


def test_sample_of_hashed_months_equals_sampling_their_concatenation() -> None:
    from platform_assets.ml.drift import sample_of_hashed, with_sample_hash

    months = [frame(3000, 0, seed) for seed in (11, 12, 13)]
    whole = deterministic_sample(pd.concat(months, ignore_index=True), 2000)
    pieced = sample_of_hashed(pd.concat([with_sample_hash(m) for m in months], ignore_index=True), 2000)
    pd.testing.assert_frame_equal(whole, pieced)
