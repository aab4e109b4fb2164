"""The portfolio site: a static, offline set of HTML pages over one score batch, for CS ops and managers.

``build_site(scores_dir, out)`` reads the current batch of a ``score`` output folder (CONTRACT §6: every
file checked against the manifest) and writes::

    SITE/
      index.html            the whole book: bands and ARR by band, ARR at risk by segment, CSM and renewal
                            quarter, the score distribution over time, band migration, alerts first, and
                            one table of every account (sorted, filtered and searched in the page)
      csm/<name>.html       a CSM's book of business: the plays due (the weekly review list), renewals in the
                            next 90 days, every account
      accounts/<id>.html    the account report of ``explain --html`` with links back and a score trend
      model.html            the model behind the batch; model/ holds the full model and backtest reports
      share/<id>.html       with ``share=True``: the customer-facing report of every scored account
      site.json             what the site was built from (batch, as-of date, pages)

Everything is in the pages: no network, no CDN, styles inline, charts inline SVG. The only script is the
index's table (``static/site.js``, inlined, allowed by its hash in the page's Content-Security-Policy); the
rows are a JSON data block whose ``<``, ``>`` and ``&`` are escaped, so no text can end it. Every other page
has no script at all. The same batch gives the same bytes (no clock, sorted everywhere).

The site appears whole or not at all: it is built in a temporary folder beside ``SITE`` and swapped in with
renames; a folder that is not a site (no ``site.json``) is never replaced.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from markupsafe import Markup

from healthscore.config import (
    BANDS,  # noqa: E402  (the one band vocabulary)
    COMPONENTS,
    Config,
)
from healthscore.reports import _svg
from healthscore.reports import share as share_mod
from healthscore.reports._html import as_number as _num
from healthscore.reports._html import template_env
from healthscore.reports.account import COMPONENT_LABELS, explanation_from_rows, html_context
from healthscore.reports.batch_view import SiteBatch, SiteError, read_batch

BAND_LABELS = {"healthy": "healthy", "watch": "watch", "at_risk": "at risk", "": "not scored"}
#: how many rows the index table shows per page (the rest are a click away; 10,000 stay fast)
PAGE_ROWS = 100
#: how many alerts the index lists above the table (all of them are in the table's "alert" filter)
ALERTS_LISTED = 25
RENEWALS_DAYS = 90
SITE_MANIFEST = "site.json"
#: the reports the model page links, when ``reports`` holds them (``train``/``demo``/``backtest`` write them)
MODEL_REPORTS = {"model_report.html": "the global model report", "backtest.html": "the backtest report"}
_BACK_LINK = '<p style="margin:0 0 12px"><a href="../model.html">← back to the portfolio site</a></p>'
ROW_COLUMNS = ("id", "name", "segment", "csm", "band", "score", "model_score", "delta", "renewal", "days", "arr",
               "alert", "play", "page", "csm_page")


# ---- names of pages ---------------------------------------------------------------------------------------

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def _digest(text: str, n: int = 10) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-")
    return s or "x"


def page_names(ids: list[str]) -> dict[str, str]:
    """A file name per account id: the id itself when it is plain and unique ignoring case, else slug + hash.

    Account ids are untrusted text (``../``, ``<``, very long, differing only in case on a file system that
    ignores it): the hashed form keeps every name safe and distinct.
    """
    lower: dict[str, int] = {}
    for i in ids:
        lower[i.lower()] = lower.get(i.lower(), 0) + 1
    return {i: (i if _SAFE_ID.match(i) and lower[i.lower()] == 1 else f"{_slug(i)}-{_digest(i)}") for i in ids}


def csm_page_name(csm: str) -> str:
    return f"{_slug(csm or 'unassigned')}-{_digest(csm or '')}" if csm else "unassigned"


# ---- small helpers ----------------------------------------------------------------------------------------

def _text(x) -> str:
    if x is None or x is pd.NA or x is pd.NaT or (isinstance(x, float) and math.isnan(x)):
        return ""
    return str(x)


def _money(x) -> str:
    v = _num(x)
    return "" if v is None else f"{v:,.0f}"


def _int(x) -> str:
    v = _num(x)
    return "" if v is None else f"{v:.0f}"


def _signed(x) -> str:
    v = _num(x)
    return "" if v is None else ("0" if round(v) == 0 else f"{v:+.0f}")


def play_name(playbook) -> str:
    return _text(playbook).split(":", 1)[0].strip()


def play_steps(steps) -> list[str]:
    """A play's steps from the batch's ``playbook_steps`` cell ("step; step; …")."""
    text = _text(steps)
    return [s.strip() for s in text.split("; ") if s.strip()] if text else []


def json_for_html(value) -> Markup:
    """JSON that is safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and line separators
    escaped, so no text (``</script>``, ``<!--``) can end or change the block."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return Markup(text)


