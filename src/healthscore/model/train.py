"""Learn the weights from renewal outcomes: LightGBM chosen by time-ordered CV, calibrated, evaluated."""

from __future__ import annotations

import dataclasses
import itertools
import os
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import log_loss
from threadpoolctl import threadpool_limits

from healthscore.config import COMPONENTS, Config, FeaturesConfig
from healthscore.drift import categorical_reference, numeric_reference, score_reference
from healthscore.features import build_features, feature_specs, resolve_key_features
from healthscore.features.time_to_value import SegmentAdoptionCurve
from healthscore.model.baselines import Scorecard, logistic_baseline, logistic_proba
from healthscore.model.calibrate import Calibrator, allows_isotonic, calibrated_losses
from healthscore.model.evaluate import evaluate_predictions, reliability_table
from healthscore.model.health_model import HealthModel, combined_margin
from healthscore.model.linear import BlendStart, LearnedScorecardStart, LinearStart, ScorecardStart
from healthscore.model.split import split_by_renewal_date, time_folds
from healthscore.timeline import data_end, no_training_rows_reason, scoring_rows, training_rows


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
    #: the population later batches are compared with for drift: every active account's raw features as it
    #: would have been scored at the training cutoff (None: the training rows, as for a flat table)
    reference_features: pd.DataFrame | None = None


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
    #: the model the evaluation measured (trained without the test slice); ``model`` is the refit one
    evaluated_model: HealthModel | None = None


def default_threads(configured: int) -> int:
    """Threads for LightGBM: the configured number, else the CPUs this process may use."""
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def parallel_map(fn: Callable[[Any], Any], items: list[Any], *, threads: int) -> list[Any]:
    """``[fn(item) for item in items]``, on up to ``threads`` threads, results in order.

    For the starts' fits (fold by fold): numpy, scipy and scikit-learn release the GIL in their numeric
    loops, and each fit is deterministic on its own rows, so the results are those of the plain loop.
    LightGBM is never called from here (it has its own threads).
    """
    if threads <= 1 or len(items) <= 1:
        return [fn(item) for item in items]

    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        return list(pool.map(fn, items))


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


def _monotone(feature_names: list[str], config: Config, categorical: list[str],
              directions: dict[str, int]) -> tuple[list[int], list[str]]:
    """Each feature's monotone constraint: ``model.monotone``'s entry, else the catalogue's direction."""
    warnings = []
    unknown = sorted(set(config.model.monotone) - set(feature_names))
    if unknown:
        warnings.append(f"model.monotone names features the model does not have (ignored): {', '.join(unknown)}")
    base = directions if config.model.monotone_from_catalogue else {}
    return [0 if f in categorical else int(config.model.monotone.get(f, base.get(f, 0))) for f in feature_names], \
        warnings


#: a constant start (the base rate) is never fitted with fewer trees than this
MIN_TREES = 20
#: fractions of each fold's early-stopped number of trees at which CV measures the calibrated loss (each a
#: candidate of its own; ``cv_raw_log_loss`` is the raw loss at the early-stopped number itself)
TREE_CHECKPOINTS = (0.25, 0.5, 1.0)


#: the blended start's weights on the logistic and the learned-scorecard log-odds when they cannot be
#: stacked (too few validation rows): the plain average
BLEND_SHARES = (0.5, 0.5)


def split_blend_shares(params: dict[str, Any]) -> tuple[dict[str, Any], tuple[float, float]]:
    """LightGBM's parameters without ``blend_shares``, and the shares (``BLEND_SHARES`` when absent)."""
    rest = {k: v for k, v in params.items() if k != "blend_shares"}
    shares = params.get("blend_shares") or BLEND_SHARES
    return rest, (float(shares[0]), float(shares[1]))


