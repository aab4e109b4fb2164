"""Errors that reach the user as one paragraph, never a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field


def closest(word: object, choices: Iterable[object], *, n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The choices closest to a misspelt ``word`` (difflib's ratio, best first): the one did-you-mean search."""
    return difflib.get_close_matches(str(word), [str(c) for c in choices], n=n, cutoff=cutoff)


def did_you_mean(word: object, choices: Iterable[object], *, prefix: str = "", quoted: bool = True) -> str:
    """``"; did you mean 'X'?"`` for the closest choice (``prefix`` before it), or ``""`` when none is close."""
    close = closest(word, choices)
    if not close:
        return ""
    name = f"{prefix}{close[0]}"
    return f"; did you mean '{name}'?" if quoted else f"; did you mean {name}?"


class HealthscoreError(Exception):
    """Base class: the CLI prints the message and exits with ``exit_code``."""

    exit_code = 2


class ConfigError(HealthscoreError):
    """The configuration file has unknown keys or bad values."""


class TrackingError(HealthscoreError):
    """The MLflow tracking server or registry cannot be used."""


class ModelMismatchError(HealthscoreError):
    """Scoring data does not match what the model was trained on."""


@dataclass
class Problem:
    """One kind of defect in one table column, with examples and the fix."""

    table: str
    column: str | None
    message: str
    count: int = 0
    examples: list[str] = field(default_factory=list)
    fix: str = ""

    def render(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        rows = f" in {self.count} row{'s' if self.count != 1 else ''}" if self.count else ""
        ex = f" (e.g. {', '.join(self.examples[:5])})" if self.examples else ""
        fix = f"; {self.fix}" if self.fix else ""
        return f"{where}: {self.message}{rows}{ex}{fix}"


class DataError(HealthscoreError):
    """Bad input data: carries every problem found, rendered as one message."""

    def __init__(self, problems: list[Problem], *, source: str = "dataset") -> None:
        self.problems = list(problems)
        tables = sorted({p.table for p in self.problems})
        head = f"{source} has {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        head += f" in {', '.join(tables)}:" if tables else ":"
        body = "\n".join(f"  - {p.render()}" for p in self.problems)
        super().__init__(f"{head}\n{body}")
