"""Contributions by component, in score points that add up to the score.

Method. ``HealthModel.contributions`` gives exact SHAP values φ_f in log-odds, with
``E + Σ φ_f = margin`` for every row (E is the expected margin): LightGBM's TreeSHAP (``pred_contrib``)
for the trees, plus ``w (z − mean z)`` per feature for the booster's linear start when it has one. Calibration then maps the margin to a
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

import functools
import math
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from healthscore.config import COMPONENTS

CONTRIB_COLUMNS = tuple(f"contrib_{c}" for c in COMPONENTS)


def points_from_log_odds(component_log_odds: pd.DataFrame, probability: np.ndarray, baseline: float) -> pd.DataFrame:
    """Component contributions in score points such that ``baseline + Σ contrib = 100 · probability``."""
    phi = component_log_odds.reindex(columns=list(COMPONENTS), fill_value=0.0).to_numpy(dtype=float)
    points = spread_points(phi, probability, baseline)
    return pd.DataFrame(points, columns=list(CONTRIB_COLUMNS), index=component_log_odds.index)


def spread_points(phi: np.ndarray, probability: np.ndarray, baseline: float) -> np.ndarray:
    """The one rule for points: share ``100 · p − baseline`` in proportion to the log-odds columns of ``phi``.

    Works for per-feature or per-component columns alike (grouping the feature points by component gives
    the component points). Rows whose log-odds sum to ~0 share the (then ~0) difference equally.
    """
    total = 100.0 * np.asarray(probability, dtype=float) - baseline
    s = phi.sum(axis=1)
    safe = np.abs(s) >= 1e-9
    share = np.where(safe[:, None], phi / np.where(safe, s, 1.0)[:, None], 1.0 / phi.shape[1])
    return share * total[:, None]


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


# --------------------------------------------------------------------------------------------------------
# Drivers: the strongest reasons, as sentences worded from the feature catalogue
# --------------------------------------------------------------------------------------------------------
#
# Which reasons. ``driver_1..3`` are the three most negative feature contributions (most negative first):
# a reviewer asks first what holds an account back. When fewer than three features lower the score, the
# remaining slots take the strongest positive ones (largest first), so a healthy account still says why
# it is healthy. ``positive_driver`` is always the strongest positive feature (it may repeat a driver of
# such an account). Contributions smaller than ``min_points`` (default 0.05, which would print as
# "0.0 points") are never a reason; ties keep the model's feature order.
#
# Wording. "<label>: <value> (<segment|overall> median <reference>) lowers|raises the score by <p> points"
# (whole points from 1 up, one decimal below).
# The label, unit and window come from ``healthscore.features.FEATURES`` (FeatureSpec; family columns such
# as "uses_export_pdf_share_30d" from their family's template: "Share of active users using export_pdf
# (30 days): 40% …"); the reference is
# the median of the training rows of the account's segment (``model.references[feature][segment]``),
# else of all training rows. A missing value reads "no data"; a categorical one has no reference.

DRIVER_COLUMNS = ("driver_1", "driver_2", "driver_3", "positive_driver")

#: words kept upper case when a column name is turned into a label
_ACRONYMS = {"nps": "NPS", "csat": "CSAT", "ebr": "EBR", "arr": "ARR", "api": "API", "csm": "CSM", "qbr": "QBR", "avg": "average", "dau": "DAU", "mau": "MAU"}
#: unit vocabulary of FeatureSpec.unit; "share …" units (share of seats, share of key features) are 0–1 shares
_SHARE_UNITS = {"share", "ratio", "fraction", "proportion", "0-1"}
_PERCENT_UNITS = {"%", "percent", "pct", "percentage"}
_CHANGE_UNITS = {"relative change"}
#: a difference of two 0–1 shares (utilisation minus the segment's curve)
_SHARE_DIFFERENCE_UNITS = {"percentage points", "share difference"}
_CURRENCY_UNITS = {"currency", "money", "amount"}
_FLAG_UNITS = {"flag", "bool", "boolean", "yes/no"}
_BARE_UNITS = {"", "score", "index", "value", "number", "category"}


class FeatureCatalogue(dict):
    """The registered FeatureSpecs by name; ``get``/``[]`` also know family columns (``uses_<slug>_share_30d``),
    whose names depend on a model's key product features, by reading the name."""

    def __missing__(self, name: str):
        from healthscore.features import feature_spec

        spec = feature_spec(str(name))
        if spec is None:
            raise KeyError(name)
        return spec

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name) -> bool:
        return self.get(name) is not None


def feature_catalogue() -> dict:
    """The registered FeatureSpecs by name (empty while the feature package is not importable)."""
    try:
        from healthscore.features import FEATURES
    except ImportError:  # wording falls back to humanised column names; numbers are unaffected
        return {}
    return FeatureCatalogue({spec.name: spec for spec in FEATURES})


