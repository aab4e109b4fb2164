"""Reviewer reports: the per-account explanation (numbers that add up, hostile text), the global model report,
and both rendered in a real headless browser."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from _explain_world import hand_scores, simulated_run
from healthscore.errors import HealthscoreError
from healthscore.reports.account import (
    load_account,
    render_html,
    render_terminal,
    split_rounded,
    write_account_html,
)

HOSTILE_NAME = """<script>document.body.setAttribute('data-pwned','1')</script> "Q" 'S' & Co [bold red]x[/]"""
HOSTILE_REASON = """<img src=x onerror="document.body.setAttribute('data-pwned','2')"> & "quoted" \x1b[31mred"""


def _terminal(exp) -> str:
    buf = io.StringIO()
    render_terminal(exp, Console(file=buf, width=140, color_system=None, force_terminal=False))
    return buf.getvalue()


# ---- numbers that add up --------------------------------------------------------------------------------


def test_split_rounded_adds_up_and_moves_each_part_by_at_most_one_unit():
    rng = np.random.default_rng(3)
    for _ in range(200):
        values = list(rng.normal(scale=8, size=rng.integers(1, 12)))
        shown = split_rounded(values, sum(values))
        assert round(sum(shown), 6) == round(round(sum(values), 1), 6)
        assert all(abs(s - v) < 0.1 + 1e-9 for s, v in zip(shown, values))


def test_split_rounded_seven_equal_parts():
    # rounding each 2.04 alone gives 7 × 2.0 = 14.0, but they sum to 14.28 → 14.3
    assert split_rounded([2.04] * 7, 14.28) == [2.1, 2.1, 2.1, 2.0, 2.0, 2.0, 2.0]


# ---- the golden account: hand-counted in tests/_explain_world.py ----------------------------------------


def test_golden_waterfall_adds_up_to_the_score(tmp_path):
    exp = load_account(hand_scores(tmp_path), "A-GOLD")
    steps = [(s.label, s.shown) for s in exp.waterfall]
    # baseline 53.1209, usage −22.7547, support −16.1811 → 100p = 14.1851; rounding to 14; −10 adjustment
    assert steps == [
        ("baseline: the score of an average account", 53.1),
        ("Usage", -22.7),  # largest remainder: 53.1 − 22.8 − 16.2 would give 14.1, not 14.2
        ("Time to value", 0.0), ("Support", -16.2), ("Engagement", 0.0), ("Billing", 0.0), ("Feedback", 0.0),
        ("Account context", 0.0),
        ("model: 100 × probability", 14.2),
        ("rounding to a whole score", -0.2),
        ("model score", 14.0),
        ("adjustment: Champion left", -10.0),
        ("score", 4.0),
    ]
    parts = [s.shown for s in exp.waterfall if s.kind in ("start", "component")]
    assert round(sum(parts), 1) == 14.2
    assert exp.score == 4 and exp.band == "at_risk"
    assert exp.drivers[0] == "Seat utilization (30 days): 34% (segment median 71%) lowers the score by 23 points"
    # features add up to their component, one decimal
    usage = next(c for c in exp.components if c.component == "usage")
    assert [(f.feature, f.value, f.shown) for f in usage.features] == [("seat_utilization_30d", "34%", -22.7)]


def test_golden_change_since_previous_run(tmp_path):
    exp = load_account(hand_scores(tmp_path), "A-GOLD")
    assert exp.previous_as_of == "2024-03-01" and exp.previous_score == 67
    # usage 8.9334 → −22.7547 (−31.6881), support 4.7645 → −16.1811 (−20.9456),
    # rounding +0.1812 → −0.1851 (−0.3663), adjustment 0 → −10: total −63 exactly
    assert [(s.label, s.shown) for s in exp.change] == [
        ("previous score", 67.0), ("Usage", -31.7), ("Support", -20.9), ("rounding to a whole score", -0.4),
        ("adjustments", -10.0), ("score", 4.0),
    ]
    assert round(sum(s.shown for s in exp.change[1:-1]), 1) == 4.0 - 67.0


def test_unscored_account_says_why(tmp_path):
    exp = load_account(hand_scores(tmp_path), "A-NONE")
    assert not exp.scored and exp.waterfall == []
    assert "no active contract" in exp.not_scored_reason
    assert "Not scored" in render_html(exp)
    assert "Not scored: it has no active contract" in _terminal(exp)


def test_missing_account_and_missing_directory_are_errors(tmp_path):
    d = hand_scores(tmp_path)
    with pytest.raises(HealthscoreError, match=r"account 'A-GOLDEN' is not in .*did you mean A-GOLD"):
        load_account(d, "A-GOLDEN")
    with pytest.raises(HealthscoreError, match=r"no scores.parquet in .*healthscore score"):
        load_account(tmp_path / "nowhere", "A-GOLD")


def test_missing_side_files_are_noted_not_fatal(tmp_path):
    d = Path(hand_scores(tmp_path))
    (d / "explanations.parquet").unlink()
    (d / "history.parquet").unlink()
    exp = load_account(d, "A-GOLD")
    assert exp.waterfall and not exp.components
    assert any("explanations.parquet is missing" in n for n in exp.notes)
    assert any("history.parquet is missing" in n for n in exp.notes)


# ---- hostile text ---------------------------------------------------------------------------------------


def test_html_escapes_hostile_names_and_reasons(tmp_path):
    exp = load_account(hand_scores(tmp_path, name=HOSTILE_NAME, reason=HOSTILE_REASON, csm='"><b>csm</b>'),
                       "A-GOLD")
    html = render_html(exp)
    assert "<script" not in html.lower()
    assert "<img src=x" not in html and "<b>csm" not in html
    assert "&lt;script&gt;document.body.setAttribute(&#39;data-pwned&#39;,&#39;1&#39;)&lt;/script&gt;" in html
    assert "&#34;Q&#34; &#39;S&#39; &amp; Co" in html
    assert "&lt;img src=x onerror=&#34;" in html
    # self-contained: no external resource of any kind
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//)""", html)
    assert "Content-Security-Policy" in html


