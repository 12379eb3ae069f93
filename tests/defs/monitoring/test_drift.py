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
