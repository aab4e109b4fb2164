"""The output folder of ``score``: one writer at a time, all-or-nothing batches, readers that see only whole ones.

The layout (CONTRACT §6)::

    OUT/
      .healthscore.lock              who is writing (pid, host, start time); empty when nobody is
      batches/
        2024-06-01-20240601T063000123456Z-3f9a1c/    one complete batch, never changed once current
          scores.parquet scores.csv explanations.parquet history.parquet portfolio.csv drift.csv
          manifest.json                as_of, model version, rows and sha256 of every file (written last)
      current -> batches/2024-06-01-…  the batch readers use: replaced by one rename
      scores.parquet -> current/scores.parquet     one link per file, so OUT/<file> is always a file
      …                                            of the current batch (CONTRACT §4 names them there)
      manifest.json -> current/manifest.json

A batch is written into ``batches/<name>.tmp/`` (each file synced), renamed to ``batches/<name>/`` once
its manifest is in, and made current by replacing the ``current`` link: a crash or a full disk at any
point leaves the previous batch current and whole, and the next run removes what was left half done.
Because the top-level names are links through ``current``, they switch together with it.

Where the file system has no symbolic links (some network shares, FAT), ``current`` is a small JSON
file replaced the same way and the top-level files are copies put in place after it, ``manifest.json``
last; a reader of those copies tells a mixed set by the manifest's sha256.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from healthscore import __version__
from healthscore.errors import HealthscoreError
from healthscore.io.lock import FileLock
from healthscore.io.write import (
    ParquetStream,
    fsync_dir,
    process_umask,
    sha256_file,
    write_table_atomic,
    write_text_atomic,
)

LOCK = ".healthscore.lock"
BATCHES = "batches"
CURRENT = "current"
MANIFEST = "manifest.json"
#: the top-level names this module manages (and may replace or remove); anything else in OUT is left alone
OUTPUT_FILES = ("scores.parquet", "scores.csv", "explanations.parquet", "history.parquet", "portfolio.csv",
                "drift.csv", MANIFEST)
MANIFEST_FORMAT = 1
_NO_SYMLINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.EACCES}


class OutputError(HealthscoreError):
    """The output folder cannot be written, or what is in it is not a whole batch."""


def _os_problem(exc: OSError, fallback: Path | str) -> str:
    where = exc.filename or fallback
    return f"{exc.strerror or exc} ({where})"


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


# ---- reading ------------------------------------------------------------------------------------------------

@dataclass
class Batch:
    """One batch folder: its manifest and files. ``manifest`` is None for a folder written before manifests."""

    root: Path
    manifest: dict[str, Any] | None

    @property
    def name(self) -> str:
        return str((self.manifest or {}).get("batch") or self.root.name)

    @property
    def as_of(self) -> str | None:
        return (self.manifest or {}).get("as_of")

    @property
    def files(self) -> list[str]:
        if self.manifest is None:
            return [n for n in OUTPUT_FILES if n != MANIFEST and (self.root / n).is_file()]
        return list(self.manifest.get("files", {}))

    def describe(self) -> str:
        if self.manifest is None:
            return f"{self.root} (written before manifests)"
        return f"batch {self.name} (as of {self.as_of}, model version {self.manifest.get('model_version')})"

    def size_bytes(self) -> int:
        if self.manifest is not None:
            return int(sum(f.get("bytes", 0) for f in self.manifest.get("files", {}).values()))
        return int(sum((self.root / n).stat().st_size for n in self.files))

    def path(self, name: str, *, verify: bool = True) -> Path | None:
        """The file ``name`` of this batch (None if the batch has none); checked against the manifest."""
        path = self.root / name
        if self.manifest is None:
            return path if path.is_file() else None
        entry = self.manifest.get("files", {}).get(name)
        if entry is None:
            return None
        if not path.is_file():
            raise OutputError(f"{path} is missing, but the manifest of {self.describe()} lists it: the batch "
                              "is incomplete; restore the file (or move the folder's `current` aside to start a "
                              "new history)")
        if verify:
            digest = sha256_file(path)
            if digest != entry.get("sha256"):
                raise OutputError(
                    f"{path} does not match the manifest of {self.describe()} (sha256 {digest[:12]}…, expected "
                    f"{str(entry.get('sha256'))[:12]}…): the file was changed after it was written; restore it "
                    "from a backup (or move the folder's `current` aside to start a new history)"
                )
        return path

    def read(self, name: str) -> pd.DataFrame | None:
        """A table of this batch (None when absent), after checking its sha256."""
        path = self.path(name)
        if path is None:
            return None
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, keep_default_na=True)

    def verify(self) -> None:
        """Check every file against the manifest; OutputError naming the first that disagrees."""
        for name in self.files:
            self.path(name)


def _load_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"{path} is missing: {path.parent} is not a complete batch") from None
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path} cannot be read ({exc}): {path.parent} is not a usable batch") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise OutputError(f"{path} is not a healthscore batch manifest (no 'files' table)")
    return manifest


def _pointer_target(root: Path) -> Path | None:
    """The batch folder ``OUT/current`` points to (a link, or a JSON file where links are not available)."""
    pointer = root / CURRENT
    if pointer.is_symlink():
        return root / os.readlink(pointer)
    if pointer.is_file():
        try:
            return root / json.loads(pointer.read_text(encoding="utf-8"))["batch"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OutputError(f"{pointer} cannot be read ({exc}): move it aside and score again") from None
    return None


def read_current(out: str | os.PathLike[str]) -> Batch | None:
    """The batch a reader of ``out`` should use, or None when ``out`` holds none.

    ``out`` may be a score output folder (its ``current`` batch), one batch folder (with its
    ``manifest.json``), or a folder written before manifests (its files are read as they are).
    """
    root = Path(out)
    target = _pointer_target(root)
    if target is not None:
        if not target.is_dir():
            raise OutputError(f"{root / CURRENT} points to {target}, which does not exist: restore that batch, "
                              f"or move {root / CURRENT} aside to start a new history in this folder")
        return Batch(target, _load_manifest(target / MANIFEST))
    if (root / MANIFEST).is_file():
        return Batch(root, _load_manifest(root / MANIFEST))
    if any((root / n).is_file() for n in OUTPUT_FILES):
        return Batch(root, None)
    return None


def read_tables(out: str | os.PathLike[str], names: tuple[str, ...], *, attempts: int = 3
                ) -> tuple[Batch | None, dict[str, pd.DataFrame | None]]:
    """Read several tables of the current batch, all from the same one, each checked against the manifest.

    A writer may replace and prune the batch while it is being read: then the new one is read instead.
    """
    for attempt in range(attempts):
        batch = read_current(out)
        if batch is None:
            return None, {n: None for n in names}
        try:
            return batch, {n: batch.read(n) for n in names}
        except (FileNotFoundError, OutputError):
            now = read_current(out)
            if attempt == attempts - 1 or now is None or now.name == batch.name:
                raise  # not a batch replaced under our feet: a real problem
    raise AssertionError("unreachable")


# ---- writing ------------------------------------------------------------------------------------------------

def batch_name(as_of: str | None) -> str:
    """``<as_of>-<UTC time>-<random>``: sorted by as-of date, then by when it was written."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{as_of or 'table'}-{stamp}-{secrets.token_hex(3)}"


