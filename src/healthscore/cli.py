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

from healthscore._environment import set_mlflow_defaults
from healthscore.errors import HealthscoreError

set_mlflow_defaults()

app = typer.Typer(
    name="healthscore",
    help="A churn-calibrated customer health score: learned weights, calibrated probability, explained.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Wide enough for the evaluation tables when piped to a log file (cron, CI).
console = Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 140)

DataOpt = Annotated[Path, typer.Option("--data", help="Dataset directory (CONTRACT §1): CSV and/or Parquet files.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML config over the defaults.")]
#: --as-of means "today" for every command: for features/score, the observation date (only data before it is
#: used); for train/retrain, the date training pretends is today (only renewals decided before it are learned)
TrainAsOfOpt = Annotated[Optional[str], typer.Option(
    "--as-of", help="Train as if today were this date (YYYY-MM-DD): learn only from renewals decided before it, "
    "from data before it. Default: every decided renewal.")]
ModelOpt = Annotated[
    str, typer.Option("--model", help="MLflow model URI (models:/NAME@ALIAS, runs:/..., or a local path).")
]
ModelNameOpt = Annotated[str, typer.Option("--model-name", help="Registered model name.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables (for cron jobs).")]


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    from healthscore.gates import check_date

    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise HealthscoreError(f"{option} must be a date like 2025-06-30, found {value!r}") from None
    return check_date(parsed, option)


def _version(value: bool) -> None:
    if value:
        from healthscore import __version__

        console.print(f"healthscore {__version__}", markup=False)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """A churn-calibrated customer health score: learned weights, calibrated probability, explained."""


def _progress(quiet: bool):
    """Step-by-step progress on the console, or nothing with --quiet (cron jobs)."""
    from healthscore.reports.progress import NO_PROGRESS, Progress

    return NO_PROGRESS if quiet else Progress(err_console)


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
    drift: Annotated[bool, typer.Option("--drift/--no-drift",
                                        help="Behaviour shifts midway (support starts to matter more).")] = False,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    business: Annotated[str, typer.Option(
        "--business", help="Shape of the world: b2b (annual contracts, all eight tables) or subscription "
        "(monthly/semi-annual/annual self-serve terms; accounts, contracts and usage_events only).")] = "b2b",
) -> None:
    """Write a simulated SaaS dataset (CONTRACT §1) plus truth.parquet."""
    from healthscore.simulate import SimulationSpec, write_world

    spec = SimulationSpec(
        accounts=accounts, seed=seed, start=_parse_date(start, "--start"), months=months, drift=drift,
        business=business,
    )
    summary = write_world(spec, out, fmt=fmt)
    console.print(summary)


@app.command()
def validate(data: DataOpt, config: ConfigOpt = None) -> None:
    """Check a dataset against the contract: print every problem, or a summary of what is there.

    The summary says how long the contracts' terms are and whether the lead times of the config (default
    30, 90, 180 days) fit them, with lead times that do when they do not.
    Also warns about names the features or the config (--config, or the defaults) expect and the data
    never has: configured key product features no usage event carries, contract touchpoint kinds no
    touchpoint has, adjustment-rule segments no account has.
    """
    from healthscore.features.vocabulary import vocabulary_warnings
    from healthscore.io import load_dataset
    from healthscore.summary import render_summary, summarise

    cfg = _config(config)
    ds = load_dataset(data)
    for warning in [*ds.warnings, *vocabulary_warnings(ds, cfg)]:
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    console.print(render_summary(summarise(ds, lead_times=cfg.timeline.lead_times_days)))


@app.command()
def features(
    data: DataOpt,
    as_of: Annotated[str, typer.Option("--as-of", help="Observation date (YYYY-MM-DD): features from data "
                                       "before this day only.")],
    out: Annotated[Path, typer.Option("--out", help="Output file: .parquet or .csv.")],
    config: ConfigOpt = None,
) -> None:
    """Write point-in-time features as of a date: one row per account."""
    from healthscore.features import write_features
    from healthscore.io import load_dataset

    cfg = _config(config)
    ds = load_dataset(data, fingerprint=False)  # nothing here records which data it was
    path = write_features(ds, _parse_date(as_of, "--as-of"), out, config=cfg)
    console.print(f"features written to {path}")


def _usage_error_types() -> tuple[type, ...]:
    """Click's exception class as typer raises it: typer ≥ 0.24 bundles its own copy of click
    (``typer._click``, under ``typer.TyperException``); older typers raise the installed click's."""
    types: list[type] = [getattr(typer, "TyperException", Exception)]
    try:
        import click

        types.append(click.ClickException)
    except ImportError:
        pass
    return tuple(types)


