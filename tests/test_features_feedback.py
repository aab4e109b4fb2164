"""Feedback features on a hand-counted story (rows shuffled)."""

from __future__ import annotations

import math

from _features_world import SURVEY_COLUMNS, T, accounts, contracts, dataset, frame, observations, row, ts
from healthscore.features import build_features

FEEDBACK = ["nps_last", "nps_change", "csat_avg_365d", "days_since_last_survey"]


def sv(account: str, when: str, kind: str, score: float) -> dict:
    return {"account_id": account, "responded_at": ts(when), "kind": kind, "score": score}


def feedback_world(seed: int = 0, *, with_surveys: bool = True):
    # As of 2024-07-01: 365 days back is 2023-07-02.
    acc = accounts(("A-1", "smb", "2023-01-01"), ("A-2", "smb", "2023-01-01"), ("A-3", "smb", "2023-01-01"))
    con = contracts(*[(f"C-{i}", f"A-{i}", "2024-01-01", "2025-01-01", 1000.0, 5, None) for i in (1, 2, 3)])
    rows = [
        sv("A-1", "2024-01-10 12:00", "nps", 6), sv("A-1", "2024-06-01 10:00", "nps", 9),
        sv("A-1", "2024-07-01 00:00", "nps", 2),  # at as_of: invisible
        sv("A-1", "2024-03-01 12:00", "csat", 4), sv("A-1", "2023-05-01 12:00", "csat", 2),  # too old
        # A-2 answered twice at the same instant: ranked by score, whatever the row order
        sv("A-2", "2024-05-05 05:05", "nps", 5), sv("A-2", "2024-05-05 05:05", "nps", 7),
    ]
    return dataset(seed, accounts=acc, contracts=con, surveys=frame(rows, SURVEY_COLUMNS) if with_surveys else None)


OBS = observations(("A-3", "C-3", T), ("A-2", "C-2", T), ("A-1", "C-1", T))


def test_feedback_story_counted_by_hand():
    feats = build_features(feedback_world(seed=2), OBS)
    a1 = row(feats, "A-1", OBS)
    assert (a1["nps_last"], a1["nps_change"], a1["csat_avg_365d"]) == (9, 3, 4)
    assert a1["days_since_last_survey"] == 30
    a2 = row(feats, "A-2", OBS)
    assert (a2["nps_last"], a2["nps_change"]) == (7, 2)
    assert math.isnan(a2["csat_avg_365d"])


def test_ties_do_not_depend_on_row_order():
    for seed in range(4):
        a2 = row(build_features(feedback_world(seed=seed), OBS), "A-2", OBS)
        assert (a2["nps_last"], a2["nps_change"]) == (7, 2)


def test_no_answers_give_nan():
    feats = build_features(feedback_world(), OBS)
    assert row(feats, "A-3", OBS)[FEEDBACK].isna().all()
    assert build_features(feedback_world(with_surveys=False), OBS)[FEEDBACK].isna().all().all()
