"""Whether a dataset can be scored as of a date with a model: in range, fresh enough, and covering what it learned.

``score`` runs these checks after loading the model and the data and before any scoring work, and
reports every problem at once (CONTRACT §6, "Gates"):

- **range**: an as-of date before every contract starts, after every contract has ended, or before the
  first usage event has nothing to score;
- **freshness**: each table the model learned from must have records within ``freshness.max_lag_days``
  (or its own ``freshness.max_lag_days_by_table``) days before the as-of date; ``--allow-stale`` scores
  anyway and every row says ``stale_data`` and ``data_through``;
- **coverage**: a table the model learned from must be present; ``--allow-missing TABLE`` scores without
  it and every row names it in ``missing_tables``. A file whose name is close to the table's gets a
  did-you-mean.

"Learned from" means at least one of the table's features had values on the model's training rows
(its stored training distribution is not all missing): a model trained without surveys does not need
them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from healthscore.config import EVENT_TABLES, Config
from healthscore.errors import HealthscoreError, did_you_mean
from healthscore.features import FEATURES
from healthscore.summary import data_ends

#: pandas timestamps (nanoseconds) cover 1677-09-22 to 2262-04-11; dates outside cannot be scored
FIRST_DATE, LAST_DATE = date(1900, 1, 1), date(2262, 4, 10)


class GateError(HealthscoreError):
    """The data cannot be scored as of this date with this model (stale, missing a table, out of range)."""


def check_date(value: date, option: str = "--as-of") -> date:
    """``value`` if pandas can hold it as a timestamp, else a HealthscoreError saying which dates can."""
    if not FIRST_DATE <= value <= LAST_DATE:
        raise HealthscoreError(f"{option} {value.isoformat()} is out of range: use a date between "
                               f"{FIRST_DATE.isoformat()} and {LAST_DATE.isoformat()}")
    return value


@dataclass(frozen=True)
class Readiness:
    """What the gates found: where each checked table's data ends, which are stale, which are missing."""

    as_of: date
    #: last record strictly before as-of, per table the model learned from and that is present
    ends: dict[str, pd.Timestamp | None] = field(default_factory=dict)
    #: table → whole days without any record before as-of (None: no records at all), past its limit
    stale: dict[str, int | None] = field(default_factory=dict)
    #: tables the model learned from that are absent (scored without them only with --allow-missing)
    missing: tuple[str, ...] = ()

    @property
    def stale_data(self) -> bool:
        return bool(self.stale)

    @property
    def data_through(self) -> pd.Timestamp | None:
        """When the data behind the scores ends: the stalest stale table's end, else the usage events' end
        (else the earliest checked table's), as a date."""
        pool = {t: self.ends.get(t) for t in self.stale} if self.stale else (
            {"usage_events": self.ends["usage_events"]} if self.ends.get("usage_events") is not None else self.ends)
        known = [v for v in pool.values() if v is not None]
        return min(known).normalize() if known else None

    def manifest(self) -> dict:
        """The gates' findings as plain values for the batch manifest."""
        return {
            "data_ends": {t: (v.isoformat() if v is not None else None) for t, v in self.ends.items()},
            "data_through": self.data_through.date().isoformat() if self.data_through is not None else None,
            "stale_data": self.stale_data,
            "stale_tables": dict(self.stale),
            "missing_tables": list(self.missing),
        }


def tables_learned(model) -> dict[str, list[str]]:
    """Input tables the model learned from → the components they feed (see the module docstring)."""
    specs = {f.name: f for f in FEATURES}
    dists = getattr(model, "reference_distributions", None) or {}
    components = getattr(model, "components", {}) or {}
    out: dict[str, list[str]] = {}
    for name in getattr(model, "feature_names", []):
        spec = specs.get(name)
        if spec is None or not spec.tables:
            continue
        dist = dists.get(name)
        # a model saved without training distributions: assume it learned from every table it reads
        if dist is not None and dist.get("kind") == "numeric" and dist.get("missing_share", 0.0) >= 1.0:
            continue
        for table in spec.tables:
            comps = out.setdefault(table, [])
            comp = components.get(name, spec.component)
            if comp not in comps:
                comps.append(comp)
    return out


def _days_without_data(as_of: pd.Timestamp, end: pd.Timestamp | None) -> int | None:
    if end is None:
        return None
    return max(0, (as_of - end.normalize()).days - 1)


