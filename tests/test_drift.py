"""PSI: hand-counted bins, thresholds, row order, and a fitted model that sees one feature move."""

from __future__ import annotations

import functools
import math
from datetime import date
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from _fast import fast_config, fast_model
from healthscore.config import DriftConfig, config_from_dict
from healthscore.drift import (
    EPSILON,
    SCORE_ROW,
    categorical_shares,
    chance_psi,
    drift_warnings,
    feature_psi,
    level_of,
    numeric_reference,
    numeric_shares,
    psi,
    psi_parts,
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
    assert lines == ["drift alert: a (usage) values PSI 0.40 against the model's reference batch",
                     "drift warn: model score (score) values PSI 0.12 against the model's reference batch"]
    stalled = table.assign(psi_value=[0.01, 0.12, 0.0], psi_missing=[0.9, 0.0, 0.0],
                           missing_reference=[0.02, 0.0, 0.0], missing_current=[0.41, 0.0, 0.0])
    assert drift_warnings(stalled)[0] == "drift alert: a (usage) missing 2% → 41% against the model's reference batch"
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


def test_calendar_features_are_tracked_and_never_warn():
    # a batch has accounts anywhere in their term; the reference batch was another day's mix
    model = SimpleNamespace(
        reference_distributions={"days_to_renewal": numeric_reference(np.repeat([30.0, 90.0, 180.0], 10), bins=3)},
        components={"days_to_renewal": "account"}, metadata={})
    batch = pd.DataFrame({"days_to_renewal": np.linspace(1, 365, 50)})
    row = psi_table(model, batch).iloc[0]
    assert row["psi"] > 0.25 and row["level"] == "tracked" and "renewal calendar" in row["note"]
    assert drift_warnings(psi_table(model, batch)) == []
    cfg = config_from_dict({"drift": {"psi_warn": 0.5, "psi_alert": 1.0}}).drift
    assert [level_of(v, cfg) for v in (0.3, 0.6, 1.2)] == ["ok", "warn", "alert"]


def test_value_and_missing_parts_are_told_apart():
    ref = numeric_reference(np.arange(1000, dtype=float), bins=10)
    same_values_more_missing = np.concatenate([np.arange(0, 1000, 2, dtype=float), np.full(500, np.nan)])
    value, missing, bins = psi_parts(ref, same_values_more_missing)
    assert value < 0.01 and missing > 1.0 and bins == 10
    moved_values = np.arange(500, 1500, dtype=float)
    value, missing, _ = psi_parts(ref, moved_values)
    assert value > 1.0 and missing < 1e-9


def test_chance_level_falls_with_sample_size_and_spares_small_batches():
    assert chance_psi(10, 200, 200, chance=0.001) > chance_psi(10, 20_000, 20_000, chance=0.001)
    # the same population drawn twice, small: PSI by chance alone is above the 0.1 rule of thumb, yet no warning
    rng = np.random.default_rng(0)
    ref = numeric_reference(rng.normal(size=150), bins=10)
    model = SimpleNamespace(reference_distributions={"x": ref}, components={"x": "usage"}, metadata={})
    rows = [psi_table(model, pd.DataFrame({"x": rng.normal(size=150)})).iloc[0] for _ in range(20)]
    assert max(r["psi"] for r in rows) > 0.1
    assert all(r["level"] == "ok" for r in rows)


# -- worlds: a stable one stays quiet, a stalled feed and a drifting world do not -------------------------

@functools.cache
def _world_model(drift: bool, as_of: date):
    from healthscore.io import dataset_from_frames
    from healthscore.model.train import fit_health_model, training_set_from_dataset
    from healthscore.simulate import SimulationSpec, simulate

    world = simulate(SimulationSpec(accounts=800, seed=4, months=42, drift=drift))
    cfg = fast_config()
    ds = dataset_from_frames(world.tables)
    model = fit_health_model(training_set_from_dataset(ds, config=cfg, as_of=as_of), config=cfg).model
    return world, ds, model, cfg


def _flagged(ds, as_of, model, cfg) -> pd.DataFrame:
    from healthscore.scoring import batch_drift

    table = batch_drift(ds, as_of, model, cfg)
    return table[table["level"].isin(["warn", "alert"])]


@pytest.mark.parametrize("months_after", [1, 3, 6])
def test_a_stable_world_raises_no_drift_months_after_training(months_after):
    _, ds, model, cfg = _world_model(False, date(2024, 7, 1))
    when = (pd.Timestamp("2024-07-01") + pd.DateOffset(months=months_after)).date()
    flagged = _flagged(ds, when, model, cfg)
    assert flagged.empty, flagged[["feature", "psi_value", "psi_missing", "level"]].to_string()
    assert model.metadata["drift_reference"]["population"] == "batch at the training cutoff"


def test_a_stalled_usage_feed_alerts_on_usage():
    from healthscore.io import dataset_from_frames

    world, _, model, cfg = _world_model(False, date(2024, 7, 1))
    when = date(2024, 10, 1)
    tables = dict(world.tables)
    ev = tables["usage_events"]
    tables["usage_events"] = ev[pd.to_datetime(ev["ts"]) < pd.Timestamp(when) - pd.Timedelta(days=21)]
    flagged = _flagged(dataset_from_frames(tables), when, model, cfg)
    alerts = flagged[flagged["level"] == "alert"]
    assert {"days_since_last_activity", "active_days_30d"} <= set(alerts["feature"])
    assert set(alerts["component"]) >= {"usage"}


def test_a_drifting_world_is_flagged_a_year_on():
    # trained before the world's midpoint (2023-10); its accounts then churn by other rules and the book moves
    _, ds, model, cfg = _world_model(True, date(2023, 9, 1))
    assert not _flagged(ds, date(2025, 1, 1), model, cfg).empty
