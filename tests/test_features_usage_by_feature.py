"""Usage by key product feature: the learned vocabulary, its column names, and the share family, counted by hand.

Stories are small and shuffled (``dataset(seed)``): the key product features are learned from distinct
accounts before a cut-off, named safely whatever their text, and each gets the share of active users using
it in the last 30 days and that share's change against the 30 days before.
"""

from __future__ import annotations

import math
import re
from datetime import date

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _features_world import EVENT_COLUMNS, T, accounts, contracts, dataset, frame, observations, row, ts
from healthscore.config import Config, FeaturesConfig, config_from_dict
from healthscore.errors import ConfigError
from healthscore.explain import feature_catalogue, feature_label, format_value
from healthscore.features import (
    build_features,
    feature_specs,
    learn_key_features,
    resolve_key_features,
    selected_features,
)
from healthscore.features._build import derived_table_sql, features_sql
from healthscore.features._window import Window
from healthscore.features.catalogue import render_catalogue
from healthscore.features.usage import usage_users
from healthscore.features.vocabulary import key_feature_slugs, key_feature_usage, vocabulary_warnings
from healthscore.spark import to_spark_sql

#: the story's key product features, with both family columns (the default builds the shares only)
KEY = FeaturesConfig(key_features=("Export PDF", "dashboards"), usage_by_feature="share_and_change")


def ev(account: str, user: str, when: str, feature: str) -> dict:
    return {"account_id": account, "user_id": user, "ts": ts(when), "feature": feature, "quantity": None}


def share_world(seed: int = 0):
    # As of 2024-07-01: the last 30 days are 06-01 .. 06-30, the 30 before 05-02 .. 05-31.
    acc = accounts(("A-1", "smb", "2024-01-01"), ("A-2", "smb", "2023-01-01"), ("A-3", "smb", "2024-01-01"))
    con = contracts(("C-1", "A-1", "2024-01-01", "2025-01-01", 1000.0, 5, None),
                    ("C-2", "A-2", "2024-01-01", "2025-01-01", 1000.0, 5, None),
                    ("C-3", "A-3", "2024-01-01", "2025-01-01", 1000.0, 5, None))
    rows = [
        # A-1, alice: Export PDF twice in the last 30 days (one user, counted once), dashboards before them
        ev("A-1", "alice", "2024-06-30 23:59:59", "Export PDF"), ev("A-1", "alice", "2024-06-10 10:00", "Export PDF"),
        ev("A-1", "alice", "2024-05-20 10:00", "dashboards"),
        # bob: dashboards exactly 30 days back (inside); his Export PDF exactly at as_of is invisible
        ev("A-1", "bob", "2024-06-01 00:00", "dashboards"), ev("A-1", "bob", "2024-07-01 00:00", "Export PDF"),
        # carol: only the 30 days before — dashboards, and Export PDF exactly 60 days back (inside);
        # her Export PDF a day earlier is outside both windows
        ev("A-1", "carol", "2024-05-31 23:59", "dashboards"), ev("A-1", "carol", "2024-05-02 00:00", "Export PDF"),
        ev("A-1", "carol", "2024-05-01 23:00", "Export PDF"),
        # dave: active, but no key feature
        ev("A-1", "dave", "2024-06-15 08:00", "login"),
        # erin: dashboards in both windows (a user of it in each)
        ev("A-1", "erin", "2024-05-10 08:00", "dashboards"), ev("A-1", "erin", "2024-06-05 08:00", "dashboards"),
        # A-2: nothing in the last 60 days
        ev("A-2", "yan", "2024-03-01 08:00", "Export PDF"),
        # A-3: active only in the last 30 days, not on a key feature
        ev("A-3", "zoe", "2024-06-20 08:00", "login"),
    ]
    return dataset(seed, accounts=acc, contracts=con, usage_events=frame(rows, EVENT_COLUMNS))


