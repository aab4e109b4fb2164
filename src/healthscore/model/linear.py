"""A linear start for the booster: a regularised logistic regression with exact per-feature contributions.

Why. Some churn data are close to logit-linear (the PySurvival table is, by construction). Trees
approximate a straight line with steps and lose a little ranking there; a logistic regression does not.
So the booster may start from this model's log-odds (LightGBM's ``init_score``) instead of a constant and
learn only what the line misses — and cross-validation decides whether to use the start at all and how
many trees to add on top of it, zero included (then the model *is* the logistic regression).

The regression is the project's logistic baseline (``baselines.logistic_baseline``: median imputation
with missing-value indicators, scaling, one-hot categories, C = 1), fitted on the same rows as the booster.
Two things differ from the bare baseline:

- Monotone constraints hold here too: a feature whose coefficient has the wrong sign for its configured
  direction is left out of the linear part (and the fit repeated); the trees may still use it, under
  their own constraint. A sum of two functions non-decreasing in a feature is non-decreasing in it.
- At scoring time numeric values are clipped to the range seen in training, so one absurd value cannot
  move the log-odds without bound (a tree cannot either). Training rows are inside that range, so the fit
  is unchanged.

Explanations stay exact. For a linear model ``m(x) = b + Σ_k w_k z_k(x)`` the SHAP value of feature ``f``
(with the training rows as background, features treated as independent) is
``φ_f = Σ_{k from f} w_k (z_k(x) − mean z_k)``: its scaled value, its missing-value indicator and its
one-hot columns. ``mean m + Σ_f φ_f = m(x)`` holds exactly, so the booster's TreeSHAP values (which add
up to the trees' part of the margin) and these add up to the whole margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from healthscore.model.baselines import (
    Scorecard,
    logistic_baseline,
    logistic_preprocessor,
    logistic_regression,
    regression_input,
)
from healthscore.model.calibrate import platt


@dataclass
class LinearStart:
    """The fitted linear part: use ``margin`` for log-odds and ``contributions`` for exact per-feature SHAP."""

    feature_names: list[str]
    categorical: list[str]
    used: list[str] = field(default_factory=list)
    #: features left out of the linear part, with the reason (wrong sign for a monotone constraint)
    dropped: dict[str, str] = field(default_factory=dict)
    lower: dict[str, float] = field(default_factory=dict)
    upper: dict[str, float] = field(default_factory=dict)
    pipeline: object = None
    source: list[str] = field(default_factory=list)  # the feature each design column comes from
    coef: np.ndarray | None = None
    intercept: float = 0.0
    design_mean: np.ndarray | None = None

    @classmethod
    def fit(cls, X: pd.DataFrame, y: np.ndarray, *, categorical: list[str], monotone: dict[str, int],
            seed: int = 42) -> LinearStart:
        """Fit on the model matrix (as ``HealthModel.prepare`` returns it), honouring ``monotone``."""
        names = list(X.columns)
        cat = [c for c in categorical if c in names]
        base = cls(feature_names=names, categorical=cat)
        for name in names:
            if name in cat:
                continue
            values = pd.to_numeric(X[name], errors="coerce")
            if values.notna().any():
                base.lower[name], base.upper[name] = float(values.min()), float(values.max())
        inputs = base._inputs(X)
        used = list(names)
        # the inputs are prepared once for every feature; each round fits the regression on the columns of
        # the features still in (the same design a fit on those features alone would build)
        pre = logistic_preprocessor(names, cat)
        full = pre.fit_transform(regression_input(inputs, cat))  # fit() alone would transform and discard
        every = _design_sources(Pipeline([("pre", pre)]), names, cat)
        design = None if pre.sparse_output_ else np.asarray(full, dtype=float)
        onehot = {k for k, f in enumerate(every) if f in cat}
        ones = {k: int(np.count_nonzero(design[:, k])) for k in onehot} if design is not None else {}
        lr, pipeline, fitted = None, None, None
        for _ in range(len(names) + 1):
            keep = set(used)
            columns = [k for k, f in enumerate(every) if f in keep]
            if design is None or _sparse_design(columns, onehot, ones, len(y)):
                # a design the transformer would hold sparse: fitted as the baseline fits it (sparse), so the
                # coefficients are the baseline's exactly
                pipeline = logistic_baseline(inputs[used], y, categorical=[c for c in cat if c in used], seed=seed)
                lr, source = pipeline.named_steps["lr"], _design_sources(pipeline, used, cat)
            else:
                pipeline, source, fitted = None, [every[k] for k in columns], columns
                lr = logistic_regression(seed).fit(design[:, columns], y)
            coef = lr.coef_[0]
            wrong = []
            for name in used:
                direction = int(monotone.get(name, 0))
                if direction == 0 or name in cat:
                    continue
                w = coef[source.index(name)]  # the scaled value's column comes first for a numeric feature
                if w * direction < 0:
                    wrong.append(name)
            if not wrong:
                break
            for name in wrong:
                base.dropped[name] = f"coefficient sign disagrees with monotone direction {monotone[name]:+d}"
            used = [f for f in used if f not in wrong]
            if not used:
                break
        if not used:  # nothing left: a constant start (the base rate), which CV then compares as usual
            base.used, base.source, base.coef = [], [], np.zeros(0)
            rate = float(np.clip(np.mean(y), 1e-6, 1 - 1e-6))
            base.intercept, base.design_mean = float(np.log(rate / (1 - rate))), np.zeros(0)
            return base
        # the mean of the design the regression was fitted on: the columns of the rows' own design (the same
        # values the refitted pipeline gives, as it is fitted column by column; 0.76 s of a 4 s fit on 201k rows
        # to transform them again)
        design_mean = design[:, fitted].mean(axis=0) if pipeline is None else None
        if pipeline is None:
            used_cat = [c for c in cat if c in used]
            pipeline = Pipeline([("pre", logistic_preprocessor(used, used_cat).fit(regression_input(inputs[used],
                                                                                                   used_cat))),
                                 ("lr", lr)])
            pipeline.categorical_ = used_cat
        base.used, base.pipeline, base.source = used, pipeline, source
        base.coef = np.asarray(coef, dtype=float)
        base.intercept = float(pipeline.named_steps["lr"].intercept_[0])
        base.design_mean = base._design(X).mean(axis=0) if design_mean is None else design_mean
        return base

    def _inputs(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model matrix as the regression reads it: numeric values clipped to the training range."""
        frame = X.copy()
        for name in [n for n in self.lower if n in frame.columns]:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").clip(self.lower[name], self.upper[name])
        return frame

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        inputs = self._inputs(X[self.used])
        frame = regression_input(inputs, [c for c in self.categorical if c in self.used])
        design = self.pipeline.named_steps["pre"].transform(frame)
        return np.asarray(design.toarray() if hasattr(design, "toarray") else design, dtype=float)

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of renewal from the linear part alone."""
        if not self.used:
            return np.full(len(X), self.intercept)
        return self.intercept + self._design(X) @ self.coef

    @property
    def expected_margin(self) -> float:
        """The mean linear log-odds over the training rows (the background of ``contributions``)."""
        if not self.used:
            return self.intercept
        return float(self.intercept + self.design_mean @ self.coef)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Exact SHAP values in log-odds, one column per model feature (0 for features not in the linear part)."""
        out = pd.DataFrame(0.0, index=X.index, columns=self.feature_names)
        if not self.used:
            return out
        parts = (self._design(X) - self.design_mean) * self.coef
        for name in self.used:
            cols = [k for k, s in enumerate(self.source) if s == name]
            out[name] = parts[:, cols].sum(axis=1)
        return out


