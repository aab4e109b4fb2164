"""``score``: every account as of a date (or every row of a flat table), written as one batch (CONTRACT §4, §6)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from healthscore import gates
from healthscore.config import Config
from healthscore.errors import TrackingError
from healthscore.io import load_dataset
from healthscore.io.output import OutputDir
from healthscore.jobs._side_by_side import side_by_side
from healthscore.reports.progress import NO_PROGRESS, Progress

if TYPE_CHECKING:
    from healthscore import tracking
    from healthscore.scoring import ScoreBatch

# MLflow, the model and scoring (mlflow, scikit-learn, LightGBM: about 4 s of imports) are imported where they
# are used, so that ``score_job`` can import them beside the scan of the data (``load_model_and_data``)


@dataclass
class ScoreOutcome:
    batch: ScoreBatch
    paths: dict[str, Path]
    model_version: str
    #: what the run wants the user to know: a stale lock taken over, leftovers removed, gates overridden
    notes: list[str] = dataclasses.field(default_factory=list)
    readiness: Any = None  # gates.Readiness
    #: which data the model learned from, in words ("trained as of 2024-01-01 on data 3f9a1c…")
    trained_on: str = ""


@dataclass
class TableScoreOutcome:
    scores: pd.DataFrame
    explanations: pd.DataFrame
    paths: dict[str, Path]
    model_version: str
    report: Any  # io.flat_table.CoercionReport


def champion_uri(model_uri: str | None, model_name: str | None, config: Config) -> str:
    """The model to score with: ``--model``, else the champion of ``--model-name`` (or the configured name)."""
    return model_uri or f"models:/{model_name or config.tracking.model_name}@champion"


def score_job(
    data: str | Path,
    *,
    as_of: date,
    out: str | Path,
    config: Config,
    model_uri: str | None = None,
    model_name: str | None = None,
    progress: Progress = NO_PROGRESS,
    lock_timeout: float = 0.0,
    allow_stale: bool = False,
    allow_missing: tuple[str, ...] = (),
) -> ScoreOutcome:
    """Score every account as of a date with a registered model; write CONTRACT §4's outputs as one batch.

    The output folder is checked (writable, room for about twice the last batch) and locked before any
    work, and stays locked until the new batch is current (CONTRACT §6): a second run into the same
    folder waits up to ``lock_timeout`` seconds, then fails. The gates (``gates.check``) run once model
    and data are loaded, before scoring.
    """
    gates.check_date(as_of)
    uri = champion_uri(model_uri, model_name, config)
    out = Path(out)
    with OutputDir(out, lock_timeout=lock_timeout, keep_batches=config.output.keep_batches) as od:
        with progress.step(f"loading model {uri} and data from {data}"):
            loaded, ds = load_model_and_data(uri, data, as_of)
        from healthscore.scoring import explanations_schema, score_batch, write_batch  # imported by the model

        readiness, notes = gates.check(ds, as_of, loaded.model, config, allow_stale=allow_stale,
                                       allow_missing=allow_missing)
        previous = od.current.read("history.parquet") if od.current is not None else None
        # the long explanations table is streamed to a file in the folder as it is computed, never held whole
        # (issue 18); publishing moves it into the batch, and a failure before that removes it
        streamed = od.stream("explanations.parquet", explanations_schema())
        try:
            with progress.step(f"scoring {len(ds.accounts):,} accounts as of {as_of} (features, model, "
                               "explanations)", total=len(ds.accounts)):
                batch = score_batch(ds, as_of, loaded, config, previous_history=previous,
                                    progress=progress.advance, readiness=readiness, explanations_stream=streamed)
            with progress.step(f"writing outputs to {out}"):
                info = {"model_uri": uri, "data_source": str(data), "data_fingerprint": ds.fingerprint,
                        **readiness.manifest()}
                paths = write_batch(batch, od, info=info)
            batch.explanations_file = paths.get("explanations.parquet", batch.explanations_file)
        finally:
            streamed.discard()  # moved into the batch when published; otherwise removed
    trained_on, known = _trained_on(loaded, batch)
    if uri.startswith(("models:/", "runs:/")):  # a model from the store: the batch is recorded beside it
        from healthscore import tracking

        try:
            tracking.log_run(batch_record(batch, loaded, uri=uri, data=data, fingerprint=ds.fingerprint))
        except TrackingError as exc:  # the batch is published already: say so, do not fail the run
            known.append(f"the batch was written but not recorded in MLflow ({exc})")
    return ScoreOutcome(batch=batch, paths=paths, model_version=loaded.version, trained_on=trained_on,
                        notes=[*ds.warnings, *od.notes, *notes, *known], readiness=readiness)


def _load_model(uri: str):
    from healthscore import tracking  # mlflow's import, on this thread while the other scans the data

    return tracking.load_model(uri)


def load_model_and_data(uri: str, data: str | Path, as_of: date | None = None):
    """(the loaded model, the dataset), loaded side by side (``jobs.side_by_side``): the model here, the data
    on a thread of its own. A model that cannot be loaded is reported first, at once; then the data's.
    ``as_of``: the data's scan also finds what the gates ask of it (each table's last record before it)."""
    return side_by_side(lambda: _load_model(uri), lambda: load_dataset(data, before=as_of))


#: the experiment every score batch is recorded in (one run per batch)
BATCH_EXPERIMENT = "healthscore-batches"


def batch_record(batch: ScoreBatch, loaded, *, uri: str, data, fingerprint: str) -> tracking.RunRecord:
    """One score batch as a run: as-of, model version, counts by band and status, the drift summary."""
    from healthscore import tracking

    s = batch.scores
    as_of = str(pd.Timestamp(s["as_of"].iloc[0]).date()) if len(s) else ""
    metrics = {"accounts": float(len(s))}
    metrics.update({f"status.{k}": float(v) for k, v in s["status"].value_counts().items()})
    metrics.update({f"band.{k}": float(v) for k, v in s["band"].value_counts().items()})
    metrics.update({"alerts": float(s["alert"].notna().sum())})
    drift = batch.drift
    if drift is not None and len(drift):
        metrics.update({f"drift.{level}": float(n) for level, n in drift["level"].value_counts().items()})
    return tracking.RunRecord(
        experiment=BATCH_EXPERIMENT, run_name=f"score-{as_of}",
        params={"as_of": as_of, "model_uri": uri, "model_version": str(loaded.version), "data_source": str(data)},
        metrics=metrics, tags={"job": "score", "data_fingerprint": fingerprint, "model_version": str(loaded.version)},
        dicts={"drift.json": json.loads(drift.to_json(orient="records", date_format="iso"))} if drift is not None
        else {},
    )


#: below this share of scored accounts known to the model's training data, score says so
KNOWN_ACCOUNTS_WARN = 0.5


def _trained_on(loaded, batch: ScoreBatch) -> tuple[str, list[str]]:
    """The model's training data in words, and a note when few scored accounts were in it."""
    from healthscore.model.card import share_known

    meta = loaded.model.metadata or {}
    fingerprint = str(meta.get("data_fingerprint", ""))[:12]
    text = f"trained as of {meta.get('trained_as_of', 'unknown')}" + (f" on data {fingerprint}" if fingerprint else "")
    s = batch.scores
    share = share_known(loaded.model, s.loc[s["status"] == "scored", "account_id"])
    notes = []
    if share is not None and share < KNOWN_ACCOUNTS_WARN:
        notes.append(f"only {share:.0%} of the accounts scored were in the data model version {loaded.version} was "
                     f"{text}: is this the model for this data? (--model URI or --model-name NAME to choose)")
    return text, notes


