"""Model quality on simulated worlds of two shapes and on the shipped real tables: writes docs/model-quality.md.

    .venv/bin/python benchmarks/model_quality.py              # every world, writes docs/model-quality.md
    .venv/bin/python benchmarks/model_quality.py --out -      # print the page instead
    .venv/bin/python benchmarks/model_quality.py --worlds b2b-2000-7 --no-real

Two measures per simulated world, both with default config except lead times:

- **Test slice** (what ``healthscore train`` reports): the procedure trains on the oldest renewals,
  calibrates, and is judged on the newest 20%, against the baselines fitted on the same training rows.
- **Forward** (what the registered model does, like the outside check): train as of a date D, so the
  registered model is refit on every renewal decided before D; then each renewal whose observation date
  ``end_date − lead`` is on or after D is judged by its score then. The logistic regression is fitted on
  every row before D, the scorecard's percentiles on the same rows. Truth is the simulator's ``p_renew``.

Real tables: 5-fold CV as in ``benchmarks/real_data.py`` (the same function).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from healthscore.config import Config, TimelineConfig
from healthscore.features import build_features
from healthscore.io import dataset_from_frames
from healthscore.model.baselines import Scorecard, logistic_baseline, logistic_proba
from healthscore.model.evaluate import binary_metrics
from healthscore.model.train import fit_health_model, training_set_from_dataset
from healthscore.timeline import training_rows

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("roc_auc", "brier", "ece", "top_decile_lift", "log_loss")


@dataclasses.dataclass(frozen=True)
class WorldCase:
    """One simulated world: its shape, size, seed, the lead time it is judged at and the lead times it trains on."""

    business: str
    accounts: int
    seed: int
    months: int = 36
    lead_times: tuple[int, ...] = (30, 90, 180)
    judged_lead: int = 90

    @property
    def name(self) -> str:
        return f"{self.business}-{self.accounts}-{self.seed}"


#: the two full-size worlds the targets are judged on, then the small ones
WORLDS = (
    WorldCase("b2b", 2000, 7),
    WorldCase("subscription", 2000, 7, lead_times=(7, 14), judged_lead=14),
    *(WorldCase("b2b", n, s) for n in (400, 1000) for s in (11, 12, 13)),
    *(WorldCase("subscription", n, s, lead_times=(7, 14), judged_lead=14) for n in (400, 1000) for s in (11, 12, 13)),
)


def simulate_world(case: WorldCase):
    """The world's tables and truth (contract_id, p_renew)."""
    from healthscore import simulate as sim

    start = dt.date(2022, 1, 1)
    world = sim.simulate(sim.SimulationSpec(accounts=case.accounts, seed=case.seed, start=start, months=case.months,
                                            business=case.business))
    return world.tables, world.truth, start


def config_for(case: WorldCase) -> Config:
    return dataclasses.replace(Config(), timeline=TimelineConfig(lead_times_days=case.lead_times))


def _overall(evaluation: pd.DataFrame, lead: int) -> pd.DataFrame:
    ev = evaluation[(evaluation["group"] == "lead_time_days") & (evaluation["level"] == str(lead))]
    return ev.set_index("model")[list(METRICS)]