def _script() -> tuple[Markup, str]:
    """The index's script and its CSP hash source ('sha256-…')."""
    js = resources.files("healthscore.reports").joinpath("static/site.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    return Markup(js), f"'sha256-{digest}'"


# ---- what the pages show ----------------------------------------------------------------------------------

@dataclass
class Book:
    """One CSM's accounts."""

    csm: str
    page: str
    rows: list[dict] = field(default_factory=list)


def _frame(batch: SiteBatch, config: Config) -> pd.DataFrame:
    """The scores with what the pages need next to them: days to renewal, model band, page names."""
    from healthscore.scoring import band_of

    s = batch.scores.copy()
    as_of = pd.Timestamp(batch.as_of) if batch.as_of else pd.NaT
    renewal = pd.to_datetime(s["renewal_date"], errors="coerce")
    s["_days"] = (renewal - as_of).dt.days
    s["_renewal"] = renewal.dt.strftime("%Y-%m-%d").fillna("")
    s["_band"] = s["band"].astype("object").where(s["status"] == "scored").fillna("").astype(str)
    s["_model_band"] = band_of(s["model_score"], config).astype("object").where(s["status"] == "scored") \
        .fillna("").astype(str)
    s["_csm"] = s["csm"].astype("object").fillna("").astype(str)
    s["_page"] = s["account_id"].map(page_names(s["account_id"].tolist()))
    s["_csm_page"] = s["_csm"].map({c: csm_page_name(c) for c in s["_csm"].unique()})
    return s


def _frame_records(s: pd.DataFrame) -> list[dict]:
    """The rows as dicts (``to_dict("records")`` reads Arrow-backed text a cell at a time: 10× slower)."""
    columns = list(s.columns)
    return [dict(zip(columns, values)) for values in zip(*(s[c].tolist() for c in columns))]


def _index_rows(s: pd.DataFrame) -> list[list]:
    def clean(values):
        return [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values]

    cols = [
        s["account_id"].tolist(), [_text(v) for v in s["name"]], [_text(v) for v in s["segment"]],
        s["_csm"].tolist(), s["_band"].tolist(),
        clean(pd.to_numeric(s["score"], errors="coerce").round(0).tolist()),
        clean(pd.to_numeric(s["model_score"], errors="coerce").round(0).tolist()),
        clean(pd.to_numeric(s["delta"], errors="coerce").round(0).tolist()),
        s["_renewal"].tolist(), clean(s["_days"].astype(float).tolist()),
        clean(pd.to_numeric(s["arr"], errors="coerce").round(2).tolist()),
        [_text(v) for v in s["alert"]], [play_name(v) for v in s["playbook"]],
        s["_page"].tolist(), s["_csm_page"].tolist(),
    ]
    out = []
    for row in zip(*cols):
        row = list(row)
        for k in (5, 6, 7, 9):  # whole numbers as ints: "72", not "72.0"
            if row[k] is not None:
                row[k] = int(row[k])
        out.append(row)
    return out


def _band_summary(s: pd.DataFrame) -> list[dict]:
    arr = pd.to_numeric(s["arr"], errors="coerce").fillna(0.0)
    out = []
    for b in (*BANDS, ""):
        final, model = s["_band"] == b, s["_model_band"] == b
        out.append({"band": b, "label": BAND_LABELS[b], "accounts": int(final.sum()), "arr": float(arr[final].sum()),
                    "model_accounts": int(model.sum()), "model_arr": float(arr[model].sum())})
    return out


def _portfolio_tables(batch: SiteBatch, s: pd.DataFrame) -> dict[str, list[dict]]:
    from healthscore.scoring.portfolio import portfolio

    p = batch.portfolio
    if p is not None and "as_of" in p:
        p = p[pd.to_datetime(p["as_of"], errors="coerce").dt.date.astype(str) == batch.as_of]
    if p is None or p.empty:
        scored = batch.scores
        has_contracts = (scored["status"] == "scored").any() and pd.to_numeric(scored["arr"], errors="coerce").notna().any()
        p = portfolio(scored) if has_contracts else pd.DataFrame(columns=["dimension", "value"])
    out = {}
    for dim in ("segment", "csm", "renewal_quarter"):
        part = p[p["dimension"] == dim].sort_values("value", kind="stable")
        out[dim] = [{"value": _text(r["value"]), "accounts": int(r["accounts"]), "arr": float(r["arr"]),
                     "score": _num(r["arr_weighted_score"]), "at_risk_arr": float(r["expected_arr_at_risk_model"]),
                     "at_risk_accounts": int(r.get("accounts_at_risk", 0) or 0),
                     "page": csm_page_name("" if r["value"] == "(unassigned)" else _text(r["value"]))
                     if dim == "csm" else ""}
                    for _, r in part.iterrows()]
    return out


def _history_dates(history: pd.DataFrame | None) -> tuple[pd.DataFrame | None, list]:
    if history is None or history.empty:
        return None, []
    h = history.assign(_day=pd.to_datetime(history["as_of"]).dt.date)
    return h, sorted(h["_day"].unique())


def _distribution(h: pd.DataFrame | None, days: list) -> list[_svg.Spread]:
    if h is None:
        return []
    out = []
    scored = h[h["status"] == "scored"]
    for d in days:
        v = pd.to_numeric(scored.loc[scored["_day"] == d, "score"], errors="coerce").dropna().to_numpy(dtype=float)
        if len(v):
            q = np.quantile(v, [0.1, 0.25, 0.5, 0.75, 0.9])
            out.append(_svg.Spread(d, *(float(x) for x in q), n=int(len(v))))
    return out


def _migration(h: pd.DataFrame | None, days: list, s: pd.DataFrame, as_of: str) -> dict | None:
    """Band of each current account on the previous as-of date (or new) against its band now."""
    if h is None:
        return None
    now = pd.Timestamp(as_of).date() if as_of else None
    earlier = [d for d in days if now is not None and d < now]
    if not earlier:
        return None
    prev_day = earlier[-1]
    prev = h[h["_day"] == prev_day]
    prev_band = dict(zip(prev["account_id"].astype(str),
                         prev["band"].astype("object").where(prev["status"] == "scored").fillna("").astype(str)))
    froms = [*BANDS, "", "new"]
    tos = [*BANDS, ""]
    counts = {(f, t): 0 for f in froms for t in tos}
    for aid, band in zip(s["account_id"], s["_band"]):
        counts[(prev_band.get(aid, "new"), band)] += 1
    label = {**BAND_LABELS, "new": "new since then"}
    return {"previous": prev_day.isoformat(),
            "tos": [label[t] for t in tos],
            "rows": [{"label": label[f], "cells": [counts[(f, t)] for t in tos], "total": sum(counts[(f, t)] for t in tos)}
                     for f in froms if any(counts[(f, t)] for t in tos) or f in BANDS],
            "worse": sum(counts[(f, t)] for f in BANDS for t in BANDS if BANDS.index(t) > BANDS.index(f)),
            "better": sum(counts[(f, t)] for f in BANDS for t in BANDS if BANDS.index(t) < BANDS.index(f))}


def _account_row(r: dict) -> dict:
    return {"id": r["account_id"], "name": _text(r["name"]) or "(no name)", "page": r["_page"],
            "segment": _text(r["segment"]), "band": r["_band"], "band_label": BAND_LABELS.get(r["_band"], r["_band"]),
            "score": _int(r["score"]), "delta": _signed(r["delta"]), "renewal": r["_renewal"],
            "days": "" if _num(r["_days"]) is None else f"{_num(r['_days']):.0f}", "arr": _money(r["arr"]),
            "arr_value": _num(r["arr"]) or 0.0,
            "alert": _text(r["alert"]), "play": play_name(r["playbook"]), "steps": play_steps(r["playbook_steps"]),
            "owner": _text(r["playbook_owner"]), "due": _text(r["playbook_due"]), "csm": r["_csm"],
            "csm_page": r["_csm_page"]}


def _severity(r: dict) -> tuple:
    order = {"at_risk": 0, "watch": 1, "healthy": 2, "": 3}
    score = _num(r["score"])
    return (0 if r["alert"] else 1, order.get(r["band"], 3), score if score is not None else 999, r["name"], r["id"])


def _trend(exp, row: dict, config: Config) -> Markup:
    """The account's score over its history as SVG: coloured by band, alerts ringed (the rule ``score`` uses)."""
    points = []
    prev = None
    rank = {"healthy": 2, "watch": 1, "at_risk": 0}
    for h in exp.history_records:
        st, sc, band = _text(h.get("status")), _num(h.get("score")), _text(h.get("band"))
        if st != "scored" or sc is None:
            continue
        note = ""
        if prev is not None:
            reasons = []
            if sc - prev[0] <= -config.alerts.drop_points:
                reasons.append(f"dropped {prev[0] - sc:.0f} points")
            if band in rank and prev[1] in rank and rank[band] < rank[prev[1]]:
                reasons.append(f"band {prev[1]} → {band}")
            note = "; ".join(reasons)
        points.append(_svg.Point(pd.Timestamp(h["as_of"]).date(), float(sc), band, note))
        prev = (sc, band)
    alert = _text(row.get("alert"))
    if alert and points and points[-1].day.isoformat() == exp.as_of:
        last = points[-1]
        points[-1] = _svg.Point(last.day, last.score, last.band, alert)
    n_alerts = sum(1 for p in points if p.note)
    desc = (f"Score on {len(points)} as-of dates" + (f" from {points[0].day} to {points[-1].day}" if points else "")
            + (f", latest {points[-1].score:.0f}" if points else "") + f"; {n_alerts} alert(s) marked")
    return _svg.trend_chart(points, chart_id="trend", title="Score over time", desc=desc,
                            cuts=(config.bands.watch, config.bands.healthy), colours=_svg.BAND_COLOURS)


# ---- building -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SiteResult:
    """Where the site is and what it holds."""

    root: Path
    index: Path
    accounts: int
    csms: int
    shared: int
    model_reports: tuple[str, ...]


def build_site(scores_dir: str | Path, out: str | Path, *, config: Config | None = None, share: bool = False,
               reports: str | Path | None = None) -> SiteResult:
    """Build the static portfolio site of the current batch of ``scores_dir`` into ``out``; return where it is.

    ``share`` also writes the customer-facing report of every scored account (``share/``), linked from the
    account pages. ``reports`` is a folder holding ``model_report.html`` (written by ``train``) and/or
    ``backtest.html`` (``backtest``), copied into ``model/`` and linked from the model page; without them the
    model page shows what the batch itself says about the model and how to add them. ``config`` gives the band
    cut points, alert threshold and ``share.*`` (use the config ``score`` ran with).
    """
    config = config or Config()
    batch = read_batch(scores_dir)
    out = Path(out).absolute()
    reports_dir = Path(reports) if reports is not None else None
    if reports_dir is not None and not reports_dir.is_dir():
        raise SiteError(f"--reports {reports_dir} is not a folder: give the folder holding model_report.html "
                        "and/or backtest.html (demo writes them to OUT/reports), or leave the option out")
    staging = _staging(out)
    try:
        try:
            result = _write_site(batch, staging, config=config, share=share, reports=reports_dir, final=out)
        except OSError as exc:
            raise SiteError(f"cannot write the site: {exc.strerror or exc} ({exc.filename or staging}); "
                            f"{'the previous site is unchanged' if out.exists() else 'nothing was written'}"
                            ) from None
        _swap(staging, out)
    except BaseException:
        _remove_tree(staging)
        raise
    return result


def _staging(out: Path) -> Path:
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        if out.exists() and not out.is_dir():
            raise SiteError(f"{out} is a file: --out must be a folder for the site (it will hold index.html)")
        if out.is_dir() and any(out.iterdir()) and not (out / SITE_MANIFEST).is_file():
            raise SiteError(f"{out} is not empty and is not a healthscore site (no {SITE_MANIFEST}): refusing to "
                            "replace it; choose a new or empty --out folder")
        for stale in parent.glob(f".{out.name}.*.tmp"):  # left by an interrupted build
            _remove_tree(stale)
        staging = parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
        staging.mkdir()
    except OSError as exc:
        raise SiteError(f"cannot write the site: {exc.strerror or exc} ({exc.filename or parent}); choose another "
                        "--out or fix its permissions") from None
    return staging


def _swap(staging: Path, out: Path) -> None:
    """Put the finished site in place: the old one is renamed away first, then removed (never half a site)."""
    try:
        if out.exists():
            old = out.parent / f".{out.name}.{secrets.token_hex(4)}.old.tmp"
            os.rename(out, old)
            os.rename(staging, out)
            _remove_tree(old)
        else:
            os.rename(staging, out)
    except OSError as exc:
        raise SiteError(f"cannot put the site in place at {out}: {exc.strerror or exc}") from None


class _Writer:
    """Writes pages into the staging folder from a few threads, keeping their names for the site manifest.

    Creating a file costs a few hundred microseconds of kernel time on some disks (ext4 mounted with
    ``discard``: ~0.4 ms per file here), which the threads overlap with rendering the next pages; at most
    ``in_flight`` pages wait in memory.
    """

    def __init__(self, root: Path, *, threads: int = 4, in_flight: int = 256):
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.root = root
        self.pages: list[str] = []
        self._dirs: set[Path] = set()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="site-writer")
        self._slots = threading.BoundedSemaphore(in_flight)
        self._futures: list = []

    def _put(self, path: Path, text: str) -> None:
        try:
            with open(path, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
        finally:
            self._slots.release()

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        if path.parent not in self._dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path.parent)
        self._slots.acquire()
        self._futures.append(self._pool.submit(self._put, path, text))
        self.pages.append(rel)
        return path

    def close(self) -> None:
        """Wait for every page; the first failed write is raised."""
        self._pool.shutdown(wait=True)
        for future in self._futures:
            future.result()


