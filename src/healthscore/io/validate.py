"""Normalise raw tables to the contract's dtypes and collect every problem (CONTRACT §1).

Two passes: ``normalise_table`` parses one table column by column (missing columns, empty required cells,
unparseable values), then ``check_tables`` looks across rows and tables (keys, references, allowed values,
ranges, date order). ``validate_tables`` runs both and raises one ``DataError`` listing everything. The
event-sized tables get the same checks in SQL (``io.events``), so they are never held in pandas.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from healthscore.errors import DataError, Problem
from healthscore.io._rules import (
    _DATE_ORDER,
    _KIND_FIX,
    _KIND_WORD,
    _RANGE_FIX,
    _REFERENCE_FIX,
    MAX_EXAMPLES,
    _as_text,
    _range_text,
    show_id,
    show_value,
)
from healthscore.io.events import EVENT_SIZED, EventTable, check_event_table
from healthscore.io.schema import SURVEY_RANGES, TABLES, Column, Table, is_in

_TS_MIN, _TS_MAX = pd.Timestamp.min, pd.Timestamp.max


@dataclass
class NormalisedTable:
    """One table in the contract's dtypes, with what was wrong with it."""

    frame: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: columns that were absent from the input (required ones are problems; optional ones are filled empty)
    missing_columns: set[str] = field(default_factory=set)


def _positions(mask: pd.Series | np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.asarray(mask, dtype=bool))


class _Labeller:
    """Names a row for examples: by the table's key where it has one, else ``row N`` (first data row = 1)."""

    def __init__(self, table: Table, frame: pd.DataFrame) -> None:
        self.key_name = table.key[0] if len(table.key) == 1 and table.key[0] in frame.columns else None
        self.key = frame[self.key_name] if self.key_name else None
        # a duplicated key names two rows: fall back to the row number there
        self.ambiguous = None if self.key is None else self.key.duplicated(keep=False).to_numpy(dtype=bool)

    def __call__(self, pos: int) -> str:
        if self.key is not None and not self.ambiguous[pos]:
            value = self.key.iat[pos]
            if not pd.isna(value):
                return f"{self.key_name} {show_id(value)}"
        return f"row {pos + 1}"

    def examples(self, mask, values: pd.Series | None = None) -> list[str]:
        """Labels of the first rows where ``mask`` holds, with the offending value if ``values`` is given."""
        out = []
        for pos in _positions(mask)[:MAX_EXAMPLES]:
            label = self(int(pos))
            if values is None:
                out.append(label)
            elif ptypes.is_float_dtype(values.dtype):
                out.append(f"{label}: {values.iat[pos]:g}")
            else:
                out.append(f"{label}: {show_value(values.iat[pos])}")
        return out


# ---------------------------------------------------------------- parsing one column


