"""The output folder (CONTRACT §6): one writer at a time, all-or-nothing batches, readers that see only whole ones.

The story: the shared 250-account world is scored as of 2024-03-01 and 2024-04-01 into one folder; then
runs are broken on purpose (a full disk in the middle of the batch, a kill that leaves half a batch, a
tampered file, a read-only folder, a second writer) and the previous batch must stay current and whole.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from _ops_world import AS_OF_1, AS_OF_2, SRC, cli_popen, ops_world
from healthscore.io import write as write_module
from healthscore.io.lock import FileLock, LockBusy, read_holder
from healthscore.io.output import LOCK, OutputDir, OutputError, read_current, read_tables
from healthscore.reports.account import load_account
from healthscore.scoring import read_history, write_batch

FILES = ("scores.parquet", "scores.csv", "explanations.parquet", "history.parquet", "portfolio.csv", "drift.csv")


@pytest.fixture(scope="module")
def world():
    return ops_world()


def _two_runs(world, out: Path) -> None:
    write_batch(world["first"], out)
    write_batch(world["second"], out)


def _snapshot(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in (*FILES, "manifest.json")}


def test_a_batch_is_a_folder_with_a_manifest_and_the_top_level_names_follow_current(world, tmp_path):
    out = tmp_path / "out"
    _two_runs(world, out)
    batch = read_current(out)
    assert batch.as_of == "2024-04-01" and batch.root.parent == out / "batches"
    assert (out / "current").is_symlink() and os.readlink(out / "current") == f"batches/{batch.root.name}"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == batch.manifest and manifest["as_of"] == "2024-04-01"
    assert set(manifest["files"]) == set(FILES)
    from healthscore.io.write import sha256_file

    for name, entry in manifest["files"].items():
        # OUT/<name> is the current batch's file, byte for byte, and the manifest vouches for it
        assert (out / name).resolve() == (batch.root / name).resolve()
        assert sha256_file(out / name) == entry["sha256"] and (out / name).stat().st_size == entry["bytes"]
    assert manifest["files"]["scores.parquet"]["rows"] == len(world["second"].scores) == 250
    batch.verify()
    # one batch per as-of date is kept
    assert sorted(p.name[:10] for p in (out / "batches").iterdir()) == ["2024-03-01", "2024-04-01"]


def test_every_table_carries_as_of_and_portfolio_and_drift_keep_each_date(world, tmp_path):
    out = tmp_path / "out"
    _two_runs(world, out)
    for name in FILES:
        frame = pd.read_parquet(out / name) if name.endswith(".parquet") else pd.read_csv(out / name)
        assert "as_of" in frame.columns, name
    portfolio = pd.read_csv(out / "portfolio.csv")
    drift = pd.read_csv(out / "drift.csv")
    for frame in (portfolio, drift):
        assert sorted(frame["as_of"].unique()) == ["2024-03-01", "2024-04-01"]
    # the in-memory rollup is this run's only; the file adds the earlier date's rows before it
    assert len(portfolio) == len(world["first"].portfolio) + len(world["second"].portfolio)
    assert list(portfolio["as_of"]) == sorted(portfolio["as_of"])
    assert (pd.read_parquet(out / "explanations.parquet")["as_of"] == pd.Timestamp(AS_OF_2)).all()


def test_a_rerun_for_the_same_date_replaces_that_dates_batch_and_rows(world, tmp_path):
    out = tmp_path / "out"
    _two_runs(world, out)
    write_batch(world["second"], out)
    assert sorted(p.name[:10] for p in (out / "batches").iterdir()) == ["2024-03-01", "2024-04-01"]
    portfolio = pd.read_csv(out / "portfolio.csv")
    assert (portfolio["as_of"] == "2024-04-01").sum() == len(world["second"].portfolio)


def test_keep_batches_bounds_the_folders_but_not_the_history(world, tmp_path):
    out = tmp_path / "out"
    write_batch(world["first"], out, keep_batches=1)
    write_batch(world["second"], out, keep_batches=1)
    assert [p.name[:10] for p in (out / "batches").iterdir()] == ["2024-04-01"]
    assert sorted(pd.read_csv(out / "portfolio.csv")["as_of"].unique()) == ["2024-03-01", "2024-04-01"]


def test_every_file_of_a_batch_has_the_umasks_permissions_though_written_two_at_a_time(world, tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o027)
    try:
        write_batch(world["first"], out)
    finally:
        os.umask(old)
    batch = read_current(out)
    modes = {p.name: p.stat().st_mode & 0o777 for p in batch.root.iterdir()}
    assert set(modes) == {*FILES, "manifest.json"}
    assert set(modes.values()) == {0o640}


@pytest.mark.parametrize(("writer", "nth", "failing"), [
    ("_write_parquet", 2, "explanations.parquet"),  # scores.parquet went through, scores.csv too
    ("_write_csv", 2, "portfolio.csv"),
    ("write_text_atomic", 1, "manifest.json"),  # every table written, the manifest not
])
def test_a_full_disk_midway_leaves_the_previous_batch_current_and_whole(world, tmp_path, monkeypatch, writer, nth,
                                                                        failing):
    out = tmp_path / "out"
    write_batch(world["first"], out)
    before = _snapshot(out)
    import healthscore.io.output as output_module

    module = output_module if writer == "write_text_atomic" else write_module
    real = getattr(module, writer)
    calls = []

    def fills_the_disk(data, target):
        calls.append(1)
        if len(calls) < nth:
            return real(data, target)
        if hasattr(target, "write"):
            target.write(b"half a file" if "b" in getattr(target, "mode", "") else "half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(getattr(target, "name", target)))

    monkeypatch.setattr(module, writer, fills_the_disk)
    with pytest.raises(OutputError, match=r"cannot write the batch: No space left on device \(.*\); the previous "
                                          r"batch \(batch 2024-03-01-\S+ \(as of 2024-03-01, model version 1\)\) "
                                          r"is still current"):
        write_batch(world["second"], out)
    assert _snapshot(out) == before
    read_current(out).verify()
    assert [p.name[:10] for p in (out / "batches").iterdir()] == ["2024-03-01"]  # the half batch is gone
    assert not list(out.rglob("*.tmp"))
    assert load_account(out, "A-00001").as_of == "2024-03-01"


def test_leftovers_of_a_killed_run_are_removed_by_the_next_one(world, tmp_path):
    out = tmp_path / "out"
    write_batch(world["first"], out)
    # what kill -9 leaves at each step: a staging folder, a temp file, a renamed batch never made current
    (out / "batches" / "2024-04-01-20990101T000000000000Z-dead01.tmp").mkdir()
    (out / "batches" / "2024-04-01-20990101T000000000000Z-dead01.tmp" / "scores.parquet").write_bytes(b"half")
    (out / ".scores.parquet.abcd.tmp").write_bytes(b"half")
    orphan = out / "batches" / "2024-04-01-20990101T000000000001Z-dead02"
    orphan.mkdir()
    (orphan / "manifest.json").write_text(json.dumps({"as_of": "2024-04-01", "files": {}}))
    assert read_current(out).as_of == "2024-03-01"  # readers ignore all of it
    with OutputDir(out) as od:
        assert any("removed 3 leftover" in n for n in od.notes), od.notes
    assert [p.name[:10] for p in (out / "batches").iterdir()] == ["2024-03-01"]
    assert not list(out.glob(".*.tmp"))


def test_a_changed_file_is_refused_by_every_reader_naming_it(world, tmp_path):
    out = tmp_path / "out"
    _two_runs(world, out)
    batch = read_current(out)
    # a mixed batch: last month's explanations copied over this month's
    old = read_current(out).root.parent / sorted(p.name for p in (out / "batches").iterdir())[0]
    (batch.root / "explanations.parquet").write_bytes((old / "explanations.parquet").read_bytes())
    with pytest.raises(OutputError, match=r"explanations\.parquet does not match the manifest of batch 2024-04-01"):
        load_account(out, "A-00001")
    with pytest.raises(OutputError, match=r"explanations\.parquet does not match"):
        read_tables(out, ("scores.parquet", "explanations.parquet"))
    (batch.root / "history.parquet").unlink()
    with pytest.raises(OutputError, match=r"history\.parquet is missing, but the manifest .* lists it"):
        read_history(out)


def test_a_folder_written_before_manifests_is_read_and_then_taken_over(world, tmp_path):
    from _explain_world import hand_scores

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    hand_scores(legacy)
    assert read_current(legacy).manifest is None
    assert len(read_history(legacy)) == 4
    assert load_account(legacy, "A-GOLD").as_of == "2024-04-01"
    write_batch(world["second"], legacy)
    assert (legacy / "scores.parquet").is_symlink() and read_current(legacy).as_of == "2024-04-01"


def test_without_symbolic_links_current_is_a_file_and_the_copies_match_the_manifest(world, tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", no_links)
    out = tmp_path / "out"
    _two_runs(world, out)
    assert (out / "current").is_file() and not (out / "scores.parquet").is_symlink()
    batch = read_current(out)
    assert batch.as_of == "2024-04-01"
    from healthscore.io.output import Batch

    Batch(out, json.loads((out / "manifest.json").read_text())).verify()  # the top-level copies are whole


def test_a_read_only_or_unusable_out_fails_before_any_work(tmp_path, monkeypatch):
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    with pytest.raises(OutputError, match=r"cannot write the output folder: (File exists|Not a directory) .*a-file"):
        OutputDir(taken).__enter__()
    import healthscore.io.output as output_module

    def read_only(self, data):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(output_module.Path, "write_bytes", read_only)
    with pytest.raises(OutputError, match=r"cannot write the output folder: Permission denied \(.*probe.*\); "
                                          r"choose another --out .*nothing was scored"):
        OutputDir(tmp_path / "ro").__enter__()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_really_read_only_out_fails_in_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    with pytest.raises(OutputError, match="Permission denied"):
        OutputDir(ro).__enter__()


def test_too_little_space_for_another_batch_is_refused_up_front(world, tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_batch(world["first"], out)
    import healthscore.io.output as output_module

    monkeypatch.setattr(output_module.shutil, "disk_usage",
                        lambda path: SimpleNamespace(total=10 ** 9, used=10 ** 9 - 1000, free=1000))
    with pytest.raises(OutputError, match=r"has 1,000 bytes free; a new batch needs about .* \(twice the last "
                                          r"batch's .*\): free some space"):
        OutputDir(out).__enter__()


# ---- the lock ---------------------------------------------------------------------------------------------

HOLD = """
import sys, time
sys.path.insert(0, {src!r})
from healthscore.io.lock import FileLock
with FileLock({path!r}):
    print("held", flush=True)
    time.sleep({seconds})
