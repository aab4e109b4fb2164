"""One account's explanation for reviewers: why it scores what it does and what changed, in the terminal or HTML.

Reads only a score run's outputs (``scores.parquet``, ``explanations.parquet``, ``history.parquet``): no model.

Every number shown adds up. Points are shown to one decimal, and rounding each number on its own would
break the sums (7 components of 2.04 print as 2.0 each, total 14.3), so each list of parts is rounded
together with the largest-remainder method: parts shown add up exactly to their total shown. The waterfall
reads baseline + components = 100 × probability, then the rounding to the integer model score, each
adjustment, and clipping to 0–100; "what changed" splits the score change the same way.

All text from data (names, reasons, feature values, CSM) is untrusted: the HTML template autoescapes it
and a Content-Security-Policy forbids every script; the terminal view never parses it as markup and
replaces control characters.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from healthscore.config import COMPONENTS
from healthscore.errors import HealthscoreError, closest
from healthscore.explain import CONTRIB_COLUMNS, feature_catalogue, feature_label, format_value
from healthscore.io.output import read_tables
from healthscore.reports._html import as_number as _num
from healthscore.reports._html import png_data_uri, template_env
from healthscore.reports.plots import plt  # the Agg backend, selected before pyplot is imported

COMPONENT_LABELS = {
    "usage": "Usage",
    "time_to_value": "Time to value",
    "support": "Support",
    "engagement": "Engagement",
    "billing": "Billing",
    "feedback": "Feedback",
    "account": "Account context",
}

#: why an account has no score, by status (anything else is shown as its status)
STATUS_TEXT = {
    "no_active_contract": "it has no active contract on the as-of date (none with start_date ≤ as-of < end_date), "
                          "so there is no renewal to predict",
    "no_contract": "it has no contract at all",
    "contract_not_started": "its next contract has not started yet on the as-of date",
}


@dataclass
class Step:
    """One line of a waterfall: a label, its exact points and the points shown (rounded so lines add up)."""

    label: str
    points: float
    shown: float
    kind: str  # start | component | subtotal | rounding | adjustment | clip | total

    @property
    def text(self) -> str:
        return _signed(self.shown) if self.kind not in ("start", "subtotal", "total") else f"{self.shown:.1f}"


@dataclass
class FeatureLine:
    feature: str
    label: str
    value: str
    points: float
    shown: float


@dataclass
class ComponentLine:
    component: str
    label: str
    points: float
    shown: float
    features: list[FeatureLine] = field(default_factory=list)


@dataclass
class AccountExplanation:
    """Everything the terminal and HTML views show for one account (numbers already reconciled)."""

    account_id: str
    name: str
    segment: str
    csm: str
    as_of: str
    status: str
    not_scored_reason: str | None = None
    contract_id: str = ""
    renewal_date: str = ""
    arr: float | None = None
    probability: float | None = None
    model_score: float | None = None
    adjustment: float | None = None
    score: float | None = None
    band: str = ""
    alert: str = ""
    playbook: str = ""
    model_version: str = ""
    baseline: float | None = None
    waterfall: list[Step] = field(default_factory=list)
    components: list[ComponentLine] = field(default_factory=list)
    drivers: list[str] = field(default_factory=list)
    positive_driver: str = ""
    adjustments: list[tuple[float, str]] = field(default_factory=list)
    #: the account's rows of history.parquet, oldest first, as dicts (``history`` is the same as a frame)
    history_records: list[dict] = field(default_factory=list)
    previous_as_of: str = ""
    previous_score: float | None = None
    change: list[Step] = field(default_factory=list)
    change_note: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def scored(self) -> bool:
        return self.status == "scored"

    @property
    def history(self) -> pd.DataFrame:
        """The account's score history, oldest first (one row per as-of date)."""
        return pd.DataFrame(self.history_records)


# ---- numbers that add up --------------------------------------------------------------------------------

def split_rounded(values: list[float], total: float, *, decimals: int = 1) -> list[float]:
    """Round ``values`` to ``decimals`` so that they sum exactly to ``total`` rounded the same way.

    Largest remainder: floor every value in units of 10^-decimals, then give the missing units to the
    largest fractional parts (or take surplus units from the smallest). Parts move by at most one unit.
    """
    if not values:
        return []
    # plain Python, not numpy: the lists are a handful of numbers, and the site rounds ~15 per account
    scale = 10**decimals
    scaled = [float(v) * scale for v in values]
    target = int(round(total * scale))
    base = [math.floor(x + 1e-9) for x in scaled]
    frac = [x - b for x, b in zip(scaled, base)]
    missing = target - sum(base)
    order = sorted(range(len(frac)), key=(lambda i: -frac[i]) if missing >= 0 else (lambda i: frac[i]))  # stable
    step = 1 if missing >= 0 else -1
    for k in range(abs(missing)):
        base[order[k % len(order)]] += step
    return [float(b) / scale for b in base]


