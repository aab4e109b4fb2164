"""``train``: learn from decided renewals (or a flat table's rows), evaluate, log the run, register the model."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from healthscore.config import Config
from healthscore.io import load_dataset
from healthscore.io.flat_table import read_table
from healthscore.io.write import copy_file_atomic
from healthscore.jobs._side_by_side import side_by_side
from healthscore.model.card import ModelCard, account_hashes, as_of_text
from healthscore.reports.progress import NO_PROGRESS, Progress

if TYPE_CHECKING:
    from healthscore.io.dataset import Dataset
    from healthscore.model.train import TrainingSet, TrainResult

# MLflow, the fitting code and the reports (mlflow, scikit-learn, LightGBM, SHAP, matplotlib: about 3 s of
# imports, then 1-2 s to open MLflow's store) are imported where they are used, so that ``train_job`` runs
# them beside the loading of the data and the building of its rows (``training_rows``)


def read_truth(data_dir: str | Path) -> pd.DataFrame | None:
    """The simulator's truth (contract_id, p_renew) when present beside the dataset, else None."""
    path = Path(data_dir) / "truth.parquet"
    return pd.read_parquet(path) if path.exists() else None


@dataclass
class TrainOutcome:
    result: TrainResult
    version: str
    alias: str
    run_id: str
    model_name: str
    artifacts: dict[str, Path]


@dataclass
class TableTrainOutcome(TrainOutcome):
    report: Any  # io.flat_table.CoercionReport: what was done to each column


#: what a reviewer compares across runs: every model overall; healthscore also by segment and lead time
OVERALL_METRICS = ("roc_auc", "pr_auc_churn", "brier", "log_loss", "ece", "top_decile_lift", "renewal_rate", "n")
GROUP_METRICS = ("roc_auc", "log_loss", "brier", "ece", "n")


def summary_metrics(result: TrainResult) -> dict[str, float]:
    """MLflow metrics: ``<model>.<metric>`` overall for every model (``truth`` only on simulated data, where it
    exists), ``healthscore.<group>.<level>.<metric>`` by segment and lead time, and the learned weights. The
    whole table (every model, every group) is the run's ``evaluation/evaluation.csv``."""
    out: dict[str, float] = {}
    for _, r in result.evaluation.iterrows():
        if r["group"] == "all":
            prefix, metrics = r["model"], OVERALL_METRICS
        elif r["model"] == "healthscore":
            prefix, metrics = f"{r['model']}.{r['group']}.{r['level']}", GROUP_METRICS
        else:
            continue
        for metric in metrics:
            out[f"{prefix}.{metric}".replace(" ", "_")] = float(r[metric])
    for _, r in result.component_weights.iterrows():
        out[f"learned_weight.{r['component']}"] = float(r["learned_weight"])
    return out


def row_sets(model) -> dict[str, Any]:
    """The model card's row sets: what the registered model learned from, what the metrics come from."""
    keys = ("refit", "learned_from", "calibrated_on", "metrics_from", "evaluated_model")
    return {k: model.metadata[k] for k in keys if k in model.metadata}


def row_set_params(model) -> dict[str, str]:
    """The same as flat MLflow params (``learned_from``: "6,990 rows (2,330 renewals, renewal dates … to …)")."""
    from healthscore.model.train import rows_text

    out = {}
    for key, d in row_sets(model).items():
        if not isinstance(d, dict):
            out[key] = str(d)
        elif "rows" in d:
            out[key] = rows_text(d)
    return out


def version_card(result: TrainResult) -> tuple[str, dict[str, str]]:
    """A registered version's description and tags: as-of, data fingerprint, rows learned from, test metrics."""
    from healthscore.model.train import rows_text

    meta = result.model.metadata
    overall = result.evaluation[(result.evaluation["group"] == "all") & (result.evaluation["model"] == "healthscore")]
    metrics = overall.iloc[0] if len(overall) else None
    tags = {
        "trained_as_of": str(meta.get("trained_as_of", "")),
        "data_fingerprint": str(meta.get("data_fingerprint", "")),
        "learned_from": rows_text(meta.get("learned_from")),
        "metrics_from": rows_text(meta.get("metrics_from")),
        "form": str(result.model.form),
    }
    if metrics is not None:
        tags.update({f"test_{m}": f"{float(metrics[m]):.4f}" for m in ("roc_auc", "log_loss", "brier", "ece")})
    description = (f"{result.model.form}, trained as of {tags['trained_as_of']} on {tags['learned_from']}"
                   + (f"; test ROC AUC {tags['test_roc_auc']}, log loss {tags['test_log_loss']} on "
                      f"{tags['metrics_from']}" if metrics is not None else ""))
    return description, tags


