"""The portfolio site and the customer-facing report (issue #17), on the 250-account simulated world scored twice.

The world is built once per module: ``simulated_run``'s second batch (as of 2024-04-01, history back to
2024-03-01), with hostile text put into it — a name that is a script and a spreadsheet formula, a CSM name
that breaks out of an attribute, an adjustment reason that closes a script, an account id with ``../`` and
quotes — and published as a real batch. The browser tests drive headless Chromium over the DevTools protocol
(``_browser.py``); their screenshots go to ``test-artifacts/site/`` at the repository root.
"""

from __future__ import annotations

import dataclasses
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from _browser import CHROMIUM, SKIP_REASON, Browser
from _explain_world import simulated_run
from healthscore.config import SHARE_BLOCKED_WORDS, Config, ConfigError, config_from_dict
from healthscore.errors import HealthscoreError
from healthscore.reports.share import SCORE_FIELDS, write_share
from healthscore.reports.site import build_site, json_for_html, page_names

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "site"
HOSTILE_NAME = """<script>document.body.setAttribute('data-pwned','1')</script> "Q" 'S' & =HYPERLINK("http://evil.example","x")"""
HOSTILE_CSM = """"><img src=x onerror="document.body.setAttribute('data-pwned','2')">Eve"""
HOSTILE_REASON = """</script><script>window.__pwned = 3</script> & "quoted" (Mallory Author)"""
HOSTILE_ID = """A-<b>"../evil'"""
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)


# ---- the world ------------------------------------------------------------------------------------------------

def _hostile_batch():
    """The second batch with hostile text in it; returns (batch, the ids it touched)."""
    second = simulated_run()["second"]
    scores = second.scores.copy()
    scored = scores[(scores["status"] == "scored") & (scores["adjustment"] != 0)]
    hostile = scored["account_id"].iloc[0]
    i = scores.index[scores["account_id"] == hostile][0]
    scores.loc[i, "name"] = HOSTILE_NAME
    scores.loc[i, "adjustment_reasons"] = f"{scores.loc[i, 'adjustment']:+.0f} {HOSTILE_REASON}"
    first_csm = sorted(scores["csm"].dropna().unique())[0]
    scores.loc[scores["csm"] == first_csm, "csm"] = HOSTILE_CSM
    renamed = scores.loc[(scores["status"] == "scored") & (scores["account_id"] != hostile), "account_id"].iloc[3]
    frames = {"scores": scores, "explanations": second.explanations.copy(), "history": second.history.copy()}
    for frame in frames.values():
        frame["account_id"] = frame["account_id"].astype(object).where(frame["account_id"] != renamed, HOSTILE_ID)
    from healthscore.scoring import portfolio

    return (dataclasses.replace(second, **frames, portfolio=portfolio(frames["scores"])),
            {"hostile": hostile, "renamed": HOSTILE_ID, "csm": HOSTILE_CSM})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from healthscore.scoring import write_batch

    root = tmp_path_factory.mktemp("site-world")
    batch, ids = _hostile_batch()
    write_batch(batch, root / "scores")
    reports = root / "reports"
    reports.mkdir()
    (reports / "model_report.html").write_text("<!DOCTYPE html><html lang='en'><head><title>m</title></head><body>"
                                               "<h1>What the model learned</h1></body></html>", encoding="utf-8")
    result = build_site(root / "scores", root / "site", share=True, reports=reports)
    scores = pd.read_parquet(root / "scores" / "scores.parquet")
    return {"root": root, "scores_dir": root / "scores", "site": result.root, "result": result, "scores": scores,
            "history": pd.read_parquet(root / "scores" / "history.parquet"), **ids}


def _html(world, rel: str) -> str:
    return (world["site"] / rel).read_text(encoding="utf-8")


def _page(world, account_id: str, folder: str = "accounts") -> str:
    names = page_names(world["scores"]["account_id"].astype(str).tolist())
    return f"{folder}/{names[account_id]}.html"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.scripts, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "script":
            self.scripts.append(a.get("type", "text/javascript"))


def _parse(html: str) -> _Links:
    p = _Links()
    p.feed(html)
    return p