def auc_gap_interval(y: np.ndarray, ours: np.ndarray, other: np.ndarray, accounts: np.ndarray, *,
                     resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The 95% interval of AUC(ours) − AUC(other) over resampled accounts (a renewal's rows stay together).

    Each resample draws accounts with replacement; a row's weight is how often its account was drawn, which
    is the account bootstrap without copying rows.
    """
    from sklearn.metrics import roc_auc_score

    _, group = np.unique(accounts, return_inverse=True)
    n = int(group.max()) + 1
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(resamples):
        w = np.bincount(rng.integers(0, n, n), minlength=n)[group].astype(float)
        if w[y == 1].sum() == 0 or w[y == 0].sum() == 0:
            continue
        gaps.append(roc_auc_score(y, ours, sample_weight=w) - roc_auc_score(y, other, sample_weight=w))
    lo, hi = np.quantile(gaps, [0.025, 0.975])
    return float(lo), float(hi)


def _noise(y: np.ndarray, preds: dict, accounts: np.ndarray) -> dict:
    """How sure the AUC comparison with the scorecard is: the interval of the gap and the churned renewals."""
    y = np.asarray(y, dtype=int)
    return {"gap_interval": auc_gap_interval(y, np.asarray(preds["healthscore"]), np.asarray(preds["scorecard"]),
                                             np.asarray(accounts)),
            "minority": int(min(y.sum(), len(y) - y.sum()))}


def test_slice(case: WorldCase, ds, truth, config: Config) -> tuple[pd.DataFrame, dict]:
    """The procedure's own table (train → calibrate → test) at the judged lead time, and what was fitted."""
    ts = training_set_from_dataset(ds, config=config, truth=truth)
    result = fit_health_model(ts, config=config)
    tp = result.test_predictions
    tp = tp[tp["lead_time_days"] == case.judged_lead]
    noise = _noise(tp["label"].to_numpy(), {"healthscore": tp["p_healthscore"], "scorecard": tp["p_scorecard"]},
                   tp["account_id"].astype(str).to_numpy())
    cv = result.cv_results  # the chosen setting's row first
    return _overall(result.evaluation, case.judged_lead), {"form": result.model.metadata.get("form", ""),
                                                          "sizes": result.sizes, "noise": noise,
                                                          "cv_chosen": float(cv["cv_log_loss"].iloc[0]),
                                                          "cv_best": float(cv["cv_log_loss"].min())}


def forward(case: WorldCase, ds, truth, config: Config, start: dt.date, *, share: float = 0.6) -> tuple[pd.DataFrame, dict]:
    """Train as of D (the registered, refit model), judge every later renewal by its score at end − lead."""
    as_of = (pd.Timestamp(start) + pd.DateOffset(months=round(case.months * share))).date()
    ts = training_set_from_dataset(ds, config=config, as_of=as_of, truth=truth)
    result = fit_health_model(ts, config=config)
    model = result.model
    later = training_rows(ds, lead_times=[case.judged_lead])
    later = later[later["as_of"] >= pd.Timestamp(as_of)].reset_index(drop=True)
    fcfg = getattr(ts, "features_config", None) or config.features
    feats = build_features(ds, later, config=fcfg)
    X = model.prepare(feats)
    y = later["label"].to_numpy(dtype=int)
    preds = {"healthscore": model.predict_proba(X)}
    evaluated = result.evaluated_model
    if evaluated is not None and evaluated is not model:
        # diagnosis of the refit policy: the model before the refit, and the refit margin with the map the
        # evaluated model was calibrated with on its (newest non-test) calibration slice
        preds["not refit"] = evaluated.predict_proba(evaluated.prepare(feats))
        preds["refit, holdout map"] = evaluated.calibrator.predict(model.margin(X))
    # baselines on every row the registered model learned from, in the same matrix
    X_train = model.prepare(ts.features)
    scorecard = Scorecard(weights=config.scorecard.weights, components=model.components,
                          directions={f: ts.directions.get(f, 0) for f in model.feature_names}).fit(X_train)
    preds["scorecard"] = scorecard.predict_proba(X)
    logit = logistic_baseline(X_train, ts.label, categorical=ts.categorical, seed=config.model.seed)
    preds["logistic"] = logistic_proba(logit, X)
    mapping = truth.drop_duplicates("contract_id").set_index("contract_id")["p_renew"]
    preds["truth"] = later["contract_id"].astype(str).map(mapping).astype(float).to_numpy()
    table = pd.DataFrame({name: binary_metrics(y, p) for name, p in preds.items()}).T[list(METRICS)]
    return table, {"as_of": str(as_of), "rows": len(later), "renewals_learned": int(ts.rows["contract_id"].nunique()),
                   "form": model.metadata.get("form", ""),
                   "noise": _noise(y, preds, later["account_id"].astype(str).to_numpy())}


def run_world(case: WorldCase) -> dict:
    t0 = time.perf_counter()
    tables, truth, start = simulate_world(case)
    ds = dataset_from_frames(tables)
    config = config_for(case)
    slice_table, slice_info = test_slice(case, ds, truth, config)
    fwd_table, fwd_info = forward(case, ds, truth, config, start)
    return {"case": case, "test_slice": slice_table, "slice_info": slice_info, "forward": fwd_table,
            "forward_info": fwd_info, "seconds": time.perf_counter() - t0}


def _fmt(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"


def targets(case: WorldCase, table: pd.DataFrame, noise: dict | None = None) -> list[tuple[str, bool]]:
    """The issue's targets on one table (full-size worlds: vs truth; small worlds: vs the baselines).

    ``noise`` (small worlds): the AUC check also shows the 95% account-bootstrap interval of the gap to the
    scorecard and the number of churned renewals, so a miss can be read against its own uncertainty.
    """
    hs, sc, lr = table.loc["healthscore"], table.loc["scorecard"], table.loc["logistic"]
    if case.accounts >= 2000:
        tr = table.loc["truth"]
        return [
            (f"AUC {hs.roc_auc:.3f} ≥ 0.93 × truth {tr.roc_auc:.3f} = {0.93 * tr.roc_auc:.3f}", hs.roc_auc >= 0.93 * tr.roc_auc),
            (f"ECE {hs.ece:.3f} ≤ truth's {tr.ece:.3f} + 0.02", hs.ece <= tr.ece + 0.02),
            (f"AUC {hs.roc_auc:.3f} ≥ logistic {lr.roc_auc:.3f} and scorecard {sc.roc_auc:.3f}",
             hs.roc_auc >= lr.roc_auc and hs.roc_auc >= sc.roc_auc),
        ]
    shown = ""
    if noise:
        lo, hi = noise["gap_interval"]
        if abs(lo) < 5e-4 and abs(hi) < 5e-4:
            shown = " (the same ranking as the scorecard's)"
        else:
            shown = (f" (gap {hs.roc_auc - sc.roc_auc:+.3f}, 95% interval over accounts {lo:+.3f} … {hi:+.3f}; "
                     f"{noise['minority']} renewals of the rarer outcome)")
    return [
        (f"AUC {hs.roc_auc:.3f} ≥ scorecard {sc.roc_auc:.3f} − 0.01{shown}", hs.roc_auc >= sc.roc_auc - 0.01),
        (f"log loss {hs.log_loss:.3f} ≤ logistic {lr.log_loss:.3f} + 0.005", hs.log_loss <= lr.log_loss + 0.005),
    ]


def render(results: list[dict], real: str | None, elapsed: float) -> str:
    lines = [
        "# Model quality",
        "",
        "Generated by `benchmarks/model_quality.py` (part of `make bench`, not of `make test`); do not edit by hand.",
        f"Run on {dt.date.today()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, {elapsed:.0f} s in all.",
        "",
        "Default config except lead times (the subscription world has mostly monthly terms: lead times 7 and 14",
        "days, judged at 14; the b2b world — `healthscore simulate`'s default — trains at 30/90/180 and is judged",
        "at 90).",
        "",
        "- **test slice**: what `healthscore train` reports — the procedure trained on the oldest renewals,",
        "  calibrated, judged on the newest 20%.",
        "- **forward**: the registered model (refit on every renewal decided before D), judging each later",
        "  renewal by its score at `end_date − lead`; baselines fitted on the same rows.",
        "",
    ]
    for r in results:
        case = r["case"]
        lines += [f"## {case.business} world, {case.accounts} accounts, seed {case.seed}", ""]
        fi = r["forward_info"]
        lines += [f"Forward: trained as of {fi['as_of']} on {fi['renewals_learned']} decided renewals "
                  f"({fi['form']}); {fi['rows']} later renewals judged. Test-slice model: {r['slice_info']['form']}, "
                  f"calibrated CV log loss {r['slice_info']['cv_chosen']:.4f} (the lowest setting's "
                  f"{r['slice_info']['cv_best']:.4f}). "
                  f"{r['seconds']:.0f} s.", ""]
        lines += ["| measure | model | AUC | Brier | ECE | top-decile lift | log loss |", "|---|---|---|---|---|---|---|"]
        for label, key in (("test slice", "test_slice"), ("forward", "forward")):
            table = r[key]
            for model in ("healthscore", "not refit", "refit, holdout map", "logistic", "scorecard", "truth"):
                if model in table.index:
                    row = table.loc[model]
                    lines.append(f"| {label} | {model} | " + " | ".join(_fmt(row[m]) for m in
                                 ("roc_auc", "brier", "ece", "top_decile_lift", "log_loss")) + " |")
        lines.append("")
        for label, key, info in (("test slice", "test_slice", "slice_info"), ("forward", "forward", "forward_info")):
            for text, ok in targets(case, r[key], r[info].get("noise")):
                lines.append(f"- {label}: {'met' if ok else '**not met**'}: {text}")
        lines.append("")
    if real:
        lines += ["## Real tables (5-fold CV, as in docs/real-data.md)", "", real, ""]
    return "\n".join(lines) + "\n"


def _reference_rows(page: str) -> dict[str, dict[str, str]]:
    """healthscore's row per dataset in a committed docs/real-data.md (title → cells), to compare against."""
    out, title = {}, None
    for line in page.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
        elif title and line.startswith("| **healthscore (calibrated)**"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[title] = dict(zip(("model", "roc_auc", "brier", "ece", "top_decile_lift"), cells))
    return out


def real_tables(*, threads: int = 1) -> str:
    """The two shipped real tables under benchmarks/real_data.py's protocol, next to docs/real-data.md's figures."""
    sys.path.insert(0, str(Path(__file__).parent))
    import real_data

    reference_page = (ROOT / "docs" / "real-data.md")
    reference = _reference_rows(reference_page.read_text(encoding="utf-8")) if reference_page.exists() else {}
    base = Config()
    config = dataclasses.replace(base, model=dataclasses.replace(base.model, num_threads=threads))
    lines = ["| dataset | model | AUC | Brier | ECE | top-decile lift |", "|---|---|---|---|---|---|"]
    for name, spec in real_data.DATASETS.items():
        res = real_data.run_dataset(name, folds=5, seed=42, config=config)
        summary = res["summary"]
        for model in ("healthscore", "logistic", "scorecard"):
            row = summary.loc[model]
            cells = [f"{row[(m, 'mean')]:.3f} ± {row[(m, 'std')]:.3f}" for m in ("roc_auc", "brier", "ece", "top_decile_lift")]
            lines.append(f"| {spec['title']} | {model} | " + " | ".join(cells) + " |")
        ref = reference.get(spec["title"])
        if ref:
            lines.append(f"| {spec['title']} | healthscore in docs/real-data.md | {ref['roc_auc']} | {ref['brier']} | "
                         f"{ref['ece']} | {ref['top_decile_lift']} |")
        starts = res["fits"]["start"].value_counts().to_dict()
        lines.append(f"| {spec['title']} | (starts chosen per fold: "
                     + ", ".join(f"{k} {v}" for k, v in sorted(starts.items())) + ") | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "model-quality.md"), help="page to write, or - to print")
    parser.add_argument("--worlds", nargs="*", help="world names (e.g. b2b-2000-7); default: all")
    parser.add_argument("--no-real", action="store_true", help="skip the real tables")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    cases = [c for c in WORLDS if not args.worlds or c.name in args.worlds]
    results = []
    for case in cases:
        r = run_world(case)
        print(f"{case.name}: {r['seconds']:.0f} s\n test slice\n{r['test_slice'].round(3)}\n forward\n"
              f"{r['forward'].round(3)}", file=sys.stderr, flush=True)
        results.append(r)
    real = None if args.no_real else real_tables()
    page = render(results, real, time.perf_counter() - t0)
    if args.out == "-":
        print(page)
    else:
        Path(args.out).write_text(page, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
