"""One benchmark step per process, so each step's peak memory is its own (run by ``run_all.py``).

    python benchmarks/_cases.py STEP --data DIR [--accounts N] [--events N] [--rows N]

Every timed step prints one JSON line ``{"step": ..., "seconds": ...}`` on stdout: the seconds of the timed
section only (imports and untimed set-up excluded); the parent reads the process's peak RSS from ``wait4``.

Data is synthetic and generated here (vectorised numpy, streamed to Parquet in chunks), not by
``healthscore simulate``: the simulator builds a whole SaaS world in memory, which at 50M events is both
slower and bigger than the step being measured. What the steps measure does not depend on how realistic
the values are, only on the shapes (accounts, users per account, events, observation dates).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

#: the feature benchmark's observation dates: the first of 12 consecutive months
CUTOFFS = [date(2024, 1 + m, 1) if m < 12 else date(2025, 1, 1) for m in range(12)]
EVENTS_FROM = date(2023, 1, 1)
EVENTS_TO = date(2024, 12, 31)
FEATURE_NAMES = ("dashboards", "reports", "integrations", "alerts", "api", "exports", "search", "admin",
                 "billing", "sharing", "mobile", "comments")
SEGMENTS = ("smb", "mid_market", "enterprise")
#: the key product features both sides count (configured, as train would otherwise learn 8 of them): breadth
#: over them and, per feature, the share of active users using it (``features.usage_by_feature``'s default)
KEY_FEATURES = ("dashboards", "reports", "integrations", "automation", "collaboration", "api")


#: LightGBM threads (0: the library's default); --threads, the same for a case and its reference
THREADS = 0


def _emit(step: str, seconds: float, **extra) -> None:
    print(json.dumps({"step": step, "seconds": round(seconds, 3), **extra}), flush=True)


def _days(d: date) -> int:
    return (d - date(1970, 1, 1)).days


# ---------------------------------------------------------------------------------------------------------
# (a) features: 12 monthly observation dates over a usage-event table
# ---------------------------------------------------------------------------------------------------------
def gen_events(data: Path, accounts: int, events: int, seed: int = 7) -> None:
    """accounts, contracts and usage_events Parquet files; events streamed in 5M-row chunks."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    data.mkdir(parents=True, exist_ok=True)
    acc_ids = np.array([f"A{i:07d}" for i in range(accounts)], dtype=object)
    seg = rng.choice(len(SEGMENTS), size=accounts, p=[0.6, 0.3, 0.1])
    created = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 365, accounts), unit="D")
    pd.DataFrame({"account_id": acc_ids, "name": acc_ids, "segment": np.array(SEGMENTS)[seg],
                  "created_at": created}).to_parquet(data / "accounts.parquet", index=False,
                                                     coerce_timestamps="us", allow_truncated_timestamps=True)
    seats = rng.integers(5, 60, accounts).astype(float)
    start = created + pd.to_timedelta(rng.integers(0, 120, accounts), unit="D")
    pd.DataFrame({"contract_id": [f"C{i:07d}" for i in range(accounts)], "account_id": acc_ids,
                  "start_date": start.normalize(), "end_date": (start + pd.DateOffset(years=3)).normalize(),
                  "arr": seats * 1200.0, "seats": seats, "outcome": None}).to_parquet(
        data / "contracts.parquet", index=False, coerce_timestamps="us", allow_truncated_timestamps=True)
    users = np.maximum(1, (seats * rng.uniform(0.3, 1.2, accounts)).astype(np.int64))
    user_offset = np.concatenate([[0], np.cumsum(users)[:-1]])
    user_names = pa.array([f"A{a:07d}-u{k}" for a in range(accounts) for k in range(users[a])])
    acc_dict = pa.array(acc_ids.tolist())
    feat_dict = pa.array(list(FEATURE_NAMES))
    # activity weight per account: some accounts are busy, some quiet
    weight = rng.gamma(1.5, 1.0, accounts)
    weight /= weight.sum()
    lo = _days(EVENTS_FROM) * 86400
    span = (_days(EVENTS_TO) - _days(EVENTS_FROM) + 1) * 86400
    schema = pa.schema([("account_id", pa.string()), ("user_id", pa.string()), ("ts", pa.timestamp("us")),
                        ("feature", pa.string()), ("quantity", pa.float64())])
    chunk = 5_000_000
    with pq.ParquetWriter(data / "usage_events.parquet", schema, compression="zstd") as writer:
        done = 0
        while done < events:
            n = min(chunk, events - done)
            a = rng.choice(accounts, size=n, p=weight)
            u = user_offset[a] + (rng.random(n) * users[a]).astype(np.int64)
            ts = (lo + rng.integers(0, span, n)).astype("int64") * 1_000_000
            f = rng.integers(0, len(FEATURE_NAMES), n)
            q = rng.integers(1, 4, n).astype(float)
            table = pa.table({
                "account_id": pa.DictionaryArray.from_arrays(pa.array(a.astype(np.int32)), acc_dict).cast(pa.string()),
                "user_id": user_names.take(pa.array(u)),
                "ts": pa.array(ts, type=pa.timestamp("us")),
                "feature": pa.DictionaryArray.from_arrays(pa.array(f.astype(np.int32)), feat_dict).cast(pa.string()),
                "quantity": pa.array(q),
            })
            writer.write_table(table, row_group_size=1_000_000)
            done += n
    print(json.dumps({"step": "gen-events", "accounts": accounts, "events": events}), flush=True)


