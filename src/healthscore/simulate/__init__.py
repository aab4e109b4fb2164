"""Simulated SaaS worlds with known truth: the tables of CONTRACT §1 plus ``truth`` (the hidden p_renew).

    b2b           the default: annual contracts, all eight tables (``simulate.b2b``)
    subscription  a self-serve design tool on mostly monthly terms, three tables (``simulate.subscription``)

``simulate(spec)`` builds a world in memory, ``write_world`` writes it; same seed, same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from rich.table import Table as RichTable

from healthscore.errors import HealthscoreError
from healthscore.io.schema import TABLES
from healthscore.io.write import write_atomic
from healthscore.simulate.b2b import FEATURES, HOSTILE_NAMES, SimulationSpec, World, simulate_b2b
from healthscore.simulate.subscription import simulate_subscription
from healthscore.timeline import TERM_KINDS, term_days, term_kinds

__all__ = ["FEATURES", "HOSTILE_NAMES", "SimulationSpec", "World", "simulate", "write_world"]


def simulate(spec: SimulationSpec) -> World:
    """Simulate one world of ``spec.business``: its tables of CONTRACT §1 plus the truth behind each renewal."""
    if spec.business == "subscription":
        return simulate_subscription(spec)
    return simulate_b2b(spec)


def _arrow_table(df: pd.DataFrame, name: str, *, csv: bool):
    table = pa.Table.from_pandas(df, preserve_index=False)
    kinds = {c.name: c.kind for c in TABLES[name].columns} if name in TABLES else {}
    if not csv:
        return table.replace_schema_metadata(None)
    for i, col in enumerate(table.column_names):
        if kinds.get(col) == "date":
            table = table.set_column(i, col, pc.cast(table[col], pa.timestamp("s")).cast(pa.date32()))
        elif pa.types.is_timestamp(table.schema.field(col).type):
            # whole seconds: the simulator draws none finer, and ISO text without a fraction reads everywhere
            seconds = pc.cast(table[col], pa.timestamp("s"))
            table = table.set_column(i, col, pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%S"))
    return table.replace_schema_metadata(None)


def _write_parquet(table, path) -> None:
    pq.write_table(
        table, path, compression="zstd", coerce_timestamps="us", allow_truncated_timestamps=False,
        row_group_size=1_000_000, use_dictionary=True, write_statistics=True, version="2.6",
    )


def write_world(spec: SimulationSpec | World, out: str | Path, *, fmt: str = "parquet"):
    """Simulate (unless given a World) and write ``<table>.parquet|csv`` plus ``truth.parquet``; return a summary.

    Files are written through a temporary name and renamed, so a crash leaves no half-written table.
    A table file of the other format left by an earlier run in ``out`` is removed, since a directory with
    both ``usage_events.csv`` and ``usage_events.parquet`` is ambiguous to the reader; so is a file of a
    table this world does not have (a b2b world's ``tickets`` under a subscription world). The business is
    ``spec.business``. Same seed, same bytes.
    """
    if fmt not in ("parquet", "csv"):
        raise HealthscoreError(f"--format must be parquet or csv, found {fmt!r}")
    world = spec if isinstance(spec, World) else simulate(spec)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HealthscoreError(f"cannot create output directory {out}: {exc}") from None
    other = "csv" if fmt == "parquet" else "parquet"
    for name, df in [*world.tables.items(), ("truth", world.truth)]:
        as_csv = fmt == "csv" and name != "truth"
        table = _arrow_table(df, name, csv=as_csv)
        path = out / f"{name}.{'csv' if as_csv else 'parquet'}"
        write_atomic(path, (lambda handle, t=table: pcsv.write_csv(t, handle)) if as_csv
                     else (lambda handle, t=table: _write_parquet(t, handle)), binary=True)
        if name != "truth":
            (out / f"{name}.{other}").unlink(missing_ok=True)
    for name in TABLES.keys() - world.tables.keys():
        for ext in ("parquet", "csv"):
            (out / f"{name}.{ext}").unlink(missing_ok=True)

    contracts = world.tables["contracts"]
    decided = contracts["outcome"].notna()
    rate = float((contracts.loc[decided, "outcome"] == "renewed").mean()) if decided.any() else float("nan")
    s = world.spec
    summary = RichTable(
        title=f"Simulated {s.business} world → {out} (seed {s.seed}, {s.start} + {s.months} months"
        f"{', drift' if s.drift else ''})"
    )
    summary.add_column("table")
    summary.add_column("rows", justify="right")
    for name, df in world.tables.items():
        summary.add_row(f"{name}.{fmt}", f"{len(df):,}")
    summary.add_row("truth.parquet", f"{len(world.truth):,}")
    summary.caption = f"{int(decided.sum()):,} decided contracts, renewal rate {rate:.1%}" + _churn_per_term(contracts)
    return summary


def _churn_per_term(contracts: pd.DataFrame) -> str:
    """``; churn per term: monthly 3.9%, annual 17.0%`` over decided contracts (empty when none is decided)."""
    decided = contracts[contracts["outcome"].notna()]
    if decided.empty:
        return ""
    churned = (decided["outcome"] == "churned").groupby(term_kinds(term_days(decided)), sort=False).mean()
    order = [k for k, _ in TERM_KINDS if k in churned.index]
    return "; churn per term: " + ", ".join(f"{k} {churned[k]:.1%}" for k in order)
