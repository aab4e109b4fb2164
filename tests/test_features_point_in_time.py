"""Point-in-time property: nothing stamped at or after as_of can change a feature (CONTRACT §2).

Hypothesis builds a small random world around T (records before, exactly at, and after T), then adds or
changes records at or after T — usage, tickets (new, closed later, re-rated), surveys, touchpoints, invoices
(new, paid later), later contracts, and the outcome of every contract not over before T, including the one
being predicted — and shuffles every table. The features of the scoring rows at T must not move, and
neither may the key product features learned at T (nor so the per-feature family's columns).
Amounts and scores are whole numbers, so sums are exact whatever the order and equality can be exact.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _features_world import (
    ACCOUNT_COLUMNS,
    CONTRACT_COLUMNS,
    EVENT_COLUMNS,
    INVOICE_COLUMNS,
    SURVEY_COLUMNS,
    TICKET_COLUMNS,
    TOUCH_COLUMNS,
    shuffled,
)
from healthscore.config import FeaturesConfig
from healthscore.features import build_features, resolve_key_features
from healthscore.io import dataset_from_frames
from healthscore.timeline import scoring_rows, training_rows

T = pd.Timestamp("2024-07-01")
ACCOUNTS = ["A-0", "A-1", "A-2"]
USERS = ["u0", "u1", "u2", "u3", "u4"]
FEATURES_USED = ["dashboards", "reports", "api", "automation", "other", "Export PDF's"]
KINDS = ["email_sent", "email_opened", "meeting", "ebr", "webinar", "web_visit"]
PRIORITIES = ["low", "normal", "high", "urgent"]
#: seconds into a day: midnight (exactly a day boundary, so exactly T for day 0), one second, mid-day, last second
SECONDS = st.sampled_from([0, 1, 43_200, 86_399])


@st.composite
def stamp(draw, lo: int, hi: int) -> pd.Timestamp:
    """A timestamp ``lo``..``hi`` days from T, often exactly at a midnight."""
    return T + pd.Timedelta(days=draw(st.integers(lo, hi)), seconds=draw(SECONDS))


def at_or_after(draw, not_before: pd.Timestamp | None = None) -> pd.Timestamp:
    when = draw(st.one_of(st.just(T), stamp(0, 60)))
    return max(when, not_before) if not_before is not None else when


def day(value: pd.Timestamp) -> pd.Timestamp:
    return value.normalize()


@st.composite
def worlds(draw):
    """A small world with records before, at and after T."""
    any_time = stamp(-420, 60)
    acc = [{"account_id": a, "name": a, "segment": draw(st.sampled_from(["smb", "enterprise", None])),
            "industry": None, "csm": None,
            "created_at": draw(st.one_of(st.none(), any_time.map(day)))} for a in ACCOUNTS]
    con = []
    for i, a in enumerate(ACCOUNTS):
        start = day(draw(stamp(-500, 30)))
        for term in range(draw(st.integers(1 if i == 0 else 0, 3))):
            end = start + pd.Timedelta(days=draw(st.sampled_from([90, 181, 365])))
            con.append({"contract_id": f"C-{i}-{term}", "account_id": a, "start_date": start, "end_date": end,
                        "arr": float(draw(st.integers(0, 5000))), "seats": draw(st.one_of(st.none(),
                                                                                         st.integers(0, 6))),
                        "outcome": draw(st.sampled_from(["renewed", "churned", None]))})
            start = end
    events = [{"account_id": draw(st.sampled_from(ACCOUNTS)), "user_id": draw(st.sampled_from(USERS)),
               "ts": draw(any_time), "feature": draw(st.sampled_from(FEATURES_USED)),
               "quantity": float(draw(st.integers(1, 3)))} for _ in range(draw(st.integers(0, 25)))]
    tickets = []
    for k in range(draw(st.integers(0, 8))):
        opened = draw(any_time)
        closed = draw(st.one_of(st.none(), st.integers(0, 200).map(lambda h, o=opened: o + pd.Timedelta(hours=h))))
        tickets.append({"ticket_id": f"t{k}", "account_id": draw(st.sampled_from(ACCOUNTS)), "opened_at": opened,
                        "closed_at": closed, "priority": draw(st.sampled_from(PRIORITIES)),
                        "csat": draw(st.one_of(st.none(), st.integers(1, 5).map(float)))})
    surveys = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["nps", "csat"]))
        score = draw(st.integers(0, 10) if kind == "nps" else st.integers(1, 5))
        surveys.append({"account_id": draw(st.sampled_from(ACCOUNTS)), "responded_at": draw(any_time),
                        "kind": kind, "score": float(score)})
    touches = [{"account_id": draw(st.sampled_from(ACCOUNTS)), "ts": draw(any_time),
                "kind": draw(st.sampled_from(KINDS))} for _ in range(draw(st.integers(0, 12)))]
    invoices = []
    for k in range(draw(st.integers(0, 6))):
        issued = day(draw(any_time))
        due = issued + pd.Timedelta(days=draw(st.sampled_from([0, 30])))
        paid = draw(st.one_of(st.none(), st.integers(0, 90).map(lambda d, i=issued: i + pd.Timedelta(days=d))))
        invoices.append({"invoice_id": f"i{k}", "account_id": draw(st.sampled_from(ACCOUNTS)), "issued_at": issued,
                         "due_at": due, "paid_at": paid, "amount": float(draw(st.integers(1, 900)))})
    return {
        "accounts": pd.DataFrame(acc, columns=ACCOUNT_COLUMNS),
        "contracts": pd.DataFrame(con, columns=CONTRACT_COLUMNS),
        "usage_events": pd.DataFrame(events, columns=EVENT_COLUMNS),
        "tickets": pd.DataFrame(tickets, columns=TICKET_COLUMNS),
        "surveys": pd.DataFrame(surveys, columns=SURVEY_COLUMNS),
        "touchpoints": pd.DataFrame(touches, columns=TOUCH_COLUMNS),
        "invoices": pd.DataFrame(invoices, columns=INVOICE_COLUMNS),
    }


def _append(frame: pd.DataFrame, row: dict) -> pd.DataFrame:
    return pd.concat([frame, pd.DataFrame([row], columns=frame.columns)], ignore_index=True)


def future_changes(draw, frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Copies of ``frames`` with records at or after T added or changed (never one visible before T)."""
    out = {name: f.copy() for name, f in frames.items()}
    for _ in range(draw(st.integers(1, 6))):
        what = draw(st.sampled_from(["usage", "ticket", "close", "rerate", "survey", "touch", "invoice", "pay",
                                     "outcome", "contract"]))
        a = draw(st.sampled_from(ACCOUNTS))
        if what == "usage":
            out["usage_events"] = _append(out["usage_events"], {
                "account_id": a, "user_id": draw(st.sampled_from(USERS + ["new"])), "ts": at_or_after(draw),
                "feature": draw(st.sampled_from(FEATURES_USED)), "quantity": 5.0})
        elif what == "ticket":
            opened = at_or_after(draw)
            out["tickets"] = _append(out["tickets"], {
                "ticket_id": f"new-{len(out['tickets'])}", "account_id": a, "opened_at": opened,
                "closed_at": draw(st.one_of(st.none(), st.just(opened + pd.Timedelta(hours=3)))),
                "priority": "urgent", "csat": 1.0})
        elif what in ("close", "rerate"):
            t = out["tickets"]
            # a ticket not closed before T: its closing and its rating are still in the future
            open_at_t = t.index[t["closed_at"].isna() | (t["closed_at"] >= T)]
            if len(open_at_t):
                i = draw(st.sampled_from(list(open_at_t)))
                if what == "close":
                    t.loc[i, "closed_at"] = draw(st.one_of(st.none(), st.just(at_or_after(draw, t.loc[i, "opened_at"]))))
                else:
                    t.loc[i, "csat"] = float(draw(st.integers(1, 5)))
        elif what == "survey":
            out["surveys"] = _append(out["surveys"], {"account_id": a, "responded_at": at_or_after(draw),
                                                      "kind": "nps", "score": 0.0})
        elif what == "touch":
            out["touchpoints"] = _append(out["touchpoints"], {"account_id": a, "ts": at_or_after(draw),
                                                              "kind": draw(st.sampled_from(KINDS))})
        elif what == "invoice":
            issued = day(at_or_after(draw))
            out["invoices"] = _append(out["invoices"], {
                "invoice_id": f"new-{len(out['invoices'])}", "account_id": a, "issued_at": issued,
                "due_at": issued, "paid_at": None, "amount": 777.0})
        elif what == "pay":
            inv = out["invoices"]
            unpaid_at_t = inv.index[inv["paid_at"].isna() | (inv["paid_at"] >= T)]
            if len(unpaid_at_t):
                i = draw(st.sampled_from(list(unpaid_at_t)))
                inv.loc[i, "paid_at"] = draw(st.one_of(st.none(), st.just(day(at_or_after(draw, inv.loc[i, "issued_at"])))))
        elif what == "outcome":
            c = out["contracts"]
            # the outcome of a contract is known once its end_date is before T: change all the others,
            # which includes the contract each scoring row predicts
            undecided_at_t = c.index[c["end_date"] >= T]
            if len(undecided_at_t):
                i = draw(st.sampled_from(list(undecided_at_t)))
                c.loc[i, "outcome"] = draw(st.sampled_from(["renewed", "churned", None]))
        else:  # a later contract: it starts after T, so it is not known at T
            start = day(T + pd.Timedelta(days=draw(st.integers(1, 60))))
            out["contracts"] = _append(out["contracts"], {
                "contract_id": f"C-new-{len(out['contracts'])}", "account_id": a, "start_date": start,
                "end_date": start + pd.Timedelta(days=365), "arr": 99999.0, "seats": 99, "outcome": "churned"})
    return out


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames=worlds(), data=st.data(), seed=st.integers(0, 1000))
def test_records_at_or_after_as_of_change_no_feature(frames, data, seed):
    before = dataset_from_frames(frames)
    changed = future_changes(data.draw, frames)
    after = dataset_from_frames({name: shuffled(f, seed) for name, f in changed.items()})
    rows = scoring_rows(before, T.date())
    pd.testing.assert_frame_equal(scoring_rows(after, T.date()), rows)
    # the vocabulary learned at T (top 4 of 6, so which ones make the cut is at stake), then every feature
    learn = FeaturesConfig(key_features_top_k=4, usage_by_feature="share_and_change")
    vocab = resolve_key_features(before, learn, cutoff=T.date())
    assert resolve_key_features(after, learn, cutoff=T.date()) == vocab
    pd.testing.assert_frame_equal(build_features(after, rows, config=vocab), build_features(before, rows, config=vocab))
    everything = FeaturesConfig(key_features=tuple(FEATURES_USED), usage_by_feature="share_and_change")
    pd.testing.assert_frame_equal(build_features(after, rows, config=everything),
                                  build_features(before, rows, config=everything))
    # one as-of date narrows the tables (``Window.one_day``); the general ones, as training builds, hold too
    pd.testing.assert_frame_equal(build_features(after, rows, config=everything, one_day_tables=False),
                                  build_features(before, rows, config=everything))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=worlds(), data=st.data())
