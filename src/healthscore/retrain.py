"""Champion/challenger: train a challenger, compare both on the newest renewals, promote only if no worse.

The newest ``retrain.holdout_share`` of the renewals decided before as-of (by renewal date, whole
contracts, ties kept together) are held out from the challenger's training, calibration and test. The
champion and the challenger then predict those renewals from point-in-time features at every lead
time, and the gate compares the calibrated probability — the model alone, never the adjusted score
(CONTRACT §4) — on log loss, Brier and ROC AUC. The challenger is promoted iff it is no worse than the
champion by more than the configured margin on each. ``retrain`` exits 0 either way: the decision is a
result, recorded as tags ``decision`` and ``reason`` on the challenger's model version and in an HTML
comparison report logged with the run.

The champion cannot be untrained: when it was trained on renewals that fall in the holdout (its
``trained_as_of`` is later than the holdout's first renewal), the comparison favours it, so a promotion
is still safe but a "kept" may be unfair; the report says so.
"""

from __future__ import annotations

import dataclasses
import getpass
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from healthscore.config import Config, FeaturesConfig, RetrainConfig
from healthscore.errors import HealthscoreError, ModelMismatchError

PROMOTED = "promoted"
KEPT = "kept"
#: (metric, which direction is better, the RetrainConfig field holding its margin, label for people)
GATE_METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("log_loss", "lower", "log_loss_margin", "log loss"),
    ("brier", "lower", "brier_margin", "Brier score"),
    ("roc_auc", "higher", "auc_margin", "ROC AUC"),
)


@dataclass
class GateResult:
    """The gate's verdict: decision, one reason per metric, and the table behind them."""

    decision: str
    reasons: list[str]
    table: pd.DataFrame


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


def gate(champion: dict[str, float], challenger: dict[str, float], config: RetrainConfig) -> GateResult:
    """Promote iff the challenger is no worse than the champion by more than each metric's margin.

    A metric that cannot be computed on the holdout (AUC when only one outcome occurs) is not judged,
    and the reason says so; every other metric must pass.
    """
    rows, reasons = [], []
    for metric, better, margin_field, label in GATE_METRICS:
        margin = float(getattr(config, margin_field))
        a, b = float(champion.get(metric, math.nan)), float(challenger.get(metric, math.nan))
        worse_by = (b - a) if better == "lower" else (a - b)  # > 0: challenger worse
        if math.isnan(a) or math.isnan(b):
            verdict = "not judged"
            reasons.append(f"{label}: not judged (undefined on the holdout)")
        else:
            verdict = "pass" if worse_by <= margin + 1e-12 else "fail"
            how = f"worse by {worse_by:.4f}" if worse_by > 0 else f"better by {-worse_by:.4f}"
            reasons.append(
                f"{label}: challenger {b:.4f} vs champion {a:.4f}, {how} "
                f"(may be worse by at most {margin:.4f}) — {verdict}"
            )
        rows.append({"metric": metric, "better": better, "champion": a, "challenger": b,
                     "difference": b - a, "margin": margin, "verdict": verdict})
    table = pd.DataFrame(rows)
    decision = KEPT if (table["verdict"] == "fail").any() else PROMOTED
    return GateResult(decision=decision, reasons=reasons, table=table)


def holdout_mask(rows: pd.DataFrame, share: float) -> np.ndarray:
    """True for rows of the newest ``share`` of decided contracts by renewal date (ties kept together)."""
    if not 0 < share < 1:
        raise HealthscoreError(f"retrain.holdout_share must be between 0 and 1, found {share}")
    per_contract = rows.drop_duplicates("contract_id")[["contract_id", "renewal_date"]]
    n_hold = max(1, math.ceil(len(per_contract) * share))
    ordered = pd.to_datetime(per_contract["renewal_date"]).sort_values(ascending=False, kind="stable")
    first_held = ordered.iloc[n_hold - 1]
    return (pd.to_datetime(rows["renewal_date"]) >= first_held).to_numpy()


def subset(ts, mask: np.ndarray):
    """The same TrainingSet restricted to the rows where ``mask`` is True (positional)."""
    mask = np.asarray(mask, dtype=bool)
    return dataclasses.replace(
        ts,
        features=ts.features[mask].reset_index(drop=True),
        label=np.asarray(ts.label)[mask],
        rows=ts.rows[mask].reset_index(drop=True),
        part=None if ts.part is None else pd.Series(np.asarray(ts.part)[mask]),
        truth=None if ts.truth is None else pd.Series(np.asarray(ts.truth)[mask]),
    )


