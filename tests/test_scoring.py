"""Batch scoring end to end on a small simulated world: complete, additive, stable, point-in-time, safe."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _fast import fast_model
from healthscore.config import config_from_dict
from healthscore.explain import CONTRIB_COLUMNS
from healthscore.io import dataset_from_frames, load_dataset
from healthscore.jobs.score import score_job
from healthscore.jobs.train import train_job
from healthscore.scoring import band_of, score_batch
from healthscore.scoring.adjustments import active_adjustments
from healthscore.scoring.alerts import add_alerts
from healthscore.simulate import SimulationSpec, simulate, write_world

AS_OF_1 = date(2024, 5, 1)
AS_OF_2 = date(2024, 6, 1)


def small_config():
    return config_from_dict(
        {"model": fast_model()}
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """300 accounts over 30 months, a model trained on it (own MLflow store), scored twice a month apart."""
    root = tmp_path_factory.mktemp("world")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    mp.chdir(root)
    w = simulate(SimulationSpec(accounts=300, seed=5, start=date(2022, 1, 1), months=30))
    # a hostile name on the first account, to check CSV neutralisation and that nothing breaks
    w.tables["accounts"].loc[0, "name"] = '=HYPERLINK("http://x","<b>click</b>")'
    data = root / "data"
    write_world(w, data)
    cfg = small_config()
    trained = train_job(data, config=cfg)
    out = root / "scores"
    first = score_job(data, as_of=AS_OF_1, out=out, config=cfg)
    second = score_job(data, as_of=AS_OF_2, out=out, config=cfg)
    yield {"root": root, "data": data, "cfg": cfg, "trained": trained, "out": out, "first": first,
           "second": second, "uri": f"models:/healthscore/{trained.version}"}
    mp.undo()


def test_every_account_appears_once_with_a_status(world):
    ds = load_dataset(world["data"])
    scores = pd.read_parquet(world["out"] / "scores.parquet")
    assert sorted(scores["account_id"]) == sorted(ds.accounts["account_id"].astype(str))
    assert scores["account_id"].is_unique
    assert set(scores["status"]) <= {"scored", "no_active_contract"}
    unscored = scores[scores["status"] != "scored"]
    assert unscored["probability"].isna().all() and unscored["score"].isna().all()
    assert len(unscored) > 0  # the simulated world has prospects and churned accounts
    assert list(scores["account_id"]) == sorted(scores["account_id"])  # stable order


def test_every_scored_row_adds_up(world):
    s = world["second"].batch.scores
    scored = s[s["status"] == "scored"]
    total = scored["baseline"] + scored[list(CONTRIB_COLUMNS)].sum(axis=1)
    np.testing.assert_allclose(total, 100 * scored["probability"], atol=1e-6)
    assert (scored["model_score"] == np.round(100 * scored["probability"])).all()
    assert ((scored["score"] - (scored["model_score"] + scored["adjustment"]).clip(0, 100)).abs() < 1e-9).all()


def test_explanations_add_up_per_account(world):
    batch = world["second"].batch
    assert batch.explanations is None  # streamed to the batch's file, not held (issue 18)
    ex = pd.read_parquet(world["out"] / "explanations.parquet").groupby("account_id")["contribution"].sum()
    s = batch.scores.set_index("account_id")
    scored = s[s["status"] == "scored"]
    np.testing.assert_allclose(ex.reindex(scored.index), scored[list(CONTRIB_COLUMNS)].sum(axis=1), atol=1e-6)


def test_second_run_has_previous_scores_deltas_and_history(world):
    s = world["second"].batch.scores
    both = s[s["previous_score"].notna()]
    assert len(both) > 0
    np.testing.assert_allclose(both["delta"], both["score"] - both["previous_score"])
    hist = pd.read_parquet(world["out"] / "history.parquet")
    assert sorted(pd.to_datetime(hist["as_of"]).dt.date.unique()) == [AS_OF_1, AS_OF_2]


def test_rerun_same_date_replaces_history_and_is_byte_identical(world, tmp_path):
    cfg = world["cfg"]
    for out in (tmp_path / "a", tmp_path / "b"):
        score_job(world["data"], as_of=AS_OF_1, out=out, config=cfg, model_uri=world["uri"])
    for name in ("scores.parquet", "scores.csv", "explanations.parquet", "history.parquet", "portfolio.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    score_job(world["data"], as_of=AS_OF_1, out=tmp_path / "a", config=cfg, model_uri=world["uri"])
    hist = pd.read_parquet(tmp_path / "a" / "history.parquet")
    assert len(hist) == hist["account_id"].nunique()  # one as-of date, replaced not appended


def test_csv_neutralises_formulas_parquet_keeps_them(world):
    csv = pd.read_csv(world["out"] / "scores.csv", dtype=str, keep_default_na=False)
    pq = pd.read_parquet(world["out"] / "scores.parquet")
    hostile = pq.loc[pq["name"].astype(str).str.startswith("="), "account_id"]
    assert "A-00001" in set(hostile)
    for acc in hostile:
        assert csv.set_index("account_id").loc[acc, "name"] == "'" + pq.set_index("account_id").loc[acc, "name"]
    for col in csv.columns:
        assert not csv[col].str.match(r"^[=+@\t\r]").any(), col
        assert not csv[col].str.match(r"^-[^0-9.]").any(), col  # negative numbers stay numbers


def test_portfolio_rolls_up_arr_and_risk(world):
    batch = world["second"].batch
    p = batch.portfolio
    scored = batch.scores[batch.scores["status"] == "scored"]
    total = p[p["dimension"] == "all"].iloc[0]
    assert total["accounts"] == len(scored)
    expected = (scored["arr"] * (1 - scored["probability"])).sum()
    assert total["expected_arr_at_risk_model"] == pytest.approx(expected, abs=0.05)
    for band in ("healthy", "watch", "at_risk"):  # the final bands, ARR and counts alike
        assert total[f"arr_{band}"] == pytest.approx(scored.loc[scored["band"] == band, "arr"].sum())
        assert total[f"accounts_{band}"] == (scored["band"] == band).sum()
    seg = p[p["dimension"] == "segment"]
    assert seg["accounts"].sum() == len(scored)
    assert set(p["dimension"]) == {"all", "segment", "csm", "renewal_quarter"}
    assert scored["peer_percentile"].between(0, 100).all()


def test_plays_follow_bands(world):
    s = world["second"].batch.scores
    scored = s[s["status"] == "scored"]
    risky = scored[scored["band"].isin(["watch", "at_risk"])]
    assert risky["playbook"].notna().all()
    healthy = scored[scored["band"] == "healthy"]
    assert (healthy["playbook"].notna() == healthy["advocate"]).all()


def test_scores_as_of_t_unchanged_by_data_at_or_after_t(world):
    """Append events stamped at and after T and reveal the active contracts' outcomes: nothing moves."""
    from healthscore import tracking

    ds = load_dataset(world["data"])
    loaded = tracking.load_model(world["uri"])
    T = pd.Timestamp(AS_OF_2)
    before = score_batch(ds, AS_OF_2, loaded, world["cfg"]).scores
    tables = {name: getattr(ds, name).copy() for name in ("accounts", "contracts", "usage_events", "tickets",
                                                          "surveys", "touchpoints", "invoices", "adjustments")}
    acc = tables["accounts"]["account_id"].iloc[:50]
    n = len(acc)
    tables["usage_events"] = pd.concat([tables["usage_events"], pd.DataFrame(
        {"account_id": acc.to_numpy(), "user_id": "late-user", "ts": [T] * n, "feature": "dashboards",
         "quantity": 50.0})], ignore_index=True)
    tables["tickets"] = pd.concat([tables["tickets"], pd.DataFrame(
        {"ticket_id": [f"LATE-{i}" for i in range(n)], "account_id": acc.to_numpy(),
         "opened_at": [T + pd.Timedelta(hours=1)] * n, "closed_at": pd.NaT, "priority": "urgent", "csat": 1.0})],
        ignore_index=True)
    tables["surveys"] = pd.concat([tables["surveys"], pd.DataFrame(
        {"account_id": acc.to_numpy(), "responded_at": [T] * n, "kind": "nps", "score": 0.0})], ignore_index=True)
    tables["adjustments"] = pd.concat([tables["adjustments"], pd.DataFrame(
        {"account_id": acc.to_numpy(), "created_at": [T] * n, "points": -50.0, "reason": "late", "author": "x",
         "expires_at": pd.NaT})], ignore_index=True)
    c = tables["contracts"]
    active = (c["start_date"] <= T) & (c["end_date"] > T)
    c.loc[active, "outcome"] = "churned"
    after = score_batch(dataset_from_frames(tables), AS_OF_2, loaded, world["cfg"]).scores
    pd.testing.assert_frame_equal(before, after)


