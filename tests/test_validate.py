"""Reading and validating a dataset directory (CONTRACT §1), on the tiny world of ``_tiny_world``."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from _tiny_world import tiny_world_frames, write_world
from healthscore.errors import DataError
from healthscore.io import TABLES, dataset_from_frames, load_dataset
from healthscore.summary import render_summary, summarise

HEALTHSCORE = Path(sys.executable).parent / "healthscore"
ALL_CSV = {name: "csv" for name in TABLES}
ALL_PARQUET = {name: "parquet" for name in TABLES}


def _hashes(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def _plant(tmp_path: Path, table: str, column: str, row: int, value: object, fmt: str = "csv") -> Path:
    """The tiny world with one cell replaced, ``table`` written as ``fmt`` (CSV takes any text)."""
    frames = tiny_world_frames()
    frame = frames[table].astype(object)
    frame.loc[row, column] = value
    frames[table] = frame
    return write_world(frames, tmp_path / "world", {table: fmt})


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "200"}
    return subprocess.run([str(HEALTHSCORE), *args], capture_output=True, text=True, env=env, timeout=120)


# ---------------------------------------------------------------- a clean world


@pytest.fixture
def world(tmp_path: Path) -> Path:
    return write_world(tiny_world_frames(), tmp_path / "world")


def test_clean_mixed_world_loads_with_the_documented_dtypes(world: Path) -> None:
    ds = load_dataset(world)
    for name, table in TABLES.items():
        frame = ds.table(name)
        assert list(frame.columns) == list(table.column_names), name
        for column in table.columns:
            dtype = frame[column.name].dtype
            if column.kind == "string":
                assert dtype == "string", (name, column.name, dtype)
            elif column.kind in ("date", "timestamp"):
                assert dtype == "datetime64[ns]", (name, column.name, dtype)
            else:
                assert dtype == "float64", (name, column.name, dtype)
    assert ds.absent == () and ds.warnings == ()
    assert ds.source == str(world)
    assert len(ds.fingerprint) == 64


def test_normalisation_fills_segment_and_quantity_and_keeps_empty_text_missing(world: Path) -> None:
    ds = load_dataset(world)
    # A-4 has an empty segment -> "unknown"; its empty industry stays missing
    assert ds.accounts.set_index("account_id").loc["A-4", "segment"] == "unknown"
    assert pd.isna(ds.accounts.set_index("account_id").loc["A-4", "industry"])
    # the one event without quantity (A-4's login) counts once
    assert ds.usage_events["quantity"].tolist() == [3.0, 1.0, 2.0, 1.0, 5.0, 1.0]
    assert ds.contracts["outcome"].isna().sum() == 2
    assert ds.contracts.set_index("contract_id").loc["C-2", "end_date"] == pd.Timestamp("2024-01-01")
    assert ds.tickets.set_index("ticket_id").loc["T-1", "opened_at"] == pd.Timestamp("2023-03-01 09:00:00")


def test_aware_timestamps_become_naive_utc(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    tickets = frames["tickets"].astype(object)
    tickets.loc[0, "opened_at"] = "2023-03-01T11:00:00+02:00"
    tickets.loc[0, "closed_at"] = "2023-03-02T10:00:00Z"
    frames["tickets"] = tickets
    frames["surveys"] = frames["surveys"].assign(
        responded_at=frames["surveys"]["responded_at"].dt.tz_localize("America/New_York")
    )
    ds = load_dataset(write_world(frames, tmp_path / "w", {"tickets": "csv", "surveys": "parquet"}))
    assert ds.tickets.loc[0, "opened_at"] == pd.Timestamp("2023-03-01 09:00:00")
    assert ds.tickets.loc[0, "closed_at"] == pd.Timestamp("2023-03-02 10:00:00")
    assert ds.tickets["opened_at"].dtype == "datetime64[ns]"
    # 12:00 in New York on 15 March 2023 (EDT, UTC-4) is 16:00 UTC
    assert ds.surveys.loc[0, "responded_at"] == pd.Timestamp("2023-03-15 16:00:00")
    assert ds.surveys["responded_at"].dtype == "datetime64[ns]"


def test_same_data_in_any_format_and_row_order_has_one_fingerprint(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    mixed = load_dataset(write_world(frames, tmp_path / "mixed"))
    csv = load_dataset(write_world(frames, tmp_path / "csv", ALL_CSV))
    parquet = load_dataset(write_world(frames, tmp_path / "parquet", ALL_PARQUET))
    rng = np.random.default_rng(7)
    shuffled = {name: f.sample(frac=1, random_state=rng).reset_index(drop=True) for name, f in frames.items()}
    reordered = load_dataset(write_world(shuffled, tmp_path / "shuffled"))
    assert mixed.fingerprint == csv.fingerprint == parquet.fingerprint == reordered.fingerprint
    for name in TABLES:
        pd.testing.assert_frame_equal(csv.table(name), parquet.table(name))
    # input row order is kept, not sorted
    assert reordered.contracts["contract_id"].tolist() == shuffled["contracts"]["contract_id"].tolist()
    assert summarise(reordered) | {"source": None} == summarise(mixed) | {"source": None}

    frames["contracts"].loc[3, "arr"] = 6001.0
    changed = load_dataset(write_world(frames, tmp_path / "changed"))
    assert changed.fingerprint != mixed.fingerprint


def test_a_fingerprint_left_for_later_is_the_same_and_follows_the_events(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    for fmt, formats in (("csv", ALL_CSV), ("parquet", ALL_PARQUET)):
        root = write_world(frames, tmp_path / fmt, formats)
        lazy = load_dataset(root, fingerprint=False)
        assert lazy.events("usage_events").digest == ""  # the validation scan did not hash the rows
        assert lazy.fingerprint == load_dataset(root).fingerprint
    changed = {**frames, "usage_events": frames["usage_events"].copy()}
    changed["usage_events"].loc[0, "quantity"] = float(changed["usage_events"]["quantity"].max()) + 1.0
    other = write_world(changed, tmp_path / "changed", ALL_PARQUET)
    assert load_dataset(other, fingerprint=False).fingerprint != load_dataset(tmp_path / "parquet").fingerprint


def test_absent_optional_tables_are_none_and_listed(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    ds = load_dataset(write_world({k: frames[k] for k in ("accounts", "contracts")}, tmp_path / "w"))
    optional = ("usage_events", "tickets", "surveys", "touchpoints", "invoices", "adjustments")
    assert ds.absent == optional
    assert all(ds.table(name) is None for name in optional)
    assert summarise(ds)["absent"] == list(optional)


def test_other_files_in_the_directory_are_ignored_and_listed_once(world: Path) -> None:
    pd.DataFrame({"contract_id": ["C-1"], "p_renew": [0.9]}).to_parquet(world / "truth.parquet")
    (world / "README.txt").write_text("not a table")
    (world / "notes.md").write_text("not a table")
    (world / "accounts.csv.bak").write_text("garbage")
    ds = load_dataset(world)
    assert ds.warnings == (
        "ignored accounts.csv.bak: the accounts table is read from its exact name",
        "ignored files (not a table of CONTRACT §1): README.txt, notes.md",
    )  # truth.parquet is the simulator's, read by train: not reported
    assert len(ds.accounts) == 5


@pytest.mark.parametrize(("file_name", "table"), [
    ("survey.parquet", "surveys"), ("Usage_Events.parquet", "usage_events"), ("usage-events.csv", "usage_events"),
    ("tickts.csv", "tickets"), ("Touchpoint.CSV", "touchpoints"), ("invoice.parquet", "invoices"),
])
def test_a_misnamed_optional_table_gets_a_did_you_mean(world: Path, file_name: str, table: str) -> None:
    for suffix in ("csv", "parquet"):
        if (world / f"{table}.{suffix}").exists():
            (world / f"{table}.{suffix}").rename(world / file_name)
    ds = load_dataset(world)
    assert table in ds.absent
    assert ds.extra["near_files"] == {table: [file_name]}
    assert any(w.startswith(f"{table} is absent, but found {file_name}: ") and "did you mean" in w
               for w in ds.warnings), ds.warnings


def test_loading_never_modifies_the_input_files(world: Path) -> None:
    before = _hashes(world)
    load_dataset(world)
    assert _hashes(world) == before


def test_unknown_columns_are_warned_about_once_per_table_and_dropped(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    frames["accounts"] = frames["accounts"].assign(region="EU", tier=1)
    frames["contracts"] = frames["contracts"].assign(notes="x")
    ds = load_dataset(write_world(frames, tmp_path / "w"))
    assert len(ds.warnings) == 2
    assert ds.warnings[0].startswith("accounts: unknown columns ignored: region, tier")
    assert ds.warnings[1].startswith("contracts: unknown column ignored: notes")
    assert "region" not in ds.accounts.columns and "notes" not in ds.contracts.columns


def test_hostile_account_names_load_unchanged(tmp_path: Path) -> None:
    hostile = [
        'He said "hi", then left',
        "=HYPERLINK(\"http://evil.example\",\"click\")",
        "<script>alert('x')</script> & [bold red]markup[/bold red]",
        "line one\nline two",
        "  Zoë 株式会社 — ünïcödé 🚀  ",
    ]
    frames = tiny_world_frames()
    frames["accounts"] = frames["accounts"].assign(name=hostile)
    for fmt in ("csv", "parquet"):
        directory = write_world(frames, tmp_path / fmt, {"accounts": fmt})
        ds = load_dataset(directory)
        assert ds.accounts["name"].tolist() == hostile, fmt
        result = _run_cli("validate", "--data", str(directory))
        assert result.returncode == 0, result.stderr
    assert dataset_from_frames(frames).accounts["name"].tolist() == hostile


def test_dataset_from_frames_matches_files_and_leaves_inputs_alone(world: Path) -> None:
    frames = tiny_world_frames()
    copies = {name: frame.copy(deep=True) for name, frame in frames.items()}
    ds = dataset_from_frames(frames, source="memory")
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(frame, copies[name])
    assert ds.fingerprint == load_dataset(world).fingerprint
    assert ds.source == "memory"
    # the same world as text (what a CSV reader sees) normalises to the same tables
    as_text = {name: frame.astype(str).replace({"nan": "", "NaT": "", "None": ""}) for name, frame in frames.items()}
    assert dataset_from_frames(as_text).fingerprint == ds.fingerprint


def test_dataset_from_frames_needs_accounts_and_contracts() -> None:
    frames = tiny_world_frames()
    with pytest.raises(DataError, match=r"contracts: required table is missing; pass a frame named contracts"):
        dataset_from_frames({"accounts": frames["accounts"]})


def test_parquet_saved_with_the_key_as_index_still_loads(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    directory = write_world(frames, tmp_path / "w")
    (directory / "contracts.parquet").unlink()
    frames["contracts"].set_index("contract_id").to_parquet(directory / "contracts.parquet")
    ds = load_dataset(directory)
    assert ds.contracts["contract_id"].tolist() == ["C-1", "C-2", "C-3", "C-4", "C-5"]


def test_csv_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    directory = write_world(tiny_world_frames(), tmp_path / "w")
    path = directory / "accounts.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_dataset(directory).accounts["account_id"].iloc[0] == "A-1"


# ---------------------------------------------------------------- summary


def test_summary_counts_the_tiny_world_by_hand(world: Path) -> None:
    summary = summarise(load_dataset(world))
    assert summary["rows"] == {
        "accounts": 5, "contracts": 5, "usage_events": 6, "tickets": 3,
        "surveys": 3, "touchpoints": 3, "invoices": 2, "adjustments": 1,
    }
    assert summary["date_range"] == ("2021-06-01", "2024-04-01")  # A-1 created .. C-5 ends
    assert summary["accounts_without_contracts"] == 1
    assert (summary["contracts_decided"], summary["contracts_open"]) == (3, 2)
    assert (summary["contracts_renewed"], summary["contracts_churned"]) == (2, 1)
    assert summary["renewal_rate"] == pytest.approx(2 / 3)
    console = Console(width=120, record=True)
    console.print(render_summary(summary))
    text = console.export_text()
    assert "renewal rate of decided contracts: 66.7%" in text
    assert "of which 1 without contracts" in text
    assert "optional tables absent: none" in text
    assert summary["terms"] == {"annual": 1.0} and summary["suggested_lead_times_days"] is None
    assert "terms: 100% annual (median 365 days)" in text
    assert "lead times 30, 90, 180 days (timeline.lead_times_days) fit the terms" in text


def test_summary_without_decided_contracts_has_no_rate(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    frames["contracts"] = frames["contracts"].assign(outcome=None)
    summary = summarise(dataset_from_frames({k: frames[k] for k in ("accounts", "contracts")}))
    assert summary["renewal_rate"] is None
    console = Console(width=120, record=True)
    console.print(render_summary(summary))
    assert "n/a (none decided)" in console.export_text()


# ---------------------------------------------------------------- one test per kind of defect

DEFECTS = [
    # (id, table, column, row, value, format, expected message)
    ("date", "contracts", "end_date", 1, "31/12/2023", "csv",
     r"contracts\.end_date: not a date in 1 row \(e\.g\. contract_id C-2: '31/12/2023'\); "
     r"write dates as YYYY-MM-DD"),
    ("date-out-of-span", "invoices", "due_at", 0, "2300-01-01", "csv",
     r"invoices\.due_at: not a date in 1 row \(e\.g\. invoice_id I-1: '2300-01-01'\)"),
    ("timestamp", "tickets", "opened_at", 0, "yesterday", "csv",
     r"tickets\.opened_at: not a timestamp in 1 row \(e\.g\. ticket_id T-1: 'yesterday'\); write timestamps"),
    ("timestamp-keyless", "usage_events", "ts", 2, "2023-02-30 10:00", "csv",
     r"usage_events\.ts: not a timestamp in 1 row \(e\.g\. row 3: '2023-02-30 10:00'\)"),
    ("number", "invoices", "amount", 1, "1,000", "csv",
     r"invoices\.amount: not a number in 1 row \(e\.g\. invoice_id I-2: '1,000'\); write plain numbers"),
    ("credit-note", "invoices", "amount", 1, "-400", "csv",
     r"invoices\.amount: negative in 1 row \(e\.g\. invoice_id I-2: -400\); a negative amount is a credit note"),
    ("number-infinite", "contracts", "arr", 1, "inf", "csv",
     r"contracts\.arr: not a number in 1 row \(e\.g\. contract_id C-2: 'inf'\)"),
    ("integer", "contracts", "seats", 0, "2.5", "csv",
     r"contracts\.seats: not a whole number in 1 row \(e\.g\. contract_id C-1: '2\.5'\); write whole numbers"),
    ("integer-points", "adjustments", "points", 0, 2.5, "parquet",
     r"adjustments\.points: not a whole number in 1 row \(e\.g\. row 1: 2\.5\)"),
    ("empty-required", "contracts", "arr", 2, "", "csv",
     r"contracts\.arr: empty but required in 1 row \(e\.g\. contract_id C-3\); fill in arr"),
    ("empty-id", "usage_events", "user_id", 3, "", "csv",
     r"usage_events\.user_id: empty but required in 1 row \(e\.g\. row 4\)"),
    ("empty-reason", "adjustments", "reason", 0, "   ", "csv",
     r"adjustments\.reason: empty but required in 1 row \(e\.g\. row 1\)"),
    ("duplicate-contract", "contracts", "contract_id", 4, "C-1", "parquet",
     r"contracts\.contract_id: duplicate key in 2 rows \(e\.g\. C-1 \(rows 1, 5\)\); keep one row per contract_id"),
    ("duplicate-account", "accounts", "account_id", 4, "A-2", "csv",
     r"accounts\.account_id: duplicate key in 2 rows \(e\.g\. A-2 \(rows 2, 5\)\)"),
    ("duplicate-ticket", "tickets", "ticket_id", 2, "T-1", "csv", r"tickets\.ticket_id: duplicate key in 2 rows"),
    ("duplicate-invoice", "invoices", "invoice_id", 1, "I-1", "csv", r"invoices\.invoice_id: duplicate key"),
    ("unknown-account", "contracts", "account_id", 2, "A-999", "parquet",
     r"contracts\.account_id: not in accounts in 1 row \(e\.g\. A-999\); add the account or drop the contract"),
    ("unknown-account-surveys", "surveys", "account_id", 0, "A-42", "csv",
     r"surveys\.account_id: not in accounts in 1 row \(e\.g\. A-42\)"),
    ("outcome", "contracts", "outcome", 0, "Renewed", "csv",
     r"contracts\.outcome: not one of renewed, churned in 1 row \(e\.g\. contract_id C-1: 'Renewed'\); "
     r"use renewed or churned"),
    ("priority", "tickets", "priority", 1, "p1", "csv",
     r"tickets\.priority: not one of low, normal, high, urgent in 1 row \(e\.g\. ticket_id T-2: 'p1'\)"),
    ("survey-kind", "surveys", "kind", 1, "ces", "csv",
     r"surveys\.kind: not one of nps, csat in 1 row \(e\.g\. row 2: 'ces'\)"),
    ("arr-negative", "contracts", "arr", 0, -5.0, "parquet",
     r"contracts\.arr: negative in 1 row \(e\.g\. contract_id C-1: -5\); arr is annual recurring revenue"),
    ("seats-negative", "contracts", "seats", 1, "-1", "csv", r"contracts\.seats: negative in 1 row"),
    ("ticket-csat-high", "tickets", "csat", 0, "6", "csv",
     r"tickets\.csat: not between 1 and 5 in 1 row \(e\.g\. ticket_id T-1: 6\)"),
    ("ticket-csat-low", "tickets", "csat", 2, "0.5", "csv", r"tickets\.csat: not between 1 and 5 in 1 row"),
    ("nps-high", "surveys", "score", 0, "11", "csv",
     r"surveys\.score: not between 0 and 10 for kind nps in 1 row \(e\.g\. row 1: 11\)"),
    ("nps-negative", "surveys", "score", 1, "-1", "csv", r"surveys\.score: not between 0 and 10 for kind nps"),
    ("survey-csat-zero", "surveys", "score", 2, "0", "csv",
     r"surveys\.score: not between 1 and 5 for kind csat in 1 row \(e\.g\. row 3: 0\)"),
    ("points-high", "adjustments", "points", 0, "150", "csv",
     r"adjustments\.points: not between -100 and 100 in 1 row"),
    ("points-low", "adjustments", "points", 0, "-101", "csv", r"adjustments\.points: not between -100 and 100"),
    ("contract-zero-length", "contracts", "end_date", 0, "2022-01-01", "csv",
     r"contracts\.end_date: not after start_date in 1 row \(e\.g\. contract_id C-1\); end_date is the renewal"),
    ("contract-reversed", "contracts", "end_date", 2, "2021-06-01", "csv",
     r"contracts\.end_date: not after start_date in 1 row \(e\.g\. contract_id C-3\)"),
    ("ticket-closed-early", "tickets", "closed_at", 0, "2023-03-01 08:59:59", "csv",
     r"tickets\.closed_at: before opened_at in 1 row \(e\.g\. ticket_id T-1\)"),
    ("invoice-due-early", "invoices", "due_at", 0, "2022-12-31", "csv",
     r"invoices\.due_at: before issued_at in 1 row \(e\.g\. invoice_id I-1\)"),
    ("invoice-paid-early", "invoices", "paid_at", 0, "2022-12-31", "csv",
     r"invoices\.paid_at: before issued_at in 1 row \(e\.g\. invoice_id I-1\)"),
]


@pytest.mark.parametrize(
    ("table", "column", "row", "value", "fmt", "match"),
    [pytest.param(*case[1:], id=case[0]) for case in DEFECTS],
)
def test_each_kind_of_defect_is_named(
    tmp_path: Path, table: str, column: str, row: int, value: object, fmt: str, match: str
) -> None:
    directory = _plant(tmp_path, table, column, row, value, fmt)
    with pytest.raises(DataError, match=match) as info:
        load_dataset(directory)
    assert len(info.value.problems) == 1, str(info.value)
    problem = info.value.problems[0]
    assert (problem.table, problem.column, problem.count) == (table, column, 2 if "duplicate" in match else 1)
    assert problem.fix


def test_equal_bounds_are_fine_where_ties_are_allowed(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    frames["tickets"].loc[0, "closed_at"] = frames["tickets"].loc[0, "opened_at"]
    frames["invoices"].loc[0, "due_at"] = frames["invoices"].loc[0, "issued_at"]
    frames["invoices"].loc[0, "paid_at"] = frames["invoices"].loc[0, "issued_at"]
    frames["surveys"].loc[0, "score"] = 0.0  # nps starts at 0
    frames["adjustments"].loc[0, "points"] = -100.0
    load_dataset(write_world(frames, tmp_path / "w"))


def test_missing_required_column(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    frames["contracts"] = frames["contracts"].drop(columns=["arr"])
    with pytest.raises(DataError, match=r"contracts\.arr: required column is missing; add a column named arr "
                                        r"\(columns found: contract_id, account_id, start_date"):
        load_dataset(write_world(frames, tmp_path / "w"))


def test_missing_optional_column_is_filled_empty(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    frames["contracts"] = frames["contracts"].drop(columns=["seats", "outcome"])
    ds = load_dataset(write_world(frames, tmp_path / "w"))
    assert ds.contracts["seats"].isna().all() and ds.contracts["seats"].dtype == "float64"
    assert ds.contracts["outcome"].isna().all() and ds.contracts["outcome"].dtype == "string"


def test_semicolon_csv_gets_a_hint(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    directory = write_world(frames, tmp_path / "w")
    frames["accounts"].to_csv(directory / "accounts.csv", index=False, sep=";")
    # the comma in "Zoë's Café, Ltd." makes the parser stumble: it is told to look at the separator
    with pytest.raises(DataError, match=r"accounts: accounts\.csv cannot be read as CSV .*another separator"):
        load_dataset(directory)
    frames["accounts"].assign(name="plain").to_csv(directory / "accounts.csv", index=False, sep=";")
    with pytest.raises(DataError, match=r"accounts\.account_id: required column is missing;.*another separator"):
        load_dataset(directory)


@pytest.mark.parametrize("missing", ["accounts", "contracts"])
def test_missing_required_table_names_the_file(tmp_path: Path, missing: str) -> None:
    frames = tiny_world_frames()
    del frames[missing]
    with pytest.raises(DataError, match=rf"{missing}: required table is missing: expected {missing}\.csv or "
                                        rf"{missing}\.parquet"):
        load_dataset(write_world(frames, tmp_path / "w"))


def test_missing_table_with_wrong_case_gets_a_hint(tmp_path: Path) -> None:
    directory = write_world(tiny_world_frames(), tmp_path / "w")
    (directory / "accounts.csv").rename(directory / "Accounts.csv")
    with pytest.raises(DataError, match=r"found Accounts\.csv: file names are case-sensitive"):
        load_dataset(directory)


def test_both_formats_of_one_table(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    directory = write_world(frames, tmp_path / "w")
    frames["tickets"].to_parquet(directory / "tickets.parquet", index=False)
    with pytest.raises(DataError, match=r"tickets: found both tickets\.csv and tickets\.parquet; keep one"):
        load_dataset(directory)


def test_required_table_without_rows(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    frames["contracts"] = frames["contracts"].iloc[:0]
    with pytest.raises(DataError, match=r"contracts: has no rows"):
        load_dataset(write_world(frames, tmp_path / "w"))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        pytest.param(b"", r"accounts: accounts\.csv is empty: it needs at least a header row", id="empty"),
        pytest.param("account_id,name\nA-1,Café\n".encode("latin-1"), r"accounts\.csv is not UTF-8", id="latin-1"),
    ],
)
def test_unreadable_csv(tmp_path: Path, content: bytes, match: str) -> None:
    directory = write_world(tiny_world_frames(), tmp_path / "w")
    (directory / "accounts.csv").write_bytes(content)
    with pytest.raises(DataError, match=match):
        load_dataset(directory)


def test_unreadable_parquet(tmp_path: Path) -> None:
    directory = write_world(tiny_world_frames(), tmp_path / "w")
    (directory / "contracts.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"contracts: contracts\.parquet cannot be read as Parquet"):
        load_dataset(directory)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist; pass --data the directory"):
        load_dataset(tmp_path / "nowhere")


def test_count_is_every_bad_row_and_examples_stop_at_five(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    events = pd.DataFrame({
        "account_id": ["A-1"] * 9,
        "user_id": [f"u{i}" for i in range(9)],
        "ts": ["2023-01-0{}".format(i + 1) if i % 4 == 0 else f"01/0{i + 1}/2023" for i in range(9)],
        "feature": ["login"] * 9,
    })
    frames["usage_events"] = events  # rows 2, 3, 4, 6, 7, 8 are US-style dates: 6 bad rows
    with pytest.raises(DataError) as info:
        dataset_from_frames(frames)
    (problem,) = info.value.problems
    assert problem.count == 6
    assert problem.examples == [
        "row 2: '01/02/2023'", "row 3: '01/03/2023'", "row 4: '01/04/2023'",
        "row 6: '01/06/2023'", "row 7: '01/07/2023'",
    ]


def test_several_defects_in_different_tables_make_one_error(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    frames["accounts"] = frames["accounts"].astype(object)
    frames["accounts"].loc[4, "account_id"] = "A-1"  # duplicate key
    frames["contracts"] = frames["contracts"].astype(object)
    frames["contracts"].loc[2, "account_id"] = "A-999"  # unknown account
    frames["contracts"].loc[3, "end_date"] = "2022-02-01"  # before its start (2022-03-01)
    frames["tickets"] = frames["tickets"].drop(columns=["opened_at"])  # missing required column
    frames["surveys"] = frames["surveys"].astype(object)
    frames["surveys"].loc[0, "score"] = 12  # nps out of range
    frames["adjustments"] = frames["adjustments"].assign(reason="")  # empty reason
    with pytest.raises(DataError) as info:
        load_dataset(write_world(frames, tmp_path / "w", {"contracts": "csv", "adjustments": "csv"}))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'w'} has 6 problems in accounts, adjustments, contracts, surveys, tickets:")
    for where in ("accounts.account_id", "contracts.account_id", "contracts.end_date", "tickets.opened_at",
                  "surveys.score", "adjustments.reason"):
        assert f"  - {where}: " in message, where
    assert message.count("\n") == 6  # one line per problem, under the heading


def test_untrusted_values_in_messages_stay_on_one_line(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    frames["contracts"] = frames["contracts"].astype(object)
    hostile = "=cmd|' /C calc'!A0\n[red]boom"
    frames["contracts"].loc[0, "account_id"] = hostile
    with pytest.raises(DataError) as info:
        load_dataset(write_world(frames, tmp_path / "w", {"contracts": "csv"}))
    assert str(info.value).count("\n") == 1
    # quoted and escaped as Python would: the newline shows as \n, the quotes cannot end the example
    assert f"(e.g. {hostile!r})" in str(info.value)


# ---------------------------------------------------------------- the command line


def test_cli_validate_prints_the_summary(world: Path) -> None:
    before = _hashes(world)
    result = _run_cli("validate", "--data", str(world))
    assert result.returncode == 0, result.stderr
    assert "renewal rate of decided contracts: 66.7%" in result.stdout
    assert "accounts: 5, of which 1 without contracts" in result.stdout
    assert "contracts: 5 — 3 decided (2 renewed, 1 churned), 2 open" in result.stdout
    assert _hashes(world) == before


def test_cli_validate_prints_warnings(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    frames["accounts"] = frames["accounts"].assign(region="EU")
    result = _run_cli("validate", "--data", str(write_world(frames, tmp_path / "w")))
    assert result.returncode == 0, result.stderr
    assert "warning: accounts: unknown column ignored: region" in result.stderr


def test_cli_warning_about_a_column_named_like_markup_does_not_crash(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    frames["accounts"] = frames["accounts"].assign(**{"[/oops]": 1})
    result = _run_cli("validate", "--data", str(write_world(frames, tmp_path / "w")))
    assert "Traceback" not in result.stderr
    assert "[/oops]" in result.stderr


def test_windows_line_endings_load(tmp_path: Path) -> None:
    directory = write_world(tiny_world_frames(), tmp_path / "w", ALL_CSV)
    for path in directory.glob("*.csv"):
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert load_dataset(directory).fingerprint == dataset_from_frames(tiny_world_frames()).fingerprint


def test_cli_validate_bad_data_exits_2_without_traceback(tmp_path: Path) -> None:
    directory = _plant(tmp_path, "contracts", "account_id", 2, "A-999")
    before = _hashes(directory)
    result = _run_cli("validate", "--data", str(directory))
    assert result.returncode == 2
    assert "contracts.account_id: not in accounts in 1 row (e.g. A-999); add the account or drop the contract" \
        in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert _hashes(directory) == before


def test_cli_validate_missing_directory_exits_2(tmp_path: Path) -> None:
    result = _run_cli("validate", "--data", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_help() -> None:
    result = _run_cli("validate", "--help")
    assert result.returncode == 0
    assert "--data" in result.stdout


def test_summary_says_where_each_event_table_ends(world: Path) -> None:
    """Counted by hand from the tiny world: the last record of each table (closed/paid dates count too)."""
    summary = summarise(load_dataset(world))
    assert summary["data_ends"] == {
        "usage_events": "2023-05-02T11:00:00", "tickets": "2023-03-02T10:00:00", "surveys": "2023-04-01T09:30:00",
        "touchpoints": "2023-05-10T14:00:00", "invoices": "2023-01-20", "adjustments": "2023-03-01T12:00:00",
    }
    assert summary["contract_dates"] == {"first_start": "2022-01-01", "last_start": "2023-04-01",
                                         "last_end": "2024-04-01"}
    # invoices end 110 days before touchpoints, tickets 69, adjustments 70, surveys 39; usage only 8
    assert [w.split(" ends ")[0] for w in summary["uneven_ends"]] == ["tickets", "surveys", "invoices",
                                                                        "adjustments"]
    console = Console(width=200, record=True)
    console.print(render_summary(summary))
    text = console.export_text()
    assert "event data ends: 2023-05-10T14:00:00 (latest table)" in text
    assert "renewal dates to 2024-04-01" in text  # contract ends are not where the data ends
    assert "warning: surveys ends 2023-04-01T09:30:00, 39 days before touchpoints (2023-05-10T14:00:00)" in text


def test_a_usage_feed_that_stopped_is_warned_about(tmp_path: Path) -> None:
    frames = tiny_world_frames()
    frames["usage_events"] = frames["usage_events"].iloc[:1]  # ends 2023-02-01, 98 days before touchpoints
    frames["tickets"] = frames["tickets"].assign(opened_at=pd.to_datetime("2023-05-09"), closed_at=pd.NaT)
    summary = summarise(load_dataset(write_world(frames, tmp_path / "w")))
    assert any(w.startswith("usage_events ends 2023-02-01T09:15:00, 98 days before touchpoints")
               for w in summary["uneven_ends"])


def test_cli_validate_warns_about_config_values_the_data_never_has(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("features:\n  key_features: [no_such_feature]\n", encoding="utf-8")
    world = write_world(tiny_world_frames(), tmp_path / "w")
    result = _run_cli("validate", "--data", str(world), "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "features.key_features names 1 product feature(s) that no usage event carries: 'no_such_feature'" \
        in " ".join(result.stderr.split())
