"""Honest evaluation on held-out renewals: discrimination, calibration, lift — overall and per group."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

METRICS = ("n", "renewal_rate", "roc_auc", "pr_auc_churn", "brier", "log_loss", "ece", "top_decile_lift")


def expected_calibration_error(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> float:
    """ECE over quantile bins: the row-weighted mean |observed rate − mean predicted| per bin.

    Quantile (equal-count) bins, because a health model's probabilities crowd near the renewal rate and
    equal-width bins would leave most bins empty.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    table = reliability_table(y, p, bins=bins)
    return float(np.sum(table["n"] * (table["observed"] - table["predicted"]).abs()) / len(y))


def reliability_table(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> pd.DataFrame:
    """Per quantile bin of the predicted probability: n, mean predicted, observed renewal rate."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, min(bins, len(p))) if len(p) else []
    rows = []
    for k, idx in enumerate(groups):
        if len(idx) == 0:
            continue
        rows.append(
            {
                "bin": k + 1,
                "n": len(idx),
                "p_low": float(p[idx].min()),
                "p_high": float(p[idx].max()),
                "predicted": float(p[idx].mean()),
                "observed": float(y[idx].mean()),
            }
        )
    return pd.DataFrame(rows, columns=["bin", "n", "p_low", "p_high", "predicted", "observed"])


def top_decile_lift(y: np.ndarray, p: np.ndarray) -> float:
    """Churn rate among the 10% least likely to renew, divided by the overall churn rate."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    churn = 1 - y
    if churn.sum() == 0 or len(y) < 10:
        return float("nan")
    k = max(1, int(np.ceil(len(y) * 0.1)))
    worst = np.argsort(p, kind="stable")[:k]
    return float(churn[worst].mean() / churn.mean())


def binary_metrics(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> dict[str, float]:
    """Every metric for one set of rows; AUCs are NaN when only one class is present."""
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    both = len(np.unique(y)) == 2
    return {
        "n": float(len(y)),
        "renewal_rate": float(y.mean()) if len(y) else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc_churn": float(average_precision_score(1 - y, 1 - p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)) if len(y) else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if len(y) else float("nan"),
        "ece": expected_calibration_error(y, p, bins=bins),
        "top_decile_lift": top_decile_lift(y, p),
    }


def level_order(value) -> tuple:
    """Sort key for group levels: numbers by value (lead times 30, 90, 180), then text alphabetically."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def evaluate_predictions(
    y: np.ndarray, predictions: dict[str, np.ndarray], groups: dict[str, pd.Series] | None = None
) -> pd.DataFrame:
    """Long table of metrics: one row per (model, group, level) with every metric as a column.

    ``predictions`` maps a model name (healthscore, scorecard, logistic, truth) to P(renew) on the same rows;
    ``groups`` maps a grouping name (segment, lead_time_days) to a Series aligned with ``y``.
    """
    y = np.asarray(y, dtype=int)
    out = []
    for name, p in predictions.items():
        p = np.asarray(p, dtype=float)
        out.append({"model": name, "group": "all", "level": "all", **binary_metrics(y, p)})
        for gname, g in (groups or {}).items():
            g = np.asarray(g)
            for level in sorted(pd.unique(g), key=level_order):
                mask = g == level
                out.append({"model": name, "group": gname, "level": str(level), **binary_metrics(y[mask], p[mask])})
    return pd.DataFrame(out)