def floor_sql(data: Path, cutoffs: list[date] | None = None) -> str:
    """The floor's query: every usage window healthscore builds, hand-written as one DuckDB aggregation.

    The same windows as ``features/usage.py`` computes, no more: per (date, account) users in 30/90 days,
    events in the last and previous 30 days, user-days and active days in 30 days, key features used in 90
    days (``KEY_FEATURES``), per key feature the share of 30-day active users using it, and the last
    active day up to a year back (through 30-day buckets, as healthscore does). Written the fast way: per-user last-seen days instead of DISTINCT counts, bit masks for distinct
    days and key features, the per-user-day table materialised once, and only over the events some window
    can see (before the latest cut-off), as anyone writing it by hand would: without that filter the floor
    took 16.5 s instead of 11.2 s at one date on 50M events, and flattered every ratio against it.
    ``cutoffs``: the dates (default ``CUTOFFS``).
    """
    cutoffs = list(cutoffs or CUTOFFS)
    cut = ", ".join(f"{_days(d)}" for d in cutoffs)
    before = max(cutoffs).isoformat()
    keyf = sorted(set(KEY_FEATURES))
    kf = "CASE feature " + " ".join(f"WHEN '{f}' THEN {1 << i}" for i, f in enumerate(keyf)) + " ELSE 0 END"
    per_user = "".join(
        f", max(CASE WHEN day >= c.as_of - 30 AND (ud.kf & {1 << i}) <> 0 THEN 1 ELSE 0 END) AS f{i}_30"
        for i in range(len(keyf)))
    users_30d = "count(CASE WHEN last_day >= as_of - 30 THEN 1 END)"
    per_account = "".join(f", sum(f{i}_30) / NULLIF({users_30d}, 0) AS share_{i}" for i in range(len(keyf)))
    return f"""
    WITH ud AS MATERIALIZED (
        SELECT account_id, user_id, CAST(floor(epoch(ts) / 86400) AS INTEGER) AS day, sum(quantity) AS events,
               bit_or({kf}) AS kf
        FROM read_parquet('{data / 'usage_events.parquet'}') WHERE ts < TIMESTAMP '{before}' GROUP BY ALL),
    cut AS (SELECT unnest([{cut}]) AS as_of),
    seen AS (
        SELECT c.as_of, account_id, user_id, max(day) AS last_day,
               sum(CASE WHEN day >= c.as_of - 30 THEN events ELSE 0 END) AS ev30,
               sum(CASE WHEN day < c.as_of - 30 AND day >= c.as_of - 60 THEN events ELSE 0 END) AS ev_prev,
               count(CASE WHEN day >= c.as_of - 30 THEN 1 END) AS days30,
               bit_or(CASE WHEN day >= c.as_of - 30 THEN 1::BIGINT << (c.as_of - 1 - day) ELSE 0 END) AS days_mask,
               bit_or(kf) AS kf{per_user}
        FROM ud JOIN cut AS c ON ud.day < c.as_of AND ud.day >= c.as_of - 90 GROUP BY ALL),
    win AS (
        SELECT as_of, account_id, count(*) AS users_90d,
               count(CASE WHEN last_day >= as_of - 30 THEN 1 END) AS users_30d,
               sum(ev30) AS events_30d, sum(ev_prev) AS events_prev_30d, sum(days30) AS user_days_30d,
               bit_count(bit_or(days_mask)) AS active_days_30d, bit_count(bit_or(kf)) AS key_features_90d,
               max(last_day) AS last_day_90d{per_account}
        FROM seen GROUP BY ALL),
    year AS (
        SELECT c.as_of, b.account_id, max(b.last_day) AS last_day_365d
        FROM (SELECT account_id, day // 30 AS bucket, max(day) AS last_day FROM ud GROUP BY ALL) AS b
        JOIN cut AS c ON b.last_day < c.as_of AND b.last_day >= c.as_of - 365 GROUP BY ALL)
    SELECT * FROM year FULL JOIN win USING (as_of, account_id)
    """