def _write_file(path: Path, frame: pd.DataFrame | Path, umask: int | None = None) -> dict[str, Any]:
    """One file of a batch at ``path`` (a frame written, or a finished file moved): its rows, bytes, sha256."""
    if isinstance(frame, Path):
        os.replace(frame, path)
        rows = pq.ParquetFile(path).metadata.num_rows
    else:
        write_table_atomic(frame, path, umask=umask)
        rows = len(frame)
    return {"rows": int(rows), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


class _BatchStream:
    """``ParquetStream`` whose disk errors are the batch's (``OutputError``); ``path`` is the finished file."""

    def __init__(self, stream: ParquetStream, before: str) -> None:
        self._stream, self._before = stream, before
        self.path: Path | None = None

    def _guard(self, step):
        try:
            return step()
        except OSError as exc:
            self._stream.abort()
            raise OutputError(f"cannot write the batch: {_os_problem(exc, self._stream.path)}; {self._before}"
                              ) from None

    def write(self, table) -> None:
        self._guard(lambda: self._stream.write(table))

    def close(self) -> Path:
        self.path = self._guard(self._stream.close)
        return self.path

    def discard(self) -> None:
        """Remove the file, written or not (a run that failed before publishing)."""
        self._stream.abort()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@dataclass
class OutputDir:
    """The output folder, held by this process for one run: ``with OutputDir(out) as od: … od.publish(…)``.

    Entering checks that the folder can be written, takes its lock (waiting up to ``lock_timeout``
    seconds for another run), removes what an interrupted run left behind, repairs the top-level
    links, and checks that the disk has room for about twice the last batch. All of it happens before
    any scoring work, and every failure is one line naming the path.
    """

    root: Path
    lock_timeout: float = 0.0
    #: how many as-of dates keep their batch folder (0: all); one batch per as-of date is kept
    keep_batches: int = 0
    what: str = "score run"
    notes: list[str] = field(default_factory=list)
    current: Batch | None = None
    links: bool = True
    _lock: FileLock | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    # -- entering: writable, locked, clean, room -----------------------------------------------------------

    def __enter__(self) -> OutputDir:
        self._check_writable()
        self._lock = FileLock(self.root / LOCK, timeout=self.lock_timeout,
                              busy=f"another {self.what} ({{holder}}) holds {self.root}",
                              fix="wait for it to finish, or pass --lock-timeout SECONDS to wait for it")
        try:
            self._lock.acquire()
        except OSError as exc:
            raise OutputError(f"cannot lock the output folder: {_os_problem(exc, self.root / LOCK)}") from None
        try:
            if self._lock.stale is not None:
                self.notes.append(f"took over the lock of {self._lock.stale.describe()}, which is no longer "
                                  "running (an interrupted run)")
            self.current = read_current(self.root)
            self._clean()
            self._check_space()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.release()

    def _check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / BATCHES).mkdir(exist_ok=True)
            probe = self.root / BATCHES / f".probe-{os.getpid()}-{secrets.token_hex(3)}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise OutputError(f"cannot write the output folder: {_os_problem(exc, self.root)}; choose another "
                              "--out or fix its permissions (nothing was scored)") from None
        probe_link = self.root / f".probe-link-{os.getpid()}-{secrets.token_hex(3)}.tmp"
        try:
            os.symlink(BATCHES, probe_link)
            probe_link.unlink()
        except OSError as exc:
            if exc.errno not in _NO_SYMLINKS:
                raise OutputError(f"cannot write the output folder: {_os_problem(exc, self.root)}") from None
            self.links = False

    def _check_space(self) -> None:
        if self.current is None:
            return
        try:
            last = self.current.size_bytes()
            free = shutil.disk_usage(self.root).free
        except OSError:
            return
        if free < 2 * last:
            raise OutputError(
                f"{self.root} has {_size(free)} free; a new batch needs about {_size(2 * last)} (twice the last "
                f"batch's {_size(last)}): free some space or choose another --out (nothing was scored)"
            )

    def _clean(self) -> None:
        """Remove temporary files and folders and never-current batches left by interrupted runs."""
        removed = 0
        batches = self.root / BATCHES
        current = self.current.root.resolve() if self.current is not None and self.current.manifest else None
        for entry in sorted(batches.iterdir()) if batches.is_dir() else []:
            leftover = entry.name.endswith(".tmp") or (entry.is_dir() and not (entry / MANIFEST).is_file())
            # a complete batch written after the current one was renamed but never made current
            orphan = current is not None and entry.is_dir() and _written_after(entry, current)
            if leftover or orphan:
                _remove(entry)
                removed += 1
        for entry in self.root.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                _remove(entry)
                removed += 1
        if removed:
            self.notes.append(f"removed {removed} leftover temporary file(s) of an interrupted run from {self.root}")
        if current is not None:
            self._top_level(self.current)

    # -- publishing -----------------------------------------------------------------------------------------

    def stream(self, file_name: str, schema) -> _BatchStream:
        """A Parquet file of the next batch written a slice at a time before ``publish`` (``ParquetStream``),
        in this folder (so publishing moves it) under a name an interrupted run's cleanup removes. Its disk
        errors read as the batch's: "cannot write the batch: …; the previous batch is still current"."""
        path = self.root / BATCHES / f".{file_name}.{os.getpid()}-{secrets.token_hex(3)}.tmp"
        before = f"the previous batch ({self.current.describe()}) is still current" if self.current else \
            "nothing was made current"
        try:
            return _BatchStream(ParquetStream(path, schema, background=True), before)
        except OSError as exc:
            raise OutputError(f"cannot write the batch: {_os_problem(exc, path)}; {before}") from None

    def publish(self, tables: dict[str, pd.DataFrame | Path], *, as_of: str | None, info: dict[str, Any]) -> Batch:
        """Write ``tables`` as one new batch and make it current in one step; return it.

        A value may be a finished file (a ``Path``, e.g. a ``stream``'s): it is moved into the batch.
        Any failure before the switch (a full disk, a kill) leaves the previous batch current, untouched,
        and the half-written batch is removed (now, or by the next run).
        """
        name = batch_name(as_of)
        batches = self.root / BATCHES
        staging, final = batches / f"{name}.tmp", batches / name
        before = f"the previous batch ({self.current.describe()}) is still current" if self.current else \
            "nothing was made current"
        writing = staging
        try:
            staging.mkdir(parents=True)
            files: dict[str, dict[str, Any]] = {}
            # two files at a time: a CSV (pandas, holding the interpreter) beside a Parquet file (Arrow,
            # which lets go of it); every write has finished when the block ends, failed or not
            umask = process_umask()  # read once, before the threads: each file gets 0666 less it
            pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="healthscore-publish")
            try:
                written = [(file_name, pool.submit(_write_file, staging / file_name, frame, umask))
                           for file_name, frame in tables.items()]
                for file_name, done in written:  # the first failure in the tables' order is the one reported
                    writing = staging / file_name
                    files[file_name] = done.result()
            finally:  # a failure: the files not started are not written; every write has ended either way
                pool.shutdown(wait=True, cancel_futures=True)
            manifest = {"format": MANIFEST_FORMAT, "batch": name, "as_of": as_of,
                        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "healthscore_version": __version__, **info, "files": files}
            writing = staging / MANIFEST
            write_text_atomic(json.dumps(manifest, indent=2, default=str) + "\n", writing)
            fsync_dir(staging)
            os.rename(staging, final)
            fsync_dir(batches)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise OutputError(f"cannot write the batch: {_os_problem(exc, writing)}; {before}") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        batch = Batch(final, manifest)
        committed = False
        try:
            if self.links:
                self._link_names(batch)
            self._swap_current(name)
            committed = True
            self._top_level(batch)
        except OSError as exc:
            if not committed:
                shutil.rmtree(final, ignore_errors=True)
                raise OutputError(f"cannot make the batch current: {_os_problem(exc, self.root)}; {before}") from None
            self.notes.append(f"batch {name} is current, but the top-level files could not be refreshed "
                              f"({_os_problem(exc, self.root)}); the next run repairs them")
        self.current = batch
        try:
            self._prune(batch)
        except OSError as exc:
            self.notes.append(f"could not remove older batches ({_os_problem(exc, batches)})")
        return batch

    def _swap_current(self, name: str) -> None:
        tmp = self.root / f".{CURRENT}.{secrets.token_hex(4)}.tmp"
        if self.links:
            os.symlink(f"{BATCHES}/{name}", tmp)
            os.replace(tmp, self.root / CURRENT)
        else:
            write_text_atomic(json.dumps({"batch": f"{BATCHES}/{name}"}) + "\n", self.root / CURRENT)
        fsync_dir(self.root)

    def _link_names(self, batch: Batch) -> None:
        """Top-level ``name -> current/name`` links for every file of ``batch`` (made before the switch)."""
        for name in [*batch.files, MANIFEST]:
            top = self.root / name
            want = f"{CURRENT}/{name}"
            if top.is_symlink() and os.readlink(top) == want:
                continue
            tmp = self.root / f".{name}.{secrets.token_hex(4)}.tmp"
            os.symlink(want, tmp)
            os.replace(tmp, top)

    def _top_level(self, batch: Batch) -> None:
        """Make the top-level names show exactly ``batch``: links (or copies), and no file of another batch."""
        names = [*batch.files, MANIFEST]
        if self.links:
            self._link_names(batch)
        else:
            for name in names:  # manifest.json last: it vouches for the copies before it
                top, src = self.root / name, batch.root / name
                if top.is_file() and not top.is_symlink() and name != MANIFEST and \
                        sha256_file(top) == batch.manifest["files"][name]["sha256"]:
                    continue
                tmp = self.root / f".{name}.{secrets.token_hex(4)}.tmp"
                try:
                    os.link(src, tmp)
                except OSError:
                    shutil.copyfile(src, tmp)
                os.replace(tmp, top)
        for name in OUTPUT_FILES:
            top = self.root / name
            if name not in names and (top.is_symlink() or top.is_file()):
                top.unlink()
        fsync_dir(self.root)

    def _prune(self, batch: Batch) -> None:
        """Keep one batch per as-of date (the newest), and at most ``keep_batches`` dates (never the current)."""
        by_date: dict[str, list[Path]] = {}
        for entry in sorted((self.root / BATCHES).iterdir()):
            if entry.is_dir() and not entry.name.endswith(".tmp") and (entry / MANIFEST).is_file():
                try:
                    key = str(_load_manifest(entry / MANIFEST).get("as_of") or "table")
                except OutputError:
                    continue
                by_date.setdefault(key, []).append(entry)
        keep = {batch.root.resolve()}
        dates = sorted(by_date)
        if self.keep_batches > 0:
            dates = dates[-self.keep_batches:]
        for key in dates:
            keep.add(max(by_date[key], key=lambda p: p.name).resolve())
        for paths in by_date.values():
            for path in paths:
                if path.resolve() not in keep:
                    shutil.rmtree(path, ignore_errors=True)


def _written_after(entry: Path, current: Path) -> bool:
    """Whether batch folder ``entry`` was written after ``current``, by the UTC time in their names."""
    def stamp(p: Path) -> str:
        parts = p.name.rsplit("-", 2)
        return parts[1] if len(parts) == 3 else ""
    return stamp(entry) > stamp(current)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