def _signed(x: float) -> str:
    return f"{x:+.1f}".replace("+0.0", "0.0").replace("-0.0", "0.0")


def _text(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA or x is pd.NaT:
        return ""
    return str(x)


def _date(x) -> str:
    if x is None or x is pd.NaT or (isinstance(x, float) and math.isnan(x)):
        return ""
    try:
        return pd.Timestamp(x).strftime("%Y-%m-%d")
    except (TypeError, ValueError):
        return str(x)


def _parse_adjustments(reasons: str, total: float) -> list[tuple[float, str]]:
    """Split ``adjustment_reasons`` ("reason: +5 | reason: -10"; batches written before December 2026: "+5 reason") into
    (points, reason); one line if it won't add up."""
    parts = []
    for piece in reasons.split(" | ") if reasons else []:
        m = re.match(r"^(.*): ([+-]?\d+(?:\.\d+)?)$", piece, flags=re.S)
        old = None if m else re.match(r"^([+-]?\d+(?:\.\d+)?) (.*)$", piece, flags=re.S)
        if m:
            parts.append((float(m.group(2)), m.group(1)))
        elif old:
            parts.append((float(old.group(1)), old.group(2)))
        else:
            return [(total, reasons)]
    if not parts or abs(sum(p for p, _ in parts) - total) > 1e-6:
        return [(total, reasons or "adjustments")] if total else []
    return parts


def _waterfall(row: dict, adjustments: list[tuple[float, str]]) -> list[Step]:
    baseline = row["baseline"]
    comps = [row[f"contrib_{c}"] or 0.0 for c in COMPONENTS]
    model_exact = 100.0 * row["probability"]
    shown = split_rounded([baseline, *comps], model_exact)
    model_shown = round(sum(shown), 1)
    steps = [Step("baseline: the score of an average account", baseline, shown[0], "start")]
    steps += [Step(COMPONENT_LABELS[c], v, s, "component") for c, v, s in zip(COMPONENTS, comps, shown[1:])]
    steps.append(Step("model: 100 × probability", model_exact, model_shown, "subtotal"))
    model_score = row["model_score"]
    steps.append(Step("rounding to a whole score", model_score - model_exact, round(model_score - model_shown, 1),
                      "rounding"))
    steps.append(Step("model score", model_score, model_score, "subtotal"))
    for points, reason in adjustments:
        steps.append(Step(f"adjustment: {reason}", points, points, "adjustment"))
    unclipped = model_score + sum(p for p, _ in adjustments)
    if row["score"] != unclipped:
        steps.append(Step("clipped to 0–100", row["score"] - unclipped, row["score"] - unclipped, "clip"))
    steps.append(Step("score", row["score"], row["score"], "total"))
    return steps


def _parts_of_score(r: dict) -> dict[str, float]:
    """A history row's score as additive parts: baseline, components, rounding, adjustment, clipping."""
    contrib = {c: float(r.get(f"contrib_{c}", 0.0) or 0.0) for c in COMPONENTS}
    model_exact = 100.0 * float(r["probability"])
    adjustment = float(r.get("adjustment", 0.0) or 0.0)
    model_score = float(r["model_score"])
    return {
        "baseline": model_exact - sum(contrib.values()),
        **contrib,
        "rounding": model_score - model_exact,
        "adjustment": adjustment,
        "clip": float(r["score"]) - (model_score + adjustment),
    }


_CHANGE_LABELS = {"baseline": "baseline (model changed)", "rounding": "rounding to a whole score",
                  "adjustment": "adjustments", "clip": "clipping to 0–100", **COMPONENT_LABELS}


def _change(current: dict, previous: dict) -> list[Step]:
    now, before = _parts_of_score(current), _parts_of_score(previous)
    keys = list(now)
    deltas = [now[k] - before[k] for k in keys]
    total = float(current["score"]) - float(previous["score"])
    shown = split_rounded(deltas, total)
    steps = [Step("previous score", float(previous["score"]), float(previous["score"]), "start")]
    for k, d, s in zip(keys, deltas, shown):
        if s != 0:  # a part that moved less than 0.05 points is not news (the shown parts still add up)
            steps.append(Step(_CHANGE_LABELS[k], d, s, "component"))
    steps.append(Step("score", float(current["score"]), float(current["score"]), "total"))
    return steps


# ---- reading a score run --------------------------------------------------------------------------------

def load_account(scores_dir: str | Path, account_id: str) -> AccountExplanation:
    """Collect one account's explanation from a score run's outputs (raises when the account is not there).

    Reads the output folder's current batch (CONTRACT §6), every file checked against its manifest, so
    the header, features and history shown always come from one complete batch.
    """
    d = Path(scores_dir)
    batch, tables = read_tables(d, ("scores.parquet", "history.parquet", "explanations.parquet"))
    scores = tables["scores.parquet"]
    if batch is not None and batch.manifest is not None:
        d = batch.root
    if scores is None:
        raise HealthscoreError(
            f"no scores.parquet in {d}: point --scores at the output directory of `healthscore score` "
            "(it holds scores.parquet, explanations.parquet and history.parquet)."
        )
    ids = scores["account_id"].astype(str)
    hit = scores[ids == str(account_id)]
    if hit.empty:
        close = closest(account_id, ids.tolist(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "."
        raise HealthscoreError(
            f"account {account_id!r} is not in {d / 'scores.parquet'} ({len(scores)} accounts, as of "
            f"{_date(scores['as_of'].iloc[0]) if len(scores) else '–'}){hint} Account ids are matched exactly."
        )
    return explanation_from_rows(hit.iloc[0].to_dict(), history=tables["history.parquet"],
                                 explanations=tables["explanations.parquet"], account_id=str(account_id))


#: a table's rows: a frame, or a mapping of column name to a list of values (one per row)
Rows = pd.DataFrame | Mapping[str, Sequence]


def explanation_from_rows(row: dict, *, history: Rows | None, explanations: Rows | None,
                          account_id: str | None = None) -> AccountExplanation:
    """One account's explanation from its ``scores`` row and the batch's history and explanation rows.

    ``load_account`` reads a batch and calls this with its frames. A caller that explains every account of a
    batch (the portfolio site) reads the batch once and passes each account's own rows as a mapping of column
    name to list (a slice of each column): no pandas work per account. Rows of other accounts are ignored
    either way.
    """
    account_id = str(row.get("account_id")) if account_id is None else account_id
    status = _text(row.get("status")) or "unknown"
    exp = AccountExplanation(
        account_id=str(account_id),
        name=_text(row.get("name")),
        segment=_text(row.get("segment")),
        csm=_text(row.get("csm")),
        as_of=_date(row.get("as_of")),
        status=status,
        contract_id=_text(row.get("contract_id")),
        renewal_date=_date(row.get("renewal_date")),
        arr=_num(row.get("arr")),
        model_version=_text(row.get("model_version")),
        alert=_text(row.get("alert")),
        playbook=": ".join(t for t in (_text(row.get("playbook")), _text(row.get("playbook_steps"))) if t),
    )
    if status != "scored":
        exp.not_scored_reason = STATUS_TEXT.get(status, f"its status is {status!r}")
    else:
        for key in ("probability", "model_score", "adjustment", "score", "baseline"):
            setattr(exp, key, _num(row.get(key)))
        exp.band = _text(row.get("band"))
        nums = {k: _num(row.get(k)) for k in ("baseline", "probability", "model_score", "score", *CONTRIB_COLUMNS)}
        nums["adjustment"] = _num(row.get("adjustment")) or 0.0
        exp.adjustments = _parse_adjustments(_text(row.get("adjustment_reasons")), nums["adjustment"])
        if None in (nums["baseline"], nums["probability"], nums["model_score"], nums["score"]):
            exp.notes.append("this scores file has no baseline/contributions: re-score to see the waterfall")
        else:
            exp.waterfall = _waterfall(nums, exp.adjustments)
        exp.drivers = [_text(row.get(f"driver_{k}")) for k in (1, 2, 3) if _text(row.get(f"driver_{k}"))]
        exp.positive_driver = _text(row.get("positive_driver"))
        if explanations is None:
            exp.notes.append("explanations.parquet is missing: feature-level contributions are not shown")
        else:
            exp.components = _component_lines(
                _own_columns(explanations, str(account_id), ("feature", "component", "value", "contribution")),
                exp.waterfall)
    _attach_history(exp, history, row)
    return exp


def _own_columns(table: Rows, account_id: str, names: Sequence[str] | None = None) -> dict[str, list]:
    """The columns ``names`` (default: all) of one account's rows of a frame or of a mapping of column lists."""
    if isinstance(table, pd.DataFrame):
        ids = table["account_id"]
        table = table[(ids if isinstance(ids.dtype, pd.StringDtype) else ids.astype(str)) == account_id]
        return {c: table[c].tolist() for c in (table.columns if names is None else names)}
    names = list(table) if names is None else names
    ids = table["account_id"]
    if all(str(a) == account_id for a in ids):
        return {c: list(table[c]) for c in names}
    keep = [i for i, a in enumerate(ids) if str(a) == account_id]
    return {c: [table[c][i] for i in keep] for c in names}


@functools.lru_cache(maxsize=4096)
def _feature_text(feature: str) -> tuple[str, str, str]:
    """A feature's label, unit and kind, looked up once per process (family columns are found by name, slowly)."""
    spec = feature_catalogue().get(feature)
    return feature_label(feature, spec), getattr(spec, "unit", "") or "", getattr(spec, "kind", "numeric")


def _component_lines(rows: dict[str, list], waterfall: list[Step]) -> list[ComponentLine]:
    shown_by_label = {s.label: (s.points, s.shown) for s in waterfall if s.kind == "component"}
    # plain lists, not a frame filtered per component: the site explains every account of a batch
    features = [str(f) for f in rows["feature"]]
    components = rows["component"]
    values = rows["value"]
    contributions = [float(c) for c in rows["contribution"]]
    out = []
    for c in COMPONENTS:
        part = [i for i, comp in enumerate(components) if comp == c]
        if COMPONENT_LABELS[c] in shown_by_label:
            points, shown = shown_by_label[COMPONENT_LABELS[c]]
        else:
            points = float(np.nansum(np.asarray([contributions[i] for i in part], dtype=float)))
            shown = round(points, 1)
        # largest first, then by name (a stable sort: full ties keep their order); NaN last, as pandas sorts
        part.sort(key=lambda i: (-abs(contributions[i]) if contributions[i] == contributions[i] else math.inf,
                                 features[i]))
        feature_shown = split_rounded([contributions[i] for i in part], shown)
        lines = []
        for i, s in zip(part, feature_shown):
            label, unit, kind = _feature_text(features[i])
            raw = values[i]
            value = _num(raw) if kind != "categorical" else raw
            value = raw if value is None and _text(raw) else value
            lines.append(FeatureLine(features[i], label, format_value(value, unit, kind=kind), contributions[i], s))
        out.append(ComponentLine(c, COMPONENT_LABELS[c], points, shown, lines))
    return out


def _attach_history(exp: AccountExplanation, history: Rows | None, row: dict) -> None:
    if history is None:
        exp.notes.append("history.parquet is missing: no score history or change is shown")
        return
    columns = _own_columns(history, exp.account_id)
    records = [dict(zip(columns, values)) for values in zip(*columns.values())]
    for r in records:
        r["as_of"] = pd.Timestamp(r["as_of"])
    records.sort(key=lambda r: r["as_of"])  # stable: a date's rows keep their order
    exp.history_records = records
    now = pd.Timestamp(row.get("as_of")) if row.get("as_of") is not None else None
    current = [r for r in records if r["as_of"] == now]
    earlier = [r for r in records if now is not None and r["as_of"] < now]
    if not earlier:
        exp.change_note = "first run for this account: nothing to compare with"
        return
    prev = earlier[-1]
    exp.previous_as_of = _date(prev["as_of"])
    exp.previous_score = _num(prev.get("score"))
    if not current or not exp.scored:
        exp.change_note = (f"not scored now; on {exp.previous_as_of} it was "
                           + (f"scored {exp.previous_score:.0f}" if exp.previous_score is not None
                              else f"not scored either ({_text(prev.get('status'))})"))
        return
    if _text(prev.get("status")) != "scored" or exp.previous_score is None:
        exp.change_note = f"not scored on {exp.previous_as_of} ({_text(prev.get('status'))}): nothing to compare with"
        return
    exp.change = _change(current[-1], prev)
    moved = [s for s in exp.change if s.kind == "component"]
    versions = (_text(prev.get("model_version")), _text(current[-1].get("model_version")))
    if versions[0] and versions[1] and versions[0] != versions[1]:
        exp.change_note = f"model version changed from {versions[0]} to {versions[1]}"
    elif not moved:
        exp.change_note = "nothing moved"


# ---- views ----------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def safe_terminal_text(value: str) -> str:
    """Untrusted text for a terminal: control characters (ANSI escapes, bidi overrides) become '�'."""
    return _CONTROL.sub("\ufffd", value)


def render_terminal(exp: AccountExplanation, console) -> None:
    """Print the explanation with rich; untrusted text is passed as Text (never parsed as markup)."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    def t(value: str, style: str = "") -> Text:
        return Text(safe_terminal_text(value), style=style)

    title = Text.assemble(t(exp.name or "(no name)", "bold"), "  ", t(exp.account_id, "dim"))
    head = Text.assemble(
        "segment ", t(exp.segment or "–"), " · CSM ", t(exp.csm or "–"), " · as of ", t(exp.as_of),
        " · contract ", t(exp.contract_id or "–"), " · renewal ", t(exp.renewal_date or "–"),
    )
    console.print(Panel(head, title=title, title_align="left"))
    if not exp.scored:
        console.print(Text.assemble(("Not scored: ", "bold yellow"), t(exp.not_scored_reason or exp.status), "."))
    else:
        band_style = {"healthy": "green", "watch": "yellow", "at_risk": "red"}.get(exp.band, "")
        console.print(Text.assemble(
            ("Score ", "bold"), (f"{exp.score:.0f}", f"bold {band_style}"), " · band ", (exp.band, band_style),
            f" · probability of renewal {exp.probability:.1%} · model score {exp.model_score:.0f}"
            f" · adjustment {_signed(exp.adjustment or 0.0)}",
        ))
        if exp.waterfall:
            console.print(_waterfall_table(exp.waterfall, Table, t))
        if exp.drivers or exp.positive_driver:
            console.print(Text("Why", style="bold"))
            for d in exp.drivers:
                console.print(Text.assemble(" • ", t(d)))
            if exp.positive_driver:
                console.print(Text.assemble(" + strongest positive: ", t(exp.positive_driver)))
        if exp.components:
            ft = Table(title="Feature contributions (points)", title_justify="left")
            for col in ("component", "feature", "value", "points"):
                ft.add_column(col, justify="right" if col == "points" else "left")
            hidden = 0
            for comp in exp.components:
                ft.add_row(Text(comp.label, style="bold"), "", "", Text(_signed(comp.shown), style="bold"))
                for f in comp.features:
                    if f.shown == 0:  # the terminal keeps to what moved; the HTML report lists every feature
                        hidden += 1
                        continue
                    ft.add_row("", t(f.label), t(f.value), _signed(f.shown))
            console.print(ft)
            if hidden:
                console.print(Text(f"{hidden} features at 0.0 points not shown (--html lists them all)", style="dim"))
    if exp.alert:
        console.print(Text.assemble(("Alert: ", "bold red"), t(exp.alert)))
    if exp.playbook:
        console.print(Text.assemble(("Play: ", "bold"), t(exp.playbook)))
    _terminal_change(exp, console, Table, t)
    for note in exp.notes:
        console.print(Text(f"note: {note}", style="dim"))


def _waterfall_table(steps: list[Step], Table, t):
    from rich.text import Text

    wt = Table(title="How the score adds up (points)", title_justify="left")
    wt.add_column("step")
    wt.add_column("points", justify="right")
    wt.add_column("", min_width=22)
    for s in steps:
        bar = ""
        if s.kind in ("component", "rounding", "adjustment", "clip"):
            n = min(20, int(round(abs(s.shown) / 2)))
            bar = ("▇" * n) if n else ("·" if s.shown else "")
        style = "green" if s.shown > 0 and s.kind != "subtotal" else "red" if s.shown < 0 else ""
        bold = "bold" if s.kind in ("start", "subtotal", "total") else ""
        wt.add_row(t(s.label, bold), Text(s.text, style=bold), Text(bar, style=style))
    return wt


def _terminal_change(exp: AccountExplanation, console, Table, t) -> None:
    from rich.text import Text

    if exp.history_records:
        ht = Table(title="Score history", title_justify="left")
        for col in ("as of", "status", "score", "band", "change"):
            ht.add_column(col, justify="right" if col in ("score", "change") else "left")
        prev = None
        for r in exp.history_records[-12:]:
            score = _num(r.get("score"))
            change = "" if score is None or prev is None else _signed(score - prev)
            ht.add_row(_date(r["as_of"]), t(_text(r.get("status"))), "" if score is None else f"{score:.0f}",
                       t(_text(r.get("band"))), change)
            prev = score if score is not None else prev
        console.print(ht)
    if exp.change:
        console.print(_change_table(exp, Table, t))
    if exp.change_note:
        console.print(Text(f"Since the previous run: {exp.change_note}", style="italic"))


def _change_table(exp: AccountExplanation, Table, t):
    ct = Table(title=f"What changed since {exp.previous_as_of} (points)", title_justify="left")
    ct.add_column("")
    ct.add_column("points", justify="right")
    for s in exp.change:
        ct.add_row(t(s.label), s.text)
    return ct


# ---- HTML -----------------------------------------------------------------------------------------------

def _history_plot(history: pd.DataFrame) -> str | None:
    h = history[pd.to_numeric(history.get("score"), errors="coerce").notna()]
    if len(h) < 2:
        return None
    colors = {"healthy": "#2e7d32", "watch": "#f9a825", "at_risk": "#c62828"}
    with plt.rc_context({"text.parse_math": False}):
        fig, ax = plt.subplots(figsize=(6.5, 2.6))
        ax.plot(h["as_of"], h["score"].astype(float), color="#555", lw=1.5)
        ax.scatter(h["as_of"], h["score"].astype(float), c=[colors.get(str(b), "#555") for b in h["band"]], zorder=3)
        ax.set_ylim(0, 100)
        ax.set_ylabel("score")
        ax.grid(axis="y", alpha=0.3)
        if len(h) <= 8:
            ax.set_xticks(list(h["as_of"]), [_date(d) for d in h["as_of"]])
        else:
            import matplotlib.dates as mdates

            locator = mdates.AutoDateLocator()
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        fig.autofmt_xdate()
        return png_data_uri(fig)


def _bars(steps: list[Step]) -> list[dict]:
    """Waterfall geometry on a 0–100 axis: each step's bar from its running start to its end, in percent."""
    out, running = [], 0.0
    for s in steps:
        if s.kind in ("start", "subtotal", "total"):
            lo, hi, running = 0.0, s.shown, s.shown
        else:
            lo, hi = sorted((running, running + s.shown))
            running += s.shown
        lo, hi = max(0.0, min(100.0, lo)), max(0.0, min(100.0, hi))
        cls = {"start": "base", "subtotal": "base", "total": "total"}.get(s.kind, "up" if s.shown > 0 else "down")
        width = 0.0 if s.shown == 0 else max(hi - lo, 0.3)  # a visible sliver for tiny moves, nothing for none
        out.append({"step": s, "left": f"{lo:.2f}", "width": f"{width:.2f}", "cls": cls})
    return out


def html_context(exp: AccountExplanation, *, history_plot: bool = True) -> dict:
    """The variables of the ``account.html`` template. ``history_plot=False`` leaves out the matplotlib PNG of
    the score history (the portfolio site, which writes every account's page, draws it as SVG instead)."""
    return {
        "exp": exp,
        "bars": _bars(exp.waterfall),
        "change_bars": _bars(exp.change),
        "history_png": _history_plot(exp.history) if history_plot and exp.history_records else None,
        "history_rows": _history_rows(exp.history_records),
        "signed": _signed,
    }


def render_html(exp: AccountExplanation) -> str:
    """The self-contained HTML report (no scripts, no external resources; all data text escaped)."""
    return template_env().get_template("account.html").render(**html_context(exp))


def _history_rows(history: list[dict]) -> list[dict]:
    rows, prev = [], None
    for r in history:
        score = _num(r.get("score"))
        rows.append({
            "as_of": _date(r["as_of"]), "status": _text(r.get("status")),
            "score": "" if score is None else f"{score:.0f}", "band": _text(r.get("band")),
            "model_score": "" if _num(r.get("model_score")) is None else f"{_num(r.get('model_score')):.0f}",
            "adjustment": "" if _num(r.get("adjustment")) is None else _signed(_num(r.get("adjustment"))),
            "change": "" if score is None or prev is None else _signed(score - prev),
            "model_version": _text(r.get("model_version")),
        })
        prev = score if score is not None else prev
    return rows


def write_account_html(exp: AccountExplanation, path: str | Path) -> Path:
    """Write the HTML report for one account (UTF-8) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(exp), encoding="utf-8")
    return path
