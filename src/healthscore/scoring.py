"""The batch for CS ops: every account scored, adjusted, banded, trended, alerted, with a play and a rollup.

One row per account in ``accounts`` (none lost: unscorable accounts keep a row with a status), in
``account_id`` order, so the same inputs and model give byte-identical files.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from healthscore.config import Config, FeaturesConfig, Play
from healthscore.explain import CONTRIB_COLUMNS, spread_points

SCORE_COLUMNS = (
    "account_id", "name", "segment", "csm", "as_of", "status", "contract_id", "renewal_date", "arr",
    "probability", "model_score", "adjustment", "adjustment_reasons", "score", "band", "baseline",
    *CONTRIB_COLUMNS, "driver_1", "driver_2", "driver_3", "positive_driver", "previous_score", "delta", "alert",
    "lifecycle_stage", "weakest_component", "playbook", "playbook_owner", "playbook_due", "advocate",
    "peer_percentile", "data_through", "stale_data", "missing_tables", "model_version",
)
HISTORY_COLUMNS = ("account_id", "as_of", "status", "probability", "model_score", "adjustment", "score", "band",
                   *CONTRIB_COLUMNS, "model_version")
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}


@dataclass
class ScoreBatch:
    scores: pd.DataFrame
    explanations: pd.DataFrame
    history: pd.DataFrame
    portfolio: pd.DataFrame
    features: pd.DataFrame
    drift: pd.DataFrame | None = None


def band_of(score: pd.Series, config: Config) -> pd.Series:
    """healthy ≥ bands.healthy, watch ≥ bands.watch, else at_risk; missing score → empty."""
    s = pd.to_numeric(score, errors="coerce")
    band = np.where(s >= config.bands.healthy, "healthy", np.where(s >= config.bands.watch, "watch", "at_risk"))
    return pd.Series(np.where(s.isna(), None, band), index=score.index, dtype="object")


#: scored rows per step: TreeSHAP, points and text work on one step's arrays at a time, so working memory
#: stays that of 200k rows at any batch size (the results themselves still grow with the batch)
CHUNK_ROWS = 200_000


BAND_RANK = {"healthy": 2, "watch": 1, "at_risk": 0}


def feature_points(model, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, float]:
    """Per-feature contributions in points (they sum to 100·p − baseline), the probability and the baseline."""
    contrib, expected = model.contributions(X)
    phi = contrib.to_numpy(dtype=float)
    margin = phi.sum(axis=1) + expected
    probability = model.calibrator.predict(margin)
    baseline = model.baseline_points
    points = spread_points(phi, probability, baseline)
    return pd.DataFrame(points, columns=contrib.columns, index=X.index), probability, baseline


def active_adjustments(ds, as_of: date, config: Config) -> pd.DataFrame:
    """CSM adjustments active at ``as_of``: created before it and not yet expired (default expiry from config)."""
    adj = ds.adjustments
    if adj is None or adj.empty:
        return pd.DataFrame(columns=["account_id", "points", "reason"])
    T = pd.Timestamp(as_of)
    expires = adj["expires_at"].where(
        adj["expires_at"].notna(), adj["created_at"].dt.normalize() + pd.Timedelta(days=config.adjustments.default_expiry_days)
    )
    active = adj[(adj["created_at"] < T) & (expires > T)].copy()
    author = active["author"].astype("object") if "author" in active else pd.Series(None, index=active.index)
    active["reason"] = [
        f"{r} ({a})" if isinstance(a, str) and a else str(r) for r, a in zip(active["reason"], author)
    ]
    return active.sort_values(["account_id", "created_at", "reason"], kind="stable")[["account_id", "points", "reason"]]


def rule_adjustments(rows: pd.DataFrame, feats: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Points from config rules (default: no EBR in 6 months for mid_market/enterprise → −10)."""
    out = []
    for rule in config.adjustments.rules:
        if rule.feature not in feats.columns:
            continue
        values = pd.to_numeric(feats[rule.feature], errors="coerce")
        hit = _OPS[rule.op](values, rule.value).fillna(False).to_numpy(dtype=bool, copy=True)
        if rule.missing_is_true:
            hit |= values.isna().to_numpy()
        if rule.segments:
            hit &= rows["segment"].astype(str).isin(rule.segments).to_numpy()
        hit &= (rows["status"] == "scored").to_numpy()
        for acc in rows.loc[hit, "account_id"]:
            out.append({"account_id": acc, "points": float(rule.points), "reason": rule.reason})
    return pd.DataFrame(out, columns=["account_id", "points", "reason"])


