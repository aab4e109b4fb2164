"""The windowing helper: the only place a cutoff is applied (CONTRACT §2).

Time is counted in whole days since 1970-01-01 (UTC). An observation date ``as_of`` is a midnight, so an
event stamped at ``ts`` is visible exactly when ``floor(ts to a day) < as_of``: comparing day numbers is
the strict ``ts < as_of`` rule, and it is portable SQL (integer comparisons), the same on DuckDB and Spark.

What lives here:

- ``prepare_small_tables`` and ``register_event_tables``: the input tables with day numbers (no cutoff yet),
  the small ones as frames, the event-sized ones as SQL over their files (``prepare_tables`` materialises
  every table, for engines that need frames);
- ``observation_context``: observations validated and joined to what is known of them at ``as_of`` (their
  contract, known from its start; the customer's start, known once it is on or before ``as_of``);
- ``Window``: SQL predicates (``visible``, ``pending``, ``within``, ``between``, ``started``) and
  ``Window.events``, the join of observation keys to an event table restricted to ``day < as_of``.

Feature builders never write ``<`` against ``as_of`` themselves; they ask a ``Window``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from healthscore.config import FeaturesConfig
from healthscore.errors import DataError, Problem
from healthscore.io.schema import is_in

#: columns of the observation context ``o`` that expressions may use (day numbers are integers)
CONTEXT_COLUMNS: dict[str, str] = {
    "row_id": "position of the observation in the input",
    "key_id": "one id per distinct (account_id, as_of)",
    "account_id": "the account",
    "as_of": "observation day",
    "contract_id": "the observed contract (NULL when none)",
    "contract_start": "its start day",
    "contract_end": "its end day (the renewal date)",
    "contract_seats": "its licensed seats",
    "contract_arr": "its ARR",
    "customer_start": "customer since (created_at or the first contract start, whichever is earlier); "
    "NULL until it is on or before as_of",
    "segment": "accounts.segment",
}


def day_numbers(values: pd.Series) -> pd.Series:
    """Whole days since 1970-01-01 (floor) as nullable Int32; missing stays missing."""
    stamps = pd.to_datetime(values)
    missing = stamps.isna().to_numpy()
    days = stamps.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype("int64")
    days = np.where(missing, 0, days).astype("int32")
    return pd.Series(pd.arrays.IntegerArray(days, missing), index=values.index)


def day_to_timestamp(days: pd.Series) -> pd.Series:
    """Day numbers back to midnight timestamps (``datetime64[ns]``)."""
    values = pd.to_numeric(days).astype("float64").to_numpy()
    out = pd.to_datetime(values, unit="D", origin="unix")
    return pd.Series(out, index=days.index).astype("datetime64[ns]")


def _col(frame: pd.DataFrame, name: str, default=pd.NA) -> pd.Series:
    """A column, or an empty one when an optional column is absent."""
    if name in frame.columns:
        return frame[name]
    return pd.Series([default] * len(frame), index=frame.index, dtype="object")


def _text(values: pd.Series) -> pd.Series:
    return values.astype("string")


def _num(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


def usage_events_frame(ev: pd.DataFrame) -> pd.DataFrame:
    """The usage events as the engine reads them (``in_usage_events``): text ids, quantity 1 when missing, day."""
    return pd.DataFrame(
        {
            "account_id": _text(ev["account_id"]),
            "user_id": _text(ev["user_id"]),
            "feature": _text(ev["feature"]),
            "quantity": _num(_col(ev, "quantity", 1.0)).fillna(1.0),
            "day": day_numbers(ev["ts"]),
        }
    )


#: the engine's event tables as SQL over each table's normalised view ``ev_<table>`` (``EventTable.register``):
#: the same columns and values as ``prepare_tables`` computes in pandas. Day numbers: whole days since
#: 1970-01-01 of the (naive UTC) timestamp; resolution hours as pandas' ``total_seconds() / 3600``. The usage
#: events keep ``ts`` too, so a window of days can also be said on it (``usage.usage_user_days``), a filter
#: DuckDB applies in the scan.
EVENT_TABLE_SQL: dict[str, str] = {
    "usage_events": (
        "SELECT account_id, user_id, feature, quantity, "
        "CAST(CAST(ts AS DATE) - DATE '1970-01-01' AS INTEGER) AS day, ts FROM ev_usage_events"
    ),
    "tickets": (
        "SELECT ticket_id, account_id, priority, csat, "
        "CAST(CAST(opened_at AS DATE) - DATE '1970-01-01' AS INTEGER) AS opened_day, "
        "CAST(CAST(closed_at AS DATE) - DATE '1970-01-01' AS INTEGER) AS closed_day, "
        "CAST(epoch_ns(closed_at) - epoch_ns(opened_at) AS DOUBLE) / 1e9 / 3600.0 AS resolution_hours "
        "FROM ev_tickets"
    ),
    "touchpoints": (
        "SELECT account_id, kind, CAST(CAST(ts AS DATE) - DATE '1970-01-01' AS INTEGER) AS day FROM ev_touchpoints"
    ),
}
#: event tables read by several feature sources are copied once into DuckDB (their few columns, day numbers)
#: instead of re-parsing the file per source; the usage events are read once (by ``usage_user_days``)
MATERIALISED_EVENT_TABLES: tuple[str, ...] = ("tickets", "touchpoints")


#: the day column that decides when each event table's record happens (no observation sees one at or after it)
EVENT_DAY: dict[str, str] = {"usage_events": "day", "tickets": "opened_day", "touchpoints": "day"}


def register_event_tables(con, ds, names: tuple[str, ...] | None = None, *, before_day: int | None = None) -> set[str]:
    """Create ``in_<table>`` in ``con`` for every present event-sized table (or those of ``names``), straight
    from its file (or frame). Returns the names registered. The rows never pass through pandas.

    ``before_day``: leave out records on or after this day — the latest observation's as_of, so records no
    observation can see (``Window.visible``) are never aggregated. Results are the same: every window is
    strictly before its as_of, and a user's next active day on or after the latest as_of reads exactly as
    none at all (``Window.pending``).
    """
    registered = set()
    for name, sql in EVENT_TABLE_SQL.items():
        if names is not None and name not in names:
            continue
        ref = ds.events(name)
        if ref is None:
            continue
        ref.register(con, f"ev_{name}")
        kind = "TABLE" if name in MATERIALISED_EVENT_TABLES else "VIEW"
        if before_day is not None:
            sql = f"SELECT * FROM ({sql}) WHERE {EVENT_DAY[name]} < {int(before_day)}"
        con.execute(f"CREATE OR REPLACE TEMP {kind} in_{name} AS {sql}")
        registered.add(name)
    return registered


def prepare_small_tables(ds) -> dict[str, pd.DataFrame]:
    """The small tables (accounts, contracts, surveys, invoices) as frames with day numbers, ready to register.

    The event-sized ones are registered in SQL by ``register_event_tables``.
    """
    return prepare_tables(ds, events=False)


def prepare_tables(ds, *, events: bool = True) -> dict[str, pd.DataFrame]:
    """The dataset's tables as new frames with day numbers, ready to register; absent tables are left out.

    Nothing is filtered here: the cutoff is applied by ``Window`` (the Dataset's frames are not modified).
    With ``events`` (for engines that need every table as a frame, e.g. ``healthscore.spark``) the
    event-sized tables are materialised too; the DuckDB engine passes False and reads them from their files.
    """
    out: dict[str, pd.DataFrame] = {}
    acc = ds.accounts
    out["in_accounts"] = pd.DataFrame(
        {
            "account_id": _text(acc["account_id"]),
            "segment": _text(_col(acc, "segment")).fillna("unknown"),
            "created_day": day_numbers(_col(acc, "created_at", pd.NaT)),
        }
    )
    con = ds.contracts
    out["in_contracts"] = pd.DataFrame(
        {
            "contract_id": _text(con["contract_id"]),
            "account_id": _text(con["account_id"]),
            "start_day": day_numbers(con["start_date"]),
            "end_day": day_numbers(con["end_date"]),
            "arr": _num(con["arr"]),
            "seats": _num(_col(con, "seats")),
            "outcome": _text(_col(con, "outcome")),
        }
    )
    ev = ds.usage_events if events else None
    if ev is not None:
        out["in_usage_events"] = usage_events_frame(ev)
    tk = ds.tickets if events else None
    if tk is not None:
        opened = pd.to_datetime(tk["opened_at"])
        closed = pd.to_datetime(_col(tk, "closed_at", pd.NaT))
        out["in_tickets"] = pd.DataFrame(
            {
                "ticket_id": _text(tk["ticket_id"]),
                "account_id": _text(tk["account_id"]),
                "priority": _text(_col(tk, "priority")),
                "csat": _num(_col(tk, "csat")),
                "opened_day": day_numbers(opened),
                "closed_day": day_numbers(closed),
                # a property of the closed ticket: builders may only read it once closed_day is visible
                "resolution_hours": (closed - opened).dt.total_seconds() / 3600.0,
            }
        )
    sv = ds.surveys
    if sv is not None:
        responded = pd.to_datetime(sv["responded_at"])
        out["in_surveys"] = pd.DataFrame(
            {
                "account_id": _text(sv["account_id"]),
                "kind": _text(sv["kind"]),
                "score": _num(sv["score"]),
                "day": day_numbers(responded),
                # seconds within the record's timeline, only to order answers given on the same day
                "responded_s": (responded - pd.Timestamp("1970-01-01")).dt.total_seconds(),
            }
        )
    tp = ds.touchpoints if events else None
    if tp is not None:
        out["in_touchpoints"] = pd.DataFrame(
            {"account_id": _text(tp["account_id"]), "kind": _text(tp["kind"]), "day": day_numbers(tp["ts"])}
        )
    inv = ds.invoices
    if inv is not None:
        out["in_invoices"] = pd.DataFrame(
            {
                "invoice_id": _text(inv["invoice_id"]),
                "account_id": _text(inv["account_id"]),
                "amount": _num(inv["amount"]),
                "issued_day": day_numbers(inv["issued_at"]),
                "due_day": day_numbers(inv["due_at"]),
                "paid_day": day_numbers(_col(inv, "paid_at", pd.NaT)),
            }
        )
    return out


def customer_starts(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per account, the day the customer started: the earlier of created_at and its first contract start.

    This is not yet point-in-time: ``observation_context`` hides it until it is on or before ``as_of``.
    """
    acc = tables["in_accounts"]
    first = tables["in_contracts"].groupby("account_id", sort=False)["start_day"].min()
    created = acc.set_index("account_id")["created_day"]
    first = first.reindex(created.index)
    both = pd.concat([created.astype("float64"), first.astype("float64")], axis=1)
    start = both.min(axis=1, skipna=True)
    return pd.DataFrame(
        {"account_id": created.index.astype("string"), "customer_start": pd.array(start.to_numpy(), dtype="Int32")}
    ).reset_index(drop=True)


def _examples(values) -> list[str]:
    return [str(v) for v in list(values)[:5]]


def _date_problems(stamps: pd.Series) -> list[Problem]:
    """Observation dates that are missing, or not a midnight."""
    problems = []
    if stamps.isna().any():
        bad = np.flatnonzero(stamps.isna().to_numpy())
        problems.append(Problem("observations", "as_of", "observation date is missing", count=len(bad),
                                examples=[f"row {i}" for i in bad[:5]], fix="give every observation a date"))
    not_midnight = stamps.notna() & (stamps != stamps.dt.normalize())
    if not_midnight.any():
        bad = np.flatnonzero(not_midnight.to_numpy())
        problems.append(Problem("observations", "as_of", "observation date is not a midnight (a time of day is "
                                "set)", count=len(bad), examples=[str(stamps.iloc[i]) for i in bad[:5]],
                                fix="observations are whole days: pass dates, e.g. as_of.dt.normalize()"))
    return problems


def _observed_contracts(contracts: pd.DataFrame, account: pd.Series, contract: pd.Series, stamps: pd.Series,
                        as_of: pd.Series) -> tuple[pd.DataFrame, pd.Series, list[Problem]]:
    """Each observation's contract row, whether it is known, and the problems: unknown, another account's, or
    not running at as_of."""
    problems: list[Problem] = []
    has_contract = contract.notna()
    known = pd.Series(is_in(contract, contracts.index), index=contract.index)
    unknown_c = has_contract & ~known
    if unknown_c.any():
        problems.append(Problem("observations", "contract_id", "contract not in contracts",
                                count=int(unknown_c.sum()), examples=_examples(contract[unknown_c].unique()),
                                fix="use contract ids of the dataset, or leave contract_id empty"))
    c = contracts.reindex(contract.where(known).to_numpy())
    c.index = contract.index
    same = (c["account_id"].astype("string") == account).fillna(False).astype(bool)
    wrong_account = known & ~same
    if wrong_account.any():
        problems.append(Problem("observations", "contract_id", "contract belongs to another account",
                                count=int(wrong_account.sum()), examples=_examples(contract[wrong_account]),
                                fix="pair each contract with its own account_id"))
    # A contract is known from its start and observed only while it runs: at end_date its outcome is due,
    # and a feature of that contract must never be able to see it.
    start = c["start_day"].astype("Int64")
    end = c["end_day"].astype("Int64")
    a64 = as_of.astype("Int64")
    not_running = (known & ((start > a64) | (a64 >= end))).fillna(False).astype(bool)
    if not_running.any():
        ex = [f"{contract[i]} at {stamps[i].date()}" for i in np.flatnonzero(not_running.to_numpy())[:5]]
        problems.append(Problem("observations", "contract_id", "contract is not running at as_of "
                                "(needs start_date <= as_of < end_date)", count=int(not_running.sum()),
                                examples=ex, fix="observe a contract between its start and its renewal date"))
    return c, known, problems


def observation_context(tables: dict[str, pd.DataFrame], observations: pd.DataFrame) -> tuple[pd.DataFrame,
                                                                                              pd.DataFrame]:
    """Validate observations and return (obs, keys): each observation with what is known of it at as_of.

    ``obs`` has one row per observation (``row_id`` = position) with the columns of ``CONTEXT_COLUMNS``;
    ``keys`` has one row per distinct (account_id, as_of), which is what event windows are computed for.
    Raises ``DataError`` listing every problem: missing columns, missing or non-midnight dates, unknown
    accounts or contracts, or a contract that is not running at as_of (start_date <= as_of < end_date).
    """
    problems: list[Problem] = []
    missing = [c for c in ("account_id", "contract_id", "as_of") if c not in observations.columns]
    if missing:
        for column in missing:
            problems.append(Problem("observations", column, "required column is missing",
                                    fix="observations need account_id, contract_id (may be empty) and as_of; "
                                    "build them with healthscore.timeline.training_rows or scoring_rows"))
        raise DataError(problems, source="observations")

    n = len(observations)
    account = _text(observations["account_id"]).reset_index(drop=True)
    contract = _text(observations["contract_id"]).reset_index(drop=True)
    stamps = pd.Series(pd.to_datetime(observations["as_of"]).to_numpy(dtype="datetime64[ns]"))
    problems += _date_problems(stamps)
    as_of = day_numbers(stamps)

    accounts = tables["in_accounts"]
    unknown = pd.Series(~is_in(account, accounts["account_id"]), index=account.index)
    if unknown.any():
        problems.append(Problem("observations", "account_id", "account not in accounts",
                                count=int(unknown.sum()), examples=_examples(account[unknown].unique()),
                                fix="observe only accounts of the dataset"))

    contracts = tables["in_contracts"].set_index("contract_id")
    c, known, contract_problems = _observed_contracts(contracts, account, contract, stamps, as_of)
    problems += contract_problems
    a64 = as_of.astype("Int64")
    if problems:
        raise DataError(problems, source="observations")

    starts = customer_starts(tables).set_index("account_id")["customer_start"]
    customer_start = pd.Series(starts.reindex(account.to_numpy()).to_numpy(), index=account.index).astype("Int32")
    # the customer is known from their start (like a contract): hide a start after as_of
    customer_start = customer_start.mask((customer_start.astype("Int64") > a64).fillna(False).astype(bool))
    segment = accounts.set_index("account_id")["segment"].reindex(account.to_numpy())

    key_frame = pd.DataFrame({"account_id": account, "as_of": as_of})
    key_id = key_frame.groupby(["account_id", "as_of"], sort=True, dropna=False).ngroup().astype("int64")
    obs = pd.DataFrame(
        {
            "row_id": np.arange(n, dtype="int64"),
            "key_id": key_id.to_numpy(),
            "account_id": account,
            "as_of": as_of,
            "contract_id": contract.where(known),
            "contract_start": c["start_day"].astype("Int32").where(known),
            "contract_end": c["end_day"].astype("Int32").where(known),
            "contract_seats": c["seats"].astype("float64").where(known),
            "contract_arr": c["arr"].astype("float64").where(known),
            "customer_start": customer_start,
            "segment": _text(pd.Series(segment.to_numpy(), index=account.index)),
        }
    )
    keys = obs[["key_id", "account_id", "as_of"]].drop_duplicates("key_id").sort_values("key_id")
    return obs, keys.reset_index(drop=True)


def sql_text(value: str) -> str:
    """A SQL string literal (quotes doubled), for config values such as key feature names."""
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class Window:
    """SQL predicates that decide what an observation can see at its ``as_of`` (day numbers).

    Predicates name an unqualified ``as_of`` column by default (every source row carries it); pass
    ``at="o.as_of"`` to compare against another relation's column.
    """

    config: FeaturesConfig = field(default_factory=FeaturesConfig)
    #: every observation is at this one day (a batch scored as of a date): the derived tables then keep only
    #: what that day's windows read, and give the same features with less work (None: any days)
    one_day: int | None = None

    # -- the cutoff --------------------------------------------------------------------------------
    @staticmethod
    def visible(col: str, at: str = "as_of") -> str:
        """Stamped strictly before as_of (NULL is never visible)."""
        return f"({col} < {at})"

    @staticmethod
    def pending(col: str, at: str = "as_of") -> str:
        """Not happened yet at as_of: missing, or stamped at or after it (e.g. a ticket still open)."""
        return f"({col} IS NULL OR {col} >= {at})"

    @staticmethod
    def started(col: str, at: str = "as_of") -> str:
        """A term starting on or before as_of (contracts are known from their start date)."""
        return f"({col} <= {at})"

    @classmethod
    def within(cls, col: str, days: int, at: str = "as_of") -> str:
        """Visible and in the ``days`` days before as_of: ``as_of - days <= col < as_of``."""
        return f"({col} < {at} AND {col} >= {at} - {int(days)})"

    @staticmethod
    def between(col: str, older_days: int, newer_days: int, at: str = "as_of") -> str:
        """In an earlier window: ``as_of - older_days <= col < as_of - newer_days`` (newer_days >= 1)."""
        if int(newer_days) < 1:
            raise ValueError("between() is for earlier windows: newer_days must be at least 1")
        return f"({col} >= {at} - {int(older_days)} AND {col} < {at} - {int(newer_days)})"

    @staticmethod
    def days_since(col: str, at: str = "as_of") -> str:
        """Whole days from a visible day to as_of (1 = the day before)."""
        return f"({at} - {col})"

    # -- the one join of observations to events -------------------------------------------------------
    @staticmethod
    def events(table: str, day: str, *, lookback_days: int | None = None, where: str | None = None) -> str:
        """Rows of ``table`` visible to each observation key: ``as_of - lookback_days <= day < as_of``.

        Returns a parenthesised relation with ``key_id``, ``as_of`` and every column of ``table``. ``where``
        may only narrow the rows (e.g. ``e.kind = 'ebr'``); it is not a place for another cutoff.
        """
        cond = ["e.account_id = k.account_id", f"e.{day} < k.as_of"]
        if lookback_days is not None:
            cond.append(f"e.{day} >= k.as_of - {int(lookback_days)}")
        if where:
            cond.append(f"({where})")
        return f"(SELECT k.key_id, k.as_of, e.* FROM keys AS k JOIN {table} AS e ON {' AND '.join(cond)})"

    @staticmethod
    def known_terms(table: str = "in_contracts") -> str:
        """Contracts of each observation's account already started at its as_of, with the observation's row.

        Returns ``row_id``, ``as_of``, the observed contract's ``contract_id``/``contract_start`` (as
        ``observed_id``/``observed_start``) and every column of the contract table (never its outcome unless
        the caller also asks ``visible(end_day)``).
        """
        return (
            "(SELECT o.row_id, o.as_of, o.contract_id AS observed_id, o.contract_start AS observed_start, e.* "
            f"FROM obs AS o JOIN {table} AS e ON e.account_id = o.account_id AND e.start_day <= o.as_of)"
        )
