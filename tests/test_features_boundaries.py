"""Boundaries at exactly as_of: a record stamped at as_of is invisible, one a moment earlier is seen."""

from __future__ import annotations

import pandas as pd
import pytest

from _features_world import (
    EVENT_COLUMNS,
    INVOICE_COLUMNS,
    SURVEY_COLUMNS,
    TICKET_COLUMNS,
    TOUCH_COLUMNS,
    T,
    accounts,
    contracts,
    dataset,
    frame,
    observations,
)
from healthscore.features import build_features

SECOND, DAY = pd.Timedelta(seconds=1), pd.Timedelta(days=1)


def usage(when):
    return {"usage_events": frame([{"account_id": "A-1", "user_id": "u", "ts": when, "feature": "api",
                                    "quantity": 1.0}], EVENT_COLUMNS)}


def ticket_opened(when):
    return {"tickets": frame([{"ticket_id": "t", "account_id": "A-1", "opened_at": when, "closed_at": None,
                               "priority": "urgent", "csat": None}], TICKET_COLUMNS)}


def ticket_closed(when):
    return {"tickets": frame([{"ticket_id": "t", "account_id": "A-1", "opened_at": T - 2 * DAY, "closed_at": when,
                               "priority": "low", "csat": 5.0}], TICKET_COLUMNS)}


def survey(when):
    return {"surveys": frame([{"account_id": "A-1", "responded_at": when, "kind": "nps", "score": 3.0}],
                             SURVEY_COLUMNS)}


def ebr(when):
    return {"touchpoints": frame([{"account_id": "A-1", "ts": when, "kind": "ebr"}], TOUCH_COLUMNS)}


def invoice(issued, due=None, paid=None):
    return {"invoices": frame([{"invoice_id": "i", "account_id": "A-1", "issued_at": issued,
                                "due_at": due if due is not None else issued, "paid_at": paid, "amount": 10.0}],
                              INVOICE_COLUMNS)}


def earlier_term(end, outcome="renewed"):
    # the term itself is known from its start (it is the previous term); only its outcome waits for its end
    return {"contracts_extra": contracts(("C-0", "A-1", "2023-01-01", str(end.date()), 1.0, 1, outcome))}


# (what, feature, tables with the record at as_of, tables with it a moment before, tables without it)
CASES = [
    ("usage ts", "active_users_30d", usage(T), usage(T - SECOND), {}),
    ("ticket opened_at", "tickets_90d", ticket_opened(T), ticket_opened(T - SECOND), {}),
    ("ticket closed_at", "open_tickets", ticket_closed(T), ticket_closed(T - SECOND), ticket_closed(None)),
    ("ticket csat once closed", "ticket_csat_avg_180d", ticket_closed(T), ticket_closed(T - SECOND),
     ticket_closed(None)),
    ("survey responded_at", "nps_last", survey(T), survey(T - SECOND), {}),
    ("touchpoint ts", "days_since_last_ebr", ebr(T), ebr(T - SECOND), {}),
    ("invoice issued_at", "amount_unpaid", invoice(T), invoice(T - DAY), {}),
    ("invoice paid_at", "amount_unpaid", invoice(T - 9 * DAY, paid=T), invoice(T - 9 * DAY, paid=T - DAY),
     invoice(T - 9 * DAY)),
    ("invoice due_at", "amount_overdue", invoice(T - 9 * DAY, due=T), invoice(T - 9 * DAY, due=T - DAY),
     invoice(T - 9 * DAY, due=T + DAY)),
    ("earlier contract outcome at end_date", "earlier_renewals", earlier_term(T), earlier_term(T - DAY),
     earlier_term(T, outcome=None)),
]


def features_with(tables: dict) -> pd.Series:
    tables = dict(tables)
    extra = tables.pop("contracts_extra", None)
    con = contracts(("C-1", "A-1", "2024-06-01", "2025-01-01", 1000.0, 5, None))
    if extra is not None:
        con = pd.concat([extra, con], ignore_index=True)
    empty = {"usage_events": frame([], EVENT_COLUMNS), "tickets": frame([], TICKET_COLUMNS),
             "surveys": frame([], SURVEY_COLUMNS), "touchpoints": frame([], TOUCH_COLUMNS),
             "invoices": frame([], INVOICE_COLUMNS)}
    ds = dataset(accounts=accounts(("A-1", "smb", "2023-01-01")), contracts=con, **{**empty, **tables})
    return build_features(ds, observations(("A-1", "C-1", T))).iloc[0]


@pytest.mark.parametrize(("what", "feature", "at", "before", "without"), CASES, ids=[c[0] for c in CASES])
def test_a_record_at_as_of_is_invisible_and_one_just_before_is_seen(what, feature, at, before, without):
    none = features_with(without)
    pd.testing.assert_series_equal(features_with(at), none, check_names=False)
    assert not pd.Series([features_with(before)[feature]]).equals(pd.Series([none[feature]])), what


def test_contract_and_customer_starting_at_as_of_are_known():
    ds = dataset(accounts=accounts(("A-1", "smb", str(T.date()))),
                 contracts=contracts(("C-1", "A-1", str(T.date()), "2025-07-01", 10.0, 2, None)))
    row = build_features(ds, observations(("A-1", "C-1", T))).iloc[0]
    assert (row["days_to_renewal"], row["tenure_days"], row["months_since_contract_start"]) == (365, 0, 0)