# ---- the pages --------------------------------------------------------------------------------------------------

def test_the_site_has_every_page_and_every_link_resolves(world):
    site, scores = world["site"], world["scores"]
    r = world["result"]
    assert r.index == site / "index.html" and r.accounts == len(scores) == 250
    assert len(list((site / "accounts").glob("*.html"))) == len(scores)
    assert len(list((site / "csm").glob("*.html"))) == r.csms == scores["csm"].nunique(dropna=False)
    assert len(list((site / "share").glob("*.html"))) == r.shared == int((scores["status"] == "scored").sum())
    assert r.model_reports == ("model_report.html",)
    pages = [site / "index.html", site / "model.html", *sorted((site / "csm").glob("*.html")),
             *sorted((site / "accounts").glob("*.html"))[:40]]
    checked = 0
    for page in pages:
        for href in _parse(page.read_text(encoding="utf-8")).hrefs:
            target = href.split("#", 1)[0]
            if target:
                assert not re.match(r"[a-z]+:", target), (page, href)  # relative only: no http, no file://
                assert (page.parent / target).resolve().is_file(), (page.name, href)
                checked += 1
    assert checked > 500
    # linked both ways: the index links every account (in its JSON rows), every account page links back
    rows = _index_data(world)
    assert {row[rows["columns"].index("id")] for row in rows["rows"]} == set(scores["account_id"])
    account = _html(world, _page(world, world["hostile"]))
    assert 'href="../index.html"' in account and 'href="../share/' in account and 'href="../csm/' in account
    assert '<a href="../model.html">← back to the portfolio site</a>' in _html(world, "model/model_report.html")