def share_observations():
    return observations(("A-2", "C-2", T), ("A-1", "C-1", T), ("A-3", "C-3", T), index=["a2", "a1", "a3"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_share_of_active_users_by_key_feature_counted_by_hand(seed):
    obs = share_observations()
    feats = build_features(share_world(seed), obs, config=KEY)
    a1 = row(feats, "A-1", obs)
    # last 30 days: alice, bob, dave, erin are active; the 30 before: alice, carol, erin
    assert a1["active_users_30d"] == 4
    assert a1["uses_export_pdf_share_30d"] == pytest.approx(1 / 4)  # alice
    assert a1["uses_dashboards_share_30d"] == pytest.approx(2 / 4)  # bob, erin
    assert a1["uses_export_pdf_share_change_30d"] == pytest.approx(1 / 4 - 1 / 3)  # carol of 3 before
    assert a1["uses_dashboards_share_change_30d"] == pytest.approx(2 / 4 - 3 / 3)  # alice, carol, erin before
    assert a1["feature_breadth_90d"] == 1.0  # both key features in the 90 days

    a2 = row(feats, "A-2", obs)  # no active user in either window: no share to speak of
    assert math.isnan(a2["uses_export_pdf_share_30d"]) and math.isnan(a2["uses_export_pdf_share_change_30d"])
    a3 = row(feats, "A-3", obs)  # active now, on no key feature, and nobody before
    assert a3["uses_export_pdf_share_30d"] == 0 and a3["uses_dashboards_share_30d"] == 0
    assert math.isnan(a3["uses_dashboards_share_change_30d"])


def test_family_columns_follow_the_vocabulary_order_in_pairs():
    feats = build_features(share_world(), share_observations(), config=KEY)
    family = [c for c in feats.columns if c.startswith("uses_")]
    assert family == ["uses_export_pdf_share_30d", "uses_export_pdf_share_change_30d",
                      "uses_dashboards_share_30d", "uses_dashboards_share_change_30d"]
    # right after the declared usage features, before time to value
    names = list(feats.columns)
    assert names.index("usage_trend_30d") + 1 == names.index(family[0])
    assert names.index(family[-1]) + 1 == names.index("months_since_contract_start")


def test_outputs_are_byte_identical_for_the_same_inputs():
    obs = share_observations()
    a = build_features(share_world(0), obs, config=KEY)
    b = build_features(share_world(5), obs, config=KEY)
    assert list(a.columns) == list(b.columns)
    assert pd.util.hash_pandas_object(a, index=True).equals(pd.util.hash_pandas_object(b, index=True))


def test_the_default_builds_the_shares_and_off_builds_none():
    both = build_features(share_world(), share_observations(), config=KEY)
    share = FeaturesConfig(key_features=KEY.key_features)
    assert share.usage_by_feature == "share"
    shares = build_features(share_world(), share_observations(), config=share)
    assert [c for c in shares.columns if c.startswith("uses_")] == ["uses_export_pdf_share_30d",
                                                                     "uses_dashboards_share_30d"]
    pd.testing.assert_frame_equal(shares, both[shares.columns])
    off = FeaturesConfig(key_features=KEY.key_features, usage_by_feature="off")
    none = build_features(share_world(), share_observations(), config=off)
    assert not [c for c in none.columns if c.startswith("uses_")]
    assert "kf_0_30d" not in usage_users(Window(config=off))  # nothing is computed for the columns left out
    assert "kf_0_30d" in usage_users(Window(config=share)) and "kf_0_prev_30d" not in usage_users(Window(config=share))
    pd.testing.assert_frame_equal(none, both[none.columns])  # the rest is the same


def test_usage_by_feature_choices_are_checked():
    with pytest.raises(ConfigError, match=r"features\.usage_by_feature: use one of share, share_and_change, off, "
                                          r"found 'shares'; did you mean 'share'\?"):
        config_from_dict({"features": {"usage_by_feature": "shares"}})


def test_a_missing_usage_table_gives_nan_family_columns():
    acc = accounts(("A-1", "smb", "2024-01-01"))
    con = contracts(("C-1", "A-1", "2024-01-01", "2025-01-01", 1000.0, 5, None))
    feats = build_features(dataset(accounts=acc, contracts=con), observations(("A-1", "C-1", T)), config=KEY)
    assert feats.filter(like="uses_").shape[1] == 4  # both columns of both key features
    assert feats.filter(like="uses_").isna().all().all()


# -- the learned vocabulary ------------------------------------------------------------------------
CUTOFF = date(2024, 7, 1)


def vocabulary_world(seed: int = 0, extra: list[dict] | None = None):
    acc = accounts(*[(f"A-{i}", "smb", "2023-01-01") for i in range(1, 6)])
    con = contracts(*[(f"C-{i}", f"A-{i}", "2023-01-01", "2025-01-01", 1.0, 5, None) for i in range(1, 6)])
    rows = [
        # "b": 2 accounts; "a": 2 accounts (a tie: by name, "a" first); "c": 1 account, many users and events
        ev("A-1", "u", "2024-06-01", "b"), ev("A-2", "u", "2024-05-01", "b"),
        ev("A-3", "u", "2024-06-01", "a"), ev("A-1", "v", "2023-08-01", "a"),
        *[ev("A-1", f"u{i}", "2024-06-02", "c") for i in range(6)],
        # "d": 3 accounts, but only at or after the cut-off
        ev("A-1", "u", "2024-07-01 00:00", "d"), ev("A-2", "u", "2024-07-02", "d"), ev("A-3", "u", "2024-08-01", "d"),
        # "e": 3 accounts, but more than a year before the cut-off (a retired feature)
        ev("A-1", "u", "2023-06-30 12:00", "e"), ev("A-2", "u", "2023-05-01", "e"), ev("A-3", "u", "2023-01-02", "e"),
        # "f": 3 accounts that are not training accounts
        ev("A-4", "u", "2024-06-01", "f"), ev("A-5", "u", "2024-06-01", "f"), ev("A-5", "w", "2024-06-01", "f"),
    ]
    rows += extra or []
    return dataset(seed, accounts=acc, contracts=con, usage_events=frame(rows, EVENT_COLUMNS))


TRAINING_ACCOUNTS = ["A-1", "A-2", "A-3"]


@pytest.mark.parametrize("seed", [0, 3])
def test_learned_key_features_are_the_most_used_by_distinct_accounts_before_the_cutoff(seed):
    ds = vocabulary_world(seed)
    learn = lambda k, acc=TRAINING_ACCOUNTS: learn_key_features(ds, cutoff=CUTOFF, top_k=k, accounts=acc)  # noqa: E731
    assert learn(2) == ("a", "b")
    assert learn(10) == ("a", "b", "c")  # d is not seen yet, e is too old, f is not a training account's
    assert learn(10, None) == ("a", "b", "f", "c")  # every account: f has 2 as well, and comes after by name
    usage = key_feature_usage(ds, cutoff=CUTOFF, accounts=TRAINING_ACCOUNTS)
    assert usage.to_dict("list") == {"feature": ["a", "b", "c"], "accounts": [2, 2, 1]}


def test_learned_key_features_ignore_everything_at_or_after_the_cutoff():
    later = [ev("A-1", "z", "2024-07-01 00:00", "c"), ev("A-2", "z", "2024-07-05", "c"),
             ev("A-3", "z", "2025-01-01", "c")]
    before = learn_key_features(vocabulary_world(0), cutoff=CUTOFF, top_k=2, accounts=TRAINING_ACCOUNTS)
    after = learn_key_features(vocabulary_world(1, later), cutoff=CUTOFF, top_k=2, accounts=TRAINING_ACCOUNTS)
    assert before == after == ("a", "b")


def test_configured_key_features_win_and_are_used_as_given():
    ds = vocabulary_world()
    given_ = FeaturesConfig(key_features=("zeta", "a"))
    assert resolve_key_features(ds, given_, cutoff=CUTOFF) is given_
    learned = resolve_key_features(ds, Config(), cutoff=CUTOFF, accounts=TRAINING_ACCOUNTS)
    assert learned.key_features == ("a", "b", "c")  # fewer than top_k exist
    assert learned.key_features_top_k == FeaturesConfig().key_features_top_k


def test_no_usage_table_learns_nothing():
    acc = accounts(("A-1", "smb", "2024-01-01"))
    con = contracts(("C-1", "A-1", "2024-01-01", "2025-01-01", 1000.0, 5, None))
    assert learn_key_features(dataset(accounts=acc, contracts=con), cutoff=CUTOFF, top_k=5) == ()


def test_top_k_must_be_positive():
    with pytest.raises(ConfigError, match=r"features\.key_features_top_k: must be between 1 and 200"):
        config_from_dict({"features": {"key_features_top_k": 0}})


# -- column names from untrusted text ------------------------------------------------------------------
def test_column_names_are_sanitised_capped_and_disambiguated():
    slugs = key_feature_slugs(["Export PDF", "export-pdf", "Café Olé; DROP TABLE accounts;--", "株式会社", "サンプル",
                               "x" * 80, "api"])
    assert slugs["api"] == "api"
    assert slugs["Café Olé; DROP TABLE accounts;--"] == "cafe_ole_drop_table_accounts"
    assert slugs["x" * 80] == "x" * 32
    # the same slug twice: both get a hash of their own text, so neither depends on which came first
    assert re.fullmatch(r"export_pdf_[0-9a-f]{6}", slugs["Export PDF"])
    assert re.fullmatch(r"export_pdf_[0-9a-f]{6}", slugs["export-pdf"])
    assert re.fullmatch(r"feature_[0-9a-f]{6}", slugs["株式会社"])  # nothing ASCII left
    assert len(set(slugs.values())) == len(slugs)


def test_a_value_alone_keeps_its_plain_slug():
    assert key_feature_slugs(["Export PDF"]) == {"Export PDF": "export_pdf"}
    assert key_feature_slugs(["株式会社"]) == {"株式会社": "feature"}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=50), min_size=1, max_size=12, unique=True), st.randoms())
