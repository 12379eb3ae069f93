"""The retraining policy replayed from a table of AUCs: the frontier's simulation and its interval."""

import math

import dagster as dg
import numpy as np
import pytest

from platform_assets.ml.frontier import MonthScore, gain_share, simulate
from platform_assets.ml.metrics import auc_interval, rank_auc

MONTHS = ["05", "06", "07", "08"]
# M(m): the model a retrain on m's report trains; M(05) is the first champion.
MODEL_OF = {"05": "v1", "06": "v2", "07": "v3", "08": "v4"}
HOLDOUT = {"v1": 0.74, "v2": 0.73, "v3": 0.72, "v4": 0.71}


def score(auc: float, high: float | None = None) -> MonthScore:
    return MonthScore(auc, auc + 0.005 if high is None else high)


# v1 decays; every newer model is better on the months it can score.
SCORES = {
    ("v1", "05"): score(0.74), ("v1", "06"): score(0.73), ("v1", "07"): score(0.70), ("v1", "08"): score(0.69),
    ("v2", "06"): score(0.735), ("v2", "07"): score(0.715), ("v2", "08"): score(0.70),
    ("v3", "07"): score(0.72), ("v3", "08"): score(0.71),
    ("v4", "08"): score(0.715),
}


def test_never_retraining_is_the_frozen_model_and_always_is_every_report() -> None:
    never = simulate(math.inf, MONTHS, MODEL_OF, SCORES, HOLDOUT, min_auc_gain=0.0)
    assert never.retrains == 0 and never.champions == ["v1"] * 4
    assert never.mean_auc == pytest.approx((0.74 + 0.73 + 0.70 + 0.69) / 4)
    always = simulate(-math.inf, MONTHS, MODEL_OF, SCORES, HOLDOUT, min_auc_gain=0.0)
    # 05 is the champion's own window: no retrain there; 06, 07, 08 each retrain and promote.
    assert always.retrains == 3 and always.promotions == 3
    assert always.champions == ["v1", "v1", "v2", "v3"]  # a retrain on m's report scores m+1
    assert always.mean_auc == pytest.approx((0.74 + 0.73 + 0.715 + 0.71) / 4)


def test_threshold_reads_the_top_of_the_interval_against_the_held_out_auc() -> None:
    # v1 (held out 0.74): 06 tops at 0.735 (drop 0.005), 07 at 0.705 (0.035); a retrain on 07's
    # report promotes v3 (held out 0.72), which tops at 0.715 on 08 (0.005).
    at_01 = simulate(0.01, MONTHS, MODEL_OF, SCORES, HOLDOUT, min_auc_gain=0.0)
    assert at_01.retrains == 1 and at_01.champions == ["v1", "v1", "v1", "v3"]
    at_04 = simulate(0.04, MONTHS, MODEL_OF, SCORES, HOLDOUT, min_auc_gain=0.0)
    assert at_04.retrains == 1 and at_04.champions == ["v1"] * 4  # 08 drops 0.045: retrained, too late to score
    assert simulate(0.05, MONTHS, MODEL_OF, SCORES, HOLDOUT, min_auc_gain=0.0).retrains == 0
    at_exact = simulate(0.005, MONTHS, MODEL_OF, SCORES, HOLDOUT, min_auc_gain=0.0)
    assert at_exact.retrains == 3  # >= : a drop equal to the threshold retrains


def test_the_gate_keeps_the_champion_when_the_retrain_gains_too_little() -> None:
    gated = simulate(-math.inf, MONTHS, MODEL_OF, SCORES, HOLDOUT, min_auc_gain=0.011)
    # 06: v2 gains 0.005 (kept); 07: v3 gains 0.02 over v1 (promoted); 08: v4 gains 0.005 over v3 (kept).
    assert gated.retrains == 3 and gated.promotions == 1
    assert gated.champions == ["v1", "v1", "v1", "v3"]


def test_gain_share_places_a_policy_between_frozen_and_monthly() -> None:
    assert gain_share(0.70, 0.69, 0.71) == pytest.approx(0.5)
    assert gain_share(0.71, 0.69, 0.71) == pytest.approx(1.0)


