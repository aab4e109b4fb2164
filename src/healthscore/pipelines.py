"""One function per job the CLI runs: each composes the modules and returns what it made.

The CLI parses and prints; these do the work, so tests and notebooks call them directly.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from healthscore.config import Config
from healthscore.reports.progress import NO_PROGRESS, Progress


def read_truth(data_dir: str | Path) -> pd.DataFrame | None:
    """The simulator's truth (contract_id, p_renew) when present beside the dataset, else None."""
    path = Path(data_dir) / "truth.parquet"
    return pd.read_parquet(path) if path.exists() else None


@dataclass
class TrainOutcome:
    result: Any  # model.train.TrainResult
    version: str
    alias: str
    run_id: str
    model_name: str
    artifacts: dict[str, Path]


def summary_metrics(result) -> dict[str, float]:
    """Flat metric names for MLflow: ``<model>.<metric>`` overall and ``<model>.<group>.<level>.<metric>``."""
    out: dict[str, float] = {}
    for _, r in result.evaluation.iterrows():
        prefix = r["model"] if r["group"] == "all" else f"{r['model']}.{r['group']}.{r['level']}"
        for metric in ("roc_auc", "pr_auc_churn", "brier", "log_loss", "ece", "top_decile_lift", "renewal_rate", "n"):
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


def write_training_artifacts(result, out_dir: Path) -> dict[str, Path]:
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
        path = out_dir / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths[name] = path
    return paths


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
    from healthscore import tracking
    from healthscore.io import load_dataset
    from healthscore.model.train import fit_health_model, training_set_from_dataset

    model_name = model_name or config.tracking.model_name
    tracking.connect()  # fail fast, before any work, when the server is unreachable
    with progress.step(f"loading data from {data}"):
        ds = load_dataset(data)
    with progress.step("building training rows and point-in-time features"):
        ts = training_set_from_dataset(ds, config=config, as_of=as_of, truth=read_truth(data))
    with progress.step(f"fitting on {len(ts.label):,} rows: time-ordered CV, LightGBM, calibration, evaluation"):
        result = fit_health_model(ts, config=config)
    result.model.metadata.update(
        {"data_fingerprint": ds.fingerprint, "trained_as_of": str(as_of) if as_of else "all decided",
         "model_name": model_name, "features_config": dataclasses.asdict(ts.features_config or config.features),
         "lead_times_days": list(config.timeline.lead_times_days)}
    )
    run_name = f"train-{as_of or 'all'}"
    with progress.step("logging the run, reports and model to MLflow"), tracking.run(experiment=config.tracking.experiment, run_name=run_name) as active, \
            tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        params = {
            **{f"lgbm.{k}": v for k, v in result.params.items()},
            "as_of": str(as_of) if as_of else "all decided",
            "calibration_method": result.model.calibrator.method_,
            "calibration_rows": result.model.metadata.get("calibration_rows"),
            "lead_times_days": list(config.timeline.lead_times_days),
            "split": [config.split.train, config.split.calibration, config.split.test],
            **{k: v for k, v in result.sizes.items()},
            **row_set_params(result.model),
        }
        tags = {
            "data_fingerprint": ds.fingerprint,
            "git_commit": tracking.git_commit(),
            "data_source": str(data),
            "job": "train",
        }
        tracking.log_params_metrics(params, summary_metrics(result), tags)
        tracking.log_dict(config.to_dict(), "config/resolved_config.json")
        tracking.log_dict(row_sets(result.model), "model_card/rows.json")
        if config_path:
            tracking.log_artifact(config_path, "config")
        tracking.log_dict({"features": result.model.feature_names, "components": result.model.components},
                          "features.json")
        artifacts = write_training_artifacts(result, tmpdir / "evaluation")
        for path in artifacts.values():
            tracking.log_artifact(path, "evaluation")
        from healthscore.reports.global_report import test_slice_matrix, write_global_report

        report = write_global_report(result, tmpdir / "model_report.html", X=test_slice_matrix(result, ts, config))
        tracking.log_artifact(report, "reports")
        if report_dir is not None:
            Path(report_dir).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(report, Path(report_dir) / "model_report.html")
        example = ts.features.iloc[:5].reset_index(drop=True)
        version, alias = tracking.log_model(result.model, input_example=example, model_name=model_name)
        run_id = active.info.run_id
    return TrainOutcome(result=result, version=version, alias=alias, run_id=run_id, model_name=model_name,
                        artifacts={k: Path(v).name for k, v in artifacts.items()})


def training_result_json(result) -> str:
    """Overall metrics per model as JSON (for scripts)."""
    overall = result.evaluation[result.evaluation["group"] == "all"].set_index("model")
    return json.dumps(overall.drop(columns=["group", "level"]).to_dict(orient="index"), indent=2, sort_keys=True)


