"""Writing tables: atomic replacement, deterministic bytes, and CSV cells a spreadsheet will not run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from healthscore.io import neutralise_csv_cells, write_table_atomic
from healthscore.io import write as write_module

RISKY = ["=1+1", "+33 1 23", "-cmd", "@SUM(A1)", "\tTAB", "\rCR"]


def _scores() -> pd.DataFrame:
    return pd.DataFrame({
        "account_id": pd.Series(["A-1", "A-2", "A-3", "A-4", "A-5", "A-6", "A-7"], dtype="string"),
        "name": pd.Series([*RISKY, None], dtype="string"),
        "note": ["ok", "=HYPERLINK(\"http://x\")", None, "fine", "-", "a=b", "'=already"],
        "delta": [-5.0, 3.0, np.nan, -0.5, 0.0, 12.0, -100.0],
        "points": [-10, 0, 5, -1, 2, 3, 4],
        "as_of": pd.to_datetime(["2024-01-31"] * 7),
    })


def test_neutralise_prefixes_risky_text_only() -> None:
    frame = _scores()
    before = frame.copy(deep=True)
    out = neutralise_csv_cells(frame)
    pd.testing.assert_frame_equal(frame, before)  # the input is untouched
    assert out["name"].tolist()[:6] == [f"'{v}" for v in RISKY]
    assert pd.isna(out["name"].iloc[6])
    assert out["note"].tolist()[:2] == ["ok", "'=HYPERLINK(\"http://x\")"]
    assert pd.isna(out["note"].iloc[2])
    # "-" alone starts with a minus too; "a=b" and an already quoted cell are left alone
    assert out["note"].tolist()[3:] == ["fine", "'-", "a=b", "'=already"]
    # numbers, negative ones included, are not text
    pd.testing.assert_series_equal(out["delta"], frame["delta"])
    pd.testing.assert_series_equal(out["points"], frame["points"])
    pd.testing.assert_series_equal(out["as_of"], frame["as_of"])
    assert out["name"].dtype == frame["name"].dtype


def test_neutralise_handles_object_columns_with_numbers_and_categories() -> None:
    frame = pd.DataFrame({
        "mixed": pd.Series([-3, "-3", "=x", None], dtype=object),
        "band": pd.Categorical(["healthy", "=watch", "at_risk", "healthy"]),
    })
    out = neutralise_csv_cells(frame)
    assert out["mixed"].tolist()[:3] == [-3, "'-3", "'=x"]
    assert out["band"].tolist() == ["healthy", "'=watch", "at_risk", "healthy"]


def test_csv_is_neutralised_and_parquet_keeps_values(tmp_path) -> None:
    frame = _scores()
    write_table_atomic(frame, tmp_path / "scores.csv")
    write_table_atomic(frame, tmp_path / "scores.parquet")
    text = (tmp_path / "scores.csv").read_text(encoding="utf-8")
    assert "'=1+1" in text and "'@SUM(A1)" in text
    back = pd.read_csv(tmp_path / "scores.csv")
    assert back["delta"].iloc[0] == -5.0 and back["points"].iloc[0] == -10  # negatives stay numbers
    parquet = pd.read_parquet(tmp_path / "scores.parquet")
    pd.testing.assert_frame_equal(parquet, frame, check_dtype=False)
    assert parquet["name"].tolist()[:6] == RISKY


def test_line_breaks_inside_text_survive_a_csv_round_trip(tmp_path) -> None:
    names = ["cr\rinside", "lf\ninside", "crlf\r\ninside", 'quote " and, comma']
    frame = pd.DataFrame({"account_id": ["A-1", "A-2", "A-3", "A-4"], "name": names, "delta": [-1.0] * 4})
    path = write_table_atomic(frame, tmp_path / "scores.csv")
    back = pd.read_csv(path)
    assert back["name"].tolist() == names
    assert back["delta"].tolist() == [-1.0] * 4


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_rewrites_are_byte_identical(tmp_path, suffix: str) -> None:
    first = write_table_atomic(_scores(), tmp_path / f"a{suffix}")
    second = write_table_atomic(_scores(), tmp_path / f"b{suffix}")
    again = write_table_atomic(_scores(), tmp_path / f"a{suffix}")
    assert first.read_bytes() == second.read_bytes() == again.read_bytes()


def test_parquet_has_no_index_column(tmp_path) -> None:
    import pyarrow.parquet as pq

    frame = _scores().set_axis(range(10, 17))  # a non-default index must not be written
    path = write_table_atomic(frame, tmp_path / "scores.parquet")
    assert pq.read_schema(path).names == list(frame.columns)


@pytest.mark.parametrize(("suffix", "writer"), [(".parquet", "_write_parquet"), (".csv", "_write_csv")])
def test_a_crash_midway_leaves_the_old_file_intact(tmp_path, monkeypatch, suffix: str, writer: str) -> None:
    path = write_table_atomic(_scores(), tmp_path / f"scores{suffix}")
    old = path.read_bytes()

    def crash(df, handle):
        handle.write(b"half a file" if "b" in getattr(handle, "mode", "") else "half a file")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(write_module, writer, crash)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_table_atomic(_scores().iloc[:2], path)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


@pytest.mark.parametrize("proc", [True, False], ids=["umask-from-proc", "no-proc"])
def test_new_file_gets_ordinary_permissions(tmp_path, monkeypatch, proc) -> None:
    """0666 less the umask (027 here: 0640, not mkstemp's private 0600), for a file written whole and a
    streamed one (score's explanations.parquet was private, unreadable by another user), with the stream's
    own thread or without; also where there is no /proc to read the umask from (macOS)."""
    import builtins
    import os

    import pyarrow as pa

    from healthscore.io.write import ParquetStream

    if not proc:
        def no_proc(file, *args, **kwargs):
            if str(file).startswith("/proc/"):
                raise FileNotFoundError(2, "No such file or directory", str(file))
            return builtins.open(file, *args, **kwargs)

        monkeypatch.setattr(write_module, "open", no_proc, raising=False)
    old = os.umask(0o027)
    try:
        assert write_module.process_umask() == 0o027
        path = write_table_atomic(_scores(), tmp_path / "out" / "scores.csv")
        table = pa.Table.from_pandas(_scores(), preserve_index=False)
        streamed = []
        for background in (False, True):
            stream = ParquetStream(tmp_path / "out" / f"explanations-{background}.parquet", table.schema,
                                   background=background)
            stream.write(table)
            streamed.append(stream.close())
    finally:
        os.umask(old)
    assert [p.stat().st_mode & 0o777 for p in (path, *streamed)] == [0o640, 0o640, 0o640]


def test_unknown_extension_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"scores\.xlsx: the file name must end in \.parquet or \.csv"):
        write_table_atomic(_scores(), tmp_path / "scores.xlsx")


def test_parquet_stream_writes_the_bytes_of_the_whole_frame_whatever_the_slices(tmp_path, monkeypatch):
    import pyarrow as pa

    from healthscore.io import write as write_module
    from healthscore.io.write import ParquetStream, write_table_atomic

    monkeypatch.setattr(write_module, "ROW_GROUP_ROWS", 100)
    rng = np.random.default_rng(0)
    n = 350
    df = pd.DataFrame({"text": pa.chunked_array([pa.array([f"a{i}" for i in range(n)], pa.large_string())])
                       .to_pandas(), "x": rng.normal(size=n)})
    whole = write_table_atomic(df, tmp_path / "whole.parquet").read_bytes()
    table = pa.Table.from_pandas(df, preserve_index=False)
    for step in (1, 33, 100, 1000):
        for background in (False, True):  # row groups written here, or on the stream's own thread
            path = tmp_path / f"s{step}-{background}.parquet"
            stream = ParquetStream(path, table.schema, background=background)
            for a in range(0, n, step):
                stream.write(table.slice(a, step))
                assert not path.exists()  # nothing appears before close
            assert stream.close().read_bytes() == whole
    # an error inside the block removes the temporary file and leaves nothing at the path
    with pytest.raises(RuntimeError):
        with ParquetStream(tmp_path / "broken.parquet", table.schema) as stream:
            stream.write(table.slice(0, 10))
            raise RuntimeError("killed")
    assert not (tmp_path / "broken.parquet").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_background_write_is_raised_and_leaves_nothing(tmp_path, monkeypatch):
    import errno
    import os

    import pyarrow as pa

    from healthscore.io import write as write_module
    from healthscore.io.write import ParquetStream

    monkeypatch.setattr(write_module, "ROW_GROUP_ROWS", 10)
    real = write_module._write_row_groups
    calls = []

    def full_disk(writer, table):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(writer, table)

    monkeypatch.setattr(write_module, "_write_row_groups", full_disk)
    table = pa.table({"x": list(range(100))})
    stream = ParquetStream(tmp_path / "e.parquet", table.schema, background=True)
    with pytest.raises(OSError, match="No space left"):
        for a in range(0, 100, 10):  # the second row group fails on the thread: a later write or close says so
            stream.write(table.slice(a, 10))
        stream.close()
    stream.abort()
    assert not (tmp_path / "e.parquet").exists() and not list(tmp_path.glob(".*.tmp"))


# -- the CSV text built with Arrow is pandas' to_csv, byte for byte ----------------------------------------
TRICKY_TEXT = ["plain", "", " lead", "trail ", "a,b", 'say "hi"', "two\nlines", "cr\rhere", "crlf\r\n", "=1+1",
               "=a,b", '-"q"', "@x", "\tTAB", "\rCR", "+1", "'=quoted", "é ü 日本", "🙂", ",", '"', "None", "nan"]


def _pandas_bytes(frame: pd.DataFrame) -> bytes:
    return neutralise_csv_cells(frame).to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def _arrow_bytes(frame: pd.DataFrame, step_rows: int) -> bytes | None:
    steps = write_module.csv_text_steps(frame, step_rows=step_rows)
    return None if steps is None else b"".join(steps)


def _mixed_frame(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    floats = np.concatenate([[0.0, -0.0, np.inf, -np.inf, np.nan, 1e16, 1e-4, 9.999e-5, 0.1 + 0.2, 5e-324, 3.0],
                             rng.normal(size=n) * 10.0 ** rng.integers(-8, 20, n)])[:n]
    text = rng.choice(np.array(TRICKY_TEXT, dtype=object), n)
    missing = rng.random(n) < 0.2
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(-40_000, 40_000, n), unit="D")
    return pd.DataFrame({
        "f": floats, "i": rng.integers(-10 ** 12, 10 ** 12, n), "b": rng.random(n) < 0.5,
        "obj": np.where(missing, None, text), "obj_nan": np.where(missing, np.nan, text),
        "s": pd.Series(np.where(missing, None, text), dtype="string"),
        "s_py": pd.Series(np.where(missing, None, text), dtype=pd.StringDtype("python")),
        "day": pd.Series(days.where(~missing)), "day_ms": pd.Series(days).astype("datetime64[ms]"),
        "all_none": pd.Series([None] * n, dtype=object), 'odd, "name"': floats[::-1].copy(),
        # pandas holds a concatenated text column as several Arrow chunks
        "chunked": pd.concat([pd.Series(text[: n // 2], dtype="str"), pd.Series(text[n // 2:], dtype="str")],
                             ignore_index=True),
    })


@pytest.mark.parametrize(("seed", "n", "step_rows"), [(0, 500, 7), (1, 2_000, 65_536), (2, 1, 1), (3, 64, 64)])
def test_arrow_csv_text_is_pandas_to_csv_byte_for_byte(seed, n, step_rows):
    frame = _mixed_frame(seed, n)
    got = _arrow_bytes(frame, step_rows)
    assert got is not None  # every column kind above is written by the Arrow route
    assert got == _pandas_bytes(frame)


@pytest.mark.parametrize("column", [
    pd.Series([1.5, 2.5], dtype="float32"),  # float32 text is shorter than float64's
    pd.Series(pd.to_datetime(["2024-01-01 10:30", "2024-01-02 00:00"])),  # not dates only: pandas writes the times
    pd.Series(pd.to_datetime(["2024-01-01", "2024-01-02"]).tz_localize("UTC")),
    pd.Series(["a", 1], dtype=object),  # a number among text
    pd.Series(["a", "b"], dtype="category"),
    pd.Series([1, None], dtype="Int64"),
    pd.Series(pd.to_timedelta([1, 2], unit="D")),
], ids=["float32", "times", "tz", "mixed-object", "category", "nullable-int", "timedelta"])
def test_columns_the_arrow_route_does_not_write_are_left_to_pandas(column, tmp_path):
    frame = pd.DataFrame({"account_id": ["A-1", "A-2"], "x": column})
    assert _arrow_bytes(frame, 10) is None
    path = write_table_atomic(frame, tmp_path / "t.csv")  # and the file is pandas' own
    assert path.read_bytes() == _pandas_bytes(frame)


def test_a_csv_file_is_the_same_bytes_either_way(tmp_path, monkeypatch):
    frame = _mixed_frame(4, 300)
    fast = write_table_atomic(frame, tmp_path / "fast.csv").read_bytes()
    monkeypatch.setattr(write_module, "csv_text_steps", lambda df, step_rows=0: None)
    assert write_table_atomic(frame, tmp_path / "pandas.csv").read_bytes() == fast
