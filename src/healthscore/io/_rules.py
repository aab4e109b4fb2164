"""What validation says, shared by the pandas checks (``validate``) and the SQL checks (``events``): the wording
of each kind of problem, its fix, and how a value or a row id is shown."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

MAX_EXAMPLES = 5

_KIND_WORD = {
    "date": "a date",
    "timestamp": "a timestamp",
    "number": "a number",
    "integer": "a whole number",
}
_KIND_FIX = {
    "date": "write dates as YYYY-MM-DD",
    "timestamp": "write timestamps as ISO-8601, e.g. 2024-01-31T14:05:00Z (no zone means UTC)",
    "number": "write plain numbers with a dot for decimals and no thousands separators, e.g. 1234.5",
    "integer": "write whole numbers, e.g. 12",
}
_RANGE_FIX = {
    ("contracts", "arr"): "arr is annual recurring revenue and cannot be negative",
    ("contracts", "seats"): "seats is a count of licensed seats and cannot be negative",
    ("tickets", "csat"): "ticket csat is on a 1–5 scale",
    ("adjustments", "points"): "points must be between -100 and 100",
    ("invoices", "amount"): "a negative amount is a credit note, which healthscore does not net against invoices "
                            "(a negative unpaid amount would raise the score): subtract each credit from the "
                            "invoice it corrects, or leave credit notes out",
}
_REFERENCE_FIX = {
    "contracts": "add the account or drop the contract",
    "tickets": "add the account or drop the ticket",
    "invoices": "add the account or drop the invoice",
    "adjustments": "add the account or drop the adjustment",
}
#: (table, earlier, later, strict, fix); the contract term must have positive length, the rest may tie
_DATE_ORDER: tuple[tuple[str, str, str, bool, str], ...] = (
    ("contracts", "start_date", "end_date", True,
     "end_date is the renewal date: make it later than start_date, or drop the contract"),
    ("tickets", "opened_at", "closed_at", False,
     "correct the timestamps, or leave closed_at empty while the ticket is open"),
    ("invoices", "issued_at", "due_at", False, "correct the dates: an invoice falls due after it is issued"),
    ("invoices", "issued_at", "paid_at", False,
     "correct the dates: an invoice is paid after it is issued (leave paid_at empty if unpaid)"),
)
_PLAIN_ID = re.compile(r"[\w.\-:/#@+]{1,40}")


def show_value(value: object, *, width: int = 40) -> str:
    """Quote a cell for an error message, escaped so newlines and quotes in untrusted text stay inline."""
    text = str(value)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return repr(text)


def show_id(value: object) -> str:
    """An id as written when it is plain (``C-17``), else quoted like ``show_value``."""
    text = str(value)
    return text if _PLAIN_ID.fullmatch(text) else show_value(text)


def _as_text(raw: pd.Series) -> pd.Series:
    """Any column as pandas ``string`` with empty cells as <NA>; whole floats lose their ``.0`` (ids)."""
    if ptypes.is_float_dtype(raw.dtype):
        values = raw.to_numpy(dtype="float64", na_value=np.nan)
        finite = np.isfinite(values)
        whole = values[finite]
        if np.all(whole == np.floor(whole)) and np.all(np.abs(whole) < 2**53):
            raw = pd.Series(pd.array(np.where(finite, values, 0), dtype="Int64"), index=raw.index).mask(
                ~finite
            )
    text = raw.astype("string")
    return text.mask((text == "").fillna(False)).astype("string")


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"not between {low:g} and {high:g}"
    if low is not None:
        return "negative" if low == 0 else f"below {low:g}"
    return f"above {high:g}"
