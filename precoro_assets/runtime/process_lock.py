"""A lock every process on this machine shares through a file: around the short SQLite write transactions of
the request ledger and the detail staging, and around each warehouse write (see warehouse.store).

Why not leave it to SQLite: a writer that finds the database locked sleeps in SQLite's busy handler for 1, 2,
5, 10... ms before it looks again, though the transaction it waits for lasts a few tens of microseconds. With
two or more processes sending requests as fast as the rate limits allow (a sped-up simulator, a raised
per_second), those sleeps become the bottleneck: measured, the ledger alone held two detail worker processes to
1,400 requests per second instead of 2,200. A blocked flock() is woken by the kernel the moment the lock is
released, and the kernel drops the lock when its holder dies, even by kill -9.
"""

from __future__ import annotations

import fcntl
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


class ProcessLock:
    """An exclusive lock on `path`, held across processes (POSIX flock).

    The lock belongs to the open file, which the threads of a process share: callers serialize their own
    threads first (a threading.Lock), then take this one."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: IO[bytes] | None = None
        self._pid: int | None = None

    def acquire(self, timeout: float | None = None) -> bool:
        """Take the lock: wait as long as it takes (None), or up to `timeout` seconds; False if not taken."""
        handle = self._open()
        if timeout is None:
            fcntl.flock(handle, fcntl.LOCK_EX)  # the kernel wakes us the moment it is free
            return True
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02 + random.random() * 0.03)  # noqa: S311 - jitter, not security

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)

    @contextmanager
    def held(self) -> Iterator[None]:
        """The lock for the block, however long the wait."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def _open(self) -> IO[bytes]:
        # A forked child must not share its parent's open file: that would share the lock too.
        if self._file is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file, self._pid = open(self.path, "a+b"), os.getpid()  # noqa: SIM115 - kept open for reuse
        return self._file

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