def _play_text(play: Play) -> str:
    return f"{play.name}: " + "; ".join(play.steps)


def choose_plays(scores: pd.DataFrame, feats: pd.DataFrame, as_of: date, config: Config) -> pd.DataFrame:
    """Lifecycle stage, weakest component, the play (name: steps), its owner and due date, advocate flag."""
    pb = config.playbooks
    tenure = pd.to_numeric(feats.get("tenure_days"), errors="coerce") if "tenure_days" in feats else None
    to_renewal = pd.to_numeric(feats.get("days_to_renewal"), errors="coerce") if "days_to_renewal" in feats else None
    stage = pd.Series("adopting", index=scores.index, dtype="object")
    if to_renewal is not None:
        stage[(to_renewal < pb.renewal_window_days).to_numpy()] = "renewal_window"
    if tenure is not None:
        stage[(tenure < pb.onboarding_days).to_numpy()] = "onboarding"
    stage[scores["status"] != "scored"] = None
    contrib = scores[list(CONTRIB_COLUMNS)].astype(float)
    weakest = contrib.fillna(np.inf).idxmin(axis=1).str.replace("contrib_", "", regex=False)
    weakest = weakest.where(scores["status"] == "scored")
    nps = pd.to_numeric(feats["nps_last"], errors="coerce") if "nps_last" in feats else pd.Series(np.nan, index=scores.index)
    advocate = (scores["band"] == "healthy") & (nps.to_numpy() >= pb.advocate_min_nps)
    plays, owners, dues = [], [], []
    due0 = pd.Timestamp(as_of)
    for band, comp, stg, adv in zip(scores["band"], weakest, stage, advocate):
        play = None
        if band == "healthy":
            play = pb.advocate if adv else None
        elif band == "at_risk" and stg == "renewal_window":
            play = pb.renewal_rescue
        elif band in ("watch", "at_risk"):
            play = pb.by_component.get(comp if stg != "onboarding" else "time_to_value") or pb.by_component.get(comp)
        plays.append(_play_text(play) if play else None)
        owners.append(play.owner if play else None)
        dues.append((due0 + timedelta(days=play.due_days)).strftime("%Y-%m-%d") if play else None)
    return pd.DataFrame(
        {"lifecycle_stage": stage, "weakest_component": weakest, "playbook": plays, "playbook_owner": owners,
         "playbook_due": dues, "advocate": advocate.astype(bool)},
        index=scores.index,
    )


def attach_history(scores: pd.DataFrame, history: pd.DataFrame | None, as_of: date, config: Config) -> pd.DataFrame:
    """previous_score/delta from the latest earlier as-of date; alert on a drop or a worse band, naming movers."""
    T = pd.Timestamp(as_of)
    out = scores.copy()
    out["previous_score"] = np.nan
    out["delta"] = np.nan
    out["alert"] = None
    if history is None or history.empty:
        return out
    earlier = history[pd.to_datetime(history["as_of"]) < T]
    if earlier.empty:
        return out
    earlier = earlier.sort_values(["account_id", "as_of"], kind="stable").groupby("account_id").tail(1)
    prev = earlier.set_index("account_id").reindex(out["account_id"])
    out["previous_score"] = prev["score"].to_numpy(dtype=float)
    out["delta"] = out["score"].astype(float) - out["previous_score"]
    alerts = []
    for i, (delta, band, pband) in enumerate(zip(out["delta"], out["band"], prev["band"])):
        reasons = []
        if delta == delta and delta <= -config.alerts.drop_points:
            reasons.append(f"dropped {abs(delta):.0f} points")
        if isinstance(band, str) and isinstance(pband, str) and BAND_RANK[band] < BAND_RANK[pband]:
            reasons.append(f"band {pband} → {band}")
        if reasons:
            moved = {
                c.replace("contrib_", ""): float(out[c].iloc[i]) - float(prev[c].iloc[i])
                for c in CONTRIB_COLUMNS
                if pd.notna(prev[c].iloc[i]) and pd.notna(out[c].iloc[i])
            }
            movers = sorted(moved.items(), key=lambda kv: kv[1])[: config.alerts.components_named]
            named = ", ".join(f"{c} {v:+.1f}" for c, v in movers if v < 0)
            alerts.append("; ".join(reasons) + (f" (moved most: {named})" if named else ""))
        else:
            alerts.append(None)
    out["alert"] = alerts
    return out


