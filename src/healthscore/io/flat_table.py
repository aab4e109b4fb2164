"""Read a flat feature table you bring (CSV or Parquet) and coerce its messy columns, saying what was done.

Training infers a *plan* per column (numeric, boolean, categorical or dropped) from the training table;
scoring applies the very same plan, so a scoring batch never changes how a column is read. Every coercion
is counted in a ``CoercionReport``.

Rules, in order, for a text column (CSV cells are all read as text, so these apply to every CSV column):

- blank cells and the tokens ``NA``, ``N/A``, ``NaN``, ``null``, ``#N/A``, ``<NA>``, ``?`` (any case, any
  surrounding spaces) are missing;
- yes/no words only (``yes``/``no``, ``y``/``n``, ``true``/``false``, ``t``/``f``, any case, mixed with
  ``1``/``0``) → boolean 1/0;
- at least 95% of the present cells parse as numbers → numeric; the rest become missing and are reported;
- otherwise categorical: spellings that differ only in case or spaces are merged into the most frequent one;
- a categorical column with more than ``max(50, half the rows)`` distinct values looks like an identifier
  or free text and is dropped; a column with one value (or none) carries no information and is dropped.

Label: ``1`` = retained (renewed), ``0`` = churned, because healthscore's probability is P(renew). Rows whose
target is empty are *not decided yet*: training leaves them out and reports how many. An id must be present
and unique in every row (scores are keyed by it); a missing or repeated id is an error.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api import types as ptypes

from healthscore.errors import DataError, HealthscoreError, Problem, closest

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "#n/a", "<na>", "?"})
TRUE_TOKENS = frozenset({"yes", "y", "true", "t"})
FALSE_TOKENS = frozenset({"no", "n", "false", "f"})
#: share of present cells that must parse as numbers for a text column to be read as numeric
NUMERIC_SHARE = 0.95
#: the name of the id when the table has none: the 1-based position of the row in the file
ROW_NUMBER = "row_number"
KINDS = ("numeric", "boolean", "categorical", "dropped")


@dataclass(frozen=True)
class ColumnPlan:
    """How one column is read: its kind, and for categories the merged spellings (folded key → spelling)."""

    column: str
    kind: str
    categories: dict[str, str] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict:
        return {"column": self.column, "kind": self.kind, "categories": dict(self.categories), "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict) -> ColumnPlan:
        return cls(column=data["column"], kind=data["kind"], categories=dict(data.get("categories") or {}),
                   reason=data.get("reason", ""))


@dataclass
class CoercionReport:
    """What was done to each column: one entry per column and action, with a row count and examples."""

    entries: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, column: str, kind: str, action: str, count: int = 0, examples: list[str] | None = None) -> None:
        self.entries.append({"column": column, "kind": kind, "action": action, "count": int(count),
                             "examples": list(examples or [])[:5]})

    def to_frame(self) -> pd.DataFrame:
        """One row per column and action (examples joined), for logging and tests."""
        frame = pd.DataFrame(self.entries, columns=["column", "kind", "action", "count", "examples"])
        frame["examples"] = frame["examples"].map(lambda ex: ", ".join(repr(e) for e in ex))
        return frame

    def actions(self, column: str) -> dict[str, int]:
        """Action → row count for one column (e.g. ``{"blank or NA → missing": 3}``)."""
        return {e["action"]: e["count"] for e in self.entries if e["column"] == column}

    def render(self) -> str:
        """Plain text, one line per column and action."""
        lines = [f"  - {n}" for n in self.notes]
        for e in self.entries:
            rows = f": {e['count']} row{'s' if e['count'] != 1 else ''}" if e["count"] else ""
            ex = f" (e.g. {', '.join(repr(x) for x in e['examples'])})" if e["examples"] else ""
            lines.append(f"  - {e['column']} [{e['kind']}] {e['action']}{rows}{ex}")
        return "\n".join(lines)


# -- reading ---------------------------------------------------------------------------------------------

def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV (every cell as text, so we report bad values ourselves) or a Parquet file."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory: pass one file" if path.is_dir() else "does not exist"
        raise HealthscoreError(f"table {path} {what}; --table takes one .csv or .parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # utf-8-sig: a byte-order mark from a spreadsheet must not become part of the first header
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
            if any(level is not None for level in frame.index.names):
                frame = frame.reset_index()
        else:
            raise HealthscoreError(f"table {path} must end in .csv or .parquet, found {path.suffix or 'no suffix'!r}")
    except UnicodeDecodeError as exc:
        raise HealthscoreError(f"table {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise HealthscoreError(f"table {path} is empty: it needs a header row and at least one row") from None
    except (pd.errors.ParserError, pa.ArrowException, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HealthscoreError(f"table {path} cannot be read ({first})") from None
    if frame.empty:
        raise HealthscoreError(f"table {path} has no rows")
    dup = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if dup or any(str(c).startswith("Unnamed: ") for c in frame.columns):
        raise HealthscoreError(f"table {path} has repeated or empty column names ({', '.join(map(str, dup)) or 'empty'})"
                               ": give every column a distinct header")
    return frame.reset_index(drop=True)


# -- cell helpers ----------------------------------------------------------------------------------------

def _text(series: pd.Series) -> pd.Series:
    """Cells as stripped text (object dtype) with missing tokens → None; numbers keep their text form."""
    def one(v: object) -> object:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT:
            return None
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)  # a code stored as 1.0 in Parquet reads as "1", like the same cell in a CSV
        s = " ".join(str(v).split())
        return None if s.casefold() in MISSING_TOKENS else s
    return series.astype("object").map(one)


def _fold(value: str) -> str:
    """The key two spellings of one category share: case and spaces ignored, ``1.0`` the same as ``1``."""
    text = " ".join(value.split()).casefold()
    if "." not in text:  # plain integers keep their leading zeros: "02134" is a code, not 2134
        return text
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    return str(int(number)) if number.is_integer() else repr(number)


def _numbers(text: pd.Series) -> pd.Series:
    return pd.to_numeric(text, errors="coerce").astype("float64")


def _examples(values: pd.Series, n: int = 5) -> list[str]:
    return [str(v) for v in pd.unique(values.dropna().astype(str))[:n]]


# -- plan -------------------------------------------------------------------------------------------------

def infer_plan(frame: pd.DataFrame, columns: list[str], *, categorical: tuple[str, ...] = ()) -> dict[str, ColumnPlan]:
    """Decide how each of ``columns`` is read, from the training table (``categorical`` forces that kind)."""
    plans = {}
    n = len(frame)
    for name in columns:
        col = frame[name]
        if name in categorical:
            plans[name] = _categorical_plan(name, _text(col), n, forced=True)
            continue
        if ptypes.is_bool_dtype(col.dtype):
            plans[name] = _constant_or(name, col.dropna(), ColumnPlan(name, "boolean"))
            continue
        if ptypes.is_numeric_dtype(col.dtype):
            plans[name] = _constant_or(name, col.dropna(), ColumnPlan(name, "numeric"))
            continue
        if ptypes.is_datetime64_any_dtype(col.dtype):
            plans[name] = ColumnPlan(name, "dropped", reason="a date is not a feature: derive one (e.g. days since) "
                                     "or pass it as --time")
            continue
        text = _text(col)
        present = text.dropna()
        if present.empty:
            plans[name] = ColumnPlan(name, "dropped", reason="every cell is empty")
            continue
        folded = present.map(_fold)
        words = set(folded.unique())
        if words <= TRUE_TOKENS | FALSE_TOKENS | {"1", "0", "1.0", "0.0"} and words & (TRUE_TOKENS | FALSE_TOKENS):
            plans[name] = _constant_or(name, folded.map(_bool_value), ColumnPlan(name, "boolean"))
            continue
        parsed = _numbers(present)
        if parsed.notna().mean() >= NUMERIC_SHARE:
            plans[name] = _constant_or(name, parsed.dropna(), ColumnPlan(name, "numeric"))
            continue
        plans[name] = _categorical_plan(name, text, n, forced=False)
    return plans


def _constant_or(name: str, values: pd.Series, plan: ColumnPlan) -> ColumnPlan:
    if values.nunique(dropna=True) <= 1:
        return ColumnPlan(name, "dropped", reason="one value in every row (or none): carries no information")
    return plan


def _categorical_plan(name: str, text: pd.Series, n_rows: int, *, forced: bool) -> ColumnPlan:
    present = text.dropna()
    if present.empty:
        return ColumnPlan(name, "dropped", reason="every cell is empty")
    counts = present.value_counts()
    spellings: dict[str, str] = {}
    # most frequent spelling of each folded key wins; ties go to the alphabetically first spelling
    for spelling, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        spellings.setdefault(_fold(spelling), spelling)
    if len(spellings) <= 1:
        return ColumnPlan(name, "dropped", reason="one value in every row (or none): carries no information")
    if not forced and len(spellings) > max(50, n_rows // 2):
        return ColumnPlan(name, "dropped", reason=f"{len(spellings)} distinct text values: looks like an identifier "
                          "or free text; pass it as --id, or list it under categorical: in the components file")
    return ColumnPlan(name, "categorical", categories=spellings)


def _canonical(text: pd.Series, spellings: dict[str, str]) -> pd.Series:
    return text.map(lambda v: spellings.get(_fold(v)) if isinstance(v, str) else None)


def _bool_value(folded: str) -> float:
    if folded in TRUE_TOKENS or folded in ("1", "1.0"):
        return 1.0
    if folded in FALSE_TOKENS or folded in ("0", "0.0"):
        return 0.0
    return float("nan")


# -- apply ------------------------------------------------------------------------------------------------

def apply_plan(frame: pd.DataFrame, plans: dict[str, ColumnPlan], report: CoercionReport, *,
               describe: bool = True) -> pd.DataFrame:
    """Feature frame (numeric → float64, boolean → 1/0 float, categorical → text) per plan; counts in ``report``.

    Columns the plan drops are left out. With ``describe`` every column also gets a "read as …" line, so
    the report lists columns nothing happened to (training); scoring passes False and reports only changes.
    ``frame`` is not modified.
    """
    out = {}
    for name, plan in plans.items():
        if plan.kind == "dropped":
            if describe:
                report.add(name, "dropped", f"left out: {plan.reason}")
            continue
        if describe:
            what = f"{len(plan.categories)} categories" if plan.kind == "categorical" else plan.kind
            report.add(name, plan.kind, f"read as {what}")
        col = frame[name]
        raw_missing = col.isna()
        text = _text(col)
        blanks = int((text.isna() & ~raw_missing).sum())
        if blanks:
            report.add(name, plan.kind, "blank or NA → missing", blanks,
                       _examples(col[text.isna() & ~raw_missing].astype(str)))
        if plan.kind == "numeric":
            if ptypes.is_numeric_dtype(col.dtype) and not ptypes.is_bool_dtype(col.dtype):
                values = col.astype("float64")
            else:
                values = _numbers(text)
                bad = text.notna() & values.isna()
                if bad.any():
                    report.add(name, "numeric", "not a number → missing", int(bad.sum()), _examples(text[bad]))
            out[name] = values.to_numpy(dtype="float64")
        elif plan.kind == "boolean":
            if ptypes.is_bool_dtype(col.dtype) or ptypes.is_numeric_dtype(col.dtype):
                values = pd.to_numeric(col, errors="coerce").astype("float64")
                bad = values.notna() & ~values.isin([0.0, 1.0])
                values = values.where(~bad)
                bad_text = text[bad]
            else:
                values = text.map(lambda v: _bool_value(_fold(v)) if isinstance(v, str) else np.nan).astype("float64")
                bad = text.notna() & values.isna()
                bad_text = text[bad]
                mapped = int(values.notna().sum())
                if mapped:
                    report.add(name, "boolean", "yes/no words → 1/0", mapped, _examples(text[values.notna()]))
            if bad.any():
                report.add(name, "boolean", "not yes/no → missing", int(bad.sum()), _examples(bad_text))
            out[name] = values.to_numpy(dtype="float64")
        else:
            canonical = _canonical(text, plan.categories)
            changed = text.notna() & canonical.notna() & (canonical != text)
            if changed.any():
                report.add(name, "categorical", "spellings merged (case/spaces)", int(changed.sum()),
                           [f"{a} → {b}" for a, b in pd.unique(pd.Series(list(zip(text[changed], canonical[changed]))))
                            [:5]])
            unseen = text.notna() & canonical.isna()
            if unseen.any():
                report.add(name, "categorical", "category not seen in training → missing", int(unseen.sum()),
                           _examples(text[unseen]))
            out[name] = canonical.astype("object").where(canonical.notna(), None).to_numpy()
    result = pd.DataFrame(out, index=frame.index)
    for name, plan in plans.items():
        if plan.kind == "categorical":
            result[name] = result[name].astype("object")
    return result


# -- id and target ----------------------------------------------------------------------------------------

def row_numbers(frame: pd.DataFrame) -> pd.Series:
    """The 1-based position of each row in the file, as text: the id of a table that has none."""
    return pd.Series([str(i + 1) for i in range(len(frame))], index=frame.index, dtype="object")


def id_values(frame: pd.DataFrame, id_column: str | None, *, table: str) -> pd.Series:
    """The id of every row as stripped text; raises DataError for a missing column, empty or repeated ids."""
    if id_column is None:
        return row_numbers(frame)
    if id_column not in frame.columns:
        raise DataError([missing_column_problem(table, id_column, list(frame.columns), "--id")], source=table)
    ids = _text(frame[id_column])
    problems = []
    empty = ids.isna()
    if empty.any():
        rows = [str(i + 1) for i in np.flatnonzero(empty.to_numpy())[:5]]
        problems.append(Problem(table, id_column, "empty id", int(empty.sum()), [f"row {r}" for r in rows],
                                fix="every row needs an id: fill it in or drop the row"))
    dup = ids.notna() & ids.duplicated(keep=False)
    if dup.any():
        problems.append(Problem(table, id_column, "repeated id", int(dup.sum()), _examples(ids[dup]),
                                fix="one row per account: aggregate the rows of each id first"))
    if problems:
        raise DataError(problems, source=table)
    return ids


def missing_column_problem(table: str, column: str, columns: list[str], option: str) -> Problem:
    """A Problem for an option naming a column the table does not have, with a did-you-mean."""

    by_norm = {_fold(c): c for c in map(str, columns)}
    close = [by_norm[_fold(column)]] if _fold(column) in by_norm else closest(column, columns)
    hint = f"did you mean {close[0]!r}?" if close else f"columns are: {', '.join(map(repr, columns[:20]))}"
    if option == "--id" and not close:
        hint += "; a table without an id column can omit --id (rows are then numbered 1, 2, … in file order)"
    return Problem(table, column, f"{option} names a column the table does not have", fix=hint)


def churn_labels(values: pd.Series, churn_value: str, *, table: str, column: str) -> np.ndarray:
    """1 = retained, 0 = churned, NaN = not decided (empty); DataError unless exactly two outcomes.

    ``churn_value`` matches numerically when both sides are numbers (``1`` matches ``1.0``), else as text
    ignoring case and surrounding spaces (``yes`` matches ``Yes``).
    """
    text = _text(values)
    want = " ".join(str(churn_value).split())
    want_num = pd.to_numeric(pd.Series([want]), errors="coerce").iloc[0]
    nums = _numbers(text)
    if not math.isnan(want_num) and nums[text.notna()].notna().all():
        key = nums.map(lambda v: None if math.isnan(v) else repr(float(v)))
        target_key = repr(float(want_num))
    else:
        key = text.map(lambda v: _fold(v) if isinstance(v, str) else None)
        target_key = _fold(want)
    present = key.dropna()
    found = present.value_counts()
    shown = {k: text[key == k].iloc[0] for k in found.index}
    listing = ", ".join(f"{shown[k]!r} ({n} rows)" for k, n in found.items())
    problems = []
    if target_key not in found.index:
        problems.append(Problem(table, column, f"the churn value {churn_value!r} does not occur; values found: "
                                f"{listing or 'none'}", fix="pass --churn-value one of the values found"))
    elif len(found) > 2:
        problems.append(Problem(table, column, f"a churn target needs two outcomes, found {len(found)}: {listing}",
                                fix="map the target to churned / retained (two values) before training, or "
                                "leave undecided rows empty"))
    elif len(found) < 2:
        problems.append(Problem(table, column, f"every decided row has the churn value {churn_value!r}",
                                len(present), fix="training needs retained accounts too"))
    if problems:
        raise DataError(problems, source=table)
    label = np.where(key.isna(), np.nan, np.where(key == target_key, 0.0, 1.0))
    return label.astype(float)
