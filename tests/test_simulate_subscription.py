"""The subscription world: another shape (monthly terms, usage only, its own product), deterministic, valid,
churn driven by which features are used; and the main pipeline trains on it with short lead times."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from datetime import date

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from sklearn.metrics import roc_auc_score

from _fast import fast_model
from healthscore import simulate as b2b
from healthscore.config import FeaturesConfig, config_from_dict
from healthscore.io import TABLES, load_dataset
from healthscore.simulate import SimulationSpec, World, simulate, write_world
from healthscore.simulate.subscription import FEATURES, SEGMENTS, STICKY_FEATURES
from healthscore.summary import render_summary, summarise
from healthscore.timeline import term_days, term_kinds

SMALL = SimulationSpec(accounts=200, seed=3, months=24, business="subscription")
THREE = ("accounts", "contracts", "usage_events")


@pytest.fixture(scope="module")
def small() -> World:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def medium() -> World:
    """300 accounts over three years: about 2,000 decided terms and 100+ churns, in about a second."""
    return simulate(SimulationSpec(accounts=300, seed=11, months=36, business="subscription"))


def _decided(world: World) -> pd.DataFrame:
    c = world["contracts"]
    d = c[c["outcome"].notna()].merge(world.truth, on="contract_id", how="left", validate="1:1")
    return d.assign(kind=term_kinds(term_days(d)).to_numpy(), renewed=(d["outcome"] == "renewed").astype(int))


def _digest(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


# --- determinism and shape -----------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files_of_three_tables_and_truth(tmp_path) -> None:
    write_world(SMALL, tmp_path / "a")
    write_world(SMALL, tmp_path / "b")
    a = _digest(tmp_path / "a")
    assert sorted(a) == sorted([f"{t}.parquet" for t in THREE] + ["truth.parquet"])
    assert a == _digest(tmp_path / "b")


def test_another_seed_gives_another_world(small: World) -> None:
    other = simulate(SimulationSpec(accounts=200, seed=4, months=24, business="subscription"))
    for name in THREE:
        assert not small[name].equals(other[name]), name


def test_the_default_business_is_b2b_and_unchanged(small: World) -> None:
    assert SimulationSpec().business == "b2b"
    plain = simulate(SimulationSpec(accounts=30, seed=3, months=15))
    named = simulate(SimulationSpec(accounts=30, seed=3, months=15, business="b2b"))
    assert list(plain.tables) == list(TABLES)
    for name in TABLES:
        pd.testing.assert_frame_equal(plain[name], named[name], obj=name)


def test_only_accounts_contracts_usage_events_and_truth(small: World) -> None:
    assert tuple(small.tables) == THREE
    assert list(small.truth.columns[:2]) == ["contract_id", "p_renew"]
    for name in THREE:
        frame, table = small[name], TABLES[name]
        assert tuple(frame.columns) == table.column_names, name
        for col in table.columns:
            if col.required and not col.nullable:
                assert frame[col.name].notna().all(), (name, col.name)


def test_writing_over_a_b2b_world_leaves_no_table_of_it(tmp_path, small: World) -> None:
    write_world(SimulationSpec(accounts=20, seed=1, months=13), tmp_path)
    write_world(small, tmp_path, fmt="csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{t}.csv" for t in THREE] + ["truth.parquet"])


def test_written_world_validates_cleanly_with_the_optional_tables_absent(tmp_path, small: World) -> None:
    write_world(small, tmp_path)
    ds = load_dataset(tmp_path)
    assert ds.warnings == ()
    assert set(ds.absent) == set(TABLES) - set(THREE)
    for name in THREE:
        assert len(ds.table(name)) == len(small[name]), name


def test_bad_business_and_drift_are_refused() -> None:
    from healthscore.errors import HealthscoreError

    with pytest.raises(HealthscoreError, match=r"business must be one of b2b, subscription, found 'retail'"):
        SimulationSpec(business="retail")
    with pytest.raises(HealthscoreError, match="drift is only simulated in the b2b world"):
        SimulationSpec(business="subscription", drift=True)


# --- terms, seats, products ----------------------------------------------------------------------------------


def test_terms_are_mixed_and_mostly_monthly(small: World) -> None:
    c = small["contracts"]
    kinds = term_kinds(term_days(c)).value_counts(normalize=True)
    assert set(kinds.index) == {"monthly", "semi-annual", "annual"}
    assert kinds["monthly"] > 0.6 and kinds["semi-annual"] > 0.02 and kinds["annual"] > 0.02
    # each term is a whole number of months (1, 6 or 12) after its start
    months = {1, 6, 12}
    ends = {m: (c["start_date"] + pd.DateOffset(months=m)) for m in months}
    assert np.logical_or.reduce([c["end_date"] == ends[m] for m in months]).all()
    # a renewal starts the next term on the old renewal date; only renewed terms have a successor
    c = c.sort_values(["account_id", "start_date"])
    nxt = c.groupby("account_id")["start_date"].shift(-1)
    assert (nxt[nxt.notna()] == c.loc[nxt.notna(), "end_date"]).all()
    assert (c.loc[nxt.notna(), "outcome"] == "renewed").all()
    # and some accounts switch term length at a renewal
    by_account = term_kinds(term_days(c)).groupby(c["account_id"].to_numpy()).nunique()
    assert (by_account > 1).any()


def test_accounts_have_plans_seats_and_many_users(small: World) -> None:
    a, c, u = small["accounts"], small["contracts"], small["usage_events"]
    assert set(a["segment"]) == set(SEGMENTS)
    seats = c.merge(a, on="account_id").groupby("segment")["seats"].median()
    assert seats["self_serve"] < seats["team"] < seats["business"]
    users = u.groupby("account_id")["user_id"].nunique()
    assert (users >= 5).mean() > 0.3  # multi-user accounts
    assert (u["user_id"].str.rsplit("-U", n=1).str[0] == u["account_id"]).all()
    # a team uses at most the seats it pays for (the most it ever had)
    most = c.groupby("account_id")["seats"].max()
    paying = users[users.index.isin(most.index)]
    assert (paying <= most[paying.index]).all()
    # only business plans have a success manager; free workspaces have no contract
    assert a.loc[a["segment"] != "business", "csm"].isna().all() and a.loc[a["segment"] == "business", "csm"].notna().all()
    assert 1 <= (~a["account_id"].isin(c["account_id"])).sum() <= 0.1 * len(a)


def test_the_product_has_its_own_event_names(small: World) -> None:
    used = set(small["usage_events"]["feature"])
    assert 20 <= len(FEATURES) <= 26 and used == set(FEATURES)
    assert set(STICKY_FEATURES) < set(FEATURES)
    assert not used & set(b2b.FEATURES)
    assert not used & set(FeaturesConfig().key_features)
    assert (small["usage_events"]["quantity"] >= 1).all()


def test_events_lie_inside_the_world_and_the_paid_time(small: World) -> None:
    u, c = small["usage_events"], small["contracts"]
    assert u["ts"].min() >= pd.Timestamp(SMALL.start) and u["ts"].max() < pd.Timestamp(SMALL.end)
    first = c.groupby("account_id")["start_date"].min()
    paying = u[u["account_id"].isin(first.index)]
    assert (paying["ts"] >= paying["account_id"].map(first)).all()
    last = c.sort_values("start_date").groupby("account_id").tail(1)
    gone = last[last["outcome"] == "churned"].set_index("account_id")["end_date"]
    assert len(gone) >= 10
    assert not (u["ts"] >= u["account_id"].map(gone)).any()
    assert u["account_id"].isin(gone.index).any()


def test_truth_has_one_row_per_decided_contract(small: World) -> None:
    t, c = small.truth, small["contracts"]
    assert sorted(t["contract_id"]) == sorted(c.loc[c["outcome"].notna(), "contract_id"])
    assert t["p_renew"].between(0, 1, inclusive="neither").all()
    assert set(t["term_months"]) == {1, 6, 12}


# --- churn ----------------------------------------------------------------------------------------------------


def test_churn_per_term_is_realistic(medium: World) -> None:
    d = _decided(medium)
    churn = 1 - d.groupby("kind")["renewed"].mean()
    assert 0.01 <= churn["monthly"] <= 0.08
    assert churn["annual"] > churn["monthly"] + 0.04
    assert (d["renewed"] == 0).sum() >= 80  # a few hundred at 2,000 accounts
    assert abs(d["p_renew"].mean() - d["renewed"].mean()) < 0.02  # the truth is calibrated


def test_truth_separates_renewals_from_churn(medium: World) -> None:
    d = _decided(medium)
    assert 0.72 <= roc_auc_score(d["renewed"], d["p_renew"]) <= 0.95


def _features_used_before_renewal(world: World, d: pd.DataFrame, features, days: int = 28) -> pd.Series:
    """How many of ``features`` each decided contract's account used in the ``days`` before its end_date."""
    u = world["usage_events"]
    u = u[u["feature"].isin(features)].merge(d[["account_id", "contract_id", "end_date"]], on="account_id")
    u = u[(u["ts"] >= u["end_date"] - pd.Timedelta(days=days)) & (u["ts"] < u["end_date"])]
    return u.groupby("contract_id")["feature"].nunique().reindex(d["contract_id"], fill_value=0)


