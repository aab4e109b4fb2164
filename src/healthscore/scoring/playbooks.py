"""Plays: lifecycle stage, weakest component and the recommended play (owner, due date) per account."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from healthscore.config import Config
from healthscore.explain import CONTRIB_COLUMNS


def choose_plays(scores: pd.DataFrame, feats: pd.DataFrame, as_of: date, config: Config) -> pd.DataFrame:
    """Lifecycle stage, weakest component, the play (name, and its steps in one cell), owner, due date, advocate."""
    pb = config.playbooks
    tenure = pd.to_numeric(feats.get("tenure_days"), errors="coerce") if "tenure_days" in feats else None
    to_renewal = pd.to_numeric(feats.get("days_to_renewal"), errors="coerce") if "days_to_renewal" in feats else None
    stage = pd.Series("adopting", index=scores.index, dtype="object")
    if to_renewal is not None:
        stage[(to_renewal < pb.renewal_window_days).to_numpy()] = "renewal_window"
    if tenure is not None:
        stage[(tenure < pb.onboarding_days).to_numpy()] = "onboarding"
    stage[scores["status"] != "scored"] = None
    contrib = scores[list(CONTRIB_COLUMNS)].astype(float)
    weakest = contrib.fillna(np.inf).idxmin(axis=1).str.replace("contrib_", "", regex=False)
    weakest = weakest.where(scores["status"] == "scored")
    nps = pd.to_numeric(feats["nps_last"], errors="coerce") if "nps_last" in feats else pd.Series(np.nan, index=scores.index)
    advocate = (scores["band"] == "healthy") & (nps.to_numpy() >= pb.advocate_min_nps)
    plays, steps, owners, dues = [], [], [], []
    due0 = pd.Timestamp(as_of)
    for band, comp, stg, adv in zip(scores["band"], weakest, stage, advocate):
        play = None
        if band == "healthy":
            play = pb.advocate if adv else None
        elif band == "at_risk" and stg == "renewal_window":
            play = pb.renewal_rescue
        elif band in ("watch", "at_risk"):
            play = pb.by_component.get(comp if stg != "onboarding" else "time_to_value") or pb.by_component.get(comp)
        plays.append(play.name if play else None)
        steps.append("; ".join(play.steps) if play else None)
        owners.append(play.owner if play else None)
        dues.append((due0 + timedelta(days=play.due_days)).strftime("%Y-%m-%d") if play else None)
    return pd.DataFrame(
        {"lifecycle_stage": stage, "weakest_component": weakest, "playbook": plays, "playbook_steps": steps,
         "playbook_owner": owners,
         "playbook_due": dues, "advocate": advocate.astype(bool)},
        index=scores.index,
    )
