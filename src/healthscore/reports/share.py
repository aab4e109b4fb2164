"""The health report a CSM can share with the customer: where they stand, how it is measured, how it moved,
how they compare, what to do together. One self-contained HTML file, no script, no external resource.

Built from an allow-list, never by removing things from the internal report: the page is rendered from a
``SharedReport`` made only of the fields below, so a column added to the batch later is never shared by
accident. What the customer never sees: ARR, CSM adjustments, their reasons and authors, the CSM, drivers
(they name money owed), the internal play and its owner, alerts, the model's outputs by their internal
names, and anything about another customer except one aggregate (their percentile in their own segment,
shown only when that segment has at least ``share.min_peers`` scored accounts). The words of
``config.SHARE_BLOCKED_WORDS`` (churn, risk, probability, overdue…) appear nowhere: the template does not
use them, the customer-facing texts in ``share.*`` are checked when the config is read, and the tests scan
the HTML for them and for every internal value of the account.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd
from markupsafe import Markup

from healthscore.config import COMPONENTS, Config
from healthscore.errors import HealthscoreError
from healthscore.explain import CONTRIB_COLUMNS
from healthscore.io.write import write_text_atomic
from healthscore.reports._html import as_number as _num
from healthscore.reports._html import template_env
from healthscore.reports._svg import Point, trend_chart
from healthscore.reports.account import split_rounded
from healthscore.reports.batch_view import read_batch

#: the only columns of ``scores.parquet`` the customer's report reads
SCORE_FIELDS: tuple[str, ...] = ("account_id", "name", "segment", "as_of", "status", "score", "model_score",
                                 "baseline", *CONTRIB_COLUMNS, "playbook", "playbook_due")
#: the only columns of ``history.parquet`` it reads (the account's own rows)
HISTORY_FIELDS: tuple[str, ...] = ("account_id", "as_of", "status", "score", "model_score")

#: the components in the customer's words
COMPONENT_TEXT: dict[str, tuple[str, str]] = {
    "usage": ("Usage", "how many of your people use the product, how often and how widely"),
    "time_to_value": ("Getting started", "how quickly your team reached regular use"),
    "support": ("Support", "how your support requests go: how many, how urgent, how satisfied you were"),
    "engagement": ("Working together", "meetings, business reviews and how you hear from us"),
    "billing": ("Billing", "how smoothly invoicing and payment run"),
    "feedback": ("Your feedback", "what you tell us in surveys"),
    "account": ("Your account", "how long you have been with us and the size of your plan"),
}


@dataclass(frozen=True)
class SharedPart:
    """One component as the customer sees it: what it looks at, how much it counts, what it does for them."""

    label: str
    description: str
    weight: int  # percent of what moves scores, across the batch
    points: int | None  # this customer's contribution against an average account (None: not shown)

    @property
    def effect(self) -> str:
        if self.points is None:
            return ""
        return "helps your score" if self.points > 0 else "holds your score back" if self.points < 0 else "about average"


@dataclass(frozen=True)
class Standing:
    """The customer's place among the other scored accounts of their own segment (never naming one)."""

    others: int
    higher_than: int  # percent of the others whose score is lower (ties count half)
    segment: str


@dataclass(frozen=True)
class SharedReport:
    """Everything the customer's page shows; nothing else reaches the template."""

    name: str
    as_of: str
    score: int
    band: str
    band_scale: list[tuple[str, str]]
    parts: list[SharedPart]
    start: int | None
    trend: Markup | None
    trend_rows: list[tuple[str, int]]
    standing: Standing | None
    steps: tuple[str, ...] = ()
    due: str = ""
    notes: list[str] = field(default_factory=list)


def _day(x) -> date | None:
    if x is None or x is pd.NaT or (isinstance(x, float) and math.isnan(x)):
        return None
    return pd.Timestamp(x).date()


def component_weights(scores: pd.DataFrame) -> dict[str, int]:
    """How much each component moves scores in this batch: its share of the mean absolute contribution over
    the scored accounts, in whole percent adding up to 100 (the global report's learned weight is the same
    measure in log-odds on the test slice)."""
    scored = scores[scores["status"] == "scored"]
    means = [float(pd.to_numeric(scored[f"contrib_{c}"], errors="coerce").abs().mean()) if len(scored) else 0.0
             for c in COMPONENTS]
    means = [0.0 if m != m else m for m in means]
    total = sum(means)
    if total <= 0:
        return {c: 0 for c in COMPONENTS}
    shares = split_rounded([100.0 * m / total for m in means], 100.0, decimals=0)
    return {c: int(s) for c, s in zip(COMPONENTS, shares)}


def shared_score_column(config: Config) -> str:
    return "model_score" if config.share.score == "model" else "score"


def standings(scores: pd.DataFrame, config: Config) -> dict[str, Standing]:
    """Each scored account's standing in its segment, for segments with at least ``share.min_peers`` scored."""
    if not config.share.show_peers:
        return {}
    column = shared_score_column(config)
    s = scores[(scores["status"] == "scored") & scores["segment"].notna()
               & (scores["segment"].astype(str) != "unknown")]
    s = s.assign(_v=pd.to_numeric(s[column], errors="coerce")).dropna(subset=["_v"])
    if s.empty:
        return {}
    n = s.groupby("segment", observed=True)["_v"].transform("size")
    rank = s.groupby("segment", observed=True)["_v"].rank(method="average")
    out = {}
    for aid, seg, size, r in zip(s["account_id"].astype(str), s["segment"].astype(str), n, rank):
        if size >= config.share.min_peers:
            out[aid] = Standing(int(size) - 1, int(round(100.0 * (r - 1) / (size - 1))), seg.replace("_", " "))
    return out


