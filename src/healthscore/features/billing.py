"""Billing: does the customer pay, and on time (reads invoices).

An invoice exists from ``issued_at``; it is paid at as_of only if ``paid_at < as_of`` and overdue if it is
unpaid then and ``due_at < as_of``. A late invoice is one paid after its due date or overdue now, so an
account owing money past due never reads as "never late". Every billing feature is 0 for an account that
owes nothing past due and paid on time: its healthy state. The contract's growth is account context.
"""

from __future__ import annotations

from healthscore.features._registry import Component
from healthscore.features._window import Window

component = Component("billing")

#: money is summed as decimals: exact, so totals do not depend on row order or threads
EXACT_AMOUNT = "CAST(amount AS DECIMAL(38, 6))"


@component.source(reads=("invoices",))
def billing_invoices(w: Window) -> str:
    """Every invoice issued before as_of."""
    return f"SELECT * FROM {w.events('in_invoices', 'issued_day')} AS e"


@component.feature(source="billing_invoices", unit="invoices", window_days=365, direction=-1, empty=0.0)
def invoices_late_365d(w: Window) -> str:
    """Invoices paid after their due date with the payment in the 365 days before as_of, plus the invoices
    still unpaid at as_of whose due date has passed (an invoice never paid is late too).

    No invoices: 0.
    """
    paid_late = f"{w.within('paid_day', 365)} AND paid_day > due_day"
    overdue = f"{w.pending('paid_day')} AND {w.visible('due_day')}"
    return f"count(CASE WHEN ({paid_late}) OR ({overdue}) THEN 1 END)"


@component.feature(source="billing_invoices", unit="currency", direction=-1, empty=0.0)
def amount_unpaid(w: Window) -> str:
    """Total amount of invoices issued before as_of and not paid before it (due or not).

    No invoices: 0.
    """
    return f"CAST(sum(CASE WHEN {w.pending('paid_day')} THEN {EXACT_AMOUNT} ELSE 0 END) AS DOUBLE)"


@component.feature(source="billing_invoices", unit="currency", direction=-1, empty=0.0)
def amount_overdue(w: Window) -> str:
    """Total amount of invoices unpaid at as_of whose due date is before as_of.

    No invoices: 0.
    """
    overdue = f"{w.pending('paid_day')} AND {w.visible('due_day')}"
    return f"CAST(sum(CASE WHEN {overdue} THEN {EXACT_AMOUNT} ELSE 0 END) AS DOUBLE)"


@component.feature(source="billing_invoices", unit="days", direction=-1, empty=0.0)
def days_overdue_max(w: Window) -> str:
    """Days past due of the oldest invoice unpaid at as_of (0 when nothing is overdue).

    No invoices: 0.
    """
    overdue = f"{w.pending('paid_day')} AND {w.visible('due_day')}"
    return f"COALESCE(max(CASE WHEN {overdue} THEN {w.days_since('due_day')} END), 0)"
