"""Did a change to the fit change the model? Hashes of what ``fit_health_model`` returns, on three worlds.

One world per form CV chooses here (the scorecard alone, the logistic start alone, the blend). Run it at
two commits and compare the lines:

    .venv/bin/python benchmarks/same_model.py                       # this checkout
    PYTHONPATH=/tmp/old/src .venv/bin/python benchmarks/same_model.py   # a worktree of another commit

Printed per world: the form chosen, then hashes of the CV table, the evaluation, the registered model's
probabilities on every row and the evaluated model's, then the sums of the contributions and of the
expected values (floats: a change in the last digits there moves no probability).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_quality import WorldCase, config_for, simulate_world  # noqa: E402

from healthscore.io import dataset_from_frames  # noqa: E402
from healthscore.model.train import fit_health_model, training_set_from_dataset  # noqa: E402

WORLDS = (
    WorldCase("b2b", 400, 11),
    WorldCase("subscription", 1000, 11, lead_times=(7, 14), judged_lead=14),
    WorldCase("b2b", 2000, 7),
)


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def main() -> int:
    for case in WORLDS:
        tables, truth, _ = simulate_world(case)
        cfg = config_for(case)
        ts = training_set_from_dataset(dataset_from_frames(tables), config=cfg, truth=truth)
        result = fit_health_model(ts, config=cfg)
        X = result.model.prepare(ts.features)
        contributions, expected = result.model.contributions(X)
        evaluated = result.evaluated_model
        print(case.name, result.model.metadata.get("form"),
              "cv", _hash(result.cv_results.to_csv().encode()),
              "evaluation", _hash(result.evaluation.to_csv().encode()),
              "registered", _hash(result.model.predict_proba(X).tobytes()),
              "evaluated", _hash(evaluated.predict_proba(evaluated.prepare(ts.features)).tobytes()),
              "contributions", float(np.asarray(contributions).sum()), float(np.asarray(expected).sum()),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
