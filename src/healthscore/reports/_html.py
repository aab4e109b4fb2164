"""Shared HTML helpers, one of each: the escaping template environment, number formats and PNG data URIs.

Templates autoescape every value (names, reasons, paths and URIs are untrusted text); plots are PNG data
URIs, so a report opens anywhere without a network and without scripts.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from healthscore.reports.plots import plt


def as_number(value: Any) -> float | None:
    """A cell as a float, or None when it is missing, NaN or not a number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def fmt_number(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; missing or NaN as an en dash."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(v) else f"{v:.{digits}f}"


def fmt_percent(value: Any, digits: int = 1) -> str:
    """A share as a percentage; missing or NaN as an en dash."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(v) else f"{100 * v:.{digits}f}%"


def template_env() -> jinja2.Environment:
    """Jinja environment over ``reports/templates`` that escapes every value, with the number filters."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("healthscore.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_number
    env.filters["pct"] = fmt_percent
    return env


def png_data_uri(figure_or_path) -> str:
    """A PNG as a base64 ``data:`` URI for an ``<img src>``: a written file, or a matplotlib figure (saved
    without a date stamp, so the same inputs give the same bytes, then closed)."""
    if isinstance(figure_or_path, (str, Path)):
        data = Path(figure_or_path).read_bytes()
    else:
        buf = io.BytesIO()
        figure_or_path.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
        plt.close(figure_or_path)
        data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Rows as dicts for a template (None or empty → empty list)."""
    if frame is None or frame.empty:
        return []
    return frame.to_dict(orient="records")
