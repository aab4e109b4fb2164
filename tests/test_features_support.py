"""Support features on a hand-counted story (rows shuffled): tickets are seen from opening, closed only
once closed_at is before as_of."""

from __future__ import annotations

import math

import pytest

from _features_world import TICKET_COLUMNS, T, accounts, contracts, dataset, frame, observations, row, ts
from healthscore.features import build_features

SUPPORT = ["tickets_90d", "high_urgent_tickets_90d", "urgent_tickets_90d", "open_tickets",
           "median_resolution_hours_90d", "ticket_trend_90d", "ticket_csat_avg_180d"]


def tk(tid, account, opened, closed, priority, csat=None) -> dict:
    return {"ticket_id": tid, "account_id": account, "opened_at": ts(opened),
            "closed_at": None if closed is None else ts(closed), "priority": priority, "csat": csat}


def support_world(seed: int = 0, *, with_tickets: bool = True):
    # As of 2024-07-01: 90 days back is 2024-04-02, the 90 days before that start 2024-01-03.
    acc = accounts(("A-1", "smb", "2023-01-01"), ("A-2", "smb", "2023-01-01"))
    con = contracts(("C-1", "A-1", "2024-01-01", "2025-01-01", 1000.0, 5, None),
                    ("C-2", "A-2", "2024-01-01", "2025-01-01", 1000.0, 5, None))
    tickets = frame(
        [
            tk("t1", "A-1", "2024-06-15 00:00", "2024-06-16 00:00", "high", 4.0),  # 24 h
            # closed exactly at as_of: still open at as_of, its resolution and CSAT not known yet
            tk("t2", "A-1", "2024-06-30 09:00", "2024-07-01 00:00", "urgent", 1.0),
            # opened in the 90 days before the window, closed inside it after 33.5 days = 804 h
            tk("t3", "A-1", "2024-03-01 00:00", "2024-04-03 12:00", "normal", 2.0),
            tk("t4", "A-1", "2024-07-01 00:00", None, "urgent"),  # opened at as_of: invisible
            tk("t5", "A-1", "2023-01-01 00:00", None, "low"),  # open for 18 months
            tk("t6", "A-1", "2024-05-01 00:00", "2024-05-01 06:00", "low"),  # 6 h, no rating
        ],
        TICKET_COLUMNS,
    )
    return dataset(seed, accounts=acc, contracts=con, tickets=tickets if with_tickets else None)


OBS = observations(("A-2", "C-2", T), ("A-1", "C-1", T))


def test_support_story_counted_by_hand():
    feats = build_features(support_world(seed=5), OBS)
    a1 = row(feats, "A-1", OBS)
    assert a1["tickets_90d"] == 3  # t1, t2, t6
    assert a1["high_urgent_tickets_90d"] == 2  # t1 high, t2 urgent (t4 is at as_of)
    assert a1["urgent_tickets_90d"] == 1
    assert a1["open_tickets"] == 2  # t2 (closed at as_of, not before), t5
    assert a1["median_resolution_hours_90d"] == pytest.approx(24.0)  # median of 6, 24, 804
    assert a1["ticket_trend_90d"] == 3 - 1  # t3 in the 90 days before
    assert a1["ticket_csat_avg_180d"] == pytest.approx((4 + 2) / 2)  # t2's rating is not known yet


def test_no_tickets_give_documented_values():
    a2 = row(build_features(support_world(), OBS), "A-2", OBS)
    assert [a2[c] for c in ("tickets_90d", "high_urgent_tickets_90d", "urgent_tickets_90d", "open_tickets",
                            "ticket_trend_90d")] == [0, 0, 0, 0, 0]
    assert math.isnan(a2["median_resolution_hours_90d"]) and math.isnan(a2["ticket_csat_avg_180d"])


def test_missing_tickets_table_gives_nan():
    feats = build_features(support_world(with_tickets=False), OBS)
    assert feats[SUPPORT].isna().all().all()


def test_a_ticket_closed_just_before_as_of_counts_as_resolved():
    acc = accounts(("A-1", "smb", "2023-01-01"))
    con = contracts(("C-1", "A-1", "2024-01-01", "2025-01-01", 1000.0, 5, None))
    tickets = frame([tk("t1", "A-1", "2024-06-30 00:00", "2024-06-30 23:59:59", "normal", 5.0)], TICKET_COLUMNS)
    obs = observations(("A-1", "C-1", T))
    a1 = build_features(dataset(accounts=acc, contracts=con, tickets=tickets), obs).iloc[0]
    assert a1["open_tickets"] == 0
    assert a1["median_resolution_hours_90d"] == pytest.approx(24 - 1 / 3600)
    assert a1["ticket_csat_avg_180d"] == 5.0
