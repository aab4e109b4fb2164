"""MLproject: entry points named as the commands, parameters named as their options, commands that parse.

Each entry point's shell command is rendered by MLflow itself and run by bash with ``python`` replaced by a
function that prints its arguments, and those arguments are parsed by the real CLI command (click), so a
parameter that builds a wrong option fails here without running anything heavy.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
import yaml

from healthscore.cli import app

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {"simulate", "validate", "train", "retrain", "score", "backtest", "demo"}


def _project():
    from mlflow.projects._project_spec import load_project

    return load_project(str(ROOT))


def _cli_options(command: str) -> dict[str, object]:
    """MLproject-style parameter name (``--as-of`` → ``as_of``) → click option, for the visible options."""
    click_cmd = typer.main.get_command(app).commands[command]
    out = {}
    for param in click_cmd.params:
        if param.param_type_name != "option" or getattr(param, "hidden", False):
            continue
        longest = max(param.opts, key=len)
        out[longest.lstrip("-").replace("-", "_")] = param
    return out


def _args(entry: str, params: dict[str, str]) -> list[str]:
    """The argv the entry point's command would give ``python``, as bash really expands it."""
    command = _project().get_entry_point(entry).compute_command(params, storage_dir=None)
    shown = subprocess.run(["bash", "-c", "python() { printf '%s\\0' \"$@\"; }; " + command],
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.split("\0")[:-1]


def test_mlproject_parses_and_has_every_entry_point():
    project = _project()
    assert project.name == "healthscore"
    assert set(project._entry_points) == ENTRY_POINTS
    assert project.env_type == "python_env"


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_parameters_are_named_as_the_cli_options(entry):
    spec = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"][entry]
    assert set(spec["parameters"]) == set(_cli_options(entry))
    assert spec["command"].count(f"python -m healthscore {entry} ") + spec["command"].count(
        f"python -m healthscore {entry} \"$@\"") >= 1


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_parameter_given_builds_options_the_command_accepts(entry):
    values = {"drift": "true", "quiet": "true", "as_of": "2024-06-30", "accounts": "300", "seed": "3",
              "months": "30", "start": "2022-01-01", "format": "csv", "lock_timeout": "30.5", "allow_stale": "true"}
    params = {name: values.get(name, f"/tmp/some dir/{name} value") for name in _cli_options(entry)}
    args = _args(entry, params)
    assert args[:3] == ["-m", "healthscore", entry]
    click_cmd = typer.main.get_command(app).commands[entry]
    ctx = click_cmd.make_context(entry, args[3:])
    given = {k: v for k, v in ctx.params.items() if v not in (None, False, "", [])}
    by_dest = {p.name: name for name, p in _cli_options(entry).items()}
    # every parameter arrived, under its own option, with its value intact (spaces included)
    assert {by_dest[k] for k in given} == set(params)
    for dest, value in given.items():
        expected = params[by_dest[dest]]
        if isinstance(value, bool):
            assert expected == "true"
        elif isinstance(value, (list, tuple)):
            assert [str(v) for v in value] == [expected]
        else:
            assert str(value) == expected


def test_empty_parameters_are_left_out():
    assert _args("train", {"data": "my data", "as_of": ""}) == ["-m", "healthscore", "train", "--data", "my data"]
    assert _args("retrain", {"data": "d"}) == ["-m", "healthscore", "retrain", "--data", "d"]
    assert _args("simulate", {"out": "w", "drift": "false"})[-1] != "--drift"
    assert "--quiet" not in _args("score", {"out": "o", "data": "d"})


def test_python_env_installs_the_lock_file():
    env = yaml.safe_load((ROOT / "python_env.yaml").read_text())
    assert env["dependencies"] == ["-r requirements.lock", "-e ."]
    major_minor = ".".join(env["python"].split(".")[:2])
    assert major_minor == f"{sys.version_info.major}.{sys.version_info.minor}"
    lock = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M))
    for pin in env["build_dependencies"]:
        if "==" in pin:
            name, version = pin.split("==")
            assert lock.get(name) == version, pin


def test_mlflow_run_validate_with_the_local_environment(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from _tiny_world import tiny_world_frames, write_world

    data = write_world(tiny_world_frames(), tmp_path / "tiny")
    # mlflow.set_experiment() in earlier tests of this process exports MLFLOW_EXPERIMENT_ID: not ours to pass on
    inherited = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")}
    env = {**inherited, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    started = time.monotonic()
    done = subprocess.run([str(Path(sys.executable).parent / "mlflow"), "run", str(ROOT), "-e", "validate",
                           "-P", f"data={data}", "--env-manager", "local"],
                          capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "accounts" in done.stdout and "contracts" in done.stdout
    assert "succeeded" in done.stderr
    print(f"mlflow run validate: {time.monotonic() - started:.1f} s")
