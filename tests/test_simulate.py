"""The simulated world: deterministic, true to the contract, alive (arrivals, renewals, churn), with real signal."""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from healthscore.errors import HealthscoreError
from healthscore.io.schema import SURVEY_RANGES, TABLES, TOUCHPOINT_KINDS
from healthscore.simulate import FEATURES, HOSTILE_NAMES, SimulationSpec, World, simulate, write_world

SMALL = SimulationSpec(accounts=150, seed=3, start=date(2022, 1, 1), months=24)
EVENT_TIMES = {
    "usage_events": ["ts"],
    "tickets": ["opened_at", "closed_at"],
    "surveys": ["responded_at"],
    "touchpoints": ["ts"],
    "invoices": ["issued_at", "paid_at"],
    "adjustments": ["created_at"],
    "contracts": ["start_date"],
    "accounts": ["created_at"],
}


@pytest.fixture(scope="module")
def small() -> World:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def medium() -> World:
    """Large enough for stable rates (about 450 decided renewals), still under a second."""
    return simulate(SimulationSpec(accounts=400, seed=11, months=36))


def _decided(world: World) -> pd.DataFrame:
    c = world["contracts"]
    return c[c["outcome"].notna()].merge(world.truth, on="contract_id", how="left", validate="1:1")


# --- determinism ---------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_frames(small: World) -> None:
    again = simulate(SMALL)
    assert list(again.tables) == list(TABLES)
    for name in TABLES:
        pd.testing.assert_frame_equal(small[name], again[name], obj=name)
    pd.testing.assert_frame_equal(small.truth, again.truth)


def test_another_seed_gives_another_world(small: World) -> None:
    other = simulate(SimulationSpec(accounts=150, seed=4, months=24))
    for name in ("contracts", "usage_events", "tickets", "touchpoints"):
        assert not small[name].equals(other[name]), name
    assert not small.truth["p_renew"].equals(other.truth["p_renew"])


def test_written_files_are_byte_identical_per_seed(tmp_path, small: World) -> None:
    summaries = [write_world(SMALL, tmp_path / d) for d in ("a", "b")]
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted([f"{t}.parquet" for t in TABLES] + ["truth.parquet"])

    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert [digest(tmp_path / "a" / n) for n in names] == [digest(tmp_path / "b" / n) for n in names]
    assert summaries[0].caption == summaries[1].caption
    # what is written is what simulate returns
    back = pd.read_parquet(tmp_path / "a" / "contracts.parquet")
    assert back["contract_id"].tolist() == small["contracts"]["contract_id"].tolist()
    assert back["outcome"].isna().sum() == small["contracts"]["outcome"].isna().sum()


# --- the contract's shape ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TABLES))
def test_columns_and_kinds_match_the_contract(small: World, name: str) -> None:
    frame, table = small[name], TABLES[name]
    assert tuple(frame.columns) == table.column_names
    assert len(frame) > 0
    for col in table.columns:
        s = frame[col.name]
        if col.kind == "string":
            assert pd.api.types.is_string_dtype(s.dtype), (name, col.name, s.dtype)
            assert s.dropna().map(type).eq(str).all()
        elif col.kind in ("date", "timestamp"):
            assert pd.api.types.is_datetime64_dtype(s.dtype) and getattr(s.dt, "tz", None) is None
            if col.kind == "date":
                assert (s.dropna() == s.dropna().dt.normalize()).all(), (name, col.name)
        elif col.kind == "integer":
            assert pd.api.types.is_integer_dtype(s.dtype), (name, col.name)
        else:
            assert pd.api.types.is_float_dtype(s.dtype), (name, col.name)
        if col.required and not col.nullable:
            assert s.notna().all(), (name, col.name)
            if col.kind == "string":
                assert (s.str.len() > 0).all(), (name, col.name)


def test_keys_unique_and_references_valid(small: World) -> None:
    accounts = set(small["accounts"]["account_id"])
    assert small["accounts"]["account_id"].str.fullmatch(r"A-\d{5}").all()
    for name, table in TABLES.items():
        frame = small[name]
        if table.key:
            assert not frame.duplicated(list(table.key)).any(), name
        if table.references_account:
            assert set(frame["account_id"]) <= accounts, name
    users = small["usage_events"][["account_id", "user_id"]].drop_duplicates()
    assert (users["user_id"].str.rsplit("-U", n=1).str[0] == users["account_id"]).all()


