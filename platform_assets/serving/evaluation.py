"""What the request log says once outcomes are known: online metrics per variant, the challenger
decision, and training/serving skew (served feature values vs offline point-in-time values)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from platform_assets.events import EVENTS_TABLE
from platform_assets.paths import PlatformPaths

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    from feast import FeatureStore


def day_outcomes(paths: PlatformPaths, day: str) -> pl.DataFrame:
    """Flights of a local date (the flight key starts with it) and their labels as the warehouse
    has them; null where the outcome is not known (cancelled, diverted, not yet validated)."""
    import polars as pl

    source = paths.feature_table(EVENTS_TABLE)
    if not source.exists():
        raise FileNotFoundError(f"{source} is missing: build the warehouse first")
    return (
        pl.scan_parquet(source)
        .filter(pl.col("flight_id").str.starts_with(day))
        .collect()
    )


def labels_known(paths: PlatformPaths, day: str, label: str) -> int:
    """How many of the day's flights have a validated outcome."""
    frame = day_outcomes(paths, day)
    return 0 if frame.is_empty() or label not in frame.columns else frame[label].drop_nulls().len()


@dataclass
class VariantMetrics:
    variant: str
    model_version: str
    scored: int
    labelled: int
    auc: float | None
    log_loss: float | None
    mean_score: float
    positive_rate: float | None


@dataclass
class OnlineEvaluation:
    day: str
    variants: list[VariantMetrics]
    decision: str
    """promote, keep or undecided"""
    reason: str
    challenger_version: str | None = None
    champion_version: str | None = None
    paired_flights: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> OnlineEvaluation:
        data = json.loads(text)
        data["variants"] = [VariantMetrics(**v) for v in data["variants"]]
        return cls(**data)


def _metrics(variant: str, version: str, scores: Any, labels: Any) -> VariantMetrics:
    import numpy as np

    from platform_assets.ml.metrics import binary_metrics

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    known = ~np.isnan(labels)
    y, p = labels[known], scores[known]
    auc = log_loss = rate = None
    if y.size:
        rate = float(y.mean())
        if 0 < y.sum() < y.size:
            metrics = binary_metrics(y, p)
            auc, log_loss = float(metrics["auc"]), float(metrics["log_loss"])
    return VariantMetrics(
        variant=variant,
        model_version=version,
        scored=int(scores.size),
        labelled=int(y.size),
        auc=auc,
        log_loss=log_loss,
        mean_score=float(scores.mean()) if scores.size else math.nan,
        positive_rate=rate,
    )


def evaluate_day(
    log: pl.DataFrame, outcomes: pl.DataFrame, label: str, day: str,
    min_labelled: int, max_auc_loss: float,
) -> OnlineEvaluation:
    """Metrics per (variant, version) and whether the challenger (canary or shadow) may replace
    the champion: enough labelled flights, and its AUC at most `max_auc_loss` below the champion's.
    In shadow mode both scored the same flights; a canary's flights are a hash-chosen share of the
    same day's traffic."""
    import polars as pl

    # One score per flight and variant: a flight requested twice keeps its latest answer.
    scored = (
        log.sort("received_at")
        .unique(subset=["flight_id", "variant", "model_version"], keep="last")
        .join(outcomes.select("flight_id", pl.col(label).cast(pl.Float64).alias("label")),
              on="flight_id", how="left")
    )
    variants = [
        _metrics(v, m, part["score"].to_numpy(), part["label"].fill_null(float("nan")).to_numpy())
        for (v, m), part in sorted(scored.group_by(["variant", "model_version"]), key=lambda g: g[0])
    ]
    champion = next((v for v in variants if v.variant == "champion"), None)
    challenger = next((v for v in variants if v.variant in ("canary", "shadow")), None)
    result = OnlineEvaluation(
        day=day, variants=variants, decision="undecided", reason="",
        champion_version=champion.model_version if champion else None,
        challenger_version=challenger.model_version if challenger else None,
    )
    if challenger is not None and champion is not None and challenger.variant == "shadow":
        both = scored.filter(pl.col("variant").is_in(["champion", "shadow"]))
        result.paired_flights = both.group_by("flight_id").len().filter(pl.col("len") == 2).height
    if challenger is None or champion is None:
        result.reason = f"no challenger traffic on {day}: nothing to compare"
        return result
    name = f"{challenger.variant} v{challenger.model_version}"
    if challenger.labelled < min_labelled or champion.labelled < min_labelled:
        result.reason = (
            f"{name} has {challenger.labelled} and champion v{champion.model_version} "
            f"{champion.labelled} labelled flights on {day}; the decision needs {min_labelled} each"
        )
        return result
    if challenger.auc is None or champion.auc is None:
        result.reason = f"AUC undefined on {day} (one class only among the labelled flights)"
        return result
    gap = challenger.auc - champion.auc
    verdict = f"{name} online AUC {challenger.auc:.4f} vs champion v{champion.model_version} " \
              f"{champion.auc:.4f} ({gap:+.4f}) on {challenger.labelled}/{champion.labelled} labelled flights"
    if gap >= -max_auc_loss:
        result.decision, result.reason = "promote", f"{verdict}; allowed loss {max_auc_loss:.4f}"
    else:
        result.decision, result.reason = "keep", f"{verdict}; more than the allowed {max_auc_loss:.4f} below"
    return result