def feat_floor(data: Path) -> None:
    """The floor: one hand-written DuckDB aggregation over the Parquet (usage windows at 12 dates)."""
    import duckdb

    sql = floor_sql(data)
    con = duckdb.connect()
    t0 = time.perf_counter()
    out = con.execute(sql).df()
    _emit("feat-floor", time.perf_counter() - t0, rows=len(out))


def _observations(accounts_frame, contracts_frame):
    import pandas as pd

    ids = accounts_frame["account_id"].to_numpy()
    contract = contracts_frame.set_index("account_id")["contract_id"].reindex(ids).to_numpy()
    parts = [pd.DataFrame({"account_id": ids, "contract_id": contract, "as_of": pd.Timestamp(d)}) for d in CUTOFFS]
    return pd.concat(parts, ignore_index=True)


def feat_ours(data: Path) -> None:
    """healthscore's feature builder at 12 dates, DuckDB scanning the event Parquet (small tables via pandas)."""
    import pandas as pd

    from healthscore.config import FeaturesConfig
    from healthscore.features import build_features
    from healthscore.io.dataset import Dataset

    t0 = time.perf_counter()
    acc = pd.read_parquet(data / "accounts.parquet")
    con = pd.read_parquet(data / "contracts.parquet")
    # a Dataset as load_dataset returns it; validation is not what is measured
    ds = Dataset(accounts=acc, contracts=con, absent=("tickets", "surveys", "touchpoints", "invoices", "adjustments"))
    obs = _observations(acc, con)
    # 6 GB for DuckDB keeps the process under the 8 GiB target (its default, 80% of RAM, peaked at 9.4 GiB)
    feats = build_features(ds, obs, usage_events_parquet=data / "usage_events.parquet", memory_limit="6GB",
                           config=FeaturesConfig(key_features=KEY_FEATURES))
    _emit("feat-ours", time.perf_counter() - t0, rows=len(feats))


