"""Adjustments: CSM judgement (the ``adjustments`` table) and config rules, each with its reason, added to the
model score — never overwriting it (CONTRACT §4)."""

from __future__ import annotations

import operator
from datetime import date

import numpy as np
import pandas as pd

from healthscore.config import Config

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}


def active_adjustments(ds, as_of: date, config: Config) -> pd.DataFrame:
    """CSM adjustments active at ``as_of``: created before it and not yet expired (default expiry from config)."""
    adj = ds.adjustments
    if adj is None or adj.empty:
        return pd.DataFrame(columns=["account_id", "points", "reason"])
    T = pd.Timestamp(as_of)
    expires = adj["expires_at"].where(
        adj["expires_at"].notna(), adj["created_at"].dt.normalize() + pd.Timedelta(days=config.adjustments.default_expiry_days)
    )
    active = adj[(adj["created_at"] < T) & (expires > T)].copy()
    author = active["author"].astype("object") if "author" in active else pd.Series(None, index=active.index)
    active["reason"] = [
        f"{r} ({a})" if isinstance(a, str) and a else str(r) for r, a in zip(active["reason"], author)
    ]
    return active.sort_values(["account_id", "created_at", "reason"], kind="stable")[["account_id", "points", "reason"]]


def rule_adjustments(rows: pd.DataFrame, feats: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Points from config rules (default: no EBR in 6 months for mid_market/enterprise → −10)."""
    out = []
    for rule in config.adjustments.rules:
        if rule.feature not in feats.columns:
            continue
        values = pd.to_numeric(feats[rule.feature], errors="coerce")
        hit = _OPS[rule.op](values, rule.value).fillna(False).to_numpy(dtype=bool, copy=True)
        if rule.missing_is_true:
            hit |= values.isna().to_numpy()
        if rule.segments:
            hit &= rows["segment"].astype(str).isin(rule.segments).to_numpy()
        hit &= (rows["status"] == "scored").to_numpy()
        for acc in rows.loc[hit, "account_id"]:
            out.append({"account_id": acc, "points": float(rule.points), "reason": rule.reason})
    return pd.DataFrame(out, columns=["account_id", "points", "reason"])


def apply_adjustments(out: pd.DataFrame, ds, feats: pd.DataFrame, as_of: date, config: Config) -> pd.DataFrame:
    """``adjustment``, ``adjustment_reasons`` and the final ``score`` (model score plus adjustments, 0–100)."""
    scored = (out["status"] == "scored").to_numpy()
    adj = pd.concat([active_adjustments(ds, as_of, config), rule_adjustments(out, feats, config)], ignore_index=True)
    adj = adj[adj["account_id"].isin(out.loc[scored, "account_id"])]
    # "reason: −10": the reason first, so a cell never starts with a sign a spreadsheet reads as a formula
    adj = adj.assign(text=[f"{t}: {p:+.0f}" for p, t in zip(adj["points"].astype(float), adj["reason"])])
    points = adj.groupby("account_id")["points"].sum()
    reasons = adj.groupby("account_id", sort=False)["text"].agg(" | ".join)
    out["adjustment"] = np.where(scored, out["account_id"].map(points).fillna(0.0), np.nan)
    out["adjustment_reasons"] = out["account_id"].map(reasons).where(scored)
    out["score"] = np.where(scored, np.clip(out["model_score"] + out["adjustment"], 0, 100), np.nan)
    return out
