"""MLflow: runs, the registered model, aliases. The only module that imports mlflow."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import joblib
import pandas as pd

from healthscore._environment import set_mlflow_defaults
from healthscore.errors import TrackingError
from healthscore.explain import CONTRIB_COLUMNS, DRIVER_COLUMNS
from healthscore.io.lock import FileLock

set_mlflow_defaults()  # before mlflow is imported

import logging  # noqa: E402
import warnings  # noqa: E402

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.pyfunc import PythonModel  # noqa: E402

logging.getLogger("mlflow").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", module="mlflow")
warnings.filterwarnings("ignore", message=".*CloudPickle.*")
warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column.*")

CHAMPION = "champion"
CHALLENGER = "challenger"


#: how long a command waits for another one creating the store or registering a model (seconds)
STORE_LOCK_TIMEOUT = 300.0
#: stores this process has already opened (created or migrated) under the lock
_OPENED: set[str] = set()


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory, or absolute with a
    fourth slash), or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def store_lock(uri: str | None = None) -> contextlib.AbstractContextManager:
    """An exclusive lock on a SQLite store (``mlflow.db.lock`` beside ``mlflow.db``); a no-op for servers,
    which serialise writes themselves.

    Held while the store is first created or migrated, and while a model version is registered and its
    alias moved, so that concurrent commands neither race the schema migration nor both take
    ``champion``.
    """
    path = sqlite_path(uri or tracking_uri())
    if path is None:
        return contextlib.nullcontext()
    return FileLock(path.with_name(path.name + ".lock"), timeout=STORE_LOCK_TIMEOUT,
                    busy=f"another healthscore command ({{holder}}) keeps the MLflow store {path} locked",
                    fix="wait for it to finish and try again")


def _open_store(uri: str) -> None:
    """Create or migrate a SQLite store once, under its lock; a damaged store is one line with the fix."""
    path = sqlite_path(uri)
    if path is None or uri in _OPENED:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with store_lock(uri):
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
    except TrackingError:
        raise
    except Exception as exc:  # sqlalchemy, alembic and MLflow errors alike: the store is not usable
        if isinstance(exc, OSError) and not path.exists():
            raise TrackingError(f"cannot create the MLflow store {path}: {exc.strerror or exc}") from None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise TrackingError(
            f"the MLflow store {path} cannot be used ({first}): it is probably half-migrated or damaged. "
            f"Move it aside to start a new store (mv {path} {path}.broken), or repair it with "
            f"`mlflow db upgrade {uri}` (back it up first)"
        ) from None
    _OPENED.add(uri)


def connect(*, open_store: bool = True) -> str:
    """Point MLflow at the tracking URI; fail in one line (within ~10 s) if an HTTP server is unreachable.

    A local SQLite store is created or migrated here, at the start of a command and under its lock
    (``open_store=False``: not yet, for a command that may not need the store at all).
    """
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10) as resp:
                if resp.status != 200:
                    raise TrackingError(f"MLflow tracking server at {uri} answered HTTP {resp.status} on /health")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"MLflow tracking server at {uri} is unreachable ({reason}); start it or unset MLFLOW_TRACKING_URI "
                "to use the local SQLite store. Nothing was logged or registered."
            ) from None
    mlflow.set_tracking_uri(uri)
    if open_store:
        _open_store(uri)
    return uri


@contextlib.contextmanager
def use_store(uri: str) -> Iterator[str]:
    """Point every tracking call inside the block at ``uri`` (e.g. the demo's own store under its --out)."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield uri
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before
        if mlflow.get_tracking_uri() == uri:
            mlflow.set_tracking_uri(tracking_uri())


def _experiment(name: str) -> None:
    """Use experiment ``name``; a new one on a SQLite store keeps its artifacts beside the database file
    (``<db folder>/mlruns``), so a store and its artifacts live and move together."""
    client = MlflowClient()
    if client.get_experiment_by_name(name) is None:
        db = sqlite_path(tracking_uri())
        if db is not None:
            with contextlib.suppress(mlflow.exceptions.MlflowException):  # another run created it first
                client.create_experiment(name, artifact_location=(db.resolve().parent / "mlruns").as_uri())
    mlflow.set_experiment(name)


@contextlib.contextmanager
def run(*, experiment: str, run_name: str) -> Iterator[Any]:
    """Start (or, under ``mlflow run``, join) a run."""
    connect()
    if os.environ.get("MLFLOW_RUN_ID"):
        # mlflow run has created the run in its own experiment: join it, do not switch experiments.
        with mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"]) as active:
            yield active
        return
    _experiment(experiment)
    with mlflow.start_run(run_name=run_name) as active:
        yield active


def git_commit() -> str:
    """The commit of the code that trained the model ("unknown" outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


#: the column a client may send beside the model's inputs, echoed in the output to match rows
SERVING_ID = "account_id"


class HealthScorePyfunc(PythonModel):
    """pyfunc wrapper (``mlflow models serve``, Spark's ``spark_udf``): the batch's engine on a client's rows.

    Input: one column per model input (the model metadata's ``input_columns``, the raw features as
    ``healthscore features`` writes them; null where not known) and optionally ``account_id``. Output, one
    row per input row, in order: ``account_id`` (the row number when not sent), ``status`` (``scored``, or
    ``no_features`` when every input is null), ``probability``, ``model_score``, ``score``, ``band``,
    ``baseline``, ``contrib_*``, ``driver_1``–``driver_3`` and ``positive_driver`` — the columns and values
    ``score_table`` writes for a flat table (no CSM adjustments: they need the raw tables). A request with
    missing or unknown columns, unknown category values or text in a numeric column is refused as a whole:
    an ``MlflowException`` (HTTP 400 from the scoring server) whose message lists every problem.
    The CLI loads the inner model directly.
    """

    def __init__(self, settings: dict | None = None):
        #: the training config (``Config.to_dict``): the served model scores with the same bands and
        #: explanation thresholds as the batch
        self.settings = settings or {}

    def load_context(self, context) -> None:
        self.health_model = joblib.load(context.artifacts["health_model"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        from healthscore.config import config_from_dict
        from healthscore.scoring.batch import score_table

        model = self.health_model
        frame = pd.DataFrame(model_input).reset_index(drop=True)
        problems = model.input_problems(frame, passthrough=(SERVING_ID,))
        if problems:
            raise MlflowException("healthscore cannot score this input:\n- " + "\n- ".join(problems),
                                  error_code=INVALID_PARAMETER_VALUE)
        rows = pd.Series([str(i) for i in range(len(frame))], dtype="object")
        ids = rows if SERVING_ID not in frame else pd.Series(
            [str(v) if pd.notna(v) else r for v, r in zip(frame[SERVING_ID], rows)], dtype="object")
        config = config_from_dict(getattr(self, "settings", {}) or {})
        loaded = LoadedModel(model=model, version="", uri="", run_id=None)
        scores = score_table(ids, frame[model.raw_input_columns()], loaded, config).scores
        return scores.drop(columns=["model_version"]).reset_index(drop=True)


@dataclass(frozen=True)
class LoadedModel:
    model: Any
    version: str
    uri: str
    run_id: str | None


def log_model(
    health_model: Any,
    *,
    input_example: pd.DataFrame,
    model_name: str,
    settings: dict | None = None,
) -> tuple[str, str]:
    """Log the pyfunc in the active run, register it and set the alias; return (version, alias).

    The first version becomes ``champion``; later ones ``challenger`` (promotion is ``retrain``'s job).
    The signature declares the outputs only: the pyfunc checks its input itself (``HealthModel.input_problems``),
    so an unknown column or category is refused by name rather than dropped by MLflow's schema enforcement.
    The input columns are the model metadata's ``input_columns`` and the input example's.
    """
    from mlflow.models import ModelSignature, infer_signature

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "health_model.joblib"
        joblib.dump(health_model, path)
        columns = health_model.raw_input_columns()
        example = strict_example(plain_frame(input_example[columns].reset_index(drop=True)), health_model)
        pyfunc = HealthScorePyfunc(settings)
        pyfunc.health_model = health_model
        with warnings.catch_warnings():  # pandas' notes on all-null columns of the example's output
            warnings.simplefilter("ignore")
            outputs = infer_signature(example, pyfunc.predict(None, example)).outputs
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=HealthScorePyfunc(settings),
            artifacts={"health_model": str(path)},
            signature=ModelSignature(inputs=None, outputs=outputs),
            input_example=example,
            metadata={"input_columns": columns, "categories": health_model.categories,
                      "passthrough_columns": [SERVING_ID]},
            pip_requirements=_requirements(),
        )
    client = MlflowClient()
    # registering, choosing the alias and moving it is one step for concurrent runs: else two first
    # trainings both find no champion and both print "champion" while the registry holds only one
    with store_lock():
        version = str(mlflow.register_model(info.model_uri, model_name).version)
        try:
            client.get_model_version_by_alias(model_name, CHAMPION)
            alias = CHALLENGER
        except mlflow.exceptions.MlflowException:
            alias = CHAMPION
        client.set_registered_model_alias(model_name, alias, version)
        actual = alias_version(model_name, alias)
    if actual != version:  # a server store, where another run moved it since
        raise TrackingError(f"registered {model_name} version {version}, but @{alias} now points to version "
                            f"{actual}: another run moved it at the same moment; check the registry")
    return version, alias


def strict_example(example: pd.DataFrame, health_model: Any) -> pd.DataFrame:
    """The input example with no missing cell, so ``serving_input_example.json`` is strict JSON (no bare NaN):
    a number missing in every example row takes 0, one missing in some rows the rows' median; a category the
    first one the model knows. (Missing values stay valid input: every column is optional in the signature.)"""
    out = example.copy()
    for column in out.columns:
        values = out[column]
        if column in getattr(health_model, "categories", {}):
            known = health_model.categories.get(column) or [""]
            out[column] = values.where(values.notna(), known[0])
        else:
            median = pd.to_numeric(values, errors="coerce").median()
            out[column] = pd.to_numeric(values, errors="coerce").fillna(0.0 if pd.isna(median) else float(median))
    return out


def plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as plain text and numbers as float64: the types a pyfunc signature can carry."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype("object").where(out[col].notna(), None)
        else:
            out[col] = out[col].astype("float64")
    return out


def _requirements() -> list[str]:
    from importlib.metadata import version

    pins = []
    for pkg in ("lightgbm", "scikit-learn", "pandas", "numpy", "joblib", "pyarrow", "duckdb", "mlflow"):
        with contextlib.suppress(Exception):
            pins.append(f"{pkg}=={version(pkg)}")
    return pins


def load_model(uri: str) -> LoadedModel:
    """Load a HealthModel from a model URI (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/…, or a path)."""
    connect(open_store=uri.startswith(("models:/", "runs:/")))  # a model folder needs no store
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri.rstrip("/") + "/artifacts/health_model.joblib")
    except Exception:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri)
            local = str(next(Path(local).rglob("health_model.joblib")))
        except StopIteration:
            raise TrackingError(f"{uri} is not a healthscore model (no health_model.joblib inside)") from None
        except Exception as exc:
            raise TrackingError(f"cannot load model {uri}: {str(exc).splitlines()[0]}. "
                                "Train one first (healthscore train) or pass --model.") from None
    version, run_id = _resolve_version(uri)
    return LoadedModel(model=joblib.load(local), version=version, uri=uri, run_id=run_id)


def _resolve_version(uri: str) -> tuple[str, str | None]:
    client = MlflowClient()
    if uri.startswith("models:/"):
        rest = uri[len("models:/"):]
        if "@" in rest:
            name, alias = rest.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, ver = rest.split("/", 1)
            mv = client.get_model_version(name, ver)
        return str(mv.version), mv.run_id
    if uri.startswith("runs:/"):
        run_id = uri[len("runs:/"):].split("/", 1)[0]
        return f"run:{run_id[:8]}", run_id
    return f"path:{Path(uri).name}", None


@dataclass
class RunRecord:
    """What one run logs, prepared by a job: the one recipe (``log_run``) logs it the same way for every job."""

    experiment: str
    run_name: str
    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    #: artifact name (``folder/file.json``) → a JSON-able dict
    dicts: dict[str, Any] = field(default_factory=dict)
    #: artifact folder → files on disk to log there, in order
    files: dict[str, list[Path]] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    #: the registered version and the alias it got, when the run logged a model
    version: str | None = None
    alias: str | None = None


def log_run(record: RunRecord, *, model: Any = None, input_example: pd.DataFrame | None = None,
            model_name: str | None = None, config: Any = None) -> LoggedRun:
    """Start (or join) the run, log params, metrics, tags, dicts and files; log and register ``model`` if given."""
    with run(experiment=record.experiment, run_name=record.run_name) as active:
        log_params_metrics(record.params, record.metrics, record.tags)
        for name, data in record.dicts.items():
            mlflow.log_dict(data, name)
        for folder, paths in record.files.items():
            for path in paths:
                mlflow.log_artifact(str(path), artifact_path=folder)
        version = alias = None
        if model is not None:
            version, alias = log_model(model, input_example=input_example, model_name=model_name,
                                       settings=config.to_dict() if config is not None else None)
        return LoggedRun(run_id=active.info.run_id, version=version, alias=alias)


def artifact_uri(run_id: str, path: str) -> str:
    """Where a run's artifact lives (a ``file://`` path for a local store), to print for people."""
    return f"{mlflow.get_run(run_id).info.artifact_uri.rstrip('/')}/{path}"


def log_files(run_id: str, folder: str, paths: list[Path]) -> None:
    """Add files to a finished run (e.g. a report that names the version the run registered)."""
    client = MlflowClient()
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path=folder)


def log_params_metrics(params: dict[str, Any], metrics: dict[str, float], tags: dict[str, str]) -> None:
    mlflow.log_params({k: (json.dumps(v) if isinstance(v, (dict, list, tuple)) else v) for k, v in params.items()})
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})  # drop NaN
    mlflow.set_tags(tags)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_dict(data: dict, name: str) -> None:
    mlflow.log_dict(data, name)


