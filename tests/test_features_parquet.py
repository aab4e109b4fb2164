"""build_features(..., usage_events_parquet=...) — DuckDB scanning the event file — equals the pandas route."""

from __future__ import annotations

from datetime import date

import pandas as pd

from healthscore.config import Config
from healthscore.features import build_features, resolve_key_features
from healthscore.io import load_dataset
from healthscore.simulate import SimulationSpec, simulate, write_world
from healthscore.timeline import scoring_rows


def test_events_from_parquet_give_the_same_features(tmp_path):
    write_world(simulate(SimulationSpec(accounts=40, seed=3, start=date(2022, 1, 1), months=24)), tmp_path)
    ds = load_dataset(tmp_path)
    rows = pd.concat([scoring_rows(ds, date(2023, 3, 1)), scoring_rows(ds, date(2023, 11, 1))], ignore_index=True)
    rows = rows.sample(frac=1.0, random_state=7)  # row order must not matter
    expected = build_features(ds, rows)
    without_events = ds.__class__(**{**ds.__dict__, "usage_events": None})
    got = build_features(without_events, rows, usage_events_parquet=tmp_path / "usage_events.parquet")
    pd.testing.assert_frame_equal(got, expected)
    capped = build_features(without_events, rows, usage_events_parquet=tmp_path / "usage_events.parquet",
                            memory_limit="512MB")
    pd.testing.assert_frame_equal(capped, expected)
    assert expected["active_users_30d"].gt(0).sum() > 10  # the usage features carry values
    before = ds.usage_events.copy()
    build_features(ds, rows, usage_events_parquet=tmp_path / "usage_events.parquet")
    pd.testing.assert_frame_equal(ds.usage_events, before)  # inputs untouched


def test_the_engine_memory_is_what_the_process_does_not_hold_of_the_budget(monkeypatch):
    from healthscore.features import _build

    gib = 2 ** 30
    monkeypatch.setattr(_build, "_resident_bytes", lambda: gib // 2)
    assert _build.default_memory_limit() == f"{(_build.MEMORY_BUDGET_BYTES - gib // 2) // 2 ** 20}MiB"
    monkeypatch.setattr(_build, "_resident_bytes", lambda: _build.MEMORY_BUDGET_BYTES)  # already at the budget
    assert _build.default_memory_limit() == "1024MiB"
    monkeypatch.setattr(_build, "_resident_bytes", lambda: None)  # not Linux
    assert _build.default_memory_limit() == _build.DEFAULT_MEMORY_LIMIT
    monkeypatch.undo()
    held = _build._resident_bytes()
    assert held is None or 10 * 2 ** 20 < held < _build.MEMORY_BUDGET_BYTES  # this test process, read for real


def test_one_observation_day_narrows_the_tables_not_the_features(tmp_path):
    """Scoring as of one date builds narrower tables (``Window.one_day``); a simulated world's features are
    the same as with the general tables, at a date in its first months and one two years in."""
    write_world(simulate(SimulationSpec(accounts=60, seed=5, start=date(2021, 1, 1), months=40)), tmp_path)
    ds = load_dataset(tmp_path)
    for day in (date(2021, 3, 1), date(2023, 1, 1)):
        rows = scoring_rows(ds, day)
        cfg = resolve_key_features(ds, Config().features, cutoff=day)
        narrowed = build_features(ds, rows, config=cfg)
        pd.testing.assert_frame_equal(narrowed, build_features(ds, rows, config=cfg, one_day_tables=False))
        assert narrowed["active_users_30d"].gt(0).sum() >= 5  # the usage features carry values
