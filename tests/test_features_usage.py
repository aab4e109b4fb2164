"""Usage and time-to-value features on hand-counted stories (rows shuffled)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from _features_world import EVENT_COLUMNS, T, accounts, contracts, dataset, frame, observations, row, ts
from healthscore.config import FeaturesConfig
from healthscore.features import build_features

#: the story's key product features, configured (they are learned at training when not configured)
KEY = FeaturesConfig(key_features=("dashboards", "reports", "integrations", "automation", "collaboration", "api"))
USAGE = [
    "active_users_30d", "active_users_90d", "seat_utilization_30d", "stickiness_dau_mau_30d",
    "events_per_active_user_30d", "active_days_30d", "feature_breadth_90d", "days_since_last_activity",
    "usage_trend_30d",
]


def ev(account: str, user: str, when: str, feature: str = "dashboards", quantity: float | None = None) -> dict:
    return {"account_id": account, "user_id": user, "ts": ts(when), "feature": feature, "quantity": quantity}


def usage_world(seed: int = 0, *, with_events: bool = True):
    # As of 2024-07-01: the 30-day window starts 2024-06-01, the one before 2024-05-02, 90 days 2024-04-02.
    acc = accounts(("A-1", "smb", "2024-01-01"), ("A-2", "enterprise", "2024-03-01"),
                   ("A-3", "smb", "2024-06-11"), ("A-4", "smb", "2023-01-01"))
    con = contracts(
        ("C-1", "A-1", "2024-01-01", "2025-01-01", 1000.0, 4, None),
        ("C-2", "A-2", "2024-03-01", "2025-03-01", 5000.0, None, None),  # seats unknown
        ("C-3", "A-3", "2024-06-11", "2025-06-11", 800.0, 10, None),
        ("C-4", "A-4", "2023-01-01", "2024-01-01", 800.0, 10, "churned"),  # over before as_of
    )
    events = frame(
        [
            # A-1, alice: yesterday at 23:59 and on 06-20; and 05-15 (the 30 days before)
            ev("A-1", "alice", "2024-06-30 23:59:59", "dashboards"),
            ev("A-1", "alice", "2024-06-20 10:00", "reports"),
            ev("A-1", "alice", "2024-05-15 09:00", "api"),
            # bob: exactly 30 days before as_of (inside the 30-day window)
            ev("A-1", "bob", "2024-06-01 00:00", "dashboards"),
            # carol: a minute before the 30-day window (inside 90 days), three events in one row
            ev("A-1", "carol", "2024-05-31 23:59", "automation", 3.0),
            # dave: exactly at as_of -> invisible, even its key feature
            ev("A-1", "dave", "2024-07-01 00:00", "integrations"),
            # erin: 91 days before -> outside the 90-day window
            ev("A-1", "erin", "2024-04-01 12:00", "collaboration"),
            # one user, a feature that is not a key feature
            ev("A-2", "zed", "2024-06-15 08:00", "custom_thing"),
            # used the product while it had no contract
            ev("A-4", "yan", "2024-06-29 08:00", "reports"),
        ],
        EVENT_COLUMNS,
    )
    return dataset(seed, accounts=acc, contracts=con, usage_events=events if with_events else None)


def usage_observations():
    return observations(("A-3", "C-3", T), ("A-1", "C-1", T), ("A-4", None, T), ("A-2", "C-2", T),
                        index=[10, 11, 12, 13])


def test_usage_story_counted_by_hand():
    obs = usage_observations()
    feats = build_features(usage_world(seed=1), obs, config=KEY)
    a1 = row(feats, "A-1", obs)
    assert a1["active_users_30d"] == 2  # alice, bob (dave is at as_of)
    assert a1["active_users_90d"] == 3  # + carol (erin is 91 days back)
    assert a1["seat_utilization_30d"] == pytest.approx(2 / 4)
    assert a1["active_days_30d"] == 3  # 06-30, 06-20, 06-01
    assert a1["stickiness_dau_mau_30d"] == pytest.approx((3 / 30) / 2)  # 3 user-days over 30 days, 2 MAU
    assert a1["events_per_active_user_30d"] == pytest.approx(3 / 2)
    assert a1["feature_breadth_90d"] == pytest.approx(4 / 6)  # dashboards, reports, api, automation
    assert a1["days_since_last_activity"] == 1
    assert a1["usage_trend_30d"] == pytest.approx((3 - 4) / 4)  # 3 events vs alice's 1 + carol's 3

    a2 = row(feats, "A-2", obs)
    assert a2["active_users_30d"] == 1
    assert math.isnan(a2["seat_utilization_30d"])  # seats unknown
    assert a2["feature_breadth_90d"] == 0
    assert a2["days_since_last_activity"] == 16
    assert math.isnan(a2["usage_trend_30d"])  # nothing in the 30 days before
    assert a2["stickiness_dau_mau_30d"] == pytest.approx(1 / 30)


def test_no_events_give_documented_values():
    obs = usage_observations()
    a3 = row(build_features(usage_world(), obs, config=KEY), "A-3", obs)
    assert a3["active_users_30d"] == 0 and a3["active_users_90d"] == 0 and a3["active_days_30d"] == 0
    assert a3["seat_utilization_30d"] == 0
    assert a3["feature_breadth_90d"] == 0
    assert math.isnan(a3["stickiness_dau_mau_30d"]) and math.isnan(a3["events_per_active_user_30d"])
    assert a3["days_since_last_activity"] == 20  # no activity: days since the customer started (06-11)


def test_observation_without_contract_keeps_account_level_usage():
    obs = usage_observations()
    a4 = row(build_features(usage_world(), obs), "A-4", obs)
    assert a4["active_users_30d"] == 1
    assert math.isnan(a4["seat_utilization_30d"])
    assert math.isnan(a4["months_since_contract_start"])
    assert a4["days_since_last_activity"] == 2


def test_missing_usage_table_gives_nan_not_zero():
    obs = usage_observations()
    feats = build_features(usage_world(with_events=False), obs)
    ttv_usage = ["days_to_target_utilization", "reached_target_utilization"]
    assert feats[USAGE + ttv_usage].isna().all().all()
    assert feats["months_since_contract_start"].notna().sum() == 3  # not a usage feature


def test_key_features_come_from_config():
    obs = usage_observations()
    cfg = FeaturesConfig(key_features=("dashboards", "custom_thing"))
    feats = build_features(usage_world(), obs, config=cfg)
    assert row(feats, "A-1", obs)["feature_breadth_90d"] == pytest.approx(1 / 2)
    assert row(feats, "A-2", obs)["feature_breadth_90d"] == pytest.approx(1 / 2)


def test_without_key_features_breadth_is_nan_and_no_family_column():
    # build_features never learns a vocabulary from the rows it is given: training resolves it first
    obs = usage_observations()
    feats = build_features(usage_world(), obs)
    assert feats["feature_breadth_90d"].isna().all()
    assert not [c for c in feats.columns if c.startswith("uses_")]


def test_days_since_last_activity_is_capped_at_a_year():
    acc = accounts(("A-1", "smb", "2020-01-01"))
    con = contracts(("C-1", "A-1", "2024-01-01", "2025-01-01", 1000.0, 4, None))
    events = frame([ev("A-1", "u", "2023-03-01 10:00")], EVENT_COLUMNS)
    obs = observations(("A-1", "C-1", T))
    feats = build_features(dataset(accounts=acc, contracts=con, usage_events=events), obs)
    assert feats["days_since_last_activity"].iloc[0] == 365


# -- time to value ---------------------------------------------------------------------------------
def ttv_world(seed: int = 0):
    # The customer started 2024-01-01 with 5 seats: the 80% target is 4 users in one 30-day block.
    # Blocks: 0 = days 0-29, 1 = days 30-59, 2 = days 60-89 from 2024-01-01 (2024 is a leap year).
    start = ts("2024-01-01")
    acc = accounts(("A-1", "smb", "2024-01-01"), ("A-2", "smb", None))
    con = contracts(
        ("C-1", "A-1", "2024-01-01", "2025-01-01", 1000.0, 5, None),
        ("C-2", "A-2", "2023-02-01", "2024-02-01", 1000.0, 2, "renewed"),
        ("C-3", "A-2", "2024-02-01", "2025-02-01", 1200.0, 2, None),
    )
    rows = [ev("A-1", u, str(start + pd.Timedelta(days=5))) for u in ("a", "b", "c")]  # block 0: 3 users
    rows += [ev("A-1", u, str(start + pd.Timedelta(days=65))) for u in ("a", "b", "c", "d")]  # block 2: 4
    rows += [ev("A-2", "x", "2023-02-10"), ev("A-2", "y", "2023-02-11")]  # A-2 block 0: 2 of 2 seats
    return dataset(seed, accounts=acc, contracts=con, usage_events=frame(rows, EVENT_COLUMNS)), start


def test_time_to_value_reached_only_once_the_block_is_complete():
    ds, start = ttv_world(seed=3)
    before, at_end = start + pd.Timedelta(days=89), start + pd.Timedelta(days=90)
    obs = observations(("A-1", "C-1", before), ("A-1", "C-1", at_end), ("A-2", "C-3", T))
    feats = build_features(ds, obs)
    assert feats["reached_target_utilization"].tolist() == [0.0, 1.0, 1.0]
    assert math.isnan(feats["days_to_target_utilization"].iloc[0])  # block 2 ends on day 89: not complete
    assert feats["days_to_target_utilization"].iloc[1] == 90
    assert feats["days_to_target_utilization"].iloc[2] == 30  # A-2 reached it in its first block
    assert feats["months_since_contract_start"].iloc[1] == pytest.approx(90 / 30.4375)
    # A-2 has no created_at: the customer started with its first contract (2023-02-01)
    expected = (T - ts("2023-02-01")).days
    assert feats["months_since_customer_start"].iloc[2] == pytest.approx(expected / 30.4375)
    assert feats["months_since_contract_start"].iloc[2] == pytest.approx((T - ts("2024-02-01")).days / 30.4375)


def _era_world(seed: int = 5):
    """A customer since 2018-01-01 with 2 seats: blocks 59, 60 and 61 straddle the first 60-block mask.

    Block 59 has one user on two days (1 of 2: not reached), block 60 the same user on its last day and
    another on its first (2 of 2: reached), block 61 two users on one day each.
    """
    start = ts("2018-01-01")
    acc = accounts(("A-1", "smb", "2018-01-01"))
    con = contracts(("C-1", "A-1", "2018-01-01", "2026-01-01", 1000.0, 2, None))
    day = lambda block, offset: str(start + pd.Timedelta(days=30 * block + offset))  # noqa: E731
    rows = [ev("A-1", "a", day(59, 0)), ev("A-1", "a", day(59, 29)),
            ev("A-1", "a", day(60, 29)), ev("A-1", "b", day(60, 0)),
            ev("A-1", "a", day(61, 3)), ev("A-1", "c", day(61, 3))]
    return dataset(seed, accounts=acc, contracts=con, usage_events=frame(rows, EVENT_COLUMNS)), start


def test_time_to_value_counts_users_in_blocks_past_the_first_five_years():
    ds, start = _era_world()
    end_60, end_61 = start + pd.Timedelta(days=30 * 61), start + pd.Timedelta(days=30 * 62)
    obs = observations(("A-1", "C-1", end_60 - pd.Timedelta(days=1)), ("A-1", "C-1", end_60),
                       ("A-1", "C-1", end_61))
    feats = build_features(ds, obs)
    assert feats["reached_target_utilization"].tolist() == [0.0, 1.0, 1.0]
    assert feats["days_to_target_utilization"].tolist()[1:] == [30 * 61, 30 * 61]


def test_target_utilization_comes_from_config():
    ds, start = ttv_world()
    obs = observations(("A-1", "C-1", start + pd.Timedelta(days=40)))
    strict = build_features(ds, obs)
    loose = build_features(ds, obs, config=FeaturesConfig(target_utilization=0.6))
    assert strict["reached_target_utilization"].iloc[0] == 0.0
    assert loose["reached_target_utilization"].iloc[0] == 1.0  # 3 of 5 users in block 0
    assert loose["days_to_target_utilization"].iloc[0] == 30


def test_usage_features_do_not_depend_on_row_order():
    obs = usage_observations()
    a = build_features(usage_world(seed=1), obs)
    b = build_features(usage_world(seed=2), obs)
    pd.testing.assert_frame_equal(a, b)
    rev = obs.iloc[::-1]
    c = build_features(usage_world(seed=1), rev)
    pd.testing.assert_frame_equal(c.loc[a.index], a)
    assert np.array_equal(c.index, rev.index)


@pytest.mark.parametrize("days_ago", [1, 29, 30, 31, 89, 90, 91, 100, 200, 364, 365])
def test_days_since_last_activity_looks_back_a_year(days_ago):
    # older activity is found through 30-day buckets: every distance up to the cap must come out exact
    acc = accounts(("A-1", "smb", "2020-01-01"))
    con = contracts(("C-1", "A-1", "2024-01-01", "2025-01-01", 1000.0, 4, None))
    when = T - pd.Timedelta(days=days_ago) + pd.Timedelta(hours=20)
    events = frame([ev("A-1", "u", str(when)), ev("A-1", "u", str(when - pd.Timedelta(days=45)))], EVENT_COLUMNS)
    obs = observations(("A-1", "C-1", T))
    feats = build_features(dataset(accounts=acc, contracts=con, usage_events=events), obs)
    assert feats["days_since_last_activity"].iloc[0] == days_ago


# -- one observation day: the tables hold only what its windows read ----------------------------------
def _last_activity_world(seed: int = 6):
    """Last activity the 90-day user-days cannot see: before the customer's start (A-1), over a year back
    (A-2), 168 days back with no known start (A-3), 200 days back with a later event at and after as_of
    (A-4: invisible)."""
    acc = accounts(("A-1", "smb", "2024-03-01"), ("A-2", "smb", "2020-01-01"), ("A-3", "smb", None),
                   ("A-4", "smb", "2022-01-01"))
    con = contracts(("C-1", "A-1", "2024-03-01", "2025-03-01", 1000.0, 1, None),
                    ("C-2", "A-2", "2024-01-01", "2025-01-01", 1000.0, 4, None),
                    ("C-4", "A-4", "2022-01-01", "2026-01-01", 1000.0, 1, None))
    events = frame([ev("A-1", "u", "2024-02-10 10:00"),
                    ev("A-2", "u", "2023-03-01 10:00"), ev("A-2", "v", "2023-03-02 10:00"),
                    ev("A-3", "w", "2024-01-15 10:00"),
                    ev("A-4", "x", str(T - pd.Timedelta(days=200))), ev("A-4", "x", str(T)),
                    ev("A-4", "y", str(T + pd.Timedelta(days=3)))], EVENT_COLUMNS)
    ds = dataset(seed, accounts=acc, contracts=con, usage_events=events)
    return ds, observations(("A-1", "C-1", T), ("A-2", "C-2", T), ("A-3", None, T), ("A-4", "C-4", T))


def _one_day_stories():
    """(dataset, observations) at one day each, with what the narrowed tables must still see: activity more
    than 90 days back (last activity, time to value), before the customer's start, over a year back, in
    the second 5-year era of a customer's life."""
    stories = [(usage_world(seed=2), usage_observations())]
    ds, start = ttv_world(seed=4)
    stories += [(ds, observations(("A-1", "C-1", start + pd.Timedelta(days=d)),
                                  ("A-2", "C-3", start + pd.Timedelta(days=d)))) for d in (89, 90, 200)]
    stories.append(_last_activity_world())
    ds, start = _era_world()
    stories += [(ds, observations(("A-1", "C-1", start + pd.Timedelta(days=30 * n)))) for n in (61, 62)]
    return stories