def test_auc_interval_is_seeded_and_holds_the_auc() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(4000) < 0.25
    s = rng.random(4000) + 0.5 * y
    low, high = auc_interval(y, s, resamples=100)
    assert low < rank_auc(y, s) < high
    assert (low, high) == auc_interval(y, s, resamples=100)
    # Twice the rows, a narrower interval.
    y2, s2 = np.concatenate([y, y]), np.concatenate([s, s])
    low2, high2 = auc_interval(y2, s2, resamples=100)
    assert high2 - low2 < high - low


def test_auc_interval_equals_ranking_every_resample_afresh() -> None:
    rng = np.random.default_rng(5)
    y = rng.random(3000) < 0.3
    s = np.round(rng.random(3000) + 0.3 * y, 2)  # many ties
    draws = np.random.default_rng(0).integers(0, len(y), size=(50, len(y)))
    aucs = np.array([rank_auc(y[rows], s[rows]) for rows in draws])
    low, high = auc_interval(y, s, resamples=50)
    assert (low, high) == pytest.approx((np.quantile(aucs, 0.025), np.quantile(aucs, 0.975)), abs=1e-12)


def test_refit_through_the_reports_month_serves_the_retrain_every_month_model() -> None:
    """The stale retrain removed: a retrain on m's report gates M(m) on m, then promotes its refit
    through m, M(m+1), which scores m+1 as retraining every month would."""
    always = simulate(-math.inf, MONTHS, MODEL_OF, SCORES, HOLDOUT, min_auc_gain=0.0, refit=True)
    # 06's retrain promotes the refit M(07), which scores 07 as the monthly model does; on 07 it is
    # already the model of 07's window (no retrain); 08's retrain has no later month to serve.
    assert always.refit and always.retrains == 2 and always.promotions == 2
    assert always.champions == ["v1", "v1", "v3", "v3"]
    assert always.aucs[2] == SCORES[(MODEL_OF["07"], "07")].auc
    # The old design, on the same scores: a month behind.
    stale = simulate(-math.inf, MONTHS, MODEL_OF, SCORES, HOLDOUT, min_auc_gain=0.0)
    assert stale.mean_auc < always.mean_auc


def test_a_refit_is_promoted_only_when_its_candidate_passed_the_gate() -> None:
    # v2 is worse than the champion on 06: the gate keeps v1, so no refit is promoted after 06; 07's
    # candidate passes, and its refit M(08) serves 08.
    scores = {**SCORES, ("v2", "06"): score(0.70)}
    outcome = simulate(-math.inf, MONTHS, MODEL_OF, scores, HOLDOUT, min_auc_gain=0.0, refit=True)
    assert outcome.champions == ["v1", "v1", "v1", "v4"]
    assert (outcome.retrains, outcome.promotions) == (2, 1)


def test_the_frontier_check_fails_when_its_default_is_not_the_replay_that_ran() -> None:
    import polars as pl

    from platform_assets.defs.monitoring.assets import frontier_check
    from platform_assets.lib.retrain_replay import Frontier
    from platform_assets.ml.policy import RetrainPolicy

    default = simulate(0.01, MONTHS, MODEL_OF, SCORES, HOLDOUT, min_auc_gain=0.0)
    table = pl.DataFrame({"retrained": [False, True, True, False]})
    means = {"auc_drift_policy": default.mean_auc, "auc_frozen": 0.0, "auc_monthly": 0.0}
    same = Frontier([default], pl.DataFrame(), default, means, 3, matches=True)
    assert frontier_check(same, table, RetrainPolicy()).passed
    other = Frontier([default], pl.DataFrame(), default, {**means, "auc_drift_policy": 0.5}, 3, matches=False)
    failed = frontier_check(other, table, RetrainPolicy())
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert f"replay 2 retrains, mean AUC 0.5000; frontier {default.retrains}" in failed.description


def test_paired_intervals_separate_a_better_policy_and_are_zero_for_the_same_models() -> None:
    from platform_assets.ml.frontier import paired_intervals

    rng = np.random.default_rng(3)
    months = ["05", "06"]
    labels = {m: rng.integers(0, 2, 4000).astype(float) for m in months}
    # "good" sees the label through noise; "weak" through ten times the noise.
    scores = {}
    for m in months:
        scores[("good", m)] = labels[m] + rng.normal(0, 0.8, 4000)
        scores[("weak", m)] = labels[m] + rng.normal(0, 8.0, 4000)
    found = paired_intervals(
        months, labels, scores,
        policies={"retrains": ["weak", "good"], "same": ["weak", "weak"]},
        baselines={"frozen": ["weak", "weak"]},
        resamples=50,
    )
    low, high = found[("retrains", "frozen")]
    gain = (rank_auc(labels["06"], scores[("good", "06")]) - rank_auc(labels["06"], scores[("weak", "06")])) / 2
    assert 0 < low < gain < high  # the paired interval holds the observed gain, well above zero
    assert found[("same", "frozen")] == (0.0, 0.0)  # same models on the same draws: no difference at all


