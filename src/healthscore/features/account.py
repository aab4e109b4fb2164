"""Account: context the other components are read against — segment, tenure, renewal, size, history.

Reads accounts and contracts. The observed contract is known from its start; outcomes of the account's
other contracts are known once their end_date is before as_of (never the observed contract's own).
"""

from __future__ import annotations

from healthscore.features._registry import Component
from healthscore.features._window import Window

component = Component("account")


@component.source(reads=())
def account_ended_terms(w: Window) -> str:
    """The account's contracts that ended before as_of, with their outcomes."""
    return f"SELECT key_id, as_of, outcome FROM {w.events('in_contracts', 'end_day')} AS e"


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