def test_scoring_in_small_chunks_gives_identical_frames(world):
    """Explaining 7 scored rows at a time (a partial last step too) changes no value, dtype or order."""
    from healthscore import tracking

    ds = load_dataset(world["data"])
    loaded = tracking.load_model(world["uri"])
    whole = score_batch(ds, AS_OF_2, loaded, world["cfg"])
    steps = []
    chunked = score_batch(ds, AS_OF_2, loaded, world["cfg"], chunk_rows=7,
                          progress=lambda done, total: steps.append((done, total)))
    scored = int((whole.scores["status"] == "scored").sum())
    assert scored % 7 and scored > 14  # several steps, the last one partial
    assert steps == [(min(d, scored), scored) for d in range(7, scored + 7, 7)]
    for name in ("scores", "explanations", "history", "portfolio", "features", "drift"):
        pd.testing.assert_frame_equal(getattr(chunked, name), getattr(whole, name), check_exact=True, obj=name)


def test_steps_explained_at_once_come_back_in_order(world, monkeypatch):
    """Two or three steps at a time (5 rows each, taken as they finish): the frames of one at a time, in order."""
    import healthscore.explain as explain_module
    from healthscore import tracking

    ds = load_dataset(world["data"])
    loaded = tracking.load_model(world["uri"])
    monkeypatch.setattr(explain_module, "_workers", lambda: 1)
    one_at_a_time = score_batch(ds, AS_OF_2, loaded, world["cfg"], chunk_rows=5)
    for workers in (2, 3):
        monkeypatch.setattr(explain_module, "_workers", lambda n=workers: n)
        steps = []
        at_once = score_batch(ds, AS_OF_2, loaded, world["cfg"], chunk_rows=5,
                              progress=lambda done, total, seen=steps: seen.append(done))
        assert steps == sorted(steps) and len(steps) > 3, workers
        for name in ("scores", "explanations", "history", "drift"):
            pd.testing.assert_frame_equal(getattr(at_once, name), getattr(one_at_a_time, name), check_exact=True,
                                          obj=f"{name} ({workers} at once)")