def shuffle_labels(ts, *, seed: int):
    """A copy of the training set with its outcomes permuted (seeded): a deliberately worse challenger."""
    rng = np.random.default_rng(seed)
    return dataclasses.replace(ts, label=rng.permutation(np.asarray(ts.label)))


def features_config_of(model, fallback: FeaturesConfig) -> FeaturesConfig:
    """The feature settings a model was trained with (stored in its metadata), else ``fallback``."""
    stored = (getattr(model, "metadata", {}) or {}).get("features_config")
    if not stored:
        return fallback
    return FeaturesConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()})


def data_end(ds) -> date:
    """The day after the latest event or contract start in the dataset: "now" for a dataset without --as-of."""
    stamps = []
    for table, column in (("contracts", "start_date"), ("usage_events", "ts"), ("tickets", "opened_at"),
                          ("touchpoints", "ts"), ("surveys", "responded_at"), ("invoices", "issued_at")):
        span = ds.time_range(table, column)  # event-sized tables: from validation, never read into pandas
        if span is not None and span[1] is not None:
            stamps.append(pd.Timestamp(span[1]))
    stamps = [s for s in stamps if pd.notna(s)]
    if not stamps:
        raise HealthscoreError("the dataset has no dated rows; pass --as-of")
    return (max(stamps).normalize() + pd.Timedelta(days=1)).date()


def batch_drift(ds, as_of: date, model, config: Config) -> pd.DataFrame | None:
    """PSI of the batch scored as of ``as_of`` against the model's training rows (None if nothing is active)."""
    from healthscore.drift import psi_table
    from healthscore.features import build_features
    from healthscore.timeline import scoring_rows

    rows = scoring_rows(ds, as_of)
    scored = (rows["status"] == "scored").to_numpy()
    if not scored.any():
        return None
    feats = build_features(ds, rows, config=features_config_of(model, config.features))
    X = model.prepare(feats[scored])
    return psi_table(model, X, probability=model.predict_proba(X), config=config.drift)


def seen_until(model) -> pd.Timestamp | None:
    """The model learned only from renewals before this date (None: from every renewal in its data).

    ``train --as-of T`` learns from renewals decided before T; a retrained challenger also never saw its
    holdout (renewals from ``holdout_from`` on): the earlier of the two bounds.
    """
    metadata = getattr(model, "metadata", {}) or {}
    bounds = []
    for key in ("trained_as_of", "holdout_from"):
        value = metadata.get(key)
        if value and value != "all decided":
            try:
                bounds.append(pd.Timestamp(value))
            except (TypeError, ValueError):
                continue
    return min(bounds) if bounds else None


