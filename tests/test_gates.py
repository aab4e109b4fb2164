"""Gates before scoring: stale data, a table the model learned from gone missing, an as-of date with nothing to score.

The shared world's records end on 2024-06-30 in every event table (adjustments 2024-06-19); its contracts
start from 2022-01-03 and end by 2025-06-30. Its model learned from all five event tables it reads.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import date

import pandas as pd
import pytest

from _ops_world import ops_world
from healthscore import gates
from healthscore.config import config_from_dict
from healthscore.errors import HealthscoreError
from healthscore.gates import GateError
from healthscore.io import dataset_from_frames, load_dataset
from healthscore.scoring import score_batch

TABLES = ("accounts", "contracts", "usage_events", "tickets", "surveys", "touchpoints", "invoices", "adjustments")


@pytest.fixture(scope="module")
def world():
    return ops_world()


def _without(ds, *tables):
    return dataset_from_frames({t: ds.table(t) for t in TABLES if t not in tables and ds.table(t) is not None})


def test_scoring_19_days_past_the_usage_data_is_refused_with_the_dates(world):
    with pytest.raises(GateError, match=r"cannot score as of 2024-07-20: 1 problem\n  - usage_events ends "
                                        r"2024-06-30: 19 days without data before --as-of 2024-07-20 \(at most 7 "
                                        r"allowed by freshness.max_lag_days\)\n  fix stale data: load newer data, "
                                        r"score an earlier --as-of, or pass --allow-stale"):
        gates.check(world["ds"], date(2024, 7, 20), world["result"].model, world["config"])
    # tickets, touchpoints (30 days), invoices (45) and surveys (120) are sparse feeds: within their limits


def test_the_limit_counts_whole_days_without_data(world):
    model, cfg = world["result"].model, world["config"]
    found, notes = gates.check(world["ds"], date(2024, 7, 8), model, cfg)  # data through 06-30: 7 days missing
    assert not found.stale_data and notes == []
    with pytest.raises(GateError, match="8 days without data"):
        gates.check(world["ds"], date(2024, 7, 9), model, cfg)
    relaxed = config_from_dict({"freshness": {"max_lag_days": 30}})
    assert not gates.check(world["ds"], date(2024, 7, 20), model, relaxed)[0].stale_data


def test_a_per_table_limit_and_every_stale_table_listed(world):
    cfg = config_from_dict({"freshness": {"max_lag_days": 60, "max_lag_days_by_table": {"surveys": 10}}})
    with pytest.raises(GateError, match=r"1 problem\n  - surveys ends 2024-06-30: 19 days .*"
                                        r"freshness.max_lag_days_by_table.surveys"):
        gates.check(world["ds"], date(2024, 7, 20), world["result"].model, cfg)
    with pytest.raises(GateError, match=r"cannot score as of 2024-09-01: 4 problems"):
        gates.check(world["ds"], date(2024, 9, 1), world["result"].model, world["config"])


def test_a_backfill_in_the_past_is_never_stale(world):
    found, _ = gates.check(world["ds"], date(2023, 3, 1), world["result"].model, world["config"])
    assert not found.stale_data
    assert found.data_through == pd.Timestamp("2023-02-28")  # visible data only: the day before as-of


def test_allow_stale_scores_and_marks_every_row(world):
    T = date(2024, 7, 20)
    found, notes = gates.check(world["ds"], T, world["result"].model, world["config"], allow_stale=True)
    assert found.stale == {"usage_events": 19}
    assert notes and notes[0].startswith("scored stale data (--allow-stale): usage_events ends 2024-06-30")
    batch = score_batch(world["ds"], T, world["loaded"], world["config"], readiness=found)
    assert batch.scores["stale_data"].all()
    assert (batch.scores["data_through"] == pd.Timestamp("2024-06-30")).all()
    assert found.manifest()["stale_tables"] == {"usage_events": 19}


def test_fresh_rows_say_where_their_data_ends(world):
    s = world["second"].scores  # as of 2024-04-01, gates assessed inside score_batch
    assert not s["stale_data"].any() and s["missing_tables"].isna().all()
    assert (s["data_through"] == pd.Timestamp("2024-03-31")).all()


def test_a_table_the_model_learned_from_is_required(world):
    ds = _without(world["ds"], "surveys")
    with pytest.raises(GateError, match=r"surveys is missing, but the model learned from it \(component "
                                        r"feedback\) Add surveys.csv or surveys.parquet, or pass --allow-missing "
                                        r"surveys to score without it"):
        gates.check(ds, date(2024, 4, 1), world["result"].model, world["config"])
    found, notes = gates.check(ds, date(2024, 4, 1), world["result"].model, world["config"],
                               allow_missing=["surveys"])
    assert found.missing == ("surveys",)
    assert notes == ["scored without surveys (--allow-missing): the feedback component has no data; every row "
                     "says so in missing_tables"]
    scores = score_batch(ds, date(2024, 4, 1), world["loaded"], world["config"], readiness=found).scores
    assert (scores["missing_tables"] == "surveys").all()


def test_a_misnamed_file_gets_a_did_you_mean_at_scoring(world, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(world["data"], data)
    (data / "surveys.parquet").rename(data / "survey.parquet")
    (data / "usage_events.parquet").rename(data / "Usage_Events.parquet")
    ds = load_dataset(data)
    with pytest.raises(GateError, match=r"2 problems\n"
                                        r"  - usage_events is missing, but the model learned from it \(components "
                                        r"usage, time_to_value\); found Usage_Events.parquet: did you mean "
                                        r"usage_events.csv or usage_events.parquet\? Add .*\n"
                                        r"  - surveys is missing, .*found survey.parquet: did you mean"):
        gates.check(ds, date(2024, 4, 1), world["result"].model, world["config"])


@dataclass
class _Model:
    feature_names: list[str]
    reference_distributions: dict = field(default_factory=dict)
    components: dict = field(default_factory=dict)


def test_only_tables_whose_features_had_values_in_training_are_required():
    model = _Model(["nps_last", "active_users_30d"],
                   {"nps_last": {"kind": "numeric", "missing_share": 1.0},
                    "active_users_30d": {"kind": "numeric", "missing_share": 0.1}})
    assert gates.tables_learned(model) == {"usage_events": ["usage"]}
    # a model saved without training distributions: every table it reads
    assert set(gates.tables_learned(_Model(["nps_last", "active_users_30d"]))) == {"surveys", "usage_events"}


@pytest.mark.parametrize(("as_of", "message"), [
    (date(2021, 6, 1), r"--as-of 2021-06-01 is before any contract starts \(the first start_date is 2022-01-03\)"),
    (date(2030, 1, 1), r"--as-of 2030-01-01 is after every contract has ended \(the last end_date is 2025-06-30\)"),
])
def test_an_as_of_with_nothing_to_score_is_an_error(world, as_of, message):
    with pytest.raises(GateError, match=message):
        gates.check(world["ds"], as_of, world["result"].model, world["config"], allow_stale=True)


def test_a_date_pandas_cannot_hold_is_an_error():
    with pytest.raises(HealthscoreError, match=r"--as-of 9999-12-31 is out of range: use a date between "
                                               r"1900-01-01 and 2262-04-10"):
        gates.check_date(date(9999, 12, 31))


def test_allow_missing_names_only_optional_tables(world):
    with pytest.raises(GateError, match=r"--allow-missing survey: not an optional table; did you mean surveys\?"):
        gates.check(world["ds"], date(2024, 4, 1), world["result"].model, world["config"],
                    allow_missing=["survey"])