def feature_label(name: str, spec=None) -> str:
    """A short human label: the spec's ``label`` if it has one, else the column name humanised with its window.

    The window comes from the name's ``_<N>d`` suffix, not ``spec.window_days``: the latter is how far back
    the builder reads (a 30-day trend reads 60 days, a "days since" feature is capped at 365), not what the
    number means.
    """
    label = getattr(spec, "label", None)
    if isinstance(label, str) and label.strip():
        return label.strip()
    base, window = name, None
    match = re.fullmatch(r"(.+?)_(\d+)d", name)
    if match:
        base, window = match.group(1), int(match.group(2))
    words = [_ACRONYMS.get(w, w) for w in base.split("_") if w]
    text = " ".join(words)
    text = text[:1].upper() + text[1:]
    return f"{text} ({window} days)" if window else text


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{value:,.0f}"
    digits = 2 if abs(value) < 1 else 1
    return f"{value:,.{digits}f}".rstrip("0").rstrip(".")


def format_value(value, unit: str = "", *, kind: str = "numeric") -> str:
    """A feature value in its unit, for people: "34%", "+12%", "3 tickets", "1 day", "8/10", "12,500", "no data".

    Units (``FeatureSpec.unit``): shares and ratios (0–1) print as percentages, "relative change" as a signed
    percentage, "percentage points" (a difference of shares) as signed points, "score A-B" as value/B, "currency [per …]" with thousands separators, "flag" as yes/no,
    anything else as "<number> <unit>" (singular for exactly 1: "1 ticket", "1 event per user").
    """
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "no data"
    if kind == "categorical" or isinstance(value, str):
        return str(value)
    return _number_writer(unit or "")(float(value))


@functools.lru_cache(maxsize=1024)
def _number_writer(unit: str) -> Callable[[float], str]:
    """How a number in ``unit`` is written; the unit is read once, not once per value (drivers write millions)."""
    u = " ".join(unit.split())
    low = u.lower()
    if low in _SHARE_UNITS or low.startswith("share"):
        return lambda v: f"{_number(round(100 * v, 1 if abs(v) < 0.1 else 0))}%"
    if low in _PERCENT_UNITS:
        return lambda v: f"{_number(round(v, 1 if abs(v) < 10 else 0))}%"
    if low in _CHANGE_UNITS or low in _SHARE_DIFFERENCE_UNITS:
        suffix = "%" if low in _CHANGE_UNITS else " percentage points"

        def signed(v: float) -> str:
            pct = round(100 * v, 1 if abs(v) < 0.1 else 0)
            return f"{'+' if pct > 0 else ''}{_number(pct)}{suffix}"
        return signed
    if low in _FLAG_UNITS:
        return lambda v: "yes" if v else "no"
    scale = re.fullmatch(r"score (-?\d+(?:\.\d+)?)\s*[-–]\s*(\d+(?:\.\d+)?)", low)
    if scale:
        top = scale.group(2)
        return lambda v: f"{_number(round(v, 1))}/{top}"
    if low.split(" ")[0] in _CURRENCY_UNITS:
        rest = u.split(" ", 1)[1] if " " in u else ""
        tail = f" {rest}" if rest else ""
        return lambda v: f"{v:,.0f}{tail}"
    if low in _BARE_UNITS:
        return _number
    words = u.split(" ")
    plural = " ".join(words)
    singular = plural
    if words[0].endswith("s") and not words[0].endswith("ss"):
        singular = " ".join([words[0][:-1], *words[1:]])  # "1 ticket", "1 day", "1 event per user"
    return lambda v: f"{_number(v)} {singular if v == 1 else plural}"


def _reference(model, feature: str, segment) -> tuple[float | None, str]:
    refs = (getattr(model, "references", None) or {}).get(feature) or {}
    if segment is not None and str(segment) in refs:
        return refs[str(segment)], "segment median"
    if "all" in refs:
        return refs["all"], "overall median"
    return None, ""


def driver_sentence(label: str, value: str, points: float, reference: str | None = None,
                    reference_kind: str = "") -> str:
    """One reason: "Seat utilisation: 34% (segment median 71%) lowers the score by 12 points".

    Points are whole below −1 and above 1 (a sentence, not a ledger: the report's tables carry the
    decimals that add up), one decimal under 1 so small reasons don't read "0 points".
    """
    ref = f" ({reference_kind} {reference})" if reference is not None else ""
    return f"{label}: {value}{ref}{_points_phrase(points, round(abs(points), 1) >= 1)}"


def _points_phrase(points: float, whole: bool) -> str:
    """" lowers the score by 12 points": whole points when ``whole`` (|points| rounds to 1 or more)."""
    amount = abs(points)
    text = f"{amount:.0f}" if whole else f"{amount:.1f}"
    unit = "point" if text in ("1", "1.0") else "points"
    return f" {'lowers' if points < 0 else 'raises'} the score by {text} {unit}"


