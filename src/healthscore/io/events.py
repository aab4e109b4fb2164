"""Event-sized tables (usage events, tickets, touchpoints): read, validated and normalised by DuckDB SQL.

These tables grow with every user's every click, so no command holds them in pandas (CONTRACT §6 "Scale").
An ``EventTable`` is a reference to the rows — a Parquet or CSV file, or a frame already in memory — plus
the SQL that turns the raw cells into the contract's values (``normalised_sql``). Validation is one scan
that counts every problem ``validate.normalise_table`` and ``validate.check_tables`` would report, then a
few small queries for the examples, so the messages are the same as for the small tables (built by the
same helpers: ``show_id``, ``show_value``, the same fixes).

How text cells are parsed without pandas, and still exactly as pandas would:

- a *fast path* in SQL accepts only cells whose value is certain (``2024-01-31``, ``2024-01-31 14:05:00``,
  ``2024-01-31T14:05:00.123Z``, ``+02:00`` offsets; plain decimal numbers) and computes that value;
- every other non-empty cell is *delegated*: its distinct texts are parsed by pandas (``format="ISO8601"``,
  ``to_numeric``) and the ones pandas accepts are kept as a small lookup table (text → value) joined in.
  Bad cells are the delegated ones pandas rejects too. Clean data in the usual formats delegates nothing.

``EventTable.to_pandas`` materialises the normalised rows as ``validate.normalise_table`` would give them
(file order); it is for tests and small tools, never called by the commands.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import itertools
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from healthscore.errors import Problem
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
from healthscore.io.schema import TABLES, Column, Table

#: the tables read by DuckDB from their files (the others are small and read with pandas)
EVENT_SIZED: tuple[str, ...] = ("usage_events", "tickets", "touchpoints")

#: what Python's ``str.strip()`` removes (so SQL strips the same blanks as the pandas route), as an RE2 class:
#: ``trim(x, chars)`` with this many characters is ten times slower than a regular expression
_WS_CLASS = (r"[\t\n\x0b\x0c\r\x1c-\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}"
             r"\x{205f}\x{3000}]")
#: the fast path for timestamps: a date, optionally a time (hh:mm, seconds and up to 9 decimals optional)
#: and a zone (Z or an offset); anything else is left to pandas
_FAST_TS = (r"^(\d{4}-\d{2}-\d{2})(?:[T ]([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(\.\d{1,9})?)?"
            r"(Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?)?$")
_FAST_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?$"
#: datetime64[ns] spans 1677-09-21 … 2262-04-11, as TIMESTAMP_NS does: casting outside it gives NULL
_NS_TYPE = "TIMESTAMP_NS"
_FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "UHUGEINT")


def _read_errors() -> tuple[type[BaseException], ...]:
    import duckdb

    return (duckdb.Error,)


def _is_read_error(exc: BaseException) -> bool:
    """A problem with the file (unreadable, ragged CSV, bad bytes), not with our SQL."""
    import duckdb

    bugs = (duckdb.BinderException, duckdb.CatalogException, duckdb.ParserException, duckdb.InternalException,
            duckdb.NotImplementedException, duckdb.InterruptException)  # interrupted: ScanCancel, not the file
    return isinstance(exc, duckdb.Error) and not isinstance(exc, bugs)


_READ_ERRORS = _read_errors()


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


class ScanCancelled(Exception):
    """The thread's scans were cancelled (``ScanCancel.cancel``): nobody wants their result any more."""