def test_slugs_are_safe_unique_and_independent_of_order(names, rnd):
    slugs = key_feature_slugs(names)
    assert list(slugs) == names
    assert len(set(slugs.values())) == len(names)
    for slug in slugs.values():
        assert re.fullmatch(r"[a-z0-9_]{1,32}", slug), slug
    shuffled = list(names)
    rnd.shuffle(shuffled)
    assert key_feature_slugs(shuffled) == slugs


HOSTILE = ("x'); DROP TABLE keys; --", "it's \\ \"quoted\"", "new\nline", "Ünïcode ✓", "a;b", "'")


def test_hostile_feature_values_are_only_data():
    acc = accounts(("A-1", "smb", "2024-01-01"))
    con = contracts(("C-1", "A-1", "2024-01-01", "2025-01-01", 1000.0, 5, None))
    rows = [ev("A-1", f"u{i}", "2024-06-20", name) for i, name in enumerate(HOSTILE)] + \
        [ev("A-1", "u9", "2024-06-20", "other")]
    ds = dataset(accounts=acc, contracts=con, usage_events=frame(rows, EVENT_COLUMNS))
    cfg = FeaturesConfig(key_features=HOSTILE, usage_by_feature="share_and_change")
    feats = build_features(ds, observations(("A-1", "C-1", T)), config=cfg)
    shares = feats.filter(regex=r"^uses_.*_share_30d$")
    assert shares.shape[1] == len(HOSTILE)
    assert (shares.iloc[0] == 1 / 7).all()  # each used by one of the 7 active users
    assert feats["feature_breadth_90d"].iloc[0] == 1.0
    # learned rather than configured: the same
    learned = resolve_key_features(ds, FeaturesConfig(key_features_top_k=10), cutoff=CUTOFF)
    assert set(learned.key_features) == set(HOSTILE) | {"other"}


