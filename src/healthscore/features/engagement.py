"""Engagement: how the customer answers and meets us — emails, meetings, executive reviews, visits, webinars.

Reads touchpoints. Executive business reviews (``kind = 'ebr'``) are rare, so they are looked up over the
whole history; everything else over the last 90 days.
"""

from __future__ import annotations

from healthscore.features._registry import Component
from healthscore.features._window import Window

component = Component("engagement")

#: an executive business review older than this (about six months) is a known risk
EBR_RISK_DAYS = 182
#: the touchpoint kinds (CONTRACT §1) these features count; other kinds are kept and ignored
KINDS_READ: tuple[str, ...] = ("email_sent", "email_opened", "meeting", "ebr", "webinar", "web_visit")


@component.source(reads=("touchpoints",))
def engagement_touchpoints(w: Window) -> str:
    """Touchpoints in the 90 days before as_of."""
    return f"SELECT key_id, as_of, kind, day FROM {w.events('in_touchpoints', 'day', lookback_days=90)} AS e"


@component.source(reads=("touchpoints",))
def engagement_ebrs(w: Window) -> str:
    """Executive business reviews before as_of, any age."""
    ev = w.events("in_touchpoints", "day", where="e.kind = 'ebr'")
    return f"SELECT key_id, as_of, day FROM {ev} AS e"


@component.measure(source="engagement_touchpoints", empty=0.0)
def _emails_sent_90d(w: Window) -> str:
    return f"count(CASE WHEN {w.within('day', 90)} AND kind = 'email_sent' THEN 1 END)"


@component.measure(source="engagement_touchpoints", empty=0.0)
def _emails_opened_90d(w: Window) -> str:
    return f"count(CASE WHEN {w.within('day', 90)} AND kind = 'email_opened' THEN 1 END)"


@component.feature(unit="opens per email", window_days=90, direction=+1)
def email_open_rate_90d(w: Window) -> str:
    """Emails opened per email sent in the 90 days before as_of (several opens of one email count each).

    No email sent: NaN.
    """
    return "_emails_opened_90d / NULLIF(_emails_sent_90d, 0)"


@component.feature(source="engagement_touchpoints", unit="meetings", window_days=90, direction=+1, empty=0.0)
def meetings_90d(w: Window) -> str:
    """Meetings in the 90 days before as_of (executive business reviews are counted separately).

    No touchpoints: 0.
    """
    return f"count(CASE WHEN {w.within('day', 90)} AND kind = 'meeting' THEN 1 END)"


@component.measure(source="engagement_ebrs")
def _last_ebr_day(w: Window) -> str:
    return "max(day)"


@component.feature(unit="days", direction=-1)
def days_since_last_ebr(w: Window) -> str:
    """Days since the last executive business review before as_of (1 = the day before).

    No review ever: NaN (and no_ebr_182d = 1).
    """
    return w.days_since("_last_ebr_day", "o.as_of")


@component.feature(source="engagement_ebrs", unit="flag", window_days=EBR_RISK_DAYS, direction=-1, empty=1.0)
def no_ebr_182d(w: Window) -> str:
    """1 if there was no executive business review in the 182 days before as_of, else 0.

    No touchpoints: 1.
    """
    return f"CASE WHEN count(CASE WHEN {w.within('day', EBR_RISK_DAYS)} THEN 1 END) > 0 THEN 0.0 ELSE 1.0 END"


@component.feature(source="engagement_touchpoints", unit="visits", window_days=90, direction=+1, empty=0.0)
def web_visits_90d(w: Window) -> str:
    """Web visits in the 90 days before as_of.

    No touchpoints: 0.
    """
    return f"count(CASE WHEN {w.within('day', 90)} AND kind = 'web_visit' THEN 1 END)"


@component.feature(source="engagement_touchpoints", unit="webinars", window_days=90, direction=+1, empty=0.0)
def webinars_90d(w: Window) -> str:
    """Webinars attended in the 90 days before as_of.

    No touchpoints: 0.
    """
    return f"count(CASE WHEN {w.within('day', 90)} AND kind = 'webinar' THEN 1 END)"
