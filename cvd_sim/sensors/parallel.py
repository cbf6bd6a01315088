"""Row-chunked threads for the sensor kernels: compiled (numba nogil) kernels and numpy release the GIL, so
contiguous chunks of rays shade on all cores. Chunks write disjoint rows, so results do not depend on the thread
count."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from itertools import pairwise

MIN_CHUNK_ROWS = 4096  # below this, handing a chunk to a second thread costs more than it saves


def thread_count(nthreads: int) -> int:
    """Threads for a renderer setting (0 = all cores), or 1 when the cores are already busy: threads that hand
    the GIL to each other between numpy calls slow down severalfold when they wait for a core each time."""
    cores = os.cpu_count() or 1
    if os.getloadavg()[0] >= cores:
        return 1
    return min(nthreads, cores) if nthreads > 0 else cores


@cache
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:  # one pool per process (pid: safe after a fork)
    return ThreadPoolExecutor(workers, thread_name_prefix="cvd-sensors")


def for_row_chunks(fn: Callable[[slice], None], rows: int, nthreads: int) -> None:
    """Call fn(rows slice) over [0, rows) cut into contiguous chunks, up to `thread_count(nthreads)` at once.

    The calling thread takes the first chunk; the others go to a process-wide pool.
    """
    chunks = max(1, min(thread_count(nthreads), rows // MIN_CHUNK_ROWS))
    bounds = [rows * i // chunks for i in range(chunks + 1)]
    slices = [slice(a, b) for a, b in pairwise(bounds)]
    if chunks == 1:
        fn(slices[0])
        return
    pool = _pool(chunks - 1, os.getpid())
    futures = [pool.submit(fn, s) for s in slices[1:]]
    fn(slices[0])
    for future in futures:
        future.result()