def _sparse_design(columns: list[int], onehot: set[int], ones: dict[int, int], n: int,
                   threshold: float = 0.3) -> bool:
    """Whether the baseline's ColumnTransformer would return these design columns sparse: with a one-hot
    block, when stored values / cells < ``sparse_threshold`` (dense blocks count every cell)."""
    hot = [k for k in columns if k in onehot]
    if not hot or not columns:
        return False
    stored = n * (len(columns) - len(hot)) + sum(ones[k] for k in hot)
    return stored / (n * len(columns)) < threshold


def _design_sources(pipeline, used: list[str], categorical: list[str]) -> list[str]:
    """The feature each design column of ``logistic_baseline``'s ColumnTransformer comes from, in order."""
    pre = pipeline.named_steps["pre"]
    numeric = [c for c in used if c not in categorical]
    sources: list[str] = []
    for name, transformer, columns in pre.transformers_:
        if len(columns) == 0 or transformer == "drop":  # an empty group is not fitted and adds no column
            continue
        if name == "num":
            imputer = transformer.named_steps["simpleimputer"]
            sources += list(columns)
            if imputer.indicator_ is not None:
                sources += [columns[i] for i in imputer.indicator_.features_]
        elif name == "cat":
            for column, cats in zip(columns, transformer.categories_):
                sources += [column] * len(cats)
    width = len(pre.get_feature_names_out())
    if len(sources) != width or (numeric and sources[: len(numeric)] != numeric):
        raise RuntimeError(f"linear design has {width} columns but {len(sources)} were traced to features")
    return sources