class ScanCancel:
    """Lets one thread stop the DuckDB scans another runs inside ``cancellable(token)``: ``cancel()``
    interrupts the query running now, and every later ``connect`` on that thread raises ``ScanCancelled``.

    For a scan run beside other work (``jobs.side_by_side``: score, train, retrain): when that work fails, the process
    can report it and exit at once instead of waiting for a scan of 50M events whose result is not wanted.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list = []
        self.cancelled = False

    def cancel(self, scan: Future | None = None, *, poll: float = 0.05) -> None:
        """Stop the scans; with ``scan`` (the future running them), return once it has ended.

        DuckDB forgets an interrupt that comes between two queries, so until the scan has ended its
        connections are interrupted again every ``poll`` seconds.
        """
        with self._lock:
            self.cancelled = True
        self._interrupt()
        while scan is not None and not wait([scan], timeout=poll).done:
            self._interrupt()

    def _interrupt(self) -> None:
        # under the lock: a connection is let go (``close``) under it too, so none is interrupted as it closes
        with self._lock:
            for con in self._open:
                with contextlib.suppress(Exception):
                    con.interrupt()

    def _watch(self, con) -> None:
        with self._lock:
            if not self.cancelled:
                self._open.append(con)
                return
        con.close()
        raise ScanCancelled("the scan was cancelled")

    def _close(self, con) -> None:
        with self._lock:
            self._open = [c for c in self._open if c is not con]
            con.close()


_scans = threading.local()


@contextlib.contextmanager
def cancellable(token: ScanCancel) -> Iterator[ScanCancel]:
    """Every connection this thread opens inside the block can be interrupted by ``token.cancel()``."""
    before = getattr(_scans, "token", None)
    _scans.token = token
    try:
        yield token
    finally:
        _scans.token = before


def close(con) -> None:
    """Close a connection from ``connect``; inside ``cancellable`` its token first lets go of it, so that
    ``ScanCancel.cancel`` never interrupts a connection while it is being closed."""
    token = getattr(_scans, "token", None)
    if token is None:
        con.close()
    else:
        token._close(con)


def connect(*, memory_limit: str | None = None, threads: int | None = None):
    """A DuckDB connection with UTC as its zone (timestamps with a zone are converted to UTC); inside
    ``cancellable`` it is one the token can interrupt."""
    import duckdb

    con = duckdb.connect()
    token = getattr(_scans, "token", None)
    if token is not None:
        token._watch(con)
    con.execute("SET TimeZone = 'UTC'")
    if memory_limit is not None:
        con.execute(f"SET memory_limit = {literal(memory_limit)}")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    return con


# ---------------------------------------------------------------- how one raw column becomes a contract column


@dataclass(frozen=True)
class _ColumnPlan:
    """SQL expressions over the raw row ``r`` (and lookup ``lk_<column>``) for one contract column."""

    column: Column
    raw: str | None  # quoted raw column, None when the column is absent
    raw_type: str = "VARCHAR"
    #: the cell as the pandas route shows it in "not a …" examples: "float" formats with :g, else show_value
    shown_as: str = "text"
    value: str = "NULL"
    missing: str = "FALSE"
    bad: str = "FALSE"
    #: text whose value pandas decides (``lk_<column>`` maps it), and the lookup itself
    delegated: str | None = None
    lookup: pa.Table | None = None


def _is_text_type(raw_type: str) -> bool:
    return raw_type == "VARCHAR" or raw_type.startswith("VARCHAR")


def _text_expr(raw: str, raw_type: str, whole_floats: bool) -> str:
    """The raw cell as text, as ``validate._as_text`` writes it (empty → NULL)."""
    if _is_text_type(raw_type):
        return f"NULLIF({raw}, '')"
    if raw_type == "BOOLEAN":
        return f"CASE WHEN {raw} THEN 'True' WHEN NOT {raw} THEN 'False' END"
    if raw_type in _FLOAT_TYPES:
        if whole_floats:
            return f"CASE WHEN isfinite({raw}) THEN CAST(CAST({raw} AS BIGINT) AS VARCHAR) END"
        return f"CASE WHEN NOT isnan({raw}) THEN CAST({raw} AS VARCHAR) END"
    return f"NULLIF(CAST({raw} AS VARCHAR), '')"


def _strip(text: str) -> str:
    """``text`` without surrounding blanks (as ``str.strip``); cells without any are left alone, cheaply."""
    ends = literal(f"^{_WS_CLASS}|{_WS_CLASS}$")
    both = literal(f"^{_WS_CLASS}+|{_WS_CLASS}+$")
    return f"(CASE WHEN regexp_matches({text}, {ends}) THEN regexp_replace({text}, {both}, '', 'g') ELSE {text} END)"


def _blank(text: str) -> str:
    """The text is empty once stripped (NULL stays NULL).

    A text whose first character is printable ASCII other than a space cannot be blank, and most are such:
    the regular expression runs only on the others (measured on 50M usage events: the validation scan took
    5.7 s with it on every cell, 4.5 s so).
    """
    return (f"(CASE WHEN ord({text}) > 32 AND ord({text}) < 127 THEN FALSE "
            f"ELSE regexp_full_match({text}, {literal(_WS_CLASS + '*')}) END)")


def _fast_timestamp(s: str) -> str:
    """The fast path's value (TIMESTAMP_NS, UTC) of stripped text ``s``, NULL when it is not certain."""
    m = f"regexp_extract({s}, {literal(_FAST_TS)}, ['d', 'h', 'mi', 'sec', 'frac', 'z'])"
    local = (f"TRY_CAST(m.d || ' ' || coalesce(nullif(m.h, ''), '00') || ':' || coalesce(nullif(m.mi, ''), '00')"
             f" || ':' || coalesce(nullif(m.sec, ''), '00') || m.frac AS {_NS_TYPE})")
    offset_min = ("CASE WHEN m.z IN ('', 'Z') THEN 0 ELSE (CASE WHEN m.z[1] = '-' THEN -1 ELSE 1 END) * "
                  "(CAST(m.z[2:3] AS INTEGER) * 60 + coalesce(TRY_CAST(nullif(replace(m.z[4:], ':', ''), '') "
                  "AS INTEGER), 0)) END")
    shifted = f"make_timestamp_ns(epoch_ns({local}) - CAST({offset_min} AS BIGINT) * 60000000000)"
    # a one-element list_transform names the regexp's struct once per cell (SQL has no let)
    return (f"(list_transform([{m}], lambda m: CASE WHEN m.d = '' THEN NULL WHEN m.z IN ('', 'Z') THEN {local} "
            f"ELSE TRY_CAST({shifted} AS {_NS_TYPE}) END)[1])")


def _plan_column(column: Column, raw: str | None, raw_type: str, *, whole_floats: bool = False) -> _ColumnPlan:
    if raw is None:
        sql_type = {"string": "VARCHAR", "timestamp": _NS_TYPE, "date": _NS_TYPE}.get(column.kind, "DOUBLE")
        return _ColumnPlan(column, None, value=f"CAST(NULL AS {sql_type})")
    strict_required = column.required and not column.nullable
    if column.kind == "string":
        text = _text_expr(raw, raw_type, whole_floats)
        missing = f"({text}) IS NULL"
        if strict_required:
            missing = f"(({text}) IS NULL OR {_blank(text)})"
        return _ColumnPlan(column, raw, raw_type, value=text, missing=missing)
    if column.kind in ("timestamp", "date"):
        if raw_type.startswith("TIMESTAMP") or raw_type == "DATE":
            if raw_type.startswith("TIMESTAMP WITH TIME ZONE") or raw_type == "TIMESTAMPTZ":
                value = f"TRY_CAST(timezone('UTC', {raw}) AS {_NS_TYPE})"
            else:
                value = f"TRY_CAST({raw} AS {_NS_TYPE})"
            if column.kind == "date":
                value = f"CAST(date_trunc('day', {value}) AS {_NS_TYPE})"
            return _ColumnPlan(column, raw, raw_type, value=value, missing=f"{raw} IS NULL",
                               bad=f"({raw} IS NOT NULL AND {value} IS NULL)")
        s = _strip(_text_expr(raw, raw_type, whole_floats))
        fast = _fast_timestamp(s)
        if column.kind == "date":
            fast = f"CAST(date_trunc('day', {fast}) AS {_NS_TYPE})"
        shown = "float" if raw_type in _FLOAT_TYPES else "text"
        return _ColumnPlan(column, raw, raw_type, shown_as=shown, value=fast, missing=f"coalesce({s}, '') = ''",
                           delegated=s)
    # number (or integer: not in any event-sized table)
    if raw_type in _FLOAT_TYPES or raw_type in _INTEGER_TYPES or raw_type.startswith("DECIMAL"):
        value = f"CASE WHEN NOT isnan(CAST({raw} AS DOUBLE)) THEN CAST({raw} AS DOUBLE) END"
        return _ColumnPlan(column, raw, raw_type, shown_as="float" if raw_type in _FLOAT_TYPES else "text",
                           value=value, missing=f"({value}) IS NULL",
                           bad=f"(({value}) IS NOT NULL AND NOT isfinite({value}))")
    s = _strip(_text_expr(raw, raw_type, whole_floats))
    fast = f"CASE WHEN regexp_full_match({s}, {literal(_FAST_NUMBER)}) THEN TRY_CAST({s} AS DOUBLE) END"
    fast = f"CASE WHEN isfinite({fast}) THEN {fast} END"
    return _ColumnPlan(column, raw, raw_type, value=fast, missing=f"coalesce({s}, '') = ''", delegated=s)


