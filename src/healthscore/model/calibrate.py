"""Calibration of the raw LightGBM margin into P(renew): a monotone map kept with the model."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression, isotonic_regression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

EPS = 1e-4


@dataclass
class Calibrator:
    """Maps a raw log-odds margin to a calibrated probability, monotone non-decreasing.

    ``method`` is ``sigmoid`` (Platt scaling: a logistic regression on the margin), ``isotonic``, or
    ``identity`` (the booster's own sigmoid, kept when neither map beats it: on a few hundred calibration
    rows a fitted map can add more noise than it removes). Isotonic is only tried with at least
    ``isotonic_min_rows`` calibration rows and ``isotonic_min_class_rows`` of each outcome; below that it
    overfits. The choice is made by cross-validated
    log loss *within* the calibration slice (choosing on in-sample loss would always favour isotonic; the
    identity map has nothing to fit, so its loss is simply measured). Do not calibrate on training rows.

    The isotonic map interpolates linearly between the centres of its blocks instead of stepping: a step
    function gives every account in a block the same probability, and those ties cost ranking (AUC)
    that the margin had. Between the outermost block centres the map is strictly increasing, so order is
    kept; beyond them it is flat at the outer blocks' rates (stretching the outer blocks towards the next
    centre instead would bias the riskiest and safest accounts' probabilities).
    """

    isotonic_min_rows: int = 1000
    #: and with at least this many rows of each outcome (``model.isotonic_min_class_rows``)
    isotonic_min_class_rows: int = 100
    seed: int = 42
    #: a map decided beforehand (``identity``): ``fit`` then only measures the candidates' CV losses
    fixed: str | None = None
    # fitted by ``fit`` (scikit-learn's convention: the constructor takes parameters only)
    method_: str = field(default="", init=False)
    coef_: float = field(default=1.0, init=False)
    intercept_: float = field(default=0.0, init=False)
    #: the interpolated isotonic map: block centres (margins) and their calibrated probabilities
    iso_x_: np.ndarray | None = field(default=None, init=False)
    iso_y_: np.ndarray | None = field(default=None, init=False)
    cv_log_loss_: dict[str, float] = field(default_factory=dict, init=False)

    def fit(self, margin: np.ndarray, y: np.ndarray) -> Calibrator:
        margin = np.asarray(margin, dtype=float)
        y = np.asarray(y, dtype=int)
        methods, n_splits = _candidates(y, self.isotonic_min_rows, self.isotonic_min_class_rows)
        if n_splits < 2:  # one class only: nothing to learn a map from
            self.method_ = self.fixed or "identity"
            return self
        for method, oof in _out_of_fold(methods, margin, y, n_splits=n_splits, seed=self.seed).items():
            self.cv_log_loss_[method] = float(log_loss(y, oof, labels=[0, 1]))
        self.method_ = min(methods, key=lambda m: self.cv_log_loss_[m])  # ties keep the simpler map
        if self.fixed is not None:
            self.method_ = self.fixed
        fitted = _fit(self.method_, margin, y)
        if self.method_ != "isotonic":
            self.coef_, self.intercept_ = fitted.coef_, fitted.intercept_
        else:
            self.iso_x_, self.iso_y_ = fitted.x, fitted.y
        return self

    def predict(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated P(renew) for raw margins, clipped to [1e-4, 1 - 1e-4] so log loss stays finite."""
        if not self.method_:
            raise RuntimeError("this Calibrator is not fitted yet: call fit(margin, y) first")
        margin = np.asarray(margin, dtype=float)
        if self.method_ == "isotonic":
            p = np.interp(margin, self.iso_x_, self.iso_y_)
        else:
            p = 1.0 / (1.0 + np.exp(-(self.coef_ * margin + self.intercept_)))
        return np.clip(p, EPS, 1 - EPS)


