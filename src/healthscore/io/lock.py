"""Exclusive file locks: one writer per output folder, one migration or registration per MLflow store.

A lock is a small file holding who has it (pid, host, start time, command). The kernel lock
(``fcntl.flock``) is what excludes: it is released when its process dies, however it dies, so a
``kill -9`` never leaves a folder locked for ever. The file's text is only for people and for the
next taker: a clean release empties it, so a taker that finds text left behind knows the previous
holder died and says so. On a file system where ``flock`` is not supported the text is the lock: a
holder on this host whose process is gone (or whose pid now belongs to a younger process) is stale
and taken over; a holder on another host is respected.

The file is never deleted (deleting a locked file lets two processes lock two different files of one
name), so an output folder keeps an empty ``.healthscore.lock``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from healthscore.errors import HealthscoreError

#: errnos meaning "this file system does not do flock": fall back to the holder text
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class LockBusy(HealthscoreError):
    """Another live process holds the lock. Exit status 75 (EX_TEMPFAIL): a cron job may simply retry."""

    exit_code = 75


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a lock."""

    pid: int
    host: str
    started: str
    command: str = ""
    #: the process's start time in clock ticks since boot (Linux), to tell a reused pid from the holder
    proc_start: str = ""

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}"

    def alive(self) -> bool | None:
        """True/False for a holder on this host; None (unknown) for one on another host."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # it exists, under another user
        current = _proc_start(self.pid)
        return not (self.proc_start and current and current != self.proc_start)


def _proc_start(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: split after its closing parenthesis
    return stat.rsplit(")", 1)[-1].split()[19]


def me() -> Holder:
    """This process, as a lock holder."""
    return Holder(pid=os.getpid(), host=socket.gethostname(),
                  started=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
                  proc_start=_proc_start(os.getpid()))


def read_holder(path: str | os.PathLike[str]) -> Holder | None:
    """The holder written in a lock file, or None when it is empty, unreadable or not ours."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
        data = json.loads(text) if text else None
        return Holder(**{k: data[k] for k in ("pid", "host", "started") if k in data},
                      command=str(data.get("command", "")), proc_start=str(data.get("proc_start", "")))
    except (OSError, ValueError, TypeError, KeyError):
        return None


#: locks this process holds, by real path: taking one again is a no-op (a job calling another job)
_HELD: dict[str, int] = {}


class FileLock:
    """An exclusive lock on ``path``, waiting up to ``timeout`` seconds (0: try once).

    ``busy`` words the error when another process keeps it, e.g. ``"another score run ({holder}) holds
    /out"``; ``stale`` is the holder a taker found left behind by a dead process (for a notice).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 0.0, busy: str = "{holder} holds {path}",
                 fix: str = "", poll: float = 0.1) -> None:
        self.path = Path(path)
        self.timeout = max(0.0, float(timeout))
        self.busy = busy
        self.fix = fix
        self.poll = poll
        self.stale: Holder | None = None
        self._fd: int | None = None
        self._key = ""

    def acquire(self) -> FileLock:
        self._key = os.path.realpath(self.path)
        if self._key in _HELD:
            _HELD[self._key] += 1
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                if self._try(fd):
                    break
                if time.monotonic() >= deadline:
                    holder = read_holder(self.path)
                    for _ in range(10):  # a holder that has just taken the lock writes itself a moment later
                        if holder is not None:
                            break
                        time.sleep(0.02)
                        holder = read_holder(self.path)
                    who = holder.describe() if holder else "another process"
                    waited = f" (waited {self.timeout:g} s)" if self.timeout else ""
                    raise LockBusy(self.busy.format(holder=who, path=self.path) + waited
                                   + (f"; {self.fix}" if self.fix else ""))
                time.sleep(self.poll)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _HELD[self._key] = 1
        return self

    def _try(self, fd: int) -> bool:
        """Take the lock if free (or stale); write ourselves into it."""
        kernel = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_FLOCK:
                raise
            kernel = False
        previous = read_holder(self.path)
        if previous is not None and previous.pid != os.getpid():
            alive = previous.alive()
            # with a kernel lock, text left behind is a dead holder's (or a host's that flock cannot see);
            # without one, the text is the lock: only a holder known to be gone may be replaced
            if alive or (alive is None and not kernel):
                if kernel:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                return False
            self.stale = previous
        data = json.dumps(asdict(me())).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        return True

    def release(self) -> None:
        if self._key not in _HELD:
            return
        _HELD[self._key] -= 1
        if _HELD[self._key] > 0:
            return
        del _HELD[self._key]
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # an empty file says "released cleanly"
        except OSError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass
        os.close(fd)

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