@dataclass
class ScoreOutcome:
    batch: Any  # scoring.ScoreBatch
    paths: dict[str, Path]
    model_version: str
    #: what the run wants the user to know: a stale lock taken over, leftovers removed, gates overridden
    notes: list[str] = dataclasses.field(default_factory=list)
    readiness: Any = None  # gates.Readiness


def score_job(
    data: str | Path,
    *,
    as_of: date,
    out: str | Path,
    config: Config,
    model_uri: str | None = None,
    model_name: str | None = None,
    progress: Progress = NO_PROGRESS,
    lock_timeout: float = 0.0,
    allow_stale: bool = False,
    allow_missing: tuple[str, ...] = (),
) -> ScoreOutcome:
    """Score every account as of a date with a registered model; write CONTRACT §4's outputs as one batch.

    The output folder is checked (writable, room for about twice the last batch) and locked before any
    work, and stays locked until the new batch is current (CONTRACT §6): a second run into the same
    folder waits up to ``lock_timeout`` seconds, then fails. The gates (``gates.check``) run once model
    and data are loaded, before scoring.
    """
    from healthscore import gates, tracking
    from healthscore.io import load_dataset
    from healthscore.io.output import OutputDir
    from healthscore.scoring import score_batch, write_batch

    gates.check_date(as_of)
    model_name = model_name or config.tracking.model_name
    uri = model_uri or f"models:/{model_name}@champion"
    out = Path(out)
    with OutputDir(out, lock_timeout=lock_timeout, keep_batches=config.output.keep_batches) as od:
        with progress.step(f"loading model {uri}"):
            loaded = tracking.load_model(uri)
        with progress.step(f"loading data from {data}"):
            ds = load_dataset(data)
        readiness, notes = gates.check(ds, as_of, loaded.model, config, allow_stale=allow_stale,
                                       allow_missing=allow_missing)
        previous = od.current.read("history.parquet") if od.current is not None else None
        with progress.step(f"scoring {len(ds.accounts):,} accounts as of {as_of} (features, model, explanations)",
                           total=len(ds.accounts)):
            batch = score_batch(ds, as_of, loaded, config, previous_history=previous, progress=progress.advance,
                                readiness=readiness)
        with progress.step(f"writing outputs to {out}"):
            info = {"model_uri": uri, "data_source": str(data), "data_fingerprint": ds.fingerprint,
                    **readiness.manifest()}
            paths = write_batch(batch, od, info=info)
    return ScoreOutcome(batch=batch, paths=paths, model_version=loaded.version,
                        notes=[*ds.warnings, *od.notes, *notes], readiness=readiness)


def demo_job(out: str | Path, *, config: Config, accounts: int = 2000, seed: int = 7, console=None,
             progress: Progress = NO_PROGRESS) -> dict[str, Any]:
    """The README's main job: simulate, validate, train, register, score twice a month apart, write reports."""
    from datetime import date as _date

    from healthscore.io import load_dataset, render_summary, summarise
    from healthscore.reports.console import (
        at_risk_table,
        evaluation_table,
        fit_summary,
        group_table,
        portfolio_summary,
        weights_table,
    )
    from healthscore.simulate import SimulationSpec, write_world

    def say(obj) -> None:
        if console is not None:
            console.print(obj)

    out = Path(out)
    data = out / "data"
    spec = SimulationSpec(accounts=accounts, seed=seed, start=_date(2022, 1, 1), months=36)
    say(f"[bold]1/4 simulate[/bold] {accounts} accounts over {spec.months} months → {data}")
    write_world(spec, data)
    say("[bold]2/4 validate[/bold]")
    ds = load_dataset(data)
    say(render_summary(summarise(ds, lead_times=config.timeline.lead_times_days)))
    say("[bold]3/4 train[/bold] (time-ordered split, CV-chosen LightGBM, calibration, MLflow)")
    reports = out / "reports"
    trained = train_job(data, config=config, report_dir=reports, progress=progress)
    r = trained.result
    say(fit_summary(r, "newer renewals"))
    say(evaluation_table(r.evaluation))
    say(group_table(r.evaluation, "lead_time_days"))
    say(weights_table(r.component_weights))
    say(f"registered {trained.model_name} version {trained.version} as @{trained.alias}")
    end = pd.Timestamp(spec.start) + pd.DateOffset(months=spec.months)
    dates = [(end - pd.DateOffset(months=1)).date(), end.date()]
    say(f"[bold]4/4 score[/bold] as of {dates[0]} and {dates[1]} with version {trained.version}")
    scores_dir = out / "scores"
    for as_of in dates:
        scored = score_job(data, as_of=as_of, out=scores_dir, config=config,
                           model_uri=f"models:/{trained.model_name}/{trained.version}", progress=progress)
    say(at_risk_table(scored.batch.scores))
    say(portfolio_summary(scored.batch.portfolio))
    from healthscore.reports.account import load_account, write_account_html

    s = scored.batch.scores
    worst = s[s["status"] == "scored"].sort_values(["score", "account_id"], kind="stable")["account_id"].head(10)
    for account_id in worst:
        write_account_html(load_account(scores_dir, account_id), reports / "accounts" / f"{account_id}.html")
    from healthscore.backtest import backtest_job

    backtest_job(data, config=config, model_uris=[f"models:/{trained.model_name}/{trained.version}"],
                 out=reports / "backtest.html", model_name=trained.model_name)
    say(f"reports: {reports / 'model_report.html'} (the model), {reports / 'backtest.html'} (scores of past "
        f"renewals vs what happened) and {len(worst)} account reports in {reports / 'accounts'}")
    from healthscore.reports.site import build_site

    site = build_site(scores_dir, out / "site", config=config, share=True, reports=reports)
    say(f"portfolio site: {site.index}")
    return {"data": data, "scores": scores_dir, "reports": reports, "train": trained, "score": scored,
            "dates": dates, "site": site}


