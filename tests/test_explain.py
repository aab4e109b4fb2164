"""Explanations: exact additivity, hand-counted golden drivers, sign sanity on a simulated world, wording rules."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from _explain_world import GOLDEN_SPECS, golden_model, sigmoid, simulated_run
from healthscore.explain import (
    CONTRIB_COLUMNS,
    DRIVER_COLUMNS,
    driver_sentences,
    feature_catalogue,
    feature_label,
    feature_points,
    format_value,
)

# ---- golden: the two-stump model of tests/_explain_world.py, counted by hand -----------------------------


def test_golden_contributions_match_hand_count():
    model = golden_model()
    X = pd.DataFrame({"seat_utilization_30d": [0.34], "urgent_tickets_90d": [3.0]})
    contrib, expected = model.contributions(X)
    # φ = leaf value − tree mean: −1.0 − 0.125 and −0.8 − 0; E = 0.125
    assert contrib.iloc[0].tolist() == pytest.approx([-1.125, -0.8], abs=1e-12)
    assert expected[0] == pytest.approx(0.125, abs=1e-12)
    fpoints, probability, baseline = feature_points(model, X)
    assert probability[0] == pytest.approx(sigmoid(-1.8), abs=1e-12)
    assert baseline == pytest.approx(100 * sigmoid(0.125), abs=1e-10)
    total = 100 * sigmoid(-1.8) - 100 * sigmoid(0.125)  # −38.9358…
    assert fpoints.iloc[0].tolist() == pytest.approx([total * 1.125 / 1.925, total * 0.8 / 1.925], abs=1e-10)
    assert fpoints.iloc[0].tolist() == pytest.approx([-22.754706, -16.181125], abs=1e-6)


def test_golden_driver_sentences():
    model = golden_model()
    X = pd.DataFrame({"seat_utilization_30d": [0.34, 0.9, np.nan], "urgent_tickets_90d": [3.0, 0.0, 1.0]},
                     index=[10, 11, 12])
    fpoints, _, _ = feature_points(model, X)
    out = driver_sentences(model, X, fpoints, specs=GOLDEN_SPECS,
                           segments=pd.Series(["smb", "smb", "enterprise"], index=X.index))
    assert list(out.columns) == list(DRIVER_COLUMNS)
    assert out.index.tolist() == [10, 11, 12]
    # row 10: both features lower the score; the usage reference is the smb median (0.71)
    assert out.loc[10, "driver_1"] == "Seat utilization (30 days): 34% (segment median 71%) lowers the score by 23 points"
    assert out.loc[10, "driver_2"] == ("Urgent tickets (90 days): 3 tickets (overall median 0 tickets) "
                                       "lowers the score by 16 points")
    assert out.loc[10, "driver_3"] is None and out.loc[10, "positive_driver"] is None
    # row 11: nothing negative: the largest positive (8.93 points) is positive_driver, the next (4.76) a driver;
    # no reason is shown twice
    assert out.loc[11, "positive_driver"] == \
        "Seat utilization (30 days): 90% (segment median 71%) raises the score by 9 points"
    assert out.loc[11, "driver_1"].startswith("Urgent tickets (90 days): 0 tickets")
    assert out.loc[11, "driver_2"] is None
    # row 12: missing utilisation is "no data"; enterprise has no segment median, so the overall one (60%)
    assert out.loc[12, "driver_1"].startswith("Seat utilization (30 days): no data (overall median 60%) lowers")
    assert out.loc[12, "positive_driver"].startswith("Urgent tickets (90 days): 1 ticket (overall median 0 tickets) raises")


def test_drivers_take_the_three_most_negative_first_and_ignore_tiny_ones():
    names = [f"f{k}" for k in range(6)]
    X = pd.DataFrame([[1.0] * 6, [1.0] * 6], columns=names)
    fpoints = pd.DataFrame([[-1.0, -5.0, 2.0, -3.0, -0.5, 4.0],
                            [0.01, -0.04, 0.02, 3.0, 0.0, -0.2]], columns=names)
    model = SimpleNamespace(references={})
    specs = {n: SimpleNamespace(label=f"Feature {n}", unit="", kind="numeric") for n in names}
    out = driver_sentences(model, X, fpoints, specs=specs)
    assert [out.loc[0, c].split(":")[0] for c in ("driver_1", "driver_2", "driver_3")] == \
        ["Feature f1", "Feature f3", "Feature f0"]
    assert out.loc[0, "positive_driver"].startswith("Feature f5")
    # row 1: below the default 0.5 points nothing is a reason; the one positive is positive_driver, shown once
    assert out.loc[1, "positive_driver"] == "Feature f3: 1 raises the score by 3 points"
    assert [out.loc[1, f"driver_{k}"] for k in (1, 2, 3)] == [None, None, None]
    # with a lower threshold the −0.2 is a reason
    low = driver_sentences(model, X, fpoints, specs=specs, min_points=0.05)
    assert low.loc[1, "driver_1"] == "Feature f5: 1 lowers the score by 0.2 points" and low.loc[1, "driver_2"] is None


def test_no_positive_reason_from_a_component_in_a_bad_state():
    # money overdue: no feature of the billing component is offered as a positive reason (the values are made up:
    # built features give an account with money overdue at least one late invoice)
    names = ["amount_overdue", "invoices_late_365d", "seat_utilization_30d"]
    X = pd.DataFrame([[2500.0, 0.0, 0.9], [0.0, 0.0, 0.9]], columns=names)
    fpoints = pd.DataFrame([[0.0, 3.0, 2.0], [0.0, 3.0, 2.0]], columns=names)
    model = SimpleNamespace(references={}, components={"amount_overdue": "billing", "invoices_late_365d":
                                                       "billing", "seat_utilization_30d": "usage"})
    specs = {n: SimpleNamespace(label=n, unit="", kind="numeric") for n in names}
    out = driver_sentences(model, X, fpoints, specs=specs)
    shown = out.loc[0].dropna().tolist()
    assert shown == ["seat_utilization_30d: 0.9 raises the score by 2 points"]
    assert out.loc[1, "positive_driver"].startswith("invoices_late_365d")  # not overdue: allowed


def test_drivers_do_not_depend_on_row_order():
    model = golden_model()
    rng = np.random.default_rng(5)
    X = pd.DataFrame({"seat_utilization_30d": rng.random(30), "urgent_tickets_90d": rng.integers(0, 4, 30) * 1.0})
    fpoints, _, _ = feature_points(model, X)
    out = driver_sentences(model, X, fpoints, specs=GOLDEN_SPECS)
    perm = rng.permutation(len(X))
    shuffled = driver_sentences(model, X.iloc[perm], fpoints.iloc[perm], specs=GOLDEN_SPECS)
    pd.testing.assert_frame_equal(shuffled.sort_index(), out)


def test_drivers_match_a_stable_full_sort_with_ties_and_missing_points():
    """The argmin/argmax selection equals sorting each row stably (the definition), ties and NaN included."""
    rng = np.random.default_rng(11)
    names = [f"f{k}" for k in range(7)]
    # points on a coarse grid so ties are common; some rows all tiny, some with NaN (never a reason)
    pts = rng.integers(-4, 5, size=(400, 7)) * 0.5
    pts[rng.random(pts.shape) < 0.05] = np.nan
    pts[:20] = rng.uniform(-0.4, 0.4, size=(20, 7))
    order = rng.permutation(len(pts))
    fpoints = pd.DataFrame(pts[order], columns=names, index=order * 3 + 1)
    X = pd.DataFrame(1.0, index=fpoints.index, columns=names)
    specs = {n: SimpleNamespace(label=f"Feature {n}", unit="", kind="numeric") for n in names}
    out = driver_sentences(SimpleNamespace(references={}), X, fpoints, specs=specs)
    for i, row in zip(fpoints.index, fpoints.to_numpy()):
        neg = [j for j in np.argsort(row, kind="stable")[:3] if row[j] <= -0.5]
        pos = [j for j in np.argsort(-row, kind="stable")[:4] if row[j] >= 0.5]
        chosen = neg + pos[1:][: 3 - len(neg)]
        got = [out.loc[i, f"driver_{k + 1}"] for k in range(3)]
        assert [g.split(":")[0] if g else None for g in got] == \
            [f"Feature f{j}" for j in chosen] + [None] * (3 - len(chosen))
        want = f"Feature f{pos[0]}" if pos else None
        assert (out.loc[i, "positive_driver"] or ":").split(":")[0] == (want or "")


def test_driver_sentences_leave_inputs_untouched():
    model = golden_model()
    X = pd.DataFrame({"seat_utilization_30d": [0.2, 0.8], "urgent_tickets_90d": [2.0, np.nan]})
    fpoints, _, _ = feature_points(model, X)
    before = (X.copy(), fpoints.copy())
    driver_sentences(model, X, fpoints, specs=GOLDEN_SPECS)
    pd.testing.assert_frame_equal(X, before[0])
    pd.testing.assert_frame_equal(fpoints, before[1])


# ---- wording from the catalogue -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (0.34, "share of seats", "34%"),
        (1.2, "share of key features", "120%"),
        (0.052, "ratio", "5.2%"),
        (-0.3, "relative change", "-30%"),
        (0.12, "relative change", "+12%"),
        (-0.12, "percentage points", "-12 percentage points"),
        (8.0, "score 0-10", "8/10"),
        (4.5, "score 1-5", "4.5/5"),
        (12500.4, "currency per year", "12,500 per year"),
        (300.0, "currency", "300"),
        (1.0, "flag", "yes"),
        (0.0, "flag", "no"),
        (1.0, "tickets", "1 ticket"),
        (3.0, "tickets", "3 tickets"),
        (1.0, "events per user", "1 event per user"),
        (12.345, "events per user", "12.3 events per user"),
        (0.5, "days", "0.5 days"),
        (-3.0, "points", "-3 points"),
        (2.0, "", "2"),
        (np.nan, "days", "no data"),
        (None, "days", "no data"),
    ],
)
def test_format_value_units(value, unit, expected):
    assert format_value(value, unit) == expected


def test_format_value_categorical_is_text():
    assert format_value("mid_market", "category", kind="categorical") == "mid_market"


def test_feature_label_prefers_the_spec_label_then_the_name():
    assert feature_label("seat_utilization_30d") == "Seat utilization (30 days)"
    assert feature_label("nps_last") == "NPS last"
    assert feature_label("days_since_last_ebr") == "Days since last EBR"
    assert feature_label("x_30d", SimpleNamespace(label="Seat utilisation")) == "Seat utilisation"


def test_every_catalogue_unit_is_formatted_without_raising():
    catalogue = feature_catalogue()
    assert len(catalogue) > 20
    for spec in catalogue.values():
        text = format_value(1.0 if spec.kind != "categorical" else "smb", spec.unit, kind=spec.kind)
        assert text and "nan" not in text.lower(), spec.name
        assert feature_label(spec.name, spec)


# ---- a simulated world, scored twice by the real batch --------------------------------------------------


@pytest.fixture(scope="module")
def run():
    return simulated_run()


def test_every_scored_row_adds_up(run):
    for batch in (run["first"], run["second"]):
        s = batch.scores[batch.scores["status"] == "scored"]
        assert len(s) > 100
        gap = (s["baseline"] + s[list(CONTRIB_COLUMNS)].sum(axis=1) - 100 * s["probability"]).abs()
        assert gap.max() < 1e-6
        # and the long explanations add up to each component, account by account
        ex = batch.explanations.groupby(["account_id", "component"])["contribution"].sum().unstack(fill_value=0.0)
        ex = ex.reindex(index=s["account_id"], columns=[c.removeprefix("contrib_") for c in CONTRIB_COLUMNS],
                        fill_value=0.0)
        np.testing.assert_allclose(ex.to_numpy(), s[list(CONTRIB_COLUMNS)].to_numpy(), atol=1e-6)


def test_unscored_rows_have_no_contributions_or_drivers(run):
    s = run["second"].scores
    unscored = s[s["status"] != "scored"]
    assert len(unscored) > 0
    assert unscored[["baseline", *CONTRIB_COLUMNS]].isna().all().all()
    assert unscored["driver_1"].isna().all()


def test_low_seat_utilisation_lowers_the_usage_contribution(run):
    batch = run["second"]
    ex = batch.explanations
    seat = ex[ex["feature"] == "seat_utilization_30d"].assign(value=lambda d: pd.to_numeric(d["value"]))
    seat = seat.dropna(subset=["value"]).merge(batch.scores[["account_id", "contrib_usage"]], on="account_id")
    low = seat[seat["value"] <= seat["value"].quantile(0.25)]
    high = seat[seat["value"] >= seat["value"].quantile(0.75)]
    assert len(low) >= 30
    # the feature itself: every bottom-quartile account loses points for it, every top-quartile one gains
    assert (low["contribution"] < 0).all()
    assert (high["contribution"] > 0).all()
    # the usage component as a whole (other usage features may offset a little)
    assert (low["contrib_usage"] < 0).mean() >= 0.75
    assert low["contrib_usage"].mean() < 0 < high["contrib_usage"].mean()


def test_scored_rows_have_drivers_worded_from_the_catalogue(run):
    s = run["second"].scores
    scored = s[s["status"] == "scored"]
    assert scored["driver_1"].notna().all()
    catalogue = feature_catalogue()
    labels = {feature_label(n, catalogue.get(n)) for n in run["result"].model.feature_names}
    first = scored["driver_1"].str.split(":").str[0]
    assert first.isin(labels).all()
    assert scored["driver_1"].str.contains(r" (?:lowers|raises) the score by [\d.]+ points?$").all()
    assert not scored["driver_1"].str.contains("nan").any()


def test_explanations_never_contradict_the_billing_or_usage_trend_data():
    # issue 16 item 4, on a simulated world scored twice: money past due never shows as a positive billing
    # contribution, and a usage trend of -50% or worse never raises the score
    run = simulated_run()
    overdue_rows = trend_rows = 0
    for batch in (run["first"], run["second"]):
        scored = batch.scores[batch.scores["status"] == "scored"].set_index("account_id")
        long = batch.explanations
        value = long.pivot(index="account_id", columns="feature", values="value")
        value = value[["amount_overdue", "usage_trend_30d"]].apply(pd.to_numeric)
        points = long.pivot(index="account_id", columns="feature", values="contribution")
        overdue = value.index[value["amount_overdue"] > 0]
        falling = value.index[value["usage_trend_30d"] <= -0.5]
        overdue_rows, trend_rows = overdue_rows + len(overdue), trend_rows + len(falling)
        assert (scored.loc[overdue, "contrib_billing"] <= 1e-9).all()
        assert (points.loc[falling, "usage_trend_30d"] <= 1e-9).all()
    assert overdue_rows >= 5 and trend_rows >= 5  # the world has both, so the checks above could fail