def _interrupted(exc: Exception) -> bool:
    """Ctrl-C inside a DuckDB query: DuckDB takes the KeyboardInterrupt and raises ``RuntimeError("Query
    interrupted")`` (an ``InterruptException`` when another thread interrupted it)."""
    if type(exc).__name__ == "InterruptException":
        return True
    return type(exc) is RuntimeError and str(exc).strip() == "Query interrupted"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: one-paragraph errors, never a traceback.

    Exit status: 0 done, 2 a usage error or a refused input (click's convention and ours), 75 the output
    folder or the store is busy (a cron job may retry), 1 anything unexpected (set ``HEALTHSCORE_DEBUG=1``
    for its traceback), 130 interrupted.
    """
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except HealthscoreError as exc:
        err_console.print(f"healthscore: {exc}", markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("healthscore: aborted", markup=False)
        sys.exit(130)
    except _usage_error_types() as exc:
        if not hasattr(exc, "show"):
            raise
        exc.show()
        sys.exit(getattr(exc, "exit_code", 2))
    except OSError as exc:
        if os.environ.get("HEALTHSCORE_DEBUG"):
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        err_console.print(f"healthscore: {exc.strerror or exc}{where}", markup=False, soft_wrap=True)
        sys.exit(2 if isinstance(exc, (PermissionError, FileNotFoundError)) else 1)
    except Exception as exc:
        if _interrupted(exc):  # Ctrl-C while DuckDB ran a query on this thread
            err_console.print("healthscore: aborted", markup=False)
            sys.exit(130)
        if os.environ.get("HEALTHSCORE_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        err_console.print(f"healthscore: internal error: {type(exc).__name__}: {first} (this is a bug; rerun with "
                          "HEALTHSCORE_DEBUG=1 for the traceback and report it)", markup=False, soft_wrap=True)
        sys.exit(1)


OptDataOpt = Annotated[Optional[Path], typer.Option("--data", help="Dataset directory (CONTRACT §1); or use --table.")]
TableOpt = Annotated[Optional[Path], typer.Option("--table", help="One flat account table (.csv or .parquet) "
                                                  "instead of --data: one row per account, one column per feature.")]
IdOpt = Annotated[Optional[str], typer.Option("--id", help="With --table: the id column (omit when the table has "
                                              "none: rows are then identified by their 1-based position).")]


def _source(data: Path | None, table: Path | None, table_only: dict[str, object]) -> None:
    """Exactly one of --data / --table; table-only options only with --table."""
    if (data is None) == (table is None):
        raise HealthscoreError("give either --data DIR (a dataset directory) or --table FILE (one flat account "
                               f"table), {'not both' if data is not None else 'found neither'}")
    used = [name for name, value in table_only.items() if value]
    if data is not None and used:
        raise HealthscoreError(f"{', '.join(used)} only apply with --table, not with --data")


def _train_table(table: Path, *, id_column, target, churn_value, components, time_column, as_of, config,
                 model_name) -> None:
    from healthscore.jobs.train import train_table_job
    from healthscore.reports.console import evaluation_table, fit_summary, weights_table

    missing = [name for name, value in (("--target", target), ("--churn-value", churn_value)) if not value]
    if missing:
        raise HealthscoreError(f"--table needs {' and '.join(missing)}: the label column and the value in it "
                               "that means churned (e.g. --target Churn --churn-value 1)")
    outcome = train_table_job(table, target=target, churn_value=churn_value, config=_config(config),
                              id_column=id_column, components=components, time_column=time_column,
                              as_of=_parse_date(as_of, "--as-of"), model_name=model_name or None,
                              config_path=config)
    r = outcome.result
    console.print(f"read {table}:\n{outcome.report.render()}", markup=False)
    for w in r.warnings:
        err_console.print(f"warning: {w}", markup=False)
    held_out = f"newer rows by {time_column}" if time_column else "held-out rows (stratified split, fixed seed)"
    console.print(fit_summary(r, held_out))
    console.print(evaluation_table(r.evaluation))
    console.print(weights_table(r.component_weights))
    console.print(
        f"registered [bold]{outcome.model_name}[/bold] version {outcome.version} as @{outcome.alias} "
        f"(run {outcome.run_id})"
    )
    from healthscore import tracking

    console.print(f"model report: {tracking.artifact_uri(outcome.run_id, 'reports/model_report.html')}", markup=False,
                  soft_wrap=True)
    _print_aliases(outcome.model_name, outcome.version, outcome.alias)


@app.command()
def train(
    data: OptDataOpt = None,
    as_of: TrainAsOfOpt = None,
    config: ConfigOpt = None,
    model_name: ModelNameOpt = "",
    table: TableOpt = None,
    id_column: IdOpt = None,
    target: Annotated[Optional[str], typer.Option("--target", help="With --table: the label column.")] = None,
    churn_value: Annotated[Optional[str], typer.Option("--churn-value", help="With --table: the --target value "
                                                       "that means churned (every other value: retained).")] = None,
    components: Annotated[Optional[Path], typer.Option("--components", help="With --table: YAML mapping columns "
                                                       "to components (unlisted → account).")] = None,
    time_column: Annotated[Optional[str], typer.Option("--time", help="With --table: a date column; split by "
                                                       "time instead of a stratified random split.")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train as if today were --as-of: learn from decided renewals (or a --table's rows), calibrate, evaluate, log."""
    from healthscore.jobs.train import train_job

    _source(data, table, {"--id": id_column, "--target": target, "--churn-value": churn_value,
                          "--components": components, "--time": time_column})
    if table is not None:
        return _train_table(table, id_column=id_column, target=target, churn_value=churn_value,
                            components=components, time_column=time_column, as_of=as_of, config=config,
                            model_name=model_name)
    cfg = _config(config)
    outcome = train_job(data, config=cfg, as_of=_parse_date(as_of, "--as-of"), model_name=model_name or None,
                        config_path=config, progress=_progress(quiet))
    # imported after: it imports the fitting code, which train_job imports beside the loading of the data
    from healthscore.reports.console import evaluation_table, fit_summary, group_table, weights_table

    r = outcome.result
    for w in r.warnings:
        err_console.print(f"warning: {w}", markup=False)
    console.print(fit_summary(r, "newer renewals"))
    console.print(evaluation_table(r.evaluation))
    for group in ("lead_time_days", "segment"):
        console.print(group_table(r.evaluation, group))
    console.print(weights_table(r.component_weights))
    console.print(
        f"registered [bold]{outcome.model_name}[/bold] version {outcome.version} as @{outcome.alias} "
        f"(run {outcome.run_id})"
    )
    from healthscore import tracking

    console.print(f"model report: {tracking.artifact_uri(outcome.run_id, 'reports/model_report.html')}", markup=False,
                  soft_wrap=True)
    _print_aliases(outcome.model_name, outcome.version, outcome.alias)


def _print_aliases(model_name: str, version: str, alias: str) -> None:
    """The registry's aliases as they are now (read back, so concurrent runs print what they left)."""
    from healthscore import tracking

    aliases = tracking.model_aliases(model_name)
    if aliases:
        shown = ", ".join(f"@{a} → version {v}" for a, v in sorted(aliases.items()))
        console.print(f"{model_name} aliases now: {shown}", markup=False)
    if aliases.get(alias) != str(version):
        console.print(f"note: @{alias} has moved to version {aliases.get(alias) or '(none)'} since this run set it "
                      f"to version {version} (another run registered after it)", markup=False)
    champion = aliases.get(tracking.CHAMPION)
    if alias == tracking.CHALLENGER and champion and champion != str(version):
        tags = tracking.model_version_tags(model_name, champion)
        trained = tags.get("trained_as_of") or "an earlier dataset"
        console.print(
            f"next: version {version} is @challenger; the champion stays version {champion} (trained as of {trained}"
            f"{', data ' + tags['data_fingerprint'][:12] if tags.get('data_fingerprint') else ''}) and still scores. "
            f"Compare them on the newest renewals with `healthscore retrain`, or make this one champion with "
            f"`healthscore promote {version} --reason \"…\"`.", markup=False, soft_wrap=True)


@app.command()
def score(
    out: Annotated[Path, typer.Option("--out", help="Output directory (scores, explanations, history, portfolio).")],
    data: OptDataOpt = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Observation date (YYYY-MM-DD, with --data): "
                                                 "score every account from data before this day only.")]
    = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Model URI; default models:/NAME@champion.")] = None,
    config: ConfigOpt = None,
    model_name: ModelNameOpt = "",
    quiet: QuietOpt = False,
    table: TableOpt = None,
    id_column: IdOpt = None,
    lock_timeout: Annotated[float, typer.Option(
        "--lock-timeout", min=0, help="Seconds to wait while another score run writes into --out "
        "(default 0: fail at once, exit status 75).")] = 0.0,
    allow_stale: Annotated[bool, typer.Option(
        "--allow-stale/--no-allow-stale", help="Score even when --as-of is past freshness.max_lag_days after "
        "the end of a table the model uses; every row is marked stale_data with its data_through.")] = False,
    allow_missing: Annotated[Optional[list[str]], typer.Option(
        "--allow-missing", metavar="TABLE", help="Score without TABLE although the model learned from it "
        "(repeat for several); every row names it in missing_tables.")] = None,
    site: Annotated[Optional[Path], typer.Option(
        "--site", metavar="DIR", help="Also build the offline portfolio site of the new batch in DIR "
        "(healthscore site).")] = None,
) -> None:
    """Score every account as of a date (or every row of a --table): probability, score, band, contributions."""
    from healthscore.jobs.score import score_job

    _source(data, table, {"--id": id_column})
    if table is not None:
        from healthscore.jobs.score import score_table_job

        if allow_stale or allow_missing or as_of:
            raise HealthscoreError("--as-of, --allow-stale and --allow-missing only apply with --data")
        done = score_table_job(table, out=out, config=_config(config), id_column=id_column, model_uri=model,
                               model_name=model_name or None, lock_timeout=lock_timeout)
        if done.report.entries or done.report.notes:
            console.print(f"read {table}:\n{done.report.render()}", markup=False)
        s = done.scores
        console.print(f"scored {int((s['status'] == 'scored').sum())} of {len(s)} rows with model version "
                      f"{done.model_version}; outputs in {out}")
        if site is not None:
            _print_site(_build_site(out, site, config=_config(config)))
        return
    if as_of is None:
        raise HealthscoreError("--as-of is required with --data: the date to score as of, like 2025-06-30")
    cfg = _config(config)
    outcome = score_job(data, as_of=_parse_date(as_of, "--as-of"), out=out, config=cfg, model_uri=model,
                        model_name=model_name or None, progress=_progress(quiet), lock_timeout=lock_timeout,
                        allow_stale=allow_stale, allow_missing=tuple(allow_missing or ()))
    for note in outcome.notes:
        err_console.print(f"note: {note}", markup=False, soft_wrap=True)
    if not quiet:
        # imported once scored: the model's modules are imported beside the data's scan (jobs.score)
        from healthscore.reports.console import at_risk_table, portfolio_summary

        console.print(at_risk_table(outcome.batch.scores))
        console.print(portfolio_summary(outcome.batch.portfolio))
    s = outcome.batch.scores
    console.print(
        f"scored {int((s['status'] == 'scored').sum())} of {len(s)} accounts with model version "
        f"{outcome.model_version} ({outcome.trained_on}); outputs in {out}"
    )
    from healthscore.drift import drift_warnings

    for line in drift_warnings(outcome.batch.drift):
        console.print(line, markup=False)
    if site is not None:
        _print_site(_build_site(out, site, config=cfg))


