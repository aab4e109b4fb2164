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
import itertools
import math
import os
import re
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from healthscore.config import COMPONENTS
from healthscore.features import FEATURES, feature_spec
from healthscore.io.write import float_text

CONTRIB_COLUMNS = tuple(f"contrib_{c}" for c in COMPONENTS)
_CONTRIB_INDEX = {c: k for k, c in enumerate(COMPONENTS)}


def _spread_points(phi: np.ndarray, probability: np.ndarray, baseline: float) -> np.ndarray:
    """The one rule for points: share ``100 · p − baseline`` in proportion to the log-odds columns of ``phi``.

    Rows whose log-odds sum to ~0 share the (then ~0) difference equally.
    """
    total = 100.0 * np.asarray(probability, dtype=float) - baseline
    s = phi.sum(axis=1)
    safe = np.abs(s) >= 1e-9
    share = np.where(safe[:, None], phi / np.where(safe, s, 1.0)[:, None], 1.0 / phi.shape[1])
    return share * total[:, None]


def feature_points(model, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, float]:
    """Per-feature contributions in points (they sum to 100·p − baseline), the probability and the baseline."""
    contrib, expected = model.contributions(X)
    phi = contrib.to_numpy(dtype=float)
    margin = phi.sum(axis=1) + expected
    probability = model.calibrator.predict(margin)
    baseline = model.baseline_points
    points = _spread_points(phi, probability, baseline)
    return pd.DataFrame(points, columns=contrib.columns, index=X.index), probability, baseline


def component_points(fpoints: pd.DataFrame, components: dict[str, str]) -> pd.DataFrame:
    """Per-feature points summed by component (``contrib_*`` columns), in feature order as a running sum.

    Summing in the same order at any chunk size gives the same floats, so chunked scoring, the flat-table
    path and the served model agree to the last bit.
    """
    points = fpoints.to_numpy(dtype=float)
    out = np.zeros((len(fpoints), len(CONTRIB_COLUMNS)), dtype=float)
    for j, f in enumerate(fpoints.columns):
        out[:, _CONTRIB_INDEX[components.get(f, "account")]] += points[:, j]
    return pd.DataFrame(out, index=fpoints.index, columns=list(CONTRIB_COLUMNS))


def explain_frame(model, features: pd.DataFrame) -> pd.DataFrame:
    """Probability, model score, baseline and per-component points for a raw feature frame (the served model)."""
    X = model.prepare(features)
    fpoints, probability, baseline = feature_points(model, X)
    out = pd.DataFrame(
        {
            "probability": probability,
            "model_score": np.round(100.0 * probability).astype("int64"),
            "baseline": baseline,
        },
        index=features.index,
    )
    return pd.concat([out, component_points(fpoints, model.components).set_axis(features.index)], axis=1)


# --------------------------------------------------------------------------------------------------------
# Drivers: the strongest reasons, as sentences worded from the feature catalogue
# --------------------------------------------------------------------------------------------------------
#
# Which reasons. ``positive_driver`` is the strongest positive feature contribution. ``driver_1..3`` are the
# three most negative ones (most negative first): a reviewer asks first what holds an account back. When
# fewer than three features lower the score, the remaining slots take the next positive ones (largest first,
# after ``positive_driver``), so a healthy account still says why it is healthy; no reason appears twice.
# Contributions smaller than ``min_points`` (``explain.min_points``, default 0.5 points) are never a reason:
# they are noise to a reader, and the tables still carry them; ties keep the model's feature order.
#
# Wording. "<label>: <value> (<segment|overall> median <reference>) lowers|raises the score by <p> points"
# (whole points from 1 up, one decimal below).
# The label, unit and window come from ``healthscore.features.FEATURES`` (FeatureSpec; family columns such
# as "uses_export_pdf_share_30d" from their family's template: "Share of active users using export_pdf
# (30 days): 40% …"); the reference is
# the median of the training rows of the account's segment (``model.references[feature][segment]``),
# else of all training rows. A missing value reads "no data"; a categorical one has no reference.

