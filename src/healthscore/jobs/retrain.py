"""``retrain`` and ``promote``: champion/challenger, and a person's recorded override of the alias.

``retrain`` trains a challenger without the newest renewals, compares it with the champion on them
(``model.gate``) and promotes it only if it is no worse. It exits 0 either way: the decision is a result,
recorded as tags ``decision`` and ``reason`` on the challenger's model version and in an HTML comparison
report logged with the run. Once promoted (``model.refit``), the registered champion is the same settings
refit including the holdout, so the model that scores accounts saw every renewal.

The champion cannot be untrained: when it was trained on renewals that fall in the holdout (its
``trained_as_of`` is later than the holdout's first renewal), the comparison favours it, so a promotion
is still safe but a "kept" may be unfair; the report says so.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from healthscore import tracking
from healthscore.config import Config
from healthscore.errors import HealthscoreError, ModelMismatchError
from healthscore.features import build_features
from healthscore.io.write import copy_file_atomic
from healthscore.jobs._side_by_side import side_by_side
from healthscore.jobs.train import summary_metrics, training_rows, write_training_artifacts
from healthscore.model.card import ModelCard, account_hashes, as_of_text, features_config_of, seen_until
from healthscore.model.evaluate import binary_metrics, evaluate_predictions
from healthscore.model.gate import (
    KEPT,
    PROMOTED,
    challenger_only_table,
    gate,
    holdout_mask,
    shuffle_labels,
    subset,
)
from healthscore.model.train import TrainResult, fit_health_model, refit, rows_text
from healthscore.reports.progress import NO_PROGRESS, Progress
from healthscore.reports.retrain import render_retrain_report
from healthscore.scoring import batch_drift
from healthscore.timeline import data_end


@dataclass
class RetrainOutcome:
    decision: str
    reason: str
    reasons: list[str]
    notes: list[str]
    version: str
    champion_version: str | None
    model_name: str
    run_id: str
    comparison: pd.DataFrame
    holdout: dict[str, Any]
    holdout_evaluation: pd.DataFrame
    drift: pd.DataFrame | None
    report_html: str
    result: Any  # model.train.TrainResult of the challenger
    drift_as_of: date | None = None


@dataclass
class PromoteOutcome:
    version: str
    previous: str | None
    changed: bool
    model_name: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class _Comparison:
    """Both models on the holdout, and the gate's decision."""

    preds: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]]
    decision: str
    reason: str
    reasons: list[str]
    notes: list[str]
    table: pd.DataFrame
    champion_usable: bool


def _holdout_summary(ts, held: np.ndarray) -> dict[str, Any]:
    hold_rows = ts.rows[held].reset_index(drop=True)
    y_hold = np.asarray(ts.label)[held].astype(int)
    return {
        "rows": int(held.sum()),
        "contracts": int(hold_rows["contract_id"].nunique()),
        "churned_contracts": int(hold_rows.loc[y_hold == 0, "contract_id"].nunique()),
        "renewals_from": str(pd.to_datetime(hold_rows["renewal_date"]).min().date()),
        "renewals_to": str(pd.to_datetime(hold_rows["renewal_date"]).max().date()),
        "training_contracts": int(ts.rows.loc[~held, "contract_id"].nunique()),
    }


def _champion_predictions(champion, ds, ts, held, hold_feats, config) -> tuple[np.ndarray | None, str | None]:
    """The champion's probabilities on the holdout (rebuilt with its own feature settings), or why it can't."""
    fcfg = features_config_of(champion.model, config.features)
    try:
        if fcfg != (ts.features_config or config.features):
            feats = build_features(ds, ts.rows[held].reset_index(drop=True), config=fcfg).reset_index(drop=True)
        else:
            feats = hold_feats
        return champion.model.predict_proba(champion.model.prepare(feats)), None
    except ModelMismatchError as exc:
        return None, str(exc)


