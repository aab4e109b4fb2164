"""Rich tables for the terminal."""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from healthscore.model.train import rows_text
from healthscore.reports._html import fmt_number, fmt_percent

MODEL_LABELS = {
    "healthscore": "healthscore (calibrated)",
    "healthscore_raw": "healthscore (raw, uncalibrated)",
    "scorecard": "hand-weighted scorecard",
    "logistic": "logistic regression",
    "truth": "truth (simulator's p_renew)",
}


def fit_summary(result, held_out: str) -> str:
    """What the metrics measure and what the registered model learned from: rows, form, calibration."""
    evaluated = result.evaluated_model or result.model
    sizes = result.sizes
    if evaluated.metadata.get("calibration_rows") == "cross_fit":
        calibrated = f"out-of-fold margins of {sizes['rows_calibration']:,} of them"
    else:
        calibrated = f"{sizes['rows_calibration']:,} held-out rows"
    described = result.model.metadata.get("metrics_from") or {}
    tested = f"the newest {rows_text(described)}" if "renewals_from" in described else f"{sizes['rows_test']:,} {held_out}"
    line = (f"metrics: trained on {sizes['rows_train']:,} rows ({evaluated.form}), calibrated "
            f"({evaluated.calibrator.method_}) on {calibrated}, tested on {tested}")
    final = result.model
    if final is not evaluated and final.metadata.get("refit"):
        line += (f"\nregistered model: the same settings ({final.form}) refit on all "
                 f"{rows_text(final.metadata.get('learned_from'))}, calibrated ({final.calibrator.method_}) on "
                 f"{final.metadata.get('calibrated_on', '')}")
    else:
        why = "model.refit is off" if not final.metadata.get("refit_wanted", True) else "no held-out rows to add"
        line += f"\nregistered model: the model evaluated above ({why})"
    return line


def evaluation_table(evaluation: pd.DataFrame, *, title: str = "Evaluation on the test slice") -> Table:
    """Overall metrics per model, one row each."""
    t = Table(title=title)
    for col in ("model", "n", "ROC AUC", "PR AUC churn", "Brier", "log loss", "ECE", "top-decile lift"):
        t.add_column(col, justify="left" if col == "model" else "right")
    rows = evaluation[evaluation["group"] == "all"]
    for _, r in rows.iterrows():
        t.add_row(
            MODEL_LABELS.get(r["model"], r["model"]),
            f"{int(r['n'])}",
            fmt_number(r["roc_auc"]),
            fmt_number(r["pr_auc_churn"]),
            fmt_number(r["brier"]),
            fmt_number(r["log_loss"]),
            fmt_number(r["ece"]),
            fmt_number(r["top_decile_lift"], 2),
        )
    return t


def group_table(evaluation: pd.DataFrame, group: str, *, model: str = "healthscore") -> Table:
    """Metrics of one model per level of a group (segment, lead time)."""
    t = Table(title=f"{MODEL_LABELS.get(model, model)} by {group}")
    for col in (group, "n", "renewal rate", "ROC AUC", "Brier", "ECE", "top-decile lift"):
        t.add_column(col, justify="left" if col == group else "right")
    rows = evaluation[(evaluation["group"] == group) & (evaluation["model"] == model)]
    for _, r in rows.iterrows():
        t.add_row(str(r["level"]), f"{int(r['n'])}", fmt_number(r["renewal_rate"]), fmt_number(r["roc_auc"]), fmt_number(r["brier"]),
                  fmt_number(r["ece"]), fmt_number(r["top_decile_lift"], 2))
    return t


def weights_table(weights: pd.DataFrame) -> Table:
    t = Table(title="Component weights: learned from renewals vs hand-weighted")
    for col in ("component", "learned %", "hand %"):
        t.add_column(col, justify="left" if col == "component" else "right")
    for _, r in weights.iterrows():
        t.add_row(r["component"], f"{r['learned_weight']:.1f}", f"{r['hand_weight']:.0f}")
    return t