DRIVER_COLUMNS = ("driver_1", "driver_2", "driver_3", "positive_driver")
#: values that say "bad" whatever the model learned: while one holds, no feature of its component is shown
#: as a positive reason (an account with money overdue is never told its billing raises its score)
BAD_STATES: dict[str, tuple[str, float]] = {
    "amount_overdue": (">", 0.0),
    "days_overdue_max": (">", 0.0),
    "usage_trend_30d": ("<=", -0.5),
}


def _bad_component_mask(X: pd.DataFrame, names: list[str], components: dict[str, str]) -> np.ndarray:
    """(rows × features) True where the feature's component is in a bad state on that row (``BAD_STATES``)."""
    mask = np.zeros((len(X), len(names)), dtype=bool)
    for feature, (op, threshold) in BAD_STATES.items():
        if feature not in X.columns:
            continue
        values = pd.to_numeric(X[feature], errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            bad = values > threshold if op == ">" else values <= threshold
        component = components.get(feature)
        for j, name in enumerate(names):
            if components.get(name) == component:
                mask[:, j] |= bad
    return mask
#: the long explanation table: one row per scored account and feature
EXPLANATION_COLUMNS = ("account_id", "feature", "component", "value", "contribution")

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
    """The registered FeatureSpecs by name."""
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
    min_points: float = 0.5,
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
        # a positive contribution from a component in a bad state is never offered as a reason
        blocked = _bad_component_mask(X, names, getattr(model, "components", {}) or {})
        neg, pos = _strongest(pts, min_points, blocked_positive=blocked)
        n_neg = (neg >= 0).sum(axis=1)
        # positive_driver is the largest positive; slot k is the k-th negative while there are any, then the
        # next positives (pos[:, 1:]), so no reason is shown twice
        rows = np.arange(n)
        slots = [np.where(k < n_neg, neg[:, k], pos[rows, np.clip(k - n_neg + 1, 1, 3)]) for k in range(3)]
        slots.append(pos[:, 0])
        cell_rows = np.concatenate([rows[slot >= 0] for slot in slots])
        cell_cols = np.concatenate([slot[slot >= 0] for slot in slots])
        text = _sentences(model, X, names, specs, seg, pts, cell_rows, cell_cols)
        at = 0
        for column, slot in zip(DRIVER_COLUMNS, slots):
            filled = slot >= 0
            out[column][filled] = text[at:at + filled.sum()]
            at += filled.sum()
    return pd.DataFrame({c: pd.Series(v, index=X.index, dtype="object") for c, v in out.items()})


def _strongest(pts: np.ndarray, min_points: float, *, blocked_positive: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of each row's 3 most negative and 4 most positive points (−1 where too small, or a
    positive one ``blocked_positive``).

    Repeated argmin/argmax rather than a sort: both return the first of equal values, so ties keep the
    feature order, as a stable sort would, in 7 passes over the matrix instead of two full sorts.
    """
    n, k = pts.shape
    rows = np.arange(n)
    missing = np.isnan(pts)
    picked = []
    for negative in (True, False):
        fill = np.inf if negative else -np.inf  # NaN is never a reason and sorts last, like argsort
        skip = missing | (blocked_positive if blocked_positive is not None and not negative else False)
        work = np.where(skip, fill, pts)
        picks = 3 if negative else 4
        idx = np.full((n, picks), -1, dtype=np.int64)
        for r in range(min(picks, k)):
            j = work.argmin(axis=1) if negative else work.argmax(axis=1)
            value = pts[rows, j]
            ok = ~skip[rows, j] & (value <= -min_points if negative else value >= min_points)
            idx[:, r] = np.where(ok, j, -1)
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


# --------------------------------------------------------------------------------------------------------
# The batch engine: raw feature rows in, probability, points, the long explanation table and drivers out
# --------------------------------------------------------------------------------------------------------

#: scored rows per step: TreeSHAP, points and text work on one step's arrays at a time, so working memory
#: stays that of a few steps at any batch size. Measured on 300k accounts of the benchmark's world, one
#: step at a time: 200k rows per step held ~1.1 GB more at the end than 50k and took 2.73 s against
#: 2.26 s; 25k took 2.60 s. Two steps run at once on two cores, so 25k keeps about the rows of 50k in flight
CHUNK_ROWS = 25_000


@dataclass
class Explained:
    """What scoring computes for scored rows: the model matrix, probability, points and explanations."""

    X: pd.DataFrame
    probability: np.ndarray
    baseline: float
    component_points: pd.DataFrame
    #: None when the long table went to ``explain_rows``'s ``sink``
    explanations: pd.DataFrame | None
    drivers: pd.DataFrame
    #: seconds per step (prepare, contributions, explanations, drivers), for benchmarks and progress
    timings: dict[str, float]


def _workers() -> int:
    """Steps explained at once: two where the process may use two cores (each releases the interpreter in
    LightGBM, numpy and Arrow for most of its work), else one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return 2 if cores >= 2 else 1


@dataclass
class _Step:
    """One step of ``explain_rows``: its rows' probability, points, long-table rows and drivers."""

    probability: np.ndarray
    baseline: float
    points: np.ndarray
    component_points: pd.DataFrame
    text: dict
    drivers: pd.DataFrame
    seconds: dict


def _explain_step(model, X: pd.DataFrame, ids: pa.Array, a: int, b: int, repeated: tuple, min_points: float) -> _Step:
    t1 = time.perf_counter()
    rows = X.iloc[a:b]
    fpoints, probability, baseline = feature_points(model, rows)
    points = fpoints.to_numpy(dtype=float)
    t2 = time.perf_counter()
    comp = component_points(fpoints, model.components)
    m, k = b - a, points.shape[1]
    feature_text, component_text = repeated
    text = {"account_id": ids.slice(a, m).take(np.repeat(np.arange(m, dtype=np.int64), k)),
            "feature": feature_text, "component": component_text,
            "value": _value_text(rows, list(model.feature_names))}
    t3 = time.perf_counter()
    drivers = driver_sentences(model, rows, fpoints, min_points=min_points)
    t4 = time.perf_counter()
    return _Step(probability, baseline, points, comp, text, drivers,
                 {"contributions": t2 - t1, "explanations": t3 - t2, "drivers": t4 - t3})


def explain_rows(model, feats: pd.DataFrame, account_ids: np.ndarray, *, chunk_rows: int = CHUNK_ROWS,
                 progress: Callable[[int, int], None] | None = None, min_points: float = 0.5,
                 sink: Callable[[pa.Table], None] | None = None) -> Explained:
    """Score raw feature rows and explain them: per-component points, long-format explanations, drivers.

    Rows go through in steps of ``chunk_rows``; every output is the same, byte for byte, whatever the step
    (each row's TreeSHAP, calibration and text depend on that row alone). On two cores two steps run at
    once (``_workers``), their results taken in order. ``progress(rows_done, rows_total)`` is called after
    each step. With ``sink``, each step's rows
    of the long table (an Arrow table of ``EXPLANATION_COLUMNS``) go to ``sink`` and are not kept
    (``explanations`` is then None): the table with a row per account and feature is never held whole
    (``scoring.batch`` streams it to Parquet).
    """
    t0 = time.perf_counter()
    X = model.prepare(feats)
    getattr(model, "booster", None)  # built from its text once, here, not by two steps at once
    timings = {"prepare": time.perf_counter() - t0, "contributions": 0.0, "explanations": 0.0, "drivers": 0.0}
    n = len(X)
    names = list(model.feature_names)
    k = len(names)
    components = [model.components.get(f, "account") for f in names]
    ids = pa.array(np.asarray(account_ids, dtype=object), pa.large_string())
    probability = np.empty(n, dtype=float)
    comp_points = []
    contribution = np.empty(n * k if sink is None else 0, dtype=float)
    text: dict[str, list] = {"account_id": [], "feature": [], "component": [], "value": []}
    repeated: dict[int, tuple] = {}
    drivers = []
    baseline = model.baseline_points
    workers = _workers() if n > 1 else 1
    step = max(1, int(chunk_rows))
    bounds = [(a, min(a + step, n)) for a in range(0, max(n, 1), step)]
    for a, b in bounds:
        m = b - a
        if m not in repeated:
            # feature and component names repeat identically for every step of the same size: one Arrow
            # array serves them all, so the long table's two widest columns cost one step's bytes, not n's
            col = np.tile(np.arange(k, dtype=np.int64), m)
            repeated[m] = (pa.array(names, pa.large_string()).take(col),
                           pa.array(components, pa.large_string()).take(col))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="healthscore-explain")
    try:
        running: deque = deque()
        upcoming = iter(bounds)
        for a, b in itertools.islice(upcoming, workers):
            running.append((a, b, pool.submit(_explain_step, model, X, ids, a, b, repeated[b - a], min_points)))
        while running:
            a, b, future = running.popleft()
            done = future.result()
            for nxt in itertools.islice(upcoming, 1):  # the next step starts before this one is written
                running.append((*nxt, pool.submit(_explain_step, model, X, ids, *nxt, repeated[nxt[1] - nxt[0]],
                                                  min_points)))
            probability[a:b] = done.probability
            baseline = done.baseline
            comp_points.append(done.component_points)
            if sink is not None:
                sink(pa.table({**done.text, "contribution": pa.array(done.points.ravel(), pa.float64())}))
            else:
                contribution[a * k:b * k] = done.points.ravel()
                for column, values in done.text.items():
                    text[column].append(values)
            drivers.append(done.drivers)
            for key, seconds in done.seconds.items():
                timings[key] += seconds
            if progress is not None:
                progress(b, n)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    t5 = time.perf_counter()
    explanations = None if sink is not None else pd.DataFrame(
        {**{c: pa.chunked_array(chunks, pa.large_string()).to_pandas() for c, chunks in text.items()},
         "contribution": contribution},
        columns=list(EXPLANATION_COLUMNS), copy=False,
    )
    timings["explanations"] += time.perf_counter() - t5
    return Explained(X=X, probability=probability, baseline=baseline,
                     component_points=pd.concat(comp_points) if len(comp_points) > 1 else comp_points[0],
                     explanations=explanations, drivers=pd.concat(drivers) if len(drivers) > 1 else drivers[0],
                     timings=timings)


def _value_text(X: pd.DataFrame, names: list[str]):
    """The long table's ``value`` cells for these rows, row by row (account, then feature), as Arrow text.

    Built as Arrow columns with index arithmetic, never a Python object per cell, so text costs bytes, not
    objects (pandas 3 gets ``str`` columns; 2.x ``object``).
    """
    n, k = len(X), len(names)
    if not k:
        return pa.array([], pa.large_string())
    values = pa.concat_arrays([_column_text(X[name]) for name in names])
    # column-major concatenation: cell (i, j) sits at j * n + i
    return values.take(np.tile(np.arange(k, dtype=np.int64) * n, n) + np.repeat(np.arange(n, dtype=np.int64), k))


def _column_text(col: pd.Series):
    """A column as Arrow text, ``str(value)`` per cell (shortest round-trip repr for floats), missing null."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        cats = pa.array([str(c) for c in col.cat.categories], pa.large_string())
        return cats.take(pa.array(codes, mask=codes < 0))
    return float_text(col.to_numpy(dtype="float64", na_value=np.nan))