# -- the bring-your-own-table path ----------------------------------------------------------------------------

@dataclass
class TableTrainOutcome(TrainOutcome):
    report: Any  # io.table.CoercionReport: what was done to each column


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
    from healthscore.io.table import read_table
    from healthscore.model.flat import load_components, table_fingerprint, training_set_from_table
    from healthscore.model.train import fit_health_model

    model_name = model_name or config.tracking.model_name
    spec = load_components(components)
    tracking.connect()  # fail fast, before any work, when the server is unreachable
    frame = read_table(table)
    prepared = training_set_from_table(
        frame, target=target, churn_value=churn_value, config=config, id_column=id_column, spec=spec,
        time_column=time_column, as_of=as_of, table=Path(table).name,
    )
    result = fit_health_model(prepared.training_set, config=prepared.config)
    fingerprint = table_fingerprint(table)
    result.model.metadata.update(
        {"table": prepared.table_metadata, "data_fingerprint": fingerprint, "model_name": model_name,
         "trained_as_of": str(as_of) if as_of else "all decided"}
    )
    split = "time" if time_column else "stratified"
    with tracking.run(experiment=config.tracking.experiment, run_name=f"train-table-{Path(table).stem}") as active, \
            tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        params = {
            **{f"lgbm.{k}": v for k, v in result.params.items()},
            "table.id": id_column or "(row number)",
            "table.target": target,
            "table.churn_value": str(churn_value),
            "table.time": time_column or "",
            "as_of": str(as_of) if as_of else "all decided",
            "split_kind": split,
            "split": [config.split.train, config.split.calibration, config.split.test],
            "calibration_method": result.model.calibrator.method_,
            "calibration_rows": result.model.metadata.get("calibration_rows"),
            "monotone": prepared.table_metadata["declared_directions"],
            **dict(result.sizes),
            **row_set_params(result.model),
        }
        tags = {"data_fingerprint": fingerprint, "git_commit": tracking.git_commit(), "data_source": str(table),
                "job": "train-table"}
        tracking.log_params_metrics(params, summary_metrics(result), tags)
        tracking.log_dict(config.to_dict(), "config/resolved_config.json")
        tracking.log_dict(row_sets(result.model), "model_card/rows.json")
        if config_path:
            tracking.log_artifact(config_path, "config")
        if components:
            tracking.log_artifact(components, "config")
        tracking.log_dict({"features": result.model.feature_names, "components": result.model.components,
                           "plans": prepared.table_metadata["plans"]}, "features.json")
        report_path = tmpdir / "coercion_report.csv"
        prepared.report.to_frame().to_csv(report_path, index=False)
        tracking.log_artifact(report_path, "data")
        artifacts = write_training_artifacts(result, tmpdir / "evaluation")
        for path in artifacts.values():
            tracking.log_artifact(path, "evaluation")
        from healthscore.reports.global_report import test_slice_matrix, write_global_report

        report = write_global_report(result, tmpdir / "model_report.html",
                                     X=test_slice_matrix(result, prepared.training_set, prepared.config))
        tracking.log_artifact(report, "reports")
        example = prepared.training_set.features.iloc[:5].reset_index(drop=True)
        version, alias = tracking.log_model(result.model, input_example=example, model_name=model_name)
        run_id = active.info.run_id
    return TableTrainOutcome(result=result, version=version, alias=alias, run_id=run_id, model_name=model_name,
                             artifacts={k: Path(v).name for k, v in artifacts.items()}, report=prepared.report)


