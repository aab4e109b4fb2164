"""Spark path: the same features (transpiled SQL) and the same registered model (spark_udf), row by row.

Run with ``make test-spark`` (its own environment: PySpark 4, pandas 2.3). A 120-account simulated world,
observed at two dates; the Spark results must equal the single-machine ones — with the key product features
the model learned (one of them renamed to hostile text: quotes, a backslash, SQL) and their family columns.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from datetime import date

import numpy as np
import pandas as pd
import pytest

pyspark = pytest.importorskip("pyspark")

from healthscore.config import config_from_dict  # noqa: E402
from healthscore.features import build_features  # noqa: E402
from healthscore.io import load_dataset  # noqa: E402
from healthscore.jobs.train import train_job  # noqa: E402
from healthscore.model.card import features_config_of  # noqa: E402
from healthscore.simulate import SimulationSpec, simulate, write_world  # noqa: E402
from healthscore.timeline import scoring_rows  # noqa: E402

pytestmark = pytest.mark.spark

AS_OF = (date(2023, 9, 1), date(2024, 3, 1))
#: a product feature's name that SQL must carry as data only, in both dialects (Spark reads backslashes)
HOSTILE = "it's \\ \"export\"; DROP TABLE keys; --"


@pytest.fixture(scope="module")
def spark():
    """A local two-core Spark session in UTC, workers on this interpreter."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]").appName("healthscore-test")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """120 accounts over 30 months (seed 13) written as Parquet, a model trained and registered on it."""
    root = tmp_path_factory.mktemp("spark_world")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    mp.chdir(root)
    data = root / "data"
    world = simulate(SimulationSpec(accounts=120, seed=13, start=date(2022, 1, 1), months=30))
    events = world.tables["usage_events"]
    renamed = events["feature"].astype("object").where(events["feature"].astype("object") != "dashboards", HOSTILE)
    world.tables["usage_events"] = events.assign(feature=renamed)
    write_world(world, data)
    cfg = config_from_dict({"model": {"num_threads": 1, "num_leaves_grid": [7], "min_child_samples_grid": [20],
                                      "reg_lambda_grid": [1.0]}})
    trained = train_job(data, config=cfg)
    ds = load_dataset(data)
    rows = pd.concat([scoring_rows(ds, d) for d in AS_OF], ignore_index=True)
    rows = rows[rows["status"] == "scored"].sample(frac=1.0, random_state=5).reset_index(drop=True)
    fcfg = features_config_of(trained.result.model, None)
    assert HOSTILE in fcfg.key_features  # learned at training, so the family covers it
    yield {"data": data, "ds": ds, "rows": rows, "uri": f"models:/{trained.model_name}/{trained.version}",
           "features_config": fcfg}
    mp.undo()


def test_spark_features_equal_duckdb_row_by_row(spark, world):
    from healthscore.spark import build_features_spark

    ds, rows = world["ds"], world["rows"]
    # the model's key features, with both family columns (the model itself has the shares only)
    fcfg = dataclasses.replace(world["features_config"], usage_by_feature="share_and_change")
    expected = build_features(ds, rows, config=fcfg)
    # the event table arrives as a Spark DataFrame (as on a cluster), read from the same Parquet
    events = spark.read.parquet(str(world["data"] / "usage_events.parquet"))
    got = build_features_spark(spark, ds, rows, usage_events=events, config=fcfg)
    assert len(rows) > 100
    assert list(got.columns) == list(expected.columns)
    assert got.index.equals(expected.index)
    assert (got.dtypes == expected.dtypes).all()
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-12)
    # not vacuous: the usage features carry values, not only NaN, and so does the hostile feature's family
    assert expected["active_users_30d"].gt(0).sum() > 50
    family = [c for c in expected.columns if c.startswith("uses_")]
    assert len(family) == 2 * len(fcfg.key_features)
    hostile = [c for c in family if c.startswith("uses_it_s_export_drop_table") and c.endswith("_share_30d")]
    assert len(hostile) == 1 and expected[hostile[0]].gt(0).sum() > 20
    assert expected["feature_breadth_90d"].gt(0).sum() > 50


def test_spark_udf_scores_equal_the_pyfunc_row_by_row(spark, world):
    import mlflow.pyfunc

    from healthscore.spark import features_to_spark, score_spark
    from healthscore.tracking import plain_frame

    feats = build_features(world["ds"], world["rows"], config=world["features_config"])
    pyfunc = mlflow.pyfunc.load_model(world["uri"])
    names = pyfunc.metadata.metadata["input_columns"]
    # the single-machine result: the same pyfunc on the same rows, as the signature's plain types
    expected = pyfunc.predict(plain_frame(feats[names]))
    sdf = features_to_spark(spark, feats[names].assign(row=np.arange(len(feats))))
    got = score_spark(spark, sdf, world["uri"]).toPandas().sort_values("row").reset_index(drop=True)
    assert len(got) == len(expected)
    for col in expected.columns:
        if col == "account_id":  # the row number within each partition: not comparable
            continue
        if expected[col].dtype == object:  # status, band and the driver sentences: identical text
            assert got[col].tolist() == expected[col].tolist(), col
            continue
        np.testing.assert_allclose(got[col].to_numpy(dtype=float), expected[col].to_numpy(dtype=float),
                                   rtol=1e-9, atol=1e-9, err_msg=col)
    assert got["band"].notna().all() and got["driver_1"].notna().all()
    assert got["probability"].nunique() > 10  # not a constant model
