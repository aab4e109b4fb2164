"""Population stability: how far the scoring batch has moved from the rows the model was trained on.

PSI (population stability index) compares the share of rows per bin in a reference population ``e``
(the model's training rows) with the current one ``a``::

    PSI = Σ_bins (a_i − e_i) · ln(a_i / e_i)

Numeric features use the model's stored quantile edges (so each training bin holds about the same share)
plus one bin for missing values, so a feature that suddenly goes missing drifts too. Categorical features
use one bin per category seen at training (an unseen category is missing after ``HealthModel.prepare``).
Empty bins are floored at ``EPSILON`` so one empty bin does not make PSI infinite.

Reading it (the usual rule of thumb, set in ``config.drift``): below 0.1 stable, 0.1–0.25 worth a look,
above 0.25 the population has shifted. PSI is biased upward on small batches (a few hundred rows give
~0.02–0.05 by chance alone), and a feature defined relative to the observation date (days to renewal)
differs between training rows (fixed lead times) and a batch (every account, any distance to renewal) by
construction: such features (``EXPECTED_SHIFT``) keep their PSI but get the level ``expected`` instead of a
warning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from healthscore.config import DriftConfig

#: floor for an empty bin's share
EPSILON = 1e-4
#: the row of the drift table that holds the model score's PSI
SCORE_ROW = "model_score"
#: features whose training distribution differs from any batch by design: PSI is shown, level ``expected``
EXPECTED_SHIFT: dict[str, str] = {
    "days_to_renewal": "training rows sit at fixed lead times before each renewal; a batch has every distance",
    "months_since_contract_start": "the same fixed lead times seen from the term's start (term length minus "
    "days to renewal)",
}
MISSING = "<missing>"
DRIFT_COLUMNS = ("feature", "component", "kind", "psi", "level", "n_reference", "n_current", "missing_reference",
                 "missing_current", "note")


def psi(expected: np.ndarray, actual: np.ndarray, *, epsilon: float = EPSILON) -> float:
    """PSI between two share vectors over the same bins (each normalised to sum to 1 first)."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape:
        raise ValueError(f"expected and actual need the same bins, found {e.shape} and {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        return float("nan")
    e = np.maximum(e / e.sum(), epsilon)
    a = np.maximum(a / a.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_reference(values: np.ndarray, *, bins: int = 10, max_values: int = 2000) -> dict[str, Any]:
    """A numeric distribution summary in the shape ``HealthModel.reference_distributions`` stores."""
    v = np.asarray(values, dtype=float)
    present = np.sort(v[~np.isnan(v)])
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1))) if len(present) else np.array([])
    return {
        "kind": "numeric",
        "edges": edges.tolist(),
        "values": present[:: max(1, len(present) // max_values)].tolist(),
        "missing_share": float(np.isnan(v).mean()) if len(v) else 0.0,
        "n": int(len(v)),
    }


def numeric_shares(reference: dict[str, Any], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current shares over the reference's quantile bins, plus a last bin for missing values."""
    edges = np.asarray(reference.get("edges", []), dtype=float)
    inner = edges[1:-1]  # the outer edges are the training min/max: values beyond them fall in the end bins
    ref_values = np.asarray(reference.get("values", []), dtype=float)
    ref_missing = float(reference.get("missing_share", 0.0))
    n_bins = len(inner) + 1
    if len(ref_values):
        ref_counts = np.bincount(np.searchsorted(inner, ref_values, side="left"), minlength=n_bins)
        ref_present = ref_counts / ref_counts.sum()
    else:
        ref_present = np.zeros(n_bins)
    ref = np.append(ref_present * (1.0 - ref_missing), ref_missing)

    v = np.asarray(values, dtype=float)
    missing = np.isnan(v)
    cur_counts = np.bincount(np.searchsorted(inner, v[~missing], side="left"), minlength=n_bins).astype(float)
    cur = np.append(cur_counts, missing.sum()) / max(len(v), 1)
    return ref, cur


def categorical_shares(reference: dict[str, Any], values: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Reference and current shares per category (union of both; missing and unseen values as ``<missing>``)."""
    ref_shares = {str(k): float(v) for k, v in reference.get("shares", {}).items()}
    current = pd.Series(values).astype("object").where(pd.Series(values).notna(), MISSING).astype(str)
    cur_shares = current.value_counts(normalize=True)
    keys = sorted(set(ref_shares) | set(cur_shares.index))
    ref = np.array([ref_shares.get(k, 0.0) for k in keys])
    cur = np.array([float(cur_shares.get(k, 0.0)) for k in keys])
    return ref, cur, keys


def feature_psi(reference: dict[str, Any], values: pd.Series | np.ndarray) -> float:
    """PSI of one feature's current values against its stored training distribution."""
    if reference.get("kind") == "categorical":
        ref, cur, _ = categorical_shares(reference, pd.Series(values))
    else:
        ref, cur = numeric_shares(reference, pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float))
    return psi(ref, cur)


def level_of(value: float, config: DriftConfig) -> str:
    """``alert`` at or above ``psi_alert``, ``warn`` at or above ``psi_warn``, ``ok`` below, ``n/a`` if unknown."""
    if value != value:
        return "n/a"
    if value >= config.psi_alert:
        return "alert"
    if value >= config.psi_warn:
        return "warn"
    return "ok"


def score_reference(model, X_train: pd.DataFrame, *, bins: int = 10) -> dict[str, Any]:
    """The distribution of the model score on its training rows, to store as ``metadata["score_reference"]``."""
    return numeric_reference(100.0 * model.predict_proba(X_train), bins=bins)


def psi_table(
    model,
    features_prepared: pd.DataFrame,
    *,
    probability: np.ndarray | None = None,
    config: DriftConfig | None = None,
) -> pd.DataFrame:
    """PSI per feature (and for the model score) between the model's training rows and a prepared batch.

    ``features_prepared`` is the model matrix (``HealthModel.prepare``) of the rows scored. The score row
    (``feature == "model_score"``) needs ``probability`` and the model's ``metadata["score_reference"]``;
    without either its PSI is NaN (level ``n/a``). Rows are sorted by PSI, largest first.
    """
    config = config or DriftConfig()
    refs = getattr(model, "reference_distributions", {}) or {}
    components = getattr(model, "components", {}) or {}
    metadata = getattr(model, "metadata", {}) or {}
    rows = []
    for name in features_prepared.columns:
        ref = refs.get(name)
        if not ref:
            continue
        col = features_prepared[name]
        value = feature_psi(ref, col)
        # training distributions are summarised on the training part: its size is the reference n
        ref = {"n": metadata.get("n_train"), **ref}
        rows.append(_row(name, components.get(name, "account"), ref, col, value, config))
    score_ref = metadata.get("score_reference")
    if probability is not None:
        scores = 100.0 * np.asarray(probability, dtype=float)
        value = feature_psi(score_ref, scores) if score_ref else float("nan")
        rows.append(_row(SCORE_ROW, "score", score_ref or {"kind": "numeric"}, pd.Series(scores), value, config))
    table = pd.DataFrame(rows, columns=list(DRIFT_COLUMNS))
    return table.sort_values(["psi", "feature"], ascending=[False, True], na_position="last",
                             kind="stable").reset_index(drop=True)


def _row(name: str, component: str, ref: dict[str, Any], col: pd.Series, value: float, config: DriftConfig) -> dict:
    if ref.get("kind") == "categorical":
        ref_missing = float(ref.get("shares", {}).get(MISSING, 0.0))
    else:
        ref_missing = float(ref.get("missing_share", 0.0))
    level = level_of(value, config)
    note = EXPECTED_SHIFT.get(name, "")
    if note and level in ("warn", "alert"):
        level = "expected"
    return {
        "feature": name,
        "component": component,
        "kind": ref.get("kind", "numeric"),
        "psi": value,
        "level": level,
        "n_reference": ref.get("n"),
        "n_current": int(len(col)),
        "missing_reference": ref_missing,
        "missing_current": float(pd.Series(col).isna().mean()) if len(col) else float("nan"),
        "note": note,
    }


def drift_warnings(table: pd.DataFrame | None, *, limit: int = 5) -> list[str]:
    """One plain line per feature (or the score) at ``warn`` or ``alert``, worst first; at most ``limit`` + a tally."""
    if table is None or table.empty:
        return []
    flagged = table[table["level"].isin(["warn", "alert"])]
    lines = [
        f"drift {r.level}: {'model score' if r.feature == SCORE_ROW else r.feature} ({r.component}) "
        f"PSI {r.psi:.2f} against the model's training rows"
        for r in flagged.head(limit).itertuples()
    ]
    if len(flagged) > limit:
        lines.append(f"… and {len(flagged) - limit} more features with PSI ≥ {flagged['psi'].min():.2f}")
    return lines
