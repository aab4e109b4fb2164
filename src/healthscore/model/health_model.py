"""The fitted artefact: everything scoring needs, stored together so nothing is refitted on a batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from healthscore.config import COMPONENTS
from healthscore.errors import ModelMismatchError, did_you_mean
from healthscore.model.calibrate import Calibrator
from healthscore.model.linear import LinearStart


def combined_margin(linear: LinearStart | None, booster: lgb.Booster | None, X: pd.DataFrame) -> np.ndarray:
    """Log-odds of renewal: the linear start's (0 without one) plus the trees' raw score (0 without trees)."""
    out = np.zeros(len(X)) if linear is None else linear.margin(X)
    return (out + booster.predict(X, raw_score=True)) if booster is not None else out


@dataclass
class HealthModel:
    """A trained healthscore model: LightGBM booster + calibration + what was fitted on training rows.

    The margin (log-odds of renewal) is ``linear.margin(X) + booster raw score`` when the booster started
    from a linear model (``linear``, see ``model/linear.py``), else the booster's alone. The booster may
    have no trees at all (``booster_text == ""``) when cross-validation found the linear start enough.

    ``prepare`` turns a raw feature frame (as ``healthscore features`` writes it) into the model's matrix,
    applying the fitted segment adoption curve and the category lists fixed at training.
    """

    feature_names: list[str]
    categories: dict[str, list[str]]
    components: dict[str, str]
    booster_text: str
    calibrator: Calibrator
    adoption_curve: Any = None
    #: per feature: {"all": median, "<segment>": median} on training rows, reference points for drivers
    references: dict[str, dict[str, float]] = field(default_factory=dict)
    #: training-row distribution summaries for drift (per feature: quantile edges and shares)
    reference_distributions: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: the booster's linear start (None: a constant start, LightGBM's default)
    linear: LinearStart | None = None
    _booster: lgb.Booster | None = field(default=None, repr=False, compare=False)

    # -- pickling: keep the booster as text so the artefact is portable across processes --------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_booster"] = None
        return state

    @property
    def has_trees(self) -> bool:
        return bool(self.booster_text)

    @property
    def form(self) -> str:
        """What was fitted, in words: "logistic start + 2 trees", "scorecard start alone", "20 trees"."""
        trees = int(self.params.get("num_boost_round", 0)) if self.has_trees else 0
        if self.linear is None:
            return f"{trees} trees"
        start = {"ScorecardStart": "scorecard start", "LearnedScorecardStart": "learned-scorecard start",
                 "BlendStart": "blended start"}.get(
            type(self.linear).__name__, "logistic start")
        return f"{start} + {trees} trees" if trees else f"{start} alone"

    def use_booster(self, booster: lgb.Booster | None) -> None:
        """Set the fitted booster: kept as text (the portable, pickled form) and live for predictions."""
        self.booster_text = booster.model_to_string() if booster is not None else ""
        self._booster = booster

    @property
    def booster(self) -> lgb.Booster | None:
        """The LightGBM booster, or None when the model is its linear start alone."""
        if self._booster is None and self.booster_text:
            self._booster = lgb.Booster(model_str=self.booster_text)
        return self._booster

    # -- input ------------------------------------------------------------------------------------------
    def raw_input_columns(self) -> list[str]:
        """Columns a raw feature frame must have (fitted features are derived here, not supplied)."""
        fitted = set(getattr(self.adoption_curve, "output_columns_", []) or [])
        return [f for f in self.feature_names if f not in fitted]

    def input_problems(self, frame: pd.DataFrame, *, passthrough: tuple[str, ...] = ()) -> list[str]:
        """What is wrong with a raw feature frame sent by a client, each problem one line naming the columns,
        values and rows (a few), and the fix; empty when it can be scored.

        Checked: missing input columns, unknown columns (``passthrough`` ones are allowed), category values
        the model never saw (a typo or a stray space would otherwise score as "missing" silently), and
        text in a numeric column. A null is always allowed: it means "not known".
        """
        problems = []
        expected = self.raw_input_columns()
        duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        if duplicated:  # a later check would read two columns as one
            return [f"duplicate column(s): {', '.join(duplicated)}: send each column once"]
        missing = [c for c in expected if c not in frame.columns]
        if missing:
            problems.append(f"missing column(s) ({len(missing)}): {', '.join(missing[:10])}"
                            f"{' …' if len(missing) > 10 else ''}. Send every input column (null where a value "
                            "is not known); the list is the model's metadata 'input_columns'.")
        unknown = [str(c) for c in frame.columns if c not in expected and c not in passthrough]
        for c in unknown[:10]:
            problems.append(f"unknown column '{c}'{did_you_mean(c, missing or expected)}: the model has no "
                            "such input; rename or drop it")
        for c in [c for c in expected if c in frame.columns]:
            col = frame[c]
            present = col.notna().to_numpy()
            if c in self.categories:
                text = col.astype("object").where(col.notna(), None)
                bad = present & ~text.isin(self.categories[c]).to_numpy()
                if bad.any():
                    rows = np.flatnonzero(bad)
                    values = sorted({repr(str(v)) for v in text.iloc[rows]})[:5]
                    problems.append(f"column '{c}': unknown value(s) {', '.join(values)} (rows "
                                    f"{', '.join(map(str, rows[:5]))}); known: {', '.join(self.categories[c])}, "
                                    "or null")
            elif not pd.api.types.is_numeric_dtype(col):
                bad = present & pd.to_numeric(col, errors="coerce").isna().to_numpy()
                if bad.any():
                    rows = np.flatnonzero(bad)
                    values = sorted({repr(v) for v in col.iloc[rows]})[:5]
                    problems.append(f"column '{c}': not a number: {', '.join(values)} (rows "
                                    f"{', '.join(map(str, rows[:5]))}); send a number or null")
        return problems

    def prepare(self, features: pd.DataFrame) -> pd.DataFrame:
        """Model matrix from a raw feature frame; raises ModelMismatchError naming missing columns."""
        missing = [c for c in self.raw_input_columns() if c not in features.columns]
        if missing:
            raise ModelMismatchError(
                f"the feature frame lacks {len(missing)} feature(s) the model was trained on: "
                f"{', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}. Build features with the same "
                "healthscore version and config as the model, or retrain."
            )
        frame = features
        if self.adoption_curve is not None:
            frame = self.adoption_curve.transform(frame)
        X = pd.DataFrame(index=frame.index)
        for name in self.feature_names:
            col = frame[name]
            if name in self.categories:
                X[name] = pd.Categorical(col.astype("object").where(col.notna(), None),
                                         categories=self.categories[name])
            else:
                X[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        return X

    # -- prediction -------------------------------------------------------------------------------------
    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds of renewal: the linear start (if any) plus the trees' raw score."""
        return combined_margin(self.linear, self.booster, X)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated P(renew)."""
        return self.calibrator.predict(self.margin(X))

    def contributions(self, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Exact SHAP values in log-odds per feature and the expected value per row; they add up to ``margin``.

        Trees: LightGBM's TreeSHAP (``pred_contrib``). Linear start: ``w (z − mean z)`` per feature (exact
        for a linear model); the two are summed per feature and their expected values added.
        """
        if self.has_trees:
            raw = self.booster.predict(X, pred_contrib=True)
            contrib = pd.DataFrame(raw[:, :-1], columns=self.feature_names, index=X.index)
            expected = raw[:, -1]
        else:
            contrib = pd.DataFrame(0.0, index=X.index, columns=self.feature_names)
            expected = np.zeros(len(X))
        if self.linear is not None:
            contrib = contrib + self.linear.contributions(X)[self.feature_names]
            expected = expected + self.linear.expected_margin
        return contrib, expected

    def component_contributions(self, contrib: pd.DataFrame) -> pd.DataFrame:
        """Log-odds contributions summed per component (columns in COMPONENTS order)."""
        out = pd.DataFrame(0.0, index=contrib.index, columns=list(COMPONENTS))
        for feature in contrib.columns:
            out[self.components.get(feature, "account")] += contrib[feature].to_numpy()
        return out

    @property
    def expected_margin(self) -> float:
        return float(self.metadata.get("expected_margin", 0.0))

    @property
    def baseline_points(self) -> float:
        """The score of an average account: 100 × calibrated probability at the booster's expected value."""
        return float(100.0 * self.calibrator.predict(np.array([self.expected_margin]))[0])
