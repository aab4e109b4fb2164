"""Backtest: hand-counted summaries, then a trained champion on a small drifting world, point-in-time."""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import pandas as pd
import pytest

from _fast import fast_model
from healthscore.backtest import (
    band_calibration,
    healthy_before_churn,
    renewal_by_decile,
)
from healthscore.config import BANDS, config_from_dict
from healthscore.jobs.backtest import backtest_job

SMALL = {"model": fast_model()}


def _story() -> pd.DataFrame:
    """Six renewals of model version 7, each seen 90 days before (and C-1 also 30 days before).

    C-1 churned, called healthy at 90 days (a miss) and at_risk at 30; C-2 churned, at_risk; C-3 renewed,
    healthy; C-4 renewed, watch; C-5 churned, watch; C-6 renewed, healthy (enterprise; the rest smb).
    C-5 and C-6 were decided after the model's training date (out of sample).
    """
    rows = [
        ("C-1", 90, 0, 0.85, "healthy", "smb", True),
        ("C-1", 30, 0, 0.30, "at_risk", "smb", True),
        ("C-2", 90, 0, 0.40, "at_risk", "smb", True),
        ("C-3", 90, 1, 0.90, "healthy", "smb", True),
        ("C-4", 90, 1, 0.70, "watch", "smb", True),
        ("C-5", 90, 0, 0.65, "watch", "smb", False),
        ("C-6", 90, 1, 0.95, "healthy", "enterprise", False),
    ]
    frame = pd.DataFrame(rows, columns=["contract_id", "lead_time_days", "label", "probability", "band", "segment",
                                        "in_sample"])
    frame["model_version"] = "7"
    return frame.sample(frac=1.0, random_state=11).reset_index(drop=True)  # row order must not matter


def test_band_calibration_by_hand():
    table = band_calibration(_story())
    every = table[(table["sample"] == "all") & (table["lead_time_days"] == "all")].set_index("band")
    assert every.loc[list(BANDS), "n"].tolist() == [3, 2, 2]
    assert every.loc["healthy", "observed_renewal_rate"] == pytest.approx(2 / 3)
    assert every.loc["healthy", "mean_predicted"] == pytest.approx((0.85 + 0.90 + 0.95) / 3)
    assert every.loc["watch", "observed_renewal_rate"] == pytest.approx(1 / 2)
    assert every.loc["at_risk", "churned"] == 2 and every.loc["at_risk", "observed_renewal_rate"] == 0
    out = table[(table["sample"] == "out_of_sample") & (table["lead_time_days"] == "all")].set_index("band")
    assert out.loc[list(BANDS), "n"].tolist() == [1, 1, 0]
    assert np.isnan(out.loc["at_risk", "observed_renewal_rate"])
    at30 = table[(table["sample"] == "all") & (table["lead_time_days"] == "30")].set_index("band")
    assert at30.loc[list(BANDS), "n"].tolist() == [0, 0, 1]


def test_share_of_churned_that_looked_healthy_90_days_before():
    table = healthy_before_churn(_story(), lead_days=90).set_index(["group", "level"])
    # churned at 90 days: C-1 (healthy), C-2 (at_risk), C-5 (watch) → 1 of 3
    assert table.loc[("all", "all"), ["churned", "healthy_before"]].tolist() == [3, 1]
    assert table.loc[("all", "all"), "share"] == pytest.approx(1 / 3)
    assert table.loc[("segment", "smb"), "share"] == pytest.approx(1 / 3)
    assert ("segment", "enterprise") not in table.index  # no churn there: nothing to count