def driver_sentences(
    model,
    X: pd.DataFrame,
    fpoints: pd.DataFrame,
    *,
    specs: dict | None = None,
    segments: pd.Series | None = None,
    min_points: float = 0.05,
) -> pd.DataFrame:
    """``driver_1..3`` (strongest negative reasons first) and ``positive_driver`` as sentences, one row per row of X.

    ``fpoints`` holds per-feature points with X's index and columns. ``segments`` chooses each row's
    reference median; by default the model matrix's ``segment`` column when it has one, else the overall
    median. ``specs`` (name → FeatureSpec) defaults to the feature catalogue.
    """
    specs = feature_catalogue() if specs is None else specs
    if segments is None and "segment" in X.columns:
        segments = X["segment"]
    n = len(X)
    seg = (segments.astype("object").to_numpy() if segments is not None else np.full(n, None, dtype=object))
    names = list(fpoints.columns)
    pts = fpoints.to_numpy(dtype=float)
    out = {c: np.full(n, None, dtype=object) for c in DRIVER_COLUMNS}
    if n and names:
        neg, pos = _strongest(pts, min_points)
        n_neg = (neg >= 0).sum(axis=1)
        # slot k is the k-th negative while there are any, then the positives from the largest
        rows = np.arange(n)
        slots = [np.where(k < n_neg, neg[:, k], pos[rows, np.clip(k - n_neg, 0, 2)]) for k in range(3)]
        # a positive_driver already among the slots (fewer than 3 negatives) reuses that slot's sentence
        own_positive = (n_neg == 3) & (pos[:, 0] >= 0)
        cell_rows = np.concatenate([rows[slot >= 0] for slot in slots] + [rows[own_positive]])
        cell_cols = np.concatenate([slot[slot >= 0] for slot in slots] + [pos[own_positive, 0]])
        text = _sentences(model, X, names, specs, seg, pts, cell_rows, cell_cols)
        at = 0
        for k, slot in enumerate(slots):
            filled = slot >= 0
            out[f"driver_{k + 1}"][filled] = text[at:at + filled.sum()]
            at += filled.sum()
            reused = ~own_positive & (pos[:, 0] >= 0) & (n_neg == k)
            out["positive_driver"][reused] = out[f"driver_{k + 1}"][reused]
        out["positive_driver"][own_positive] = text[at:]
    return pd.DataFrame({c: pd.Series(v, index=X.index, dtype="object") for c, v in out.items()})


def _strongest(pts: np.ndarray, min_points: float) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of each row's 3 most negative and 3 most positive points (−1 where too small).

    Repeated argmin/argmax rather than a sort: both return the first of equal values, so ties keep the
    feature order, as a stable sort would, in 6 passes over the matrix instead of two full sorts.
    """
    n, k = pts.shape
    rows = np.arange(n)
    missing = np.isnan(pts)
    picked = []
    for negative in (True, False):
        fill = np.inf if negative else -np.inf  # NaN is never a reason and sorts last, like argsort
        work = np.where(missing, fill, pts)
        idx = np.full((n, 3), -1, dtype=np.int64)
        for r in range(min(3, k)):
            j = work.argmin(axis=1) if negative else work.argmax(axis=1)
            value = pts[rows, j]
            idx[:, r] = np.where(value <= -min_points if negative else value >= min_points, j, -1)
            work[rows, j] = fill
        picked.append(idx)
    return picked[0], picked[1]


def _sentences(model, X: pd.DataFrame, names: list[str], specs: dict, seg: np.ndarray, pts: np.ndarray,
               cell_rows: np.ndarray, cell_cols: np.ndarray) -> np.ndarray:
    """The sentence for each chosen cell (row, feature), formatting only those cells' values."""
    values = np.empty(len(cell_rows), dtype=object)
    wording = []
    for j, name in enumerate(names):
        spec = specs.get(name)
        is_cat = isinstance(X[name].dtype, pd.CategoricalDtype)
        kind = getattr(spec, "kind", "categorical" if is_cat else "numeric")
        wording.append((feature_label(name, spec), getattr(spec, "unit", "") or "", kind))
        here = cell_cols == j
        if here.any():
            values[here] = X[name].take(cell_rows[here]).astype("object").to_numpy()
    chosen = pts[cell_rows, cell_cols]
    # numpy's rounding, as round() on the matrix's float64 cells gives (Python's differs at e.g. 0.95)
    whole = (np.round(np.abs(chosen), 1) >= 1).tolist()
    references: dict = {}
    text = np.empty(len(cell_rows), dtype=object)
    for c, (i, j, value, p, w) in enumerate(zip(cell_rows.tolist(), cell_cols.tolist(), values, chosen.tolist(),
                                                 whole)):
        label, unit, kind = wording[j]
        ref = ""
        if kind != "categorical":
            s = seg[i]
            key = (j, None if s is None else str(s))
            if key not in references:
                reference, how = _reference(model, names[j], s)
                references[key] = f" ({how} {format_value(reference, unit)})" if reference is not None else ""
            ref = references[key]
        text[c] = f"{label}: {format_value(value, unit, kind=kind)}{ref}{_points_phrase(p, w)}"
    return text