def fit_params(result: TrainResult, config: Config, as_of: date | None) -> dict[str, Any]:
    """The params every training run logs (tree settings, as-of, calibration, split, row counts)."""
    return {
        **{f"lgbm.{k}": v for k, v in result.params.items()},
        "as_of": as_of_text(as_of),
        "calibration_method": result.model.calibrator.method_,
        "calibration_rows": result.model.metadata.get("calibration_rows"),
        "split": [config.split.train, config.split.calibration, config.split.test],
        **dict(result.sizes),
    }


def write_training_artifacts(result: TrainResult, out_dir: Path) -> dict[str, Path]:
    """Plots and tables of one training, written to ``out_dir``."""
    from healthscore.reports import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    tp = result.test_predictions
    y = tp["label"].to_numpy()
    preds = {k[2:]: tp[k].to_numpy() for k in tp.columns if k.startswith("p_") and k != "p_healthscore_raw"}
    paths = {
        "reliability": plots.reliability_plot(y, preds, out_dir / "reliability.png"),
        "roc": plots.roc_plot(y, preds, out_dir / "roc.png"),
        "lift": plots.lift_plot(y, preds, out_dir / "lift.png"),
        "component_weights": plots.component_weights_plot(result.component_weights, out_dir / "component_weights.png"),
    }
    for name, frame in (
        ("evaluation", result.evaluation),
        ("reliability_table", result.reliability),
        ("component_weights", result.component_weights),
        ("cv_results", result.cv_results),
    ):
        frame.to_csv(out_dir / f"{name}.csv", index=False)  # a temporary folder the run logs
        paths[name] = out_dir / f"{name}.csv"
    return paths


def _record(result: TrainResult, config: Config, *, run_name: str, params: dict, tags: dict,
            config_path, extra_files: dict[str, list[Path]], features: dict, tmpdir: Path, ts) -> tuple:
    """The run record of a training (shared by the dataset and the table path), and its evaluation files."""
    from healthscore import tracking
    from healthscore.reports.global_report import test_slice_matrix, write_global_report

    artifacts = write_training_artifacts(result, tmpdir / "evaluation")
    report = write_global_report(result, tmpdir / "model_report.html", X=test_slice_matrix(result, ts, config))
    record = tracking.RunRecord(
        experiment=config.tracking.experiment, run_name=run_name,
        params={**params, **row_set_params(result.model)},
        metrics=summary_metrics(result),
        tags={"git_commit": tracking.git_commit(), **tags},
        dicts={"config/resolved_config.json": config.to_dict(), "model_card/rows.json": row_sets(result.model),
               "features.json": features},
        files={**({"config": [Path(config_path)]} if config_path else {}), **extra_files,
               "evaluation": list(artifacts.values()), "reports": [report]},
    )
    return record, artifacts, report


def _check_store() -> None:
    from healthscore import tracking  # mlflow's import, here while the other thread loads the data

    tracking.connect()  # fail fast, before any work is lost, when the server is unreachable
    import healthscore.model.train  # noqa: F401 (LightGBM and scikit-learn, imported here meanwhile too)


def training_rows(data: str | Path, *, config: Config, as_of: date | None) -> tuple[Dataset, TrainingSet]:
    """The dataset and its training rows with their point-in-time features (``train``, ``retrain``)."""
    ds = load_dataset(data)
    # imported once the data's scan has run beside MLflow's import (``_check_store`` imports it meanwhile)
    from healthscore.model.train import training_set_from_dataset

    return ds, training_set_from_dataset(ds, config=config, as_of=as_of, truth=read_truth(data))


