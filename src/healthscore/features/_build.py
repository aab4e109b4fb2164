"""The engine: each component becomes one SQL query, run by an in-process DuckDB over the prepared tables.

The SQL is plain and portable (integer day numbers, CASE inside aggregates, ``median``, ``row_number``), so
``sqlglot`` can transpile the very same definitions to Spark SQL for a cluster.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from healthscore.config import COMPONENTS, Config, FeaturesConfig
from healthscore.errors import ConfigError
from healthscore.features import account, billing, engagement, feedback, support, time_to_value, usage
from healthscore.features._registry import Component, FeatureSpec
from healthscore.features._window import (
    Window,
    customer_starts,
    observation_context,
    prepare_small_tables,
    register_event_tables,
    sql_text,
)
from healthscore.io.events import close, connect

#: the builders of each component, in the order of ``config.COMPONENTS``
REGISTRY: dict[str, Component] = {
    m.component.name: m.component for m in (usage, time_to_value, support, engagement, billing, feedback, account)
}
if tuple(REGISTRY) != COMPONENTS:  # pragma: no cover - a wiring mistake, caught at import
    raise RuntimeError(f"feature components {tuple(REGISTRY)} do not match config.COMPONENTS {COMPONENTS}")


def _specs(w: Window | None) -> list[FeatureSpec]:
    specs: list[FeatureSpec] = []
    for name, comp in REGISTRY.items():
        specs += comp.specs if w is None else comp.specs_for(w)
        if name == "time_to_value":
            specs += list(time_to_value.FITTED)
    return specs


#: every declared feature, in output order; ``fitted=True`` ones are added by the model (SegmentAdoptionCurve).
#: Family columns (one pair per key product feature) depend on the vocabulary: ``feature_specs(config)``.
FEATURES: list[FeatureSpec] = _specs(None)
#: the template spec of each family column (name with ``<feature>``), as the catalogue documents them
FAMILIES: list[FeatureSpec] = [t for comp in REGISTRY.values() for fam in comp.families for t in fam.templates]
OPTIONAL_INPUTS: tuple[str, ...] = ("usage_events", "tickets", "surveys", "touchpoints", "invoices")


def _features_config(config: Config | FeaturesConfig | None) -> FeaturesConfig:
    if config is None:
        return FeaturesConfig()
    if isinstance(config, Config):
        return config.features
    return config


def feature_specs(config: Config | FeaturesConfig | None = None) -> list[FeatureSpec]:
    """Every feature for a config's vocabulary, in output order: the declared ones and each family's columns.

    With no key features (the default config before training learns them) this is ``FEATURES``.
    """
    return _specs(Window(config=_features_config(config)))


def feature_spec(name: str) -> FeatureSpec | None:
    """The spec of a feature column by name, family columns included (read from the name), else None."""
    for spec in FEATURES:
        if spec.name == name:
            return spec
    for comp in REGISTRY.values():
        for fam in comp.families:
            found = fam.match(name)
            if found is not None:
                return found
    return None


def feature_components(config: Config | FeaturesConfig | None = None) -> dict[str, str]:
    """Each feature's component, for every feature of the config's vocabulary (fitted ones included)."""
    return {f.name: f.component for f in feature_specs(config)}


def raw_feature_names(config: Config | FeaturesConfig | None = None) -> list[str]:
    """Features ``build_features`` and ``healthscore features`` produce (all but the fitted ones)."""
    return [f.name for f in feature_specs(config) if not f.fitted]


def selected_features(config: Config | FeaturesConfig | None = None) -> list[str]:
    """Raw features chosen by ``features.include`` (all when empty); unknown names raise ConfigError.

    ``include`` may name a family by its template (``uses_<feature>_share_30d``: every such column) or one
    of its columns for the configured vocabulary.
    """
    cfg = _features_config(config)
    specs = feature_specs(cfg)
    raw = [f.name for f in specs if not f.fitted]
    if not cfg.include:
        return raw
    import difflib

    families = {t.name for t in FAMILIES}
    known = {f.name for f in FEATURES} | {f.name for f in specs} | families
    problems = []
    for name in cfg.include:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            problems.append(f"unknown feature '{name}'" + (f"; did you mean '{close[0]}'?" if close else ""))
        elif name not in raw and name not in families:
            problems.append(f"'{name}' is fitted by the model, not built; leave it out of features.include")
    if problems:
        raise ConfigError(f"features.include has {len(problems)} problem(s):\n"
                          + "\n".join(f"  - {p}" for p in problems))
    chosen = set(cfg.include)
    return [f.name for f in specs if not f.fitted and (f.name in chosen or f.family in chosen)]


def _present(ds) -> set[str]:
    return {name for name in OPTIONAL_INPUTS if ds.has(name)}


def _ready(tables: tuple[str, ...], present: set[str]) -> bool:
    return all(t in present for t in tables)


def _component_parts(component: str, w: Window, present: set[str]) -> tuple[list[str], str]:
    """(CTEs, final SELECT) of one component; CTE names carry the component so components can be combined."""
    comp = REGISTRY[component]
    columns = comp.columns_for(w)
    ctes: list[str] = []
    joins: list[str] = []
    used = [s for s in comp.sources.values() if _ready(s.tables, present)
            and any(c.source == s.name for c in columns)]
    for src in used:
        group = "key_id" if src.per == "key" else "row_id"
        aggs = [c for c in columns if c.source == src.name]
        ctes.append(f"s_{src.name} AS ({src.sql(w)})")
        ctes.append(
            f"a_{src.name} AS (SELECT {group}, " + ", ".join(f"{c.sql(w)} AS {c.name}" for c in aggs)
            + f" FROM s_{src.name} GROUP BY {group}, as_of)"
        )
        joins.append(f"LEFT JOIN a_{src.name} ON a_{src.name}.{group} = obs.{group}")
    base = ["obs.*"]
    for c in columns:
        if c.source is None:
            continue
        if not _ready(c.tables, present):
            base.append(f"CAST(NULL AS DOUBLE) AS {c.name}")
        elif c.empty is None:
            base.append(f"a_{c.source}.{c.name} AS {c.name}")
        else:
            base.append(f"COALESCE(a_{c.source}.{c.name}, {float(c.empty)!r}) AS {c.name}")
    ctes.append(f"base_{component} AS (SELECT {', '.join(base)} FROM obs {' '.join(joins)})")
    out = ["o.row_id"]
    for c in columns:
        if c.spec is None:
            continue
        if not _ready(c.tables, present):
            out.append(f"CAST(NULL AS DOUBLE) AS {c.name}")
        elif c.source is None:
            out.append(f"({c.sql(w)}) AS {c.name}")
        else:
            out.append(f"o.{c.name}")
    return ctes, f"SELECT {', '.join(out)} FROM base_{component} AS o"


def component_sql(component: str, *, config: FeaturesConfig | None = None,
                  present: set[str] | None = None) -> str:
    """The one query computing a component's features per observation (``row_id`` + one column each).

    It reads the registered relations ``obs``, ``keys``, the ``in_*`` tables and the derived tables of
    ``derived_table_sql``; columns whose input table is not in ``present`` (default: all present) are NULL.
    """
    w = Window(config=config or FeaturesConfig())
    present = set(OPTIONAL_INPUTS) if present is None else present
    ctes, select = _component_parts(component, w, present)
    return "WITH " + ",\n".join(ctes) + f"\n{select} ORDER BY o.row_id"


def features_sql(components: list[str], *, config: FeaturesConfig | None = None,
                 present: set[str] | None = None) -> str:
    """One query for several components (fewer round trips): ``row_id`` and every feature, by row_id."""
    w = Window(config=config or FeaturesConfig())
    present = set(OPTIONAL_INPUTS) if present is None else present
    ctes: list[str] = []
    for comp in components:
        parts, select = _component_parts(comp, w, present)
        ctes += parts + [f"c_{comp} AS ({select})"]
    first, rest = components[0], components[1:]
    joins = " ".join(f"JOIN c_{c} USING (row_id)" for c in rest)
    return "WITH " + ",\n".join(ctes) + f"\nSELECT * FROM c_{first} {joins} ORDER BY row_id"


def derived_table_sql(config: FeaturesConfig | None = None, present: set[str] | None = None, *,
                      one_day: int | None = None) -> list[tuple[str, str]]:
    """(name, SQL) of every derived table that does not depend on as_of, in creation order.

    ``one_day``: every observation is at this day (``Window.one_day``); the tables then hold only what its
    windows read. The features are the same either way.
    """
    w = Window(config=config or FeaturesConfig(), one_day=None if one_day is None else int(one_day))
    present = set(OPTIONAL_INPUTS) if present is None else present
    return [(t.name, t.sql(w)) for comp in REGISTRY.values() for t in comp.tables.values()
            if _ready(t.tables, present)]


#: the prepared usage events (``_window.prepare_tables``) computed by DuckDB straight from a Parquet file
_USAGE_EVENTS_PARQUET_SQL = (
    "SELECT CAST(account_id AS VARCHAR) AS account_id, CAST(user_id AS VARCHAR) AS user_id, "
    "CAST(feature AS VARCHAR) AS feature, COALESCE(CAST(quantity AS DOUBLE), 1.0) AS quantity, "
    # whole days since 1970-01-01 (floor), as day_numbers: timestamps are naive UTC
    "CAST(datediff('day', DATE '1970-01-01', CAST(ts AS DATE)) AS INTEGER) AS day, ts FROM read_parquet({path})"
)


#: the whole process's memory the feature engine aims to stay under unless ``memory_limit`` or
#: ``HEALTHSCORE_DUCKDB_MEMORY`` says otherwise: DuckDB gets what the process does not already hold (measured
#: with ``/proc/self/statm`` once the tables are registered) and spills to a temporary folder beyond it. Why a
#: budget rather than one fixed limit: what the process holds beside the query grows with the accounts (the
#: small tables, the observations), and a fixed limit either starves the small runs or overshoots the large
#: ones. Measured (``benchmarks/cli.py``, 100k accounts / 50M events): ``features`` took 28.3-34.0 s at a
#: 2.73 GiB peak with a fixed 2.5 GB, 26.9 s at 3.17 GiB with 3 GB; ``score`` on 1M accounts peaked at
#: 3.88 GiB with 2.5 GB and 4.35 GiB with 3 GB. With this budget: features 24.2 s at 3.60 GiB, score on 1M
#: accounts 3.80 GiB (median of 3, docs/performance.md). DuckDB's own default is 80% of RAM
MEMORY_BUDGET_BYTES = int(3.5 * 2 ** 30)
#: DuckDB never gets less than this, however much the process already holds
MIN_MEMORY_LIMIT_BYTES = 2 ** 30
#: the limit where the process's resident memory cannot be read (not Linux)
DEFAULT_MEMORY_LIMIT = "2.5GB"


def _resident_bytes() -> int | None:
    """This process's resident memory now (Linux ``/proc/self/statm``), else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def default_memory_limit() -> str:
    """DuckDB's limit from the budget: ``MEMORY_BUDGET_BYTES`` less what the process holds (at least 1 GiB)."""
    held = _resident_bytes()
    if held is None:
        return DEFAULT_MEMORY_LIMIT
    return f"{max(MIN_MEMORY_LIMIT_BYTES, MEMORY_BUDGET_BYTES - held) // 2 ** 20}MiB"


