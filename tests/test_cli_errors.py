"""No traceback, ever: usage errors exit 2 with click's usage text; every refused input or OS error is one line.

Most cases call ``cli.main`` in this process (fast); one runs the real ``python -m healthscore`` entry point.
"""

from __future__ import annotations

import errno
import os
import threading
from datetime import date

import pytest

from _ops_world import cli, ops_world
from healthscore import __version__
from healthscore import cli as cli_module

COMMANDS = ["simulate", "validate", "features", "train", "score", "explain", "demo", "retrain", "promote",
            "backtest"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        cli_module.main(list(argv))
        code = 0
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.mark.parametrize(("argv", "message"), [
    (["score"], "Missing option '--out'"),
    (["validate"], "Missing option '--data'"),
    (["scor"], "No such command 'scor'. Did you mean 'score'?"),
    (["validate", "--dta", "x"], "No such option: --dta"),
    (["simulate", "--out", "x", "--drift", "true"], "Got unexpected extra argument(s) (true)"),
    (["simulate", "--out", "x", "--accounts", "ten"], "Invalid value for '--accounts'"),
    (["explain", "--scores", "x"], "Missing argument 'ACCOUNT_ID'"),
    (["score", "--out", "x", "--lock-timeout", "-1"], "Invalid value for '--lock-timeout'"),
    (["promote", "3"], "Missing option '--reason'"),
])
def test_usage_errors_exit_2_with_the_usage_text(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "Usage:" in err and message in err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_with_a_bad_option_is_a_usage_error(capsys, command):
    code, _, err = run(capsys, command, "--no-such-option")
    assert code == 2 and "No such option: --no-such-option" in err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"healthscore {__version__}"


def test_boolean_flags_have_a_negative_form(capsys):
    code, out, _ = run(capsys, "simulate", "--help")
    assert code == 0 and "--drift" in out and "--no-drift" in out


def test_the_console_script_itself_prints_no_traceback(tmp_path):
    done = cli("scor", cwd=tmp_path)
    assert done.returncode == 2 and "Did you mean 'score'?" in done.stderr and "Traceback" not in done.stderr


# ---- refused inputs and OS errors: one line, the path named ------------------------------------------------

def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_out_of_range_as_of(capsys, tmp_path):
    code, _, err = run(capsys, "score", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--as-of",
                       "9999-12-31")
    assert code == 2
    assert _one_line(err) == ("healthscore: --as-of 9999-12-31 is out of range: use a date between 1900-01-01 and "
                              "2262-04-10")


def test_an_out_that_is_a_file_is_refused_before_any_work(capsys, tmp_path, monkeypatch):
    from healthscore import tracking

    monkeypatch.setattr(tracking, "load_model", lambda *a, **k: pytest.fail("the model was loaded first"))
    taken = tmp_path / "out"
    taken.write_text("x")
    code, _, err = run(capsys, "score", "--data", str(tmp_path), "--out", str(taken), "--as-of", "2024-04-01")
    assert code == 2
    assert _one_line(err).startswith(f"healthscore: cannot write the output folder: File exists ({taken})")


@pytest.fixture()
def in_process_model(monkeypatch, mlflow_store):
    from healthscore import tracking

    world = ops_world()
    # the model comes from memory; the batch's run goes to this test's own store (mlflow_store), never the cwd
    monkeypatch.setattr(tracking, "load_model", lambda uri, **kwargs: world["loaded"])
    return world


def test_a_full_disk_is_one_line_and_the_previous_batch_stays(capsys, tmp_path, monkeypatch, in_process_model):
    world, out = in_process_model, tmp_path / "out"
    base = ["score", "--data", str(world["data"]), "--out", str(out), "-q"]
    assert run(capsys, *base, "--as-of", "2024-03-01")[0] == 0
    from healthscore.io import write as write_module

    def full(df, handle):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(write_module, "_write_parquet", full)
    code, _, err = run(capsys, *base, "--as-of", "2024-04-01")
    assert code == 2
    line = _one_line(err)
    assert line.startswith("healthscore: cannot write the batch: No space left on device (")
    assert line.endswith("(as of 2024-03-01, model version path:model)) is still current")


def test_stale_data_is_refused_and_allow_stale_scores_it(capsys, tmp_path, in_process_model):
    world, out = in_process_model, tmp_path / "out"
    base = ["score", "--data", str(world["data"]), "--out", str(out), "-q", "--as-of", "2024-07-20"]
    code, _, err = run(capsys, *base)
    assert code == 2 and "cannot score as of 2024-07-20: 1 problem" in err and "--allow-stale" in err
    assert not out.joinpath("current").exists()
    code, out_text, err = run(capsys, *base, "--allow-stale")
    assert code == 0 and "note: scored stale data (--allow-stale): usage_events ends 2024-06-30" in err
    import pandas as pd

    assert pd.read_parquet(out / "scores.parquet")["stale_data"].all()


def test_score_loads_model_and_data_side_by_side_and_reports_the_model_first(capsys, tmp_path, mlflow_store):
    """The model and the data load at once (jobs.score.load_model_and_data); what fails is reported as when
    they loaded one after the other: the model's problem first, then the data's, each alone."""
    world = ops_world()
    bad_data = tmp_path / "data"
    bad_data.mkdir()
    (bad_data / "accounts.csv").write_text("account_id\nA1\n")  # no contracts: a data problem
    out = tmp_path / "out"
    code, _, err = run(capsys, "score", "--data", str(bad_data), "--as-of", "2024-03-01", "--out", str(out), "-q",
                       "--model", "models:/no-such-model@champion")
    assert code == 2 and "cannot load model models:/no-such-model@champion" in err and "contracts" not in err
    code, _, err = run(capsys, "score", "--data", str(bad_data), "--as-of", "2024-03-01", "--out", str(out), "-q",
                       "--model", world["model_uri"])
    assert code == 2 and "required table is missing" in err and "contracts" in err
    assert not out.joinpath("current").exists()


def test_a_model_that_cannot_load_stops_the_data_scan_beside_it(tmp_path, monkeypatch):
    """The model's error is raised once the scan beside it has been stopped: its running query is
    interrupted, a query it starts next is interrupted too (DuckDB forgets an interrupt between two
    queries), and a connection it opens after that is refused. Without this the process waits for the
    whole scan (minutes here) before it can exit."""
    import healthscore.jobs.score as score_module
    from healthscore.errors import TrackingError
    from healthscore.io.events import connect

    seen: list[str] = []
    started = threading.Event()
    endless = "SELECT count(*) FROM range(20000000000) t(x) WHERE x % 7 = 1"

    def scan(data, before=None):
        con = connect()
        started.set()
        for _ in range(2):
            try:
                con.execute(endless).fetchall()
                seen.append("finished")
            except Exception as exc:  # noqa: BLE001 (what stopped it is the point)
                seen.append(type(exc).__name__)
        try:
            connect()
            seen.append("connected")
        except Exception as exc:  # noqa: BLE001
            seen.append(type(exc).__name__)
        raise AssertionError("the data's result is not wanted")

    def model(uri):
        started.wait(30)
        raise TrackingError(f"cannot load model {uri}")

    monkeypatch.setattr(score_module, "load_dataset", scan)
    monkeypatch.setattr(score_module, "_load_model", model)
    with pytest.raises(TrackingError, match="cannot load model"):
        score_module.load_model_and_data("models:/gone@champion", tmp_path)
    assert seen == ["InterruptException", "InterruptException", "ScanCancelled"]
    assert not [t for t in threading.enumerate() if t.name.startswith("healthscore-data") and t.is_alive()]


def test_ctrl_c_inside_a_duckdb_query_is_aborted_not_a_bug(tmp_path):
    """DuckDB turns Ctrl-C during a query into ``RuntimeError("Query interrupted")``; the CLI says "aborted"
    (exit 130) as for any Ctrl-C, not "internal error … this is a bug". In a process of its own: the signal
    is real."""
    import subprocess
    import sys

    script = tmp_path / "interrupted.py"
    script.write_text(
        "import os, signal, sys, threading\n"
        "import healthscore.io as io_module\n"
        "from healthscore.io.events import connect\n"
        "def scan(path, **kwargs):\n"
        "    con = connect()\n"
        "    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        "    con.execute('SELECT count(*) FROM range(20000000000) t(x) WHERE x % 7 = 1').fetchall()\n"
        "io_module.load_dataset = scan\n"
        "from healthscore.cli import main\n"
        "main(['validate', '--data', sys.argv[1]])\n"
    )
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr.strip()) == (130, "healthscore: aborted")


def test_a_broken_store_is_one_line_with_the_fix(capsys, tmp_path, monkeypatch):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a database, a half-migrated one fails the same way" * 50)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    code, _, err = run(capsys, "promote", "1", "--reason", "test")
    assert code == 2
    line = _one_line(err)
    assert f"the MLflow store {db} cannot be used" in line and f"mv {db} {db}.broken" in line


def test_os_errors_and_bugs_are_one_line(capsys, tmp_path, monkeypatch):
    import healthscore.io as io_module

    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(io_module, "load_dataset", denied)
    code, _, err = run(capsys, "validate", "--data", str(tmp_path))
    assert code == 2 and _one_line(err) == f"healthscore: Permission denied ({tmp_path})"

    def bug(path):
        return {}["missing"]

    monkeypatch.setattr(io_module, "load_dataset", bug)
    code, _, err = run(capsys, "validate", "--data", str(tmp_path))
    assert code == 1
    assert _one_line(err).startswith("healthscore: internal error: KeyError: 'missing' (this is a bug; rerun "
                                     "with HEALTHSCORE_DEBUG=1")


def test_train_before_any_decided_renewal_names_the_first_decision():
    from _tiny_world import tiny_world_frames
    from healthscore.config import Config
    from healthscore.errors import HealthscoreError
    from healthscore.io import dataset_from_frames
    from healthscore.model.train import training_set_from_dataset

    ds = dataset_from_frames(tiny_world_frames())
    with pytest.raises(HealthscoreError, match=r"no renewals were decided before --as-of 2019-01-01: the first "
                                               r"decided renewal is contract C-1 on 2023-01-01 \(3 decided in all\)"):
        training_set_from_dataset(ds, config=Config(), as_of=date(2019, 1, 1))
