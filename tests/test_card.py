"""The model card: what a model learned from, read back the same way by every job."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pandas as pd

from healthscore.config import FeaturesConfig
from healthscore.model.card import ModelCard, account_hashes, features_config_of, seen_until, share_known


def test_card_round_trips_through_a_models_metadata():
    model = SimpleNamespace(metadata={})
    ModelCard(model_name="m", data_fingerprint="abc", trained_as_of=date(2024, 1, 1),
              features_config=FeaturesConfig(key_features=("a", "b")), lead_times_days=(30, 90),
              holdout_from="2023-10-01").stamp(model)
    assert features_config_of(model, FeaturesConfig()) == FeaturesConfig(key_features=("a", "b"))
    assert seen_until(model) == pd.Timestamp("2023-10-01")  # the earlier of as-of and the holdout's start
    assert model.metadata["trained_as_of"] == "2024-01-01" and model.metadata["lead_times_days"] == [30, 90]


def test_a_model_saved_before_the_card_reads_the_same():
    # earlier releases wrote the same keys by hand; "all decided" means no bound
    old = SimpleNamespace(metadata={"trained_as_of": "all decided", "features_config": {"key_features": ["x"]}})
    assert seen_until(old) is None
    assert features_config_of(old, FeaturesConfig()).key_features == ("x",)
    assert share_known(old, ["A-1"]) is None  # not recorded: no warning possible, none made up


def test_share_known_tells_the_training_accounts_from_others():
    ids = [f"A-{k}" for k in range(1000)]
    model = SimpleNamespace(metadata={"training_account_hashes": account_hashes(ids)})
    assert share_known(model, ids[:500]) == 1.0
    others = [f"B-{k}" for k in range(1000)]
    assert share_known(model, others) < 0.01  # 32-bit hashes: a stray collision at most
    assert abs(share_known(model, ids[:250] + others[:750]) - 0.25) < 0.01
