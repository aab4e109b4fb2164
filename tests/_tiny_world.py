"""A tiny hand-made world of five accounts, for tests that need a clean dataset (CONTRACT §1).

The story, counted by hand:

- A-1 Acme Corp (enterprise): C-1 2022 renewed, then C-2 2023 still open; heavy usage, one closed ticket,
  NPS 9, an EBR, one invoice paid on time.
- A-2 Globex (mid_market): C-3 churned in June 2023; one open ticket, NPS 3, an unpaid invoice and a
  CSM adjustment of -10 ("Champion left").
- A-3 "Zoë's Café, Ltd." (smb): C-4 renewed; a closed urgent ticket with csat 2; csat survey 5.
- A-4 Initech (segment empty -> "unknown", no seats): C-5 still open; a meeting and one usage event
  with no quantity (-> 1.0).
- A-5 Umbrella (smb): no contract at all.

So: 5 accounts, 1 without contracts; 5 contracts, 3 decided (2 renewed, 1 churned), 2 open.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: the format each table is written in by default: mixed on purpose
MIXED_FORMATS: dict[str, str] = {
    "accounts": "csv",
    "contracts": "parquet",
    "usage_events": "parquet",
    "tickets": "csv",
    "surveys": "csv",
    "touchpoints": "parquet",
    "invoices": "csv",
    "adjustments": "parquet",
}


def _dates(*values: str | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values)), dtype="datetime64[ns]")


def tiny_world_frames() -> dict[str, pd.DataFrame]:
    """All eight tables of the tiny world, typed as a Parquet writer would see them."""
    nan = np.nan
    accounts = pd.DataFrame({
        "account_id": ["A-1", "A-2", "A-3", "A-4", "A-5"],
        "name": ["Acme Corp", "Globex", "Zoë's Café, Ltd.", "Initech", "Umbrella"],
        "segment": ["enterprise", "mid_market", "smb", "", "smb"],
        "industry": ["Manufacturing", "Software", "Hospitality", "", "Health"],
        "csm": ["Dana", "Eli", "Dana", "", "Eli"],
        "created_at": _dates("2021-06-01", "2021-09-15", "2022-02-01", "2022-03-10", "2023-01-05"),
    })
    contracts = pd.DataFrame({
        "contract_id": ["C-1", "C-2", "C-3", "C-4", "C-5"],
        "account_id": ["A-1", "A-1", "A-2", "A-3", "A-4"],
        "start_date": _dates("2022-01-01", "2023-01-01", "2022-06-01", "2022-03-01", "2023-04-01"),
        "end_date": _dates("2023-01-01", "2024-01-01", "2023-06-01", "2023-03-01", "2024-04-01"),
        "arr": [120000.0, 130000.0, 40000.0, 6000.0, 12000.0],
        "seats": [200.0, 220.0, 50.0, 5.0, nan],
        "outcome": ["renewed", None, "churned", "renewed", None],
    })
    usage_events = pd.DataFrame({
        "account_id": ["A-1", "A-1", "A-1", "A-2", "A-3", "A-4"],
        "user_id": ["u1", "u2", "u1", "u7", "u9", "u11"],
        "ts": _dates("2023-02-01 09:15:00", "2023-02-01 10:00:00", "2023-02-03 14:30:00",
                     "2023-02-02 08:00:00", "2023-01-20 16:45:00", "2023-05-02 11:00:00"),
        "feature": ["report", "dashboard", "report", "login", "export", "login"],
        "quantity": [3.0, 1.0, 2.0, 1.0, 5.0, nan],
    })
    tickets = pd.DataFrame({
        "ticket_id": ["T-1", "T-2", "T-3"],
        "account_id": ["A-1", "A-2", "A-3"],
        "opened_at": _dates("2023-03-01 09:00:00", "2023-02-10 13:00:00", "2022-11-05 08:30:00"),
        "closed_at": _dates("2023-03-02 10:00:00", None, "2022-11-07 17:00:00"),
        "priority": ["high", "normal", "urgent"],
        "csat": [4.0, nan, 2.0],
    })
    surveys = pd.DataFrame({
        "account_id": ["A-1", "A-2", "A-3"],
        "responded_at": _dates("2023-03-15 12:00:00", "2023-04-01 09:30:00", "2022-12-01 10:00:00"),
        "kind": ["nps", "nps", "csat"],
        "score": [9.0, 3.0, 5.0],
    })
    touchpoints = pd.DataFrame({
        "account_id": ["A-1", "A-2", "A-4"],
        "ts": _dates("2023-02-20 15:00:00", "2023-03-05 09:00:00", "2023-05-10 14:00:00"),
        "kind": ["ebr", "email_sent", "meeting"],
    })
    invoices = pd.DataFrame({
        "invoice_id": ["I-1", "I-2"],
        "account_id": ["A-1", "A-2"],
        "issued_at": _dates("2023-01-01", "2022-06-01"),
        "due_at": _dates("2023-01-31", "2022-07-01"),
        "paid_at": _dates("2023-01-20", None),
        "amount": [130000.0, 40000.0],
    })
    adjustments = pd.DataFrame({
        "account_id": ["A-2"],
        "created_at": _dates("2023-03-01 12:00:00"),
        "points": [-10.0],
        "reason": ["Champion left"],
        "author": ["Eli"],
        "expires_at": _dates(None),
    })
    return {
        "accounts": accounts,
        "contracts": contracts,
        "usage_events": usage_events,
        "tickets": tickets,
        "surveys": surveys,
        "touchpoints": touchpoints,
        "invoices": invoices,
        "adjustments": adjustments,
    }


def write_world(
    frames: dict[str, pd.DataFrame], directory: Path, formats: dict[str, str] | None = None
) -> Path:
    """Write each frame as ``<table>.csv`` or ``.parquet`` (default: ``MIXED_FORMATS``); return the dir."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    formats = {**MIXED_FORMATS, **(formats or {})}
    for name, frame in frames.items():
        if formats.get(name, "csv") == "csv":
            frame.to_csv(directory / f"{name}.csv", index=False)
        else:
            frame.to_parquet(directory / f"{name}.parquet", index=False)
    return directory
