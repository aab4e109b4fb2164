"""The backtest report: self-contained HTML with embedded plots (helpers in ``reports._html``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from healthscore.config import BANDS, Config
from healthscore.reports import plots
from healthscore.reports._html import png_data_uri, records, template_env


def decile_plot(deciles: pd.DataFrame, path: Path) -> Path:
    """Observed renewal rate per decile of predicted probability, one bar group per model version."""
    plt = plots.plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    versions = list(dict.fromkeys(deciles["model_version"]))
    width = 0.8 / max(1, len(versions))
    for k, version in enumerate(versions):
        d = deciles[deciles["model_version"] == version]
        x = d["decile"].to_numpy() + k * width - 0.4 + width / 2
        ax.bar(x, d["renewal_rate"], width=width, label=f"v{version} observed")
        ax.plot(x, d["mean_predicted"], "k_", markersize=10)
    ax.set_xticks(range(1, 11))
    ax.set_xlabel("decile of predicted probability (1 = least likely to renew)")
    ax.set_ylabel("renewal rate (bars: observed, dashes: predicted)")
    ax.set_ylim(0, 1.05)
    ax.set_title("Renewal rate by score decile")
    ax.legend(fontsize=8, loc="lower right")
    return plots._save(fig, path)


def band_plot(bands: pd.DataFrame, path: Path) -> Path:
    """Observed renewal rate (bars) and mean predicted probability (dashes) per band, per model version."""
    plt = plots.plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    b = bands[(bands["sample"] == "all") & (bands["lead_time_days"] == "all")]
    versions = list(dict.fromkeys(b["model_version"]))
    width = 0.8 / max(1, len(versions))
    for k, version in enumerate(versions):
        d = b[b["model_version"] == version].set_index("band").reindex(list(BANDS))
        x = np.arange(len(BANDS)) + k * width - 0.4 + width / 2
        ax.bar(x, d["observed_renewal_rate"].fillna(0), width=width, label=f"v{version} observed")
        ax.plot(x, d["mean_predicted"], "k_", markersize=14)
    ax.set_xticks(np.arange(len(BANDS)), list(BANDS))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("renewal rate (bars: observed, dashes: predicted)")
    ax.set_title("Calibration by band (model score)")
    ax.legend(fontsize=8, loc="lower right")
    return plots._save(fig, path)


def render_backtest_report(result, *, data_source: str, config: Config) -> str:
    """The backtest as one self-contained HTML page."""
    pred = result.predictions
    y = pred.drop_duplicates(["contract_id", "lead_time_days"])
    first = pred[pred["model_version"] == pred["model_version"].iloc[0]]
    preds = {f"v{v}": g["probability"].to_numpy() for v, g in pred.groupby("model_version", sort=False)}
    labels = first["label"].to_numpy()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        images = {
            "reliability": png_data_uri(plots.reliability_plot(labels, preds, t / "reliability.png")),
            "bands": png_data_uri(band_plot(result.bands, t / "bands.png")),
            "deciles": png_data_uri(decile_plot(result.deciles, t / "deciles.png")),
            "lift": png_data_uri(plots.lift_plot(labels, preds, t / "lift.png")),
        }
    m = result.metrics
    overall = m[m["group"] == "all"]
    out_of_sample = m[(m["group"] == "sample") & (m["level"] == "out_of_sample")]
    hc = result.healthy_churn
    return template_env().get_template("backtest_report.html").render(
        data_source=data_source,
        n_contracts=int(y["contract_id"].nunique()),
        n_rows=int(len(y)),
        renewals_from=str(pd.to_datetime(pred["renewal_date"]).min().date()),
        renewals_to=str(pd.to_datetime(pred["renewal_date"]).max().date()),
        lead_times=", ".join(str(v) for v in sorted(set(config.timeline.lead_times_days))),
        bands_cut=config.bands,
        models=records(result.models),
        overall=records(overall),
        out_of_sample=records(out_of_sample),
        bands=records(result.bands[result.bands["lead_time_days"] == "all"]),
        bands_by_lead=records(result.bands[(result.bands["lead_time_days"] != "all")
                                           & (result.bands["sample"] == "all")]),
        healthy_all=records(hc[hc["group"] == "all"]),
        healthy_segment=records(hc[hc["group"] == "segment"]),
        healthy_lead=result.healthy_lead_days,
        by_segment=records(m[m["group"] == "segment"]),
        by_lead=records(m[m["group"] == "lead_time_days"]),
        by_quarter=records(m[m["group"] == "renewal_quarter"]),
        images=images,
        warnings=result.warnings,
    )
