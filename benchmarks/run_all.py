"""healthscore's scale benchmarks: features, scoring with explanations, training — each against a reference.

    make bench                                    # full size (issue 9): 100k accounts / 50M events, 1M, 200k
    .venv/bin/python benchmarks/run_all.py --scale 0.1 --cases a,b
    .venv/bin/python benchmarks/run_all.py --out -       # print the table instead of writing the doc

Every step runs in its own process (``_cases.py``); its wall time is the timed section the step reports, its
peak memory the process's maximum resident set size from ``os.wait4`` (what ``/usr/bin/time -v`` calls
"Maximum resident set size"). A case and its reference run in the same invocation, one after the other,
so the ratio is measured under the same machine load. Generated data is cached in ``--data`` and reused
when the sizes match.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FULL = {"accounts": 100_000, "events": 50_000_000, "train_rows": 200_000, "score_rows": 1_000_000}
TARGETS = {"a": (2.0, 8.0), "b": (1.5, 6.0), "c": (None, None)}
GIB = 1024 ** 3


def run_step(step: str, data: Path, sizes: dict[str, int], *, log=print) -> dict:
    """Run one ``_cases.py`` step in a child process; its JSON result plus wall seconds and peak RSS."""
    cmd = [sys.executable, str(HERE / "_cases.py"), step, "--data", str(data)]
    for key, value in sizes.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    started = time.perf_counter()
    env = dict(os.environ)
    if sizes.get("threads"):
        env["OMP_NUM_THREADS"] = str(sizes["threads"])  # LightGBM's default thread count in predict
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"step {step} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["process_s"] = round(time.perf_counter() - started, 2)
    result["peak_gib"] = round(usage.ru_maxrss * 1024 / GIB, 2)  # ru_maxrss is in KiB on Linux
    log(f"  {step}: {json.dumps(result)}")
    return result


def machine() -> str:
    """CPU model, cores, memory, OS and Python, for the results page."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")) * 1024 / GIB
    except (OSError, StopIteration):
        mem = float("nan")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; 1-min load average at start {load:.1f}")


def _ensure(marker: Path, step: str, data: Path, sizes: dict[str, int], log) -> None:
    wanted = json.dumps(sizes, sort_keys=True)
    if marker.exists() and marker.read_text() == wanted:
        log(f"  {step}: cached in {data}")
        return
    run_step(step, data, sizes, log=log)
    marker.write_text(wanted)


def case_a(data: Path, sizes: dict[str, int], log) -> dict:
    """Features at 12 monthly dates vs one hand-written DuckDB aggregation over the same Parquet."""
    s = {"accounts": sizes["accounts"], "events": sizes["events"]}
    _ensure(data / ".events.json", "gen-events", data, s, log)
    floor = run_step("feat-floor", data, s, log=log)
    ours = run_step("feat-ours", data, s, log=log)
    return {"case": "a", "what": f"features: {s['accounts']:,} accounts, {s['events']:,} usage events, 12 dates",
            "ours": ours, "ref": floor, "ref_name": "hand-written DuckDB SQL over the Parquet (floor)"}


def case_c(data: Path, sizes: dict[str, int], log) -> dict:
    """Training (CV, final fit, calibration, evaluation) vs one bare lgb.train with the chosen parameters."""
    s = {"train_rows": sizes["train_rows"], "score_rows": sizes["score_rows"]}
    _ensure(data / ".model_data.json", "gen-model-data", data, s, log)
    s = {**s, **({"threads": sizes["threads"]} if "threads" in sizes else {})}
    ours = run_step("train-ours", data, s, log=log)
    ref = run_step("train-ref", data, s, log=log)
    return {"case": "c", "what": f"training: {s['train_rows']:,} rows", "ours": ours, "ref": ref,
            "ref_name": "one bare lgb.train with the chosen parameters (no CV, calibration, evaluation)"}


def case_b(data: Path, sizes: dict[str, int], log) -> dict:
    """Scoring with explanations vs LightGBM's bare pred_contrib on the same rows (needs case c's model)."""
    s = {"train_rows": sizes["train_rows"], "score_rows": sizes["score_rows"],
         **({"threads": sizes["threads"]} if "threads" in sizes else {})}
    if not (data / "model.joblib").exists():
        case_c(data, sizes, log)
    ref = run_step("score-ref", data, s, log=log)
    ours = run_step("score-ours", data, s, log=log)
    return {"case": "b", "what": f"scoring with explanations: {s['score_rows']:,} accounts", "ours": ours,
            "ref": ref, "ref_name": "bare booster.predict(X, pred_contrib=True)"}


def table(results: list[dict]) -> str:
    """The results as a Markdown table."""
    lines = ["| case | healthscore | peak | reference | ref. peak | ratio | target |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        ratio = r["ours"]["seconds"] / max(r["ref"]["seconds"], 1e-9)
        max_ratio, max_gib = TARGETS[r["case"]]
        if max_ratio is None:
            target = "—"
        else:
            ok = ratio <= max_ratio and r["ours"]["peak_gib"] <= max_gib
            target = f"≤ {max_ratio}× and ≤ {max_gib:.0f} GiB: {'**met**' if ok else '**missed**'}"
        lines.append(f"| ({r['case']}) {r['what']} | {r['ours']['seconds']:.1f} s | {r['ours']['peak_gib']:.2f} GiB "
                     f"| {r['ref']['seconds']:.1f} s | {r['ref']['peak_gib']:.2f} GiB | {ratio:.2f}× | {target} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen cases and print (or append to a file) the results table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="c,b,a", help="comma-separated subset of a, b, c (b reuses c's model)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every size (0.1 for a quick run)")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("HEALTHSCORE_BENCH_DATA", "/tmp/healthscore-bench")))
    p.add_argument("--json", type=Path, default=None, help="also write the raw results as JSON here")
    p.add_argument("--threads", type=int, default=0,
                   help="LightGBM threads for training and scoring (0: its default); 1 on a busy machine")
    p.add_argument("--train-rows", type=int, default=None, help="override the scaled training rows")
    p.add_argument("--score-rows", type=int, default=None, help="override the scaled scoring rows")
    a = p.parse_args(argv)
    sizes = {k: max(1000, int(v * a.scale)) for k, v in FULL.items()}
    for key in ("train_rows", "score_rows"):
        if getattr(a, key):
            sizes[key] = getattr(a, key)
    if a.threads:
        sizes["threads"] = a.threads
    a.data.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}", flush=True)
    print(f"sizes: {sizes}  data: {a.data}", flush=True)
    results = []
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    for case in [c.strip() for c in a.cases.split(",") if c.strip()]:
        print(f"case ({case}) started {datetime.now(timezone.utc):%H:%M:%S} UTC", flush=True)
        results.append({"a": case_a, "b": case_b, "c": case_c}[case](a.data, sizes, log))
    print()
    print(table(results))
    if a.json:
        a.json.write_text(json.dumps({"machine": machine(), "sizes": sizes, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
