"""Blocking checks that stop downstream assets when a validated table quarantined too much."""

from __future__ import annotations

import dagster as dg

QUARANTINE_CHECK = "quarantine_share_within_limit"


def quarantine_check_spec(asset_name: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        QUARANTINE_CHECK,
        asset=asset_name,
        blocking=True,
        description="Share of rows sent to quarantine is at most the configured limit (default 1%).",
    )


def quarantine_check_result(shares: dict[str, float], limit: float) -> dg.AssetCheckResult:
    """One result for the run: the worst partition decides."""
    worst_key, worst = max(shares.items(), key=lambda kv: kv[1])
    return dg.AssetCheckResult(
        check_name=QUARANTINE_CHECK,
        passed=worst <= limit,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"worst quarantine share {worst:.4%} ({worst_key}) "
            f"{'within' if worst <= limit else 'exceeds'} the limit {limit:.2%}"
        ),
        metadata={"limit": limit, "worst_share": worst, "worst_partition": worst_key, "shares": shares},
    )
