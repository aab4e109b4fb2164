"""Bring your own table: coercion with a report, labels, ids, components, splits, and train/score end to end.

Real data: small slices of the two public churn tables in ``data/external/`` (provenance in its README),
rows shuffled with a fixed seed so every test also shows that row order does not matter.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from healthscore.config import COMPONENTS, config_from_dict
from healthscore.errors import ConfigError, DataError, HealthscoreError, ModelMismatchError
from healthscore.explain import CONTRIB_COLUMNS
from healthscore.io.flat_table import (
    CoercionReport,
    apply_plan,
    churn_labels,
    id_values,
    infer_plan,
    read_table,
)
from healthscore.model.flat_table import (
    components_from_dict,
    features_for_scoring,
    load_components,
    training_set_from_table,
)
from healthscore.model.train import fit_health_model

EXTERNAL = Path(__file__).resolve().parents[1] / "data" / "external"
IRANIAN = EXTERNAL / "iranian-telecom-churn"
PYSURVIVAL = EXTERNAL / "pysurvival-saas-churn"


def small_config(**model):
    """Default model settings on one thread (tests must not fight over cores); split shares as shipped."""
    return config_from_dict({"model": {"num_threads": 1, **model}})


@pytest.fixture(scope="module")
def iranian() -> pd.DataFrame:
    """600 distinct rows of the Iranian table (as text, as read from CSV), shuffled with seed 3."""
    frame = read_table(IRANIAN / "Customer_Churn.csv").drop_duplicates()
    return frame.sample(600, random_state=3).reset_index(drop=True)


@pytest.fixture(scope="module")
def pysurvival() -> pd.DataFrame:
    """600 rows of the PySurvival table, shuffled with seed 4."""
    return read_table(PYSURVIVAL / "churn.csv").sample(600, random_state=4).reset_index(drop=True)


# -- coercion: a little story counted by hand --------------------------------------------------------------

def story() -> pd.DataFrame:
    """Eight accounts as a warehouse export would dump them (every cell text, like a CSV):

    A-1 seats " 12 ", sso "Yes",   plan "Pro",    churned "no"
    A-2 seats "",     sso "no",    plan "pro ",   churned "YES"
    A-3 seats "7",    sso "TRUE",  plan "Basic",  churned "No"
    A-4 seats "NA",   sso "false", plan "PRO",    churned ""      <- not decided yet
    A-5 seats "3",    sso " ",     plan "basic",  churned "no"
    A-6 seats "40",   sso "y",     plan "Pro",    churned "yes"
    A-7 seats "5",    sso "N",     plan "Team",   churned "No"
    A-8 seats "9",    sso "n/a",   plan "Pro",    churned "no"
    """
    frame = pd.DataFrame({
        "account": ["A-1", "A-2", "A-3", "A-4", "A-5", "A-6", "A-7", "A-8"],
        "seats": [" 12 ", "", "7", "NA", "3", "40", "5", "9"],
        "sso": ["Yes", "no", "TRUE", "false", " ", "y", "N", "n/a"],
        "plan": ["Pro", "pro ", "Basic", "PRO", "basic", "Pro", "Team", "Pro"],
        "churned": ["no", "YES", "No", "", "no", "yes", "No", "no"],
    })
    return frame.sample(frac=1, random_state=11).reset_index(drop=True)


def test_story_columns_are_read_and_every_coercion_is_counted() -> None:
    frame = story()
    before = frame.copy()
    plans = infer_plan(frame, ["seats", "sso", "plan"])
    assert {c: p.kind for c, p in plans.items()} == {"seats": "numeric", "sso": "boolean", "plan": "categorical"}
    report = CoercionReport()
    feats = apply_plan(frame, plans, report).set_index(frame["account"]).sort_index()
    pd.testing.assert_frame_equal(frame, before)  # input untouched
    np.testing.assert_array_equal(feats["seats"].to_numpy(), [12, np.nan, 7, np.nan, 3, 40, 5, 9])
    np.testing.assert_array_equal(feats["sso"].to_numpy(), [1, 0, 1, 0, np.nan, 1, 0, np.nan])
    # "Pro" is the most frequent spelling (3 rows), "basic"/"Basic" tie and the alphabetically first wins
    assert feats["plan"].tolist() == ["Pro", "Pro", "Basic", "Pro", "Basic", "Pro", "Team", "Pro"]
    assert report.actions("seats") == {"read as numeric": 0, "blank or NA → missing": 2}
    assert report.actions("sso") == {"read as boolean": 0, "blank or NA → missing": 2, "yes/no words → 1/0": 6}
    assert report.actions("plan") == {"read as 3 categories": 0, "spellings merged (case/spaces)": 3}
    text = report.render()  # examples in order of appearance in the (shuffled) rows
    assert "seats [numeric] blank or NA → missing: 2 rows (e.g. 'NA', '')" in text
    assert "sso [boolean] blank or NA → missing: 2 rows (e.g. ' ', 'n/a')" in text


def test_a_typed_parquet_table_is_read_like_its_csv(tmp_path) -> None:
    # the story with real types, as a warehouse would write Parquet: floats with NaN, booleans, text
    typed = pd.DataFrame({
        "account": ["A-1", "A-2", "A-3", "A-4"],
        "seats": [12.0, np.nan, 7.0, 3.0],
        "sso": pd.array([True, False, None, True], dtype="boolean"),
        "tier": [1.0, 2.0, 1.0, 3.0],  # a code: forced categorical
        "plan": ["Pro", "pro", None, "Basic"],
    })
    typed.to_parquet(tmp_path / "t.parquet")
    as_text = typed.astype("object").where(typed.notna(), "")
    as_text.to_csv(tmp_path / "t.csv", index=False)
    from_parquet = read_table(tmp_path / "t.parquet")
    plans = infer_plan(from_parquet, ["seats", "sso", "tier", "plan"], categorical=("tier",))
    assert {c: p.kind for c, p in plans.items()} == {"seats": "numeric", "sso": "boolean", "tier": "categorical",
                                                     "plan": "categorical"}
    a = apply_plan(from_parquet, plans, CoercionReport())
    b = apply_plan(read_table(tmp_path / "t.csv"), plans, CoercionReport(), describe=False)  # scoring a CSV
    pd.testing.assert_frame_equal(a, b)
    assert a["tier"].tolist() == ["1", "2", "1", "3"] and a["sso"].tolist()[:2] == [1.0, 0.0]


def test_story_labels_keep_undecided_rows_out_and_match_case_insensitively() -> None:
    frame = story().set_index("account").sort_index()
    label = churn_labels(frame["churned"], "Yes", table="story", column="churned")
    np.testing.assert_array_equal(label, [1, 0, 1, np.nan, 1, 0, 1, 1])  # 1 = retained


def test_churn_value_one_matches_one_point_zero() -> None:
    label = churn_labels(pd.Series(["1.0", "0.0", "1", "0"]), "1", table="t", column="churned")
    np.testing.assert_array_equal(label, [0, 1, 0, 1])


@pytest.mark.parametrize(
    ("values", "churn_value", "match"),
    [
        (["yes", "no", "maybe"], "yes", r"a churn target needs two outcomes, found 3: 'yes' \(1 rows\)"),
        (["yes", "no"], "churned", r"the churn value 'churned' does not occur; values found: 'yes' \(1 rows\), 'no'"),
        (["yes", "yes", ""], "yes", r"every decided row has the churn value 'yes' in 2 rows"),
    ],
)
def test_bad_targets_are_refused_with_the_values_found(values, churn_value, match) -> None:
    with pytest.raises(DataError, match=match):
        churn_labels(pd.Series(values), churn_value, table="t", column="y")


def test_ids_must_be_present_and_unique_and_every_problem_is_listed() -> None:
    frame = pd.DataFrame({"id": ["a", "", "b", "a", "NA", "c", "b"]})
    with pytest.raises(DataError, match=r"(?s)t has 2 problems.*t\.id: empty id in 2 rows \(e\.g\. row 2, row 5\).*"
                       r"t\.id: repeated id in 4 rows \(e\.g\. a, b\)"):
        id_values(frame, "id", table="t")
    with pytest.raises(DataError, match=r"--id names a column the table does not have; did you mean 'id'\?"):
        id_values(frame, "ID ", table="t")


def test_a_column_that_is_mostly_numbers_is_numeric_and_its_junk_is_reported(pysurvival) -> None:
    frame = pysurvival.copy()
    frame.loc[[5, 50, 500], "minutes_customer_support"] = ["unknown", "n.a.", "unknown"]  # 3 of 600: < 5%
    frame.loc[[7, 70], "minutes_customer_support"] = [" ", "NULL"]
    plans = infer_plan(frame, ["minutes_customer_support"])
    assert plans["minutes_customer_support"].kind == "numeric"
    report = CoercionReport()
    feats = apply_plan(frame, plans, report)
    assert report.actions("minutes_customer_support") == {
        "read as numeric": 0, "blank or NA → missing": 2, "not a number → missing": 3}
    assert feats["minutes_customer_support"].isna().sum() == 5
    assert feats.loc[6, "minutes_customer_support"] == float(pysurvival.loc[6, "minutes_customer_support"])


def test_identifier_like_and_constant_columns_are_dropped_with_a_reason(pysurvival) -> None:
    frame = pysurvival.assign(email=[f"user{i}@x.com" for i in range(600)], source="crm")
    plans = infer_plan(frame, ["email", "source", "us_region"])
    assert plans["email"].kind == "dropped" and "looks like an identifier" in plans["email"].reason
    assert plans["source"].kind == "dropped" and "one value" in plans["source"].reason
    assert plans["us_region"].kind == "categorical" and len(plans["us_region"].categories) == 9


# -- the components file ----------------------------------------------------------------------------------

def test_components_file_problems_are_collected_with_did_you_mean() -> None:
    bad = {
        "components": {"suport": ["Complains"], "usage": ["Seconds of Use"], "billing": ["Seconds of Use"]},
        "directions": {"Complains": 2},
        "exclud": ["Age"],
    }
    with pytest.raises(ConfigError, match=r"(?s)has 4 problems:.*unknown key 'exclud'; did you mean 'exclude'\?.*"
                       r"unknown component 'suport'; did you mean 'support'\?.*"
                       r"'Seconds of Use' is listed under both usage and billing.*"
                       r"directions\.Complains: use -1 \(more is worse\), 0 or 1"):
        components_from_dict(bad, source="bad.yaml")


def test_components_naming_a_missing_column_suggests_the_real_one(iranian) -> None:
    spec = components_from_dict({"components": {"support": ["Call Failure"]}}, source="c.yaml")
    with pytest.raises(DataError, match=r"t\.Call Failure: c\.yaml \(components\) names a column the table does "
                       r"not have; did you mean 'Call  Failure'\?"):
        training_set_from_table(iranian, target="Churn", churn_value="1", config=small_config(), spec=spec, table="t")


def test_shipped_components_files_load() -> None:
    iran = load_components(IRANIAN / "components.yaml")
    assert iran.components["Complains"] == "support" and iran.directions == {"Complains": -1}
    pys = load_components(PYSURVIVAL / "components.yaml")
    assert pys.exclude == ("months_active",) and pys.components["csat_score"] == "feedback"


# -- training sets from the real tables -------------------------------------------------------------------

def test_iranian_exact_copies_are_dropped_and_counted_when_there_is_no_id(iranian) -> None:
    # 600 distinct rows plus 7 exact copies of rows 0..6, shuffled: 7 copies must go, whatever the order
    frame = pd.concat([iranian, iranian.iloc[:7]]).sample(frac=1, random_state=5).reset_index(drop=True)
    prepared = training_set_from_table(frame, target="Churn", churn_value="1", config=small_config(),
                                       spec=load_components(IRANIAN / "components.yaml"), table="t")
    assert len(prepared.training_set.features) == 600
    assert "7 rows are exact copies of an earlier row (no --id to tell them apart): dropped" in prepared.report.notes


def test_stratified_split_keeps_the_churn_rate_in_each_part_and_is_seeded(iranian) -> None:
    cfg = small_config()
    a = training_set_from_table(iranian, target="Churn", churn_value="1", config=cfg, table="t").training_set
    b = training_set_from_table(iranian, target="Churn", churn_value="1", config=cfg, table="t").training_set
    pd.testing.assert_series_equal(a.part, b.part)
    counts = a.part.value_counts()
    assert (counts["train"], counts["calibration"], counts["test"]) == (360, 120, 120)
    churn = 1 - pd.Series(a.label).groupby(a.part.to_numpy()).mean()
    assert churn.max() - churn.min() < 0.01  # stratified: the same churn rate in every part
    assert "renewal_date" not in a.rows and a.rows["account_id"].tolist()[:2] == ["1", "2"]


def test_time_column_splits_by_time_and_as_of_keeps_only_earlier_rows(pysurvival) -> None:
    frame = pysurvival.assign(
        account_key=[f"S-{i:04d}" for i in range(600)],
        renewal=(pd.Timestamp("2023-01-01") + pd.to_timedelta(np.arange(600) % 300, unit="D")).strftime("%Y-%m-%d"),
    )
    spec = load_components(PYSURVIVAL / "components.yaml")
    prepared = training_set_from_table(frame, target="churned", churn_value="1", config=small_config(), spec=spec,
                                       id_column="account_key", time_column="renewal", as_of=date(2023, 9, 1),
                                       table="t")
    ts = prepared.training_set
    assert len(ts.rows) == 2 * 243  # days 0..242 are before 2023-09-01, twice each
    assert any("on or after 2023-09-01 are left out" in n for n in prepared.report.notes)
    newest_train = ts.rows.loc[ts.part == "train", "renewal_date"].max()
    assert (ts.rows.loc[ts.part == "test", "renewal_date"] > newest_train).all()
    assert "renewal" not in ts.features and "account_key" not in ts.features and "months_active" not in ts.features
    with pytest.raises(HealthscoreError, match="--as-of needs --time"):
        training_set_from_table(frame, target="churned", churn_value="1", config=small_config(),
                                as_of=date(2023, 9, 1))


def test_undeclared_scorecard_directions_come_from_the_training_part(pysurvival) -> None:
    prepared = training_set_from_table(pysurvival, target="churned", churn_value="1", config=small_config(),
                                       spec=load_components(PYSURVIVAL / "components.yaml"), table="t")
    ts = prepared.training_set
    assert ts.directions["csat_score"] == 1  # declared
    assert ts.directions["product_payroll"] == 0  # categorical: no direction
    assert prepared.config.model.monotone == {"csat_score": 1}  # only declared directions constrain the model
    assert set(ts.directions.values()) <= {-1, 0, 1}


def test_learned_model_on_a_real_slice_beats_the_scorecard_and_adds_up(iranian) -> None:
    prepared = training_set_from_table(iranian, target="Churn", churn_value="1", config=small_config(),
                                       spec=load_components(IRANIAN / "components.yaml"), table="t")
    result = fit_health_model(prepared.training_set, config=prepared.config)
    ev = result.evaluation[result.evaluation["group"] == "all"].set_index("model")
    assert ev.loc["healthscore", "roc_auc"] > ev.loc["scorecard", "roc_auc"] + 0.05
    assert ev.loc["healthscore", "brier"] < ev.loc["scorecard", "brier"]
    weights = result.component_weights.set_index("component")["learned_weight"]
    assert weights.sum() == pytest.approx(100.0)
    assert weights["engagement"] == 0 and weights["feedback"] == 0  # no columns mapped there
    assert set(result.model.components.values()) <= set(COMPONENTS)


# -- end to end: train and score both real tables, one MLflow store ----------------------------------------

def test_both_real_tables_train_and_score_end_to_end(mlflow_store, iranian, pysurvival, capsys, monkeypatch) -> None:
    from healthscore.cli import main
    from healthscore.jobs.score import score_table_job
    from healthscore.jobs.train import train_table_job

    iran_csv = mlflow_store / "iranian.csv"
    iranian.to_csv(iran_csv, index=False)
    config_yaml = mlflow_store / "fast.yaml"  # one grid point: the grid search is tested in test_model.py
    config_yaml.write_text("model:\n  num_threads: 1\n  num_leaves_grid: [7]\n  min_child_samples_grid: [20]\n"
                           "  reg_lambda_grid: [10.0]\n  n_estimators: 150\n", encoding="utf-8")
    monkeypatch.setattr("sys.argv", [
        "healthscore", "train", "--table", str(iran_csv), "--target", "Churn", "--churn-value", "1",
        "--components", str(IRANIAN / "components.yaml"), "--model-name", "iranian", "--config", str(config_yaml)])
    main()
    printed = capsys.readouterr().out
    flat = " ".join(printed.split())  # the console wraps long lines
    assert "trained on 480 rows" in flat and "out-of-fold margins of 480 of them" in flat
    assert "tested on 120 held-out rows (stratified split, fixed seed)" in flat
    assert "registered model: the same settings" in flat and "refit on all 600 rows" in flat
    assert "registered iranian version 1 as @champion" in printed

    # the scoring table is messier than the training one: blanks, NA, a wrong case, an extra column
    messy = iranian.copy()
    messy.loc[[0, 1], "Seconds of Use"] = ["", " NA "]
    messy["note"] = "exported by hand"
    messy_csv = mlflow_store / "iranian_messy.csv"
    messy.to_csv(messy_csv, index=False)
    monkeypatch.setattr("sys.argv", ["healthscore", "score", "--table", str(messy_csv), "--out",
                                     str(mlflow_store / "iran_scores"), "--model", "models:/iranian@champion"])
    main()
    printed = capsys.readouterr().out
    assert "Seconds of Use [numeric] blank or NA → missing: 2 rows" in printed
    assert "1 column(s) unknown to the model, ignored: note" in printed
    assert "scored 600 of 600 rows with model version 1" in printed
    scores = pd.read_parquet(mlflow_store / "iran_scores" / "scores.parquet")
    assert scores["account_id"].tolist() == [str(i) for i in range(1, 601)]  # every row, in input order
    assert (scores["status"] == "scored").all() and set(scores["band"]) <= {"healthy", "watch", "at_risk"}
    total = scores["baseline"] + scores[list(CONTRIB_COLUMNS)].sum(axis=1)
    np.testing.assert_allclose(total, 100 * scores["probability"], atol=1e-9)
    assert (scores["contrib_engagement"] == 0).all()  # no Iranian column is engagement
    assert scores["driver_1"].notna().any() and (scores["model_version"] == "1").all()
    csv = pd.read_csv(mlflow_store / "iran_scores" / "scores.csv")
    assert len(csv) == 600

    # PySurvival through the pipelines, with ids, categories in a mixed case and a blank, in the same store
    pys = pysurvival.assign(customer=[f"C{i}" for i in range(600)])
    pys_csv = mlflow_store / "pys.csv"
    pys.to_csv(pys_csv, index=False)
    # the plots and HTML report were rendered for the Iranian run above; skip them here to keep the test fast
    monkeypatch.setattr("healthscore.jobs.train.write_training_artifacts", lambda result, out: {})
    monkeypatch.setattr("healthscore.reports.global_report.write_global_report",
                        lambda result, path, X: Path(path).write_text("skipped") and path)
    fast = small_config(num_leaves_grid=[7], min_child_samples_grid=[20], reg_lambda_grid=[10.0], n_estimators=150)
    trained = train_table_job(pys_csv, target="churned", churn_value="1", config=fast, id_column="customer",
                              components=PYSURVIVAL / "components.yaml", model_name="pysurvival")
    assert trained.version == "1" and trained.model_name == "pysurvival"
    assert trained.result.model.metadata["table"]["id"] == "customer"
    to_score = pys.drop(columns=["churned", "months_active"])
    to_score.loc[[3, 4], "product_payroll"] = [to_score.loc[3, "product_payroll"].upper(), " "]
    to_score_csv = mlflow_store / "pys_to_score.csv"
    to_score.to_csv(to_score_csv, index=False)
    scored = score_table_job(to_score_csv, out=mlflow_store / "pys_scores", config=small_config(),
                             id_column="customer", model_uri="models:/pysurvival@champion")
    s = scored.scores.set_index("account_id")
    assert len(s) == 600 and s.index.tolist()[:2] == ["C0", "C1"]
    assert scored.report.actions("product_payroll") == {"blank or NA → missing": 1,
                                                         "spellings merged (case/spaces)": 1}
    # the same account scored from the training table and from the messy copy: same probability when
    # only the case of a category changed
    assert s.loc["C3", "probability"] == pytest.approx(
        score_table_job(pys_csv, out=mlflow_store / "pys_clean", config=small_config(), id_column="customer",
                        model_uri="models:/pysurvival@champion").scores.set_index("account_id").loc["C3", "probability"])

    # a table without the model's columns is refused, naming them
    with pytest.raises(ModelMismatchError, match=r"lacks 1 column\(s\) the model was trained on: 'csat_score'"):
        score_table_job(_write(mlflow_store / "no_csat.csv", to_score.drop(columns=["csat_score"])),
                        out=mlflow_store / "x", config=small_config(), id_column="customer",
                        model_uri="models:/pysurvival@champion")


def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_a_dataset_model_cannot_score_a_table() -> None:
    class DatasetModel:
        metadata: dict = {}

    with pytest.raises(ModelMismatchError, match="trained on a dataset directory, not on a flat table"):
        features_for_scoring(pd.DataFrame({"a": [1]}), DatasetModel(), id_column=None)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["train"], "give either --data DIR .* or --table FILE .*found neither"),
        (["train", "--data", "d", "--table", "t.csv"], "not both"),
        (["train", "--data", "d", "--target", "Churn"], "--target only apply with --table"),
        (["train", "--table", "t.csv", "--target", "Churn"], "--table needs --churn-value"),
        (["score", "--out", "o", "--data", "d"], "--as-of is required with --data"),
    ],
)
def test_cli_refuses_unclear_sources(argv, match, capsys, monkeypatch, tmp_path) -> None:
    from healthscore.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["healthscore", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert re.search(match, " ".join(capsys.readouterr().err.split()))
