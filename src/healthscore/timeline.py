"""Observation dates, training rows and labels: the only place the label is defined.

Training rows sit at fixed lead times before each decided renewal (CONTRACT §2), so the model learns what
an account looks like 30, 90 or 180 days before it renews or churns; the lead time is not a feature of its
own but ``days_to_renewal`` is, which makes a score mean the same thing anywhere in a term. Scoring rows
take each account's running contract at any date.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import numpy as np
import pandas as pd

from healthscore.errors import HealthscoreError

#: outcome value meaning the customer renewed (label 1); ``churned`` is label 0; empty is not decided
RENEWED = "renewed"
CHURNED = "churned"

TRAINING_COLUMNS = ("account_id", "contract_id", "as_of", "lead_time_days", "renewal_date", "segment", "label")
SCORING_COLUMNS = ("account_id", "as_of", "status", "contract_id", "renewal_date", "arr", "seats")


#: Kinds of contract term by length in days (each up to and including its bound), shortest first.
TERM_KINDS: tuple[tuple[str, int], ...] = (
    ("monthly", 45), ("quarterly", 135), ("semi-annual", 272), ("annual", 547), ("multi-year", 1 << 62),
)
#: Lead times that fit each kind of term (docs/config.md): each leaves room for an observation inside the term.
LEAD_TIMES_BY_TERM: dict[str, tuple[int, ...]] = {
    "monthly": (7, 14),
    "quarterly": (14, 30, 60),
    "semi-annual": (30, 90),
    "annual": (30, 90, 180),
    "multi-year": (30, 90, 180),
}
#: A lead time misfits when its observation falls before start_date for more than this share of contracts.
MISFIT_SHARE = 0.25


def term_days(contracts: pd.DataFrame) -> pd.Series:
    """Length of each contract's term in whole days, ``end_date − start_date`` at midnight (NaN if unknown)."""
    end = pd.to_datetime(contracts["end_date"]).dt.normalize()
    start = pd.to_datetime(contracts["start_date"]).dt.normalize()
    return (end - start).dt.days.astype("float64")


def term_kinds(days: pd.Series | np.ndarray) -> pd.Series:
    """The kind of each term (``monthly`` … ``multi-year``, as in ``TERM_KINDS``) from its length in days."""
    days = pd.Series(days, dtype="float64")
    bounds = np.array([b for _, b in TERM_KINDS], dtype="float64")
    code = np.searchsorted(bounds, days.fillna(0).to_numpy(), side="left")
    names = np.array([k for k, _ in TERM_KINDS], dtype=object)[np.minimum(code, len(TERM_KINDS) - 1)]
    return pd.Series(np.where(days.isna(), None, names), index=days.index, dtype="string")


