"""The linear start (a logistic regression the booster builds on), its exact explanations, cross-fitted
calibration and the interpolated isotonic map."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from _fast import fast_model
from healthscore.config import config_from_dict
from healthscore.errors import ConfigError
from healthscore.explain import explain_frame
from healthscore.model.calibrate import Calibrator
from healthscore.model.linear import LinearStart
from healthscore.model.train import TrainingSet, fit_health_model


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.random.Generator]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "a": rng.normal(size=n),
        "b": rng.normal(size=n),
        "c": rng.normal(size=n),
        "plan": pd.Categorical(rng.choice(["basic", "pro", "team"], size=n), categories=["basic", "pro", "team"]),
    })
    X.loc[rng.random(n) < 0.1, "b"] = np.nan  # some missing values: their indicator belongs to b
    return X, rng


def test_linear_contributions_are_exact_and_grouped_by_feature() -> None:
    X, rng = _frame(800, 0)
    index = 1.5 * X["a"] - np.nan_to_num(X["b"]) + (X["plan"] == "pro") * 0.8
    y = (rng.random(800) < 1 / (1 + np.exp(-index))).astype(int)
    lin = LinearStart.fit(X, y, categorical=["plan"], monotone={})
    contrib = lin.contributions(X)
    assert list(contrib.columns) == ["a", "b", "c", "plan"]
    # SHAP of a linear model: expected value + Σ per-feature contributions = the margin, on every row
    np.testing.assert_allclose(lin.expected_margin + contrib.sum(axis=1), lin.margin(X), atol=1e-10)
    # a row at the training means of a feature gets 0 for it; a strong feature moves the most
    assert contrib.abs().mean().idxmax() == "a"
    assert contrib["c"].abs().mean() < contrib["a"].abs().mean() / 5


def test_wrong_signed_coefficient_is_left_out_of_the_linear_part() -> None:
    X, rng = _frame(1500, 1)
    y = (rng.random(1500) < 1 / (1 + np.exp(-(2.0 * X["a"] - 1.0 * X["c"])))).astype(int)
    lin = LinearStart.fit(X, y, categorical=["plan"], monotone={"c": 1, "a": 1})  # c is declared, wrongly, +1
    assert "c" not in lin.used and "a" in lin.used
    assert "monotone" in lin.dropped["c"]
    assert (lin.contributions(X)["c"] == 0).all()


def test_scoring_values_outside_the_training_range_are_clipped() -> None:
    X, rng = _frame(600, 2)
    y = (rng.random(600) < 1 / (1 + np.exp(-2 * X["a"]))).astype(int)
    lin = LinearStart.fit(X, y, categorical=["plan"], monotone={})
    wild = X.iloc[[0, 0]].copy()
    wild["a"] = [X["a"].max(), 1e9]
    m = lin.margin(wild)
    assert m[0] == pytest.approx(m[1])  # beyond the largest training value nothing changes


def _link_set(n: int, seed: int, *, interaction: bool) -> TrainingSet:
    """Either a linear index behind a steep, non-logistic link, or a pure interaction (no linear signal)."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=(3, n))
    if interaction:
        p = np.where((a > 0) == (b > 0), 0.9, 0.15)
    else:
        index = a + 0.7 * b - 0.5 * c
        p = 1 - np.exp(-np.exp(1.8 * index))  # complementary log-log: not the logistic shape
        p = 0.1 + 0.85 * (1 - p)
    y = (rng.random(n) < p).astype(int)
    rows = pd.DataFrame({"contract_id": [f"C-{i}" for i in range(n)]})
    return TrainingSet(features=pd.DataFrame({"a": a, "b": b, "c": c}), label=y, rows=rows,
                       components={"a": "usage", "b": "support", "c": "feedback"}, directions={"a": 1, "b": 1, "c": -1},
                       categorical=[], part=pd.Series(np.where(np.arange(n) % 5 == 0, "test", "train")),
                       group_columns=())


# the synthetic sets' directions are the scorecard's (here wrong-way) guesses, not constraints to fit under
FAST = {"model": fast_model(reg_lambda_grid=[1.0], n_estimators=200, monotone_from_catalogue=False)}


