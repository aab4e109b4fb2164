"""The batch for CS ops: every account scored, adjusted, banded, trended, alerted, with a play and a rollup.

One row per account in ``accounts`` (none lost: unscorable accounts keep a row with a status), in
``account_id`` order, so the same inputs and model give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from healthscore import gates
from healthscore.config import Config
from healthscore.drift import psi_table
from healthscore.explain import (
    CHUNK_ROWS,
    CONTRIB_COLUMNS,
    DRIVER_COLUMNS,
    EXPLANATION_COLUMNS,
    Explained,
    explain_rows,
)
from healthscore.features import build_features
from healthscore.io.output import OutputDir, read_current
from healthscore.io.write import round_for_csv
from healthscore.model.card import features_config_of
from healthscore.scoring.adjustments import apply_adjustments
from healthscore.scoring.alerts import add_alerts
from healthscore.scoring.bands import band_of
from healthscore.scoring.playbooks import choose_plays
from healthscore.scoring.portfolio import peer_percentile, portfolio
from healthscore.timeline import scoring_rows

SCORE_COLUMNS = (
    "account_id", "name", "segment", "csm", "as_of", "status", "contract_id", "renewal_date", "arr",
    "probability", "model_score", "adjustment", "adjustment_reasons", "score", "band", "baseline",
    *CONTRIB_COLUMNS, "driver_1", "driver_2", "driver_3", "positive_driver", "previous_score", "delta", "alert",
    "lifecycle_stage", "weakest_component", "playbook", "playbook_steps", "playbook_owner", "playbook_due", "advocate",
    "peer_percentile", "data_through", "stale_data", "missing_tables", "model_version",
)
HISTORY_COLUMNS = ("account_id", "as_of", "status", "probability", "model_score", "adjustment", "score", "band",
                   *CONTRIB_COLUMNS, "model_version")


@dataclass
class ScoreBatch:
    scores: pd.DataFrame
    #: the long table in memory; None when it was streamed to ``explanations_file``
    explanations: pd.DataFrame | None
    history: pd.DataFrame
    portfolio: pd.DataFrame
    features: pd.DataFrame
    drift: pd.DataFrame | None = None
    #: the long table as a finished Parquet file (``score_batch(explanations_to=…)``), moved into the batch
    explanations_file: Path | None = None


def explanations_schema() -> pa.Schema:
    """The Arrow schema of ``explanations.parquet``: text as ``large_string``, the pandas metadata of the
    frame ``score_batch`` holds in memory (so under pandas 3 the streamed file is that frame's bytes)."""
    text = pa.chunked_array([], pa.large_string()).to_pandas()
    frame = pd.DataFrame({"account_id": text, "as_of": pd.Series([], dtype="datetime64[ns]"), "feature": text,
                          "component": text, "value": text, "contribution": pd.Series([], dtype="float64")})
    types = {"as_of": pa.timestamp("ns"), "contribution": pa.float64()}
    fields = [pa.field(c, types.get(c, pa.large_string())) for c in frame.columns]
    return pa.schema(fields, metadata=pa.Schema.from_pandas(frame, preserve_index=False).metadata)


def _with_as_of(table: pa.Table, as_of: date) -> pa.Table:
    stamp = pa.array(np.full(table.num_rows, np.datetime64(pd.Timestamp(as_of), "ns")), pa.timestamp("ns"))
    return table.add_column(1, "as_of", stamp)


def _account_frame(ds, rows: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The batch's first columns: who each account is, its status and its current contract."""
    accounts = ds.accounts.set_index(ds.accounts["account_id"].astype(str))
    ids = rows["account_id"].astype(str)
    out = pd.DataFrame({"account_id": ids})
    for col in ("name", "segment", "csm"):
        out[col] = accounts[col].reindex(ids).to_numpy() if col in accounts else None
    out["segment"] = out["segment"].astype("object").fillna("unknown")
    out["as_of"] = pd.Timestamp(as_of)
    out["status"] = rows["status"].to_numpy()
    out["contract_id"] = rows["contract_id"].to_numpy()
    out["renewal_date"] = pd.to_datetime(rows["renewal_date"]).to_numpy()
    out["arr"] = pd.to_numeric(rows["arr"], errors="coerce").to_numpy()
    return out


def _add_model_columns(out: pd.DataFrame, scored: np.ndarray, ex: Explained | None) -> pd.DataFrame:
    """Probability, model score, baseline, component points and drivers of the scored rows (empty elsewhere)."""
    for col in ("probability", "model_score", "baseline", *CONTRIB_COLUMNS):
        out[col] = np.nan
    if ex is not None:
        out.loc[scored, "probability"] = ex.probability
        out.loc[scored, "model_score"] = np.round(100.0 * ex.probability)
        out.loc[scored, "baseline"] = ex.baseline
        out.loc[scored, list(CONTRIB_COLUMNS)] = ex.component_points.to_numpy()
        for col in ex.drivers.columns:
            out[col] = None
            out.loc[scored, col] = ex.drivers[col].to_numpy()
    for col in DRIVER_COLUMNS:
        if col not in out:
            out[col] = None
    return out


def score_batch(ds, as_of: date, loaded, config: Config, *, previous_history: pd.DataFrame | None = None,
                progress: Callable[[int, int], None] | None = None, chunk_rows: int = CHUNK_ROWS,
                readiness=None, explanations_stream=None) -> ScoreBatch:
    """Score every account in ``ds.accounts`` as of ``as_of`` with a loaded model (tracking.LoadedModel).

    Scored rows are explained ``chunk_rows`` at a time (the result does not depend on it);
    ``progress(rows_done, rows_total)`` is called after each step, counting scored rows only.
    ``readiness`` is what the gates found (``gates.check``); without it they are assessed here, refusing
    nothing, so every row still says ``data_through``, ``stale_data`` and ``missing_tables``.
    ``explanations_stream`` (``write(table)``, ``close() -> Path``, e.g. ``OutputDir.stream``): the long
    explanations table goes to it step by step (``io.write.ParquetStream``: the same bytes as writing it
    whole) instead of being held, so memory no longer grows with accounts × features; the batch then
    carries the finished file (``explanations_file``).
    """
    model = loaded.model
    if readiness is None:
        readiness = gates.assess(ds, as_of, model, config)
    rows = scoring_rows(ds, as_of).reset_index(drop=True)
    feats = build_features(ds, rows, config=features_config_of(model, config.features)).reset_index(drop=True)
    out = _account_frame(ds, rows, as_of)
    scored = (out["status"] == "scored").to_numpy()
    ex, drift = None, None
    explanations = pd.DataFrame(columns=list(EXPLANATION_COLUMNS))
    stream = explanations_stream
    if scored.any():
        sink = (lambda table: stream.write(_with_as_of(table, as_of))) if stream is not None else None
        ex = explain_rows(model, feats[scored], out.loc[scored, "account_id"].to_numpy(),
                          chunk_rows=chunk_rows, progress=progress, min_points=config.explain.min_points, sink=sink)
        drift = psi_table(model, ex.X, probability=ex.probability, config=config.drift)
        drift.insert(0, "as_of", pd.Timestamp(as_of))
        explanations = ex.explanations
    out = _add_model_columns(out, scored, ex)
    ex = None  # the model matrix, points and driver frames are in ``out`` now: let them go before the rest
    out = apply_adjustments(out, ds, feats, as_of, config)
    out["band"] = band_of(out["score"], config)
    out = add_alerts(out, previous_history, as_of, config)
    plays = choose_plays(out, feats, as_of, config)
    for col in plays.columns:
        out[col] = plays[col].to_numpy()
    out["peer_percentile"] = peer_percentile(out)
    through = readiness.data_through
    out["data_through"] = pd.Series(through if through is not None else pd.NaT, index=out.index,
                                    dtype="datetime64[ns]")
    out["stale_data"] = readiness.stale_data
    out["missing_tables"] = ", ".join(readiness.missing) or None
    out["model_version"] = loaded.version
    out = out[list(SCORE_COLUMNS)].sort_values("account_id", kind="stable").reset_index(drop=True)
    history = update_history(previous_history, out)
    # closed last: the stream's last row groups are written on its own thread while the rest was computed. A
    # disk error on that thread is raised here, after the steps above; if one of those fails first, its
    # error is the one reported and the caller's discard() removes the stream's file
    explanations_file = stream.close() if stream is not None else None
    return ScoreBatch(scores=out, explanations=None if stream is not None else explanations.reset_index(drop=True),
                      history=history, portfolio=portfolio(out), features=feats, drift=drift,
                      explanations_file=explanations_file)


@dataclass
class TableScores:
    """A flat table scored: one row per input row, and the long explanations of the scored ones."""

    scores: pd.DataFrame
    explanations: pd.DataFrame


def score_table(ids: pd.Series, feats: pd.DataFrame, loaded, config: Config) -> TableScores:
    """Score the rows of a flat feature table (``model.flat_table.features_for_scoring``) with the same engine.

    One output row per input row, in input order. A row with every feature empty gets status
    ``no_features`` and no score: a score from nothing would only be the average account's.
    """
    model = loaded.model
    feats = feats.reset_index(drop=True)
    out = pd.DataFrame({"account_id": ids.to_numpy()})
    scored = feats.notna().any(axis=1).to_numpy() if feats.shape[1] else np.zeros(len(feats), dtype=bool)
    out["status"] = np.where(scored, "scored", "no_features")
    ex = explain_rows(model, feats[scored], out.loc[scored, "account_id"].to_numpy(),
                      min_points=config.explain.min_points) if scored.any() else None
    out = _add_model_columns(out, scored, ex)
    out.insert(out.columns.get_loc("baseline"), "score", out["model_score"])
    out["band"] = band_of(out["score"], config)
    out = out[[c for c in out.columns if c not in DRIVER_COLUMNS] + list(DRIVER_COLUMNS)]
    out["model_version"] = loaded.version
    explanations = ex.explanations if ex is not None else pd.DataFrame(columns=list(EXPLANATION_COLUMNS))
    return TableScores(scores=out, explanations=explanations.reset_index(drop=True))


def batch_drift(ds, as_of: date, model, config: Config) -> pd.DataFrame | None:
    """PSI of the batch scored as of ``as_of`` against the model's training rows (None if nothing is active)."""
    rows = scoring_rows(ds, as_of)
    scored = (rows["status"] == "scored").to_numpy()
    if not scored.any():
        return None
    feats = build_features(ds, rows, config=features_config_of(model, config.features))
    X = model.prepare(feats[scored])
    return psi_table(model, X, probability=model.predict_proba(X), config=config.drift)


def update_history(previous: pd.DataFrame | None, scores: pd.DataFrame) -> pd.DataFrame:
    """Append this run; a rerun for the same as-of date replaces that date's rows."""
    new = scores[list(HISTORY_COLUMNS)]
    if previous is None or previous.empty:
        hist = new
    else:
        as_of = new["as_of"].iloc[0]
        hist = pd.concat([previous[pd.to_datetime(previous["as_of"]) != as_of], new], ignore_index=True)
    return hist.sort_values(["as_of", "account_id"], kind="stable").reset_index(drop=True)


def keep_per_as_of(previous: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """``new`` added to the rows of ``previous`` for other as-of dates, ordered by as-of date (like history).

    Rows of ``previous`` without an ``as_of`` (written before tables carried it) are dropped.
    """
    if previous is None or previous.empty or "as_of" not in previous or "as_of" not in new or new.empty:
        return new.reset_index(drop=True)
    new = new.assign(as_of=pd.to_datetime(new["as_of"]).astype("datetime64[ns]"))
    previous = previous.assign(as_of=pd.to_datetime(previous["as_of"], errors="coerce").astype("datetime64[ns]"))
    kept = previous[previous["as_of"].notna() & (previous["as_of"] != new["as_of"].iloc[0])]
    out = pd.concat([kept, new], ignore_index=True) if len(kept) else new
    return out.sort_values("as_of", kind="stable").reset_index(drop=True)


def batch_tables(batch: ScoreBatch, previous=None) -> dict[str, pd.DataFrame | Path]:
    """The files of one batch (CONTRACT §4, §6): portfolio and drift keep earlier as-of dates' rows."""
    as_of = pd.Timestamp(batch.scores["as_of"].iloc[0]) if len(batch.scores) else pd.NaT
    if batch.explanations is None:  # streamed: the finished file is moved into the batch
        explanations = batch.explanations_file
    else:
        explanations = batch.explanations.copy(deep=False)  # a new column only: the rows are not copied
        if "as_of" not in explanations:
            explanations.insert(1, "as_of", pd.Series(as_of, index=explanations.index, dtype="datetime64[ns]"))
    drift = batch.drift if batch.drift is not None else pd.DataFrame({"as_of": pd.Series([], dtype="datetime64[ns]")})
    return {
        "scores.parquet": batch.scores,
        "scores.csv": round_for_csv(batch.scores),
        "explanations.parquet": explanations,
        "history.parquet": batch.history,
        "portfolio.csv": round_for_csv(keep_per_as_of(previous.read("portfolio.csv") if previous else None,
                                                      batch.portfolio)),
        "drift.csv": round_for_csv(keep_per_as_of(previous.read("drift.csv") if previous else None, drift)),
    }


def write_batch(batch: ScoreBatch, out, *, info: dict | None = None, lock_timeout: float = 0.0,
                keep_batches: int = 0) -> dict[str, Path]:
    """Write the batch into the output folder as one all-or-nothing batch and make it current (CONTRACT §6).

    ``out`` is a folder (its lock is taken for the write) or an ``io.output.OutputDir`` already held by the
    caller, which then also read the previous history under that lock. Returns the top-level path of each
    file (``OUT/scores.parquet`` …, each a link to the current batch's file).
    """
    if not isinstance(out, OutputDir):
        with OutputDir(Path(out), lock_timeout=lock_timeout, keep_batches=keep_batches) as held:
            return write_batch(batch, held, info=info)
    s = batch.scores
    as_of = pd.Timestamp(s["as_of"].iloc[0]).date().isoformat() if len(s) else None
    versions = sorted(set(s["model_version"].astype(str))) if "model_version" in s and len(s) else []
    info = {"model_version": versions[0] if len(versions) == 1 else versions,
            "accounts": int(len(s)), "scored": int((s["status"] == "scored").sum()) if len(s) else 0,
            **(info or {})}
    published = out.publish(batch_tables(batch, out.current), as_of=as_of, info=info)
    return {name: out.root / name for name in published.files}


def read_history(out: Path) -> pd.DataFrame | None:
    """The history of the output folder's current batch (checked against its manifest), or None."""
    current = read_current(out)
    return current.read("history.parquet") if current is not None else None
