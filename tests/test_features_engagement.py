"""Engagement features on a hand-counted story (rows shuffled)."""

from __future__ import annotations

import math

from _features_world import TOUCH_COLUMNS, T, accounts, contracts, dataset, frame, observations, row, ts
from healthscore.features import build_features

ENGAGEMENT = ["email_open_rate_90d", "meetings_90d", "days_since_last_ebr", "no_ebr_182d", "web_visits_90d",
              "webinars_90d"]


def tp(account: str, when: str, kind: str) -> dict:
    return {"account_id": account, "ts": ts(when), "kind": kind}


def engagement_world(seed: int = 0, *, with_touchpoints: bool = True):
    # As of 2024-07-01: 90 days back is 2024-04-02; 182 days back is 2024-01-01.
    acc = accounts(("A-1", "enterprise", "2023-01-01"), ("A-2", "enterprise", "2023-01-01"),
                   ("A-3", "smb", "2023-01-01"))
    con = contracts(*[(f"C-{i}", f"A-{i}", "2024-01-01", "2025-01-01", 1000.0, 5, None) for i in (1, 2, 3)])
    rows = [
        tp("A-1", "2024-06-01 10:00", "email_sent"), tp("A-1", "2024-06-10 10:00", "email_sent"),
        tp("A-1", "2024-06-20 10:00", "email_sent"), tp("A-1", "2024-04-02 00:00", "email_sent"),
        tp("A-1", "2024-04-01 23:59", "email_sent"),  # 91 days back: outside
        tp("A-1", "2024-06-02 08:00", "email_opened"), tp("A-1", "2024-06-11 08:00", "email_opened"),
        tp("A-1", "2024-07-01 00:00", "email_opened"),  # at as_of: invisible
        tp("A-1", "2024-05-01 15:00", "meeting"), tp("A-1", "2024-06-30 23:59", "meeting"),
        tp("A-1", "2024-07-01 00:00", "meeting"),
        tp("A-1", "2023-12-01 15:00", "ebr"),  # 213 days ago
        tp("A-1", "2024-07-01 00:00", "ebr"),  # at as_of: invisible
        tp("A-1", "2024-06-05 12:00", "web_visit"), tp("A-1", "2024-06-06 12:00", "web_visit"),
        tp("A-1", "2024-06-07 12:00", "web_visit"), tp("A-1", "2024-05-20 12:00", "webinar"),
        tp("A-1", "2024-06-07 12:00", "something_else"),
        tp("A-2", "2024-01-01 09:00", "ebr"),  # exactly 182 days back: inside the window
    ]
    return dataset(seed, accounts=acc, contracts=con,
                   touchpoints=frame(rows, TOUCH_COLUMNS) if with_touchpoints else None)


OBS = observations(("A-3", "C-3", T), ("A-2", "C-2", T), ("A-1", "C-1", T))


def test_engagement_story_counted_by_hand():
    feats = build_features(engagement_world(seed=7), OBS)
    a1 = row(feats, "A-1", OBS)
    assert a1["email_open_rate_90d"] == 2 / 4
    assert a1["meetings_90d"] == 2
    assert a1["days_since_last_ebr"] == 213
    assert a1["no_ebr_182d"] == 1
    assert a1["web_visits_90d"] == 3 and a1["webinars_90d"] == 1
    a2 = row(feats, "A-2", OBS)
    assert a2["days_since_last_ebr"] == 182 and a2["no_ebr_182d"] == 0


def test_no_touchpoints_give_documented_values():
    a3 = row(build_features(engagement_world(), OBS), "A-3", OBS)
    assert math.isnan(a3["email_open_rate_90d"]) and math.isnan(a3["days_since_last_ebr"])
    assert (a3["meetings_90d"], a3["no_ebr_182d"], a3["web_visits_90d"], a3["webinars_90d"]) == (0, 1, 0, 0)


def test_missing_touchpoints_table_gives_nan():
    feats = build_features(engagement_world(with_touchpoints=False), OBS)
    assert feats[ENGAGEMENT].isna().all().all()
