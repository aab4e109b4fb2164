"""``demo``: the README's main job on a simulated world: simulate, validate, train, register, score, report."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from healthscore import tracking
from healthscore.config import Config
from healthscore.io import load_dataset
from healthscore.jobs.backtest import backtest_job
from healthscore.jobs.score import score_job
from healthscore.jobs.train import train_job
from healthscore.reports.account import load_account, write_account_html
from healthscore.reports.console import (
    at_risk_table,
    backtest_table,
    evaluation_table,
    fit_summary,
    group_table,
    portfolio_summary,
    weights_table,
)
from healthscore.reports.progress import NO_PROGRESS, Progress
from healthscore.reports.site import build_site
from healthscore.simulate import SimulationSpec, write_world
from healthscore.summary import render_summary, summarise

#: the demo trains as if today were a year before its world ends, so the backtest has a year of renewals the
#: model never saw
DEMO_HOLDBACK_MONTHS = 12
DEMO_MODEL_NAME = "healthscore-demo"


def demo_job(out: str | Path, *, config: Config, accounts: int = 2000, seed: int = 7, console=None,
             progress: Progress = NO_PROGRESS) -> dict[str, Any]:
    """The README's main job: simulate, validate, train, register, score twice a month apart, report, backtest.

    Everything stays under ``out``: its own MLflow store (``out/mlflow.db``, artifacts in ``out/mlruns``) and
    model name (``healthscore-demo``), so a demo never touches the registry a user's own ``train`` uses. The
    model is trained as of a year before the world ends and backtested on the renewals after that date: an
    out-of-sample result.
    """
    out = Path(out)
    store = f"sqlite:///{(out / 'mlflow.db').resolve()}"
    out.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(config, tracking=dataclasses.replace(config.tracking, model_name=DEMO_MODEL_NAME))
    with tracking.use_store(store):
        found = _demo_steps(out, config=config, accounts=accounts, seed=seed, console=console, progress=progress)
    if console is not None:
        console.print(f"MLflow store of this demo: {store} (mlflow ui --backend-store-uri {store})", markup=False)
    return {**found, "store": store}


def _demo_steps(out: Path, *, config: Config, accounts: int, seed: int, console, progress: Progress) -> dict:
    def say(obj) -> None:
        if console is not None:
            console.print(obj)

    data = out / "data"
    spec = SimulationSpec(accounts=accounts, seed=seed, start=date(2022, 1, 1), months=36)
    say(f"[bold]1/5 simulate[/bold] {accounts} accounts over {spec.months} months → {data}")
    write_world(spec, data)
    say("[bold]2/5 validate[/bold]")
    ds = load_dataset(data)
    say(render_summary(summarise(ds, lead_times=config.timeline.lead_times_days)))
    end = pd.Timestamp(spec.start) + pd.DateOffset(months=spec.months)
    trained_as_of = (end - pd.DateOffset(months=DEMO_HOLDBACK_MONTHS)).date()
    say(f"[bold]3/5 train[/bold] as of {trained_as_of} (renewals decided before it; time-ordered split, CV-chosen "
        "LightGBM, calibration, MLflow)")
    reports = out / "reports"
    trained = train_job(data, config=config, as_of=trained_as_of, report_dir=reports, progress=progress)
    r = trained.result
    say(fit_summary(r, "newer renewals"))
    say(evaluation_table(r.evaluation))
    say(group_table(r.evaluation, "lead_time_days"))
    say(weights_table(r.component_weights))
    say(f"registered {trained.model_name} version {trained.version} as @{trained.alias}")
    dates = [(end - pd.DateOffset(months=1)).date(), end.date()]
    say(f"[bold]4/5 score[/bold] as of {dates[0]} and {dates[1]} with version {trained.version}")
    scores_dir = out / "scores"
    uri = f"models:/{trained.model_name}/{trained.version}"
    for as_of in dates:
        scored = score_job(data, as_of=as_of, out=scores_dir, config=config, model_uri=uri, progress=progress)
    say(at_risk_table(scored.batch.scores))
    say(portfolio_summary(scored.batch.portfolio))
    s = scored.batch.scores
    worst = s[s["status"] == "scored"].sort_values(["score", "account_id"], kind="stable")["account_id"].head(10)
    for account_id in worst:
        write_account_html(load_account(scores_dir, account_id), reports / "accounts" / f"{account_id}.html")
    say(f"[bold]5/5 backtest[/bold] every decided renewal scored point-in-time; those decided from {trained_as_of} "
        "on are out of sample (the model never saw them)")
    backtest = backtest_job(data, config=config, model_uris=[uri], out=reports / "backtest.html",
                            model_name=trained.model_name)
    say(backtest_table(backtest.result))
    say(f"reports: {reports / 'model_report.html'} (the model), {reports / 'backtest.html'} (scores of past "
        f"renewals vs what happened) and {len(worst)} account reports in {reports / 'accounts'}")
    site = build_site(scores_dir, out / "site", config=config, share=True, reports=reports)
    say(f"portfolio site: {site.index}")
    return {"data": data, "scores": scores_dir, "reports": reports, "train": trained, "score": scored,
            "dates": dates, "backtest": backtest, "trained_as_of": trained_as_of, "site": site}