def _remove_tree(path: Path, *, threads: int = 8) -> None:
    """``shutil.rmtree`` with the files unlinked from a few threads (4× faster where unlinking is slow)."""
    from concurrent.futures import ThreadPoolExecutor

    files = [os.path.join(d, f) for d, _, names in os.walk(path) for f in names]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(_unlink_quietly, files, chunksize=256))
    shutil.rmtree(path, ignore_errors=True)


def _unlink_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


def _write_site(batch: SiteBatch, root: Path, *, config: Config, share: bool, reports: Path | None,
                final: Path) -> SiteResult:
    w = _Writer(root)
    try:
        return _write_pages(batch, root, w, config=config, share=share, reports=reports, final=final)
    finally:
        w.close()


def _write_pages(batch: SiteBatch, root: Path, w: _Writer, *, config: Config, share: bool, reports: Path | None,
                 final: Path) -> SiteResult:
    """Every page of the site into ``root``: shared reports, accounts, CSM books, the model page, the index."""
    env = template_env()
    s = _frame(batch, config)
    manifest = batch.manifest or {}
    records = _frame_records(s)
    rows = [_account_row(r) for r in records]
    weights = share_mod.component_weights(batch.scores)
    common = {"as_of": batch.as_of, "batch": batch.name, "model_version": _text(manifest.get("model_version")),
              "accounts": len(s), "scored": int((s["status"] == "scored").sum()), "band_labels": BAND_LABELS,
              "money": _money}
    history, hist_ranges = _by_account(batch.history, then="as_of")
    shared_ids = _write_shared(batch, records, history, hist_ranges, w, env, weights=weights, config=config) \
        if share else set()
    _write_accounts(batch, records, history, hist_ranges, w, env, shared_ids=shared_ids, config=config)
    books = _write_books(rows, w, env, common)
    copied = _write_model_page(s, w, env, common, manifest, weights=weights, reports=reports, config=config)
    index = _write_index(batch, s, rows, books, w, env, common, config=config)
    site_manifest = {"format": 1, "batch": batch.name, "as_of": batch.as_of, "scores": str(batch.root),
                     "model_version": manifest.get("model_version"), "accounts": len(s), "csm_pages": len(books),
                     "shared": len(shared_ids), "model_reports": copied, "pages": len(w.pages) + 1}
    w.write(SITE_MANIFEST, json.dumps(site_manifest, indent=2, sort_keys=True, default=str) + "\n")
    return SiteResult(root=final, index=final / index.relative_to(root), accounts=len(s), csms=len(books),
                      shared=len(shared_ids), model_reports=tuple(copied))




