"""Kill `score` at random moments, over and over: no folder may ever hold a mixed batch, and explain never shows one.

    python benchmarks/kill_loop.py --data DIR --model MODEL_DIR [--kills 200] [--seed 0]

The data and the model are loaded once; each run is a forked child running ``score_job`` (the command's own
code path, minus argument parsing) into one output folder, killed with SIGKILL. Half the kills fall at a
uniformly random moment of a whole run; the other half at a random moment of the write itself (from the
staging folder appearing to the run's end), where a mixed batch could happen. After each kill:

- the current batch and every complete batch folder match their manifests, file by file (sha256);
- the top-level files (OUT/scores.parquet …) match the top-level manifest.json, so they are one batch;
- ``explain`` (``load_account``) reads the account's header, features and history from that one batch;
- no as-of date of a run that finished is missing from the history.

Prints one line per 20 kills and a summary; exits 1 on the first broken invariant.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

AS_OF = [date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1), date(2024, 4, 1)]


def check(out: Path, finished: set[date]) -> str | None:
    """The invariants; a description of the first broken one, or None."""
    import pandas as pd

    from healthscore.io.output import Batch, read_current
    from healthscore.reports.account import load_account

    batch = read_current(out)
    if batch is None:
        return None if not finished else f"no current batch after {len(finished)} finished runs"
    try:
        batch.verify()
        for entry in (out / "batches").iterdir():
            if not entry.name.endswith(".tmp") and (entry / "manifest.json").is_file():
                Batch(entry, json.loads((entry / "manifest.json").read_text())).verify()
        top = json.loads((out / "manifest.json").read_text())
        Batch(out, top).verify()
        if top["batch"] != batch.name:
            return f"top-level manifest.json is {top['batch']}, current is {batch.name}"
        account = str(batch.read("scores.parquet")["account_id"].iloc[0])  # any world's ids, not the simulator's
        exp = load_account(out, account)
        if exp.as_of != batch.as_of:
            return f"explain shows as of {exp.as_of}, the current batch is as of {batch.as_of}"
        hist = batch.read("history.parquet")
    except Exception as exc:  # noqa: BLE001 - any failure to read is a broken invariant
        return f"{type(exc).__name__}: {exc}"
    dates = set(pd.to_datetime(hist["as_of"]).dt.date)
    lost = finished - dates
    return f"history lost the rows of {sorted(lost)}" if lost else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True, help="a model folder (MODEL/artifacts/health_model.joblib)")
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output folder (default: a new temporary one)")
    a = parser.parse_args()
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tempfile.mkdtemp()}/mlflow.db")

    import joblib

    from healthscore import tracking
    from healthscore.config import Config
    from healthscore.jobs.score import score_job

    model = joblib.load(Path(a.model) / "artifacts" / "health_model.joblib")
    loaded = tracking.LoadedModel(model=model, version="path:model", uri=a.model, run_id=None)
    tracking.load_model = lambda uri, **kwargs: loaded  # the model is loaded once, here
    out = Path(a.out or tempfile.mkdtemp(prefix="kill-loop-")) / "out"
    rng = random.Random(a.seed)
    config = Config()

    def child(as_of: date) -> None:
        try:
            score_job(a.data, as_of=as_of, out=out, config=config, lock_timeout=60)
        except BaseException as exc:  # noqa: BLE001
            print(f"child failed: {exc}", file=sys.stderr)
            os._exit(3)
        os._exit(0)

    def fork(as_of: date) -> int:
        pid = os.fork()
        if pid == 0:
            child(as_of)
        return pid

    # calibrate: how long a whole run takes, and its write (staging folder seen → run ended)
    runs, writes = [], []
    finished: set[date] = set()
    for as_of in AS_OF[:2]:
        t0 = time.perf_counter()
        pid = fork(as_of)
        seen = None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if seen is None and any(p.name.endswith(".tmp") for p in (out / "batches").glob("*")):
                seen = time.perf_counter()
            time.sleep(0.0005)
        runs.append(time.perf_counter() - t0)
        writes.append(time.perf_counter() - (seen or t0))
        if os.waitstatus_to_exitcode(status) == 0:
            finished.add(as_of)
    run_s, write_s = max(runs), max(writes)
    print(f"one run {run_s:.2f} s, its write {write_s * 1000:.0f} ms; {a.kills} kills follow", flush=True)

    counts = {"before the write": 0, "during the write": 0, "after it ended": 0}
    for k in range(1, a.kills + 1):
        as_of = rng.choice(AS_OF)
        targeted = k % 2 == 0
        pid = fork(as_of)
        t0 = time.perf_counter()
        status = None
        if targeted:  # wait for the staging folder, then a random moment of the write
            while not any(p.name.endswith(".tmp") for p in (out / "batches").glob("*")):
                done, waited = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = waited
                    break
                time.sleep(0.0002)
            delay = rng.uniform(0, write_s)
        else:
            delay = rng.uniform(0, run_s)
        phase = "before the write"
        if status is None:
            time.sleep(delay)
            writing = any(p.name.endswith(".tmp") for p in (out / "batches").glob("*"))
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                phase = "during the write" if writing or targeted else "before the write"
            else:
                phase = "after it ended"
        else:
            phase = "after it ended"
        counts[phase] += 1
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            finished.add(as_of)
        elif code not in (-signal.SIGKILL,):
            print(f"kill {k}: the run failed on its own (exit {code})", file=sys.stderr)
            sys.exit(1)
        problem = check(out, finished)
        if problem:
            print(f"kill {k} ({phase}, after {time.perf_counter() - t0:.3f} s, as of {as_of}): {problem}")
            sys.exit(1)
        if k % 20 == 0:
            print(f"{k} kills: {counts}; batches in the folder: "
                  f"{sorted(p.name[:10] for p in (out / 'batches').iterdir())}", flush=True)
    print(f"{a.kills} kills ({counts}): no mixed batch, explain always read one batch, no finished run's "
          f"history lost ({sorted(map(str, finished))})")


if __name__ == "__main__":
    main()