def test_values_in_range(small: World) -> None:
    for name, table in TABLES.items():
        frame = small[name]
        for col in table.columns:
            s = frame[col.name].dropna()
            if col.allowed:
                assert set(s) <= set(col.allowed), (name, col.name)
            if col.low is not None:
                assert (s >= col.low).all(), (name, col.name)
            if col.high is not None:
                assert (s <= col.high).all(), (name, col.name)
        for early, late in table.date_order:
            both = frame[[early, late]].dropna()
            assert (both[early] <= both[late]).all(), (name, early, late)
    c = small["contracts"]
    assert (c["end_date"] > c["start_date"]).all()
    for kind, (low, high) in SURVEY_RANGES.items():
        scores = small["surveys"].loc[small["surveys"]["kind"] == kind, "score"]
        assert len(scores) and scores.between(low, high).all() and (scores == scores.round()).all(), kind
    assert set(small["touchpoints"]["kind"]) == set(TOUCHPOINT_KINDS)
    assert set(small["usage_events"]["feature"]) == set(FEATURES)
    assert (small["usage_events"]["quantity"] >= 1).all()
    csat = small["tickets"]["csat"].dropna()
    assert (csat == csat.round()).all()
    adj = small["adjustments"]
    assert (adj["points"] != 0).all() and (adj["reason"].str.strip().str.len() > 0).all()
    assert adj["author"].notna().all()
    assert 0 < adj["expires_at"].isna().sum() < len(adj)  # some empty (90-day default), some set
    assert (adj["expires_at"].dropna() > adj.loc[adj["expires_at"].notna(), "created_at"]).all()
    inv = small["invoices"]
    assert (inv["amount"] > 0).all() and inv["paid_at"].isna().any() and inv["paid_at"].notna().any()


def test_every_event_lies_inside_the_world(small: World) -> None:
    lo, hi = pd.Timestamp(SMALL.start), pd.Timestamp(SMALL.end)
    assert hi == pd.Timestamp("2024-01-01")
    for name, cols in EVENT_TIMES.items():
        for col in cols:
            s = small[name][col].dropna()
            assert ((s >= lo) & (s < hi)).all(), (name, col, s.min(), s.max())


def test_accounts_have_segments_csms_and_hostile_names(small: World) -> None:
    a = small["accounts"]
    assert set(a["segment"]) == {"smb", "mid_market", "enterprise"}
    assert 3 <= a["csm"].nunique() <= 8
    assert set(HOSTILE_NAMES) <= set(a["name"])
    assert any(n.startswith("=") for n in a["name"]) and any("<b>" in n for n in a["name"])
    # bigger segments buy more seats
    seats = small["contracts"].merge(a, on="account_id").groupby("segment")["seats"].median()
    assert seats["smb"] < seats["mid_market"] < seats["enterprise"]


# --- life cycle -------------------------------------------------------------------------------------------


def test_contract_life_cycle(small: World) -> None:
    c = small["contracts"].sort_values(["account_id", "start_date"])
    end = pd.Timestamp(SMALL.end)
    # decided exactly when the renewal date falls inside the world
    assert (c["outcome"].notna() == (c["end_date"] < end)).all()
    nxt = c.groupby("account_id")["start_date"].shift(-1)
    has_next = nxt.notna()
    # a renewal starts the next term on the old renewal date; only renewed contracts have a successor
    assert (nxt[has_next] == c.loc[has_next, "end_date"]).all()
    assert (c.loc[has_next, "outcome"] == "renewed").all()
    last = c[~has_next]
    assert (last["outcome"] != "renewed").all()
    # every life stage is present: prospects, churned, first-term, renewed-and-running
    n_contracts = c.groupby("account_id").size()
    assert (~small["accounts"]["account_id"].isin(c["account_id"])).sum() >= 1
    assert (last["outcome"] == "churned").any() and last["outcome"].isna().any()
    assert {1, 2} <= set(n_contracts)
    first_start = c.groupby("account_id")["start_date"].min()
    assert first_start.max() > pd.Timestamp("2023-06-01")  # customers still arriving late in the world
    created = small["accounts"].set_index("account_id")["created_at"]
    assert (created[first_start.index] == first_start).all()


def test_churned_accounts_go_quiet_after_their_last_end_date(small: World) -> None:
    c = small["contracts"].sort_values("start_date")
    last = c.groupby("account_id").tail(1)
    churned = last[last["outcome"] == "churned"].set_index("account_id")["end_date"]
    assert len(churned) >= 5
    for name, col in (("usage_events", "ts"), ("tickets", "opened_at"), ("tickets", "closed_at"),
                      ("touchpoints", "ts"), ("surveys", "responded_at"), ("adjustments", "created_at")):
        frame = small[name]
        ends = frame["account_id"].map(churned)
        after = frame[col] >= ends
        assert not after.any(), (name, col, frame[after].head())
    # ... but they were active before leaving
    assert small["usage_events"]["account_id"].isin(churned.index).any()


