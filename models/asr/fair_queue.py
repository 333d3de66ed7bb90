"""The decode scheduler's queue: a fair share of the device between fairness keys, live work before batch work.

Jobs wait in ranks, taken in order: live finals, live interims, batch finals, batch interims (batch: work meant to
run faster than real time, such as a whole recording, which is decoded only when no live job waits). Within a rank
each fairness key (opaque here; the server passes the team) has a queue of its own, oldest first, and the keys take
turns: one job per key with work waiting, then the next key's (round-robin). So a key with a backlog of a hundred
finals delays another key's final by at most one job, not by the hundred, and with a single key the order is
first-in first-out, finals before interims, as it always was.

Thread-safe: the scheduler's worker threads take jobs (``get`` blocks), the event loop puts them.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

RANKS = 4  # live finals, live interims, batch finals, batch interims


def rank_of(final: bool, batch: bool) -> int:
    """The rank of a job: lower is taken first."""
    return (2 if batch else 0) + (0 if final else 1)


class Closed(Exception):
    """The queue was closed: no more jobs are handed out."""


class _Rank(Generic[T]):
    """One rank's jobs: a first-in first-out queue per key, and the keys with jobs, in the order of their turns."""

    def __init__(self) -> None:
        self.jobs: dict[str, deque[T]] = {}
        self.turns: deque[str] = deque()

    def put(self, key: str, item: T) -> None:
        waiting = self.jobs.get(key)
        if waiting is None:
            self.jobs[key] = waiting = deque()
            self.turns.append(key)  # a key new to the rank waits for one turn of every key already there
        waiting.append(item)

    def take(self) -> T:
        key = self.turns.popleft()
        waiting = self.jobs[key]
        item = waiting.popleft()
        if waiting:
            self.turns.append(key)  # its next job after every other key's next one
        else:
            del self.jobs[key]
        return item


class FairQueue(Generic[T]):
    def __init__(self, rank: Callable[[T], int], key: Callable[[T], str]) -> None:
        self._rank = rank
        self._key = key
        self._ranks: list[_Rank[T]] = [_Rank() for _ in range(RANKS)]
        self._size = 0
        self._closed = False
        self._ready = threading.Condition()

    def put(self, item: T) -> None:
        with self._ready:
            if self._closed:
                raise Closed()
            self._ranks[self._rank(item)].put(self._key(item), item)
            self._size += 1
            self._ready.notify()

    def get(self, timeout: float | None = None) -> T:
        """The next job; ``queue.Empty`` after ``timeout`` seconds (None: wait for one), ``Closed`` once closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while not self._size:
                if self._closed:
                    raise Closed()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise queue.Empty
                self._ready.wait(left)
            if self._closed:
                raise Closed()
            for rank in self._ranks:
                if rank.turns:
                    self._size -= 1
                    return rank.take()
            raise AssertionError("a job was counted but not found")

    def get_nowait(self) -> T:
        return self.get(0)

    def qsize(self) -> int:
        with self._ready:
            return self._size

    def close(self) -> list[T]:
        """Hand out nothing more; wake every waiting taker (``Closed``); return the jobs left, in order."""
        with self._ready:
            self._closed = True
            left: list[T] = []
            for rank in self._ranks:
                while rank.turns:
                    left.append(rank.take())
            self._size = 0
            self._ready.notify_all()
            return left
