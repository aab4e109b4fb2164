"""One complete batch of a ``score`` output folder, read once for the site and the shared reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from healthscore.errors import HealthscoreError
from healthscore.io.output import read_tables
from healthscore.scoring import SCORE_COLUMNS


class SiteError(HealthscoreError):
    """The scores folder holds no batch to build a site from, or the site folder cannot be written."""


# ---- reading the batch ------------------------------------------------------------------------------------

@dataclass
class SiteBatch:
    """The tables of one complete batch (the current one of a score output folder)."""

    root: Path
    manifest: dict | None
    scores: pd.DataFrame
    history: pd.DataFrame | None
    explanations: pd.DataFrame | None
    portfolio: pd.DataFrame | None

    @property
    def as_of(self) -> str:
        if len(self.scores) and pd.notna(self.scores["as_of"].iloc[0]):
            return pd.Timestamp(self.scores["as_of"].iloc[0]).date().isoformat()
        return str((self.manifest or {}).get("as_of") or "")

    @property
    def name(self) -> str:
        return str((self.manifest or {}).get("batch") or self.root.name)


def read_batch(scores_dir: str | Path) -> SiteBatch:
    """The current batch of a ``score`` output folder (or one batch folder), every file checked (CONTRACT §6)."""
    d = Path(scores_dir)
    if not d.is_dir():
        raise SiteError(f"{d} does not exist or is not a folder: point --scores at the output folder of "
                        "`healthscore score --out DIR` (it holds current/, scores.parquet and history.parquet)")
    batch, tables = read_tables(d, ("scores.parquet", "history.parquet", "explanations.parquet", "portfolio.csv"))
    if batch is None or tables["scores.parquet"] is None:
        raise SiteError(f"{d} holds no complete score batch (no current batch with scores.parquet): run "
                        f"`healthscore score --data DATA --as-of DATE --out {d}` first, or point --scores at the "
                        "output folder of a score run")
    scores = tables["scores.parquet"].sort_values("account_id", kind="stable").reset_index(drop=True)
    scores["account_id"] = scores["account_id"].astype(str)
    for column in SCORE_COLUMNS:  # a batch of `score --table` has no contracts, CSMs or plays: empty columns
        if column not in scores:
            scores[column] = pd.Series(pd.NaT if column in ("as_of", "renewal_date") else None, index=scores.index,
                                       dtype="datetime64[ns]" if column in ("as_of", "renewal_date") else object)
    return SiteBatch(batch.root, batch.manifest, scores, tables["history.parquet"], tables["explanations.parquet"],
                     tables["portfolio.csv"])