def test_no_activity_before_the_first_contract(small: World) -> None:
    first = small["contracts"].groupby("account_id")["start_date"].min()
    for name, col in (("usage_events", "ts"), ("tickets", "opened_at"), ("invoices", "issued_at")):
        frame = small[name]
        assert (frame[col] >= frame["account_id"].map(first)).all(), name


def test_truth_has_one_row_per_decided_contract(small: World) -> None:
    t = small.truth
    decided = small["contracts"].loc[small["contracts"]["outcome"].notna(), "contract_id"]
    assert sorted(t["contract_id"]) == sorted(decided)
    assert t["contract_id"].is_unique
    assert t["p_renew"].between(0, 1, inclusive="neither").all()
    assert {"contract_id", "p_renew", "health"} <= set(t.columns)
    assert not set(t.columns) & (set().union(*(TABLES[n].column_names for n in TABLES)) - {"contract_id"})


# --- signal --------------------------------------------------------------------------------------------------


def test_renewal_rate_and_truth_auc_are_realistic(medium: World) -> None:
    d = _decided(medium)
    y = (d["outcome"] == "renewed").astype(int)
    assert len(d) > 300
    assert 0.70 <= y.mean() <= 0.92
    # the truth separates renewals from churn, but far from perfectly
    assert 0.70 <= roc_auc_score(y, d["p_renew"]) <= 0.92
    # and it is calibrated: mean probability close to the observed rate
    assert abs(d["p_renew"].mean() - y.mean()) < 0.05


def test_healthier_accounts_use_more(medium: World) -> None:
    d = _decided(medium)
    u = medium["usage_events"][["account_id", "ts", "user_id"]].merge(
        d[["account_id", "contract_id", "start_date", "end_date", "seats"]], on="account_id"
    )
    u = u[(u["ts"] >= u["end_date"] - pd.Timedelta(days=90)) & (u["ts"] < u["end_date"])]
    users = u.groupby("contract_id")["user_id"].nunique()
    per_seat = (users / d.set_index("contract_id")["seats"]).fillna(0.0)
    health = d.set_index("contract_id")["health"]
    assert per_seat.corr(health, method="spearman") > 0.4


def test_unhealthy_accounts_file_more_urgent_tickets_and_answer_lower(medium: World) -> None:
    d = _decided(medium)
    low = set(d.loc[d["health"] < d["health"].quantile(0.25), "account_id"])
    high = set(d.loc[d["health"] > d["health"].quantile(0.75), "account_id"])
    t = medium["tickets"]
    urgent = t["priority"].isin(["high", "urgent"])
    assert urgent[t["account_id"].isin(low)].mean() > urgent[t["account_id"].isin(high)].mean() + 0.03
    nps = medium["surveys"][medium["surveys"]["kind"] == "nps"]
    assert nps.loc[nps["account_id"].isin(low), "score"].mean() < nps.loc[nps["account_id"].isin(high), "score"].mean()
    assert medium["tickets"]["closed_at"].isna().any()  # some still open at the end