def at_risk_table(scores: pd.DataFrame, *, n: int = 10) -> Table:
    """The n lowest final scores: model score, adjustment and final score side by side, with the probability."""
    t = Table(title=f"The {n} most at-risk accounts (final score = model score + CSM adjustments)",
              caption="p(renew) is the model's calibrated probability: a model score of 80 means about 80% "
                      "likely to renew; adjustments move the final score, not the probability")
    for col in ("account", "segment", "model", "adj.", "score", "p(renew)", "delta", "band", "top driver (model)",
                "play"):
        t.add_column(col, justify="right" if col in ("model", "adj.", "score", "p(renew)", "delta") else "left",
                     overflow="fold")
    s = scores[scores["status"] == "scored"].sort_values(["score", "account_id"], kind="stable").head(n)
    for _, r in s.iterrows():
        name = r["name"] if isinstance(r["name"], str) else ""
        delta = "" if pd.isna(r["delta"]) else f"{r['delta']:+.0f}"
        adjustment = r.get("adjustment", 0.0)
        adj = f"{adjustment:+.0f}" if pd.notna(adjustment) and adjustment else ""
        play = r["playbook"] if isinstance(r["playbook"], str) else ""
        t.add_row(f"{r['account_id']} {name}"[:40], str(r["segment"]), f"{r['model_score']:.0f}", adj,
                  f"{r['score']:.0f}", f"{r['probability']:.0%}", delta, str(r["band"]), str(r["driver_1"] or ""),
                  play.split(":")[0])
    return t


def portfolio_summary(portfolio: pd.DataFrame) -> Table:
    """Portfolio rollup by segment (and the total)."""
    t = Table(title="Portfolio by segment")
    for col in ("segment", "accounts", "ARR", "ARR-weighted score", "expected ARR at risk (model)", "healthy", "watch",
                "at risk"):
        t.add_column(col, justify="left" if col == "segment" else "right")
    rows = portfolio[portfolio["dimension"].isin(["all", "segment"])]
    for _, r in rows.iterrows():
        t.add_row(str(r["value"]), f"{int(r['accounts'])}", f"{r['arr']:,.0f}", f"{r['arr_weighted_score']:.1f}",
                  f"{r['expected_arr_at_risk_model']:,.0f}", f"{int(r['accounts_healthy'])}", f"{int(r['accounts_watch'])}",
                  f"{int(r['accounts_at_risk'])}")
    return t


def holdout_table(holdout: dict, comparison: pd.DataFrame, *, champion_version, challenger_version) -> Table:
    """retrain's comparison on the holdout: each gate metric for champion and challenger, margin, verdict."""
    h = holdout
    table = Table(title=f"Holdout: {h['contracts']:,} contracts ({h['churned_contracts']:,} churned) renewing "
                        f"{h['renewals_from']} to {h['renewals_to']}; {h['rows']:,} rows (contract × lead time)")
    for col in ("metric", f"champion v{champion_version}", f"challenger v{challenger_version}",
                "allowed worse by", "verdict"):
        table.add_column(col, justify="left" if col in ("metric", "verdict") else "right")
    for r in comparison.itertuples():
        table.add_row(r.metric, fmt_number(r.champion, 4), fmt_number(r.challenger, 4), fmt_number(r.margin, 4),
                      r.verdict)
    return table


def backtest_table(result) -> Table:
    """backtest's summary: per model version (and its out-of-sample rows) AUC, Brier, ECE, churned-but-healthy."""
    r = result
    table = Table(title="Backtest: point-in-time scores of past renewals")
    for col in ("model", "rows", "ROC AUC", "Brier", "ECE", f"churned but healthy {r.healthy_lead_days}d before"):
        table.add_column(col, justify="left" if col == "model" else "right")
    hc = r.healthy_churn[r.healthy_churn["group"] == "all"].set_index("model_version")
    shown = r.metrics[(r.metrics["group"] == "all") | (r.metrics["level"] == "out_of_sample")]
    for m in shown.itertuples():
        share = hc["share"].get(m.model_version, float("nan")) if m.group == "all" else float("nan")
        label = f"v{m.model_version}" + (" (out of sample)" if m.group != "all" else "")
        table.add_row(label, f"{int(m.n)}", fmt_number(m.roc_auc), fmt_number(m.brier), fmt_number(m.ece),
                      fmt_percent(share))
    return table
