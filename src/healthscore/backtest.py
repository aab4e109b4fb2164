"""How did the scores do against what happened? Point-in-time scores of past renewals vs their outcomes.

Every decided renewal is scored as of each configured lead time before it (default 30, 90 and 180 days),
from features computed as they were on that day (CONTRACT §2), by one or more model versions. The backtest
judges the model's calibrated ``probability`` and the band of the model score (``100 × probability``,
banded with the configured cut points); CSM adjustments are not part of it (CONTRACT §4).

A model has seen the renewals it was trained on: rows decided before its ``trained_as_of`` are marked
``in_sample`` and every table is also given on the out-of-sample rows alone, which is the honest part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from healthscore.config import BANDS, Config
from healthscore.errors import HealthscoreError
from healthscore.features import build_features
from healthscore.model.card import ALL_DECIDED, features_config_of, seen_until
from healthscore.model.evaluate import evaluate_predictions
from healthscore.scoring import band_of
from healthscore.timeline import training_rows


@dataclass
class BacktestResult:
    """The long predictions table and the summaries the report shows."""

    predictions: pd.DataFrame
    metrics: pd.DataFrame
    bands: pd.DataFrame
    healthy_churn: pd.DataFrame
    deciles: pd.DataFrame
    models: pd.DataFrame
    healthy_lead_days: int
    warnings: list[str] = field(default_factory=list)


def backtest_predictions(ds, models: list[Any], *, config: Config) -> pd.DataFrame:
    """One row per (model version, decided contract, lead time): the point-in-time probability, score and band.

    ``models`` are ``tracking.LoadedModel`` (anything with ``.model`` and ``.version``). Columns: the
    training-row context (account_id, contract_id, as_of, lead_time_days, renewal_date, segment, label),
    model_version, probability, model_score, band, in_sample.
    """
    if not models:
        raise HealthscoreError("no model to backtest: pass --model URI or register a champion first")
    rows = training_rows(ds, lead_times=config.timeline.lead_times_days)
    if rows.empty:
        raise HealthscoreError("no decided renewals to backtest: contracts.outcome is empty everywhere")
    feature_cache: dict[Any, pd.DataFrame] = {}
    frames = []
    for loaded in models:
        model = loaded.model
        fcfg = features_config_of(model, config.features)
        if fcfg not in feature_cache:
            feature_cache[fcfg] = build_features(ds, rows, config=fcfg).reset_index(drop=True)
        p = model.predict_proba(model.prepare(feature_cache[fcfg]))
        frame = rows.reset_index(drop=True).copy()
        frame["model_version"] = str(loaded.version)
        frame["probability"] = p
        frame["model_score"] = np.round(100.0 * p)
        frame["band"] = band_of(frame["model_score"], config).astype("object")
        seen = seen_until(model)
        renewal = pd.to_datetime(frame["renewal_date"])
        frame["in_sample"] = True if seen is None else (renewal < seen).to_numpy()
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out["label"] = out["label"].astype(int)
    return out


def _by_model(pred: pd.DataFrame):
    for version, frame in pred.groupby("model_version", sort=False):
        yield str(version), frame


def backtest_metrics(pred: pd.DataFrame) -> pd.DataFrame:
    """AUC, Brier, log loss, ECE, lift per model version: overall and per segment, lead time, quarter, sample."""
    out = []
    for version, frame in _by_model(pred):
        groups = {
            "segment": frame["segment"].astype(str).reset_index(drop=True),
            "lead_time_days": frame["lead_time_days"].astype(str).reset_index(drop=True),
            "renewal_quarter": pd.to_datetime(frame["renewal_date"]).dt.to_period("Q").astype(str)
            .reset_index(drop=True),
            "sample": pd.Series(np.where(frame["in_sample"], "in_sample", "out_of_sample")),
        }
        ev = evaluate_predictions(frame["label"].to_numpy(), {version: frame["probability"].to_numpy()}, groups)
        out.append(ev.rename(columns={"model": "model_version"}))
    return pd.concat(out, ignore_index=True)


def band_calibration(pred: pd.DataFrame) -> pd.DataFrame:
    """Per model version, sample (all / out_of_sample), lead time (and ``all``) and band: n, predicted, observed."""
    rows = []
    for version, frame in _by_model(pred):
        for sample, part in (("all", frame), ("out_of_sample", frame[~frame["in_sample"].astype(bool)])):
            leads = [("all", part)] + [(str(k), g) for k, g in part.groupby("lead_time_days", sort=True)]
            for lead, g in leads:
                for band in BANDS:
                    b = g[g["band"] == band]
                    rows.append({
                        "model_version": version, "sample": sample, "lead_time_days": lead, "band": band,
                        "n": len(b), "churned": int((b["label"] == 0).sum()),
                        "mean_predicted": float(b["probability"].mean()) if len(b) else np.nan,
                        "observed_renewal_rate": float(b["label"].mean()) if len(b) else np.nan,
                    })
    return pd.DataFrame(rows)


def healthy_before_churn(pred: pd.DataFrame, *, lead_days: int) -> pd.DataFrame:
    """Share of churned renewals whose model band was ``healthy`` ``lead_days`` before: overall and per segment."""
    rows = []
    for version, frame in _by_model(pred):
        churned = frame[(frame["label"] == 0) & (frame["lead_time_days"] == lead_days)]
        parts = [("all", "all", churned)] + [("segment", str(s), g) for s, g in churned.groupby("segment", sort=True)]
        for group, level, g in parts:
            healthy = int((g["band"] == "healthy").sum())
            rows.append({"model_version": version, "group": group, "level": level, "churned": len(g),
                         "healthy_before": healthy, "share": healthy / len(g) if len(g) else np.nan})
    return pd.DataFrame(rows)


def renewal_by_decile(pred: pd.DataFrame) -> pd.DataFrame:
    """Per model version, deciles of probability (1 = least likely to renew): n, mean predicted, renewal rate."""
    rows = []
    for version, frame in _by_model(pred):
        order = np.argsort(frame["probability"].to_numpy(), kind="stable")
        y = frame["label"].to_numpy()
        p = frame["probability"].to_numpy()
        for k, idx in enumerate(np.array_split(order, 10), start=1):
            if len(idx):
                rows.append({"model_version": version, "decile": k, "n": len(idx),
                             "mean_predicted": float(p[idx].mean()), "renewal_rate": float(y[idx].mean())})
    return pd.DataFrame(rows)


def run_backtest(ds, models: list[Any], *, config: Config) -> BacktestResult:
    """Score past renewals point-in-time with each model and summarise them against what happened."""
    pred = backtest_predictions(ds, models, config=config)
    leads = sorted(set(int(v) for v in config.timeline.lead_times_days))
    lead = 90 if 90 in leads else leads[len(leads) // 2]
    warnings = []
    model_rows = []
    for loaded in models:
        seen = seen_until(loaded.model)
        part = pred[pred["model_version"] == str(loaded.version)]
        n_out = int((~part["in_sample"].astype(bool)).sum())
        model_rows.append({"model_version": str(loaded.version), "uri": loaded.uri,
                           "learned_before": str(seen.date()) if seen is not None else ALL_DECIDED,
                           "rows": len(part), "out_of_sample_rows": n_out})
        if n_out == 0:
            warnings.append(f"model version {loaded.version} was trained on every renewal scored here: its "
                            "backtest is in-sample and flatters it")
    return BacktestResult(
        predictions=pred,
        metrics=backtest_metrics(pred),
        bands=band_calibration(pred),
        healthy_churn=healthy_before_churn(pred, lead_days=lead),
        deciles=renewal_by_decile(pred),
        models=pd.DataFrame(model_rows),
        healthy_lead_days=lead,
        warnings=warnings,
    )