@pytest.mark.parametrize("seed", [0, 1])
def test_float_text_is_exactly_numpy_str(seed):
    """The Arrow route writes every float as numpy's astype(str) does: whole numbers, exponents, -0.0, inf."""
    from healthscore.io.write import float_text as _float_text

    rng = np.random.default_rng(seed)
    n = 20_000
    v = np.concatenate([
        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e16, 9999999999999998.0, 1e-4, 9.999e-5, 0.1 + 0.2, 1e15 + 0.5,
         123456789012345.6, 5e-324, -2.0 ** 53, 3.0, -7.0, 0.5],
        rng.normal(size=n),
        np.exp(rng.uniform(-30, 45, n)) * rng.choice([-1, 1], n),  # every magnitude: exponents both ways
        rng.integers(-10 ** 6, 10 ** 6, n).astype(float),
        rng.integers(0, 10 ** 5, n) / 100,
    ])
    v[rng.random(len(v)) < 0.05] = np.nan
    got = _float_text(v).to_pylist()
    want = [None if np.isnan(x) else s for x, s in zip(v, v.astype(str))]
    assert got == want


def test_adjustments_active_window_and_default_expiry():
    cfg = config_from_dict({})
    tables = {
        "accounts": pd.DataFrame({"account_id": ["A", "B"]}),
        "contracts": pd.DataFrame({"contract_id": ["C1", "C2"], "account_id": ["A", "B"],
                                   "start_date": ["2024-01-01"] * 2, "end_date": ["2025-01-01"] * 2,
                                   "arr": [1.0, 1.0]}),
        "adjustments": pd.DataFrame({
            "account_id": ["A", "A", "A", "B"],
            "created_at": ["2024-03-01", "2024-05-31", "2024-06-01", "2024-01-01"],
            "points": [-5, 10, 20, -7],
            "reason": ["old but explicit expiry", "yesterday", "stamped at T: not yet", "expired by default"],
            "expires_at": ["2024-12-31", None, None, None],
        }),
    }
    ds = dataset_from_frames({k: v.astype(object) for k, v in tables.items()})
    got = active_adjustments(ds, date(2024, 6, 1), cfg)
    assert sorted(got["points"].tolist()) == [-5, 10]  # B's expired 90 days after 2024-01-01; A's at-T is not visible


