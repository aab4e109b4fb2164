"""Feedback: what the customer says in surveys — NPS (0-10) and CSAT (1-5) (reads surveys).

Answers are ranked newest first per kind; answers stamped at the same instant are ranked by score (highest
first) so the result never depends on row order.
"""

from __future__ import annotations

from healthscore.features._registry import Component
from healthscore.features._window import Window

component = Component("feedback")


@component.source(reads=("surveys",))
def feedback_answers(w: Window) -> str:
    """Every survey answer before as_of, ranked newest first within its kind."""
    return f"""
        SELECT key_id, as_of, kind, score, day,
               row_number() OVER (PARTITION BY key_id, kind ORDER BY responded_s DESC, score DESC) AS rank_new
        FROM {w.events('in_surveys', 'day')} AS e
    """


@component.feature(source="feedback_answers", unit="score 0-10", direction=+1)
def nps_last(w: Window) -> str:
    """The last NPS answer (0-10) before as_of.

    No NPS answer: NaN.
    """
    return "max(CASE WHEN kind = 'nps' AND rank_new = 1 THEN score END)"


@component.measure(source="feedback_answers")
def _nps_previous(w: Window) -> str:
    return "max(CASE WHEN kind = 'nps' AND rank_new = 2 THEN score END)"


@component.feature(unit="points", direction=+1)
def nps_change(w: Window) -> str:
    """The last NPS answer minus the one before it (positive = improving).

    No two NPS answers: NaN.
    """
    return "nps_last - _nps_previous"


@component.feature(source="feedback_answers", unit="score 1-5", window_days=365, direction=+1)
def csat_avg_365d(w: Window) -> str:
    """Average CSAT survey answer (1-5) in the 365 days before as_of.

    No CSAT answer in the window: NaN.
    """
    return f"avg(CASE WHEN kind = 'csat' AND {w.within('day', 365)} THEN score END)"


@component.feature(source="feedback_answers", unit="days", direction=-1)
def days_since_last_survey(w: Window) -> str:
    """Days since the last survey answer of any kind before as_of (1 = the day before).

    No answer: NaN.
    """
    return w.days_since("max(day)")
