"""The contract every registered feature keeps: name, dtype, one row per observation, inputs untouched,
row order irrelevant, NaN for a missing table, portable SQL, and cutoffs only in the windowing helper."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlglot

import healthscore.features
from _features_world import accounts, contracts, dataset, observations, shuffled
from healthscore.config import COMPONENTS, FeaturesConfig
from healthscore.errors import ConfigError, DataError
from healthscore.features import (
    FAMILIES,
    FEATURES,
    SegmentAdoptionCurve,
    build_features,
    component_sql,
    feature_components,
    feature_spec,
    feature_specs,
    raw_feature_names,
    resolve_key_features,
)
from healthscore.features._build import OPTIONAL_INPUTS
from healthscore.io import dataset_from_frames
from healthscore.simulate import SimulationSpec, simulate
from healthscore.timeline import scoring_rows, training_rows

#: names other modules (config, model, scoring rules) are wired to
AGREED = {
    "usage": ["active_users_30d", "active_users_90d", "seat_utilization_30d", "stickiness_dau_mau_30d",
              "events_per_active_user_30d", "active_days_30d", "feature_breadth_90d", "days_since_last_activity",
              "usage_trend_30d"],
    "time_to_value": ["months_since_contract_start", "months_since_customer_start", "days_to_target_utilization",
                      "reached_target_utilization", "utilization_vs_segment_curve", "behind_segment_curve"],
    "support": ["tickets_90d", "high_urgent_tickets_90d", "urgent_tickets_90d", "open_tickets",
                "median_resolution_hours_90d", "ticket_trend_90d", "ticket_csat_avg_180d"],
    "engagement": ["email_open_rate_90d", "meetings_90d", "days_since_last_ebr", "no_ebr_182d", "web_visits_90d",
                   "webinars_90d"],
    "billing": ["invoices_late_365d", "amount_unpaid", "amount_overdue", "days_overdue_max"],
    "feedback": ["nps_last", "nps_change", "csat_avg_365d", "days_since_last_survey"],
    "account": ["segment", "tenure_days", "days_to_renewal", "seats", "arr", "earlier_renewals",
                "arr_change_pct_vs_previous_term", "seat_change_pct_vs_previous_term"],
}


@pytest.fixture(scope="module")
def world():
    sim = simulate(SimulationSpec(accounts=40, seed=3, months=24))
    return sim.tables


@pytest.fixture(scope="module")
def ds(world):
    return dataset_from_frames(world)


@pytest.fixture(scope="module")
def obs(ds):
    train = training_rows(ds, lead_times=(30, 90, 180))
    score = scoring_rows(ds, pd.Timestamp("2023-09-15").date())
    rows = pd.concat([train[["account_id", "contract_id", "as_of"]], score[["account_id", "contract_id", "as_of"]]],
                     ignore_index=True)
    rows.index = [f"obs-{i}" for i in np.random.default_rng(0).permutation(len(rows))]  # labels, not positions
    return rows


@pytest.fixture(scope="module")
def vocab(ds):
    """The key product features learned as training would (so every family column is built too)."""
    both = FeaturesConfig(usage_by_feature="share_and_change")
    cfg = resolve_key_features(ds, both, cutoff=pd.Timestamp("2023-09-15").date())
    assert len(cfg.key_features) == FeaturesConfig().key_features_top_k
    return cfg


@pytest.fixture(scope="module")
def built(ds, obs, vocab):
    return build_features(ds, obs, config=vocab)


# -- the registry ------------------------------------------------------------------------------------
def test_every_agreed_name_is_registered_in_its_component():
    comps = feature_components()
    for component, names in AGREED.items():
        for name in names:
            assert comps.get(name) == component, name


def test_specs_are_complete_and_consistent():
    names = [f.name for f in FEATURES]
    assert len(names) == len(set(names))
    assert {f.component for f in FEATURES} == set(COMPONENTS)
    assert [f.component for f in FEATURES] == sorted((f.component for f in FEATURES), key=COMPONENTS.index)
    for f in FEATURES:
        assert f.direction in (-1, 0, 1) and f.kind in ("numeric", "categorical"), f.name
        assert f.unit and f.description and f.when_empty, f.name
        assert f.description[0].isupper() or f.description[0].isdigit(), f.name
        window = re.search(r"_(\d+)d$", f.name)
        if window:
            assert f.window_days == int(window.group(1)), f.name
    assert [f.name for f in FEATURES if f.fitted] == ["utilization_vs_segment_curve", "behind_segment_curve"]
    assert raw_feature_names() == [f.name for f in FEATURES if not f.fitted]
    assert [f.name for f in FEATURES if f.kind == "categorical"] == ["segment"]


def test_families_are_documented_once_and_their_columns_resolve_by_name(vocab):
    assert [t.name for t in FAMILIES] == ["uses_<feature>_share_30d", "uses_<feature>_share_change_30d"]
    assert not [f.name for f in FEATURES if f.name.startswith("uses_")]  # family names cannot be taken
    specs = feature_specs(vocab)
    family = [f for f in specs if f.family]
    assert len(family) == 2 * len(vocab.key_features)
    for f in family:
        assert feature_spec(f.name) == f and f.label and "<feature>" not in f.name + f.description + f.label
        assert re.fullmatch(r"[a-z0-9_]+", f.name)
    assert {f.direction for f in family if f.family == "uses_<feature>_share_30d"} == {1}
    assert {f.direction for f in family if f.family == "uses_<feature>_share_change_30d"} == {0}
    assert [f.name for f in specs if not f.family] == [f.name for f in FEATURES]
    assert feature_components(vocab)[family[0].name] == "usage"


# -- the built frame ---------------------------------------------------------------------------------
def test_one_row_per_observation_same_index_every_raw_feature(built, obs, vocab):
    assert list(built.columns) == raw_feature_names(vocab)
    assert len(built.columns) == len(raw_feature_names()) + 2 * len(vocab.key_features)
    assert built.index.equals(obs.index)
    for name in built.columns:
        if name == "segment":
            assert isinstance(built[name].dtype, pd.CategoricalDtype)
        else:
            assert built[name].dtype == "float64", name
    # a simulated world has data for every feature somewhere
    assert built.notna().any().all(), built.columns[~built.notna().any()].tolist()


def test_inputs_are_not_modified(world, obs):
    ds = dataset_from_frames(world)
    before = {name: ds.table(name).copy(deep=True) for name in world}
    obs_before = obs.copy(deep=True)
    build_features(ds, obs)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(ds.table(name), frame)
    pd.testing.assert_frame_equal(obs, obs_before)


def test_row_order_of_observations_and_tables_is_irrelevant(world, obs, built, vocab):
    order = np.random.default_rng(1).permutation(len(obs))
    again = build_features(dataset_from_frames({n: shuffled(f, 9) for n, f in world.items()}), obs.iloc[order],
                           config=vocab)
    assert again.index.equals(obs.index[order])
    pd.testing.assert_frame_equal(again.loc[built.index], built)  # exactly: sums are decimal


@pytest.mark.parametrize("table", OPTIONAL_INPUTS)
def test_a_missing_optional_table_gives_nan_for_its_features_only(world, obs, built, vocab, table):
    without = build_features(dataset_from_frames({n: f for n, f in world.items() if n != table}), obs, config=vocab)
    reads = [f.name for f in feature_specs(vocab) if not f.fitted and table in f.tables]
    assert reads, f"no feature reads {table}"
    assert without[reads].isna().all().all()
    others = [c for c in built.columns if c not in reads]
    pd.testing.assert_frame_equal(without[others], built[others])


def test_observations_without_contract_get_every_account_level_feature(ds):
    score = scoring_rows(ds, pd.Timestamp("2023-09-15").date())
    feats = build_features(ds, score)
    none = score["status"] == "no_active_contract"
    assert none.any()
    assert feats.loc[none, ["seats", "days_to_renewal", "seat_utilization_30d"]].isna().all().all()
    assert feats.loc[none, ["active_users_90d", "segment"]].notna().all().all()
    assert feats.loc[none, "tenure_days"].notna().any()  # prospects not yet customers have no tenure


def test_empty_observations_give_an_empty_frame(ds):
    feats = build_features(ds, observations()[:0])
    assert list(feats.columns) == raw_feature_names() and len(feats) == 0


# -- config ------------------------------------------------------------------------------------------
def test_include_chooses_features(ds, obs):
    feats = build_features(ds, obs.iloc[:5], config=FeaturesConfig(include=("tickets_90d", "segment")))
    assert list(feats.columns) == ["tickets_90d", "segment"]


def test_include_with_unknown_or_fitted_names_is_refused(ds, obs):
    bad = FeaturesConfig(include=("activ_users_30d", "behind_segment_curve"))
    with pytest.raises(ConfigError, match=r"(?s)unknown feature 'activ_users_30d'; did you mean "
                                          r"'active_users_30d'.*'behind_segment_curve' is fitted by the model"):
        build_features(ds, obs, config=bad)


# -- observations are checked, all problems at once ----------------------------------------------------
def small():
    acc = accounts(("A-1", "smb", None), ("A-2", "smb", None))
    con = contracts(("C-1", "A-1", "2024-01-01", "2025-01-01", 1.0, 1, None),
                    ("C-2", "A-2", "2024-01-01", "2025-01-01", 1.0, 1, None))
    return dataset(accounts=acc, contracts=con)


def test_bad_observations_are_reported_together():
    obs = observations(
        ("A-9", None, "2024-06-01"),  # unknown account
        ("A-1", "C-404", "2024-06-01"),  # unknown contract
        ("A-1", "C-2", "2024-06-01"),  # someone else's contract
        ("A-1", "C-1", "2023-12-31"),  # before the contract starts
        ("A-1", "C-1", "2025-01-01"),  # at the renewal: the outcome is due, not observable
        ("A-1", "C-1", "2024-06-01 12:00"),  # not a midnight
    )
    with pytest.raises(DataError) as info:
        build_features(small(), obs)
    message = str(info.value)
    for part in ("account not in accounts in 1 row (e.g. A-9)", "contract not in contracts in 1 row (e.g. C-404)",
                 "contract belongs to another account in 1 row (e.g. C-2)",
                 "contract is not running at as_of (needs start_date <= as_of < end_date) in 2 rows "
                 "(e.g. C-1 at 2023-12-31, C-1 at 2025-01-01)", "observation date is not a midnight"):
        assert part in message


def test_missing_observation_columns_are_named():
    with pytest.raises(DataError, match=r"observations\.contract_id: required column is missing"):
        build_features(small(), pd.DataFrame({"account_id": ["A-1"], "as_of": [pd.Timestamp("2024-06-01")]}))


def test_missing_as_of_is_refused():
    obs = observations(("A-1", "C-1", "2024-06-01"))
    obs.loc[0, "as_of"] = pd.NaT
    with pytest.raises(DataError, match=r"observations\.as_of: observation date is missing in 1 row"):
        build_features(small(), obs)


# -- portability and the one place a cutoff lives -------------------------------------------------------
@pytest.mark.parametrize("component", COMPONENTS)
def test_component_sql_transpiles_to_spark(component):
    hostile = FeaturesConfig(key_features=("api", "it's \\ \"odd\"", "x'); DROP TABLE keys; --"),
                             usage_by_feature="share_and_change")
    sql = component_sql(component, config=hostile)
    out = sqlglot.transpile(sql, read="duckdb", write="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)
    assert len(out) == 1 and "SELECT" in out[0]


def _code_without_docstrings(path: Path) -> str:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)  # comments are gone too


def test_cutoffs_are_written_only_in_the_windowing_helper():
    """Component modules compare nothing with as_of themselves: every cutoff comes from ``Window``."""
    root = Path(healthscore.features.__file__).parent
    compare = re.compile(r"(<|>|<=|>=)\s*(\w+\.)?as_of\b|\bas_of\s*(<|>|<=|>=)")
    for module in ("usage", "time_to_value", "support", "engagement", "billing", "feedback", "account", "vocabulary"):
        assert not compare.search(_code_without_docstrings(root / f"{module}.py")), module
    assert compare.search(_code_without_docstrings(root / "_window.py"))  # the check can see a cutoff


def test_adoption_curve_is_a_sklearn_style_transformer():
    curve = SegmentAdoptionCurve(max_month=12, min_rows=5)
    assert vars(curve) == {"max_month": 12, "min_rows": 5}
