"""The bring-your-own-table path: a TrainingSet from one flat account table, and its features for scoring.

A components file maps the table's columns to healthscore's seven components (unlisted → ``account``)::

    components:
      support: [Call  Failure, Complains]
      usage: [Seconds of Use, Frequency of use]
    directions:        # optional: +1 more is healthier, -1 more is worse (a monotone constraint)
      Complains: -1
    categorical: [Tariff Plan]   # optional: integer codes that are really categories
    exclude: [months_active]     # optional: columns to leave out (leaks, notes)

Directions. A declared direction becomes a LightGBM monotone constraint and the scorecard's direction.
Undeclared features get no constraint (unknown for a foreign table) and, for the hand-weighted scorecard
only, the sign of their Spearman correlation with the label on the *training* part — generous to the
scorecard, which in real life would be signed by hand.

Split. With ``--time`` the rows are split by that column like renewals (oldest train, newest test) and
CV inside the training part is time-ordered; without it, a stratified split with the config's shares and
seed, and stratified K-fold CV inside the training part.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from healthscore.config import COMPONENTS, Config, read_yaml_file
from healthscore.errors import (
    ConfigError,
    DataError,
    HealthscoreError,
    ModelMismatchError,
    Problem,
    did_you_mean,
)
from healthscore.io.flat_table import (
    ROW_NUMBER,
    CoercionReport,
    ColumnPlan,
    apply_plan,
    churn_labels,
    id_values,
    infer_plan,
    missing_column_problem,
)
from healthscore.io.write import sha256_file
from healthscore.model.split import split_by_renewal_date
from healthscore.model.train import TrainingSet

SPEC_KEYS = ("components", "directions", "categorical", "exclude")


@dataclass(frozen=True)
class ComponentSpec:
    """Column → component, declared directions, forced categoricals and excluded columns."""

    components: dict[str, str] = field(default_factory=dict)
    directions: dict[str, int] = field(default_factory=dict)
    categorical: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    source: str = "components"

    def to_dict(self) -> dict[str, Any]:
        by_component: dict[str, list[str]] = {}
        for column, component in self.components.items():
            by_component.setdefault(component, []).append(column)
        return {"components": by_component, "directions": dict(self.directions),
                "categorical": list(self.categorical), "exclude": list(self.exclude)}


def load_components(path: str | Path | None) -> ComponentSpec:
    """Read a components YAML; raise ConfigError listing every unknown key, component or bad direction."""
    if path is None:
        return ComponentSpec()
    data = read_yaml_file(path, what="components file", option="--components")
    return components_from_dict(data, source=str(path))


def components_from_dict(data: Any, *, source: str = "components") -> ComponentSpec:
    """Build a ComponentSpec from a parsed YAML mapping, collecting every problem before raising once."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with keys {', '.join(SPEC_KEYS)}, found {type(data).__name__}")
    for key in data:
        if key not in SPEC_KEYS:
            problems.append(f"unknown key '{key}'{did_you_mean(str(key), SPEC_KEYS)}")
    columns: dict[str, str] = {}
    raw = data.get("components") or {}
    if not isinstance(raw, dict):
        problems.append("components: expected a mapping of component → list of columns")
        raw = {}
    for component, cols in raw.items():
        if component not in COMPONENTS:
            problems.append(f"components: unknown component '{component}'{did_you_mean(str(component), COMPONENTS)}"
                            f" (components are {', '.join(COMPONENTS)})")
            continue
        cols = [cols] if isinstance(cols, str) else cols
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            problems.append(f"components.{component}: expected a list of column names, found {cols!r}")
            continue
        for col in cols:
            if col in columns and columns[col] != component:
                problems.append(f"column '{col}' is listed under both {columns[col]} and {component}: choose one")
            columns[col] = component
    directions: dict[str, int] = {}
    raw_dir = data.get("directions") or {}
    if not isinstance(raw_dir, dict):
        problems.append("directions: expected a mapping of column → -1, 0 or 1")
        raw_dir = {}
    for col, d in raw_dir.items():
        if isinstance(d, bool) or d not in (-1, 0, 1):
            problems.append(f"directions.{col}: use -1 (more is worse), 0 or 1 (more is healthier), found {d!r}")
        else:
            directions[str(col)] = int(d)
    lists = {}
    for key in ("categorical", "exclude"):
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            problems.append(f"{key}: expected a list of column names, found {value!r}")
            value = []
        lists[key] = tuple(value)
    for col in lists["exclude"]:
        if col in columns or col in directions:
            problems.append(f"column '{col}' is excluded and also given a component or direction: choose one")
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"{source} has {len(problems)} problem{'s' if len(problems) != 1 else ''}:\n{lines}")
    return ComponentSpec(components=columns, directions=directions, categorical=lists["categorical"],
                         exclude=lists["exclude"], source=source)


@dataclass
class TableTrainingSet:
    """A TrainingSet from a flat table, with what was done to the table and what scoring will need."""

    training_set: TrainingSet
    report: CoercionReport
    plans: dict[str, ColumnPlan]
    #: stored in the model's metadata under "table": how to read a table for scoring
    table_metadata: dict[str, Any]
    #: the config with model.monotone set from the declared directions
    config: Config


