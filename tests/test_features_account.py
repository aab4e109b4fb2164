"""Account features: context known at as_of, and earlier outcomes only once their end_date has passed."""

from __future__ import annotations

import math

import pandas as pd

from _features_world import T, accounts, contracts, dataset, observations, row
from healthscore.features import build_features


def account_world(seed: int = 0):
    acc = accounts(("A-1", "enterprise", "2023-01-01"), ("A-2", None, None), ("A-3", "smb", "2024-07-01"))
    con = contracts(
        ("C-0", "A-1", "2022-01-01", "2023-01-01", 800.0, 8, "renewed"),
        ("C-1", "A-1", "2023-01-01", "2024-01-01", 1000.0, 10, "renewed"),
        ("C-2", "A-1", "2024-01-01", "2025-01-01", 1200.0, 8, "churned"),  # observed: its outcome is hidden
        ("C-x", "A-1", "2023-07-01", "2024-07-01", 99.0, 1, "renewed"),  # ends at as_of: not known yet
        ("C-5", "A-2", "2024-02-01", "2025-02-01", 500.0, None, None),
        ("C-6", "A-3", "2024-07-01", "2025-07-01", 300.0, 3, None),  # starts at as_of: known
    )
    return dataset(seed, accounts=acc, contracts=con)


OBS = observations(("A-3", "C-6", T), ("A-2", "C-5", T), ("A-1", "C-2", T))


def test_account_story_counted_by_hand():
    feats = build_features(account_world(seed=4), OBS)
    a1 = row(feats, "A-1", OBS)
    assert a1["segment"] == "enterprise"
    assert a1["tenure_days"] == (T - pd.Timestamp("2022-01-01")).days  # first contract
    assert a1["days_to_renewal"] == 184
    assert (a1["seats"], a1["arr"]) == (8, 1200)
    assert a1["earlier_renewals"] == 2  # C-0 and C-1; C-x ends at as_of, C-2 is the one observed

    a2 = row(feats, "A-2", OBS)
    assert a2["segment"] == "unknown" and math.isnan(a2["seats"]) and a2["earlier_renewals"] == 0
    assert a2["tenure_days"] == 151  # no created_at: since its contract began on 2024-02-01

    a3 = row(feats, "A-3", OBS)
    assert a3["tenure_days"] == 0 and a3["days_to_renewal"] == 365


def test_segment_is_categorical_with_the_accounts_segments():
    feats = build_features(account_world(), OBS)
    assert isinstance(feats["segment"].dtype, pd.CategoricalDtype)
    assert list(feats["segment"].cat.categories) == ["enterprise", "smb", "unknown"]