def build_features(ds, observations: pd.DataFrame, *, config: Config | FeaturesConfig | None = None,
                   usage_events_parquet: str | os.PathLike[str] | None = None,
                   memory_limit: str | None = None, one_day_tables: bool = True) -> pd.DataFrame:
    """Point-in-time features for each observation: same index and order, one column per raw feature.

    ``observations`` needs ``account_id``, ``contract_id`` (may be NA) and ``as_of`` (midnight dates). Each
    row sees only records stamped strictly before its as_of (contracts from their start date). Numeric
    features are float64 and ``segment`` is categorical; fitted features (``fitted=True`` in FEATURES) are
    not built here: the model adds them with its stored ``SegmentAdoptionCurve``. A missing optional table
    gives NaN for its features. Raises ``DataError`` for bad observations, ``ConfigError`` for bad
    ``features.include``.

    The key product features are ``config.key_features`` as given — this function never learns them (that
    would fit on the rows it is asked about): empty means none, so breadth is NaN and the per-feature family
    has no columns. Training resolves them first (``vocabulary.resolve_key_features``) and the model keeps
    the result; scoring passes the model's.

    The event-sized tables (usage events, tickets, touchpoints) are read by DuckDB from the files the
    dataset references (``Dataset.events``; frames given in memory are registered as Arrow), never through
    pandas. ``usage_events_parquet``: read the usage events from this (already validated) Parquet file
    instead — the results are the same.

    ``memory_limit`` (e.g. ``"6GB"``) caps DuckDB's memory; beyond it DuckDB spills to a temporary folder.
    Default: ``HEALTHSCORE_DUCKDB_MEMORY`` if set, else what the process does not hold of a 3.5 GiB budget
    (``default_memory_limit``).

    When every observation is at one day (a batch as of a date), the derived tables hold only what that
    day's windows read (``Window.one_day``: user-days of the last 90 days, per-user history from the events);
    ``one_day_tables=False`` builds the general ones anyway (the tests compare the two).
    """
    cfg = _features_config(config)
    if memory_limit is None:
        memory_limit = os.environ.get("HEALTHSCORE_DUCKDB_MEMORY") or None
    names = selected_features(cfg)
    tables = prepare_small_tables(ds)
    tables["in_customers"] = customer_starts(tables)
    obs, keys = observation_context(tables, observations)
    present = _present(ds)
    wanted = {f.component for f in feature_specs(cfg) if f.name in names}
    con = connect()  # io.events': a caller's ScanCancel can stop it (jobs.side_by_side)
    spill = None
    try:
        con.execute("SET TimeZone = 'UTC'")
        if memory_limit != "":  # memory_limit="" leaves DuckDB's own default (80% of RAM)
            spill = tempfile.mkdtemp(prefix="healthscore-duckdb-")
            con.execute(f"SET temp_directory = {sql_text(spill)}")
        # straight from their files (pandas never holds them), without what no observation can see
        last = obs["as_of"].max() if len(obs) else None
        register_event_tables(con, ds, before_day=None if pd.isna(last) else int(last))
        if usage_events_parquet is not None:
            present.add("usage_events")
            path = str(Path(usage_events_parquet)).replace("'", "''")
            before = "" if pd.isna(last) else f" WHERE day < {int(last)}"  # as register_event_tables
            con.execute("CREATE OR REPLACE TEMP VIEW in_usage_events AS SELECT * FROM ("
                        + _USAGE_EVENTS_PARQUET_SQL.format(path=f"'{path}'") + f"){before}")
        # results are ordered explicitly (ORDER BY row_id): DuckDB need not keep insertion order on the way
        con.execute("SET preserve_insertion_order = false")
        # Arrow tables scan about twice as fast as pandas frames with string columns
        for name, frame in {**tables, "obs": obs, "keys": keys}.items():
            con.register(name, pa.Table.from_pandas(frame, preserve_index=False))
        if spill is not None:  # once everything the process holds beside the query is allocated
            con.execute(f"SET memory_limit = {sql_text(memory_limit or default_memory_limit())}")
        days = obs["as_of"].dropna().unique() if one_day_tables else ()
        one_day = int(days[0]) if len(days) == 1 else None
        for name, sql in derived_table_sql(cfg, present, one_day=one_day):
            kind = "VIEW" if one_day is not None and name in usage.ONE_DAY_VIEWS else "TABLE"
            con.execute(f"CREATE TEMP {kind} {name} AS {sql}")
        components = [c for c in REGISTRY if c in wanted]
        sql = features_sql(components, config=cfg, present=present)
        # fetched as Arrow and turned into pandas only once DuckDB has let go of its working memory (up to
        # memory_limit): converting while it still held it was the peak of scoring 1M accounts (4.35 GiB)
        result = con.sql(sql).to_arrow_table()
    finally:
        close(con)
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)
    segments = sorted(tables["in_accounts"]["segment"].dropna().unique().tolist())
    return feature_frame(_doubles(result).to_pandas(), observations.index, names, segments)