def _write_shared(batch: SiteBatch, records, history, hist_ranges, w: _Writer, env, *, weights, config: Config
                  ) -> set[str]:
    """The customer-facing report of every scored account; their ids."""
    shared_ids: set[str] = set()
    standing = share_mod.standings(batch.scores, config)
    share_tpl = env.get_template("site/share.html")
    for r in records:
        if r["status"] != "scored":
            continue
        aid = r["account_id"]
        own = _rows_of(history, hist_ranges, aid) or {}
        own = [dict(zip(own, values)) for values in zip(*own.values())]
        report = share_mod.shared_report(r, own, weights=weights, standing=standing.get(aid), config=config)
        w.write(f"share/{r['_page']}.html", share_tpl.render(r=report))
        shared_ids.add(aid)
    return shared_ids


def _write_accounts(batch: SiteBatch, records, history, hist_ranges, w: _Writer, env, *, shared_ids: set[str],
                    config: Config) -> None:
    """Per-account pages: one environment, one template, each account's own rows (the batch is read once)."""
    explanations, expl_ranges = _by_account(batch.explanations,
                                            ("account_id", "feature", "component", "value", "contribution"))
    account_tpl = env.get_template("site/account.html")
    for r in records:
        aid = r["account_id"]
        exp = explanation_from_rows(r, history=_rows_of(history, hist_ranges, aid),
                                    explanations=_rows_of(explanations, expl_ranges, aid), account_id=aid)
        ctx = html_context(exp, history_plot=False)
        w.write(f"accounts/{r['_page']}.html", account_tpl.render(
            **ctx, trend=_trend(exp, r, config), csm_page=r["_csm_page"], csm=r["_csm"],
            share_page=r["_page"] if aid in shared_ids else None))


