"""Feature specs and the per-component registry: a feature is a plain function returning SQL.

A component module creates one :class:`Component` and decorates plain functions:

- ``@component.table``: a derived table that does not depend on any observation date (a pre-aggregation,
  e.g. usage per user and day). It may read only the prepared input tables, never ``keys``.
- ``@component.source``: a relation of visible rows per observation key, built with the windowing helper
  (``Window.events``); every row carries ``key_id`` and ``as_of`` (or ``row_id`` and ``as_of`` when
  ``per="observation"``).
- ``@component.feature`` / ``@component.measure``: with ``source=...`` the function returns an aggregate over
  that source (one value per key); without, an expression over the component's aggregates and the
  observation context ``o.*`` (see ``_window.CONTEXT_COLUMNS``). A measure is a helper column that is not
  a feature (its name starts with ``_``).

The function's name is the column; its docstring's first line is the catalogue's meaning and the docstring
says what "no events" yields. The engine (``_build.py``) turns a component into one SQL query.

- ``@component.family``: a feature *family*, columns named after values of the data (one pair per key product
  feature of ``features.key_features``): the function returns the columns for the window's vocabulary, and
  the family's template specs (names with ``<feature>``) are what the catalogue documents.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass, field
from typing import Callable

from healthscore.config import COMPONENTS
from healthscore.features._window import Window

SqlFn = Callable[[Window], str]


@dataclass(frozen=True)
class FeatureSpec:
    """One registered feature: its column name, component, unit, window and expected direction."""

    name: str
    component: str
    unit: str
    window_days: int | None
    #: expected effect on renewal: +1 more is healthier, -1 more is riskier, 0 no prior
    direction: int
    description: str
    kind: str = "numeric"
    #: fitted on training rows and applied by the model (``SegmentAdoptionCurve``); not built by ``features``
    fitted: bool = False
    #: what the feature is when the table is present but the observation has no rows in its window
    when_empty: str = ""
    #: the table(s) it reads; absent tables make it NaN
    tables: tuple[str, ...] = ()
    #: how drivers and reports name it (empty: the column name, humanised)
    label: str = ""
    #: the template name (``uses_<feature>_share_30d``) of the family it belongs to, or "" for a plain feature
    family: str = ""


@dataclass(frozen=True)
class Column:
    """How one output column (feature or helper measure) is computed."""

    name: str
    sql: SqlFn
    #: source name it aggregates, or None for an expression over aggregates and context
    source: str | None
    #: value an aggregate takes when its table is present but no row is visible (None: NULL)
    empty: float | None
    spec: FeatureSpec | None
    #: input tables it depends on: when one is absent the column is NULL (NaN), never a made-up zero
    tables: tuple[str, ...] = ()


@dataclass(frozen=True)
class Relation:
    name: str
    sql: SqlFn
    tables: tuple[str, ...]
    #: "key" (one group per account and as_of) or "observation" (one per observation row)
    per: str = "key"


#: the placeholder for the product feature in a family's template names and texts
PLACEHOLDER = "<feature>"


@dataclass(frozen=True)
class Family:
    """Columns per value of the vocabulary: ``columns(w)`` for the window's config, ``templates`` for the docs."""

    name: str
    columns: Callable[[Window], list[Column]]
    templates: tuple[FeatureSpec, ...]
    #: where the family's columns go among the component's declared columns
    position: int

    def match(self, name: str) -> FeatureSpec | None:
        """The spec of a column of this family, read from its name alone (the slug stands for the feature)."""
        for t in self.templates:
            head, tail = t.name.split(PLACEHOLDER)
            found = re.fullmatch(re.escape(head) + r"([a-z0-9_]+)" + re.escape(tail), name)
            if found:
                return instantiate(t, found.group(1))
        return None


def instantiate(template: FeatureSpec, slug: str) -> FeatureSpec:
    """A family template's spec for one product feature (its slug replaces ``<feature>`` everywhere)."""
    return dataclasses.replace(
        template,
        name=template.name.replace(PLACEHOLDER, slug),
        description=template.description.replace(PLACEHOLDER, slug),
        label=template.label.replace(PLACEHOLDER, slug),
        when_empty=template.when_empty.replace(PLACEHOLDER, slug),
        family=template.name,
    )


