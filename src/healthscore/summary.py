"""What a validated dataset holds, as plain numbers and as a terminal table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from rich.console import Group, RenderableType
from rich.table import Table as RichTable
from rich.text import Text

from healthscore.config import TimelineConfig
from healthscore.io.dataset import Dataset
from healthscore.io.schema import TABLES
from healthscore.timeline import lead_time_fit

#: the columns that say when a table's records happened: not due dates or contract ends, which lie ahead
RECORD_TIMES: dict[str, tuple[str, ...]] = {
    "usage_events": ("ts",),
    "tickets": ("opened_at", "closed_at"),
    "surveys": ("responded_at",),
    "touchpoints": ("ts",),
    "invoices": ("issued_at", "paid_at"),
    "adjustments": ("created_at",),
}
#: validate warns when an event table ends this many days before the latest-ending one (a feed that stopped)
UNEVEN_END_DAYS = 30


def data_ends(ds: Dataset, *, before: pd.Timestamp | None = None) -> dict[str, pd.Timestamp | None]:
    """Each present event table's last record time (None when it has no rows); with ``before``, the last
    record strictly before it (what is visible at that observation date).

    Event-sized tables answer from their validation scan (or, with ``before``, one SQL aggregate per column):
    they are never read into memory here.
    """
    out: dict[str, pd.Timestamp | None] = {}
    for name, columns in RECORD_TIMES.items():
        if not ds.has(name):
            continue
        last = None
        for column in columns:
            if before is None:
                span = ds.time_range(name, column)
                value = None if span is None else span[1]
            else:
                value = ds.last_before(name, column, before)
            if value is not None and pd.notna(value) and (last is None or value > last):
                last = pd.Timestamp(value)
        out[name] = last
    return out


def uneven_ends(ends: dict[str, pd.Timestamp | None], *, days: int = UNEVEN_END_DAYS) -> list[str]:
    """Warnings for event tables that end ``days`` or more before the latest-ending one."""
    known = {name: end for name, end in ends.items() if end is not None}
    if len(known) < 2:
        return []
    latest_name = max(known, key=lambda n: known[n])
    latest = known[latest_name]
    out = []
    for name, end in known.items():
        gap = (latest.normalize() - end.normalize()).days
        if gap >= days:
            out.append(f"{name} ends {_iso(end)}, {gap} days before {latest_name} ({_iso(latest)}): if its feed "
                       "stopped, scores after its end lack that data (score refuses an --as-of past "
                       "freshness.max_lag_days unless --allow-stale)")
    return out


def summarise(ds: Dataset, *, lead_times: Sequence[int] | None = None) -> dict[str, Any]:
    """Rows per table, date range, contract outcomes and terms, absent tables, and how lead times fit.

    ``renewal_rate`` is renewed / decided contracts (None when none is decided); ``date_range`` spans every
    date and timestamp column of every table, as ISO strings (None when there are none). ``terms`` is the
    share of contracts per kind of term (monthly … multi-year); ``lead_times_skipped`` names the lead times
    (default: the config's ``timeline.lead_times_days``) longer than many terms, whose training rows are
    skipped, and ``suggested_lead_times_days`` lead times that fit instead (``timeline.lead_time_fit``).
    Contract end dates are in ``date_range``, so it is not where the data ends: ``data_ends`` is, per event
    table (``uneven_ends``: tables that end well before the others).
    """
    rows: dict[str, int | None] = {}
    lows, highs = [], []
    for name, table in TABLES.items():
        rows[name] = ds.rows(name)
        for column in table.columns:
            if column.kind in ("date", "timestamp"):
                span = ds.time_range(name, column.name)
                if span is not None and span[0] is not None:
                    lows.append(span[0])
                    highs.append(span[1])

    accounts, contracts = ds.accounts, ds.contracts
    ends = data_ends(ds)
    starts, finishes = contracts["start_date"].dropna(), contracts["end_date"].dropna()
    contract_dates = {"first_start": _iso(starts.min()) if len(starts) else None,
                      "last_start": _iso(starts.max()) if len(starts) else None,
                      "last_end": _iso(finishes.max()) if len(finishes) else None}
    outcome = contracts["outcome"]
    renewed = int((outcome == "renewed").sum())
    churned = int((outcome == "churned").sum())
    decided = renewed + churned
    with_contract = accounts["account_id"].isin(contracts["account_id"].dropna())
    leads = sorted(set(int(v) for v in (TimelineConfig().lead_times_days if lead_times is None else lead_times)))
    fit = lead_time_fit(contracts, leads)
    return {
        "source": ds.source,
        "fingerprint": ds.fingerprint,
        "rows": rows,
        "date_range": (_iso(min(lows)), _iso(max(highs))) if lows else None,
        "accounts": len(accounts),
        "accounts_without_contracts": int((~with_contract).sum()),
        "contracts": len(contracts),
        "contracts_decided": decided,
        "contracts_open": len(contracts) - decided,
        "contracts_renewed": renewed,
        "contracts_churned": churned,
        "renewal_rate": renewed / decided if decided else None,
        "terms": fit["terms"],
        "median_term_days": fit["median_term_days"],
        "lead_times_days": leads,
        "lead_times_skipped": fit["skipped"],
        "suggested_lead_times_days": fit["suggested"],
        "suggested_for": fit["suggested_for"],
        "absent": list(ds.absent),
        "warnings": list(ds.warnings),
        "data_ends": {name: (_iso(end) if end is not None else None) for name, end in ends.items()},
        "contract_dates": contract_dates,
        "uneven_ends": uneven_ends(ends),
    }


def _iso(value: pd.Timestamp) -> str:
    return value.isoformat() if (value.hour, value.minute, value.second, value.microsecond) != (0, 0, 0, 0) \
        else value.date().isoformat()


def _term_lines(summary: dict[str, Any]) -> list[str]:
    """Kinds of term, and whether the lead times fit them, with a config snippet when they do not."""
    terms = summary.get("terms")
    if not terms:
        return []
    mix = ", ".join(f"{share:.0%} {kind}" for kind, share in terms.items())
    lines = [f"terms: {mix} (median {summary['median_term_days']} days)"]
    leads = ", ".join(str(v) for v in summary["lead_times_days"])
    skipped = summary["lead_times_skipped"]
    if not skipped:
        lines.append(f"lead times {leads} days (timeline.lead_times_days) fit the terms")
        return lines
    longer = [f"{lead} days {'is longer than' if i == 0 else 'than'} {share:.0%}{' of terms' if i == 0 else ''}"
              for i, (lead, share) in enumerate(skipped.items())]
    lines.append(
        f"lead times {leads} days (timeline.lead_times_days) do not fit these terms: {', '.join(longer)}, and "
        "training skips the rows that would fall before a contract's start_date"
    )
    suggested = ", ".join(str(v) for v in summary["suggested_lead_times_days"])
    lines.append(
        f"suggestion for {summary['suggested_for']} terms: pass --config with "
        f"timeline: {{lead_times_days: [{suggested}]}} (lead times per term length: docs/config.md)"
    )
    return lines


def render_summary(summary: dict[str, Any]) -> RenderableType:
    """A terminal rendering of ``summarise``'s result; every value is shown as plain text, never as markup."""
    table = RichTable()
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("last record")
    ends = summary.get("data_ends", {})
    dates = summary.get("contract_dates") or {}
    for name, count in summary["rows"].items():
        last = ends.get(name) or ("–" if name in ends else "")
        if name == "contracts" and dates.get("last_start"):
            last = f"starts to {dates['last_start']}"
        table.add_row(Text(name), Text("absent" if count is None else f"{count:,}"), Text(last))

    lines = []
    known = [e for e in ends.values() if e]
    if known:
        lines.append(f"event data ends: {max(known)} (latest table); each table's last record is above")
    if dates.get("last_end"):
        lines.append(f"contracts: start dates {dates['first_start']} to {dates['last_start']}, "
                     f"renewal dates to {dates['last_end']}")
    lines.append(
        f"accounts: {summary['accounts']:,}, "
        f"of which {summary['accounts_without_contracts']:,} without contracts"
    )
    rate = summary["renewal_rate"]
    lines.append(
        f"contracts: {summary['contracts']:,} — {summary['contracts_decided']:,} decided "
        f"({summary['contracts_renewed']:,} renewed, {summary['contracts_churned']:,} churned), "
        f"{summary['contracts_open']:,} open"
    )
    shown_rate = "n/a (none decided)" if rate is None else f"{rate:.1%}"
    lines.append(f"renewal rate of decided contracts: {shown_rate}")
    lines.extend(_term_lines(summary))
    absent = summary["absent"]
    shown_absent = ", ".join(absent) + " (their components have no data)" if absent else "none"
    lines.append(f"optional tables absent: {shown_absent}")
    if summary.get("fingerprint"):
        lines.append(f"fingerprint: {summary['fingerprint'][:16]}")
    for warning in summary.get("uneven_ends", []):
        lines.append(f"warning: {warning}")
    header = Text(f"dataset: {summary.get('source') or '(in memory)'}")
    return Group(header, table, *(Text(line) for line in lines))