def _doubles(result: pa.Table) -> pa.Table:
    """Sums of integers are HUGEINT, Arrow decimals: as doubles (as DuckDB's own pandas output gives them),
    never a Python Decimal per cell."""
    for i in [i for i, f in enumerate(result.schema) if pa.types.is_decimal(f.type)]:
        result = result.set_column(i, result.schema[i].name, result.column(i).cast(pa.float64(), safe=False))
    return result


def feature_frame(result: pd.DataFrame, index: pd.Index, names: list[str], segments: list[str]) -> pd.DataFrame:
    """The engine's per-observation columns (in observation order) as the feature frame's dtypes.

    Numeric features become float64 and categorical ones a Categorical over ``segments``; every engine
    (DuckDB here, Spark in ``healthscore.spark``) hands its result through this one function.
    """
    kinds = {f.name: f.kind for f in FEATURES}
    columns = {}
    for name in names:
        values = result[name]
        if kinds.get(name, "numeric") == "categorical":  # family columns are numeric
            columns[name] = pd.Categorical(values.astype("object").where(values.notna(), None), categories=segments)
        else:
            columns[name] = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    # one frame at once: a column at a time fragments it once the family brings many columns
    return pd.DataFrame(columns, index=index, columns=names)


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def features_as_of(ds, as_of: date, *, config: Config | FeaturesConfig | None = None) -> pd.DataFrame:
    """One row per account at ``as_of``: account_id, as_of, status, contract_id and every raw feature.

    Without configured key features they are learned as ``train`` would at this date, over every account
    (the most used in the year before ``as_of``, events strictly before it); ``frame.attrs["key_features"]``
    holds the ones used.
    """
    from healthscore.features.vocabulary import resolve_key_features
    from healthscore.timeline import scoring_rows

    rows = scoring_rows(ds, _as_date(as_of))
    cfg = resolve_key_features(ds, _features_config(config), cutoff=_as_date(as_of))
    feats = build_features(ds, rows, config=cfg)
    head = rows[["account_id", "as_of", "status", "contract_id"]]
    frame = pd.concat([head, feats], axis=1)
    frame.attrs["key_features"] = list(cfg.key_features)
    return frame


