"""Rich tables for the terminal."""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table

MODEL_LABELS = {
    "healthscore": "healthscore (calibrated)",
    "healthscore_raw": "healthscore (raw, uncalibrated)",
    "scorecard": "hand-weighted scorecard",
    "logistic": "logistic regression",
    "truth": "truth (simulator's p_renew)",
}


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def evaluation_table(evaluation: pd.DataFrame, *, title: str = "Evaluation on the test slice") -> Table:
    """Overall metrics per model, one row each."""
    t = Table(title=title)
    for col in ("model", "n", "ROC AUC", "PR AUC churn", "Brier", "log loss", "ECE", "top-decile lift"):
        t.add_column(col, justify="left" if col == "model" else "right")
    rows = evaluation[evaluation["group"] == "all"]
    for _, r in rows.iterrows():
        t.add_row(
            MODEL_LABELS.get(r["model"], r["model"]),
            f"{int(r['n'])}",
            _fmt(r["roc_auc"]),
            _fmt(r["pr_auc_churn"]),
            _fmt(r["brier"]),
            _fmt(r["log_loss"]),
            _fmt(r["ece"]),
            _fmt(r["top_decile_lift"], 2),
        )
    return t


def group_table(evaluation: pd.DataFrame, group: str, *, model: str = "healthscore") -> Table:
    """Metrics of one model per level of a group (segment, lead time)."""
    t = Table(title=f"{MODEL_LABELS.get(model, model)} by {group}")
    for col in (group, "n", "renewal rate", "ROC AUC", "Brier", "ECE", "top-decile lift"):
        t.add_column(col, justify="left" if col == group else "right")
    rows = evaluation[(evaluation["group"] == group) & (evaluation["model"] == model)]
    for _, r in rows.iterrows():
        t.add_row(str(r["level"]), f"{int(r['n'])}", _fmt(r["renewal_rate"]), _fmt(r["roc_auc"]), _fmt(r["brier"]),
                  _fmt(r["ece"]), _fmt(r["top_decile_lift"], 2))
    return t


def weights_table(weights: pd.DataFrame) -> Table:
    t = Table(title="Component weights: learned from renewals vs hand-weighted")
    for col in ("component", "learned %", "hand %"):
        t.add_column(col, justify="left" if col == "component" else "right")
    for _, r in weights.iterrows():
        t.add_row(r["component"], f"{r['learned_weight']:.1f}", f"{r['hand_weight']:.0f}")
    return t