def _with_lookup(plan: _ColumnPlan, lookup: pa.Table | None) -> _ColumnPlan:
    """The plan once its delegated texts are decided: fast value, else the lookup's; bad where neither."""
    if plan.delegated is None:
        return plan
    lk = f"lk_{plan.column.name}"
    fallback = f"{lk}.value" if lookup is not None else "NULL"
    value = f"CASE WHEN {plan.missing} THEN NULL ELSE coalesce({plan.value}, {fallback}) END"
    return _ColumnPlan(plan.column, plan.raw, plan.raw_type, plan.shown_as, value=value, missing=plan.missing,
                       bad=f"(NOT {plan.missing} AND ({value}) IS NULL)", delegated=plan.delegated,
                       lookup=lookup)


def _parse_delegated(column: Column, texts: list[str]) -> pa.Table | None:
    """Pandas' verdict on texts the fast path left open: (text, value) for those it accepts, else None."""
    if not texts:
        return None
    objects = np.array(texts, dtype=object)
    if column.kind in ("timestamp", "date"):
        parsed = pd.to_datetime(objects, format="ISO8601", errors="coerce", utc=True)
        values = pd.Series(parsed.tz_convert(None))
        lo, hi = pd.Timestamp.min, pd.Timestamp.max
        values = values.mask((values < lo) | (values > hi)).astype("datetime64[ns]")
        if column.kind == "date":
            values = values.dt.normalize()
        keep = values.notna().to_numpy()
        array = pa.array(values[keep].to_numpy(dtype="datetime64[ns]"), type=pa.timestamp("ns"))
    else:
        values = pd.to_numeric(pd.Series(objects, dtype="string"), errors="coerce")
        values = values.to_numpy(dtype="float64", na_value=np.nan)
        keep = np.isfinite(values)
        array = pa.array(values[keep], type=pa.float64())
    if not keep.any():
        return None
    return pa.table({"raw": pa.array(objects[keep].tolist(), type=pa.string()), "value": array})


# ---------------------------------------------------------------- the reference


