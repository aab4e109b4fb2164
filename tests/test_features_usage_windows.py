"""Usage windows where distinct users, distinct days and many key features matter (hand-counted, shuffled).

The builder counts a user once per window through its last visible day (the next active day still pending
at as_of), the account's active days through OR-ed day masks, and key features through bit masks of 60
features per column: these stories pin each of them, including days after as_of that must stay invisible.
"""

from __future__ import annotations

import pytest

from _features_world import EVENT_COLUMNS, accounts, contracts, dataset, frame, observations, ts
from healthscore.config import FeaturesConfig
from healthscore.features import build_features

KEY_FEATURES = tuple(f"k{i:02d}" for i in range(65))  # two mask columns: k00-k59 and k60-k64


def ev(account: str, user: str, when: str, feature: str = "other") -> dict:
    return {"account_id": account, "user_id": user, "ts": ts(when), "feature": feature, "quantity": None}


def world(seed: int):
    acc = accounts(("A-1", "smb", "2024-01-01"), ("A-2", "smb", "2024-01-01"))
    con = contracts(("C-1", "A-1", "2024-01-01", "2025-01-01", 1000.0, 4, None),
                    ("C-2", "A-2", "2024-01-01", "2025-01-01", 1000.0, 4, None))
    rows = [
        # u1: before the 90 days of 07-01, inside them, twice on 06-10, on 06-20, then after as_of
        ev("A-1", "u1", "2024-03-01 09:00"), ev("A-1", "u1", "2024-05-10 09:00"),
        ev("A-1", "u1", "2024-06-10 09:00"), ev("A-1", "u1", "2024-06-10 17:00"),
        ev("A-1", "u1", "2024-06-20 09:00"), ev("A-1", "u1", "2024-07-05 09:00"),
        # u2: once in the 90 days (05-20), next active after as_of
        ev("A-1", "u2", "2024-05-20 09:00"), ev("A-1", "u2", "2024-07-02 09:00"),
        # u3: the same day as u1 (one active day, two user-days) and 06-25
        ev("A-1", "u3", "2024-06-10 12:00"), ev("A-1", "u3", "2024-06-25 12:00"),
        # u4: only at as_of and later: invisible at 07-01
        ev("A-1", "u4", "2024-07-01 00:00"), ev("A-1", "u4", "2024-08-01 00:00"),
        # key features in both mask columns; k63 is too old, k61 is at as_of
        ev("A-2", "z", "2024-06-01 09:00", "k00"), ev("A-2", "z", "2024-06-02 09:00", "k59"),
        ev("A-2", "z", "2024-06-03 09:00", "k60"), ev("A-2", "z", "2024-06-04 09:00", "k64"),
        ev("A-2", "z", "2024-03-01 09:00", "k63"), ev("A-2", "z", "2024-07-01 00:00", "k61"),
    ]
    return dataset(seed, accounts=acc, contracts=con, usage_events=frame(rows, EVENT_COLUMNS))


@pytest.fixture(scope="module", params=[0, 1, 2])
def feats(request):
    obs = observations(("A-1", "C-1", "2024-07-01"), ("A-2", "C-2", "2024-07-01"), ("A-1", "C-1", "2024-06-15"),
                       index=["a1_jul", "a2_jul", "a1_jun"])
    cfg = FeaturesConfig(key_features=KEY_FEATURES)
    return build_features(world(request.param), obs, config=cfg)


def test_distinct_users_counted_once_with_later_days_invisible(feats):
    jul = feats.loc["a1_jul"]
    assert jul["active_users_90d"] == 3  # u1, u2, u3 (u4 only at as_of)
    assert jul["active_users_30d"] == 2  # u1, u3 (u2's 05-20 is older than 30 days)
    jun = feats.loc["a1_jun"]  # 30 days: 05-16 .. 06-14
    assert jun["active_users_90d"] == 3
    assert jun["active_users_30d"] == 3  # u1 (06-10), u2 (05-20), u3 (06-10)


def test_active_days_are_distinct_days_across_users(feats):
    jul = feats.loc["a1_jul"]
    assert jul["active_days_30d"] == 3  # 06-10 (u1 twice, u3), 06-20, 06-25
    assert jul["stickiness_dau_mau_30d"] == pytest.approx((4 / 30) / 2)  # user-days: u1 2, u3 2
    assert jul["events_per_active_user_30d"] == pytest.approx(5 / 2)  # u1 3 events, u3 2
    assert feats.loc["a1_jun", "active_days_30d"] == 2  # 05-20, 06-10


def test_key_features_beyond_one_mask_column(feats):
    assert feats.loc["a2_jul", "feature_breadth_90d"] == pytest.approx(4 / 65)  # k00, k59, k60, k64
    assert feats.loc["a1_jul", "feature_breadth_90d"] == 0
