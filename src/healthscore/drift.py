"""Population stability: how far the scoring batch has moved from the rows the model was trained on.

PSI (population stability index) compares the share of rows per bin in a reference population ``e``
(the model's training rows) with the current one ``a``::

    PSI = Σ_bins (a_i − e_i) · ln(a_i / e_i)

Numeric features use the model's stored quantile edges (so each training bin holds about the same share)
plus one bin for missing values, so a feature that suddenly goes missing drifts too. Categorical features
use one bin per category seen at training (an unseen category is missing after ``HealthModel.prepare``).
Empty bins are floored at ``EPSILON`` so one empty bin does not make PSI infinite.

Two parts, so a feed that stops and a population that moves are told apart:

- ``psi_value``: the PSI of the present values over the quantile bins (each side renormalised over its
  present rows), i.e. "the values moved";
- ``psi_missing``: the PSI of the two-bin split missing / present, i.e. "the share without data moved".

``psi`` is the PSI over all bins at once (bins plus the missing bin), as before.

Reading it (the usual rule of thumb, set in ``config.drift``): below 0.1 stable, 0.1–0.25 worth a look,
above 0.25 the population has shifted. PSI is biased upward on small samples: with ``n`` and ``m`` rows and
``k`` bins, two samples of one population give PSI ≈ χ²_{k−1} / n_eff (n_eff = n·m / (n + m)) by chance
alone. So a part is only flagged when it also exceeds that chance level's ``1 − drift.chance`` quantile: a
few hundred rows no longer raise a warning by noise.

The reference population is the model's *batch at its training cutoff*: every account as it would have been
scored on that day (``TrainingSet.reference_features``); a model without one (a flat table) falls back to its
training rows. Features that move with the calendar (tenure, days to renewal: ``CALENDAR``) differ from any
earlier batch by design; they keep their PSI but get the level ``tracked`` and never warn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from healthscore.config import DriftConfig

#: floor for an empty bin's share
EPSILON = 1e-4
#: the row of the drift table that holds the model score's PSI
SCORE_ROW = "model_score"
#: features that move with the calendar, so every later batch differs from the reference by design: their
#: PSI is shown with level ``tracked`` and never warns
CALENDAR: dict[str, str] = {
    "tenure_days": "grows by a day every day: the book ages",
    "months_since_customer_start": "grows with the calendar: the book ages",
    "earlier_renewals": "grows by one at each renewal: the book ages",
    "days_to_renewal": "counts down to each renewal: the mix of distances moves with the renewal calendar",
    "months_since_contract_start": "counts up from each term's start: moves with the renewal calendar",
}
MISSING = "<missing>"
DRIFT_COLUMNS = ("feature", "component", "kind", "psi", "psi_value", "psi_missing", "level", "n_reference",
                 "n_current", "missing_reference", "missing_current", "note")


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


def categorical_reference(values: pd.Series) -> dict[str, Any]:
    """A categorical distribution summary: the share of each category (missing as ``<missing>``) and n."""
    shares = pd.Series(values).astype("object").fillna(MISSING).value_counts(normalize=True).sort_index()
    return {"kind": "categorical", "shares": {str(k): float(v) for k, v in shares.items()}, "n": int(len(values))}


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


def psi_parts(reference: dict[str, Any], values: pd.Series | np.ndarray) -> tuple[float, float, int]:
    """(psi_value, psi_missing, bins of the value part): the present values' PSI and the missing share's PSI."""
    if reference.get("kind") == "categorical":
        ref, cur, keys = categorical_shares(reference, pd.Series(values))
        present = np.array([k != MISSING for k in keys])
    else:
        ref, cur = numeric_shares(reference, pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float))
        present = np.ones(len(ref), dtype=bool)
        present[-1] = False
    ref_present, cur_present = ref[present].sum(), cur[present].sum()
    value = psi(ref[present], cur[present]) if ref_present > 0 and cur_present > 0 else float("nan")
    missing = psi(np.array([ref_present, 1 - ref_present]), np.array([cur_present, 1 - cur_present]))
    return value, missing, int(present.sum())


def chance_psi(bins: int, n_reference: float, n_current: float, *, chance: float) -> float:
    """The PSI two samples of one population exceed with probability ``chance`` (χ²_{bins−1} / n_eff)."""
    if bins < 2 or not n_reference or not n_current or n_reference != n_reference:
        return 0.0
    n_eff = float(n_reference) * float(n_current) / (float(n_reference) + float(n_current))
    return float(chi2.ppf(1.0 - chance, bins - 1) / n_eff)


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


def _part_level(value: float, bins: int, n_ref, n_cur, config: DriftConfig) -> str:
    """The level of one part: the config's thresholds, each raised to the PSI chance alone reaches."""
    if value != value:
        return "n/a"
    floor = chance_psi(bins, n_ref, n_cur, chance=config.chance)
    if value >= max(config.psi_alert, floor):
        return "alert"
    if value >= max(config.psi_warn, floor):
        return "warn"
    return "ok"