def _compare(champion, champion_version, challenger, ds, ts, held, holdout, config, shuffled) -> _Comparison:
    """Both models predict the held-out renewals; the gate decides (the first model is promoted)."""
    y_hold = np.asarray(ts.label)[held].astype(int)
    hold_feats = ts.features[held].reset_index(drop=True)
    preds = {"challenger": challenger.predict_proba(challenger.prepare(hold_feats))}
    notes: list[str] = []
    problem = None
    if champion is not None:
        p, problem = _champion_predictions(champion, ds, ts, held, hold_feats, config)
        if p is not None:
            preds["champion"] = p
        seen = seen_until(champion.model)
        if problem is None and (seen is None or seen > pd.Timestamp(holdout["renewals_from"])):
            notes.append(
                f"the champion (version {champion_version}) was trained on renewals decided before "
                f"{seen.date() if seen is not None else 'the end of its data'}, which overlaps the holdout "
                f"(from {holdout['renewals_from']}): the comparison favours the champion"
            )
    if shuffled is not None:
        notes.append(f"the challenger was trained on shuffled outcomes (seed {shuffled}), on purpose")
    metrics = {name: binary_metrics(y_hold, p) for name, p in preds.items()}
    if champion is None:
        decision, reasons = PROMOTED, ["no champion is registered yet: the first model becomes champion"]
        table = challenger_only_table(metrics["challenger"])
    elif problem is not None:
        decision = KEPT
        reasons = [f"the champion cannot score this data ({problem}); compare by hand and use "
                   "`healthscore promote` if the challenger should replace it"]
        table = challenger_only_table(metrics["challenger"])
    else:
        verdict = gate(metrics["champion"], metrics["challenger"], config.retrain)
        decision, reasons, table = verdict.decision, verdict.reasons, verdict.table
    judged = champion is not None and problem is None
    n_text = f"{holdout['contracts']} held-out renewals ({holdout['renewals_from']} to {holdout['renewals_to']})"
    if decision == PROMOTED:
        reason = (f"promoted: no worse than champion {champion_version} beyond the margins on {n_text}"
                  if judged else f"promoted: {reasons[0]}")
    else:
        failed = [r.split(":")[0] for r in reasons if r.endswith("fail")]
        reason = (f"kept: worse than champion {champion_version} on {', '.join(failed)} beyond the margins "
                  f"on {n_text}") if failed else f"kept: {reasons[0]}"
    return _Comparison(preds=preds, metrics=metrics, decision=decision, reason=reason, reasons=reasons,
                       notes=notes, table=table, champion_usable=judged)


def _registered_model(challenger, ts, holdout, card: ModelCard, config: Config, *, promoted: bool, shuffled):
    """The model to register: the challenger as judged, or, once promoted, the same settings refit on every row."""
    if not (promoted and config.model.refit):
        return challenger
    # judged without the holdout; once promoted, the same settings learn from it too (the newest
    # renewals are the most informative), so the champion that scores accounts saw every renewal
    full = ts if shuffled is None else shuffle_labels(ts, seed=shuffled)
    registered = refit(full, challenger, config=config)
    card.stamp(registered)
    registered.metadata.update({
        "metrics_from": {"holdout": f"{holdout['renewals_from']}..{holdout['renewals_to']}",
                         "rows": holdout["rows"], "contracts": holdout["contracts"]},
        "judged_model": {"form": challenger.form, "learned_from": challenger.metadata.get("learned_from")},
    })
    return registered


def _run_record(result: TrainResult, challenger, cmp: _Comparison, holdout, config: Config, *, as_of, ds, data,
                champion_version, shuffled, config_path, tmpdir: Path) -> tracking.RunRecord:
    params = {
        **{f"lgbm.{k}": v for k, v in result.params.items()},
        "as_of": as_of_text(as_of),
        "holdout_share": config.retrain.holdout_share,
        "log_loss_margin": config.retrain.log_loss_margin,
        "brier_margin": config.retrain.brier_margin,
        "auc_margin": config.retrain.auc_margin,
        "calibration_method": challenger.calibrator.method_,
        **{f"holdout_{k}": v for k, v in holdout.items()},
        **dict(result.sizes.items()),
    }
    tags = {"job": "retrain", "decision": cmp.decision, "champion_version": champion_version or "",
            "data_fingerprint": ds.fingerprint, "git_commit": tracking.git_commit(), "data_source": str(data)}
    if shuffled is not None:
        tags["shuffled_labels"] = str(shuffled)
    flat = {f"holdout.{name}.{k}": v for name, m in cmp.metrics.items() for k, v in m.items()}
    return tracking.RunRecord(
        experiment=config.tracking.experiment, run_name=f"retrain-{as_of or 'all'}", params=params,
        metrics={**summary_metrics(result), **flat}, tags=tags,
        dicts={"config/resolved_config.json": config.to_dict()},
        files={**({"config": [Path(config_path)]} if config_path else {}),
               "evaluation": list(write_training_artifacts(result, tmpdir / "evaluation").values())},
    )