def platt(margin: np.ndarray, y: np.ndarray, *, l2: float = 1e-6, max_iter: int = 100) -> tuple[float, float]:
    """Platt scaling: ``(coef, intercept)`` of a logistic regression of ``y`` on the margin alone.

    The same objective as scikit-learn's ``LogisticRegression(C=1 / l2)`` (log loss summed over rows plus
    ``l2 / 2 × coef²``; the intercept is not penalised), solved by Newton's method with step halving: two
    parameters need no general optimiser, and CV fits thousands of these (it is ~100× faster than lbfgs).
    The slope is constrained to be at least 0: a map that reverses the margin's order is not a calibration.
    """
    x = np.asarray(margin, dtype=float)
    t = np.asarray(y, dtype=float)
    rate = float(np.clip(t.mean(), 1e-6, 1 - 1e-6))
    w = np.array([0.0, np.log(rate / (1 - rate))])

    def loss(v: np.ndarray) -> float:
        z = v[0] * x + v[1]
        return float(np.sum(np.logaddexp(0.0, z) - t * z) + 0.5 * l2 * v[0] ** 2)

    current = loss(w)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(w[0] * x + w[1])))
        r = p - t
        g = np.array([r @ x + l2 * w[0], r.sum()])
        h = p * (1 - p)
        H = np.array([[h @ (x * x) + l2, h @ x], [h @ x, h.sum() + 1e-12]])
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        scale = 1.0
        while scale > 1e-8:
            trial = w - scale * step
            value = loss(trial)
            if value <= current:
                break
            scale /= 2
        else:
            break
        w, improvement, current = trial, current - value, value
        if improvement < 1e-12 * max(1.0, abs(current)):
            break
    if w[0] < 0:
        # a calibration map never reverses the model's order (the constraint's optimum is then a slope of 0):
        # measured on a 400-account world, an unconstrained fit on ~100 calibration rows turned AUC 0.76
        # into 0.24; CV then prefers the identity map, which keeps the order
        return 0.0, float(np.log(rate / (1 - rate)))
    return float(w[0]), float(w[1])


class _Sigmoid:
    def __init__(self, margin, y):
        self.coef_, self.intercept_ = platt(margin, y)

    def predict(self, margin):
        return np.clip(1.0 / (1.0 + np.exp(-(self.coef_ * margin + self.intercept_))), EPS, 1 - EPS)


class _Identity:
    coef_, intercept_ = 1.0, 0.0

    def __init__(self, margin, y):
        pass

    def predict(self, margin):
        return np.clip(1.0 / (1.0 + np.exp(-margin)), EPS, 1 - EPS)


class _Isotonic:
    """Isotonic regression, read as a piecewise-linear map through the centre of each block.

    The fit is scikit-learn's ``IsotonicRegression(increasing=True, y_min=0, y_max=1)`` on the rows, done
    with one sort: equal margins are pooled (their outcomes' sum over their count, exact for 0/1 labels),
    and the pooled rates go through the same ``isotonic_regression`` (PAVA). CV fits thousands of these; the
    estimator's own input checks, lexsort and interpolation back onto every row cost three times as much.
    Margins closer than scikit-learn's pooling tolerance (1e-15) but not equal are left to the estimator
    itself, so the map is always the estimator's.
    """

    def __init__(self, margin, y, order=None):
        margin = np.asarray(margin, dtype=float)
        if order is None:  # else: the stable argsort of margin, already known (``_out_of_fold``)
            order = np.argsort(margin, kind="stable")
        m = margin[order]
        gaps = np.diff(m)
        if np.any((gaps > 0) & (gaps < np.finfo(np.float64).resolution)):
            fitted = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0.0, y_max=1.0) \
                .fit_transform(margin, y)
            f = np.asarray(fitted)[order]
        else:
            first = np.flatnonzero(np.r_[True, gaps != 0])  # runs of equal margin, pooled
            counts = np.diff(np.r_[first, len(m)])
            rates = np.add.reduceat(np.asarray(y, dtype=float)[order], first) / counts
            f = np.repeat(isotonic_regression(rates, sample_weight=counts.astype(float), y_min=0.0, y_max=1.0,
                                              increasing=True), counts)
        starts = np.flatnonzero(np.r_[True, np.diff(f) != 0])  # blocks: runs of equal fitted value
        ends = np.r_[starts[1:], len(f)] - 1
        self.x = (m[starts] + m[ends]) / 2.0
        self.y = f[starts]
        if len(self.x) > 1 and np.any(np.diff(self.x) <= 0):  # equal centres (ties in margin): keep the first
            keep = np.r_[True, np.diff(self.x) > 0]
            self.x, self.y = self.x[keep], self.y[keep]

    def predict(self, margin):
        return np.clip(np.interp(margin, self.x, self.y), EPS, 1 - EPS)


def _fit(method: str, margin: np.ndarray, y: np.ndarray, order: np.ndarray | None = None):
    if method == "isotonic":
        return _Isotonic(margin, y, order)
    return {"identity": _Identity, "sigmoid": _Sigmoid}[method](margin, y)


