"""Learn the weights from renewal outcomes: LightGBM chosen by time-ordered CV, calibrated, evaluated."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import log_loss

from healthscore.config import COMPONENTS, Config, FeaturesConfig
from healthscore.model.baselines import Scorecard, logistic_baseline, logistic_proba
from healthscore.model.calibrate import Calibrator, calibrated_losses
from healthscore.model.evaluate import evaluate_predictions, reliability_table
from healthscore.model.health_model import HealthModel, combined_margin
from healthscore.model.linear import LinearBase
from healthscore.model.split import split_by_renewal_date, time_folds


@dataclass
class TrainingSet:
    """Rows to learn from: raw features, labels (1 = renewed) and each row's context.

    ``rows`` must hold ``renewal_date`` (for the time split) and may hold ``contract_id``, ``segment``,
    ``lead_time_days``; ``part`` is filled by the split when not given (the flat-table path may pass a
    stratified split instead).
    """

    features: pd.DataFrame
    label: np.ndarray
    rows: pd.DataFrame
    components: dict[str, str]
    directions: dict[str, int]
    categorical: list[str]
    part: pd.Series | None = None
    truth: pd.Series | None = None
    #: builds a fitted transformer with ``fit(features)``/``transform(features)`` (e.g. the adoption curve)
    fitted_transformer: Callable[[], Any] | None = None
    group_columns: tuple[str, ...] = ("segment", "lead_time_days")
    #: the feature settings the features were built with, key product features resolved (learned at training
    #: unless configured): store this one with the model, scoring rebuilds features from it. None: a flat table
    features_config: FeaturesConfig | None = None


@dataclass
class TrainResult:
    model: HealthModel
    evaluation: pd.DataFrame
    reliability: pd.DataFrame
    component_weights: pd.DataFrame
    cv_results: pd.DataFrame
    test_predictions: pd.DataFrame
    sizes: dict[str, int]
    params: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def default_threads(configured: int) -> int:
    """Threads for LightGBM: the configured number, else the CPUs this process may use."""
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _base_params(config: Config) -> dict[str, Any]:
    m = config.model
    return {
        "objective": "binary",
        "learning_rate": m.learning_rate,
        "max_depth": m.max_depth,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "min_sum_hessian_in_leaf": 1e-3,
        "cat_smooth": 10,
        "seed": m.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": default_threads(m.num_threads),
        "verbosity": -1,
    }


def _monotone(feature_names: list[str], config: Config, categorical: list[str]) -> tuple[list[int], list[str]]:
    warnings = []
    unknown = sorted(set(config.model.monotone) - set(feature_names))
    if unknown:
        warnings.append(f"model.monotone names features the model does not have (ignored): {', '.join(unknown)}")
    return [0 if f in categorical else int(config.model.monotone.get(f, 0)) for f in feature_names], warnings


#: a constant start (the base rate) is never fitted with fewer trees than this
MIN_TREES = 20
#: fractions of each fold's early-stopped number of trees at which CV measures the calibrated loss (each a
#: candidate of its own; ``cv_raw_log_loss`` is the raw loss at the early-stopped number itself)
TREE_CHECKPOINTS = (0.25, 0.5, 1.0)


def select_params(
    X: pd.DataFrame, y: np.ndarray, dates: pd.Series, base: dict[str, Any], config: Config,
    *, folds: list[tuple[np.ndarray, np.ndarray]] | None = None, categorical: list[str] | None = None,
    allow_isotonic: bool = True,
) -> tuple[dict[str, Any], int, pd.DataFrame, bool]:
    """Choose the start, regularisation and number of trees by CV inside the rows the booster learns from.

    Folds are expanding windows over renewal dates; ``folds`` (positions into ``X``) replace them when rows
    have no time order (a flat table without ``--time``). Candidates are the product of the config's grids
    and of the start (constant, or a logistic regression's log-odds fitted on each fold's training rows —
    ``model.linear_start``) and of ``TREE_CHECKPOINTS``: trees are added until the validation log loss
    stops improving (early stopping), and each fraction of that number is a candidate. Candidates are
    judged by ``cv_log_loss``: the log loss of their validation margins *after* the best calibration map,
    itself chosen by CV on those margins (``calibrated_losses``) — the model is calibrated afterwards, so a
    margin that ranks well but has another shape is not penalised for the shape. With the linear start,
    the start alone (zero trees) is one more candidate. ``cv_raw_log_loss`` is the uncalibrated loss.
    The choice follows the one-standard-error rule (``_one_standard_error``): the fewest trees within one
    paired standard error of the best loss. Returns the chosen LightGBM parameters, the number of trees
    (median over folds; at least 20 from a constant start), the CV table (chosen row first) and whether the
    linear start was chosen. The test slice is never seen here.
    """
    m = config.model
    if folds is None:
        folds = time_folds(dates, m.cv_folds)
    # a fold needs both classes to learn from and at least 2 of each to validate (the calibrated loss is
    # itself cross-validated on the validation rows)
    folds = [(tr, va) for tr, va in folds
             if len(np.unique(y[tr])) == 2 and np.bincount(y[va], minlength=2).min() >= 2]
    isotonic_rows = 0 if allow_isotonic else np.inf  # the criterion uses only maps the final calibrator may
    starts = {"auto": (False, True), "on": (True,), "off": (False,)}[m.linear_start]
    monotone = dict(zip(X.columns, base.get("monotone_constraints", [0] * X.shape[1])))
    inits: list[tuple[np.ndarray, np.ndarray]] = []
    start_losses: list[np.ndarray] = []  # each fold's linear start alone: per-row calibrated log loss
    if True in starts:
        for tr, va in folds:
            lin = LinearBase.fit(X.iloc[tr], y[tr], categorical=categorical or [], monotone=monotone, seed=m.seed)
            inits.append((lin.margin(X.iloc[tr]), lin.margin(X.iloc[va])))
            start_losses.append(calibrated_losses(inits[-1][1], y[va], seed=m.seed, isotonic_min_rows=isotonic_rows))
    rows = []
    row_losses: list[np.ndarray] = []  # per candidate: every validation row's calibrated loss, folds in order
    grid = itertools.product(starts, m.num_leaves_grid, m.min_child_samples_grid, m.reg_lambda_grid)
    for linear, leaves, min_child, lam in grid:
        params = {**base, "num_leaves": leaves, "min_child_samples": min_child, "lambda_l2": lam}
        raw_losses = []
        # per checkpoint (a fraction of each fold's early-stopped trees): trees and per-row losses by fold
        at: dict[float, tuple[list[int], list[np.ndarray]]] = {f: ([], []) for f in TREE_CHECKPOINTS}
        for k, (tr, va) in enumerate(folds):
            init_tr, init_va = inits[k] if linear else (None, None)
            dtr = lgb.Dataset(X.iloc[tr], y[tr], init_score=init_tr, free_raw_data=False)
            dva = lgb.Dataset(X.iloc[va], y[va], init_score=init_va, reference=dtr)
            booster = lgb.train(
                {**params, "metric": "binary_logloss"},
                dtr,
                num_boost_round=m.n_estimators,
                valid_sets=[dva],
                callbacks=[lgb.early_stopping(m.early_stopping_rounds, verbose=False)],
            )
            raw_losses.append(booster.best_score["valid_0"]["binary_logloss"])
            best_trees = booster.best_iteration or m.n_estimators
            # early stopping watched the raw loss; the calibrated loss is measured at fractions of that
            # number (more trees may only be bending the margin's shape, which calibration does anyway, at
            # a cost in ranking). Each fraction is its own candidate, the same for every fold, so no fold
            # picks its own best checkpoint on its own validation rows.
            # a constant start keeps at least MIN_TREES (the number it will be fitted with), a linear one 1
            floor = 1 if linear else MIN_TREES
            for f in TREE_CHECKPOINTS:
                n = min(booster.current_iteration(), max(floor, min(best_trees, round(best_trees * f))))
                margin_va = booster.predict(X.iloc[va], raw_score=True, num_iteration=n)
                if linear:
                    margin_va = margin_va + init_va
                at[f][0].append(n)
                at[f][1].append(calibrated_losses(margin_va, y[va], seed=m.seed, isotonic_min_rows=isotonic_rows))
        for f in TREE_CHECKPOINTS:
            iters, per_row = at[f]
            losses = np.concatenate(per_row) if per_row else np.zeros(0)
            rows.append(
                {
                    "linear_start": linear,
                    "num_leaves": leaves,
                    "min_child_samples": min_child,
                    "lambda_l2": lam,
                    "tree_fraction": f,
                    "cv_log_loss": float(losses.mean()) if len(losses) else float("inf"),
                    "cv_raw_log_loss": float(np.mean(raw_losses)) if raw_losses else float("inf"),
                    "best_iterations": int(np.median(iters)) if iters else m.n_estimators,
                    "folds": len(per_row),
                }
            )
            row_losses.append(losses)
    if True in starts and folds:  # the linear start alone: no trees (then the tree settings do not matter)
        rows.append({
            "linear_start": True,
            "num_leaves": m.num_leaves_grid[0],
            "min_child_samples": m.min_child_samples_grid[0],
            "lambda_l2": m.reg_lambda_grid[0],
            "tree_fraction": 0.0,
            "cv_log_loss": float(np.concatenate(start_losses).mean()),
            "cv_raw_log_loss": float(np.mean([log_loss(y[va], _sigmoid(init[1]), labels=[0, 1])
                                              for (_, va), init in zip(folds, inits)])),
            "best_iterations": 0,
            "folds": len(folds),
        })
        row_losses.append(np.concatenate(start_losses))
    table = _one_standard_error(pd.DataFrame(rows), row_losses)
    best = table.iloc[0]
    chosen = {
        **base,
        "num_leaves": int(best["num_leaves"]),
        "min_child_samples": int(best["min_child_samples"]),
        "lambda_l2": float(best["lambda_l2"]),
    }
    linear = bool(best["linear_start"])
    n_trees = int(best["best_iterations"])
    return chosen, n_trees, table.reset_index(drop=True), linear


def _one_standard_error(table: pd.DataFrame, row_losses: list[np.ndarray]) -> pd.DataFrame:
    """The one-standard-error rule: the fewest trees whose CV loss is within one paired SE of the best.

    Candidates are compared row by row on the same validation rows: for each, ``d = loss − best loss`` per
    row, and it is *within one SE* when ``mean(d) ≤ sd(d) / √n``. Among those the one with the fewest
    trees wins (then the lower loss): a smaller difference than that is noise in the CV, and the simpler
    model is easier to explain and drifts less (Breiman et al., 1984; glmnet's ``lambda.1se``). The chosen
    row comes first in the returned table; ``cv_se_vs_best`` and ``within_one_se`` say why.
    """
    table = table.reset_index(drop=True)
    finite = [i for i in range(len(table)) if len(row_losses[i]) and np.isfinite(table.loc[i, "cv_log_loss"])]
    if not finite:
        return table.assign(cv_se_vs_best=np.nan, within_one_se=False,
                            chosen=[True] + [False] * (len(table) - 1))
    best = min(finite, key=lambda i: table.loc[i, "cv_log_loss"])
    se, within = [], []
    for i in range(len(table)):
        if i not in finite:
            se.append(float("nan"))
            within.append(False)
            continue
        d = row_losses[i] - row_losses[best]
        err = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        se.append(err)
        within.append(bool(d.mean() <= err))
    table = table.assign(cv_se_vs_best=se, within_one_se=within)
    order = table.sort_values(["within_one_se", "best_iterations", "cv_log_loss", "num_leaves", "min_child_samples"],
                              ascending=[False, True, True, True, True], kind="stable")
    return order.assign(chosen=[True] + [False] * (len(order) - 1))


def fit_margin(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], n_trees: int, *, linear: bool,
               categorical: list[str], seed: int) -> tuple[LinearBase | None, lgb.Booster | None]:
    """The uncalibrated model on these rows: the linear start (if chosen), then ``n_trees`` trees on top."""
    start = None
    init = None
    if linear:
        monotone = dict(zip(X.columns, params.get("monotone_constraints", [0] * X.shape[1])))
        start = LinearBase.fit(X, y, categorical=categorical, monotone=monotone, seed=seed)
        init = start.margin(X)
    booster = None
    if n_trees > 0:
        booster = lgb.train(params, lgb.Dataset(X, y, init_score=init), num_boost_round=n_trees)
    return start, booster


def stratified_folds(y: np.ndarray, n_folds: int, *, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified K-fold positions, for rows without a time order."""
    from sklearn.model_selection import StratifiedKFold

    n = int(min(n_folds, np.bincount(np.asarray(y, dtype=int), minlength=2).min()))
    if n < 2:
        return []
    cv = StratifiedKFold(n_splits=n, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in cv.split(np.zeros(len(y)), y)]


def _references(X: pd.DataFrame, segments: pd.Series | None, categorical: list[str]) -> dict[str, dict[str, float]]:
    refs: dict[str, dict[str, float]] = {}
    for name in X.columns:
        if name in categorical:
            continue
        col = X[name]
        entry = {"all": float(col.median())} if col.notna().any() else {}
        if segments is not None:
            for seg, values in col.groupby(segments.to_numpy(), observed=True):
                if values.notna().any():
                    entry[str(seg)] = float(values.median())
        refs[name] = entry
    return refs


def _distributions(X: pd.DataFrame, categorical: list[str], bins: int = 10) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in X.columns:
        col = X[name]
        if name in categorical:
            shares = col.astype("object").fillna("<missing>").value_counts(normalize=True).sort_index()
            out[name] = {"kind": "categorical", "shares": {str(k): float(v) for k, v in shares.items()}}
        else:
            values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
            present = values[~np.isnan(values)]
            edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1))) if len(present) else np.array([])
            out[name] = {"kind": "numeric", "edges": edges.tolist(), "values": np.sort(present)[:: max(1, len(present) // 2000)].tolist(),
                         "missing_share": float(np.isnan(values).mean()) if len(values) else 0.0}
    return out


def fit_health_model(ts: TrainingSet, *, config: Config) -> TrainResult:
    """Fit, calibrate and evaluate on a prepared training set (the dataset and flat-table paths share this)."""
    warnings: list[str] = []
    part = ts.part if ts.part is not None else split_by_renewal_date(ts.rows, config.split)
    part = pd.Series(np.asarray(part), index=ts.rows.index)
    is_train = (part == "train").to_numpy()
    is_cal = (part == "calibration").to_numpy()
    is_test = (part == "test").to_numpy()
    y = np.asarray(ts.label, dtype=int)
    ordered = "renewal_date" in ts.rows
    mode = config.model.calibration_rows
    if mode == "auto":
        mode = "holdout" if ordered else "cross_fit"
    # the rows the booster learns from: the training part, plus the calibration part when calibrating by
    # cross-fitting (the map is then fitted on out-of-fold margins of those same rows)
    fit_rows = is_train | is_cal if mode == "cross_fit" else is_train
    is_train = fit_rows  # "training rows" below are the rows the model learns from

    features = ts.features
    transformer = None
    if ts.fitted_transformer is not None:
        transformer = ts.fitted_transformer().fit(features[is_train])
    frame = transformer.transform(features) if transformer is not None else features
    feature_names = [c for c in frame.columns]
    categories = {
        c: sorted(pd.Series(frame.loc[is_train, c]).dropna().astype(str).unique().tolist()) for c in ts.categorical
    }
    model = HealthModel(
        feature_names=feature_names,
        categories=categories,
        components={f: ts.components.get(f, "account") for f in feature_names},
        booster_text="",
        calibrator=Calibrator(isotonic_min_rows=config.model.isotonic_min_rows, seed=config.model.seed),
        adoption_curve=transformer,
    )
    X = model.prepare(features)

    base = _base_params(config)
    constraints, mono_warnings = _monotone(feature_names, config, ts.categorical)
    warnings += mono_warnings
    base["monotone_constraints"] = constraints
    if ordered:
        dates = pd.to_datetime(ts.rows["renewal_date"])
        folds = time_folds(dates[fit_rows], config.model.cv_folds)
    else:
        # no time order (a flat table without --time): stratified K-fold inside the rows learnt from
        dates = pd.Series(np.arange(len(y)), index=ts.rows.index)
        folds = stratified_folds(y[fit_rows], config.model.cv_folds, seed=config.model.seed)
    Xf, yf = X[fit_rows], y[fit_rows]
    # the final map may be isotonic only with enough calibration rows; CV judges candidates by the same maps
    n_cal_rows = sum(len(va) for _, va in folds) if mode == "cross_fit" else int(is_cal.sum())
    params, n_trees, cv_table, linear = select_params(
        Xf, yf, dates[fit_rows], base, config, folds=folds, categorical=ts.categorical,
        allow_isotonic=n_cal_rows >= config.model.isotonic_min_rows)
    if not np.isfinite(cv_table["cv_log_loss"]).any():
        warnings.append("too few churned or retained rows to cross-validate (each fold needs 2 of each): the "
                        f"first candidate was used with {n_trees} trees, untuned. Add history or lower model.cv_folds.")
    seed = config.model.seed
    start, booster = fit_margin(Xf, yf, params, n_trees, linear=linear, categorical=ts.categorical, seed=seed)
    model.linear = start
    model.booster_text = booster.model_to_string() if booster is not None else ""
    model._booster = booster

    contrib_train, expected = model.contributions(X.iloc[:1])
    model.metadata["expected_margin"] = float(expected[0])
    if mode == "cross_fit":
        # out-of-fold margins from the same folds that chose the settings (as a tuned estimator inside
        # scikit-learn's CalibratedClassifierCV): mildly optimistic, but every row calibrates and none is
        # held back from learning. Time-ordered folds never validate the oldest block: it only learns.
        oof = np.full(len(yf), np.nan)
        for tr, va in folds:
            if len(np.unique(yf[tr])) < 2:
                continue
            fs, fb = fit_margin(Xf.iloc[tr], yf[tr], params, n_trees, linear=linear, categorical=ts.categorical,
                                seed=seed)
            oof[va] = combined_margin(fs, fb, Xf.iloc[va])
        seen = ~np.isnan(oof)
        model.calibrator.fit(oof[seen], yf[seen])
        n_calibration = int(seen.sum())
    else:
        model.calibrator.fit(model.margin(X[is_cal]), y[is_cal])
        n_calibration = int(is_cal.sum())
    segments = ts.rows["segment"] if "segment" in ts.rows else None
    model.references = _references(X[is_train], segments[is_train] if segments is not None else None, ts.categorical)
    model.reference_distributions = _distributions(X[is_train], ts.categorical, bins=config.drift.bins)
    from healthscore.drift import score_reference

    model.metadata["score_reference"] = score_reference(model, X[is_train], bins=config.drift.bins)
    model.params = {**{k: v for k, v in params.items() if k != "monotone_constraints"}, "num_boost_round": n_trees,
                    "linear_start": linear}
    model.metadata.update(
        {
            "linear_start": linear,
            "linear_dropped": dict(start.dropped) if start is not None else {},
            "calibration_rows": mode,
            "calibration_method": model.calibrator.method_,
            "calibration_cv_log_loss": dict(model.calibrator.cv_log_loss_),
            "monotone": {f: c for f, c in zip(feature_names, constraints) if c},
            "n_train": int(is_train.sum()),
            "n_calibration": n_calibration,
            "n_test": int(is_test.sum()),
        }
    )

    # --- evaluation on the test slice: the model, the baselines, the truth --------------------------------
    Xt, yt = X[is_test], y[is_test]
    preds = {"healthscore": model.predict_proba(Xt), "healthscore_raw": _sigmoid(model.margin(Xt))}
    scorecard = Scorecard(weights=config.scorecard.weights, components=model.components,
                          directions={f: ts.directions.get(f, 0) for f in feature_names}).fit(X[is_train])
    preds["scorecard"] = scorecard.predict_proba(Xt)
    logit = logistic_baseline(X[is_train], y[is_train], categorical=ts.categorical, seed=config.model.seed)
    preds["logistic"] = logistic_proba(logit, Xt)
    if ts.truth is not None:
        truth = np.asarray(ts.truth, dtype=float)[is_test]
        if not np.isnan(truth).any():
            preds["truth"] = truth
    rows_t = ts.rows[is_test]
    groups = {g: rows_t[g].astype(str).reset_index(drop=True) for g in ts.group_columns if g in rows_t}
    evaluation = evaluate_predictions(yt, preds, groups)
    reliability = pd.concat(
        [reliability_table(yt, p).assign(model=name) for name, p in preds.items() if name != "healthscore_raw"],
        ignore_index=True,
    )
    contrib, _ = model.contributions(Xt)
    comp = model.component_contributions(contrib).abs().mean()
    learned = 100 * comp / comp.sum() if comp.sum() > 0 else comp
    weights = pd.DataFrame(
        {
            "component": list(COMPONENTS),
            "learned_weight": [float(learned.get(c, 0.0)) for c in COMPONENTS],
            "hand_weight": [float(config.scorecard.weights.get(c, 0.0)) for c in COMPONENTS],
        }
    )
    test_predictions = rows_t.reset_index(drop=True).assign(
        label=yt, **{f"p_{k}": v for k, v in preds.items()}
    )
    sizes = {
        "rows_train": int(is_train.sum()),
        "rows_calibration": n_calibration,
        "rows_test": int(is_test.sum()),
        "features": len(feature_names),
    }
    if "contract_id" in ts.rows:
        for name, mask in (("train", is_train), ("calibration", is_cal), ("test", is_test)):
            if name == "calibration" and mode == "cross_fit":
                continue  # calibrated on out-of-fold margins of the training rows: no separate contracts
            sizes[f"contracts_{name}"] = int(ts.rows.loc[mask, "contract_id"].nunique())
    return TrainResult(
        model=model,
        evaluation=evaluation,
        reliability=reliability,
        component_weights=weights,
        cv_results=cv_table,
        test_predictions=test_predictions,
        sizes=sizes,
        params=model.params,
        warnings=warnings,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def training_set_from_dataset(ds, *, config: Config, as_of: date | None = None, truth: pd.DataFrame | None = None
                              ) -> TrainingSet:
    """Training rows from the timeline (renewals decided before ``as_of``) with their point-in-time features.

    Key product features not configured are learned here, on the training accounts' events before the latest
    training observation (``vocabulary.resolve_key_features``), and returned in ``features_config``.
    """
    from healthscore.features import build_features, feature_specs, resolve_key_features
    from healthscore.features.time_to_value import SegmentAdoptionCurve
    from healthscore.timeline import training_rows

    rows = training_rows(ds, lead_times=config.timeline.lead_times_days, decided_before=as_of)
    if rows.empty:
        from healthscore.errors import HealthscoreError

        raise HealthscoreError(
            "no decided renewals to learn from"
            + (f" before {as_of}" if as_of else "")
            + ": contracts.outcome is empty everywhere. Add renewal outcomes or move --as-of later."
        )
    fcfg = resolve_key_features(ds, config.features, cutoff=pd.Timestamp(rows["as_of"].max()).date(),
                                accounts=rows["account_id"])
    feats = build_features(ds, rows, config=fcfg)
    specs = feature_specs(fcfg)
    truth_series = None
    if truth is not None and {"contract_id", "p_renew"} <= set(truth.columns):
        mapping = truth.drop_duplicates("contract_id").set_index("contract_id")["p_renew"]
        truth_series = rows["contract_id"].astype(str).map(mapping).astype(float)
    return TrainingSet(
        features=feats,
        label=rows["label"].to_numpy(dtype=int),
        rows=rows,
        components={f.name: f.component for f in specs},
        directions={f.name: int(f.direction) for f in specs},
        categorical=[f.name for f in specs if f.kind == "categorical" and f.name in feats.columns],
        truth=truth_series,
        fitted_transformer=SegmentAdoptionCurve,
        features_config=fcfg,
    )