def _stripped(text: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Text with surrounding blanks removed, and where it is empty (missing)."""
    stripped = text.str.strip()
    empty = (stripped.isna() | (stripped == "")).to_numpy(dtype=bool)
    return stripped, empty


def _parse_datetime(raw: pd.Series, *, date_only: bool) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse to datetime64[ns] naive UTC; returns (values, missing, unparseable)."""
    if ptypes.is_datetime64_any_dtype(raw.dtype):
        values = raw
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        missing = values.isna().to_numpy()
        bad = np.zeros(len(values), dtype=bool)
    else:
        text, missing = _stripped(_as_text(raw))
        objects = text.to_numpy(dtype=object, na_value=None)
        objects[missing] = None
        parsed = pd.to_datetime(objects, format="ISO8601", errors="coerce", utc=True)
        values = pd.Series(parsed.tz_convert(None), index=raw.index)
        bad = ~missing & values.isna().to_numpy()
    # datetime64[ns] spans 1677-2262; pandas 3 parses wider, so out-of-span values count as unparseable
    outside = ((values < _TS_MIN) | (values > _TS_MAX)).to_numpy(dtype=bool)
    if outside.any():
        values = values.mask(outside)
        bad = bad | outside
    values = values.astype("datetime64[ns]")
    if date_only:
        values = values.dt.normalize()
    return values, missing, bad


def _parse_number(raw: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse to float64; returns (values, missing, unparseable). Infinite values are unparseable."""
    if ptypes.is_numeric_dtype(raw.dtype) and not ptypes.is_bool_dtype(raw.dtype):
        values = raw.to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(values)
    else:
        text, missing = _stripped(_as_text(raw))
        parsed = pd.to_numeric(text.mask(missing), errors="coerce")
        values = pd.Series(parsed).to_numpy(dtype="float64", na_value=np.nan)
    bad = ~missing & ~np.isfinite(values)
    values = np.where(bad, np.nan, values)
    return pd.Series(values, index=raw.index, dtype="float64"), missing, bad


def _empty_column(column: Column, n: int) -> pd.Series:
    if column.kind in ("date", "timestamp"):
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
    if column.kind in ("number", "integer"):
        return pd.Series(np.nan, index=range(n), dtype="float64")
    return pd.Series(pd.NA, index=range(n), dtype="string")


def normalise_table(name: str, raw: pd.DataFrame) -> NormalisedTable:
    """Parse one raw table into the contract's dtypes, noting every per-cell problem; ``raw`` stays as is."""
    table = TABLES[name]
    n = len(raw)
    raw = raw.reset_index(drop=True)  # a new frame: positions are the row numbers used in messages
    out = NormalisedTable(frame=pd.DataFrame(index=range(n)))
    unknown = [str(c) for c in raw.columns if c not in table.column_names]
    if unknown:
        out.warnings.append(
            f"{name}: unknown column{'s' if len(unknown) > 1 else ''} ignored: "
            f"{', '.join(show_id(c) for c in unknown)} (not in the contract, so not used)"
        )
    present = [c for c in table.columns if c.name in raw.columns]
    for column in table.columns:
        if column.name in raw.columns:
            continue
        out.missing_columns.add(column.name)
        if column.required:
            found = ", ".join(show_id(c) for c in raw.columns[:20]) or "none"
            fix = f"add a column named {column.name} (columns found: {found})"
            if len(raw.columns) == 1 and any(sep in str(raw.columns[0]) for sep in ";\t|"):
                fix += "; the file seems to use another separator: write it with commas"
            out.problems.append(Problem(name, column.name, "required column is missing", fix=fix))

    columns: dict[str, pd.Series] = {}
    labeller: _Labeller | None = None  # made at the first problem, once the key column is parsed
    # text first: the key names the rows in every later example
    for column in sorted(present, key=lambda c: c.kind != "string"):
        series = raw[column.name]
        if isinstance(series, pd.DataFrame):  # duplicated header: take the first, warn about the rest
            series = series.iloc[:, 0]
            out.warnings.append(f"{name}: column {column.name} appears more than once; the first one is used")
        if column.kind == "string":
            values = _as_text(series)
            missing = values.isna().to_numpy()
            if column.required and not column.nullable:
                # a blank reason or id says nothing: count whitespace-only cells as empty
                missing = missing | (values.str.strip() == "").fillna(False).to_numpy(dtype=bool)
            bad = np.zeros(n, dtype=bool)
        elif column.kind in ("date", "timestamp"):
            values, missing, bad = _parse_datetime(series, date_only=column.kind == "date")
        else:
            values, missing, bad = _parse_number(series)
            if column.kind == "integer":
                v = values.to_numpy()
                fractional = np.isfinite(v) & (v != np.floor(v))
                bad = bad | fractional
                values = values.mask(fractional)
        columns[column.name] = values
        if column.name in (table.key or ()) and column.kind == "string":
            out.frame[column.name] = values  # so the labeller can name rows while the rest is parsed
        if labeller is None and (bad.any() or (column.required and not column.nullable and missing.any())):
            labeller = _Labeller(table, out.frame)
        if column.required and not column.nullable and missing.any():
            out.problems.append(
                Problem(name, column.name, "empty but required", int(missing.sum()),
                        labeller.examples(missing), fix=f"fill in {column.name} or drop those rows")
            )
        if bad.any():
            out.problems.append(
                Problem(name, column.name, f"not {_KIND_WORD[column.kind]}", int(bad.sum()),
                        labeller.examples(bad, series), fix=_KIND_FIX[column.kind])
            )

    frame = pd.DataFrame(
        {c.name: columns[c.name] if c.name in columns else _empty_column(c, n) for c in table.columns},
        index=pd.RangeIndex(n),
    )
    if name == "accounts":
        frame["segment"] = frame["segment"].fillna("unknown").astype("string")
    if name == "usage_events":
        frame["quantity"] = frame["quantity"].fillna(1.0)
    out.frame = frame
    return out


# ---------------------------------------------------------------- checks across rows and tables


def _check_keys(name: str, table: Table, frame: pd.DataFrame, labeller: _Labeller) -> list[Problem]:
    if len(table.key) != 1:
        return []
    key = frame[table.key[0]]
    dup = (key.duplicated(keep=False) & key.notna()).to_numpy(dtype=bool)
    if not dup.any():
        return []
    rows = pd.Series(np.arange(1, len(key) + 1))[dup].groupby(key[dup].to_numpy(), sort=False)
    examples = [
        f"{show_id(k)} (rows {', '.join(str(r) for r in list(g)[:3])}{', …' if len(g) > 3 else ''})"
        for k, g in itertools.islice(rows, MAX_EXAMPLES)
    ]
    singular = table.key[0].removesuffix("_id")
    return [Problem(name, table.key[0], "duplicate key", int(dup.sum()), examples,
                    fix=f"keep one row per {table.key[0]}: each {singular} must appear once")]


def _check_references(name: str, frame: pd.DataFrame, account_ids: pd.Series) -> list[Problem]:
    ids = frame["account_id"]
    unknown = ids.notna().to_numpy(dtype=bool) & ~is_in(ids, account_ids)
    if not unknown.any():
        return []
    distinct = pd.unique(ids[unknown].to_numpy(dtype=object))
    fix = _REFERENCE_FIX.get(name, "add the account or drop those rows")
    return [Problem(name, "account_id", "not in accounts", int(unknown.sum()),
                    [show_id(v) for v in distinct[:MAX_EXAMPLES]], fix=fix)]


def _check_allowed(name: str, column: Column, frame: pd.DataFrame, labeller: _Labeller) -> list[Problem]:
    values = frame[column.name]
    bad = (values.notna() & ~values.isin(column.allowed)).to_numpy(dtype=bool)
    if not bad.any():
        return []
    allowed = ", ".join(column.allowed)
    fix = f"use one of {allowed}" + (", or leave it empty" if not column.required or column.nullable else "")
    if name == "contracts" and column.name == "outcome":
        fix = "use renewed or churned, or leave it empty while the renewal is not decided"
    return [Problem(name, column.name, f"not one of {allowed}", int(bad.sum()),
                    labeller.examples(bad, values), fix=fix)]


def _check_range(name: str, column: Column, frame: pd.DataFrame, labeller: _Labeller) -> list[Problem]:
    values = frame[column.name].to_numpy()
    bad = np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        if column.low is not None:
            bad |= values < column.low
        if column.high is not None:
            bad |= values > column.high
    if not bad.any():
        return []
    default_fix = f"{column.name} must not be {_range_text(column.low, column.high)}"
    fix = _RANGE_FIX.get((name, column.name), default_fix)
    return [Problem(name, column.name, _range_text(column.low, column.high), int(bad.sum()),
                    labeller.examples(bad, frame[column.name]), fix=fix)]


def _check_survey_scores(frame: pd.DataFrame, labeller: _Labeller) -> list[Problem]:
    problems = []
    for kind, (low, high) in SURVEY_RANGES.items():
        score = frame["score"].to_numpy()
        with np.errstate(invalid="ignore"):
            of_kind = (frame["kind"] == kind).fillna(False).to_numpy(dtype=bool)
            bad = of_kind & ((score < low) | (score > high))
        if bad.any():
            problems.append(Problem("surveys", "score", f"not between {low:g} and {high:g} for kind {kind}",
                                    int(bad.sum()), labeller.examples(bad, frame["score"]),
                                    fix=f"{kind} scores run from {low:g} to {high:g}"))
    return problems


def _check_order(name: str, earlier: str, later: str, strict: bool, fix: str, frame: pd.DataFrame,
                 labeller: _Labeller) -> list[Problem]:
    a, b = frame[earlier], frame[later]
    bad = ((b <= a) if strict else (b < a)).fillna(False).to_numpy(dtype=bool)
    if not bad.any():
        return []
    message = f"{'not after' if strict else 'before'} {earlier}"
    return [Problem(name, later, message, int(bad.sum()), labeller.examples(bad), fix=fix)]


def check_tables(tables: Mapping[str, NormalisedTable | None]) -> list[Problem]:
    """Checks across rows and tables on normalised frames; columns that were missing are skipped."""
    problems: list[Problem] = []
    accounts = tables.get("accounts")
    account_ids = None
    if accounts is not None and "account_id" not in accounts.missing_columns:
        account_ids = accounts.frame["account_id"].dropna()
    for name, table in TABLES.items():
        entry = tables.get(name)
        if entry is None:
            continue
        frame, missing = entry.frame, entry.missing_columns
        labeller = _Labeller(table, frame)
        if table.key and not set(table.key) & missing:
            problems += _check_keys(name, table, frame, labeller)
        if table.references_account and account_ids is not None and "account_id" not in missing:
            problems += _check_references(name, frame, account_ids)
        for column in table.columns:
            if column.name in missing:
                continue
            if column.allowed:
                problems += _check_allowed(name, column, frame, labeller)
            if column.low is not None or column.high is not None:
                problems += _check_range(name, column, frame, labeller)
        if name == "surveys" and not {"kind", "score"} & missing:
            problems += _check_survey_scores(frame, labeller)
        for t, earlier, later, strict, fix in _DATE_ORDER:
            if t == name and not {earlier, later} & missing:
                problems += _check_order(name, earlier, later, strict, fix, frame, labeller)
    return problems


@dataclass(frozen=True)
class EventFile:
    """An event-sized table's file, validated by DuckDB (``io.events``) instead of being read by pandas."""

    path: Path
    fmt: str  # "parquet" or "csv"


def validate_tables(
    raw: Mapping[str, pd.DataFrame | EventFile | None],
    *,
    problems: Sequence[Problem] = (),
    source: str = "dataset",
    digest: bool = True,
    before=None,
) -> tuple[dict[str, pd.DataFrame | EventTable | None], list[str]]:
    """Normalise and check every present table; raise one ``DataError`` with ``problems`` plus all found.

    ``raw`` maps table names to frames (None = absent); an event-sized table (``events.EVENT_SIZED``) may
    also be an ``EventFile``. Small tables are parsed with pandas; event-sized ones — file or frame — are
    validated by SQL (``events.check_event_table``) with the same messages, and come back as ``EventTable``
    references, never as frames. Presence of required tables is the caller's check, since only the caller
    knows whether a file or a frame was expected. ``digest=False``: their content hash is left for later
    (``EventTable.content_digest``). ``before``: their scan also finds each time column's last value
    strictly before it (``EventTable.last_before``).
    """
    found: list[Problem] = list(problems)
    warnings: dict[str, list[str]] = {name: [] for name in TABLES}
    normalised: dict[str, NormalisedTable | None] = {}
    for name in TABLES:
        frame = raw.get(name)
        if frame is None or name in EVENT_SIZED:
            normalised[name] = None
            continue
        entry = normalise_table(name, frame)
        found += entry.problems
        warnings[name] += entry.warnings
        normalised[name] = entry
        if TABLES[name].required and len(frame) == 0:
            found.append(Problem(name, None, "has no rows", fix=f"{name} must list at least one row"))
    accounts = normalised.get("accounts")
    account_ids = None
    if accounts is not None and "account_id" not in accounts.missing_columns:
        account_ids = accounts.frame["account_id"].dropna()
    events: dict[str, EventTable | None] = {}
    event_checks: list[Problem] = []
    for name in EVENT_SIZED:
        given = raw.get(name)
        if given is None:
            events[name] = None
            continue
        if isinstance(given, EventFile):
            check = check_event_table(name, path=given.path, fmt=given.fmt, account_ids=account_ids, digest=digest,
                                      before=before)
        else:
            check = check_event_table(name, frame=given, account_ids=account_ids, digest=digest, before=before)
        found += check.problems
        event_checks += check.check_problems
        warnings[name] += check.warnings
        events[name] = check.table
    found += check_tables(normalised)
    found += event_checks
    if found:
        order = {name: i for i, name in enumerate(TABLES)}
        found.sort(key=lambda p: order.get(p.table, -1))  # stable: keeps each table's problems in check order
        raise DataError(found, source=source)
    tables: dict[str, pd.DataFrame | EventTable | None] = {
        name: (entry.frame if entry is not None else None) for name, entry in normalised.items()
    }
    tables.update(events)
    return tables, [w for name in TABLES for w in warnings[name]]