def _band_of(score: float, config: Config) -> str:
    b = config.bands
    return "healthy" if score >= b.healthy else "watch" if score >= b.watch else "at_risk"


def shared_report(row: dict, history: list[dict] | pd.DataFrame | None, *, weights: dict[str, int],
                  standing: Standing | None, config: Config) -> SharedReport:
    """The customer's page for one scored account, from the allow-listed fields of its rows only.

    ``history`` is the account's rows of ``history.parquet`` (a frame, or a list of dicts); other accounts'
    rows are ignored.
    """
    row = {k: row.get(k) for k in SCORE_FIELDS}  # the allow-list: nothing else is looked at
    share = config.share
    column = shared_score_column(config)
    value = _num(row[column])
    if row["status"] != "scored" or value is None:
        raise HealthscoreError(
            f"account {row['account_id']!r} has no score as of {_day(row['as_of'])} (status {row['status']}): "
            "there is no health report to share; share a scored account, or score again once it has an active "
            "contract")
    score = int(round(value))
    b = config.bands
    labels = share.band_labels
    band_scale = [(labels["healthy"], f"{b.healthy:g} and above"),
                  (labels["watch"], f"{b.watch:g} to {math.ceil(b.healthy) - 1:g}"),
                  (labels["at_risk"], f"below {b.watch:g}")]
    contrib = [_num(row[f"contrib_{c}"]) or 0.0 for c in COMPONENTS]
    start, points = None, [None] * len(COMPONENTS)
    baseline, model_score = _num(row["baseline"]), _num(row["model_score"])
    if share.score == "model" and baseline is not None and model_score is not None:
        # whole points that add up to the score shown: start + parts = score
        shown = split_rounded([baseline, *contrib], model_score, decimals=0)
        start, points = int(shown[0]), [int(p) for p in shown[1:]]
    parts = [SharedPart(COMPONENT_TEXT[c][0], COMPONENT_TEXT[c][1], weights.get(c, 0), p)
             for c, p in zip(COMPONENTS, points)]
    if isinstance(history, pd.DataFrame):
        history = [dict(zip(HISTORY_FIELDS, values)) for values in
                   zip(*(history[c].tolist() for c in HISTORY_FIELDS))]
    own = [{k: h.get(k) for k in HISTORY_FIELDS} for h in (history or [])
           if str(h.get("account_id")) == str(row["account_id"]) and h.get("status") == "scored"]
    dated = sorted(((_day(h["as_of"]), _num(h[column])) for h in own), key=lambda dv: dv[0] or date.min)
    pts = [Point(d, v) for d, v in dated if d is not None and v is not None][-share.trend_points:]
    trend_rows = [(p.day.isoformat(), int(round(p.score))) for p in pts]
    trend = None
    if pts:
        first, last = trend_rows[0], trend_rows[-1]
        desc = (f"Your health score on {len(pts)} dates from {first[0]} ({first[1]}) to {last[0]} ({last[1]})"
                if len(pts) > 1 else f"Your health score on {last[0]}: {last[1]}")
        trend = trend_chart(pts, chart_id="trend", title="Your health score over time", desc=desc,
                            y_label="health score (0–100)", cuts=(b.watch, b.healthy))
    play = str(row["playbook"]).split(":", 1)[0].strip() if isinstance(row["playbook"], str) else ""
    steps = tuple(share.plays.get(play, ())) if play else ()
    due = str(row["playbook_due"]) if steps and share.show_due_date and isinstance(row["playbook_due"], str) else ""
    name = row["name"] if isinstance(row["name"], str) and row["name"] else "your company"
    return SharedReport(name=name, as_of=str(_day(row["as_of"]) or ""), score=score,
                        band=labels[_band_of(score, config)], band_scale=band_scale, parts=parts, start=start,
                        trend=trend, trend_rows=trend_rows, standing=standing, steps=steps, due=due)


def render_share(report: SharedReport, env=None) -> str:
    """The customer's report as one HTML page."""
    env = env or template_env()
    return env.get_template("site/share.html").render(r=report)


def write_share(account_id: str, scores_dir: str | Path, out: str | Path, *, config: Config | None = None) -> Path:
    """Write the customer-facing report of one account of a score run's current batch to ``out`` (atomically)."""

    config = config or Config()
    batch = read_batch(scores_dir)
    scores = batch.scores
    ids = scores["account_id"].astype(str)
    hit = scores[ids == str(account_id)]
    if hit.empty:
        import difflib

        close = difflib.get_close_matches(str(account_id), ids.tolist(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "."
        raise HealthscoreError(f"account {account_id!r} is not in the batch of {scores_dir} ({len(scores)} accounts, "
                               f"as of {batch.as_of}){hint} Account ids are matched exactly.")
    report = shared_report(hit.iloc[0].to_dict(), batch.history, weights=component_weights(scores),
                           standing=standings(scores, config).get(str(account_id)), config=config)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(render_share(report), out)