def table_fingerprint(path: str | Path) -> str:
    """sha256 of the table file's bytes."""
    return sha256_file(path)


def _rows_to_learn(frame: pd.DataFrame, label: np.ndarray, *, target: str, time_column: str | None,
                   as_of: date | None, id_column: str | None, table: str, report: CoercionReport
                   ) -> tuple[np.ndarray, pd.Series | None]:
    """Decided rows (before ``as_of`` by ``time_column``), without exact copies when there is no id; and the times."""
    keep = ~np.isnan(label)
    if (~keep).any():
        report.notes.append(f"{int((~keep).sum())} rows with an empty {target!r} are not decided yet: left out")
    times = None
    if time_column is not None:
        times = _parse_times(frame[time_column], table=table, column=time_column)
        if as_of is not None:
            early = (times < pd.Timestamp(as_of)).to_numpy()
            if (keep & ~early).any():
                report.notes.append(f"{int((keep & ~early).sum())} decided rows with {time_column} on or after "
                                    f"{as_of} are left out (training as if today were {as_of})")
            keep &= early
    if id_column is None:
        dup = frame.duplicated(keep="first").to_numpy() & keep
        if dup.any():
            report.notes.append(f"{int(dup.sum())} rows are exact copies of an earlier row (no --id to tell them "
                                "apart): dropped")
            keep &= ~dup
    return keep, times


def training_set_from_table(
    frame: pd.DataFrame,
    *,
    target: str,
    churn_value: str,
    config: Config,
    id_column: str | None = None,
    spec: ComponentSpec | None = None,
    time_column: str | None = None,
    as_of: date | None = None,
    table: str = "table",
) -> TableTrainingSet:
    """Labels, coerced features and a split from one row per account; ``frame`` is not modified.

    Rows with an empty target are not decided yet and are left out (counted in the report). Without an id
    column, rows are identified by their position and exact duplicate rows are dropped (counted): they are
    copies, and copies on both sides of a split inflate every metric.
    """
    spec = spec or ComponentSpec()
    if as_of is not None and time_column is None:
        raise HealthscoreError("--as-of needs --time: name the column holding each row's date (e.g. the renewal "
                               "date), so that only rows decided before --as-of are used")
    _check_columns(frame, table=table, id_column=id_column, target=target, time_column=time_column, spec=spec)
    report = CoercionReport()
    ids = id_values(frame, id_column, table=table)
    label = churn_labels(frame[target], churn_value, table=table, column=target)
    keep, times = _rows_to_learn(frame, label, target=target, time_column=time_column, as_of=as_of,
                                 id_column=id_column, table=table, report=report)
    used = [c for c in frame.columns if c not in {id_column, target, time_column, *spec.exclude}]
    for col in spec.exclude:
        report.add(col, "dropped", "left out: excluded in the components file")
    kept = frame.loc[keep]
    if len(kept) == 0:
        raise HealthscoreError(f"{table}: no decided rows left to learn from"
                               + (f" before {as_of}" if as_of else ""))
    plans = infer_plan(kept, used, categorical=spec.categorical)
    features = apply_plan(kept, plans, report).reset_index(drop=True)
    y = label[keep].astype(int)
    rows = pd.DataFrame({"account_id": ids[keep].to_numpy(), "contract_id": ids[keep].to_numpy()})
    if times is not None:
        rows["renewal_date"] = times[keep].to_numpy()
        part = split_by_renewal_date(rows, config.split)
    else:
        part = stratified_part(y, config)
    categorical = [c for c, p in plans.items() if p.kind == "categorical"]
    feature_names = list(features.columns)
    is_train = (part == "train").to_numpy()
    declared = {f: d for f, d in spec.directions.items() if f in feature_names}
    directions = {f: declared.get(f, 0) if f in declared else (0 if f in categorical else
                  spearman_direction(features.loc[is_train, f], y[is_train])) for f in feature_names}
    monotone = {f: d for f, d in config.model.monotone.items() if f in feature_names}
    monotone.update({f: d for f, d in declared.items() if f not in categorical})
    # a table's constraints are the directions its components file declares, never estimated ones
    cfg = dataclasses.replace(config, model=dataclasses.replace(config.model, monotone=monotone,
                                                                monotone_from_catalogue=False))
    ts = TrainingSet(
        features=features,
        label=y,
        rows=rows,
        components={f: spec.components.get(f, "account") for f in feature_names},
        directions=directions,
        categorical=categorical,
        part=part,
        group_columns=(),
    )
    metadata = {
        "kind": "table",
        "id": id_column,
        "target": target,
        "churn_value": str(churn_value),
        "time": time_column,
        "plans": {name: plan.to_dict() for name, plan in plans.items()},
        "components_spec": spec.to_dict(),
        "scorecard_directions": directions,
        "declared_directions": declared,
    }
    return TableTrainingSet(training_set=ts, report=report, plans=plans, table_metadata=metadata, config=cfg)