def peer_percentile(scores: pd.DataFrame) -> pd.Series:
    """Percentile (0–100) of each scored account's score within its segment."""
    scored = scores["status"] == "scored"
    pct = scores.loc[scored].groupby("segment", observed=True)["score"].rank(pct=True, method="average") * 100
    return pct.reindex(scores.index).round(1)


def portfolio(scores: pd.DataFrame) -> pd.DataFrame:
    """Rollup by segment, CSM and renewal quarter: accounts, ARR, ARR-weighted score, expected ARR at risk.

    The first column is ``as_of`` (the batch's date), so rollups of several runs can be kept in one table.
    """
    s = scores[scores["status"] == "scored"].copy()
    s["renewal_quarter"] = pd.to_datetime(s["renewal_date"]).dt.to_period("Q").astype(str)
    s["csm"] = s["csm"].astype("object").fillna("(unassigned)")
    s["arr_at_risk"] = s["arr"].astype(float) * (1 - s["probability"].astype(float))
    s["w"] = s["arr"].astype(float) * s["score"].astype(float)
    frames = []
    for level in (["segment"], ["csm"], ["renewal_quarter"]):
        g = s.groupby(level, observed=True, sort=True)
        agg = pd.DataFrame(
            {
                "accounts": g.size(),
                "arr": g["arr"].sum(),
                "arr_weighted_score": (g["w"].sum() / g["arr"].sum()).round(1),
                "expected_arr_at_risk": g["arr_at_risk"].sum().round(2),
            }
        )
        bands = s.pivot_table(index=level, columns="band", values="account_id", aggfunc="count", fill_value=0,
                              observed=True)
        for b in ("healthy", "watch", "at_risk"):
            agg[f"accounts_{b}"] = bands[b] if b in bands else 0
        agg = agg.reset_index().rename(columns={level[0]: "value"})
        agg.insert(0, "dimension", level[0])
        frames.append(agg)
    total = pd.DataFrame([{
        "dimension": "all", "value": "all", "accounts": len(s), "arr": s["arr"].sum(),
        "arr_weighted_score": round(s["w"].sum() / s["arr"].sum(), 1) if s["arr"].sum() else np.nan,
        "expected_arr_at_risk": round(s["arr_at_risk"].sum(), 2),
        **{f"accounts_{b}": int((s["band"] == b).sum()) for b in ("healthy", "watch", "at_risk")},
    }])
    out = pd.concat([total, *frames], ignore_index=True)
    out["value"] = out["value"].astype(str)
    out.insert(0, "as_of", pd.Timestamp(scores["as_of"].iloc[0]) if len(scores) else pd.NaT)
    return out


