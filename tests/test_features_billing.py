"""Billing features on a hand-counted story (rows shuffled): an invoice exists from issued_at and is paid
at as_of only if paid_at is before it."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from _features_world import INVOICE_COLUMNS, T, accounts, contracts, dataset, frame, observations, row, ts
from healthscore.features import build_features

BILLING = ["invoices_late_365d", "amount_unpaid", "amount_overdue", "days_overdue_max"]


def inv(iid, account, issued, due, paid, amount) -> dict:
    return {"invoice_id": iid, "account_id": account, "issued_at": ts(issued), "due_at": ts(due),
            "paid_at": None if paid is None else ts(paid), "amount": amount}


def billing_world(seed: int = 0, *, with_invoices: bool = True):
    acc = accounts(("A-1", "smb", "2023-01-01"), ("A-2", "smb", "2024-01-01"))
    con = contracts(
        ("C-0", "A-1", "2023-01-01", "2024-01-01", 1000.0, 10, "renewed"),
        ("C-1", "A-1", "2024-01-01", "2025-01-01", 1200.0, 8, None),
        ("C-2", "A-2", "2024-01-01", "2025-01-01", 900.0, 3, None),
        ("C-9", "A-2", "2025-01-01", "2026-01-01", 5000.0, 30, None),  # a later term, not a previous one
    )
    invoices = frame(
        [
            inv("i1", "A-1", "2024-01-01", "2024-01-31", "2024-02-15", 1200.0),  # paid 15 days late
            inv("i2", "A-1", "2024-05-01", "2024-05-31", None, 100.0),  # overdue by 31 days
            inv("i3", "A-1", "2024-06-15", "2024-07-15", None, 50.0),  # unpaid, not due yet
            inv("i4", "A-1", "2024-06-01", "2024-06-30", "2024-07-01", 30.0),  # paid at as_of: overdue 1 day
            inv("i5", "A-1", "2024-07-01", "2024-07-31", None, 1000.0),  # issued at as_of: invisible
            inv("i6", "A-1", "2023-01-01", "2023-01-31", "2023-03-01", 1000.0),  # late, but over a year ago
        ],
        INVOICE_COLUMNS,
    )
    return dataset(seed, accounts=acc, contracts=con, invoices=invoices if with_invoices else None)


OBS = observations(("A-2", "C-2", T), ("A-1", "C-1", T))


def test_billing_story_counted_by_hand():
    feats = build_features(billing_world(seed=11), OBS)
    a1 = row(feats, "A-1", OBS)
    # i1 paid late; i2 unpaid past due; i4 paid only at as_of, so unpaid past due then (i6: paid late too long ago)
    assert a1["invoices_late_365d"] == 3
    assert a1["amount_unpaid"] == pytest.approx(100 + 50 + 30)
    assert a1["amount_overdue"] == pytest.approx(100 + 30)
    assert a1["days_overdue_max"] == 31
    assert a1["arr_change_pct_vs_previous_term"] == pytest.approx(1200 / 1000 - 1)
    assert a1["seat_change_pct_vs_previous_term"] == pytest.approx(8 / 10 - 1)


def test_no_invoices_and_no_previous_term_give_documented_values():
    a2 = row(build_features(billing_world(), OBS), "A-2", OBS)
    assert [a2[c] for c in BILLING] == [0, 0, 0, 0]
    assert math.isnan(a2["arr_change_pct_vs_previous_term"])
    assert math.isnan(a2["seat_change_pct_vs_previous_term"])


def test_missing_invoices_table_gives_nan_but_contract_changes_remain():
    feats = build_features(billing_world(with_invoices=False), OBS)
    assert feats[BILLING].isna().all().all()
    assert row(feats, "A-1", OBS)["arr_change_pct_vs_previous_term"] == pytest.approx(0.2)


def test_money_past_due_is_never_read_as_never_late():
    # an account that owes money past due has at least one late invoice on every day, so the billing features
    # never say "0 late invoices" beside "money overdue" (issue 16: an explanation never contradicts the data)
    days = pd.date_range("2024-01-15", "2024-08-15", freq="7D")
    obs = observations(*[("A-1", "C-1", d.date()) for d in days])
    feats = build_features(billing_world(seed=3), obs)
    overdue = feats["amount_overdue"] > 0
    assert overdue.sum() >= 10  # the story has money past due on most of these days
    assert (feats.loc[overdue, "invoices_late_365d"] >= 1).all()
