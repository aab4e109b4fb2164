"""The model card: what a registered model was trained on, written by the jobs in one place, read in one place.

A card is stored in the model's ``metadata`` dict (pickled with the model and shown in MLflow), under the
same keys earlier releases wrote, so a model saved before the card existed loads and reads the same.
Training itself adds its own entries beside it (row sets, calibration, vocabulary; ``model.train``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from healthscore.config import FeaturesConfig

#: the text stored for a model trained on every decided renewal (no ``--as-of``)
ALL_DECIDED = "all decided"
CARD_FORMAT = 1


def as_of_text(as_of: date | None) -> str:
    """``--as-of`` as the card and the run record it: the date, or "all decided"."""
    return str(as_of) if as_of else ALL_DECIDED


@dataclass(frozen=True)
class ModelCard:
    """Which data a model learned from; ``holdout_from`` only for a retrain challenger judged on a holdout."""

    model_name: str
    data_fingerprint: str
    trained_as_of: date | None = None
    features_config: FeaturesConfig | None = None
    lead_times_days: tuple[int, ...] | None = None
    holdout_from: str | None = None
    shuffled_labels_seed: int | None = None
    #: ``account_hashes`` of the accounts the model learned from (None: not recorded)
    training_accounts: np.ndarray | None = None

    def metadata(self) -> dict[str, Any]:
        """The entries this card adds to a model's metadata (the keys earlier releases used)."""
        out: dict[str, Any] = {"data_fingerprint": self.data_fingerprint,
                               "trained_as_of": as_of_text(self.trained_as_of), "model_name": self.model_name,
                               "card_format": CARD_FORMAT}
        if self.holdout_from is not None:
            out["holdout_from"] = self.holdout_from
        if self.features_config is not None:
            out["features_config"] = dataclasses.asdict(self.features_config)
        if self.lead_times_days is not None:
            out["lead_times_days"] = list(self.lead_times_days)
        if self.shuffled_labels_seed is not None:
            out["shuffled_labels_seed"] = self.shuffled_labels_seed
        if self.training_accounts is not None:
            out["training_account_hashes"] = self.training_accounts
        return out

    def stamp(self, model) -> None:
        """Write this card into ``model.metadata``: the one writer."""
        model.metadata.update(self.metadata())


def account_hashes(account_ids) -> np.ndarray:
    """Sorted unique 32-bit hashes of account ids: enough to tell whether a batch is the data a model knew,
    without storing the ids themselves in the model."""
    ids = pd.Series(pd.unique(pd.Series(account_ids).astype(str)))
    hashed = pd.util.hash_pandas_object(ids, index=False, hash_key="healthscore00000").to_numpy()
    return np.unique((hashed & np.uint64(0xFFFFFFFF)).astype(np.uint32))


def share_known(model, account_ids) -> float | None:
    """The share of ``account_ids`` among the accounts the model was trained on (None: not recorded)."""
    known = (getattr(model, "metadata", {}) or {}).get("training_account_hashes")
    if known is None or len(account_ids) == 0:
        return None
    return float(np.isin(account_hashes(account_ids), np.asarray(known)).mean())


def features_config_of(model, fallback: FeaturesConfig) -> FeaturesConfig:
    """The feature settings a model was trained with (from its card), else ``fallback``."""
    stored = (getattr(model, "metadata", {}) or {}).get("features_config")
    if not stored:
        return fallback
    return FeaturesConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()})


def seen_until(model) -> pd.Timestamp | None:
    """The model learned only from renewals before this date (None: from every renewal in its data).

    ``train --as-of T`` learns from renewals decided before T; a retrained challenger also never saw its
    holdout (renewals from ``holdout_from`` on): the earlier of the two bounds.
    """
    metadata = getattr(model, "metadata", {}) or {}
    bounds = []
    for key in ("trained_as_of", "holdout_from"):
        value = metadata.get(key)
        if value and value != ALL_DECIDED:
            try:
                bounds.append(pd.Timestamp(value))
            except (TypeError, ValueError):
                continue
    return min(bounds) if bounds else None