def set_version_tags(model_name: str, version: str, tags: dict[str, str]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)


def describe_version(model_name: str, version: str, description: str, tags: dict[str, str]) -> None:
    """A registered version's description and tags (what it learned from, how it measured), for the registry UI."""
    client = MlflowClient()
    client.update_model_version(model_name, str(version), description=description)
    for key, value in tags.items():
        client.set_model_version_tag(model_name, str(version), key, str(value))


def set_alias(model_name: str, alias: str, version: str) -> None:
    """Point ``alias`` at ``version``, serialised with other registrations and alias moves on the store."""
    with store_lock():
        MlflowClient().set_registered_model_alias(model_name, alias, version)


def remove_alias_if(model_name: str, alias: str, version: str) -> None:
    """Delete ``alias`` when it points at ``version`` (under the store lock, like every alias move)."""
    with store_lock():
        if alias_version(model_name, alias) == str(version):
            MlflowClient().delete_registered_model_alias(model_name, alias)


def alias_version(model_name: str, alias: str) -> str | None:
    """Version number behind an alias, or None when the alias (or model) does not exist."""
    try:
        return str(MlflowClient().get_model_version_by_alias(model_name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def model_version_tags(model_name: str, version: str) -> dict[str, str]:
    """Tags of one registered version; TrackingError naming the versions that exist when it does not."""
    client = MlflowClient()
    try:
        return dict(client.get_model_version(model_name, str(version)).tags or {})
    except mlflow.exceptions.MlflowException:
        try:
            known = sorted((str(v.version) for v in client.search_model_versions(f"name='{model_name}'")), key=int)
        except mlflow.exceptions.MlflowException:
            known = []
        have = f"versions that exist: {', '.join(known)}" if known else f"no versions of {model_name} are registered"
        raise TrackingError(f"model {model_name} has no version {version!r} ({have}).") from None


def model_aliases(model_name: str) -> dict[str, str]:
    """Alias → version of a registered model (empty when the model does not exist)."""
    try:
        return {str(k): str(v) for k, v in (MlflowClient().get_registered_model(model_name).aliases or {}).items()}
    except mlflow.exceptions.MlflowException:
        return {}


# -- Spark: the registered model as a Spark UDF (needs the spark environment, docs/spark.md) -------------

#: the pyfunc's output columns and their Spark types (``HealthScorePyfunc``)
SPARK_OUTPUTS = (("account_id", "string"), ("status", "string"), ("probability", "double"),
                 ("model_score", "double"), ("score", "double"), ("band", "string"), ("baseline", "double"),
                 *((c, "double") for c in CONTRIB_COLUMNS),
                 *((c, "string") for c in DRIVER_COLUMNS))


def score_spark(spark, features, model_uri: str, *, feature_names: list[str] | None = None):
    """Score a Spark DataFrame of raw features with the registered model via ``mlflow.pyfunc.spark_udf``.

    Returns ``features`` plus the pyfunc's outputs (``SPARK_OUTPUTS``: status, probability, scores, band,
    points and drivers; ``account_id`` is the served row's when ``features`` has one). ``feature_names``
    defaults to the model metadata's ``input_columns``.
    """
    from pyspark.sql import functions as F

    if feature_names is None:
        info = mlflow.models.get_model_info(model_uri)
        feature_names = list((info.metadata or {}).get("input_columns") or info.signature.inputs.input_names())
    if SERVING_ID in features.columns and SERVING_ID not in feature_names:
        feature_names = [*feature_names, SERVING_ID]
    result_type = ", ".join(f"{name} {kind}" for name, kind in SPARK_OUTPUTS)
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=result_type, env_manager="local")
    scored = features.withColumn("_healthscore", udf(F.struct(*[F.col(c) for c in feature_names])))
    outputs = [name for name, _ in SPARK_OUTPUTS if name not in features.columns]
    return scored.select("*", *[F.col(f"_healthscore.{c}").alias(c) for c in outputs]).drop("_healthscore")


def features_to_spark(spark, features: pd.DataFrame):
    """A raw feature frame as a Spark DataFrame: categories as text, numbers as double (the pyfunc's input)."""
    return spark.createDataFrame(plain_frame(features))
