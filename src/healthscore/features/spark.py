"""The same features on Apache Spark, for event tables beyond one machine (the feature engine's second dialect).

Nothing is defined twice: each component's SQL (``features._build.component_sql``) is transpiled from
DuckDB's dialect to Spark SQL with ``sqlglot`` and run by ``spark.sql`` over temporary views; batch
scoring runs the registered MLflow model through ``mlflow.pyfunc.spark_udf`` (``tracking.score_spark``). Needs the ``spark`` environment (``make setup-spark``): PySpark 4 with
pandas 2.3. See docs/spark.md for running on a cluster.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from healthscore.config import Config, FeaturesConfig
from healthscore.features._build import (
    OPTIONAL_INPUTS,
    REGISTRY,
    _features_config,
    _present,
    component_sql,
    derived_table_sql,
    feature_frame,
    feature_specs,
    selected_features,
)
from healthscore.features._window import customer_starts, observation_context, prepare_tables

#: the raw usage-event columns turned into the engine's ``in_usage_events`` (day numbers, quantity 1.0
#: when missing) inside Spark, so a billion-row event table never passes through pandas
_USAGE_EVENTS_SQL = (
    "SELECT CAST(account_id AS STRING) AS account_id, CAST(user_id AS STRING) AS user_id, "
    "CAST(feature AS STRING) AS feature, COALESCE(CAST(quantity AS DOUBLE), 1.0) AS quantity, "
    # whole days since 1970-01-01 (floor), as _window.day_numbers; the session time zone is UTC
    "CAST(datediff(CAST(ts AS DATE), DATE'1970-01-01') AS INT) AS day FROM raw_usage_events"
)


def to_spark_sql(sql: str) -> str:
    """A DuckDB-dialect query of the feature engine as Spark SQL (sqlglot transpilation, one dialect hook).

    The hook: a literal such as ``30.4375`` is DECIMAL in both dialects, but DuckDB divides and coalesces
    with it in DOUBLE while Spark stays in DECIMAL and rounds to the result's scale; casting such literals
    to DOUBLE gives Spark DuckDB's arithmetic.
    """
    import sqlglot
    from sqlglot import exp

    def as_double(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Literal) and not node.is_string and "." in node.this:
            return exp.cast(node.copy(), exp.DataType.build("DOUBLE"))
        return node

    tree = sqlglot.parse_one(sql, read="duckdb").transform(as_double)
    return tree.sql(dialect="spark")


def _view(spark, name: str, frame: pd.DataFrame) -> None:
    # via Arrow: nullable Int32 day numbers and string columns keep their types
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.cast(pa.schema([pa.field(f.name, pa.string() if pa.types.is_large_string(f.type) else f.type)
                                  for f in table.schema]))
    spark.createDataFrame(table).createOrReplaceTempView(name)


def build_features_spark(
    spark,
    ds,
    observations: pd.DataFrame,
    *,
    usage_events: Any | None = None,
    config: Config | FeaturesConfig | None = None,
) -> pd.DataFrame:
    """``features.build_features`` computed by Spark: the same columns, dtypes and values, row by row.

    ``usage_events`` is an optional Spark DataFrame with the contract's usage-event columns (account_id,
    user_id, ts, feature, quantity), used instead of ``ds.usage_events`` — the table that outgrows one
    machine; the other tables and the observations are small and come from ``ds`` (pandas). The result
    (one row per observation) is collected to the driver.
    """
    cfg = _features_config(config)
    names = selected_features(cfg)
    tables = prepare_tables(ds)
    tables["in_customers"] = customer_starts(tables)
    obs, keys = observation_context(tables, observations)
    present = _present(ds)
    if usage_events is not None:
        present.add("usage_events")
        tables.pop("in_usage_events", None)
        usage_events.createOrReplaceTempView("raw_usage_events")
        spark.sql(_USAGE_EVENTS_SQL).createOrReplaceTempView("in_usage_events")
    for name, frame in {**tables, "obs": obs, "keys": keys}.items():
        _view(spark, name, frame)
    for name, sql in derived_table_sql(cfg, present):
        # computed once and reused by every window, as DuckDB's temp tables are
        spark.sql(to_spark_sql(sql)).cache().createOrReplaceTempView(name)
    wanted = {f.component for f in feature_specs(cfg) if f.name in names}
    parts = []
    for comp in REGISTRY:
        if comp in wanted:
            part = spark.sql(to_spark_sql(component_sql(comp, config=cfg, present=present))).toPandas()
            parts.append(part.sort_values("row_id").reset_index(drop=True).drop(columns="row_id"))
    result = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=range(len(obs)))
    segments = sorted(tables["in_accounts"]["segment"].dropna().unique().tolist())
    return feature_frame(result, observations.index, names, segments)


__all__ = ["OPTIONAL_INPUTS", "build_features_spark", "to_spark_sql"]