def test_cv_keeps_the_linear_start_for_a_linear_index_and_adds_trees_for_an_interaction() -> None:
    linear = fit_health_model(_link_set(2500, 3, interaction=False), config=config_from_dict(FAST))
    assert linear.model.linear is not None
    table = linear.cv_results
    assert set(table["linear_start"]) == {True, False}  # both starts were compared by the same CV
    interaction = fit_health_model(_link_set(2500, 4, interaction=True), config=config_from_dict(FAST))
    assert interaction.model.has_trees and interaction.params["num_boost_round"] >= 20
    auc = interaction.evaluation.query("group == 'all' and model == 'healthscore'")["roc_auc"].iloc[0]
    assert auc > 0.75  # the trees found the interaction a line cannot


def test_no_tree_model_explains_adds_up_and_survives_pickling() -> None:
    cfg = config_from_dict({**FAST, "model": {**FAST["model"], "linear_start": "on", "n_estimators": 1,
                                               "early_stopping_rounds": 1}})
    ts = _link_set(1500, 5, interaction=False)
    result = fit_health_model(ts, config=cfg)
    model = pickle.loads(pickle.dumps(result.model))
    assert model.linear is not None and not model.has_trees  # the start alone won the CV
    out = explain_frame(model, ts.features)
    points = out.filter(like="contrib_").sum(axis=1) + out["baseline"]
    np.testing.assert_allclose(points, 100 * out["probability"], atol=1e-9)
    X = model.prepare(ts.features)
    contrib, expected = model.contributions(X)
    np.testing.assert_allclose(contrib.sum(axis=1) + expected, model.margin(X), atol=1e-9)


def test_flat_rows_without_time_are_calibrated_by_cross_fitting() -> None:
    ts = _link_set(2000, 6, interaction=False)
    part = pd.Series(np.where(np.arange(2000) % 5 == 0, "test", np.where(np.arange(2000) % 5 == 1, "calibration",
                                                                         "train")))
    from dataclasses import replace

    result = fit_health_model(replace(ts, part=part), config=config_from_dict(FAST))
    assert result.model.metadata["calibration_rows"] == "cross_fit"
    assert result.sizes["rows_train"] == 1600  # the calibration part is learnt from too
    assert result.sizes["rows_calibration"] == 1600  # every one of them calibrates, out of fold
    held = fit_health_model(replace(ts, part=part), config=config_from_dict(
        {"model": {**FAST["model"], "calibration_rows": "holdout"}}))
    assert held.sizes["rows_train"] == 1200 and held.sizes["rows_calibration"] == 400


def test_interpolated_isotonic_keeps_the_order_of_margins() -> None:
    rng = np.random.default_rng(7)
    margin = rng.normal(size=3000) * 2
    y = (rng.random(3000) < 1 / (1 + np.exp(-(margin ** 3) / 4))).astype(int)  # a shape no sigmoid fits
    cal = Calibrator(isotonic_min_rows=1000).fit(margin, y)
    assert cal.method_ == "isotonic"
    new = rng.normal(size=2000) * 2
    p = cal.predict(new)
    inside = (new > cal.iso_x_[0]) & (new < cal.iso_x_[-1])
    order = np.argsort(new[inside])
    assert np.all(np.diff(p[inside][order]) > 0)  # strictly increasing between the outer block centres
    y_new = (rng.random(2000) < 1 / (1 + np.exp(-(new ** 3) / 4))).astype(int)
    assert roc_auc_score(y_new, p) == pytest.approx(roc_auc_score(y_new, new), abs=2e-3)


@pytest.mark.parametrize("key, value", [("linear_start", "maybe"), ("calibration_rows", "crossfit")])
def test_config_rejects_unknown_choices(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"model.{key}: use one of"):
        config_from_dict({"model": {key: value}})


def test_one_standard_error_rule_prefers_fewer_trees_only_within_noise() -> None:
    from healthscore.model.train import _one_standard_error

    rng = np.random.default_rng(11)
    base = rng.exponential(0.4, size=3000)
    noise_better = base - 0.0005 + rng.normal(0, 0.05, size=3000)  # better by far less than its SE
    clearly_better = base - 0.05 + rng.normal(0, 0.05, size=3000)  # better by ~30 SEs
    table = pd.DataFrame({"cv_log_loss": [base.mean(), noise_better.mean()], "best_iterations": [0, 120],
                          "num_leaves": [7, 7], "min_child_samples": [20, 20]})
    chosen = _one_standard_error(table, [base, noise_better]).iloc[0]
    assert chosen["best_iterations"] == 0 and chosen["within_one_se"]
    table["cv_log_loss"] = [base.mean(), clearly_better.mean()]
    chosen = _one_standard_error(table, [base, clearly_better]).iloc[0]
    assert chosen["best_iterations"] == 120


