"""Write tables for later stages: atomically, deterministically, and safe to open in a spreadsheet."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandas.api import types as ptypes

#: a spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection")
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
PARQUET_COMPRESSION = "zstd"


def _neutralise_value(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_csv_cells(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells a spreadsheet would run as a formula start with a single quote ``'``.

    Only text is touched: numbers (negative ones included), dates and missing cells are kept as they are.
    Use it for CSV only; Parquet keeps values unchanged.
    """
    out = df.copy()
    for column in out.columns:
        series = out[column]
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(object)
        if ptypes.is_string_dtype(series.dtype) and not isinstance(series.dtype, pd.CategoricalDtype):
            if ptypes.is_object_dtype(series.dtype):
                # object columns may mix text and numbers: only str values are text
                out[column] = series.map(_neutralise_value)
            else:
                risky = series.str.startswith(FORMULA_PREFIXES).fillna(False)
                if risky.any():
                    out[column] = series.where(~risky, "'" + series)
    return out


#: decimals of a batch's CSV cells: money to the cent, other fractions (probabilities, points, PSI) to 4 places;
#: Parquet keeps full precision
MONEY_DECIMALS = 2
FRACTION_DECIMALS = 4


def is_money(column: str) -> bool:
    """Columns holding an amount of money: ``arr``, ``arr_<band>``, ``expected_arr_at_risk_model``, ``*_amount``."""
    return column == "arr" or column.startswith(("arr_", "expected_arr")) or column.endswith("_amount")


