"""Contributions by component, in score points that add up to the score.

Method. LightGBM's ``pred_contrib`` gives exact TreeSHAP values φ_f in log-odds, with
``E + Σ φ_f = margin`` for every row (E is the expected margin). Calibration then maps the margin to a
probability through a non-linear monotone map g, so log-odds contributions do not add up in points. We
define ``baseline = 100 · g(E)`` (the score of an average account) and spread the calibrated difference
``100 · g(margin) − baseline`` over components in proportion to their summed log-odds contributions:

    contrib_c = (100 · p − baseline) · Φ_c / Σ_c Φ_c,   Φ_c = Σ_{f ∈ c} φ_f

so ``baseline + Σ_c contrib_c = 100 · p`` holds exactly (to float precision) on every row. Where it
approximates: the split is linear in log-odds, so when components push in opposite directions the
points each gets reflect the calibration's average slope between E and the margin, not its slope at each
component's own position. When Σ Φ_c is ~0 (|Σ| < 1e-9) the (then ~0) difference is shared equally.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from healthscore.config import COMPONENTS

CONTRIB_COLUMNS = tuple(f"contrib_{c}" for c in COMPONENTS)


def points_from_log_odds(component_log_odds: pd.DataFrame, probability: np.ndarray, baseline: float) -> pd.DataFrame:
    """Component contributions in score points such that ``baseline + Σ contrib = 100 · probability``."""
    phi = component_log_odds.reindex(columns=list(COMPONENTS), fill_value=0.0).to_numpy(dtype=float)
    total = 100.0 * np.asarray(probability, dtype=float) - baseline
    s = phi.sum(axis=1)
    safe = np.abs(s) >= 1e-9
    share = np.where(safe[:, None], phi / np.where(safe, s, 1.0)[:, None], 1.0 / phi.shape[1])
    points = share * total[:, None]
    return pd.DataFrame(points, columns=list(CONTRIB_COLUMNS), index=component_log_odds.index)


def predict_with_contributions(model, features: pd.DataFrame) -> pd.DataFrame:
    """Probability, model score, baseline and per-component points for a raw feature frame."""
    X = model.prepare(features)
    contrib, expected = model.contributions(X)
    margin = contrib.sum(axis=1).to_numpy() + expected
    probability = model.calibrator.predict(margin)
    baseline = model.baseline_points
    points = points_from_log_odds(model.component_contributions(contrib), probability, baseline)
    out = pd.DataFrame(
        {
            "probability": probability,
            "model_score": np.round(100.0 * probability).astype("int64"),
            "baseline": baseline,
        },
        index=features.index,
    )
    return pd.concat([out, points.set_axis(features.index)], axis=1)