def stacked_shares(linear: np.ndarray, learned: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The blend's shares, stacked: a logistic regression of the outcome on the two starts' out-of-fold
    log-odds, with non-negative weights, normalised to sum to 1 (Wolpert's stacking; the "super learner").

    Where CV's loss cannot tell the two apart, their errors can still differ: on the subscription world the
    line takes 0.83 of the weight and the forward AUC is the line's (0.833), on the b2b world the learned
    scorecard takes 0.77 (0.790). ``BLEND_SHARES`` when there is nothing to stack or both weights are 0.
    """
    from healthscore.model.linear import nonnegative_logit

    y = np.asarray(y, dtype=int)
    if len(y) < 10 or len(np.unique(y)) < 2:
        return BLEND_SHARES
    w = nonnegative_logit(np.column_stack([linear, learned]), y, 1.0)[1:]
    total = float(w.sum())
    if not np.isfinite(total) or total <= 1e-9:
        return BLEND_SHARES
    return float(w[0] / total), float(w[1] / total)

#: the starts CV may choose between (``model.linear_start``, ``model.scorecard_start``,
#: ``model.learned_scorecard_start``)
STARTS = ("constant", "linear", "scorecard", "learned_scorecard", "blend")
#: the one-standard-error rule's tie-break after the number of trees: the hand-weighted scorecard is the
#: prior (it learns only a scale and an intercept), so a start that learns weights must beat it by more than
#: the CV's noise; between learned starts the lower loss wins. Ranking every start by its number of weights
#: instead was measured worse: on the 2,000-account subscription world the learned scorecard alone then
#: replaced the stacked blend and the forward AUC fell from 0.833 to 0.813 (the logistic baseline: 0.832)
START_COMPLEXITY = {"constant": 0, "scorecard": 1, "learned_scorecard": 2, "linear": 2, "blend": 2}


def start_fitters(config: Config, *, categorical: list[str], monotone: dict[str, int],
                  components: dict[str, str] | None = None, directions: dict[str, int] | None = None,
                  blend_shares: tuple[float, float] = BLEND_SHARES
                  ) -> dict[str, Callable[[pd.DataFrame, np.ndarray], Any] | None]:
    """The starts CV compares, each as a function fitting it on some rows (None: a constant start).

    - ``constant``: the base rate, LightGBM's default (``model.linear_start`` ``auto`` or ``off``).
    - ``linear``: a logistic regression's log-odds (``model/linear.py``; ``auto`` or ``on``).
    - ``scorecard``: the hand-weighted scorecard's score, scaled by a one-input logistic fit
      (``model.scorecard_start: auto`` with ``linear_start: auto``; needs components and directions).
    - ``learned_scorecard``: the scorecard's percentiles with one non-negative weight per feature learned
      from the renewals (``model.learned_scorecard_start: auto`` with ``linear_start: auto``).
    - ``blend``: a weighted average of the logistic and the learned-scorecard log-odds, the shares stacked
      on their out-of-fold margins (``stacked_shares``; ``blend_shares``, from ``select_params``). Where CV
      cannot tell the two apart, choosing one is a coin flip the next renewals may punish (measured: the
      subscription world's forward AUC 0.814 with the learned scorecard alone as the only addition, 0.830
      with a plain average as a candidate too, 0.833 stacked; docs/model-quality.md).
    """
    m = config.model
    out: dict[str, Callable[[pd.DataFrame, np.ndarray], Any] | None] = {}
    if m.linear_start in ("auto", "off"):
        out["constant"] = None
    if m.linear_start in ("auto", "on"):
        out["linear"] = lambda X, y: LinearStart.fit(X, y, categorical=categorical, monotone=monotone, seed=m.seed)
    if m.scorecard_start == "auto" and m.linear_start == "auto" and components and directions:
        out["scorecard"] = lambda X, y: ScorecardStart.fit(
            X, y, weights=config.scorecard.weights, components=components,
            directions={f: directions.get(f, 0) for f in X.columns})
    if m.learned_scorecard_start == "auto" and m.linear_start == "auto" and components and directions:
        out["learned_scorecard"] = lambda X, y: LearnedScorecardStart.fit(
            X, y, components=components, directions={f: directions.get(f, 0) for f in X.columns}, seed=m.seed)
        if "linear" in out:
            lin, learned = out["linear"], out["learned_scorecard"]
            out["blend"] = lambda X, y: BlendStart(feature_names=list(X.columns), parts=[lin(X, y), learned(X, y)],
                                                   shares=list(blend_shares))
    return out


def _fold_starts(fitters: dict[str, Callable | None], X: pd.DataFrame, y: np.ndarray,
                 folds: list[tuple[np.ndarray, np.ndarray]], *, threads: int = 1
                 ) -> tuple[dict[str, list[tuple[np.ndarray, np.ndarray]]], tuple[float, float]]:
    """Per fitted start and fold: its margins on the fold's training and validation rows; and the blend's
    stacked shares (``BLEND_SHARES`` without a blend). The fits run on ``threads`` threads (``parallel_map``).

    A scorecard start with no weighted feature (or whose hand weights rank the wrong way here) is a
    constant start in disguise, and is dropped.
    """
    fitted = [name for name, fit in fitters.items() if fit is not None and name != "blend"]

    def one(task: tuple[str, int]) -> tuple[bool, tuple[np.ndarray, np.ndarray] | None]:
        name, k = task
        tr, va = folds[k]
        start = fitters[name](X.iloc[tr], y[tr])
        if name in ("scorecard", "learned_scorecard") and not start.used:
            return False, None
        return True, (start.margin(X.iloc[tr]), start.margin(X.iloc[va]))

    tasks = [(name, k) for name in fitted for k in range(len(folds))]
    results = dict(zip(tasks, parallel_map(one, tasks, threads=threads)))
    inits: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for name in fitted:
        runs = [results[(name, k)] for k in range(len(folds))]
        if all(ok for ok, _ in runs):
            inits[name] = [pair for _, pair in runs]
    shares = BLEND_SHARES
    if "blend" in fitters and "linear" in inits and "learned_scorecard" in inits:
        # two starts already fitted on the same rows, stacked: not fitted again
        lin, learned = inits["linear"], inits["learned_scorecard"]
        shares = stacked_shares(np.concatenate([va for _, va in lin]), np.concatenate([va for _, va in learned]),
                                np.concatenate([y[va] for _, va in folds]))
        inits["blend"] = [tuple(sum(w * m for w, m in zip(shares, pair)) for pair in zip(a, b))
                          for a, b in zip(lin, learned)]
    # the CV table lists the starts in the fitters' order
    return {name: inits[name] for name in fitters if name in inits}, shares


def _candidate(start: str, leaves: int, min_child: int, lam: float, fraction: float, per_row: list[np.ndarray],
               raw: list[float], iters: list[int], n_estimators: int) -> tuple[dict[str, Any], np.ndarray]:
    """One row of the CV table, and every validation row's calibrated loss (folds in order)."""
    losses = np.concatenate(per_row) if per_row else np.zeros(0)
    return {
        "start": start,
        "linear_start": start != "constant",
        "num_leaves": leaves,
        "min_child_samples": min_child,
        "lambda_l2": lam,
        "tree_fraction": fraction,
        "cv_log_loss": float(losses.mean()) if len(losses) else float("inf"),
        "cv_raw_log_loss": float(np.mean(raw)) if raw else float("inf"),
        "best_iterations": int(np.median(iters)) if iters else (0 if fraction == 0 else n_estimators),
        "folds": len(per_row),
    }, losses


class _FoldData:
    """Each CV fold's binned LightGBM datasets, built once per ``min_child_samples`` and shared by every start
    and tree setting (only the start's ``init_score`` changes between them).

    Why: binning the rows is most of what a small booster costs (measured on 196k rows: 245 datasets built
    in 36 s, against 20 s of boosting). The bins depend on the rows and ``min_data_in_leaf`` only (LightGBM
    pre-filters features no split of that size can use), so the models are the ones a fresh dataset gives.
    """

    def __init__(self, X: pd.DataFrame, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                 params: dict[str, Any]) -> None:
        self.X, self.y, self.folds, self.params = X, y, folds, params
        self._sets: dict[tuple[int, int], tuple[lgb.Dataset, lgb.Dataset]] = {}
        self._valid_X: dict[int, pd.DataFrame] = {}
        self._valid_matrix: dict[int, Any] = {}

    def valid_X(self, k: int) -> pd.DataFrame:
        if k not in self._valid_X:
            self._valid_X[k] = self.X.iloc[self.folds[k][1]]
        return self._valid_X[k]

    def valid_matrix(self, k: int, booster: lgb.Booster):
        """The fold's validation rows as LightGBM turns a frame into a matrix for ``booster`` (categories as
        its codes), converted once per fold instead of at every checkpoint's predict (measured: 1.1 s of
        1.9 s predicting on 177 checkpoints). Every booster of a fold learned from the same frame, so the same
        categories. Without LightGBM's converter (another version): the frame itself."""
        if k not in self._valid_matrix:
            convert = getattr(lgb.basic, "_data_from_pandas", None)
            frame = self.valid_X(k)
            try:
                self._valid_matrix[k] = frame if convert is None else \
                    convert(frame, "auto", "auto", booster.pandas_categorical)[0]
            except (TypeError, ValueError):
                self._valid_matrix[k] = frame
        return self._valid_matrix[k]

    def get(self, k: int, min_child: int, init_tr: np.ndarray | None, init_va: np.ndarray | None
            ) -> tuple[lgb.Dataset, lgb.Dataset]:
        key = (k, int(min_child))
        if key not in self._sets:
            tr, va = self.folds[k]
            params = {**self.params, "min_child_samples": int(min_child)}
            dtr = lgb.Dataset(self.X.iloc[tr], self.y[tr], params=params, free_raw_data=False).construct()
            dva = lgb.Dataset(self.valid_X(k), self.y[va], reference=dtr, params=params).construct()
            self._sets[key] = (dtr, dva)
        dtr, dva = self._sets[key]
        for ds, init in ((dtr, init_tr), (dva, init_va)):
            # set_init_score(None) keeps the handle's old scores: clear them, so a constant start boosts
            # from the average as on a fresh dataset
            if init is None:
                ds.set_field("init_score", None)
            else:
                ds.set_init_score(init)
            ds.init_score = init
        return dtr, dva


def _tree_checkpoints(params: dict[str, Any], start: str, data: _FoldData, inits: dict, config: Config,
                      isotonic_rows: float, losses: Executor) -> tuple[list[float], dict[float, tuple[list[int], list]]]:
    """Trees on one start and tree setting, fold by fold: raw losses, and per checkpoint trees and row losses.

    Early stopping watches the raw loss; the calibrated loss is measured at fractions of that number (more
    trees may only be bending the margin's shape, which calibration does anyway, at a cost in ranking).
    Each fraction is its own candidate, the same for every fold, so no fold picks its own best checkpoint
    on its own validation rows. A constant start keeps at least MIN_TREES (the number it will be fitted
    with), a fitted one 1.

    The checkpoints' calibrated losses are computed on ``losses`` (a thread beside LightGBM's: its two
    threads keep about 1.6 of the 2 cores busy), so each row loss is a ``Future`` of the array.
    """
    m = config.model
    y = data.y
    raw_losses = []
    at: dict[float, tuple[list[int], list[np.ndarray]]] = {f: ([], []) for f in TREE_CHECKPOINTS}
    for k, (_tr, va) in enumerate(data.folds):
        init_tr, init_va = inits[start][k] if start in inits else (None, None)
        dtr, dva = data.get(k, params["min_child_samples"], init_tr, init_va)
        booster = lgb.train(
            {**params, "metric": "binary_logloss"},
            dtr,
            num_boost_round=m.n_estimators,
            valid_sets=[dva],
            callbacks=[lgb.early_stopping(m.early_stopping_rounds, verbose=False)],
        )
        raw_losses.append(booster.best_score["valid_0"]["binary_logloss"])
        best_trees = booster.best_iteration or m.n_estimators
        floor = MIN_TREES if start == "constant" else 1
        losses_at: dict[int, np.ndarray] = {}  # checkpoints that round to the same number of trees share it
        for f in TREE_CHECKPOINTS:
            n = min(booster.current_iteration(), max(floor, min(best_trees, round(best_trees * f))))
            if n not in losses_at:
                margin_va = booster.predict(data.valid_matrix(k, booster), raw_score=True, num_iteration=n)
                if init_va is not None:
                    margin_va = margin_va + init_va
                losses_at[n] = losses.submit(calibrated_losses, margin_va, y[va], seed=m.seed,
                                             isotonic_min_rows=isotonic_rows)
            at[f][0].append(n)
            at[f][1].append(losses_at[n])
    return raw_losses, at


def select_params(
    X: pd.DataFrame, y: np.ndarray, dates: pd.Series, base: dict[str, Any], config: Config,
    *, folds: list[tuple[np.ndarray, np.ndarray]] | None = None, categorical: list[str] | None = None,
    allow_isotonic: bool = True, components: dict[str, str] | None = None,
    directions: dict[str, int] | None = None,
) -> tuple[dict[str, Any], int, pd.DataFrame, str]:
    """Choose the start, regularisation and number of trees by CV inside the rows the booster learns from.

    Folds are expanding windows over renewal dates; ``folds`` (positions into ``X``) replace them when rows
    have no time order (a flat table without ``--time``). Candidates are the product of the config's grids
    and of the starts (``start_fitters``: constant, a logistic regression's log-odds, the hand-weighted
    scorecard's — each fitted on each fold's training rows) and of ``TREE_CHECKPOINTS``: trees are added
    until the validation log loss stops improving (early stopping), and each fraction of that number is a
    candidate. Each fitted start alone (zero trees) is one more candidate: the logistic regression alone
    and the calibrated scorecard alone are always in the race, so the choice is never worse than them by
    more than CV noise. Candidates are judged by ``cv_log_loss``: the log loss of their validation margins
    *after* the best calibration map, itself chosen by CV on those margins (``calibrated_losses``) — the
    model is calibrated afterwards, so a margin that ranks well but has another shape is not penalised for
    the shape. ``cv_raw_log_loss`` is the uncalibrated loss. The choice follows the one-standard-error
    rule (``_one_standard_error``): the fewest trees within one paired standard error of the best loss.
    Returns the chosen LightGBM parameters, the number of trees (median over folds; at least 20 from a
    constant start), the CV table (chosen row first) and the chosen start's name. The test slice is never
    seen here.
    """
    m = config.model
    if folds is None:
        folds = time_folds(dates, m.cv_folds)
    # a fold needs both classes to learn from and at least 2 of each to validate (the calibrated loss is
    # itself cross-validated on the validation rows)
    folds = [(tr, va) for tr, va in folds
             if len(np.unique(y[tr])) == 2 and np.bincount(y[va], minlength=2).min() >= 2]
    isotonic_rows = 0 if allow_isotonic else np.inf  # the criterion uses only maps the final calibrator may
    monotone = dict(zip(X.columns, base.get("monotone_constraints", [0] * X.shape[1])))
    fitters = start_fitters(config, categorical=categorical or [], monotone=monotone, components=components,
                            directions=directions)
    inits, shares = _fold_starts(fitters, X, y, folds, threads=default_threads(m.num_threads))
    fitters = {name: fit for name, fit in fitters.items() if fit is None or name in inits or not folds}
    candidates: list[tuple[dict[str, Any], np.ndarray]] = []
    data = _FoldData(X, y, folds, base)
    grid = list(itertools.product(fitters, m.num_leaves_grid, m.min_child_samples_grid, m.reg_lambda_grid))
    # the calibrated losses of one setting's checkpoints are computed while the next setting's trees grow
    # (measured on 201k rows: 3.2 s of them, one thread, between LightGBM's fits)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="healthscore-cv-losses") as losses:
        runs = [_tree_checkpoints({**base, "num_leaves": leaves, "min_child_samples": min_child, "lambda_l2": lam},
                                  start, data, inits, config, isotonic_rows, losses)
                for start, leaves, min_child, lam in grid]
        for (start, leaves, min_child, lam), (raw_losses, at) in zip(grid, runs):
            for f in TREE_CHECKPOINTS:
                candidates.append(_candidate(start, leaves, min_child, lam, f, [r.result() for r in at[f][1]],
                                             raw_losses, at[f][0], m.n_estimators))
    for start, margins in inits.items():  # each fitted start alone: no trees (the tree settings do not matter)
        if not folds:
            continue
        # the scorecard alone is judged by its best map here although it keeps its own (``_own_map``):
        # judging it by that map was measured and dropped (small-world misses 1 -> 3 of 48, e.g. b2b-400-11
        # test AUC 0.799 -> 0.773, b2b-1000-11 forward log loss 0.398 -> 0.411): the leaning is a useful prior
        per_row = [calibrated_losses(init[1], y[va], seed=m.seed, isotonic_min_rows=isotonic_rows)
                   for (_, va), init in zip(folds, margins)]
        raw = [log_loss(y[va], _sigmoid(init[1]), labels=[0, 1]) for (_, va), init in zip(folds, margins)]
        candidates.append(_candidate(start, m.num_leaves_grid[0], m.min_child_samples_grid[0], m.reg_lambda_grid[0],
                                     0.0, per_row, raw, [0], m.n_estimators))
    table = _one_standard_error(pd.DataFrame([row for row, _ in candidates]), [loss for _, loss in candidates])
    best = table.iloc[0]
    chosen = {
        **base,
        "num_leaves": int(best["num_leaves"]),
        "min_child_samples": int(best["min_child_samples"]),
        "lambda_l2": float(best["lambda_l2"]),
    }
    if best["start"] == "blend":  # not a LightGBM parameter: the caller takes it out (``split_blend_shares``)
        chosen["blend_shares"] = [float(v) for v in shares]
    return chosen, int(best["best_iterations"]), table.reset_index(drop=True), str(best["start"])


def _one_standard_error(table: pd.DataFrame, row_losses: list[np.ndarray]) -> pd.DataFrame:
    """The one-standard-error rule: the fewest trees whose CV loss is within the CV's noise of the best.

    Candidates are compared row by row on the same validation rows: for each, ``d = loss − best loss`` per
    row, with its paired standard error ``sd(d) / √n`` (``cv_se_vs_best``). The CV's noise is the median of
    those standard errors over the candidates, and a candidate is *within one SE* when ``mean(d)`` is at most
    that one threshold. Among those the one with the fewest trees wins, then the hand-weighted scorecard over a
    start that learns weights (``START_COMPLEXITY``), then the lower loss: a smaller
    difference is noise in the CV, and the simpler model is easier to explain and drifts less (Breiman et
    al., 1984; glmnet's ``lambda.1se``).

    Why one threshold for all rather than each candidate's own SE: with its own SE a candidate whose
    losses swing widely (a line that overfits some folds) passes *because* it is noisy, while one that is
    consistently a hair worse (the scorecard on a few hundred renewals) fails — measured on 400-account
    worlds, that picked the line over a scorecard that ranked the next renewals far better. The chosen row
    comes first in the returned table; ``cv_se_vs_best``, ``cv_noise`` and ``within_one_se`` say why.
    """
    table = table.reset_index(drop=True)
    finite = [i for i in range(len(table)) if len(row_losses[i]) and np.isfinite(table.loc[i, "cv_log_loss"])]
    if not finite:
        return table.assign(cv_se_vs_best=np.nan, cv_noise=np.nan, within_one_se=False,
                            chosen=[True] + [False] * (len(table) - 1))
    best = min(finite, key=lambda i: table.loc[i, "cv_log_loss"])
    se, gap = [], []
    for i in range(len(table)):
        if i not in finite:
            se.append(float("nan"))
            gap.append(float("nan"))
            continue
        d = row_losses[i] - row_losses[best]
        se.append(float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0)
        gap.append(float(d.mean()))
    others = [se[i] for i in finite if i != best]
    noise = float(np.median(others)) if others else 0.0
    within = [bool(np.isfinite(g) and g <= noise) for g in gap]
    table = table.assign(cv_se_vs_best=se, cv_noise=noise, within_one_se=within)
    simpler = table["start"].map(START_COMPLEXITY).fillna(len(START_COMPLEXITY)) if "start" in table else 0
    order = table.assign(_simpler=simpler).sort_values(
        ["within_one_se", "best_iterations", "_simpler", "cv_log_loss", "num_leaves", "min_child_samples"],
        ascending=[False, True, True, True, True, True], kind="stable").drop(columns="_simpler")
    return order.assign(chosen=[True] + [False] * (len(order) - 1))


def fit_margin(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], n_trees: int, *,
               start_fit: Callable[[pd.DataFrame, np.ndarray], Any] | None, start: Any = None
               ) -> tuple[Any, lgb.Booster | None]:
    """The uncalibrated model on these rows: the start (``start``, else ``start_fit``'s, else None: constant),
    then trees on top."""
    if start is None and start_fit is not None:
        start = start_fit(X, y)
    init = start.margin(X) if start is not None else None
    booster = None
    if n_trees > 0:
        booster = lgb.train(params, lgb.Dataset(X, y, init_score=init), num_boost_round=n_trees)
    return start, booster


def selection_folds(dates: pd.Series, n_folds: int, *, min_train_share: float = 0.0
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The time-ordered folds that choose the settings: ``n_folds`` judged folds over renewal dates.

    With ``min_train_share`` (``model.cv_min_train_share``) the renewal dates are cut into twice as many
    blocks and only the folds whose models learn from at least that share of the rows are judged. Why: the
    registered model is refit on every row, so a fold that learned from a quarter of them is a poor judge of
    it — small early folds favour starts that need little data. Measured forward on the subscription world
    (2,000 accounts): with every expanding fold judged CV kept "scorecard start + 5 trees" (AUC 0.795 on
    later renewals); judging the folds that learn from ≥ 50% chose the line (0.832, the logistic's 0.832);
    the b2b world was unchanged (0.784 vs 0.783).
    """
    if min_train_share <= 0:
        return time_folds(dates, n_folds)
    blocks = 2 * n_folds
    folds = time_folds(dates, blocks - 1)  # fold k learns from blocks 1..k of ``blocks``
    first = max(1, int(np.ceil(min_train_share * blocks)))
    judged = folds[first - 1:]
    return judged[-n_folds:] if len(judged) >= 1 else folds


def stratified_folds(y: np.ndarray, n_folds: int, *, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified K-fold positions, for rows without a time order."""
    from sklearn.model_selection import StratifiedKFold

    n = int(min(n_folds, np.bincount(np.asarray(y, dtype=int), minlength=2).min()))
    if n < 2:
        return []
    cv = StratifiedKFold(n_splits=n, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in cv.split(np.zeros(len(y)), y)]


def _references(X: pd.DataFrame, segments: pd.Series | None, categorical: list[str]) -> dict[str, dict[str, float]]:
    """Each numeric feature's median over the rows (``all``) and within each segment (NaN left out).

    The rows are split by segment once, and each part's medians taken for every column at once (the same
    medians as column by column, measured 0.69 -> 0.19 s on 201k rows).
    """
    numeric = [name for name in X.columns if name not in categorical]
    frame = X[numeric]
    overall = frame.median()
    by_segment = [(str(seg), part.median()) for seg, part in frame.groupby(segments.to_numpy(), observed=True)] \
        if segments is not None else []
    refs: dict[str, dict[str, float]] = {}
    for name in numeric:
        entry = {"all": float(overall[name])} if pd.notna(overall[name]) else {}
        for seg, medians in by_segment:
            if pd.notna(medians[name]):
                entry[seg] = float(medians[name])
        refs[name] = entry
    return refs


def _distributions(X: pd.DataFrame, categorical: list[str], bins: int = 10) -> dict[str, Any]:
    """Each feature's reference distribution for drift (``drift.numeric_reference``/``categorical_reference``)."""
    return {name: categorical_reference(X[name]) if name in categorical else
            numeric_reference(pd.to_numeric(X[name], errors="coerce").to_numpy(dtype=float), bins=bins)
            for name in X.columns}


def _new_model(ts: TrainingSet, rows: np.ndarray, config: Config) -> HealthModel:
    """An unfitted model whose fitted inputs (adoption curve, category lists) are learned on ``rows`` only."""
    transformer = ts.fitted_transformer().fit(ts.features[rows]) if ts.fitted_transformer is not None else None
    frame = transformer.transform(ts.features) if transformer is not None else ts.features
    feature_names = list(frame.columns)
    categories = {
        c: sorted(pd.Series(frame.loc[rows, c]).dropna().astype(str).unique().tolist()) for c in ts.categorical
    }
    return HealthModel(
        feature_names=feature_names,
        categories=categories,
        components={f: ts.components.get(f, "account") for f in feature_names},
        booster_text="",
        calibrator=Calibrator(isotonic_min_rows=config.model.isotonic_min_rows,
                              isotonic_min_class_rows=config.model.isotonic_min_class_rows, seed=config.model.seed),
        adoption_curve=transformer,
    )


def _fit_rows(model: HealthModel, X: pd.DataFrame, y: np.ndarray, rows: np.ndarray, ts: TrainingSet, *,
              params: dict[str, Any], n_trees: int, start_fit, calibration: str,
              folds: list[tuple[np.ndarray, np.ndarray]], cal_rows: np.ndarray | None, config: Config,
              starts: list | None = None) -> int:
    """Fit the margin on ``rows``, calibrate it, store the training references; the calibration row count.

    ``starts``: the start's fits on ``rows`` and on each calibration fold's training rows, already made
    (``_start_fits``, as ``fit_health_model`` makes the refit's beside the evaluation); else fitted here.

    ``calibration="cross_fit"``: the map is fitted on out-of-fold margins over ``folds`` (positions within
    ``rows``) — from the same folds that chose the settings when evaluating (as a tuned estimator inside
    scikit-learn's CalibratedClassifierCV: mildly optimistic, but every row calibrates and none is held
    back from learning). Time-ordered folds never validate the oldest block: it only learns.
    ``"holdout"``: on ``cal_rows``, which the margin never saw.
    """
    Xf, yf = X[rows], y[rows]
    used = _calibration_folds(folds, yf, calibration)
    # the starts of the model and of each cross-fitting fold first, on parallel threads; then the trees
    if starts is None:
        starts = _start_fits(start_fit, Xf, yf, used, config)
    start, booster = fit_margin(Xf, yf, params, n_trees, start_fit=None, start=starts[0])
    model.linear = start
    model.use_booster(booster)
    _, expected = model.contributions(X.iloc[:1])
    model.metadata["expected_margin"] = float(expected[0])
    if calibration == "cross_fit":
        oof = np.full(len(yf), np.nan)
        for (tr, va), fold_start in zip(used, starts[1:]):
            fs, fb = fit_margin(Xf.iloc[tr], yf[tr], params, n_trees, start_fit=None, start=fold_start)
            oof[va] = combined_margin(fs, fb, Xf.iloc[va])
        seen = ~np.isnan(oof)
        model.calibrator.fit(oof[seen], yf[seen])
        n_calibration = int(seen.sum())
    else:
        model.calibrator.fit(model.margin(X[cal_rows]), y[cal_rows])
        n_calibration = int(cal_rows.sum())
    segments = ts.rows["segment"] if "segment" in ts.rows else None
    model.references = _references(Xf, segments[rows] if segments is not None else None, ts.categorical)
    # drift compares a batch with a batch: the accounts as scored at the cutoff, else the training rows
    Xr = model.prepare(ts.reference_features) if ts.reference_features is not None else Xf
    model.reference_distributions = _distributions(Xr, ts.categorical, bins=config.drift.bins)
    model.metadata["score_reference"] = score_reference(model, Xr, bins=config.drift.bins)
    model.metadata["drift_reference"] = {"rows": int(len(Xr)), "population": "batch at the training cutoff"
                                         if ts.reference_features is not None else "training rows"}
    return n_calibration


def _calibration_folds(folds: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray, calibration: str
                       ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds whose out-of-fold margins calibrate the map (cross-fitting: those with both outcomes to learn)."""
    return [(tr, va) for tr, va in folds if len(np.unique(y[tr])) == 2] if calibration == "cross_fit" else []


def _start_fits(start_fit, X: pd.DataFrame, y: np.ndarray, used: list[tuple[np.ndarray, np.ndarray]],
                config: Config) -> list:
    """The start fitted on every row of ``X``, then on each fold's training rows (on parallel threads);
    ``None`` for each without a start to fit (a constant start)."""
    if start_fit is None:
        return [None] * (1 + len(used))
    parts = [None] + [tr for tr, _ in used]
    return parallel_map(lambda idx: start_fit(X, y) if idx is None else start_fit(X.iloc[idx], y[idx]),
                        parts, threads=default_threads(config.model.num_threads))


def _describe_rows(ts: TrainingSet, mask: np.ndarray) -> dict[str, Any]:
    """How many rows (renewals × lead times) and contracts, and their renewal dates (for the model card)."""
    out: dict[str, Any] = {"rows": int(mask.sum())}
    if "contract_id" in ts.rows:
        out["contracts"] = int(ts.rows.loc[mask, "contract_id"].nunique())
    if "renewal_date" in ts.rows and mask.any():
        dates = pd.to_datetime(ts.rows.loc[mask, "renewal_date"])
        out["renewals_from"], out["renewals_to"] = str(dates.min().date()), str(dates.max().date())
    return out


def _own_map(start_name: str, n_trees: int, other: Calibrator, config: Config) -> Calibrator:
    """The identity map for the hand-weighted scorecard alone (its start is already the map); else ``other``.

    The scorecard start is already a Platt fit of its score (two numbers) on the rows it learned from; a
    second map, fitted on other margins (the calibration slice, or out-of-fold margins of fold models that
    learned from older rows), only adds their differences. The evaluated model and the registered one follow
    the same rule, so the reported metrics measure the map that scores accounts. Measured forward on three
    small b2b worlds where CV chose it: log loss 0.411 -> 0.398, 0.448 -> 0.443 and 0.424 -> 0.418 with the
    identity (``benchmarks/model_quality.py``).
    """
    if start_name == "scorecard" and n_trees == 0:
        return Calibrator(isotonic_min_rows=np.inf, seed=config.model.seed, fixed="identity")
    return other


def refit(ts: TrainingSet, settings: HealthModel, *, config: Config) -> HealthModel:
    """The same model form as ``settings`` (start, tree settings, number of trees) fitted on every row of ``ts``.

    No new search: the settings were chosen by CV and judged on held-out renewals; this only lets the
    newest renewals teach the model too. Everything fitted on rows (adoption curve, categories, references,
    drift distributions) is fitted on all of them, and the map is calibrated on out-of-fold margins —
    time-ordered folds when rows have renewal dates (each block predicted by a model of the older ones),
    else stratified folds. ``ts.part`` is ignored. BLAS runs on one thread, as in ``fit_health_model``
    (``retrain`` calls this directly).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _refit(ts, settings, config=config)


@dataclass
class _RefitStarts:
    """What a refit prepares from the chosen start alone (before the evaluated model is fitted): the model
    on every row, its matrix, the calibration folds, the start (blend shares stacked again) and its fits."""

    final: HealthModel
    X: pd.DataFrame
    folds: list[tuple[np.ndarray, np.ndarray]]
    how: str
    constraints: list[int]
    shares: tuple[float, float]
    start_fit: Callable | None
    starts: list


def _refit_starts(ts: TrainingSet, start_name: str, shares: tuple[float, float], *, config: Config) -> _RefitStarts:
    """The refit's model, matrix, folds and start fits: they depend on the chosen start only, so
    ``fit_health_model`` makes them on a thread beside the evaluated model's fit and test."""
    every = np.ones(len(ts.label), dtype=bool)
    y = np.asarray(ts.label, dtype=int)
    final = _new_model(ts, every, config)
    X = final.prepare(ts.features)
    constraints, _ = _monotone(final.feature_names, config, ts.categorical, ts.directions)
    directions = {f: int(ts.directions.get(f, 0)) for f in final.feature_names}
    if "renewal_date" in ts.rows:
        folds = time_folds(pd.to_datetime(ts.rows["renewal_date"]), config.model.cv_folds)
        how = "time-ordered out-of-fold margins"
    else:
        folds = stratified_folds(y, config.model.cv_folds, seed=config.model.seed)
        how = "out-of-fold margins"
    fitters = start_fitters(config, categorical=ts.categorical, monotone=dict(zip(final.feature_names, constraints)),
                            components=final.components, directions=directions, blend_shares=shares)
    if start_name == "blend":
        # the shares are stacked again on every row's out-of-fold margins, as the map is calibrated again:
        # the same procedure, now with the newest renewals
        # on the folds CV judges by (those that learn from at least cv_min_train_share of the rows)
        stack_folds = selection_folds(pd.to_datetime(ts.rows["renewal_date"]), config.model.cv_folds,
                                      min_train_share=config.model.cv_min_train_share) \
            if "renewal_date" in ts.rows else folds
        usable = [(tr, va) for tr, va in stack_folds if len(np.unique(y[tr])) == 2]
        _, shares = _fold_starts({k: fitters[k] for k in ("linear", "learned_scorecard", "blend")}, X, y, usable,
                                 threads=default_threads(config.model.num_threads))
        fitters = start_fitters(config, categorical=ts.categorical,
                                monotone=dict(zip(final.feature_names, constraints)), components=final.components,
                                directions=directions, blend_shares=shares)
    start_fit = fitters.get(start_name)
    starts = _start_fits(start_fit, X, y, _calibration_folds(folds, y, "cross_fit"), config)
    return _RefitStarts(final=final, X=X, folds=folds, how=how, constraints=constraints, shares=shares,
                        start_fit=start_fit, starts=starts)


def _refit(ts: TrainingSet, settings: HealthModel, *, config: Config,
           prepared: _RefitStarts | None = None) -> HealthModel:
    """``refit``'s body (under its BLAS limit); ``prepared``: its ``_refit_starts`` for ``settings``' start."""
    start_name = str(settings.params.get("start", "linear" if settings.linear is not None else "constant"))
    n_trees = int(settings.params.get("num_boost_round", 0))
    params, shares = split_blend_shares({k: v for k, v in settings.params.items()
                                         if k not in ("num_boost_round", "linear_start", "start")})
    p = prepared or _refit_starts(ts, start_name, shares, config=config)
    final, X, shares, how = p.final, p.X, p.shares, p.how
    y, every = np.asarray(ts.label, dtype=int), np.ones(len(ts.label), dtype=bool)
    allowed = settings.metadata.get("isotonic_allowed",
                                    settings.metadata.get("n_calibration", 0) >= config.model.isotonic_min_rows)
    if settings.calibrator.method_ != "isotonic" and not allowed:
        # the evaluation could not try isotonic (too few calibration rows, or of one outcome): nor may the
        # refit, so the map the registered model uses is one the reported metrics measured (a scorecard start
        # alone keeps its own fit in both, ``_own_map``)
        final.calibrator = Calibrator(isotonic_min_rows=np.inf, seed=config.model.seed)
    params = {**_base_params(config), **params, "monotone_constraints": p.constraints}
    final.calibrator = _own_map(start_name, n_trees, final.calibrator, config)
    n_cal = _fit_rows(final, X, y, every, ts, params=params, n_trees=n_trees, start_fit=p.start_fit,
                      calibration="cross_fit", folds=p.folds, cal_rows=None, config=config, starts=p.starts)
    final.params = {**settings.params, **({"blend_shares": list(shares)} if start_name == "blend" else {})}
    final.metadata.update({k: v for k, v in settings.metadata.items()
                           if k not in ("expected_margin", "score_reference", "calibration_method",
                                        "calibration_cv_log_loss", "n_calibration", "n_train", "n_test",
                                        "learned_from", "metrics_from", "evaluated_model", "holdout_from")})
    final.metadata.update({
        "form": final.form,
        "linear_dropped": dict(final.linear.dropped) if final.linear is not None else {},
        "calibration_rows": "cross_fit",
        "calibration_method": final.calibrator.method_,
        "calibration_cv_log_loss": dict(final.calibrator.cv_log_loss_),
        "n_train": int(every.sum()),
        "n_calibration": n_cal,
        "refit": True,
        "learned_from": _describe_rows(ts, every),
        "calibrated_on": f"{how} of {n_cal:,} rows",
    })
    return final


def rows_text(d: dict[str, Any] | None) -> str:
    """A row set of the model card in words: "6,990 rows (2,330 renewals, renewal dates 2022-02-01 to 2024-12-30)"."""
    if not d:
        return ""
    text = f"{d['rows']:,} rows"
    if "contracts" in d and "renewals_from" in d:
        text += f" ({d['contracts']:,} renewals, renewal dates {d['renewals_from']} to {d['renewals_to']})"
    return text


@dataclass
class _Rows:
    """Which rows the evaluated model learns from, calibrates on and is tested on."""

    is_train: np.ndarray
    is_cal: np.ndarray
    is_test: np.ndarray
    #: how the map is calibrated: "holdout" (the calibration part) or "cross_fit" (out-of-fold margins)
    mode: str
    ordered: bool


def _rows(ts: TrainingSet, config: Config) -> _Rows:
    part = ts.part if ts.part is not None else split_by_renewal_date(ts.rows, config.split)
    part = pd.Series(np.asarray(part), index=ts.rows.index)
    is_cal = (part == "calibration").to_numpy()
    ordered = "renewal_date" in ts.rows
    mode = config.model.calibration_rows
    if mode == "auto":
        mode = "holdout" if ordered else "cross_fit"
    # the rows the booster learns from: the training part, plus the calibration part when calibrating by
    # cross-fitting (the map is then fitted on out-of-fold margins of those same rows)
    is_train = (part == "train").to_numpy() | (is_cal if mode == "cross_fit" else False)
    return _Rows(is_train=is_train, is_cal=is_cal, is_test=(part == "test").to_numpy(), mode=mode, ordered=ordered)


def _fit_evaluated(ts: TrainingSet, r: _Rows, config: Config, warnings: list[str],
                   chosen: Callable[[str, tuple[float, float]], None] | None = None):
    """The evaluated model: settings chosen by CV inside the training rows, fitted, calibrated; and its CV table.

    ``chosen(start, blend shares)`` is called once CV has chosen them, before the model is fitted."""
    y = np.asarray(ts.label, dtype=int)
    model = _new_model(ts, r.is_train, config)
    X = model.prepare(ts.features)
    feature_names = model.feature_names
    base = _base_params(config)
    constraints, mono_warnings = _monotone(feature_names, config, ts.categorical, ts.directions)
    warnings += mono_warnings
    base["monotone_constraints"] = constraints
    if r.ordered:
        dates = pd.to_datetime(ts.rows["renewal_date"])
        folds = selection_folds(dates[r.is_train], config.model.cv_folds,
                                min_train_share=config.model.cv_min_train_share)
    else:
        # no time order (a flat table without --time): stratified K-fold inside the rows learnt from
        dates = pd.Series(np.arange(len(y)), index=ts.rows.index)
        folds = stratified_folds(y[r.is_train], config.model.cv_folds, seed=config.model.seed)
    # the final map may be isotonic only with enough calibration rows; CV judges candidates by the same maps
    y_cal = (np.concatenate([y[r.is_train][va] for _, va in folds]) if folds else y[:0]) if r.mode == "cross_fit" \
        else y[r.is_cal]
    isotonic_allowed = allows_isotonic(len(y_cal), int(np.bincount(y_cal, minlength=2).min()),
                                       config.model.isotonic_min_rows, config.model.isotonic_min_class_rows)
    directions = {f: int(ts.directions.get(f, 0)) for f in feature_names}
    params, n_trees, cv_table, start_name = select_params(
        X[r.is_train], y[r.is_train], dates[r.is_train], base, config, folds=folds, categorical=ts.categorical,
        allow_isotonic=isotonic_allowed, components=model.components,
        directions=directions)
    if not np.isfinite(cv_table["cv_log_loss"]).any():
        warnings.append("too few churned or retained rows to cross-validate (each fold needs 2 of each): the "
                        f"first candidate was used with {n_trees} trees, untuned. Add history or lower model.cv_folds.")
    params, shares = split_blend_shares(params)
    if chosen is not None:
        chosen(start_name, shares)
    start_fit = start_fitters(config, categorical=ts.categorical, monotone=dict(zip(feature_names, constraints)),
                              components=model.components, directions=directions, blend_shares=shares
                              ).get(start_name)
    model.calibrator = _own_map(start_name, n_trees, model.calibrator, config)
    n_calibration = _fit_rows(model, X, y, r.is_train, ts, params=params, n_trees=n_trees, start_fit=start_fit,
                              config=config, calibration=r.mode, folds=folds, cal_rows=r.is_cal)
    model.params = {**{k: v for k, v in params.items() if k != "monotone_constraints"}, "num_boost_round": n_trees,
                    "linear_start": start_name != "constant", "start": start_name,
                    **({"blend_shares": list(shares)} if start_name == "blend" else {})}
    if start_name == "scorecard":
        warnings.append(f"few renewals to learn weights from ({int((y[r.is_train] == 0).sum())} churned rows): CV "
                        "chose the hand-weighted scorecard as the start"
                        + (f", with {n_trees} trees on top" if n_trees else ", calibrated, with no trees")
                        + ". The ranking stays close to the scorecard's; more renewal history lets it learn more.")
    model.metadata.update({
        "linear_start": start_name != "constant",
        "start": start_name,
        "form": model.form,
        "linear_dropped": dict(model.linear.dropped) if model.linear is not None else {},
        "calibration_rows": r.mode,
        "calibration_method": model.calibrator.method_,
        "calibration_cv_log_loss": dict(model.calibrator.cv_log_loss_),
        "isotonic_allowed": bool(isotonic_allowed),
        "monotone": {f: c for f, c in zip(feature_names, constraints) if c},
        "n_train": int(r.is_train.sum()),
        "n_calibration": n_calibration,
        "n_test": int(r.is_test.sum()),
    })
    if ts.features_config is not None:  # the vocabulary the features were built with: scoring rebuilds them so
        model.metadata["features_config"] = dataclasses.asdict(ts.features_config)
    return model, X, cv_table, n_calibration, directions


def _evaluate_on_test(model: HealthModel, X: pd.DataFrame, ts: TrainingSet, r: _Rows, config: Config,
                      directions: dict[str, int]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The model, the scorecard, the logistic baseline (fitted on the same rows) and the truth on the test slice."""
    y = np.asarray(ts.label, dtype=int)
    Xt, yt = X[r.is_test], y[r.is_test]
    preds = {"healthscore": model.predict_proba(Xt), "healthscore_raw": _sigmoid(model.margin(Xt))}
    scorecard = Scorecard(weights=config.scorecard.weights, components=model.components,
                          directions=directions).fit(X[r.is_train])
    preds["scorecard"] = scorecard.predict_proba(Xt)
    logit = logistic_baseline(X[r.is_train], y[r.is_train], categorical=ts.categorical, seed=config.model.seed)
    preds["logistic"] = logistic_proba(logit, Xt)
    if ts.truth is not None:
        truth = np.asarray(ts.truth, dtype=float)[r.is_test]
        if not np.isnan(truth).any():
            preds["truth"] = truth
    rows_t = ts.rows[r.is_test]
    groups = {g: rows_t[g].astype(str).reset_index(drop=True) for g in ts.group_columns if g in rows_t}
    evaluation = evaluate_predictions(yt, preds, groups)
    reliability = pd.concat(
        [reliability_table(yt, p).assign(model=name) for name, p in preds.items() if name != "healthscore_raw"],
        ignore_index=True,
    )
    test_predictions = rows_t.reset_index(drop=True).assign(label=yt, **{f"p_{k}": v for k, v in preds.items()})
    return evaluation, reliability, test_predictions


def _sizes(ts: TrainingSet, r: _Rows, n_calibration: int, n_features: int) -> dict[str, int]:
    sizes = {
        "rows_train": int(r.is_train.sum()),
        "rows_calibration": n_calibration,
        "rows_test": int(r.is_test.sum()),
        "features": n_features,
    }
    if "contract_id" in ts.rows:
        for name, mask in (("train", r.is_train), ("calibration", r.is_cal), ("test", r.is_test)):
            if name == "calibration" and r.mode == "cross_fit":
                continue  # calibrated on out-of-fold margins of the training rows: no separate contracts
            sizes[f"contracts_{name}"] = int(ts.rows.loc[mask, "contract_id"].nunique())
    return sizes


def _learned_weights(final: HealthModel, X_test: pd.DataFrame, config: Config) -> pd.DataFrame:
    """The registered model's mean |contribution| per component on the test-slice rows, as shares of 100."""
    contrib, _ = final.contributions(X_test)
    comp = final.component_contributions(contrib).abs().mean()
    learned = 100 * comp / comp.sum() if comp.sum() > 0 else comp
    return pd.DataFrame({
        "component": list(COMPONENTS),
        "learned_weight": [float(learned.get(c, 0.0)) for c in COMPONENTS],
        "hand_weight": [float(config.scorecard.weights.get(c, 0.0)) for c in COMPONENTS],
    })


def fit_health_model(ts: TrainingSet, *, config: Config) -> TrainResult:
    """Evaluate the procedure on a time-ordered split, then refit it on every row (the registered model).

    1. *Evaluation* (what the metrics measure): the start, regularisation and number of trees are chosen
       by CV inside the training part, the margin is calibrated on the calibration part (or cross-fitted),
       and everything is judged on the newest test slice against the baselines fitted on the same rows.
    2. *Refit* (what scores accounts, ``model.refit``): the same settings fitted on every row — the newest
       renewals are the most informative — calibrated on time-ordered out-of-fold margins over all rows.
       ``result.model`` is this model; its metadata says which rows it learned from and which rows the
       metrics come from. Without a test slice, or with ``refit: false``, the evaluated model is returned.

    The dataset and flat-table paths share this. BLAS runs on one thread here (``threadpoolctl``): the
    linear starts' many small solves spent most of their time in OpenBLAS's thread hand-offs on this 2-core
    machine (measured on 196k rows: 257 s with the default threads, 146 s with one), and one thread also
    makes the fit independent of the machine's core count.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_health_model(ts, config=config)


def _fit_health_model(ts: TrainingSet, *, config: Config) -> TrainResult:
    warnings: list[str] = []
    r = _rows(ts, config)
    refitting = config.model.refit and r.is_test.any() and len(np.unique(np.asarray(ts.label))) == 2
    # the refit's start fits depend on the chosen start only: made on a thread of their own while the
    # evaluated model is fitted and tested (on 201k rows: its single-threaded fits beside the refit's four)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="healthscore-refit") as side:
        pending = []

        def chosen(start_name: str, shares: tuple[float, float]) -> None:
            if refitting:
                pending.append(side.submit(_refit_starts, ts, start_name, shares, config=config))

        model, X, cv_table, n_calibration, directions = _fit_evaluated(ts, r, config, warnings, chosen=chosen)
        evaluation, reliability, test_predictions = _evaluate_on_test(model, X, ts, r, config, directions)
        prepared = pending[0].result() if pending else None
    sizes = _sizes(ts, r, n_calibration, len(model.feature_names))
    evaluated = {"learned_from": _describe_rows(ts, r.is_train), "metrics_from": _describe_rows(ts, r.is_test)}

    # refit: the same procedure on every row; this model is registered and scores accounts
    final = model
    if refitting:
        final = _refit(ts, model, config=config, prepared=prepared)
        sizes["rows_refit"] = final.metadata["n_train"]
        sizes["rows_refit_calibration"] = final.metadata["n_calibration"]
        if "contract_id" in ts.rows:
            sizes["contracts_refit"] = int(ts.rows["contract_id"].nunique())
        final.metadata["metrics_from"] = evaluated["metrics_from"]
        final.metadata["evaluated_model"] = {"form": model.form, "learned_from": evaluated["learned_from"],
                                             "calibration_method": model.calibrator.method_,
                                             "calibrated_rows": n_calibration}
    else:
        model.metadata.update({"refit": False, "refit_wanted": bool(config.model.refit), **evaluated})
    X_test = final.prepare(ts.features[r.is_test]) if final is not model else X[r.is_test]
    return TrainResult(
        model=final,
        evaluation=evaluation,
        reliability=reliability,
        component_weights=_learned_weights(final, X_test, config),
        cv_results=cv_table,
        test_predictions=test_predictions,
        sizes=sizes,
        params=final.params,
        warnings=warnings,
        evaluated_model=model,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def training_set_from_dataset(ds, *, config: Config, as_of: date | None = None, truth: pd.DataFrame | None = None
                              ) -> TrainingSet:
    """Training rows from the timeline (renewals decided before ``as_of``) with their point-in-time features.

    Key product features not configured are learned here, on the training accounts' events before the latest
    training observation (``vocabulary.resolve_key_features``), and returned in ``features_config``.
    """
    rows = training_rows(ds, lead_times=config.timeline.lead_times_days, decided_before=as_of)
    if rows.empty:
        raise no_training_rows_reason(ds, as_of=as_of)
    fcfg = resolve_key_features(ds, config.features, cutoff=pd.Timestamp(rows["as_of"].max()).date(),
                                accounts=rows["account_id"])
    # the training rows and the batch at the cutoff (drift's reference) in one call: the per-user-day work
    # is done once (each row's features depend on its own account and as_of only)
    batch = _reference_rows(ds, as_of)
    columns = ["account_id", "contract_id", "as_of"]
    both = pd.concat([rows[columns], batch[columns]], ignore_index=True)
    built = build_features(ds, both, config=fcfg)
    feats = built.iloc[:len(rows)].set_axis(rows.index)
    reference = built.iloc[len(rows):].reset_index(drop=True) if len(batch) else None
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
        reference_features=reference,
    )


def _reference_rows(ds, as_of: date | None) -> pd.DataFrame:
    """Every account scored as of the training cutoff (``as_of``, else the data's end): drift's reference."""
    rows = scoring_rows(ds, as_of or data_end(ds))
    return rows[rows["status"] == "scored"]