def test_teams_using_the_sticky_features_renew_more(medium: World) -> None:
    d = _decided(medium).set_index("contract_id", drop=False)
    sticky = _features_used_before_renewal(medium, d, STICKY_FEATURES)
    churn_none = 1 - d.loc[sticky.index[sticky == 0], "renewed"].mean()
    churn_most = 1 - d.loc[sticky.index[sticky >= 2], "renewed"].mean()
    assert churn_none > 3 * churn_most and churn_none > churn_most + 0.05


def test_which_features_are_used_matters_not_only_activity(medium: World) -> None:
    """Among teams active before their renewal, not using a sticky feature raises churn far more than not
    using a plain feature used by as many teams (both also mark smaller, less active teams)."""
    d = _decided(medium).set_index("contract_id", drop=False)
    active = (_features_used_before_renewal(medium, d, ["app_open"]) > 0).to_numpy()
    churned = 1 - d["renewed"].to_numpy()[active]

    def churn_ratio(feature: str) -> float:
        used = (_features_used_before_renewal(medium, d, [feature]) > 0).to_numpy()[active]
        assert 0.2 < used.mean() < 0.7, feature  # comparable shares of teams
        return churned[~used].mean() / churned[used].mean()

    sticky = [churn_ratio(f) for f in STICKY_FEATURES]
    plain = [churn_ratio(f) for f in ("version_restore", "video_render", "brand_kit_apply", "presentation_mode")]
    assert min(sticky) > 2.5 and np.mean(sticky) > 1.3 * np.mean(plain)


