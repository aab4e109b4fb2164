"""Account: context the other components are read against — segment, tenure, renewal, size, history, growth.

Reads accounts and contracts. The observed contract is known from its start; outcomes of the account's
other contracts are known once their end_date is before as_of (never the observed contract's own). The
previous term is the account's latest contract that started before the observed one (its outcome is never
read here).
"""

from __future__ import annotations

from healthscore.features._registry import Component
from healthscore.features._window import Window

component = Component("account")


@component.source(reads=())
def account_ended_terms(w: Window) -> str:
    """The account's contracts that ended before as_of, with their outcomes."""
    return f"SELECT key_id, as_of, outcome FROM {w.events('in_contracts', 'end_day')} AS e"


@component.source(reads=(), per="observation")
def account_previous_term(w: Window) -> str:
    """The contract before the observed one, per observation (none without an observed contract)."""
    return f"""
        SELECT row_id, as_of, arr, seats FROM (
            SELECT t.row_id, t.as_of, t.arr, t.seats,
                   row_number() OVER (PARTITION BY t.row_id ORDER BY t.start_day DESC, t.contract_id DESC) AS rn
            FROM {w.known_terms()} AS t
            WHERE t.start_day < t.observed_start
        ) AS p WHERE rn = 1
    """


@component.feature(unit="category", direction=0, kind="categorical")
def segment(w: Window) -> str:
    """The account's segment (accounts.segment; empty is 'unknown').

    No segment: 'unknown'.
    """
    return "o.segment"


@component.feature(unit="days", direction=+1)
def tenure_days(w: Window) -> str:
    """Days from the customer's start (created_at or first contract, whichever is earlier) to as_of.

    No known start on or before as_of: NaN.
    """
    return "(o.as_of - o.customer_start)"


@component.feature(unit="days", direction=0)
def days_to_renewal(w: Window) -> str:
    """Days from as_of to the observed contract's end_date (equals the lead time on training rows).

    No contract: NaN.
    """
    return "(o.contract_end - o.as_of)"


@component.feature(unit="seats", direction=0)
def seats(w: Window) -> str:
    """Licensed seats of the observed contract.

    No contract or no seats given: NaN.
    """
    return "o.contract_seats"


@component.feature(unit="currency per year", direction=0)
def arr(w: Window) -> str:
    """Annual recurring revenue of the observed contract.

    No contract: NaN.
    """
    return "o.contract_arr"


@component.feature(source="account_ended_terms", unit="renewals", direction=+1, empty=0.0)
def earlier_renewals(w: Window) -> str:
    """The account's contracts that ended before as_of with outcome renewed.

    No earlier contract: 0.
    """
    return "count(CASE WHEN outcome = 'renewed' THEN 1 END)"


@component.measure(source="account_previous_term")
def _previous_arr(w: Window) -> str:
    return "max(arr)"


@component.measure(source="account_previous_term")
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
