"""The registered model is the evaluated procedure refit on every row; the scorecard starts."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from _fast import fast_model
from healthscore.config import config_from_dict
from healthscore.explain import explain_frame
from healthscore.model.linear import LearnedScorecardStart, ScorecardStart
from healthscore.model.split import split_by_renewal_date
from healthscore.model.train import TrainingSet, fit_health_model, refit

FAST = {"model": fast_model(reg_lambda_grid=[1.0], n_estimators=60, early_stopping_rounds=10,
                            learned_scorecard_start="auto")}


def _dated_set(n: int, seed: int, *, signal: float = 1.0) -> TrainingSet:
    """Renewals spread over two years; renewal odds rise with usage ``a`` and fall with tickets ``b``."""
    rng = np.random.default_rng(seed)
    a = rng.gamma(2.0, 5.0, size=n)            # a skewed count, like events per user
    b = rng.poisson(1.5, size=n).astype(float)  # tickets
    c = rng.normal(size=n)                       # noise
    index = signal * (0.15 * (a - 10) - 0.6 * (b - 1.5)) + 1.2
    y = (rng.random(n) < 1 / (1 + np.exp(-index))).astype(int)
    dates = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 730, size=n)), unit="D")
    rows = pd.DataFrame({"contract_id": [f"C-{i}" for i in range(n)], "renewal_date": dates})
    return TrainingSet(features=pd.DataFrame({"a": a, "b": b, "c": c}), label=y, rows=rows,
                       components={"a": "usage", "b": "support", "c": "feedback"},
                       directions={"a": 1, "b": -1, "c": 0}, categorical=[], group_columns=())


def test_registered_model_learns_from_every_row_and_says_which_rows_the_metrics_come_from() -> None:
    ts = _dated_set(900, 0)
    result = fit_health_model(ts, config=config_from_dict(FAST))
    meta = result.model.metadata
    assert meta["refit"] is True
    assert meta["learned_from"]["rows"] == 900 == result.sizes["rows_refit"]
    test_rows = (split_by_renewal_date(ts.rows, config_from_dict(FAST).split) == "test").to_numpy()
    assert meta["metrics_from"]["rows"] == int(test_rows.sum()) == result.sizes["rows_test"]
    assert meta["metrics_from"]["renewals_from"] == str(ts.rows.loc[test_rows, "renewal_date"].min().date())
    # the evaluated model never saw the test slice; the registered one did
    assert result.evaluated_model is not result.model
    assert result.evaluated_model.metadata["n_train"] < 900
    assert meta["evaluated_model"]["learned_from"]["rows"] == result.evaluated_model.metadata["n_train"]
    assert result.model.form == result.evaluated_model.form  # same settings, more rows


def test_newest_renewals_change_the_registered_model_but_not_the_evaluation() -> None:
    ts = _dated_set(900, 1)
    cfg = config_from_dict(FAST)
    test_rows = (split_by_renewal_date(ts.rows, cfg.split) == "test").to_numpy()
    flipped = ts.label.copy()
    flipped[test_rows] = 1 - flipped[test_rows]  # only the newest outcomes change
    a = fit_health_model(ts, config=cfg)
    b = fit_health_model(replace(ts, label=flipped), config=cfg)
    Xa = a.evaluated_model.prepare(ts.features[test_rows])
    # the evaluated procedure never saw those outcomes: identical predictions on the test slice
    np.testing.assert_array_equal(a.evaluated_model.predict_proba(Xa), b.evaluated_model.predict_proba(Xa))
    # the registered model learned from them
    X = a.model.prepare(ts.features)
    assert np.abs(a.model.predict_proba(X) - b.model.predict_proba(X)).max() > 0.01


def test_refit_can_be_turned_off() -> None:
    ts = _dated_set(700, 2)
    result = fit_health_model(ts, config=config_from_dict({"model": {**FAST["model"], "refit": False}}))
    assert result.model is result.evaluated_model
    assert result.model.metadata["refit"] is False
    assert result.model.metadata["learned_from"]["rows"] == result.sizes["rows_train"] < 700


def test_scorecard_start_is_exact_additive_and_ranks_as_the_scorecard() -> None:
    from healthscore.model.baselines import Scorecard

    ts = _dated_set(800, 3)
    weights = {"usage": 35.0, "support": 20.0, "feedback": 15.0}
    start = ScorecardStart.fit(ts.features, ts.label, weights=weights, components=ts.components,
                               directions=ts.directions)
    card = Scorecard(weights=weights, components=ts.components, directions=ts.directions).fit(ts.features)
    assert start.b > 0
    np.testing.assert_allclose(start.margin(ts.features), start.a + start.b * card.predict_score(ts.features) / 100)
    contrib = start.contributions(ts.features)
    np.testing.assert_allclose(contrib.sum(axis=1) + start.expected_margin, start.margin(ts.features), atol=1e-10)
    assert (contrib["c"] == 0).all()  # no direction: the scorecard ignores it
    again = pickle.loads(pickle.dumps(start))
    np.testing.assert_array_equal(again.margin(ts.features), start.margin(ts.features))


def test_with_few_renewals_cv_may_choose_the_scorecard_and_says_so() -> None:
    # 240 renewals, a weak signal that the hand weights already have right: the line and trees overfit
    ts = _dated_set(240, 4, signal=0.6)
    config = config_from_dict({"model": {**FAST["model"], "learned_scorecard_start": "off"}})
    result = fit_health_model(ts, config=config)
    assert set(result.cv_results["start"]) == {"constant", "linear", "scorecard"}
    chosen = result.cv_results.iloc[0]
    assert chosen["start"] == "scorecard" and chosen["within_one_se"]
    assert any("few renewals" in w and "scorecard" in w for w in result.warnings)
    assert result.model.form == "scorecard start alone"
    out = explain_frame(result.model, ts.features)
    points = out.filter(like="contrib_").sum(axis=1) + out["baseline"]
    np.testing.assert_allclose(points, 100 * out["probability"], atol=1e-9)


def test_scorecard_start_is_a_candidate_only_when_asked() -> None:
    ts = _dated_set(600, 5)
    result = fit_health_model(ts, config=config_from_dict({"model": {**FAST["model"], "scorecard_start": "off"}}))
    assert "scorecard" not in set(result.cv_results["start"])


@pytest.mark.parametrize("key", ["scorecard_start", "learned_scorecard_start"])
@pytest.mark.parametrize("value", ["sometimes", "on"])
def test_config_rejects_unknown_scorecard_start(key, value) -> None:
    from healthscore.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        config_from_dict({"model": {key: value}})


def _weighted_wrong(n: int, seed: int) -> TrainingSet:
    """Tickets ``b`` drive renewal and usage ``a`` barely does, while the hand weights favour usage; ``d`` is
    directed +1 but really lowers renewal odds (a weight must never follow it the wrong way). Both counts are
    heavy-tailed and act through their logarithm: monotone, not linear, as CS signals usually are."""
    rng = np.random.default_rng(seed)
    a = rng.lognormal(2.0, 1.0, size=n)
    b = rng.lognormal(0.0, 1.5, size=n)
    d = rng.normal(size=n)
    index = 0.1 * (np.log(a) - 2) - 1.5 * np.log1p(b) - 0.8 * d + 2.5
    y = (rng.random(n) < 1 / (1 + np.exp(-index))).astype(int)
    dates = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 730, size=n)), unit="D")
    a[rng.random(n) < 0.1] = np.nan  # missing values sit at the neutral 50th percentile
    rows = pd.DataFrame({"contract_id": [f"C-{i}" for i in range(n)], "renewal_date": dates})
    return TrainingSet(features=pd.DataFrame({"a": a, "b": b, "c": rng.normal(size=n), "d": d}), label=y,
                       rows=rows, components={"a": "usage", "b": "support", "c": "feedback", "d": "engagement"},
                       directions={"a": 1, "b": -1, "c": 0, "d": 1}, categorical=[], group_columns=())


def test_learned_scorecard_start_learns_the_weights_the_hand_got_wrong_and_stays_exact() -> None:
    from sklearn.metrics import roc_auc_score

    from healthscore.model.baselines import Scorecard

    train, held = _weighted_wrong(1500, 21), _weighted_wrong(1500, 22)
    start = LearnedScorecardStart.fit(train.features, train.label, components=train.components,
                                      directions=train.directions)
    # the weight of tickets exceeds usage's; "d" (directed +1, really harmful) gets no weight, never a negative
    assert start.weights["b"] > 3 * start.weights.get("a", 0.0)
    assert "d" not in start.weights and "c" not in start.weights  # c has no direction: not an input
    assert all(w > 0 for w in start.weights.values())
    assert start.l2 in (1.0, 10.0, 100.0)
    weights = {"usage": 60.0, "support": 20.0, "feedback": 10.0, "engagement": 10.0}
    card = Scorecard(weights=weights, components=train.components, directions=train.directions).fit(train.features)
    learned_auc = roc_auc_score(held.label, start.margin(held.features))
    hand_auc = roc_auc_score(held.label, card.predict_score(held.features))
    assert learned_auc > hand_auc + 0.03
    # exact SHAP: contributions add up to the margin, 0 for features it ignores
    contrib = start.contributions(held.features)
    np.testing.assert_allclose(contrib.sum(axis=1) + start.expected_margin, start.margin(held.features), atol=1e-10)
    assert (contrib[["c", "d"]] == 0).all().all()
    again = pickle.loads(pickle.dumps(start))
    np.testing.assert_array_equal(again.margin(held.features), start.margin(held.features))


def test_learned_scorecard_start_is_a_cv_candidate_and_can_be_turned_off() -> None:
    ts = _weighted_wrong(900, 23)
    result = fit_health_model(ts, config=config_from_dict(FAST))
    assert {"learned_scorecard", "blend"} <= set(result.cv_results["start"])
    off = fit_health_model(ts, config=config_from_dict({"model": {**FAST["model"],
                                                                  "learned_scorecard_start": "off"}}))
    assert not {"learned_scorecard", "blend"} & set(off.cv_results["start"])
    # monotone but not linear in the raw counts: the learned scorecard (alone or blended with the line) wins
    assert result.model.metadata["start"] in ("learned_scorecard", "blend")
    assert result.model.form.startswith(("learned-scorecard start", "blended start"))
    assert result.cv_results.iloc[0]["cv_log_loss"] < off.cv_results.iloc[0]["cv_log_loss"]
    out = explain_frame(result.model, ts.features)
    points = out.filter(like="contrib_").sum(axis=1) + out["baseline"]
    np.testing.assert_allclose(points, 100 * out["probability"], atol=1e-9)


def test_platt_never_reverses_the_order_of_margins() -> None:
    from healthscore.model.calibrate import Calibrator, platt

    rng = np.random.default_rng(8)
    margin = rng.normal(size=120)
    y = (rng.random(120) < 1 / (1 + np.exp(1.5 * margin))).astype(int)  # these rows disagree with the margin
    coef, intercept = platt(margin, y)
    assert coef == 0.0 and intercept == pytest.approx(np.log(y.mean() / (1 - y.mean())))
    cal = Calibrator(isotonic_min_rows=1000).fit(margin, y)
    p = cal.predict(np.sort(margin))
    assert np.all(np.diff(p) >= 0)  # whichever map was chosen, order is kept
    agree = (rng.random(120) < 1 / (1 + np.exp(-1.5 * margin))).astype(int)
    assert platt(margin, agree)[0] > 0.5


def test_blended_start_is_the_average_of_its_parts_and_stays_exact() -> None:
    from healthscore.model.linear import BlendStart, LinearStart

    ts = _weighted_wrong(800, 25)
    lin = LinearStart.fit(ts.features, ts.label, categorical=[], monotone={"a": 1, "b": -1, "d": 1})
    learned = LearnedScorecardStart.fit(ts.features, ts.label, components=ts.components, directions=ts.directions)
    blend = BlendStart(feature_names=list(ts.features.columns), parts=[lin, learned], shares=[0.5, 0.5])
    np.testing.assert_allclose(blend.margin(ts.features), 0.5 * lin.margin(ts.features)
                               + 0.5 * learned.margin(ts.features))
    contrib = blend.contributions(ts.features)
    np.testing.assert_allclose(contrib.sum(axis=1) + blend.expected_margin, blend.margin(ts.features), atol=1e-10)
    assert set(blend.used) == set(lin.used) | set(learned.used)
    again = pickle.loads(pickle.dumps(blend))
    np.testing.assert_array_equal(again.margin(ts.features), blend.margin(ts.features))


def test_stacked_shares_weigh_the_start_that_predicts_better_and_fall_back_to_the_average() -> None:
    from healthscore.model.train import BLEND_SHARES, stacked_shares

    rng = np.random.default_rng(26)
    truth = rng.normal(size=4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-truth))).astype(int)
    good, noisy = truth + 0.3 * rng.normal(size=4000), truth + 3.0 * rng.normal(size=4000)
    shares = stacked_shares(good, noisy, y)
    assert shares[0] > 0.8 and abs(sum(shares) - 1) < 1e-12 and min(shares) >= 0
    assert stacked_shares(noisy, good, y)[1] > 0.8  # the order of the inputs does not matter
    assert stacked_shares(good[:5], noisy[:5], y[:5]) == BLEND_SHARES  # nothing to stack on
    assert stacked_shares(good, noisy, np.ones(4000, dtype=int)) == BLEND_SHARES


def test_the_registered_blend_is_restacked_on_every_row() -> None:
    ts = _weighted_wrong(900, 23)
    result = fit_health_model(ts, config=config_from_dict(FAST))
    assert result.evaluated_model.params["start"] == "blend" == result.model.params["start"]
    shares = result.model.params["blend_shares"]
    assert shares != result.evaluated_model.params["blend_shares"]  # stacked again, on every row
    assert abs(sum(shares) - 1) < 1e-12
    np.testing.assert_allclose(result.model.linear.shares, shares)


@pytest.mark.parametrize("make", [lambda: _dated_set(900, 0), lambda: _weighted_wrong(900, 23)], ids=["line", "blend"])
def test_the_refit_prepared_beside_the_evaluation_is_the_refit_made_alone(make) -> None:
    # fit_health_model fits the refit's starts on a thread while the evaluated model is fitted; retrain calls
    # refit() alone: both must register the same model
    ts = make()
    cfg = config_from_dict(FAST)
    result = fit_health_model(ts, config=cfg)
    alone = refit(ts, result.evaluated_model, config=cfg)
    assert alone.params == result.model.params
    X = result.model.prepare(ts.features)
    np.testing.assert_array_equal(alone.predict_proba(X), result.model.predict_proba(X))
    np.testing.assert_array_equal(alone.contributions(X)[0].to_numpy(), result.model.contributions(X)[0].to_numpy())


def test_a_saved_scorecard_start_does_not_carry_its_lookup_tables() -> None:
    ts = _weighted_wrong(800, 3)
    start = LearnedScorecardStart.fit(ts.features, ts.label, components=ts.components, directions=ts.directions)
    margin = start.margin(ts.features)  # fills the percentile lookup tables
    assert start.scorecard.__dict__.get("_counts_")
    again = pickle.loads(pickle.dumps(start))
    assert "_counts_" not in again.scorecard.__dict__
    np.testing.assert_array_equal(again.margin(ts.features), margin)


def test_a_registered_scorecard_alone_keeps_its_own_platt_fit_as_the_map() -> None:
    from healthscore.model.train import refit

    ts = _weighted_wrong(900, 23)
    cfg = config_from_dict(FAST)
    evaluated = fit_health_model(ts, config=cfg).evaluated_model
    evaluated.params = {**evaluated.params, "start": "scorecard", "linear_start": True, "num_boost_round": 0}
    final = refit(ts, evaluated, config=cfg)
    assert final.form == "scorecard start alone" and isinstance(final.linear, ScorecardStart)
    assert final.calibrator.method_ == "identity"
    X = final.prepare(ts.features)
    np.testing.assert_allclose(final.predict_proba(X), np.clip(1 / (1 + np.exp(-final.margin(X))), 1e-4, 1 - 1e-4))
    # the start's own fit on every row: the mean predicted renewal matches the rate (a logistic fit's score)
    assert final.predict_proba(X).mean() == pytest.approx(np.mean(ts.label), abs=0.01)
