"""Support: how many tickets, how serious, how long they take, and how the customer rated them (reads tickets).

A ticket is seen from the day it was opened; its closing (and so its resolution time and its CSAT, given
when it is closed) only once ``closed_at`` is before as_of. A ticket open at as_of has ``opened_at < as_of``
and no ``closed_at < as_of``.
"""

from __future__ import annotations

from healthscore.features._registry import Component
from healthscore.features._window import Window

component = Component("support")


@component.source(reads=("tickets",))
def support_tickets(w: Window) -> str:
    """Every ticket opened before as_of (tickets open for long still count as open)."""
    return f"SELECT * FROM {w.events('in_tickets', 'opened_day')} AS e"


@component.feature(source="support_tickets", unit="tickets", window_days=90, direction=-1, empty=0.0)
def tickets_90d(w: Window) -> str:
    """Tickets opened in the 90 days before as_of.

    No tickets: 0.
    """
    return f"count(CASE WHEN {w.within('opened_day', 90)} THEN 1 END)"


@component.feature(source="support_tickets", unit="tickets", window_days=90, direction=-1, empty=0.0)
def high_urgent_tickets_90d(w: Window) -> str:
    """Tickets of priority high or urgent opened in the 90 days before as_of.

    No tickets: 0.
    """
    return f"count(CASE WHEN {w.within('opened_day', 90)} AND priority IN ('high', 'urgent') THEN 1 END)"


@component.feature(source="support_tickets", unit="tickets", window_days=90, direction=-1, empty=0.0)
def urgent_tickets_90d(w: Window) -> str:
    """Tickets of priority urgent opened in the 90 days before as_of.

    No tickets: 0.
    """
    return f"count(CASE WHEN {w.within('opened_day', 90)} AND priority = 'urgent' THEN 1 END)"


@component.feature(source="support_tickets", unit="tickets", direction=-1, empty=0.0)
def open_tickets(w: Window) -> str:
    """Tickets open at as_of: opened before it and not closed before it.

    No tickets: 0.
    """
    return f"count(CASE WHEN {w.pending('closed_day')} THEN 1 END)"


@component.feature(source="support_tickets", unit="hours", window_days=90, direction=-1)
def median_resolution_hours_90d(w: Window) -> str:
    """Median hours from opening to closing of the tickets closed in the 90 days before as_of.

    No tickets closed in the window: NaN.
    """
    return f"median(CASE WHEN {w.within('closed_day', 90)} THEN resolution_hours END)"


@component.measure(source="support_tickets", empty=0.0)
def _tickets_prev_90d(w: Window) -> str:
    return f"count(CASE WHEN {w.between('opened_day', 180, 90)} THEN 1 END)"


@component.feature(unit="tickets", window_days=90, direction=-1)
def ticket_trend_90d(w: Window) -> str:
    """Tickets opened in the last 90 days minus those opened in the 90 days before (positive = more).

    No tickets: 0.
    """
    return "tickets_90d - _tickets_prev_90d"


@component.feature(source="support_tickets", unit="score 1-5", window_days=180, direction=+1)
def ticket_csat_avg_180d(w: Window) -> str:
    """Average ticket CSAT (1-5) of the tickets closed in the 180 days before as_of.

    No rated ticket closed in the window: NaN.
    """
    return f"avg(CASE WHEN {w.within('closed_day', 180)} THEN csat END)"