def score_batch(ds, as_of: date, loaded, config: Config, *, previous_history: pd.DataFrame | None = None,
                progress: Callable[[int, int], None] | None = None, chunk_rows: int = CHUNK_ROWS,
                readiness=None) -> ScoreBatch:
    """Score every account in ``ds.accounts`` as of ``as_of`` with a loaded model (tracking.LoadedModel).

    Scored rows are explained ``chunk_rows`` at a time (the result does not depend on it);
    ``progress(rows_done, rows_total)`` is called after each step, counting scored rows only.
    ``readiness`` is what the gates found (``gates.check``); without it they are assessed here, refusing
    nothing, so every row still says ``data_through``, ``stale_data`` and ``missing_tables``.
    """
    from healthscore import gates
    from healthscore.drift import psi_table
    from healthscore.features import build_features
    from healthscore.timeline import scoring_rows

    model = loaded.model
    if readiness is None:
        readiness = gates.assess(ds, as_of, model, config)
    fcfg = model.metadata.get("features_config")
    features_config = FeaturesConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fcfg.items()}) \
        if fcfg else config.features
    rows = scoring_rows(ds, as_of).reset_index(drop=True)
    feats = build_features(ds, rows, config=features_config).reset_index(drop=True)
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

    scored = (out["status"] == "scored").to_numpy()
    for col in ("probability", "model_score", "baseline", *CONTRIB_COLUMNS):
        out[col] = np.nan
    explanations = pd.DataFrame(columns=["account_id", "feature", "component", "value", "contribution"])
    drift = None
    if scored.any():
        ex = explain_rows(model, feats[scored], out.loc[scored, "account_id"].to_numpy(), chunk_rows=chunk_rows,
                          progress=progress)
        drift = psi_table(model, ex.X, probability=ex.probability, config=config.drift)
        drift.insert(0, "as_of", pd.Timestamp(as_of))
        out.loc[scored, "probability"] = ex.probability
        out.loc[scored, "model_score"] = np.round(100.0 * ex.probability)
        out.loc[scored, "baseline"] = ex.baseline
        out.loc[scored, list(CONTRIB_COLUMNS)] = ex.component_points.to_numpy()
        explanations = ex.explanations
        for col in ex.drivers.columns:
            out[col] = None
            out.loc[scored, col] = ex.drivers[col].to_numpy()
    for col in ("driver_1", "driver_2", "driver_3", "positive_driver"):
        if col not in out:
            out[col] = None

    # adjustments: CSM judgement plus config rules, each with its reason; never overwriting the model score
    adj = pd.concat([active_adjustments(ds, as_of, config), rule_adjustments(out, feats, config)], ignore_index=True)
    adj = adj[adj["account_id"].isin(out.loc[scored, "account_id"])]
    adj = adj.assign(text=[f"{p:+.0f} {t}" for p, t in zip(adj["points"].astype(float), adj["reason"])])
    points = adj.groupby("account_id")["points"].sum()
    reasons = adj.groupby("account_id", sort=False)["text"].agg(" | ".join)
    out["adjustment"] = np.where(scored, out["account_id"].map(points).fillna(0.0), np.nan)
    out["adjustment_reasons"] = out["account_id"].map(reasons).where(scored)
    out["score"] = np.where(scored, np.clip(out["model_score"] + out["adjustment"], 0, 100), np.nan)
    out["band"] = band_of(out["score"], config)
    out = attach_history(out, previous_history, as_of, config)
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
    return ScoreBatch(scores=out, explanations=explanations.reset_index(drop=True), history=history,
                      portfolio=portfolio(out), features=feats, drift=drift)


@dataclass
class Explained:
    """What scoring computes for scored rows: the model matrix, probability, points and explanations."""

    X: pd.DataFrame
    probability: np.ndarray
    baseline: float
    component_points: pd.DataFrame
    explanations: pd.DataFrame
    drivers: pd.DataFrame
    #: seconds per step (prepare, contributions, explanations, drivers), for benchmarks and progress
    timings: dict[str, float]


