"""The champion/challenger comparison report: decision, gate table, holdout plots, drift, weights."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from healthscore.reports import plots
from healthscore.reports._html import png_data_uri, records, template_env


def render_retrain_report(
    *,
    model_name: str,
    decision: str,
    reason: str,
    reasons: list[str],
    notes: list[str],
    champion_version: str | None,
    challenger_version: str,
    comparison: pd.DataFrame,
    holdout: dict[str, Any],
    holdout_evaluation: pd.DataFrame,
    y: np.ndarray,
    preds: dict[str, np.ndarray],
    drift: pd.DataFrame | None,
    drift_as_of: date | None,
    component_weights: pd.DataFrame,
    as_of: date | None,
) -> str:
    """One self-contained HTML page comparing champion and challenger on the held-out renewals."""
    names = {"champion": f"champion v{champion_version}", "challenger": f"challenger v{challenger_version}"}
    labelled = {names[k]: v for k, v in preds.items()}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        images = {
            "reliability": png_data_uri(plots.reliability_plot(y, labelled, t / "reliability.png")),
            "roc": png_data_uri(plots.roc_plot(y, labelled, t / "roc.png")),
            "lift": png_data_uri(plots.lift_plot(y, labelled, t / "lift.png")),
            "weights": png_data_uri(plots.component_weights_plot(component_weights, t / "weights.png")),
        }
    ev = holdout_evaluation.assign(model=holdout_evaluation["model"].map(names))
    flagged = drift[drift["level"].isin(["warn", "alert"])] if drift is not None else None
    return template_env().get_template("retrain_report.html").render(
        model_name=model_name,
        decision=decision,
        reason=reason,
        reasons=reasons,
        notes=notes,
        champion_version=champion_version,
        challenger_version=challenger_version,
        comparison=records(comparison),
        holdout=holdout,
        overall=records(ev[ev["group"] == "all"]),
        by_group=records(ev[ev["group"] != "all"].sort_values(
            ["group", "level", "model"], key=lambda c: c.map(_sort_key), kind="stable")),
        drift=records(drift),
        drift_flagged=0 if flagged is None else len(flagged),
        drift_as_of=str(drift_as_of) if drift_as_of else "",
        weights=records(component_weights),
        as_of=str(as_of) if as_of else "all decided renewals",
        images=images,
    )


def _sort_key(value: Any) -> tuple[int, float | str]:
    """Numbers (lead times) numerically, before text."""
    try:
        return (0, float(value))
    except (TypeError, ValueError):
        return (1, str(value))