@dataclass
class TableScoreOutcome:
    scores: pd.DataFrame
    explanations: pd.DataFrame
    paths: dict[str, Path]
    model_version: str
    report: Any  # io.table.CoercionReport


def score_table_job(
    table: str | Path,
    *,
    out: str | Path,
    config: Config,
    id_column: str | None = None,
    model_uri: str | None = None,
    model_name: str | None = None,
    lock_timeout: float = 0.0,
) -> TableScoreOutcome:
    """Score every row of a flat table with a model trained by ``train_table_job``; write scores atomically.

    One output row per input row, in input order, keyed ``account_id`` (the ``--id`` column's value, or the
    row's 1-based position when there is none). A row with every feature empty gets status ``no_features``
    and no score: a score from nothing would only be the average account's. The output folder is
    checked and locked first and the files are published as one batch, as for ``score_job``.
    """
    from healthscore.io.output import OutputDir

    with OutputDir(Path(out), lock_timeout=lock_timeout, keep_batches=config.output.keep_batches) as od:
        return _score_table(table, od=od, config=config, id_column=id_column, model_uri=model_uri,
                            model_name=model_name)


def _score_table(table, *, od, config: Config, id_column, model_uri, model_name) -> TableScoreOutcome:
    import numpy as np

    from healthscore import explain, tracking
    from healthscore.explain import CONTRIB_COLUMNS
    from healthscore.io.table import read_table
    from healthscore.model.flat import features_for_scoring
    from healthscore.scoring import band_of, feature_points

    model_name = model_name or config.tracking.model_name
    uri = model_uri or f"models:/{model_name}@champion"
    loaded = tracking.load_model(uri)
    model = loaded.model
    frame = read_table(table)
    ids, feats, report = features_for_scoring(frame, model, id_column=id_column, table=Path(table).name)
    feats = feats.reset_index(drop=True)
    out_frame = pd.DataFrame({"account_id": ids.to_numpy()})
    scored = feats.notna().any(axis=1).to_numpy() if feats.shape[1] else np.zeros(len(feats), dtype=bool)
    out_frame["status"] = np.where(scored, "scored", "no_features")
    for col in ("probability", "model_score", "score", "baseline", *CONTRIB_COLUMNS):
        out_frame[col] = np.nan
    drivers = pd.DataFrame(index=out_frame.index)
    explanations = pd.DataFrame(columns=["account_id", "feature", "component", "value", "contribution"])
    if scored.any():
        X = model.prepare(feats[scored])
        fpoints, probability, baseline = feature_points(model, X)
        out_frame.loc[scored, "probability"] = probability
        out_frame.loc[scored, "model_score"] = np.round(100.0 * probability)
        out_frame.loc[scored, "score"] = np.round(100.0 * probability)
        out_frame.loc[scored, "baseline"] = baseline
        comp = pd.DataFrame(0.0, index=fpoints.index, columns=list(CONTRIB_COLUMNS))
        for f in fpoints.columns:
            comp[f"contrib_{model.components.get(f, 'account')}"] += fpoints[f].to_numpy()
        out_frame.loc[scored, list(CONTRIB_COLUMNS)] = comp.to_numpy()
        long = pd.DataFrame({
            "account_id": np.repeat(out_frame.loc[scored, "account_id"].to_numpy(), len(fpoints.columns)),
            "feature": np.tile(fpoints.columns.to_numpy(), int(scored.sum())),
            "value": X.astype("object").to_numpy().ravel(),
            "contribution": fpoints.to_numpy().ravel(),
        })
        long["component"] = long["feature"].map(model.components).fillna("account")
        long["value"] = long["value"].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v))
                                          else str(v))
        explanations = long[["account_id", "feature", "component", "value", "contribution"]]
        if hasattr(explain, "driver_sentences"):
            found = explain.driver_sentences(model, X, fpoints)
            drivers = pd.DataFrame({c: pd.Series([None] * len(out_frame), dtype="object") for c in found.columns})
            for c in found.columns:
                drivers.loc[scored, c] = found[c].to_numpy()
    out_frame["band"] = band_of(out_frame["score"], config)
    out_frame = pd.concat([out_frame, drivers], axis=1)
    out_frame["model_version"] = loaded.version
    published = od.publish({"scores.parquet": out_frame, "scores.csv": out_frame,
                            "explanations.parquet": explanations.reset_index(drop=True)},
                           as_of=None, info={"model_version": loaded.version, "model_uri": uri,
                                             "table": str(table), "accounts": int(len(out_frame))})
    paths = {name: od.root / name for name in published.files}
    return TableScoreOutcome(scores=out_frame, explanations=explanations.reset_index(drop=True), paths=paths,
                             model_version=loaded.version, report=report)
