"""Bands: the score's cut points (``bands.healthy``, ``bands.watch``) and the order of bands."""

from __future__ import annotations

import numpy as np
import pandas as pd

from healthscore.config import BANDS, Config

#: a higher rank is a better band
BAND_RANK = {band: len(BANDS) - 1 - k for k, band in enumerate(BANDS)}


def band_of(score: pd.Series, config: Config) -> pd.Series:
    """healthy ≥ bands.healthy, watch ≥ bands.watch, else at_risk; missing score → empty."""
    s = pd.to_numeric(score, errors="coerce")
    band = np.where(s >= config.bands.healthy, "healthy", np.where(s >= config.bands.watch, "watch", "at_risk"))
    return pd.Series(np.where(s.isna(), None, band), index=score.index, dtype="object")