def round_for_csv(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with float columns rounded for a spreadsheet: money to 2 decimals, other floats to 4."""
    out = df.copy(deep=False)
    for column in out.columns:
        if ptypes.is_float_dtype(out[column].dtype):
            out[column] = out[column].round(MONEY_DECIMALS if is_money(str(column)) else FRACTION_DECIMALS)
    return out


#: rows per Parquet row group (pyarrow's own default): every Parquet file is cut at the same rows, so the
#: same rows give the same bytes whether they were written whole or a slice at a time (``ParquetStream``)
ROW_GROUP_ROWS = 1024 * 1024


def _write_row_groups(writer: pq.ParquetWriter, table: pa.Table) -> None:
    """``table`` as whole row groups of ``ROW_GROUP_ROWS`` (the last may be shorter), each one contiguous."""
    for start in range(0, max(table.num_rows, 1), ROW_GROUP_ROWS):
        writer.write_table(table.slice(start, ROW_GROUP_ROWS).combine_chunks(), row_group_size=ROW_GROUP_ROWS)


def _write_parquet(df: pd.DataFrame, handle) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    with pq.ParquetWriter(handle, table.schema, compression=PARQUET_COMPRESSION) as writer:
        _write_row_groups(writer, table)


class ParquetStream:
    """A Parquet file written a slice at a time, never held whole: ``write(table)`` per slice, then ``close()``.

    Rows are buffered into row groups of ``ROW_GROUP_ROWS``, so the file's bytes are those of
    ``write_table_atomic`` on all the rows at once, whatever the slices. The file is written beside ``path``
    under a temporary name (ending in ``.tmp``) and appears at ``path`` on ``close()`` only; on an error
    inside a ``with`` block, or ``abort()``, the temporary file is removed.
    """

    def __init__(self, path: str | os.PathLike[str], schema: pa.Schema, *, background: bool = False) -> None:
        self.path = Path(path)
        self.schema = schema
        self.rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self._tmp = Path(name)
        self._handle = os.fdopen(fd, "wb")
        self._writer = pq.ParquetWriter(self._handle, schema, compression=PARQUET_COMPRESSION)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        # ``background``: row groups are compressed and written on a thread of their own (Arrow lets go of
        # the interpreter), one at a time and in order, while the caller computes the next slice; an error
        # of that write is raised by the next ``write`` or by ``close``
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="healthscore-stream") if background \
            else None
        self._busy: Future | None = None

    def write(self, table: pa.Table) -> None:
        """Append rows (their columns and types must be the schema's)."""
        table = pa.Table.from_arrays(table.columns, schema=self.schema)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            whole = pa.concat_tables(self._pending)
            cut = (whole.num_rows // ROW_GROUP_ROWS) * ROW_GROUP_ROWS
            self._write_groups(whole.slice(0, cut))
            rest = whole.slice(cut)
            self._pending, self._pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def _write_groups(self, rows: pa.Table) -> None:
        if self._pool is None:
            _write_row_groups(self._writer, rows)
            return
        self._wait()
        self._busy = self._pool.submit(_write_row_groups, self._writer, rows)

    def _wait(self) -> None:
        """The row groups handed to the thread are written (their error, if any, raised here)."""
        busy, self._busy = self._busy, None
        if busy is not None:
            busy.result()

    def close(self) -> Path:
        """Write the last rows, sync, and move the file to ``path``; return it."""
        try:
            self._wait()
            if self._pending or self.rows == 0:
                rest = pa.concat_tables(self._pending) if self._pending else self.schema.empty_table()
                _write_row_groups(self._writer, rest)
            self._end_thread()
            self._writer.close()
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            _plain_permissions(self._tmp)
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def _end_thread(self) -> None:
        if self._busy is not None:
            self._busy.exception()  # never close the writer under a write still running
            self._busy = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def abort(self) -> None:
        """Drop the file (nothing appears at ``path``)."""
        self._end_thread()
        for step in (self._writer.close, self._handle.close):
            try:
                step()
            except Exception:  # noqa: BLE001 - already failing; the file is removed either way
                pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ParquetStream:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is not None:
            self.abort()


_UMASK_LOCK = threading.Lock()


def process_umask() -> int:
    """The process's umask, read without changing it where Linux says it (``/proc/self/status``): setting
    it to read it back would give a file another thread creates meanwhile the wrong permissions. Elsewhere
    it is set and restored under a lock; a caller about to write from several threads reads it once first
    (``OutputDir.publish``) and passes it to each writer.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        umask = os.umask(0)
        os.umask(umask)
    return umask


def _plain_permissions(path: str | os.PathLike[str], umask: int | None = None) -> None:
    """mkstemp makes a file private (0600): give it the permissions a plain ``open()`` would (0666 less the
    umask, ``process_umask()`` unless given), so the readers of a batch (CS ops, a BI tool under another
    user) can open every file."""
    os.chmod(path, 0o666 & ~(process_umask() if umask is None else umask))


# -- CSV text through Arrow ------------------------------------------------------------------------------
def float_text(v: np.ndarray):
    """``str(x)`` of each float as Arrow text, NaN null: numpy's ``astype(str)`` (the shortest round-trip repr,
    as Python writes it, and what pandas' ``to_csv`` writes), 3–5× faster.

    Arrow's float-to-text finds the same shortest digits but writes whole numbers without ".0" and turns
    to exponents at other lengths than Python. So whole numbers are written from their int64 value plus
    ".0", and any cell Arrow writes with an exponent, or Python would (below 1e-4, from 1e16 on), or that
    is −0.0 or infinite, is written by numpy.
    """
    missing = np.isnan(v)
    text = pc.cast(pa.array(v, mask=missing), pa.large_string())
    with np.errstate(invalid="ignore"):
        size = np.abs(v)
        whole = np.isfinite(v) & (v == np.trunc(v)) & (size < 1e16) & ~((v == 0) & np.signbit(v))
    if whole.any():
        digits = pc.cast(pa.array(np.where(whole, v, 0).astype(np.int64)), pa.large_string())
        suffix, sep = pa.scalar(".0", pa.large_string()), pa.scalar("", pa.large_string())
        text = pc.if_else(pa.array(whole), pc.binary_join_element_wise(digits, suffix, sep), text)
    exponent = pc.fill_null(pc.match_substring(text, "e"), False).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        odd = ~missing & ~whole & ((size < 1e-4) | (size >= 1e16) | exponent)
    if odd.any():
        text = pc.replace_with_mask(text, pa.array(odd), pa.array(v[odd].astype(str), pa.large_string()))
    return text


#: rows turned into CSV text at a time: the text of a 1M-account batch is never held whole
CSV_STEP_ROWS = 65_536
_CSV_SPECIAL = re.compile(r'[,"\r\n]')
_FORMULA_START = "^(" + "|".join(re.escape(p) for p in FORMULA_PREFIXES) + ")"
_DAY_UNITS = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


def _object_text(values: np.ndarray):
    """Text of an object column holding only ``str`` and missing cells (None, NaN, NA, NaT); else None."""
    missing = pd.isna(values)
    try:
        return pa.array(np.where(missing, None, values), type=pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError):  # a number, a date, a list…: pandas writes those
        return None


def _date_text(series: pd.Series):
    """``YYYY-MM-DD`` of a datetime column that is dates only (as pandas writes it then); else None."""
    unit = np.datetime_data(series.dtype)[0]
    if unit not in _DAY_UNITS:
        return None
    ticks = series.to_numpy().view("i8")
    present = ticks != np.iinfo(np.int64).min
    days = ticks // _DAY_UNITS[unit]
    if (ticks[present] % _DAY_UNITS[unit]).any() or (present.any() and not (
            -354_285 <= days[present].min() and days[present].max() <= 2_932_896)):  # years 1000–9999
        return None
    return pc.cast(pa.array(days.astype(np.int32), type=pa.int32(), mask=~present).cast(pa.date32()),
                   pa.large_string())


def _column_csv_text(series: pd.Series):
    """One column as pandas' ``to_csv`` writes its cells (missing: null), text neutralised; None when this
    kind of column is left to pandas."""
    dtype = series.dtype
    text, neutralise = None, False
    if isinstance(dtype, np.dtype):
        if dtype == np.float64:
            text = float_text(series.to_numpy())
        elif dtype.kind in "iu":
            text = pc.cast(pa.array(series.to_numpy()), pa.large_string())
        elif dtype == np.bool_:
            text = pa.array(np.where(series.to_numpy(), "True", "False"), type=pa.large_string())
        elif dtype.kind == "M":
            text = _date_text(series)
        elif dtype.kind == "O":
            text, neutralise = _object_text(series.to_numpy()), True
    elif isinstance(dtype, pd.StringDtype):
        text, neutralise = pa.array(series.array).cast(pa.large_string()), True  # zero-copy for Arrow strings
    if text is None or not neutralise:
        return text
    risky = pc.fill_null(pc.match_substring_regex(text, _FORMULA_START), False)
    if pc.any(risky).as_py():
        text = pc.if_else(risky, pc.binary_join_element_wise(_text("'"), text, _text("")), text)
    return _quoted(text)  # only text can hold a comma, a quote or a line break: quoted once neutralised


def _quoted(text):
    """Python's csv QUOTE_MINIMAL: a cell holding a comma, a quote, CR or LF in quotes, quotes doubled."""
    special = pc.fill_null(pc.match_substring_regex(text, _CSV_SPECIAL.pattern), False)
    if not pc.any(special).as_py():
        return text
    wrapped = pc.binary_join_element_wise(_text('"'), pc.replace_substring(text, '"', '""'), _text('"'), _text(""))
    return pc.if_else(special, wrapped, text)


def csv_text_steps(df: pd.DataFrame, step_rows: int = CSV_STEP_ROWS):
    """``neutralise_csv_cells(df).to_csv(index=False, lineterminator="\\r\\n")``'s bytes, step by step, built
    with Arrow; None when ``df`` holds something this does not write as pandas would (then use pandas).

    pandas formats each cell in Python and holds the interpreter throughout: 1.2 s for a 100k-account
    batch, 12 s for 1M, most of ``score``'s writing. Supported: float64 (numpy's ``str``), integers, bools,
    dates-only datetimes, and text (object columns of ``str``, pandas strings); a test compares the bytes
    with pandas' on every kind of cell.
    """
    names = [str(c) for c in df.columns]
    if len(df.columns) < 2 or not len(df) or any(not isinstance(c, str) for c in df.columns) \
            or df.columns.has_duplicates:
        return None  # one column's empty cells are written "" by the csv module; leave such frames to pandas
    columns = []
    for name in names:
        text = _column_csv_text(df[name])
        if text is None:
            return None
        if isinstance(text, pa.ChunkedArray):  # a column pandas keeps as several Arrow chunks
            text = text.combine_chunks()
        columns.append(pc.fill_null(text, _text("")))
    header = ",".join(f'"{n.replace(chr(34), chr(34) * 2)}"' if _CSV_SPECIAL.search(n) else n for n in names)

    def steps():
        yield (header + "\r\n").encode("utf-8")
        for a in range(0, len(df), step_rows):
            cells = [c.slice(a, step_rows) for c in columns]
            rows = pc.binary_join_element_wise(pc.binary_join_element_wise(*cells, _text(",")), _text("\r\n"),
                                               _text(""))
            _, offsets, data = rows.buffers()  # the rows, one after the other: the step's text
            bounds = np.frombuffer(offsets, dtype=np.int64, count=len(rows) + 1, offset=rows.offset * 8)
            yield data.slice(int(bounds[0]), int(bounds[-1] - bounds[0])).to_pybytes()

    return steps()


def _write_csv(df: pd.DataFrame, handle) -> None:
    # CRLF rows (RFC 4180): Python's csv module then quotes every cell holding a CR or LF; with "\n" rows a
    # lone CR inside a name is written bare and splits the row for every reader
    steps = csv_text_steps(df)
    if steps is None:
        neutralise_csv_cells(df).to_csv(handle, index=False, lineterminator="\r\n")
        return
    for text in steps:
        handle.write(text.decode("utf-8"))


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO], None], *, binary: bool,
                 umask: int | None = None) -> Path:
    """The one temp-then-replace step of every writer (``write`` may be any function of a file handle): ``write(handle)`` fills a temporary file beside
    ``path``, which is synced and renamed over it. On any failure the temporary file is removed and a
    previous file at ``path`` is left as it was. Returns ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        _plain_permissions(tmp_name, umask)
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return target


def write_table_atomic(df: pd.DataFrame, path: str | os.PathLike[str], *, umask: int | None = None) -> Path:
    """Write ``df`` to ``path`` (.parquet or .csv) via a temporary file and ``os.replace``; return the path.

    A crash midway leaves any previous file intact. The same frame always gives the same bytes
    (fixed compression, no index, no write time in the metadata). CSV text cells are neutralised.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ValueError(f"cannot write {Path(path).name}: the file name must end in .parquet or .csv")
    if suffix == ".parquet":
        return write_atomic(path, lambda handle: _write_parquet(df, handle), binary=True, umask=umask)
    return write_atomic(path, lambda handle: _write_csv(df, handle), binary=False, umask=umask)


def write_arrow_atomic(table: pa.Table, path: str | os.PathLike[str]) -> Path:
    """An Arrow table (e.g. one carrying schema metadata) as Parquet, atomically, with the house compression."""
    return write_atomic(path, lambda handle: pq.write_table(table, handle, compression=PARQUET_COMPRESSION),
                               binary=True)


def write_text_atomic(text: str, path: str | os.PathLike[str]) -> Path:
    """Write UTF-8 text (reports, JSON) to ``path`` via a synced temporary file and ``os.replace``."""
    return write_atomic(path, lambda handle: handle.write(text), binary=False)


def copy_file_atomic(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Copy a file's bytes to ``path`` atomically."""
    with open(source, "rb") as src:
        return write_atomic(path, lambda handle: shutil.copyfileobj(src, handle), binary=True)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a directory's entries (new names, renames) durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