def _sub_order(order: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """The stable argsort of ``margin[rows]`` from ``order``, the stable argsort of ``margin`` (``rows``
    increasing): the members of ``rows`` in ``order``'s sequence, as positions within ``rows``."""
    position = np.full(n, -1)
    position[rows] = np.arange(len(rows))
    picked = position[order]
    return picked[picked >= 0]


def _candidates(y: np.ndarray, isotonic_min_rows: float, isotonic_min_class_rows: float = 0
                ) -> tuple[list[str], int]:
    """The maps worth trying on these labels (isotonic only with enough rows, and enough of each outcome)
    and the CV folds for them."""
    rarer = int(np.bincount(y, minlength=2).min())
    methods = ["identity", "sigmoid"] + (["isotonic"] if allows_isotonic(len(y), rarer, isotonic_min_rows,
                                                                          isotonic_min_class_rows) else [])
    return methods, int(min(5, rarer))


def allows_isotonic(rows: int, rarer_class_rows: int, min_rows: float, min_class_rows: float) -> bool:
    """Whether this many calibration rows (and rows of the rarer outcome) may fit an isotonic map."""
    return rows >= min_rows and rarer_class_rows >= min_class_rows


#: the folds of the labels seen last (``_splits``); CV asks again for every candidate on one fold's rows
_SPLITS: dict[tuple, list[tuple[np.ndarray, np.ndarray]]] = {}
_SPLITS_KEPT = 4
_SPLITS_LOCK = threading.Lock()  # CV calibrates the folds' candidates in threads (``train.parallel_map``)


def _splits(y: np.ndarray, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``StratifiedKFold(n_splits, shuffle=True, random_state=seed)``'s folds of ``y``, computed once per labels.

    The folds depend on the labels, their number and the seed only, and model selection calibrates every
    candidate's margins on the same validation rows: 188 splits of one training were 0.8 s of it (200k
    rows). The arrays are shared: callers only index with them.
    """
    key = (hashlib.sha256(np.ascontiguousarray(y).tobytes()).digest(), str(y.dtype), len(y), n_splits, seed)
    with _SPLITS_LOCK:
        found = _SPLITS.get(key)
    if found is None:
        found = list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(y, y))
        for arrays in found:
            for a in arrays:
                a.setflags(write=False)
        with _SPLITS_LOCK:
            if len(_SPLITS) >= _SPLITS_KEPT:
                _SPLITS.pop(next(iter(_SPLITS)))
            _SPLITS[key] = found
    return found


def _out_of_fold(methods: list[str], margin: np.ndarray, y: np.ndarray, *, n_splits: int, seed: int
                 ) -> dict[str, np.ndarray]:
    """Each map's out-of-fold calibrated probabilities (stratified, seeded folds shared by every map)."""
    splits = _splits(y, n_splits, seed)
    # one sort of every margin serves each split's isotonic fit (the splits' training rows are increasing)
    orders = [None] * len(splits)
    if "isotonic" in methods:
        every = np.argsort(margin, kind="stable")
        orders = [_sub_order(every, tr, len(margin)) for tr, _ in splits]
    out = {}
    for method in methods:
        oof = np.empty(len(y))
        for (tr, va), order in zip(splits, orders):
            oof[va] = _fit(method, margin[tr], y[tr], order).predict(margin[va])
        out[method] = oof
    return out


def calibrated_losses(margin: np.ndarray, y: np.ndarray, *, seed: int = 42, isotonic_min_rows: int = 200
                      ) -> np.ndarray:
    """Per-row log loss after the best calibration map for these margins, by cross-validation.

    Used to compare candidate models in CV: the model is calibrated afterwards, so a candidate whose margin
    ranks well but has the wrong shape (a logistic regression on data with another link) is judged by
    what calibration makes of it, not by its raw sigmoid. The map with the lowest mean wins; its per-row
    losses are returned so that candidates can be compared row by row (paired standard errors).
    """
    margin = np.asarray(margin, dtype=float)
    y = np.asarray(y, dtype=int)
    methods, n_splits = _candidates(y, isotonic_min_rows)
    if n_splits < 2:
        return np.full(len(y), np.nan)
    best = None
    for oof in _out_of_fold(methods, margin, y, n_splits=n_splits, seed=seed).values():
        rows = -(y * np.log(oof) + (1 - y) * np.log(1 - oof))
        if best is None or rows.mean() < best.mean():
            best = rows
    return best