@pytest.mark.parametrize("story", range(7))
def test_one_observation_day_gives_the_same_features_as_the_general_tables(story):
    ds, obs = _one_day_stories()[story]
    narrowed = build_features(ds, obs, config=KEY)
    pd.testing.assert_frame_equal(narrowed, build_features(ds, obs, config=KEY, one_day_tables=False))


def test_one_day_tables_see_last_activity_and_blocks_beyond_the_user_days():
    ds, obs = _last_activity_world()
    feats = build_features(ds, obs, config=KEY)
    # A-1's only activity is before its start: the days count from the start (the later of the two);
    # A-4's events at and after as_of are invisible
    assert feats["days_since_last_activity"].tolist() == [(T - ts("2024-03-01")).days, 365,
                                                          (T - ts("2024-01-15")).days, 200]
    assert feats["reached_target_utilization"].tolist()[0] == 0.0  # its only user was active before the start
    assert feats["reached_target_utilization"].tolist()[3] == 1.0  # 1 of 1 seat in its block 200 days back
    ds, start = _era_world()
    at = build_features(ds, observations(("A-1", "C-1", start + pd.Timedelta(days=30 * 61))), config=KEY)
    assert at["days_to_target_utilization"].iloc[0] == 30 * 61  # block 60, the second era's first


