"""The review notebook runs top to bottom on a small world (nbclient, the venv's own kernel); git holds no outputs."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import nbformat
import pytest

from _fast import fast_model
from healthscore.config import config_from_dict

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "review_model.ipynb"
SMALL = {"model": fast_model()}


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code"
    assert all(c.outputs == [] and c.execution_count is None for c in code)


def _kernel_in(tmp: Path) -> str:
    """Install a kernelspec that runs this interpreter (the venv's) under ``tmp``; return its name."""
    from ipykernel.kernelspec import install

    install(kernel_name="healthscore-test", prefix=str(tmp))
    return "healthscore-test"


def test_review_notebook_runs_on_a_small_world(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    from healthscore.jobs.train import train_job
    from healthscore.simulate import SimulationSpec, write_world

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    write_world(SimulationSpec(accounts=300, seed=3, start=date(2022, 1, 1), months=30, drift=True), data)
    cfg = config_from_dict(SMALL)
    train_job(data, config=cfg, as_of=date(2024, 1, 1))  # v1 champion: the baseline
    train_job(data, config=cfg, as_of=date(2024, 3, 1))  # v2 challenger: under review

    kernel = _kernel_in(tmp_path / "kernels")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "kernels" / "share" / "jupyter"))
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(kernel)
    assert Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()  # the venv, not a system python

    monkeypatch.setenv("HEALTHSCORE_DATA", str(data))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, kernel_name=kernel, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()

    text = "\n".join(
        out.get("text", "") + "".join(str(v) for v in out.get("data", {}).values())
        for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    )
    assert "model version 2 (models:/healthscore@challenger)" in text
    assert "baseline: version 1" in text
    assert "are out of sample for every model compared" in text
    assert "learned %" in text and "hand %" in text
    assert "alert" in text and "warn" in text
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.get("output_type") == "error"]
    assert errors == []
    if not text:
        pytest.fail("the notebook printed nothing")
