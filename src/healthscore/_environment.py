"""The process's environment defaults for MLflow, in one place, set before any thread starts.

MLflow reads them when imported and when it talks to a server; they are set here, on the main thread,
before ``jobs.side_by_side`` starts DuckDB on a thread of its own beside MLflow's import: setting a variable
while another thread's native code reads the environment is not safe (glibc's ``setenv``).
"""

from __future__ import annotations

import os

MLFLOW_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # an unreachable server must be reported fast, not after minutes of retries (PITFALLS)
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def set_mlflow_defaults() -> None:
    """Each of ``MLFLOW_DEFAULTS`` the user has not set (a variable already set is left as it is)."""
    for name, value in MLFLOW_DEFAULTS.items():
        os.environ.setdefault(name, value)