def _build_site(scores: Path, out: Path, **kwargs):
    from healthscore.reports.site import build_site

    return build_site(scores, out, **kwargs)


def _print_site(result) -> None:
    extra = f", {result.shared} customer reports" if result.shared else ""
    console.print(f"site written to {result.root}: {result.accounts} account pages, {result.csms} CSM books{extra}; "
                  f"open {result.index}", markup=False, soft_wrap=True)


@app.command(name="site")
def site_command(
    scores: Annotated[Path, typer.Option("--scores", help="Output folder of `healthscore score` (its current batch).")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the site into (replaced as a whole).")],
    share: Annotated[bool, typer.Option("--share/--no-share", help="Also write every scored account's "
                                        "customer-facing report (share/), linked from its page.")] = False,
    reports: Annotated[Optional[Path], typer.Option(
        "--reports", help="Folder holding model_report.html (train) and/or backtest.html (backtest), shown on the "
        "model page.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Build the offline portfolio site of a score batch: index, CSM books, account pages, the model page."""
    _print_site(_build_site(scores, out, config=_config(config), share=share, reports=reports))


@app.command()
def share(
    account_id: Annotated[str, typer.Argument(metavar="ACCOUNT_ID", help="The account (exact account_id).")],
    scores: Annotated[Path, typer.Option("--scores", help="Output folder of `healthscore score` (its current batch).")],
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")],
    config: ConfigOpt = None,
) -> None:
    """Write the health report to share with the customer: their score, how it is measured, trend, peers, next steps."""
    from healthscore.reports.share import write_share

    path = write_share(account_id, scores, out, config=_config(config))
    console.print(f"customer report written to {path}", markup=False)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where the demo writes its world, scores and reports.")] = Path(
        "outputs"
    ),
    accounts: Annotated[int, typer.Option("--accounts", help="Accounts in the simulated world.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated world.")] = 7,
    config: ConfigOpt = None,
) -> None:
    """Simulate a world, train, score, backtest and build the site, all under --out (its own MLflow store)."""
    from healthscore.jobs.demo import demo_job

    result = demo_job(out, config=_config(config), accounts=accounts, seed=seed, console=console,
                      progress=_progress(False))
    console.print(
        f"\noutputs: data in {result['data']}, scores/explanations/history/portfolio in {result['scores']}, "
        f"MLflow store {result['store']} (its own, under --out)\n"
        f"explain one account: healthscore explain --scores {result['scores']} ACCOUNT_ID --html account.html"
    )


@app.command()
def explain(
    account_id: Annotated[str, typer.Argument(metavar="ACCOUNT_ID", help="The account to explain (exact account_id).")],
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


@app.command()
def retrain(
    data: DataOpt,
    as_of: TrainAsOfOpt = None,
    config: ConfigOpt = None,
    model_name: ModelNameOpt = "",
    shuffle_labels: Annotated[
        Optional[int], typer.Option("--shuffle-labels", hidden=True, help="Seed: train on permuted outcomes.")
    ] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for the comparison report and its tables "
                                                "(they are logged with the run either way).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a challenger; promote it to champion only if it is no worse on the newest renewals."""
    from healthscore.drift import drift_warnings
    from healthscore.jobs.retrain import retrain_job
    from healthscore.reports.console import holdout_table

    cfg = _config(config)
    outcome = retrain_job(data, config=cfg, as_of=_parse_date(as_of, "--as-of") if as_of else None,
                          model_name=model_name or None, config_path=config, shuffle_labels_seed=shuffle_labels,
                          out=out, progress=_progress(quiet))
    console.print(holdout_table(outcome.holdout, outcome.comparison, champion_version=outcome.champion_version,
                                challenger_version=outcome.version))
    for line in outcome.reasons:
        console.print(f"  - {line}", markup=False)
    for note in outcome.notes:
        console.print(f"note: {note}", markup=False)
    for line in drift_warnings(outcome.drift):
        console.print(line, markup=False)
    console.print(f"decision: {outcome.decision} — {outcome.reason}", markup=False)
    where = f"{out / 'retrain_report.html'} and " if out is not None else ""
    console.print(f"{outcome.model_name} version {outcome.version} tagged decision={outcome.decision}; "
                  f"comparison report: {where}run {outcome.run_id} (artifact retrain/retrain_report.html)",
                  markup=False)


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Model version number to make champion.")],
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded on the model version.")],
    config: ConfigOpt = None,
    model_name: ModelNameOpt = "",
) -> None:
    """A recorded human override: point the champion alias at VERSION."""
    from healthscore.jobs.retrain import promote_job

    outcome = promote_job(version, reason, config=_config(config), model_name=model_name or None)
    if not outcome.changed:
        console.print(f"{outcome.model_name} version {outcome.version} is already champion; nothing changed")
        return
    console.print(f"{outcome.model_name} @champion: version {outcome.previous or '(none)'} → {outcome.version} "
                  f"(override by {outcome.tags['override_by']}, recorded on both versions)", markup=False)


@app.command()
def backtest(
    data: DataOpt,
    model: Annotated[
        Optional[list[str]],
        typer.Option("--model", help="Model URI; repeat to compare. Default: champion (and challenger)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="HTML report to write.")] = Path("backtest.html"),
    config: ConfigOpt = None,
    model_name: ModelNameOpt = "",
) -> None:
    """Score past renewals point-in-time and compare with what happened: an HTML report, logged to MLflow."""
    from healthscore.jobs.backtest import backtest_job
    from healthscore.reports.console import backtest_table

    outcome = backtest_job(data, config=_config(config), model_uris=model or None, out=out,
                           model_name=model_name or None)
    for w in outcome.result.warnings:
        err_console.print(f"warning: {w}", markup=False)
    console.print(backtest_table(outcome.result))
    console.print(f"report written to {outcome.path} and logged to run {outcome.run_id}", markup=False)