def test_the_sql_of_hostile_values_parses_as_one_statement_in_both_dialects():
    import sqlglot

    cfg = FeaturesConfig(key_features=HOSTILE, usage_by_feature="share_and_change")
    for _, sql in derived_table_sql(cfg):
        assert len(sqlglot.parse(sql, read="duckdb")) == 1
        assert len(sqlglot.parse(to_spark_sql(sql), read="spark")) == 1
    sql = features_sql(["usage"], config=cfg)
    assert len(sqlglot.parse(to_spark_sql(sql), read="spark")) == 1
    # and DuckDB reads the literals back as the values themselves
    masks = dict(derived_table_sql(cfg))["usage_user_days"]
    literals = re.findall(r"WHEN ('(?:[^']|'')*') THEN", masks)
    assert sorted(duckdb.sql(f"SELECT {lit}").fetchall()[0][0] for lit in literals) == sorted(HOSTILE)


# -- everything that enumerates features knows the family ---------------------------------------------
def test_include_can_name_the_family_or_one_of_its_columns():
    assert selected_features(FeaturesConfig(key_features=("a", "b"), include=("uses_<feature>_share_30d",
                                                                              "tickets_90d"))) == \
        ["uses_a_share_30d", "uses_b_share_30d", "tickets_90d"]
    assert selected_features(FeaturesConfig(key_features=("a",), include=("uses_a_share_change_30d",),
                                            usage_by_feature="share_and_change")) == ["uses_a_share_change_30d"]
    with pytest.raises(ConfigError, match=r"unknown feature 'uses_zz_share_30d'"):
        selected_features(FeaturesConfig(key_features=("a",), include=("uses_zz_share_30d",)))


def test_catalogue_documents_the_family_once_as_a_family():
    text = render_catalogue()
    assert text.count("`uses_<feature>_share_30d` (family)") == 1
    assert text.count("`uses_<feature>_share_change_30d` (family)") == 1
    assert "key_features_top_k" in text


def test_drivers_and_reports_word_family_columns():
    catalogue = feature_catalogue()
    share, change = catalogue.get("uses_export_pdf_share_30d"), catalogue["uses_export_pdf_share_change_30d"]
    assert "uses_export_pdf_share_30d" in catalogue and "uses_nothing" not in catalogue
    assert f"{feature_label(share.name, share)}: {format_value(0.4, share.unit)}" == \
        "Share of active users using export_pdf (30 days): 40%"
    assert format_value(-0.25, change.unit) == "-25 percentage points"
    assert feature_label(change.name, change).startswith("Change in the share of active users using export_pdf")
    assert share.component == change.component == "usage" and (share.direction, change.direction) == (1, 0)


