"""The loaded, validated dataset handed to every later stage."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Dataset:
    """Validated tables with normalised dtypes.

    - ids and text: pandas string dtype (``"string"``; empty cells are ``<NA>``), except
      ``accounts.segment`` where empty becomes ``"unknown"``;
    - dates and timestamps: ``datetime64[ns]``, timezone-naive, in UTC (aware inputs are converted);
    - numbers: float64 (``seats``, ``points`` too: they may be missing);
    - ``usage_events.quantity``: missing becomes 1.0.

    An optional table that is absent is ``None`` and its name is in ``absent``: its component has no data
    (features NaN, never zero). Frames are never modified by later stages (treat as read-only).
    """

    accounts: pd.DataFrame
    contracts: pd.DataFrame
    usage_events: pd.DataFrame | None = None
    tickets: pd.DataFrame | None = None
    surveys: pd.DataFrame | None = None
    touchpoints: pd.DataFrame | None = None
    invoices: pd.DataFrame | None = None
    adjustments: pd.DataFrame | None = None
    #: names of optional tables that were not present
    absent: tuple[str, ...] = ()
    #: non-fatal notes (unknown extra columns, ...), reported once
    warnings: tuple[str, ...] = ()
    #: where it was read from (None when built in memory)
    source: str | None = None
    #: sha256 over the normalised tables, for tracking which data trained a model
    fingerprint: str = ""
    extra: dict = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame | None:
        return getattr(self, name)
