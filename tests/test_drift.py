"""PSI: hand-counted bins, thresholds, row order, and a fitted model that sees one feature move."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from _fast import fast_model
from healthscore.config import DriftConfig, config_from_dict
from healthscore.drift import (
    EPSILON,
    SCORE_ROW,
    categorical_shares,
    drift_warnings,
    feature_psi,
    level_of,
    numeric_reference,
    numeric_shares,
    psi,
    psi_table,
    score_reference,
)
from healthscore.model.train import TrainingSet, fit_health_model


def test_psi_by_hand():
    # (0.25 − 0.5)·ln(0.25/0.5) + (0.75 − 0.5)·ln(0.75/0.5) = 0.17329 + 0.10137
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([1, 1, 2], [1, 1, 2]) == 0.0  # counts are normalised first
    assert psi([2, 3], [20, 30]) == pytest.approx(0.0)


def test_psi_floors_empty_bins_instead_of_infinity():
    # bin 2 empty in the batch: its share is floored at EPSILON
    expected = (EPSILON - 0.5) * math.log(EPSILON / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx(expected, rel=1e-3)


def test_psi_needs_the_same_bins():
    with pytest.raises(ValueError, match="same bins"):
        psi([0.5, 0.5], [1.0])


def test_numeric_shares_by_hand():
    # training: quantile edges 0..4 (inner edges 1, 2, 3), one value per bin, 20% missing
    reference = {"kind": "numeric", "edges": [0, 1, 2, 3, 4], "values": [0.5, 1.5, 2.5, 3.5], "missing_share": 0.2}
    # batch: 0.5 and -3 (below the training minimum) and 1.0 (on an edge: the lower bin) → bin 1;
    # 5.0 beyond the training maximum → last bin; NaN → the missing bin
    ref, cur = numeric_shares(reference, np.array([0.5, 1.0, 5.0, -3.0, np.nan]))
    assert ref.tolist() == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.2])
    assert cur.tolist() == pytest.approx([3 / 5, 0, 0, 1 / 5, 1 / 5])


def test_numeric_reference_matches_the_stored_shape():
    ref = numeric_reference(np.array([1.0, 2.0, np.nan, 4.0]), bins=2)
    assert ref["edges"] == [1.0, 2.0, 4.0]
    assert ref["missing_share"] == 0.25
    assert ref["n"] == 4


def test_categorical_shares_by_hand():
    reference = {"kind": "categorical", "shares": {"smb": 0.5, "enterprise": 0.5}}
    ref, cur, keys = categorical_shares(reference, pd.Series(["smb", "smb", "smb", None], dtype="object"))
    assert keys == ["<missing>", "enterprise", "smb"]
    assert ref.tolist() == [0.0, 0.5, 0.5]
    assert cur.tolist() == [0.25, 0.0, 0.75]


@pytest.mark.parametrize(("value", "level"), [(0.0, "ok"), (0.0999, "ok"), (0.1, "warn"), (0.2499, "warn"),
                                               (0.25, "alert"), (3.0, "alert"), (float("nan"), "n/a")])
def test_levels_follow_the_default_thresholds(value, level):
    assert level_of(value, DriftConfig()) == level


def test_thresholds_come_from_config():
    cfg = config_from_dict({"drift": {"psi_warn": 0.5, "psi_alert": 1.0}}).drift
    assert [level_of(v, cfg) for v in (0.3, 0.6, 1.2)] == ["ok", "warn", "alert"]


def _fake_model():
    """Two features stored as a model stores them: ``usage`` numeric in four bins, ``plan`` categorical."""
    return SimpleNamespace(
        reference_distributions={
            "usage": {"kind": "numeric", "edges": [0, 1, 2, 3, 4], "values": [0.5, 1.5, 2.5, 3.5],
                      "missing_share": 0.0},
            "plan": {"kind": "categorical", "shares": {"basic": 0.5, "pro": 0.5}},
        },
        components={"usage": "usage", "plan": "account"},
        metadata={"n_train": 40},
    )


def test_psi_table_flags_the_feature_that_moved_and_ignores_row_order():
    # 8 accounts: usage all piled into the top bin (moved), plan split 4/4 as in training (stable)
    batch = pd.DataFrame({"usage": [3.5, 3.9, 3.2, 3.7, 3.3, 3.6, 3.1, 3.8],
                          "plan": pd.Categorical(["basic", "pro"] * 4, categories=["basic", "pro"])})
    before = batch.copy()
    table = psi_table(_fake_model(), batch)
    assert table["feature"].tolist() == ["usage", "plan"]  # worst first
    usage = table.iloc[0]
    expected = 3 * (EPSILON - 0.25) * math.log(EPSILON / 0.25) + (1 - 0.25) * math.log(1 / 0.25)
    assert usage["psi"] == pytest.approx(expected, rel=1e-3)
    assert (usage["level"], usage["component"], usage["n_reference"], usage["n_current"]) == ("alert", "usage", 40, 8)
    assert table.iloc[1]["psi"] == pytest.approx(0.0) and table.iloc[1]["level"] == "ok"
    pd.testing.assert_frame_equal(batch, before)  # input untouched
    shuffled = batch.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(psi_table(_fake_model(), shuffled), table)


def test_score_row_needs_a_score_reference():
    batch = pd.DataFrame({"usage": [0.5, 1.5, 2.5, 3.5]})
    table = psi_table(_fake_model(), batch, probability=np.array([0.2, 0.4, 0.6, 0.8]))
    score = table[table["feature"] == SCORE_ROW].iloc[0]
    assert math.isnan(score["psi"]) and score["level"] == "n/a" and score["component"] == "score"

    model = _fake_model()
    model.metadata["score_reference"] = numeric_reference(np.array([20.0, 40, 60, 80]), bins=4)
    table = psi_table(model, batch, probability=np.array([0.2, 0.4, 0.6, 0.8]))
    assert table.loc[table["feature"] == SCORE_ROW, "psi"].iloc[0] == pytest.approx(0.0)


def test_drift_warnings_name_flagged_rows_only():
    table = pd.DataFrame({"feature": ["a", SCORE_ROW, "c"], "component": ["usage", "score", "billing"],
                          "psi": [0.4, 0.12, 0.01], "level": ["alert", "warn", "ok"]})
    lines = drift_warnings(table)
    assert lines == ["drift alert: a (usage) PSI 0.40 against the model's training rows",
                     "drift warn: model score (score) PSI 0.12 against the model's training rows"]
    assert drift_warnings(None) == [] and drift_warnings(table.iloc[:0]) == []
    assert drift_warnings(table, limit=1)[-1].startswith("… and 1 more")


def _synthetic(n: int, seed: int) -> TrainingSet:
    rng = np.random.default_rng(seed)
    usage, tickets = rng.normal(size=n), rng.normal(size=n)
    plan = rng.choice(["basic", "pro"], size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.0 + 1.5 * usage - 0.5 * tickets)))).astype(int)
    rows = pd.DataFrame({"contract_id": [f"C-{i}" for i in range(n)],
                         "renewal_date": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 730, n), "D")})
    feats = pd.DataFrame({"usage": usage, "tickets": tickets, "plan": pd.Series(plan, dtype="object")})
    return TrainingSet(features=feats, label=y, rows=rows, components={"usage": "usage", "tickets": "support",
                       "plan": "account"}, directions={"usage": 1, "tickets": -1}, categorical=["plan"])


def test_a_fitted_model_sees_a_shifted_feature_and_its_score_move():
    cfg = config_from_dict({"model": fast_model(n_estimators=60)})
    ts = _synthetic(2000, seed=0)
    model = fit_health_model(ts, config=cfg).model
    model.metadata["score_reference"] = score_reference(model, model.prepare(ts.features))
    fresh = _synthetic(1500, seed=1).features  # same world, new accounts: nothing should move
    X = model.prepare(fresh)
    stable = psi_table(model, X, probability=model.predict_proba(X), config=cfg.drift).set_index("feature")
    assert (stable["level"] == "ok").all(), stable
    moved = fresh.assign(usage=fresh["usage"] - 1.5)  # usage collapses
    X = model.prepare(moved)
    shifted = psi_table(model, X, probability=model.predict_proba(X), config=cfg.drift).set_index("feature")
    assert shifted.loc["usage", "level"] == "alert"
    assert shifted.loc[SCORE_ROW, "level"] == "alert"  # usage drives the score, so the score drifts too
    assert shifted.loc["tickets", "level"] == "ok" and shifted.loc["plan", "level"] == "ok"
    assert feature_psi(model.reference_distributions["usage"], moved["usage"]) == shifted.loc["usage", "psi"]


def test_days_to_renewal_shifts_by_design_and_does_not_warn():
    # training rows sit 30/90/180 days before renewal; a batch has accounts anywhere in their term
    model = SimpleNamespace(
        reference_distributions={"days_to_renewal": numeric_reference(np.repeat([30.0, 90.0, 180.0], 10), bins=3)},
        components={"days_to_renewal": "account"}, metadata={})
    batch = pd.DataFrame({"days_to_renewal": np.linspace(1, 365, 50)})
    row = psi_table(model, batch).iloc[0]
    assert row["psi"] > 0.25 and row["level"] == "expected" and "fixed lead times" in row["note"]
    assert drift_warnings(psi_table(model, batch)) == []