def test_utilisation_ramps_up_over_the_first_months(medium: World) -> None:
    c = medium["contracts"]
    first = c.sort_values("start_date").groupby("account_id").head(1).set_index("account_id")
    u = medium["usage_events"]
    month = ((u["ts"] - u["account_id"].map(first["start_date"])).dt.days // 30).rename("month")
    active = u.groupby([u["account_id"], month])["user_id"].nunique().unstack()
    util = active.div(first.loc[active.index, "seats"], axis=0)
    assert util[0].mean() < util[2].mean() < util[5].mean()


def test_ebrs_are_mostly_for_larger_segments(medium: World) -> None:
    seg = medium["accounts"].set_index("account_id")["segment"]
    ebr = medium["touchpoints"].loc[medium["touchpoints"]["kind"] == "ebr", "account_id"].map(seg)
    assert (ebr != "smb").mean() > 0.7


def test_every_shock_is_logged_as_an_adjustment(medium: World) -> None:
    adj = medium["adjustments"]
    follow = adj["reason"].str.startswith("Follow-up: ")
    assert follow.any() and (~follow).sum() > follow.sum()
    assert adj["points"].abs().max() <= 100
    # shocks that hurt get negative points
    assert (adj.loc[adj["reason"].str.contains("Champion left"), "points"] < 0).all()


# --- drift ---------------------------------------------------------------------------------------------------


def test_drift_changes_only_the_second_half(medium: World) -> None:
    drifted = simulate(SimulationSpec(accounts=400, seed=11, months=36, drift=True))
    plain, shifted = _decided(medium), _decided(drifted)
    mid = pd.Timestamp(SimulationSpec(months=18).end)  # the world's midpoint
    before_p, before_d = plain[plain["end_date"] < mid], shifted[shifted["end_date"] < mid]
    pd.testing.assert_frame_equal(before_p.reset_index(drop=True), before_d.reset_index(drop=True))
    assert not before_d["drifted"].any() and shifted.loc[shifted["end_date"] >= mid, "drifted"].all()
    assert not plain["drifted"].any()
    after_p, after_d = plain[plain["end_date"] >= mid], shifted[shifted["end_date"] >= mid]
    assert not after_p["p_renew"].reset_index(drop=True).equals(after_d["p_renew"].reset_index(drop=True))
    # after the shift support drives renewal more and usage less
    def corr(frame: pd.DataFrame, col: str) -> float:
        return frame[col].corr(frame["logit"], method="spearman")

    assert corr(after_d, "support_bad") < corr(after_p, "support_bad") - 0.15
    assert corr(after_d, "utilisation") < corr(after_p, "utilisation") - 0.1
    rate = (after_d["outcome"] == "renewed").mean()
    assert 0.70 <= rate <= 0.92


# --- writing, loading, spec and CLI ------------------------------------------------------------------------


def test_written_world_loads_and_validates_cleanly(tmp_path, small: World) -> None:
    from healthscore.io import load_dataset

    for fmt in ("parquet", "csv"):
        write_world(small, tmp_path / fmt, fmt=fmt)
        ds = load_dataset(tmp_path / fmt)
        assert ds.warnings == () and ds.absent == ()
        for name in TABLES:
            assert len(ds.table(name)) == len(small[name]), (fmt, name)
        assert set(ds.accounts["name"]) == set(small["accounts"]["name"])
        got = ds.usage_events["ts"].sort_values(ignore_index=True)
        pd.testing.assert_series_equal(got, small["usage_events"]["ts"].sort_values(ignore_index=True),
                                       check_dtype=False)


def test_csv_world_is_plain_iso_text_and_replaces_stale_parquet(tmp_path, small: World) -> None:
    write_world(small, tmp_path)
    write_world(small, tmp_path, fmt="csv")
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted([f"{t}.csv" for t in TABLES] + ["truth.parquet"])
    head = (tmp_path / "tickets.csv").read_text(encoding="utf-8").splitlines()[:2]
    assert head[0].replace('"', "") == ",".join(TABLES["tickets"].column_names)
    opened = head[1].split(",")[2].strip('"')
    assert pd.Timestamp(opened).isoformat() == opened  # e.g. 2022-01-04T23:30:10
    contracts = (tmp_path / "contracts.csv").read_text(encoding="utf-8").splitlines()[1].split(",")
    date.fromisoformat(contracts[2].strip('"'))


def test_bad_spec_and_format_are_refused_with_every_problem() -> None:
    with pytest.raises(HealthscoreError, match=r"accounts must be .*found 0.*months must be .*found 0"):
        SimulationSpec(accounts=0, months=0)
    with pytest.raises(HealthscoreError, match="seed must be"):
        SimulationSpec(seed=-1)
    with pytest.raises(HealthscoreError, match="--format must be parquet or csv, found 'xlsx'"):
        write_world(SMALL, "unused", fmt="xlsx")


def test_a_world_too_short_for_renewals_is_still_valid() -> None:
    w = simulate(SimulationSpec(accounts=12, seed=1, months=3))
    assert w["contracts"]["outcome"].isna().all() and len(w.truth) == 0
    assert list(w.truth.columns[:2]) == ["contract_id", "p_renew"]


def test_cli_simulate_writes_a_dataset(tmp_path) -> None:
    from typer.testing import CliRunner

    from healthscore.cli import app

    result = CliRunner().invoke(
        app, ["simulate", "--out", str(tmp_path / "w"), "--accounts", "40", "--months", "15", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "renewal rate" in result.output
    assert (tmp_path / "w" / "truth.parquet").exists() and (tmp_path / "w" / "usage_events.parquet").exists()
    np.testing.assert_array_equal(
        pd.read_parquet(tmp_path / "w" / "accounts.parquet")["account_id"].str[2:].astype(int), np.arange(1, 41)
    )