@dataclass
class ScorecardStart:
    """The hand-weighted scorecard as a start: log-odds ``a + b × score``, a one-input logistic fit.

    Why. With few renewals the data cannot tell many weights apart, and the hand weights a CS team would
    use carry real knowledge (more usage, fewer urgent tickets). This start keeps the scorecard's ranking
    and learns only its scale and offset; CV compares it with the constant and the logistic starts and may
    add trees on top (``model.scorecard_start``). The score is ``Σ_f k_f × percentile_f(x)`` exactly
    (``Scorecard.feature_weights``), so the SHAP value of feature ``f`` is ``b × k_f × (pct_f(x) − mean
    pct_f)`` with the training rows as background: exact, and adding up to the margin.
    """

    feature_names: list[str]
    scorecard: object = None  # baselines.Scorecard, fitted
    a: float = 0.0
    b: float = 0.0
    weights: dict[str, float] = field(default_factory=dict)
    mean_pct: dict[str, float] = field(default_factory=dict)
    #: the linear start's fields that reports read; a scorecard start drops nothing
    dropped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fit(cls, X: pd.DataFrame, y: np.ndarray, *, weights: dict[str, float], components: dict[str, str],
            directions: dict[str, int]) -> ScorecardStart:
        """Fit the percentiles on ``X`` and the scale ``b`` (never negative) and offset ``a`` on ``y``."""
        card = Scorecard(weights=weights, components=components, directions=directions).fit(X)
        base = cls(feature_names=list(X.columns), scorecard=card, weights=card.feature_weights())
        y = np.asarray(y, dtype=int)
        score = card.predict_score(X) / 100.0
        if base.weights and len(np.unique(y)) == 2 and np.std(score) > 0:
            base.b, base.a = platt(score, y, l2=0.01)
        if base.b <= 0:  # the hand weights rank the wrong way here: a constant start (CV will judge it)
            rate = float(np.clip(np.mean(y), 1e-6, 1 - 1e-6))
            base.a, base.b, base.weights = float(np.log(rate / (1 - rate))), 0.0, {}
        pct = card.feature_percentiles(X)
        base.mean_pct = {f: float(pct[f].mean()) for f in base.weights}
        return base

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of renewal from the scorecard start alone: ``a + b × Σ_f k_f × percentile_f / 100``."""
        if not self.weights:
            return np.full(len(X), self.a)
        pct = self.scorecard.feature_percentiles(X)
        return self.a + self.b * sum(k * pct[f].to_numpy() for f, k in self.weights.items()) / 100.0

    @property
    def used(self) -> list[str]:
        return list(self.weights)

    @property
    def expected_margin(self) -> float:
        return float(self.a + self.b * sum(k * self.mean_pct[f] for f, k in self.weights.items()) / 100.0)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Exact SHAP values in log-odds, one column per model feature (0 for features the scorecard ignores)."""
        out = pd.DataFrame(0.0, index=X.index, columns=self.feature_names)
        if not self.weights:
            return out
        pct = self.scorecard.feature_percentiles(X)
        for f, k in self.weights.items():
            out[f] = self.b * k * (pct[f].to_numpy() - self.mean_pct[f]) / 100.0
        return out


