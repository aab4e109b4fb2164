"""The loaded, validated dataset handed to every later stage."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from healthscore.io.events import EVENT_SIZED, EventTable, event_table_from_normalised
from healthscore.io.schema import TABLES


class _EventField:
    """A Dataset field for an event-sized table: it holds an ``EventTable``; reading it materialises a frame.

    The commands never read these attributes: they use ``Dataset.events`` (the reference) so the rows stay
    in their files and DuckDB reads them (CONTRACT §6). Reading ``ds.usage_events`` (or ``ds.table(name)``)
    runs the normalising SQL and returns the frame ``validate.normalise_table`` would have built — for
    tests and small tools. Passing a frame to ``Dataset(...)`` wraps it as already normalised.
    """

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return None  # the dataclass default
        ref = obj.__dict__.get(self.name)
        return None if ref is None else ref.to_pandas()

    def __set__(self, obj, value) -> None:
        if isinstance(value, _EventField):
            value = None
        elif isinstance(value, pd.DataFrame):
            value = event_table_from_normalised(self.name, value)
        elif value is not None and not isinstance(value, EventTable):
            raise TypeError(f"{self.name} must be a DataFrame, an EventTable or None, not {type(value).__name__}")
        obj.__dict__[self.name] = value


def fingerprint(tables: Mapping[str, pd.DataFrame | EventTable | None]) -> str:
    """sha256 over normalised tables: same content gives the same digest, whatever the format or row order.

    Event-sized tables contribute their content digest, computed in SQL (an order-independent sum of row
    hashes; by the validation scan, or later, ``EventTable.content_digest``), so it never needs them in
    memory.
    """
    digest = hashlib.sha256()
    for name in TABLES:
        frame = tables.get(name)
        digest.update(f"{name}\0".encode())
        if frame is None:
            digest.update(b"absent\0")
            continue
        if isinstance(frame, EventTable):
            digest.update(f"sql:{frame.content_digest()}\0".encode())
            continue
        digest.update(repr([(str(c), str(frame[c].dtype)) for c in frame.columns]).encode())
        # sorted row hashes: row order carries no meaning in the contract, so it must not change the digest
        rows = np.sort(pd.util.hash_pandas_object(frame, index=False).to_numpy())
        digest.update(len(rows).to_bytes(8, "little"))
        digest.update(rows.tobytes())
    return digest.hexdigest()


class _Fingerprint:
    """The Dataset field ``fingerprint``: given, or (None) computed from the tables when first read."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return ""  # the dataclass default
        value = obj.__dict__.get(self.name)
        if value is None:
            value = fingerprint({n: (obj.__dict__.get(n) if n in EVENT_SIZED else getattr(obj, n))
                                 for n in TABLES})
            obj.__dict__[self.name] = value
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.name] = value


@dataclass(frozen=True, eq=False)
class Dataset:
    """Validated tables with normalised dtypes.

    - ids and text: pandas string dtype (``"string"``; empty cells are ``<NA>``), except
      ``accounts.segment`` where empty becomes ``"unknown"``;
    - dates and timestamps: ``datetime64[ns]``, timezone-naive, in UTC (aware inputs are converted);
    - numbers: float64 (``seats``, ``points`` too: they may be missing);
    - ``usage_events.quantity``: missing becomes 1.0.

    The event-sized tables (``usage_events``, ``tickets``, ``touchpoints``) stay where they are: the dataset
    holds an ``EventTable`` for each (``events(name)``: a file or frame plus the SQL that normalises it),
    validated by SQL at load time. Reading the attribute (``ds.usage_events``) materialises it as a frame:
    tests and small tools may, the commands never do (``has``, ``rows``, ``time_range`` and the feature
    engine work from the reference).

    An optional table that is absent is ``None`` and its name is in ``absent``: its component has no data
    (features NaN, never zero). Frames are never modified by later stages (treat as read-only).
    """

    accounts: pd.DataFrame
    contracts: pd.DataFrame
    usage_events: pd.DataFrame | None = _EventField()
    tickets: pd.DataFrame | None = _EventField()
    surveys: pd.DataFrame | None = None
    touchpoints: pd.DataFrame | None = _EventField()
    invoices: pd.DataFrame | None = None
    adjustments: pd.DataFrame | None = None
    #: names of optional tables that were not present
    absent: tuple[str, ...] = ()
    #: non-fatal notes (unknown extra columns, ...), reported once
    warnings: tuple[str, ...] = ()
    #: where it was read from (None when built in memory)
    source: str | None = None
    #: sha256 over the normalised tables, for tracking which data trained a model (``fingerprint``);
    #: None: computed when first read (``load_dataset(fingerprint=False)``)
    fingerprint: str | None = _Fingerprint()
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # the generated one would materialise the event tables
        present = [n for n in ("accounts", "contracts", *EVENT_SIZED, "surveys", "invoices", "adjustments")
                   if self.has(n)]
        return f"Dataset(source={self.source!r}, tables={present}, absent={self.absent})"

    def table(self, name: str) -> pd.DataFrame | None:
        """A table as a frame; for an event-sized table this materialises it (see the class docstring)."""
        return getattr(self, name)

    def events(self, name: str) -> EventTable | None:
        """The reference to an event-sized table (None when absent); never materialises."""
        if name not in EVENT_SIZED:
            raise KeyError(f"{name} is not an event-sized table ({', '.join(EVENT_SIZED)})")
        return self.__dict__.get(name)

    def has(self, name: str) -> bool:
        """Whether a table is present, without reading it."""
        if name in EVENT_SIZED:
            return self.__dict__.get(name) is not None
        return getattr(self, name) is not None

    def rows(self, name: str) -> int | None:
        """Rows of a table (None when absent), without materialising an event-sized one."""
        if name in EVENT_SIZED:
            ref = self.__dict__.get(name)
            return None if ref is None else ref.rows
        frame = getattr(self, name)
        return None if frame is None else len(frame)

    def time_range(self, name: str, column: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None] | None:
        """(first, last) value of a date or timestamp column (None when the table or column is absent)."""
        if name in EVENT_SIZED:
            ref = self.__dict__.get(name)
            if ref is None or column not in ref.ranges:
                return None
            return ref.ranges[column]
        frame = getattr(self, name)
        if frame is None or column not in frame:
            return None
        values = pd.to_datetime(frame[column]).dropna()
        return (values.min(), values.max()) if len(values) else (None, None)

    def last_before(self, name: str, column: str, before: pd.Timestamp) -> pd.Timestamp | None:
        """The latest value of a time column strictly before ``before`` (None when there is none)."""
        if name in EVENT_SIZED:
            ref = self.__dict__.get(name)
            if ref is None or column not in ref.present_columns:
                return None
            return ref.last_before(column, before)
        frame = getattr(self, name)
        if frame is None or column not in frame:
            return None
        values = frame[column]
        value = values[values < before].max()
        return None if pd.isna(value) else pd.Timestamp(value)