def test_specs_of_a_vocabulary_match_the_built_columns():
    feats = build_features(share_world(), share_observations(), config=KEY)
    assert [f.name for f in feature_specs(KEY) if not f.fitted] == list(feats.columns)


# -- validate warns about configured names the data never has -------------------------------------------
def test_validate_warns_about_key_features_no_event_carries():
    ds = share_world()
    warnings = vocabulary_warnings(ds, FeaturesConfig(key_features=("dashboards", "Dashboards", "reports")))
    assert len(warnings) == 1
    assert "names 2 product feature(s) that no usage event carries: 'Dashboards', 'reports'" in warnings[0]
    assert "'Export PDF'" in warnings[0]  # what the events do carry
    assert vocabulary_warnings(ds, KEY) == []
    assert vocabulary_warnings(ds, FeaturesConfig()) == []  # learned: nothing to check


def test_validate_warns_about_rule_segments_no_account_has():
    ds = share_world()  # every account is smb
    assert vocabulary_warnings(ds, Config()) == []  # no rule by default
    warnings = vocabulary_warnings(ds, config_from_dict({"adjustments": {"rules": [{}]}}))  # the EBR example
    assert len(warnings) == 1 and "rule 'no_ebr_6_months' applies to segments mid_market, enterprise" in warnings[0]
    fixed = config_from_dict({"adjustments": {"rules": [{"segments": ["smb"]}]}})
    assert vocabulary_warnings(ds, fixed) == []


# -- training learns the vocabulary and hands it on with the rows ------------------------------------------
@pytest.fixture(scope="module")
def small_world():
    from healthscore.io import dataset_from_frames
    from healthscore.simulate import SimulationSpec, simulate

    return dataset_from_frames(simulate(SimulationSpec(accounts=40, seed=3, months=24)).tables)


def test_training_learns_key_features_before_its_latest_observation(small_world):
    from healthscore.model.train import training_set_from_dataset
    from healthscore.timeline import training_rows

    ts = training_set_from_dataset(small_world, config=Config())
    rows = training_rows(small_world, lead_times=Config().timeline.lead_times_days)
    expected = learn_key_features(small_world, cutoff=pd.Timestamp(rows["as_of"].max()).date(),
                                  top_k=FeaturesConfig().key_features_top_k, accounts=rows["account_id"])
    assert ts.features_config.key_features == expected and len(expected) == FeaturesConfig().key_features_top_k
    assert list(ts.features.columns) == [f.name for f in feature_specs(ts.features_config) if not f.fitted]
    family = [c for c in ts.features.columns if c.startswith("uses_")]
    assert len(family) == len(expected)  # the shares, by default
    assert {ts.components[c] for c in family} == {"usage"}
    assert {ts.directions[c] for c in family} == {1}
    assert ts.features["feature_breadth_90d"].gt(0).mean() > 0.5


def test_training_uses_configured_key_features_as_given(small_world):
    from healthscore.model.train import training_set_from_dataset

    cfg = config_from_dict({"features": {"key_features": ["api", "not_in_the_data"]}})
    ts = training_set_from_dataset(small_world, config=cfg)
    assert ts.features_config == cfg.features
    assert ts.features["uses_not_in_the_data_share_30d"].dropna().eq(0).all()


def test_validate_warns_about_contract_touchpoint_kinds_no_touchpoint_has():
    from healthscore.features import component_sql
    from healthscore.features.engagement import KINDS_READ

    sql = component_sql("engagement")
    assert all(f"'{k}'" in sql for k in KINDS_READ)  # the list is what the builders read
    acc = accounts(("A-1", "smb", "2024-01-01"))
    con = contracts(("C-1", "A-1", "2024-01-01", "2025-01-01", 1000.0, 5, None))
    touch = pd.DataFrame({"account_id": ["A-1"] * 3, "ts": [ts("2024-05-01")] * 3,
                          "kind": ["email_sent", "EBR", "Meeting"]})
    warnings = vocabulary_warnings(dataset(accounts=acc, contracts=con, touchpoints=touch), FeaturesConfig())
    assert len(warnings) == 1
    assert warnings[0].startswith("touchpoints.kind never has email_opened, meeting, ebr, webinar, web_visit")
    assert "other kinds found: 'EBR', 'Meeting'" in warnings[0]
