"""Shared HTML helpers: the escaping template environment and PNG data URIs (self-contained reports)."""

from __future__ import annotations

import base64
import io


def template_env():
    """Jinja environment over ``reports/templates`` that escapes every value (data text is untrusted)."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("healthscore.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def png_data_uri(fig) -> str:
    """A matplotlib figure as a base64 PNG data URI (no date stamp: same inputs, same bytes); closes it."""
    from healthscore.reports.plots import plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