@dataclass(frozen=True, eq=False)
class EventTable:
    """A validated event-sized table: where its rows are and the SQL that normalises them.

    ``fmt`` is ``"parquet"``, ``"csv"`` or ``"frame"`` (an Arrow table in memory). ``rows``, ``ranges`` (min
    and max of each time column, normalised) and ``digest`` (order-independent hash of the normalised rows)
    come from the validation scan. Register it in a connection with ``register``; materialise it (tests,
    small tools only) with ``to_pandas``.
    """

    name: str
    fmt: str
    path: str | None
    plans: tuple[_ColumnPlan, ...]
    arrow: pa.Table | None = None
    csv_names: tuple[str, ...] = ()
    #: the CSV has rows with fewer fields than its header (read on one thread, padded with empty cells)
    csv_padded: bool = False
    rows: int = 0
    ranges: dict = field(default_factory=dict)
    digest: str = ""
    #: (a time, {time column: its last value strictly before that time}), from the validation scan
    seen_before: tuple | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(p.column.name for p in self.plans)

    @property
    def present_columns(self) -> tuple[str, ...]:
        """Contract columns the input has (absent optional ones read as empty)."""
        return tuple(p.column.name for p in self.plans if p.raw is not None)

    def source_sql(self, con, *, row_numbers: bool = False) -> str:
        """A FROM item ``r`` over the raw rows (registering what it needs in ``con``), with ``_rn`` (1-based)."""
        if self.fmt == "parquet":
            rn = ", file_row_number + 1 AS _rn" if row_numbers else ""
            return (f"(SELECT *{rn} FROM read_parquet({literal(self.path)}"
                    f"{', file_row_number = true' if row_numbers else ''})) AS r")
        if self.fmt == "csv":
            relation = _csv_relation(self.path, self.csv_names, self.csv_padded)
            if row_numbers:
                return f"(SELECT row_number() OVER () AS _rn, * FROM {relation}) AS r"
            return f"{relation} AS r"
        name = f"_hs_raw_{self.name}"
        con.register(name, self.arrow)
        if row_numbers:  # an Arrow scan keeps its order for a window without ORDER BY, as a CSV's does
            return f"(SELECT row_number() OVER () AS _rn, * FROM {name}) AS r"
        return f"(SELECT * FROM {name}) AS r"

    def _joins(self, con) -> str:
        out = []
        for plan in self.plans:
            if plan.lookup is not None:
                lk = f"lk_{plan.column.name}"
                con.register(f"_hs_{lk}_{self.name}", plan.lookup)
                out.append(f"LEFT JOIN _hs_{lk}_{self.name} AS {lk} ON {lk}.raw = {plan.delegated}")
        return " ".join(out)

    def select_sql(self, con, *, row_numbers: bool = False, extra: Iterable[str] = ()) -> str:
        """SELECT of the normalised columns (contract order), plus ``extra`` expressions over ``r``."""
        cols = [f"{_normalised(self.name, p)} AS {ident(p.column.name)}" for p in self.plans]
        if row_numbers:
            cols.insert(0, "r._rn AS _rn")
        cols += list(extra)
        return f"SELECT {', '.join(cols)} FROM {self.source_sql(con, row_numbers=row_numbers)} {self._joins(con)}"

    def content_digest(self) -> str:
        """The order-independent hash of the normalised rows (``io.dataset.fingerprint``), scanned when the
        validation left it out (``check_event_table(digest=False)``); computed once."""
        if self.digest:
            return self.digest
        if "digest" not in self._cache:
            con = connect()
            try:
                row = con.execute(f"SELECT count(*), {', '.join(_hash_aggregates(self))} "
                                  f"FROM {self.source_sql(con)} {self._joins(con)}").fetchall()[0]
            finally:
                close(con)
            self._cache["digest"] = _digest_of(self.plans, *row)
        return self._cache["digest"]

    def register(self, con, view: str) -> str:
        """Create the temp view ``view`` of the normalised rows in ``con``; returns ``view``."""
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {self.select_sql(con)}")
        return view

    def to_pandas(self) -> pd.DataFrame:
        """The normalised rows in input order, with ``validate.normalise_table``'s dtypes (materialises!)."""
        if "frame" not in self._cache:
            con = connect()
            try:
                table = con.sql(self.select_sql(con, row_numbers=True) + " ORDER BY _rn").to_arrow_table()
            finally:
                close(con)
            frame = table.drop(["_rn"]).to_pandas()
            out = {}
            for plan in self.plans:
                values = frame[plan.column.name]
                if plan.column.kind == "string":
                    out[plan.column.name] = values.astype("object").where(values.notna(), None).astype("string")
                elif plan.column.kind in ("date", "timestamp"):
                    out[plan.column.name] = pd.to_datetime(values).astype("datetime64[ns]")
                else:
                    out[plan.column.name] = pd.to_numeric(values).astype("float64")
            self._cache["frame"] = pd.DataFrame(out, index=pd.RangeIndex(len(frame)))
        return self._cache["frame"]

    def distinct(self, column: str, *, limit: int | None = None) -> list[str]:
        """Distinct non-empty values of a text column (sorted), through SQL; cached."""
        key = ("distinct", column, limit)
        if key not in self._cache:
            con = connect()
            try:
                view = self.register(con, "ev")
                lim = f" LIMIT {int(limit)}" if limit is not None else ""
                rows = con.execute(f"SELECT DISTINCT {ident(column)} FROM {view} WHERE {ident(column)} IS NOT NULL "
                                   f"ORDER BY 1{lim}").fetchall()
            finally:
                close(con)
            self._cache[key] = [str(r[0]) for r in rows]
        return self._cache[key]

    def last_before(self, column: str, before: pd.Timestamp) -> pd.Timestamp | None:
        """The latest value of a time column strictly before ``before``: from the validation scan's range when
        that decides it (every value before, or none), else one SQL aggregate (a scan of the column)."""
        low, high = self.ranges.get(column, (None, None))
        before = pd.Timestamp(before)
        if self.seen_before is not None and self.seen_before[0] == before and column in self.seen_before[1]:
            return self.seen_before[1][column]
        if high is not None and pd.notna(high) and pd.Timestamp(high) < before:
            return pd.Timestamp(high)
        if low is not None and pd.notna(low) and pd.Timestamp(low) >= before:
            return None
        con = connect()
        try:
            view = self.register(con, "ev")
            got = con.execute(f"SELECT max({ident(column)}) FROM {view} WHERE {ident(column)} < "
                              f"CAST({literal(pd.Timestamp(before).isoformat())} AS {_NS_TYPE})").fetchall()[0][0]
        finally:
            close(con)
        return None if got is None else pd.Timestamp(got)


def _normalised(table: str, plan: _ColumnPlan) -> str:
    if table == "usage_events" and plan.column.name == "quantity":
        return f"coalesce({plan.value}, 1.0)"
    return plan.value


def _csv_relation(path: str, names: tuple[str, ...], padded: bool = False) -> str:
    """DuckDB's reader of a CSV as pandas reads it: every cell text, the header's names.

    ``padded``: rows with fewer fields than the header get empty cells, as pandas gives them; DuckDB reads
    such a file only on one thread, so it is used only for files that need it.
    """
    columns = "{" + ", ".join(f"{literal(n)}: 'VARCHAR'" for n in names) + "}"
    pad = ", null_padding = true, parallel = false" if padded else ""
    return (f"read_csv({literal(path)}, header = true, auto_detect = false, columns = {columns}, delim = ',', "
            f"quote = '\"', escape = '\"', strict_mode = true, encoding = 'utf-8'{pad})")


# ---------------------------------------------------------------- reading the header / schema


def _pandas_names(header: list[str]) -> list[str]:
    """Column names as pandas.read_csv gives them: a repeated name becomes ``name.1``, ``name.2``…"""
    seen: dict[str, int] = {}
    out = []
    for name in header:
        if name in seen:
            n = seen[name]
            while f"{name}.{n}" in seen:
                n += 1
            seen[name] = n + 1
            name = f"{name}.{n}"
        seen.setdefault(name, 1)
        out.append(name)
    return out


def csv_header(path: Path) -> tuple[list[str] | None, str | None]:
    """The header row of a CSV as pandas names it, or why it cannot be read (the pandas route's messages)."""
    if path.stat().st_size == 0:
        return None, f"{path.name} is empty: it needs at least a header row"
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as exc:
        return None, f"{path.name} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
    if not header:
        return None, f"{path.name} is empty: it needs at least a header row"
    return _pandas_names(header), None