def explain_rows(model, feats: pd.DataFrame, account_ids: np.ndarray, *, chunk_rows: int = CHUNK_ROWS,
                 progress: Callable[[int, int], None] | None = None) -> Explained:
    """Score raw feature rows and explain them: per-component points, long-format explanations, drivers.

    Rows go through in steps of ``chunk_rows``; every output is the same, byte for byte, whatever the step
    (each row's TreeSHAP, calibration and text depend on that row alone). ``progress(rows_done, rows_total)``
    is called after each step.
    """
    import time

    import pyarrow as pa

    t0 = time.perf_counter()
    X = model.prepare(feats)
    timings = {"prepare": time.perf_counter() - t0, "contributions": 0.0, "explanations": 0.0, "drivers": 0.0}
    n = len(X)
    names = list(model.feature_names)
    k = len(names)
    components = [model.components.get(f, "account") for f in names]
    comp_of = [list(CONTRIB_COLUMNS).index(f"contrib_{c}") for c in components]
    ids = pa.array(np.asarray(account_ids, dtype=object), pa.large_string())
    probability = np.empty(n, dtype=float)
    comp_points = np.zeros((n, len(CONTRIB_COLUMNS)), dtype=float)
    contribution = np.empty(n * k, dtype=float)
    text: dict[str, list] = {"account_id": [], "feature": [], "component": [], "value": []}
    repeated: dict[int, tuple] = {}
    drivers = []
    baseline = model.baseline_points
    step = max(1, int(chunk_rows))
    for a in range(0, max(n, 1), step):
        b = min(a + step, n)
        t1 = time.perf_counter()
        fpoints, step_probability, baseline = feature_points(model, X.iloc[a:b])
        probability[a:b] = step_probability
        points = fpoints.to_numpy(dtype=float)
        t2 = time.perf_counter()
        for j, c in enumerate(comp_of):  # feature order, as a running sum: the same floats at any step
            comp_points[a:b, c] += points[:, j]
        contribution[a * k:b * k] = points.ravel()
        m = b - a
        if m not in repeated:
            # feature and component names repeat identically for every step of the same size: one Arrow
            # array serves them all, so the long table's two widest columns cost one step's bytes, not n's
            col = np.tile(np.arange(k, dtype=np.int64), m)
            repeated[m] = (pa.array(names, pa.large_string()).take(col),
                           pa.array(components, pa.large_string()).take(col))
        feature_text, component_text = repeated[m]
        text["feature"].append(feature_text)
        text["component"].append(component_text)
        text["account_id"].append(ids.slice(a, m).take(np.repeat(np.arange(m, dtype=np.int64), k)))
        text["value"].append(_value_text(X.iloc[a:b], names))
        t3 = time.perf_counter()
        drivers.append(_drivers(model, feats.iloc[a:b], X.iloc[a:b], fpoints))
        t4 = time.perf_counter()
        for key, seconds in (("contributions", t2 - t1), ("explanations", t3 - t2), ("drivers", t4 - t3)):
            timings[key] += seconds
        if progress is not None:
            progress(b, n)
    t5 = time.perf_counter()
    explanations = pd.DataFrame(
        {**{c: pa.chunked_array(chunks, pa.large_string()).to_pandas() for c, chunks in text.items()},
         "contribution": contribution},
        columns=["account_id", "feature", "component", "value", "contribution"], copy=False,
    )
    timings["explanations"] += time.perf_counter() - t5
    return Explained(X=X, probability=probability, baseline=baseline,
                     component_points=pd.DataFrame(comp_points, index=X.index, columns=list(CONTRIB_COLUMNS)),
                     explanations=explanations, drivers=pd.concat(drivers) if len(drivers) > 1 else drivers[0],
                     timings=timings)


def _value_text(X: pd.DataFrame, names: list[str]):
    """The long table's ``value`` cells for these rows, row by row (account, then feature), as Arrow text.

    Built as Arrow columns with index arithmetic, never a Python object per cell, so text costs bytes, not
    objects (pandas 3 gets ``str`` columns; 2.x ``object``).
    """
    import pyarrow as pa

    n, k = len(X), len(names)
    if not k:
        return pa.array([], pa.large_string())
    values = pa.concat_arrays([_column_text(X[name]) for name in names])
    # column-major concatenation: cell (i, j) sits at j * n + i
    return values.take(np.tile(np.arange(k, dtype=np.int64) * n, n) + np.repeat(np.arange(n, dtype=np.int64), k))


