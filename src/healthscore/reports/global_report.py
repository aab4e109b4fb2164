"""The global model report: what the model learned, as one self-contained HTML file (logged with each model).

Sections: headline metrics against the baselines, learned component weights against the hand-weighted
scorecard, a SHAP summary (beeswarm) of exact TreeSHAP values in log-odds, dependence plots of the
strongest features, and the calibration curve on the test slice. Images are base64 PNG data URIs and no
script is used, so the file opens offline and inside MLflow's artifact viewer. Feature names can come from
a user's flat table, so every text is escaped and matplotlib never parses it as math.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import shap

from healthscore.config import COMPONENTS
from healthscore.explain import feature_catalogue, feature_label, feature_points
from healthscore.model.split import split_by_renewal_date
from healthscore.model.train import rows_text
from healthscore.reports import plots
from healthscore.reports._html import png_data_uri, template_env
from healthscore.reports.account import COMPONENT_LABELS
from healthscore.reports.console import MODEL_LABELS
from healthscore.reports.plots import plt


def _rows_learned(model) -> dict[str, str]:
    """The model card's two row sets in words: what the registered model learned from, what metrics measure."""
    return {label: rows_text(model.metadata[key]) for key, label in
            (("learned_from", "learned from"), ("metrics_from", "metrics from")) if model.metadata.get(key)}


def test_slice_matrix(result, training_set, config) -> pd.DataFrame:
    """The prepared model matrix of the test slice (the newest renewals), split exactly as training split it."""
    part = training_set.part if training_set.part is not None else split_by_renewal_date(training_set.rows,
                                                                                          config.split)
    mask = (pd.Series(np.asarray(part), index=training_set.rows.index) == "test").to_numpy()
    return result.model.prepare(training_set.features[mask])