def train_job(
    data: str | Path,
    *,
    config: Config,
    as_of: date | None = None,
    model_name: str | None = None,
    config_path: str | Path | None = None,
    report_dir: str | Path | None = None,
    progress: Progress = NO_PROGRESS,
) -> TrainOutcome:
    """Train on a dataset as if today were ``as_of``; log the run, register and alias the model.

    The global model report is logged with the run; with ``report_dir`` a copy is written there too.
    """
    model_name = model_name or config.tracking.model_name
    with progress.step(f"loading data from {data} and building training rows and point-in-time features"):
        # the tracking store is checked first (an unreachable server fails fast) while the data loads
        _, (ds, ts) = side_by_side(_check_store, lambda: training_rows(data, config=config, as_of=as_of))
    from healthscore import tracking
    from healthscore.model.train import fit_health_model

    with progress.step(f"fitting on {len(ts.label):,} rows: time-ordered CV, LightGBM, calibration, evaluation"):
        result = fit_health_model(ts, config=config)
    ModelCard(model_name=model_name, data_fingerprint=ds.fingerprint, trained_as_of=as_of,
              features_config=ts.features_config or config.features,
              lead_times_days=tuple(config.timeline.lead_times_days),
              training_accounts=account_hashes(ts.rows["account_id"])).stamp(result.model)
    with progress.step("logging the run, reports and model to MLflow"), tempfile.TemporaryDirectory() as tmp:
        record, artifacts, report = _record(
            result, config, run_name=f"train-{as_of or 'all'}", config_path=config_path, extra_files={},
            params={**fit_params(result, config, as_of), "lead_times_days": list(config.timeline.lead_times_days)},
            tags={"data_fingerprint": ds.fingerprint, "data_source": str(data), "job": "train"},
            features={"features": result.model.feature_names, "components": result.model.components},
            tmpdir=Path(tmp), ts=ts)
        if report_dir is not None:
            copy_file_atomic(report, Path(report_dir) / "model_report.html")
        logged = tracking.log_run(record, model=result.model, input_example=ts.features.iloc[:5].reset_index(drop=True),
                                  model_name=model_name, config=config)
    tracking.describe_version(model_name, logged.version, *version_card(result))
    return TrainOutcome(result=result, version=logged.version, alias=logged.alias, run_id=logged.run_id,
                        model_name=model_name, artifacts={k: Path(v).name for k, v in artifacts.items()})


def train_table_job(
    table: str | Path,
    *,
    target: str,
    churn_value: str,
    config: Config,
    id_column: str | None = None,
    components: str | Path | None = None,
    time_column: str | None = None,
    as_of: date | None = None,
    model_name: str | None = None,
    config_path: str | Path | None = None,
) -> TableTrainOutcome:
    """Train on one flat account table (CSV or Parquet): coerce, split, fit, calibrate, evaluate, log, register."""
    from healthscore import tracking
    from healthscore.model.flat_table import load_components, table_fingerprint, training_set_from_table
    from healthscore.model.train import fit_health_model

    model_name = model_name or config.tracking.model_name
    spec = load_components(components)
    tracking.connect()  # fail fast, before any work, when the server is unreachable
    prepared = training_set_from_table(
        read_table(table), target=target, churn_value=churn_value, config=config, id_column=id_column, spec=spec,
        time_column=time_column, as_of=as_of, table=Path(table).name,
    )
    result = fit_health_model(prepared.training_set, config=prepared.config)
    fingerprint = table_fingerprint(table)
    result.model.metadata["table"] = prepared.table_metadata
    ModelCard(model_name=model_name, data_fingerprint=fingerprint, trained_as_of=as_of).stamp(result.model)
    params = {
        **fit_params(result, config, as_of),
        "table.id": id_column or "(row number)",
        "table.target": target,
        "table.churn_value": str(churn_value),
        "table.time": time_column or "",
        "split_kind": "time" if time_column else "stratified",
        "monotone": prepared.table_metadata["declared_directions"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        coercion = tmpdir / "coercion_report.csv"
        prepared.report.to_frame().to_csv(coercion, index=False)
        record, artifacts, _ = _record(
            result, prepared.config, run_name=f"train-table-{Path(table).stem}", params=params,
            tags={"data_fingerprint": fingerprint, "data_source": str(table), "job": "train-table"},
            config_path=config_path,
            extra_files={**({"config": [Path(components)]} if components else {}), "data": [coercion]},
            features={"features": result.model.feature_names, "components": result.model.components,
                      "plans": prepared.table_metadata["plans"]},
            tmpdir=tmpdir, ts=prepared.training_set)
        if config_path and components:
            record.files["config"] = [Path(config_path), Path(components)]
        record.dicts["config/resolved_config.json"] = config.to_dict()
        logged = tracking.log_run(record, model=result.model,
                                  input_example=prepared.training_set.features.iloc[:5].reset_index(drop=True),
                                  model_name=model_name, config=config)
    tracking.describe_version(model_name, logged.version, *version_card(result))
    return TableTrainOutcome(result=result, version=logged.version, alias=logged.alias, run_id=logged.run_id,
                             model_name=model_name, artifacts={k: Path(v).name for k, v in artifacts.items()},
                             report=prepared.report)
