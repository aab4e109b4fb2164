"""The portfolio site at 10,000 accounts: how long ``healthscore site`` takes, and how soon the index is usable.

    .venv/bin/python benchmarks/site.py                     # 10,000 accounts, --share too
    .venv/bin/python benchmarks/site.py --accounts 2000 --no-share

1. A batch of N accounts: a 400-account simulated world, a small model trained on it (no MLflow), scored on
   six monthly as-of dates (so every account has a six-point history), then repeated with new account ids,
   names, contracts and CSMs (~42 books) until it has N accounts; published as a real batch (manifest,
   hashes) with ``scoring.write_batch``. The columns and the per-account sizes (44 explanation rows, six
   history rows) are those of a real run; what is measured does not depend on the values. Cached in
   ``--work`` and reused when the size matches.
2. ``python -m healthscore site --scores BATCH --out SITE [--share]`` in its own process, into a new folder and
   then again over it (the old site replaced and removed): wall time and peak memory (``os.wait4``'s ru_maxrss,
   what ``/usr/bin/time -v`` prints).
3. Headless Chromium (``tests/_browser.py``, the DevTools protocol over a pipe) opens ``index.html`` three
   times; "interactive" is the index script's ``performance.mark('healthscore-ready')``, set once the table is
   drawn and its controls work: milliseconds since navigation started. Then a band filter and a search, timed
   from the event to the rows being drawn.

Prints one JSON object (also written to ``--work/site-benchmark.json``) with the 1-minute load average before
and after, since the machine is shared: other jobs slow every number here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT / "src"
DATES = [date(2023, 11, 1), date(2023, 12, 1), date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1),
         date(2024, 4, 1)]
BASE_ACCOUNTS = 400


def build_batch(out: Path, accounts: int) -> Path:
    """Write a batch of ``accounts`` accounts into the score output folder ``out`` (see the module docstring)."""
    import numpy as np
    import pandas as pd

    from healthscore.config import config_from_dict
    from healthscore.io.read import dataset_from_frames
    from healthscore.model.train import fit_health_model, training_set_from_dataset
    from healthscore.scoring import ScoreBatch, portfolio, score_batch, write_batch
    from healthscore.simulate import SimulationSpec, simulate
    from healthscore.tracking import LoadedModel

    world = simulate(SimulationSpec(accounts=BASE_ACCOUNTS, seed=11, months=30))
    ds = dataset_from_frames(world.tables)
    config = config_from_dict({"model": {"num_leaves_grid": [7], "min_child_samples_grid": [20],
                                         "reg_lambda_grid": [1.0], "n_estimators": 100, "num_threads": 1}})
    ts = training_set_from_dataset(ds, config=config, truth=world.truth)
    result = fit_health_model(ts, config=config)
    result.model.metadata["features_config"] = dataclasses.asdict(ts.features_config)
    loaded = LoadedModel(model=result.model, version="1", uri="benchmark", run_id=None)
    history = None
    for as_of in DATES:
        batch = score_batch(ds, as_of, loaded, config, previous_history=history)
        history = batch.history
    copies = math.ceil(accounts / BASE_ACCOUNTS)

    def repeat(frame: pd.DataFrame, extra=None) -> pd.DataFrame:
        parts = []
        for k in range(copies):
            part = frame.copy()
            part["account_id"] = part["account_id"].astype(str) + f"-{k:02d}"
            if extra is not None:
                extra(part, k)
            parts.append(part)
        return pd.concat(parts, ignore_index=True)

    def rename(part: pd.DataFrame, k: int) -> None:
        part["name"] = part["name"].astype("object").map(lambda n: f"{n} {k}" if isinstance(n, str) else n)
        part["csm"] = part["csm"].astype("object").map(lambda c: f"{c} {chr(65 + k % 7)}" if isinstance(c, str)
                                                       else c)
        part["contract_id"] = part["contract_id"].astype("object").map(lambda c: f"{c}-{k:02d}"
                                                                       if isinstance(c, str) else c)

    scores = repeat(batch.scores, rename).sort_values("account_id", kind="stable")
    keep = set(scores["account_id"].iloc[:accounts])
    scores = scores[scores["account_id"].isin(keep)].reset_index(drop=True)
    explanations = repeat(batch.explanations)
    explanations = explanations[explanations["account_id"].isin(keep)].reset_index(drop=True)
    hist = repeat(batch.history)
    hist = hist[hist["account_id"].isin(keep)].sort_values(["as_of", "account_id"], kind="stable")
    big = ScoreBatch(scores=scores, explanations=explanations, history=hist.reset_index(drop=True),
                     portfolio=portfolio(scores), features=pd.DataFrame(), drift=batch.drift)
    write_batch(big, out)
    assert len(scores) == accounts and np.all(scores["account_id"].is_unique)
    return out


def _cached(work: Path, accounts: int) -> Path:
    out = work / f"scores-{accounts}"
    manifest = out / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("accounts") == accounts:
        return out
    started = time.perf_counter()
    build_batch(out, accounts)
    print(f"built a {accounts:,}-account batch in {time.perf_counter() - started:.0f} s: {out}", file=sys.stderr)
    return out


def time_site(scores: Path, site: Path, *, share: bool) -> dict:
    """``healthscore site`` as a whole process: wall seconds and peak resident memory."""
    cmd = [sys.executable, "-m", "healthscore", "site", "--scores", str(scores), "--out", str(site)]
    cmd += ["--share"] if share else []
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    started = time.perf_counter()
    with open(site.parent / "site-stdout.txt", "w+") as out, open(site.parent / "site-stderr.txt", "w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"healthscore site failed: {stderr[-2000:]}")
    pages = sum(1 for _ in site.rglob("*.html"))
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    return {"site_seconds": round(seconds, 2), "pages": pages, "site_mib": round(size / 2**20, 1),
            "index_kib": round((site / "index.html").stat().st_size / 1024, 1),
            "peak_mib": round(usage.ru_maxrss / 1024), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), "sys_seconds": round(usage.ru_stime, 2),
            "stdout": stdout.strip()}


def time_browser(site: Path, *, runs: int = 3) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from _browser import Browser

    url = (site / "index.html").resolve().as_uri()
    ready = "document.documentElement.getAttribute('data-ready') === '1'"
    mark = "performance.getEntriesByName('healthscore-ready')[0].startTime"
    out: dict = {"interactive_ms": [], "wall_s": []}
    with Browser(width=1366, height=900) as b:
        for _ in range(runs):
            b.goto("about:blank")
            out["wall_s"].append(round(b.goto(url, ready=ready), 3))
            out["interactive_ms"].append(round(b.evaluate(mark), 1))
        out["console_errors"] = b.console_errors()
        out["offline"] = all(u.startswith(("file:", "data:", "about:")) for u in b.requests())
        out["band_filter_ms"] = round(b.evaluate(
            "(() => { const t = performance.now(); const s = document.getElementById('f-band'); s.value = 'at_risk';"
            " s.dispatchEvent(new Event('change')); return performance.now() - t; })()"), 1)
        out["band_rows"] = b.evaluate("+document.getElementById('match-count').dataset.count")
        b.type("#q", "group")
        b.wait_for("document.getElementById('match-count').textContent.includes('match') && "
                   "+document.getElementById('match-count').dataset.count < " + str(out["band_rows"]))
        out["search_rows"] = b.evaluate("+document.getElementById('match-count').dataset.count")
    out["interactive_ms_median"] = sorted(out["interactive_ms"])[len(out["interactive_ms"]) // 2]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "results" / "site")
    parser.add_argument("--share", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(SRC))
    args.work.mkdir(parents=True, exist_ok=True)
    scores = _cached(args.work, args.accounts)
    import shutil

    # a new folder each run: removing 18,000 files just before (slow here: ext4 with discard) would slow the
    # writes measured next; the previous run's sites are removed after the measurements
    old_sites = sorted(args.work.glob(f"site-{args.accounts}-*"))
    out = args.work / f"site-{args.accounts}-{time.strftime('%Y%m%dT%H%M%S')}"
    load_before = os.getloadavg()
    site = time_site(scores, out, share=args.share)  # into a new folder
    rebuild = time_site(scores, out, share=args.share)  # over it: the old site is replaced and removed
    browser = time_browser(out)
    load_after = os.getloadavg()
    result = {"accounts": args.accounts, "share": args.share, **site,
              "rebuild_seconds": rebuild["site_seconds"], "rebuild_cpu_seconds": rebuild["cpu_seconds"],
              "rebuild_peak_mib": rebuild["peak_mib"], **browser,
              "load_average_1m": [round(load_before[0], 2), round(load_after[0], 2)], "cores": os.cpu_count(),
              "targets": {"site_seconds": 30, "interactive_ms": 2000}}
    (args.work / "site-benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    for path in old_sites:
        shutil.rmtree(path, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
