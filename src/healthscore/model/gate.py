"""The promotion gate: a challenger replaces the champion only if it is no worse on the newest renewals.

The newest ``retrain.holdout_share`` of the renewals decided before as-of (by renewal date, whole
contracts, ties kept together) are held out from the challenger's training, calibration and test; both
models predict them, and the gate compares the calibrated probability — the model alone, never the
adjusted score (CONTRACT §4) — on log loss, Brier and ROC AUC.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from healthscore.config import RetrainConfig
from healthscore.errors import HealthscoreError

PROMOTED = "promoted"
KEPT = "kept"
#: (metric, which direction is better, the RetrainConfig field holding its margin, label for people)
GATE_METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("log_loss", "lower", "log_loss_margin", "log loss"),
    ("brier", "lower", "brier_margin", "Brier score"),
    ("roc_auc", "higher", "auc_margin", "ROC AUC"),
)


@dataclass
class GateResult:
    """The gate's verdict: decision, one reason per metric, and the table behind them."""

    decision: str
    reasons: list[str]
    table: pd.DataFrame


def gate(champion: dict[str, float], challenger: dict[str, float], config: RetrainConfig) -> GateResult:
    """Promote iff the challenger is no worse than the champion by more than each metric's margin.

    A metric that cannot be computed on the holdout (AUC when only one outcome occurs) is not judged,
    and the reason says so; every other metric must pass.
    """
    rows, reasons = [], []
    for metric, better, margin_field, label in GATE_METRICS:
        margin = float(getattr(config, margin_field))
        a, b = float(champion.get(metric, math.nan)), float(challenger.get(metric, math.nan))
        worse_by = (b - a) if better == "lower" else (a - b)  # > 0: challenger worse
        if math.isnan(a) or math.isnan(b):
            verdict = "not judged"
            reasons.append(f"{label}: not judged (undefined on the holdout)")
        else:
            verdict = "pass" if worse_by <= margin + 1e-12 else "fail"
            how = f"worse by {worse_by:.4f}" if worse_by > 0 else f"better by {-worse_by:.4f}"
            reasons.append(
                f"{label}: challenger {b:.4f} vs champion {a:.4f}, {how} "
                f"(may be worse by at most {margin:.4f}) — {verdict}"
            )
        rows.append({"metric": metric, "better": better, "champion": a, "challenger": b,
                     "difference": b - a, "margin": margin, "verdict": verdict})
    table = pd.DataFrame(rows)
    decision = KEPT if (table["verdict"] == "fail").any() else PROMOTED
    return GateResult(decision=decision, reasons=reasons, table=table)


def holdout_mask(rows: pd.DataFrame, share: float) -> np.ndarray:
    """True for rows of the newest ``share`` of decided contracts by renewal date (ties kept together)."""
    if not 0 < share < 1:
        raise HealthscoreError(f"retrain.holdout_share must be between 0 and 1, found {share}")
    per_contract = rows.drop_duplicates("contract_id")[["contract_id", "renewal_date"]]
    n_hold = max(1, math.ceil(len(per_contract) * share))
    ordered = pd.to_datetime(per_contract["renewal_date"]).sort_values(ascending=False, kind="stable")
    first_held = ordered.iloc[n_hold - 1]
    return (pd.to_datetime(rows["renewal_date"]) >= first_held).to_numpy()


def subset(ts, mask: np.ndarray):
    """The same TrainingSet restricted to the rows where ``mask`` is True (positional)."""
    mask = np.asarray(mask, dtype=bool)
    return dataclasses.replace(
        ts,
        features=ts.features[mask].reset_index(drop=True),
        label=np.asarray(ts.label)[mask],
        rows=ts.rows[mask].reset_index(drop=True),
        part=None if ts.part is None else pd.Series(np.asarray(ts.part)[mask]),
        truth=None if ts.truth is None else pd.Series(np.asarray(ts.truth)[mask]),
    )


def shuffle_labels(ts, *, seed: int):
    """A copy of the training set with its outcomes permuted (seeded): a deliberately worse challenger."""
    rng = np.random.default_rng(seed)
    return dataclasses.replace(ts, label=rng.permutation(np.asarray(ts.label)))


def challenger_only_table(m: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"metric": k, "better": b, "champion": math.nan, "challenger": float(m[k]),
                          "difference": math.nan, "margin": math.nan, "verdict": "not judged"}
                         for k, b, _, _ in GATE_METRICS])
