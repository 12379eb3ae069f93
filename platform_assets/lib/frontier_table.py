"""The retraining frontier as tables: a row per trigger, threshold and design with its share of
retraining every month's gain (whole period and each half) and its paired intervals, and the
threshold each trigger and design would be chosen at on the first half of the months."""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from platform_assets.ml.frontier import TRIGGERS, PolicyOutcome, gain_share

if TYPE_CHECKING:
    import polars as pl


def threshold_label(t: float) -> str:
    return "every report" if t == -math.inf else "never" if t == math.inf else f"{t:g}"


def interval_label(interval: tuple[float, float]) -> str:
    return f"[{interval[0]:+.4f}, {interval[1]:+.4f}]"


def policy_label(o: PolicyOutcome) -> str:
    return f"{TRIGGERS[o.trigger]} >= {threshold_label(o.threshold)}"


def design_label(refit: bool) -> str:
    # What a promotion serves: the gated candidate (trained through the month before the report),
    # or its refit through the report's month.
    return "refit through m" if refit else "candidate (through m-1)"


@dataclass(frozen=True)
class Halves:
    """The scored months split in two: thresholds are chosen on the first half and judged on the
    second, and each half has its own frozen and monthly means to measure a share of the gain."""

    first: list[str]
    second: list[str]
    frozen: tuple[float, float]
    monthly: tuple[float, float]

    @classmethod
    def of(cls, table: "pl.DataFrame") -> "Halves":
        import numpy as np

        cut = table.height // 2
        half = (table.head(cut), table.tail(table.height - cut))
        return cls(
            half[0]["month"].to_list(), half[1]["month"].to_list(),
            tuple(float(np.mean(h["auc_frozen"].to_numpy())) for h in half),  # type: ignore[arg-type]
            tuple(float(np.mean(h["auc_monthly"].to_numpy())) for h in half),  # type: ignore[arg-type]
        )

    def shares(self, o: PolicyOutcome) -> tuple[float, float]:
        cut = len(self.first)
        means = (sum(o.aucs[:cut]) / cut, sum(o.aucs[cut:]) / max(len(o.aucs) - cut, 1))
        return (
            gain_share(means[0], self.frozen[0], self.monthly[0]),
            gain_share(means[1], self.frozen[1], self.monthly[1]),
        )

    def label(self, which: int) -> str:
        months = (self.first, self.second)[which]
        return f"{months[0]}..{months[-1]}" if months else "none"


def frontier_table(
    outcomes: "list[PolicyOutcome]", frozen: float, monthly: float, monthly_retrains: int, default: PolicyOutcome,
    halves: Halves | None = None,
) -> "pl.DataFrame":
    import polars as pl

    order = list(TRIGGERS)
    rows = []
    for o in sorted(outcomes, key=lambda o: (order.index(o.trigger), o.refit, -o.threshold)):
        first, second = halves.shares(o) if halves else (math.nan, math.nan)
        cut = len(halves.first) if halves else 0
        rows.append(
            {
                "policy": policy_label(o),
                "design": design_label(o.refit),
                "retrains": o.retrains,
                "promotions": o.promotions,
                "mean_auc": o.mean_auc,
                "share_of_monthly_gain": gain_share(o.mean_auc, frozen, monthly),
                # Paired bootstrap 95% intervals (flights resampled within each month) of its mean AUC
                # minus the frozen model's and minus retraining every month's.
                "vs_frozen_95": interval_label(o.intervals["frozen"]),
                "vs_monthly_95": interval_label(o.intervals["monthly"]),
                # Thresholds are chosen on the first half of the months and judged on the second.
                "retrains_first_half": sum(o.retrained[:cut]),
                "share_first_half": first,
                "share_second_half": second,
                "default": o is default,
            }
        )
    rows.append(
        {
            "policy": "retrain every month (ungated, trained through the month before)",
            "design": "every month",
            "retrains": monthly_retrains,
            "promotions": monthly_retrains,
            "mean_auc": monthly,
            "share_of_monthly_gain": 1.0,
            "vs_frozen_95": "",
            "vs_monthly_95": "",
            "retrains_first_half": max(len(halves.first) - 1, 0) if halves else 0,
            "share_first_half": 1.0,
            "share_second_half": 1.0,
            "default": False,
        }
    )
    return pl.DataFrame(rows)


def chosen_on_first_half(
    outcomes: "list[PolicyOutcome]", halves: Halves, frozen: float, monthly: float, monthly_retrains: int
) -> "pl.DataFrame":
    """Per trigger and design, the threshold a team would pick on the first half of the months: the
    best share of the gain there using at most half of the first half's monthly retrains (rounded
    down; ties go to fewer retrains), then judged on the second half and on the whole period."""
    import polars as pl

    cut = len(halves.first)
    budget = max(cut - 1, 0) // 2
    rows = []
    for trigger in TRIGGERS:
        for refit in (False, True):
            candidates = [
                o for o in outcomes
                if o.trigger == trigger and o.refit == refit and math.isfinite(o.threshold)
                and sum(o.retrained[:cut]) <= budget
            ]
            if not candidates:
                continue
            best = max(candidates, key=lambda o: (round(halves.shares(o)[0], 9), -sum(o.retrained[:cut]), o.threshold))
            first, second = halves.shares(best)
            rows.append(
                {
                    "trigger": TRIGGERS[trigger],
                    "design": design_label(refit),
                    "chosen_threshold": best.threshold,
                    "retrains_first_half": sum(best.retrained[:cut]),
                    "share_first_half": first,
                    "share_second_half": second,
                    "retrains": best.retrains,
                    "share_of_monthly_gain": gain_share(best.mean_auc, frozen, monthly),
                    "meets_target": bool(
                        gain_share(best.mean_auc, frozen, monthly) >= TARGET_SHARE and best.retrains <= monthly_retrains // 2
                    ),
                }
            )
    return pl.DataFrame(rows)


# The bar for a policy: at least 80% of retraining every month's gain with at most half its retrains.
TARGET_SHARE = 0.8


def markdown(table: "pl.DataFrame") -> str:
    header = "| " + " | ".join(table.columns) + " |\n|" + "---|" * table.width + "\n"

    def cell(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))

    return header + "\n".join(
        "| " + " | ".join(cell(v) for v in row) + " |" for row in table.iter_rows()
    )