def assess(ds, as_of: date, model, config: Config) -> Readiness:
    """The gates' findings, without refusing anything (``check`` refuses)."""
    T = pd.Timestamp(as_of)
    learned = tables_learned(model)
    checked = [t for t in EVENT_TABLES if t in learned and ds.has(t)]
    visible = data_ends(ds, before=T)
    everything = data_ends(ds)
    ends = {t: visible.get(t) for t in checked}
    limits = config.freshness
    stale: dict[str, int | None] = {}
    for t in checked:
        # judged on all records, so a backfill scored in the past (data goes on after it) is never stale
        lag = _days_without_data(T, everything.get(t))
        if lag is None or lag > limits.max_lag_days_by_table.get(t, limits.max_lag_days):
            stale[t] = lag
    missing = tuple(t for t in learned if not ds.has(t))
    return Readiness(as_of=as_of, ends=ends, stale=stale, missing=missing)


def check(ds, as_of: date, model, config: Config, *, allow_stale: bool = False,
          allow_missing: Iterable[str] = ()) -> tuple[Readiness, list[str]]:
    """Refuse (GateError listing every problem) or return the findings and notes for the run's output."""
    allow_missing = tuple(allow_missing)
    problems: list[str] = []
    fixes: list[str] = []
    notes: list[str] = []
    learned = tables_learned(model)
    for table in allow_missing:
        if table not in learned and table in EVENT_TABLES:
            notes.append(f"--allow-missing {table}: the model did not learn from {table}, so it is not needed")
        elif table not in EVENT_TABLES:
            hint = (did_you_mean(table, EVENT_TABLES, quoted=False)
                    or f"; the optional tables are {', '.join(EVENT_TABLES)}")
            problems.append(f"--allow-missing {table}: not an optional table{hint}")

    T = pd.Timestamp(as_of)
    c = ds.contracts
    start, end = pd.to_datetime(c["start_date"]), pd.to_datetime(c["end_date"])
    if not ((start <= T) & (T < end)).any():
        if len(c) and T < start.min():
            problems.append(f"--as-of {as_of} is before any contract starts (the first start_date is "
                            f"{start.min().date()}): no account has a running contract to score")
        elif len(c) and T >= end.max():
            problems.append(f"--as-of {as_of} is after every contract has ended (the last end_date is "
                            f"{end.max().date()}): no account has a running contract to score")
        else:
            problems.append(f"--as-of {as_of}: no contract runs on that date (start_date ≤ as-of < end_date)")
    first = (ds.time_range("usage_events", "ts") or (None, None))[0]  # from validation: no read of the events
    if first is not None and "usage_events" in learned and T <= first:
        problems.append(f"--as-of {as_of} is before the first usage event ({first.date()}): "
                        "there is no usage to score from")

    found = assess(ds, as_of, model, config)
    near = (ds.extra or {}).get("near_files", {})
    for table in found.missing:
        if table in allow_missing:
            notes.append(f"scored without {table} (--allow-missing): the {', '.join(learned[table])} "
                         f"component{'s' if len(learned[table]) > 1 else ''} {'have' if len(learned[table]) > 1 else 'has'} "
                         "no data; every row says so in missing_tables")
            continue
        files = near.get(table)
        hint = (f"; found {', '.join(files)}: did you mean {table}.csv or {table}.parquet?" if files else "")
        problems.append(f"{table} is missing, but the model learned from it (component"
                        f"{'s' if len(learned[table]) > 1 else ''} {', '.join(learned[table])}){hint} Add "
                        f"{table}.csv or {table}.parquet, or pass --allow-missing {table} to score without it")
    if found.stale:
        everything = data_ends(ds)
        limits = config.freshness
        lines = []
        for table, days in found.stale.items():
            key = (f"freshness.max_lag_days_by_table.{table}" if table in limits.max_lag_days_by_table
                   else "freshness.max_lag_days")
            limit = limits.max_lag_days_by_table.get(table, limits.max_lag_days)
            if days is None:
                lines.append(f"{table} has no records at all")
            else:
                lines.append(f"{table} ends {everything[table].date()}: {days} days without data before --as-of "
                             f"{as_of} (at most {limit} allowed by {key})")
        if allow_stale:
            through = found.data_through
            notes.append("scored stale data (--allow-stale): " + "; ".join(lines) + ". Every row has stale_data "
                         f"true and data_through {through.date() if through is not None else '(none)'}")
        else:
            problems += lines
            fixes.append("stale data: load newer data, score an earlier --as-of, or pass --allow-stale to score "
                         "anyway (every row is then marked stale_data, with its data_through)")
    if problems:
        head = f"cannot score as of {as_of}: {len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise GateError(head + "\n" + "\n".join(f"  - {p}" for p in problems)
                        + "".join(f"\n  fix {f}" for f in fixes))
    return found, notes