def _write_books(rows, w: _Writer, env, common: dict) -> dict[str, Book]:
    """Per-CSM books of business: their accounts, renewals in the next 90 days, the plays due."""
    books: dict[str, Book] = {}
    for row in rows:
        books.setdefault(row["csm"], Book(row["csm"], row["csm_page"])).rows.append(row)
    csm_tpl = env.get_template("site/csm.html")
    for key in sorted(books):
        book = books[key]
        accounts = sorted(book.rows, key=_severity)
        plays = sorted((r for r in book.rows if r["play"]), key=lambda r: (r["due"], _severity(r)))
        renewals = sorted((r for r in book.rows if r["days"] != "" and 0 <= int(r["days"]) <= RENEWALS_DAYS),
                          key=lambda r: (int(r["days"]), r["name"], r["id"]))
        arr = sum(x["arr_value"] for x in book.rows)
        w.write(f"csm/{book.page}.html", csm_tpl.render(
            **common, csm=book.csm, page=book.page, rows=accounts, plays=plays, renewals=renewals,
            book_arr=arr, band_counts={b: sum(1 for x in book.rows if x["band"] == b) for b in (*BANDS, "")},
            renewals_days=RENEWALS_DAYS))
    return books


def _write_model_page(s: pd.DataFrame, w: _Writer, env, common: dict, manifest: dict, *, weights, reports,
                      config: Config) -> list[str]:
    """The model page, and the full reports beside it (when ``reports`` holds them); the reports copied."""
    copied = []
    if reports is not None:
        for name in MODEL_REPORTS:
            src = reports / name
            if src.is_file():
                html = src.read_text(encoding="utf-8")
                html = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + "\n" + _BACK_LINK, html, count=1)
                w.write(f"model/{name}", html)
                copied.append(name)
    scored = s[s["status"] == "scored"]
    hand = config.scorecard.weights
    hand_total = sum(hand.values()) or 1.0
    weight_rows = [{"component": COMPONENT_LABELS[c], "batch": weights.get(c, 0),
                    "hand": 100.0 * hand.get(c, 0.0) / hand_total} for c in COMPONENTS]
    by_band = []
    for b in BANDS:
        part = scored[scored["_band"] == b]
        mpart = scored[scored["_model_band"] == b]
        by_band.append({"label": BAND_LABELS[b], "accounts": len(part), "model_accounts": len(mpart),
                        "expected": _num(pd.to_numeric(mpart["probability"], errors="coerce").mean())})
    weights_chart = _svg.bar_chart(
        [r["component"] for r in weight_rows],
        [("this batch (share of mean |points|)", [float(r["batch"]) for r in weight_rows]),
         ("hand-weighted scorecard", [r["hand"] for r in weight_rows])],
        chart_id="weights-chart", title="How much each component counts, %",
        desc="Share of the mean absolute contribution per component in this batch against the hand-weighted "
             "scorecard's weights",
        value_label="weight, % of the score's movement", fmt=lambda v: f"{v:.0f}%")
    w.write("model.html", env.get_template("site/model.html").render(
        **common, model_uri=_text(manifest.get("model_uri")), data_source=_text(manifest.get("data_source")),
        weight_rows=weight_rows, weights_chart=weights_chart, by_band=by_band, reports=copied,
        report_labels=MODEL_REPORTS, bands=config.bands))
    return copied