# --- validate suggests lead times -----------------------------------------------------------------------------


def _summary_text(world: World, **kwargs) -> str:
    from healthscore.io import dataset_from_frames

    console = Console(width=400, record=True)
    console.print(render_summary(summarise(dataset_from_frames(world.tables), **kwargs)))
    return console.export_text()


def test_validate_states_the_terms_and_suggests_lead_times_for_monthly_terms(small: World) -> None:
    text = _summary_text(small)
    assert re.search(r"terms: \d+% monthly, \d+% semi-annual, \d+% annual \(median 3[01] days\)", text)
    assert re.search(r"lead times 30, 90, 180 days \(timeline.lead_times_days\) do not fit these terms: "
                     r"90 days is longer than \d+% of terms, 180 days than \d+%", text)
    assert "suggestion for monthly terms: pass --config with timeline: {lead_times_days: [7, 14]}" in text
    fitted = _summary_text(small, lead_times=[7, 14])
    assert "lead times 7, 14 days (timeline.lead_times_days) fit the terms" in fitted
    assert "suggestion" not in fitted


def test_cli_validate_takes_the_lead_times_from_the_config(tmp_path, small: World) -> None:
    from typer.testing import CliRunner

    from healthscore.cli import app

    write_world(small, tmp_path / "w")
    (tmp_path / "short.yaml").write_text("timeline:\n  lead_times_days: [7, 14]\n", encoding="utf-8")
    runner = CliRunner()
    plain = runner.invoke(app, ["validate", "--data", str(tmp_path / "w")], env={"COLUMNS": "300"})
    assert plain.exit_code == 0, plain.output
    assert "timeline: {lead_times_days: [7, 14]}" in plain.output
    short = runner.invoke(app, ["validate", "--data", str(tmp_path / "w"), "--config", str(tmp_path / "short.yaml")],
                          env={"COLUMNS": "300"})
    assert short.exit_code == 0, short.output
    assert "lead times 7, 14 days (timeline.lead_times_days) fit the terms" in short.output


