"""healthscore on Apache Spark: the same features (``features.spark``) and the same registered model
(``tracking.score_spark``). Needs the ``spark`` environment (``make setup-spark``); see docs/spark.md."""

from healthscore.features.spark import OPTIONAL_INPUTS, build_features_spark, to_spark_sql
from healthscore.tracking import features_to_spark, score_spark

__all__ = ["OPTIONAL_INPUTS", "build_features_spark", "features_to_spark", "score_spark", "to_spark_sql"]
