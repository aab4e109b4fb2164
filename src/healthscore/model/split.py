"""Time-ordered splits: by renewal date, never at random; all rows of one contract in one part."""

from __future__ import annotations

import numpy as np
import pandas as pd

from healthscore.config import SplitConfig
from healthscore.errors import HealthscoreError

PARTS = ("train", "calibration", "test")


def split_by_renewal_date(rows: pd.DataFrame, shares: SplitConfig, *, min_contracts: int = 20) -> pd.Series:
    """Label each training row ``train``, ``calibration`` or ``test`` by its contract's renewal date.

    The renewal-date range [first, last] is cut at the configured shares of its *time span* (oldest part
    trains, newest tests). Rows are split by ``renewal_date``, so every observation of one contract lands in
    the same part. Raises when a part would hold fewer than ``min_contracts`` contracts, since metrics on
    a handful of renewals are noise.
    """
    dates = pd.to_datetime(rows["renewal_date"])
    first, last = dates.min(), dates.max()
    span = last - first
    cut1 = first + span * shares.train
    cut2 = first + span * (shares.train + shares.calibration)
    part = np.where(dates <= cut1, "train", np.where(dates <= cut2, "calibration", "test"))
    part = pd.Series(part, index=rows.index, name="part")
    counts = rows.groupby(part)["contract_id"].nunique().reindex(list(PARTS), fill_value=0)
    small = counts[counts < min_contracts]
    if len(small):
        detail = ", ".join(f"{k}: {v} contracts" for k, v in small.items())
        raise HealthscoreError(
            f"not enough decided renewals to split by time ({detail}; need at least {min_contracts} each, "
            f"renewals run from {first.date()} to {last.date()}). Use a dataset with more history, move "
            "--as-of later, or change the split shares in the config."
        )
    return part


def time_folds(dates: pd.Series, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over unique renewal dates: train on older renewals, validate on the next block.

    Rows sharing a renewal date (hence a contract) never straddle train and validation.
    """
    unique = np.sort(pd.to_datetime(dates).unique())
    blocks = np.array_split(unique, n_folds + 1)
    values = pd.to_datetime(dates).to_numpy()
    folds = []
    for k in range(1, n_folds + 1):
        train_until = blocks[k - 1][-1]
        valid = blocks[k]
        if len(valid) == 0:
            continue
        tr = np.flatnonzero(values <= train_until)
        va = np.flatnonzero((values >= valid[0]) & (values <= valid[-1]))
        if len(tr) and len(va):
            folds.append((tr, va))
    return folds
