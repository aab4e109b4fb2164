"""The data contract (CONTRACT §1) as code: tables, columns, types, keys and ranges.

This is the one description of the input; readers, validation, the simulator and tests all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Column:
    name: str
    #: one of: "string", "date", "timestamp", "number", "integer"
    kind: str
    required: bool = False
    #: allowed values for categorical text columns (empty: free text)
    allowed: tuple[str, ...] = ()
    #: inclusive numeric range (None: unbounded)
    low: float | None = None
    high: float | None = None
    #: required columns may still hold empty cells where this is True (e.g. contracts.outcome is optional)
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    required: bool = False
    #: column(s) whose values must be unique
    key: tuple[str, ...] = ()
    #: pairs (earlier, later) that must be ordered when both are present
    date_order: tuple[tuple[str, str], ...] = ()
    #: columns that must reference accounts.account_id
    references_account: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


S, D, TS, N, INT = "string", "date", "timestamp", "number", "integer"

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "accounts",
            (
                Column("account_id", S, required=True),
                Column("name", S),
                Column("segment", S),
                Column("industry", S),
                Column("csm", S),
                Column("created_at", D),
            ),
            required=True,
            key=("account_id",),
            references_account=False,
        ),
        Table(
            "contracts",
            (
                Column("contract_id", S, required=True),
                Column("account_id", S, required=True),
                Column("start_date", D, required=True),
                Column("end_date", D, required=True),
                Column("arr", N, required=True, low=0),
                Column("seats", INT, low=0),
                Column("outcome", S, allowed=("renewed", "churned"), nullable=True),
            ),
            required=True,
            key=("contract_id",),
            date_order=(("start_date", "end_date"),),
        ),
        Table(
            "usage_events",
            (
                Column("account_id", S, required=True),
                Column("user_id", S, required=True),
                Column("ts", TS, required=True),
                Column("feature", S, required=True),
                Column("quantity", N),
            ),
        ),
        Table(
            "tickets",
            (
                Column("ticket_id", S, required=True),
                Column("account_id", S, required=True),
                Column("opened_at", TS, required=True),
                Column("closed_at", TS),
                Column("priority", S, allowed=("low", "normal", "high", "urgent")),
                Column("csat", N, low=1, high=5),
            ),
            key=("ticket_id",),
            date_order=(("opened_at", "closed_at"),),
        ),
        Table(
            "surveys",
            (
                Column("account_id", S, required=True),
                Column("responded_at", TS, required=True),
                Column("kind", S, required=True, allowed=("nps", "csat")),
                Column("score", N, required=True),  # range depends on kind: nps 0-10, csat 1-5
            ),
        ),
        Table(
            "touchpoints",
            (
                Column("account_id", S, required=True),
                Column("ts", TS, required=True),
                Column("kind", S, required=True),
            ),
        ),
        Table(
            "invoices",
            (
                Column("invoice_id", S, required=True),
                Column("account_id", S, required=True),
                Column("issued_at", D, required=True),
                Column("due_at", D, required=True),
                Column("paid_at", D),
                # a negative amount would be a credit note: refused, since netting it is not modelled and
                # counting it as an unpaid invoice would lower amount_unpaid and so raise the score
                Column("amount", N, required=True, low=0),
            ),
            key=("invoice_id",),
            date_order=(("issued_at", "due_at"),),
        ),
        Table(
            "adjustments",
            (
                Column("account_id", S, required=True),
                Column("created_at", TS, required=True),
                Column("points", INT, required=True, low=-100, high=100),
                Column("reason", S, required=True),
                Column("author", S),
                Column("expires_at", D),
            ),
        ),
    )
}

OPTIONAL_TABLES: tuple[str, ...] = tuple(name for name, t in TABLES.items() if not t.required)
SURVEY_RANGES: dict[str, tuple[float, float]] = {"nps": (0.0, 10.0), "csat": (1.0, 5.0)}
TOUCHPOINT_KINDS: tuple[str, ...] = (
    "email_sent", "email_opened", "email_clicked", "meeting", "ebr", "webinar", "web_visit",
)


def is_in(values, allowed) -> np.ndarray:
    """Whether each value is one of ``allowed`` (a missing value is not), as a numpy bool array.

    For text columns (both sides are compared as text), the same answer as ``values.isin(allowed)``
    with missing values never matching, by Arrow's hash lookup: pandas' ``isin`` on Arrow
    strings turns every value into a Python object first (measured on 100k accounts: 0.44 s per call against
    0.02 s, and observations and references call it per table).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    left = pa.array(pd.Series(values).astype("string").array)
    right = pa.array(pd.Series(list(allowed) if not isinstance(allowed, (pd.Series, pd.Index)) else allowed)
                     .astype("string").dropna().array)
    return np.asarray(pc.fill_null(pc.is_in(left, value_set=right), False).to_numpy(zero_copy_only=False), dtype=bool)
