"""``backtest``: point-in-time scores of past renewals by registered models, against what happened."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from healthscore import tracking
from healthscore.backtest import BacktestResult, run_backtest
from healthscore.config import Config
from healthscore.errors import HealthscoreError
from healthscore.io import load_dataset
from healthscore.io.write import write_table_atomic, write_text_atomic
from healthscore.reports.backtest import render_backtest_report


@dataclass
class BacktestOutcome:
    result: BacktestResult
    path: Path
    run_id: str | None


def default_model_uris(model_name: str) -> list[str]:
    """The champion, and the challenger when it is another version."""
    aliases = tracking.model_aliases(model_name)
    uris = []
    seen: set[str] = set()
    for alias in (tracking.CHAMPION, tracking.CHALLENGER):
        version = aliases.get(alias)
        if version is not None and version not in seen:
            seen.add(version)
            uris.append(f"models:/{model_name}@{alias}")
    if not uris:
        raise HealthscoreError(f"no champion of {model_name} is registered: train one first "
                               "(healthscore train) or pass --model URI")
    return uris


def backtest_metrics_flat(result: BacktestResult) -> dict[str, float]:
    """The run's metrics: overall per model version, and the share of churned renewals banded healthy."""
    overall = result.metrics[result.metrics["group"] == "all"]
    metrics = {f"v{r.model_version}.{m}": float(getattr(r, m)) for r in overall.itertuples()
               for m in ("roc_auc", "brier", "log_loss", "ece", "top_decile_lift", "n")}
    for r in result.healthy_churn[result.healthy_churn["group"] == "all"].itertuples():
        metrics[f"v{r.model_version}.healthy_before_churn_share"] = float(r.share)
    return metrics


def backtest_job(
    data: str | Path,
    *,
    config: Config,
    model_uris: list[str] | None = None,
    out: str | Path = "backtest.html",
    model_name: str | None = None,
) -> BacktestOutcome:
    """Backtest registered models on a dataset, write the HTML report and log it (with tables) to MLflow."""
    model_name = model_name or config.tracking.model_name
    tracking.connect()
    uris = list(model_uris) if model_uris else default_model_uris(model_name)
    models = [tracking.load_model(uri) for uri in uris]
    ds = load_dataset(data)
    result = run_backtest(ds, models, config=config)
    out = write_text_atomic(render_backtest_report(result, data_source=str(data), config=config), Path(out))
    with tempfile.TemporaryDirectory() as tmp:
        tables = [write_table_atomic(getattr(result, name), Path(tmp) / f"{name}.csv")
                  for name in ("metrics", "bands", "healthy_churn", "deciles", "models")]
        record = tracking.RunRecord(
            experiment=config.tracking.experiment, run_name="backtest",
            params={"models": ",".join(uris), "lead_times_days": list(config.timeline.lead_times_days),
                    "bands": [config.bands.healthy, config.bands.watch]},
            metrics=backtest_metrics_flat(result),
            tags={"job": "backtest", "data_fingerprint": ds.fingerprint, "data_source": str(data),
                  "model_versions": ",".join(str(m.version) for m in models)},
            files={"backtest": [out, *tables]},
        )
        logged = tracking.log_run(record)
    return BacktestOutcome(result=result, path=out, run_id=logged.run_id)