def _write_index(batch: SiteBatch, s: pd.DataFrame, rows, books: dict, w: _Writer, env, common: dict, *,
                 config: Config) -> Path:
    """The portfolio index: bands, ARR, charts, migration, alerts and the table of every account."""
    h, days = _history_dates(batch.history)
    band_rows = _band_summary(s)
    tables = _portfolio_tables(batch, s)
    spreads = _distribution(h, days)
    alerts = sorted((r for r in rows if r["alert"]), key=_severity)
    labels_b = [BAND_LABELS[b] for b in BANDS]
    arr_chart = _svg.bar_chart(
        labels_b, [("final score (model + CSM adjustments)", [r["arr"] for r in band_rows[:3]]),
                   ("model score (model alone)", [r["model_arr"] for r in band_rows[:3]])],
        chart_id="arr-by-band", title="ARR by band", value_label="ARR",
        desc="ARR of the accounts in each band, by the final score and by the model score",
        colours=("#1f6feb", "#8c959f"))
    quarter = tables["renewal_quarter"]
    risk_chart = _svg.bar_chart(
        [r["value"] for r in quarter], [("expected ARR at risk", [r["at_risk_arr"] for r in quarter]),
                                        ("ARR renewing", [r["arr"] for r in quarter])],
        chart_id="risk-by-quarter", title="ARR renewing and expected ARR at risk, by renewal quarter",
        value_label="ARR (expected at risk = ARR × (1 − probability of renewal))",
        desc="For each renewal quarter, the ARR renewing and the expected ARR at risk", colours=("#c62828", "#8c959f"))
    segment = tables["segment"]
    segment_chart = _svg.bar_chart(
        [r["value"].replace("_", " ") for r in segment], [("expected ARR at risk", [r["at_risk_arr"] for r in segment])],
        chart_id="risk-by-segment", title="Expected ARR at risk by segment", value_label="ARR",
        desc="Expected ARR at risk in each segment", colours=("#c62828",))
    dist_desc = ("Score distribution of scored accounts on each as-of date: " + "; ".join(
        f"{sp.day}: median {sp.q50:.0f} ({sp.n} scores)" for sp in spreads[-6:])) if spreads else "no history"
    dist_chart = _svg.distribution_chart(spreads, chart_id="distribution", title="Score distribution over time",
                                         desc=dist_desc, cuts=(config.bands.watch, config.bands.healthy))
    js, js_hash = _script()
    segments = sorted({r["segment"] for r in rows if r["segment"]})
    csms = sorted(books)
    return w.write("index.html", env.get_template("site/index.html").render(
        **common, band_rows=band_rows, tables=tables, spreads=spreads, migration=_migration(h, days, s, batch.as_of),
        alerts=alerts[:ALERTS_LISTED], alert_count=len(alerts), arr_chart=arr_chart, risk_chart=risk_chart,
        segment_chart=segment_chart, dist_chart=dist_chart, books=[books[k] for k in csms],
        book_pages={b.page for b in books.values()},
        segments=segments, data=json_for_html({"columns": list(ROW_COLUMNS), "rows": _index_rows(s)}),
        script=js, script_hash=js_hash, page_rows=PAGE_ROWS, bands=config.bands))


