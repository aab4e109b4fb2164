"""The README's main job, end to end on a small world, through the console script."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd


def test_demo_end_to_end(tmp_path):
    # the user's own store (here: the working directory's default) must stay untouched by the demo
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["COLUMNS"] = "160"
    out = subprocess.run(
        [sys.executable, "-m", "healthscore", "demo", "--out", str(tmp_path / "out"), "--accounts", "300"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Evaluation on the test slice" in out.stdout
    assert "calibrated (" in " ".join(out.stdout.split())  # what was fitted, in one line
    assert "The 10 most at-risk accounts" in out.stdout
    assert "Portfolio by segment" in out.stdout
    scores = pd.read_parquet(tmp_path / "out" / "scores" / "scores.parquet")
    accounts = pd.read_parquet(tmp_path / "out" / "data" / "accounts.parquet")
    assert len(scores) == len(accounts) == 300
    assert scores["previous_score"].notna().any()  # scored twice, a month apart
    reports = tmp_path / "out" / "reports"
    assert (reports / "model_report.html").stat().st_size > 10_000
    assert len(list((reports / "accounts").glob("*.html"))) == 10
    assert "renewal rate" in (reports / "backtest.html").read_text(encoding="utf-8").lower()
    assert "Traceback" not in out.stderr
    # isolated: its store, artifacts and model name live under --out; nothing in the working directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out" / "mlflow.db").is_file() and (tmp_path / "out" / "mlruns").is_dir()
    assert "healthscore-demo" in out.stdout
    # honest: trained a year before the world ends, backtested out of sample on the renewals after that
    assert "(out of sample)" in out.stdout
    assert "trained on every renewal scored here" not in out.stdout + out.stderr
