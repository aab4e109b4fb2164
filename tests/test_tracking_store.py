"""A safe local MLflow store: created once under a lock, registrations serialised, a damaged store one line.

Each test starts several processes at the same instant (after their imports), as two cron jobs would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _ops_world import SRC
from healthscore import tracking
from healthscore.errors import TrackingError

TESTS = str(Path(__file__).resolve().parent)

RACE = """
import json, os, sys, time
sys.path[:0] = [{src!r}, {tests!r}]
import pandas as pd
from _explain_world import golden_model
from healthscore import tracking

def wait(step):
    print(step, flush=True)
    while not os.path.exists(os.path.join(os.getcwd(), "go-" + step)):
        time.sleep(0.002)

wait("ready")
tracking.connect()  # the store does not exist yet: both create it at once
wait("connected")
with tracking.run(experiment="race", run_name="race"):  # both register a first version at once
    example = pd.DataFrame({{"seat_utilization_30d": [0.3], "urgent_tickets_90d": [1.0]}})
    version, alias = tracking.log_model(golden_model(), input_example=example, model_name="race")
print(json.dumps({{"version": version, "alias": alias}}))
"""


def test_two_commands_creating_a_store_and_registering_at_the_same_moment(tmp_path, monkeypatch):
    """Two processes first touch a new store, then register a first version, each pair at the same instant.

    Without the store lock the first race broke the schema migration (3 of 3 trials) and the second printed
    "champion" in both processes; now both succeed and the aliases printed are the registry's.
    """
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    procs = [subprocess.Popen([sys.executable, "-c", RACE.format(src=SRC, tests=TESTS)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for step in ("ready", "connected"):
            for p in procs:
                line = p.stdout.readline().strip()
                assert line == step, (line, p.stderr.read()[-3000:] if p.poll() is not None else "")
            (tmp_path / f"go-{step}").touch()
        done = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [rc for rc, _, _ in done] == [0, 0], [err[-2000:] for _, _, err in done]
    printed = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in done]
    assert sorted(p["alias"] for p in printed) == ["challenger", "champion"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracking.connect()  # and the store is whole for the next command
    assert tracking.model_aliases("race") == {p["alias"]: p["version"] for p in printed}
    assert (tmp_path / "mlflow.db.lock").read_text() == ""  # released


def test_a_damaged_store_is_one_line_with_the_fix(tmp_path, monkeypatch):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"\x00garbage" * 100)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    with pytest.raises(TrackingError, match=rf"the MLflow store {db} cannot be used \(.*\): it is probably "
                                            rf"half-migrated or damaged. Move it aside .*mv {db} {db}.broken"):
        tracking.connect()


def test_a_model_folder_needs_no_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracking.connect(open_store=False)
    assert not (tmp_path / "mlflow.db").exists()


def test_sqlite_paths():
    assert tracking.sqlite_path("sqlite:///mlflow.db") == Path("mlflow.db")
    assert tracking.sqlite_path("sqlite:////abs/m.db") == Path("/abs/m.db")
    assert tracking.sqlite_path("http://localhost:5000") is None
    assert tracking.sqlite_path("sqlite:///:memory:") is None
