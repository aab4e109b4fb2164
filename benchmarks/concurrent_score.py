"""Two `score` runs into one output folder at the same moment: are both runs' rows in history.parquet?

    python benchmarks/concurrent_score.py --data DIR --model MODEL_DIR [--trials 6] [--lock-timeout 120]
                                          [--src PATH_TO_SRC]

Each trial starts from an empty folder, scores --as-of 2024-03-01 into it once (so history exists), then
starts two runs together (2024-04-01 and 2024-05-01) and reads history.parquet when both have ended. A
trial loses rows when a run exited 0 but its date is not in the history. ``--src`` picks the code to run
(e.g. an older checkout's ``src``), so the same script measures before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def run(src: str, args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": src, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.Popen([sys.executable, "-m", "healthscore", "score", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--lock-timeout", type=float, default=None, help="passed to score (new code only)")
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    a = parser.parse_args()
    lost = refused = 0
    for trial in range(a.trials):
        with tempfile.TemporaryDirectory() as tmp:
            cwd = Path(tmp)
            out = cwd / "out"
            base = ["--data", str(Path(a.data).resolve()), "--out", str(out), "--model", str(Path(a.model).resolve()),
                    "-q"]
            first = run(a.src, [*base, "--as-of", "2024-03-01"], cwd)
            first.communicate()
            extra = ["--lock-timeout", str(a.lock_timeout)] if a.lock_timeout is not None else []
            t0 = time.perf_counter()
            pair = [run(a.src, [*base, "--as-of", d, *extra], cwd) for d in ("2024-04-01", "2024-05-01")]
            results = [(p.wait(), p.communicate()) for p in pair]
            seconds = time.perf_counter() - t0
            hist = pd.read_parquet(out / "history.parquet")
            dates = sorted(pd.to_datetime(hist["as_of"]).dt.date.astype(str).unique())
            ok = [d for d, (rc, _) in zip(("2024-04-01", "2024-05-01"), results) if rc == 0]
            missing = [d for d in ok if d not in dates]
            refused += sum(rc != 0 for rc, _ in results)
            lost += bool(missing)
            print(f"trial {trial + 1}: exit {[rc for rc, _ in results]}, history dates {dates}, "
                  f"exited 0 but missing: {missing or 'none'} ({seconds:.1f} s)")
            for rc, (_, err) in results:
                if rc != 0:
                    print(f"    refused: {err.strip().splitlines()[-1]}")
    print(f"{a.trials} trials: {lost} lost a run's rows, {refused} runs refused")


if __name__ == "__main__":
    main()