def served_features(log: pl.DataFrame) -> pd.DataFrame:
    """The answered rows' served feature values, one row per flight (its latest request)."""
    import pandas as pd

    answered = log.filter(log["answered"]).sort("received_at").unique(subset=["flight_id"], keep="last")
    records = [json.loads(f) for f in answered["features"].to_list()]
    frame = pd.DataFrame.from_records(records)
    frame.insert(0, "flight_id", answered["flight_id"].to_list())
    frame.insert(1, "event_timestamp", answered["event_timestamp"].to_list())
    return frame


@dataclass
class SkewReport:
    flights: int
    compared: int
    not_in_warehouse: int
    skewed_flights: int
    by_feature: dict[str, dict[str, float]]
    details: pd.DataFrame


def skew(
    log: pl.DataFrame, outcomes: pl.DataFrame, store: FeatureStore, service: str, tolerance: float
) -> SkewReport:
    """Served values vs the offline point-in-time join at the same prediction time, per feature:
    how many flights differ (a null on one side only counts), and by how much at most."""
    import numpy as np
    import pandas as pd

    from platform_assets.featurestore.historical import historical_features
    from platform_assets.featurestore.services import service_features

    served = served_features(log)
    features = [f for f in service_features(store, service) if f in served.columns]
    keys = outcomes.select("flight_id", "origin", "carrier", "route", "tailnum").to_pandas()
    entities = served[["flight_id", "event_timestamp"]].merge(keys, on="flight_id", how="inner")
    offline = historical_features(store, entities, service).set_index("flight_id")
    online = served.set_index("flight_id").loc[offline.index]
    rows, by_feature, any_skew = [], {}, np.zeros(len(offline), dtype=bool)
    for name in features:
        a = pd.to_numeric(online[name], errors="coerce").to_numpy(np.float64)
        b = pd.to_numeric(offline[name], errors="coerce").to_numpy(np.float64)
        both_null = np.isnan(a) & np.isnan(b)
        diff = np.where(both_null, 0.0, np.abs(a - b))
        differs = np.where(np.isnan(diff), True, diff > tolerance)
        any_skew |= differs
        finite = diff[~np.isnan(diff)]
        by_feature[name] = {
            "skewed_share": float(differs.mean()) if differs.size else 0.0,
            "max_abs_diff": float(finite.max()) if finite.size else 0.0,
        }
        for i in np.flatnonzero(differs):
            rows.append({"flight_id": offline.index[i], "feature": name,
                         "served": a[i], "offline": b[i]})
    return SkewReport(
        flights=len(served),
        compared=len(offline),
        not_in_warehouse=len(served) - len(offline),
        skewed_flights=int(any_skew.sum()),
        by_feature=by_feature,
        details=pd.DataFrame(rows, columns=["flight_id", "feature", "served", "offline"]),
    )