def _check_columns(frame: pd.DataFrame, *, table: str, id_column: str | None, target: str,
                   time_column: str | None, spec: ComponentSpec) -> None:
    columns = [str(c) for c in frame.columns]
    problems = [missing_column_problem(table, col, columns, option)
                for option, col in (("--id", id_column), ("--target", target), ("--time", time_column))
                if col is not None and col not in columns]
    named = {**{c: "components" for c in spec.components}, **{c: "directions" for c in spec.directions},
             **{c: "categorical" for c in spec.categorical}, **{c: "exclude" for c in spec.exclude}}
    for col, where in named.items():
        if col not in columns:
            problems.append(missing_column_problem(table, col, columns, f"{spec.source} ({where})"))
    special = {id_column: "--id", target: "--target", time_column: "--time"}
    for col, where in named.items():
        if col in special and col is not None:
            problems.append(Problem(table, col, f"is the {special[col]} column and cannot also be a feature "
                                    f"({spec.source}: {where})", fix=f"remove it from {spec.source}"))
    if problems:
        raise DataError(problems, source=table)


def _parse_times(values: pd.Series, *, table: str, column: str) -> pd.Series:
    text = values.astype("object").where(values.notna(), None)
    parsed = pd.to_datetime(text, errors="coerce", format="mixed") if not pd.api.types.is_datetime64_any_dtype(
        values.dtype) else values
    parsed = pd.Series(parsed, index=values.index)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    bad = parsed.isna()
    if bad.any():
        examples = [f"row {i + 1}: {values.iloc[i]!r}" for i in np.flatnonzero(bad.to_numpy())[:5]]
        raise DataError([Problem(table, column, "empty or not a date", int(bad.sum()), examples,
                                 fix="--time needs a date in every row, like 2025-06-30")], source=table)
    return parsed


def stratified_part(y: np.ndarray, config: Config) -> pd.Series:
    """'train' / 'calibration' / 'test' at the config's shares, stratified by label, seeded by model.seed."""
    idx = np.arange(len(y))
    shares = config.split
    seed = config.model.seed
    if np.bincount(y, minlength=2).min() < 5:
        raise HealthscoreError(f"too few churned or retained rows to split ({np.bincount(y, minlength=2).tolist()}"
                               " churned/retained); a learned score needs at least 5 of each, far more in practice")
    rest, test = train_test_split(idx, test_size=shares.test, stratify=y, random_state=seed)
    train, cal = train_test_split(rest, test_size=shares.calibration / (shares.train + shares.calibration),
                                  stratify=y[rest], random_state=seed)
    part = np.empty(len(y), dtype=object)
    part[train], part[cal], part[test] = "train", "calibration", "test"
    return pd.Series(part, name="part")


def spearman_direction(values: pd.Series, y: np.ndarray) -> int:
    """Sign of the Spearman correlation of a feature with the label (0 when undefined)."""
    x = pd.to_numeric(values, errors="coerce")
    ok = x.notna().to_numpy()
    if ok.sum() < 3 or x[ok].nunique() < 2 or len(np.unique(y[ok])) < 2:
        return 0
    rho = pd.Series(x[ok].to_numpy()).rank().corr(pd.Series(y[ok]).rank())
    return 0 if not np.isfinite(rho) or rho == 0 else int(np.sign(rho))


def features_for_scoring(frame: pd.DataFrame, model, *, id_column: str | None,
                         table: str = "table") -> tuple[pd.Series, pd.DataFrame, CoercionReport]:
    """Ids, the feature frame read with the model's stored plan, and what was coerced; every row kept."""
    meta = model.metadata.get("table")
    if not meta:
        raise ModelMismatchError("this model was trained on a dataset directory, not on a flat table: score it "
                                 "with --data, or train one with --table")
    plans = {name: ColumnPlan.from_dict(p) for name, p in meta["plans"].items()}
    needed = [name for name, p in plans.items() if p.kind != "dropped"]
    columns = [str(c) for c in frame.columns]
    missing = [c for c in needed if c not in columns]
    if missing:
        hints = [missing_column_problem(table, c, columns, "the model").fix for c in missing[:5]]
        raise ModelMismatchError(
            f"{table} lacks {len(missing)} column(s) the model was trained on: "
            + "; ".join(f"{c!r} ({h})" for c, h in zip(missing, hints))
            + (" …" if len(missing) > 5 else "") + ". Score a table with the same columns as the training table."
        )
    report = CoercionReport()
    ids = id_values(frame, id_column, table=table)
    ignored = [c for c in columns if c not in plans and c not in {id_column, meta.get("target"), meta.get("time")}
               and c not in meta.get("components_spec", {}).get("exclude", [])]
    if ignored:
        report.notes.append(f"{len(ignored)} column(s) unknown to the model, ignored: {', '.join(ignored[:10])}")
    features = apply_plan(frame, {n: p for n, p in plans.items() if p.kind != "dropped"}, report, describe=False)
    return ids, features, report


__all__ = [
    "ROW_NUMBER",
    "ComponentSpec",
    "TableTrainingSet",
    "components_from_dict",
    "features_for_scoring",
    "load_components",
    "spearman_direction",
    "stratified_part",
    "table_fingerprint",
    "training_set_from_table",
]