def test_terminal_shows_hostile_text_literally(tmp_path):
    exp = load_account(hand_scores(tmp_path, name=HOSTILE_NAME, reason=HOSTILE_REASON), "A-GOLD")
    out = _terminal(exp)
    assert "[bold red]x[/]" in out  # not parsed as rich markup
    assert "\x1b" not in out  # the ANSI escape in the reason is neutralised
    assert "\ufffd[31mred" in out


# ---- a simulated world through the CLI ------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored_dir(tmp_path_factory):
    from healthscore.scoring import write_batch

    run = simulated_run()
    out = tmp_path_factory.mktemp("scores")
    write_batch(run["second"], out)
    return out, run


def test_every_scored_account_report_adds_up(scored_dir):
    out, run = scored_dir
    scores = run["second"].scores
    for account_id in scores.loc[scores["status"] == "scored", "account_id"].head(40):
        exp = load_account(out, account_id)
        running = 0.0
        for s in exp.waterfall:
            if s.kind in ("start", "subtotal", "total"):
                assert round(running, 1) == s.shown or s.kind == "start", (account_id, s)
                running = s.shown
            else:
                running += s.shown
        assert exp.waterfall[-1].shown == exp.score
        for comp in exp.components:
            assert round(sum(f.shown for f in comp.features), 1) == comp.shown
        if exp.change:
            assert round(sum(s.shown for s in exp.change[1:-1]), 1) == round(exp.score - exp.previous_score, 1)