def test_one_standard_error_rule_prefers_the_hand_weighted_scorecard_within_noise() -> None:
    from healthscore.model.train import _one_standard_error

    rng = np.random.default_rng(5)
    line = rng.exponential(0.4, size=2000)

    def jitter() -> np.ndarray:  # row-level noise of mean exactly 0 and standard error ~0.0011
        e = rng.normal(0, 0.05, size=1000)
        return np.r_[e, -e]

    card_near = line + 0.0005 + jitter()  # worse by half the noise
    card_far = line + 0.05 + jitter()  # worse by ~45 SEs
    noise = line + 0.0001 + jitter()  # a third candidate, so the CV's noise is a median
    table = pd.DataFrame({"start": ["linear", "scorecard", "blend"], "best_iterations": [0, 0, 0],
                          "num_leaves": [7, 7, 7], "min_child_samples": [20, 20, 20]})
    for card, expected in ((card_near, "scorecard"), (card_far, "linear")):
        rows = [line, card, noise]
        chosen = _one_standard_error(table.assign(cv_log_loss=[r.mean() for r in rows]), rows).iloc[0]
        assert chosen["start"] == expected
    # between starts that learn weights, the lower loss wins even when another is within the noise
    learned = table.assign(start=["blend", "learned_scorecard", "linear"])
    rows = [line, card_near, noise]
    assert _one_standard_error(learned.assign(cv_log_loss=[r.mean() for r in rows]), rows).iloc[0]["start"] == "blend"


def test_a_fold_with_one_churner_is_left_out_instead_of_voiding_the_cv() -> None:
    from healthscore.model.train import _base_params, select_params

    cfg = config_from_dict(FAST)
    rng = np.random.default_rng(1)
    n = 900
    a, b = rng.normal(size=(2, n))
    y = (rng.random(n) < np.where((a > 0) == (b > 0), 0.9, 0.1)).astype(int)  # an interaction: trees win
    churn_late = np.flatnonzero(y[600:] == 0) + 600
    y[churn_late[1:]] = 1  # the second validation fold keeps a single churner
    X = pd.DataFrame({"a": a, "b": b})
    base = {**_base_params(cfg), "monotone_constraints": [0, 0]}
    idx = np.arange(n)
    folds = [(idx[:300], idx[300:600]), (idx[:600], idx[600:])]
    _, trees, table, _ = select_params(X, y, pd.Series(idx), base, cfg, folds=folds, categorical=[])
    assert np.isfinite(table["cv_log_loss"]).all() and (table["folds"] == 1).all()
    assert trees > 0  # judged on the usable fold, the interaction needs trees


def test_a_constant_start_is_judged_at_the_number_of_trees_it_is_fitted_with() -> None:
    cfg = config_from_dict({"model": {**FAST["model"], "linear_start": "off"}})
    result = fit_health_model(_link_set(800, 8, interaction=False), config=cfg)
    chosen = result.cv_results.iloc[0]
    assert chosen["chosen"] and chosen["best_iterations"] >= 20
    assert result.params["num_boost_round"] == chosen["best_iterations"]


def test_the_imputers_median_statistic_is_scikit_learns_own():
    """The callable statistic gives the imputed design of ``strategy="median"`` exactly (NaNs, an empty column)."""
    from sklearn.impute import SimpleImputer

    from healthscore.model.baselines import column_median

    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 500):
        X = np.round(rng.normal(size=(n, 5)), 2)
        X[rng.random((n, 5)) < 0.3] = np.nan
        X[:, 4] = np.nan
        ours = SimpleImputer(strategy=column_median, add_indicator=True, keep_empty_features=True).fit(X)
        theirs = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True).fit(X)
        np.testing.assert_array_equal(ours.statistics_, theirs.statistics_)
        np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
