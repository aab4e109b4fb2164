"""Progress on long steps: a spinner per step with its elapsed time, silent with --quiet.

Jobs take an optional ``Progress``; without one (tests, notebooks, ``--quiet``) nothing is printed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as _RichProgress


class Progress:
    """Named steps with elapsed times; ``advance`` moves a bar inside the current step when it has a total."""

    def __init__(self, console: Console | None = None, *, enabled: bool = True) -> None:
        self.enabled = enabled and console is not None
        self.console = console
        self.timings: dict[str, float] = {}
        self._rich: _RichProgress | None = None
        self._task = None

    @contextlib.contextmanager
    def step(self, description: str, *, total: int | None = None) -> Iterator[Progress]:
        """Run one step; print it with its duration when done."""
        started = time.perf_counter()
        if not self.enabled or not self.console.is_terminal:
            # no live display in logs and pipes: just the finished line (or nothing when disabled)
            yield self
            elapsed = time.perf_counter() - started
            self.timings[description] = elapsed
            if self.enabled:
                self.console.print(f"✓ {description} ({elapsed:.1f} s)", markup=False, highlight=False)
            return
        columns = [SpinnerColumn(), TextColumn("{task.description}")]
        if total:
            columns += [BarColumn(), MofNCompleteColumn()]
        columns.append(TimeElapsedColumn())
        with _RichProgress(*columns, console=self.console, transient=True) as rich:
            self._rich, self._task = rich, rich.add_task(description, total=total)
            try:
                yield self
            finally:
                self._rich, self._task = None, None
        elapsed = time.perf_counter() - started
        self.timings[description] = elapsed
        self.console.print(f"[green]✓[/green] {description} [dim]({elapsed:.1f} s)[/dim]")

    def advance(self, done: int, total: int | None = None) -> None:
        """Report progress inside the current step (absolute count)."""
        if self._rich is not None and self._task is not None:
            self._rich.update(self._task, completed=done, total=total)


NO_PROGRESS = Progress(None, enabled=False)
