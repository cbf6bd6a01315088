"""numba's threading for the compiled kernels: its own `workqueue` pool (no clash with torch's OpenMP; TBB is
too old here) unless NUMBA_THREADING_LAYER says otherwise, sized like torch's."""

from __future__ import annotations

import os

import numba
import torch

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"


def match_torch_threads() -> None:
    """Run the next parallel kernels on as many threads as torch uses (`torch.get_num_threads`)."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
