"""Model properties on a synthetic training set whose truth we know (no feature builders involved)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _fast import fast_model
from healthscore.config import Config, config_from_dict
from healthscore.errors import HealthscoreError
from healthscore.explain import component_points, feature_points
from healthscore.model.calibrate import Calibrator
from healthscore.model.evaluate import binary_metrics, expected_calibration_error, top_decile_lift
from healthscore.model.split import split_by_renewal_date, time_folds
from healthscore.model.train import TrainingSet, fit_health_model

COMPONENTS = {"usage_x": "usage", "tickets_x": "support", "nps_x": "feedback", "noise_x": "engagement",
              "segment": "account"}
DIRECTIONS = {"usage_x": 1, "tickets_x": -1, "nps_x": 1, "noise_x": 0}


def synthetic_set(n_contracts: int = 3000, seed: int = 0) -> tuple[TrainingSet, np.ndarray]:
    """Contracts renewing over two years; renewal saturates in usage and only bad support hurts (non-linear)."""
    rng = np.random.default_rng(seed)
    renewal = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 730, n_contracts), unit="D")
    usage = rng.normal(size=n_contracts)
    tickets = rng.normal(size=n_contracts)
    nps = rng.normal(size=n_contracts)
    seg = rng.choice(["smb", "mid_market", "enterprise"], size=n_contracts)
    logit = 1.2 + 2.0 * np.tanh(1.5 * usage) - 1.5 * np.maximum(tickets, 0) + 0.5 * nps + np.where(seg == "smb", -0.3, 0.2)
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n_contracts) < p).astype(int)
    rows = pd.DataFrame(
        {
            "contract_id": [f"C-{i}" for i in range(n_contracts)],
            "renewal_date": renewal,
            "segment": seg,
            "lead_time_days": rng.choice([30, 90, 180], size=n_contracts),
        }
    )
    feats = pd.DataFrame(
        {"usage_x": usage, "tickets_x": tickets, "nps_x": nps, "noise_x": rng.normal(size=n_contracts),
         "segment": pd.Series(seg, dtype="object")}
    )
    ts = TrainingSet(features=feats, label=y, rows=rows, components=COMPONENTS, directions=DIRECTIONS,
                     categorical=["segment"], truth=pd.Series(p))
    return ts, p


def small_config() -> Config:
    return config_from_dict(
        {"model": fast_model(reg_lambda_grid=[1.0, 10.0], n_estimators=150,
                              monotone={"usage_x": 1, "tickets_x": -1})}
    )


@pytest.fixture(scope="module")
def trained():
    ts, _ = synthetic_set()
    return ts, fit_health_model(ts, config=small_config())


def _overall(result, model):
    ev = result.evaluation
    return ev[(ev["model"] == model) & (ev["group"] == "all")].iloc[0]


def test_calibrated_brier_no_worse_than_raw_on_test_slice(trained):
    _, result = trained
    assert _overall(result, "healthscore")["brier"] <= _overall(result, "healthscore_raw")["brier"] + 1e-9


def test_learned_model_beats_hand_weighted_scorecard(trained):
    _, result = trained
    hs, sc = _overall(result, "healthscore"), _overall(result, "scorecard")
    assert hs["roc_auc"] > sc["roc_auc"]
    assert hs["brier"] < sc["brier"]


def test_close_to_truth(trained):
    _, result = trained
    hs, truth = _overall(result, "healthscore"), _overall(result, "truth")
    assert hs["roc_auc"] >= 0.9 * truth["roc_auc"]
    assert abs(hs["ece"] - truth["ece"]) < 0.05


def test_probability_monotone_in_raw_score(trained):
    ts, result = trained
    X = result.model.prepare(ts.features)
    margin = result.model.margin(X)
    p = result.model.predict_proba(X)
    order = np.argsort(margin)
    assert np.all(np.diff(p[order]) >= -1e-12)


def test_monotone_constraint_holds(trained):
    ts, result = trained
    X = result.model.prepare(ts.features.iloc[:200])
    lo, hi = X.copy(), X.copy()
    lo["usage_x"], hi["usage_x"] = -2.0, 2.0
    assert np.all(result.model.predict_proba(hi) >= result.model.predict_proba(lo) - 1e-12)


def test_component_weights_sum_to_100_and_find_the_signal(trained):
    _, result = trained
    w = result.component_weights.set_index("component")["learned_weight"]
    assert w.sum() == pytest.approx(100.0)
    assert w["usage"] > w["engagement"]  # engagement holds pure noise here


def test_same_seed_same_metrics():
    ts, _ = synthetic_set(n_contracts=700, seed=3)
    a = fit_health_model(ts, config=small_config())
    b = fit_health_model(ts, config=small_config())
    pd.testing.assert_frame_equal(a.evaluation, b.evaluation)
    assert a.model.booster_text == b.model.booster_text


def test_no_test_slice_outcome_reaches_training():
    """Flipping a seeded random half of the test-slice outcomes changes neither the booster nor the calibration."""
    ts, _ = synthetic_set(n_contracts=700, seed=4)
    part = split_by_renewal_date(ts.rows, Config().split)
    a = fit_health_model(ts, config=small_config())
    flipped = ts.label.copy()
    rng = np.random.default_rng(11)
    test_idx = np.flatnonzero((part == "test").to_numpy())
    chosen = rng.choice(test_idx, size=len(test_idx) // 2, replace=False)
    flipped[chosen] = 1 - flipped[chosen]
    ts2 = TrainingSet(**{**ts.__dict__, "label": flipped})
    b = fit_health_model(ts2, config=small_config())
    # the evaluated model (what the metrics measure) never saw them ...
    assert a.evaluated_model.booster_text == b.evaluated_model.booster_text
    X = a.evaluated_model.prepare(ts.features)
    np.testing.assert_array_equal(a.evaluated_model.predict_proba(X), b.evaluated_model.predict_proba(X))
    assert not a.evaluation.equals(b.evaluation)  # the flip did reach the evaluation
    # ... while the registered model, refit on every decided renewal, learned from them (the refit policy)
    Xr = a.model.prepare(ts.features)
    assert np.abs(a.model.predict_proba(Xr) - b.model.predict_proba(Xr)).max() > 1e-3


def test_points_add_up_to_probability(trained):
    ts, result = trained
    m = result.model
    X = m.prepare(ts.features)
    fpoints, p, baseline = feature_points(m, X)
    np.testing.assert_allclose(p, m.predict_proba(X), rtol=0, atol=1e-12)
    pts = component_points(fpoints, m.components)
    np.testing.assert_allclose(baseline + pts.sum(axis=1), 100 * p, atol=1e-6)


def test_split_keeps_contract_rows_together_and_orders_time():
    rows = pd.DataFrame(
        {
            "contract_id": np.repeat([f"C-{i}" for i in range(120)], 3),
            "renewal_date": np.repeat(pd.date_range("2023-01-01", periods=120, freq="5D"), 3),
        }
    ).sample(frac=1, random_state=1)
    part = split_by_renewal_date(rows, Config().split)
    assert (rows.assign(part=part).groupby("contract_id")["part"].nunique() == 1).all()
    last_train = rows.loc[part == "train", "renewal_date"].max()
    first_test = rows.loc[part == "test", "renewal_date"].min()
    assert last_train < first_test


def test_split_refuses_too_little_history():
    rows = pd.DataFrame({"contract_id": ["C-1", "C-2"], "renewal_date": pd.to_datetime(["2023-01-01", "2023-06-01"])})
    with pytest.raises(HealthscoreError, match="not enough decided renewals"):
        split_by_renewal_date(rows, Config().split)


def test_time_folds_train_before_validation():
    dates = pd.Series(pd.date_range("2023-01-01", periods=100, freq="D")).sample(frac=1, random_state=0)
    for tr, va in time_folds(dates, 3):
        assert dates.iloc[tr].max() < dates.iloc[va].min()


def test_calibration_fixes_overconfident_margins():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0.5, 1.0, 3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-true_logit))).astype(int)
    margin = 3.0 * true_logit  # overconfident
    cal = Calibrator(isotonic_min_rows=1000).fit(margin[:2000], y[:2000])
    raw = 1 / (1 + np.exp(-margin[2000:]))
    assert binary_metrics(y[2000:], cal.predict(margin[2000:]))["brier"] < binary_metrics(y[2000:], raw)["brier"]
    assert set(cal.cv_log_loss_) == {"identity", "sigmoid", "isotonic"}
    assert cal.method_ != "identity"


def test_isotonic_not_tried_below_threshold():
    rng = np.random.default_rng(1)
    margin = rng.normal(size=300)
    y = (rng.random(300) < 0.8).astype(int)
    cal = Calibrator(isotonic_min_rows=1000).fit(margin, y)
    assert "isotonic" not in cal.cv_log_loss_


def test_isotonic_not_tried_with_few_of_one_outcome():
    # 1,350 rows pass the row threshold, but ~60 churned rows are too few to shape an isotonic map
    rng = np.random.default_rng(3)
    margin = rng.normal(3.0, 1.0, size=1350)
    y = (rng.random(1350) < 1 / (1 + np.exp(-margin))).astype(int)
    churned = int((y == 0).sum())
    assert 30 < churned < 100
    assert "isotonic" not in Calibrator(isotonic_min_rows=1000).fit(margin, y).cv_log_loss_
    assert "isotonic" in Calibrator(isotonic_min_rows=1000, isotonic_min_class_rows=churned).fit(margin, y).cv_log_loss_


def test_ece_and_lift_hand_counted():
    # two quantile bins: predicted 0.2 (observed 0/2 renew) and 0.9 (observed 2/2) → ECE = (2·0.2 + 2·0.1)/4
    y = np.array([0, 0, 1, 1])
    p = np.array([0.2, 0.2, 0.9, 0.9])
    assert expected_calibration_error(y, p, bins=2) == pytest.approx(0.15)
    # 20 rows, 4 churners; the two least likely to renew (top decile) are both churners → lift = 1 / 0.2 = 5
    y = np.array([0, 0] + [1] * 16 + [0, 0])
    p = np.array([0.1, 0.2] + [0.9] * 16 + [0.8, 0.8])
    assert top_decile_lift(y, p) == pytest.approx(5.0)


def test_the_isotonic_map_is_scikit_learns_estimator_read_through_block_centres():
    """The one-sort fit (pooled equal margins, then PAVA) gives the estimator's map exactly, ties or not."""
    from sklearn.isotonic import IsotonicRegression

    from healthscore.model.calibrate import _Isotonic, _out_of_fold

    rng = np.random.default_rng(5)
    for trial in range(60):
        n = int(rng.integers(5, 2000))
        margin = rng.normal(0, 1, n) if trial % 3 == 0 else np.round(rng.normal(0, 1, n), trial % 3)
        y = (rng.random(n) < 1 / (1 + np.exp(-2 * margin))).astype(int)
        fitted = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0.0, y_max=1.0).fit_transform(margin, y)
        order = np.argsort(margin, kind="stable")
        m, f = margin[order], np.asarray(fitted)[order]
        starts = np.flatnonzero(np.r_[True, np.diff(f) != 0])
        ends = np.r_[starts[1:], len(f)] - 1
        x_ref, y_ref = (m[starts] + m[ends]) / 2.0, f[starts]
        keep = np.r_[True, np.diff(x_ref) > 0]
        got = _Isotonic(margin, y)
        np.testing.assert_array_equal(got.x, x_ref[keep])
        np.testing.assert_array_equal(got.y, y_ref[keep])
        # each CV split's fit from the one sort of every margin is the split's own fit
        if np.bincount(y, minlength=2).min() >= 2:
            from sklearn.model_selection import StratifiedKFold

            oof = _out_of_fold(["isotonic"], margin, y, n_splits=2, seed=1)["isotonic"]
            for tr, va in StratifiedKFold(n_splits=2, shuffle=True, random_state=1).split(margin, y):
                np.testing.assert_array_equal(oof[va], _Isotonic(margin[tr], y[tr]).predict(margin[va]))


def test_calibration_folds_are_computed_once_per_labels_and_equal_stratified_kfold() -> None:
    from sklearn.model_selection import StratifiedKFold

    from healthscore.model import calibrate

    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.3).astype(int)
    first = calibrate._splits(y, 5, 42)
    expected = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=42).split(y, y))
    assert len(first) == len(expected)
    for (tr, va), (etr, eva) in zip(first, expected):
        assert np.array_equal(tr, etr) and np.array_equal(va, eva)
    assert calibrate._splits(y.copy(), 5, 42) is first  # the same labels again: the folds already made
    assert not first[0][0].flags.writeable  # shared: nobody may write into them
    other = y.copy()
    other[0] = 1 - other[0]
    assert calibrate._splits(other, 5, 42) is not first
    assert calibrate._splits(y, 5, 7) is not first
    assert calibrate._splits(y, 4, 42) is not first