def not_utf8_at(path: Path) -> int | None:
    """The byte offset of the first invalid UTF-8 sequence, streaming the file (an error path only)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            offset += len(block)
    return None


def _raw_schema(con, source: str) -> list[tuple[str, str]]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    return [(str(r[0]), str(r[1])) for r in rows if str(r[0]) not in ("_rn",)]


def _is_pandas_index(name: str) -> bool:
    # pyarrow stores a frame's unnamed non-range index as __index_level_0__; pandas drops it when reading
    return name.startswith("__index_level_") and name.endswith("__")


# ---------------------------------------------------------------- validation


@dataclass
class EventCheck:
    """What validating one event-sized table found."""

    table: EventTable | None
    problems: list[Problem] = field(default_factory=list)
    #: checks across tables (keys, references, values), reported after every table's parsing problems
    check_problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def frame_to_arrow(name: str, frame: pd.DataFrame) -> tuple[pa.Table, list[str]]:
    """A raw frame as Arrow for DuckDB, columns typed as the pandas route reads them, and warnings.

    Columns the pandas route parses from text (anything not numeric nor datetime, or a contract string
    column) become text exactly as ``validate._as_text`` writes them; numeric and datetime columns stay typed.
    """

    table = TABLES[name]
    frame = frame.reset_index(drop=True)
    warnings: list[str] = []
    arrays, names, used = [], [], set()
    for position, raw_name in enumerate(frame.columns):
        key = str(raw_name)
        if key in used:
            if raw_name in table.column_names:
                warnings.append(f"{name}: column {raw_name} appears more than once; the first one is used")
            continue
        used.add(key)
        series = frame.iloc[:, position]
        kind = table.column(raw_name).kind if raw_name in table.column_names else "string"
        dtype = series.dtype
        if kind in ("timestamp", "date") and pd.api.types.is_datetime64_any_dtype(dtype):
            values = series
            if getattr(values.dt, "tz", None) is not None:
                values = values.dt.tz_convert("UTC").dt.tz_localize(None)
            arrays.append(pa.array(values.astype("datetime64[ns]").to_numpy(), type=pa.timestamp("ns"),
                                   mask=values.isna().to_numpy()))
        elif kind == "number" and pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            arrays.append(pa.array(series.to_numpy(dtype="float64", na_value=np.nan), type=pa.float64()))
        else:
            text = _as_text(series)
            arrays.append(pa.array(text.to_numpy(dtype=object, na_value=None), type=pa.string()))
        names.append(key)
    return pa.table(arrays, names=names), warnings


def check_event_table(name: str, *, path: Path | None = None, fmt: str = "frame", frame: pd.DataFrame | None = None,
                      account_ids: pd.Series | None = None, digest: bool = True, before=None) -> EventCheck:
    """Read and validate one event-sized table with DuckDB; the same problems as the pandas route.

    ``digest=False`` leaves the content hash out of the scan (about 2 s of 4 on 50M usage events): the
    table's ``content_digest()`` then computes it if someone asks. ``before``: the scan also finds each time
    column's last value strictly before it, kept for ``EventTable.last_before``.

    ``path`` and ``fmt`` (``parquet``/``csv``) name a file; ``fmt="frame"`` validates ``frame`` (registered in
    DuckDB as Arrow). ``account_ids`` (the accounts table's, when it could be read) checks references.
    A file DuckDB cannot read is one problem ("cannot be read as CSV/Parquet (…)"), as with pandas.
    """
    csv_names: tuple[str, ...] = ()
    arrow, warnings = None, []
    if fmt == "csv":
        header, error = csv_header(path)
        if error:
            return EventCheck(table=None, problems=[Problem(name, None, error, fix=csv_fix(path))])
        csv_names = tuple(header)
    elif fmt == "frame":
        arrow, warnings = frame_to_arrow(name, frame)
    attempts = (False, True) if fmt == "csv" else (False,)
    for padded in attempts:
        con = connect()
        try:
            probe = EventTable(name, fmt, None if path is None else str(path), (), arrow=arrow,
                               csv_names=csv_names, csv_padded=padded)
            out = _check(con, probe, account_ids, digest, before)
            out.warnings = warnings + out.warnings
            return out
        except _READ_ERRORS as exc:
            if not _is_read_error(exc):
                raise
            failure = exc  # a CSV with short rows reads on the second, padded attempt
        finally:
            close(con)
    return EventCheck(table=None, problems=[_unreadable(name, path, fmt, failure)])


def _check(con, probe: EventTable, account_ids: pd.Series | None, digest: bool = True,
           before=None) -> EventCheck:
    name, fmt = probe.name, probe.fmt
    table = TABLES[name]
    out = EventCheck(table=None)
    schema = _raw_schema(con, probe.source_sql(con))
    schema = [(c, t) for c, t in schema if not (fmt == "parquet" and _is_pandas_index(c))]
    raw_names = [c for c, _ in schema]
    types = dict(schema)
    unknown = [c for c in raw_names if c not in table.column_names]

    if unknown:
        out.warnings.insert(0,
            f"{name}: unknown column{'s' if len(unknown) > 1 else ''} ignored: "
            f"{', '.join(show_id(c) for c in unknown)} (not in the contract, so not used)"
        )
    found = ", ".join(show_id(c) for c in raw_names[:20]) or "none"
    for column in table.columns:
        if column.name not in types and column.required:
            fix = f"add a column named {column.name} (columns found: {found})"
            if len(raw_names) == 1 and any(sep in raw_names[0] for sep in ";\t|"):
                fix += "; the file seems to use another separator: write it with commas"
            out.problems.append(Problem(name, column.name, "required column is missing", fix=fix))
    source = probe.source_sql(con)
    plans = []
    for column in table.columns:
        if column.name not in types:
            plans.append(_plan_column(column, None, "VARCHAR"))
            continue
        raw, raw_type = "r." + ident(column.name), types[column.name]
        whole = False
        if column.kind == "string" and raw_type in _FLOAT_TYPES:
            whole = bool(con.execute(
                f"SELECT coalesce(bool_and({raw} = floor({raw}) AND abs({raw}) < 9007199254740992), true) "
                f"FROM {source} WHERE isfinite({raw})").fetchall()[0][0])
        plans.append(_plan_column(column, raw, raw_type, whole_floats=whole))
    # what the fast path left open is decided by pandas, once per distinct text
    decided = []
    for plan in plans:
        if plan.delegated is None:
            decided.append(plan)
            continue
        texts = con.execute(
            f"SELECT DISTINCT {plan.delegated} FROM {source} "
            f"WHERE NOT {plan.missing} AND ({plan.value}) IS NULL").fetchall()
        decided.append(_with_lookup(plan, _parse_delegated(plan.column, [t[0] for t in texts])))
    ref = EventTable(name, fmt, probe.path, tuple(decided), arrow=probe.arrow, csv_names=probe.csv_names,
                     csv_padded=probe.csv_padded)
    before = None if before is None else pd.Timestamp(before)
    stats = _scan(con, ref, account_ids, digest, before)
    out.problems += _parse_problems(con, ref, table, stats)
    out.check_problems += _check_problems(con, ref, table, stats, account_ids)
    ranges = {p.column.name: (stats.get(f"min_{p.column.name}"), stats.get(f"max_{p.column.name}"))
              for p in decided if p.column.kind in ("timestamp", "date") and p.raw is not None}
    content = _digest_of(tuple(decided), stats["rows"], stats["h_sum"], stats["h_xor"]) if digest else ""
    out.table = EventTable(name, fmt, ref.path, ref.plans, arrow=ref.arrow, csv_names=ref.csv_names,
                           csv_padded=ref.csv_padded, rows=int(stats["rows"]),
                           ranges={k: tuple(None if v is None else pd.Timestamp(v) for v in pair)
                                   for k, pair in ranges.items()},
                           digest=content,
                           seen_before=None if before is None else (before, {
                               c: None if stats[f"before_{c}"] is None else pd.Timestamp(stats[f"before_{c}"])
                               for c in ranges}))
    return out


def csv_fix(path: Path) -> str:
    """How to repair an unparseable CSV, guessing a spreadsheet's other separators from the header line."""
    fix = "separate fields with commas and put double quotes around text holding commas, quotes or line breaks"
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as handle:
            header = handle.readline()
    except OSError:
        return fix
    if "," not in header and any(sep in header for sep in ";\t|"):
        return "the file seems to use another separator than commas: " + fix
    return fix


def _unreadable(name: str, path: Path | None, fmt: str, exc: Exception) -> Problem:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if fmt == "csv":
        if "unicode" in first.lower() or "utf" in first.lower():
            at = not_utf8_at(path)
            if at is not None:
                return Problem(name, None, f"{path.name} is not UTF-8 text (byte {at}): save it as UTF-8",
                               fix=csv_fix(path))
        return Problem(name, None, f"{path.name} cannot be read as CSV ({first})", fix=csv_fix(path))
    if fmt == "parquet":
        return Problem(name, None, f"{path.name} cannot be read as Parquet ({first})",
                       fix=f"write {path.name} again with a Parquet writer")
    return Problem(name, None, f"cannot be read ({first})", fix=f"pass {name} as a plain frame")


#: the one scan: per column missing/bad counts, checks across rows, ranges, row count and the digest
def _hash_aggregates(ref: EventTable) -> list[str]:
    """The order-independent content hash of the normalised rows: a sum and an XOR of row hashes."""
    hashed = ", ".join(_normalised(ref.name, p) for p in ref.plans)
    return [f"CAST(sum(CAST(hash({hashed}) AS HUGEINT)) AS VARCHAR) AS h_sum",
            f"CAST(bit_xor(hash({hashed})) AS VARCHAR) AS h_xor"]


def _digest_of(plans: tuple[_ColumnPlan, ...], rows, h_sum, h_xor) -> str:
    return hashlib.sha256(
        repr([(p.column.name, p.column.kind) for p in plans]).encode() + f"{rows}:{h_sum}:{h_xor}".encode()
    ).hexdigest()


def _filled_by_statistics(con, ref: EventTable) -> set[str]:
    """Text columns of a Parquet file whose statistics prove no cell missing: in every row group no null, and
    every value starting with a printable ASCII character (min at least ``!``, max below DEL), so none is
    empty or blank. The validation scan then need not read them at all (about 0.4 s per column on 50M
    rows). Without statistics in some row group (or another format), nothing is proven.
    """
    if ref.fmt != "parquet" or ref.path is None:
        return set()
    texts = {p.column.name: p.raw for p in ref.plans
             if p.raw is not None and p.column.kind == "string" and _is_text_type(p.raw_type)}
    if not texts:
        return set()
    rows = con.execute(
        "SELECT path_in_schema, count(*), "
        "count(*) FILTER (WHERE stats_null_count = 0 AND stats_min_value >= '!' AND stats_max_value < chr(127)) "
        f"FROM parquet_metadata({literal(ref.path)}) GROUP BY path_in_schema").fetchall()
    proven = {str(name) for name, groups, clean in rows if groups and groups == clean}
    return {column for column in texts if column in proven}


def _scan(con, ref: EventTable, account_ids: pd.Series | None, digest: bool = True,
          before: pd.Timestamp | None = None) -> dict:
    table = TABLES[ref.name]
    aggs = ["count(*) AS rows"]
    filled = _filled_by_statistics(con, ref)
    for p in ref.plans:
        if p.raw is None:
            continue
        c = p.column.name
        if c in filled:  # nothing can be missing, and text is never bad: no need to read it for these two
            aggs += [f"CAST(0 AS BIGINT) AS miss_{c}", f"CAST(0 AS BIGINT) AS bad_{c}"]
        else:
            aggs.append(f"count(*) FILTER (WHERE {p.missing}) AS miss_{c}")
            aggs.append(f"count(*) FILTER (WHERE {p.bad}) AS bad_{c}")
        if p.column.kind in ("timestamp", "date"):
            aggs.append(f"min({p.value}) AS min_{c}")
            aggs.append(f"max({p.value}) AS max_{c}")
            if before is not None:  # EventTable.last_before's aggregate, over the values this scan decodes
                aggs.append(f"max({p.value}) FILTER (WHERE ({p.value}) < CAST({literal(before.isoformat())} AS "
                            f"{_NS_TYPE})) AS before_{c}")
        if p.column.allowed:
            allowed = ", ".join(literal(v) for v in p.column.allowed)
            aggs.append(f"count(*) FILTER (WHERE ({p.value}) IS NOT NULL AND ({p.value}) NOT IN ({allowed})) "
                        f"AS allowed_{c}")
        if p.column.low is not None or p.column.high is not None:
            aggs.append(f"count(*) FILTER (WHERE {_out_of_range(p)}) AS range_{c}")
    for earlier, later, strict in _orders(ref):
        aggs.append(f"count(*) FILTER (WHERE {_order_bad(ref, earlier, later, strict)}) AS order_{later}")
    joins = ""
    plans = {p.column.name: p for p in ref.plans}
    if table.references_account and account_ids is not None and plans["account_id"].raw is not None:
        con.register("_hs_accounts", pa.table({"account_id": pa.array(
            pd.unique(account_ids.dropna().astype(str).to_numpy(dtype=object)).tolist(), type=pa.string())}))
        acc = plans["account_id"].value
        joins = f"LEFT JOIN _hs_accounts AS acc ON acc.account_id = {acc}"
        aggs.append(f"count(*) FILTER (WHERE ({acc}) IS NOT NULL AND acc.account_id IS NULL) AS unknown_accounts")
    if digest:
        aggs += _hash_aggregates(ref)
    sql = f"SELECT {', '.join(aggs)} FROM {ref.source_sql(con)} {ref._joins(con)} {joins}"
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchall()[0]))


