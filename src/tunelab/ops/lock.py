"""One process trains in a job dir at a time: ``<job dir>/.tunelab.lock``.

Two runs with the same ``resume.name`` (a command started twice, a sweep relaunched while the
first still runs) used to train in one dir at once; both crashed ~90 s later on each other's
checkpoints. Now the second stops at once (exit 2) with the holder's host and pid.

How: the lock file is held with ``flock`` (on NFS, Linux maps it to an NFS lock), so the kernel
releases it whenever its process ends, SIGKILL and OOM included; the file also says who holds
it (host, pid, start time), for the message. A lock file left by a process that died is taken
over, and the job's log says so. The holder unlinks the file when it is done; a process that
locked the file just as it was unlinked finds its inode gone and tries again (the usual
flock-and-unlink protocol). Where the file system has no ``flock``, the recorded pid decides:
a holder on this host whose process is gone is taken over, any other is respected.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
from pathlib import Path
from typing import Optional

from tunelab.errors import TunelabError

log = logging.getLogger("tunelab")

LOCK_NAME = ".tunelab.lock"


class JobDirBusy(TunelabError):
    """Another process trains in this job dir."""


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def pid_alive(pid: int) -> bool:
    """A process with this pid exists on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_started_at(pid: int) -> Optional[float]:
    """When a process started, in epoch seconds (Linux: /proc), None where it cannot be read."""
    try:
        # field 22 (starttime, clock ticks after boot); the name (field 2) may hold spaces and ')'
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def recorded_process_alive(record: dict) -> Optional[bool]:
    """Whether the process a results.json that says ``running`` names (``environment.host`` and
    ``.pid``) still runs: None when it cannot be known here (another host, no pid). A pid is
    reused once its process is gone, so a process that started after the record did is another."""
    from datetime import datetime

    env = (record or {}).get("environment") or {}
    if env.get("host") != socket.gethostname() or not env.get("pid"):
        return None
    pid = int(env["pid"])
    if not pid_alive(pid):
        return False
    started = process_started_at(pid)
    try:
        written = datetime.fromisoformat(str(record.get("started_at"))).timestamp()
    except (TypeError, ValueError):
        written = None
    # 2 s: /proc's boot time is whole seconds
    return not (started is not None and written is not None and started > written + 2)


def _busy(job_dir: Path, holder: dict) -> JobDirBusy:
    who = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
    since = f" since {holder['started_at']}" if holder.get("started_at") else ""
    return JobDirBusy(f"another process is training in {job_dir} ({who}{since}): wait for it to end or stop "
                      f"it, or choose another resume.name (or hydra.run.dir) for this run.")


class JobLock:
    """``with``-less on purpose: a job holds it from before its first write to after its last."""

    def __init__(self, job_dir: Path):
        self.job_dir = Path(job_dir)
        self.path = self.job_dir / LOCK_NAME
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`JobDirBusy`; a dead holder's lock is taken over (logged)."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise _busy(self.job_dir, holder) from None
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    os.close(fd)
                    raise
                holder = _read_holder(fd)  # no flock here: the recorded pid decides
                if holder and (holder.get("host") != socket.gethostname() or pid_alive(int(holder.get("pid", 0)))):
                    os.close(fd)
                    raise _busy(self.job_dir, holder) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:  # unlinked by a holder that just finished: lock the new file instead
                os.close(fd)
                continue
            break
        stale = _read_holder(fd)
        if stale:
            where = "this host" if stale.get("host") == socket.gethostname() else f"host {stale.get('host')}"
            log.warning(f"[tunelab] {self.path}: taking over the lock of pid {stale.get('pid')} on {where} "
                        f"(started {stale.get('started_at')}), whose process is gone")
        from tunelab.results import utcnow

        me = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started_at": utcnow()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, me, 0)
        self._fd = fd

    def release(self) -> None:
        """Unlink the file, then let go of it (see module doc); a no-op if not held."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None