def test_a_training_row_never_sees_its_own_outcome(frames, data):
    ds = dataset_from_frames(frames)
    rows = training_rows(ds, lead_times=(30, 90, 180))
    if rows.empty:
        return
    i = data.draw(st.integers(0, len(rows) - 1))
    flipped = frames["contracts"].copy()
    own = flipped["contract_id"] == rows.loc[i, "contract_id"]
    flipped.loc[own, "outcome"] = "churned" if rows.loc[i, "label"] == 1 else "renewed"
    other = dataset_from_frames({**frames, "contracts": flipped})
    assert training_rows(other, lead_times=(30, 90, 180)).loc[i, "label"] != rows.loc[i, "label"]
    one = rows.loc[[i], ["account_id", "contract_id", "as_of"]]
    pd.testing.assert_frame_equal(build_features(other, one), build_features(ds, one))


@st.composite
def busy_usage(draw):
    """Two running contracts and usage crowded into the 75 days before T, by few users of few features."""
    acc = [{"account_id": a, "name": a, "segment": "smb", "industry": None, "csm": None,
            "created_at": T - pd.Timedelta(days=400)} for a in ACCOUNTS[:2]]
    con = [{"contract_id": f"C-{a}", "account_id": a, "start_date": T - pd.Timedelta(days=200),
            "end_date": T + pd.Timedelta(days=165), "arr": 1000.0, "seats": 5, "outcome": None} for a in ACCOUNTS[:2]]
    pick = {"account_id": st.sampled_from(ACCOUNTS[:2]), "user_id": st.sampled_from(USERS[:3]),
            "feature": st.sampled_from(FEATURES_USED[-3:])}
    events = [{**{k: draw(v) for k, v in pick.items()}, "ts": draw(stamp(-75, -1)), "quantity": 1.0}
              for _ in range(draw(st.integers(0, 30)))]
    later = [{**{k: draw(v) for k, v in pick.items()}, "ts": draw(st.one_of(st.just(T), stamp(0, 3))),
              "quantity": 1.0} for _ in range(draw(st.integers(1, 8)))]
    return {"accounts": pd.DataFrame(acc, columns=ACCOUNT_COLUMNS), "contracts": pd.DataFrame(con, columns=CONTRACT_COLUMNS),
            "usage_events": pd.DataFrame(events, columns=EVENT_COLUMNS)}, pd.DataFrame(later, columns=EVENT_COLUMNS)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=busy_usage(), seed=st.integers(0, 1000))
def test_usage_at_or_after_as_of_changes_no_usage_feature(world, seed):
    """The usage windows and the per-feature family where they are busiest: the days just before T."""
    frames, later = world
    before = dataset_from_frames(frames)
    events = pd.concat([frames["usage_events"], later], ignore_index=True)
    after = dataset_from_frames({**frames, "usage_events": shuffled(events, seed)})
    rows = scoring_rows(before, T.date())
    everything = FeaturesConfig(key_features=tuple(FEATURES_USED[-3:]), usage_by_feature="share_and_change")
    pd.testing.assert_frame_equal(build_features(after, rows, config=everything),
                                  build_features(before, rows, config=everything))
    pd.testing.assert_frame_equal(build_features(after, rows, config=everything, one_day_tables=False),
                                  build_features(before, rows, config=everything))