def test_explain_cli_writes_html(scored_dir, tmp_path):
    from typer.testing import CliRunner

    from healthscore.cli import app

    out, run = scored_dir
    scores = run["second"].scores
    account = scores.loc[scores["status"] == "scored", "account_id"].iloc[0]
    html = tmp_path / "a.html"
    result = CliRunner().invoke(app, ["explain", "--scores", str(out), account, "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert "How the score adds up" in result.output and f"HTML report written to {html}" in result.output
    assert html.exists() and 'id="waterfall"' in html.read_text(encoding="utf-8")
    unscored = scores.loc[scores["status"] != "scored", "account_id"].iloc[0]
    result = CliRunner().invoke(app, ["explain", "--scores", str(out), unscored])
    assert result.exit_code == 0 and "Not scored" in result.output


def test_global_report_sections(scored_dir, tmp_path):
    from healthscore.reports.global_report import test_slice_matrix, write_global_report

    _, run = scored_dir
    X = test_slice_matrix(run["result"], run["ts"], run["config"])
    path = write_global_report(run["result"], tmp_path / "model.html", X=X, top_dependence=3)
    html = path.read_text(encoding="utf-8")
    for marker in ('id="metrics"', 'id="weights"', 'id="summary-plot"', 'id="importance"', 'id="calibration-plot"',
                   "hand-weighted scorecard", "dependence plot: "):
        assert marker in html, marker
    assert html.count("dependence plot: ") == 3
    assert html.count("data:image/png;base64,") == 3 + 3  # weights, summary, calibration + 3 dependence
    assert "<script" not in html.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//)""", html)
    # deterministic: same inputs, same bytes
    again = write_global_report(run["result"], tmp_path / "again.html", X=X, top_dependence=3)
    assert again.read_bytes() == path.read_bytes()


def test_global_report_without_a_matrix_says_so(scored_dir, tmp_path):
    from healthscore.reports.global_report import write_global_report

    _, run = scored_dir
    html = write_global_report(run["result"], tmp_path / "m.html").read_text(encoding="utf-8")
    assert "SHAP summary and dependence plots are left out" in html


# ---- a real headless browser ----------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless chromium is not installed (apt-get install -y chromium); browser checks skipped",
)


def _browser(tmp_path: Path, page: Path, *extra: str) -> tuple[str, str]:
    """Run headless chromium on a local file, offline; return (stdout, stderr with console messages)."""
    profile = tmp_path / f"profile-{page.stem}-{len(extra)}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           *extra, page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class _TextOf(HTMLParser):
    """Text content of the element with a given id (the DOM dump is re-parsed, as a reader would see it)."""

    def __init__(self, element_id: str):
        super().__init__()
        self.element_id, self.depth, self.parts, self.body_attrs = element_id, 0, [], {}

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.body_attrs = dict(attrs)
        if self.depth:
            self.depth += 1
        elif dict(attrs).get("id") == self.element_id:
            self.depth = 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.parts.append(data)


def _text_of(dom: str, element_id: str) -> tuple[str, dict]:
    parser = _TextOf(element_id)
    parser.feed(dom)
    return "".join(parser.parts).strip(), parser.body_attrs


@pytest.mark.browser
@needs_chromium
def test_browser_harness_detects_a_running_script(tmp_path):
    # the control: if escaping failed and a script ran, these checks would see it
    page = tmp_path / "control.html"
    page.write_text("<!DOCTYPE html><html><body><h1 id='n'>x</h1><script>"
                    "document.body.setAttribute('data-pwned','1');console.error('boom')</script></body></html>")
    dom, err = _browser(tmp_path, page, "--dump-dom")
    assert _text_of(dom, "n")[1].get("data-pwned") == "1"
    assert any("boom" in line for line in _console(err))


@pytest.mark.browser
@needs_chromium
def test_account_report_renders_in_chromium_with_hostile_text_inert(tmp_path):
    exp = load_account(hand_scores(tmp_path, name=HOSTILE_NAME, reason=HOSTILE_REASON), "A-GOLD")
    page = write_account_html(exp, tmp_path / "account.html")
    dom, err = _browser(tmp_path, page, "--dump-dom")
    name, body = _text_of(dom, "account-name")
    assert name == HOSTILE_NAME  # shown as text, exactly
    assert "data-pwned" not in body
    assert _text_of(dom, "score")[0] == "4"
    assert _text_of(dom, "band")[0] == "at risk"
    assert "Seat utilization (30 days): 34%" in _text_of(dom, "drivers")[0]
    assert _console(err) == []  # no errors, no blocked script or resource
    shot = tmp_path / "account.png"
    _browser(tmp_path, page, f"--screenshot={shot}", "--window-size=1000,1400")
    assert shot.exists() and shot.stat().st_size > 20_000


@pytest.mark.browser
@needs_chromium
def test_global_report_renders_in_chromium(scored_dir, tmp_path):
    from healthscore.reports.global_report import test_slice_matrix, write_global_report

    _, run = scored_dir
    page = write_global_report(run["result"], tmp_path / "model.html",
                               X=test_slice_matrix(run["result"], run["ts"], run["config"]), top_dependence=2)
    dom, err = _browser(tmp_path, page, "--dump-dom")
    assert "What the model learned" in dom and 'id="summary-plot"' in dom
    assert _console(err) == []