def retrain_job(
    data: str | Path,
    *,
    config: Config,
    as_of: date | None = None,
    model_name: str | None = None,
    config_path: str | Path | None = None,
    shuffle_labels_seed: int | None = None,
) -> RetrainOutcome:
    """Train a challenger without the newest renewals, compare it with the champion on them, apply the gate.

    ``shuffle_labels_seed`` permutes the challenger's training outcomes: only for proving the gate keeps a
    worse model out (the run and the version are tagged ``shuffled_labels``).
    """
    from healthscore import tracking
    from healthscore.io import load_dataset
    from healthscore.model.evaluate import binary_metrics, evaluate_predictions
    from healthscore.model.train import fit_health_model, refit, rows_text, training_set_from_dataset
    from healthscore.pipelines import read_truth, summary_metrics, write_training_artifacts
    from healthscore.reports.retrain import render_retrain_report

    model_name = model_name or config.tracking.model_name
    tracking.connect()  # fail fast, before any work, when the server is unreachable
    champion_version = tracking.alias_version(model_name, tracking.CHAMPION)
    champion = tracking.load_model(f"models:/{model_name}@{tracking.CHAMPION}") if champion_version else None

    ds = load_dataset(data)
    ts = training_set_from_dataset(ds, config=config, as_of=as_of, truth=read_truth(data))
    held = holdout_mask(ts.rows, config.retrain.holdout_share)
    hold_rows = ts.rows[held].reset_index(drop=True)
    y_hold = np.asarray(ts.label)[held].astype(int)
    holdout = {
        "rows": int(held.sum()),
        "contracts": int(hold_rows["contract_id"].nunique()),
        "churned_contracts": int(hold_rows.loc[y_hold == 0, "contract_id"].nunique()),
        "renewals_from": str(pd.to_datetime(hold_rows["renewal_date"]).min().date()),
        "renewals_to": str(pd.to_datetime(hold_rows["renewal_date"]).max().date()),
        "training_contracts": int(ts.rows.loc[~held, "contract_id"].nunique()),
    }
    train_set = subset(ts, ~held)
    if shuffle_labels_seed is not None:
        train_set = shuffle_labels(train_set, seed=shuffle_labels_seed)
    result = fit_health_model(train_set, config=config)
    challenger = result.model
    challenger.metadata.update({
        "data_fingerprint": ds.fingerprint,
        "trained_as_of": str(as_of) if as_of else "all decided",
        "holdout_from": holdout["renewals_from"],
        "model_name": model_name,
        "features_config": dataclasses.asdict(ts.features_config or config.features),
        "lead_times_days": list(config.timeline.lead_times_days),
    })
    if shuffle_labels_seed is not None:
        challenger.metadata["shuffled_labels_seed"] = shuffle_labels_seed

    # --- both models on the same held-out renewals ---------------------------------------------------
    hold_feats = ts.features[held].reset_index(drop=True)
    preds = {"challenger": challenger.predict_proba(challenger.prepare(hold_feats))}
    notes: list[str] = []
    champion_problem = None
    if champion is not None:
        fcfg = features_config_of(champion.model, config.features)
        try:
            if fcfg != (ts.features_config or config.features):
                from healthscore.features import build_features

                champ_feats = build_features(ds, hold_rows, config=fcfg).reset_index(drop=True)
            else:
                champ_feats = hold_feats
            preds["champion"] = champion.model.predict_proba(champion.model.prepare(champ_feats))
        except ModelMismatchError as exc:
            champion_problem = str(exc)
        seen = seen_until(champion.model)
        hold_first = pd.Timestamp(holdout["renewals_from"])
        if champion_problem is None and (seen is None or seen > hold_first):
            notes.append(
                f"the champion (version {champion_version}) was trained on renewals decided before "
                f"{seen.date() if seen is not None else 'the end of its data'}, which overlaps the holdout "
                f"(from {holdout['renewals_from']}): the comparison favours the champion"
            )
    if shuffle_labels_seed is not None:
        notes.append(f"the challenger was trained on shuffled outcomes (seed {shuffle_labels_seed}), on purpose")

    metrics = {name: binary_metrics(y_hold, p) for name, p in preds.items()}
    if champion is None:
        decision, reasons = PROMOTED, ["no champion is registered yet: the first model becomes champion"]
        comparison = _single_table(metrics["challenger"])
    elif champion_problem is not None:
        decision = KEPT
        reasons = [f"the champion cannot score this data ({champion_problem}); compare by hand and use "
                   "`healthscore promote` if the challenger should replace it"]
        comparison = _single_table(metrics["challenger"])
    else:
        verdict = gate(metrics["champion"], metrics["challenger"], config.retrain)
        decision, reasons, comparison = verdict.decision, verdict.reasons, verdict.table
    n_text = f"{holdout['contracts']} held-out renewals ({holdout['renewals_from']} to {holdout['renewals_to']})"
    if decision == PROMOTED:
        reason = f"promoted: no worse than champion {champion_version} beyond the margins on {n_text}" \
            if champion is not None and champion_problem is None else f"promoted: {reasons[0]}"
    else:
        failed = [r.split(":")[0] for r in reasons if r.endswith("fail")]
        reason = (f"kept: worse than champion {champion_version} on {', '.join(failed)} beyond the margins "
                  f"on {n_text}") if failed else f"kept: {reasons[0]}"

    groups = {g: hold_rows[g].astype(str) for g in ("lead_time_days", "segment") if g in hold_rows}
    holdout_evaluation = evaluate_predictions(y_hold, preds, groups)

    drift_as_of = as_of or data_end(ds)
    drift_model = champion.model if champion is not None and champion_problem is None else challenger
    try:
        drift = batch_drift(ds, drift_as_of, drift_model, config)
    except ModelMismatchError:
        drift = None

    # --- log, register, decide ---------------------------------------------------------------------
    run_name = f"retrain-{as_of or 'all'}"
    with tracking.run(experiment=config.tracking.experiment, run_name=run_name) as active, \
            tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        params = {
            **{f"lgbm.{k}": v for k, v in result.params.items()},
            "as_of": str(as_of) if as_of else "all decided",
            "holdout_share": config.retrain.holdout_share,
            "log_loss_margin": config.retrain.log_loss_margin,
            "brier_margin": config.retrain.brier_margin,
            "auc_margin": config.retrain.auc_margin,
            "calibration_method": challenger.calibrator.method_,
            **{f"holdout_{k}": v for k, v in holdout.items()},
            **dict(result.sizes.items()),
        }
        tags = {
            "job": "retrain", "decision": decision, "champion_version": champion_version or "",
            "data_fingerprint": ds.fingerprint, "git_commit": tracking.git_commit(), "data_source": str(data),
        }
        if shuffle_labels_seed is not None:
            tags["shuffled_labels"] = str(shuffle_labels_seed)
        flat = {f"holdout.{name}.{k}": v for name, m in metrics.items() for k, v in m.items()}
        tracking.log_params_metrics(params, {**summary_metrics(result), **flat}, tags)
        tracking.log_dict(config.to_dict(), "config/resolved_config.json")
        if config_path:
            tracking.log_artifact(config_path, "config")
        for path in write_training_artifacts(result, tmpdir / "evaluation").values():
            tracking.log_artifact(path, "evaluation")
        example = train_set.features.iloc[:5].reset_index(drop=True)
        registered = challenger
        if decision == PROMOTED and config.model.refit:
            # judged without the holdout; once promoted, the same settings learn from it too (the newest
            # renewals are the most informative), so the champion that scores accounts saw every renewal
            full = ts if shuffle_labels_seed is None else shuffle_labels(ts, seed=shuffle_labels_seed)
            registered = refit(full, challenger, config=config)
            registered.metadata.update({
                "data_fingerprint": ds.fingerprint,
                "trained_as_of": str(as_of) if as_of else "all decided",
                "model_name": model_name,
                "features_config": dataclasses.asdict(ts.features_config or config.features),
                "lead_times_days": list(config.timeline.lead_times_days),
                "metrics_from": {"holdout": f"{holdout['renewals_from']}..{holdout['renewals_to']}",
                                 "rows": holdout["rows"], "contracts": holdout["contracts"]},
                "judged_model": {"form": challenger.form,
                                 "learned_from": challenger.metadata.get("learned_from")},
            })
            if shuffle_labels_seed is not None:
                registered.metadata["shuffled_labels_seed"] = shuffle_labels_seed
        version, _alias = tracking.log_model(registered, input_example=example, model_name=model_name)

        report_html = render_retrain_report(
            model_name=model_name, decision=decision, reason=reason, reasons=reasons, notes=notes,
            champion_version=champion_version, challenger_version=version, comparison=comparison,
            holdout=holdout, holdout_evaluation=holdout_evaluation, y=y_hold, preds=preds, drift=drift,
            drift_as_of=drift_as_of, component_weights=result.component_weights, as_of=as_of,
        )
        out = tmpdir / "retrain"
        out.mkdir()
        (out / "retrain_report.html").write_text(report_html, encoding="utf-8")
        comparison.to_csv(out / "comparison.csv", index=False)
        holdout_evaluation.to_csv(out / "holdout_evaluation.csv", index=False)
        if drift is not None:
            drift.to_csv(out / "drift.csv", index=False)
        for path in sorted(out.iterdir()):
            tracking.log_artifact(path, "retrain")

        version_tags = {"decision": decision, "reason": reason, "job": "retrain",
                        "champion_at_decision": champion_version or "",
                        "holdout": f"{holdout['renewals_from']}..{holdout['renewals_to']}",
                        "learned_from": rows_text(registered.metadata.get("learned_from")),
                        "refit_including_holdout": str(registered is not challenger).lower()}
        if shuffle_labels_seed is not None:
            version_tags["shuffled_labels"] = str(shuffle_labels_seed)
        tracking.set_version_tags(model_name, version, version_tags)
        if decision == PROMOTED and champion_version is not None and champion_version != version:
            tracking.set_alias(model_name, tracking.CHAMPION, version)
            tracking.set_version_tags(model_name, champion_version,
                                      {"replaced_by": version, "replaced_reason": reason})
        run_id = active.info.run_id
    return RetrainOutcome(
        decision=decision, reason=reason, reasons=reasons, notes=notes, version=version,
        champion_version=champion_version, model_name=model_name, run_id=run_id, comparison=comparison,
        holdout=holdout, holdout_evaluation=holdout_evaluation, drift=drift, report_html=report_html,
        result=result, drift_as_of=drift_as_of,
    )


def _single_table(m: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"metric": k, "better": b, "champion": math.nan, "challenger": float(m[k]),
                          "difference": math.nan, "margin": math.nan, "verdict": "not judged"}
                         for k, b, _, _ in GATE_METRICS])


def promote_job(version: str, reason: str, *, config: Config, model_name: str | None = None) -> PromoteOutcome:
    """Point ``champion`` at a version by a person's decision, recorded as tags on both versions."""
    from healthscore import tracking

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