#: L2 penalties a learned scorecard chooses between (by inner stratified CV log loss; the loss is summed
#: over rows, so the same penalty regularises less as renewals accumulate)
LEARNED_L2 = (1.0, 10.0, 100.0)


@dataclass
class LearnedScorecardStart(ScorecardStart):
    """A scorecard whose weights are learned from renewals: log-odds ``a + Σ_f w_f × percentile_f / 100``.

    Why. The scorecard's inputs are robust — each directed feature as its percentile among the training
    rows, flipped when more is worse, missing at the neutral 50 — so a heavy tail or a count's scale cannot
    dominate, and a weight means the same on any data. The hand-weighted scorecard fixes the weights by
    component; this start learns one weight per feature from the renewal outcomes (a penalised logistic
    regression on the percentiles), each constrained to be at least 0, so more of a healthy signal never
    lowers the score (the catalogue's directions, as the trees' monotone constraints). Every directed
    numeric feature takes part, whatever its component's hand weight.

    Measured and dropped (``benchmarks/model_quality.py`` worlds): adding missing-value indicators, ranks of
    the undirected features and category indicators (free signs) made CV prefer it less often on the b2b
    world and did not close the subscription world's gap to the line.

    The L2 penalty is chosen from ``LEARNED_L2`` by a 3-fold stratified CV inside the rows it is fitted on.
    It is the parent's model with ``b = 1`` and the learned weights for the hand ones, so margin and the
    exact SHAP values (``φ_f = w_f (pct_f(x) − mean pct_f) / 100``) are the parent's. CV compares it with
    the other starts (``model.learned_scorecard_start``).
    """

    l2: float = 0.0

    @classmethod
    def fit(cls, X: pd.DataFrame, y: np.ndarray, *, components: dict[str, str], directions: dict[str, int],
            seed: int = 42) -> LearnedScorecardStart:
        every = {c: 1.0 for c in set(components.values())}
        card = Scorecard(weights=every, components=components, directions=directions).fit(X)
        base = cls(feature_names=list(X.columns), scorecard=card, b=1.0)
        y = np.asarray(y, dtype=int)
        rate = float(np.clip(np.mean(y), 1e-6, 1 - 1e-6))
        base.a = float(np.log(rate / (1 - rate)))
        inputs = list(card.sorted_)
        if inputs and len(np.unique(y)) == 2:
            pct = card.feature_percentiles(X)
            Z = pct[inputs].to_numpy(dtype=float) / 100.0
            base.l2 = _choose_l2(Z, y, seed=seed)
            w = nonnegative_logit(Z, y, base.l2)
            base.a = float(w[0])
            base.weights = {f: float(k) for f, k in zip(inputs, w[1:]) if k > 1e-9}
            base.mean_pct = {f: float(pct[f].mean()) for f in base.weights}
        return base


