"""A model card per evaluated version: one HTML page saying what the model is and how it did.

Written by the evaluation asset, logged to the evaluation's MLflow run (artifact `model_card.html`)
and copied under PLATFORM_HOME/reports/model_cards/, which `make ui` serves, so the model's asset
pages link to it.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from platform_assets.ml.evaluation import SLICE_AUC_GAP, SLICE_MIN_ROWS
from platform_assets.ml.figures import calibration, data_uri

if TYPE_CHECKING:
    from platform_assets.ml.evaluation import EvaluationReport


@dataclass(frozen=True)
class CardFacts:
    """What the registry knows of the version, beside the evaluation report."""

    model_name: str
    version: str
    label: str
    feature_service: str
    training_window: str
    training_data_sha256: str
    raw_files: list[dict[str, str]]
    numeric_features: list[str]
    categorical_features: list[str]
    params: dict[str, str]
    gate_passed: bool
    gate_reason: str
    # The Optuna trials of the search that chose the recipe, when this version ran one.
    search_trials: tuple[dict[str, Any], ...] = ()
    refit_of: str = ""
    """For a refit: the gated candidate it refits, e.g. "v3, trained on 2013-05..2013-08, gated on 2013-09"."""


def _table(rows: list[dict[str, Any]], columns: list[str], flag: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        style = ' class="flag"' if flag and row.get(flag) else ""
        cells = "".join(f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in columns)
        body.append(f"<tr{style}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def render(facts: CardFacts, report: EvaluationReport) -> str:
    """The card as a self-contained HTML page (the calibration chart is inlined)."""
    metrics = [
        {"model": name, **{k: values.get(k) for k in ("auc", "log_loss", "brier", "ece")}}
        for name, values in report.metrics.items()
    ]
    flagged = [s for s in report.slices if s["flagged"]]
    image = data_uri(calibration(report.reliability))
    decision = "passed: promoted to champion" if facts.gate_passed else "failed: the champion stays"
    sections = [
        f"<h1>{html.escape(facts.model_name)} v{html.escape(facts.version)}</h1>",
        f"<p>Predicts <code>{html.escape(facts.label)}</code> from the feature service "
        f"<code>{html.escape(facts.feature_service)}</code>. Trained on {html.escape(facts.training_window)}; "
        f"evaluated on {html.escape(', '.join(report.months))} ({report.rows} labelled flights).</p>",
        *(
            [
                f"<h2>Refit of {html.escape(facts.refit_of)}</h2><p>The same recipe trained through the gate's "
                f"month{'s' if len(report.months) > 1 else ''}, {html.escape(facts.training_window)}, and promoted in "
                "the candidate's place: the gate and the held-out metrics below are the candidate's, on months "
                "this version trained on.</p>"
            ]
            if facts.refit_of
            else []
        ),
        f"<h2>Gate: {decision}</h2><p>{html.escape(facts.gate_reason)}</p>",
        "<h2>Held-out metrics</h2>",
        _table(metrics, ["model", "auc", "log_loss", "brier", "ece"]),
        "<p>hgb_baseline: scikit-learn's HistGradientBoosting on the same training rows; base_rate: "
        "the training set's delay rate for every flight.</p>",
        f'<h2>Calibration</h2><img alt="calibration" src="{image}">',
        f"<h2>Slices</h2><p>Candidate AUC per slice, the baseline's beside it. Flagged (red): at least "
        f"{SLICE_MIN_ROWS} flights and an AUC {SLICE_AUC_GAP:.2f} or more below the overall "
        f"{report.metrics['candidate']['auc']:.4f}. {len(flagged)} of {len(report.slices)} flagged"
        + (": " + html.escape(", ".join(f"{s['slice']} {s['value']}" for s in flagged)) if flagged else "")
        + ".</p>",
        _table(report.slices, ["slice", "value", "rows", "positive_rate", "auc", "hgb_auc", "flagged"], flag="flagged"),
        "<h2>Features</h2>",
        f"<p>numeric ({len(facts.numeric_features)}): {html.escape(', '.join(facts.numeric_features))}</p>",
        f"<p>categorical ({len(facts.categorical_features)}): {html.escape(', '.join(facts.categorical_features))}</p>",
        "<h2>Hyperparameters</h2>",
        _table([{"parameter": k, "value": v} for k, v in sorted(facts.params.items())], ["parameter", "value"]),
        *_search_section(facts.search_trials, facts.params.get("hyperparameters_from", "config")),
        "<h2>Data</h2>",
        f"<p>training set sha256 <code>{html.escape(facts.training_data_sha256)}</code></p>",
        _table(facts.raw_files, ["table", "file", "sha256"]),
    ]
    style = (
        "body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "font-size:13px;text-align:left}tr.flag td{background:#fbe3e3}code{font-size:12px}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(facts.model_name)} "
        f"v{html.escape(facts.version)} model card</title><style>{style}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>"
    )


def _search_section(trials: tuple[dict[str, Any], ...], source: str) -> list[str]:
    if not trials:
        return [f"<p>No search for this version: its hyperparameters are {html.escape(source)}.</p>"]
    columns = [c for c in ("trial", "state", "val_log_loss", "epochs", "learning_rate", "weight_decay",
                           "dropout", "hidden_width") if any(c in t for t in trials)]
    best = min((t for t in trials if t.get("val_log_loss") is not None), key=lambda t: t["val_log_loss"], default=None)
    rows = [{**t, "best": best is not None and t["trial"] == best["trial"]} for t in trials]
    return [
        f"<h3>Optuna search: {len(trials)} trials</h3><p>Validation log loss of a one-member trial, pruned "
        "(stopped early) when it trails the median of earlier trials at the same epoch; the best (red) "
        "trained the registered ensemble.</p>",
        _table(rows, columns, flag="best"),
    ]


def raw_files_of(tag: str | None) -> list[dict[str, str]]:
    return json.loads(tag) if tag else []
