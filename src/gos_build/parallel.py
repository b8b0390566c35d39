"""Worker processes for the once-per-AOI jobs (the gather, the packages): a job's ``threads`` put to use.

The per-tile jobs are parallel across tiles; the dataset job runs alone, after all of them, so its
work -- unpacking ~100 000 chip files, decoding them for the packed store, writing the STAC items --
is split over worker processes (Python's lock would serialise threads). Results are collected in a
fixed order, so the files are the same for any number of workers.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager


class _Inline(Executor):
    """An executor that runs each call at once in this process (one worker: no pool to pay for)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller by result(), as a pool would
            f.set_exception(exc)
        return f


@contextmanager
def workers(n: int | None):
    """An executor of ``n`` worker processes (forked where the platform allows: they start in milliseconds
    and inherit what is imported), or one running calls inline when ``n`` <= 1."""
    if not n or n <= 1:
        yield _Inline()
        return
    method = "fork" if sys.platform.startswith("linux") else None
    with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context(method)) as pool:
        yield pool


def ordered(pool: Executor, fn, items, ahead: int = 4):
    """``fn(item)`` for each item, in order, with at most ``ahead`` calls pending (memory stays bounded)."""
    pending: deque[Future] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