def test_renewal_by_decile_orders_by_probability():
    story = _story()
    table = renewal_by_decile(story)
    assert table["n"].sum() == len(story)
    # 7 rows in 10 deciles: array_split puts one row in each of the first 7
    assert table["renewal_rate"].tolist() == [0, 0, 0, 1, 0, 1, 1]
    assert table["mean_predicted"].is_monotonic_increasing


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small drifting world and a champion trained on renewals decided before 2024-01-01."""
    from healthscore.jobs.train import train_job
    from healthscore.simulate import SimulationSpec, write_world

    root = tmp_path_factory.mktemp("backtest")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.chdir(root)
        write_world(SimulationSpec(accounts=300, seed=3, start=date(2022, 1, 1), months=30, drift=True),
                    root / "data")
        cfg = config_from_dict(SMALL)
        trained = train_job(root / "data", config=cfg, as_of=date(2024, 1, 1))
        outcome = backtest_job(root / "data", config=cfg, out=root / "reports" / "backtest.html")
        yield {"root": root, "cfg": cfg, "trained": trained, "outcome": outcome, "mp": mp}


def test_every_decided_renewal_is_scored_at_each_lead_time(world):
    pred = world["outcome"].result.predictions
    from healthscore.io import load_dataset

    contracts = load_dataset(world["root"] / "data").contracts
    decided = contracts[contracts["outcome"].notna()]
    assert set(pred["contract_id"]) == set(decided["contract_id"].astype(str))
    assert set(pred["lead_time_days"]) == {30, 90, 180}
    assert (pred["model_version"] == world["trained"].version).all()
    # renewals decided before the training date are in sample, the rest out of sample
    assert (pred["in_sample"] == (pred["renewal_date"] < pd.Timestamp("2024-01-01"))).all()
    models = world["outcome"].result.models.iloc[0]
    assert models["learned_before"] == "2024-01-01"
    assert models["out_of_sample_rows"] == int((~pred["in_sample"]).sum()) > 0


def test_backtest_probability_is_the_score_the_account_got_that_day(world):
    """Point in time: a backtest row equals what `score` says as of that date for that account."""
    from healthscore import tracking
    from healthscore.io import load_dataset
    from healthscore.scoring import score_batch

    pred = world["outcome"].result.predictions
    row = pred[(pred["lead_time_days"] == 90) & (~pred["in_sample"])].iloc[0]
    loaded = tracking.load_model(f"models:/healthscore/{world['trained'].version}")
    batch = score_batch(load_dataset(world["root"] / "data"), row["as_of"].date(), loaded, world["cfg"])
    scored = batch.scores.set_index("account_id").loc[row["account_id"]]
    assert scored["contract_id"] == row["contract_id"]
    assert scored["probability"] == pytest.approx(row["probability"], abs=1e-12)


def test_bands_cover_every_row_and_rates_are_rates(world):
    result = world["outcome"].result
    bands = result.bands
    every = bands[(bands["sample"] == "all") & (bands["lead_time_days"] == "all")]
    assert every["n"].sum() == len(result.predictions)
    rates = every["observed_renewal_rate"].dropna()
    assert ((rates >= 0) & (rates <= 1)).all()
    overall = result.metrics[result.metrics["group"] == "all"].iloc[0]
    assert 0.5 < overall["roc_auc"] <= 1 and 0 < overall["brier"] < 0.25
    assert set(result.metrics["group"]) == {"all", "segment", "lead_time_days", "renewal_quarter", "sample"}


def test_report_is_self_contained_and_shows_calibration_by_band(world):
    html = world["outcome"].path.read_text(encoding="utf-8")
    assert "Calibration by band" in html and "Churned while" in html
    assert "<script" not in html.lower()
    srcs = re.findall(r'src="([^"]*)"', html)
    assert len(srcs) == 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"(src|href)=\"https?:", html)


def test_report_and_tables_are_logged_to_mlflow(world):
    import mlflow

    run = mlflow.get_run(world["outcome"].run_id)
    assert run.data.tags["job"] == "backtest"
    v = world["trained"].version
    assert f"v{v}.roc_auc" in run.data.metrics and f"v{v}.healthy_before_churn_share" in run.data.metrics
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "backtest")}
    assert {"backtest/backtest.html", "backtest/bands.csv", "backtest/metrics.csv"} <= logged


def test_cli_without_a_registered_model_says_what_to_do(tmp_path, monkeypatch, capsys):
    from healthscore.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setattr("sys.argv", ["healthscore", "backtest", "--data", str(tmp_path), "--model-name", "nobody"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code != 0
    assert re.search(r"no champion of nobody is registered.*healthscore train", capsys.readouterr().err, re.S)
