"""Matplotlib figures saved as PNG (Agg backend, no display); deterministic for the same inputs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from healthscore.model.evaluate import reliability_table  # noqa: E402

_META = {"Software": None}  # no version/date stamps: same inputs, same bytes


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata=_META)
    plt.close(fig)
    return path


def reliability_plot(y: np.ndarray, preds: dict[str, np.ndarray], path: Path, *, bins: int = 10) -> Path:
    """Reliability diagram: observed renewal rate vs mean predicted probability per quantile bin."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect")
    for name, p in preds.items():
        t = reliability_table(y, p, bins=bins)
        ax.plot(t["predicted"], t["observed"], marker="o", label=name)
    ax.set_xlabel("predicted probability of renewal")
    ax.set_ylabel("observed renewal rate")
    ax.set_title("Reliability (quantile bins)")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def roc_plot(y: np.ndarray, preds: dict[str, np.ndarray], path: Path) -> Path:
    """ROC curves for the churn class (lower probability of renewal = flagged)."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    for name, p in preds.items():
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(1 - np.asarray(y), -np.asarray(p))
        ax.plot(fpr, tpr, label=name)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (churners caught)")
    ax.set_title("ROC, churn class")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def lift_plot(y: np.ndarray, preds: dict[str, np.ndarray], path: Path) -> Path:
    """Churn rate per decile of predicted risk, relative to the overall churn rate."""
    fig, ax = plt.subplots(figsize=(6, 4))
    churn = 1 - np.asarray(y, dtype=float)
    width = 0.8 / max(1, len(preds))
    for k, (name, p) in enumerate(preds.items()):
        order = np.argsort(np.asarray(p), kind="stable")
        deciles = np.array_split(order, 10)
        lift = [churn[d].mean() / churn.mean() if churn.mean() > 0 and len(d) else np.nan for d in deciles]
        ax.bar(np.arange(1, 11) + k * width - 0.4 + width / 2, lift, width=width, label=name)
    ax.axhline(1, c="grey", lw=1, ls="--")
    ax.set_xlabel("decile of predicted risk (1 = least likely to renew)")
    ax.set_ylabel("churn lift")
    ax.set_title("Lift by decile")
    ax.legend(fontsize=8)
    return _save(fig, path)


def component_weights_plot(weights: pd.DataFrame, path: Path) -> Path:
    """Learned component weights (share of mean |SHAP|) beside the hand-weighted scorecard."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = np.arange(len(weights))
    ax.bar(x - 0.2, weights["learned_weight"], width=0.4, label="learned (share of mean |SHAP|)")
    ax.bar(x + 0.2, weights["hand_weight"], width=0.4, label="hand-weighted scorecard")
    ax.set_xticks(x, weights["component"], rotation=30, ha="right")
    ax.set_ylabel("weight, %")
    ax.set_title("What should our weights be?")
    ax.legend(fontsize=8)
    return _save(fig, path)
