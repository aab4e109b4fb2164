"""The one "fast" model config of the suite: a one-point grid and few trees, one thread (tests, not quality)."""

from __future__ import annotations

from typing import Any

from healthscore.config import Config, config_from_dict

#: The learned scorecard and blend starts are off here (they double what CV fits); ``test_refit`` and
#: ``test_targets`` turn them on where they are the subject.
FAST_MODEL: dict[str, Any] = {"num_leaves_grid": [7], "min_child_samples_grid": [20], "reg_lambda_grid": [10.0],
                              "n_estimators": 120, "num_threads": 1, "learned_scorecard_start": "off"}


def fast_model(**overrides: Any) -> dict[str, Any]:
    """The fast ``model`` section, with a test's own changes (e.g. ``n_estimators=60``)."""
    return {**FAST_MODEL, **overrides}


def fast_config(model: dict[str, Any] | None = None, **sections: Any) -> Config:
    """A Config with the fast model section (plus ``model`` changes) and any other sections given."""
    return config_from_dict({"model": fast_model(**(model or {})), **sections})