def _out_of_range(p: _ColumnPlan) -> str:
    parts = []
    if p.column.low is not None:
        parts.append(f"({p.value}) < {float(p.column.low)!r}")
    if p.column.high is not None:
        parts.append(f"({p.value}) > {float(p.column.high)!r}")
    return "(" + " OR ".join(parts) + ")"


def _orders(ref: EventTable) -> list[tuple[str, str, bool]]:

    present = set(ref.present_columns)
    return [(earlier, later, strict) for t, earlier, later, strict, _ in _DATE_ORDER
            if t == ref.name and {earlier, later} <= present]


def _order_bad(ref: EventTable, earlier: str, later: str, strict: bool) -> str:
    plans = {p.column.name: p for p in ref.plans}
    a, b = plans[earlier].value, plans[later].value
    return f"coalesce(({b}) {'<=' if strict else '<'} ({a}), false)"


# ---------------------------------------------------------------- examples (only when something is wrong)


class _SqlLabeller:
    """Names example rows as ``validate._Labeller`` does: by the table's key when unique, else ``row N``."""

    def __init__(self, con, ref: EventTable, table: Table) -> None:
        self.con, self.ref = con, ref
        self.key = table.key[0] if len(table.key) == 1 and table.key[0] in ref.present_columns else None

    def rows(self, where: str, values: str | None = None, limit: int = 5) -> list[tuple]:
        """(row number, key, value) of the first rows where ``where`` holds, in input order."""
        plans = {p.column.name: p for p in self.ref.plans}
        key = plans[self.key].value if self.key else "NULL"
        extra = [f"{key} AS _key", f"{values if values is not None else 'NULL'} AS _value", f"({where}) AS _hit"]
        sql = (f"SELECT _rn, _key, _value FROM ({self.ref.select_sql(self.con, row_numbers=True, extra=extra)}) "
               f"WHERE _hit ORDER BY _rn LIMIT {int(limit)}")
        return self.con.execute(sql).fetchall()

    def labels(self, rows: list[tuple]) -> list[str]:

        keys = [k for _, k, _ in rows if k is not None]
        counts: dict[str, int] = {}
        if self.key and keys:
            plans = {p.column.name: p for p in self.ref.plans}
            key = plans[self.key].value
            wanted = ", ".join(literal(k) for k in set(keys))
            sql = (f"SELECT k, count(*) FROM (SELECT {key} AS k FROM {self.ref.source_sql(self.con)} "
                   f"{self.ref._joins(self.con)}) WHERE k IN ({wanted}) GROUP BY k")
            counts = {str(k): int(n) for k, n in self.con.execute(sql).fetchall()}
        # a key missing in several rows is ambiguous too (pandas' duplicated() pairs missing values)
        out = []
        for rn, key_value, _ in rows:
            if key_value is not None and counts.get(str(key_value), 0) == 1:
                out.append(f"{self.key} {show_id(key_value)}")
            else:
                out.append(f"row {rn}")
        return out

    def examples(self, where: str, values: str | None = None, shown_as: str = "text") -> list[str]:

        rows = self.rows(where, values)
        labels = self.labels(rows)
        if values is None:
            return labels
        out = []
        for label, (_, _, value) in zip(labels, rows):
            if shown_as == "float":
                out.append(f"{label}: {float(value):g}")
            else:
                out.append(f"{label}: {show_value(value)}")
        return out


