"""Progress: a line per finished step on a console, nothing when quiet."""

from __future__ import annotations

import io

from rich.console import Console

from healthscore.reports.progress import NO_PROGRESS, Progress


def test_steps_print_when_enabled_and_time_themselves():
    buf = io.StringIO()
    p = Progress(Console(file=buf, width=100))
    with p.step("building features"):
        p.advance(1, 2)
    with p.step("writing outputs"):
        pass
    text = buf.getvalue()
    assert "✓ building features" in text and "✓ writing outputs" in text
    assert set(p.timings) == {"building features", "writing outputs"}


def test_quiet_prints_nothing_and_runs_the_body():
    ran = []
    with NO_PROGRESS.step("anything"):
        ran.append(1)
    assert ran == [1]
    assert NO_PROGRESS.console is None