def test_one_day_tables_from_a_parquet_file_leave_out_what_as_of_cannot_see(tmp_path):
    """``usage_events_parquet`` reads the raw file (no cut-off of its own): the one-day tables still see
    only events before as_of."""
    ds, obs = _last_activity_world()
    path = tmp_path / "usage_events.parquet"
    ds.usage_events.to_parquet(path)
    without = ds.__class__(**{**ds.__dict__, "usage_events": None})
    from_file = build_features(without, obs, config=KEY, usage_events_parquet=path)
    pd.testing.assert_frame_equal(from_file, build_features(ds, obs, config=KEY))
    pd.testing.assert_frame_equal(from_file, build_features(without, obs, config=KEY, usage_events_parquet=path,
                                                            one_day_tables=False))


def test_one_day_tables_count_a_day_with_several_events_once():
    # the one-day tables keep each event as a row: user-days must still count days, events the events
    acc = accounts(("A-1", "smb", "2024-01-01"))
    con = contracts(("C-1", "A-1", "2024-01-01", "2025-01-01", 1000.0, 4, None))
    days_ago = lambda d, hour: str(T - pd.Timedelta(days=d) + pd.Timedelta(hours=hour))  # noqa: E731
    events = frame([ev("A-1", "u", days_ago(2, 10)), ev("A-1", "u", days_ago(2, 15), "reports"),
                    ev("A-1", "u", days_ago(5, 9), quantity=2.0)], EVENT_COLUMNS)
    ds = dataset(7, accounts=acc, contracts=con, usage_events=events)
    obs = observations(("A-1", "C-1", T))
    feats = build_features(ds, obs, config=KEY)
    pd.testing.assert_frame_equal(feats, build_features(ds, obs, config=KEY, one_day_tables=False))
    assert feats["active_days_30d"].iloc[0] == 2
    assert feats["stickiness_dau_mau_30d"].iloc[0] == pytest.approx(2 / 30)  # 2 user-days / 30 / 1 user
    assert feats["events_per_active_user_30d"].iloc[0] == 4.0  # 1 + 1 + 2