def _column_text(col: pd.Series):
    """A column as Arrow text, ``str(value)`` per cell (shortest round-trip repr for floats), missing null."""
    import pyarrow as pa

    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        cats = pa.array([str(c) for c in col.cat.categories], pa.large_string())
        return cats.take(pa.array(codes, mask=codes < 0))
    return _float_text(col.to_numpy(dtype="float64", na_value=np.nan))


def _float_text(v: np.ndarray):
    """``str(x)`` of each float as Arrow text, NaN null: numpy's ``astype(str)`` (the shortest round-trip repr,
    as Python writes it), 3–5× faster.

    Arrow's float-to-text finds the same shortest digits but writes whole numbers without ".0" and turns
    to exponents at other lengths than Python. So whole numbers are written from their int64 value plus
    ".0", and any cell Arrow writes with an exponent, or Python would (below 1e-4, from 1e16 on), or that
    is −0.0 or infinite, is written by numpy.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = np.isnan(v)
    text = pc.cast(pa.array(v, mask=missing), pa.large_string())
    with np.errstate(invalid="ignore"):
        size = np.abs(v)
        whole = np.isfinite(v) & (v == np.trunc(v)) & (size < 1e16) & ~((v == 0) & np.signbit(v))
    if whole.any():
        digits = pc.cast(pa.array(np.where(whole, v, 0).astype(np.int64)), pa.large_string())
        suffix, sep = pa.scalar(".0", pa.large_string()), pa.scalar("", pa.large_string())
        text = pc.if_else(pa.array(whole), pc.binary_join_element_wise(digits, suffix, sep), text)
    exponent = pc.fill_null(pc.match_substring(text, "e"), False).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        odd = ~missing & ~whole & ((size < 1e-4) | (size >= 1e16) | exponent)
    if odd.any():
        text = pc.replace_with_mask(text, pa.array(odd), pa.array(v[odd].astype(str), pa.large_string()))
    return text


def _drivers(model, raw: pd.DataFrame, X: pd.DataFrame, fpoints: pd.DataFrame) -> pd.DataFrame:
    """Plain-language drivers from the explanation module (empty columns until it provides them)."""
    from healthscore import explain

    if hasattr(explain, "driver_sentences"):
        return explain.driver_sentences(model, X, fpoints)
    return pd.DataFrame(index=X.index)


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


def batch_tables(batch: ScoreBatch, previous=None) -> dict[str, pd.DataFrame]:
    """The files of one batch (CONTRACT §4, §6): portfolio and drift keep earlier as-of dates' rows."""
    as_of = pd.Timestamp(batch.scores["as_of"].iloc[0]) if len(batch.scores) else pd.NaT
    explanations = batch.explanations.copy(deep=False)  # a new column only: the rows are not copied
    if "as_of" not in explanations:
        explanations.insert(1, "as_of", pd.Series(as_of, index=explanations.index, dtype="datetime64[ns]"))
    drift = batch.drift if batch.drift is not None else pd.DataFrame({"as_of": pd.Series([], dtype="datetime64[ns]")})
    return {
        "scores.parquet": batch.scores,
        "scores.csv": batch.scores,
        "explanations.parquet": explanations,
        "history.parquet": batch.history,
        "portfolio.csv": keep_per_as_of(previous.read("portfolio.csv") if previous else None, batch.portfolio),
        "drift.csv": keep_per_as_of(previous.read("drift.csv") if previous else None, drift),
    }


def write_batch(batch: ScoreBatch, out, *, info: dict | None = None, lock_timeout: float = 0.0,
                keep_batches: int = 0) -> dict[str, Path]:
    """Write the batch into the output folder as one all-or-nothing batch and make it current (CONTRACT §6).

    ``out`` is a folder (its lock is taken for the write) or an ``io.output.OutputDir`` already held by the
    caller, which then also read the previous history under that lock. Returns the top-level path of each
    file (``OUT/scores.parquet`` …, each a link to the current batch's file).
    """
    from healthscore.io.output import OutputDir

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
    from healthscore.io.output import read_current

    current = read_current(out)
    return current.read("history.parquet") if current is not None else None
