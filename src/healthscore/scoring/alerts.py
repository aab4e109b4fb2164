"""Trend and alerts: the change since the latest earlier batch, and why an account needs attention now."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from healthscore.config import Config
from healthscore.explain import CONTRIB_COLUMNS
from healthscore.scoring.bands import BAND_RANK


def _number(frame: pd.DataFrame, column: str, i: int) -> float:
    if column not in frame:
        return float("nan")
    value = frame[column].iloc[i]
    return float(value) if pd.notna(value) else float("nan")


def _what_moved(out: pd.DataFrame, prev: pd.DataFrame, i: int, config: Config) -> str:
    """The change split into adjustment points (with today's reasons) and model points (by component).

    "adjustments −49 (Customer was acquired (csm): −49), model −4 (usage −5.4)": the final score moved by
    their sum (before clipping to 0–100).
    """
    parts = []
    adj_now, adj_prev = _number(out, "adjustment", i), _number(prev, "adjustment", i)
    adj_delta = (0.0 if adj_now != adj_now else adj_now) - (0.0 if adj_prev != adj_prev else adj_prev)
    if round(adj_delta) != 0:
        reasons = out["adjustment_reasons"].iloc[i] if "adjustment_reasons" in out else None
        parts.append(f"adjustments {adj_delta:+.0f}" + (f" ({reasons})" if isinstance(reasons, str) and reasons
                                                         else ""))
    model_delta = _number(out, "model_score", i) - _number(prev, "model_score", i)
    moved = {c.replace("contrib_", ""): _number(out, c, i) - _number(prev, c, i) for c in CONTRIB_COLUMNS}
    movers = sorted(((c, v) for c, v in moved.items() if v == v), key=lambda kv: kv[1])
    named = ", ".join(f"{c} {v:+.1f}" for c, v in movers[: config.alerts.components_named] if v < 0)
    if model_delta == model_delta:
        parts.append(f"model {model_delta:+.0f}" + (f" ({named})" if named else ""))
    elif named:
        parts.append(f"model ({named})")
    return ", ".join(parts)


def add_alerts(scores: pd.DataFrame, history: pd.DataFrame | None, as_of: date, config: Config) -> pd.DataFrame:
    """previous_score/delta from the latest earlier as-of date; an alert on a drop or a worse band.

    Drops and band changes are judged on the final score (what CS ops act on); the alert then says what
    moved it: the adjustment points (with their reasons) and the model's own points (by component).
    """
    T = pd.Timestamp(as_of)
    out = scores.copy()
    out["previous_score"] = np.nan
    out["delta"] = np.nan
    out["alert"] = None
    if history is None or history.empty:
        return out
    earlier = history[pd.to_datetime(history["as_of"]) < T]
    if earlier.empty:
        return out
    earlier = earlier.sort_values(["account_id", "as_of"], kind="stable").groupby("account_id").tail(1)
    prev = earlier.set_index("account_id").reindex(out["account_id"])
    out["previous_score"] = prev["score"].to_numpy(dtype=float)
    out["delta"] = out["score"].astype(float) - out["previous_score"]
    alerts = []
    for i, (delta, band, pband) in enumerate(zip(out["delta"], out["band"], prev["band"])):
        reasons = []
        if delta == delta and delta <= -config.alerts.drop_points:
            reasons.append(f"dropped {abs(delta):.0f} points")
        if isinstance(band, str) and isinstance(pband, str) and BAND_RANK[band] < BAND_RANK[pband]:
            reasons.append(f"band {pband} → {band}")
        alerts.append("; ".join(reasons) + f": {_what_moved(out, prev, i, config)}" if reasons else None)
    out["alert"] = [a.removesuffix(": ") if a else a for a in alerts]
    return out