def test_permutation_importance_measures_what_the_model_reads() -> None:
    import pandas as pd

    from platform_assets.ml.metrics import permutation_importance

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"read": rng.normal(size=3000), "ignored": rng.normal(size=3000)})
    y = (frame["read"] + rng.normal(0, 0.5, 3000) > 0).astype(float).to_numpy()
    calls = []

    def predict(f: "pd.DataFrame") -> np.ndarray:
        calls.append(len(f))
        return f["read"].to_numpy()

    importance = permutation_importance(predict, frame, y, ["read", "ignored"])
    assert importance["ignored"] == 0.0  # shuffling what the model never reads changes no score
    # shuffled, the column the model reads leaves it at chance: it loses about its whole edge
    assert importance["read"] == pytest.approx(rank_auc(y, frame["read"].to_numpy()) - 0.5, abs=0.03)
    assert calls == [3 * 3000]  # the frame and each shuffled copy in one call


def test_a_signal_trigger_retrains_where_its_signal_reaches_the_threshold() -> None:
    # The drift share of each champion on each month: v1 drifts from 07, v3 (promoted on 07) does not.
    share = {
        ("v1", "05"): 0.1, ("v1", "06"): 0.3, ("v1", "07"): 0.6, ("v1", "08"): 0.7,
        ("v3", "08"): 0.2,
    }
    outcome = simulate(0.5, MONTHS, MODEL_OF, SCORES, HOLDOUT, 0.0, trigger="drift_share", signal=share)
    assert outcome.retrained == [False, False, True, False]
    assert outcome.champions == ["v1", "v1", "v1", "v3"]
    # The same threshold on the AUC rule reads the AUC, not the signal: never reached here.
    assert simulate(0.5, MONTHS, MODEL_OF, SCORES, HOLDOUT, 0.0).retrains == 0
    with pytest.raises(ValueError, match="needs its signal"):
        simulate(0.5, MONTHS, MODEL_OF, SCORES, HOLDOUT, 0.0, trigger="drift_share")


def test_thresholds_are_chosen_on_the_first_half_and_judged_on_the_second() -> None:
    import polars as pl

    from platform_assets.lib.frontier_table import Halves, chosen_on_first_half

    table = pl.DataFrame({
        "month": MONTHS,
        "auc_frozen": [SCORES[("v1", m)].auc for m in MONTHS],
        "auc_monthly": [SCORES[(MODEL_OF[m], m)].auc for m in MONTHS],
    })
    halves = Halves.of(table)
    assert (halves.first, halves.second) == (["05", "06"], ["07", "08"])
    outcomes = [simulate(t, MONTHS, MODEL_OF, SCORES, HOLDOUT, 0.0) for t in (0.01, 0.04, 0.05)]
    # First half: no threshold retrains there within the budget of 0 retrains (half of one, rounded
    # down), and none gains on it; the largest threshold wins the tie. Second half: it never retrains.
    frozen, monthly = (float(table[c].mean()) for c in ("auc_frozen", "auc_monthly"))
    [chosen] = chosen_on_first_half(outcomes, halves, frozen, monthly, monthly_retrains=3).filter(pl.col("design") == "candidate (through m-1)").iter_rows(named=True)
    assert chosen["chosen_threshold"] == 0.05 and chosen["retrains_first_half"] == 0
    assert chosen["share_second_half"] == pytest.approx(0.0) and not chosen["meets_target"]
    # The 0.01 rule (one retrain, on 07's report) earns its share on the second half only.
    first, second = halves.shares(outcomes[0])
    assert first == pytest.approx(0.0)
    assert second == pytest.approx((0.71 - 0.69) / ((0.72 + 0.715) / 2 - (0.70 + 0.69) / 2) / 2)
