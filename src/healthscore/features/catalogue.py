"""The feature catalogue, generated from the registered builders: ``python -m healthscore.features.catalogue``.

Writes ``docs/features.md`` (or the path given); ``--check`` exits 1 when the file is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from healthscore.config import COMPONENTS, FeaturesConfig
from healthscore.features._build import FAMILIES, FEATURES
from healthscore.features._registry import PLACEHOLDER

DEFAULT_PATH = Path(__file__).resolve().parents[3] / "docs" / "features.md"
_DIRECTION = {1: "↑ healthier", -1: "↓ riskier", 0: "context"}


def _cell(text: str) -> str:
    # a family's placeholder in code style, or Markdown would take "<feature>" for an HTML tag
    return str(text).replace("|", "\\|").replace("\n", " ").replace(PLACEHOLDER, f"`{PLACEHOLDER}`")


def render_catalogue() -> str:
    """The catalogue as Markdown: one table per component, a row per feature, in output order."""
    lines = [
        "# Feature catalogue",
        "",
        "Generated from the code by `python -m healthscore.features.catalogue`; do not edit by hand.",
        "",
        "Every feature is computed as of an observation date `as_of` from records stamped strictly before it",
        "(contracts are known from their start date; a contract's outcome only after its end date, and never",
        "for the contract being observed). *Window* is how far back a feature looks (— = all history).",
        "*Direction* is the expected effect on renewal: more of an ↑ feature is expected to be healthier.",
        "*When empty* says what the feature is when the table exists but holds nothing in the window; a",
        "missing optional table always gives NaN. Features marked *fitted* are learned on training rows",
        "(`SegmentAdoptionCurve`), stored with the model and added at scoring; `healthscore features` does",
        "not write them.",
        "",
        "Features marked *family* are one column per **key product feature**: `<feature>` stands for the",
        "feature's name made column-safe (lowercase `a-z`, `0-9` and `_`, at most 32 characters, a short hash",
        "appended when two names would clash). The key product features are `features.key_features` when",
        "configured (used as given); otherwise `train` learns them — the "
        f"`features.key_features_top_k` (default {FeaturesConfig().key_features_top_k})",
        "`usage_events.feature` values used by the most training accounts in the year before the latest",
        "training observation (events strictly before it; ties by name) — and stores them with the model,",
        "which scores with them. `healthscore features` without configured names learns them the same way",
        "at `--as-of`, over every account. They also define `feature_breadth_90d`. Which family columns are built is",
        f"`features.usage_by_feature` (default `{FeaturesConfig().usage_by_feature}`; `share_and_change` adds the",
        "changes, `off` builds none).",
        "",
    ]
    for component in COMPONENTS:
        specs = [f for f in FEATURES if f.component == component]
        specs += [f for f in FAMILIES if f.component == component]
        lines += [f"## {component}", "", "| feature | unit | window | direction | meaning | when empty | reads |",
                  "|---|---|---|---|---|---|---|"]
        for f in specs:
            window = f"{f.window_days} d" if f.window_days else "—"
            name = f"`{f.name}`" + (" (fitted)" if f.fitted else "") + (" (family)" if f in FAMILIES else "")
            reads = ", ".join(f.tables) if f.tables else "accounts, contracts"
            lines.append(
                f"| {name} | {_cell(f.unit)} | {window} | {_DIRECTION[f.direction]} | {_cell(f.description)} "
                f"| {_cell(f.when_empty)} | {reads} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the catalogue, or with ``--check`` report whether the file is up to date."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m healthscore.features.catalogue", description=main.__doc__)
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH, help="Markdown file to write.")
    parser.add_argument("--check", action="store_true", help="Exit 1 when the file is out of date.")
    ns = parser.parse_args(sys.argv[1:] if argv is None else argv)
    check, path = ns.check, ns.path
    text = render_catalogue()
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run python -m healthscore.features.catalogue", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"feature catalogue written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
