"""Row-chunked threads for the sensor kernels: compiled (numba nogil) kernels release the GIL, so contiguous
chunks of rays shade on all cores. Threads take chunks from a shared queue, so a thread that gets no core only
delays the chunk it holds. Chunks write disjoint rows, so results do not depend on the thread count."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from itertools import pairwise

MIN_CHUNK_ROWS = 4096  # below this, handing a chunk to a second thread costs more than it saves
CHUNKS_PER_THREAD = 3  # a thread late to start leaves its share to the others


def thread_count(nthreads: int) -> int:
    """Threads for a renderer setting (0 = all cores)."""
    cores = os.cpu_count() or 1
    return min(nthreads, cores) if nthreads > 0 else cores


@cache
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:  # one pool per process (pid: safe after a fork)
    return ThreadPoolExecutor(workers, thread_name_prefix="cvd-sensors")


def for_row_chunks(fn: Callable[[slice], None], rows: int, nthreads: int) -> None:
    """Call fn(rows slice) once per contiguous chunk of [0, rows), on up to `thread_count(nthreads)` threads.

    The calling thread works through the queue too, helped by threads of a process-wide pool.
    """
    threads = max(1, min(thread_count(nthreads), rows // MIN_CHUNK_ROWS))
    chunks = threads if threads == 1 else min(threads * CHUNKS_PER_THREAD, rows // MIN_CHUNK_ROWS)
    bounds = [rows * i // chunks for i in range(chunks + 1)]
    queue = deque(slice(a, b) for a, b in pairwise(bounds))

    def work() -> None:
        while queue:
            try:
                chunk = queue.popleft()  # atomic: no two threads take one chunk
            except IndexError:
                return
            fn(chunk)

    helpers = [_pool(threads - 1, os.getpid()).submit(work) for _ in range(threads - 1)]
    work()
    for helper in helpers:
        helper.result()
