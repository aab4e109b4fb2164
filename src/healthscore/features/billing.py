"""Billing: does the customer pay, on time, and did the contract grow (reads invoices and contracts).

An invoice exists from ``issued_at``; it is paid at as_of only if ``paid_at < as_of`` and overdue if it is
unpaid then and ``due_at < as_of``. The previous term is the account's latest contract that started before
the observed one (its outcome is never read here).
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


@component.source(reads=(), per="observation")
def billing_previous_term(w: Window) -> str:
    """The contract before the observed one, per observation (none without an observed contract)."""
    return f"""
        SELECT row_id, as_of, arr, seats FROM (
            SELECT t.row_id, t.as_of, t.arr, t.seats,
                   row_number() OVER (PARTITION BY t.row_id ORDER BY t.start_day DESC, t.contract_id DESC) AS rn
            FROM {w.known_terms()} AS t
            WHERE t.start_day < t.observed_start
        ) AS p WHERE rn = 1
    """


@component.feature(source="billing_invoices", unit="invoices", window_days=365, direction=-1, empty=0.0)
def invoices_paid_late_365d(w: Window) -> str:
    """Invoices paid after their due date, with the payment in the 365 days before as_of.

    No invoices: 0.
    """
    return f"count(CASE WHEN {w.within('paid_day', 365)} AND paid_day > due_day THEN 1 END)"


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


@component.measure(source="billing_previous_term")
def _previous_arr(w: Window) -> str:
    return "max(arr)"


@component.measure(source="billing_previous_term")
def _previous_seats(w: Window) -> str:
    return "max(seats)"


@component.feature(unit="relative change", direction=+1)
def arr_change_pct_vs_previous_term(w: Window) -> str:
    """Relative change in ARR from the previous term to the observed contract (0.1 = +10%).

    No previous term (or its ARR is 0), or no contract: NaN.
    """
    return "(o.contract_arr - _previous_arr) / NULLIF(_previous_arr, 0)"


@component.feature(unit="relative change", direction=+1)
def seat_change_pct_vs_previous_term(w: Window) -> str:
    """Relative change in licensed seats from the previous term to the observed contract (0.1 = +10%).

    No previous term (or its seats are 0 or unknown), or no contract: NaN.
    """
    return "(o.contract_seats - _previous_seats) / NULLIF(_previous_seats, 0)"
