"""`healthscore features`: one row per account, components in metadata, and deaf to records at or after as_of
(end to end on a small simulated world); the generated catalogue is in sync with the code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from healthscore.cli import app
from healthscore.config import FeaturesConfig
from healthscore.errors import ConfigError
from healthscore.features import feature_components, learn_key_features, raw_feature_names, write_features
from healthscore.features.catalogue import main as catalogue_main
from healthscore.features.catalogue import render_catalogue
from healthscore.io import load_dataset
from healthscore.simulate import SimulationSpec, write_world

AS_OF = "2023-03-01"
STAMPS = {"usage_events": ["ts"], "tickets": ["opened_at", "closed_at"], "surveys": ["responded_at"],
          "touchpoints": ["ts"], "invoices": ["issued_at", "due_at", "paid_at"]}
IDS = {"tickets": "ticket_id", "invoices": "invoice_id"}


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(SimulationSpec(accounts=30, seed=11, months=18), out)
    return out


def run_features(data: Path, out: Path) -> pd.DataFrame:
    result = CliRunner().invoke(app, ["features", "--data", str(data), "--as-of", AS_OF, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)


def test_features_command_writes_one_row_per_account_with_components(world_dir, tmp_path):
    frame = run_features(world_dir, tmp_path / "f.parquet")
    accounts = pd.read_parquet(world_dir / "accounts.parquet")
    assert sorted(frame["account_id"]) == sorted(accounts["account_id"]) and frame["account_id"].is_unique
    meta = pq.read_schema(tmp_path / "f.parquet").metadata
    # no key features configured: learned from the events before --as-of, as train would, and named
    key_features = json.loads(meta[b"healthscore.key_features"])
    ds = load_dataset(world_dir)
    assert key_features == list(learn_key_features(ds, cutoff=pd.Timestamp(AS_OF).date(),
                                                   top_k=FeaturesConfig().key_features_top_k))
    vocab = FeaturesConfig(key_features=tuple(key_features))
    assert list(frame.columns) == ["account_id", "as_of", "status", "contract_id", *raw_feature_names(vocab)]
    assert frame["feature_breadth_90d"].notna().any()
    assert set(frame["status"]) == {"scored", "no_active_contract"}
    components = json.loads(meta[b"healthscore.components"])
    assert components == {n: c for n, c in feature_components(vocab).items() if n in raw_feature_names(vocab)}
    assert meta[b"healthscore.as_of"] == AS_OF.encode()
    sidecar = json.loads((tmp_path / "f.parquet.components.json").read_text(encoding="utf-8"))
    assert sidecar == components


def test_csv_output_has_the_same_rows(world_dir, tmp_path):
    parquet = run_features(world_dir, tmp_path / "f.parquet")
    csv = run_features(world_dir, tmp_path / "f.csv")
    assert (tmp_path / "f.csv.components.json").exists()
    assert csv["account_id"].tolist() == parquet["account_id"].tolist()
    np.testing.assert_allclose(csv["tickets_90d"], parquet["tickets_90d"])


def test_other_extensions_are_refused(world_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"--out must end in \.parquet or \.csv, found f\.xlsx"):
        write_features(load_dataset(world_dir), pd.Timestamp(AS_OF).date(), tmp_path / "f.xlsx")


def _future_copy(frame: pd.DataFrame, table: str, rng: np.random.Generator) -> pd.DataFrame:
    """The first rows of ``frame`` again, stamped at or after as_of (one exactly at it), with new ids."""
    extra = frame.head(20).copy()
    as_of = pd.Timestamp(AS_OF)
    offsets = pd.to_timedelta(rng.integers(0, 40 * 86400, len(extra)), unit="s")
    offsets = offsets.where(np.arange(len(extra)) != 0, pd.Timedelta(0))  # one exactly at as_of
    for i, column in enumerate(STAMPS[table]):
        stamp = as_of + offsets + pd.Timedelta(days=3 * i)  # keeps opened <= closed, issued <= due <= paid
        extra[column] = (stamp.normalize() if table == "invoices" else stamp).to_numpy()
    if table in IDS:
        extra[IDS[table]] = "future-" + extra[IDS[table]].astype(str)
    return pd.concat([frame, extra], ignore_index=True)


def test_records_at_or_after_as_of_do_not_change_the_output(world_dir, tmp_path):
    before = run_features(world_dir, tmp_path / "before.parquet")
    changed = tmp_path / "changed"
    changed.mkdir()
    rng = np.random.default_rng(5)
    for path in world_dir.glob("*.parquet"):
        frame = pd.read_parquet(path)
        name = path.stem
        if name in STAMPS:
            frame = _future_copy(frame, name, rng)
        elif name == "contracts":
            # every contract not over before as_of changes its outcome (the ones being scored included)
            open_ = pd.to_datetime(frame["end_date"]) >= pd.Timestamp(AS_OF)
            frame.loc[open_, "outcome"] = frame.loc[open_, "outcome"].map(
                {"renewed": "churned", "churned": "renewed"}).fillna("churned")
            later = frame.head(5).copy()
            later["contract_id"] = "future-" + later["contract_id"].astype(str)
            later["start_date"] = pd.Timestamp(AS_OF) + pd.Timedelta(days=1)
            later["end_date"] = pd.Timestamp(AS_OF) + pd.Timedelta(days=366)
            frame = pd.concat([frame, later], ignore_index=True)
        frame.sample(frac=1.0, random_state=1).to_parquet(changed / path.name, index=False)
    after = run_features(changed, tmp_path / "after.parquet")
    pd.testing.assert_frame_equal(after, before)


def test_catalogue_is_generated_from_the_code_and_in_sync():
    docs = Path(__file__).resolve().parents[1] / "docs" / "features.md"
    assert docs.read_text(encoding="utf-8") == render_catalogue(), "run python -m healthscore.features.catalogue"
    for name in raw_feature_names():
        assert f"`{name}`" in render_catalogue()
    assert catalogue_main(["--check", str(docs)]) == 0


def test_catalogue_check_fails_when_out_of_date(tmp_path, capsys):
    stale = tmp_path / "features.md"
    stale.write_text("# old\n", encoding="utf-8")
    assert catalogue_main(["--check", str(stale)]) == 1
    assert "is out of date: run python -m healthscore.features.catalogue" in capsys.readouterr().err
