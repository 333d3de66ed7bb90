"""One server per data dir: an exclusive lock on ``data_dir/server.lock`` held for the life of the process. The
data dir holds the database, its keys' hashes and the first admin key: it is the owner's alone (0700, files 0600).

Two servers on one SQLite database would both take calls and store them; the second refuses to start instead.
``media-server keys ...`` does not take the lock (it may run beside the server). Several servers sharing data use
PostgreSQL and Redis, each with its own data dir.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import uuid
from pathlib import Path

log = logging.getLogger(__name__)


def private_dir(path: Path) -> None:
    """Create the data dir for its owner alone (0700); one that others may read is narrowed, and the log says so."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        try:
            path.chmod(0o700)
            log.warning("data dir %s was open to others (%o): now 0700", path, mode)
        except PermissionError:  # (not ours: say so and go on; the files in it are still 0600)
            log.warning("data dir %s is open to others (%o) and is not ours to narrow", path, mode)


def private_file(path: Path) -> None:
    """``path`` exists and is its owner's alone (0600): created so (never readable for a moment), or narrowed."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)


class DataDirLocked(RuntimeError):
    """Another server holds the data dir."""


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "server.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirLocked(
                f"another media-server (pid {holder}) holds the lock {self.path}: one server per data dir "
                "(stop it, or give this one another --data-dir)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None


def node_id(data_dir: Path, configured: str | None) -> str:
    """This server's name in the store: the configured one, else one made up once and kept in the data dir."""
    if configured:
        return configured
    path = data_dir / "node-id"
    try:
        return path.read_text().strip() or _new_node_id(path)
    except FileNotFoundError:
        return _new_node_id(path)


def _new_node_id(path: Path) -> str:
    node = f"node-{uuid.uuid4().hex[:12]}"
    private_file(path)
    path.write_text(node + "\n")
    return node