def _by_account(frame: pd.DataFrame | None, columns: tuple[str, ...] | None = None, *, then: str | None = None
                ) -> tuple[dict[str, list] | None, dict[str, tuple[int, int]]]:
    """``frame``'s columns as plain lists, sorted by account (then ``then``), and each account's row range.

    An account's rows are then a slice of each list: pandas' per-call cost (~0.1–1 ms to filter, sort or list a
    few rows of Arrow-backed text) is paid once per table instead of once per account. The order of an
    account's own rows is kept (the sort is stable).
    """
    if frame is None:
        return None, {}
    keys = ["account_id"] + ([then] if then else [])
    f = frame.assign(account_id=frame["account_id"].astype(str)).sort_values(keys, kind="stable")
    lists = {c: f[c].tolist() for c in (columns or f.columns) if c in f}
    ids = f["account_id"].to_numpy()
    if not len(ids):
        return lists, {}
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    return lists, {str(ids[a]): (int(a), int(b)) for a, b in zip(starts, ends)}


def _rows_of(lists: dict[str, list] | None, ranges: dict[str, tuple[int, int]], account_id: str
             ) -> dict[str, list] | None:
    """One account's rows as a mapping of column to list (what ``explanation_from_rows`` takes)."""
    if lists is None:
        return None
    a, b = ranges.get(account_id, (0, 0))
    return {c: values[a:b] for c, values in lists.items()}
