"""The timeline: training rows at lead times before decided renewals (the label), scoring rows at any date."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from _features_world import accounts, contracts, dataset, ts
from healthscore.timeline import (
    SCORING_COLUMNS,
    TRAINING_COLUMNS,
    lead_time_fit,
    scoring_rows,
    term_kinds,
    training_rows,
)


def world(seed: int = 0):
    acc = accounts(("A-1", "smb", None), ("A-2", "enterprise", None), ("A-3", "smb", None), ("A-4", None, None))
    con = contracts(
        ("C-1", "A-1", "2023-01-01", "2024-01-01", 1000.0, 5, "renewed"),
        ("C-2", "A-2", "2023-06-01", "2023-09-01", 500.0, 2, "churned"),  # a three-month term
        ("C-3", "A-1", "2024-01-01", "2025-01-01", 1100.0, 5, None),  # not decided yet
        ("C-4", "A-3", "2023-03-01", "2023-12-01", 700.0, 3, "renewed"),
        ("C-5", "A-3", "2023-12-01", "2024-12-01", 700.0, 4, None),
    )
    return dataset(seed, accounts=acc, contracts=con)


def test_training_rows_at_each_lead_time_skipping_those_before_the_start():
    rows = training_rows(world(seed=3), lead_times=(30, 90, 180))
    assert tuple(rows.columns) == TRAINING_COLUMNS
    got = [(r.contract_id, r.lead_time_days, str(r.as_of.date()), r.label) for r in rows.itertuples()]
    assert got == [
        # C-2 renews 2023-09-01: 180 days before is before its start (2023-06-01), so skipped
        ("C-2", 30, "2023-08-02", 0), ("C-2", 90, "2023-06-03", 0),
        ("C-4", 30, "2023-11-01", 1), ("C-4", 90, "2023-09-02", 1), ("C-4", 180, "2023-06-04", 1),
        ("C-1", 30, "2023-12-02", 1), ("C-1", 90, "2023-10-03", 1), ("C-1", 180, "2023-07-05", 1),
    ]
    assert rows["renewal_date"].is_monotonic_increasing
    assert rows["segment"].tolist()[:2] == ["enterprise", "enterprise"]
    assert rows["as_of"].dtype == "datetime64[ns]" and rows["label"].dtype == "int64"
    assert (rows["renewal_date"] - rows["as_of"]).dt.days.tolist() == rows["lead_time_days"].tolist()


def test_observation_exactly_at_the_start_is_kept():
    rows = training_rows(world(), lead_times=(92,))  # C-2: 2023-09-01 - 92 days = 2023-06-01, its start
    assert ("C-2", "2023-06-01") in [(r.contract_id, str(r.as_of.date())) for r in rows.itertuples()]


def test_decided_before_keeps_only_renewals_already_known():
    rows = training_rows(world(), lead_times=(30,), decided_before=pd.Timestamp("2024-01-01").date())
    # C-1 renews exactly on 2024-01-01: not decided *before* it
    assert sorted(rows["contract_id"]) == ["C-2", "C-4"]


def test_training_rows_do_not_depend_on_row_order():
    a = training_rows(world(seed=1), lead_times=[180, 30, 90])
    b = training_rows(world(seed=2), lead_times=(30, 90, 180))
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("leads", [(), (0,), (-30,), (30.5,), ("30",)])
def test_bad_lead_times_are_refused(leads):
    with pytest.raises(ValueError, match="lead_times must be positive whole numbers of days"):
        training_rows(world(), lead_times=leads)


def test_scoring_rows_take_the_running_contract():
    rows = scoring_rows(world(seed=5), pd.Timestamp("2024-01-01").date())
    assert tuple(rows.columns) == SCORING_COLUMNS
    assert rows["account_id"].tolist() == ["A-1", "A-2", "A-3", "A-4"]
    by = rows.set_index("account_id")
    # C-1 ends on 2024-01-01 and C-3 starts on it: the running contract is C-3
    assert by.loc["A-1", "contract_id"] == "C-3" and by.loc["A-1", "status"] == "scored"
    assert by.loc["A-1", "renewal_date"] == ts("2025-01-01") and by.loc["A-1", "seats"] == 5
    assert by.loc["A-3", "contract_id"] == "C-5"
    for account in ("A-2", "A-4"):  # A-2's only contract is over; A-4 never had one
        assert by.loc[account, "status"] == "no_active_contract"
        assert pd.isna(by.loc[account, "contract_id"]) and pd.isna(by.loc[account, "renewal_date"])
        assert math.isnan(by.loc[account, "arr"]) and math.isnan(by.loc[account, "seats"])
    assert (rows["as_of"] == ts("2024-01-01")).all()


def test_scoring_rows_latest_start_wins_when_contracts_overlap():
    acc = accounts(("A-1", "smb", None))
    con = contracts(("C-a", "A-1", "2024-01-01", "2025-01-01", 1.0, 1, None),
                    ("C-b", "A-1", "2024-03-01", "2024-09-01", 2.0, 1, None))
    rows = scoring_rows(dataset(accounts=acc, contracts=con), pd.Timestamp("2024-06-01").date())
    assert rows["contract_id"].tolist() == ["C-b"]
    later = scoring_rows(dataset(accounts=acc, contracts=con), pd.Timestamp("2024-09-01").date())
    assert later["contract_id"].tolist() == ["C-a"]



# --- how lead times fit the terms ---------------------------------------------------------------------------


def _terms(*spans: tuple[str, str]) -> pd.DataFrame:
    return contracts(*((f"C-{i}", "A-1", a, b, 100.0, 1, None) for i, (a, b) in enumerate(spans, start=1)))


def test_term_kinds_by_length_in_days():
    days = pd.Series([28, 31, 45, 46, 92, 135, 136, 184, 272, 273, 366, 547, 548, 1096, None])
    assert term_kinds(days).tolist() == [
        "monthly", "monthly", "monthly", "quarterly", "quarterly", "quarterly", "semi-annual", "semi-annual",
        "semi-annual", "annual", "annual", "annual", "multi-year", "multi-year", pd.NA,
    ]


def test_monthly_terms_misfit_the_default_lead_times_and_get_7_and_14():
    # three monthly terms (31, 28, 31 days) and one annual (365): 90 and 180 days are longer than 3 of 4 terms;
    # 30 days is longer than only February's (1 of 4, not more than a quarter)
    c = _terms(("2023-01-01", "2023-02-01"), ("2023-02-01", "2023-03-01"), ("2023-03-01", "2023-04-01"),
               ("2023-01-01", "2024-01-01"))
    fit = lead_time_fit(c, (30, 90, 180))
    assert fit["terms"] == {"monthly": 0.75, "annual": 0.25}
    assert fit["median_term_days"] == 31
    assert fit["skipped"] == {90: 0.75, 180: 0.75}
    assert (fit["suggested_for"], fit["suggested"]) == ("monthly", [7, 14])
    # and the suggestion fits: training rows exist for every contract at both lead times
    assert lead_time_fit(c, (7, 14))["skipped"] == {} and lead_time_fit(c, (7, 14))["suggested"] is None


def test_quarterly_and_annual_terms():
    quarterly = _terms(("2023-01-01", "2023-04-01"), ("2023-04-01", "2023-07-01"), ("2023-07-01", "2023-10-01"))
    fit = lead_time_fit(quarterly, (30, 90, 180))
    assert fit["terms"] == {"quarterly": 1.0}
    assert fit["skipped"] == {180: 1.0}  # 90 days fits a 90-day term: observed on its start date
    assert fit["suggested"] == [14, 30, 60]
    annual = _terms(("2022-01-01", "2023-01-01"), ("2022-06-01", "2023-06-01"))
    assert lead_time_fit(annual, (30, 90, 180))["skipped"] == {}
    assert lead_time_fit(annual.iloc[:0], (30,))["terms"] == {}
