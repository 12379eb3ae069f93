"""The promotion gate: a blocking check on model_evaluation that stops `champion` when it fails."""

import math
from typing import Protocol

import dagster as dg

PROMOTION_GATE = "promotion_gate"


class _Report(Protocol):
    champion_version: str | None
    metrics: dict[str, dict[str, float]]


def gate_spec() -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        PROMOTION_GATE,
        asset="model_evaluation",
        blocking=True,
        description="Candidate beats the base-rate predictor (AUC and log loss) and the champion's AUC by the configured margin.",
    )


def gate_result(report: _Report, min_auc_gain: float, min_auc: float) -> dg.AssetCheckResult:
    candidate = report.metrics["candidate"]
    base = report.metrics["base_rate"]
    beats_base = candidate["auc"] > min_auc and candidate["log_loss"] < base["log_loss"]
    champion = report.metrics.get("champion")
    gain = candidate["auc"] - champion["auc"] if champion else math.nan
    beats_champion = champion is None or gain >= min_auc_gain
    reasons = [
        (
            f"AUC {candidate['auc']:.4f} vs base-rate threshold {min_auc:.2f}, log loss {candidate['log_loss']:.4f} "
            f"vs base rate {base['log_loss']:.4f}: {'beats' if beats_base else 'does not beat'} the trivial baseline"
        ),
        "no champion yet"
        if champion is None
        else f"AUC gain over champion v{report.champion_version}: {gain:+.4f} (needs >= {min_auc_gain:+.4f})",
    ]
    return dg.AssetCheckResult(
        check_name=PROMOTION_GATE,
        passed=bool(beats_base and beats_champion),
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(reasons),
        metadata={
            "candidate_auc": candidate["auc"],
            "champion_auc": champion["auc"] if champion else "none",
            "auc_gain": gain if champion else "none",
            "min_auc_gain": min_auc_gain,
            "beats_base_rate": beats_base,
            "beats_champion": beats_champion,
        },
    )
