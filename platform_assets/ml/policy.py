"""The retraining policy a model's drift sensor applies: when a drift report calls for a retrain, and
on which trailing window. Plain Python: the sensor (lib/models/sensor.py) and the replay summary's
frontier apply the same rule."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from platform_assets import constants
from platform_assets.months import MonthWindow


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str


class RetrainPolicy(BaseModel):
    """Retrain when the month's AUC, on all its labelled flights, is significantly below the
    champion's held-out AUC: the top of its 95% bootstrap interval lies at least `auc_drop_threshold`
    below it. Feature drift (Evidently's drifted share) is reported every month and becomes a second
    trigger only when `drift_share_threshold` is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auc_drop_threshold: float = Field(
        default=constants.AUC_DROP_THRESHOLD,
        description="Retrain when the top of the month's 95% bootstrap AUC interval is at least this far "
        "below the champion's held-out AUC (0: retrain as soon as the month is significantly worse).",
    )
    drift_share_threshold: float | None = Field(
        default=constants.DRIFT_SHARE_THRESHOLD,
        description="Also retrain when at least this share of the model's features drifted; unset by "
        "default: weather is seasonal, and against any 4-month reference 44-68% of the features drift "
        "every month of 2013 whatever the model's AUC.",
    )
    min_auc_gain: float = Field(
        default=constants.PROMOTION_MIN_AUC_GAIN,
        description="AUC a retrained candidate must gain over the champion to be promoted.",
    )
    window_months: int = Field(
        default=constants.RETRAIN_WINDOW_MONTHS,
        description="Months of training data before the report's month; the report's month is the held-out gate.",
    )

    @model_validator(mode="after")
    def _window(self) -> RetrainPolicy:
        if self.window_months < 1:
            raise ValueError(f"window_months must be at least 1, got {self.window_months}")
        return self

    refit: bool = Field(
        default=False,
        description="After the gate passes on the report's month, refit the recipe through that month and "
        "promote the refit: the retrained model serves the next month as fresh as retraining every month. "
        "Off by default: on 2013 at the default threshold it retrains once and loses AUC (the replay's "
        "frontier shows both designs at every threshold, with paired intervals).",
    )

    def decide(self, metadata: dict, month: str) -> Decision:
        share, drop = metadata.get("drift_share"), metadata.get("auc_drop_significant")
        facts = f"drift share {share:.2f}" if share is not None else "no drift share"
        if drop is not None:
            facts += f", AUC below the champion's held-out AUC by {drop:+.3f} at least (95% interval)"
        window = self.training_window(month)
        if window is None:
            return Decision(False, f"{month}: {facts}; fewer than {self.window_months} earlier months to retrain on")
        if metadata.get("reference_window") == str(window):
            return Decision(False, f"{month}: {facts}; the champion already trained on {window}")
        if drop is not None and drop >= self.auc_drop_threshold:
            return Decision(True, f"{month}: {facts} >= {self.auc_drop_threshold:.3f}")
        if self.drift_share_threshold is not None and share is not None and share >= self.drift_share_threshold:
            return Decision(True, f"{month}: {facts}; drift share >= {self.drift_share_threshold:.2f}")
        share_rule = (
            f", {self.drift_share_threshold:.2f} drift share" if self.drift_share_threshold is not None else ""
        )
        return Decision(
            False, f"{month}: {facts}; below thresholds ({self.auc_drop_threshold:.3f} AUC drop{share_rule})"
        )

    def training_window(self, month: str) -> MonthWindow | None:
        return MonthWindow.trailing(month, self.window_months)

    def with_settings(self) -> RetrainPolicy:
        """This policy with any PLATFORM_DRIFT_SHARE_THRESHOLD / _AUC_DROP_THRESHOLD / _MIN_AUC_GAIN
        (how `make run --auc-drop-threshold ...` replays another policy)."""
        from platform_assets.settings import settings

        current = settings()
        overrides = {
            "drift_share_threshold": current.drift_share_threshold,
            "auc_drop_threshold": current.auc_drop_threshold,
            "min_auc_gain": current.min_auc_gain,
        }
        return self.model_copy(update={k: v for k, v in overrides.items() if v is not None})
