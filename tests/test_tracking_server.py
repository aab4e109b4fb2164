"""A real MLflow tracking server over HTTP: train → score → retrain against it; and one that is not there.

The server is the venv's ``mlflow server`` on a free port of 127.0.0.1 with a SQLite backend and a local
artifact root, started in its own process group and stopped by that group's id (never by name).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from _fast import fast_model
from healthscore.config import config_from_dict

BIN = Path(sys.executable).parent
SMALL = {"model": fast_model()}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=root,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    try:
        deadline = time.monotonic() + 90
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not come up: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield {"url": url, "root": root}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)  # the server stops its workers in about a second when idle
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is still there
        proc.wait(timeout=15)
        log.close()


def test_train_score_retrain_over_http(server, tmp_path, monkeypatch, capsys):
    from healthscore.cli import main
    from healthscore.jobs.retrain import retrain_job
    from healthscore.jobs.train import train_job
    from healthscore.simulate import SimulationSpec, write_world

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["url"])
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    write_world(SimulationSpec(accounts=300, seed=3, start=date(2022, 1, 1), months=30, drift=True), data)
    cfg = config_from_dict(SMALL)

    trained = train_job(data, config=cfg)
    assert (trained.version, trained.alias) == ("1", "champion")

    monkeypatch.setattr("sys.argv", ["healthscore", "score", "--data", str(data), "--as-of", "2024-07-01",
                                     "--out", str(tmp_path / "scores"), "--quiet"])
    main()
    printed = capsys.readouterr().out
    assert "with model version 1" in printed
    # scored on the day the model was trained for: the batch is the model's own reference batch, nothing drifts
    assert "drift alert" not in printed and "drift warn" not in printed
    scores = pd.read_parquet(tmp_path / "scores" / "scores.parquet")
    assert (scores.loc[scores["status"] == "scored", "model_version"] == "1").all()

    outcome = retrain_job(data, config=cfg)
    assert outcome.version == "2" and outcome.decision in ("promoted", "kept")
    # the champion saw every decided renewal, including the holdout: the report must say so
    assert any("overlaps the holdout" in note for note in outcome.notes)

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=server["url"])
    tags = client.get_model_version("healthscore", "2").tags
    assert tags["decision"] == outcome.decision and tags["reason"] == outcome.reason
    expected_champion = "2" if outcome.decision == "promoted" else "1"
    assert str(client.get_model_version_by_alias("healthscore", "champion").version) == expected_champion
    # artifacts travelled over HTTP into the server's artifact root, not into the working directory
    assert list((server["root"] / "artifacts").rglob("retrain_report.html"))
    assert list((server["root"] / "artifacts").rglob("health_model.joblib"))
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize("command", [["train"], ["retrain"]])
def test_unreachable_server_fails_fast_in_one_line(tmp_path, command):
    port = _free_port()  # nothing listens there
    inherited = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")}
    env = {**inherited, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    data = tmp_path / "data"
    data.mkdir()
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "healthscore", *command, "--data", str(data)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    elapsed = time.monotonic() - started
    assert done.returncode != 0
    assert elapsed < 30, elapsed
    err = done.stderr.strip()
    assert "Traceback" not in err and "Traceback" not in done.stdout
    assert err.startswith(f"healthscore: MLflow tracking server at http://127.0.0.1:{port} is unreachable")
    assert "Nothing was logged or registered" in err
    assert len(err.splitlines()) <= 3  # one paragraph (the console may wrap it)
    # nothing was written anywhere: no fallback local store, no half-made run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
