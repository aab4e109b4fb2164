"""The book of business: peer percentiles and the rollup by segment, CSM and renewal quarter."""

from __future__ import annotations

import numpy as np
import pandas as pd

from healthscore.config import BANDS


def peer_percentile(scores: pd.DataFrame) -> pd.Series:
    """Percentile (0–100) of each scored account's score within its segment."""
    scored = scores["status"] == "scored"
    pct = scores.loc[scored].groupby("segment", observed=True)["score"].rank(pct=True, method="average") * 100
    return pct.reindex(scores.index).round(1)


def portfolio(scores: pd.DataFrame) -> pd.DataFrame:
    """Rollup by segment, CSM and renewal quarter: accounts, ARR, ARR-weighted score, ARR at risk.

    ARR at risk is given two ways, each named for what it reads: ``expected_arr_at_risk_model`` is the
    model's expectation, Σ ARR × (1 − probability); ``accounts_<band>`` and ``arr_<band>`` count the final
    bands (model plus CSM adjustments), what CS ops act on. The first column is ``as_of`` (the batch's
    date), so rollups of several runs can be kept in one table.
    """
    s = scores[scores["status"] == "scored"].copy()
    s["renewal_quarter"] = pd.to_datetime(s["renewal_date"]).dt.to_period("Q").astype(str)
    s["csm"] = s["csm"].astype("object").fillna("(unassigned)")
    s["arr_at_risk"] = s["arr"].astype(float) * (1 - s["probability"].astype(float))
    s["w"] = s["arr"].astype(float) * s["score"].astype(float)
    frames = []
    for level in (["segment"], ["csm"], ["renewal_quarter"]):
        g = s.groupby(level, observed=True, sort=True)
        agg = pd.DataFrame(
            {
                "accounts": g.size(),
                "arr": g["arr"].sum(),
                "arr_weighted_score": (g["w"].sum() / g["arr"].sum()).round(1),
                "expected_arr_at_risk_model": g["arr_at_risk"].sum().round(2),
            }
        )
        bands = s.pivot_table(index=level, columns="band", values="account_id", aggfunc="count", fill_value=0,
                              observed=True)
        arr = s.pivot_table(index=level, columns="band", values="arr", aggfunc="sum", fill_value=0.0, observed=True)
        for b in BANDS:
            agg[f"accounts_{b}"] = bands[b] if b in bands else 0
        for b in BANDS:
            agg[f"arr_{b}"] = (arr[b] if b in arr else 0.0)
        agg = agg.reset_index().rename(columns={level[0]: "value"})
        agg.insert(0, "dimension", level[0])
        frames.append(agg)
    total = pd.DataFrame([{
        "dimension": "all", "value": "all", "accounts": len(s), "arr": s["arr"].sum(),
        "arr_weighted_score": round(s["w"].sum() / s["arr"].sum(), 1) if s["arr"].sum() else np.nan,
        "expected_arr_at_risk_model": round(s["arr_at_risk"].sum(), 2),
        **{f"accounts_{b}": int((s["band"] == b).sum()) for b in BANDS},
        **{f"arr_{b}": float(s.loc[s["band"] == b, "arr"].sum()) for b in BANDS},
    }])
    out = pd.concat([total, *frames], ignore_index=True)
    out["value"] = out["value"].astype(str)
    out.insert(0, "as_of", pd.Timestamp(scores["as_of"].iloc[0]) if len(scores) else pd.NaT)
    return out
