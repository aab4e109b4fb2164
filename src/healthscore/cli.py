"""Command line: parses, calls, prints. Heavy imports happen inside each command."""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from healthscore.errors import HealthscoreError

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

app = typer.Typer(
    name="healthscore",
    help="A churn-calibrated customer health score: learned weights, calibrated probability, explained.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Wide enough for the evaluation tables when piped to a log file (cron, CI).
console = Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, highlight=False)

DataOpt = Annotated[Path, typer.Option("--data", help="Dataset directory (CONTRACT §1): CSV and/or Parquet files.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML config over the defaults.")]
AsOfOpt = Annotated[Optional[str], typer.Option("--as-of", help="Observation date, YYYY-MM-DD.")]
ModelOpt = Annotated[
    str, typer.Option("--model", help="MLflow model URI (models:/NAME@ALIAS, runs:/..., or a local path).")
]
ModelNameOpt = Annotated[str, typer.Option("--model-name", help="Registered model name.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables (for cron jobs).")]


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HealthscoreError(f"{option} must be a date like 2025-06-30, found {value!r}") from None


def _config(path: Path | None):
    from healthscore.config import load_config

    return load_config(path)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the dataset into.")],
    accounts: Annotated[int, typer.Option("--accounts", help="Number of accounts.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same world.")] = 7,
    start: Annotated[str, typer.Option("--start", help="First day of the world, YYYY-MM-DD.")] = "2022-01-01",
    months: Annotated[int, typer.Option("--months", help="Length of the world in months.")] = 36,
    drift: Annotated[bool, typer.Option("--drift", help="Behaviour shifts midway (support starts to matter more).")]
    = False,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Write a simulated B2B SaaS dataset (CONTRACT §1) plus truth.parquet."""
    from healthscore.simulate import SimulationSpec, write_world

    spec = SimulationSpec(
        accounts=accounts, seed=seed, start=_parse_date(start, "--start"), months=months, drift=drift
    )
    summary = write_world(spec, out, fmt=fmt)
    console.print(summary)


@app.command()
def validate(data: DataOpt) -> None:
    """Check a dataset against the contract: print every problem, or a summary of what is there."""
    from healthscore.io import load_dataset, render_summary, summarise

    ds = load_dataset(data)
    for warning in ds.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    console.print(render_summary(summarise(ds)))


@app.command()
def features(
    data: DataOpt,
    as_of: Annotated[str, typer.Option("--as-of", help="Observation date, YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option("--out", help="Output file: .parquet or .csv.")],
    config: ConfigOpt = None,
) -> None:
    """Write point-in-time features as of a date: one row per account."""
    from healthscore.features import write_features
    from healthscore.io import load_dataset

    cfg = _config(config)
    ds = load_dataset(data)
    path = write_features(ds, _parse_date(as_of, "--as-of"), out, config=cfg)
    console.print(f"features written to {path}")


def main() -> None:
    """Entry point of the console script: one-paragraph errors, never a traceback."""
    try:
        app(standalone_mode=False)
    except HealthscoreError as exc:
        err_console.print(f"healthscore: {exc}", markup=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("healthscore: aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


@app.command()
def train(
    data: DataOpt,
    as_of: AsOfOpt = None,
    config: ConfigOpt = None,
    model_name: ModelNameOpt = "",
) -> None:
    """Train as if today were --as-of: learn from decided renewals, calibrate, evaluate, log, register."""
    from healthscore.pipelines import train_job
    from healthscore.reports.console import evaluation_table, group_table, weights_table

    cfg = _config(config)
    outcome = train_job(data, config=cfg, as_of=_parse_date(as_of, "--as-of"), model_name=model_name or None,
                        config_path=config)
    r = outcome.result
    for w in r.warnings:
        err_console.print(f"warning: {w}", markup=False)
    console.print(
        f"trained on {r.sizes['rows_train']} rows, calibrated ({r.model.calibrator.method_}) on "
        f"{r.sizes['rows_calibration']}, tested on {r.sizes['rows_test']} newer renewals"
    )
    console.print(evaluation_table(r.evaluation))
    for group in ("lead_time_days", "segment"):
        console.print(group_table(r.evaluation, group))
    console.print(weights_table(r.component_weights))
    console.print(
        f"registered [bold]{outcome.model_name}[/bold] version {outcome.version} as @{outcome.alias} "
        f"(run {outcome.run_id})"
    )


@app.command()
def score(
    data: DataOpt,
    as_of: Annotated[str, typer.Option("--as-of", help="Observation date, YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (scores, explanations, history, portfolio).")],
    model: Annotated[Optional[str], typer.Option("--model", help="Model URI; default models:/NAME@champion.")] = None,
    config: ConfigOpt = None,
    model_name: ModelNameOpt = "",
    quiet: QuietOpt = False,
) -> None:
    """Score every account as of a date: probability, score, band, contributions, drivers, alerts, plays."""
    from healthscore.pipelines import score_job
    from healthscore.reports.console import at_risk_table, portfolio_summary

    cfg = _config(config)
    outcome = score_job(data, as_of=_parse_date(as_of, "--as-of"), out=out, config=cfg, model_uri=model,
                        model_name=model_name or None)
    if not quiet:
        console.print(at_risk_table(outcome.batch.scores))
        console.print(portfolio_summary(outcome.batch.portfolio))
    s = outcome.batch.scores
    console.print(
        f"scored {int((s['status'] == 'scored').sum())} of {len(s)} accounts with model version "
        f"{outcome.model_version}; outputs in {out}"
    )
    from healthscore.drift import drift_warnings

    for line in drift_warnings(outcome.batch.drift):
        console.print(line, markup=False)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where the demo writes its world, scores and reports.")] = Path(
        "outputs"
    ),
    accounts: Annotated[int, typer.Option("--accounts", help="Accounts in the simulated world.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated world.")] = 7,
    config: ConfigOpt = None,
) -> None:
    """Simulate a world, train, register, score twice a month apart and write reports (local MLflow store)."""
    from healthscore.pipelines import demo_job

    result = demo_job(out, config=_config(config), accounts=accounts, seed=seed, console=console)
    console.print(
        f"\noutputs: data in {result['data']}, scores/explanations/history/portfolio in {result['scores']}, "
        f"MLflow store {os.environ.get('MLFLOW_TRACKING_URI') or Path.cwd() / 'mlflow.db'}\n"
        f"explain one account: healthscore explain --scores {result['scores']} ACCOUNT_ID --html account.html"
    )


@app.command()
def explain(
    account_id: Annotated[str, typer.Argument(help="The account to explain (exact account_id).")],
    scores: Annotated[Path, typer.Option("--scores", help="Output directory of `healthscore score`.")],
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write a self-contained HTML report here.")]
    = None,
) -> None:
    """Why one account scores what it does and what changed since the previous run (no model needed)."""
    from healthscore.reports.account import load_account, render_terminal, write_account_html

    exp = load_account(scores, account_id)
    render_terminal(exp, console)
    if html is not None:
        path = write_account_html(exp, html)
        console.print(f"HTML report written to {path}", markup=False)