def test_alert_on_planted_drop_names_the_movers():
    cfg = config_from_dict({})
    now = pd.DataFrame({"account_id": ["A", "B"], "score": [55.0, 81.0], "band": ["at_risk", "healthy"],
                        **{c: [0.0, 0.0] for c in CONTRIB_COLUMNS}})
    now.loc[0, "contrib_usage"] = -20.0
    prev = now.copy().assign(as_of=pd.Timestamp("2024-05-01"))
    prev.loc[0, ["score", "band", "contrib_usage"]] = [75.0, "watch", 0.0]
    out = add_alerts(now, prev, date(2024, 6, 1), cfg)
    assert out.loc[0, "delta"] == -20
    assert "dropped 20 points" in out.loc[0, "alert"] and "watch → at_risk" in out.loc[0, "alert"]
    assert "usage -20.0" in out.loc[0, "alert"]
    assert pd.isna(out.loc[1, "alert"])


def test_alert_splits_a_drop_into_adjustment_and_model_points():
    # the final score fell 53: a CSM adjustment of −49 and the model's own −4 (usage −5.4, support +1.4)
    cfg = config_from_dict({})
    now = pd.DataFrame({"account_id": ["A"], "model_score": [66.0], "adjustment": [-49.0], "score": [17.0],
                        "band": ["at_risk"], "adjustment_reasons": ["Customer was acquired (csm.ana): -49"],
                        **{c: [0.0] for c in CONTRIB_COLUMNS}})
    now.loc[0, ["contrib_usage", "contrib_support"]] = [-5.4, 1.4]
    prev = now.copy().assign(as_of=pd.Timestamp("2024-05-01"))
    prev.loc[0, ["model_score", "adjustment", "score", "band", "contrib_usage", "contrib_support"]] = \
        [70.0, 0.0, 70.0, "healthy", 0.0, 0.0]
    alert = add_alerts(now, prev, date(2024, 6, 1), cfg).loc[0, "alert"]
    assert alert == ("dropped 53 points; band healthy → at_risk: adjustments -49 (Customer was acquired "
                     "(csm.ana): -49), model -4 (usage -5.4)")


def test_adjustment_reasons_never_start_with_a_formula_character(tmp_path):
    from healthscore.io.write import FORMULA_PREFIXES

    world = simulate(SimulationSpec(accounts=150, seed=3, months=30))
    ds = dataset_from_frames(world.tables)
    from healthscore.scoring.adjustments import apply_adjustments

    out = pd.DataFrame({"account_id": ds.accounts["account_id"].astype(str), "status": "scored",
                        "segment": ds.accounts["segment"].astype(str), "model_score": 50.0})
    out = apply_adjustments(out, ds, pd.DataFrame(index=out.index), date(2024, 6, 1), small_config())
    reasons = out["adjustment_reasons"].dropna()
    assert len(reasons) > 0
    assert not reasons.str.startswith(FORMULA_PREFIXES).any()
    assert reasons.str.contains(r": [+-]\d+", regex=True).all()