def _report_files(report_html: str, cmp: _Comparison, holdout_evaluation, drift, out: Path) -> list[Path]:
    out.mkdir()
    (out / "retrain_report.html").write_text(report_html, encoding="utf-8")
    cmp.table.to_csv(out / "comparison.csv", index=False)
    holdout_evaluation.to_csv(out / "holdout_evaluation.csv", index=False)
    if drift is not None:
        drift.to_csv(out / "drift.csv", index=False)
    return sorted(out.iterdir())


def _record_decision(model_name, version, champion_version, cmp: _Comparison, holdout, registered, challenger,
                     shuffled) -> None:
    """Tags on the new version (and the replaced champion); the alias moves only on a promotion."""
    version_tags = {"decision": cmp.decision, "reason": cmp.reason, "job": "retrain",
                    "champion_at_decision": champion_version or "",
                    "holdout": f"{holdout['renewals_from']}..{holdout['renewals_to']}",
                    "learned_from": rows_text(registered.metadata.get("learned_from")),
                    "refit_including_holdout": str(registered is not challenger).lower()}
    if shuffled is not None:
        version_tags["shuffled_labels"] = str(shuffled)
    tracking.set_version_tags(model_name, version, version_tags)
    if cmp.decision == PROMOTED and champion_version is not None and champion_version != version:
        tracking.set_alias(model_name, tracking.CHAMPION, version)
        tracking.set_version_tags(model_name, champion_version,
                                  {"replaced_by": version, "replaced_reason": cmp.reason})
    if cmp.decision == PROMOTED:
        # the promoted version is champion now: @challenger would only name it twice (docs/config.md)
        tracking.remove_alias_if(model_name, tracking.CHALLENGER, version)


def _champion_now(model_name: str):
    """(the champion's version, its loaded model), or (None, None) when there is none yet."""
    tracking.connect()  # fail fast, before any work is lost, when the server is unreachable
    version = tracking.alias_version(model_name, tracking.CHAMPION)
    return version, tracking.load_model(f"models:/{model_name}@{tracking.CHAMPION}") if version else None