def nonnegative_logit(Z: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """``[intercept, w...]`` minimising the summed log loss + ``l2/2 ‖w‖²`` with every ``w ≥ 0`` (L-BFGS-B)."""
    from scipy.optimize import minimize

    t = np.asarray(y, dtype=float)
    centre = Z.mean(axis=0)
    Zc = Z - centre  # centred for conditioning; the intercept absorbs the shift

    def objective(v: np.ndarray) -> tuple[float, np.ndarray]:
        m = v[0] + Zc @ v[1:]
        r = 1.0 / (1.0 + np.exp(-m)) - t
        value = float(np.sum(np.logaddexp(0.0, m) - t * m) + 0.5 * l2 * v[1:] @ v[1:])
        return value, np.concatenate([[r.sum()], Zc.T @ r + l2 * v[1:]])

    rate = float(np.clip(t.mean(), 1e-6, 1 - 1e-6))
    v0 = np.concatenate([[np.log(rate / (1 - rate))], np.zeros(Z.shape[1])])
    res = minimize(objective, v0, jac=True, method="L-BFGS-B", bounds=[(None, None)] + [(0.0, None)] * Z.shape[1],
                   options={"maxiter": 1000})
    w = np.asarray(res.x, dtype=float)
    w[1:] = np.maximum(w[1:], 0.0)
    return np.concatenate([[w[0] - centre @ w[1:]], w[1:]])


#: the inner CV that chooses the penalty reads at most this many rows (a stratified sample): a penalty's
#: choice needs far fewer rows than the fit, and on 200k rows the full inner CV cost ~25 s per fit
L2_CHOICE_ROWS = 20_000


def _choose_l2(Z: np.ndarray, y: np.ndarray, *, seed: int, folds: int = 3) -> float:
    """The penalty from ``LEARNED_L2`` with the lowest stratified-CV log loss (the largest when too few rows).

    Above ``L2_CHOICE_ROWS`` rows the CV runs on a stratified sample of that size, each penalty scaled by the
    sample's share of the rows (the loss is summed, so that is the same penalty per row).
    """
    counts = np.bincount(y, minlength=2)
    if counts.min() < 2 * folds:
        return LEARNED_L2[-1]
    rng = np.random.default_rng(seed)
    scale = 1.0
    if len(y) > L2_CHOICE_ROWS:
        per_class = [max(2 * folds, round(c * L2_CHOICE_ROWS / len(y))) for c in counts]
        keep = np.concatenate([rng.choice(np.flatnonzero(y == label), n, replace=False)
                               for label, n in enumerate(per_class)])
        keep.sort()
        scale = len(keep) / len(y)
        Z, y = Z[keep], y[keep]
    fold = np.empty(len(y), dtype=int)
    for label in (0, 1):
        idx = np.flatnonzero(y == label)
        fold[rng.permutation(idx)] = np.arange(len(idx)) % folds
    losses = []
    for l2 in LEARNED_L2:
        total = 0.0
        for k in range(folds):
            tr, va = fold != k, fold == k
            w = nonnegative_logit(Z[tr], y[tr], l2 * scale * tr.mean())
            m = w[0] + Z[va] @ w[1:]
            total += float(np.sum(np.logaddexp(0.0, m) - y[va] * m))
        losses.append(total)
    return LEARNED_L2[int(np.argmin(losses))]


@dataclass
class BlendStart:
    """The average of two starts' log-odds (the logistic regression's and the learned scorecard's).

    Why. The two read the same features with different biases — the line on raw values, the scorecard on
    percentiles — and where CV cannot tell them apart, picking one is a coin flip that the next renewals
    may punish; their average is rarely worse than either and often better (model averaging). SHAP values
    stay exact: the average of two exact, additive explanations, adding up to the average margin.
    """

    feature_names: list[str]
    parts: list = field(default_factory=list)
    shares: list[float] = field(default_factory=list)

    @property
    def dropped(self) -> dict[str, str]:
        return {k: v for part in self.parts for k, v in getattr(part, "dropped", {}).items()}

    @property
    def used(self) -> list[str]:
        seen = {f for part in self.parts for f in part.used}
        return [f for f in self.feature_names if f in seen]

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        return sum(w * part.margin(X) for w, part in zip(self.shares, self.parts))

    @property
    def expected_margin(self) -> float:
        return float(sum(w * part.expected_margin for w, part in zip(self.shares, self.parts)))

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(0.0, index=X.index, columns=self.feature_names)
        for w, part in zip(self.shares, self.parts):
            out = out + w * part.contributions(X)[self.feature_names]
        return out