def _index_data(world) -> dict:
    html = _html(world, "index.html")
    block = re.search(r'<script type="application/json" id="rows-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(block)


def test_the_index_summaries_come_from_the_batch(world):
    scores = world["scores"]
    html = _html(world, "index.html")
    scored = scores[scores["status"] == "scored"]
    for band, label in (("healthy", "healthy"), ("watch", "watch"), ("at_risk", "at risk")):
        n = int((scored["band"] == band).sum())
        arr = scored.loc[scored["band"] == band, "arr"].sum()
        assert f'<div class="k">{label}</div><div class="v">{n}</div>' in html
        assert f"ARR {arr:,.0f}" in html
    alerts = int(scores["alert"].notna().sum())
    assert f"Needs attention now: {alerts} alerts" in html
    # band migration: every current account appears once, from its band on the previous date
    h = world["history"]
    prev = h[pd.to_datetime(h["as_of"]) == pd.Timestamp("2024-03-01")].set_index("account_id")
    moved_worse = sum(1 for aid, b in zip(scores["account_id"], scores["band"])
                      if aid in prev.index and prev.loc[aid, "status"] == "scored" and isinstance(b, str)
                      and ["at_risk", "watch", "healthy"].index(b) < ["at_risk", "watch", "healthy"].index(prev.loc[aid, "band"]))
    assert f"Since 2024-03-01: {moved_worse} accounts moved to a worse band" in html
    assert html.count('<svg class="chart"') == 4 and 'id="distribution"' in html


def test_csm_books_list_the_weekly_review(world):
    scores = world["scores"]
    csm = sorted(c for c in scores["csm"].dropna().unique() if c != HOSTILE_CSM)[0]
    from healthscore.reports.site import csm_page_name

    html = _html(world, f"csm/{csm_page_name(csm)}.html")
    mine = scores[scores["csm"] == csm]
    plays = mine[mine["playbook"].notna()]
    table = html.split('id="plays-table"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") - 1 == len(plays)  # one header row
    for _, r in plays.iterrows():
        assert r["playbook_due"] in table and r["playbook_owner"] in table
    days = (pd.to_datetime(mine["renewal_date"]) - pd.Timestamp("2024-04-01")).dt.days
    soon = int(((days >= 0) & (days <= 90)).sum())
    renewals = html.split('id="renewals"', 1)[1]
    assert (renewals.split("</table>", 1)[0].count("<tr>") - 1 if soon else 0) == soon


def test_same_batch_same_bytes(world, tmp_path):
    again = build_site(world["scores_dir"], tmp_path / "again", share=True, reports=world["root"] / "reports")
    ours = {p.relative_to(world["site"]): p.read_bytes() for p in world["site"].rglob("*") if p.is_file()}
    theirs = {p.relative_to(again.root): p.read_bytes() for p in again.root.rglob("*") if p.is_file()}
    assert ours.keys() == theirs.keys()
    assert [k for k in ours if ours[k] != theirs[k]] == []


def test_hostile_text_is_escaped_on_every_page(world):
    site = world["site"]
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 400
    for page in pages:
        html = page.read_text(encoding="utf-8")
        parsed = _parse(html)
        assert "img" not in parsed.tags, page  # the CSM name's <img onerror> never became an element
        assert "<script>document" not in html and "<script>window.__pwned" not in html, page
        assert "b" not in parsed.tags, page  # the account id's <b> neither
        if page.name == "index.html":
            assert parsed.scripts == ["application/json", "text/javascript"]
        else:
            assert parsed.scripts == [], page  # no page but the index has a script
    index = _html(world, "index.html")
    assert "\\u003cscript\\u003edocument.body" in index  # the name inside the JSON block, escaped
    account = _html(world, _page(world, world["hostile"]))
    assert "&lt;script&gt;document.body.setAttribute(&#39;data-pwned&#39;,&#39;1&#39;)&lt;/script&gt;" in account
    assert "=HYPERLINK(&#34;http://evil.example&#34;,&#34;x&#34;)" in account
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned = 3&lt;/script&gt;" in account
    # the hostile id got a safe page name, and its page exists
    name = page_names([HOSTILE_ID])[HOSTILE_ID]
    assert re.fullmatch(r"[a-z0-9-]+", name) and (site / "accounts" / f"{name}.html").is_file()


def test_json_block_can_never_be_closed_by_data():
    text = str(json_for_html({"n": "</script><!-- & \u2028"}))
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"n": "</script><!-- & \u2028"}


# ---- the customer-facing report -------------------------------------------------------------------------------

def _blocked(text: str) -> list[str]:
    low = text.lower()
    found = [w for w in ("churn", "risk", "probab", "renewal probability", "overdue", "unpaid", "debt", "arrears")
             if w in low]
    found += re.findall(r"\b(owed|owing|arr)\b", low)
    return found


def _internal_values(row: pd.Series) -> list[str]:
    """Every text a leak would show: each internal column of the account (not in the allow-list), as written."""
    out = []
    for column, value in row.items():
        if column in SCORE_FIELDS or value is None or (isinstance(value, float) and value != value):
            continue
        if column in ("weakest_component", "lifecycle_stage", "stale_data", "advocate", "model_version"):
            continue  # a component or stage name, a flag, a version: words the report uses in its own sense
        if isinstance(value, str):
            out.append(value)
            out += re.findall(r"\(([^()]+)\)", value)  # adjustment authors, alert movers
            if column == "playbook":
                out += [s.strip() for s in value.split(":", 1)[-1].split(";")]
        elif isinstance(value, (int, float)) and column in ("arr", "probability", "adjustment", "delta",
                                                           "peer_percentile", "previous_score"):
            if column == "arr":
                out += [f"{value:,.0f}", f"{value:.0f}", f"{value:.2f}"]
            elif column == "probability":
                out += [f"{100 * value:.1f}%", f"{value:.3f}"]
        elif isinstance(value, pd.Timestamp) and column == "renewal_date":
            out.append(value.strftime("%Y-%m-%d"))
    return [v for v in out if len(v) >= 4]


def test_shared_report_holds_only_allowed_fields(world):
    scores = world["scores"]
    scored = scores[scores["status"] == "scored"]
    picks = [world["hostile"],
             scored.loc[scored["alert"].notna() & scored["playbook"].notna(), "account_id"].iloc[0],
             scored.loc[scored["playbook"].str.startswith("finance_outreach", na=False), "account_id"].iloc[0]
             if scored["playbook"].str.startswith("finance_outreach", na=False).any() else scored["account_id"].iloc[1],
             HOSTILE_ID]
    history_days = {d.strftime("%Y-%m-%d") for d in pd.to_datetime(world["history"]["as_of"]).unique()}
    for aid in picks:
        row = scores[scores["account_id"] == aid].iloc[0]
        html = _html(world, _page(world, aid, "share"))
        own_name = str(row["name"])
        escaped_name = own_name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
            .replace('"', "&#34;").replace("'", "&#39;")
        rest = html.replace(escaped_name, "")
        for value in _internal_values(row):
            if value in history_days:
                continue  # a date the trend shows anyway
            esc = value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&#34;").replace("'", "&#39;")
            assert value not in rest and esc not in rest, (aid, value)
        assert _blocked(rest) == [], (aid, _blocked(rest))
        for other_id, other_name in zip(scores["account_id"], scores["name"]):
            if other_id == aid:
                continue
            assert other_id not in rest, (aid, other_id)
            if isinstance(other_name, str) and len(other_name) > 4 and other_name not in own_name:
                assert other_name.replace("&", "&amp;").replace("'", "&#39;") not in rest, (aid, other_name)
        assert "<script" not in html.lower()
        assert f'id="shared-score">{int(row["model_score"])}<' in html  # the model score (share.score: model)


def test_shared_report_percentile_needs_enough_peers(world, tmp_path):
    scores = world["scores"]
    enterprise = scores[(scores["segment"] == "enterprise") & (scores["status"] == "scored")]
    aid = enterprise["account_id"].iloc[0]
    few = config_from_dict({"share": {"min_peers": len(enterprise) + 1}})
    html = write_share(aid, world["scores_dir"], tmp_path / "few.html", config=few).read_text(encoding="utf-8")
    assert 'id="standing"' not in html
    enough = config_from_dict({"share": {"min_peers": len(enterprise)}})
    html = write_share(aid, world["scores_dir"], tmp_path / "ok.html", config=enough).read_text(encoding="utf-8")
    v = enterprise["model_score"].astype(float)
    mine = float(enterprise.loc[enterprise["account_id"] == aid, "model_score"].iloc[0])
    higher = round(100 * ((v < mine).sum() + 0.5 * ((v == mine).sum() - 1)) / (len(v) - 1))
    assert f"Among the {len(v) - 1} other enterprise companies we work with, your score is\n  higher than " \
           f"<strong>{higher}%</strong>" in html


def test_share_config_refuses_internal_words():
    with pytest.raises(ConfigError, match=r"share.band_labels.at_risk: 'At risk' says 'risk'"):
        config_from_dict({"share": {"band_labels": {"healthy": "Good", "watch": "Ok", "at_risk": "At risk"}}})
    with pytest.raises(ConfigError, match=r"share.plays.finance_outreach: .* says 'overdue'"):
        config_from_dict({"share": {"plays": {"finance_outreach": ["Pay your overdue invoices"]}}})
    with pytest.raises(ConfigError, match=r"share.plays: unknown play 'advocat'; did you mean 'advocate'\?"):
        config_from_dict({"share": {"plays": {"advocat": ["Tell your story"]}}})
    with pytest.raises(ConfigError, match=r"share.min_peers: must be ≥ 2"):
        config_from_dict({"share": {"min_peers": 1}})
    assert "risk" in SHARE_BLOCKED_WORDS and Config().share.min_peers == 10


# ---- the commands and their errors ------------------------------------------------------------------------------

def _run(capsys, *argv: str) -> tuple[int, str, str]:
    from healthscore import cli as cli_module

    try:
        cli_module.main(list(argv))
        code = 0
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_site_and_share_commands(world, tmp_path, capsys):
    code, out, _ = _run(capsys, "site", "--scores", str(world["scores_dir"]), "--out", str(tmp_path / "s"))
    assert code == 0 and f"open {tmp_path / 's' / 'index.html'}" in " ".join(out.split())
    assert not (tmp_path / "s" / "share").exists()
    aid = world["scores"].loc[world["scores"]["status"] == "scored", "account_id"].iloc[0]
    code, out, _ = _run(capsys, "share", aid, "--scores", str(world["scores_dir"]), "--out", str(tmp_path / "c.html"))
    assert code == 0 and (tmp_path / "c.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    for command in ("site", "share"):
        code, out, _ = _run(capsys, command, "--help")
        assert code == 0 and "Usage" in out


def test_errors_a_user_can_hit_are_one_paragraph(world, tmp_path, capsys):
    code, _, err = _run(capsys, "site", "--scores", str(tmp_path / "nope"), "--out", str(tmp_path / "s"))
    assert code == 2 and "does not exist" in err and "healthscore score --out" in err
    (tmp_path / "empty").mkdir()
    code, _, err = _run(capsys, "site", "--scores", str(tmp_path / "empty"), "--out", str(tmp_path / "s"))
    assert code == 2 and "holds no complete score batch" in err
    code, _, err = _run(capsys, "share", "A-0000", "--scores", str(world["scores_dir"]), "--out",
                        str(tmp_path / "x.html"))
    assert code == 2 and "account 'A-0000' is not in the batch" in err and "did you mean" in err
    unscored = world["scores"].loc[world["scores"]["status"] != "scored", "account_id"].iloc[0]
    with pytest.raises(HealthscoreError, match="there is no health report to share"):
        write_share(unscored, world["scores_dir"], tmp_path / "u.html")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(HealthscoreError, match="is not a healthscore site"):
        build_site(world["scores_dir"], tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_rebuild_replaces_the_whole_site(world, tmp_path):
    first = build_site(world["scores_dir"], tmp_path / "s", share=True)
    stray = first.root / "accounts" / "gone.html"
    stray.write_text("old")
    build_site(world["scores_dir"], tmp_path / "s")
    assert not stray.exists() and not (tmp_path / "s" / "share").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # nothing left beside it


def test_score_builds_the_site_with_site_option(tmp_path):
    from _ops_world import cli, ops_world

    w = ops_world()
    done = cli("score", "--data", str(w["data"]), "--as-of", "2024-04-01", "--out", str(tmp_path / "out"),
               "--model", w["model_uri"], "--site", str(tmp_path / "site"), "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"open {tmp_path / 'site' / 'index.html'}" in " ".join(done.stdout.split())
    site = json.loads((tmp_path / "site" / "site.json").read_text())
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert site["batch"] == manifest["batch"] and site["accounts"] == manifest["accounts"] == 250


# ---- in a real browser ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    with Browser(width=1280, height=900) as b:
        yield b


def _open(b: Browser, path: Path, *, ready: bool = False) -> None:
    b.clear()
    b.goto(path.resolve().as_uri(), ready="document.documentElement.dataset.ready === '1'" if ready else None)


def _offline(b: Browser) -> list[str]:
    return [u for u in b.requests() if not u.startswith(("file:", "data:", "about:"))]


A11Y = """(() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push('no lang');
  const hs = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1]);
  if (hs[0] !== 1) problems.push('first heading is not h1');
  hs.forEach((h, i) => { if (i && h > hs[i - 1] + 1) problems.push('heading skips from h' + hs[i - 1] + ' to h' + h); });
  if (document.querySelectorAll('h1').length !== 1) problems.push('not one h1');
  document.querySelectorAll('table').forEach(t => { if (!t.querySelector('th')) problems.push('table without headers: ' + t.id); });
  document.querySelectorAll('svg.chart').forEach(s => {
    const title = s.querySelector('title');
    if (s.getAttribute('role') !== 'img' || !title || !title.textContent.trim()) problems.push('chart without alt: ' + s.id);
  });
  document.querySelectorAll('img').forEach(i => { if (!i.alt) problems.push('img without alt'); });
  document.querySelectorAll('input,select').forEach(c => {
    if (!document.querySelector('label[for="' + c.id + '"]')) problems.push('control without label: ' + c.id);
  });
  return problems;
})()"""

ROWS = "document.querySelectorAll('#accounts tbody tr').length"
COUNT = "+document.getElementById('match-count').dataset.count"


@pytest.mark.browser
@needs_chromium
def test_index_in_chromium_offline_accessible_and_filterable(world, browser):
    b, scores = browser, world["scores"]
    _open(b, world["site"] / "index.html", ready=True)
    assert b.console_errors() == []
    assert _offline(b) == []
    assert b.evaluate(A11Y) == []
    assert b.evaluate(COUNT) == len(scores) and b.evaluate(ROWS) == 100  # the first page of rows
    b.screenshot(ARTIFACTS / "index.png")
    # filter by band: exactly the at-risk accounts of scores.parquet
    at_risk = scores[scores["band"] == "at_risk"]
    b.select_option("#f-band", "at_risk")
    assert b.evaluate(COUNT) == len(at_risk)
    assert b.evaluate(ROWS) == min(100, len(at_risk))
    assert set(b.evaluate("[...document.querySelectorAll('#accounts tbody .band')].map(e => e.textContent)")) == {"at risk"}
    b.evaluate("document.getElementById('table').scrollIntoView()")
    b.screenshot(ARTIFACTS / "index-filtered.png")
    # type a search: the at-risk accounts whose name or id holds it
    b.type("#q", "group")
    expected = at_risk[at_risk["name"].str.lower().str.contains("group") | at_risk["account_id"].str.lower().str.contains("group")]
    b.wait_for(f"{COUNT} === {len(expected)}")
    ids = b.evaluate("[...document.querySelectorAll('#accounts tbody tr')].map(tr => tr.dataset.id)")
    assert sorted(ids) == sorted(expected["account_id"]) and len(ids) > 0
    # renewals within 90 days, every band, no search
    b.select_option("#f-band", "")
    b.evaluate("(() => { const q = document.getElementById('q'); q.value = ''; q.dispatchEvent(new Event('input')); })()")
    b.select_option("#f-renewal", "90")
    days = (pd.to_datetime(scores["renewal_date"]) - pd.Timestamp("2024-04-01")).dt.days
    b.wait_for(f"{COUNT} === {int(((days >= 0) & (days <= 90)).sum())}")
    # sort by score, ascending: the first row is the lowest score
    b.click("#accounts th[data-sort='score'] button")
    first = b.evaluate("document.querySelector('#accounts tbody tr td.score').textContent")
    soon = scores[(days >= 0) & (days <= 90)]
    assert float(first) == soon["score"].min()
    assert b.console_errors() == []


@pytest.mark.browser
@needs_chromium
def test_account_page_opens_from_the_index_with_the_numbers_of_scores_parquet(world, browser):
    b, scores = browser, world["scores"]
    _open(b, world["site"] / "index.html", ready=True)
    b.select_option("#f-alert", "yes")
    aid = b.evaluate("document.querySelector('#accounts tbody tr').dataset.id")
    b.clear()
    b.click("#accounts tbody tr a")
    b.wait_event("Page.loadEventFired")
    b.wait_for("document.getElementById('score') !== null")
    row = scores[scores["account_id"] == aid].iloc[0]
    text = b.evaluate("Object.fromEntries(['account-id', 'account-name', 'score', 'band', 'probability', 'alert']"
                      ".map(id => [id, (document.getElementById(id) || {}).textContent]))")
    assert text["account-id"] == aid and text["account-name"] == row["name"]
    assert text["score"] == f"{row['score']:.0f}" and text["band"] == row["band"].replace("_", " ")
    assert text["probability"] == f"{100 * row['probability']:.1f}%"
    assert row["alert"] in text["alert"]
    assert b.evaluate("document.querySelectorAll('#trend circle.marker').length") >= 1  # today's alert is marked
    assert b.console_errors() == [] and _offline(b) == []
    assert b.evaluate(A11Y) == []
    b.screenshot(ARTIFACTS / "account.png", full_page=True)
    # and on to its CSM's book of business
    b.clear()
    b.click("nav a[href^='../csm/']")
    b.wait_event("Page.loadEventFired")
    b.wait_for("document.getElementById('csm-name') !== null")
    csm = row["csm"] if isinstance(row["csm"], str) else ""
    assert b.evaluate("document.getElementById('csm-name').textContent").endswith(csm or "Accounts without a CSM")
    assert aid in b.evaluate("document.getElementById('accounts-table').textContent")
    assert b.console_errors() == [] and b.evaluate(A11Y) == []
    b.screenshot(ARTIFACTS / "csm.png", full_page=True)


@pytest.mark.browser
@needs_chromium
def test_hostile_text_is_inert_in_the_browser(world, browser):
    b = browser
    _open(b, world["site"] / "index.html", ready=True)
    b.type("#q", "evil.example")
    b.wait_for(f"{COUNT} === 1")
    assert b.evaluate("document.querySelector('#accounts tbody tr a').textContent") == HOSTILE_NAME
    b.evaluate("(() => { const q = document.getElementById('q'); q.value = '../evil'; q.dispatchEvent(new Event('input')); })()")
    b.wait_for(f"{COUNT} === 1 && document.querySelector('#accounts tbody tr').dataset.id === {json.dumps(HOSTILE_ID)}")
    b.clear()
    b.click("#accounts tbody tr a")
    b.wait_event("Page.loadEventFired")
    b.wait_for("document.getElementById('account-id') !== null")
    assert b.evaluate("document.getElementById('account-id').textContent") == HOSTILE_ID
    for page in (_page(world, world["hostile"]), _page(world, world["hostile"], "share"), "index.html"):
        _open(b, world["site"] / page)
        assert b.evaluate("document.body.getAttribute('data-pwned')") is None
        assert b.evaluate("window.__pwned === undefined")
        assert b.console_errors() == [], page
    _open(b, world["site"] / _page(world, world["hostile"]))
    assert b.evaluate("document.getElementById('account-name').textContent") == HOSTILE_NAME
    assert HOSTILE_REASON in b.evaluate("document.getElementById('adjustments').textContent")
    from healthscore.reports.site import csm_page_name

    _open(b, world["site"] / "csm" / f"{csm_page_name(HOSTILE_CSM)}.html")
    assert b.evaluate("document.getElementById('csm-name').textContent") == "Book of business: " + HOSTILE_CSM
    assert b.evaluate("document.querySelectorAll('img').length") == 0
    assert b.evaluate("document.body.getAttribute('data-pwned')") is None


@pytest.mark.browser
@needs_chromium
def test_shared_report_in_chromium(world, browser):
    b, scores = browser, world["scores"]
    aid = scores.loc[(scores["status"] == "scored") & scores["playbook"].notna(), "account_id"].iloc[0]
    _open(b, world["site"] / _page(world, aid, "share"))
    assert b.console_errors() == [] and _offline(b) == []
    assert b.evaluate(A11Y) == []
    text = b.evaluate("document.body.innerText")
    row = scores[scores["account_id"] == aid].iloc[0]
    assert f"{int(row['model_score'])} out of 100" in text
    assert _blocked(text.replace(str(row["name"]), "")) == []
    assert b.evaluate("document.querySelectorAll('#steps li').length") >= 1
    b.screenshot(ARTIFACTS / "share.png", full_page=True)
    print("screenshots:", *(ARTIFACTS / n for n in ("index.png", "csm.png", "account.png", "share.png")))


def test_a_batch_of_score_table_builds_too(world, tmp_path):
    # `score --table` publishes scores and explanations only: no as-of date, contracts, CSMs, plays or history
    from healthscore.explain import CONTRIB_COLUMNS
    from healthscore.io.output import OutputDir

    s = world["scores"]
    flat = s[["account_id", "status", "probability", "model_score", "score", "baseline", *CONTRIB_COLUMNS, "band",
              "driver_1", "model_version"]]
    explanations = pd.read_parquet(world["scores_dir"] / "explanations.parquet").drop(columns=["as_of"])
    with OutputDir(tmp_path / "flat") as od:
        od.publish({"scores.parquet": flat, "explanations.parquet": explanations}, as_of=None,
                   info={"model_version": "1"})
    result = build_site(tmp_path / "flat", tmp_path / "site", share=True)
    assert result.accounts == len(s) and result.csms == 1 and result.shared == int((s["status"] == "scored").sum())
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "This is the first batch in the history" in index and "No alerts in this batch." in index