@dataclass
class Component:
    """The builders of one component, in the order they are declared."""

    name: str
    columns: list[Column] = field(default_factory=list)
    sources: dict[str, Relation] = field(default_factory=dict)
    tables: dict[str, Relation] = field(default_factory=dict)
    families: list[Family] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.name not in COMPONENTS:
            raise ValueError(f"unknown component {self.name!r}; use one of {', '.join(COMPONENTS)}")

    def table(self, *, reads: tuple[str, ...]) -> Callable[[SqlFn], SqlFn]:
        """Register a derived table that depends on no observation date (pre-aggregation)."""

        def wrap(fn: SqlFn) -> SqlFn:
            self.tables[fn.__name__] = Relation(fn.__name__, fn, tuple(reads))
            return fn

        return wrap

    def source(self, *, reads: tuple[str, ...], per: str = "key") -> Callable[[SqlFn], SqlFn]:
        """Register a relation of rows visible to each observation key (built with ``Window.events``)."""
        if per not in ("key", "observation"):
            raise ValueError(f"per must be 'key' or 'observation', found {per!r}")

        def wrap(fn: SqlFn) -> SqlFn:
            self.sources[fn.__name__] = Relation(fn.__name__, fn, tuple(reads), per)
            return fn

        return wrap

    def feature(
        self,
        *,
        unit: str,
        direction: int,
        window_days: int | None = None,
        source: str | None = None,
        empty: float | None = None,
        when_empty: str = "",
        kind: str = "numeric",
        reads: tuple[str, ...] = (),
    ) -> Callable[[SqlFn], SqlFn]:
        """Register a feature: the function's name is its column, its docstring its meaning."""

        def wrap(fn: SqlFn) -> SqlFn:
            doc = inspect.getdoc(fn) or ""
            first = doc.split("\n\n")[0].replace("\n", " ").strip()
            tables = self._tables_of(fn, source, reads)
            spec = FeatureSpec(
                name=fn.__name__,
                component=self.name,
                unit=unit,
                window_days=window_days,
                direction=direction,
                description=first,
                kind=kind,
                when_empty=when_empty or _when_empty(doc),
                tables=tables,
            )
            self.columns.append(Column(fn.__name__, fn, source, empty, spec, tables))
            return fn

        return wrap

    def _tables_of(self, fn: SqlFn, source: str | None, reads: tuple[str, ...]) -> tuple[str, ...]:
        """Tables of the source, or for an expression the union over the columns it names (declared earlier)."""
        if source is not None:
            if source not in self.sources:
                raise ValueError(f"{fn.__name__}: unknown source {source!r} in component {self.name}")
            return self.sources[source].tables
        sql = fn(Window())
        found = list(reads)
        for col in self.columns:
            if re.search(rf"(?<![\w.]){re.escape(col.name)}\b", sql):
                found += [t for t in col.tables if t not in found]
        return tuple(found)

    def measure(self, *, source: str | None = None, empty: float | None = None) -> Callable[[SqlFn], SqlFn]:
        """Register a helper column used by features (not a feature itself; name starts with ``_``)."""

        def wrap(fn: SqlFn) -> SqlFn:
            if not fn.__name__.startswith("_"):
                raise ValueError(f"measure {fn.__name__} must start with '_' (it is not a feature)")
            self.columns.append(Column(fn.__name__, fn, source, empty, None, self._tables_of(fn, source, ())))
            return fn

        return wrap

    def family(self, *, templates: tuple[FeatureSpec, ...]) -> Callable[[Callable[[Window], list[Column]]],
                                                                       Callable[[Window], list[Column]]]:
        """Register a family: the function returns its columns (measures and features) for a window's config."""

        def wrap(fn: Callable[[Window], list[Column]]) -> Callable[[Window], list[Column]]:
            for t in templates:
                if t.name.count(PLACEHOLDER) != 1:
                    raise ValueError(f"family template {t.name!r} must contain {PLACEHOLDER} once")
            self.families.append(Family(fn.__name__, fn, tuple(templates), len(self.columns)))
            return fn

        return wrap

    def columns_for(self, w: Window) -> list[Column]:
        """Every column for this window's config: the declared ones with each family's expanded in place."""
        out: list[Column] = []
        at = 0
        for fam in self.families:
            out += self.columns[at:fam.position] + fam.columns(w)
            at = fam.position
        return out + self.columns[at:]

    @property
    def specs(self) -> list[FeatureSpec]:
        """The declared features (no family columns: those depend on the config; see ``specs_for``)."""
        return [c.spec for c in self.columns if c.spec is not None]

    def specs_for(self, w: Window) -> list[FeatureSpec]:
        """Every feature for this window's config, family columns included, in output order."""
        return [c.spec for c in self.columns_for(w) if c.spec is not None]


def _when_empty(doc: str) -> str:
    """The sentence of a docstring that says what an empty window yields ("No events: 0.")."""
    for line in doc.splitlines():
        line = line.strip()
        if line.startswith("No ") and ":" in line:
            return line
    return ""


def fitted_spec(
    name: str, *, component: str, unit: str, direction: int, description: str, when_empty: str
) -> FeatureSpec:
    """A feature learned on training rows (applied by a fitted transformer, not by the builders)."""
    return FeatureSpec(
        name=name,
        component=component,
        unit=unit,
        window_days=30,
        direction=direction,
        description=description,
        fitted=True,
        when_empty=when_empty,
        tables=("usage_events",),
    )