# --- command line ---------------------------------------------------------------------------------------------


def test_cli_simulate_subscription(tmp_path) -> None:
    from typer.testing import CliRunner

    from healthscore.cli import app

    result = CliRunner().invoke(app, ["simulate", "--business", "subscription", "--out", str(tmp_path / "w"),
                                      "--accounts", "40", "--months", "14", "--seed", "2"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the caption wraps
    assert "Simulated subscription world" in text and "churn per term: monthly" in text
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == sorted(
        [f"{t}.parquet" for t in THREE] + ["truth.parquet"])


def test_cli_unknown_business_is_one_line_naming_the_choices(tmp_path) -> None:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "300"}
    out = subprocess.run([sys.executable, "-m", "healthscore", "simulate", "--business", "retail", "--out",
                          str(tmp_path / "w")], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "healthscore: simulation spec is not valid: business must be one of b2b, subscription, found 'retail'"
    ]
    assert not (tmp_path / "w").exists()


# --- end to end: the main pipeline on this world --------------------------------------------------------------


def test_pipeline_trains_with_short_lead_times_and_scores_every_account(tmp_path, mlflow_store) -> None:
    from healthscore.jobs.score import score_job
    from healthscore.jobs.train import train_job

    spec = SimulationSpec(accounts=250, seed=5, start=date(2022, 1, 1), months=24, business="subscription")
    data = tmp_path / "data"
    write_world(spec, data)
    cfg = config_from_dict({
        "timeline": {"lead_times_days": [7, 14]},
        "model": fast_model(),
    })
    trained = train_job(data, config=cfg)
    rows = trained.result.test_predictions
    assert set(rows["lead_time_days"]) <= {7, 14}
    ev = trained.result.evaluation
    overall = ev[(ev["model"] == "healthscore") & (ev["group"] == "all")].iloc[0]
    assert overall["roc_auc"] > 0.5

    as_of = date(2023, 12, 15)
    scored = score_job(data, as_of=as_of, out=tmp_path / "scores", config=cfg,
                       model_uri=f"models:/{trained.model_name}/{trained.version}")
    scores = pd.read_parquet(tmp_path / "scores" / "scores.parquet")
    accounts = pd.read_parquet(data / "accounts.parquet")
    assert sorted(scores["account_id"]) == sorted(accounts["account_id"]) and scores["account_id"].is_unique
    assert scores["status"].notna().all() and set(scores["status"]) <= {"scored", "no_active_contract"}
    contracts = pd.read_parquet(data / "contracts.parquet")
    running = contracts[(contracts["start_date"] <= pd.Timestamp(as_of)) & (contracts["end_date"] > pd.Timestamp(as_of))]
    assert set(scores.loc[scores["status"] == "scored", "account_id"]) == set(running["account_id"])
    assert scores.loc[scores["status"] == "scored", "probability"].between(0, 1).all()
    assert scored.model_version == trained.version