def score_table_job(
    table: str | Path,
    *,
    out: str | Path,
    config: Config,
    id_column: str | None = None,
    model_uri: str | None = None,
    model_name: str | None = None,
    lock_timeout: float = 0.0,
) -> TableScoreOutcome:
    """Score every row of a flat table with a model trained by ``train_table_job``; write scores as one batch.

    One output row per input row, in input order, keyed ``account_id`` (the ``--id`` column's value, or the
    row's 1-based position when there is none); a row with every feature empty gets status ``no_features``.
    The output folder is checked and locked first and the files are published as one batch, as for
    ``score_job``.
    """
    from healthscore import tracking
    from healthscore.io.flat_table import read_table
    from healthscore.io.write import round_for_csv
    from healthscore.model.flat_table import features_for_scoring
    from healthscore.scoring import score_table

    uri = champion_uri(model_uri, model_name, config)
    with OutputDir(Path(out), lock_timeout=lock_timeout, keep_batches=config.output.keep_batches) as od:
        loaded = tracking.load_model(uri)
        ids, feats, report = features_for_scoring(read_table(table), loaded.model, id_column=id_column,
                                                  table=Path(table).name)
        scored = score_table(ids, feats, loaded, config)
        published = od.publish({"scores.parquet": scored.scores, "scores.csv": round_for_csv(scored.scores),
                                "explanations.parquet": scored.explanations},
                               as_of=None, info={"model_version": loaded.version, "model_uri": uri,
                                                 "table": str(table), "accounts": int(len(scored.scores))})
        paths = {name: od.root / name for name in published.files}
    return TableScoreOutcome(scores=scored.scores, explanations=scored.explanations, paths=paths,
                             model_version=loaded.version, report=report)
