"""Shared fixtures: an isolated MLflow store per test session, no telemetry, fixed threads."""

from __future__ import annotations

import os

import pytest

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("PYTHONHASHSEED", "0")


@pytest.fixture()
def mlflow_store(tmp_path, monkeypatch):
    """A fresh SQLite tracking store under the test's temp dir; the working directory moves there too."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path
