"""A world for the output-folder, gate and CLI tests, shared with the explanation tests' simulated run.

``simulated_run()`` (``_explain_world``) trains one small model on a 250-account world once per session;
this adds that world as files on disk, the model as a plain model folder (``--model DIR`` loads
``DIR/artifacts/health_model.joblib`` without any MLflow store), and helpers to run the CLI in a
subprocess as a cron job would. The world runs 2022-01-01 to 2024-07-01: its data ends 2024-06-30.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import joblib

from _explain_world import simulated_run

AS_OF_1 = date(2024, 3, 1)
AS_OF_2 = date(2024, 4, 1)
SRC = str(Path(__file__).resolve().parents[1] / "src")


@functools.cache
def ops_world() -> dict:
    """The run of ``simulated_run`` plus ``data`` (its dataset on disk) and ``model_uri`` (a model folder)."""
    from healthscore.simulate import SimulationSpec, write_world
    from healthscore.tracking import LoadedModel

    run = simulated_run()
    root = Path(tempfile.mkdtemp(prefix="healthscore-ops-world-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    write_world(SimulationSpec(accounts=250, seed=11, months=30), root / "data")
    (root / "model" / "artifacts").mkdir(parents=True)
    joblib.dump(run["result"].model, root / "model" / "artifacts" / "health_model.joblib")
    return {**run, "root": root, "data": root / "data", "model_uri": str(root / "model"),
            "loaded": LoadedModel(model=run["result"].model, version="path:model", uri=str(root / "model"),
                                  run_id=None)}


def cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m healthscore ARGS`` in a subprocess, with its own (never created) MLflow store."""
    full_env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
                "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}", "COLUMNS": "200",
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "healthscore", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def cli_popen(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
                "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}", "COLUMNS": "200", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "healthscore", *args], cwd=cwd, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
