"""Little hand-made worlds for the timeline and feature tests: build a Dataset from a few rows per table.

Every helper shuffles rows with a fixed seed, so each story also proves that row order does not matter.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from healthscore.io import dataset_from_frames

T = pd.Timestamp("2024-07-01")  # the observation date of most stories


def ts(value: str) -> pd.Timestamp:
    return pd.Timestamp(value)


def shuffled(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Rows in a random (fixed-seed) order with a fresh index."""
    order = np.random.default_rng(seed).permutation(len(frame))
    return frame.iloc[order].reset_index(drop=True)


def frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


ACCOUNT_COLUMNS = ["account_id", "name", "segment", "industry", "csm", "created_at"]
CONTRACT_COLUMNS = ["contract_id", "account_id", "start_date", "end_date", "arr", "seats", "outcome"]
EVENT_COLUMNS = ["account_id", "user_id", "ts", "feature", "quantity"]
TICKET_COLUMNS = ["ticket_id", "account_id", "opened_at", "closed_at", "priority", "csat"]
SURVEY_COLUMNS = ["account_id", "responded_at", "kind", "score"]
TOUCH_COLUMNS = ["account_id", "ts", "kind"]
INVOICE_COLUMNS = ["invoice_id", "account_id", "issued_at", "due_at", "paid_at", "amount"]


def accounts(*rows: tuple) -> pd.DataFrame:
    """Rows of (account_id, segment, created_at or None)."""
    return frame(
        [{"account_id": a, "name": f"Name {a}", "segment": s, "industry": "software", "csm": "csm-1",
          "created_at": None if c is None else ts(c)} for a, s, c in rows],
        ACCOUNT_COLUMNS,
    )


def contracts(*rows: tuple) -> pd.DataFrame:
    """Rows of (contract_id, account_id, start, end, arr, seats or None, outcome or None)."""
    return frame(
        [{"contract_id": c, "account_id": a, "start_date": ts(s), "end_date": ts(e), "arr": arr,
          "seats": seats, "outcome": out} for c, a, s, e, arr, seats, out in rows],
        CONTRACT_COLUMNS,
    )


def dataset(seed: int = 0, **tables: pd.DataFrame | None):
    """A validated Dataset from frames, each shuffled with ``seed``; missing optional tables are absent."""
    frames = {name: (None if f is None else shuffled(f, seed)) for name, f in tables.items()}
    return dataset_from_frames(frames)


def observations(*rows: tuple, index: list | None = None) -> pd.DataFrame:
    """Rows of (account_id, contract_id or None, as_of)."""
    out = pd.DataFrame(
        {
            "account_id": pd.array([r[0] for r in rows], dtype="string"),
            "contract_id": pd.array([r[1] for r in rows], dtype="string"),
            "as_of": pd.to_datetime([str(r[2]) for r in rows], format="ISO8601").astype("datetime64[ns]"),
        }
    )
    if index is not None:
        out.index = index
    return out


def row(features: pd.DataFrame, account_id: str, observations_: pd.DataFrame) -> pd.Series:
    """The feature row of the (single) observation of ``account_id``."""
    labels = observations_.index[observations_["account_id"] == account_id]
    assert len(labels) == 1, f"expected one observation of {account_id}"
    return features.loc[labels[0]]