def _raw_shown(p: _ColumnPlan) -> str:
    """The raw cell as the pandas route shows it (its text; floats as numbers)."""
    if p.shown_as == "float":
        return f"CAST({p.raw} AS DOUBLE)"
    if p.raw_type.startswith("TIMESTAMP") or p.raw_type == "DATE":
        return f"CAST({p.raw} AS VARCHAR)"
    if _is_text_type(p.raw_type):
        return p.raw
    return _text_expr(p.raw, p.raw_type, False)


def _parse_problems(con, ref: EventTable, table: Table, stats: dict) -> list[Problem]:

    problems: list[Problem] = []
    labeller = _SqlLabeller(con, ref, table)
    # text columns first, as normalise_table parses them (the key then names the rows of later examples)
    for p in sorted((p for p in ref.plans if p.raw is not None), key=lambda p: p.column.kind != "string"):
        c = p.column
        missing, bad = int(stats[f"miss_{c.name}"]), int(stats[f"bad_{c.name}"])
        if c.required and not c.nullable and missing:
            problems.append(Problem(ref.name, c.name, "empty but required", missing, labeller.examples(p.missing),
                                    fix=f"fill in {c.name} or drop those rows"))
        if bad:
            problems.append(Problem(ref.name, c.name, f"not {_KIND_WORD[c.kind]}", bad,
                                    labeller.examples(p.bad, _raw_shown(p), p.shown_as), fix=_KIND_FIX[c.kind]))
    return problems


