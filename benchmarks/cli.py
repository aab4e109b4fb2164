"""The commands users run, timed as whole processes, each next to its floor in the same invocation (issue 18).

    make bench                                           # full size: 100k accounts / 50M events, 1M, 200k rows
    .venv/bin/python benchmarks/cli.py --scale 0.1       # a tenth (10k accounts / 5M events)
    .venv/bin/python benchmarks/cli.py --cases validate,features --repeat 3

Every measurement is one process under ``/usr/bin/time -v`` (wall clock and "Maximum resident set size");
the median of ``--repeat`` runs is reported, each run of a command right after a run of its floor, so both
meet the same machine load. The 1-minute load average is recorded before every run.

Cases (``healthscore`` is ``python -m healthscore``):

- ``validate``: ``healthscore validate --data DIR`` vs the floor (below).
- ``features``: ``healthscore features --data DIR --as-of D --out F`` vs the floor.
- ``score``: ``healthscore score --data DIR --as-of D --out O --model M`` vs the floor plus the model's own
  bare ``pred_contrib`` on the same rows (one process: query, then ``booster.predict(X, pred_contrib=True)``).
- ``score-1m``: the same on 1,000,000 accounts (memory is the target there).
- ``train``: ``healthscore train --data DIR`` on a dataset whose decided renewals make about 200k training
  rows, vs one bare ``lgb.train`` on those rows' features (the model's own parameters).
- ``retrain``: ``healthscore retrain`` on the same data and store, against a champion ``train`` has just
  registered; its reference is that ``train`` run (target: at most twice its time). Its gate's margins are
  set so wide that the challenger is always promoted: the longer path, refit including the holdout.

The floor: one hand-written DuckDB query over the Parquet computing the usage windows ``features`` computes at
one date (``_cases.floor_sql`` with one cut-off), as a process of its own (``python benchmarks/cli.py floor``).

Data is synthetic (``_cases.gen_events``: accounts, contracts, usage events in Parquet) with a decided first
term per account (renewed or churned, so ``train`` has renewals) and a running second term; it is generated
once into ``--data`` and reused while the sizes match. The model ``score`` uses is trained once by
``healthscore train`` on a 2,000-account slice of the same world, registered in a SQLite store under
``--data``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import _cases  # noqa: E402

FULL = {"accounts": 100_000, "events": 50_000_000, "score_accounts": 1_000_000, "train_accounts": 67_000,
        "model_accounts": 2_000}
AS_OF = date(2024, 6, 1)
#: (max ratio to the floor, max peak GiB); None: not a target
TARGETS = {"validate": (2.0, None), "features": (1.5, 4.0), "score": (1.5, 4.0), "score-1m": (None, 4.0),
           "train": (None, None), "retrain": (2.0, None)}
TRAIN_TARGET_S = 60.0
GIB = 1024 ** 2  # /usr/bin/time reports KiB


def python() -> str:
    return sys.executable


def env() -> dict:
    out = dict(os.environ)
    out["MLFLOW_DISABLE_TELEMETRY"] = "true"
    out.setdefault("PYTHONHASHSEED", "0")
    return out


def timed(cmd: list[str], *, cwd: Path, extra_env: dict | None = None) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v``; wall seconds, peak GiB, exit code and the load before it."""
    load = os.getloadavg()[0]
    full = ["/usr/bin/time", "-v", *cmd] if Path("/usr/bin/time").exists() else cmd
    started = time.perf_counter()
    proc = subprocess.run(full, cwd=cwd, env={**env(), **(extra_env or {})}, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak = None
    for line in proc.stderr.splitlines():
        line = line.strip()
        if line.startswith("Maximum resident set size (kbytes):"):
            peak = int(line.rsplit(":", 1)[1]) / GIB
        if line.startswith("Elapsed (wall clock) time"):
            clock = line.rsplit(" ", 1)[1]
            parts = [float(p) for p in clock.split(":")]
            wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
    return {"seconds": round(wall, 2), "peak_gib": round(peak, 2) if peak is not None else None, "load": round(load, 2)}


def median_of(runs: list[dict]) -> dict:
    return {"seconds": round(statistics.median(r["seconds"] for r in runs), 2),
            "peak_gib": round(statistics.median(r["peak_gib"] for r in runs), 2),
            "load": [r["load"] for r in runs], "runs": [r["seconds"] for r in runs]}


# ---------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------
def gen_data(data: Path, accounts: int, events: int, seed: int = 7) -> None:
    """``_cases.gen_events`` plus two terms per account: a decided first year, a running second term."""
    import numpy as np
    import pandas as pd

    _cases.gen_events(data, accounts, events, seed=seed)
    acc = pd.read_parquet(data / "accounts.parquet")
    old = pd.read_parquet(data / "contracts.parquet")
    rng = np.random.default_rng(seed + 1)
    start = pd.to_datetime(old["start_date"])
    renewal = (start + pd.DateOffset(years=1)).dt.normalize()
    outcome = np.where(rng.random(len(old)) < 0.8, "renewed", "churned")
    first = old.assign(contract_id=[f"C{i:07d}a" for i in range(len(old))], end_date=renewal, outcome=outcome)
    second = old.assign(contract_id=[f"C{i:07d}b" for i in range(len(old))], start_date=renewal,
                        end_date=(renewal + pd.DateOffset(years=2)).dt.normalize(), outcome=None)
    second = second[outcome == "renewed"]
    pd.concat([first, second], ignore_index=True).to_parquet(data / "contracts.parquet", index=False)
    assert len(acc) == accounts


def ensure(data: Path, accounts: int, events: int, log) -> Path:
    marker = data / ".cli.json"
    wanted = json.dumps({"accounts": accounts, "events": events})
    if marker.exists() and marker.read_text() == wanted:
        return data
    log(f"  generating {accounts:,} accounts / {events:,} events in {data}")
    gen_data(data, accounts, events)
    marker.write_text(wanted)
    return data


def slice_accounts(src: Path, dst: Path, accounts: int) -> Path:
    """The first ``accounts`` accounts of a world with their contracts and events (for the model)."""
    import duckdb

    dst.mkdir(parents=True, exist_ok=True)
    marker = dst / ".slice.json"
    wanted = json.dumps({"src": str(src), "accounts": accounts})
    if marker.exists() and marker.read_text() == wanted:
        return dst
    con = duckdb.connect()
    ids = f"(SELECT account_id FROM read_parquet('{src / 'accounts.parquet'}') ORDER BY account_id LIMIT {accounts})"
    for name in ("accounts", "contracts", "usage_events"):
        con.execute(f"COPY (SELECT * FROM read_parquet('{src / (name + '.parquet')}') WHERE account_id IN {ids}) "
                    f"TO '{dst / (name + '.parquet')}' (FORMAT parquet)")
    marker.write_text(wanted)
    return dst


# ---------------------------------------------------------------------------------------------------------
# floors (run as processes of their own: ``python benchmarks/cli.py floor|score-floor ...``)
# ---------------------------------------------------------------------------------------------------------
def floor_one_date(data: Path, as_of: date) -> int:
    import duckdb

    sql = _cases.floor_sql(data, [as_of])
    return len(duckdb.connect().execute(sql).df())


def score_floor(data: Path, as_of: date, features: Path, model_dir: Path) -> None:
    """The floor query, then the model's own bare ``pred_contrib`` on the rows ``score`` scores."""
    import joblib
    import pandas as pd

    floor_one_date(data, as_of)
    model = joblib.load(model_dir / "health_model.joblib")
    frame = pd.read_parquet(features)
    frame = frame[frame["status"] == "scored"].drop(columns=["account_id", "as_of", "status", "contract_id"])
    X = model.prepare(frame)  # adds the fitted features (segment curve) as score does
    if model.booster is not None:
        model.booster.predict(X, pred_contrib=True)
    if model.linear is not None:
        model.linear.contributions(X)


def train_floor(features: Path, model_dir: Path) -> None:
    """One bare ``lgb.train`` with the trained model's parameters on the training rows' features."""
    import joblib
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    model = joblib.load(model_dir / "health_model.joblib")
    frame = pd.read_parquet(features)
    y = frame["label"].to_numpy()
    X = model.prepare(frame.drop(columns="label"))
    params = {k: v for k, v in model.params.items() if k not in ("num_boost_round", "linear_start", "start", "blend_shares")}
    init = model.linear.margin(X) if model.linear is not None else None
    if model.has_trees:
        lgb.train(params, lgb.Dataset(X, y, init_score=init), num_boost_round=int(model.params["num_boost_round"]))
    else:
        np.asarray(X)


# ---------------------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------------------
def hs(*args: str) -> list[str]:
    return [python(), "-m", "healthscore", *args]


def me(*args: str) -> list[str]:
    return [python(), str(Path(__file__).resolve()), *args]


def pair(ours: list[str], floor: list[str], *, repeat: int, cwd: Path, log, name: str,
         extra_env: dict | None = None) -> dict:
    a, b = [], []
    for i in range(repeat):
        b.append(timed(floor, cwd=cwd, extra_env=extra_env))
        a.append(timed(ours, cwd=cwd, extra_env=extra_env))
        log(f"  {name} run {i + 1}: ours {a[-1]} floor {b[-1]}")
    return {"case": name, "ours": median_of(a), "ref": median_of(b)}


def export_model(store: Path, model_dir: Path) -> None:
    """The champion's HealthModel from the store as a joblib file (for the floors)."""
    import joblib

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    from healthscore.tracking import load_model

    loaded = load_model("models:/healthscore@champion")
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(loaded.model, model_dir / "health_model.joblib")


def prepare_model(work: Path, data: Path, sizes: dict, log) -> tuple[Path, Path]:
    """Train (once) the champion on a slice of the world; returns (store dir, exported model dir)."""
    store = work / "store"
    model_dir = work / "model"
    if (model_dir / "health_model.joblib").exists():
        return store, model_dir
    small = slice_accounts(data, work / "model-data", sizes["model_accounts"])
    store.mkdir(parents=True, exist_ok=True)
    log(f"  training the champion on {sizes['model_accounts']:,} accounts")
    r = timed(hs("train", "--data", str(small), "--as-of", AS_OF.isoformat(), "--quiet"), cwd=store,
              extra_env={"MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"})
    log(f"  trained: {r}")
    subprocess.run(me("export-model", "--store", str(store), "--model-dir", str(model_dir)), check=True, env=env())
    return store, model_dir


def run_cases(cases: list[str], work: Path, sizes: dict, repeat: int, log) -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    data = ensure(work / "data", sizes["accounts"], sizes["events"], log)
    d = AS_OF.isoformat()
    results = []
    floor = me("floor", "--data", str(data), "--as-of", d)
    if "validate" in cases:
        results.append(pair(hs("validate", "--data", str(data)), floor, repeat=repeat, cwd=work, log=log,
                            name="validate"))
    if "features" in cases:
        results.append(pair(hs("features", "--data", str(data), "--as-of", d, "--out", str(work / "features.parquet")),
                            floor, repeat=repeat, cwd=work, log=log, name="features"))
    for case, key in (("score", "accounts"), ("score-1m", "score_accounts")):
        if case not in cases:
            continue
        store, model_dir = prepare_model(work, data, sizes, log)
        target = data if key == "accounts" else ensure(work / "data-1m", sizes["score_accounts"], sizes["events"], log)
        feats = work / f"{case}-features.parquet"
        if not feats.exists():
            subprocess.run(hs("features", "--data", str(target), "--as-of", d, "--out", str(feats),
                              "--config", str(features_config(work, model_dir))), check=True, env=env(),
                           capture_output=True)
        uri = {"MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"}
        ours = hs("score", "--data", str(target), "--as-of", d, "--out", str(work / f"{case}-out"), "--quiet")
        ref = me("score-floor", "--data", str(target), "--as-of", d, "--features", str(feats),
                 "--model-dir", str(model_dir))
        results.append(pair(ours, ref, repeat=repeat, cwd=work, log=log, name=case, extra_env=uri))
    if "train" in cases:
        tdata, store, uri = training_world(work, data, sizes)
        ours = hs("train", "--data", str(tdata), "--as-of", d, "--quiet")
        runs, refs = [], []
        for i in range(repeat):
            runs.append(timed(ours, cwd=store, extra_env=uri))
            model_dir = work / "train-model"
            subprocess.run(me("export-model", "--store", str(store), "--model-dir", str(model_dir)), check=True,
                           env=env())
            rows = work / "train-rows.parquet"
            if not rows.exists():
                subprocess.run(me("training-rows", "--data", str(tdata), "--as-of", d, "--model-dir", str(model_dir),
                                  "--out", str(rows)), check=True, env=env())
            refs.append(timed(me("train-floor", "--features", str(rows), "--model-dir", str(model_dir)), cwd=work))
            log(f"  train run {i + 1}: ours {runs[-1]} bare lgb.train {refs[-1]}")
        results.append({"case": "train", "ours": median_of(runs), "ref": median_of(refs)})
    if "retrain" in cases:
        # next to the train command on the same rows and store: its reference is train's own time
        tdata, store, uri = training_world(work, data, sizes)
        train = hs("train", "--data", str(tdata), "--as-of", d, "--quiet")
        # margins no challenger misses: every run takes the longer path, promoted and refit with the holdout
        always = work / "retrain-promotes.yaml"
        always.write_text("retrain:\n  log_loss_margin: 1.0\n  brier_margin: 1.0\n  auc_margin: 1.0\n")
        ours = hs("retrain", "--data", str(tdata), "--as-of", d, "--quiet", "--config", str(always))
        runs, refs = [], []
        for i in range(repeat):
            refs.append(timed(train, cwd=store, extra_env=uri))  # also leaves a champion to challenge
            runs.append(timed(ours, cwd=store, extra_env=uri))
            log(f"  retrain run {i + 1}: ours {runs[-1]} train {refs[-1]}")
        results.append({"case": "retrain", "ours": median_of(runs), "ref": median_of(refs), "ref_name": "train"})
    return results


def training_world(work: Path, data: Path, sizes: dict) -> tuple[Path, Path, dict]:
    """The ~200k-row training slice, the SQLite store ``train`` and ``retrain`` share, and its tracking URI."""
    tdata = slice_accounts(data, work / "train-data", sizes["train_accounts"])
    store = work / "train-store"
    store.mkdir(exist_ok=True)
    return tdata, store, {"MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"}


def features_config(work: Path, model_dir: Path) -> Path:
    """A config naming the model's key features, so the floor's rows carry the model's columns."""
    import joblib

    model = joblib.load(model_dir / "health_model.joblib")
    stored = (model.metadata or {}).get("features_config", {})
    path = work / "model-features.yaml"
    names = list(stored.get("key_features", []))
    path.write_text("features:\n  key_features: [" + ", ".join(json.dumps(n) for n in names) + "]\n")
    return path


def training_rows_file(data: Path, as_of: date, model_dir: Path, out: Path) -> None:
    """The training rows' features and labels (what ``train`` fits on), for the bare ``lgb.train`` floor."""
    import joblib

    from healthscore.config import Config
    from healthscore.io import load_dataset
    from healthscore.model.train import training_set_from_dataset

    model = joblib.load(model_dir / "health_model.joblib")
    stored = (model.metadata or {}).get("features_config", {})
    import dataclasses

    cfg = Config()
    cfg = dataclasses.replace(cfg, features=dataclasses.replace(
        cfg.features, key_features=tuple(stored.get("key_features", ()))))
    ts = training_set_from_dataset(load_dataset(data), config=cfg, as_of=as_of)
    ts.features.assign(label=ts.label).to_parquet(out, index=False)


def table(results: list[dict]) -> str:
    lines = ["| command | healthscore | peak | floor | floor peak | ratio | target | load (1 min) |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        ours, ref = r["ours"], r["ref"]
        ratio = ours["seconds"] / max(ref["seconds"], 1e-9)
        max_ratio, max_gib = TARGETS[r["case"]]
        checks = []
        if max_ratio is not None:
            checks.append((f"≤ {max_ratio}×", ratio <= max_ratio))
        if max_gib is not None:
            checks.append((f"≤ {max_gib:.0f} GiB", ours["peak_gib"] <= max_gib))
        if r["case"] == "train":
            checks.append((f"≤ {TRAIN_TARGET_S:.0f} s", ours["seconds"] <= TRAIN_TARGET_S))
        target = " and ".join(c for c, _ in checks) + (": **met**" if all(ok for _, ok in checks) else ": **missed**")
        loads = "–".join(f"{v:.1f}" for v in (min(ours["load"] + ref["load"]), max(ours["load"] + ref["load"])))
        name = r["case"] + (f" (vs {r['ref_name']})" if r.get("ref_name") else "")
        lines.append(f"| {name} | {ours['seconds']:.1f} s | {ours['peak_gib']:.2f} GiB | {ref['seconds']:.1f} s "
                     f"| {ref['peak_gib']:.2f} GiB | {ratio:.2f}× | {target} | {loads} |")
    return "\n".join(lines)


START, END = "<!-- cli-bench:start -->", "<!-- cli-bench:end -->"


def update_doc(path: Path, results: list[dict], sizes: dict) -> None:
    """Replace the table between the markers of ``path`` with these results (atomically)."""
    from run_all import machine

    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} … {END} section")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (f"{START}\nMeasured {when} by `benchmarks/cli.py` (sizes {sizes}); {machine()}.\n\n"
             f"{table(results)}\n{END}")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(head + block + tail, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="step")
    run = sub.add_parser("run")
    # the options go before or after ``run``; the subcommand's copies default to "not given", so an option
    # given before ``run`` is not reset by them (``--doc P run`` once measured 20 minutes and wrote nothing)
    for q, keep in ((p, False), (run, True)):
        d = (lambda v: argparse.SUPPRESS) if keep else (lambda v: v)  # noqa: E731
        q.add_argument("--cases", default=d("validate,features,score,score-1m,train,retrain"))
        q.add_argument("--scale", type=float, default=d(1.0))
        q.add_argument("--repeat", type=int, default=d(3))
        q.add_argument("--work", type=Path, default=d(Path(os.environ.get("HEALTHSCORE_BENCH_DATA",
                                                                          "/tmp/healthscore-bench")) / "cli"))
        q.add_argument("--json", type=Path, default=d(None))
        q.add_argument("--doc", type=Path, default=d(None),
                       help="rewrite the measured table between the cli-bench markers of this page")
    f = sub.add_parser("floor")
    f.add_argument("--data", type=Path, required=True)
    f.add_argument("--as-of", type=date.fromisoformat, required=True)
    s = sub.add_parser("score-floor")
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--as-of", type=date.fromisoformat, required=True)
    s.add_argument("--features", type=Path, required=True)
    s.add_argument("--model-dir", type=Path, required=True)
    t = sub.add_parser("train-floor")
    t.add_argument("--features", type=Path, required=True)
    t.add_argument("--model-dir", type=Path, required=True)
    e = sub.add_parser("export-model")
    e.add_argument("--store", type=Path, required=True)
    e.add_argument("--model-dir", type=Path, required=True)
    r = sub.add_parser("training-rows")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--as-of", type=date.fromisoformat, required=True)
    r.add_argument("--model-dir", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    if a.step == "floor":
        floor_one_date(a.data, a.as_of)
        return 0
    if a.step == "score-floor":
        score_floor(a.data, a.as_of, a.features, a.model_dir)
        return 0
    if a.step == "train-floor":
        train_floor(a.features, a.model_dir)
        return 0
    if a.step == "export-model":
        export_model(a.store, a.model_dir)
        return 0
    if a.step == "training-rows":
        training_rows_file(a.data, a.as_of, a.model_dir, a.out)
        return 0
    sizes = {k: max(1000, int(v * a.scale)) for k, v in FULL.items()}
    sizes["model_accounts"] = min(sizes["model_accounts"], sizes["accounts"])
    work = a.work / f"scale-{a.scale:g}"
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    from run_all import machine

    log(f"machine: {machine()}")
    log(f"sizes: {sizes}  work: {work}  started {datetime.now(timezone.utc):%H:%M:%S} UTC")
    results = run_cases([c.strip() for c in a.cases.split(",") if c.strip()], work, sizes, a.repeat, log)
    print()
    print(table(results))
    if a.doc:
        update_doc(a.doc, results, sizes)
    if a.json:
        a.json.write_text(json.dumps({"machine": machine(), "sizes": sizes, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