def write_features(ds, as_of: date, out: Path, *, config: Config | FeaturesConfig | None = None) -> Path:
    """Write ``features_as_of`` to ``out`` (.parquet or .csv) atomically, with each feature's component.

    The component of each feature is in the Parquet schema metadata (key ``healthscore.components``, JSON)
    and, for either format, in the sidecar ``<out>.components.json`` (``{feature: component}``); the key
    product features used (configured, or learned at ``as_of``) are in ``healthscore.key_features``.
    """
    from healthscore.io import write_table_atomic

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ConfigError(f"--out must end in .parquet or .csv, found {out.name}")
    frame = features_as_of(ds, as_of, config=config)
    key_features = frame.attrs.get("key_features", [])
    vocabulary = dataclasses.replace(_features_config(config), key_features=tuple(key_features))
    components = {n: c for n, c in feature_components(vocabulary).items() if n in frame.columns}
    if suffix == ".parquet":
        _write_parquet_with_metadata(frame, out, {
            "healthscore.components": json.dumps(components, sort_keys=False),
            "healthscore.as_of": _as_date(as_of).isoformat(),
            "healthscore.key_features": json.dumps(key_features, ensure_ascii=False),
        })
    else:
        write_table_atomic(frame, out)
    sidecar = out.with_name(out.name + ".components.json")
    _write_text_atomic(sidecar, json.dumps(components, indent=2) + "\n")
    return out


def _write_parquet_with_metadata(frame: pd.DataFrame, path: Path, metadata: dict[str, str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta.update({k.encode(): v.encode() for k, v in metadata.items()})
    table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = [
    "FAMILIES",
    "FEATURES",
    "REGISTRY",
    "build_features",
    "component_sql",
    "feature_components",
    "features_as_of",
    "features_sql",
    "feature_spec",
    "feature_specs",
    "raw_feature_names",
    "selected_features",
    "write_features",
]