def _check_problems(con, ref: EventTable, table: Table, stats: dict, account_ids) -> list[Problem]:

    problems: list[Problem] = []
    plans = {p.column.name: p for p in ref.plans}
    labeller = _SqlLabeller(con, ref, table)
    if len(table.key) == 1 and table.key[0] in ref.present_columns:
        key = plans[table.key[0]].value
        sql = (f"SELECT k, count(*) AS n, min(_rn) AS first, list(_rn ORDER BY _rn)[1:4] AS rows FROM "
               f"(SELECT {key} AS k, r._rn AS _rn FROM {ref.source_sql(con, row_numbers=True)} {ref._joins(con)}) "
               "WHERE k IS NOT NULL GROUP BY k HAVING count(*) > 1 ORDER BY first")
        dups = con.execute(sql).fetchall()
        if dups:
            total = sum(int(n) for _, n, _, _ in dups)
            examples = [
                f"{show_id(k)} (rows {', '.join(str(r) for r in rows[:3])}{', …' if n > 3 else ''})"
                for k, n, _, rows in itertools.islice(dups, MAX_EXAMPLES)
            ]
            singular = table.key[0].removesuffix("_id")
            problems.append(Problem(ref.name, table.key[0], "duplicate key", total, examples,
                                    fix=f"keep one row per {table.key[0]}: each {singular} must appear once"))
    if "unknown_accounts" in stats and int(stats["unknown_accounts"]):
        acc = plans["account_id"].value
        sql = (f"SELECT a FROM (SELECT a, min(_rn) AS first FROM (SELECT {acc} AS a, r._rn AS _rn FROM "
               f"{ref.source_sql(con, row_numbers=True)} {ref._joins(con)} LEFT JOIN _hs_accounts AS acc "
               f"ON acc.account_id = {acc} WHERE ({acc}) IS NOT NULL AND acc.account_id IS NULL) GROUP BY a) "
               f"ORDER BY first LIMIT {MAX_EXAMPLES}")
        examples = [show_id(a) for (a,) in con.execute(sql).fetchall()]
        problems.append(Problem(ref.name, "account_id", "not in accounts", int(stats["unknown_accounts"]), examples,
                                fix=_REFERENCE_FIX.get(ref.name, "add the account or drop those rows")))
    for p in ref.plans:
        if p.raw is None:
            continue
        c = p.column
        if c.allowed and int(stats.get(f"allowed_{c.name}", 0)):
            allowed_sql = ", ".join(literal(v) for v in c.allowed)
            where = f"({p.value}) IS NOT NULL AND ({p.value}) NOT IN ({allowed_sql})"
            allowed = ", ".join(c.allowed)
            fix = f"use one of {allowed}" + (", or leave it empty" if not c.required or c.nullable else "")
            problems.append(Problem(ref.name, c.name, f"not one of {allowed}", int(stats[f"allowed_{c.name}"]),
                                    labeller.examples(where, p.value), fix=fix))
        if (c.low is not None or c.high is not None) and int(stats.get(f"range_{c.name}", 0)):
            default_fix = f"{c.name} must not be {_range_text(c.low, c.high)}"
            problems.append(Problem(ref.name, c.name, _range_text(c.low, c.high), int(stats[f"range_{c.name}"]),
                                    labeller.examples(_out_of_range(p), p.value, "float"),
                                    fix=_RANGE_FIX.get((ref.name, c.name), default_fix)))
    for t, earlier, later, strict, fix in _DATE_ORDER:
        if t != ref.name or f"order_{later}" not in stats or not int(stats[f"order_{later}"]):
            continue
        message = f"{'not after' if strict else 'before'} {earlier}"
        problems.append(Problem(ref.name, later, message, int(stats[f"order_{later}"]),
                                labeller.examples(_order_bad(ref, earlier, later, strict)), fix=fix))
    return problems


def event_table_from_normalised(name: str, frame: pd.DataFrame) -> EventTable:
    """Wrap a frame already in the contract's dtypes (as ``Dataset(usage_events=frame)`` is given) unvalidated."""
    arrow, _ = frame_to_arrow(name, frame)
    types = {f.name: ("VARCHAR" if pa.types.is_string(f.type) else
                      "TIMESTAMP_NS" if pa.types.is_timestamp(f.type) else "DOUBLE") for f in arrow.schema}
    plans = tuple(_plan_column(c, "r." + ident(c.name) if c.name in types else None, types.get(c.name, "VARCHAR"))
                  for c in TABLES[name].columns)
    plans = tuple(_with_lookup(p, None) for p in plans)
    ranges = {}
    for c in TABLES[name].columns:
        if c.kind in ("timestamp", "date") and c.name in frame.columns and len(frame):
            values = pd.to_datetime(frame[c.name]).dropna()
            ranges[c.name] = (values.min(), values.max()) if len(values) else (None, None)
    return EventTable(name, "frame", None, plans, arrow=arrow, rows=len(frame), ranges=ranges)


__all__ = ["EVENT_SIZED", "EventCheck", "EventTable", "check_event_table", "connect", "event_table_from_normalised"]