def feat_pandas(data: Path) -> None:
    """The same builder with the event table read into pandas first (``ds.usage_events``): the old route."""
    import pandas as pd

    from healthscore.config import FeaturesConfig
    from healthscore.features import build_features
    from healthscore.io.dataset import Dataset

    t0 = time.perf_counter()
    acc = pd.read_parquet(data / "accounts.parquet")
    con = pd.read_parquet(data / "contracts.parquet")
    ev = pd.read_parquet(data / "usage_events.parquet")
    ds = Dataset(accounts=acc, contracts=con, usage_events=ev,
                 absent=("tickets", "surveys", "touchpoints", "invoices", "adjustments"))
    feats = build_features(ds, _observations(acc, con), config=FeaturesConfig(key_features=KEY_FEATURES))
    _emit("feat-pandas", time.perf_counter() - t0, rows=len(feats))


# ---------------------------------------------------------------------------------------------------------
# (b) scoring with explanations and (c) training, on a synthetic raw feature frame
# ---------------------------------------------------------------------------------------------------------
def _feature_frame(rows: int, seed: int):
    """A raw feature frame with every built feature: plausible ranges, ~10% missing, a learnable label."""
    import pandas as pd

    from healthscore.features import FEATURES

    rng = np.random.default_rng(seed)
    z = rng.normal(size=rows)  # hidden health
    cols = {}
    for i, f in enumerate(f for f in FEATURES if not f.fitted):
        if f.kind == "categorical":
            cols[f.name] = pd.Categorical(np.array(SEGMENTS)[rng.integers(0, 3, rows)], categories=sorted(SEGMENTS))
            continue
        sign = f.direction or (1 if i % 2 else -1)
        v = np.exp(0.5 * sign * z * rng.uniform(0.2, 1.0) + rng.normal(0, 1, rows)) * (1 + i % 7)
        if f.unit == "flag":
            v = (v > np.median(v)).astype(float)
        v[rng.random(rows) < 0.1] = np.nan
        cols[f.name] = v
    label = (rng.random(rows) < 1 / (1 + np.exp(-(1.2 + 1.5 * z)))).astype(int)
    return pd.DataFrame(cols), label


def gen_model_data(data: Path, train_rows: int, score_rows: int) -> None:
    """train.parquet (features + label + renewal_date + segment) and score.parquet (features + account_id)."""
    import pandas as pd

    data.mkdir(parents=True, exist_ok=True)
    feats, label = _feature_frame(train_rows, seed=1)
    rng = np.random.default_rng(2)
    train = feats.assign(label=label, renewal_date=pd.Timestamp("2022-01-01")
                         + pd.to_timedelta(rng.integers(0, 900, train_rows), unit="D"),
                         contract_id=[f"C{i:07d}" for i in range(train_rows)])
    train.to_parquet(data / "train.parquet", index=False)
    score, _ = _feature_frame(score_rows, seed=3)
    score.insert(0, "account_id", [f"A{i:07d}" for i in range(score_rows)])
    score.to_parquet(data / "score.parquet", index=False)
    print(json.dumps({"step": "gen-model-data", "train_rows": train_rows, "score_rows": score_rows}), flush=True)


def train_ours(data: Path) -> None:
    """fit_health_model on the training rows: CV over the grid, final fit, calibration, evaluation."""
    import joblib
    import pandas as pd

    from healthscore.config import Config
    from healthscore.features import FEATURES
    from healthscore.model.train import TrainingSet, fit_health_model

    frame = pd.read_parquet(data / "train.parquet")
    names = [f.name for f in FEATURES if not f.fitted]
    ts = TrainingSet(
        features=frame[names], label=frame["label"].to_numpy(), rows=frame[["renewal_date", "segment", "contract_id"]],
        components={f.name: f.component for f in FEATURES}, directions={f.name: f.direction for f in FEATURES},
        categorical=["segment"],
    )
    from healthscore.config import config_from_dict

    config = config_from_dict({"model": {"num_threads": THREADS}}) if THREADS else Config()
    t0 = time.perf_counter()
    result = fit_health_model(ts, config=config)
    seconds = time.perf_counter() - t0
    joblib.dump(result.model, data / "model.joblib")
    m = result.model
    _emit("train-ours", seconds, trees=m.params.get("num_boost_round"), num_leaves=m.params.get("num_leaves"),
          rows_train=result.sizes["rows_train"])


