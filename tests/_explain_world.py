"""Worlds for the explanation tests: a hand-counted two-stump model, and a small simulated world scored twice.

The golden model (``golden_model``) is written by hand as LightGBM model text, so every number is countable:

- tree 0 splits ``seat_utilization_30d`` at 0.5: left leaf −1.0 (50 training rows), right +0.5 (150 rows);
  its expected value is (50·−1.0 + 150·0.5)/200 = 0.125.
- tree 1 splits ``urgent_tickets_90d`` at 1.5: left +0.2 (160 rows), right −0.8 (40 rows); expected 0.
- the calibrator is the identity sigmoid, so p = σ(margin) and the baseline is 100·σ(0.125) = 53.1209…

TreeSHAP of a stump is the leaf value minus the tree's expected value, so for seat utilisation 0.34 and 3
urgent tickets: φ = (−1.125, −0.8), margin = 0.125 − 1.925 = −1.8, p = σ(−1.8) = 0.1418511, and the
38.9358 points below the baseline split 1.125 : 0.8 → −22.7547 (usage) and −16.1811 (support).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from datetime import date

import pandas as pd

from _fast import fast_model
from healthscore.features import FeatureSpec
from healthscore.model.calibrate import Calibrator
from healthscore.model.health_model import HealthModel


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _stump(i: int, feature: int, threshold: float, left: float, right: float, n_left: int, n_right: int) -> str:
    return (
        f"Tree={i}\nnum_leaves=2\nnum_cat=0\nsplit_feature={feature}\nsplit_gain=1\nthreshold={threshold}\n"
        f"decision_type=2\nleft_child=-1\nright_child=-2\nleaf_value={left} {right}\n"
        f"leaf_weight={n_left} {n_right}\nleaf_count={n_left} {n_right}\ninternal_value=0\n"
        f"internal_weight={n_left + n_right}\ninternal_count={n_left + n_right}\nis_linear=0\nshrinkage=1\n\n"
    )


GOLDEN_FEATURES = ["seat_utilization_30d", "urgent_tickets_90d"]
GOLDEN_SPECS = {
    "seat_utilization_30d": FeatureSpec("seat_utilization_30d", "usage", "share of seats", 30, 1,
                                        "Active users in the last 30 days per licensed seat"),
    "urgent_tickets_90d": FeatureSpec("urgent_tickets_90d", "support", "tickets", 90, -1,
                                      "Urgent tickets opened in the last 90 days"),
}


def golden_model() -> HealthModel:
    """The two-stump model of the module docstring, with reference medians per segment."""
    text = (
        "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=1\n"
        f"objective=binary sigmoid:1\nfeature_names={' '.join(GOLDEN_FEATURES)}\nfeature_infos=[0:1] [0:10]\n\n"
        + _stump(0, 0, 0.5, -1.0, 0.5, 50, 150)
        + _stump(1, 1, 1.5, 0.2, -0.8, 160, 40)
        + "end of trees\n\npandas_categorical:null\n"
    )
    calibrator = Calibrator()
    calibrator.method_ = "sigmoid"  # coef 1, intercept 0: p = σ(margin)
    return HealthModel(
        feature_names=list(GOLDEN_FEATURES),
        categories={},
        components={"seat_utilization_30d": "usage", "urgent_tickets_90d": "support"},
        booster_text=text,
        calibrator=calibrator,
        references={"seat_utilization_30d": {"all": 0.6, "smb": 0.71}, "urgent_tickets_90d": {"all": 0.0}},
        metadata={"expected_margin": 0.125},
    )


@functools.cache
def simulated_run():
    """A 250-account simulated world, a small model trained on it and two monthly score batches (~10 s)."""
    from healthscore.config import config_from_dict
    from healthscore.io.read import dataset_from_frames
    from healthscore.model.train import fit_health_model, training_set_from_dataset
    from healthscore.scoring import score_batch
    from healthscore.simulate import SimulationSpec, simulate
    from healthscore.tracking import LoadedModel

    world = simulate(SimulationSpec(accounts=250, seed=11, months=30))
    ds = dataset_from_frames(world.tables)
    # no usage-by-feature columns: on 250 accounts the shares displace seat utilisation, the monotone
    # feature whose explanation test_low_seat_utilisation_lowers_the_usage_contribution checks
    config = config_from_dict({"model": fast_model(reg_lambda_grid=[1.0], n_estimators=100),
                               "features": {"usage_by_feature": "off"}})
    ts = training_set_from_dataset(ds, config=config, truth=world.truth)
    result = fit_health_model(ts, config=config)
    # as train_job does: the model scores with the key product features learned at training
    result.model.metadata["features_config"] = dataclasses.asdict(ts.features_config)
    loaded = LoadedModel(model=result.model, version="1", uri="test", run_id=None)
    first = score_batch(ds, date(2024, 3, 1), loaded, config)
    second = score_batch(ds, date(2024, 4, 1), loaded, config, previous_history=first.history)
    return {"ds": ds, "config": config, "ts": ts, "result": result, "first": first, "second": second}


def hand_scores(tmp_path, *, name: str = "Acme Corp", reason: str = "Champion left", csm: str = "Dana",
                adjustment: float = -10.0) -> str:
    """A score-run directory for the golden model: accounts A-GOLD (scored twice) and A-NONE (no contract)."""
    from healthscore.explain import CONTRIB_COLUMNS, driver_sentences, feature_points

    model = golden_model()
    X = pd.DataFrame({"seat_utilization_30d": [0.34, 0.9], "urgent_tickets_90d": [3.0, 0.0]}, index=[0, 1])
    fpoints, probability, baseline = feature_points(model, X)
    drivers = driver_sentences(model, X, fpoints, specs=GOLDEN_SPECS, segments=pd.Series(["smb", "smb"]))
    rows = []
    # run 1 (2024-03-01): A-GOLD looked like row 1 (healthy); run 2 (2024-04-01): like row 0
    for as_of, i, adj in (("2024-03-01", 1, 0.0), ("2024-04-01", 0, adjustment)):
        p = float(probability[i])
        model_score = float(round(100 * p))
        rows.append({
            "account_id": "A-GOLD", "name": name, "segment": "smb", "csm": csm, "as_of": pd.Timestamp(as_of),
            "status": "scored", "contract_id": "C-1", "renewal_date": pd.Timestamp("2024-09-30"), "arr": 12000.0,
            "probability": p, "model_score": model_score, "adjustment": adj,
            "adjustment_reasons": f"{reason}: {adj:+.0f}" if adj else None,
            "score": min(100.0, max(0.0, model_score + adj)), "band": "at_risk" if i == 0 else "healthy",
            "baseline": baseline, "contrib_usage": fpoints.iloc[i, 0], "contrib_support": fpoints.iloc[i, 1],
            **{c: 0.0 for c in CONTRIB_COLUMNS if c not in ("contrib_usage", "contrib_support")},
            **drivers.iloc[i].to_dict(), "model_version": "7", "alert": None, "playbook": None,
        })
    none = {"account_id": "A-NONE", "name": "Umbrella", "segment": "smb", "csm": None, "status": "no_active_contract"}
    history = pd.DataFrame(rows + [{**none, "as_of": pd.Timestamp(d)} for d in ("2024-03-01", "2024-04-01")])
    scores = pd.DataFrame([rows[1], {**none, "as_of": pd.Timestamp("2024-04-01")}])
    long = pd.DataFrame({
        "account_id": "A-GOLD", "feature": GOLDEN_FEATURES, "component": ["usage", "support"],
        "value": ["0.34", "3.0"], "contribution": fpoints.iloc[0].to_numpy(),
    })
    scores.to_parquet(tmp_path / "scores.parquet")
    history.to_parquet(tmp_path / "history.parquet")
    long.to_parquet(tmp_path / "explanations.parquet")
    return str(tmp_path)