def lead_time_fit(contracts: pd.DataFrame, lead_times: Sequence[int]) -> dict:
    """How lead times fit the contracts' terms, and lead times that fit better when they do not.

    A lead time L yields a training row for a contract only if ``end_date − L ≥ start_date``, i.e. the term
    is at least L days long. Returns ``terms`` (share of contracts per kind of term, shortest kind first),
    ``median_term_days``, ``skipped`` (lead time → share of contracts it yields no row for, for those that
    misfit: more than ``MISFIT_SHARE``), and, when some misfit, ``suggested`` (lead times of
    ``LEAD_TIMES_BY_TERM`` for ``suggested_for``: the kind of term at which, counting from the shortest,
    more than ``MISFIT_SHARE`` of contracts are reached (so at most that share have shorter terms), kept
    to lead times no longer than that kind's median term).
    All contracts count, decided or not: they share one population of terms.
    """
    days = term_days(contracts).dropna()
    out: dict = {"terms": {}, "median_term_days": None, "skipped": {}, "suggested": None, "suggested_for": None}
    if days.empty:
        return out
    kinds = term_kinds(days)
    shares = kinds.value_counts(normalize=True)
    out["terms"] = {k: float(shares[k]) for k, _ in TERM_KINDS if k in shares.index}
    out["median_term_days"] = int(days.median())
    for lead in sorted(set(int(v) for v in lead_times)):
        skipped = float((days < lead).mean())
        if skipped > MISFIT_SHARE:
            out["skipped"][lead] = skipped
    if out["skipped"]:
        cumulative = np.cumsum(list(out["terms"].values()))
        kind = list(out["terms"])[int(np.argmax(cumulative > MISFIT_SHARE))]
        median = float(days[kinds == kind].median())
        fit = [lead for lead in LEAD_TIMES_BY_TERM[kind] if lead <= median]
        out["suggested"] = fit or [max(1, int(median) // 2)]
        out["suggested_for"] = kind
    return out


def _midnight(value: date | datetime | str | pd.Timestamp, name: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a date like 2025-06-30, found {value!r}") from None
    if stamp is pd.NaT or pd.isna(stamp):
        raise ValueError(f"{name} must be a date, found a missing value")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.normalize()


def _segments(ds) -> pd.Series:
    acc = ds.accounts
    seg = acc["segment"] if "segment" in acc.columns else pd.Series(pd.NA, index=acc.index)
    return pd.Series(seg.astype("string").fillna("unknown").to_numpy(),
                     index=acc["account_id"].astype("string").to_numpy())


def training_rows(ds, *, lead_times: Sequence[int], decided_before: date | None = None) -> pd.DataFrame:
    """One row per decided contract and lead time L, observed at ``end_date - L``, labelled 1 if renewed.

    Only contracts whose outcome is ``renewed`` or ``churned`` count, and with ``decided_before`` only those
    whose ``end_date < decided_before`` (known by then). Observations before the contract's start_date are
    skipped. Columns: account_id, contract_id, as_of (midnight), lead_time_days, renewal_date, segment,
    label; sorted by (renewal_date, contract_id, lead_time_days) on a fresh 0..n-1 index.
    """
    leads = list(lead_times)
    bad = [v for v in leads if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0]
    if not leads or bad:
        raise ValueError(f"lead_times must be positive whole numbers of days, found {leads!r}")
    leads = sorted(set(int(v) for v in leads))
    c = ds.contracts
    outcome = c["outcome"].astype("string") if "outcome" in c.columns else pd.Series(pd.NA, index=c.index)
    decided = outcome.isin([RENEWED, CHURNED]).fillna(False).astype(bool)
    end = pd.to_datetime(c["end_date"]).dt.normalize()
    start = pd.to_datetime(c["start_date"]).dt.normalize()
    if decided_before is not None:
        decided &= (end < _midnight(decided_before, "decided_before")).to_numpy()
    base = pd.DataFrame(
        {
            "account_id": c["account_id"].astype("string"),
            "contract_id": c["contract_id"].astype("string"),
            "start": start,
            "renewal_date": end,
            # THE label: 1 = renewed, 0 = churned
            "label": (outcome == RENEWED).fillna(False).astype("int64"),
        }
    )[decided.to_numpy()]
    parts = []
    for lead in leads:
        part = base.assign(lead_time_days=lead, as_of=base["renewal_date"] - pd.Timedelta(days=lead))
        parts.append(part[part["as_of"] >= part["start"]])
    rows = pd.concat(parts, ignore_index=True) if parts else base.iloc[:0]
    rows["segment"] = rows["account_id"].map(_segments(ds)).astype("string").fillna("unknown")
    rows["lead_time_days"] = rows["lead_time_days"].astype("int64")
    rows["as_of"] = rows["as_of"].astype("datetime64[ns]")
    rows["renewal_date"] = rows["renewal_date"].astype("datetime64[ns]")
    rows = rows.sort_values(["renewal_date", "contract_id", "lead_time_days"], kind="mergesort")
    return rows[list(TRAINING_COLUMNS)].reset_index(drop=True)


def no_training_rows_reason(ds, *, as_of: date | None = None):
    """The error for a dataset that gives no training rows, saying why: no outcomes at all, none decided
    before ``as_of`` (with the first decision date), or every observation before its contract's start."""
    c = ds.contracts
    outcome = c["outcome"].astype("string") if "outcome" in c.columns else pd.Series(pd.NA, index=c.index)
    decided = outcome.isin([RENEWED, CHURNED]).fillna(False).astype(bool).to_numpy()
    if not decided.any():
        return HealthscoreError("no decided renewals to learn from: contracts.outcome is empty everywhere. Add "
                                "renewal outcomes (renewed or churned) to the contracts that have ended.")
    ends = pd.to_datetime(c["end_date"])[decided]
    first = c.loc[decided].iloc[int(np.argmin(ends.to_numpy()))]
    if as_of is not None and ends.min() >= _midnight(as_of, "as_of"):
        return HealthscoreError(
            f"no renewals were decided before --as-of {as_of}: the first decided renewal is contract "
            f"{first['contract_id']} on {ends.min().date()} ({int(decided.sum())} decided in all). Move --as-of "
            f"after {ends.min().date()}, or omit it to learn from every decided renewal."
        )
    return HealthscoreError("no training rows: every observation date (end_date minus each lead time) falls "
                            "before its contract's start_date; use shorter timeline.lead_times_days")


def scoring_rows(ds, as_of: date) -> pd.DataFrame:
    """One row per account (sorted by account_id) with its running contract at ``as_of``, if any.

    The running contract is the latest-starting one with ``start_date <= as_of < end_date`` (ties: later
    end_date, then the larger contract_id). ``status`` is ``scored`` when there is one, else
    ``no_active_contract`` (contract_id and renewal_date missing, arr and seats NaN).
    """
    when = _midnight(as_of, "as_of")
    acc_ids = ds.accounts["account_id"].astype("string")
    c = ds.contracts
    start = pd.to_datetime(c["start_date"])
    end = pd.to_datetime(c["end_date"])
    running = pd.DataFrame(
        {
            "account_id": c["account_id"].astype("string"),
            "contract_id": c["contract_id"].astype("string"),
            "start": start,
            "renewal_date": end.dt.normalize(),
            "arr": pd.to_numeric(c["arr"], errors="coerce").astype("float64"),
            "seats": (pd.to_numeric(c["seats"], errors="coerce") if "seats" in c.columns
                      else pd.Series(np.nan, index=c.index)).astype("float64"),
        }
    )[((start <= when) & (when < end)).to_numpy()]
    running = running.sort_values(["account_id", "start", "renewal_date", "contract_id"], kind="mergesort")
    running = running.drop_duplicates("account_id", keep="last").set_index("account_id")
    out = pd.DataFrame({"account_id": acc_ids.to_numpy()}).sort_values("account_id", kind="mergesort")
    out = out.reset_index(drop=True)
    found = running.reindex(out["account_id"].to_numpy())
    out["as_of"] = pd.Series(np.repeat(when.to_datetime64(), len(out))).astype("datetime64[ns]")
    out["status"] = np.where(found["contract_id"].notna().to_numpy(), "scored", "no_active_contract")
    out["status"] = out["status"].astype("string")
    out["contract_id"] = found["contract_id"].astype("string").to_numpy()
    out["renewal_date"] = pd.to_datetime(found["renewal_date"].to_numpy()).astype("datetime64[ns]")
    out["arr"] = found["arr"].to_numpy(dtype="float64")
    out["seats"] = found["seats"].to_numpy(dtype="float64")
    return out[list(SCORING_COLUMNS)]


def data_end(ds) -> date:
    """The day after the latest event or contract start in the dataset: "now" for a dataset without --as-of."""
    stamps = []
    for table, column in (("contracts", "start_date"), ("usage_events", "ts"), ("tickets", "opened_at"),
                          ("touchpoints", "ts"), ("surveys", "responded_at"), ("invoices", "issued_at")):
        span = ds.time_range(table, column)  # event-sized tables: from validation, never read into pandas
        if span is not None and span[1] is not None:
            stamps.append(pd.Timestamp(span[1]))
    stamps = [s for s in stamps if pd.notna(s)]
    if not stamps:
        raise HealthscoreError("the dataset has no dated rows; pass --as-of")
    return (max(stamps).normalize() + pd.Timedelta(days=1)).date()