def retrain_job(
    data: str | Path,
    *,
    config: Config,
    as_of: date | None = None,
    model_name: str | None = None,
    config_path: str | Path | None = None,
    shuffle_labels_seed: int | None = None,
    out: str | Path | None = None,
    progress: Progress = NO_PROGRESS,
) -> RetrainOutcome:
    """Train a challenger without the newest renewals, compare it with the champion on them, apply the gate.

    ``shuffle_labels_seed`` permutes the challenger's training outcomes: only for proving the gate keeps a
    worse model out (the run and the version are tagged ``shuffled_labels``). With ``out`` the comparison
    report and its tables are also written there (they are always logged with the run).
    """
    shuffled = shuffle_labels_seed
    model_name = model_name or config.tracking.model_name
    with progress.step(f"loading data from {data} and building training rows and point-in-time features"):
        # the champion is loaded from the store here while the data loads on a thread of its own
        (champion_version, champion), (ds, ts) = side_by_side(
            lambda: _champion_now(model_name), lambda: training_rows(data, config=config, as_of=as_of))
    held = holdout_mask(ts.rows, config.retrain.holdout_share)
    holdout = _holdout_summary(ts, held)
    train_set = subset(ts, ~held) if shuffled is None else shuffle_labels(subset(ts, ~held), seed=shuffled)
    with progress.step(f"fitting the challenger on {int((~held).sum()):,} rows (the newest {holdout['contracts']:,} "
                       "contracts held out)"):
        result = fit_health_model(train_set, config=config)
    challenger = result.model
    card = ModelCard(model_name=model_name, data_fingerprint=ds.fingerprint, trained_as_of=as_of,
                     features_config=ts.features_config or config.features,
                     lead_times_days=tuple(config.timeline.lead_times_days), shuffled_labels_seed=shuffled,
                     training_accounts=account_hashes(ts.rows["account_id"]))
    dataclasses.replace(card, holdout_from=holdout["renewals_from"]).stamp(challenger)

    with progress.step("champion and challenger on the held-out renewals"):
        cmp = _compare(champion, champion_version, challenger, ds, ts, held, holdout, config, shuffled)
    hold_rows = ts.rows[held].reset_index(drop=True)
    y_hold = np.asarray(ts.label)[held].astype(int)
    groups = {g: hold_rows[g].astype(str) for g in ("lead_time_days", "segment") if g in hold_rows}
    holdout_evaluation = evaluate_predictions(y_hold, cmp.preds, groups)
    drift_as_of = as_of or data_end(ds)
    try:
        drift = batch_drift(ds, drift_as_of, champion.model if cmp.champion_usable else challenger, config)
    except ModelMismatchError:
        drift = None

    with progress.step("registering, logging the comparison to MLflow"), tempfile.TemporaryDirectory() as tmp:
        registered = _registered_model(challenger, ts, holdout, card, config, promoted=cmp.decision == PROMOTED,
                                       shuffled=shuffled)
        record = _run_record(result, challenger, cmp, holdout, config, as_of=as_of, ds=ds, data=data,
                             champion_version=champion_version, shuffled=shuffled, config_path=config_path,
                             tmpdir=Path(tmp))
        logged = tracking.log_run(record, model=registered, input_example=train_set.features.iloc[:5]
                                  .reset_index(drop=True), model_name=model_name, config=config)
        report_html = render_retrain_report(
            model_name=model_name, decision=cmp.decision, reason=cmp.reason, reasons=cmp.reasons, notes=cmp.notes,
            champion_version=champion_version, challenger_version=logged.version, comparison=cmp.table,
            holdout=holdout, holdout_evaluation=holdout_evaluation, y=y_hold, preds=cmp.preds, drift=drift,
            drift_as_of=drift_as_of, component_weights=result.component_weights, as_of=as_of,
        )
        files = _report_files(report_html, cmp, holdout_evaluation, drift, Path(tmp) / "retrain")
        tracking.log_files(logged.run_id, "retrain", files)
        if out is not None:
            for path in files:
                copy_file_atomic(path, Path(out) / path.name)
        _record_decision(model_name, logged.version, champion_version, cmp, holdout, registered, challenger,
                         shuffled)
    return RetrainOutcome(
        decision=cmp.decision, reason=cmp.reason, reasons=cmp.reasons, notes=cmp.notes, version=logged.version,
        champion_version=champion_version, model_name=model_name, run_id=logged.run_id, comparison=cmp.table,
        holdout=holdout, holdout_evaluation=holdout_evaluation, drift=drift, report_html=report_html,
        result=result, drift_as_of=drift_as_of,
    )


def promote_job(version: str, reason: str, *, config: Config, model_name: str | None = None) -> PromoteOutcome:
    """Point ``champion`` at a version by a person's decision, recorded as tags on both versions."""
    model_name = model_name or config.tracking.model_name
    if not reason or not reason.strip():
        raise HealthscoreError("--reason must say why this version should be champion (it is recorded)")
    if not str(version).strip().isdigit():
        raise HealthscoreError(f"VERSION must be a model version number like 3, found {version!r}")
    version = str(int(str(version).strip()))
    tracking.connect()
    tracking.model_version_tags(model_name, version)  # raises, naming existing versions, when absent
    previous = tracking.alias_version(model_name, tracking.CHAMPION)
    if previous == version:
        return PromoteOutcome(version=version, previous=previous, changed=False, model_name=model_name)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    who = _user()
    tags = {"promoted_by_override": "true", "override_reason": reason.strip(), "override_at": when,
            "override_by": who, "previous_champion": previous or ""}
    tracking.set_alias(model_name, tracking.CHAMPION, version)
    tracking.set_version_tags(model_name, version, tags)
    if previous is not None:
        tracking.set_version_tags(model_name, previous, {
            "replaced_by": version,
            "replaced_reason": f"override by {who} at {when}: {reason.strip()}",
        })
    return PromoteOutcome(version=version, previous=previous, changed=True, model_name=model_name, tags=tags)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return os.environ.get("USER", "unknown")