def test_bands_cut_points():
    cfg = config_from_dict({"bands": {"healthy": 80, "watch": 60}})
    got = band_of(pd.Series([80.0, 79.9, 60.0, 59.9, np.nan]), cfg).tolist()
    assert got == ["healthy", "watch", "watch", "at_risk", None]


def _documented_columns() -> dict[str, list[str]]:
    """The column lists of docs/CONTRACT.md's "Every column of every output file"."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "CONTRACT.md").read_text(encoding="utf-8")
    section = text.split("### Every column of every output file", 1)[1].split("\n## ", 1)[0]
    table = section.split("`scores.parquet`, `scores.csv` (`--data`):", 1)[1].split("`history.parquet`:", 1)[0]
    out = {"scores": [line.split("|")[1].strip() for line in table.splitlines()
                      if line.startswith("| ") and not line.startswith("| column")]}
    for name, head in (("history", "`history.parquet`:"), ("explanations", "`explanations.parquet`:"),
                       ("portfolio", "`portfolio.csv`"), ("drift", "`drift.csv`")):
        paragraph = section.split(head, 1)[1].split("\n\n", 1)[0]
        paragraph = paragraph.split("):", 1)[1] if paragraph.lstrip().startswith("(") else paragraph
        while re.search(r"\([^()]*\)", paragraph):  # remarks in parentheses, nested ones too
            paragraph = re.sub(r"\([^()]*\)", "", paragraph)
        out[name] = [c.strip().rstrip(".").strip() for c in paragraph.replace("\n", " ").split(",") if c.strip()]
    return out


def test_every_written_column_is_documented_in_the_contract_in_order(world):
    documented = _documented_columns()
    out = world["out"]
    written = {
        "scores": list(pd.read_parquet(out / "scores.parquet").columns),
        "history": list(pd.read_parquet(out / "history.parquet").columns),
        "explanations": list(pd.read_parquet(out / "explanations.parquet").columns),
        "portfolio": list(pd.read_csv(out / "portfolio.csv").columns),
        "drift": list(pd.read_csv(out / "drift.csv").columns),
    }
    assert list(pd.read_csv(out / "scores.csv").columns) == written["scores"]
    for name, columns in written.items():
        assert columns == documented[name], name


def test_csv_numbers_are_rounded_for_a_spreadsheet_and_parquet_keeps_them(world):
    out = world["out"]
    csv, parquet = pd.read_csv(out / "scores.csv"), pd.read_parquet(out / "scores.parquet")
    scored = parquet["status"] == "scored"
    assert (csv.loc[scored, "probability"] == parquet.loc[scored, "probability"].round(4)).all()
    assert (parquet.loc[scored, "probability"] != parquet.loc[scored, "probability"].round(4)).any()
    assert (csv["arr"].dropna() == csv["arr"].dropna().round(2)).all()
    text = (out / "scores.csv").read_text(encoding="utf-8")
    assert not re.search(r"\d\.\d{5,}", text)  # no float noise anywhere in the file


def test_every_batch_is_recorded_as_a_run_with_its_counts(world):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{world['root'] / 'mlflow.db'}")
    exp = client.get_experiment_by_name("healthscore-batches")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    # the fixture's two batches come first (other tests here score more into the same store later)
    assert [r.data.params["as_of"] for r in runs[:2]] == [str(AS_OF_1), str(AS_OF_2)]
    s = world["second"].batch.scores
    last = runs[1].data
    assert last.metrics["accounts"] == len(s)
    for band, n in s["band"].value_counts().items():
        assert last.metrics[f"band.{band}"] == n
    assert last.metrics["status.scored"] == (s["status"] == "scored").sum()
    assert last.params["model_version"] == world["trained"].version


def test_the_registered_models_input_example_is_strict_json(world):
    import json

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{world['root'] / 'mlflow.db'}")
    local = mlflow.artifacts.download_artifacts(artifact_uri=world["uri"], dst_path=str(world["root"] / "model"))
    text = next(Path(local).rglob("serving_input_example.json")).read_text(encoding="utf-8")

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    example = json.loads(text, parse_constant=refuse)  # NaN / Infinity would raise
    assert "NaN" not in text and example


def _served_rows(world):
    """The batch's scored accounts as a client would send them: raw features plus account_id, plain types."""
    import mlflow

    from healthscore.model.card import features_config_of
    from healthscore.timeline import scoring_rows
    from healthscore.tracking import plain_frame

    mlflow.set_tracking_uri(f"sqlite:///{world['root'] / 'mlflow.db'}")
    pyfunc = mlflow.pyfunc.load_model(world["uri"])
    columns = pyfunc.metadata.metadata["input_columns"]
    model = world["trained"].result.model
    ds = load_dataset(world["data"])
    rows = scoring_rows(ds, AS_OF_2).reset_index(drop=True)
    from healthscore.features import build_features

    feats = build_features(ds, rows, config=features_config_of(model, world["cfg"].features))
    scored = (rows["status"] == "scored").to_numpy()
    frame = plain_frame(feats.loc[scored, columns]).reset_index(drop=True)
    return pyfunc, frame.assign(account_id=rows.loc[scored, "account_id"].astype(str).to_numpy())