_RANK = {"n/a": 0, "ok": 1, "warn": 2, "alert": 3}


def _row(name: str, component: str, ref: dict[str, Any], col: pd.Series, value: float, config: DriftConfig) -> dict:
    if ref.get("kind") == "categorical":
        ref_missing = float(ref.get("shares", {}).get(MISSING, 0.0))
    else:
        ref_missing = float(ref.get("missing_share", 0.0))
    n_ref, n_cur = ref.get("n"), int(len(col))
    missing_current = float(pd.Series(col).isna().mean()) if len(col) else float("nan")
    if "edges" in ref or "shares" in ref:
        psi_value, psi_missing, bins = psi_parts(ref, col)
    else:
        psi_value, psi_missing, bins = float("nan"), float("nan"), 0
    # the value part is judged on present rows only, the missing part on all rows
    levels = [_part_level(psi_value, bins, (n_ref or 0) * (1 - ref_missing), n_cur * (1 - missing_current)
                          if missing_current == missing_current else 0, config),
              _part_level(psi_missing, 2, n_ref, n_cur, config)]
    level = max(levels, key=_RANK.get) if value == value else "n/a"
    note = CALENDAR.get(name, "")
    if note and level != "n/a":
        level = "tracked"
    return {
        "feature": name,
        "component": component,
        "kind": ref.get("kind", "numeric"),
        "psi": value,
        "psi_value": psi_value,
        "psi_missing": psi_missing,
        "level": level,
        "n_reference": n_ref,
        "n_current": n_cur,
        "missing_reference": ref_missing,
        "missing_current": missing_current,
        "note": note,
    }


def drift_warnings(table: pd.DataFrame | None, *, limit: int = 5) -> list[str]:
    """One plain line per feature (or the score) at ``warn`` or ``alert``, worst first; at most ``limit`` + a tally."""
    if table is None or table.empty:
        return []
    flagged = table[table["level"].isin(["warn", "alert"])]
    lines = [
        f"drift {r.level}: {'model score' if r.feature == SCORE_ROW else r.feature} ({r.component}) "
        f"{_what_moved(r)} against the model's reference batch"
        for r in flagged.head(limit).itertuples()
    ]
    if len(flagged) > limit:
        lines.append(f"… and {len(flagged) - limit} more features with PSI ≥ {flagged['psi'].min():.2f}")
    return lines


def _what_moved(r) -> str:
    """"values PSI 0.31" and/or "missing 2% → 41%" (the parts that raised the level)."""
    parts = []
    value = getattr(r, "psi_value", r.psi)
    missing = getattr(r, "psi_missing", float("nan"))
    if value == value and value >= 0.1:
        parts.append(f"values PSI {value:.2f}")
    if missing == missing and missing >= 0.1:
        parts.append(f"missing {r.missing_reference:.0%} → {r.missing_current:.0%}")
    return ", ".join(parts) or f"PSI {r.psi:.2f}"
