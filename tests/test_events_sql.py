"""Event-sized tables (usage_events, tickets, touchpoints) are validated and read by DuckDB SQL (``io.events``).

What must hold: a CSV and a Parquet file of the same table give the same problems and the same features;
each defect is named with table, column, count, examples and fix exactly as the pandas route names it;
text cells parse to the values pandas would give them; and no command reads an event table into pandas.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _tiny_world import tiny_world_frames, write_world
from healthscore.errors import DataError
from healthscore.io import dataset_from_frames, load_dataset
from healthscore.io.events import EVENT_SIZED, EventTable, connect

CSV = {name: "csv" for name in EVENT_SIZED}
PARQUET = {name: "parquet" for name in EVENT_SIZED}


def _planted(tmp_path: Path, table: str, column: str, row: int, value: object, formats: dict) -> Path:
    frames = tiny_world_frames()
    frame = frames[table].astype(object)
    frame.loc[row, column] = value
    # a Parquet column holds one type: the planted column is written as text (NaN/NaT as empty cells)
    frame[column] = [None if pd.isna(v) else str(v) for v in frame[column]]
    frames[table] = frame
    return write_world(frames, tmp_path / "-".join(sorted(set(formats.values()))), formats)


def _problems(directory: Path) -> list:
    with pytest.raises(DataError) as info:
        load_dataset(directory)
    return info.value.problems


# (id, table, column, row, value, expected message): the pandas route's exact wording (tests/test_validate.py)
EVENT_DEFECTS = [
    ("wrong-type-ts", "usage_events", "ts", 2, "2023-02-30 10:00",
     "usage_events.ts: not a timestamp in 1 row (e.g. row 3: '2023-02-30 10:00'); write timestamps as ISO-8601, "
     "e.g. 2024-01-31T14:05:00Z (no zone means UTC)"),
    ("wrong-type-quantity", "usage_events", "quantity", 1, "two",
     "usage_events.quantity: not a number in 1 row (e.g. row 2: 'two'); write plain numbers with a dot for "
     "decimals and no thousands separators, e.g. 1234.5"),
    ("unknown-account", "usage_events", "account_id", 4, "A-404",
     "usage_events.account_id: not in accounts in 1 row (e.g. A-404); add the account or drop those rows"),
    ("unknown-account-ticket", "tickets", "account_id", 1, "A-9",
     "tickets.account_id: not in accounts in 1 row (e.g. A-9); add the account or drop the ticket"),
    ("duplicate-key", "tickets", "ticket_id", 2, "T-1",
     "tickets.ticket_id: duplicate key in 2 rows (e.g. T-1 (rows 1, 3)); keep one row per ticket_id: each "
     "ticket must appear once"),
    ("out-of-range", "tickets", "csat", 0, "6",
     "tickets.csat: not between 1 and 5 in 1 row (e.g. ticket_id T-1: 6); ticket csat is on a 1–5 scale"),
    ("not-allowed", "tickets", "priority", 1, "p1",
     "tickets.priority: not one of low, normal, high, urgent in 1 row (e.g. ticket_id T-2: 'p1'); use one of "
     "low, normal, high, urgent, or leave it empty"),
    ("order", "tickets", "closed_at", 0, "2023-03-01 08:59:59",
     "tickets.closed_at: before opened_at in 1 row (e.g. ticket_id T-1); correct the timestamps, or leave "
     "closed_at empty while the ticket is open"),
    ("empty-required", "touchpoints", "kind", 1, "  ",
     "touchpoints.kind: empty but required in 1 row (e.g. row 2); fill in kind or drop those rows"),
    ("bad-ts-touchpoint", "touchpoints", "ts", 0, "05/10/2023",
     "touchpoints.ts: not a timestamp in 1 row (e.g. row 1: '05/10/2023')"),
    # a Parquet file's statistics may spare the scan a text column only when they prove every cell filled:
    # each of these breaks that proof another way (empty: min, blank: min, non-ASCII blank: max, none: nulls)
    *[(f"blank-user-{i}", "usage_events", "user_id", 3, value,
       "usage_events.user_id: empty but required in 1 row (e.g. row 4)")
      for i, value in enumerate(["", "\t", "\u00a0\u3000", None])],
]


@pytest.mark.parametrize(("table", "column", "row", "value", "message"),
                         [pytest.param(*case[1:], id=case[0]) for case in EVENT_DEFECTS])
def test_a_defect_in_an_event_table_is_named_the_same_in_csv_and_parquet(
    tmp_path: Path, table: str, column: str, row: int, value: object, message: str
) -> None:
    from healthscore.io.validate import normalise_table

    as_csv = _problems(_planted(tmp_path, table, column, row, value, CSV))
    as_parquet = _problems(_planted(tmp_path, table, column, row, value, PARQUET))
    assert [p.render() for p in as_csv] == [p.render() for p in as_parquet]
    (problem,) = as_csv
    assert problem.render().startswith(message), problem.render()
    assert (problem.table, problem.column) == (table, column)
    # the pandas route (normalise_table on the frame as text, as a CSV reader sees it) says the same
    frames = tiny_world_frames()
    frame = frames[table].astype(object)
    frame.loc[row, column] = value
    text = frame.astype(str).replace({"nan": "", "NaT": "", "None": ""})
    pandas_problems = normalise_table(table, text).problems
    if pandas_problems:  # parsing problems; the others come from checks across rows
        assert [p.render() for p in pandas_problems] == [problem.render()]


def test_in_memory_frames_give_the_same_problems_as_files(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    events = frames["usage_events"].astype(object)
    events.loc[0, "ts"] = "yesterday"
    events.loc[3, "account_id"] = "A-77"
    events.loc[5, "user_id"] = ""
    frames["usage_events"] = events
    with pytest.raises(DataError) as in_memory:
        dataset_from_frames(frames)
    on_disk = _problems(write_world(frames, tmp_path / "w", CSV))
    assert [p.render() for p in in_memory.value.problems] == [p.render() for p in on_disk]
    assert [(p.column, p.message) for p in on_disk] == [
        ("user_id", "empty but required"), ("ts", "not a timestamp"), ("account_id", "not in accounts")]


def test_examples_count_rows_of_the_file_even_with_quoted_line_breaks(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    events = frames["usage_events"].astype(object)
    events.loc[0, "feature"] = 'a "quoted"\nfeature, with a comma'
    events.loc[4, "ts"] = "not a time"
    frames["usage_events"] = events
    (problem,) = _problems(write_world(frames, tmp_path / "w", CSV))
    assert problem.examples == ["row 5: 'not a time'"]


def test_a_ragged_csv_event_table_cannot_be_read(tmp_path: Path) -> None:
    directory = write_world(tiny_world_frames(), tmp_path / "w", CSV)
    with (directory / "touchpoints.csv").open("a", encoding="utf-8") as handle:
        handle.write("A-1,2023-06-01 10:00:00,meeting,extra\n")
    (problem,) = _problems(directory)
    assert problem.table == "touchpoints"
    assert problem.message.startswith("touchpoints.csv cannot be read as CSV (")
    assert "separate fields with commas" in problem.fix


def test_a_csv_event_table_that_is_not_utf8(tmp_path: Path) -> None:
    directory = write_world(tiny_world_frames(), tmp_path / "w", CSV)
    (directory / "usage_events.csv").write_bytes("account_id,user_id,ts,feature\nA-1,u1,2023-01-01,café\n"
                                                 .encode("latin-1"))
    (problem,) = _problems(directory)
    assert problem.message == "usage_events.csv is not UTF-8 text (byte 51): save it as UTF-8"  # as pandas says


def test_same_tables_and_fingerprint_from_csv_parquet_and_frames(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    csv = load_dataset(write_world(frames, tmp_path / "csv", CSV))
    parquet = load_dataset(write_world(frames, tmp_path / "parquet", PARQUET))
    memory = dataset_from_frames(frames)
    assert csv.fingerprint == parquet.fingerprint == memory.fingerprint
    for name in EVENT_SIZED:
        assert isinstance(csv.events(name), EventTable) and csv.events(name).fmt == "csv"
        assert parquet.events(name).fmt == "parquet"
        pd.testing.assert_frame_equal(csv.table(name), parquet.table(name))
        pd.testing.assert_frame_equal(memory.table(name), parquet.table(name))
        assert csv.rows(name) == len(frames[name])
    assert csv.time_range("usage_events", "ts") == (pd.Timestamp("2023-01-20 16:45:00"),
                                                    pd.Timestamp("2023-05-02 11:00:00"))
    changed = {**frames, "usage_events": frames["usage_events"].assign(quantity=[3.0, 1.0, 2.0, 1.0, 5.0, 2.0])}
    assert dataset_from_frames(changed).fingerprint != memory.fingerprint


def test_csv_and_parquet_events_give_the_same_features(tmp_path: Path) -> None:
    from healthscore.features import build_features
    from healthscore.simulate import SimulationSpec, simulate
    from healthscore.simulate import write_world as write_simulated
    from healthscore.timeline import scoring_rows

    world = simulate(SimulationSpec(accounts=30, seed=5, start=date(2022, 1, 1), months=20))
    write_simulated(world, tmp_path / "parquet", fmt="parquet")
    write_simulated(world, tmp_path / "csv", fmt="csv")
    parquet, csv = load_dataset(tmp_path / "parquet"), load_dataset(tmp_path / "csv")
    rows = pd.concat([scoring_rows(parquet, date(2023, 2, 1)), scoring_rows(parquet, date(2023, 7, 1))],
                     ignore_index=True)
    from_parquet = build_features(parquet, rows)
    pd.testing.assert_frame_equal(build_features(csv, rows), from_parquet)
    memory = dataset_from_frames({name: frame for name, frame in world.tables.items() if name != "truth"})
    pd.testing.assert_frame_equal(build_features(memory, rows), from_parquet)
    assert from_parquet["active_users_30d"].gt(0).sum() > 5


# ---------------------------------------------------------------- text cells parse as pandas parses them


def _sql_values(kind: str, texts: list[str]) -> list:
    frame = pd.DataFrame({"account_id": ["A-1"] * len(texts), "ts": texts, "kind": ["meeting"] * len(texts)})
    if kind == "number":
        frame = pd.DataFrame({"ticket_id": [f"T{i}" for i in range(len(texts))], "account_id": "A-1",
                              "opened_at": "2023-01-01", "csat": texts})
    accounts = pd.DataFrame({"account_id": ["A-1"]})
    contracts = pd.DataFrame({"contract_id": ["C-1"], "account_id": ["A-1"], "start_date": ["2022-01-01"],
                              "end_date": ["2023-01-01"], "arr": [1.0]})
    table = "touchpoints" if kind == "timestamp" else "tickets"
    try:
        ds = dataset_from_frames({"accounts": accounts, "contracts": contracts, table: frame})
    except DataError as exc:
        return [p for p in exc.problems]
    column = "ts" if kind == "timestamp" else "csat"
    return ds.table(table)[column].tolist()


def _pandas_values(kind: str, texts: list[str]) -> list:
    from healthscore.io.validate import _parse_datetime, _parse_number

    series = pd.Series(texts, dtype=object)
    values, _, bad = (_parse_datetime(series, date_only=False) if kind == "timestamp" else _parse_number(series))
    return None if bad.any() else values.tolist()


TIMESTAMP_TEXTS = st.builds(
    lambda d, t, sep, frac, zone, pad: f"{pad}{d.isoformat()}{sep + t.strftime('%H:%M:%S') + frac + zone if t else ''}"
                                      f"{pad}",
    st.dates(min_value=date(1700, 1, 1), max_value=date(2200, 12, 31)),
    st.one_of(st.none(), st.times()),
    st.sampled_from(["T", " "]),
    st.sampled_from(["", ".5", ".123456", ".123456789"]),
    st.sampled_from(["", "Z", "+02:00", "-05:30", "+0100", "+03"]),
    st.sampled_from(["", " ", "\t"]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(TIMESTAMP_TEXTS, min_size=1, max_size=6))
def test_iso_timestamps_parse_to_the_pandas_values(texts: list[str]) -> None:
    expected = _pandas_values("timestamp", texts)
    assert expected is not None
    assert _sql_values("timestamp", texts) == expected


@pytest.mark.parametrize("texts", [
    ["2023-01-31T14", "20230131", "2023-01", "2023/01/31", "2023-1-5"],  # pandas accepts these: delegated
    ["2023-01-31T24:00:00"], ["2023-02-30"], ["31/01/2023"], ["2300-01-01"], ["1600-06-01"], ["tomorrow"],
])
def test_unusual_timestamps_are_decided_by_pandas(texts: list[str]) -> None:
    expected = _pandas_values("timestamp", texts)
    got = _sql_values("timestamp", texts)
    if expected is None:
        assert [p.message for p in got] == ["not a timestamp"]
    else:
        assert got == expected


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(
    st.floats(min_value=1, max_value=5).map(repr),
    st.integers(min_value=1, max_value=5).map(str),
    st.sampled_from(["1e0", "+2", "3.", " 4 ", "5.000", ".5e1", "1E+00"]),
), min_size=1, max_size=6))
def test_numbers_parse_to_the_pandas_values(texts: list[str]) -> None:
    assert _sql_values("number", texts) == _pandas_values("number", texts)


@pytest.mark.parametrize("text", ["1,5", "nan", "inf", "1_000", "0x2", "two", "١"])
def test_numbers_pandas_refuses_are_not_numbers(text: str) -> None:
    (problem,) = _sql_values("number", [text])
    assert problem.message == "not a number" and problem.column == "csat"


# ---------------------------------------------------------------- the commands never materialise


@pytest.fixture
def no_materialising(monkeypatch):
    def refuse(self):
        raise AssertionError(f"{self.name} was read into pandas")

    monkeypatch.setattr(EventTable, "to_pandas", refuse)


def _cli(*args: str) -> None:
    from healthscore.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        assert exc.code in (0, None), f"healthscore {' '.join(args)} exited {exc.code}"


def test_commands_never_read_an_event_table_into_pandas(tmp_path: Path, mlflow_store, no_materialising,
                                                         monkeypatch) -> None:
    from healthscore.simulate import SimulationSpec, simulate
    from healthscore.simulate import write_world as write_simulated

    monkeypatch.setenv("HEALTHSCORE_DEBUG", "1")  # a materialisation fails the test with its traceback
    data = tmp_path / "data"
    write_simulated(simulate(SimulationSpec(accounts=250, seed=11, months=30)), data, fmt="csv")
    _cli("validate", "--data", str(data))
    _cli("features", "--data", str(data), "--as-of", "2024-03-01", "--out", str(tmp_path / "f.parquet"))
    _cli("train", "--data", str(data), "--as-of", "2024-03-01", "--quiet")
    _cli("score", "--data", str(data), "--as-of", "2024-03-01", "--out", str(tmp_path / "scores"), "--quiet")
    assert (tmp_path / "scores" / "scores.parquet").exists()


def test_the_materialising_accessor_is_cached_and_read_only(tmp_path: Path) -> None:
    ds = load_dataset(write_world(tiny_world_frames(), tmp_path / "w"))
    first = ds.usage_events
    assert ds.usage_events is first  # one materialisation per table
    with pytest.raises(AttributeError):
        ds.usage_events = None  # frozen
    assert "usage_events" in repr(ds) and "A-1" not in repr(ds)


def test_duckdb_reads_the_normalised_view(tmp_path: Path) -> None:
    ds = load_dataset(write_world(tiny_world_frames(), tmp_path / "w", CSV))
    con = connect()
    try:
        ds.events("usage_events").register(con, "ev")
        got = con.execute("SELECT sum(quantity), count(DISTINCT user_id), min(ts) FROM ev").fetchall()[0]
    finally:
        con.close()
    assert got[0] == pytest.approx(13.0) and got[1] == 5
    assert pd.Timestamp(got[2]) == pd.Timestamp("2023-01-20 16:45:00")
    assert np.isclose(ds.usage_events["quantity"].sum(), 13.0)


def test_last_before_answers_from_the_scans_range_when_it_decides_and_scans_otherwise(tmp_path: Path, monkeypatch):
    import healthscore.io.events as events_module

    ds = load_dataset(write_world(tiny_world_frames(), tmp_path / "w", PARQUET))
    ref = ds.events("usage_events")
    ts = ds.usage_events["ts"]
    low, high = ts.min(), ts.max()
    scans = []
    real = events_module.connect
    monkeypatch.setattr(events_module, "connect", lambda **k: scans.append(1) or real(**k))
    assert ref.last_before("ts", high + pd.Timedelta(seconds=1)) == high  # every value before: the range says
    assert ref.last_before("ts", low) is None  # none before
    assert scans == []
    middle = low + (high - low) / 2
    assert ref.last_before("ts", middle) == ts[ts < middle].max()  # in between: one scan
    assert ref.last_before("ts", high) == ts[ts < high].max()  # strictly before: the last value is not seen
    assert len(scans) == 2


def test_parquet_statistics_spare_only_the_text_columns_they_prove_filled(tmp_path: Path) -> None:
    from healthscore.io.events import _filled_by_statistics

    clean = load_dataset(write_world(tiny_world_frames(), tmp_path / "clean", PARQUET))
    assert _filled_by_statistics(connect(), clean.events("usage_events")) == {"account_id", "user_id", "feature"}
    blank = _planted(tmp_path, "usage_events", "feature", 2, " ", PARQUET)
    assert [p.column for p in _problems(blank)] == ["feature"]  # the unproven column is read, and its blank found


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_the_validation_scan_finds_the_last_record_before_a_date_and_the_gates_ask_no_more(tmp_path: Path,
                                                                                         monkeypatch, fmt):
    """``load_dataset(before=T)`` (score's as-of): each time column's last value strictly before T comes from
    the validation scan, the same as the scan ``last_before`` makes otherwise; no other connection opens."""
    import healthscore.io.events as events_module
    from healthscore.summary import data_ends

    path = write_world(tiny_world_frames(), tmp_path / "w", PARQUET if fmt == "parquet" else CSV)
    ts = load_dataset(path).usage_events["ts"]
    for when in (ts.min() + (ts.max() - ts.min()) / 2, ts.max(), ts.sort_values().iloc[1]):  # on a record: strict
        want = data_ends(load_dataset(path), before=when)
        ds = load_dataset(path, before=when.date() if when == when.normalize() else when)
        scans = []
        real = events_module.connect
        monkeypatch.setattr(events_module, "connect", lambda real=real, scans=scans, **k: scans.append(1) or real(**k))
        assert data_ends(ds, before=when) == want
        assert ds.last_before("usage_events", "ts", when) == ts[ts < when].max()
        assert scans == []
        monkeypatch.undo()
    ds = load_dataset(path, before=ts.max())
    other = ts.min() + (ts.max() - ts.min()) / 3  # another date than the scan's: one scan of its own
    assert ds.last_before("usage_events", "ts", other) == ts[ts < other].max()