def test_the_served_model_returns_the_batchs_band_drivers_and_points(world):
    pyfunc, frame = _served_rows(world)
    served = pyfunc.predict(frame)
    batch = world["second"].batch.scores.set_index("account_id").loc[frame["account_id"]]
    assert list(served["account_id"]) == list(frame["account_id"])
    assert (served["status"] == "scored").all()
    np.testing.assert_allclose(served["probability"], batch["probability"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(served["model_score"], batch["model_score"])
    for col in ("driver_1", "driver_2", "driver_3", "positive_driver", *CONTRIB_COLUMNS):
        assert served[col].tolist() == batch[col].tolist(), col
    # the band of the model score (a served row has no CSM adjustment)
    assert served["band"].tolist() == band_of(served["score"], world["cfg"]).tolist()
    assert served["band"].nunique() > 1 and served["driver_1"].notna().all()


def test_a_bad_request_is_refused_naming_every_problem(world):
    from mlflow.exceptions import MlflowException

    pyfunc, frame = _served_rows(world)
    columns = pyfunc.metadata.metadata["input_columns"]
    numeric = next(c for c in columns if c != "segment")
    bad = frame.head(3).drop(columns=[numeric]).rename(columns={"segment": "segmnt"})
    with pytest.raises(MlflowException) as err:
        pyfunc.predict(bad)
    message = err.value.message
    assert "missing column(s) (2): " in message and numeric in message and "segment" in message
    assert "unknown column 'segmnt'; did you mean 'segment'?" in message
    typo = frame.head(3).copy()
    typo.loc[1, "segment"] = "Enterprise "
    typo[numeric] = typo[numeric].astype("object")
    typo.loc[2, numeric] = "twelve"
    with pytest.raises(MlflowException) as err:
        pyfunc.predict(typo)
    message = err.value.message
    assert "column 'segment': unknown value(s) 'Enterprise ' (rows 1); known: " in message
    assert f"column '{numeric}': not a number: 'twelve' (rows 2)" in message
    twice = pd.concat([frame.head(2), frame.head(2)[[numeric]]], axis=1)
    with pytest.raises(MlflowException, match=f"duplicate column\\(s\\): {numeric}: send each column once"):
        pyfunc.predict(twice)
    # numeric account ids come back as text
    assert pyfunc.predict(frame.head(2).assign(account_id=[100, 101]))["account_id"].tolist() == ["100", "101"]
    # a null is "not known", never a problem; a row with nothing known is kept with a status
    empty = frame.head(2).copy()
    empty.loc[0, columns] = None
    out = pyfunc.predict(empty)
    assert out["status"].tolist() == ["no_features", "scored"] and np.isnan(out.loc[0, "probability"])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_mlflow_models_serve_answers_a_good_and_a_bad_request(world):
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    _, frame = _served_rows(world)
    rows = frame.head(3).astype("object").where(frame.head(3).notna(), None)
    good = {"dataframe_split": {"columns": list(rows.columns), "data": rows.values.tolist()}}
    bad_rows = rows.assign(segment=["Enterprise ", None, None])
    bad = {"dataframe_split": {"columns": list(bad_rows.columns), "data": bad_rows.values.tolist()}}
    port = _free_port()
    # the server runs uvicorn from the venv's bin, as `make` puts it on PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{world['root'] / 'mlflow.db'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", world["uri"],
                               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
                              env=env, cwd=world["root"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
        status, body = _post(f"http://127.0.0.1:{port}/invocations", good)
        assert status == 200, body
        predictions = body["predictions"]
        assert [p["account_id"] for p in predictions] == rows["account_id"].tolist()
        assert all(p["band"] in ("healthy", "watch", "at_risk") and p["driver_1"] for p in predictions)
        status, body = _post(f"http://127.0.0.1:{port}/invocations", bad)
        assert status == 400
        assert "column 'segment': unknown value(s) 'Enterprise ' (rows 0)" in body["message"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_streamed_explanations_are_the_bytes_of_the_whole_table(world, tmp_path, monkeypatch):
    """The explanations streamed 7 accounts at a time, in row groups of 50 rows, are byte for byte the file of
    the whole table held in memory and written at once; nothing appears until the stream is closed."""
    from healthscore import tracking
    from healthscore.io import write as write_module
    from healthscore.io.output import OutputDir
    from healthscore.scoring import explanations_schema, write_batch

    monkeypatch.setattr(write_module, "ROW_GROUP_ROWS", 50)
    ds = load_dataset(world["data"])
    loaded = tracking.load_model(world["uri"])
    whole = score_batch(ds, AS_OF_2, loaded, world["cfg"])
    write_batch(whole, tmp_path / "whole")
    with OutputDir(tmp_path / "streamed") as od:
        stream = od.stream("explanations.parquet", explanations_schema())
        rows = []
        original = stream.write
        stream.write = lambda table: (rows.append(table.num_rows), original(table))[1]
        batch = score_batch(ds, AS_OF_2, loaded, world["cfg"], chunk_rows=7, explanations_stream=stream)
        assert batch.explanations is None and batch.explanations_file.is_file()
        assert len(rows) > 3 and max(rows) < len(whole.explanations)  # streamed in steps, never whole
        write_batch(batch, od)
    whole_file, streamed_file = (tmp_path / d / "explanations.parquet" for d in ("whole", "streamed"))
    pd.testing.assert_frame_equal(pd.read_parquet(streamed_file), pd.read_parquet(whole_file), check_exact=True)
    if int(pd.__version__.split(".")[0]) >= 3:  # pandas 2 holds text as objects, written as Arrow string
        assert streamed_file.read_bytes() == whole_file.read_bytes()
    import pyarrow.parquet as pq

    assert pq.ParquetFile(tmp_path / "streamed" / "explanations.parquet").metadata.num_row_groups > 1
    # the streamed file was moved into the batch: no temporary file is left in the folder
    assert not [p for p in (tmp_path / "streamed").rglob("*.tmp")]


def test_a_full_disk_while_streaming_is_one_error_and_leaves_nothing(world, tmp_path, monkeypatch):
    import errno
    import os

    from healthscore.errors import HealthscoreError
    from healthscore.io import write as write_module

    out = tmp_path / "out"
    score_job(world["data"], as_of=AS_OF_1, out=out, config=world["cfg"], model_uri=world["uri"])
    before = (out / "scores.parquet").read_bytes()

    def full(self, table):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(write_module.ParquetStream, "write", full)
    with pytest.raises(HealthscoreError, match=r"cannot write the batch: No space left on device .*is still current"):
        score_job(world["data"], as_of=AS_OF_2, out=out, config=world["cfg"], model_uri=world["uri"])
    assert (out / "scores.parquet").read_bytes() == before
    assert not [p for p in out.rglob("*.tmp")]
