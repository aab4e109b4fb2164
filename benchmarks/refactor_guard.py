"""Outputs that a behaviour-preserving refactor must leave identical: record them once, compare later.

    .venv/bin/python benchmarks/refactor_guard.py record /tmp/guard-before     # on the code before the change
    .venv/bin/python benchmarks/refactor_guard.py record /tmp/guard-after      # on the code after it
    .venv/bin/python benchmarks/refactor_guard.py compare /tmp/guard-before /tmp/guard-after

It runs the CLI as a user would (each command its own process, a store of its own), on a small simulated
world and on a shipped real table, and keeps:

- the batch files of two ``score`` runs a month apart (``scores.parquet``/``.csv``, ``explanations.parquet``,
  ``history.parquet``, ``portfolio.csv``, ``drift.csv``), and of a ``score --table`` run;
- the train run's metrics (the evaluation table, flattened) and its evaluation CSVs;
- the retrain decision (the run's metrics and the decision tags, and where the aliases point);
- the backtest run's metrics.

Tables are compared value by value (floats to the last bit, i.e. exactly); CSVs byte by byte. Anything that
names a run, a time or a path is left out, because it differs between any two runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
AS_OF_TRAIN = "2024-03-01"
SCORE_DATES = ("2024-04-01", "2024-05-01")
BATCH_FILES = ("scores.parquet", "scores.csv", "explanations.parquet", "history.parquet", "portfolio.csv",
               "drift.csv")
TABLE = ROOT / "data" / "external" / "iranian-telecom-churn"
#: run-specific tags (ids, times, paths, commits) that two identical runs still differ in
VOLATILE = ("mlflow.", "git_commit", "data_source", "run_id", "model_uri", "source_run")


def _cli(work: Path, *args: str) -> str:
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}", PYTHONHASHSEED="0",
               MLFLOW_DISABLE_TELEMETRY="true")
    done = subprocess.run([sys.executable, "-m", "healthscore", *args], cwd=work, env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"healthscore {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _keep_batch(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in BATCH_FILES:
        if (src / name).exists():
            (dest / name).write_bytes((src / name).read_bytes())


def _runs(work: Path) -> dict[str, dict]:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    out: dict[str, dict] = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]):
            name = run.data.tags.get("mlflow.runName", run.info.run_id)
            key = name
            n = 2
            while key in out:
                key, n = f"{name}#{n}", n + 1
            out[key] = {
                "metrics": dict(sorted(run.data.metrics.items())),
                "params": {k: v for k, v in sorted(run.data.params.items()) if not k.startswith(VOLATILE)},
                "tags": {k: v for k, v in sorted(run.data.tags.items()) if not k.startswith(VOLATILE)},
            }
    models = {}
    for rm in client.search_registered_models():
        versions = client.search_model_versions(f"name='{rm.name}'")
        models[rm.name] = {
            "aliases": dict(sorted(rm.aliases.items())) if rm.aliases else {},
            "versions": {str(v.version): {k: t for k, t in sorted(v.tags.items()) if not k.startswith(VOLATILE)}
                         for v in sorted(versions, key=lambda v: int(v.version))},
        }
    out["_registry"] = models
    return out


def record(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="guard-") as tmp:
        work = Path(tmp)
        _cli(work, "simulate", "--out", "data", "--accounts", "400", "--seed", "5", "--months", "30")
        _cli(work, "train", "--data", "data", "--as-of", AS_OF_TRAIN, "--quiet")
        for d in SCORE_DATES:
            _cli(work, "score", "--data", "data", "--as-of", d, "--out", "scores", "--quiet")
            _keep_batch(work / "scores", dest / f"score-{d}")
        _cli(work, "retrain", "--data", "data")
        _cli(work, "backtest", "--data", "data", "--out", "backtest.html")
        _cli(work, "train", "--table", str(TABLE / "Customer_Churn.csv"), "--target", "Churn", "--churn-value", "1",
             "--components", str(TABLE / "components.yaml"), "--model-name", "table", "--quiet")
        _cli(work, "score", "--table", str(TABLE / "Customer_Churn.csv"), "--model-name", "table", "--out",
             "table-scores", "--quiet")
        _keep_batch(work / "table-scores", dest / "score-table")
        (dest / "runs.json").write_text(json.dumps(_runs(work), indent=1, sort_keys=True, default=str))


def _same_table(a: Path, b: Path) -> str | None:
    fa, fb = pd.read_parquet(a), pd.read_parquet(b)
    fa = fa.drop(columns=[c for c in fa.columns if c in ("model_version",)], errors="ignore")
    fb = fb.drop(columns=[c for c in fb.columns if c in ("model_version",)], errors="ignore")
    try:
        pd.testing.assert_frame_equal(fa, fb, check_exact=True)
    except AssertionError as exc:
        return str(exc).splitlines()[0:6].__str__()
    return None


def compare(a: Path, b: Path) -> int:
    problems = []
    for folder in sorted(p.name for p in a.iterdir() if p.is_dir()):
        for name in BATCH_FILES:
            fa, fb = a / folder / name, b / folder / name
            if fa.exists() != fb.exists():
                problems.append(f"{folder}/{name}: present in only one")
            elif not fa.exists():
                continue
            elif name.endswith(".parquet"):
                diff = _same_table(fa, fb)
                if diff:
                    problems.append(f"{folder}/{name}: {diff}")
            elif fa.read_bytes() != fb.read_bytes():
                problems.append(f"{folder}/{name}: bytes differ")
    ra, rb = json.loads((a / "runs.json").read_text()), json.loads((b / "runs.json").read_text())
    for key in sorted(set(ra) | set(rb)):
        if ra.get(key) != rb.get(key):
            for part in ("metrics", "params", "tags", "aliases", "versions"):
                va = (ra.get(key) or {}).get(part)
                vb = (rb.get(key) or {}).get(part)
                if va != vb:
                    if isinstance(va, dict) and isinstance(vb, dict):
                        keys = sorted(k for k in set(va) | set(vb) if va.get(k) != vb.get(k))
                        shown = ", ".join(f"{k}: {va.get(k)!r} -> {vb.get(k)!r}" for k in keys[:5])
                        problems.append(f"run {key} {part} differ ({len(keys)}): {shown}")
                    else:
                        problems.append(f"run {key} {part} differ: {va!r} -> {vb!r}")
    for p in problems:
        print(p)
    print("identical" if not problems else f"{len(problems)} differences")
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "record":
        record(Path(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        return compare(Path(argv[1]), Path(argv[2]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
