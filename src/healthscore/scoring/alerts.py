"""Trend and alerts: the change since the latest earlier batch, and why an account needs attention now."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from healthscore.config import Config
from healthscore.explain import CONTRIB_COLUMNS
from healthscore.scoring.bands import BAND_RANK


def add_alerts(scores: pd.DataFrame, history: pd.DataFrame | None, as_of: date, config: Config) -> pd.DataFrame:
    """previous_score/delta from the latest earlier as-of date; alert on a drop or a worse band, naming movers."""
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
        if reasons:
            moved = {
                c.replace("contrib_", ""): float(out[c].iloc[i]) - float(prev[c].iloc[i])
                for c in CONTRIB_COLUMNS
                if pd.notna(prev[c].iloc[i]) and pd.notna(out[c].iloc[i])
            }
            movers = sorted(moved.items(), key=lambda kv: kv[1])[: config.alerts.components_named]
            named = ", ".join(f"{c} {v:+.1f}" for c, v in movers if v < 0)
            alerts.append("; ".join(reasons) + (f" (moved most: {named})" if named else ""))
        else:
            alerts.append(None)
    out["alert"] = alerts
    return out