"""


def _holder(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(src=SRC, path=str(path), seconds=seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = _holder(out / LOCK, 30)
    try:
        with pytest.raises(LockBusy, match=rf"another score run \(pid {proc.pid} on .*, started .*\) holds "
                                           rf".*out; wait for it to finish, or pass --lock-timeout"):
            OutputDir(out).__enter__()
        assert LockBusy.exit_code == 75
    finally:
        proc.kill()
        proc.wait()


def test_a_second_writer_waits_with_a_timeout(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = _holder(out / LOCK, 1.0)
    t0 = time.monotonic()
    with OutputDir(out, lock_timeout=30) as od:
        assert time.monotonic() - t0 > 0.3
        assert od.notes == []  # released cleanly: not a stale lock
    proc.wait()


def test_a_dead_holders_lock_is_taken_over_with_a_notice(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = _holder(out / LOCK, 30)
    proc.kill()  # kill -9 mid-run: the kernel drops the lock, the holder's text stays
    proc.wait()
    assert read_holder(out / LOCK).pid == proc.pid
    with OutputDir(out) as od:
        assert od.notes == [f"took over the lock of pid {proc.pid} on {read_holder(out / LOCK).host}, started "
                            f"{od._lock.stale.started}, which is no longer running (an interrupted run)"]
    assert (out / LOCK).read_text() == ""  # released cleanly


def test_without_kernel_locks_a_live_holder_is_respected_and_a_dead_one_replaced(tmp_path, monkeypatch):
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    path = tmp_path / "x.lock"
    live = {"pid": os.getppid(), "host": os.uname().nodename, "started": "2024-01-01T00:00:00Z"}
    path.write_text(json.dumps(live))
    with pytest.raises(LockBusy, match=rf"pid {os.getppid()}"):
        FileLock(path).acquire()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path.write_text(json.dumps({**live, "pid": dead.pid}))
    lock = FileLock(path).acquire()
    assert lock.stale.pid == dead.pid and read_holder(path).pid == os.getpid()
    lock.release()


def test_two_concurrent_score_runs_both_land_in_history(world, tmp_path):
    """Two cron jobs into one folder: the second waits for the first; history holds both dates."""
    out = tmp_path / "out"
    base = ["score", "--data", str(world["data"]), "--out", str(out), "--model", world["model_uri"], "-q",
            "--lock-timeout", "120"]
    procs = [cli_popen(*base, "--as-of", str(d), cwd=tmp_path) for d in (AS_OF_1, AS_OF_2)]
    results = [(p.wait(timeout=240), p.communicate()) for p in procs]
    assert [rc for rc, _ in results] == [0, 0], [err for _, (_, err) in results]
    hist = pd.read_parquet(out / "history.parquet")
    assert sorted(pd.to_datetime(hist["as_of"]).dt.date.unique()) == [AS_OF_1, AS_OF_2]
    assert len(hist) == 2 * 250
    read_current(out).verify()


@pytest.mark.slow
def test_200_randomly_timed_kills_never_leave_a_mixed_batch(world, tmp_path):
    """benchmarks/kill_loop.py: half the kills at random in a run, half inside its write (~6 min here)."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "kill_loop.py"
    done = subprocess.run([sys.executable, str(script), "--data", str(world["data"]), "--model", world["model_uri"],
                           "--kills", "200", "--out", str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SRC}, timeout=3600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "200 kills" in done.stdout and "no mixed batch" in done.stdout