def train_ref(data: Path) -> None:
    """Reference: one bare lgb.train with the chosen parameters on the same training part."""
    import joblib
    import lightgbm as lgb
    import pandas as pd

    from healthscore.config import Config
    from healthscore.model.split import split_by_renewal_date

    model = joblib.load(data / "model.joblib")
    frame = pd.read_parquet(data / "train.parquet")
    part = np.asarray(split_by_renewal_date(frame[["renewal_date", "segment", "contract_id"]], Config().split))
    X = model.prepare(frame[model.feature_names])[part == "train"]
    y = frame["label"].to_numpy()[part == "train"]
    params = {k: v for k, v in model.params.items() if k not in ("num_boost_round", "linear_start", "start", "blend_shares")}
    init = model.linear.margin(X) if model.linear is not None else None  # the start is part of the fit
    t0 = time.perf_counter()
    if model.has_trees:
        lgb.train(params, lgb.Dataset(X, y, init_score=init), num_boost_round=int(model.params["num_boost_round"]))
    _emit("train-ref", time.perf_counter() - t0)


def score_ours(data: Path) -> None:
    """healthscore's scoring path on raw features: prepare, then per chunk TreeSHAP, points, long explanations,
    drivers (``explain_rows`` with its default chunk size)."""
    import joblib
    import pandas as pd

    from healthscore.explain import CHUNK_ROWS, explain_rows

    model = joblib.load(data / "model.joblib")
    frame = pd.read_parquet(data / "score.parquet")
    feats = frame.drop(columns="account_id")
    t0 = time.perf_counter()
    ex = explain_rows(model, feats, frame["account_id"].to_numpy())
    _emit("score-ours", time.perf_counter() - t0, rows=len(ex.probability), explanation_rows=len(ex.explanations),
          chunk_rows=CHUNK_ROWS,
          **{f"{k}_s": round(v, 3) for k, v in ex.timings.items()})


def score_ref(data: Path) -> None:
    """Reference: the bare exact contributions on the same prepared rows — LightGBM's
    ``booster.predict(X, pred_contrib=True)``, plus the linear start's contributions when the model has one."""
    import joblib
    import pandas as pd

    model = joblib.load(data / "model.joblib")
    frame = pd.read_parquet(data / "score.parquet")
    X = model.prepare(frame.drop(columns="account_id"))
    booster = model.booster
    t0 = time.perf_counter()
    if booster is not None:
        booster.predict(X, pred_contrib=True)
    if model.linear is not None:
        model.linear.contributions(X)
    _emit("score-ref", time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    """Run one step (see the module docstring)."""
    p = argparse.ArgumentParser()
    p.add_argument("step")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--accounts", type=int, default=100_000)
    p.add_argument("--events", type=int, default=50_000_000)
    p.add_argument("--train-rows", type=int, default=200_000)
    p.add_argument("--score-rows", type=int, default=1_000_000)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    global THREADS
    THREADS = a.threads
    steps = {
        "gen-events": lambda: gen_events(a.data, a.accounts, a.events),
        "feat-floor": lambda: feat_floor(a.data),
        "feat-ours": lambda: feat_ours(a.data),
        "feat-pandas": lambda: feat_pandas(a.data),
        "gen-model-data": lambda: gen_model_data(a.data, a.train_rows, a.score_rows),
        "train-ours": lambda: train_ours(a.data),
        "train-ref": lambda: train_ref(a.data),
        "score-ours": lambda: score_ours(a.data),
        "score-ref": lambda: score_ref(a.data),
    }
    if a.step not in steps:
        print(f"unknown step {a.step}; one of {', '.join(steps)}", file=sys.stderr)
        return 2
    steps[a.step]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