def _numeric(X: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as their category codes (NaN when missing), for colouring SHAP plots."""
    out = pd.DataFrame(index=X.index)
    for c in X.columns:
        if isinstance(X[c].dtype, pd.CategoricalDtype):
            codes = X[c].cat.codes.astype(float)
            out[c] = codes.where(codes >= 0)
        else:
            out[c] = pd.to_numeric(X[c], errors="coerce").astype(float)
    return out


def _file_uri(make_plot) -> str:
    """Run a plots.* function that saves a PNG to a path and return the PNG as a data URI."""
    with tempfile.TemporaryDirectory() as tmp:
        return png_data_uri(make_plot(Path(tmp) / "plot.png"))


def _summary_plot(phi: np.ndarray, Xn: pd.DataFrame, labels: list[str], *, seed: int, max_display: int) -> str:
    shap.summary_plot(phi, Xn.to_numpy(), feature_names=labels, max_display=max_display, show=False,
                      plot_size=(8.0, 0.32 * min(max_display, len(labels)) + 1.6),
                      rng=np.random.default_rng(seed), color_bar_label="feature value (low → high)")
    fig = plt.gcf()
    fig.axes[0].set_xlabel("contribution to log-odds of renewal (exact TreeSHAP)")
    return png_data_uri(fig)


def _dependence_plot(name: str, label: str, phi: np.ndarray, X: pd.DataFrame) -> str:
    """Feature value against its SHAP value, one dot per row; missing values in their own column at the left.

    Drawn here rather than with ``shap.dependence_plot``, which shuffles with numpy's global random state
    (a report must be the same bytes for the same model, and must not reseed its caller).
    """
    j = list(X.columns).index(name)
    y = phi[:, j]
    fig, ax = plt.subplots(figsize=(4.6, 3.3))
    spread = (np.arange(len(y)) % 21 - 10) / 40.0  # deterministic horizontal spread for discrete columns
    if isinstance(X[name].dtype, pd.CategoricalDtype):
        cats = [str(c) for c in X[name].cat.categories]
        codes = X[name].cat.codes.to_numpy()
        ax.scatter(np.where(codes < 0, len(cats), codes) + spread, y, s=10, alpha=0.6, color="#1E88E5")
        ticks = cats + (["(missing)"] if (codes < 0).any() else [])
        ax.set_xticks(range(len(ticks)), ticks, rotation=30, ha="right")
    else:
        x = pd.to_numeric(X[name], errors="coerce").to_numpy(dtype=float)
        present = ~np.isnan(x)
        ax.scatter(x[present], y[present], s=10, alpha=0.6, color="#1E88E5")
        if (~present).any() and present.any():
            lo, hi = np.nanmin(x), np.nanmax(x)
            at = lo - 0.12 * (hi - lo if hi > lo else 1.0)
            width = 0.04 * (hi - lo if hi > lo else 1.0)
            ax.scatter(at + spread[~present] * width, y[~present], s=10, alpha=0.6, color="#9e9e9e",
                       label="missing (no data)")
            ax.legend(fontsize=7, loc="best")
    ax.set_xlabel(label)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("SHAP, log-odds")
    return png_data_uri(fig)


def global_report_context(result, X: pd.DataFrame | None, *, max_rows: int = 2000, top_dependence: int = 6,
                          max_display: int = 15, seed: int = 0) -> dict:
    """Everything the global template shows (tables and data-URI images), computed from a TrainResult."""
    model = result.model
    specs = feature_catalogue()
    ev = result.evaluation[result.evaluation["group"] == "all"]
    metrics = [
        {"model": MODEL_LABELS.get(r["model"], r["model"]), **{k: r[k] for k in
         ("n", "roc_auc", "pr_auc_churn", "brier", "log_loss", "ece", "top_decile_lift")}}
        for _, r in ev.iterrows()
    ]
    weights = result.component_weights.assign(label=lambda w: w["component"].map(COMPONENT_LABELS))
    ctx = {
        "metrics": metrics,
        "weights": weights.to_dict("records"),
        "sizes": result.sizes,
        "params": {k: v for k, v in sorted(result.params.items())},
        "calibration_method": model.calibrator.method_,
        "baseline": model.baseline_points,
        "metadata": {**{k: model.metadata.get(k) for k in ("trained_as_of", "data_fingerprint", "model_name",
                                                           "calibration_rows") if model.metadata.get(k)},
                     "model_form": model.form,
                     **_rows_learned(model)},
        "warnings": list(result.warnings),
    }
    tp = result.test_predictions
    y = tp["label"].to_numpy()
    preds = {MODEL_LABELS.get(k[2:], k[2:]): tp[k].to_numpy() for k in tp.columns
             if k.startswith("p_") and k in ("p_healthscore", "p_healthscore_raw", "p_scorecard", "p_truth")}
    with plt.rc_context({"text.parse_math": False}):
        ctx["weights_png"] = _file_uri(lambda p: plots.component_weights_plot(result.component_weights, p))
        ctx["calibration_png"] = _file_uri(lambda p: plots.reliability_plot(y, preds, p)) if len(y) else None
        rel = result.reliability
        ctx["reliability"] = rel[rel["model"] == "healthscore"].to_dict("records")
        ctx["features"], ctx["summary_png"], ctx["dependence"], ctx["explained_rows"] = [], None, [], (0, 0)
        if X is not None and len(X):
            sample = X if len(X) <= max_rows else X.sample(n=max_rows, random_state=seed).sort_index()
            contrib, _ = model.contributions(sample)
            fpoints, _, _ = feature_points(model, sample)
            phi = contrib.to_numpy(dtype=float)
            Xn = _numeric(sample)
            labels = [feature_label(c, specs.get(c)) for c in sample.columns]
            mean_abs = np.abs(phi).mean(axis=0)
            order = np.argsort(-mean_abs, kind="stable")
            ctx["features"] = [
                {"feature": sample.columns[j], "label": labels[j],
                 "component": COMPONENT_LABELS.get(model.components.get(sample.columns[j], "account"), ""),
                 "mean_abs_log_odds": float(mean_abs[j]),
                 "mean_abs_points": float(fpoints.iloc[:, j].abs().mean()),
                 "share": float(100 * mean_abs[j] / mean_abs.sum()) if mean_abs.sum() > 0 else 0.0}
                for j in order
            ]
            ctx["summary_png"] = _summary_plot(phi, Xn, labels, seed=seed, max_display=max_display)
            ctx["dependence"] = [
                {"label": labels[j], "png": _dependence_plot(sample.columns[j], labels[j], phi, sample)}
                for j in order[:top_dependence] if mean_abs[j] > 0
            ]
            ctx["explained_rows"] = (len(sample), len(X))
    ctx["components"] = [COMPONENT_LABELS[c] for c in COMPONENTS]
    return ctx


def render_global_report(result, X: pd.DataFrame | None = None, **kwargs) -> str:
    """The global report as an HTML string (see ``write_global_report``)."""
    return template_env().get_template("global.html").render(**global_report_context(result, X, **kwargs))


def write_global_report(result, path: str | Path, *, X: pd.DataFrame | None = None, **kwargs) -> Path:
    """Write the global model report for a ``model.train.TrainResult`` to ``path`` and return it.

    ``X`` is the prepared test-slice matrix (``test_slice_matrix(result, training_set, config)``); without it the
    SHAP sections are left out and the report says so. At most ``max_rows`` (2000) rows are explained,
    sampled with a fixed seed: TreeSHAP costs ~100× a prediction.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_global_report(result, X, **kwargs), encoding="utf-8")
    return path
